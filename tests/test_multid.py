"""Tests for kacnb.theory.multid: componentwise Kac processes and product densities (paper Sections
5-6).

Each test asserts a mathematical fact with an independent reference: closed-form Gaussian
integrals, direct d-dimensional quadrature, Monte Carlo with the exact samplers, or a
finite-difference check of the continuity equation [2].
"""

from __future__ import annotations

import math

import pytest
import torch

from kacnb.theory.kac import Kac
from kacnb.theory.multid import (
    brownian_paths,
    continuity_residual_2d,
    convolved_flux,
    convolved_velocity,
    convolved_velocity_norm_sq,
    gaussian_telegraph_heat_l2_leading,
    kac_increment_second_moment,
    loglog_slope,
    mean_square_displacement,
    outer_product,
    product_flow_2d,
    product_l2_distance,
    product_velocity_norm_sq,
    rate_bound_verdict,
    rms_displacement,
    smiley_cloud,
    sup_excursion,
    support_verdict,
    telegraph_heat_l2,
    thm12_slides_exponent,
    w2_assignment,
    w2_lipschitz_verdict,
    w2_sorted_1d,
)
from kacnb.theory.telegraph import (
    convolved_density,
    heat_density,
    l2_distance,
    mass_outside,
    solve_telegraph,
)

F64 = torch.float64


def gaussian(mean: float, std: float):
    """Density of N(mean, std^2) as a callable on tensors."""

    def f(y: torch.Tensor) -> torch.Tensor:
        return torch.exp(-0.5 * ((y - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))

    return f


def bimodal(y: torch.Tensor) -> torch.Tensor:
    return 0.5 * gaussian(-1.0, 0.3)(y) + 0.5 * gaussian(1.0, 0.3)(y)


def gauss_inner(s1: float, s2: float) -> float:
    """int N(0, s1^2) N(0, s2^2) dx."""
    return 1.0 / math.sqrt(2 * math.pi * (s1**2 + s2**2))


# ---------------------------------------------------------------------------- products
@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_product_l2_distance_of_gaussians_matches_closed_form(d):
    """||N(0, s1^2 I) - N(0, s2^2 I)||^2 = A^d - 2 B^d + C^d with 1D Gaussian integrals."""
    x = torch.linspace(-12, 12, 2001, dtype=F64)
    s1, s2 = 1.0, 1.1
    u, h = gaussian(0, s1)(x), gaussian(0, s2)(x)
    exact = gauss_inner(s1, s1) ** d - 2 * gauss_inner(s1, s2) ** d + gauss_inner(s2, s2) ** d
    got = float(product_l2_distance(u, h, x, dim=d))
    assert got == pytest.approx(math.sqrt(exact), rel=1e-9)


def test_product_l2_distance_equals_direct_tensor_quadrature():
    """Different factors per component: the telescoped 1D formula equals the trapezoid rule
    on the 3D tensor grid, and in 1D it equals telegraph.l2_distance."""
    x = torch.linspace(-5, 5, 81, dtype=F64)
    u = torch.stack([gaussian(0, 0.7)(x), bimodal(x), gaussian(0.3, 1.0)(x)])
    h = torch.stack([gaussian(0.1, 0.8)(x), gaussian(0, 1.0)(x), bimodal(x)])
    diff = outer_product(*u) - outer_product(*h)
    direct = torch.trapezoid(torch.trapezoid(torch.trapezoid(diff**2, x), x), x)
    assert float(product_l2_distance(u, h, x)) == pytest.approx(math.sqrt(direct), rel=1e-10)
    assert float(product_l2_distance(u[:1], h[:1], x)) == pytest.approx(
        float(l2_distance(u[0], h[0], x)), rel=1e-12
    )


def test_product_l2_distance_has_no_cancellation():
    """For nearly equal factors the naive A - 2B + C loses all digits; the telescoped form
    keeps the first-order result ||e|| ||h||^(d-1) sqrt(d) (orthogonal perturbation)."""
    x = torch.linspace(-10, 10, 4001, dtype=F64)
    h = gaussian(0, 1)(x)
    bump = x * h  # odd, so orthogonal to the even h
    eps = 1e-9
    d = 3
    got = float(product_l2_distance(h + eps * bump, h, x, dim=d))
    hh = float(torch.trapezoid(h * h, x))
    ee = float(torch.trapezoid(bump * bump, x))
    expected = eps * math.sqrt(d * ee * hh ** (d - 1))
    assert got == pytest.approx(expected, rel=1e-6)


def test_outer_product_shape_and_values():
    a = torch.tensor([1.0, 2.0], dtype=F64)
    b = torch.tensor([3.0, 5.0, 7.0], dtype=F64)
    p = outer_product(a, b, a)
    assert p.shape == (2, 3, 2)
    assert float(p[1, 2, 1]) == 2 * 7 * 2


def test_invalid_arguments():
    x = torch.linspace(-1, 1, 11, dtype=F64)
    with pytest.raises(ValueError, match="dim"):
        product_l2_distance(x, x, x)
    with pytest.raises(ValueError, match="grid size"):
        product_l2_distance(x[:5], x[:5], x, dim=2)
    with pytest.raises(ValueError, match="tau"):
        kac_increment_second_moment(-1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="n must be >= 10"):
        smiley_cloud(5)


# ---------------------------------------------------------------------------- flux, Cor 15
@pytest.mark.parametrize(("a", "c", "t"), [(1.0, 1.0, 0.5), (25.0, 5.0, 0.2), (2.0, 1.0, 3.0)])
def test_flux_second_moment_identity(a, c, t):
    """d/dt E[X_t^2] = 2 int x J dx, and E[X_t^2] = s0^2 + E K(t)^2 with
    d/dt E K(t)^2 = (c^2/a)(1 - exp(-2 a t)) (from kac_increment_second_moment)."""
    x = torch.linspace(-c * t - 6, c * t + 6, 3001, dtype=F64)
    j = convolved_flux(gaussian(0, 0.5), x, t, a, c)
    lhs = 2 * float(torch.trapezoid(x * j, x))
    assert lhs == pytest.approx(c * c / a * (1 - math.exp(-2 * a * t)), rel=1e-8)
    # the same derivative by finite differences of the closed-form second moment
    h = 1e-5
    m = kac_increment_second_moment(torch.tensor([t - h, t + h], dtype=F64), a, c)
    assert lhs == pytest.approx(float(m[1] - m[0]) / (2 * h), rel=1e-6)


@pytest.mark.parametrize(("a", "c", "t"), [(1.0, 1.0, 0.7), (25.0, 5.0, 0.3)])
def test_flux_solves_1d_continuity_equation(a, c, t):
    """du/dt + dJ/dx = 0 by centred differences (error O(h^2)); |J| <= c u."""
    f0 = bimodal
    x = torch.linspace(-c * t - 4, c * t + 4, 1601, dtype=F64)
    dx = float(x[1] - x[0])
    h = 1e-4
    dudt = (convolved_density(f0, x, t + h, a, c) - convolved_density(f0, x, t - h, a, c)) / (2 * h)
    j = convolved_flux(f0, x, t, a, c)
    djdx = (j[2:] - j[:-2]) / (2 * dx)
    res = dudt[1:-1] + djdx
    assert float(res.abs().max() / dudt.abs().max()) < 2e-3
    u = convolved_density(f0, x, t, a, c)
    assert bool((j.abs() <= c * u * (1 + 1e-9) + 1e-300).all())
    w = convolved_velocity(f0, x, t, a, c)
    assert float(w.abs().max()) <= c


def test_velocity_of_large_a_limit_is_heat_flow_velocity():
    """Thm 9: for a, c -> inf with c^2/a = sigma^2 = 1 the marginal velocity tends to the heat
    probability-flow velocity -sigma^2/2 d/dx log h; for h = N(0, s0^2 + t) that is
    x / (2 (s0^2 + t))."""
    a, c, t, s0 = 1.0e4, 100.0, 0.5, 0.5
    x = torch.linspace(-1.5, 1.5, 31, dtype=F64)
    w = convolved_velocity(gaussian(0, s0), x, t, a, c, n_quad=4096)
    assert torch.allclose(w, x / (2 * (s0**2 + t)), atol=2e-3)


def test_product_flow_2d_satisfies_continuity_with_second_order_error():
    """Lemma 13 / Thm 14: p = u1 u2 with v = (J1/u1, J2/u2) solves the 2D continuity
    equation; the FD residual falls by ~4 when the steps halve (second order)."""
    a, c, t = 1.0, 1.0, 0.6
    rel = []
    for n in (61, 121):
        xs = torch.linspace(-3.5, 3.5, n, dtype=F64)
        dx = float(xs[1] - xs[0])
        h = dx / c
        now = product_flow_2d(gaussian(0, 0.5), bimodal, xs, xs, t, a, c)
        before = product_flow_2d(gaussian(0, 0.5), bimodal, xs, xs, t - h, a, c).density
        after = product_flow_2d(gaussian(0, 0.5), bimodal, xs, xs, t + h, a, c).density
        r = continuity_residual_2d(
            before, after, h, now.density, now.velocity_x, now.velocity_y, dx, dx
        )
        rel.append(r.relative)
    assert rel[1] < 2e-2
    assert 3.0 < rel[0] / rel[1] < 5.0


def test_continuity_residual_of_a_translation_is_small():
    """p(t, x, y) = g(x - t) g(y - 2t) with v = (1, 2) solves the continuity equation."""
    g = gaussian(0, 0.5)
    xs = torch.linspace(-3, 3, 241, dtype=F64)
    dx = float(xs[1] - xs[0])
    t, h = 0.3, 1e-3

    def p(s):
        return outer_product(g(xs - s), g(xs - 2 * s))

    ones = torch.ones(241, 241, dtype=F64)
    r = continuity_residual_2d(p(t - h), p(t + h), h, p(t), ones, 2 * ones, dx, dx)
    assert r.relative < 3e-3
    wrong = continuity_residual_2d(p(t - h), p(t + h), h, p(t), ones, ones, dx, dx)
    assert wrong.relative > 0.3


def test_product_velocity_norm_sq_bounded_and_jensen():
    """Prop 11 / Jensen: ||v_t||^2 of the marginal (Cor 15) flow of N(0, s0^2 I) + K(t) is at
    most the conditional norm E|v(t, K(t))|^2 (quadrature), itself <= d c^2."""
    from kacnb.theory.flows import KacFlow

    a, c, t, d = 1.0, 1.0, 0.8, 2
    x = torch.linspace(-c * t - 5, c * t + 5, 2001, dtype=F64)
    f0 = gaussian(0, 0.5)
    u = convolved_density(f0, x, t, a, c).expand(d, -1)
    j = convolved_flux(f0, x, t, a, c).expand(d, -1)
    marginal = product_velocity_norm_sq(u, j, x)
    conditional = KacFlow(Kac(a, c), d).velocity_norm_sq(t)
    assert 0 < marginal < conditional <= d * c * c
    assert convolved_velocity_norm_sq(f0, t, a, c, 0.5, dim=d) == pytest.approx(marginal, rel=1e-8)
    # c t << width: the marginal velocity averages the atoms' +c and -c, about c^2 t x / s0^2,
    # so its norm is tiny, far below the conditional norm (about d c^2)
    assert convolved_velocity_norm_sq(f0, 1e-3, a, c, 0.5, dim=d) < 0.01 * d * c * c


# ---------------------------------------------------------------------------- Thm 12
def test_telegraph_heat_l2_1d_matches_direct_and_dims_consistent():
    """d = 1 equals the 1D trapezoid distance of convolved_density and heat_density, and for
    a fine grid the d-dimensional result is independent of the grid resolution."""
    s0, a, c, t = 0.5, 2.0, 1.0, 1.5
    f0 = gaussian(0, s0)
    res = telegraph_heat_l2(f0, [t], a, c, s0, dims=(1, 2, 3))
    x = torch.linspace(-20, 20, 4001, dtype=F64)
    u = convolved_density(f0, x, t, a, c, n_quad=2048)
    h = heat_density(f0, x, t, c / math.sqrt(a), n_quad=2048)
    assert float(res.distance[0, 0]) == pytest.approx(float(l2_distance(u, h, x)), rel=1e-6)
    for j, d in enumerate((1, 2, 3)):
        direct = float(product_l2_distance(u, h, x, dim=d))
        assert float(res.distance[0, j]) == pytest.approx(direct, rel=1e-6)
        hh = float(torch.trapezoid(h * h, x))
        assert float(res.heat_norm[0, j]) == pytest.approx(hh ** (d / 2), rel=1e-8)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_leading_order_asymptotics_match_exact_distance(d):
    """Our leading-order formula for Gaussian X_0 agrees with the exact distance up to a
    relative O(1/(a t)) error: better than 1 % at a t = 250 and 3 % at a t = 50."""
    s0 = 0.5
    f0 = gaussian(0, s0)
    for a, c, t, tol in [(25.0, 5.0, 10.0, 0.01), (1.0, 1.0, 50.0, 0.03)]:
        exact = float(telegraph_heat_l2(f0, [t], a, c, s0, dims=(d,)).distance[0, 0])
        lead = float(gaussian_telegraph_heat_l2_leading(t, a, c, s0, d))
        assert exact == pytest.approx(lead, rel=tol)


def test_leading_order_rate_is_one_plus_d_over_4():
    """For sigma^2 t >> s0^2 the leading term decays like t^-(1 + d/4)."""
    t = torch.logspace(4, 6, 5, dtype=F64)
    for d in (1, 2, 3, 5):
        y = gaussian_telegraph_heat_l2_leading(t, 1.0, 1.0, 0.0, d)
        assert loglog_slope(t, y) == pytest.approx(-(1 + d / 4), abs=1e-9)


def test_thm12_slides_rate_verdict_accepts_steep_and_rejects_flat_slopes():
    """The slides' exponent -(1/2 + (d-1)/4) and its verdict (an upper bound). The measured
    slopes of notebook 03 (exact distances, fit on t in [10, 100]) pass it; a slope flatter
    than the exponent fails it, and so does the distance to a heat density with the wrong
    sigma, which does not tend to 0 faster than the norms themselves (slope -1/4 in d = 1)."""
    assert [thm12_slides_exponent(d) for d in (1, 2, 3)] == [-0.5, -0.75, -1.0]
    s0, a, c = 0.5, 1.0, 1.0
    times = [10.0, 20.0, 50.0, 100.0]
    res = telegraph_heat_l2(gaussian(0, s0), times, a, c, s0, dims=(1, 2, 3))
    for j, d in enumerate((1, 2, 3)):
        slope = loglog_slope(times, res.distance[:, j])
        assert rate_bound_verdict(slope, thm12_slides_exponent(d))
        assert not rate_bound_verdict(thm12_slides_exponent(d) + 0.05, thm12_slides_exponent(d))
    assert not rate_bound_verdict(float("nan"), -0.5)
    # telegraph density against the heat density of the wrong variance 1.5 sigma^2 t
    x = torch.linspace(-80.0, 80.0, 6401, dtype=F64)
    wrong = []
    for t in times:
        u = convolved_density(gaussian(0, s0), x, t, a, c)
        h = heat_density(gaussian(0, s0), x, t, math.sqrt(1.5) * c / math.sqrt(a))
        wrong.append(float(l2_distance(u, h, x)))
    slope = loglog_slope(times, wrong)
    assert slope == pytest.approx(-0.25, abs=0.05)
    assert not rate_bound_verdict(slope, thm12_slides_exponent(1))


def test_loglog_slope_of_power_law():
    t = [1.0, 2.0, 5.0, 10.0]
    assert loglog_slope(t, [3 * s**-1.75 for s in t]) == pytest.approx(-1.75, abs=1e-12)
    with pytest.raises(ValueError):
        loglog_slope([1.0, 2.0], [1.0, -1.0])


# ---------------------------------------------------------------------------- Prop 11
def test_increment_second_moment_limits_and_monte_carlo():
    """Small tau: c^2 tau^2 (1 - 2 a tau / 3); large tau: sigma^2 tau - sigma^2/(2a); and the
    Monte-Carlo increment of random-walk paths (App. A.1) over [s, s + tau]."""
    a, c = 4.0, 2.0
    tau = 1e-4
    assert float(kac_increment_second_moment(tau, a, c)) == pytest.approx(
        c * c * tau * tau * (1 - 2 * a * tau / 3), rel=1e-8
    )
    tau = 50.0
    assert float(kac_increment_second_moment(tau, a, c)) == pytest.approx(
        c * c / a * (tau - 1 / (2 * a)), rel=1e-12
    )
    gen = torch.Generator().manual_seed(1)
    s, taus = 0.7, [0.05, 0.3, 1.0]
    times = torch.tensor([s] + [s + q for q in taus], dtype=F64)
    k = Kac(a, c).paths(times, 100_000, dim=1, generator=gen)[..., 0]
    for i, q in enumerate(taus, start=1):
        incr = (k[i] - k[0]) ** 2
        m = float(kac_increment_second_moment(q, a, c))
        se = float(incr.std()) / math.sqrt(incr.numel())
        assert abs(float(incr.mean()) - m) < 5 * se
        assert m <= c * c * q * q  # Prop 11: W2 Lipschitz with constant c per component


def test_w2_lipschitz_verdict_needs_paths_that_match_the_closed_form():
    """Coupled random-walk paths match d * kac_increment_second_moment (the verdict holds);
    a closed form for the wrong switching rate (2a), or a bound with a smaller speed, fails."""
    a, c, d = 4.0, 2.0, 2
    gen = torch.Generator().manual_seed(4)
    s, taus = 0.5, torch.tensor([0.01, 0.1, 0.5, 2.0], dtype=F64)
    times = torch.cat([torch.tensor([s], dtype=F64), s + taus])
    k = Kac(a, c).paths(times, 50_000, dim=d, generator=gen)
    msd = [mean_square_displacement(k[0], k[i + 1]) for i in range(len(taus))]
    mean = [m for m, _ in msd]
    se = [e for _, e in msd]
    exact = d * kac_increment_second_moment(taus, a, c).numpy()
    bound = math.sqrt(d) * c * taus.numpy()
    assert w2_lipschitz_verdict(mean, se, exact, bound)
    wrong_rate = d * kac_increment_second_moment(taus, 2 * a, c).numpy()
    assert not w2_lipschitz_verdict(mean, se, wrong_rate, bound)
    assert not w2_lipschitz_verdict(mean, se, exact, bound / 1.05)
    with pytest.raises(ValueError):
        mean_square_displacement(k[0][:1], k[1][:1])


def test_support_verdict_on_the_telegraph_pde():
    """Prop 11 / finite speed: the PDE solution from a density on [-1, 1] leaves only
    discretisation error (falling with dx) outside [-1 - ct, 1 + ct]; the same solver run
    with speed 1.1 c, or the heat density with sigma^2 = c^2/a, leaves much more."""
    a, c = 1.0, 1.0
    times = [0.3, 1.0]

    def f0(y):
        return 0.75 * (1.0 - y * y).clamp_min(0.0)

    def outside(speed, dx):
        x = torch.linspace(-4.5, 4.5, int(round(9.0 / dx)) + 1, dtype=F64)
        _, snaps = solve_telegraph(f0(x), x, max(times), a, speed, times=times)
        return max(mass_outside(snaps[i], x, -1 - c * t, 1 + c * t) for i, t in enumerate(times))

    coarse, fine = outside(c, 0.01), outside(c, 0.005)
    assert fine < 0.7 * coarse
    assert support_verdict(fine)
    assert not support_verdict(outside(1.1 * c, 0.005))
    x = torch.linspace(-8.0, 8.0, 3201, dtype=F64)
    heat = max(mass_outside(heat_density(f0, x, t, c), x, -1 - c * t, 1 + c * t) for t in times)
    assert not support_verdict(heat)
    assert not support_verdict(float("nan"))


def test_w2_helpers_agree_and_bound():
    """1D: sorted matching = optimal assignment. Product clouds: W2^2 is the sum of the
    marginal W2^2. Any coupling (rms_displacement) is an upper bound."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(60, 1, dtype=F64, generator=gen)
    y = 2 * torch.rand(60, 1, dtype=F64, generator=gen)
    assert w2_assignment(x, y) == pytest.approx(w2_sorted_1d(x, y), rel=1e-12)
    # product point sets: tensor grids of 1D point sets (8 x 8 = 64 points each)
    p1, p2 = torch.randn(8, dtype=F64, generator=gen), torch.randn(8, dtype=F64, generator=gen)
    q1, q2 = torch.rand(8, dtype=F64, generator=gen), 3 * torch.rand(8, dtype=F64, generator=gen)
    px = torch.cartesian_prod(p1, p2)
    qx = torch.cartesian_prod(q1, q2)
    expected = math.sqrt(w2_sorted_1d(p1, q1) ** 2 + w2_sorted_1d(p2, q2) ** 2)
    assert w2_assignment(px, qx) == pytest.approx(expected, rel=1e-10)
    assert w2_assignment(px, qx) <= rms_displacement(px, qx) + 1e-12


def test_support_grows_at_most_linearly():
    """Prop 11: |X_t - X_0|_inf <= c t, with equality reached by components that never
    switched (probability exp(-a t) each)."""
    a, c = 1.0, 2.0
    x0 = smiley_cloud(200)
    times = torch.tensor([0.0, 0.1, 1.0, 3.0], dtype=F64)
    k = Kac(a, c).paths(times, 200, dim=2, generator=torch.Generator().manual_seed(3))
    for i, t in enumerate(times.tolist()):
        exc = sup_excursion(x0, x0 + k[i])
        assert exc <= c * t * (1 + 1e-12)
        if 0 < t <= 1:
            assert exc == pytest.approx(c * t, rel=1e-9)


# ---------------------------------------------------------------------------- figures
def test_smiley_cloud_geometry():
    pts = smiley_cloud(1000)
    assert pts.shape == (1000, 2) and pts.dtype == F64
    r = pts.norm(dim=1)
    assert float(r.max()) <= 1 + 1e-12
    assert int((r > 1 - 1e-12).sum()) == 500  # the face
    mouth = pts[700:]
    assert float(mouth[:, 1].max()) < 0  # below the centre
    assert torch.allclose(mouth.norm(dim=1), torch.full((300,), 0.55, dtype=F64))


def test_brownian_paths_variance_and_increments():
    gen = torch.Generator().manual_seed(4)
    times = torch.tensor([0.5, 1.0, 3.0], dtype=F64)
    w = brownian_paths(times, 50_000, dim=2, sigma=2.0, generator=gen)
    assert w.shape == (3, 50_000, 2)
    var = (w**2).mean(dim=(1, 2))
    assert torch.allclose(var, 4 * times, rtol=0.03)
    incr = ((w[2] - w[1]) * w[1]).mean()
    assert abs(float(incr)) < 0.1
