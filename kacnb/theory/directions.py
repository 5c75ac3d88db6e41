"""Left- and right-moving parts of the Kac process (paper Section 4, Remark 3, [32-33]).

Two splittings of the law of ``K(t)`` by direction:

* by the **initial** direction ``B``. For the process started to the right (``B = +1``) the
  law on ``(-c t, c t)`` has the density [32]
  ``p+(t, x) = a/(2c) exp(-a t) (I0(beta r) + (c t + x) I1(beta r)/r)``,
  ``beta = a/c``, ``r = sqrt(c^2 t^2 - x^2)``, of mass ``1 - exp(-a t)``, plus an atom
  ``exp(-a t)`` at ``+c t`` (no switch before ``t``). The left-started process has
  ``p-(t, x) = p+(t, -x)`` and an atom at ``-c t``; ``(p+ + p-)/2 = u~`` [30-31].
* by the **current** direction ``dK/dt(t) = +-c``. The densities ``f`` (moving right) and
  ``b`` (moving left) of the symmetric process solve the first-order system with exchange
  terms [33]
  ``f_t + c f_x = a (b - f)``,  ``b_t - c b_x = a (f - b)``;
  their sum ``u = f + b`` and ``w = f - b`` satisfy ``u_t + c w_x = 0`` and
  ``w_t + c u_x = -2 a w``, so ``u_tt + 2 a u_t = c^2 u_xx`` (telegrapher's equation [20-22]).
  The flux ``c w`` equals ``u v`` with the Kac velocity of Thm 4 [41] (both vanish to the
  left of the cone), so on ``(-c t, c t)``
  ``f = u~ (1 + v/c) / 2``,  ``b = u~ (1 - v/c) / 2``,
  and the atoms are split by direction: ``exp(-a t)/2`` at ``+c t`` belongs to ``f`` and
  ``exp(-a t)/2`` at ``-c t`` to ``b``.

Bessel functions enter only through ``i0e``/``i1e`` times ``exp(z - a t)`` with
``z = beta r <= a t`` and the exponent formed without cancellation, as in :mod:`kacnb.theory.kac`.
Densities are per unit of ``x``; ``t`` and ``x`` broadcast; results follow their dtype and
device.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import scipy.stats as st
import torch

from .._checks import as_tensors, check_times, positive_int, positive_scalar
from .kac import kac_density, kac_velocity

__all__ = [
    "initial_right_density",
    "initial_left_density",
    "current_direction_densities",
    "directed_walk",
    "DirectedSample",
    "first_order_residual",
    "FirstOrderResidual",
    "telegraph_residual",
    "binned_chi2",
    "weak_first_order_residual",
    "WeakResidual",
]

_SERIES_Z = 1e-4


def _i1e_over_z(z: torch.Tensor) -> torch.Tensor:
    """``exp(-z) I1(z) / z`` for ``z >= 0``; value 1/2 at ``z = 0`` (series below 1e-4)."""
    small = z < _SERIES_Z
    z_safe = torch.where(small, torch.ones_like(z), z)
    return torch.where(
        small, torch.exp(-z) * (0.5 + z * z / 16.0), torch.special.i1e(z_safe) / z_safe
    )


def initial_right_density(t, x, a: float, c: float) -> torch.Tensor:
    """Continuous part ``p+(t, x)`` of the law of ``K(t)`` given ``B = +1`` (Remark 3, [32]).

    ``p+ = a/(2c) exp(-a t) (I0(z) + (c t + x) (a/c) I1(z)/z)``, ``z = (a/c) sqrt(c^2t^2 - x^2)``
    on ``|x| < c t`` and 0 elsewhere; mass ``1 - exp(-a t)``. The missing mass
    ``exp(-a t)`` is an atom at ``x = +c t``. Units: per unit of ``x``.
    """
    a = positive_scalar("a", a)
    c = positive_scalar("c", c)
    t, x = as_tensors(t, x)
    check_times(t)
    t, x = torch.broadcast_tensors(t, x)
    ct = c * t
    inside = x.abs() < ct
    r = torch.sqrt(((ct - x.abs()) * (ct + x.abs())).clamp_min(0.0))
    z = (a / c) * r
    denom = torch.where(inside, r + ct, torch.ones_like(ct))
    log_scale = -(a / c) * x * x / denom  # = z - a t, without cancellation
    dens = (
        (a / (2.0 * c))
        * torch.exp(log_scale)
        * (torch.special.i0e(z) + (ct + x) * (a / c) * _i1e_over_z(z))
    )
    return torch.where(inside, dens, torch.zeros_like(dens))


def initial_left_density(t, x, a: float, c: float) -> torch.Tensor:
    """Continuous part ``p-(t, x) = p+(t, -x)`` for ``B = -1`` (Remark 3); atom at ``-c t``."""
    t, x = as_tensors(t, x)
    return initial_right_density(t, -x, a, c)


def current_direction_densities(t, x, a: float, c: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Continuous parts ``(f, b)`` of the densities of particles currently moving right/left.

    For the symmetric Kac process (fair ``B``): ``f = u~ (1 + v/c)/2``, ``b = u~ (1 - v/c)/2``
    on ``|x| < c t`` with ``u~`` of [30-31] and ``v`` of Thm 4 [41]; 0 elsewhere. Each has
    mass ``(1 - exp(-a t))/2``; the atoms ``exp(-a t)/2`` at ``+c t`` (in ``f``) and at
    ``-c t`` (in ``b``) are not included. They solve [33] (see the module docstring).
    """
    a = positive_scalar("a", a)
    c = positive_scalar("c", c)
    t, x = as_tensors(t, x)
    check_times(t)
    t, x = torch.broadcast_tensors(t, x)
    u = kac_density(t, x, a, c)
    v = kac_velocity(t, x, a, c)
    return 0.5 * u * (1.0 + v / c), 0.5 * u * (1.0 - v / c)


class DirectedSample(NamedTuple):
    """Positions ``K(t)`` and current directions ``dK/dt / c`` in ``{-1, +1}``.

    Both have shape ``(len(times), n)``; row ``i`` belongs to ``times[i]`` along the same
    ``n`` walks. ``initial`` is the direction at ``t = 0`` of each walk, shape ``(n,)``.
    """

    position: torch.Tensor
    direction: torch.Tensor
    initial: torch.Tensor


def directed_walk(
    times,
    n: int,
    a: float,
    c: float,
    initial: int | None = None,
    generator: torch.Generator | None = None,
) -> DirectedSample:
    """Random-walk realisations (App. A.1) with their current direction of motion.

    Waiting times ``E_k ~ Exp(a)``, jump times ``J_k``; for ``J_m <= t < J_{m+1}`` the walk is
    at ``K(t) = B c (sum_{k<=m} (-1)^{k-1} (J_k - J_{k-1}) + (-1)^m (t - J_m))`` and moves with
    velocity ``B c (-1)^m``. ``initial=+1`` or ``-1`` fixes ``B`` (the initially right- or
    left-moving process of Remark 3); ``None`` draws it fair. Walks whose jumps do not reach
    ``max(times)`` are extended, so the result is exact. Float64 unless ``times`` is another
    floating dtype.
    """
    a = positive_scalar("a", a)
    c = positive_scalar("c", c)
    n = positive_int("n", n)
    if initial not in (None, 1, -1):
        raise ValueError(f"initial must be None, +1 or -1, got {initial!r}")
    if not isinstance(times, torch.Tensor) or not times.is_floating_point():
        times = torch.as_tensor(times, dtype=torch.float64)
    times = times.reshape(-1)
    check_times(times, "times")
    dtype, device = times.dtype, times.device
    t_max = float(times.max()) if times.numel() else 0.0
    m = int(math.ceil(a * t_max + 5.0 * math.sqrt(a * t_max) + 10.0))

    def waits(rows):
        u = torch.rand((rows, m), dtype=dtype, device=device, generator=generator)
        return -torch.log1p(-u) / a

    jumps = torch.cumsum(waits(n), dim=1)
    while bool((jumps[:, -1] <= t_max).any()):
        jumps = torch.cat([jumps, jumps[:, -1:] + torch.cumsum(waits(n), dim=1)], dim=1)
    zero = torch.zeros(n, 1, dtype=dtype, device=device)
    jumps0 = torch.cat([zero, jumps], dim=1)
    alt = torch.ones(jumps.shape[1], dtype=dtype, device=device)
    alt[1::2] = -1.0
    pos = torch.cat([zero, torch.cumsum(torch.diff(jumps0, dim=1) * alt, dim=1)], dim=1)
    query = times.unsqueeze(0).expand(n, -1).contiguous()
    k = torch.searchsorted(jumps, query, right=True)  # number of switches in [0, t]
    step = 1.0 - 2.0 * (k % 2).to(dtype)
    if initial is None:
        sign = 2.0 * torch.randint(0, 2, (n,), generator=generator, device=device).to(dtype) - 1.0
    else:
        sign = torch.full((n,), float(initial), dtype=dtype, device=device)
    position = (
        sign[:, None] * c * (torch.gather(pos, 1, k) + step * (query - torch.gather(jumps0, 1, k)))
    )
    direction = sign[:, None] * step
    return DirectedSample(position.T.contiguous(), direction.T.contiguous(), sign)


class FirstOrderResidual(NamedTuple):
    """Finite-difference residuals of ``f_t + c f_x - a(b - f)`` and ``b_t - c b_x - a(f - b)``.

    ``res_f``, ``res_b``: residuals on the interior grid points, shape ``(nt - 2, nx - 2)``;
    ``scale``: the largest absolute value of any single term (``f_t``, ``c f_x``,
    ``a(b - f)``, and the same for ``b``) there; ``relative = max|res| / scale``.
    """

    res_f: torch.Tensor
    res_b: torch.Tensor
    scale: float

    @property
    def relative(self) -> float:
        return float(torch.maximum(self.res_f.abs().max(), self.res_b.abs().max())) / self.scale


def first_order_residual(
    f: torch.Tensor, b: torch.Tensor, t: torch.Tensor, x: torch.Tensor, a: float, c: float
) -> FirstOrderResidual:
    """Residual of the first-order system [33] by central differences (second order).

    ``f``, ``b``: shape ``(nt, nx)`` on the uniform grids ``t`` (``nt``) and ``x`` (``nx``).
    The grid must stay inside the light cone, where both densities are smooth.
    """
    dt = float(t[1] - t[0])
    dx = float(x[1] - x[0])
    terms = []
    res = []
    for g, h, s in ((f, b, 1.0), (b, f, -1.0)):
        g_t = (g[2:, 1:-1] - g[:-2, 1:-1]) / (2 * dt)
        g_x = s * c * (g[1:-1, 2:] - g[1:-1, :-2]) / (2 * dx)
        exch = a * (h[1:-1, 1:-1] - g[1:-1, 1:-1])
        res.append(g_t + g_x - exch)
        terms += [g_t, g_x, exch]
    scale = max(float(term.abs().max()) for term in terms)
    return FirstOrderResidual(res[0], res[1], scale)


def telegraph_residual(u: torch.Tensor, t: torch.Tensor, x: torch.Tensor, a: float, c: float):
    """``(max|u_tt + 2a u_t - c^2 u_xx|, largest single term)`` by central differences [20-22].

    ``u``: shape ``(nt, nx)`` on uniform grids inside the light cone.
    """
    dt = float(t[1] - t[0])
    dx = float(x[1] - x[0])
    u_tt = (u[2:, 1:-1] - 2 * u[1:-1, 1:-1] + u[:-2, 1:-1]) / dt**2
    u_t = 2 * a * (u[2:, 1:-1] - u[:-2, 1:-1]) / (2 * dt)
    u_xx = c**2 * (u[1:-1, 2:] - 2 * u[1:-1, 1:-1] + u[1:-1, :-2]) / dx**2
    scale = max(float(term.abs().max()) for term in (u_tt, u_t, u_xx))
    return float((u_tt + u_t - u_xx).abs().max()), scale


def binned_chi2(samples, total: int, edges, probs) -> tuple[float, float, int]:
    """Pearson chi-square of a histogram of ``samples`` against bin probabilities.

    ``samples``: the draws that fall in the continuous part (others excluded by the caller);
    ``total``: the number of all draws, so ``probs`` (shape ``(len(edges)-1,)``) may sum to
    less than 1 (a sub-density such as ``p+`` of mass ``1 - exp(-a t)``). The mass not in the
    bins is one more cell. Returns ``(statistic, p_value, degrees_of_freedom)``.
    """
    x = np.asarray(torch.as_tensor(samples).detach().cpu(), dtype=np.float64).reshape(-1)
    counts, _ = np.histogram(x, bins=np.asarray(edges, dtype=np.float64))
    probs = np.asarray(probs, dtype=np.float64)
    obs = np.append(counts, total - counts.sum()).astype(np.float64)
    exp = total * np.append(probs, max(0.0, 1.0 - probs.sum()))
    keep = exp > 0
    if np.any(obs[~keep] > 0):
        return math.inf, 0.0, int(keep.sum()) - 1
    stat = float(((obs[keep] - exp[keep]) ** 2 / exp[keep]).sum())
    dof = int(keep.sum()) - 1
    return stat, float(st.chi2.sf(stat, dof)), dof


class WeakResidual(NamedTuple):
    """Monte-Carlo weak-form residuals of [33] for test functions ``phi_k``, shape ``(K,)`` each.

    ``mean_f``, ``mean_b``: estimated residuals of the ``f`` and ``b`` equations;
    ``stderr_f``, ``stderr_b``: their standard errors (one i.i.d. term per walk);
    ``scale``: the largest absolute value of any single estimated term. ``z`` is the larger
    ``|mean| / stderr`` over both equations and all test functions.
    """

    mean_f: np.ndarray
    mean_b: np.ndarray
    stderr_f: np.ndarray
    stderr_b: np.ndarray
    scale: float

    @property
    def z(self) -> float:
        return float(
            max(
                np.max(np.abs(self.mean_f) / self.stderr_f),
                np.max(np.abs(self.mean_b) / self.stderr_b),
            )
        )

    @property
    def relative(self) -> float:
        return float(max(np.abs(self.mean_f).max(), np.abs(self.mean_b).max())) / self.scale


def weak_first_order_residual(
    sample: DirectedSample, h: float, centres, width: float, a: float, c: float
) -> WeakResidual:
    """Weak form of [33] from direction-tagged walks observed at ``t + j h``.

    With ``F(t) = E[phi(K_t) 1{moving right}]`` and ``G(t) = E[phi(K_t) 1{moving left}]``
    the system [33] tested against a smooth ``phi`` reads
    ``F' = c E[phi'(K_t) 1{right}] + a (G - F)`` and ``G' = -c E[phi'(K_t) 1{left}] + a (F - G)``.
    ``F'`` is the central difference over the rows of ``sample`` (3 rows ``j = -1..1``:
    second order; 5 rows ``j = -2..2``: fourth order, which keeps the bias from the atoms
    moving through narrow test functions small). The rows are coupled in time, so the
    difference has small variance; each walk contributes one i.i.d. term, which gives
    the standard error. ``phi_k(x) = exp(-(x - m_k)^2 / (2 width^2))`` for ``m_k`` in
    ``centres``. A correct system leaves an ``O(h^2)`` (``O(h^4)``) bias and Monte-Carlo noise.
    """
    pos = sample.position.to(torch.float64).cpu().numpy()
    right = (sample.direction > 0).to(torch.float64).cpu().numpy()
    if pos.shape[0] not in (3, 5):
        raise ValueError("sample must hold the times t + j h for j = -1..1 or j = -2..2")
    stencil = [-0.5, 0.0, 0.5] if pos.shape[0] == 3 else [1 / 12, -2 / 3, 0.0, 2 / 3, -1 / 12]
    mid = pos.shape[0] // 2
    m = np.asarray(centres, dtype=np.float64)[:, None]
    phi = np.exp(-((pos[:, None, :] - m) ** 2) / (2 * width**2))  # (rows, K, n)
    dphi = -(pos[mid][None, :] - m) / width**2 * phi[mid]
    out, terms = [], []
    for ind, s in ((right, 1.0), (1.0 - right, -1.0)):
        other = 1.0 - ind
        d_t = sum(w * phi[j] * ind[j] for j, w in enumerate(stencil) if w != 0.0) / h
        flux = s * c * dphi * ind[mid]
        exch = a * phi[mid] * (other[mid] - ind[mid])
        res = d_t - flux - exch
        n = res.shape[1]
        out.append((res.mean(1), res.std(1, ddof=1) / math.sqrt(n)))
        terms += [np.abs(d_t.mean(1)).max(), np.abs(flux.mean(1)).max(), np.abs(exch.mean(1)).max()]
    (mf, sf), (mb, sb) = out
    return WeakResidual(mf, mb, sf, sb, float(max(terms)))
