"""Statistics helpers for comparing draws with known laws (used by notebook 02).

The law of the Kac process ``K(t)`` has two atoms of mass ``exp(-a t)/2`` at ``+-c t`` and a
continuous part ``u~`` on ``(-c t, c t)`` [30-31], so the usual one-sample tools need care:

* :func:`ks_distance` is the Kolmogorov-Smirnov distance ``sup_x |F_n(x) - F(x)|`` for a CDF
  ``F`` that may jump (it needs the left limits ``F(x-)`` at the sample points);
* :class:`TabulatedLaw` stores a law as atoms plus a tabulated continuous CDF, and
  :func:`kac_law` builds it for ``K(t)`` from :meth:`kacnb.Kac.cdf`, so that the CDF can be
  evaluated at millions of draws by interpolation;
* :func:`snap_atoms` separates the draws that sit on the atoms;
* histogram tools (:func:`histogram_density`, :func:`bin_probabilities`,
  :func:`histogram_l1`, :func:`expected_histogram_l1`) give a histogram error together with
  its exact Monte-Carlo expectation, so that a measured error can be compared with the noise
  floor of the sample size;
* :func:`binned_mean` estimates a conditional expectation ``E[Y | X in bin]`` with its
  standard error (for ``v(t, x) = E[dK/dt | K(t) = x]``, [94]);
* :func:`loglog_slope` fits a power law ``y ~ C x^s``;
* :func:`max_abs_z` and :func:`agrees` compare Monte-Carlo estimates with reference values
  in units of their standard errors (the "agree" verdicts of the notebooks).

All functions work in float64 NumPy; tensors are accepted and converted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.special as sp
import scipy.stats as st

__all__ = [
    "ks_distance",
    "kolmogorov_pvalue",
    "TabulatedLaw",
    "kac_law",
    "snap_atoms",
    "compare_with_kac_law",
    "kac_variance",
    "histogram_density",
    "bin_probabilities",
    "histogram_l1",
    "expected_histogram_l1",
    "binned_mean",
    "loglog_slope",
    "max_abs_z",
    "agrees",
]

ArrayFn = Callable[[np.ndarray], np.ndarray]


def _np(x) -> np.ndarray:
    """Float64 NumPy copy of an array-like or a (CPU or CUDA) tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


# ---------------------------------------------------------------------------- KS distance
def ks_distance(samples, cdf: ArrayFn, cdf_left: ArrayFn | None = None) -> float:
    """Kolmogorov-Smirnov distance ``sup_x |F_n(x) - F(x)|`` of draws against a CDF.

    ``F_n`` is the empirical CDF of ``samples`` (any shape, flattened). ``cdf`` is the
    right-continuous ``F``; ``cdf_left`` gives the left limits ``F(x-)`` and is needed when
    ``F`` has atoms (``None``: ``F`` is continuous). Between two consecutive distinct sample
    values ``F_n`` is constant and ``F`` is monotone, so the supremum is attained at a sample
    value ``s`` either as ``|F_n(s) - F(s)|`` or as ``|F_n(s-) - F(s-)|``; ties (draws that
    sit on an atom) are handled by counting them together. Dimensionless, in ``[0, 1]``.
    """
    x = _np(samples).reshape(-1)
    if x.size == 0:
        raise ValueError("samples must not be empty")
    if np.isnan(x).any():
        raise ValueError("samples must not contain NaN")
    values, counts = np.unique(x, return_counts=True)
    n = x.size
    upper = np.cumsum(counts) / n  # F_n(s)
    lower = upper - counts / n  # F_n(s-)
    f_right = np.asarray(cdf(values), dtype=np.float64)
    f_left = f_right if cdf_left is None else np.asarray(cdf_left(values), dtype=np.float64)
    return float(max(np.abs(upper - f_right).max(), np.abs(lower - f_left).max()))


def kolmogorov_pvalue(distance: float, n: int) -> float:
    """P-value of a KS distance for ``n`` draws from a continuous ``F`` (exact law of the
    one-sample statistic, ``scipy.stats.kstwo``). For an ``F`` with atoms the statistic is
    stochastically smaller, so the value is conservative (too large)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n!r}")
    return float(st.kstwo.sf(distance, n))


# ---------------------------------------------------------------------------- tabulated law
@dataclass(frozen=True)
class TabulatedLaw:
    """A law on the line: atoms plus a continuous part with a tabulated CDF.

    ``grid`` (increasing, shape (N,)) and ``continuous_cdf_values`` (nondecreasing, same
    shape) tabulate ``C(x) = mu_cont((-inf, x])``, with ``C = 0`` left of the grid and
    ``C = continuous_cdf_values[-1]`` (the continuous mass) right of it; between nodes ``C``
    is interpolated linearly (an ``O(h^2)`` error for a smooth density). ``atoms`` and
    ``masses`` (shape (M,)) are the atom locations and their masses.
    """

    grid: np.ndarray
    continuous_cdf_values: np.ndarray
    atoms: np.ndarray
    masses: np.ndarray

    def __post_init__(self):
        grid = _np(self.grid)
        vals = _np(self.continuous_cdf_values)
        if grid.ndim != 1 or grid.shape != vals.shape or grid.size < 2:
            raise ValueError("grid and continuous_cdf_values must be 1D of equal size >= 2")
        if np.any(np.diff(grid) <= 0):
            raise ValueError("grid must be increasing")
        if np.any(np.diff(vals) < -1e-12):
            raise ValueError("continuous_cdf_values must be nondecreasing")
        atoms, masses = _np(self.atoms).reshape(-1), _np(self.masses).reshape(-1)
        if atoms.shape != masses.shape or np.any(masses < 0):
            raise ValueError("atoms and masses must have equal size, masses >= 0")
        object.__setattr__(self, "grid", grid)
        object.__setattr__(self, "continuous_cdf_values", vals)
        object.__setattr__(self, "atoms", atoms)
        object.__setattr__(self, "masses", masses)

    @property
    def continuous_mass(self) -> float:
        """Total mass of the continuous part."""
        return float(self.continuous_cdf_values[-1])

    def continuous_cdf(self, x) -> np.ndarray:
        """``C(x)``, the continuous part's mass on ``(-inf, x]`` (not normalised)."""
        return np.interp(_np(x), self.grid, self.continuous_cdf_values, left=0.0)

    def conditional_cdf(self, x) -> np.ndarray:
        """CDF of the continuous part normalised to mass 1 (the law given 'no atom')."""
        return self.continuous_cdf(x) / self.continuous_mass

    def cdf(self, x) -> np.ndarray:
        """``F(x) = C(x) + sum of the masses of the atoms <= x``."""
        x = _np(x)
        return self.continuous_cdf(x) + ((x[..., None] >= self.atoms) * self.masses).sum(-1)

    def cdf_left(self, x) -> np.ndarray:
        """``F(x-) = C(x) + sum of the masses of the atoms < x``."""
        x = _np(x)
        return self.continuous_cdf(x) + ((x[..., None] > self.atoms) * self.masses).sum(-1)


def kac_law(kac, t: float, n_grid: int = 4097) -> TabulatedLaw:
    """The law of ``K(t)`` [30-31] as a :class:`TabulatedLaw`.

    The continuous CDF is :meth:`kacnb.Kac.cdf` (Gauss-Legendre quadrature of ``u~``) on
    ``n_grid`` equally spaced points of ``[-c t, c t]`` minus the lower atom; the atoms are
    ``-c t`` and ``+c t`` with mass ``exp(-a t)/2`` each. For ``t = 0`` the law is a single
    atom of mass 1 at 0.
    """
    import torch

    t = float(t)
    if not math.isfinite(t) or t < 0:
        raise ValueError(f"t must be a finite number >= 0, got {t!r}")
    if n_grid < 2:
        raise ValueError(f"n_grid must be >= 2, got {n_grid!r}")
    if t == 0.0:
        return TabulatedLaw(np.array([-1.0, 1.0]), np.zeros(2), np.zeros(1), np.ones(1))
    ct = kac.c * t
    half_atom = 0.5 * math.exp(-kac.a * t)
    grid = np.linspace(-ct, ct, n_grid)
    total = kac.cdf(torch.tensor(t, dtype=torch.float64), torch.as_tensor(grid)).numpy()
    cont = np.clip(total - half_atom, 0.0, None)
    cont[0] = 0.0
    cont[-1] = 1.0 - 2.0 * half_atom  # Kac.cdf(ct) also counts the upper atom
    cont = np.maximum.accumulate(cont)
    return TabulatedLaw(grid, cont, np.array([-ct, ct]), np.array([half_atom, half_atom]))


def snap_atoms(samples, atoms: Sequence[float], rtol: float = 1e-6):
    """Move draws within ``rtol * max|atom|`` of an atom exactly onto it.

    Samplers that work in float32 put an atom draw at ``float32(c t)``, which differs from
    the float64 location ``c t`` in the last bits; a KS distance against a CDF with atoms
    would count that as a full atom's mass of error. Returns ``(snapped, on_atom)``: the
    float64 draws (shape of ``samples``) and a boolean mask of the draws on an atom.
    """
    x = _np(samples).copy()
    atoms = _np(atoms).reshape(-1)
    tol = rtol * max(1.0, float(np.abs(atoms).max())) if atoms.size else 0.0
    on_atom = np.zeros(x.shape, dtype=bool)
    for loc in atoms:
        hit = np.abs(x - loc) <= tol
        x[hit] = loc
        on_atom |= hit
    return x, on_atom


def compare_with_kac_law(draws, kac, t: float, n_grid: int = 4097) -> dict[str, float]:
    """Compare draws of ``K(t)`` (any sampler) with its law [30-31].

    The draws (any shape, flattened) are split by :func:`snap_atoms` into atom draws and
    continuous draws. Returns a dict with

    * ``n``: number of draws; ``atom_freq``: share of draws on the atoms; ``atom_mass``:
      ``exp(-a t)``; ``atom_z``: ``(atom_freq - atom_mass) / sqrt(atom_mass (1 - atom_mass)/n)``,
      about N(0, 1) for a correct sampler (0 when both are 0);
    * ``n_continuous`` and ``ks_continuous``: KS distance of the continuous draws against
      the continuous part conditioned to mass 1, with its ``ks_continuous_pvalue``
      (:func:`kolmogorov_pvalue`) and the scaled ``ks_continuous_sqrt_n`` (Kolmogorov's
      statistic: mean 0.87, 99% quantile 1.63 for a correct sampler);
    * ``ks_full``: KS distance of all draws against the full CDF, atoms included.
    """
    law = kac_law(kac, t, n_grid)
    x, on_atom = snap_atoms(draws, law.atoms)
    x, on_atom = x.reshape(-1), on_atom.reshape(-1)
    n = x.size
    inner = x[~on_atom]
    mass = float(math.exp(-kac.a * t))
    freq = float(on_atom.mean())
    se = math.sqrt(mass * (1.0 - mass) / n)
    if se > 0:
        z = (freq - mass) / se
    else:
        z = 0.0 if freq == mass else math.copysign(math.inf, freq - mass)
    ks_c = ks_distance(inner, law.conditional_cdf) if inner.size else math.nan
    return {
        "n": float(n),
        "atom_freq": freq,
        "atom_mass": mass,
        "atom_z": z,
        "n_continuous": float(inner.size),
        "ks_continuous": ks_c,
        "ks_continuous_sqrt_n": ks_c * math.sqrt(inner.size) if inner.size else math.nan,
        "ks_continuous_pvalue": kolmogorov_pvalue(ks_c, inner.size) if inner.size else math.nan,
        "ks_full": ks_distance(x, law.cdf, law.cdf_left),
    }


def kac_variance(a: float, c: float, t):
    """``Var K(t) = E K(t)^2 = (c^2/a) (t - (1 - exp(-2 a t)) / (2 a))`` (units space^2).

    From ``E[dK(s) dK(u)] = c^2 exp(-2a|s - u|) ds du`` (the sign ``(-1)^N`` decorrelates at
    rate ``2a``). For ``a t -> infinity`` it is ``sigma^2 t - sigma^2/(2a)`` with
    ``sigma^2 = c^2/a``, the Brownian variance minus a constant (Thm 9); for ``a t -> 0`` it
    is ``c^2 t^2`` (ballistic), which is also its value at ``a = 0`` (no switches:
    ``K(t) = +-c t``). ``t`` may be a float or an array.

    ``a`` must be finite and >= 0, ``c`` finite and > 0, ``t`` finite and >= 0
    (``ValueError`` otherwise).
    """
    a_, c_ = _real(a), _real(c)
    if not (math.isfinite(a_) and a_ >= 0):
        raise ValueError(f"a must be a finite number >= 0, got {a!r}")
    if not (math.isfinite(c_) and c_ > 0):
        raise ValueError(f"c must be a finite number > 0, got {c!r}")
    try:
        t = np.asarray(t, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"t must be a number or an array of numbers, got {t!r}") from None
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError(f"t must be finite and >= 0, got {t!r}")
    if a_ == 0:
        return c * c * t * t
    closed = (c * c / a) * (t + np.expm1(-2.0 * a * t) / (2.0 * a))
    # For 2 a t < 1e-6 the closed form cancels (relative error above 1e-10, all digits lost
    # for a t ~ 1e-16): there its series c^2 t^2 (1 - x/3 + x^2/12), x = 2 a t.
    x = 2.0 * a_ * t
    return np.where(x < 1e-6, c * c * t * t * (1.0 - x / 3.0 + x * x / 12.0), closed)[()]


def _real(value) -> float:
    """``value`` as a float, NaN when it is not a real number (a bool or text included)."""
    if isinstance(value, bool | str | bytes):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


# ---------------------------------------------------------------------------- histograms
def histogram_density(samples, edges, total: int | None = None) -> np.ndarray:
    """Histogram as a density: ``counts_j / (total * width_j)``, shape ``(len(edges)-1,)``.

    ``total`` defaults to the number of samples; pass a larger number (all draws, including
    those on atoms or outside the bins) to estimate a sub-density such as ``u~``.
    """
    x = _np(samples).reshape(-1)
    edges = _np(edges)
    counts, _ = np.histogram(x, bins=edges)
    total = x.size if total is None else int(total)
    return counts / (total * np.diff(edges))


def bin_probabilities(density: ArrayFn, edges, nodes_per_bin: int = 8) -> np.ndarray:
    """``p_j = integral of density over [e_j, e_{j+1}]`` by Gauss-Legendre in every bin.

    ``density`` maps a float64 array to density values of the same shape (per unit of x).
    Exact for polynomials of degree ``2 nodes_per_bin - 1`` on each bin.
    """
    edges = _np(edges)
    nodes, weights = np.polynomial.legendre.leggauss(nodes_per_bin)
    mid, half = (edges[1:] + edges[:-1]) / 2, np.diff(edges) / 2
    pts = mid[:, None] + half[:, None] * nodes[None, :]
    vals = _np(density(pts)).reshape(pts.shape)
    return (vals * weights[None, :]).sum(1) * half


def histogram_l1(samples, edges, probs) -> float:
    """``sum_j |counts_j / n - p_j|`` plus the same term for the mass outside the bins.

    This is the L1 distance between the histogram density and the bin-averaged reference
    density (it is free of binning bias), dimensionless, in ``[0, 2]``.
    """
    x = _np(samples).reshape(-1)
    probs = _np(probs)
    counts, _ = np.histogram(x, bins=_np(edges))
    n = x.size
    outside = 1.0 - counts.sum() / n
    return float(np.abs(counts / n - probs).sum() + abs(outside - max(0.0, 1.0 - probs.sum())))


def _binomial_mad(n: int, p: np.ndarray) -> np.ndarray:
    """Exact ``E|X - n p|`` for ``X ~ Binomial(n, p)`` (de Moivre's formula):
    ``2 nu C(n, nu) p^nu (1 - p)^(n - nu + 1)`` with ``nu = floor(n p) + 1``."""
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    out = np.zeros_like(p)
    inner = (p > 0) & (p < 1)
    q = p[inner]
    nu = np.floor(n * q) + 1
    log_term = (
        math.log(2.0)
        + np.log(nu)
        + sp.gammaln(n + 1)
        - sp.gammaln(nu + 1)
        - sp.gammaln(n - nu + 1)
        + nu * np.log(q)
        + (n - nu + 1) * np.log1p(-q)
    )
    out[inner] = np.exp(log_term)
    return out


def expected_histogram_l1(probs, n: int) -> float:
    """Exact expectation of :func:`histogram_l1` for ``n`` draws from the reference law.

    Each count is Binomial(n, p_j), so ``E sum_j |counts_j/n - p_j| = sum_j E|X_j - n p_j|/n``
    (exact by linearity, with de Moivre's mean absolute deviation); the outside mass is
    one more binomial cell. This is the Monte-Carlo floor a correct sampler reaches.
    """
    probs = _np(probs)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n!r}")
    cells = np.append(probs, max(0.0, 1.0 - probs.sum()))
    return float(_binomial_mad(n, cells).sum() / n)


def binned_mean(x, y, edges):
    """``E[Y | X in bin_j]`` from paired draws, with its standard error and the counts.

    Returns ``(mean, stderr, count)``, each of shape ``(len(edges)-1,)``; empty bins give
    NaN, bins with one draw a NaN standard error.
    """
    x, y, edges = _np(x).reshape(-1), _np(y).reshape(-1), _np(edges)
    if x.shape != y.shape:
        raise ValueError("x and y must have the same number of entries")
    idx = np.digitize(x, edges) - 1
    keep = (idx >= 0) & (idx < edges.size - 1)
    idx, yk = idx[keep], y[keep]
    nb = edges.size - 1
    count = np.bincount(idx, minlength=nb).astype(np.float64)
    s1 = np.bincount(idx, weights=yk, minlength=nb)
    s2 = np.bincount(idx, weights=yk * yk, minlength=nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / count
        var = (s2 - count * mean**2) / (count - 1)
        stderr = np.sqrt(np.clip(var, 0.0, None) / count)
    stderr[count < 2] = np.nan
    return mean, stderr, count


def loglog_slope(x, y) -> tuple[float, float]:
    """Least-squares fit of ``log y = s log x + log C``; returns ``(s, C)``.

    For ``y = C x^s`` exactly, the fit returns ``s`` and ``C``. Needs positive ``x, y``.
    """
    x, y = _np(x).reshape(-1), _np(y).reshape(-1)
    if x.shape != y.shape or x.size < 2:
        raise ValueError("x and y must have equal size >= 2")
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("x and y must be positive for a log-log fit")
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    return float(slope), float(math.exp(intercept))


# ---------------------------------------------------------------------------- verdicts
def max_abs_z(estimate, stderr, reference) -> float:
    """``max_j |estimate_j - reference_j| / stderr_j`` (dimensionless).

    ``estimate``, ``stderr`` and ``reference`` broadcast (scalars or arrays). A zero standard
    error gives ``inf`` unless the estimate equals the reference exactly (then 0): a
    deterministic estimate must match exactly.
    """
    est, se, ref = np.broadcast_arrays(_np(estimate), _np(stderr), _np(reference))
    if est.size == 0:
        raise ValueError("no estimates given")
    if np.isnan(est).any() or np.isnan(se).any() or np.isnan(ref).any() or (se < 0).any():
        raise ValueError("estimates, standard errors and references must be numbers, se >= 0")
    diff = np.abs(est - ref)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, diff / np.where(se > 0, se, 1.0), np.where(diff == 0, 0.0, np.inf))
    return float(z.max())


def agrees(estimate, stderr, reference, z_max: float = 4.0) -> bool:
    """Verdict "Monte Carlo agrees with the reference": :func:`max_abs_z` ``< z_max``.

    For a correct estimator every ``z`` is about standard normal, so ``|z| >= 4`` has
    probability 6e-5 per entry; a bias of more than a few standard errors fails it.
    """
    return max_abs_z(estimate, stderr, reference) < z_max
