"""Verdict tables and machine-readable results of the notebooks.

Every notebook ends with a "reproduced / differs" table: one row per claim of the paper,
with the measured value, the threshold it is compared with (the same number the prose
quotes) and the computed verdict. :func:`print_verdicts` prints it in one fixed format and
:func:`write_metrics` writes it, with any per-model numbers, to
``<figures_dir>/runs/<stem>.metrics.json`` next to the run record::

    {"notebook": "04_cfm_gmm_2d", "profile": "quick",
     "rows": [{"claim": ..., "measured": ..., "threshold": ..., "verdict": ...}], ...}

:func:`parse_verdicts` reads a printed table back, so a test can check that the file agrees
with what the notebook shows.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = [
    "VERDICTS",
    "row",
    "print_verdicts",
    "parse_verdicts",
    "write_metrics",
    "metrics_path",
    "span",
]

#: The words a verdict may take: a claim of the paper is "reproduced" or "differs".
VERDICTS = ("reproduced", "differs")
_SEP = " │ "  # a box-drawing bar: "|" and " | " occur in claims (|v|, E[X | Y])


def row(claim: str, measured: str, threshold: str, ok: bool) -> dict:
    """One verdict row: ``ok`` decides ``"reproduced"`` or ``"differs"``."""
    return {
        "claim": claim,
        "measured": measured,
        "threshold": threshold,
        "verdict": VERDICTS[0] if ok else VERDICTS[1],
    }


def print_verdicts(rows: Iterable[Mapping]) -> None:
    """Print ``verdict │ claim │ measured │ threshold``, one line per row, and a count."""
    rows = list(rows)
    for r in rows:
        for key in ("claim", "measured", "threshold"):
            if _SEP in str(r[key]):
                raise ValueError(f"'{_SEP}' separates the columns: {key} = {r[key]!r}")
        if r["verdict"] not in VERDICTS:
            raise ValueError(f"unknown verdict {r['verdict']!r}; use one of {VERDICTS}")
    wc = max((len(r["claim"]) for r in rows), default=5)
    wm = max((len(r["measured"]) for r in rows), default=8)
    print(_SEP.join([f"{'verdict':10s}", f"{'claim':{wc}s}", f"{'measured':{wm}s}", "threshold"]))
    for r in rows:
        cells = [f"{r['verdict']:10s}", f"{r['claim']:{wc}s}", f"{r['measured']:{wm}s}"]
        print(_SEP.join(cells + [r["threshold"]]))
    n_ok = sum(r["verdict"] == VERDICTS[0] for r in rows)
    print(f"{n_ok} of {len(rows)} reproduced")


def parse_verdicts(text: str) -> list[dict]:
    """The rows of a table printed by :func:`print_verdicts` (whitespace stripped)."""
    out = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(_SEP)]
        if len(parts) == 4 and parts[0] in VERDICTS:
            out.append(dict(zip(("verdict", "claim", "measured", "threshold"), parts, strict=True)))
    return out


def metrics_path(stem: str, figures_dir: str | os.PathLike) -> Path:
    """``<figures_dir>/runs/<stem>.metrics.json``."""
    return Path(figures_dir) / "runs" / f"{stem}.metrics.json"


def write_metrics(
    stem: str,
    profile: str,
    rows: Iterable[Mapping],
    figures_dir: str | os.PathLike | None,
    **extra,
) -> Path | None:
    """Write the verdict ``rows`` and ``extra`` (JSON-serialisable) for notebook ``stem``.

    Nothing is written when ``figures_dir`` is None (a notebook run without outputs). The file
    is written to a unique temporary name and renamed, so a reader never sees half a file.
    """
    if figures_dir is None:
        return None
    path = metrics_path(stem, figures_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"notebook": stem, "profile": profile, "rows": [dict(r) for r in rows], **extra}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=1, sort_keys=False, allow_nan=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def span(values, fmt: str) -> str:
    """``"lo-hi"`` of ``values`` in format ``fmt``, or one number when both print alike
    (for summaries printed from a run's results: ``span([0.526, 0.864], ".3f")`` ->
    ``"0.526-0.864"``)."""
    lo, hi = format(min(values), fmt), format(max(values), fmt)
    return lo if lo == hi else f"{lo}-{hi}"
