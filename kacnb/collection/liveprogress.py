"""Live progress of a notebook's long loops on the runner's terminal.

A notebook executed by papermill writes its progress bars (tqdm: training, sampling) to the
kernel's stderr, which only reaches the notebook file. Without it the terminal shows only the
runner's "cells done" bar, which stands still during a cell that trains for an hour.
:class:`ProgressEcho` is a write-only file object given to papermill as the kernel's stderr
sink: it keeps the latest progress-bar line and shows it, condensed by :func:`status_text`, on
a status line under the runner's bar: first what the training bar's postfix names (the model
last validated, its step, loss and validation NLL, set by ``kacnb.cfm.train``), then the bar's
own count, rate and ETA, so that a narrow terminal cuts the least useful part. Anything else
on stderr (warnings) is left to the notebook, where it is kept anyway.
"""

from __future__ import annotations

import re
import time

__all__ = ["ProgressEcho", "latest_bar", "status_text"]

# A tqdm line: "desc:  3%|▎   | 56488/2000000 [02:39<1:45:09, 308.05it/s]" or, without a
# total, "desc: 5000it [00:10, 480.1it/s]". The counter-and-brackets part is what marks it.
_BAR = re.compile(r"\d[\d.]*[kMG]?[A-Za-z]* \[\d+:\d\d")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# The parts of a tqdm line, with a total ("desc:  3%|▎ | 56488/2000000 [02:39<1:45:09,
# 308.05it/s, k=v]") or without ("desc: 5000it [00:10, 480.1it/s, k=v]").
_WITH_TOTAL = re.compile(
    r"(?:(?P<desc>.*?): *)?(?P<pct>\d+)%\|.*\| *(?P<n>[\d.]+[kMG]?)/(?P<total>[\d.]+[kMG]?) "
    r"\[[\d:]+<(?P<eta>[^,\]]+), *(?P<rate>[^,\]]*)(?:, (?P<postfix>.*))?\]"
)
_NO_TOTAL = re.compile(
    r"(?:(?P<desc>.*?): *)?(?P<n>[\d.]+[kMG]?[A-Za-z]*) \[[\d:]+, *(?P<rate>[^,\]]*)"
    r"(?:, (?P<postfix>.*))?\]"
)
# "model=kac (25, 5), step=80000, loss=0.41": a value runs to the next ", name=".
_POSTFIX_ITEM = re.compile(r"(\w+)=(.*?)(?=, \w+=|$)")
#: How :func:`status_text` names the training postfix's entries.
_LABELS = {"step": "step", "loss": "loss", "val": "val NLL"}


def _postfix_text(postfix: str) -> str:
    """The training postfix as ``"kac (25, 5) step 80000, loss 0.41, val NLL 6.98"``."""
    items = dict(_POSTFIX_ITEM.findall(postfix))
    head = items.pop("model", "")
    if "step" in items:
        head = f"{head} step {items.pop('step')}".strip()
    rest = [f"{_LABELS.get(k, k)} {v}" for k, v in items.items()]
    return ", ".join(([head] if head else []) + rest)


def status_text(line: str) -> str:
    """A tqdm line condensed for the status line: the postfix first (model, step, loss,
    validation), then the bar's description, percentage, count, rate and ETA; a line that is
    not tqdm's default format is returned as it is."""
    match = _WITH_TOTAL.fullmatch(line) or _NO_TOTAL.fullmatch(line)
    if match is None:
        return line
    parts = match.groupdict()
    count = f"{parts['n']}/{parts['total']}" if parts.get("total") else parts["n"]
    pct = f"{parts['pct']}%" if parts.get("pct") else ""
    head = " ".join(x for x in (parts["desc"], pct, count) if x)
    timing = [parts["rate"]] + ([f"ETA {parts['eta']}"] if parts.get("eta") else [])
    progress = head + "".join(f", {t}" for t in timing if t)
    postfix = _postfix_text(parts["postfix"]) if parts["postfix"] else ""
    return f"{postfix} | {progress}" if postfix else progress


def latest_bar(text: str) -> str | None:
    """The last progress-bar line in ``text`` (segments split at ``\\r`` and ``\\n``), or None."""
    for segment in reversed(re.split(r"[\r\n]", _ANSI.sub("", text))):
        segment = segment.strip()
        if segment and _BAR.search(segment):
            return segment
    return None


class ProgressEcho:
    """Write-only text sink that shows the latest progress-bar line it receives.

    ``show(text)`` is called with the newest bar, condensed by :func:`status_text`, at most
    every ``interval`` seconds; by default it is a one-line tqdm status bar under the
    runner's bar. ``last`` holds the newest bar line seen, as the notebook wrote it.
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
                self._show(status_text(bar))
        return len(text)

    def flush(self) -> None:
        """Nothing buffered: lines are shown as they arrive (throttled)."""

    def close(self) -> None:
        """Remove the status line (the notebook keeps the bars' final state)."""
        if self._status is not None:
            self._status.close()
            self._status = None
