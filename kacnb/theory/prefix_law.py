"""The law drawn by the authors' Kac sampler before its fix, against the law [30-31].

**What happened.** The authors' public sampler (repository ``JChemseddine/telegraphers``,
``utils/sample_kac.py``, added in commit ``48b0f69`` on 2025-07-21; the same code is in
``componentwise/cifar/cdf_sampler.py`` of commit ``a53607d``, 2025-07-14) tabulates the
inverse CDF of the continuous part of the law of ``K(t)``. It evaluated the density [30-31]

    u~(t, x) = a/(2c) exp(-a t) (I0(z) + c t I1(z)/r),     z = beta r,  beta = a/c,

through the scaled Bessel functions with the ratio ``i1e(z)/z`` where ``i1e(z)/r`` was meant.
Since ``I1(z)/z = (c/a) I1(z)/r``, the ``I1`` term came out a factor ``c/a`` too small (too
large when ``a < c``; correct only for ``a = c``). Pull request #1 (commit ``433d50b``,
2025-08-24, merged as ``f7c2efb`` on 2025-08-26, "fix: correct computation for equation 20")
replaced the ratio by ``i1e(z)/r``. The public 2D script ``train_telegraphers_2d.py`` and the
CIFAR-10 script were added on 2025-07-21 and used the sampler before the fix; the paper's
first version (2025-06-25) predates them, so which sampler produced its figures cannot be
read from the repository.

**Which law the pre-fix code sampled.** The sampler draws an atom (``+-c t`` with a fair
sign) with probability ``exp(-a t)``, computed separately and correctly. Otherwise it draws
``|K|`` from the inverse of the CDF of the evaluated density on ``[0, c t]``, built by a
cumulative trapezoid rule on a table of ``K + 1`` points and **divided by its last value**,
and attaches a fair sign. So the continuous part was renormalised to the
correct mass ``1 - exp(-a t)``, and in the limit of a fine table (the authors' 2D run uses
``M = 10000`` times by ``K = 4096`` levels; the table error is a separate, smaller matter,
see :class:`kacnb.theory.kac.KacTableSampler`) the sampled law is

* atoms ``exp(-a t)/2`` at ``x = -c t`` and ``x = +c t`` (unchanged), and
* on ``(-c t, c t)`` the density ``(1 - exp(-a t)) g(t, x) / integral g``, with
  ``g = a/(2c) exp(-a t) (I0(z) + (c/a) c t I1(z)/r)``, the formula with the slip.

**Meaning of the two terms.** By the Poisson-Beta construction (docs/paper-notes.md), the
``I0`` term of [30-31] is the law of ``K(t)`` on the event "odd number of switches" and the
``a t I1(z)/z`` term the law on "even number >= 2"; their masses are
``A(t) = (1 - exp(-2 a t))/2`` and ``B(t) = (1 - exp(-a t))^2/2``. The slip multiplies the
even part by ``w = c/a``: the pre-fix sampler draws the Kac process in which paths with an
even, non-zero number of switches are ``w`` times as likely as they should be (relative to
the odd ones). Since given ``n`` switches ``E[(K/(c t))^2] = 1/(n + 2)`` for odd ``n`` and
``1/(n + 1)`` for even ``n``, down-weighting the even part makes the law narrower: its
variance is below the exact one for every ``t > 0``. In the scaled variables ``a t`` and
``(a/c) x`` the exact law does not depend on ``(a, c)`` at all; the pre-fix law depends on
the pair only through ``w``.

Contents:

* :func:`parity_parts`: the two terms of [30-31] (odd and even switch counts);
* :class:`ParityWeightedLaw`: the law with the even part weighted by ``w`` and the continuous
  part renormalised to ``1 - exp(-a t)`` (``w = 1``: [30-31]; ``w = c/a``: the pre-fix
  sampler, :func:`prefix_law`): density, CDF, moments by quadrature, exact draws, and the
  velocity ``-d/dt F / p`` that moves it;
* :func:`prefix_second_moment`: a closed form of ``E K(t)^2`` for any ``w`` (test reference);
* :func:`moment_statistic` and :func:`moment_test_design`: a z test of the normalised second
  moment ``K^2 / E K(t)^2 - 1`` on training draws ``(t_i, K_i)`` with ``t_i ~ U(0, T)``, and
  the number of draws at which it detects the pre-fix law;
* :func:`pit_ks_distance`: the Kolmogorov-Smirnov distance of the probability-integral
  transform of the same draws, and its detection size (for comparison);
* :func:`continuity_check` and :func:`velocity_mismatch`: how far the pair (pre-fix law,
  exact velocity [41]) is from solving the continuity equation [2];
* :func:`compare`, :func:`monte_carlo` and :func:`claims`: the numbers and verdict rows of
  notebook 02, section 8.

All numerics are float64 on the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.stats as st
import torch

from .._checks import as_tensors, check_not_nan, check_times, positive_int, positive_scalar
from ..report import row
from .kac import _cone, _gauss_legendre, _i1e_over_z, kac_velocity
from .stats import kac_variance
from .telegraph import continuity_residual

__all__ = [
    "AUTHORS_REPO",
    "FIX_COMMIT",
    "BUG_COMMIT",
    "PAIRS",
    "DRAWS_PER_BATCH",
    "ITERATIONS",
    "THRESHOLDS",
    "parity_parts",
    "ParityWeightedLaw",
    "prefix_law",
    "exact_law",
    "prefix_second_moment",
    "moment_statistic",
    "moment_test_design",
    "pit_ks_distance",
    "continuity_check",
    "velocity_mismatch",
    "compare",
    "monte_carlo",
    "claims",
]

F64 = torch.float64
#: The authors' repository and the commits of the slip and of its fix (pull request #1).
AUTHORS_REPO = "JChemseddine/telegraphers"
BUG_COMMIT = "48b0f699"  # utils/sample_kac.py added, 2025-07-21
FIX_COMMIT = "433d50bd"  # "fix: correct computation for equation 20", merged 2025-08-26
#: The three Kac pairs of the 2D experiment (paper Figure 5) and the pair of the authors'
#: CIFAR-10 script and of the default arguments of their 2D script.
PAIRS = ((25.0, 5.0), (64.0, 8.0), (1600.0, 10.0), (9.0, 3.0))
#: One-dimensional draws of K per iteration of the authors' 2D run: batch 256, 2 components.
DRAWS_PER_BATCH = 256 * 2
#: Iterations of the authors' 2D run (train_telegraphers_2d.py, --ntrain).
ITERATIONS = 500_000
#: Verdict thresholds of :func:`claims` (the notebook's prose quotes them).
THRESHOLDS = {
    "min_variance_deficit": 1e-3,  # the pre-fix law's worst relative variance deficit, at least
    "quadrature_error": 1e-9,  # the quadrature's Var K(t) of the exact law vs the closed form
    "test_level": 0.01,  # level of the moment test (two-sided)
    "residual_ratio": 100.0,  # pre-fix residual over the exact pairing's, at least
    "exact_residual": 1e-3,  # the exact pairing's relative residual (truncation), below
}
_WINDOW_SIGMAS = 12.0  # quadrature window, as in kacnb.theory.kac (mass outside below exp(-72))
_GL_NODES = 128


# ---------------------------------------------------------------------------- the two parts
def parity_parts(t: torch.Tensor, x: torch.Tensor, a: float, c: float):
    """The two terms of the density [30-31]: ``(odd, even)``, each 0 for ``|x| >= c t``.

    ``odd = a/(2c) exp(-a t) I0(beta r)`` is the density of ``K(t)`` on the event of an odd
    number of switches, ``even = a/(2c) exp(-a t) a t I1(beta r)/(beta r)`` = the term
    ``a/(2c) exp(-a t) c t I1(beta r)/r`` of [30-31], the density on the event of an even
    number ``>= 2``; ``odd + even = u~``. Masses ``(1 - exp(-2at))/2`` and
    ``(1 - exp(-at))^2/2``. Units: density per unit of ``x``; ``t``, ``x`` broadcast.
    """
    t, x = torch.broadcast_tensors(t, x)
    _, inside, _, z, log_scale = _cone(t, x, a, c)
    pref = (a / (2.0 * c)) * torch.exp(log_scale)
    odd = pref * torch.special.i0e(z)
    even = pref * (a * t) * _i1e_over_z(z)
    zero = torch.zeros_like(odd)
    return torch.where(inside, odd, zero), torch.where(inside, even, zero)


def _part_masses(at: torch.Tensor):
    """Masses ``A = (1 - exp(-2 a t))/2`` (odd) and ``B = (1 - exp(-a t))^2/2`` (even >= 2)."""
    return -0.5 * torch.expm1(-2.0 * at), 0.5 * torch.expm1(-at) ** 2


def _window(at: torch.Tensor) -> torch.Tensor:
    """Half-width in the angle ``theta`` (``x = c t sin theta``) holding all but ``e^-72``."""
    return torch.clamp(_WINDOW_SIGMAS / torch.sqrt(at), max=math.pi / 2)


def _angle_parts(at: torch.Tensor, theta: torch.Tensor):
    """Integrands of the two parts in ``theta``: ``(odd, even)`` with ``x = c t sin(theta)``.

    ``u~ dx = (a t / 2) exp(-a t (1 - cos theta)) (cos theta i0e(z) + i1e(z)) d theta``,
    ``z = a t cos theta``: the first term is the odd part, the second the even part.
    """
    cos = torch.cos(theta)
    z = at * cos
    base = (at / 2.0) * torch.exp(-at * 2.0 * torch.sin(theta / 2.0) ** 2)
    return base * cos * torch.special.i0e(z), base * torch.special.i1e(z)


def _parts_cdf64(t: torch.Tensor, x: torch.Tensor, a: float, c: float, nodes: int = _GL_NODES):
    """``(integral_{-ct}^{x} odd, integral_{-ct}^{x} even)`` for ``|x| <= c t``, ``t > 0``.

    Gauss-Legendre in the angle on ``[-w, theta_x]`` within the window ``w``; float64, any
    broadcastable shapes.
    """
    t, x = torch.broadcast_tensors(t.to(F64), x.to(F64))
    gl_x, gl_w = _gauss_legendre(nodes, t.device)
    at = a * t
    w = _window(at)
    theta_x = torch.asin(torch.clamp(x / (c * t), -1.0, 1.0))
    lo = -w
    hi = torch.minimum(torch.maximum(theta_x, lo), w)
    mid, half = (hi + lo) / 2.0, (hi - lo) / 2.0
    theta = mid[..., None] + half[..., None] * gl_x
    odd, even = _angle_parts(at[..., None], theta)
    return half * (odd * gl_w).sum(-1), half * (even * gl_w).sum(-1)


def _parts_moment64(t: torch.Tensor, k: int, a: float, c: float, nodes: int = _GL_NODES):
    """``(integral x^k odd dx, integral x^k even dx)`` over the cone for even ``k``, ``t > 0``."""
    t = t.to(F64)
    gl_x, gl_w = _gauss_legendre(nodes, t.device)
    at = a * t
    w = _window(at)
    theta = (w / 2.0)[..., None] * (gl_x + 1.0)  # [0, w]; the parts are even in theta
    odd, even = _angle_parts(at[..., None], theta)
    xk = (c * t[..., None] * torch.sin(theta)) ** k
    scale = w  # 2 (both halves) * w/2 (Jacobian)
    return scale * (xk * odd * gl_w).sum(-1), scale * (xk * even * gl_w).sum(-1)


# ---------------------------------------------------------------------------- the law
@dataclass(frozen=True)
class ParityWeightedLaw:
    """The Kac law [30-31] with its even-switch part weighted by ``even_weight = w``.

    Atoms ``exp(-a t)/2`` at ``+-c t``; on ``(-c t, c t)`` the density
    ``p(t, x) = (1 - exp(-a t)) (odd + w even) / (A + w B)`` (:func:`parity_parts`,
    masses ``A``, ``B``), i.e. the continuous part renormalised to the correct mass, as the
    authors' table sampler did. ``w = 1`` is [30-31]; ``w = c/a`` is the law the authors'
    sampler drew before its fix (:func:`prefix_law`). Times ``t >= 0`` in the unit of
    ``1/a``, positions in the unit of ``x`` (``c`` is space per time); results are float64
    on the CPU.
    """

    a: float
    c: float
    even_weight: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "a", positive_scalar("a", self.a))
        object.__setattr__(self, "c", positive_scalar("c", self.c))
        object.__setattr__(self, "even_weight", positive_scalar("even_weight", self.even_weight))

    def __repr__(self) -> str:
        return f"ParityWeightedLaw(a={self.a:g}, c={self.c:g}, even_weight={self.even_weight:g})"

    @property
    def is_exact(self) -> bool:
        """True for ``w = 1``, the law [30-31]."""
        return self.even_weight == 1.0

    def _t(self, t) -> torch.Tensor:
        (t,) = as_tensors(t, dtype=F64)
        check_times(t)
        return t

    def _tx(self, t, x):
        t, x = as_tensors(t, x, dtype=F64)
        check_times(t)
        check_not_nan(x, "x")
        return torch.broadcast_tensors(t, x)

    def _norm(self, t: torch.Tensor) -> torch.Tensor:
        """``(1 - exp(-a t)) / (A + w B)``, with its limit 1 at ``t = 0``."""
        at = self.a * t
        mass_a, mass_b = _part_masses(at)
        raw = mass_a + self.even_weight * mass_b
        safe = torch.where(raw > 0, raw, torch.ones_like(raw))
        return torch.where(raw > 0, -torch.expm1(-at) / safe, torch.ones_like(raw))

    def atom_mass(self, t) -> torch.Tensor:
        """Total mass ``exp(-a t)`` of the two atoms (the same for every ``w``)."""
        return torch.exp(-self.a * self._t(t))

    def raw_density(self, t, x) -> torch.Tensor:
        """The evaluated formula ``odd + w even`` before renormalisation (mass ``A + w B``).

        For ``w = c/a`` this is [30-31] with ``i1e(z)/z`` in place of ``i1e(z)/r``.
        """
        t, x = self._tx(t, x)
        odd, even = parity_parts(t, x, self.a, self.c)
        return odd + self.even_weight * even

    def density(self, t, x) -> torch.Tensor:
        """Continuous part ``p(t, x)`` of the law, mass ``1 - exp(-a t)``; 0 off the cone."""
        t, x = self._tx(t, x)
        odd, even = parity_parts(t, x, self.a, self.c)
        return (odd + self.even_weight * even) * self._norm(t)

    def cdf(self, t, x) -> torch.Tensor:
        """``P(K(t) <= x)`` with both atoms (Gauss-Legendre quadrature in the angle)."""
        t, x = self._tx(t, x)
        ct = self.c * t
        out = torch.where(x >= ct, torch.ones_like(x), torch.zeros_like(x))
        inside = (x >= -ct) & (x < ct) & (t > 0)
        if bool(inside.any()):
            ti, xi = t[inside], x[inside]
            odd, even = _parts_cdf64(ti, xi, self.a, self.c)
            cont = (odd + self.even_weight * even) * self._norm(ti)
            out[inside] = 0.5 * torch.exp(-self.a * ti) + cont
        return out

    def moment(self, t, k: int) -> torch.Tensor:
        """``E[K(t)^k]`` for even ``k >= 2`` by quadrature: atoms ``(c t)^k exp(-a t)`` plus
        ``integral x^k p(t, x) dx``. Units: ``x^k``; shape of ``t``."""
        if k < 2 or k % 2:
            raise ValueError(f"k must be an even integer >= 2, got {k!r}")
        t = self._t(t)
        pos = t > 0
        tp = torch.where(pos, t, torch.ones_like(t))
        odd, even = _parts_moment64(tp, k, self.a, self.c)
        cont = (odd + self.even_weight * even) * self._norm(tp)
        val = (self.c * tp) ** k * torch.exp(-self.a * tp) + cont
        return torch.where(pos, val, torch.zeros_like(val))

    def variance(self, t) -> torch.Tensor:
        """``Var K(t) = E K(t)^2`` by quadrature (the mean is 0)."""
        return self.moment(t, 2)

    def sample(self, t, dim: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        """Exact draws of the law, shape ``t.shape + (dim,)``, float64.

        An atom with probability ``exp(-a t)``; otherwise a switch count ``N >= 1`` from the
        Poisson law conditioned on ``N >= 1`` (first switch time from the truncated
        exponential law, then a Poisson number of further switches) kept with probability
        ``min(1, 1/w)`` if odd and ``min(1, w)`` if even (rejection; acceptance at least
        ``min(w, 1/w)/2``), then ``K = B c t (2Y - 1)`` with
        ``Y ~ Beta(floor(N/2) + 1, ceil(N/2))`` and a fair sign ``B``, as in
        :func:`kacnb.theory.kac.kac_sample`. For ``w = 1`` this is the exact law of ``K(t)``.
        """
        t = self._t(t)
        positive_int("dim", dim)
        a, c, w = self.a, self.c, self.even_weight
        tt = t.unsqueeze(-1).expand(*t.shape, dim).reshape(-1)
        at = a * tt
        dev = tt.device
        atom = torch.rand(at.shape, generator=generator, dtype=F64, device=dev) < torch.exp(-at)
        n = torch.ones_like(at)
        pending = torch.nonzero(~atom).squeeze(1)
        keep_odd, keep_even = min(1.0, 1.0 / w), min(1.0, w)
        while pending.numel():
            x = at[pending]
            u = torch.rand(x.shape, generator=generator, dtype=F64, device=dev)
            first = -torch.log1p(u * torch.expm1(-x))  # a * (first switch time) given N >= 1
            m = 1.0 + torch.poisson((x - first).clamp_min(0.0), generator=generator)
            odd = torch.remainder(m, 2.0) == 1.0
            keep = torch.rand(x.shape, generator=generator, dtype=F64, device=dev) < torch.where(
                odd, torch.full_like(x, keep_odd), torch.full_like(x, keep_even)
            )
            n[pending[keep]] = m[keep]
            pending = pending[~keep]
        alpha = torch.floor(n / 2.0) + 1.0
        beta = torch.ceil(n / 2.0)
        g1 = torch._standard_gamma(alpha, generator=generator)
        g2 = torch._standard_gamma(beta, generator=generator)
        frac = torch.where(atom, torch.ones_like(g1), (g1 - g2) / (g1 + g2))
        sign = 2.0 * torch.randint(0, 2, at.shape, generator=generator, device=dev).to(F64) - 1.0
        return (sign * c * tt * frac).reshape(*t.shape, dim)

    def flux_velocity(self, t, x, rel_step: float = 1e-5) -> torch.Tensor:
        """The velocity that moves this law: ``v = -(d/dt P(K(t) <= x)) / p(t, x)`` inside
        the cone, the atoms moving with ``+-c``.

        The time derivative at fixed ``x`` is formed along the ray ``x = c s u``,
        ``u = x/(c t)`` fixed, which stays inside the cone for ``s`` near ``t``:
        ``d/dt F(t, x) = d/ds F(s, c s u) - c u p(t, x)``, so ``v = c u - (d/ds F(s, c s u))
        / p``, with a central difference of step ``rel_step * t``. For ``w = 1`` this is the
        velocity [41] (Thm 4); for the pre-fix law it is the field a flow would need to
        transport the sampled law. Units: ``x`` per unit time; needs ``|x| < c t``.
        """
        t, x = self._tx(t, x)
        h = rel_step * t
        u = x / (self.c * t)
        d_ray = (self.cdf(t + h, self.c * (t + h) * u) - self.cdf(t - h, self.c * (t - h) * u)) / (
            2.0 * h
        )
        return self.c * u - d_ray / self.density(t, x)


def prefix_law(a: float, c: float) -> ParityWeightedLaw:
    """The law the authors' sampler drew before pull request #1: ``w = c/a``."""
    return ParityWeightedLaw(a, c, c / a)


def exact_law(a: float, c: float) -> ParityWeightedLaw:
    """The law [30-31] of ``K(t)`` (``w = 1``)."""
    return ParityWeightedLaw(a, c, 1.0)


def prefix_second_moment(t, a: float, c: float, even_weight: float) -> np.ndarray:
    """Closed form of ``E K(t)^2`` for :class:`ParityWeightedLaw` (float64 NumPy, shape of t).

    Given ``n`` switches, ``E[(K/(ct))^2 | n] = 1/(n + 2)`` (odd ``n``) or ``1/(n + 1)``
    (even ``n >= 2``); summing against the Poisson weights with ``1/(n+2) = int_0^1 s^(n+1)``
    gives, with ``x = a t``,
    ``S_odd = exp(-x)(cosh x / x - sinh x / x^2)`` and ``S_even = exp(-x)(sinh x / x - 1)``,
    and ``E K^2 = (c t)^2 (exp(-x) + (1 - exp(-x)) (S_odd + w S_even)/(A + w B))``.
    ``w = 1`` reproduces ``(c^2/a)(t - (1 - exp(-2at))/(2a))``. Series are used for
    ``x < 1e-2``, where the closed forms cancel.
    """
    t = np.asarray(t, dtype=np.float64)
    x = a * t
    small = x < 1e-2
    xs = np.where(small, 1.0, x)
    e2 = np.exp(-2.0 * xs)
    s_odd = np.where(
        small,
        np.exp(-x) * (x / 3.0 + x**3 / 30.0 + x**5 / 840.0),
        (1.0 + e2) / (2.0 * xs) - (1.0 - e2) / (2.0 * xs**2),
    )
    s_even = np.where(
        small,
        np.exp(-x) * (x**2 / 6.0 + x**4 / 120.0 + x**6 / 5040.0),
        (1.0 - e2) / (2.0 * xs) - np.exp(-xs),
    )
    mass_a = -0.5 * np.expm1(-2.0 * x)
    mass_b = 0.5 * np.expm1(-x) ** 2
    raw = mass_a + even_weight * mass_b
    safe = np.where(raw > 0, raw, 1.0)
    cont = np.where(raw > 0, -np.expm1(-x) * (s_odd + even_weight * s_even) / safe, 0.0)
    return (c * t) ** 2 * (np.exp(-x) + cont)


# ---------------------------------------------------------------------------- tests
def _t_nodes(a: float, T: float, panels: int = 24, per_panel: int = 8):
    """Composite Gauss-Legendre nodes and weights for ``integral_0^T dt``: one panel
    ``[0, t1]`` with ``t1 = min(T, 0.01/a)``, then panels with geometric edges up to ``T``
    (the laws differ most for ``a t`` of order 1)."""
    t1 = min(T, 0.01 / a)
    edges = np.concatenate([[0.0], np.geomspace(t1, T, panels)]) if t1 < T else np.array([0, T])
    gx, gw = np.polynomial.legendre.leggauss(per_panel)
    lo, hi = edges[:-1, None], edges[1:, None]
    nodes = ((lo + hi) / 2 + (hi - lo) / 2 * gx).reshape(-1)
    weights = ((hi - lo) / 2 * gw).reshape(-1)
    return nodes, weights


def moment_statistic(t, k, a: float, c: float) -> dict[str, float]:
    """z test of ``E[K(t)^2] = Var K(t)`` on draws ``(t_i, k_i)``.

    ``t``: times (B,) of the draws, ``k``: draws (B,) or (B, d) (components sharing a time).
    With ``q = k^2 / Var K(t) - 1`` (``Var`` from :func:`kacnb.theory.stats.kac_variance`), a
    correct sampler gives ``E[q | t] = 0`` whatever the law of ``t``, and the components are
    conditionally independent, so ``z = mean(q) / (sd(q)/sqrt(n))`` is about N(0, 1) for
    the ``n`` values. Returns ``n``, ``z`` and the two-sided ``p_value``; a sampler whose
    law is too narrow gives ``z < 0``.
    """
    tt = torch.as_tensor(t, dtype=F64).reshape(-1)
    kk = torch.as_tensor(k, dtype=F64).reshape(tt.shape[0], -1)
    m2 = torch.as_tensor(kac_variance(a, c, tt.numpy()), dtype=F64)
    q = (kk**2 / m2[:, None] - 1.0).reshape(-1)
    n = q.numel()
    if n < 2:
        raise ValueError("need at least 2 draws")
    z = float(q.mean() / (q.std() / math.sqrt(n)))
    return {"n": float(n), "z": z, "p_value": float(2.0 * st.norm.sf(abs(z)))}


def moment_test_design(
    law: ParityWeightedLaw, T: float = 1.0, level: float = 0.01
) -> dict[str, float]:
    """Power of :func:`moment_statistic` when the draws follow ``law``, ``t ~ U(0, T)``.

    ``mu = E[q]`` (the mean shift of ``q = K^2/Var K(t) - 1``), ``sigma0`` and ``sigma1`` its
    standard deviations under the exact law and under ``law`` (moments of order 2 and 4 by
    quadrature, averaged over ``t`` with :func:`_t_nodes`), and ``n_star``: the number of
    draws at which the expected ``|z| = sqrt(n) |mu| / sigma1`` reaches the two-sided
    critical value ``z_crit`` of ``level`` (then the test detects ``law`` about half of the
    time, and with probability above 99 % at ``4 n_star``); ``inf`` when ``mu = 0``.
    """
    T = positive_scalar("T", T)
    nodes, weights = _t_nodes(law.a, T)
    t = torch.as_tensor(nodes, dtype=F64)
    exact = exact_law(law.a, law.c)
    m2e = torch.as_tensor(kac_variance(law.a, law.c, nodes), dtype=F64)
    m2 = law.moment(t, 2)
    m4 = law.moment(t, 4)
    m4e = exact.moment(t, 4)
    wt = torch.as_tensor(weights, dtype=F64) / T
    mu = float((wt * (m2 / m2e - 1.0)).sum())
    second1 = float((wt * (m4 / m2e**2 - 2.0 * m2 / m2e + 1.0)).sum())
    sigma0 = math.sqrt(float((wt * m4e / m2e**2).sum()) - 1.0)
    sigma1 = math.sqrt(max(second1 - mu * mu, 0.0))
    z_crit = float(st.norm.isf(level / 2.0))
    n_star = (z_crit * sigma1 / abs(mu)) ** 2 if mu != 0.0 else math.inf
    return {"mu": mu, "sigma0": sigma0, "sigma1": sigma1, "z_crit": z_crit, "n_star": n_star}


def pit_ks_distance(
    law: ParityWeightedLaw,
    T: float = 1.0,
    level: float = 0.01,
    n_grid: int = 201,
    gl_nodes: int = 48,
) -> dict[str, float]:
    """KS distance ``D`` of the probability-integral transform of draws of ``law``.

    For draws ``(t_i, K_i)``, ``t_i ~ U(0, T)``, the randomised transform
    ``U = F(t, K-) + V (F(t, K) - F(t, K-))`` with the exact CDF ``F`` of [30-31] and
    ``V ~ U(0, 1)`` is uniform for a correct sampler; under ``law`` its CDF is
    ``G(u) = (1/T) integral (F_law(t, Q(t, u)) - F(t, Q(t, u)) + u) dt`` (``Q``: the exact
    quantile; the atoms are the same in both laws). Returns ``D = sup_u |G(u) - u|``, the
    largest ``sup_x |F_law(t, x) - F(t, x)|`` over the time nodes (``ks_max_t``) with its
    time ``t_worst``, and ``n_star = (k_crit / D)^2`` with the Kolmogorov critical value
    ``k_crit`` of ``level`` (1.63 at 1%): the draws at which a one-sample KS test of the
    transformed draws detects ``law`` about half of the time.
    """
    T = positive_scalar("T", T)
    a, c = law.a, law.c
    nodes, weights = _t_nodes(a, T)
    t = torch.as_tensor(nodes, dtype=F64)[:, None]
    w = _window(a * t)
    theta = w * torch.linspace(-1.0, 1.0, n_grid, dtype=F64)[None, :]
    x = c * t * torch.sin(theta)
    odd, even = _parts_cdf64(t, x, a, c, nodes=gl_nodes)
    atom = 0.5 * torch.exp(-a * t)
    f_exact = (atom + odd + even).numpy()  # A + B = 1 - exp(-a t): no renormalisation
    f_law = (atom + (odd + law.even_weight * even) * law._norm(t)).numpy()
    levels = np.linspace(0.0, 1.0, 4001)
    g = np.zeros_like(levels)
    for i in range(len(nodes)):
        d = np.interp(levels, f_exact[i], f_law[i] - f_exact[i], left=0.0, right=0.0)
        g += weights[i] / T * d
    diff = np.abs(f_law - f_exact).max(axis=1)
    dist = float(np.abs(g).max())
    k_crit = float(st.kstwobign.isf(level))
    return {
        "D": dist,
        "ks_max_t": float(diff.max()),
        "t_worst": float(nodes[int(diff.argmax())]),
        "k_crit": k_crit,
        "n_star": (k_crit / dist) ** 2 if dist > 0 else math.inf,
    }


def continuity_check(
    law: ParityWeightedLaw,
    at_range: tuple[float, float] = (0.5, 20.0),
    n_t: int = 40,
    n_x: int = 61,
    steps: Sequence[float] = (2e-3, 1e-3),
) -> dict[str, object]:
    """Residual of ``d/dt p + d/dx(p v) = 0`` [2] for the pair (``law``, velocity [41]).

    Grid: ``n_t`` times with ``a t`` log-spaced in ``at_range`` and ``x = c t u``,
    ``u`` in ``[-0.95, 0.95]`` (``n_x`` points), so the stencil stays inside the cone;
    central differences (:func:`kacnb.theory.telegraph.continuity_residual`) with steps
    ``h / a`` in time and ``h c / a`` in space for each ``h`` of ``steps`` (the pair is
    scale-free in ``a t`` and ``(a/c) x``). The residual is taken relative to
    ``max_x |d/dt p|`` at the same time, as in notebook 02, section 5. Returns ``max``
    (per step, the largest relative residual) and ``ratio`` (first over last step: about
    ``(h1/h2)^2`` when only the truncation error is left, about 1 when the pair is not a
    solution), and for the last step the times ``at`` (as ``a t``) with the largest relative
    residual at each (``per_t``). Dimensionless.
    """
    a, c = law.a, law.c
    t = torch.logspace(math.log10(at_range[0] / a), math.log10(at_range[1] / a), n_t, dtype=F64)[
        :, None
    ]
    x = c * t * torch.linspace(-0.95, 0.95, n_x, dtype=F64)[None, :]

    def velocity(tt, xx):
        return kac_velocity(tt, xx, a, c)

    out, per_t = [], None
    for h in steps:
        res, d_t, _ = continuity_residual(law.density, velocity, t, x, h / a, h * c / a)
        scale = d_t.abs().amax(dim=1, keepdim=True)
        per_t = (res.abs() / scale).amax(dim=1)
        out.append(float(per_t.max()))
    return {
        "max": out,
        "ratio": out[0] / out[-1],
        "steps": list(steps),
        "at": (a * t[:, 0]).numpy(),
        "per_t": per_t.numpy(),
    }


def velocity_mismatch(law: ParityWeightedLaw, t: float, nodes: int = 64) -> float:
    """``||v - v_law||_{L2(p)} / ||v||_{L2(p)}`` over the continuous part ``p`` of ``law``.

    ``v`` is the velocity [41], ``v_law`` = :meth:`ParityWeightedLaw.flux_velocity`, the
    field that actually moves ``law``: what a flow trained on draws of ``law`` with the
    target [41] misses. Gauss-Legendre in the angle over the central part of the law (six
    standard deviations for large ``a t``, the whole cone for ``a t <= 14.6``; the integrand
    is even in ``x``). Dimensionless; 0 for the exact law up to the finite-difference
    error (about 1e-10).
    """
    a, c = law.a, law.c
    t = positive_scalar("t", t)
    tt = torch.tensor(t, dtype=F64)
    gl_x, gl_w = _gauss_legendre(nodes, torch.device("cpu"))
    # half the quadrature window (6 standard deviations, mass outside below 1e-8): further
    # out the density is so small that the finite difference of the CDF is round-off
    w = min(0.5 * _WINDOW_SIGMAS / math.sqrt(a * t), math.pi / 2)
    theta = (w / 2.0) * (gl_x + 1.0)
    x = c * t * torch.sin(theta)
    weight = gl_w * torch.cos(theta) * law.density(tt, x)
    v = kac_velocity(tt, x, a, c)
    v_law = law.flux_velocity(tt, x)
    return math.sqrt(float((weight * (v - v_law) ** 2).sum() / (weight * v**2).sum()))


# ---------------------------------------------------------------------------- notebook 02
def compare(
    pairs: Sequence[tuple[float, float]] = PAIRS,
    T: float = 1.0,
    n_t: int = 200,
    even_weight: float | None = None,
) -> list[dict[str, object]]:
    """All numbers of the comparison, one dict per pair ``(a, c)``.

    The "pre-fix" law is :func:`prefix_law` unless ``even_weight`` is given (``1.0`` makes
    it the exact law: the flip test of :func:`claims`). Keys: ``a``, ``c``, ``w``;
    ``var_exact`` (closed form) and ``var_exact_quad``, ``var_prefix`` (quadrature) at
    ``T``; ``deficit_T = 1 - var_prefix/var_exact``; ``deficit_max`` and ``at_worst``
    (largest deficit over ``n_t`` log-spaced times in ``(0, T]`` and its ``a t``);
    ``test`` (:func:`moment_test_design`), ``pit`` (:func:`pit_ks_distance`),
    ``continuity`` and ``continuity_exact`` (:func:`continuity_check` of the two pairings),
    ``mismatch_T`` and ``mismatch_max`` (:func:`velocity_mismatch` at ``T`` and the largest
    over ``a t`` in ``{1, 2, 5, 10}``).
    """
    rows = []
    for a, c in pairs:
        a, c = float(a), float(c)
        w = c / a if even_weight is None else float(even_weight)
        law = ParityWeightedLaw(a, c, w)
        exact = exact_law(a, c)
        times = torch.logspace(math.log10(0.05 / a), math.log10(T), n_t, dtype=F64)
        var_e = torch.as_tensor(kac_variance(a, c, times.numpy()), dtype=F64)
        deficit = 1.0 - law.variance(times) / var_e
        worst = int(deficit.abs().argmax())
        t_end = torch.tensor(T, dtype=F64)
        var_exact = float(kac_variance(a, c, T))
        var_prefix = float(law.variance(t_end))
        quad_err = float((exact.variance(times) / var_e - 1.0).abs().max())
        rows.append(
            {
                "a": a,
                "c": c,
                "w": w,
                "var_exact": var_exact,
                "var_exact_quad_err": quad_err,
                "var_prefix": var_prefix,
                "deficit_T": 1.0 - var_prefix / var_exact,
                "deficit_max": float(deficit[worst]),
                "at_worst": float(a * times[worst]),
                "test": moment_test_design(law, T),
                "pit": pit_ks_distance(law, T),
                "continuity": continuity_check(law),
                "continuity_exact": continuity_check(exact),
                "mismatch_T": velocity_mismatch(law, T),
                "mismatch_max": max(velocity_mismatch(law, s / a) for s in (1.0, 2.0, 5.0, 10.0)),
            }
        )
    return rows


def monte_carlo(
    rows: Sequence[dict],
    n_batches: int,
    T: float = 1.0,
    generator: torch.Generator | None = None,
    prefix_sampler=None,
) -> list[dict[str, float]]:
    """The moment test on simulated training draws: ``n_batches`` batches of 256 times
    ``t ~ U(0, T)`` with 2 components each, per pair of ``rows`` (from :func:`compare`).

    For each pair: ``z_exact`` from draws of the exact law (:func:`kacnb.theory.kac.kac_sample`),
    ``z_prefix`` from draws of the pre-fix law (``prefix_sampler(law, t, generator)``,
    default :meth:`ParityWeightedLaw.sample` with ``dim=2``), and ``z_expected`` =
    ``-sqrt(n) |mu| / sigma1``, the mean of ``z_prefix`` predicted by
    :func:`moment_test_design` (the sign: the pre-fix law is narrower).
    """
    from .kac import kac_sample

    positive_int("n_batches", n_batches)
    out = []
    for r in rows:
        a, c = r["a"], r["c"]
        law = ParityWeightedLaw(a, c, r["w"])
        n_t = n_batches * (DRAWS_PER_BATCH // 2)
        t = T * torch.rand(n_t, generator=generator, dtype=F64)
        k_exact = kac_sample(t, a, c, dim=2, generator=generator)
        if prefix_sampler is None:
            k_prefix = law.sample(t, dim=2, generator=generator)
        else:
            k_prefix = prefix_sampler(law, t, generator)
        ze = moment_statistic(t, k_exact, a, c)
        zp = moment_statistic(t, k_prefix, a, c)
        design = r["test"]
        mean = -math.sqrt(zp["n"]) * abs(design["mu"]) / design["sigma1"]
        out.append(
            {
                "a": a,
                "c": c,
                "n": zp["n"],
                "z_exact": ze["z"],
                "z_prefix": zp["z"],
                "z_expected": mean,
            }
        )
    return out


def claims(rows: Sequence[dict], mc: Sequence[dict]) -> list[dict]:
    """The verdict rows of notebook 02, section 8, from :func:`compare` and
    :func:`monte_carlo`. Each row is a claim of our analysis of the pre-fix sampler
    (marked "pitfall"); thresholds are :data:`THRESHOLDS`.

    1. the pre-fix law is not [30-31]: the largest relative variance deficit of every pair
       exceeds ``min_variance_deficit`` while the same quadrature reproduces the exact
       variance to ``quadrature_error``;
    2. one batch of the authors' 2D run (512 draws) cannot detect it with the moment test at
       ``test_level``, a run of :data:`ITERATIONS` batches can: ``512 < n_star <
       ITERATIONS * 512`` for every pair;
    3. the Monte-Carlo z values agree with that design: ``|z_exact|`` and
       ``|z_prefix - z_expected|`` below the Bonferroni-corrected critical value;
    4. the pair (pre-fix law, velocity [41]) does not solve the continuity equation: its
       relative residual exceeds ``residual_ratio`` times that of the exact pairing, which
       stays below ``exact_residual``.
    """
    th = THRESHOLDS
    n_pairs = len(rows)
    deficits = [r["deficit_max"] for r in rows]
    quad = max(r["var_exact_quad_err"] for r in rows)
    labels = " ".join(f"({r['a']:g},{r['c']:g})" for r in rows)
    n_star = [r["test"]["n_star"] for r in rows]
    budget = ITERATIONS * DRAWS_PER_BATCH
    z_b = float(st.norm.isf(th["test_level"] / (2.0 * 2 * len(mc)))) if mc else math.nan
    z_ex = max((abs(m["z_exact"]) for m in mc), default=math.nan)
    z_gap = max((abs(m["z_prefix"] - m["z_expected"]) for m in mc), default=math.nan)
    res_pre = min(r["continuity"]["max"][-1] for r in rows)
    res_ex = max(r["continuity_exact"]["max"][-1] for r in rows)
    mismatch = max(r["mismatch_max"] for r in rows)

    def batches(n: float) -> str:
        return "inf" if not math.isfinite(n) else f"{n / DRAWS_PER_BATCH:.3g}"

    return [
        row(
            "pitfall: pre-fix sampler (I1 term x c/a) draws a narrower law than [30-31]",
            f"max Var deficit {min(deficits):.1%}-{max(deficits):.1%} ({labels});"
            f" quad. err {quad:.0e}",
            f"> {th['min_variance_deficit']:g} each; < {th['quadrature_error']:g}",
            n_pairs > 0
            and min(deficits) > th["min_variance_deficit"]
            and quad < th["quadrature_error"],
        ),
        row(
            "pitfall: moment test misses it in 1 batch (512 draws), finds it in a 500k run",
            f"n* = {', '.join(batches(n) for n in n_star)} batches",
            f"1 < n*/512 < {ITERATIONS:.0e} each (level {th['test_level']:g})",
            n_pairs > 0 and all(DRAWS_PER_BATCH < n < budget for n in n_star),
        ),
        row(
            "pitfall: simulated draws: exact passes, pre-fix gives the predicted z",
            f"max|z exact| {z_ex:.2f}, max|z pre-fix - predicted| {z_gap:.2f}",
            f"both < {z_b:.2f}",
            bool(mc) and z_ex < z_b and z_gap < z_b,
        ),
        row(
            "pitfall: (pre-fix law, v of [41]) violates the continuity equation [2]",
            f"rel. res. >= {res_pre:.1e} vs exact <= {res_ex:.1e}; v mismatch <= {mismatch:.1%}",
            f"ratio > {th['residual_ratio']:g}, exact < {th['exact_residual']:g}",
            n_pairs > 0
            and res_pre > th["residual_ratio"] * res_ex
            and res_ex < th["exact_residual"],
        ),
    ]
