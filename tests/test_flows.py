"""Tests for kacnb.theory.flows: velocity fields of the flows of paper Section 3.

Each test asserts a mathematical fact about ||v_t||^2_{L2(mu_t)} or the velocity field:
closed forms for the coupling and diffusion flows, the bound d c^2 for Kac (Prop 11), the
translation case and the mode-separation blow-up of the Boltzmann interpolation, and Gauss's
law, normalisation and the 1/z growth of the Poisson flow.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import roots_legendre

from kacnb.theory.flows import (
    BoltzmannFlow1D,
    CouplingFlow,
    DiffusionFlow,
    KacFlow,
    MCEstimate,
    PoissonFlow,
    boltzmann_1d,
    energy_divergence_verdict,
    growth_rate,
    kac_path_projection,
    law_velocity,
    lipschitz_divergence_verdict,
    log_time_integral,
    mc_energy,
    mc_velocity_norm_sq,
    mixture_potential_1d,
    path_lipschitz_lower_bound,
    poisson_density,
    poisson_field,
    poisson_velocity,
    poisson_velocity_norm_sq_1d,
    unit_sphere_area,
)
from kacnb.theory.kac import Kac
from kacnb.theory.stats import agrees
from kacnb.theory.telegraph import continuity_residual

F64 = torch.float64
N_MC = 100_000


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------- coupling, diffusion
@pytest.mark.parametrize(("dim", "t"), [(1, 0.0), (3, 0.5), (10, 0.99)])
def test_coupling_velocity_moves_the_particles_and_norm_is_dimension(dim, t):
    """x_t = (1-t) z: the velocity must equal dx_t/dt = -z on every particle, so
    E|v_t(X_t)|^2 = E|z|^2 = d for every t < 1. Checked on particles drawn here (not by the
    flow's sampler), with the path derivative by centred differences; the closed form
    velocity_norm_sq(t) is compared with that independent Monte-Carlo value."""
    flow = CouplingFlow(dim)
    z = torch.randn(N_MC, dim, generator=generator(1), dtype=F64)
    h = 1e-4 * (1 - t)
    path_speed = ((1 - (t + h)) * z - (1 - (t - h)) * z) / (2 * h)
    v = flow.velocity(t, (1 - t) * z)
    torch.testing.assert_close(v, path_speed, rtol=1e-6, atol=1e-9)
    sq = (v**2).sum(dim=1)
    se = float(sq.std()) / math.sqrt(N_MC)
    assert abs(flow.velocity_norm_sq(t) - float(sq.mean())) < 5 * se
    # the flow's own sampler has the law (1-t) N(0, I_d): variance (1-t)^2 per coordinate
    draws = flow.sample(t, N_MC, generator(2))
    assert stats.kstest(draws[:, 0].numpy() / (1 - t), "norm").pvalue > 1e-3


@pytest.mark.parametrize(("dim", "sigma", "t"), [(1, 1.0, 0.01), (2, 1.0, 0.5), (5, 2.0, 3.0)])
def test_diffusion_norm_is_d_over_4t(dim, sigma, t):
    """p_t = N(0, sigma^2 t I), v = x/(2t): E|v|^2 = d sigma^2/(4t), not integrable at 0.
    The closed form against Monte Carlo on Gaussian draws made here, and the velocity
    against the continuity equation of the heat density (it must move N(0, sigma^2 t))."""
    flow = DiffusionFlow(dim, sigma)
    x = sigma * math.sqrt(t) * torch.randn(N_MC, dim, generator=generator(2), dtype=F64)
    sq = (flow.velocity(t, x) ** 2).sum(dim=1)
    assert abs(flow.velocity_norm_sq(t) - float(sq.mean())) < 5 * float(sq.std()) / math.sqrt(N_MC)
    est = mc_velocity_norm_sq(flow, t, N_MC, generator(3))
    assert abs(est.mean - flow.velocity_norm_sq(t)) < 5 * est.stderr

    def density(tt, y):  # one coordinate of N(0, sigma^2 t)
        return torch.exp(-(y**2) / (2 * sigma**2 * tt)) / torch.sqrt(2 * math.pi * sigma**2 * tt)

    def velocity(tt, y):
        return flow.velocity(float(tt.flatten()[0]), y[..., None].expand(*y.shape, dim))[..., 0]

    y = torch.linspace(-3, 3, 61, dtype=F64) * sigma * math.sqrt(t)
    res, d_t, _ = continuity_residual(
        density, velocity, torch.tensor(t, dtype=F64), y, t * 1e-4, 1e-4 * sigma * math.sqrt(t)
    )
    assert float(res.abs().max()) < 1e-6 * float(d_t.abs().max())


# ---------------------------------------------------------------------------- Kac
@pytest.mark.parametrize(
    ("a", "c", "t", "dim"),
    [(1.0, 1.0, 0.5, 1), (4.0, 2.0, 0.3, 3), (25.0, 5.0, 0.05, 2), (1600.0, 10.0, 1.0, 4)],
)
def test_kac_norm_bounded_by_d_c2(a, c, t, dim):
    """Prop 11: ||v_t||^2 <= d c^2; the Monte-Carlo value (exact sampler) matches the
    quadrature over the law [30-31] (atoms move with +-c)."""
    flow = KacFlow(Kac(a, c), dim)
    est = mc_velocity_norm_sq(flow, t, N_MC, generator(3))
    quad = flow.velocity_norm_sq(t)
    assert est.mean <= dim * c**2
    assert quad <= dim * c**2
    assert abs(est.mean - quad) < 5 * est.stderr + 1e-12


def test_kac_norm_limits():
    """As t -> 0 the atoms carry all the mass and the norm tends to d c^2; for large t the
    law is close to N(0, (c^2/a) t) and the norm to the diffusion value d (c^2/a)/(4t)."""
    a, c, dim = 1.0, 2.0, 2
    flow = KacFlow(Kac(a, c), dim)
    assert flow.velocity_norm_sq(0.0) == dim * c**2
    assert flow.velocity_norm_sq(1e-6) == pytest.approx(dim * c**2, rel=1e-5)
    norms = [flow.velocity_norm_sq(t) for t in (0.1, 1.0, 10.0, 100.0)]
    assert all(n1 < n0 for n0, n1 in zip(norms, norms[1:], strict=False))
    t = 200.0
    diffusion = DiffusionFlow(dim, c / math.sqrt(a)).velocity_norm_sq(t)
    assert flow.velocity_norm_sq(t) == pytest.approx(diffusion, rel=0.02)


# ---------------------------------------------------------------------------- Boltzmann
@pytest.mark.parametrize("t", [0.0, 0.3, 0.5, 1.0])
def test_boltzmann_translation_closed_form(t):
    """f0 = (x+m)^2/2, f1 = (x-m)^2/2: p_t = N((2t-1) m, 1), moved by v = 2m everywhere."""
    m = 1.5
    x = torch.linspace(-12.0, 12.0, 2401, dtype=F64)
    state = boltzmann_1d(lambda y: (y + m) ** 2 / 2, lambda y: (y - m) ** 2 / 2, x, t)
    mean = (2 * t - 1) * m
    normal = torch.exp(-0.5 * (x - mean) ** 2) / math.sqrt(2 * math.pi)
    assert torch.allclose(state.density, normal, atol=1e-12)
    bulk = state.density > 1e-8 * state.density.max()  # |x - mean| < 6
    assert float((state.velocity[bulk] - 2 * m).abs().max()) < 2e-3
    assert float(state.norm_sq) == pytest.approx(4 * m**2, rel=1e-6)
    assert torch.isnan(state.velocity[~state.valid]).all()


def _mixture_potential(m: float, w_left: float = 0.5):
    """-log of w N(-m, 1) + (1-w) N(m, 1), up to a constant."""

    def f(y: torch.Tensor) -> torch.Tensor:
        return -torch.logsumexp(
            torch.stack(
                [
                    math.log(w_left) - 0.5 * (y + m) ** 2,
                    math.log(1 - w_left) - 0.5 * (y - m) ** 2,
                ]
            ),
            dim=0,
        )

    return f


def _max_norm(f0, f1, m: float) -> float:
    x = torch.linspace(-m - 10.0, m + 10.0, 2001, dtype=F64)
    return max(float(boltzmann_1d(f0, f1, x, float(t)).norm_sq) for t in np.linspace(0, 1, 21))


def test_boltzmann_norm_grows_with_mode_separation():
    """From N(0, 1) to a symmetric mixture at +-m the modes travel at speed ~ m, so the peak
    norm grows (like m^2); when mass must cross between modes (weights 0.9/0.1 -> 0.1/0.9)
    it explodes like exp(m^2/2) (the low density between the modes)."""
    ms = [1.0, 2.0, 3.0, 4.0]
    symmetric = [_max_norm(lambda y: y**2 / 2, _mixture_potential(m), m) for m in ms]
    assert all(n1 > n0 for n0, n1 in zip(symmetric, symmetric[1:], strict=False))
    assert symmetric[-1] == pytest.approx(ms[-1] ** 2, rel=0.05)
    swap = [_max_norm(_mixture_potential(m, 0.9), _mixture_potential(m, 0.1), m) for m in ms]
    assert all(n1 > 5 * n0 for n0, n1 in zip(swap, swap[1:], strict=False))
    assert swap[-1] > 100 * symmetric[-1]


# ---------------------------------------------------------------------------- Poisson
DATA = torch.tensor([-1.0, 0.2, 0.5], dtype=F64)
WEIGHTS = torch.tensor([0.2, 0.3, 0.5], dtype=F64)


def _flux_through_circle(center, radius, n=512):
    """Outward flux of E through a circle in the (x, z) plane (periodic trapezoid rule)."""
    phi = torch.arange(n, dtype=F64) * (2 * math.pi / n)
    nx, nz = torch.cos(phi), torch.sin(phi)
    field = poisson_field(
        (center[0] + radius * nx)[:, None], center[1] + radius * nz, DATA, WEIGHTS
    )
    return float((field[:, 0] * nx + field[:, 1] * nz).sum() * (2 * math.pi * radius / n))


@pytest.mark.parametrize(
    ("center", "radius", "enclosed"),
    [
        ((0.2, 0.0), 0.1, 0.3),
        ((0.35, 0.0), 0.4, 0.8),
        ((-0.25, 0.0), 2.0, 1.0),
        ((0.0, 1.0), 0.3, 0),
    ],
)
def test_poisson_gauss_law(center, radius, enclosed):
    """Gauss's law in d = 1: the flux through a circle equals the enclosed charge."""
    assert _flux_through_circle(center, radius) == pytest.approx(enclosed, abs=1e-10)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_poisson_field_of_one_point(dim):
    """One charge at the origin: E = (x, z) / (S_d |(x, z)|^{d+1}), S_1 = 2 pi, S_2 = 4 pi,
    S_3 = 2 pi^2; the velocity E_x/E_z is x/z."""
    areas = {1: 2 * math.pi, 2: 4 * math.pi, 3: 2 * math.pi**2}
    assert unit_sphere_area(dim) == pytest.approx(areas[dim], rel=1e-14)
    x = torch.randn(7, dim, generator=generator(4), dtype=F64)
    z = torch.rand(7, generator=generator(5), dtype=F64) + 0.1
    point = torch.zeros(1, dim, dtype=F64)
    pos = torch.cat([x, z[:, None]], dim=1)
    expected = pos / (areas[dim] * pos.norm(dim=1, keepdim=True) ** (dim + 1))
    assert torch.allclose(poisson_field(x, z, point), expected, rtol=1e-12, atol=0)
    assert torch.allclose(poisson_velocity(x, z, point), x / z[:, None], rtol=1e-12, atol=0)


def test_poisson_field_is_divergence_free():
    """div E = 0 away from the charges (d = 2), so mu_z = 2 E_z dx is moved by E_x / E_z."""
    data = torch.randn(5, 2, generator=generator(6), dtype=F64)
    pos = torch.randn(6, 3, generator=generator(7), dtype=F64)
    pos[:, 2] = pos[:, 2].abs() + 0.2
    pos.requires_grad_(True)
    field = poisson_field(pos[:, :2], pos[:, 2], data)
    div = sum(
        torch.autograd.grad(field[:, k].sum(), pos, retain_graph=True)[0][:, k] for k in range(3)
    )
    scale = field.norm(dim=1) / pos[:, 2]  # |dE| ~ |E| / distance
    assert float((div.abs() / scale.detach()).max()) < 1e-12
    velocity = field[:, :2] / field[:, 2:]
    assert torch.allclose(poisson_velocity(pos[:, :2], pos[:, 2], data), velocity.detach())


@pytest.mark.parametrize("z", [0.05, 0.5, 3.0])
def test_poisson_density_integrates_to_one(z):
    """Half the flux leaves upwards: integral of 2 E_z over the line is 1 (Cauchy for one
    point), computed with x = tan(phi) so that the heavy tails are integrated exactly."""
    nodes, weights = roots_legendre(1000)
    phi = torch.tensor(nodes, dtype=F64) * (math.pi / 2)
    w = torch.tensor(weights, dtype=F64) * (math.pi / 2) / torch.cos(phi) ** 2
    x = torch.tan(phi)[:, None]
    one = torch.tensor([[0.3]], dtype=F64)
    assert float((poisson_density(x, z, one) * w).sum()) == pytest.approx(1.0, abs=1e-9)
    assert float((poisson_density(x, z, DATA, WEIGHTS) * w).sum()) == pytest.approx(1.0, abs=1e-9)


def test_poisson_truncated_norm_grows_like_one_over_z():
    """One point at 0: integral_{|x|<=R} 2 E_z (x/z)^2 = 2R/(pi z) - (2/pi) arctan(R/z);
    for several points the truncated norm also increases as z -> 0, roughly like 1/z."""
    big_r = 3.0
    x = torch.linspace(-big_r, big_r, 30001, dtype=F64)
    origin = torch.zeros(1, dtype=F64)
    for z in (1.0, 0.1, 0.02):
        exact = 2 * big_r / (math.pi * z) - (2 / math.pi) * math.atan(big_r / z)
        assert float(poisson_velocity_norm_sq_1d(z, origin, x)) == pytest.approx(exact, rel=1e-6)
    zs = [1.0, 0.3, 0.1, 0.03]
    norms = [float(poisson_velocity_norm_sq_1d(z, DATA, x, WEIGHTS)) for z in zs]
    assert all(n1 > n0 for n0, n1 in zip(norms, norms[1:], strict=False))
    assert norms[-1] * zs[-1] == pytest.approx(norms[-2] * zs[-2], rel=0.15)


def test_poisson_velocity_is_stable_in_high_dimension():
    """The velocity stays finite for d = 784, where |x - y|^{-(d+1)} under/overflows."""
    data = torch.randn(8, 784, generator=generator(8), dtype=F64) * 10
    x = torch.randn(4, 784, generator=generator(9), dtype=F64) * 10
    assert torch.isfinite(poisson_velocity(x, 0.5, data)).all()


# ---------------------------------------------------------------------------- validation
def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="dim"):
        CouplingFlow(0)
    with pytest.raises(ValueError, match="t must"):
        CouplingFlow(2).velocity(1.0, torch.zeros(3, 2))
    with pytest.raises(ValueError, match="x must"):
        CouplingFlow(2).velocity(0.5, torch.zeros(3, 3))
    with pytest.raises(ValueError, match="sigma"):
        DiffusionFlow(2, sigma=-1.0)
    with pytest.raises(ValueError, match="t must"):
        DiffusionFlow(2).velocity_norm_sq(0.0)
    with pytest.raises(ValueError, match="n must"):
        DiffusionFlow(2).sample(0.5, 0)
    with pytest.raises(ValueError, match="kac"):
        KacFlow((1.0, 1.0), 2)
    with pytest.raises(ValueError, match="t must"):
        KacFlow(Kac(1.0, 1.0), 2).sample(-1.0, 10)
    with pytest.raises(ValueError, match="flow"):
        mc_velocity_norm_sq(object(), 0.5, 10)
    x = torch.linspace(-3.0, 3.0, 61, dtype=F64)
    with pytest.raises(ValueError, match="t must"):
        boltzmann_1d(lambda y: y**2, lambda y: y**2, x, 1.5)
    with pytest.raises(ValueError, match="x_grid"):
        boltzmann_1d(lambda y: y**2, lambda y: y**2, x**3, 0.5)
    with pytest.raises(ValueError, match="f1"):
        boltzmann_1d(lambda y: y**2, torch.zeros(5), x, 0.5)
    with pytest.raises(ValueError, match="z must"):
        poisson_velocity(torch.zeros(2, 1), 0.0, DATA)
    with pytest.raises(ValueError, match="data"):
        poisson_field(torch.zeros(2, 2), 1.0, DATA)
    with pytest.raises(ValueError, match="weights"):
        poisson_field(torch.zeros(2, 1), 1.0, DATA, torch.tensor([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="z must"):
        poisson_velocity_norm_sq_1d(-1.0, DATA, x)


# ---------------------------------------------------------------------------- notebook 01 helpers
def test_lipschitz_constants_match_finite_differences():
    """Coupling: v = -x/(1-t) has Lip 1/(1-t) and sup over |x| <= R equal to R/(1-t);
    diffusion: v = x/(2t) has Lip 1/(2t). Checked on the velocity fields themselves."""
    x = torch.linspace(-2.0, 2.0, 401, dtype=F64)[:, None]
    for t in (0.0, 0.9, 0.999):
        flow = CouplingFlow(1)
        slope = torch.diff(flow.velocity(t, x)[:, 0]) / torch.diff(x[:, 0])
        assert float(slope.abs().max()) == pytest.approx(flow.lipschitz(t), rel=1e-9)
        assert float(flow.velocity(t, x).abs().max()) == pytest.approx(
            flow.sup_velocity(t, 2.0), rel=1e-12
        )
    for t in (1e-4, 0.5):
        flow = DiffusionFlow(1)
        slope = torch.diff(flow.velocity(t, x)[:, 0]) / torch.diff(x[:, 0])
        assert float(slope.abs().max()) == pytest.approx(flow.lipschitz(t), rel=1e-9)


def test_log_time_integral():
    """Exact for k/t (the diffusion energy, [3] fails: (d/4) log(1/eps)), spectrally accurate
    for t^2; the Kac energy is finite and <= d c^2 (t1 - t0) (Prop 11)."""
    flow = DiffusionFlow(3, sigma=2.0)
    for eps in (1e-2, 1e-9):
        exact = 3 * 4.0 / 4 * math.log(1 / eps)
        assert log_time_integral(flow.velocity_norm_sq, eps, 1.0) == pytest.approx(exact, rel=1e-13)
    assert log_time_integral(lambda t: t**2, 1e-3, 2.0) == pytest.approx((8 - 1e-9) / 3, rel=1e-13)
    kac = KacFlow(Kac(4.0, 2.0), 2)
    energies = [log_time_integral(kac.velocity_norm_sq, eps, 1.0) for eps in (1e-3, 1e-6, 1e-9)]
    assert all(e <= 2 * 4.0 * 1.0 for e in energies)
    # the tail integral_0^eps is at most d c^2 eps: the energy converges as eps -> 0
    assert energies[2] - energies[1] <= 2 * 4.0 * 1e-6
    assert energies[2] - energies[1] >= 0.0


def test_growth_rate_recovers_exponential():
    x = np.array([1.0, 2.0, 5.0, 7.5])
    rate, intercept = growth_rate(x, 3.0 * np.exp(0.7 * x))
    assert rate == pytest.approx(0.7, rel=1e-12)
    assert intercept == pytest.approx(math.log(3.0), rel=1e-12)
    with pytest.raises(ValueError, match="y"):
        growth_rate([1.0, 2.0], [1.0, -1.0])


@pytest.mark.parametrize("kind", ["gaussian", "laplace"])
def test_mixture_potential_is_minus_log_density(kind):
    """exp(-f) is the normalised mixture density (scipy reference)."""
    centres, weights, scale = [-2.0, 0.5, 3.0], [0.2, 0.5, 0.3], 0.7
    f = mixture_potential_1d(centres, weights, scale, kind)
    x = torch.linspace(-15.0, 15.0, 30001, dtype=F64)
    law = stats.norm if kind == "gaussian" else stats.laplace
    pairs = zip(centres, weights, strict=True)
    ref = sum(w * law.pdf(x.numpy(), loc=m, scale=scale) for m, w in pairs)
    assert np.allclose(torch.exp(-f(x)).numpy(), ref, rtol=1e-12, atol=1e-300)
    assert float(torch.trapezoid(torch.exp(-f(x)), x)) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="kind"):
        mixture_potential_1d(centres, weights, scale, "cauchy")


@pytest.mark.parametrize("t", [0.0, 0.25, 0.5, 1.0])
def test_boltzmann_flow_translation_sampling(t):
    """Translation case p_t = N((2t-1) m, 1), v = 2m: samples have the right mean and variance
    and the Monte-Carlo norm equals 4 m^2 (and the grid norm)."""
    m = 1.5
    x = torch.linspace(-12.0, 12.0, 4801, dtype=F64)
    flow = BoltzmannFlow1D(lambda y: (y + m) ** 2 / 2, lambda y: (y - m) ** 2 / 2, x)
    draws = flow.sample(t, 200_000, generator(10))
    assert draws.shape == (200_000, 1)
    n = draws.shape[0]
    assert abs(float(draws.mean()) - (2 * t - 1) * m) < 5 / math.sqrt(n)
    assert float(draws.var()) == pytest.approx(1.0, abs=5 * math.sqrt(2 / n) + 1e-4)
    est = mc_velocity_norm_sq(flow, t, 20_000, generator(11))
    assert est.mean == pytest.approx(4 * m**2, rel=1e-3)
    assert flow.velocity_norm_sq(t) == pytest.approx(4 * m**2, rel=1e-6)


def test_boltzmann_flow_mc_matches_grid_norm_bimodal():
    """Re-weighting two Gaussian modes at +-2: the Monte-Carlo norm (inverse-CDF draws,
    interpolated velocity) agrees with the grid norm integral J^2 / p."""
    f0 = mixture_potential_1d([-2.0, 2.0], [0.9, 0.1])
    f1 = mixture_potential_1d([-2.0, 2.0], [0.1, 0.9])
    x = torch.linspace(-12.0, 12.0, 4801, dtype=F64)
    flow = BoltzmannFlow1D(f0, f1, x)
    for t in (0.2, 0.5):
        est = mc_velocity_norm_sq(flow, t, 200_000, generator(12))
        assert abs(est.mean - flow.velocity_norm_sq(t)) < 5 * est.stderr


def test_boltzmann_peak_grows_exponentially_with_mode_distance():
    """Re-weighting 0.9/0.1 -> 0.1/0.9 between modes at +-m: the mass crosses the valley,
    where the density is ~exp(-m) (Laplace) or ~exp(-m^2/2) (Gaussian), so the peak norm
    (at t = 1/2 by symmetry) grows like exp(m) and like exp(m^2/2)/m respectively."""

    def peak(m, kind, half_width):
        n = int(200 * (m + half_width)) + 1
        x = torch.linspace(-m - half_width, m + half_width, n, dtype=F64)
        flow = BoltzmannFlow1D(
            mixture_potential_1d([-m, m], [0.9, 0.1], kind=kind),
            mixture_potential_1d([-m, m], [0.1, 0.9], kind=kind),
            x,
            rel_floor=1e-30,
        )
        return flow.peak_norm_sq(11)

    laplace = [peak(m, "laplace", 30.0) for m in (6.0, 8.0, 10.0)]
    assert all(t == pytest.approx(0.5, abs=1e-4) for t, _ in laplace)
    rate, _ = growth_rate([6.0, 8.0, 10.0], [p for _, p in laplace])
    assert rate == pytest.approx(1.0, abs=0.02)
    ms = np.array([4.0, 5.0, 6.0])
    gauss = np.array([peak(m, "gaussian", 10.0)[1] for m in ms])
    rate, _ = growth_rate(ms**2, gauss * ms)
    assert rate == pytest.approx(0.5, abs=0.01)


def test_poisson_flow_samples_follow_mu_z():
    """mu_z is the data convolved with a Cauchy law of scale z: in d = 1 the draws pass a
    KS test against the Cauchy mixture; in d = 2 the mass of the disc |x - y| <= z is
    P(F(2, 1) <= 1/2) = 1 - 1/sqrt(2), and the density 2 E_z integrates to it."""
    flow = PoissonFlow(DATA, WEIGHTS)
    draws = flow.sample(0.3, 50_000, generator(13))[:, 0].numpy()

    def cdf(v):
        return sum(
            float(w) * stats.cauchy.cdf(v, loc=float(y), scale=0.3)
            for y, w in zip(DATA, WEIGHTS, strict=True)
        )

    assert stats.kstest(draws, cdf).pvalue > 1e-3
    point = PoissonFlow(torch.zeros(1, 2, dtype=F64))
    z, n = 0.5, 200_000
    inside = float((point.sample(z, n, generator(14)).norm(dim=1) <= z).double().mean())
    exact = 1 - 1 / math.sqrt(2)
    assert stats.f.cdf(0.5, 2, 1) == pytest.approx(exact, rel=1e-12)
    assert abs(inside - exact) < 5 * math.sqrt(exact * (1 - exact) / n)
    r = torch.linspace(0.0, z, 2001, dtype=F64)
    pts = torch.stack([r, torch.zeros_like(r)], dim=1)
    disc_mass = torch.trapezoid(point.density(z, pts) * 2 * math.pi * r, r)
    assert float(disc_mass) == pytest.approx(exact, rel=1e-6)


def test_truncated_mc_norm_matches_closed_forms():
    """Truncated Monte Carlo: diffusion E[X^2/(4t^2); |X| <= R] = (erf(r/sqrt2) - 2 r phi(r))/(4t)
    with r = R/sqrt(t); Poisson flow: matches the grid norm of poisson_velocity_norm_sq_1d."""
    t, big_r = 0.5, 0.6
    r = big_r / math.sqrt(t)
    exact = (math.erf(r / math.sqrt(2)) - 2 * r * stats.norm.pdf(r)) / (4 * t)
    est = mc_velocity_norm_sq(DiffusionFlow(1), t, N_MC, generator(15), radius=big_r)
    assert abs(est.mean - exact) < 5 * est.stderr
    flow = PoissonFlow(DATA, WEIGHTS)
    x = torch.linspace(-3.0, 3.0, 6001, dtype=F64)
    for z in (1.0, 0.1):
        est = mc_velocity_norm_sq(flow, z, N_MC, generator(16), radius=3.0)
        assert abs(est.mean - flow.velocity_norm_sq(z, x)) < 5 * est.stderr


# ---------------------------------------------------------------------------- notebook 01 verdicts
def _heat_law(sigma: float = 1.0):
    """The heat kernel N(0, sigma^2 t) in the form law_velocity takes (density, frame)."""

    def density(t, y):
        return torch.exp(-(y**2) / (2 * sigma**2 * t)) / math.sqrt(2 * math.pi * sigma**2 * t)

    return density, lambda t: 8 * sigma * math.sqrt(t)


def _lip_per_decade(paths):
    """What int Lip dt gains over the decade 1 - t in [1e-6, 1e-5] (path lower bound)."""

    def lip(s):
        return path_lipschitz_lower_bound(paths, 1 - s, 1e-3 * s)

    return log_time_integral(lip, 1e-6, 1e-5)


def test_path_lipschitz_bound_and_its_verdict():
    """Coupled paths X_t = (1-t)Z force Lip(v_t) >= 1/(1-t) (equality: v is linear), so the
    integral in [4] gains ln 10 per decade. Particles that move like (1-t)^2 Z would force
    2/(1-t), and the verdict must say so; so must a 1 % error in the measured gain."""
    flow = CouplingFlow(2)

    def paths(ts):
        return flow.paths(ts, 200, generator=generator(20))

    for t in (0.5, 0.9, 1 - 1e-5):
        assert path_lipschitz_lower_bound(paths, t, 1e-4 * (1 - t)) == pytest.approx(
            flow.lipschitz(t), rel=1e-6
        )
    gain = _lip_per_decade(paths)
    assert lipschitz_divergence_verdict(gain)
    assert not lipschitz_divergence_verdict(1.01 * gain)

    def squared(ts):
        z = torch.randn(200, 2, generator=generator(20), dtype=F64)
        return torch.stack([(1 - t) ** 2 * z for t in ts])

    wrong = _lip_per_decade(squared)
    assert wrong == pytest.approx(2 * math.log(10), rel=1e-4)
    assert not lipschitz_divergence_verdict(wrong)


class _SlowerDiffusion(DiffusionFlow):
    """A flow whose norm is 1/(4 sqrt(t)): integrable at 0 (a convergent energy)."""

    def velocity(self, t, x):
        return x / (2 * t**0.75)


def test_mc_energy_and_the_divergence_verdict():
    """Diffusion: every decade adds (d/4) ln 10 (Monte Carlo within its error), and the
    verdict holds; a norm t^(-1/2) gives decades shrinking by 10^(-1/2) and a wrong sigma
    a biased value, and each flips it."""
    expected = math.log(10) / 4
    g = generator(21)
    right = [mc_energy(DiffusionFlow(1), lo, 10 * lo, 20_000, g) for lo in (1e-5, 1e-6)]
    assert abs(right[1].mean - expected) < 5 * right[1].stderr
    assert energy_divergence_verdict(*right, expected)
    slow = [mc_energy(_SlowerDiffusion(1), lo, 10 * lo, 20_000, g) for lo in (1e-5, 1e-6)]
    assert slow[1].mean / slow[0].mean == pytest.approx(10**-0.5, rel=0.02)
    assert not energy_divergence_verdict(*slow, expected)
    wide = [mc_energy(DiffusionFlow(1, 1.1), lo, 10 * lo, 20_000, g) for lo in (1e-5, 1e-6)]
    assert not energy_divergence_verdict(*wide, expected)


@pytest.mark.parametrize(("a", "c"), [(1.0, 1.0), (25.0, 5.0)])
def test_law_velocity_of_kac_is_bounded_and_matches_the_formula(a, c):
    """The velocity recovered from the law [30-31] through the continuity equation equals
    Thm 4's formula [41] and stays below c (Prop 11); its norm equals the quadrature with
    [41] and stays below c^2; the atoms move with the cone (speed c)."""
    kac = Kac(a, c)
    flow = KacFlow(kac, 3)
    for t in (1e-6, 0.05, 1.0, 8.0):
        lv = flow.law_velocity(t)
        v41 = kac.velocity(torch.tensor(t, dtype=F64), lv.flux.x)
        assert float((lv.flux.velocity - v41).abs().max()) < 1e-5 * c
        assert lv.max_speed <= c
        assert lv.edge_speed == pytest.approx(c, rel=1e-9)
        assert lv.norm_sq == pytest.approx(flow.velocity_norm_sq(t), rel=1e-6)
        assert lv.norm_sq <= 3 * c**2


def test_law_route_flags_an_unbounded_velocity():
    """The same routine applied to the heat kernel (the diffusion limit of Thm 9 with
    sigma = c / sqrt(a)) recovers v = x/(2t) and the norm sigma^2/(4t): at small t both the
    speed row (max |J/u| <= c) and the norm row (<= c^2) of notebook 01 flip, and so does the
    energy row (a Kac energy's last decade adds at most c^2 (1e-5 - 1e-6))."""
    c = 5.0
    density, frame = _heat_law(1.0)
    for t in (1e-4, 1e-2):
        lv = law_velocity(density, t, frame)
        assert torch.allclose(lv.flux.velocity, lv.flux.x / (2 * t), rtol=1e-6)
        assert lv.norm_sq == pytest.approx(1 / (4 * t), rel=1e-6)
        assert lv.max_speed > c and lv.norm_sq > c**2
    tail = log_time_integral(lambda t: law_velocity(density, t, frame).norm_sq, 1e-6, 1e-5)
    assert tail == pytest.approx(math.log(10) / 4, rel=1e-5)
    assert tail > c**2 * 9e-6


def test_mc_with_a_wrong_velocity_disagrees_with_the_law():
    """Notebook 01's norm row also asks Monte Carlo with [41] to agree with the law: a
    tripled velocity field makes it disagree."""
    kac = Kac(25.0, 5.0)
    flow = KacFlow(kac, 2)

    class Tripled(KacFlow):
        def velocity(self, t, x):
            return 3 * super().velocity(t, x)

    for t in (1e-3, 0.1):
        law = flow.law_velocity(t).norm_sq
        est = mc_velocity_norm_sq(flow, t, 20_000, generator(22))
        assert agrees(est.mean, est.stderr, law)
        bad = mc_velocity_norm_sq(Tripled(kac, 2), t, 20_000, generator(22))
        assert not agrees(bad.mean, bad.stderr, law)


@pytest.mark.parametrize("t", [1e-3, 0.3, 2.0])
def test_velocity_is_the_conditional_speed_of_the_random_walk(t):
    """v = E[dK/dt | K] [94] gives E[v(t, K) dK/dt] = ||v_t||^2 on random-walk paths; a zero,
    negated or tripled velocity breaks the identity by many standard errors."""
    kac = Kac(4.0, 2.0)
    norm = KacFlow(kac, 1).velocity_norm_sq(t)
    est = kac_path_projection(kac, t, 40_000, generator(23), dim=2)
    assert agrees(est.mean, est.stderr, 2 * norm)
    for wrong in (
        lambda tt, x: torch.zeros_like(x),
        lambda tt, x: -kac.velocity(tt, x),
        lambda tt, x: 3 * kac.velocity(tt, x),
    ):
        bad = kac_path_projection(kac, t, 40_000, generator(23), dim=2, velocity=wrong)
        assert not agrees(bad.mean, bad.stderr, 2 * norm)


def test_verdict_helpers_reject_degenerate_input():
    assert not energy_divergence_verdict(MCEstimate(0.0, 0.1), MCEstimate(0.5, 0.1), 0.5)
    assert not energy_divergence_verdict(MCEstimate(0.5, 0.0), MCEstimate(0.4, 0.0), 0.5)
    with pytest.raises(ValueError, match="t1"):
        mc_energy(DiffusionFlow(1), 1e-3, 1e-4, 10)
    with pytest.raises(ValueError, match="h"):
        path_lipschitz_lower_bound(lambda ts: torch.zeros(3, 4, 1), 0.5, 0.0)
