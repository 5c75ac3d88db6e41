"""Live progress of a notebook's long loops on the runner's terminal.

A notebook executed by papermill writes its progress bars (tqdm: training, sampling) to the
kernel's stderr, which only reaches the notebook file. Without it the terminal shows only the
runner's "cells done" bar, which stands still during a cell that trains for an hour.
:class:`ProgressEcho` is a write-only file object given to papermill as the kernel's stderr
sink: it keeps the latest progress-bar line (current model, step, loss, rate, ETA) and shows
it on a status line under the runner's bar. Anything else on stderr (warnings) is left to the
notebook, where it is kept anyway.
"""

from __future__ import annotations

import re
import time

__all__ = ["ProgressEcho", "latest_bar"]

# A tqdm line: "desc:  3%|▎   | 56488/2000000 [02:39<1:45:09, 308.05it/s]" or, without a
# total, "desc: 5000it [00:10, 480.1it/s]". The counter-and-brackets part is what marks it.
_BAR = re.compile(r"\d[\d.]*[kMG]?[A-Za-z]* \[\d+:\d\d")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def latest_bar(text: str) -> str | None:
    """The last progress-bar line in ``text`` (segments split at ``\\r`` and ``\\n``), or None."""
    for segment in reversed(re.split(r"[\r\n]", _ANSI.sub("", text))):
        segment = segment.strip()
        if segment and _BAR.search(segment):
            return segment
    return None


class ProgressEcho:
    """Write-only text sink that shows the latest progress-bar line it receives.

    ``show(line)`` is called with the newest bar at most every ``interval`` seconds; by
    default it is a one-line tqdm status bar under the runner's own bar. ``last`` holds the
    newest bar line seen.
    """

    def __init__(self, show=None, interval: float = 0.5, clock=time.monotonic):
        self.last: str | None = None
        self._interval = float(interval)
        self._clock = clock
        self._at = -float("inf")
        self._status = None
        self._show = show if show is not None else self._tqdm_line

    def _tqdm_line(self, line: str) -> None:
        if self._status is None:
            from tqdm import tqdm

            self._status = tqdm(total=0, position=1, bar_format="{desc}", leave=False)
        self._status.set_description_str(f"  {line}", refresh=True)

    def write(self, text: str) -> int:
        bar = latest_bar(text)
        if bar is not None:
            self.last = bar
            now = self._clock()
            if now - self._at >= self._interval:
                self._at = now
                self._show(bar)
        return len(text)

    def flush(self) -> None:
        """Nothing buffered: lines are shown as they arrive (throttled)."""

    def close(self) -> None:
        """Remove the status line (the notebook keeps the bars' final state)."""
        if self._status is not None:
            self._status.close()
            self._status = None
