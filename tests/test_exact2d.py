"""The exact marginal fields of the 2D mixture experiment (kacnb.experiments.exact2d) against
independent
computations: the linear-space quadrature of kacnb.theory.telegraph / kacnb.theory.multid, the
continuity
equation by finite differences, the conditional-expectation property (Cor 15) by Monte Carlo,
the grid's symmetries, the bound |v_i| <= c, and the diffusion limit."""

from __future__ import annotations

import math

import pytest
import torch

from kacnb.cfm.metrics import GaussianMixture, grid_mixture
from kacnb.cfm.paths import MeanRevertingKacPath
from kacnb.experiments.exact2d import (
    DiffusionMixtureField,
    KacMixtureField,
    RectifiedMixtureField,
    exact_field,
    field_error,
    kac_vs_diffusion_distance,
    oracle_samples,
    smoothed_kac_1d,
)
from kacnb.experiments.gmm2d import paper_models
from kacnb.theory.kac import Kac, kac_sample, kac_velocity
from kacnb.theory.multid import convolved_flux
from kacnb.theory.telegraph import convolved_density

F64 = torch.float64


def _gauss(s: float):
    return lambda x: torch.exp(-0.5 * (x / s) ** 2) / (s * math.sqrt(2 * math.pi))


def _skewed_mixture(std: float) -> GaussianMixture:
    """Four modes off any grid, unequal weights: no symmetry can hide a wrong posterior."""
    means = torch.tensor([[0.0, 0.0], [0.35, -0.2], [-0.4, 0.5], [0.6, 0.45]], dtype=F64)
    return GaussianMixture(means, std, torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=F64))


@pytest.mark.parametrize(
    "a, c, s, t, n_quad",
    [
        (25.0, 5.0, 0.05, 0.3, 1024),  # wide modes, atoms of mass 5e-4
        (1600.0, 10.0, 0.05, 0.01, 1024),  # u~ narrower than the modes: several panels
        (4.0, 2.0, 0.02, 0.5, 2048),  # atoms of mass 0.14 at +-1, separated from the bulk
        (25.0, 5.0, 1e-4, 0.05, 70_000),  # the paper's Dirac-like modes
    ],
)
def test_smoothed_1d_law_matches_linear_space_quadrature(a, c, s, t, n_quad):
    # p_s = exp(-at)/2 (phi(y-ct) + phi(y+ct)) + int u~ phi, J_s = E[v(t,K) phi(y - K)]: the
    # independent reference is telegraph.convolved_density / multid.convolved_flux (a global
    # cone quadrature in the angle variable, in linear space), with enough nodes for phi_s.
    ct = c * t
    y = torch.cat(
        [
            torch.linspace(-ct - 3 * s, ct + 3 * s, 31, dtype=F64),
            torch.linspace(ct - 4 * s, ct + 4 * s, 17, dtype=F64),  # across the right atom
        ]
    )
    u = convolved_density(_gauss(s), y, t, a, c, n_quad=n_quad)
    j = convolved_flux(_gauss(s), y, t, a, c, n_quad=n_quad)
    log_p, vel = smoothed_kac_1d(torch.full((y.numel(), 1), t, dtype=F64), y[:, None], a, c, s)
    ok = u > 1e-8 * u.max()
    assert ok.sum() > 20
    rel = ((log_p[:, 0].exp() - u).abs() / u)[ok].max()
    assert rel < 1e-8
    assert (vel[:, 0] - j / u)[ok].abs().max() < 1e-8 * c


def test_smoothed_1d_law_has_unit_mass():
    # Atoms included, the smoothed law integrates to 1 (without them: 1 - exp(-a t) = 0.5).
    a, c, s, t = 1.0, 1.0, 0.05, math.log(2.0)
    y = torch.linspace(-1.5, 1.5, 6001, dtype=F64)
    log_p, _ = smoothed_kac_1d(torch.full((y.numel(), 1), t, dtype=F64), y[:, None], a, c, s)
    assert abs(float(torch.trapezoid(log_p[:, 0].exp(), y)) - 1.0) < 1e-10


def test_mixture_field_matches_brute_force_posterior():
    # Cor 15 with product modes (Thm 14), summed in linear space from the 1D references:
    # v^1 = sum_k w_k J(x1 - m_k1) u(x2 - m_k2) / sum_k w_k u(x1 - m_k1) u(x2 - m_k2).
    gmm = _skewed_mixture(0.08)
    a, c, t = 9.0, 1.5, 0.2
    field = KacMixtureField(gmm, a, c)
    x = field.sample(t, 40, torch.Generator().manual_seed(3))
    u = [
        [convolved_density(_gauss(0.08), x[:, i] - m[i], t, a, c) for i in (0, 1)]
        for m in gmm.means
    ]
    j = [[convolved_flux(_gauss(0.08), x[:, i] - m[i], t, a, c) for i in (0, 1)] for m in gmm.means]
    dens = sum(w * uk[0] * uk[1] for w, uk in zip(gmm.weights, u, strict=True))
    v1 = sum(w * jk[0] * uk[1] for w, jk, uk in zip(gmm.weights, j, u, strict=True)) / dens
    v2 = sum(w * uk[0] * jk[1] for w, jk, uk in zip(gmm.weights, j, u, strict=True)) / dens
    v = field.velocity(t, x)
    assert torch.allclose(v, torch.stack([v1, v2], 1), rtol=0, atol=1e-10)
    assert torch.allclose(field.log_density(t, x), dens.log(), rtol=0, atol=1e-10)


def _continuity_residual(field, t: float, x: torch.Tensor, h: float, dt: float):
    """(d/dt p + div(p v), d/dt p) at points x by central differences (float64)."""
    n = x.shape[0]

    def p(tt, xx):
        return field.log_density(tt, xx).exp()

    dp_dt = (p(t + dt, x) - p(t - dt, x)) / (2 * dt)
    div = torch.zeros(n, dtype=F64)
    for i in range(2):
        e = torch.zeros(2, dtype=F64)
        e[i] = h
        div += (p(t, x + e) * field.velocity(t, x + e)[:, i]) / (2 * h)
        div -= (p(t, x - e) * field.velocity(t, x - e)[:, i]) / (2 * h)
    return dp_dt + div, dp_dt


def test_kac_field_solves_the_continuity_equation():
    # d/dt p_t + div(p_t v_t) = 0 [2] for the mixture field, at points of mu_t where the
    # modes overlap and the atoms (mass exp(-1.2) = 0.3 per axis) carry much of the mass.
    gmm = _skewed_mixture(0.05)
    field = KacMixtureField(gmm, 4.0, 2.0)
    t = 0.3
    x = field.sample(t, 60, torch.Generator().manual_seed(1))
    res, dp_dt = _continuity_residual(field, t, x, h=1e-4, dt=1e-5)
    assert float(res.abs().max()) < 1e-4 * float(dp_dt.abs().max())


def test_kac_field_solves_the_continuity_equation_for_dirac_like_modes():
    # The paper's grid mixture (std 1e-4), (25, 5), t = 0.02: around the atoms of one mode.
    field = KacMixtureField(grid_mixture(), 25.0, 5.0)
    t, s = 0.02, 1e-4
    g = torch.Generator().manual_seed(2)
    offsets = torch.tensor([[0.1, 0.0], [0.1, 0.1], [0.03, -0.1], [0.0, 0.0]], dtype=F64)
    x = (offsets.repeat(8, 1) + 2 * s * torch.randn(32, 2, generator=g, dtype=F64)) + 1.0
    res, dp_dt = _continuity_residual(field, t, x, h=s / 100, dt=s / 500)
    assert float(res.abs().max()) < 1e-4 * float(dp_dt.abs().max())


@pytest.mark.parametrize(
    "gmm, a, c, t",
    [
        (grid_mixture(), 25.0, 5.0, 0.04),  # the paper's: atoms of mass exp(-1) per axis
        (_skewed_mixture(0.05), 4.0, 2.0, 0.3),  # overlapping modes: a mixed posterior
    ],
)
def test_kac_field_is_the_conditional_expectation_monte_carlo(gmm, a, c, t):
    # Cor 15 [94-95]: v_t(X_t) = E[v(t, K(t)) | X_t], so for any phi,
    # E[(v(t, K) - v_t(X_t)) . phi(X_t)] = 0, checked by Monte Carlo on exact draws.
    n = 4000
    field = KacMixtureField(gmm, a, c)
    g = torch.Generator().manual_seed(5)
    x0 = gmm.sample(n, generator=g, dtype=F64)
    k = kac_sample(torch.full((n,), t, dtype=F64), a, c, dim=2, generator=g)
    x = x0 + k
    v_cond = kac_velocity(torch.full((n, 1), t, dtype=F64), k, a, c)
    v = field.velocity(t, x)
    tests = {
        "v itself": v,
        "sign": torch.sign(x - torch.round(x)),
        "right half": (x[:, :1] > 0).to(F64).expand(-1, 2),
    }
    for name, phi in tests.items():
        prod = ((v_cond - v) * phi).sum(1)
        z = float(prod.mean() / (prod.std() / math.sqrt(n)))
        assert abs(z) < 4.5, (name, z)


def test_grid_symmetries():
    field = KacMixtureField(grid_mixture(), 25.0, 5.0)
    x = torch.randn(50, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    for t in (0.01, 0.3):
        v = field.velocity(t, x)
        assert torch.allclose(field.velocity(t, -x), -v, rtol=0, atol=1e-12)
        assert torch.allclose(field.velocity(t, x.flip(1)), v.flip(1), rtol=0, atol=1e-12)
        mirror = x * torch.tensor([-1.0, 1.0], dtype=F64)
        expect = v * torch.tensor([-1.0, 1.0], dtype=F64)
        assert torch.allclose(field.velocity(t, mirror), expect, rtol=0, atol=1e-12)


def test_bounded_and_finite_on_a_wide_domain():
    c = 5.0
    field = KacMixtureField(grid_mixture(), 25.0, c)
    grid = torch.tensor([0.0, 1e-7, 0.3, 1.0, 1.0002, 3.0, 1e3, 1e8, 1e200], dtype=F64)
    x = torch.cartesian_prod(torch.cat([grid, -grid]), torch.cat([grid, -grid]))
    for t in (0.0, 1e-300, 1e-12, 1e-6, 0.01, 1.0, 100.0):
        v = field.velocity(t, x)
        assert torch.isfinite(v).all()
        assert float(v.abs().max()) <= c
        log_p = field.log_density(t, x)
        assert not torch.isnan(log_p).any()
        assert torch.isfinite(log_p[(x.abs() <= 1e8).all(1)]).all()
    assert field.velocity(0.0, x).abs().max() == 0.0  # nothing moves yet at t = 0
    far = torch.tensor([[1e6, 0.0], [-50.0, 1e4]], dtype=F64)
    v = field.velocity(0.5, far)  # far tails: the atoms win, v_i -> sign c
    assert float(v[0, 0]) == pytest.approx(c) and float(v[1, 0]) == pytest.approx(-c)
    assert float(v[1, 1]) == pytest.approx(c)


def test_diffusion_field_law_and_continuity():
    gmm = _skewed_mixture(0.1)
    field = DiffusionMixtureField(gmm, sigma=0.7)
    t = 0.2
    x = field.sample(t, 40, torch.Generator().manual_seed(4))
    wide = GaussianMixture(gmm.means, math.sqrt(0.1**2 + 0.49 * t), gmm.weights)
    assert torch.allclose(field.log_density(t, x), wide.log_prob(x), rtol=0, atol=1e-12)
    res, dp_dt = _continuity_residual(field, t, x, h=1e-4, dt=1e-5)
    assert float(res.abs().max()) < 1e-5 * float(dp_dt.abs().max())


def test_exact_field_from_the_paper_models():
    fields = [exact_field(spec.path) for spec in paper_models(eps=1e-3)]
    assert [type(f).__name__ for f in fields] == ["KacMixtureField"] * 3 + ["DiffusionMixtureField"]
    assert [(f.a, f.c) for f in fields[:3]] == [(25, 5), (64, 8), (1600, 10)]
    assert fields[3].t_min == 1e-3 and fields[3].sigma == 1.0
    with pytest.raises(ValueError, match="only KacPath, DiffusionPath and RectifiedFlowPath"):
        exact_field(MeanRevertingKacPath(Kac(1.0, 1.0)))
    with pytest.raises(ValueError, match="shape"):
        fields[0].velocity(0.5, torch.zeros(3, 3, dtype=F64))


def test_field_error_scales():
    field = KacMixtureField(grid_mixture(), 25.0, 5.0)
    times = [0.05, 0.5]
    offset = torch.tensor([0.3, -0.4], dtype=F64)
    rows = field_error(field, field, times, 300, torch.Generator().manual_seed(0))
    assert all(r["mse"] == 0.0 and r["rel"] == 0.0 for r in rows)
    rows = field_error(
        lambda t, x: torch.zeros_like(x), field, times, 300, torch.Generator().manual_seed(0)
    )
    assert all(r["mse"] == pytest.approx(r["ref"], rel=1e-12) and r["rel"] == 1.0 for r in rows)
    shifted = field_error(
        lambda t, x: field(t, x) + offset, field, times, 300, torch.Generator().manual_seed(0)
    )
    assert all(r["mse"] == pytest.approx(0.25, rel=1e-9) and r["se"] < 1e-9 for r in shifted)

    class Shifted(torch.nn.Module):  # a float32 network sees float32 inputs
        def __init__(self):
            super().__init__()
            self.b = torch.nn.Parameter(offset.float())

        def forward(self, t, x):
            assert x.dtype == torch.float32 and t.shape == (x.shape[0],)
            return field(t, x) + self.b

    rows = field_error(Shifted(), field, times, 300, torch.Generator().manual_seed(0))
    assert all(r["mse"] == pytest.approx(0.25, rel=1e-5) for r in rows)
    diffusion = DiffusionMixtureField(grid_mixture(), t_min=1e-3)
    with pytest.raises(ValueError, match="times must lie"):
        field_error(diffusion, diffusion, [1e-4], 10)


def test_latent_is_the_paths_draw():
    gmm = grid_mixture()
    x0 = gmm.sample(20, generator=torch.Generator().manual_seed(0), dtype=F64)
    for spec in paper_models(eps=1e-3):
        field = exact_field(spec.path, gmm)
        mine = field.latent(x0, torch.Generator().manual_seed(7))
        theirs = spec.path.latent(x0, torch.Generator().manual_seed(7))
        assert torch.equal(mine, theirs)


def test_oracle_samples_return_to_the_modes():
    # The exact flow carries mu_T back to mu_0 (Cor 15): integrated from x0 + K(T), the
    # points land on the modes (within 4 std: probability 1 - exp(-8) for exact samples)
    # with the mixture's weights.
    gmm = _skewed_mixture(0.03)
    field = KacMixtureField(gmm, 4.0, 2.0, T=0.3)
    g = torch.Generator().manual_seed(0)
    n = 60
    x0 = gmm.sample(n, generator=g, dtype=F64)
    x_start = field.latent(x0, g)
    assert float(torch.cdist(x_start, gmm.means).min(1).values.median()) > 10 * 0.03
    res = oracle_samples(field, x_start=x_start)
    dist, mode = torch.cdist(res.x, gmm.means).min(1)
    assert float((dist < 4 * 0.03).double().mean()) > 0.97
    share = torch.bincount(mode, minlength=4).double() / n
    se = (gmm.weights * (1 - gmm.weights) / n).sqrt()
    assert float(((share - gmm.weights) / se).abs().max()) < 4.0
    assert res.nfe > 10
    euler = oracle_samples(field, x_start=x_start, method="euler", steps=8)
    assert euler.nfe == 8 and euler.x.shape == x_start.shape
    with pytest.raises(ValueError, match="x0"):
        oracle_samples(field)


def test_kac_field_approaches_the_diffusion_field():
    # Thm 9 / Section 7.1: with c^2/a = 1 fixed, the L2(mu_t) distance between the Kac and
    # the diffusion field falls as (a, c) grows.
    rows = kac_vs_diffusion_distance(
        [(4.0, 2.0), (25.0, 5.0), (400.0, 20.0)], [0.2], 400, torch.Generator().manual_seed(0)
    )
    dist = [r["dist"] for r in rows]
    se = [r["se"] for r in rows]
    assert all(r["sigma"] == 1.0 for r in rows)
    for k in range(2):
        assert dist[k + 1] + 4 * se[k + 1] < dist[k] - 4 * se[k]
    assert rows[-1]["rel"] < 0.5 * rows[0]["rel"]


def test_rectified_field_law_continuity_and_conditional_mean():
    # law: the mixture of N((1 - u) m_k, ((1 - u)^2 s^2 + u^2 sigma^2) I)
    gmm = _skewed_mixture(0.1)
    field = RectifiedMixtureField(gmm, sigma=0.8, T=2.0)
    t = 0.6  # u = 0.3
    x = field.sample(t, 40, torch.Generator().manual_seed(5))
    var = 0.7**2 * 0.1**2 + 0.3**2 * 0.8**2
    shrunk = GaussianMixture(0.7 * gmm.means, math.sqrt(var), gmm.weights)
    assert torch.allclose(field.log_density(t, x), shrunk.log_prob(x), rtol=0, atol=1e-12)
    # continuity equation [2] by finite differences
    res, dp_dt = _continuity_residual(field, t, x, h=1e-4, dt=1e-5)
    assert float(res.abs().max()) < 1e-5 * float(dp_dt.abs().max())
    # the conditional mean of the target (sigma Z - X0)/T by Monte Carlo near one point
    g = torch.Generator().manual_seed(6)
    n = 400_000
    x0 = gmm.sample(n, generator=g, dtype=F64)
    z = torch.randn(n, 2, generator=g, dtype=F64)
    xt = 0.7 * x0 + 0.3 * 0.8 * z
    point = xt[:1].clone()
    near = (xt - point).norm(dim=1) < 0.03
    target = (0.8 * z[near] - x0[near]) / 2.0
    mc, se = target.mean(0), target.std(0) / math.sqrt(int(near.sum()))
    exact = field.velocity(t, point)[0]
    assert int(near.sum()) > 300
    assert bool(((mc - exact).abs() < 5 * se + 0.02).all()), (mc, exact, se)


def test_rectified_field_near_dirac_modes_is_the_coupling_field():
    # paper Section 3: near a Dirac-like mode v = (x - m)/t, so |v| stays of order one while
    # the Lipschitz constant is 1/t
    from kacnb.experiments.exact2d import speed_and_lipschitz

    field = RectifiedMixtureField(grid_mixture(std=1e-4))
    g = torch.Generator().manual_seed(7)
    s1, l1 = speed_and_lipschitz(field, 0.1, 4000, g)
    s3, l3 = speed_and_lipschitz(field, 1e-3, 4000, g)
    assert s3 / s1 == pytest.approx(1.0, abs=0.05)
    assert l1 == pytest.approx(10.0, rel=0.01) and l3 == pytest.approx(1e3, rel=0.01)
    # the diffusion field instead: speed ~ t^(-1/2) near a mode (at t = 0.1 the blurred modes
    # still overlap, so the growth over these times is even larger than tenfold)
    dif = DiffusionMixtureField(grid_mixture(std=1e-4))
    d1, _ = speed_and_lipschitz(dif, 0.1, 4000, g)
    d3, _ = speed_and_lipschitz(dif, 1e-3, 4000, g)
    assert d3 / d1 > 5
    with pytest.raises(ValueError, match="t > 0"):
        field.velocity(0.0, torch.zeros(2, 2, dtype=F64))
