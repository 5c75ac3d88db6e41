"""One matplotlib style for every figure of the notebooks, and a helper that saves figures.

Call :func:`use_style` once (``kacnb.collection.runtime.setup`` does it) and save every figure with
:func:`save_figure`, which writes ``<name>.png`` (for the README, ~150 dpi) and ``<name>.pdf``
(vector, for print) side by side and, inside a Jupyter kernel, shows the same drawing once
inline as a PNG at screen resolution (:data:`INLINE_DPI`), then closes the figure so that a
following ``plt.show()`` does not show it again.  The inline image works under any matplotlib
backend (``MPLBACKEND=Agg`` included); its output metadata names the figure
(:data:`FIGURE_KEY`), which the rendered site uses to place figures where the notebook draws
them.  Figures of the paper use :data:`GENERATED` (blue) for samples of the model and
:data:`GROUND_TRUTH` (red) for the target / reference data.
"""

from __future__ import annotations

import base64
import io
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib as mpl
from cycler import cycler

__all__ = [
    "GENERATED",
    "GROUND_TRUTH",
    "COLORS",
    "STYLE",
    "FORMATS",
    "INLINE_DPI",
    "INLINE_BACKEND",
    "FIGURE_KEY",
    "use_style",
    "save_figure",
    "figure_png",
    "show_inline",
    "inline_figures",
    "scatter_with_zoom",
    "save_animation",
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
#: Resolution of the inline copy of a saved figure: screen size, and small enough that an
#: executed notebook with all its figures stays within a few MB.
INLINE_DPI = 90
#: matplotlib's backend for Jupyter kernels; runs set it so that a figure drawn with
#: ``plt.show()`` (and not saved) is shown too.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
#: Key of an inline image's output metadata that holds the figure's file stem.
FIGURE_KEY = "kacnb_figure"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def use_style() -> None:
    """Apply the kacnb figure style to matplotlib's global rcParams."""
    mpl.rcParams.update(STYLE)


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name) or name.endswith((".png", ".pdf")):
        raise ValueError(
            f"figure name must be a bare file stem like 'fig01_kac_paths_2d' "
            f"(no directory, no extension), got {name!r}"
        )


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

    Inside a Jupyter kernel the figure is then shown inline once (:func:`show_inline`) and
    closed, also when ``figures_dir`` is None; elsewhere (scripts, tests) it stays open.
    """
    _check_name(name)
    written = []
    if figures_dir is not None:
        out_dir = Path(figures_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        for fmt in formats:
            path = out_dir / f"{name}.{fmt}"
            metadata = {"CreationDate": None} if fmt == "pdf" else None
            fig.savefig(path, format=fmt, metadata=metadata)
            written.append(path)
    show_inline(fig, name)
    return written


def _kernel_shell():
    """The IPython shell of a running Jupyter kernel, or None (plain Python, a terminal
    IPython, or IPython not imported at all)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell if getattr(shell, "kernel", None) is not None else None


def _publish(data: dict, metadata: dict) -> None:
    """Send one display output to the kernel's front end (Jupyter, papermill, nbval)."""
    from IPython.display import display

    display(data, raw=True, metadata=metadata)


def figure_png(fig, dpi: float = INLINE_DPI) -> bytes:
    """``fig`` as PNG bytes at ``dpi`` (same bounding box and padding as the saved files)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def show_inline(fig, name: str) -> bool:
    """Show ``fig`` once as an inline PNG at :data:`INLINE_DPI` and close it, when running in
    a Jupyter kernel; return whether it was shown.

    The output carries only ``image/png`` (no text that a notebook regression test would
    compare) and the metadata ``{FIGURE_KEY: name}``.
    """
    if _kernel_shell() is None:
        return False
    import matplotlib.pyplot as plt

    png = base64.b64encode(figure_png(fig)).decode("ascii")
    _publish({"image/png": png}, {FIGURE_KEY: name})
    plt.close(fig)
    return True


def inline_figures(nb) -> list[str | None]:
    """The inline PNG images of an executed notebook (a parsed ``nbformat`` notebook or its
    JSON dict), in order: the saved figure's stem for those shown by :func:`save_figure`,
    None for any other image."""
    found = []
    for cell in nb.get("cells", ()):
        for out in cell.get("outputs", ()):
            if "image/png" in out.get("data", {}):
                found.append(out.get("metadata", {}).get(FIGURE_KEY))
    return found


def scatter_with_zoom(
    ax,
    generated,
    truth,
    center: Sequence[float],
    half_width: float,
    bounds: Sequence[float] = (0.56, 0.04, 0.42, 0.42),
    size: float = 1.5,
    zoom_size: float = 6.0,
    alpha: float = 0.5,
):
    """Scatter ``generated`` (blue) and ``truth`` (red) points on ``ax`` with a zoomed inset.

    ``generated`` and ``truth`` are arrays of shape (N, 2) (tensors are converted). The inset
    shows the square ``center +- half_width`` (data units), placed at ``bounds`` =
    ``(x0, y0, width, height)`` in axes fractions, and is linked to that square on ``ax`` by
    :meth:`~matplotlib.axes.Axes.indicate_inset_zoom`. Ground truth is drawn last so that
    it stays visible on top of the samples. Returns the inset axes.
    """
    import numpy as np

    gen = np.asarray(generated, dtype=float)
    ref = np.asarray(truth, dtype=float)
    inset = ax.inset_axes(list(bounds))
    for target, s in ((ax, size), (inset, zoom_size)):
        target.scatter(gen[:, 0], gen[:, 1], s=s, color=GENERATED, alpha=alpha, linewidths=0)
        target.scatter(ref[:, 0], ref[:, 1], s=s, color=GROUND_TRUTH, alpha=alpha, linewidths=0)
    cx, cy = (float(v) for v in center)
    inset.set_xlim(cx - half_width, cx + half_width)
    inset.set_ylim(cy - half_width, cy + half_width)
    inset.set_aspect("equal")
    inset.set_xticks([])
    inset.set_yticks([])
    for spine in inset.spines.values():
        spine.set_visible(True)
    ax.indicate_inset_zoom(inset, edgecolor="black", alpha=0.8)
    return inset


def save_animation(
    animation,
    name: str,
    figures_dir: str | Path | None,
    fps: int = 10,
    dpi: int = 80,
) -> list[Path]:
    """Write a matplotlib ``animation`` as ``<figures_dir>/<name>.gif`` (PillowWriter).

    ``name`` is a bare stem as for :func:`save_figure`; ``figures_dir`` ``None`` writes
    nothing and returns ``[]``. ``fps`` frames per second, ``dpi`` sets the frame size (keep
    it small: GIF frames are stored losslessly). Returns the paths written.
    """
    from matplotlib.animation import PillowWriter

    _check_name(name)
    if figures_dir is None:
        return []
    out_dir = Path(figures_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.gif"
    animation.save(path, writer=PillowWriter(fps=fps), dpi=dpi)
    return [path]
