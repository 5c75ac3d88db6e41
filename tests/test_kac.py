"""Mathematical facts about the Kac process numerics (kacnb.theory.kac), paper Section 4.

References are independent of the code under test: scipy quadrature of the density, the
Poisson-Beta series for the CDF via scipy's regularised incomplete beta function, and
Monte-Carlo estimates from simulated paths.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate as si
import scipy.special as ss
import scipy.stats as st
import torch
from hypothesis import given, settings
from hypothesis import strategies as hst

from kacnb.theory.kac import Kac, KacTableSampler, LinearSchedule, MeanRevertingKac
from kacnb.theory.stats import binned_mean

F64 = torch.float64

# (a, c, t) spanning a*t from 1e-3 to 8000 (a = 1600, T = 5 is used by the MNIST experiment).
GRID = [
    (1.0, 1.0, 1e-3),
    (1.0, 1.0, 0.5),
    (2.0, 3.0, 1.0),
    (25.0, 5.0, 0.04),
    (25.0, 5.0, 1.0),
    (64.0, 8.0, 0.7),
    (100.0, 10.0, 5.0),
    (1600.0, 10.0, 0.3),
    (1600.0, 10.0, 5.0),
]


def scalar(v):
    return torch.tensor(v, dtype=F64)


def cdf_reference(a: float, c: float, t: float, x: np.ndarray) -> np.ndarray:
    """P(K(t) <= x) from the Poisson-Beta representation, summed with scipy (float64).

    Given N = n >= 1 switches, K/(ct) = B (2Y - 1), Y ~ Beta(floor(n/2)+1, ceil(n/2)); so
    P(K <= x | n) = (P(2Y-1 <= u) + P(2Y-1 >= -u))/2, u = x/(ct).
    """
    at = a * t
    lo = max(1, int(at - 12 * math.sqrt(at) - 10))
    hi = int(at + 12 * math.sqrt(at) + 20)
    n = np.arange(lo, hi + 1)[:, None]
    w = st.poisson.pmf(n, at)
    al, be = np.floor(n / 2) + 1, np.ceil(n / 2)
    u = np.clip(x / (c * t), -1, 1)[None, :]
    p_le = ss.betainc(al, be, (1 + u) / 2)
    p_ge = 1 - ss.betainc(al, be, (1 - u) / 2)
    cont = (w * (p_le + p_ge) / 2).sum(0)
    atom = math.exp(-at) / 2
    out = cont + atom * (x >= -c * t) + atom * (x >= c * t)
    return np.where(x >= c * t, 1.0, np.where(x < -c * t, 0.0, out))


# --------------------------------------------------------------------------- the law
@pytest.mark.parametrize("a,c,t", GRID)
def test_continuous_mass_is_one_minus_atom_mass(a, c, t):
    kac = Kac(a, c)

    def f(x):
        return float(kac.density(scalar(t), scalar(x)))

    mass, err = si.quad(f, -c * t, c * t, points=[0.0], limit=400, epsabs=1e-13)
    expected = 1.0 - math.exp(-a * t)
    assert mass == pytest.approx(expected, rel=1e-8, abs=1e-12)
    assert float(kac.atom_mass(scalar(t))) == pytest.approx(math.exp(-a * t), rel=1e-14)


@pytest.mark.parametrize("a,c,t", [(2.0, 3.0, 1.0), (25.0, 5.0, 0.3), (1.0, 1.0, 2.0)])
def test_density_matches_unscaled_bessel_formula(a, c, t):
    # Moderate a*t, where the textbook formula [30-31] can be evaluated directly.
    x = np.linspace(-c * t, c * t, 101)[1:-1]
    r = np.sqrt(c**2 * t**2 - x**2)
    z = (a / c) * r
    expected = a / (2 * c) * np.exp(-a * t) * (ss.i0(z) + c * t * ss.i1(z) / r)
    got = Kac(a, c).density(scalar(t), torch.tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("a,c,t", GRID)
def test_cdf_matches_poisson_beta_series(a, c, t):
    x = np.concatenate([np.linspace(-1.2 * c * t, 1.2 * c * t, 41), [-c * t, c * t, 0.0]])
    got = Kac(a, c).cdf(scalar(t), torch.tensor(x)).numpy()
    np.testing.assert_allclose(got, cdf_reference(a, c, t, x), atol=1e-10)


def test_cdf_jumps_by_half_atom_at_the_edges():
    kac, t = Kac(1.0, 2.0), 0.8
    eps = 1e-12
    left = kac.cdf(scalar(t), torch.tensor([-1.6 - eps, -1.6], dtype=F64))
    right = kac.cdf(scalar(t), torch.tensor([1.6 - eps, 1.6], dtype=F64))
    half_atom = math.exp(-0.8) / 2
    assert float(left[1] - left[0]) == pytest.approx(half_atom, rel=1e-9)
    assert float(right[1] - right[0]) == pytest.approx(half_atom, rel=1e-9)


def test_law_at_time_zero_is_dirac():
    kac = Kac(3.0, 2.0)
    x = torch.tensor([-1.0, 0.0, 1.0], dtype=F64)
    assert kac.cdf(0.0, x).tolist() == [0.0, 1.0, 1.0]
    assert kac.density(0.0, x).tolist() == [0.0, 0.0, 0.0]
    assert float(kac.atom_mass(0.0)) == 1.0
    assert torch.all(kac.sample(torch.zeros(5)) == 0)


# --------------------------------------------------------------------------- samplers
def _ks_continuous_part(kac, t, draws):
    """KS p-value of the draws strictly inside the cone against ``Kac.cdf`` conditioned on them.

    ``Kac.cdf`` itself is checked against the Poisson-Beta series in
    ``test_cdf_matches_poisson_beta_series``.
    """
    ct = kac.c * t
    m = math.exp(-kac.a * t)
    inner = draws[draws.abs() < ct].double().numpy()

    def cond_cdf(x):
        x = torch.as_tensor(np.asarray(x), dtype=F64)
        return ((kac.cdf(scalar(t), x) - m / 2) / (1 - m)).numpy()

    return st.kstest(inner, cond_cdf).pvalue


def _atom_share_ok(kac, t, draws):
    ct = kac.c * t
    n = draws.numel()
    at_edge = (draws.abs() >= ct * (1 - 1e-6)).double().sum().item()
    p = math.exp(-kac.a * t)
    sd = math.sqrt(n * p * (1 - p)) + 1e-12
    return abs(at_edge - n * p) <= 5 * sd + 1


SAMPLER_CASES = [(25.0, 5.0, 0.3), (1.0, 1.0, 0.7), (1600.0, 10.0, 5.0), (64.0, 8.0, 0.02)]


@pytest.mark.parametrize("a,c,t", SAMPLER_CASES)
def test_exact_sampler_matches_cdf(a, c, t):
    kac = Kac(a, c)
    g = torch.Generator().manual_seed(1234)
    draws = kac.sample(torch.full((200_000,), t, dtype=F64), generator=g)[:, 0]
    assert _atom_share_ok(kac, t, draws)
    assert _ks_continuous_part(kac, t, draws) > 1e-3


@pytest.mark.parametrize("a,c,t", SAMPLER_CASES)
def test_random_walk_sampler_matches_cdf(a, c, t):
    kac = Kac(a, c)
    g = torch.Generator().manual_seed(99)
    # The walk costs ~a t draws per path: fewer paths where a t is in the thousands.
    n = 100_000 if a * t < 1000 else 20_000
    draws = kac.paths(torch.tensor([t / 3, t], dtype=F64), n, generator=g)[1, :, 0]
    assert _atom_share_ok(kac, t, draws)
    assert _ks_continuous_part(kac, t, draws) > 1e-3


@pytest.mark.parametrize("a,c,t", [(25.0, 5.0, 0.3), (1.0, 1.0, 0.7)])
def test_table_sampler_matches_cdf(a, c, t):
    kac = Kac(a, c)
    table = KacTableSampler(kac, t_max=1.0, n_times=401, n_levels=1024, dtype=F64)
    g = torch.Generator().manual_seed(7)
    draws = table.sample(torch.full((100_000,), t, dtype=F64), generator=g)[:, 0]
    assert _atom_share_ok(kac, t, draws)
    assert _ks_continuous_part(kac, t, draws) > 1e-3


def test_paths_at_one_time_have_the_law_of_sample():
    kac = Kac(4.0, 2.0)
    g = torch.Generator().manual_seed(5)
    walk = kac.paths(torch.tensor([1.0], dtype=F64), 50_000, dim=2, generator=g)[0]
    exact = kac.sample(torch.full((50_000,), 1.0, dtype=F64), dim=2, generator=g)
    for i in range(2):
        assert st.ks_2samp(walk[:, i].numpy(), exact[:, i].numpy()).pvalue > 1e-3
    # Components are independent: their correlation is at the Monte-Carlo floor.
    assert abs(np.corrcoef(walk.numpy().T)[0, 1]) < 5 / math.sqrt(50_000)


def test_paths_are_lipschitz_with_constant_c_and_start_at_zero():
    kac = Kac(25.0, 5.0)
    times = torch.linspace(0.0, 1.0, 201, dtype=F64)
    p = kac.paths(times, 500, dim=3, generator=torch.Generator().manual_seed(0))
    assert p.shape == (201, 500, 3)
    assert torch.all(p[0] == 0)
    speed = (p[1:] - p[:-1]).abs() / (times[1] - times[0])
    assert float(speed.max()) <= 5.0 * (1 + 1e-9)


def test_paths_extend_when_the_jump_buffer_is_short():
    # A tiny buffer forces the extension branch; the law must not change.
    from kacnb.theory.kac import kac_paths

    g = torch.Generator().manual_seed(3)
    draws = kac_paths(
        torch.tensor([2.0], dtype=F64), 20_000, 50.0, 1.0, generator=g, chunk_elements=1 << 12
    )[0, :, 0]
    assert _ks_continuous_part(Kac(50.0, 1.0), 2.0, draws) > 1e-3


def test_sample_shapes_and_generator_reproducibility():
    kac = Kac(25.0, 5.0)
    t = torch.rand(3, 4, dtype=F64)
    s1 = kac.sample(t, dim=7, generator=torch.Generator().manual_seed(11))
    s2 = kac.sample(t, dim=7, generator=torch.Generator().manual_seed(11))
    assert s1.shape == (3, 4, 7) and s1.dtype == F64
    assert torch.equal(s1, s2)
    assert torch.all(s1.abs() <= 5.0 * t[..., None] + 1e-12)


# --------------------------------------------------------------------------- velocity
@pytest.mark.parametrize("a,c,t", GRID)
def test_velocity_bounded_odd_and_finite_at_edges(a, c, t):
    kac = Kac(a, c)
    ct = c * t
    x = torch.cat(
        [
            torch.linspace(-1.5 * ct, 1.5 * ct, 2001, dtype=F64),
            torch.tensor([ct, -ct, ct * (1 - 1e-15), -ct * (1 - 1e-15), 0.0], dtype=F64),
        ]
    )
    v = kac.velocity(scalar(t), x)
    assert torch.isfinite(v).all()
    assert float(v.abs().max()) <= c * (1 + 1e-12)
    torch.testing.assert_close(kac.velocity(scalar(t), -x), -v, rtol=0, atol=1e-15 * c)
    # On the atoms the velocity is +-c (Thm 4).
    assert kac.velocity(scalar(t), torch.tensor([ct, -ct], dtype=F64)).tolist() == [c, -c]


def test_velocity_matches_unscaled_formula_and_small_r_limit():
    a, c, t = 2.0, 3.0, 1.0
    x = np.linspace(-2.99, 2.99, 59)
    r = np.sqrt(c**2 * t**2 - x**2)
    z = (a / c) * r
    expected = x / (t + r * ss.i0(z) / (c * ss.i1(z)))
    got = Kac(a, c).velocity(scalar(t), torch.tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # As r -> 0 the denominator tends to t + 2/a.
    edge = c * t * (1 - 1e-14)
    v = float(Kac(a, c).velocity(scalar(t), scalar(edge)))
    assert v == pytest.approx(edge / (t + 2 / a), rel=1e-9)


@pytest.mark.parametrize("a,c", [(1.0, 1.0), (25.0, 5.0), (4.0, 2.0)])
def test_continuity_equation_residual_vanishes_inside_the_cone(a, c):
    kac = Kac(a, c)
    h = 1e-5
    for t in (0.3, 1.0, 2.0):
        x = torch.linspace(-0.9 * c * t, 0.9 * c * t, 61, dtype=F64)
        du_dt = (kac.density(scalar(t + h), x) - kac.density(scalar(t - h), x)) / (2 * h)

        def flux(y, t=t):
            return kac.density(scalar(t), y) * kac.velocity(scalar(t), y)

        dflux_dx = (flux(x + h) - flux(x - h)) / (2 * h)
        scale = float(du_dt.abs().max() + dflux_dx.abs().max())
        assert float((du_dt + dflux_dx).abs().max()) < 1e-6 * scale


def test_velocity_is_conditional_expectation_of_the_speed():
    # v(t, x) = E[dK/dt | K(t) = x] [94], estimated from simulated paths by binning.
    a, c, t, h = 2.0, 1.0, 1.0, 1e-4
    kac = Kac(a, c)
    g = torch.Generator().manual_seed(2024)
    p = kac.paths(torch.tensor([t, t + h], dtype=F64), 400_000, generator=g)[:, :, 0]
    x, speed = p[0], (p[1] - p[0]) / h
    inside = x.abs() < c * t * 0.999
    edges = torch.linspace(-0.9, 0.9, 19, dtype=F64)
    idx = torch.bucketize(x[inside], edges)
    for b in range(1, len(edges)):
        sel = idx == b
        if int(sel.sum()) < 2000:
            continue
        centre = (edges[b - 1] + edges[b]) / 2
        est = speed[inside][sel]
        # Average v over the bin's samples (v is not linear in x).
        expected = float(kac.velocity(scalar(t), x[inside][sel]).mean())
        se = float(est.std()) / math.sqrt(int(sel.sum()))
        assert abs(float(est.mean()) - expected) < 5 * se + 2 * c * a * h, float(centre)


# --------------------------------------------------------------------------- numerics
@pytest.mark.parametrize("a,c,t", [(25.0, 5.0, 0.5), (1600.0, 10.0, 5.0), (1.0, 1.0, 1e-3)])
def test_float32_agrees_with_float64(a, c, t):
    kac = Kac(a, c)
    x64 = torch.linspace(-1.1 * c * t, 1.1 * c * t, 1001, dtype=F64)
    x32, t32, t64 = x64.float(), torch.tensor(t, dtype=torch.float32), scalar(t)
    for fn in (kac.density, kac.velocity, kac.cdf):
        r32, r64 = fn(t32, x32), fn(t64, x32.double())
        assert r32.dtype == torch.float32 and r64.dtype == F64
        scale = float(r64.abs().max())
        assert float((r32.double() - r64).abs().max()) <= 2e-5 * scale


@pytest.mark.parametrize("a,c,t", [(25.0, 5.0, 0.01), (1.0, 1.0, 1e-3), (25.0, 5.0, 0.5)])
def test_float32_training_round_trip(a, c, t):
    """The float32 path of a training draw (paper Sections 6-7): draw ``k = K(t)`` in float32,
    build ``x = x0 + k`` in float32, and compare targets with the float64 reference
    ``v(t, k)`` [41].

    * On the draw itself the float32 target is exact on the atoms (``+-c``, Thm 4) and
      within float32 accuracy inside the cone.
    * Inside the cone the round trip ``(x0 + k) - x0`` only costs float32 rounding: the
      conditional velocity ``v(t, x - x0)`` stays within ``1e-4 c`` of the reference
      (``v`` is smooth up to the cone edge, a function of ``c^2 t^2 - x^2``).
    * On the atoms the round trip is the numerical trap: it moves many of them slightly
      inside the cone, where the interior formula gives about ``c t / (t + 2/a)``."""
    kac = Kac(a, c)
    n = 20_000
    g = torch.Generator().manual_seed(17)
    t32 = torch.full((n,), t, dtype=torch.float32)
    k32 = kac.sample(t32, generator=g)[:, 0]
    x0 = torch.randn(n, generator=g, dtype=torch.float32)
    assert k32.dtype == torch.float32
    on_atom = k32.abs() == c * t32
    p_atom = math.exp(-a * t)
    assert abs(float(on_atom.double().mean()) - p_atom) < 5 * math.sqrt(p_atom / n) + 1e-3
    reference = kac.velocity(scalar(t), k32.double())  # float64 reference on the same draws
    # the target evaluated on the float32 draw
    v_draw = kac.velocity(t32, k32)
    assert v_draw.dtype == torch.float32
    assert torch.equal(v_draw[on_atom], torch.sign(k32[on_atom]) * c)
    inside = ~on_atom
    err_draw = (v_draw[inside].double() - reference[inside]).abs().max()
    assert float(err_draw) <= 1e-5 * c
    # the conditional velocity after the float32 round trip x = x0 + k
    x32 = x0 + k32
    v_trip = kac.conditional_velocity(t32, x32[:, None], x0[:, None])[:, 0]
    assert v_trip.dtype == torch.float32
    err_trip = (v_trip[inside].double() - reference[inside]).abs().max()
    assert float(err_trip) <= 1e-4 * c
    if bool(on_atom.any()):
        moved = (v_trip[on_atom].double() - reference[on_atom]).abs() > 0.5 * c
        assert float(moved.double().mean()) > 0.1


@given(
    a=hst.floats(1e-3, 2e3),
    c=hst.floats(1e-2, 50.0),
    t=hst.floats(0.0, 10.0),
    u=hst.floats(-2.0, 2.0),
)
@settings(max_examples=300, deadline=None)
def test_finite_and_bounded_on_the_whole_domain(a, c, t, u):
    kac = Kac(a, c)
    for dtype in (torch.float32, F64):
        tt = torch.tensor(t, dtype=dtype)
        x = torch.tensor(u * c * t, dtype=dtype)
        d, v, F = kac.density(tt, x), kac.velocity(tt, x), kac.cdf(tt, x)
        assert torch.isfinite(d) and d >= 0
        assert torch.isfinite(v) and abs(float(v)) <= c * (1 + 1e-6)
        assert 0.0 <= float(F) <= 1.0


def test_extreme_rate_times_time_stays_finite():
    kac = Kac(1e4, 10.0)
    t = torch.tensor([0.0, 1e-6, 1.0, 5.0])  # a t up to 5e4
    x = torch.stack([torch.zeros(4), 10 * t * 0.5, 10 * t * (1 - 1e-7), 10 * t])
    for fn in (kac.density, kac.velocity, kac.cdf):
        assert torch.isfinite(fn(t, x)).all()
    assert torch.isfinite(kac.sample(t, dim=3)).all()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_agrees_with_cpu():
    kac = Kac(25.0, 5.0)
    t = torch.rand(1000, dtype=F64)
    x = (2 * torch.rand(1000, dtype=F64) - 1) * 5 * t
    for fn in (kac.density, kac.velocity, kac.cdf):
        cpu, gpu = fn(t, x), fn(t.cuda(), x.cuda())
        assert gpu.device.type == "cuda"
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-10, atol=1e-12)
    s = kac.sample(torch.full((100_000,), 0.3, device="cuda"))
    assert s.device.type == "cuda"
    assert _ks_continuous_part(kac, 0.3, s[:, 0].cpu()) > 1e-3


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "a,c,name",
    [
        (0.0, 1.0, "a"),
        (-1.0, 1.0, "a"),
        (float("nan"), 1.0, "a"),
        (float("inf"), 1.0, "a"),
        (1.0, 0.0, "c"),
        (1.0, -2.0, "c"),
        (1.0, float("nan"), "c"),
    ],
)
def test_bad_parameters_raise_naming_the_argument(a, c, name):
    with pytest.raises(ValueError, match=rf"^{name} "):
        Kac(a, c)


@pytest.mark.parametrize("method", ["density", "cdf", "velocity"])
def test_bad_time_or_position_raises(method):
    kac = Kac(1.0, 1.0)
    fn = getattr(kac, method)
    with pytest.raises(ValueError, match="^t "):
        fn(-0.1, 0.0)
    with pytest.raises(ValueError, match="^t "):
        fn(float("nan"), 0.0)
    with pytest.raises(ValueError, match="^x "):
        fn(1.0, float("nan"))
    for bad in (kac.sample, kac.atom_mass):
        with pytest.raises(ValueError, match="^t "):
            bad(torch.tensor([0.5, -1.0]))
    with pytest.raises(ValueError, match="^times "):
        kac.paths(torch.tensor([-1.0]), 10)
    with pytest.raises(ValueError, match="^n "):
        kac.paths(torch.tensor([1.0]), 0)


# --------------------------------------------------------------------------- conditional
def test_conditional_velocity_shifts_by_the_start():
    kac = Kac(25.0, 5.0)
    x0 = torch.tensor([[0.3, -1.0], [2.0, 0.0]], dtype=F64)
    x = torch.tensor([[0.5, -1.2], [1.0, 0.4]], dtype=F64)
    t = torch.tensor([0.1, 0.5], dtype=F64)
    got = kac.conditional_velocity(t, x, x0)
    for i in range(2):
        for j in range(2):
            assert float(got[i, j]) == float(kac.velocity(t[i], x[i, j] - x0[i, j]))


def test_mean_reverting_latent_does_not_depend_on_the_data():
    mr = MeanRevertingKac(Kac(25.0, 5.0), T=1.0)
    x0a = torch.randn(1000, 4, dtype=F64)
    x0b = 10 + torch.randn(1000, 4, dtype=F64)
    t = torch.ones(1000, dtype=F64)
    xa = mr.sample(t, x0a, generator=torch.Generator().manual_seed(0))
    xb = mr.sample(t, x0b, generator=torch.Generator().manual_seed(0))
    assert torch.equal(xa, xb)


def test_mean_reverting_velocity_is_the_expected_speed_along_paths():
    """E[d/dt (f(t) x0 + K(t)) | X_t = x] = f'(t) x0 + v(t, x - f(t) x0) [99], bin by bin.

    Random-walk paths of K (App. A.1) with a fixed x0; the finite-difference speed of X is
    averaged in bins of X_t and compared with the bin average of the conditional velocity,
    and the regression slope of the binned speed on x with that of the prediction. The
    overall mean residual alone would not do: for any odd error in v (zero, negated, scaled)
    it vanishes by symmetry, while the per-bin means and the slope do not."""
    a, c, T, t, h = 4.0, 2.0, 2.0, 0.8, 1e-4
    kac = Kac(a, c)
    mr = MeanRevertingKac(kac, T=T, schedule=LinearSchedule(T))
    x0 = torch.tensor([1.5], dtype=F64)
    n = 200_000
    g = torch.Generator().manual_seed(8)
    k = kac.paths(torch.tensor([t, t + h], dtype=F64), n, generator=g)[:, :, 0]
    f = mr.schedule.value
    x = f(scalar(t)) * x0 + k[0]
    speed = (f(scalar(t + h)) * x0 + k[1] - x) / h
    pred = mr.conditional_velocity(scalar(t).expand(n), x[:, None], x0.expand(n, 1))[:, 0]
    inner = k[0].abs() < c * t * 0.999  # the atoms are checked in the Kac tests
    centre = float(f(scalar(t)) * x0)  # the cone of X_t is centre +- c t
    edges = centre + np.linspace(-0.9, 0.9, 19) * c * t
    s_mean, s_se, count = binned_mean(x[inner], speed[inner], edges)
    p_mean, _, _ = binned_mean(x[inner], pred[inner], edges)
    full = count >= 2000
    assert int(full.sum()) >= 14
    # a switch inside [t, t + h] (probability a h) moves a speed by at most 2c
    bias = 2 * c * a * h
    dev = np.abs(s_mean - p_mean)[full]
    assert np.all(dev < 5 * s_se[full] + bias), dev / s_se[full]
    # regression of the binned speed on x: same slope as the prediction, clearly nonzero
    mid = (edges[1:] + edges[:-1])[full] / 2
    w = 1 / s_se[full] ** 2
    slope_s = np.polyfit(mid, s_mean[full], 1, w=np.sqrt(w))[0]
    slope_p = np.polyfit(mid, p_mean[full], 1, w=np.sqrt(w))[0]
    slope_se = 1 / math.sqrt(float((w * (mid - np.average(mid, weights=w)) ** 2).sum()))
    assert abs(slope_s - slope_p) < 5 * slope_se
    assert slope_p > 10 * slope_se


def test_huge_requests_fail_before_allocating():
    # 10^10 paths, a table of 10^11 cells: refused at once with the size in the message
    import time

    from kacnb.theory.kac import KacTableSampler

    kac = Kac(1.0, 1.0)
    start = time.perf_counter()
    too_many = r"Kac.paths with 10,000,000,000 paths would need 74.5 GiB"
    with pytest.raises(ValueError, match=too_many):
        kac.paths(torch.tensor([0.5, 1.0]), 10**10)
    with pytest.raises(ValueError, match=r"quantile table would need 373 GiB"):
        KacTableSampler(kac, 1.0, n_times=10**6, n_levels=10**5)
    assert time.perf_counter() - start < 1.0  # nothing was allocated or computed


# --------------------------------------------------------------------------- range edges
def test_velocity_and_density_with_a_huge_speed_are_exact_in_float32():
    # (c t)^2 = 2.5e39 overflows float32: the cone's r must not become inf (NaN velocity)
    kac = Kac(1.0, 1e20)
    t, x = torch.tensor([0.5, 0.5, 0.5], dtype=F64), torch.tensor([1e19, -3e19, 0.0], dtype=F64)
    v32, d32 = kac.velocity(t.float(), x.float()), kac.density(t.float(), x.float())
    v64, d64 = kac.velocity(t, x), kac.density(t, x)
    # the law scales: v_{a,c}(t, x) = c v_{1,1}(a t, a x / c), u_{a,c} = (a/c) u_{1,1}
    unit = Kac(1.0, 1.0)
    s, y = torch.tensor([0.5, 0.5, 0.5], dtype=F64), torch.tensor([0.1, -0.3, 0.0], dtype=F64)
    torch.testing.assert_close(v64, 1e20 * unit.velocity(s, y), rtol=1e-12, atol=0)
    torch.testing.assert_close(d64, 1e-20 * unit.density(s, y), rtol=1e-12, atol=0)
    torch.testing.assert_close(v32.double(), v64, rtol=1e-5, atol=0)
    torch.testing.assert_close(d32.double(), d64, rtol=1e-5, atol=0)


@pytest.mark.parametrize("a", [1e20, 1e27, 1e30])
def test_velocity_and_density_where_the_bessel_ratio_underflows_float32(a):
    # z = (a/c) r up to 1e30: exp(-z) I1(z)/z is below float32's normal numbers
    kac = Kac(a, 1.0)
    t, x = torch.tensor([1.0, 1.0]), torch.tensor([0.5, 1e-14])
    # the density carries exp(-(a/c) x^2 / (r + c t)) = exp(-50) at a = 1e30: float32's
    # rounding of its exponent is amplified 50-fold, hence its wider tolerance
    for fn, rtol in ((kac.velocity, 1e-6), (kac.density, 1e-5)):
        torch.testing.assert_close(fn(t, x).double(), fn(t.double(), x.double()), rtol=rtol, atol=0)


def test_float32_stays_in_float32_where_it_can_and_half_precision_is_evaluated():
    from kacnb.theory.kac import kac_density, kac_velocity

    # the paper's range: the class returns the float32 kernel's own bits (no float64 detour)
    kac = Kac(1600.0, 10.0)
    t = torch.rand(500) * 5
    x = (2 * torch.rand(500) - 1) * 10 * t
    assert not kac.needs_float64(t)
    assert torch.equal(kac.velocity(t, x), kac_velocity(t, x, 1600.0, 10.0))
    assert torch.equal(kac.density(t, x), kac_density(t, x, 1600.0, 10.0))
    assert Kac(1.0, 1e20).needs_float64(torch.tensor([0.5]))
    assert Kac(1e25, 1.0).needs_float64(torch.tensor([1.0]))
    # float16 / bfloat16: computed in float64, rounded to the input's dtype
    for dtype in (torch.float16, torch.bfloat16):
        th, xh = t[:10].to(dtype), x[:10].to(dtype)
        v = kac.velocity(th, xh)
        assert v.dtype == dtype
        torch.testing.assert_close(v, kac.velocity(th.double(), xh.double()).to(dtype))


def test_times_beyond_the_dtype_range_are_refused():
    kac = Kac(1e30, 1.0)
    with pytest.raises(ValueError, match=r"t up to 1e\+09 is too large .* at most 8\.51e\+37"):
        kac.velocity(torch.tensor([1e9]), 0.5)
    with pytest.raises(ValueError, match="use float64"):
        kac.sample(torch.tensor([1e9]))
    assert torch.isfinite(kac.velocity(torch.tensor([1e9], dtype=F64), 0.5)).all()
    with pytest.raises(ValueError, match=r"at most 1\.64e\+04"):  # float16: 65504 / 4
        Kac(1.0, 1.0).sample(torch.tensor([2e4], dtype=torch.float16))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_sample_in_half_precision_is_drawn_in_float32_and_rounded(dtype):
    kac = Kac(25.0, 5.0)
    t = torch.tensor([0.02, 0.3, 1.0])
    half = kac.sample(t.to(dtype), dim=5, generator=torch.Generator().manual_seed(3))
    single = kac.sample(t.to(dtype).float(), dim=5, generator=torch.Generator().manual_seed(3))
    assert half.dtype == dtype and half.shape == (3, 5)
    assert torch.equal(half, single.to(dtype))
    big = kac.sample(torch.full((20_000,), 0.3, dtype=dtype), generator=torch.Generator())
    assert _ks_continuous_part(kac, 0.3, big[:, 0].double()) > 1e-3


def test_sample_of_a_huge_dimension_fails_before_allocating():
    with pytest.raises(ValueError, match=r"Kac.sample of 2 x 10,000,000,000 numbers would"):
        Kac(1.0, 1.0).sample(torch.tensor([0.5, 1.0]), dim=10**10)
    with pytest.raises(ValueError, match=r"KacTableSampler.sample of 1 x 10,000,000,000"):
        KacTableSampler(Kac(1.0, 1.0), 1.0, n_times=10, n_levels=10).sample(0.5, dim=10**10)


def test_mean_reverting_times_beyond_T_are_refused():
    mr = MeanRevertingKac(Kac(1.0, 1.0), T=1.0)
    x0 = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"t must lie in \[0, T\] = \[0, 1\], got 2"):
        mr.sample(torch.tensor([0.5, 2.0]), x0)
    with pytest.raises(ValueError, match=r"t must lie in \[0, T\]"):
        mr.conditional_velocity(torch.tensor([0.5, 1.5]), x0, x0)
    assert mr.sample(torch.ones(2), x0).shape == (2, 3)  # t = T itself is allowed


def test_sampling_beyond_the_poisson_range_is_refused():
    from kacnb.theory.kac import MAX_SAMPLE_AT

    # torch.poisson overflows beyond 2^63: every draw would silently become an atom
    huge = Kac(1e20, 1.0)
    with pytest.raises(ValueError, match=r"a t = 1e\+20, at most 1e\+18"):
        huge.sample(torch.tensor([1.0], dtype=F64))
    with pytest.raises(ValueError, match=r"a t = 1e\+20"):
        MeanRevertingKac(huge, T=1.0).sample(torch.ones(1, dtype=F64), torch.zeros(1, 2))
    # within the range the draws are inside the light cone, not all on its edge
    k = Kac(MAX_SAMPLE_AT, 1.0).sample(torch.full((200,), 1.0, dtype=F64))
    assert float(k.abs().max()) < 1e-6
    # a walk of 1e12 switches per path is refused before its rows are allocated
    with pytest.raises(ValueError, match=r"Kac.paths to a t = 1e\+12 .* would need"):
        Kac(1e12, 1.0).paths(torch.tensor([0.5, 1.0], dtype=F64), 2)
