"""The Kac process: law, velocity and exact samplers (paper Sections 4-6).

A particle starts at 0, moves with speed ``c`` and reverses direction at the jumps of a
Poisson process of rate ``a``; its position is ``K(t)`` [25-26]. The law of ``K(t)`` is

* two atoms of mass ``exp(-a t)/2`` each, at ``x = -c t`` and ``x = +c t``;
* on ``(-c t, c t)`` the density [30-31]
  ``u~(t, x) = a/(2c) exp(-a t) (I0(beta r) + c t I1(beta r)/r)``,
  ``beta = a/c``, ``r = sqrt(c^2 t^2 - x^2)``;

and the velocity that moves it is [41] ``v(t, x) = x / (t + r I0(beta r) / (c I1(beta r)))``
inside the light cone and ``+-c`` on the atoms (Thm 4).

Numerical choices, made once here:

* Bessel functions only appear as the exponentially scaled ``i0e``/``i1e`` multiplied by
  ``exp(z - a t)`` with ``z = beta r <= a t``; the exponent is formed as
  ``-(a/c) x^2 / (r + c t)``, which has no cancellation, so everything stays finite and
  accurate for ``a t`` up to 1e4 and beyond.
* ``I1(z)/z`` is evaluated through its series near ``z = 0`` (limit 1/2).
* The CDF is a Gauss-Legendre quadrature in the angle ``theta`` with ``x = c t sin(theta)``;
  in that variable the integrand is smooth up to the edges of the light cone.

All functions work elementwise on tensors of any shape, on CPU and CUDA, in float32 and
float64; results follow the dtype and device of the inputs. The ``kac_*`` functions are
the unchecked kernels (used inside training loops, where host syncs matter); the
:class:`Kac` class validates its inputs and is the public interface. In float32 the kernels
need ``c t`` below 9.2e18 (``(c t)^2`` must not overflow) and ``a t`` below about 1e24
(``exp(-z) I1(z)/z`` must stay a normal number): beyond, and for float16/bfloat16, the
class computes in float64 and rounds the result back (:meth:`Kac.needs_float64`), refuses
``a t`` or ``c t`` beyond a quarter of the dtype's range, and never returns NaN silently;
:class:`~kacnb.cfm.paths.KacPath` refuses rates and speeds whose float32 targets would not be
finite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .._checks import (
    as_tensors,
    check_not_nan,
    check_size,
    check_times,
    positive_int,
    positive_scalar,
)

__all__ = [
    "Kac",
    "MeanRevertingKac",
    "LinearSchedule",
    "KacTableSampler",
    "kac_density",
    "kac_velocity",
    "kac_cdf",
    "kac_sample",
    "kac_paths",
    "MAX_SAMPLE_AT",
]

# Below this argument I1(z)/z is taken from its series; the next omitted term is z^4/384.
_SERIES_Z = 1e-4
# Half-width of the quadrature window in units of the law's standard deviation 1/sqrt(a t)
# (in the angle variable): the mass outside it is below exp(-72).
_WINDOW_SIGMAS = 12.0
_GL_NODES = 128
_CDF_CHUNK = 8192
# Half-precision dtypes, sampled in float32 (kac_sample).
_HALF = (torch.float16, torch.bfloat16)
#: Largest ``a t`` the exact sampler draws: ``torch.poisson`` overflows beyond 2^63 = 9.2e18
#: (every draw then becomes an atom); the margin keeps its count's spread sane.
MAX_SAMPLE_AT = 1e18


# ---------------------------------------------------------------------------- kernels
def _i1e_over_z(z: torch.Tensor) -> torch.Tensor:
    """``exp(-z) I1(z) / z`` for ``z >= 0``, finite at ``z = 0`` (value 1/2)."""
    small = z < _SERIES_Z
    z_safe = torch.where(small, torch.ones_like(z), z)
    series = torch.exp(-z) * (0.5 + z * z / 16.0)
    return torch.where(small, series, torch.special.i1e(z_safe) / z_safe)


def _cone(t: torch.Tensor, x: torch.Tensor, a: float, c: float):
    """Shared pieces: ``c t``, inside mask, ``r``, ``z = beta r`` and ``z - a t`` (stable)."""
    ct = c * t
    ax = x.abs()
    inside = ax < ct
    r2 = ((ct - ax) * (ct + ax)).clamp_min(0.0)
    r = torch.sqrt(r2)
    z = (a / c) * r
    # z - a t = (a/c)(r - c t) = -(a/c) x^2 / (r + c t): no cancellation for large a t.
    denom = torch.where(inside, r + ct, torch.ones_like(ct))
    log_scale = torch.where(inside, -(a / c) * x * x / denom, -a * t)
    return ct, inside, r, z, log_scale


def kac_density(t: torch.Tensor, x: torch.Tensor, a: float, c: float) -> torch.Tensor:
    """Continuous part ``u~(t, x)`` of the law of ``K(t)`` [30-31]; 0 for ``|x| >= c t``.

    Units: density per unit of ``x``. ``t`` and ``x`` broadcast; no validation.
    """
    t, x = torch.broadcast_tensors(t, x)
    _, inside, _, z, log_scale = _cone(t, x, a, c)
    dens = (a / (2.0 * c)) * torch.exp(log_scale) * (torch.special.i0e(z) + a * t * _i1e_over_z(z))
    return torch.where(inside, dens, torch.zeros_like(dens))


def kac_velocity(t: torch.Tensor, x: torch.Tensor, a: float, c: float) -> torch.Tensor:
    """Kac velocity field ``v(t, x)`` of Thm 4 [41], elementwise; no validation.

    Inside the light cone ``v = x / (t + I0(z) / (a I1(z)/z))`` with ``z = (a/c) r``, which
    tends to ``x / (t + 2/a)`` as ``r -> 0``. On and outside the cone (the atoms, and the
    region of zero mass) ``v = sign(x) c``; at ``t = x = 0`` it is 0. Always ``|v| <= c``.
    """
    t, x = torch.broadcast_tensors(t, x)
    _, inside, _, z, _ = _cone(t, x, a, c)
    denom = t + torch.special.i0e(z) / (a * _i1e_over_z(z))
    v_in = x / denom
    return torch.where(inside, v_in, torch.sign(x) * c)


_GL_CACHE: dict[tuple[int, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}


def _gauss_legendre(n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    key = (n, device)
    if key not in _GL_CACHE:
        nodes, weights = np.polynomial.legendre.leggauss(n)
        _GL_CACHE[key] = (
            torch.as_tensor(nodes, dtype=torch.float64, device=device),
            torch.as_tensor(weights, dtype=torch.float64, device=device),
        )
    return _GL_CACHE[key]


def _continuous_cdf64(t: torch.Tensor, x: torch.Tensor, a: float, c: float) -> torch.Tensor:
    """``integral_{-ct}^{x} u~(t, y) dy`` in float64 for flat ``t, x`` with ``|x| < c t``.

    Substituting ``y = c t sin(theta)`` turns the integrand into
    ``h(theta) = (a t / 2) exp(-a t (1 - cos theta)) (cos theta i0e(z) + i1e(z))``,
    ``z = a t cos theta``, smooth on ``[-pi/2, pi/2]``. For large ``a t`` it concentrates in
    a window of width ``~1/sqrt(a t)`` around 0, to which the integration is restricted.
    """
    nodes, weights = _gauss_legendre(_GL_NODES, t.device)
    at = a * t
    half_width = torch.clamp(_WINDOW_SIGMAS / torch.sqrt(at), max=math.pi / 2)
    theta_x = torch.asin(torch.clamp(x / (c * t), -1.0, 1.0))
    lo = -half_width
    hi = torch.minimum(torch.maximum(theta_x, lo), half_width)
    mid, half = (hi + lo) / 2, (hi - lo) / 2
    theta = mid[:, None] + half[:, None] * nodes[None, :]
    cos = torch.cos(theta)
    z = at[:, None] * cos
    one_minus_cos = 2.0 * torch.sin(theta / 2) ** 2
    h = (
        (at[:, None] / 2)
        * torch.exp(-at[:, None] * one_minus_cos)
        * (cos * torch.special.i0e(z) + torch.special.i1e(z))
    )
    return half * (h * weights[None, :]).sum(dim=1)


def kac_cdf(t: torch.Tensor, x: torch.Tensor, a: float, c: float) -> torch.Tensor:
    """``P(K(t) <= x)`` with both atoms included; no validation.

    Computed in float64 (Gauss-Legendre in the angle variable, see
    :func:`_continuous_cdf64`) and returned in the promoted dtype of the inputs.
    """
    t, x = torch.broadcast_tensors(t, x)
    out_dtype = t.dtype
    t64, x64 = t.double().reshape(-1), x.double().reshape(-1)
    ct = c * t64
    below = x64 < -ct
    above = x64 >= ct
    inside = ~below & ~above  # includes x = -ct, where only the left atom counts
    out = torch.where(above, torch.ones_like(x64), torch.zeros_like(x64))
    idx = torch.nonzero(inside & (t64 > 0)).squeeze(1)
    for start in range(0, idx.numel(), _CDF_CHUNK):
        sel = idx[start : start + _CDF_CHUNK]
        ts, xs = t64[sel], x64[sel]
        out[sel] = 0.5 * torch.exp(-a * ts) + _continuous_cdf64(ts, xs, a, c)
    return out.reshape(t.shape).to(out_dtype)


def kac_sample(
    t: torch.Tensor, a: float, c: float, dim: int = 1, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Exact draw of ``K(t)`` with ``dim`` i.i.d. components: shape ``t.shape + (dim,)``.

    Poisson-Beta construction (docs/paper-notes.md): ``N ~ Poisson(a t)`` switches; given
    ``N = n >= 1`` the share of time spent in the initial direction is
    ``Y ~ Beta(floor(n/2) + 1, ceil(n/2))`` and ``K = B c t (2Y - 1)`` with a fair sign ``B``.
    ``2Y - 1`` is formed as ``(G1 - G2)/(G1 + G2)`` from two gamma variables, which keeps
    relative accuracy when ``Y`` is close to 1/2 (large ``a t``). No validation.

    float16 and bfloat16 times are drawn in float32 (torch has no half-precision gamma
    sampler on the CPU) and the result is rounded to the input's dtype.
    """
    if t.dtype in _HALF:
        return kac_sample(t.float(), a, c, dim=dim, generator=generator).to(t.dtype)
    tt = t.unsqueeze(-1).expand(*t.shape, dim)
    n = torch.poisson(a * tt, generator=generator)
    alpha = torch.floor(n / 2) + 1.0
    beta = torch.ceil(n / 2).clamp_min(1.0)  # n = 0 is handled below (no switch: Y = 1)
    g1 = torch._standard_gamma(alpha, generator=generator)
    g2 = torch._standard_gamma(beta, generator=generator)
    frac = torch.where(n > 0, (g1 - g2) / (g1 + g2), torch.ones_like(g1))
    sign = torch.randint(0, 2, tt.shape, generator=generator, device=tt.device).to(tt.dtype)
    return (2.0 * sign - 1.0) * c * tt * frac


def kac_paths(
    times: torch.Tensor,
    n: int,
    a: float,
    c: float,
    dim: int = 1,
    generator: torch.Generator | None = None,
    chunk_elements: int = 1 << 24,
) -> torch.Tensor:
    """Random-walk realisations of ``K`` at ``times`` (App. A.1): shape ``(len(times), n, dim)``.

    Each of the ``n * dim`` components draws i.i.d. ``Exp(a)`` waiting times; with jump times
    ``J_k`` and ``J_n <= t < J_{n+1}``,
    ``K(t) = B c (sum_{k<=n} (-1)^{k-1} (J_k - J_{k-1}) + (-1)^n (t - J_n))``.
    About ``a T + 5 sqrt(a T) + 10`` waiting times are drawn per component; the rare
    component whose jumps do not reach ``max(times)`` is extended until it does, so the
    result is exact. Work is chunked so memory stays near ``chunk_elements`` numbers.
    No validation.
    """
    times = times.reshape(-1)
    dtype, device = times.dtype, times.device
    t_max = float(times.max()) if times.numel() else 0.0
    m = int(math.ceil(a * t_max + 5.0 * math.sqrt(a * t_max) + 10.0))
    rows_total = n * dim
    out = torch.empty(rows_total, times.numel(), dtype=dtype, device=device)
    rows_per_chunk = max(1, chunk_elements // max(m, times.numel()))
    for start in range(0, rows_total, rows_per_chunk):
        rows = min(rows_per_chunk, rows_total - start)
        waits = _exponential((rows, m), a, dtype, device, generator)
        jumps = torch.cumsum(waits, dim=1)
        while bool((jumps[:, -1] <= t_max).any()):
            more = torch.cumsum(_exponential((rows, m), a, dtype, device, generator), dim=1)
            jumps = torch.cat([jumps, jumps[:, -1:] + more], dim=1)
        # Position at the jump times: P_0 = 0, P_k = sum_{j<=k} (-1)^{j-1} (J_j - J_{j-1}).
        jumps0 = torch.cat([torch.zeros(rows, 1, dtype=dtype, device=device), jumps], dim=1)
        steps = torch.diff(jumps0, dim=1)
        alt = torch.ones(steps.shape[1], dtype=dtype, device=device)
        alt[1::2] = -1.0
        pos = torch.cat(
            [torch.zeros(rows, 1, dtype=dtype, device=device), torch.cumsum(steps * alt, 1)], 1
        )
        query = times.unsqueeze(0).expand(rows, -1).contiguous()
        k = torch.searchsorted(jumps, query, right=True)  # number of jumps <= t
        last_jump = torch.gather(jumps0, 1, k)
        direction = 1.0 - 2.0 * (k % 2).to(dtype)
        sign = torch.randint(0, 2, (rows, 1), generator=generator, device=device).to(dtype)
        out[start : start + rows] = (
            (2.0 * sign - 1.0) * c * (torch.gather(pos, 1, k) + direction * (query - last_jump))
        )
    return out.T.reshape(times.numel(), n, dim)


def _exponential(shape, rate, dtype, device, generator):
    u = torch.rand(shape, dtype=dtype, device=device, generator=generator)
    # 1 - u lies in (0, 1], so the log is finite.
    return -torch.log1p(-u) / rate


# ---------------------------------------------------------------------------- public class
class Kac:
    """The Kac process with switching rate ``a`` and speed ``c`` (paper Section 4).

    Parameters
    ----------
    a : float
        Rate of the Poisson process of direction switches (1/time), finite and > 0.
    c : float
        Speed (space/time), finite and > 0.

    Methods accept tensors or numbers and broadcast like NumPy. Results follow the dtype
    and device of the inputs. Multi-dimensional use is componentwise (Section 5): ``dim``
    i.i.d. copies of the 1D process, whose velocity is the vector of 1D velocities
    (Lemma 13 / Thm 14).
    """

    def __init__(self, a: float, c: float):
        self.a = positive_scalar("a", a)
        self.c = positive_scalar("c", c)

    def __repr__(self) -> str:
        return f"Kac(a={self.a:g}, c={self.c:g})"

    @property
    def sigma(self) -> float:
        """Diffusion-limit standard deviation per unit sqrt(time): ``sqrt(c^2/a)`` (Thm 9)."""
        return self.c / math.sqrt(self.a)

    # -- law -------------------------------------------------------------------------
    def atom_mass(self, t) -> torch.Tensor:
        """Total mass ``exp(-a t)`` of the two atoms at ``+-c t``; same shape as ``t``."""
        (t,) = as_tensors(t)
        check_times(t)
        return torch.exp(-self.a * t)

    def density(self, t, x) -> torch.Tensor:
        """Continuous part ``u~(t, x)`` [30-31]; 0 for ``|x| >= c t``. Broadcasts ``t``, ``x``."""
        t, x = self._tx(t, x)
        return self._finite(self._evaluate(kac_density, t, x), "density")

    def cdf(self, t, x) -> torch.Tensor:
        """``P(K(t) <= x)``, atoms included. Broadcasts ``t``, ``x``."""
        t, x = self._tx(t, x)
        return self._finite(kac_cdf(t, x, self.a, self.c), "cdf")

    def velocity(self, t, x) -> torch.Tensor:
        """Velocity ``v(t, x)`` of Thm 4 [41]; ``+-c`` on the atoms, ``|v| <= c`` everywhere."""
        t, x = self._tx(t, x)
        return self._finite(self._evaluate(kac_velocity, t, x), "velocity")

    def conditional_velocity(self, t, x, x0) -> torch.Tensor:
        """``v_t(x | x0) = (v(t, x^i - x0^i))_i`` (Thm 14) for ``X_t = x0 + K(t)``.

        ``x`` and ``x0`` have shape ``(..., d)``; ``t`` has the batch shape ``(...)`` (or is a
        scalar) and is applied to every component.
        """
        t, x, x0 = as_tensors(t, x, x0)
        check_times(t)
        self.check_range(t)
        check_not_nan(x, "x")
        check_not_nan(x0, "x0")
        v = self._evaluate(kac_velocity, t.unsqueeze(-1), x - x0)
        return self._finite(v, "conditional velocity")

    # -- sampling --------------------------------------------------------------------
    def sample(self, t, dim: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        """Exact draw of ``K(t)`` (Poisson-Beta construction): shape ``t.shape + (dim,)``.

        float16 and bfloat16 times are drawn in float32 and rounded (:func:`kac_sample`).
        """
        (t,) = as_tensors(t)
        check_times(t)
        self.check_range(t)
        self.check_sample_range(t)
        positive_int("dim", dim)
        itemsize = max(t.element_size(), 4)  # half precision is drawn in float32
        check_size(f"Kac.sample of {t.numel():,} x {dim:,} numbers", t.numel() * dim, itemsize)
        return kac_sample(t, self.a, self.c, dim=dim, generator=generator)

    def paths(
        self, times, n: int, dim: int = 1, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``n`` random-walk realisations observed at ``times`` (App. A.1).

        Returns shape ``(len(times), n, dim)``; row ``i`` is ``K(times[i])`` along the same
        ``n * dim`` walks, so rows are coupled in time.
        """
        (times,) = as_tensors(times)
        check_times(times, "times")
        if times.ndim != 1:
            raise ValueError(f"times must be one-dimensional, got shape {tuple(times.shape)}")
        positive_int("n", n)
        positive_int("dim", dim)
        self.check_range(times)
        # the result (len(times), n, dim) is allocated at once; the walk itself is chunked
        check_size(f"Kac.paths with {n:,} paths", times.numel() * n * dim, times.element_size())
        # each walk draws about a t_max waiting times into six working arrays, one path's
        # row of them at least at once
        at = self.a * (float(times.max()) if times.numel() else 0.0)
        check_size(
            f"Kac.paths to a t = {at:.3g} (six arrays of that many switches per path)",
            6 * int(at + 5.0 * math.sqrt(at) + 10.0),
            times.element_size(),
        )
        return kac_paths(times, n, self.a, self.c, dim=dim, generator=generator)

    def check_range(self, t: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``a t`` and ``c t`` stay below a quarter of the largest
        number of ``t``'s dtype (8.5e37 in float32, 4.5e307 in float64, 16376 in float16),
        so that ``c t +- x`` and ``a t`` are representable."""
        if t.numel() == 0:
            return
        t_max = float(t.max())
        limit = torch.finfo(t.dtype).max / 4
        if self.a * t_max > limit or self.c * t_max > limit:
            raise ValueError(
                f"t up to {t_max:g} is too large for {self!r} in {t.dtype}: a t and c t must "
                f"be at most {limit:.3g}; use float64 or smaller times"
            )

    def check_sample_range(self, t: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``a t <= MAX_SAMPLE_AT`` (the exact sampler's range)."""
        t_max = float(t.max()) if t.numel() else 0.0
        if self.a * t_max > MAX_SAMPLE_AT:
            raise ValueError(
                f"t up to {t_max:g} is too large to sample {self!r}: a t = {self.a * t_max:.3g}, "
                f"at most {MAX_SAMPLE_AT:g} (the Poisson count of switches overflows beyond)"
            )

    def needs_float64(self, t: torch.Tensor) -> bool:
        """Whether the kernels must run in float64 for times ``t`` of a narrower dtype: when
        ``(c t)^2`` would overflow it, ``exp(-z) I1(z)/z`` at ``z <= a t`` (about
        ``0.4 z^-1.5``) would leave its normal numbers, or ``a``, ``c``, ``a/c`` are outside
        ``[sqrt(tiny), sqrt(max)]`` of it (float32: ``c t > 9.2e18``, ``a t > 1e24``, ``c``
        above 1.8e19...); always for float16 and bfloat16."""
        if t.dtype == torch.float64:
            return False
        if t.dtype in _HALF:
            return True
        info = torch.finfo(t.dtype)
        t_max = float(t.max()) if t.numel() else 0.0
        lo, hi = math.sqrt(info.tiny), math.sqrt(info.max)
        scales = (self.a, self.c, self.a / self.c)
        return (
            self.c * t_max > hi / 2
            or self.a * t_max > (0.4 / info.tiny) ** (2 / 3) / 10
            or not all(lo <= v <= hi for v in scales)
        )

    def _evaluate(self, kernel, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``kernel(t, x, a, c)`` in the dtype of ``t``, computed in float64 and rounded back
        where that dtype cannot hold the intermediate values (:meth:`needs_float64`)."""
        if self.needs_float64(t):
            return kernel(t.double(), x.double(), self.a, self.c).to(t.dtype)
        return kernel(t, x, self.a, self.c)

    def _finite(self, value: torch.Tensor, what: str) -> torch.Tensor:
        """``value``, or ``ValueError`` if the dtype could not hold it (never for valid
        inputs in float64; a guard against silent NaN)."""
        if not bool(torch.isfinite(value).all()):
            raise ValueError(
                f"the {what} of {self!r} is not finite in {value.dtype} at these inputs: "
                "use float64"
            )
        return value

    def _tx(self, t, x):
        t, x = as_tensors(t, x)
        check_times(t)
        self.check_range(t)
        check_not_nan(x, "x")
        return t, x


# ---------------------------------------------------------------------------- mean reversion
@dataclass(frozen=True)
class LinearSchedule:
    """Mean-reversion schedule ``f(t) = 1 - t/T`` with ``f(0) = 1``, ``f(T) = 0`` (Remark 17)."""

    T: float

    def __post_init__(self):
        positive_scalar("T", self.T)

    def value(self, t: torch.Tensor) -> torch.Tensor:
        return 1.0 - t / self.T

    def derivative(self, t: torch.Tensor) -> torch.Tensor:
        return torch.full_like(t, -1.0 / self.T)


@dataclass
class MeanRevertingKac:
    """Mean-reverting Kac process ``X_t = f(t) X_0 + K(t)`` (Remark 17, [98-99]).

    ``schedule`` is any object with ``value(t)`` and ``derivative(t)`` and ``f(0) = 1``,
    ``f(T) = 0``; the default is :class:`LinearSchedule`. At ``t = T`` the law is that of
    ``K(T)``, independent of the data.
    """

    kac: Kac
    T: float
    schedule: object = field(default=None)

    def __post_init__(self):
        self.T = positive_scalar("T", self.T)
        if self.schedule is None:
            self.schedule = LinearSchedule(self.T)

    def _check_t(self, t: torch.Tensor) -> None:
        """``t`` must lie in ``[0, T]``: the schedule is defined there (``f(T) = 0``)."""
        check_times(t)
        if t.numel() and float(t.max()) > self.T:
            raise ValueError(f"t must lie in [0, T] = [0, {self.T:g}], got {float(t.max()):g}")
        self.kac.check_range(t)

    def sample(self, t, x0, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``X_t = f(t) x0 + K(t)``; ``x0`` has shape ``(..., d)``, ``t`` shape ``(...)``
        with ``0 <= t <= T``."""
        t, x0 = as_tensors(t, x0)
        self._check_t(t)
        self.kac.check_sample_range(t)
        check_not_nan(x0, "x0")
        f = self.schedule.value(t).unsqueeze(-1)
        k = kac_sample(t, self.kac.a, self.kac.c, dim=x0.shape[-1], generator=generator)
        return f * x0 + k

    def conditional_velocity(self, t, x, x0) -> torch.Tensor:
        """``v_t(x | x0) = f'(t) x0 + v(t, x - f(t) x0)`` componentwise [99], ``0 <= t <= T``."""
        t, x, x0 = as_tensors(t, x, x0)
        self._check_t(t)
        check_not_nan(x, "x")
        f = self.schedule.value(t).unsqueeze(-1)
        df = self.schedule.derivative(t).unsqueeze(-1)
        return df * x0 + self.kac._evaluate(kac_velocity, t.unsqueeze(-1), x - f * x0)


# ---------------------------------------------------------------------------- table sampler
class KacTableSampler:
    """Inverse-transform sampler from a precomputed quantile table (the paper's route).

    The continuous part of the law of ``K(t)/(c t)`` is tabulated at ``n_times`` equally
    spaced times in ``[0, t_max]`` and ``n_levels`` equally spaced probability levels in
    ``[0, 1]``; its CDF at each time comes from a cumulative trapezoid rule of ``u~`` on
    ``n_grid`` points across the light cone. Sampling chooses an atom with probability
    ``exp(-a t)`` and otherwise interpolates the table bilinearly in ``(t, level)``.
    Kept for comparison with the exact sampler: it pays set-up time, memory and
    interpolation error. ``setup_seconds`` and ``nbytes`` record its cost.
    """

    def __init__(
        self,
        kac: Kac,
        t_max: float,
        n_times: int = 10_000,
        n_levels: int = 4096,
        n_grid: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        import time

        self.kac = kac
        self.t_max = positive_scalar("t_max", t_max)
        positive_int("n_times", n_times)
        positive_int("n_levels", n_levels)
        if n_times < 2 or n_levels < 2:
            raise ValueError("n_times and n_levels must be >= 2")
        n_grid = n_levels if n_grid is None else n_grid
        positive_int("n_grid", n_grid)
        itemsize = torch.empty(0, dtype=dtype).element_size()
        check_size(f"a {n_times:,} x {n_levels:,} quantile table", n_times * n_levels, itemsize)
        check_size(f"a {n_times:,} x {n_grid:,} CDF grid", n_times * n_grid, 8)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype
        start = time.perf_counter()
        self.table = self._build(n_times, n_levels, n_grid)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.setup_seconds = time.perf_counter() - start

    @property
    def nbytes(self) -> int:
        return self.table.numel() * self.table.element_size()

    def _build(self, n_times: int, n_levels: int, n_grid: int) -> torch.Tensor:
        a, c = self.kac.a, self.kac.c
        dev = self.device
        times = torch.linspace(0.0, self.t_max, n_times, dtype=torch.float64, device=dev)
        # At t -> 0 the normalised continuous law of K/(ct) tends to uniform on (-1, 1);
        # a tiny positive time reproduces that limit without 0/0.
        times = times.clamp_min(self.t_max * 1e-9)
        u = torch.linspace(-1.0, 1.0, n_grid, dtype=torch.float64, device=dev)
        levels = torch.linspace(0.0, 1.0, n_levels, dtype=torch.float64, device=dev)
        table = torch.empty(n_times, n_levels, dtype=self.dtype, device=dev)
        rows = max(1, (1 << 22) // n_grid)
        for s in range(0, n_times, rows):
            t = times[s : s + rows, None]
            # The grid ends exactly on the cone, where kac_density returns 0 (that point
            # carries the atoms); the continuous part's edge value is its limit from inside.
            inner_u = u.clamp(-1.0 + 1e-12, 1.0 - 1e-12)
            dens = kac_density(t, c * t * inner_u[None, :], a, c) * (c * t)  # density in u
            cum = torch.cumsum((dens[:, 1:] + dens[:, :-1]) / 2 * (u[1] - u[0]), dim=1)
            cdf = torch.cat([torch.zeros_like(cum[:, :1]), cum], dim=1)
            cdf = cdf / cdf[:, -1:]
            table[s : s + rows] = _interp_rows(levels, cdf, u).to(self.dtype)
        return table

    def sample(self, t, dim: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        """Approximate draw of ``K(t)``: shape ``t.shape + (dim,)``; needs ``t <= t_max``."""
        (t,) = as_tensors(t, dtype=self.dtype)
        t = t.to(self.device)
        check_times(t)
        if bool((t > self.t_max).any()):
            raise ValueError(f"t must be <= t_max = {self.t_max:g} for this table")
        positive_int("dim", dim)
        check_size(
            f"KacTableSampler.sample of {t.numel():,} x {dim:,} numbers",
            t.numel() * dim,
            t.element_size(),
        )
        a, c = self.kac.a, self.kac.c
        tt = t.unsqueeze(-1).expand(*t.shape, dim)
        shape = tt.shape
        u_atom = torch.rand(shape, generator=generator, device=self.device, dtype=self.dtype)
        level = torch.rand(shape, generator=generator, device=self.device, dtype=self.dtype)
        sign = 2.0 * torch.randint(0, 2, shape, generator=generator, device=self.device) - 1.0
        n_times, n_levels = self.table.shape
        pt = tt / self.t_max * (n_times - 1)
        i0 = pt.floor().clamp(max=n_times - 2).long()
        wt = pt - i0
        pl = level * (n_levels - 1)
        j0 = pl.floor().clamp(max=n_levels - 2).long()
        wl = pl - j0
        tab = self.table

        def row(i):
            return tab[i, j0] * (1 - wl) + tab[i, j0 + 1] * wl

        unit = row(i0) * (1 - wt) + row(i0 + 1) * wt
        ct = c * tt
        atom = u_atom < torch.exp(-a * tt)
        return torch.where(atom, sign.to(self.dtype) * ct, ct * unit)


def _interp_rows(levels: torch.Tensor, cdf: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Row-wise inverse of monotone ``cdf`` (rows over grid ``u``) at ``levels``."""
    rows = cdf.shape[0]
    q = levels.unsqueeze(0).expand(rows, -1).contiguous()
    hi = torch.searchsorted(cdf, q).clamp(1, cdf.shape[1] - 1)
    lo = hi - 1
    c_lo, c_hi = torch.gather(cdf, 1, lo), torch.gather(cdf, 1, hi)
    w = torch.where(c_hi > c_lo, (q - c_lo) / (c_hi - c_lo), torch.zeros_like(q))
    return u[lo] + w.clamp(0, 1) * (u[hi] - u[lo])
