"""Explorers for notebooks 02 and 03: sliders when ipywidgets is there, a figure otherwise.

Two views, each split into a pure computation and a drawing function so that the numbers
behind a slider position can be tested without a front end:

* the law of the 1D Kac process at time ``t`` (paper Section 4, [30-31] and Thm 4 [41]):
  :func:`kac_law_frame` returns the density of the continuous part on ``(-ct, ct)``, the two
  atoms of mass ``exp(-a t)/2`` at ``+-ct`` and the velocity field; :func:`draw_law` plots it;
* the 2D componentwise process ``X_t = X_0 + K(t)`` (paper Section 5, [66]) started in a
  point cloud: :func:`cloud_frame` moves the cloud along random-walk paths (App. A.1) that
  depend only on the seed, so moving the ``t`` slider moves the same particles;
  :func:`draw_cloud` plots them with the box ``X_0 + [-ct, ct]^2`` that bounds them (Prop 11).

:func:`law_explorer` and :func:`cloud_explorer` show sliders (``interactive=True`` and
ipywidgets installed, e.g. by the ``lab`` extra) and otherwise draw a static figure, so a
batch run (papermill, ``kacnb run``) never depends on widgets being rendered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..theory.kac import Kac
from . import params
from .plotting import COLORS, GENERATED, GROUND_TRUTH

__all__ = [
    "LawFrame",
    "CloudFrame",
    "kac_law_frame",
    "cloud_frame",
    "draw_law",
    "draw_cloud",
    "law_view",
    "cloud_view",
    "widgets_available",
    "law_widget",
    "cloud_widget",
    "law_explorer",
    "cloud_explorer",
]

F64 = torch.float64
#: Slider ranges: rate a (1/time, log scale), speed c (length/time), time t.
A_RANGE = (0.1, 1000.0)
C_RANGE = (0.1, 30.0)
T_RANGE = (0.01, 5.0)
INSTALL_HINT = 'the sliders need ipywidgets: pip install -e ".[lab]"; showing a static figure'


@dataclass(frozen=True)
class LawFrame:
    """The law of ``K(t)`` and its velocity at one slider position (float64, CPU).

    ``x`` (shape ``(n_x,)``) is a uniform grid of the open cone ``(-ct, ct)``; ``density`` the
    continuous part ``u~(t, x)`` [30-31] on it (1/length); ``velocity`` ``v(t, x)`` [41]
    (length/time). ``atom_mass`` is the mass of *each* atom, ``exp(-a t)/2``, at ``-ct`` and
    ``+ct``; ``continuous_mass`` the integral of ``u~`` over the cone by Gauss-Legendre
    quadrature, so ``2 * atom_mass + continuous_mass = 1``.
    """

    a: float
    c: float
    t: float
    x: torch.Tensor
    density: torch.Tensor
    velocity: torch.Tensor
    atom_mass: float
    continuous_mass: float

    @property
    def edge(self) -> float:
        """Half-width ``ct`` of the light cone (length)."""
        return self.c * self.t


def kac_law_frame(a: float, c: float, t: float, n_x: int = 401, n_quad: int = 256) -> LawFrame:
    """Law and velocity of the 1D Kac process with rate ``a``, speed ``c`` at time ``t > 0``."""
    kac = Kac(a, c)
    t = params.positive("t", t)
    n_x = params.count("n_x", n_x, 401, minimum=3, maximum=100_000)
    edge = kac.c * t
    x = torch.linspace(-edge, edge, n_x + 2, dtype=F64)[1:-1]  # open cone
    tt = torch.tensor(t, dtype=F64)
    nodes, weights = np.polynomial.legendre.leggauss(n_quad)
    xq = torch.tensor(nodes * edge, dtype=F64)
    mass = float((kac.density(tt, xq) * torch.tensor(weights * edge, dtype=F64)).sum())
    return LawFrame(
        a=kac.a,
        c=kac.c,
        t=t,
        x=x,
        density=kac.density(tt, x),
        velocity=kac.velocity(tt, x),
        atom_mass=0.5 * float(kac.atom_mass(tt)),
        continuous_mass=mass,
    )


def draw_law(frame: LawFrame, ax_law, ax_velocity) -> None:
    """Plot the law (the density, and the atoms as stems whose height is their mass) on
    ``ax_law`` and the velocity on ``ax_velocity``."""
    x, e = frame.x.numpy(), frame.edge
    ax_law.plot(x, frame.density.numpy(), color=COLORS[0], label=r"density $\tilde u(t, x)$")
    ax_law.vlines([-e, e], 0, frame.atom_mass, color=GROUND_TRUTH, lw=2.5)
    ax_law.plot([-e, e], [frame.atom_mass] * 2, "o", color=GROUND_TRUTH, ms=5)
    ax_law.plot([], [], "o-", color=GROUND_TRUTH, label=f"atoms, mass {frame.atom_mass:.3g} each")
    ax_law.set_ylim(bottom=0)
    ax_law.set_xlabel("x")
    ax_law.set_title(f"law of K(t): (a, c) = ({frame.a:g}, {frame.c:g}), t = {frame.t:.3g}")
    ax_law.legend(fontsize=8, loc="upper center")
    ax_velocity.plot(x, frame.velocity.numpy(), color=COLORS[1], label="v(t, x) [41]")
    ax_velocity.plot([-e, e], [-frame.c, frame.c], "o", color=GROUND_TRUTH, ms=5, label="atoms")
    ax_velocity.axhline(frame.c, color="0.6", ls="--", lw=0.8)
    ax_velocity.axhline(-frame.c, color="0.6", ls="--", lw=0.8)
    ax_velocity.set_ylim(-1.15 * frame.c, 1.15 * frame.c)
    ax_velocity.set_xlabel("x")
    ax_velocity.set_title("velocity (dashed: the bound |v| <= c)")
    ax_velocity.legend(fontsize=8, loc="upper left")


@dataclass(frozen=True)
class CloudFrame:
    """The cloud ``X_t = X_0 + K(t)`` at one slider position: ``points`` and ``x0`` have
    shape ``(n, 2)`` (float64, CPU); every point stays within ``c t`` of its start in each
    coordinate (Prop 11)."""

    a: float
    c: float
    t: float
    x0: torch.Tensor
    points: torch.Tensor


def cloud_frame(x0, a: float, c: float, t: float, t_max: float, seed: int = 0) -> CloudFrame:
    """Move the cloud ``x0`` (shape ``(n, 2)``) to time ``t`` in ``[0, t_max]``.

    The random walks (App. A.1) are drawn from ``seed`` up to ``t_max`` whatever ``t`` is, so
    two calls with the same seed, ``a``, ``c`` and ``t_max`` follow the same particles:
    ``|X_t - X_s| <= c |t - s|`` componentwise between their frames.
    """
    kac = Kac(a, c)
    t_max = params.positive("t_max", t_max)
    if isinstance(t, bool) or not (0.0 <= float(t) <= t_max):
        raise params.ParameterError(f"t must lie in [0, t_max = {t_max:g}], got {t!r}")
    x0 = torch.as_tensor(x0, dtype=F64).cpu()
    if x0.ndim != 2 or x0.shape[1] != 2 or x0.shape[0] < 1:
        raise ValueError(f"x0 must have shape (n, 2), got {tuple(x0.shape)}")
    gen = torch.Generator().manual_seed(int(seed))
    times = torch.tensor([float(t), t_max], dtype=F64)
    k = kac.paths(times, x0.shape[0], dim=2, generator=gen)[0]
    return CloudFrame(a=kac.a, c=kac.c, t=float(t), x0=x0, points=x0 + k)


def draw_cloud(frame: CloudFrame, ax, lim: float = 3.6) -> None:
    """Scatter the cloud with the bounding box of ``X_0 + [-ct, ct]^2`` (dashed)."""
    p = frame.points.numpy()
    ax.scatter(p[:, 0], p[:, 1], s=2, color=GENERATED, linewidths=0)
    lo = frame.x0.min(0).values.numpy() - frame.c * frame.t
    hi = frame.x0.max(0).values.numpy() + frame.c * frame.t
    ax.plot([lo[0], hi[0], hi[0], lo[0], lo[0]], [lo[1], lo[1], hi[1], hi[1], lo[1]], "--", c="0.5")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("$x^1$")
    ax.set_ylabel("$x^2$")
    ax.set_title(f"(a, c) = ({frame.a:g}, {frame.c:g}), t = {frame.t:.3g}", fontsize=10)


def _show(fig) -> None:
    plt.show()
    plt.close(fig)


def law_view(a: float, c: float, t: float) -> LawFrame:
    """The sliders' callback for the law: compute, draw one figure, return the frame."""
    frame = kac_law_frame(a, c, t)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6), constrained_layout=True)
    draw_law(frame, ax1, ax2)
    _show(fig)
    return frame


def cloud_view(x0, a: float, c: float, t: float, t_max: float, seed: int = 0) -> CloudFrame:
    """The sliders' callback for the cloud: compute, draw one figure, return the frame."""
    frame = cloud_frame(x0, a, c, t, t_max, seed)
    fig, ax = plt.subplots(figsize=(4.6, 4.6), constrained_layout=True)
    draw_cloud(frame, ax)
    _show(fig)
    return frame


def widgets_available() -> bool:
    """Whether ipywidgets can be imported (it comes with the ``lab`` extra)."""
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def _sliders(a: float, c: float, t: float, t_lo: float, t_hi: float):
    import ipywidgets as w

    style = {"continuous_update": False}
    return {
        "a": w.FloatLogSlider(
            value=a,
            base=10,
            min=math.log10(A_RANGE[0]),
            max=math.log10(A_RANGE[1]),
            step=0.05,
            description="a (rate)",
            **style,
        ),
        "c": w.FloatSlider(
            value=c, min=C_RANGE[0], max=C_RANGE[1], step=0.1, description="c", **style
        ),
        "t": w.FloatSlider(value=t, min=t_lo, max=t_hi, step=0.01, description="t", **style),
    }


def law_widget(a: float = 1.0, c: float = 1.0, t: float = 0.5):
    """``ipywidgets.interactive`` with sliders a, c, t calling :func:`law_view`; its
    ``result`` is the last :class:`LawFrame`."""
    import ipywidgets as w

    for name, value, (lo, hi) in (("a", a, A_RANGE), ("c", c, C_RANGE), ("t", t, T_RANGE)):
        if not lo <= params.positive(name, value) <= hi:
            raise params.ParameterError(f"{name} must lie in [{lo:g}, {hi:g}] for the sliders")
    return w.interactive(law_view, **_sliders(a, c, t, *T_RANGE))


def cloud_widget(x0, a: float = 1.0, c: float = 1.0, t: float = 0.3, t_max: float = 2.0, seed=0):
    """``ipywidgets.interactive`` with sliders a, c, t (``0 <= t <= t_max``) calling
    :func:`cloud_view` on the cloud ``x0``; its ``result`` is the last :class:`CloudFrame`."""
    import ipywidgets as w

    t_max = params.positive("t_max", t_max, maximum=T_RANGE[1])
    for name, value, (lo, hi) in (("a", a, A_RANGE), ("c", c, C_RANGE)):
        if not lo <= params.positive(name, value) <= hi:
            raise params.ParameterError(f"{name} must lie in [{lo:g}, {hi:g}] for the sliders")
    if not 0 <= t <= t_max:
        raise params.ParameterError(f"t must lie in [0, t_max = {t_max:g}], got {t!r}")

    def view(a, c, t):
        return cloud_view(x0, a, c, t, t_max, seed)

    return w.interactive(view, **_sliders(a, c, t, 0.0, t_max))


def _display(widget):
    from IPython.display import display

    display(widget)
    return widget


def law_explorer(interactive: bool, a: float, c: float, times):
    """Sliders for the 1D law (when ``interactive`` and ipywidgets is installed), else a
    static figure of the law (top) and velocity (bottom) of ``(a, c)`` at each of ``times``.

    Returns the widget, or the static figure (for the notebook to show).
    """
    if params.flag("interactive", interactive):
        if widgets_available():
            return _display(law_widget(a, c, times[0]))
        print(INSTALL_HINT)
    times = params.times("explore_times", times, allow_zero=False, max_len=4)
    fig, axes = plt.subplots(
        2, len(times), figsize=(4.2 * len(times), 6.0), squeeze=False, constrained_layout=True
    )
    for j, t in enumerate(times):
        draw_law(kac_law_frame(a, c, t), axes[0, j], axes[1, j])
    return fig


def cloud_explorer(interactive: bool, x0, pairs, t: float, t_max: float = 2.0, seed: int = 0):
    """Sliders for the 2D cloud (when ``interactive`` and ipywidgets is installed), starting
    at the first of ``pairs``; else a static figure of the cloud at time ``t`` for each pair.

    Returns the widget, or the static figure (for the notebook to show).
    """
    pairs = params.pairs("pairs", pairs, max_len=4)
    if params.flag("interactive", interactive):
        if widgets_available():
            return _display(cloud_widget(x0, *pairs[0], t=t, t_max=t_max, seed=seed))
        print(INSTALL_HINT)
    fig, axes = plt.subplots(
        1, len(pairs), figsize=(3.6 * len(pairs), 3.8), squeeze=False, constrained_layout=True
    )
    for ax, (a, c) in zip(axes[0], pairs, strict=True):
        draw_cloud(cloud_frame(x0, a, c, t, t_max, seed), ax)
    return fig
