"""One matplotlib style for every figure of the notebooks, and a helper that saves figures.

Call :func:`use_style` once (``kacnb.runtime.setup`` does it) and save every figure with
:func:`save_figure`, which writes ``<name>.png`` (for the README, ~150 dpi) and ``<name>.pdf``
(vector, for print) side by side.  Figures of the paper use :data:`GENERATED` (blue) for
samples of the model and :data:`GROUND_TRUTH` (red) for the target / reference data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import matplotlib as mpl
from cycler import cycler

__all__ = [
    "GENERATED",
    "GROUND_TRUTH",
    "COLORS",
    "STYLE",
    "FORMATS",
    "use_style",
    "save_figure",
]

#: Samples produced by the generative model (blue).
GENERATED = "#1f5fbf"
#: Ground-truth / target samples and exact reference curves (red).
GROUND_TRUTH = "#d62728"

#: Colour cycle: generated, ground truth, then further distinguishable colours.
COLORS = (
    GENERATED,
    GROUND_TRUTH,
    "#2ca02c",  # green
    "#ff7f0e",  # orange
    "#7b3fb5",  # purple
    "#17a2b8",  # teal
    "#8c564b",  # brown
    "#595959",  # grey
)

#: The rcParams applied by :func:`use_style`.
STYLE: dict[str, object] = {
    # sizes
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 100,
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "figure.titlesize": 13,
    # axes
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": cycler(color=list(COLORS)),
    "axes.grid": False,
    "legend.frameon": False,
    "lines.linewidth": 1.6,
    "image.cmap": "viridis",
    # saving
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.05,
    "pdf.fonttype": 42,  # TrueType fonts in PDFs (editable text, accepted by publishers)
    "ps.fonttype": 42,
}

#: File formats written by :func:`save_figure`, in this order.
FORMATS = ("png", "pdf")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def use_style() -> None:
    """Apply the kacnb figure style to matplotlib's global rcParams."""
    mpl.rcParams.update(STYLE)


def save_figure(
    fig,
    name: str,
    figures_dir: str | Path | None,
    formats: Iterable[str] = FORMATS,
) -> list[Path]:
    """Save ``fig`` as ``<figures_dir>/<name>.png`` and ``<figures_dir>/<name>.pdf``.

    ``name`` is a file stem without extension or directory (e.g. ``"fig01_kac_paths_2d"``).
    ``figures_dir`` is created if needed; ``None`` means "do not save" (interactive use),
    in which case nothing is written and an empty list is returned.  Returns the paths written.
    PDFs are written without a creation date so that re-running a notebook with the same
    results gives the same file.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name) or name.endswith((".png", ".pdf")):
        raise ValueError(
            f"figure name must be a bare file stem like 'fig01_kac_paths_2d' "
            f"(no directory, no extension), got {name!r}"
        )
    if figures_dir is None:
        return []
    out_dir = Path(figures_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        path = out_dir / f"{name}.{fmt}"
        metadata = {"CreationDate": None} if fmt == "pdf" else None
        fig.savefig(path, format=fmt, metadata=metadata)
        written.append(path)
    return written
