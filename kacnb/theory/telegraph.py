"""The 1D telegrapher's equation and the laws it describes (paper Section 4).

The telegrapher's (damped wave) equation [20-22]

    d2u/dt2 + 2a du/dt = c^2 d2u/dx2,   u(0, x) = f0(x),   du/dt(0, x) = 0,

is solved, for ``f0`` a probability density, by the density of ``X_t = X_0 + K(t)`` with
``X_0 ~ f0`` independent of the Kac process ``K`` (Thm 1, Prop 5, [27]). This module gives
two independent routes to ``u(t, .)`` so that each checks the other:

* :func:`solve_telegraph`: explicit finite differences for the PDE;
* :func:`convolved_density`: the convolution of ``f0`` with the law of ``K(t)`` [30-31]
  (two atoms of mass ``exp(-a t)/2`` at ``+-c t`` plus the continuous part ``u~``).

:func:`symmetric_flux_1d` recovers the velocity of a symmetric 1D law from its density alone
(the continuity equation [2] integrated in ``x``), an independent route to the Kac velocity
[41]; :func:`mass_outside` measures how much of a density lies outside an interval (the
support statement of Prop 11 for the PDE solution).

:func:`heat_density` is the density of ``X_0 + sigma W(t)``, the diffusion limit of the
telegraph density for ``sigma^2 = c^2/a`` (Thm 9, Remark 10).

Units: ``t`` in time, ``x`` in space, ``a`` in 1/time, ``c`` in space/time, densities per
unit of ``x``. Results follow the dtype and device of the grid ``x``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from .._checks import check_not_nan, nonnegative_time, positive_int, positive_scalar, uniform_grid
from .kac import _WINDOW_SIGMAS, _gauss_legendre, kac_density

__all__ = [
    "solve_telegraph",
    "convolved_density",
    "heat_density",
    "kac_cone_quadrature",
    "l1_distance",
    "l2_distance",
    "GaussianMixture1D",
    "continuity_residual",
    "SymmetricFlux",
    "symmetric_flux_1d",
    "mass_outside",
]

Density = Callable[[torch.Tensor], torch.Tensor]

# Nodes per panel of the composite Gauss-Legendre rule: high enough order for smooth
# integrands, panels small enough that a narrow f0 is still resolved.
_PANEL_NODES = 16
# Quadrature work is split so that one block holds about this many numbers.
_BLOCK_ELEMENTS = 1 << 22
# Heat kernel integrated over |xi| <= this many standard deviations (tail mass < 1e-23).
_HEAT_SIGMAS = 10.0
#: Most time steps :func:`solve_telegraph` takes (the notebooks need about a thousand: t = 4
#: at dx = 0.005); a request for more, e.g. a final time of 1e6 on a fine grid, is refused
#: with the number of steps it would take instead of running for hours.
MAX_STEPS = 10**6


# ---------------------------------------------------------------------------- validation
def _evaluate(f0: Density, points: torch.Tensor, name: str = "f0") -> torch.Tensor:
    """Call the density ``f0`` and check that it returned finite values of the right shape."""
    if not callable(f0):
        raise ValueError(f"{name} must be a callable returning density values")
    values = torch.as_tensor(f0(points), dtype=points.dtype, device=points.device)
    if values.shape != points.shape:
        raise ValueError(
            f"{name} must return values of the shape of its input {tuple(points.shape)}, "
            f"got {tuple(values.shape)}"
        )
    if not bool(torch.isfinite(values).all()):
        raise ValueError(f"{name} returned non-finite values")
    return values


# ---------------------------------------------------------------------------- distances
def l1_distance(u: torch.Tensor, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``integral |u - v| dx`` on the uniform grid ``x`` (trapezoid rule); a 0-dim tensor."""
    x, _ = uniform_grid(x)
    if u.shape[-1] != x.numel() or v.shape[-1] != x.numel():
        raise ValueError("u and v must have the grid size of x in their last dimension")
    return torch.trapezoid((u - v).abs(), x)


def l2_distance(u: torch.Tensor, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(integral (u - v)^2 dx)^(1/2)`` on the uniform grid ``x`` (trapezoid rule)."""
    x, _ = uniform_grid(x)
    if u.shape[-1] != x.numel() or v.shape[-1] != x.numel():
        raise ValueError("u and v must have the grid size of x in their last dimension")
    return torch.sqrt(torch.trapezoid((u - v) ** 2, x))


# ---------------------------------------------------------------------------- PDE solver
def solve_telegraph(
    f0_values: torch.Tensor,
    x: torch.Tensor,
    t_final: float,
    a: float,
    c: float,
    n_steps: int | None = None,
    cfl: float = 0.9,
    times: Sequence[float] | torch.Tensor | None = None,
):
    """Finite-difference solution of the telegrapher's equation [20-22] at ``t_final``.

    Centred (leapfrog) differences in time and space, with the damping term centred too:

        u^{n+1} (1 + a dt) = 2 u^n - (1 - a dt) u^{n-1} + (c dt / dx)^2 D2 u^n,

    ``D2 u_j = u_{j+1} - 2 u_j + u_{j-1}``; the first step uses ``du/dt(0) = 0`` (a ghost
    level ``u^{-1} = u^1``): ``u^1 = u^0 + (c dt)^2 / (2 dx^2) D2 u^0``. The scheme is second
    order in ``dt`` and ``dx`` and stable for ``c dt / dx <= 1`` (the two amplification
    factors have product ``(1 - a dt)/(1 + a dt)``, of modulus < 1). Values at the two ends
    of the grid are held at 0, so the caller picks a grid that the solution does not reach:
    the support grows by ``c t`` on each side (Prop 11). While it does not reach the ends,
    the discrete mass ``sum_j u_j dx`` is conserved exactly (up to round-off).

    Parameters
    ----------
    f0_values : tensor, shape (N,)
        Initial density ``f0`` on the grid (per unit of ``x``).
    x : tensor, shape (N,)
        Uniform, increasing grid; float64 is recommended. Sets dtype and device of the result.
    t_final : float
        Final time, >= 0.
    a, c : float
        Switching rate (1/time) and speed (space/time), both > 0.
    n_steps : int, optional
        Number of time steps; by default the fewest with ``c dt / dx <= cfl`` and
        ``a dt <= 1/2`` (the damping time ``1/a`` resolved). At most :data:`MAX_STEPS`
        (``ValueError`` otherwise: a shorter ``t_final`` or a coarser grid).
    cfl : float
        Target Courant number ``c dt / dx`` in (0, 1] when ``n_steps`` is not given.
    times : sequence of float, optional
        Times in ``[0, t_final]`` at which to also return the solution (linear
        interpolation between the two neighbouring time levels, an ``O(dt^2)`` error like
        the scheme's own).

    Returns
    -------
    ``u(t_final, x)`` of shape (N,), or, if ``times`` is given, the pair
    ``(u(t_final, x), snapshots)`` with ``snapshots`` of shape ``(len(times), N)``.
    """
    x, dx = uniform_grid(x)
    a = positive_scalar("a", a)
    c = positive_scalar("c", c)
    t_final = nonnegative_time(t_final, "t_final")
    cfl = positive_scalar("cfl", cfl)
    if cfl > 1.0:
        raise ValueError(f"cfl must be in (0, 1] for stability, got {cfl!r}")
    if not isinstance(f0_values, torch.Tensor):
        f0_values = torch.as_tensor(f0_values)
    if f0_values.shape != x.shape:
        raise ValueError(
            f"f0_values must have the shape of x {tuple(x.shape)}, got {tuple(f0_values.shape)}"
        )
    u0 = f0_values.to(dtype=x.dtype, device=x.device)
    if not bool(torch.isfinite(u0).all()):
        raise ValueError("f0_values must be finite")
    if n_steps is None:
        # a dt <= 1/2 as well: stability does not need it, but for a dt > 1 the scheme
        # carries a weakly damped spurious mode oscillating in sign from step to step.
        need = max(c * t_final / (cfl * dx), 2.0 * a * t_final)  # may be inf
        if need > MAX_STEPS:
            raise _too_many_steps(f"{need:.3g}", t_final, dx)
        n_steps = max(1, math.ceil(c * t_final / (cfl * dx)), math.ceil(2.0 * a * t_final))
    else:
        n_steps = positive_int("n_steps", n_steps)
    if n_steps > MAX_STEPS:
        raise _too_many_steps(f"{n_steps:,}", t_final, dx)
    dt = t_final / n_steps
    courant = c * dt / dx
    if courant > 1.0 + 1e-12:
        raise ValueError(
            f"n_steps={n_steps} violates the CFL condition: c dt / dx = {courant:.4g} > 1"
        )
    requests = _requested_times(times, t_final)

    lam2 = courant**2
    snapshots = torch.empty(len(requests), x.numel(), dtype=x.dtype, device=x.device)
    pending = sorted(range(len(requests)), key=lambda i: requests[i])
    done = 0
    while done < len(pending) and requests[pending[done]] <= 0.0:
        snapshots[pending[done]] = u0
        done += 1
    if t_final == 0.0:
        snapshots[pending[done:]] = u0
        return u0.clone() if times is None else (u0.clone(), snapshots)

    prev = u0.clone()
    cur = u0.clone()
    cur[1:-1] = u0[1:-1] + 0.5 * lam2 * _second_difference(u0)
    cur[0] = cur[-1] = 0.0
    damp_minus, damp_plus = 1.0 - a * dt, 1.0 + a * dt
    for n in range(1, n_steps + 1):
        # Here prev = u^{n-1}, cur = u^n; fill requests in (t_{n-1}, t_n].
        t_hi = n * dt if n < n_steps else t_final
        while done < len(pending) and requests[pending[done]] <= t_hi:
            w = (requests[pending[done]] - (n - 1) * dt) / dt
            snapshots[pending[done]] = (1.0 - w) * prev + w * cur
            done += 1
        if n == n_steps:
            break
        nxt = torch.zeros_like(cur)
        nxt[1:-1] = (
            2.0 * cur[1:-1] - damp_minus * prev[1:-1] + lam2 * _second_difference(cur)
        ) / damp_plus
        prev, cur = cur, nxt
    return cur if times is None else (cur, snapshots)


def _too_many_steps(steps: str, t_final: float, dx: float) -> ValueError:
    return ValueError(
        f"solve_telegraph would take {steps} time steps to t_final={t_final:g} on a grid "
        f"step dx={dx:g}, more than MAX_STEPS={MAX_STEPS:,}: ask for a shorter t_final or a "
        "coarser grid"
    )


def _second_difference(u: torch.Tensor) -> torch.Tensor:
    """``u_{j+1} - 2 u_j + u_{j-1}`` at the interior points."""
    return u[2:] - 2.0 * u[1:-1] + u[:-2]


def _requested_times(times, t_final: float) -> list[float]:
    if times is None:
        return []
    try:
        tt = torch.as_tensor(times, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"times must be a 1D sequence of numbers, got {times!r}") from None
    if tt.ndim > 1:
        raise ValueError("times must be one-dimensional")
    tt = tt.reshape(-1)
    if tt.numel() and not bool(torch.isfinite(tt).all()):
        raise ValueError("times must be finite")
    if tt.numel() and (float(tt.min()) < 0.0 or float(tt.max()) > t_final):
        raise ValueError(f"times must lie in [0, t_final] = [0, {t_final:g}]")
    return [float(v) for v in tt]


# ---------------------------------------------------------------------------- quadrature
def _composite_gauss_legendre(
    lo: torch.Tensor, hi: torch.Tensor, n_nodes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Composite Gauss-Legendre rule on ``[lo, hi]`` (batched over the shape of ``lo``).

    ``n_nodes`` is rounded up to a multiple of the panel size. Returns nodes and weights
    of shape ``lo.shape + (n,)`` in the dtype and device of ``lo``.
    """
    ref_nodes, ref_weights = _gauss_legendre(_PANEL_NODES, lo.device)
    ref_nodes = ref_nodes.to(lo.dtype)
    ref_weights = ref_weights.to(lo.dtype)
    n_panels = max(1, math.ceil(n_nodes / _PANEL_NODES))
    edges = torch.linspace(0.0, 1.0, n_panels + 1, dtype=lo.dtype, device=lo.device)
    mid = (edges[1:] + edges[:-1]) / 2
    half = (edges[1:] - edges[:-1]) / 2
    unit_nodes = (mid[:, None] + half[:, None] * ref_nodes[None, :]).reshape(-1)
    unit_weights = (half[:, None] * ref_weights[None, :]).reshape(-1)
    width = (hi - lo).unsqueeze(-1)
    return lo.unsqueeze(-1) + width * unit_nodes, width * unit_weights


def kac_cone_quadrature(
    t: float, a: float, c: float, n_quad: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes ``y_k`` in ``(-c t, c t)`` and weights ``w_k`` with ``sum w_k g(y_k)`` approximating
    ``integral g(y) u~(t, y) dy`` for smooth ``g`` (continuous part of the law of ``K(t)``).

    Uses ``y = c t sin(theta)``: then ``u~(t, y) dy = h(theta) dtheta`` with ``h`` smooth on
    ``[-pi/2, pi/2]`` (see ``kac._continuous_cdf64``), obtained here as
    ``kac_density(t, y) * c t cos(theta)``. For large ``a t``, ``h`` is concentrated in a
    window of half-width ``~12 / sqrt(a t)`` around 0 (mass outside below ``exp(-72)``), to
    which the rule is restricted, so accuracy does not degrade as ``a t`` grows. The weights
    sum to ``1 - exp(-a t)`` up to quadrature error. Unchecked (internal) helper.
    """
    at = a * t
    half_width = math.pi / 2 if at <= 0 else min(_WINDOW_SIGMAS / math.sqrt(at), math.pi / 2)
    lo = torch.tensor(-half_width, dtype=dtype, device=device)
    theta, w_theta = _composite_gauss_legendre(lo, -lo, n_quad)
    ct = c * t
    y = ct * torch.sin(theta)
    tt = torch.full_like(y, t)
    h = kac_density(tt, y, a, c) * (ct * torch.cos(theta))
    return y, w_theta * h


# ---------------------------------------------------------------------------- densities
def convolved_density(
    f0: Density, x: torch.Tensor, t: float, a: float, c: float, n_quad: int = 1024
) -> torch.Tensor:
    """Density of ``X_t = X_0 + K(t)`` with ``X_0 ~ f0`` independent of ``K`` [27].

    By Thm 1 / Prop 5 this is the solution ``u(t, x)`` of the telegrapher's equation with
    ``u(0) = f0``, ``du/dt(0) = 0``. With the law of ``K(t)`` [30-31],

        u(t, x) = exp(-a t)/2 (f0(x - c t) + f0(x + c t))
                  + integral_{-ct}^{ct} f0(x - y) u~(t, y) dy.

    The integral uses the angle substitution of :func:`kac_cone_quadrature` and a
    composite Gauss-Legendre rule with about ``n_quad`` nodes; it is accurate for any
    ``a t`` provided ``f0`` varies slowly on the node spacing (about ``c t pi / n_quad``
    in ``y`` for small ``a t``, ``24 c sqrt(t/a) / n_quad`` for large ``a t``): raise
    ``n_quad`` for narrow ``f0``.

    Parameters
    ----------
    f0 : callable
        ``f0(points)`` returns the initial density at a tensor of points (same shape).
    x : tensor, any shape
        Points where the density is evaluated; sets dtype and device.
    t : float
        Time, >= 0.
    a, c : float
        Switching rate and speed, > 0.
    n_quad : int
        Number of quadrature nodes for the continuous part.

    Returns
    -------
    Tensor of the shape of ``x``: density per unit of ``x``.
    """
    x = _points(x)
    t = nonnegative_time(t)
    a = positive_scalar("a", a)
    c = positive_scalar("c", c)
    n_quad = positive_int("n_quad", n_quad)
    if t == 0.0:
        return _evaluate(f0, x)
    ct = c * t
    atoms = 0.5 * math.exp(-a * t) * (_evaluate(f0, x - ct) + _evaluate(f0, x + ct))
    y, w = kac_cone_quadrature(t, a, c, n_quad, x.dtype, x.device)
    return atoms + _quadrature_convolution(f0, x, y, w)


def heat_density(
    f0: Density, x: torch.Tensor, t: float, sigma: float, n_quad: int = 1024
) -> torch.Tensor:
    """Density of ``X_0 + sigma W(t)`` with ``X_0 ~ f0``, ``W`` a standard Brownian motion.

    ``h(t, x) = integral f0(x - sigma sqrt(t) xi) phi(xi) d xi`` with ``phi`` the standard
    normal density, by a composite Gauss-Legendre rule on ``|xi| <= 10`` (``n_quad`` nodes).
    It solves ``dh/dt = (sigma^2 / 2) d2h/dx2``, the diffusion limit of the telegrapher's
    equation for ``sigma^2 = c^2 / a`` (Thm 9, Remark 10). Shapes and units as in
    :func:`convolved_density`.
    """
    x = _points(x)
    t = nonnegative_time(t)
    sigma = positive_scalar("sigma", sigma)
    n_quad = positive_int("n_quad", n_quad)
    if t == 0.0:
        return _evaluate(f0, x)
    lo = torch.tensor(-_HEAT_SIGMAS, dtype=x.dtype, device=x.device)
    xi, w = _composite_gauss_legendre(lo, -lo, n_quad)
    w = w * torch.exp(-0.5 * xi**2) / math.sqrt(2.0 * math.pi)
    return _quadrature_convolution(f0, x, sigma * math.sqrt(t) * xi, w)


def _points(x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x, dtype=torch.get_default_dtype())
    if not x.dtype.is_floating_point:
        x = x.to(torch.get_default_dtype())
    check_not_nan(x, "x")
    return x


def _quadrature_convolution(
    f0: Density, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor
) -> torch.Tensor:
    """``sum_k w_k f0(x - y_k)`` for every entry of ``x``, in blocks to bound memory."""
    flat = x.reshape(-1)
    out = torch.empty_like(flat)
    rows = max(1, _BLOCK_ELEMENTS // y.numel())
    for start in range(0, flat.numel(), rows):
        block = flat[start : start + rows]
        vals = _evaluate(f0, block[:, None] - y[None, :])
        out[start : start + rows] = vals @ w
    return out.reshape(x.shape)


# ---------------------------------------------------------------------------- initial laws
class GaussianMixture1D:
    """A mixture of 1D Gaussians: a smooth, non-Gaussian initial density ``f0``.

    ``f0(x) = sum_k w_k N(x; m_k, s_k^2)`` with weights ``w_k > 0`` summing to 1 (they are
    normalised), means ``m_k`` and standard deviations ``s_k > 0`` (units of ``x``).
    Calling the object evaluates the density (per unit of ``x``, elementwise, any shape), so
    it can be passed as ``f0`` to :func:`convolved_density` and :func:`heat_density`.
    """

    def __init__(self, weights: Sequence[float], means: Sequence[float], stds: Sequence[float]):
        w = [float(v) for v in weights]
        if not (len(w) == len(means) == len(stds)) or not w:
            raise ValueError("weights, means and stds must be non-empty and of equal length")
        if any(not math.isfinite(v) or v <= 0 for v in w):
            raise ValueError("weights must be finite and > 0")
        total = sum(w)
        self.weights = [v / total for v in w]
        self.means = [float(m) for m in means]
        if any(not math.isfinite(m) for m in self.means):
            raise ValueError("means must be finite")
        self.stds = [positive_scalar("std", s) for s in stds]

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{w:.3g} N({m:g}, {s:g}^2)"
            for w, m, s in zip(self.weights, self.means, self.stds, strict=True)
        )
        return f"GaussianMixture1D({parts})"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = _points(x)
        out = torch.zeros_like(x)
        for w, m, s in zip(self.weights, self.means, self.stds, strict=True):
            out = out + (w / (s * math.sqrt(2.0 * math.pi))) * torch.exp(-0.5 * ((x - m) / s) ** 2)
        return out

    @property
    def mean(self) -> float:
        """``E X_0 = sum_k w_k m_k``."""
        return sum(w * m for w, m in zip(self.weights, self.means, strict=True))

    @property
    def variance(self) -> float:
        """``Var X_0 = sum_k w_k (s_k^2 + m_k^2) - (E X_0)^2``."""
        second = sum(
            w * (s * s + m * m) for w, m, s in zip(self.weights, self.means, self.stds, strict=True)
        )
        return second - self.mean**2

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """``n`` i.i.d. draws, shape ``(n,)``: a component ``k ~ w``, then ``N(m_k, s_k^2)``."""
        n = positive_int("n", n)
        device = torch.device(device) if device is not None else torch.device("cpu")
        w = torch.tensor(self.weights, dtype=torch.float64, device=device)
        k = torch.multinomial(w, n, replacement=True, generator=generator)
        m = torch.tensor(self.means, dtype=dtype, device=device)[k]
        s = torch.tensor(self.stds, dtype=dtype, device=device)[k]
        z = torch.randn(n, dtype=dtype, device=device, generator=generator)
        return m + s * z


# ---------------------------------------------------------------------------- continuity eq.
def continuity_residual(
    density: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    t: torch.Tensor,
    x: torch.Tensor,
    h_t: float,
    h_x: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Residual of the continuity equation ``d/dt p + d/dx (p v) = 0`` [2], [41] by
    central finite differences.

    ``density(t, x)`` and ``velocity(t, x)`` are evaluated at ``(t +- h_t, x)`` and
    ``(t, x +- h_x)``; with ``D_t p = (p(t+h_t) - p(t-h_t)) / (2 h_t)`` and
    ``D_x (p v) = (p v (x+h_x) - p v (x-h_x)) / (2 h_x)`` the function returns
    ``(D_t p + D_x (p v), D_t p, D_x (p v))``, each of the broadcast shape of ``t`` and
    ``x`` (units: density per unit time). For a pair that solves the equation the residual
    is the truncation error ``O(h_t^2 + h_x^2)`` (plus round-off ``~ eps / h``). The caller
    keeps the stencil inside the region where both functions are smooth (for the Kac law:
    ``|x| + h_x < c (t - h_t)``, the open light cone).
    """
    if not isinstance(t, torch.Tensor) or not isinstance(x, torch.Tensor):
        raise ValueError("t and x must be tensors")
    h_t = positive_scalar("h_t", h_t)
    h_x = positive_scalar("h_x", h_x)
    t, x = torch.broadcast_tensors(t, x)
    if bool((t - h_t < 0).any()):
        raise ValueError("t - h_t must be >= 0 everywhere")
    d_t = (density(t + h_t, x) - density(t - h_t, x)) / (2.0 * h_t)

    def flux(xx: torch.Tensor) -> torch.Tensor:
        return density(t, xx) * velocity(t, xx)

    d_x = (flux(x + h_x) - flux(x - h_x)) / (2.0 * h_x)
    return d_t + d_x, d_t, d_x


# ---------------------------------------------------------------------------- flux from a law
class SymmetricFlux(NamedTuple):
    """Result of :func:`symmetric_flux_1d`; tensors of shape ``(n,)`` on nodes in ``(0, L(t))``."""

    #: Nodes ``x_k = L(t) xi_k``, ``0 < xi_k < 1`` (units of ``x``).
    x: torch.Tensor
    #: Gauss-Legendre weights: ``sum_k w_k g(x_k)`` approximates ``integral_0^L g dx``.
    weights: torch.Tensor
    #: The density at the nodes (per unit of ``x``).
    density: torch.Tensor
    #: The flux ``J(t, x_k)`` (probability per unit time).
    flux: torch.Tensor
    #: ``J / density`` (space/time); 0 where the density underflows.
    velocity: torch.Tensor


def symmetric_flux_1d(
    density: Callable[[float, torch.Tensor], torch.Tensor],
    t: float,
    half_width: Callable[[float], float],
    outer_mass: Callable[[float], float] | None = None,
    n_nodes: int = 128,
    n_sub: int = 64,
    rel_step: float = 1e-4,
) -> SymmetricFlux:
    """Flux and velocity of a symmetric 1D law computed from its density only, via [2].

    ``density(t, x)`` is the density (continuous part) of a law that is symmetric about 0,
    ``half_width(t) = L(t)`` a smooth frame (for the Kac law the light cone ``c t``, for a
    law with unbounded support a multiple of its spread), and ``outer_mass(t)`` the mass in
    ``[L(t), inf)`` (for the Kac law the atom ``exp(-a t)/2`` at ``c t``; default 0). Nothing
    else is used: no velocity formula.

    In 1D the continuity equation ``du/dt + dJ/dx = 0`` fixes ``J`` up to a constant, and
    ``J(t, 0) = 0`` by symmetry. Following the moving point ``x = L(t) xi`` (fixed ``xi``),

        J(t, x) = L'(t) xi u(t, x) - d/dt H(t, xi) = L'(t) xi u(t, x) + d/dt T(t, xi),

    with ``H`` the mass in ``[0, x]`` and ``T`` the mass in ``[x, inf)`` (``T`` includes
    ``outer_mass``). Each node uses the smaller of ``H`` and ``T``, so round-off in the
    time difference stays small relative to the flux also where the density is tiny. The
    masses are composite Gauss-Legendre integrals in ``xi`` (``n_sub`` nodes), ``d/dt`` is
    a centred difference with step ``rel_step * t`` (error ``O(rel_step^2)``), the nodes
    ``xi_k`` a composite Gauss-Legendre rule on ``(0, 1)`` with about ``n_nodes`` points.
    The density must be smooth in ``x`` on ``[0, L(t)]`` and in ``t`` (the Kac law ``u~`` is:
    it is an entire function of ``c^2 t^2 - x^2``). ``t > 0``; float64 throughout.
    """
    t = positive_scalar("t", t)
    n_nodes = positive_int("n_nodes", n_nodes)
    n_sub = positive_int("n_sub", n_sub)
    rel_step = positive_scalar("rel_step", rel_step)
    if rel_step >= 0.5:
        raise ValueError(f"rel_step must be < 0.5, got {rel_step!r}")
    outer = outer_mass if outer_mass is not None else (lambda _t: 0.0)
    f64 = torch.float64
    zero, one = torch.tensor(0.0, dtype=f64), torch.tensor(1.0, dtype=f64)
    xi, w_xi = _composite_gauss_legendre(zero, one, n_nodes)
    s, w_s = _composite_gauss_legendre(zero, one, n_sub)

    def masses(tt: float) -> tuple[torch.Tensor, torch.Tensor]:
        big_l = positive_scalar("half_width(t)", half_width(tt))
        head_pts = big_l * xi[:, None] * s[None, :]
        head = (density(tt, head_pts) * w_s).sum(1) * big_l * xi
        tail_pts = big_l * (xi[:, None] + (1.0 - xi[:, None]) * s[None, :])
        tail = (density(tt, tail_pts) * w_s).sum(1) * big_l * (1.0 - xi) + float(outer(tt))
        return head, tail

    h = rel_step * t
    head_p, tail_p = masses(t + h)
    head_m, tail_m = masses(t - h)
    head_0, tail_0 = masses(t)
    big_l = half_width(t)
    dl = (half_width(t + h) - half_width(t - h)) / (2.0 * h)
    x = big_l * xi
    u = density(t, x)
    drift = dl * xi * u
    flux = torch.where(
        head_0 <= tail_0,
        drift - (head_p - head_m) / (2.0 * h),
        drift + (tail_p - tail_m) / (2.0 * h),
    )
    ok = u > 1e-300
    velocity = torch.where(ok, flux / torch.where(ok, u, torch.ones_like(u)), torch.zeros_like(u))
    return SymmetricFlux(x, big_l * w_xi, u, flux, velocity)


def mass_outside(u: torch.Tensor, x: torch.Tensor, lo: float, hi: float) -> float:
    """``integral |u| dx`` over the grid points with ``x < lo`` or ``x > hi`` (trapezoid rule).

    ``u`` has the shape ``(..., N)`` of values on the uniform grid ``x``; the result is the
    largest value over the leading dimensions (dimensionless for a density). The masked
    integrand jumps at ``lo`` and ``hi``, so the error is ``O(dx)`` times the value there
    (negligible when ``u`` is small at the interval's ends, as it is here). Used to check
    that a solution of the telegrapher's equation stays in ``supp f0 + [-c t, c t]`` (Prop 11,
    finite propagation speed).
    """
    x, _ = uniform_grid(x)
    if u.shape[-1] != x.numel():
        raise ValueError("u must have the grid size of x in its last dimension")
    outside = (x < lo) | (x > hi)
    vals = torch.trapezoid(torch.where(outside, u.abs(), torch.zeros_like(u)), x, dim=-1)
    return float(vals.max())
