"""Flows of measures and the size of their velocity fields (paper Section 3).

A flow ``mu_t`` with velocity ``v_t`` solves the continuity equation
``d/dt mu_t + div(mu_t v_t) = 0`` [2]; learning it is well posed when
``||v_t||^2_{L2(mu_t)} = E_{X ~ mu_t} |v_t(X)|^2`` is integrable in ``t`` [3]. This module
implements the flows of the table of the paper's Section 3 with their velocities and this norm:

* :class:`CouplingFlow` (rectified flow towards ``delta_0``): norm ``d`` [6-7];
* :class:`DiffusionFlow` (heat flow from ``delta_0``): norm ``d sigma^2 / (4 t)`` [8-12];
* :func:`boltzmann_1d` (Boltzmann linear interpolation, 1D grid) [13-16];
* :func:`poisson_field`, :func:`poisson_velocity`, :func:`poisson_velocity_norm_sq_1d`
  (Poisson flow / PFGM) [17-19];
* :class:`KacFlow` (componentwise Kac process, Section 5): norm ``<= d c^2`` (Prop 11);
* :class:`BoltzmannFlow1D`, :class:`PoissonFlow`: the same two flows in the sampling
  interface below, and :func:`mixture_potential_1d` for bimodal examples;
* :func:`log_time_integral` (energy ``integral ||v_t||^2 dt`` of [3] near a singular end)
  and :func:`growth_rate` (exponential fits);
* independent measurements for the checks of notebook 01: :func:`mc_energy` (the energy of
  one time window by Monte Carlo), :func:`path_lipschitz_lower_bound` (a lower bound of
  ``Lip(v_t)`` from coupled sample paths, for condition [4]), :func:`law_velocity` (the
  velocity and its norm from a symmetric law's density alone, through the continuity
  equation [2]) and :func:`kac_path_projection` (``E[v(t, K) dK/dt]`` on the random-walk
  paths of App. A.1, which equals ``||v_t||^2`` because ``v = E[dK/dt | K]`` [94]); with the
  verdict helpers :func:`lipschitz_divergence_verdict` and :func:`energy_divergence_verdict`.

The flow classes share a small interface: ``sample(t, n, generator=None, dtype=...,
device=...)`` returns ``n`` draws of ``mu_t`` with shape ``(n, dim)``;
``velocity(t, x)`` evaluates ``v_t`` at ``x`` of shape ``(..., dim)``;
``velocity_norm_sq(t)`` gives ``||v_t||^2_{L2(mu_t)}`` without sampling.
:func:`mc_velocity_norm_sq` estimates the norm by Monte Carlo for any object with
``sample`` and ``velocity``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from scipy.optimize import minimize_scalar

from .._checks import positive_int, positive_scalar, uniform_grid
from .kac import Kac
from .telegraph import kac_cone_quadrature, symmetric_flux_1d

__all__ = [
    "CouplingFlow",
    "DiffusionFlow",
    "KacFlow",
    "MCEstimate",
    "mc_velocity_norm_sq",
    "BoltzmannState",
    "boltzmann_1d",
    "unit_sphere_area",
    "poisson_field",
    "poisson_density",
    "poisson_velocity",
    "poisson_velocity_norm_sq_1d",
    "log_time_integral",
    "growth_rate",
    "mixture_potential_1d",
    "BoltzmannFlow1D",
    "PoissonFlow",
    "mc_energy",
    "path_lipschitz_lower_bound",
    "lipschitz_divergence_verdict",
    "energy_divergence_verdict",
    "LawVelocity",
    "law_velocity",
    "kac_path_projection",
]

# Poisson-field work is split so that one block holds about this many numbers.
_BLOCK_ELEMENTS = 1 << 22


# ---------------------------------------------------------------------------- validation
def _time_in(t, name: str, lo: float, hi: float, lo_open: bool, hi_open: bool) -> float:
    """``t`` as a float, or ``ValueError`` naming it unless it lies in the given interval."""
    try:
        v = float(t)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {t!r}") from None
    below = v <= lo if lo_open else v < lo
    above = v >= hi if hi_open else v > hi
    if not math.isfinite(v) or below or above:
        left, right = "(" if lo_open else "[", ")" if hi_open else "]"
        raise ValueError(f"{name} must lie in {left}{lo:g}, {hi:g}{right}, got {t!r}")
    return v


def _as_float_tensor(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x, dtype=torch.get_default_dtype())
    if not x.dtype.is_floating_point:
        x = x.to(torch.get_default_dtype())
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return x


def _check_points(x: torch.Tensor, dim: int, name: str = "x") -> torch.Tensor:
    x = _as_float_tensor(x, name)
    if x.ndim == 0 or x.shape[-1] != dim:
        raise ValueError(f"{name} must have shape (..., {dim}), got {tuple(x.shape)}")
    return x


# ---------------------------------------------------------------------------- Monte Carlo
class MCEstimate(NamedTuple):
    """Monte-Carlo mean and its standard error (same units as the estimated quantity)."""

    mean: float
    stderr: float


def mc_velocity_norm_sq(
    flow,
    t: float,
    n: int,
    generator: torch.Generator | None = None,
    radius: float | None = None,
    device: torch.device | str | None = None,
) -> MCEstimate:
    """Monte-Carlo estimate of ``||v_t||^2_{L2(mu_t)} = E |v_t(X_t)|^2`` from ``n`` draws.

    ``flow`` is any object with ``sample(t, n, generator=...) -> (n, d)`` and
    ``velocity(t, x) -> (n, d)``. Returns the sample mean of ``|v_t(X)|^2`` (squared
    space/time) and its standard error ``std / sqrt(n)``.

    With ``radius`` the estimate is of the truncated norm ``E[|v_t(X)|^2 1{|X|_inf <= R}]``
    (the cube ``[-R, R]^d``), the quantity of :func:`poisson_velocity_norm_sq_1d` for flows
    whose full norm is infinite. ``device`` is passed on to ``flow.sample`` when given (it
    must match the generator's device).
    """
    n = positive_int("n", n)
    if n < 2:
        raise ValueError(f"n must be >= 2 to estimate a standard error, got {n}")
    if not (hasattr(flow, "sample") and hasattr(flow, "velocity")):
        raise ValueError("flow must provide sample(t, n, generator=...) and velocity(t, x)")
    if device is None:
        x = flow.sample(t, n, generator=generator)
    else:
        x = flow.sample(t, n, generator=generator, device=device)
    sq = (flow.velocity(t, x) ** 2).reshape(n, -1).sum(dim=1)
    if radius is not None:
        radius = positive_scalar("radius", radius)
        inside = x.reshape(n, -1).abs().amax(dim=1) <= radius
        sq = torch.where(inside, sq, torch.zeros_like(sq))
    return MCEstimate(float(sq.mean()), float(sq.std() / math.sqrt(n)))


# ---------------------------------------------------------------------------- coupling
class CouplingFlow:
    """Coupling / rectified flow from ``N(0, I_d)`` to ``delta_0`` [6-7].

    ``X_t = (1 - t) Z``, ``Z ~ N(0, I_d)``, ``t in [0, 1]``; velocity
    ``v_t(x) = -x / (1 - t)`` for ``t < 1``, so ``|v_t(X_t)|^2 = |Z|^2`` and
    ``||v_t||^2 = d`` for all ``t``: the energy condition [3] holds, but
    ``Lip(v_t) = 1/(1-t)`` is not integrable at ``t = 1``, so the ODE condition [4] fails.
    """

    def __init__(self, dim: int):
        self.dim = positive_int("dim", dim)

    def __repr__(self) -> str:
        return f"CouplingFlow(dim={self.dim})"

    def sample(
        self,
        t: float,
        n: int,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """``n`` draws of ``X_t = (1 - t) Z``: shape ``(n, dim)``; ``t in [0, 1]``."""
        t = _time_in(t, "t", 0.0, 1.0, False, False)
        n = positive_int("n", n)
        z = torch.randn(n, self.dim, generator=generator, dtype=dtype, device=device)
        return (1.0 - t) * z

    def paths(
        self,
        times,
        n: int,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """``n`` coupled paths ``X_t = (1 - t) Z`` observed at ``times`` (each in ``[0, 1]``).

        One ``Z ~ N(0, I_d)`` per path, so row ``i`` is ``X_{times[i]}`` of the same particles
        (the coupling of [6-7]). Shape ``(len(times), n, dim)``.
        """
        ts = [_time_in(t, "times", 0.0, 1.0, False, False) for t in np.atleast_1d(times)]
        n = positive_int("n", n)
        z = torch.randn(n, self.dim, generator=generator, dtype=dtype, device=device)
        scale = 1.0 - torch.tensor(ts, dtype=dtype, device=z.device)
        return scale[:, None, None] * z

    def velocity(self, t: float, x: torch.Tensor) -> torch.Tensor:
        """``v_t(x) = -x / (1 - t)`` for ``t in [0, 1)``; ``x`` of shape ``(..., dim)``."""
        t = _time_in(t, "t", 0.0, 1.0, False, True)
        x = _check_points(x, self.dim)
        return -x / (1.0 - t)

    def velocity_norm_sq(self, t: float) -> float:
        """``||v_t||^2_{L2(mu_t)} = d`` for ``t in [0, 1)`` (paper Section 3)."""
        _time_in(t, "t", 0.0, 1.0, False, True)
        return float(self.dim)

    def lipschitz(self, t: float) -> float:
        """``Lip(v_t) = 1 / (1 - t)`` (1/time) for ``t in [0, 1)``; not integrable at ``t = 1``,
        so the ODE condition [4] fails although the energy [3] is finite."""
        t = _time_in(t, "t", 0.0, 1.0, False, True)
        return 1.0 / (1.0 - t)

    def sup_velocity(self, t: float, radius: float) -> float:
        """``sup_{|x| <= R} |v_t(x)| = R / (1 - t)`` on the ball of radius ``R`` (the sup in [4]
        over a compact set; space/time)."""
        t = _time_in(t, "t", 0.0, 1.0, False, True)
        return positive_scalar("radius", radius) / (1.0 - t)


# ---------------------------------------------------------------------------- diffusion
class DiffusionFlow:
    """Heat flow from ``delta_0``: ``mu_t = N(0, sigma^2 t I_d)`` [8-12].

    The velocity moving it is ``v_t = -(sigma^2/2) grad log p_t``, i.e.
    ``v_t(x) = x / (2 t)`` (independent of ``sigma``), and
    ``||v_t||^2 = E|X_t|^2 / (4 t^2) = d sigma^2 / (4 t)``, whose integral diverges at
    ``t = 0``: the energy condition [3] fails.
    """

    def __init__(self, dim: int, sigma: float = 1.0):
        self.dim = positive_int("dim", dim)
        self.sigma = positive_scalar("sigma", sigma)

    def __repr__(self) -> str:
        return f"DiffusionFlow(dim={self.dim}, sigma={self.sigma:g})"

    def sample(
        self,
        t: float,
        n: int,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """``n`` draws of ``sigma W(t) ~ N(0, sigma^2 t I_d)``: shape ``(n, dim)``; ``t >= 0``."""
        t = _time_in(t, "t", 0.0, math.inf, False, True)
        n = positive_int("n", n)
        z = torch.randn(n, self.dim, generator=generator, dtype=dtype, device=device)
        return self.sigma * math.sqrt(t) * z

    def velocity(self, t: float, x: torch.Tensor) -> torch.Tensor:
        """``v_t(x) = x / (2 t)`` for ``t > 0``; ``x`` of shape ``(..., dim)``."""
        t = _time_in(t, "t", 0.0, math.inf, True, True)
        x = _check_points(x, self.dim)
        return x / (2.0 * t)

    def velocity_norm_sq(self, t: float) -> float:
        """``||v_t||^2_{L2(mu_t)} = d sigma^2 / (4 t)`` for ``t > 0``."""
        t = _time_in(t, "t", 0.0, math.inf, True, True)
        return self.dim * self.sigma**2 / (4.0 * t)

    def lipschitz(self, t: float) -> float:
        """``Lip(v_t) = 1 / (2 t)`` (1/time) for ``t > 0``; not integrable at ``t = 0``."""
        t = _time_in(t, "t", 0.0, math.inf, True, True)
        return 1.0 / (2.0 * t)


# ---------------------------------------------------------------------------- Kac
class KacFlow:
    """Componentwise Kac flow ``mu_t = law(K(t))``, ``K`` with ``dim`` i.i.d. components.

    The velocity is the vector of 1D Kac velocities (Lemma 13 / Thm 14, [41], [88]); since
    ``|v| <= c`` componentwise, ``||v_t||^2 <= d c^2`` for all ``t`` (Prop 11).
    """

    def __init__(self, kac: Kac, dim: int):
        if not isinstance(kac, Kac):
            raise ValueError(f"kac must be a kacnb.Kac instance, got {type(kac).__name__}")
        self.kac = kac
        self.dim = positive_int("dim", dim)

    def __repr__(self) -> str:
        return f"KacFlow({self.kac!r}, dim={self.dim})"

    def sample(
        self,
        t: float,
        n: int,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """``n`` exact draws of ``K(t)`` in ``dim`` dimensions: shape ``(n, dim)``; ``t >= 0``."""
        t = _time_in(t, "t", 0.0, math.inf, False, True)
        n = positive_int("n", n)
        tt = torch.full((n,), t, dtype=dtype, device=device)
        return self.kac.sample(tt, dim=self.dim, generator=generator)

    def velocity(self, t: float, x: torch.Tensor) -> torch.Tensor:
        """``(v(t, x^i))_i`` [41] for ``x`` of shape ``(..., dim)``; ``|v| <= c``."""
        t = _time_in(t, "t", 0.0, math.inf, False, True)
        x = _check_points(x, self.dim)
        return self.kac.velocity(torch.tensor(t, dtype=x.dtype, device=x.device), x)

    def velocity_norm_sq(
        self, t: float, n_quad: int = 1024, dtype: torch.dtype = torch.float64
    ) -> float:
        """``||v_t||^2_{L2(mu_t)} = d (c^2 exp(-a t) + integral v(t, y)^2 u~(t, y) dy)``.

        The atoms at ``+-c t`` (mass ``exp(-a t)``) move with ``+-c``; the integral over
        the light cone uses the quadrature of :func:`kacnb.theory.telegraph.kac_cone_quadrature`.
        At ``t = 0`` the value is the limit ``t -> 0+``, ``d c^2``.
        """
        t = _time_in(t, "t", 0.0, math.inf, False, True)
        n_quad = positive_int("n_quad", n_quad)
        a, c = self.kac.a, self.kac.c
        if t == 0.0:
            return self.dim * c**2
        y, w = kac_cone_quadrature(t, a, c, n_quad, dtype, torch.device("cpu"))
        v = self.kac.velocity(torch.tensor(t, dtype=dtype), y)
        per_component = c**2 * math.exp(-a * t) + float((w * v**2).sum())
        return self.dim * per_component

    def law_velocity(self, t: float, n_nodes: int = 128) -> LawVelocity:
        """Velocity and norm from the law [30-31] alone (:func:`law_velocity`), ``t > 0``.

        No use of the velocity formula [41]: the flux of the continuous part ``u~`` comes
        from the continuity equation, the atoms (mass ``exp(-a t)/2`` each at ``+-c t``) move
        with the cone. ``norm_sq`` is for ``dim`` components (``dim`` times the 1D value);
        ``max_speed`` and ``edge_speed`` are per component.
        """
        t = _time_in(t, "t", 0.0, math.inf, True, True)
        a, c = self.kac.a, self.kac.c

        def density(tt: float, x: torch.Tensor) -> torch.Tensor:
            return self.kac.density(torch.tensor(tt, dtype=x.dtype), x)

        one = law_velocity(
            density, t, lambda tt: c * tt, lambda tt: 0.5 * math.exp(-a * tt), n_nodes=n_nodes
        )
        return one._replace(norm_sq=self.dim * one.norm_sq)


# ---------------------------------------------------------------------------- Boltzmann
class BoltzmannState(NamedTuple):
    """Boltzmann interpolation at one time on a 1D grid (see :func:`boltzmann_1d`).

    ``density``: ``p_t`` on the grid (normalised); ``velocity``: ``v_t`` where ``valid``,
    NaN elsewhere; ``norm_sq``: ``||v_t||^2_{L2(p_t)}`` (0-dim tensor); ``valid``: where
    ``p_t`` exceeds ``rel_floor * max p_t`` and ``v_t = J / p_t`` is meaningful.
    """

    density: torch.Tensor
    velocity: torch.Tensor
    norm_sq: torch.Tensor
    valid: torch.Tensor


Potential = Callable[[torch.Tensor], torch.Tensor] | torch.Tensor


def boltzmann_1d(
    f0: Potential, f1: Potential, x_grid: torch.Tensor, t: float, rel_floor: float = 1e-12
) -> BoltzmannState:
    """Boltzmann linear interpolation ``p_t ∝ exp(-f_t)``, ``f_t = (1-t) f0 + t f1`` [13-16].

    From ``d/dt log p_t = -(g - E_{p_t}[g])`` with ``g = d/dt f_t = f1 - f0`` and the
    continuity equation, the flux ``J = p_t v_t`` in 1D is

        J(x) = integral_{-inf}^{x} p_t(y) (g(y) - E_{p_t}[g]) dy    (paper Section 3),

    computed by a cumulative trapezoid rule on the uniform grid. Because the total of the
    integrand is 0, ``J`` is accumulated from the left below the median of ``p_t`` and from
    the right above it, which keeps its relative accuracy in both tails. The velocity is
    ``v = J / p_t`` where ``p_t > rel_floor * max p_t`` and NaN elsewhere (there ``J`` and
    ``p_t`` are both round-off). The norm ``||v_t||^2 = integral J^2 / p_t dx`` is summed over
    the same region; the neglected part is negligible when the grid covers the mass.

    Parameters
    ----------
    f0, f1 : callable or tensor
        Potentials (dimensionless, defined up to additive constants): callables evaluated
        on the grid, or tensors of values of shape ``(N,)``.
    x_grid : tensor, shape (N,)
        Uniform grid covering the mass of every ``p_t``; sets dtype and device.
    t : float
        Interpolation time in ``[0, 1]``.
    rel_floor : float
        Relative density below which ``v`` is not formed.

    Returns
    -------
    :class:`BoltzmannState` with tensors of shape ``(N,)`` and a 0-dim ``norm_sq``.
    """
    x, _ = uniform_grid(x_grid, "x_grid")
    t = _time_in(t, "t", 0.0, 1.0, False, False)
    rel_floor = positive_scalar("rel_floor", rel_floor)
    v0 = _potential_values(f0, x, "f0")
    v1 = _potential_values(f1, x, "f1")
    f_t = (1.0 - t) * v0 + t * v1
    # Shift by the minimum so that exp does not underflow everywhere.
    p = torch.exp(-(f_t - f_t.min()))
    p = p / torch.trapezoid(p, x)
    g = v1 - v0
    g_centred = g - torch.trapezoid(p * g, x)
    integrand = p * g_centred
    from_left = _cumulative_trapezoid(integrand, x)
    from_right = -_cumulative_trapezoid(integrand.flip(0), x.flip(0).neg()).flip(0)
    cdf = _cumulative_trapezoid(p, x)
    flux = torch.where(cdf <= 0.5, from_left, from_right)
    valid = p > rel_floor * p.max()
    p_safe = torch.where(valid, p, torch.ones_like(p))
    velocity = torch.where(valid, flux / p_safe, torch.full_like(p, math.nan))
    energy = torch.where(valid, flux**2 / p_safe, torch.zeros_like(p))
    return BoltzmannState(p, velocity, torch.trapezoid(energy, x), valid)


def _potential_values(f, x: torch.Tensor, name: str) -> torch.Tensor:
    values = f(x) if callable(f) else f
    values = torch.as_tensor(values, dtype=x.dtype, device=x.device)
    if values.shape != x.shape:
        raise ValueError(f"{name} must give values of shape {tuple(x.shape)}")
    if not bool(torch.isfinite(values).all()):
        raise ValueError(f"{name} must be finite on the grid")
    return values


def _cumulative_trapezoid(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``integral_{x_0}^{x_j} y`` for every ``j`` (starts at 0), trapezoid rule."""
    steps = (y[1:] + y[:-1]) / 2 * torch.diff(x)
    return torch.cat([torch.zeros_like(y[:1]), torch.cumsum(steps, dim=0)])


# ---------------------------------------------------------------------------- Poisson flow
def unit_sphere_area(d: int) -> float:
    """``S_d = 2 pi^{(d+1)/2} / Gamma((d+1)/2)``, area of the unit sphere in ``R^{d+1}``."""
    d = positive_int("d", d)
    return math.exp(math.log(2.0) + 0.5 * (d + 1) * math.log(math.pi) - math.lgamma((d + 1) / 2))


def _poisson_inputs(x, z, data, weights):
    """Validate and broadcast the inputs of the Poisson-field functions."""
    x = _as_float_tensor(x, "x")
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n, d), got {tuple(x.shape)}")
    n, d = x.shape
    z = _as_float_tensor(z, "z").to(dtype=x.dtype, device=x.device)
    if z.ndim == 0:
        z = z.expand(n)
    if z.shape != (n,):
        raise ValueError(f"z must be a scalar or have shape ({n},), got {tuple(z.shape)}")
    data = _as_float_tensor(data, "data").to(dtype=x.dtype, device=x.device)
    if data.ndim == 1 and d == 1:
        data = data[:, None]
    if data.ndim != 2 or data.shape[1] != d or data.shape[0] < 1:
        raise ValueError(f"data must have shape (m, {d}) with m >= 1, got {tuple(data.shape)}")
    m = data.shape[0]
    if weights is None:
        log_w = torch.full((m,), -math.log(m), dtype=x.dtype, device=x.device)
    else:
        w = _as_float_tensor(weights, "weights").to(dtype=x.dtype, device=x.device)
        if w.shape != (m,) or bool((w < 0).any()) or float(w.sum()) <= 0.0:
            raise ValueError(f"weights must be {m} nonnegative numbers with a positive sum")
        log_w = torch.log(w / w.sum())
    return x, z, data, log_w


def _poisson_blocks(x, z, data, log_w):
    """Yield ``(slice, diff, log_coef)`` per block of points: ``diff = x - y_i`` of shape
    ``(b, m, d)`` and ``log_coef = log w_i - ((d+1)/2) log(|x - y_i|^2 + z^2)`` of shape (b, m).
    """
    n, d = x.shape
    rows = max(1, _BLOCK_ELEMENTS // (data.shape[0] * (d + 1)))
    for start in range(0, n, rows):
        sl = slice(start, start + rows)
        diff = x[sl, None, :] - data[None, :, :]
        r2 = (diff**2).sum(-1) + z[sl, None] ** 2
        yield sl, diff, log_w[None, :] - 0.5 * (d + 1) * torch.log(r2)


def poisson_field(x, z, data, weights=None) -> torch.Tensor:
    """Poisson field of the data on the hyperplane ``z = 0`` of ``R^{d+1}`` [17-19].

    ``E(x, z) = (1/S_d) sum_i w_i (x - y_i, z) / |(x - y_i, z)|^{d+1}``, the field of point
    charges ``w_i`` (normalised to sum 1) at ``(y_i, 0)``; ``S_d`` is
    :func:`unit_sphere_area`. By Gauss's law its flux through a closed surface is the charge
    inside; it is divergence free away from the charges.

    Parameters
    ----------
    x : tensor, shape (n, d)
        Positions on the planes.
    z : float or tensor of shape (n,)
        Heights (any sign; the field is odd in ``z``). ``(x, z)`` must avoid the charges.
    data : tensor, shape (m, d) (or (m,) when d = 1)
        Data points ``y_i``.
    weights : tensor of shape (m,), optional
        Nonnegative charges, normalised to sum 1; uniform by default.

    Returns
    -------
    Tensor of shape ``(n, d + 1)``: ``(E_x, E_z)`` in units of ``1/length^d``.
    """
    x, z, data, log_w = _poisson_inputs(x, z, data, weights)
    n, d = x.shape
    log_area = math.log(unit_sphere_area(d))
    out = torch.empty(n, d + 1, dtype=x.dtype, device=x.device)
    for sl, diff, log_coef in _poisson_blocks(x, z, data, log_w):
        coef = torch.exp(log_coef - log_area)
        out[sl, :d] = (coef[:, :, None] * diff).sum(1)
        out[sl, d] = z[sl] * coef.sum(1)
    return out


def poisson_density(x, z, data, weights=None) -> torch.Tensor:
    """Density ``2 E_z(x, z)`` of the measure ``mu_z`` on the plane at height ``z > 0``.

    Half of the unit flux leaves the charges upwards, so ``integral 2 E_z dx = 1``: for one
    point in ``d = 1`` this is the Cauchy density ``z / (pi ((x - y)^2 + z^2))``. Shape
    ``(n,)``, units ``1/length^d``. Arguments as in :func:`poisson_field`.
    """
    z_checked = _positive_heights(z)
    return 2.0 * poisson_field(x, z_checked, data, weights)[:, -1]


def poisson_velocity(x, z, data, weights=None) -> torch.Tensor:
    """Velocity ``dx/dz = E_x / E_z`` moving ``mu_z`` in the "time" ``z > 0``.

    ``div E = 0`` gives ``d/dz (2 E_z) + div_x (2 E_z * E_x / E_z) = 0``, the continuity
    equation [2] of ``mu_z``. Computed as ``(x - sum_i alpha_i y_i) / z`` with
    ``alpha_i ∝ w_i |(x - y_i, z)|^{-(d+1)}`` normalised in log space, which neither
    overflows nor underflows in high dimension. Shape ``(n, d)``; dimensionless (length per
    unit of ``z``). Arguments as in :func:`poisson_field`.
    """
    z = _positive_heights(z)
    x, z, data, log_w = _poisson_inputs(x, z, data, weights)
    out = torch.empty_like(x)
    for sl, _, log_coef in _poisson_blocks(x, z, data, log_w):
        alpha = torch.softmax(log_coef, dim=1)
        out[sl] = (x[sl] - alpha @ data) / z[sl, None]
    return out


def poisson_velocity_norm_sq_1d(z: float, data, x_grid, weights=None) -> torch.Tensor:
    """``integral_{|x| <= R} 2 E_z |E_x / E_z|^2 dx`` for ``d = 1``: the truncated norm
    ``||v_z||^2_{L2(mu_z)}`` over the grid ``x_grid`` (trapezoid rule; ``R`` = grid extent).

    On the whole line this norm is infinite: far from the data ``2 E_z ~ z / (pi x^2)``
    (Cauchy tails) while ``|v| ~ |x| / z``, so the integrand tends to ``1 / (pi z)``. Over a
    window it is finite; for one point at the origin it equals
    ``2R / (pi z) - (2/pi) arctan(R / z)`` and so grows like ``1/z`` as ``z -> 0``, and the
    same happens near any data set (the flow needs a truncation ``z >= z_min``). The grid
    spacing must resolve ``z`` (the scale of ``mu_z`` near each point).

    Parameters
    ----------
    z : float
        Height, > 0.
    data : tensor, shape (m,) or (m, 1)
        Data points on the line.
    x_grid : tensor, shape (N,)
        Uniform grid (the window); sets dtype and device.
    weights : tensor of shape (m,), optional
        Charges, as in :func:`poisson_field`.

    Returns
    -------
    0-dim tensor (squared length per unit of ``z``).
    """
    z = positive_scalar("z", z)
    x, _ = uniform_grid(x_grid, "x_grid")
    field = poisson_field(x[:, None], z, data, weights)
    ex, ez = field[:, 0], field[:, 1]
    return torch.trapezoid(2.0 * ex**2 / ez, x)


def _positive_heights(z):
    if isinstance(z, torch.Tensor):
        if not bool(torch.isfinite(z).all()) or bool((z <= 0).any()):
            raise ValueError("z must be finite and > 0")
        return z
    return positive_scalar("z", z)


# ---------------------------------------------------------------------------- time integrals
def log_time_integral(
    fn: Callable[[float], float], t0: float, t1: float, nodes_per_decade: int = 16
) -> float:
    """``integral_{t0}^{t1} fn(t) dt`` by Gauss-Legendre in ``s = log t`` (one panel per decade).

    In ``s`` the integrand is ``fn(e^s) e^s``, which is constant for ``fn = k / t``: the rule
    is exact for the diffusion energy ``d sigma^2 / (4 t)`` and accurate for integrands that are
    smooth in ``log t`` (Kac, Poisson), however small ``t0``. Used to test the energy
    condition [3]: ``E(eps) = integral_eps^1 ||v_t||^2 dt`` stays bounded as ``eps -> 0`` iff
    the norm is integrable at 0.

    Parameters
    ----------
    fn : callable float -> float
        The integrand, called once per node.
    t0, t1 : float
        ``0 < t0 < t1``.
    nodes_per_decade : int
        Gauss-Legendre nodes per panel; panels span at most one decade of ``t``.

    Returns
    -------
    float (units of ``fn`` times time).
    """
    t0 = positive_scalar("t0", t0)
    t1 = positive_scalar("t1", t1)
    if not t1 > t0:
        raise ValueError(f"t1 must be > t0, got t0={t0!r}, t1={t1!r}")
    nodes_per_decade = positive_int("nodes_per_decade", nodes_per_decade)
    s0, s1 = math.log(t0), math.log(t1)
    n_panels = max(1, math.ceil((s1 - s0) / math.log(10.0) - 1e-12))
    nodes, weights = np.polynomial.legendre.leggauss(nodes_per_decade)
    edges = np.linspace(s0, s1, n_panels + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        half, mid = (hi - lo) / 2, (hi + lo) / 2
        for node, weight in zip(nodes, weights, strict=True):
            t = math.exp(mid + half * node)
            total += half * weight * float(fn(t)) * t
    return total


def growth_rate(x, y) -> tuple[float, float]:
    """Least-squares fit ``log y = rate * x + intercept``; returns ``(rate, intercept)``.

    ``x``, ``y``: 1D sequences of equal length >= 2 with ``y > 0``. ``rate`` is in units of
    ``1/x`` (e.g. the exponential growth rate of the Boltzmann peak norm per unit of mode
    distance).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape or x.size < 2:
        raise ValueError("x and y must be 1D of equal length >= 2")
    if not (np.isfinite(x).all() and np.isfinite(y).all()) or (y <= 0).any():
        raise ValueError("x must be finite and y finite and > 0")
    if np.ptp(x) == 0:
        raise ValueError("x must take at least two distinct values")
    rate, intercept = np.polyfit(x, np.log(y), 1)
    return float(rate), float(intercept)


# ---------------------------------------------------------------------------- Boltzmann flow
_MIXTURE_KINDS = ("gaussian", "laplace")


def mixture_potential_1d(
    centres, weights=None, scale: float = 1.0, kind: str = "gaussian"
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Potential ``f = -log p`` of a 1D mixture ``p = sum_i w_i k((x - mu_i)/s) / s``.

    ``kind="gaussian"``: ``k(u) = exp(-u^2/2) / sqrt(2 pi)``; ``kind="laplace"``:
    ``k(u) = exp(-|u|) / 2``. ``exp(-f)`` is the normalised mixture density, so ``f`` can be
    fed to :func:`boltzmann_1d` / :class:`BoltzmannFlow1D` [13-16]. The valley between two
    modes at distance ``D`` has relative density ``~exp(-D^2/(8 s^2))`` (Gaussian) or
    ``~exp(-D/(2 s))`` (Laplace), which sets how fast the Boltzmann velocity explodes.

    Parameters
    ----------
    centres : sequence of floats, length m
        Mode positions ``mu_i``.
    weights : sequence of m nonnegative floats, optional
        Mixture weights (normalised to sum 1); uniform by default.
    scale : float
        Common scale ``s > 0`` (standard deviation for Gaussian modes).
    kind : {"gaussian", "laplace"}

    Returns
    -------
    Callable mapping a tensor ``x`` to ``f(x)`` of the same shape, dtype and device.
    """
    mu = np.asarray(centres, dtype=np.float64).reshape(-1)
    if mu.size < 1 or not np.isfinite(mu).all():
        raise ValueError("centres must be a nonempty sequence of finite numbers")
    if weights is None:
        w = np.full(mu.size, 1.0 / mu.size)
    else:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if w.shape != mu.shape or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights must be {mu.size} nonnegative numbers with a positive sum")
        w = w / w.sum()
    scale = positive_scalar("scale", scale)
    if kind not in _MIXTURE_KINDS:
        raise ValueError(f"kind must be one of {_MIXTURE_KINDS}, got {kind!r}")
    log_norm = 0.5 * math.log(2 * math.pi) if kind == "gaussian" else math.log(2.0)
    with np.errstate(divide="ignore"):
        log_w = np.log(w)

    def potential(x: torch.Tensor) -> torch.Tensor:
        centres_t = torch.as_tensor(mu, dtype=x.dtype, device=x.device)
        log_w_t = torch.as_tensor(log_w, dtype=x.dtype, device=x.device)
        u = (x[..., None] - centres_t) / scale
        log_k = -0.5 * u**2 if kind == "gaussian" else -u.abs()
        return -torch.logsumexp(log_w_t + log_k, dim=-1) + log_norm + math.log(scale)

    return potential


class BoltzmannFlow1D:
    """Boltzmann linear interpolation ``p_t ∝ exp(-(1-t) f0 - t f1)`` on a 1D grid [13-16].

    Wraps :func:`boltzmann_1d` in the flow interface of this module (``dim = 1``), so that its
    grid norm can be checked by :func:`mc_velocity_norm_sq`:

    * ``sample`` draws from ``p_t`` by inverting the piecewise-linear grid CDF (the density
      is taken piecewise constant between the grid's trapezoid cells);
    * ``velocity`` interpolates the grid velocity ``v_t = J / p_t`` linearly; outside the
      region where ``v_t`` is formed (``p_t < rel_floor * max p_t``) it takes the nearest
      formed value (such points carry negligible mass).

    Parameters
    ----------
    f0, f1 : callable or tensor
        Potentials at ``t = 0`` and ``t = 1`` (see :func:`boltzmann_1d`).
    x_grid : tensor, shape (N,)
        Uniform grid covering the mass of every ``p_t``; sets dtype and device of results.
    rel_floor : float
        As in :func:`boltzmann_1d`.
    """

    dim = 1

    def __init__(self, f0: Potential, f1: Potential, x_grid: torch.Tensor, rel_floor=1e-12):
        self.x, self.dx = uniform_grid(x_grid, "x_grid")
        self.f0 = _potential_values(f0, self.x, "f0")
        self.f1 = _potential_values(f1, self.x, "f1")
        self.rel_floor = positive_scalar("rel_floor", rel_floor)

    def __repr__(self) -> str:
        x = self.x
        return f"BoltzmannFlow1D(grid=[{float(x[0]):g}, {float(x[-1]):g}] x {x.numel()})"

    def state(self, t: float) -> BoltzmannState:
        """:func:`boltzmann_1d` at time ``t in [0, 1]``."""
        return boltzmann_1d(self.f0, self.f1, self.x, t, self.rel_floor)

    def velocity_norm_sq(self, t: float) -> float:
        """``||v_t||^2_{L2(p_t)} = integral J^2 / p_t dx`` on the grid (squared length/time)."""
        return float(self.state(t).norm_sq)

    def peak_norm_sq(self, n_times: int = 41) -> tuple[float, float]:
        """``(t*, max_t ||v_t||^2)`` over ``[0, 1]``: best of ``n_times`` equispaced times,
        refined by a bounded scalar search between its neighbours."""
        n_times = positive_int("n_times", n_times)
        if n_times < 3:
            raise ValueError(f"n_times must be >= 3, got {n_times}")
        times = np.linspace(0.0, 1.0, n_times)
        values = [self.velocity_norm_sq(float(t)) for t in times]
        k = int(np.argmax(values))
        lo, hi = times[max(k - 1, 0)], times[min(k + 1, n_times - 1)]
        res = minimize_scalar(
            lambda t: -self.velocity_norm_sq(float(t)),
            bounds=(lo, hi),
            method="bounded",
            options={"xatol": 1e-6},
        )
        if -res.fun > values[k]:
            return float(res.x), float(-res.fun)
        return float(times[k]), float(values[k])

    def sample(
        self,
        t: float,
        n: int,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """``n`` draws of ``p_t`` (inverse grid CDF): shape ``(n, 1)``.

        ``dtype``/``device`` default to the grid's; the generator must live on that device.
        """
        n = positive_int("n", n)
        p = self.state(t).density
        x = self.x
        cdf = _cumulative_trapezoid(p, x)
        cdf = cdf / cdf[-1]
        u = torch.rand(n, generator=generator, dtype=x.dtype, device=x.device)
        hi = torch.searchsorted(cdf, u).clamp(1, x.numel() - 1)
        lo = hi - 1
        gap = (cdf[hi] - cdf[lo]).clamp_min(torch.finfo(x.dtype).tiny)
        frac = ((u - cdf[lo]) / gap).clamp(0.0, 1.0)
        out = x[lo] + frac * (x[hi] - x[lo])
        return out[:, None].to(dtype=dtype or x.dtype, device=device or x.device)

    def velocity(self, t: float, x: torch.Tensor) -> torch.Tensor:
        """``v_t(x)`` by linear interpolation of the grid velocity; ``x`` of shape ``(..., 1)``."""
        x = _check_points(x, 1)
        state = self.state(t)
        grid_v = _fill_nearest(state.velocity, state.valid)
        pts = x[..., 0].to(dtype=self.x.dtype, device=self.x.device)
        pos = ((pts - self.x[0]) / self.dx).clamp(0.0, self.x.numel() - 1.0)
        lo = pos.floor().long().clamp(max=self.x.numel() - 2)
        frac = pos - lo
        v = grid_v[lo] * (1 - frac) + grid_v[lo + 1] * frac
        return v[..., None].to(dtype=x.dtype, device=x.device)


def _fill_nearest(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``values`` with entries outside ``valid`` replaced by the nearest valid entry."""
    idx = torch.nonzero(valid).flatten()
    if idx.numel() == 0:
        raise ValueError("no grid point has a formed velocity (lower rel_floor)")
    pos = torch.arange(values.numel(), device=values.device)
    right = torch.searchsorted(idx, pos).clamp(max=idx.numel() - 1)
    left = (right - 1).clamp(min=0)
    use_left = (pos - idx[left]).abs() < (idx[right] - pos).abs()
    return values[torch.where(use_left, idx[left], idx[right])]


# ---------------------------------------------------------------------------- Poisson flow
class PoissonFlow:
    """The Poisson flow of data on the plane ``z = 0`` of ``R^{d+1}`` [17-19], in the flow
    interface of this module with the height ``z > 0`` playing the role of time.

    ``mu_z`` (density ``2 E_z``, :func:`poisson_density`) is the data convolved with the
    Poisson kernel ``Gamma((d+1)/2) pi^{-(d+1)/2} z / (|x|^2 + z^2)^{(d+1)/2}``, the
    multivariate Cauchy law of scale ``z``: a draw is ``y_I + z G / |g|`` with ``I`` a data
    index drawn by weight, ``G ~ N(0, I_d)``, ``g ~ N(0, 1)``. It is moved by the velocity
    ``E_x / E_z`` (:func:`poisson_velocity`). Its full ``L2(mu_z)`` norm is infinite (heavy
    tails); truncated to a window it grows like ``1/z`` (:func:`poisson_velocity_norm_sq_1d`,
    :func:`mc_velocity_norm_sq` with ``radius``).

    Parameters
    ----------
    data : tensor, shape (m, d) or (m,) for d = 1
        Data points ``y_i``.
    weights : tensor of shape (m,), optional
        Nonnegative charges; uniform by default.
    """

    def __init__(self, data, weights=None):
        data = _as_float_tensor(data, "data")
        if data.ndim == 1:
            data = data[:, None]
        probe = torch.zeros(1, data.shape[-1], dtype=data.dtype, device=data.device)
        _, _, self.data, log_w = _poisson_inputs(probe, 1.0, data, weights)
        self.weights = torch.exp(log_w)
        self.dim = self.data.shape[1]

    def __repr__(self) -> str:
        return f"PoissonFlow(m={self.data.shape[0]}, dim={self.dim})"

    def sample(
        self,
        z: float,
        n: int,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """``n`` exact draws of ``mu_z``: shape ``(n, dim)``; ``z > 0``."""
        z = positive_scalar("z", z)
        n = positive_int("n", n)
        w = self.weights.to(dtype=dtype, device=device)
        index = torch.multinomial(w, n, replacement=True, generator=generator)
        gauss = torch.randn(n, self.dim + 1, generator=generator, dtype=dtype, device=device)
        direction = gauss[:, : self.dim] / gauss[:, self.dim :].abs()
        return self.data.to(dtype=dtype, device=device)[index] + z * direction

    def velocity(self, z: float, x: torch.Tensor) -> torch.Tensor:
        """``E_x / E_z`` at height ``z``: :func:`poisson_velocity`, shape ``(n, dim)``."""
        x = _check_points(x, self.dim)
        return poisson_velocity(x, z, self.data, self.weights)

    def density(self, z: float, x: torch.Tensor) -> torch.Tensor:
        """Density ``2 E_z`` of ``mu_z`` (:func:`poisson_density`), shape ``(n,)``."""
        x = _check_points(x, self.dim)
        return poisson_density(x, z, self.data, self.weights)

    def velocity_norm_sq(self, z: float, x_grid: torch.Tensor) -> float:
        """Truncated norm over the window of ``x_grid`` (``d = 1`` only), see
        :func:`poisson_velocity_norm_sq_1d`."""
        if self.dim != 1:
            raise ValueError("the grid norm is implemented for d = 1 only")
        return float(poisson_velocity_norm_sq_1d(z, self.data, x_grid, self.weights))


# ---------------------------------------------------------------------------- measurements
def mc_energy(
    flow,
    t0: float,
    t1: float,
    n: int,
    generator: torch.Generator | None = None,
    nodes: int = 16,
    device: torch.device | str | None = None,
) -> MCEstimate:
    """Monte-Carlo estimate of the energy ``integral_{t0}^{t1} ||v_t||^2_{L2(mu_t)} dt`` [3].

    Gauss-Legendre in ``log t`` over ``[t0, t1]`` (``nodes`` points, one panel: meant for a
    window of at most one decade), with an independent :func:`mc_velocity_norm_sq` of ``n``
    draws at every node, so nothing but the flow's sampler and velocity enters. The standard
    error combines the nodes' errors with the quadrature weights. Units: ``||v||^2`` times
    time.
    """
    t0 = positive_scalar("t0", t0)
    t1 = positive_scalar("t1", t1)
    if not t1 > t0:
        raise ValueError(f"t1 must be > t0, got t0={t0!r}, t1={t1!r}")
    nodes = positive_int("nodes", nodes)
    s0, s1 = math.log(t0), math.log(t1)
    x, w = np.polynomial.legendre.leggauss(nodes)
    half, mid = (s1 - s0) / 2, (s1 + s0) / 2
    total, var = 0.0, 0.0
    for node, weight in zip(x, w, strict=True):
        t = math.exp(mid + half * node)
        est = mc_velocity_norm_sq(flow, t, n, generator, device=device)
        total += half * weight * t * est.mean
        var += (half * weight * t * est.stderr) ** 2
    return MCEstimate(float(total), math.sqrt(var))


def energy_divergence_verdict(
    previous: MCEstimate,
    last: MCEstimate,
    expected: float,
    ratio_min: float = 0.9,
    z_max: float = 4.0,
) -> bool:
    """Verdict "the energy [3] diverges logarithmically at ``t = 0``" from two decades.

    ``previous`` and ``last`` are the energies of two consecutive decades towards ``t = 0``
    (:func:`mc_energy`). A norm that is integrable at 0 gives increments shrinking
    geometrically (``10^(p - 1)`` per decade for ``||v_t||^2 ~ t^-p``, ``p < 1``); a norm
    ``k / t`` adds the same ``k ln 10`` every decade. True when ``last / previous >=
    ratio_min`` and ``last`` lies within ``z_max`` standard errors of ``expected``.
    """
    if previous.mean <= 0:
        return False
    z = abs(last.mean - expected) / last.stderr if last.stderr > 0 else math.inf
    return last.mean / previous.mean >= ratio_min and z < z_max


def path_lipschitz_lower_bound(
    paths: Callable[[list[float]], torch.Tensor], t: float, h: float
) -> float:
    """Lower bound of ``Lip(v_t)`` for any velocity field that moves the given particles.

    ``paths(times)`` returns coupled positions of ``n`` particles at ``times``, shape
    ``(len(times), n, d)`` (the same particles in every row, e.g. ``CouplingFlow.paths``
    with a fixed generator). Their speeds at ``t`` are the centred differences over
    ``[t - h, t + h]``; a velocity field ``v_t`` with ``v_t(X_j) = dX_j/dt`` for every
    particle has ``Lip(v_t) >= |dX_j/dt - dX_k/dt| / |X_j - X_k|`` for every pair. The
    largest ratio over the disjoint pairs ``(0, 1), (2, 3), ...`` is returned (1/time).
    Nothing but the paths enters, so the ODE condition [4] can be tested without the
    velocity formula.
    """
    h = positive_scalar("h", h)
    xs = paths([t - h, t, t + h])
    if xs.ndim != 3 or xs.shape[0] != 3 or xs.shape[1] < 2:
        raise ValueError("paths must return shape (3, n, d) with n >= 2")
    speed = (xs[2] - xs[0]) / (2.0 * h)
    m = xs.shape[1] // 2 * 2
    dx = (xs[1, 0:m:2] - xs[1, 1:m:2]).norm(dim=-1)
    dv = (speed[0:m:2] - speed[1:m:2]).norm(dim=-1)
    keep = dx > 0
    if not bool(keep.any()):
        raise ValueError("all pairs coincide: no Lipschitz bound")
    return float((dv[keep] / dx[keep]).max())


def lipschitz_divergence_verdict(per_decade: float, rtol: float = 1e-3) -> bool:
    """Verdict "``integral Lip(v_t) dt`` diverges at ``t = 1`` like ``log(1/(1 - t))``".

    ``per_decade`` is what the integral gains over one decade of ``1 - t`` (the Lipschitz
    lower bound of :func:`path_lipschitz_lower_bound` integrated with
    :func:`log_time_integral`). ``Lip = 1/(1 - t)`` gives ``ln 10`` per decade; the verdict
    holds when ``per_decade`` is within the relative tolerance ``rtol`` of ``ln 10``.
    """
    return abs(per_decade / math.log(10.0) - 1.0) < rtol


class LawVelocity(NamedTuple):
    """Result of :func:`law_velocity` (one component unless stated by the caller)."""

    #: ``||v_t||^2_{L2(mu_t)}`` in (space/time)^2, atoms included.
    norm_sq: float
    #: ``max |J / u|`` over the quadrature nodes of the continuous part (space/time).
    max_speed: float
    #: ``L'(t)``, the speed of the mass that sits at ``+-L(t)`` (the Kac atoms).
    edge_speed: float
    #: The continuous part on ``(0, L(t))``, see :class:`kacnb.theory.telegraph.SymmetricFlux`.
    flux: object


def law_velocity(
    density: Callable[[float, torch.Tensor], torch.Tensor],
    t: float,
    half_width: Callable[[float], float],
    edge_mass: Callable[[float], float] | None = None,
    n_nodes: int = 128,
    rel_step: float = 1e-4,
) -> LawVelocity:
    """Velocity of a symmetric 1D law and its ``L2(mu_t)`` norm from the density alone.

    ``density(t, x)`` is the continuous part, ``half_width(t) = L(t)`` its frame and
    ``edge_mass(t)`` the mass of each of two atoms at ``+-L(t)`` (default none), which move
    with ``+-L'(t)``. The continuous part's velocity ``J / u`` comes from
    :func:`kacnb.theory.telegraph.symmetric_flux_1d` (the continuity equation [2] with ``J(0) =
    0``),
    so no velocity formula is used. Returns

        norm_sq = 2 integral_0^L (J^2 / u) dx + 2 edge_mass L'^2,

    the largest speed of the continuous part and ``L'(t)``. For the Kac law Prop 11 says
    ``norm_sq <= c^2`` and ``max_speed <= c``; for the heat kernel ``N(0, sigma^2 t)`` (frame
    a few ``sigma sqrt(t)``, no atoms) the same routine gives ``x / (2 t)`` and
    ``sigma^2 / (4 t)``, unbounded as ``t -> 0``.
    """
    flux = symmetric_flux_1d(density, t, half_width, edge_mass, n_nodes=n_nodes, rel_step=rel_step)
    h = rel_step * t
    edge_speed = (half_width(t + h) - half_width(t - h)) / (2.0 * h)
    atoms = 0.0 if edge_mass is None else 2.0 * float(edge_mass(t)) * edge_speed**2
    cont = 2.0 * float((flux.weights * flux.density * flux.velocity**2).sum())
    return LawVelocity(cont + atoms, float(flux.velocity.abs().max()), edge_speed, flux)


def kac_path_projection(
    kac: Kac,
    t: float,
    n: int,
    generator: torch.Generator | None = None,
    dim: int = 1,
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    device: torch.device | str | None = None,
) -> MCEstimate:
    """``E[ sum_i v(t, K^i(t)) dK^i/dt(t) ]`` on ``n`` random-walk paths (App. A.1), ``t > 0``.

    Since ``v(t, x) = E[dK/dt | K(t) = x]`` [94], the tower property gives
    ``E[v(t, K) dK/dt] = E[v(t, K)^2] = ||v_t||^2_{L2(mu_t)}`` (per component): a Monte-Carlo
    value of the norm in which the velocity is tested against the speeds of the walk itself
    (not against the law it was derived from). A velocity that is zero, negated or scaled
    fails it. The speed is the forward difference of each path over ``h = 1e-6 / a`` (a
    switch inside it, probability ``a h``, biases the mean by at most ``2 c^2 a h``).
    ``velocity(t, x)`` defaults to ``kac.velocity`` [41]. Returns the mean and its standard
    error (squared space/time). ``device`` (default CPU) must match the generator's.
    """
    t = _time_in(t, "t", 0.0, math.inf, True, True)
    n = positive_int("n", n)
    if n < 2:
        raise ValueError(f"n must be >= 2 to estimate a standard error, got {n}")
    dim = positive_int("dim", dim)
    fn = kac.velocity if velocity is None else velocity
    h = 1e-6 / kac.a
    times = torch.tensor([t, t + h], dtype=torch.float64, device=device)
    k = kac.paths(times, n, dim=dim, generator=generator)
    speed = (k[1] - k[0]) / h
    prod = (fn(times[0], k[0]) * speed).sum(dim=-1)
    return MCEstimate(float(prod.mean()), float(prod.std() / math.sqrt(n)))
