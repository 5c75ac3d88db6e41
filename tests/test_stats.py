"""Tests for kacnb.theory.stats: KS distances with atoms, tabulated laws and histogram errors.

References are independent of the code under test: scipy's KS test, brute-force suprema on
dense grids, scipy quadrature of the Kac density [30-31], binomial sums, closed forms.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate as si
import scipy.stats as st
import torch

from kacnb.theory.kac import Kac
from kacnb.theory.stats import (
    TabulatedLaw,
    agrees,
    bin_probabilities,
    binned_mean,
    compare_with_kac_law,
    expected_histogram_l1,
    histogram_density,
    histogram_l1,
    kac_law,
    kac_variance,
    kolmogorov_pvalue,
    ks_distance,
    loglog_slope,
    max_abs_z,
    snap_atoms,
)


def test_ks_distance_matches_scipy_for_continuous_law():
    rng = np.random.default_rng(1)
    x = rng.normal(size=500)
    d = ks_distance(x, st.norm.cdf)
    ref = st.kstest(x, "norm")
    assert d == pytest.approx(ref.statistic, abs=1e-14)
    assert kolmogorov_pvalue(d, x.size) == pytest.approx(ref.pvalue, rel=1e-6)


def test_ks_distance_with_atoms_is_zero_for_exact_proportions():
    """Draws in exactly the atom proportions have KS distance 0 once left limits are used;
    treating F as continuous would report the mass of the larger atom."""
    law = TabulatedLaw(np.array([-1.0, 1.0]), np.zeros(2), np.array([0.0, 1.0]), [0.3, 0.7])
    x = np.array([0.0] * 3 + [1.0] * 7)
    assert ks_distance(x, law.cdf, law.cdf_left) == pytest.approx(0.0, abs=1e-15)
    assert ks_distance(x, law.cdf) == pytest.approx(0.7)  # the larger atom


def test_ks_distance_with_atoms_matches_dense_supremum():
    """Mixed law: atom 0.25 at 0 and 0.75 * Uniform(0, 1); the supremum over a dense grid
    (including points just left of every jump) agrees with the sample-point formula."""
    law = TabulatedLaw(np.linspace(0, 1, 11), 0.75 * np.linspace(0, 1, 11), [0.0], [0.25])
    rng = np.random.default_rng(2)
    x = np.where(rng.random(40) < 0.3, 0.0, rng.random(40))
    d = ks_distance(x, law.cdf, law.cdf_left)
    probe = np.concatenate([np.linspace(-0.5, 1.5, 20001), x - 1e-12, x, x + 1e-12])
    emp = (x[None, :] <= probe[:, None]).mean(1)
    brute = np.abs(emp - law.cdf(probe)).max()
    assert d == pytest.approx(brute, abs=1e-9)


@pytest.mark.parametrize(("a", "c", "t"), [(1.0, 1.0, 0.3), (1.0, 1.0, 3.0), (25.0, 5.0, 1.0)])
def test_kac_law_matches_quadrature_of_density(a, c, t):
    """Tabulated CDF of K(t) = atoms exp(-a t)/2 at +-ct plus the integral of u~ [30-31]
    (scipy quad, float64); jumps of the atoms at the cone edges."""
    kac = Kac(a, c)
    law = kac_law(kac, t)
    ct, half = c * t, math.exp(-a * t) / 2

    def dens(y):
        return float(kac.density(torch.tensor(t, dtype=torch.float64), torch.tensor(y)))

    for x in (-0.7 * ct, -0.1 * ct, 0.2 * ct, 0.95 * ct):
        ref = half + si.quad(dens, -ct, x, epsabs=1e-10, epsrel=1e-9, limit=200)[0]
        assert float(law.cdf(np.array(x))) == pytest.approx(ref, abs=2e-7)
    assert float(law.cdf(np.array(-ct))) == pytest.approx(half, abs=1e-12)
    assert float(law.cdf_left(np.array(-ct))) == 0.0
    assert float(law.cdf_left(np.array(ct))) == pytest.approx(1 - half, abs=1e-9)
    assert float(law.cdf(np.array(ct))) == pytest.approx(1.0, abs=1e-12)
    assert law.continuous_mass == pytest.approx(1 - 2 * half, abs=1e-12)
    assert float(law.conditional_cdf(np.array(ct * 0.999999))) == pytest.approx(1.0, abs=1e-6)


def test_exact_kac_draws_reach_monte_carlo_floor():
    """Draws of the exact sampler have a KS distance to the law of the size 1/sqrt(n)."""
    kac = Kac(1.0, 1.0)
    t, n = 0.5, 20000
    g = torch.Generator().manual_seed(3)
    x = kac.sample(torch.full((n,), t, dtype=torch.float64), generator=g)
    x, on_atom = snap_atoms(x, [-t, t])
    law = kac_law(kac, t)
    d = ks_distance(x, law.cdf, law.cdf_left)
    assert d * math.sqrt(n) < 1.8  # 0.999 quantile of the Kolmogorov law is 1.95
    assert on_atom.mean() == pytest.approx(math.exp(-t), abs=4 * math.sqrt(0.25 / n))


def test_snap_atoms_moves_float32_atoms():
    ct = 0.3
    x = torch.tensor([ct, -ct, 0.1, 0.2999], dtype=torch.float32)
    snapped, on = snap_atoms(x, [-ct, ct])
    assert snapped[0] == ct and snapped[1] == -ct
    assert on.tolist() == [True, True, False, False]
    assert snapped[2] == pytest.approx(0.1, abs=1e-7)


def test_histogram_density_and_bin_probabilities():
    edges = np.linspace(-3, 3, 13)
    probs = bin_probabilities(st.norm.pdf, edges)
    assert np.allclose(probs, np.diff(st.norm.cdf(edges)), atol=1e-12)
    x = np.array([-2.9, -2.8, 0.1, 0.2, 0.3, 5.0])
    dens = histogram_density(x, edges)
    assert dens[0] == pytest.approx(2 / (6 * 0.5))
    assert dens[6] == pytest.approx(3 / (6 * 0.5))
    assert histogram_density(x, edges, total=12)[6] == pytest.approx(3 / (12 * 0.5))


def test_expected_histogram_l1_is_exact():
    """de Moivre's mean absolute deviation equals the binomial sum; the Monte-Carlo average
    of the histogram L1 error matches the predicted expectation."""
    from kacnb.theory.stats import _binomial_mad

    n = 50
    for p in (0.003, 0.1, 0.37, 0.5, 0.9):
        k = np.arange(n + 1)
        ref = (st.binom.pmf(k, n, p) * np.abs(k - n * p)).sum()
        assert float(_binomial_mad(n, np.array([p]))[0]) == pytest.approx(ref, rel=1e-10)
    edges = np.linspace(-2.5, 2.5, 21)
    probs = np.diff(st.norm.cdf(edges))
    rng = np.random.default_rng(4)
    n, reps = 400, 2000
    errs = [histogram_l1(rng.normal(size=n), edges, probs) for _ in range(reps)]
    expected = expected_histogram_l1(probs, n)
    assert np.mean(errs) == pytest.approx(expected, rel=0.02)


def test_binned_mean():
    rng = np.random.default_rng(5)
    x = rng.random(200000)
    y = np.where(rng.random(x.size) < x, 1.0, -1.0)  # E[Y | x] = 2x - 1
    edges = np.linspace(0, 1, 11)
    mean, se, count = binned_mean(x, y, edges)
    centers = (edges[1:] + edges[:-1]) / 2
    assert np.all(np.abs(mean - (2 * centers - 1)) < 5 * se)
    assert count.sum() == x.size
    assert np.allclose(se, np.sqrt((1 - (2 * centers - 1) ** 2) / count), rtol=0.05)


def test_loglog_slope_recovers_power_law():
    x = np.array([1.0, 2.0, 4.0, 8.0])
    s, c = loglog_slope(x, 3.0 * x**-1.25)
    assert s == pytest.approx(-1.25, abs=1e-12)
    assert c == pytest.approx(3.0, rel=1e-12)
    with pytest.raises(ValueError):
        loglog_slope(x, -x)


@pytest.mark.parametrize(("a", "c", "t"), [(1.0, 1.0, 0.3), (4.0, 2.0, 2.0), (25.0, 5.0, 1.0)])
def test_kac_variance_matches_law(a, c, t):
    """Var K(t): second moment of the atoms (c t)^2 exp(-a t) plus quadrature of x^2 u~."""
    kac = Kac(a, c)
    ct = c * t

    def integrand(y):
        return y * y * float(kac.density(torch.tensor(t, dtype=torch.float64), torch.tensor(y)))

    ref = (
        ct**2 * math.exp(-a * t)
        + si.quad(integrand, -ct, ct, epsabs=1e-10, epsrel=1e-9, limit=200)[0]
    )
    assert float(kac_variance(a, c, t)) == pytest.approx(ref, rel=1e-7)
    assert float(kac_variance(a, c, 1e-6)) == pytest.approx((c * 1e-6) ** 2, rel=1e-5)


def test_compare_with_kac_law_accepts_exact_and_rejects_biased_draws():
    kac = Kac(1.0, 1.0)
    t, n = 1.0, 40000
    g = torch.Generator().manual_seed(7)
    x = kac.sample(torch.full((n,), t, dtype=torch.float64), generator=g)[:, 0]
    good = compare_with_kac_law(x, kac, t)
    assert good["n"] == n and good["n_continuous"] + round(good["atom_freq"] * n) == n
    assert abs(good["atom_z"]) < 4
    assert good["ks_continuous_pvalue"] > 1e-3
    assert good["ks_full"] < 2.0 / math.sqrt(n)
    # Shrinking the continuous draws by 5% is a biased sampler: the KS test sees it.
    bad_draws = torch.where(x.abs() < t, 0.95 * x, x)
    bad = compare_with_kac_law(bad_draws, kac, t)
    assert bad["ks_continuous_pvalue"] < 1e-6
    assert bad["atom_z"] == good["atom_z"]


def test_max_abs_z_and_agrees():
    """z-scores of Monte-Carlo estimates against references: a correct sampler's mean agrees,
    a 5 % bias at 1 % standard error does not; zero standard errors demand exact equality."""
    gen = np.random.default_rng(5)
    draws = gen.exponential(2.0, size=(8, 40_000))
    mean, se = draws.mean(1), draws.std(1) / math.sqrt(draws.shape[1])
    assert agrees(mean, se, 2.0)
    assert not agrees(mean, se, 2.0 * 1.05)
    assert max_abs_z([1.0, 3.0], [0.5, 1.0], [2.0, 3.0]) == pytest.approx(2.0)
    assert max_abs_z(1.0, 0.0, 1.0) == 0.0
    assert max_abs_z(1.0, 0.0, 1.1) == math.inf
    assert not agrees(1.0, 0.0, 1.1)
    with pytest.raises(ValueError):
        max_abs_z([1.0], [-1.0], [1.0])


def test_kac_variance_without_switches_is_ballistic_and_bad_arguments_are_refused():
    # a = 0: no switches, K(t) = +-c t, variance c^2 t^2 (the a t -> 0 limit of the formula)
    assert kac_variance(0.0, 2.0, 3.0) == 36.0
    np.testing.assert_array_equal(kac_variance(0, 1.5, np.array([0.0, 2.0])), [0.0, 9.0])
    # tiny a t: the closed form cancels; the value must still be c^2 t^2 (1 - 2 a t / 3)
    assert kac_variance(1e-200, 1.0, 1.0) == 1.0
    assert kac_variance(1.0, 1.0, 1e-9) == pytest.approx(1e-18 * (1 - 2e-9 / 3), rel=1e-14)
    # continuity across the switch to the series (2 a t = 1e-6)
    lo, hi = kac_variance(1.0, 1.0, 0.5e-6 * (1 - 1e-9)), kac_variance(1.0, 1.0, 0.5e-6)
    assert hi == pytest.approx(lo, rel=1e-8)
    for a, c, t, name in [
        (-1.0, 1.0, 1.0, "a"),
        (math.nan, 1.0, 1.0, "a"),
        (math.inf, 1.0, 1.0, "a"),
        (1.0, 0.0, 1.0, "c"),
        (1.0, -1.0, 1.0, "c"),
        (1.0, 1.0, -1.0, "t"),
        (1.0, 1.0, math.nan, "t"),
        (1.0, 1.0, [0.5, -1.0], "t"),
        (1.0, 1.0, "x", "t"),
    ]:
        with pytest.raises(ValueError, match=rf"^{name} must be"):
            kac_variance(a, c, t)
