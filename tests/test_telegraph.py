"""Tests for kacnb.theory.telegraph: the telegrapher's equation and the law of X_0 + K(t).

Each test asserts a mathematical fact (paper Section 4): the PDE solution is the density
of X_0 + K(t) (Thm 1, Prop 5), the law of K(t) has total mass 1 [30-31], and the telegraph
density tends to the heat density when a, c -> infinity with c^2/a fixed (Thm 9).
"""

from __future__ import annotations

import math

import pytest
import torch

from kacnb.theory.kac import Kac
from kacnb.theory.telegraph import (
    GaussianMixture1D,
    continuity_residual,
    convolved_density,
    heat_density,
    l1_distance,
    l2_distance,
    mass_outside,
    solve_telegraph,
    symmetric_flux_1d,
)

F64 = torch.float64


def gaussian(mean: float, std: float):
    """Density of N(mean, std^2) as a callable on tensors."""

    def f(y: torch.Tensor) -> torch.Tensor:
        return torch.exp(-0.5 * ((y - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))

    return f


def grid(half_width: float, dx: float) -> torch.Tensor:
    n = int(round(2 * half_width / dx)) + 1
    return torch.linspace(-half_width, half_width, n, dtype=F64)


# Smooth initial law, and (a, c, t) with a t from 0.5 to 100 and both c t < 1 and > 1.
F0 = gaussian(0.0, 0.3)
CASES = [(1.0, 1.0, 1.0), (4.0, 2.0, 0.5), (0.5, 2.0, 1.5), (10.0, 1.0, 1.0), (100.0, 10.0, 1.0)]


@pytest.mark.parametrize(("a", "c", "t"), CASES)
def test_fd_solution_is_density_of_x0_plus_kac(a, c, t):
    """Thm 1 / Prop 5: the PDE solution equals the convolution of f0 with the law of K(t),
    at t and at an intermediate time; the scheme conserves the mass exactly."""
    x = grid(c * t + 3.0, 0.01)  # f0 is below 1e-20 at the ends at all times
    u, snaps = solve_telegraph(F0(x), x, t, a, c, times=[0.0, t / 2, t])
    exact = convolved_density(F0, x, t, a, c)
    assert float(l1_distance(u, exact, x)) < 1e-3
    assert float(l1_distance(snaps[1], convolved_density(F0, x, t / 2, a, c), x)) < 1e-3
    assert torch.equal(snaps[0], F0(x))
    assert float(l1_distance(snaps[2], u, x)) < 1e-12
    # Discrete mass sum(u) dx is an invariant of the scheme (zero boundary, no flux).
    dx = float(x[1] - x[0])
    assert float(u.sum() * dx) == pytest.approx(float(F0(x).sum() * dx), abs=1e-10)


def test_fd_is_second_order():
    """Halving dx (fixed Courant number) divides the error by about 4."""
    a, c, t = 2.0, 1.0, 1.0
    errors = []
    for dx in (0.04, 0.02):
        x = grid(5.0, dx)
        u = solve_telegraph(F0(x), x, t, a, c, cfl=0.8)
        errors.append(float(l1_distance(u, convolved_density(F0, x, t, a, c), x)))
    assert 3.0 < errors[0] / errors[1] < 5.0


@pytest.mark.parametrize(("a", "c", "t"), [(1.0, 1.0, 0.3), (3.0, 1.0, 2.0), (200.0, 10.0, 1.0)])
def test_convolved_density_is_probability_density(a, c, t):
    """The law of X_0 + K(t) has mass 1 (atoms exp(-a t) plus continuous part 1 - exp(-a t))
    and a nonnegative density."""
    f0 = gaussian(0.2, 0.3)
    x = grid(c * t + 4.0, 0.005)
    u = convolved_density(f0, x, t, a, c)
    assert float(u.min()) >= 0.0
    assert float(torch.trapezoid(u, x)) == pytest.approx(1.0, abs=1e-8)


@pytest.mark.parametrize(
    ("a", "c", "t", "s", "n_quad"), [(3.0, 1.0, 1.0, 0.004, 8192), (400.0, 20.0, 1.0, 0.01, 4096)]
)
def test_narrow_initial_law_reproduces_kac_density(a, c, t, s, n_quad):
    """For X_0 ~ N(0, s^2) with small s the density inside the light cone is u~(t, x)
    [30-31] up to the smoothing error (s^2/2) u~'' (also for large a t)."""
    kac = Kac(a, c)
    x = torch.linspace(-0.9 * c * t, 0.9 * c * t, 301, dtype=F64)
    u = convolved_density(gaussian(0.0, s), x, t, a, c, n_quad=n_quad)
    ref = kac.density(t, x)
    where = ref > 1e-3 * ref.max()
    assert float(((u - ref).abs() / ref)[where].max()) < 2e-3


@pytest.mark.parametrize(("t", "sigma"), [(0.5, 1.0), (2.0, 0.3), (0.01, 2.0)])
def test_heat_density_closed_form(t, sigma):
    """X_0 ~ N(m, s^2) plus sigma W(t) is N(m, s^2 + sigma^2 t)."""
    m, s = 0.4, 0.3
    x = grid(8.0, 0.01)
    std = math.sqrt(s**2 + sigma**2 * t)
    assert torch.allclose(
        heat_density(gaussian(m, s), x, t, sigma), gaussian(m, std)(x), atol=1e-12
    )


def test_telegraph_tends_to_heat_density():
    """Thm 9: with sigma^2 = c^2/a = 1 fixed, the L2 distance to the heat density decreases
    as a grows, at rate 1/a (Var K(t) = sigma^2 (t - (1 - exp(-2 a t))/(2 a)))."""
    x = grid(8.0, 0.01)
    heat = heat_density(F0, x, 1.0, 1.0)
    dist = []
    for a in (1.0, 4.0, 16.0, 64.0, 256.0):
        u = convolved_density(F0, x, 1.0, a, math.sqrt(a))
        dist.append(float(l2_distance(u, heat, x)))
    assert all(d1 < d0 for d0, d1 in zip(dist, dist[1:], strict=False))
    assert 3.5 < dist[-2] / dist[-1] < 4.5  # factor 4 in a
    assert dist[-1] < 1e-3


def test_time_zero_returns_initial_density():
    x = grid(3.0, 0.05)
    assert torch.equal(convolved_density(F0, x, 0.0, 1.0, 1.0), F0(x))
    assert torch.equal(heat_density(F0, x, 0.0, 1.0), F0(x))
    assert torch.equal(solve_telegraph(F0(x), x, 0.0, 1.0, 1.0), F0(x))


def test_results_follow_input_dtype():
    x = grid(3.0, 0.05).to(torch.float32)
    assert solve_telegraph(F0(x), x, 0.5, 1.0, 1.0).dtype == torch.float32
    assert convolved_density(F0, x, 0.5, 1.0, 1.0).dtype == torch.float32


# ---------------------------------------------------------------------------- mixtures
MIX = GaussianMixture1D([0.4, 0.6], [-1.0, 1.2], [0.25, 0.4])


def test_gaussian_mixture_density_moments_and_samples():
    """The mixture density has mass 1 and the stated mean/variance (quadrature), and its
    draws have the same moments (Monte Carlo, 5 standard errors)."""
    x = grid(6.0, 0.002)
    f = MIX(x)
    assert float(torch.trapezoid(f, x)) == pytest.approx(1.0, abs=1e-10)
    mean = float(torch.trapezoid(x * f, x))
    var = float(torch.trapezoid((x - mean) ** 2 * f, x))
    assert MIX.mean == pytest.approx(mean, abs=1e-10)
    assert MIX.variance == pytest.approx(var, abs=1e-10)
    n = 200_000
    draws = MIX.sample(n, generator=torch.Generator().manual_seed(0))
    assert draws.shape == (n,) and draws.dtype == F64
    assert float(draws.mean()) == pytest.approx(MIX.mean, abs=5 * math.sqrt(var / n))
    assert float(draws.var()) == pytest.approx(var, rel=0.02)


def test_mixture_solution_is_mixture_of_solutions():
    """The telegrapher's equation is linear: u for a mixture f0 is the weighted sum of the
    solutions for its components (convolved_density with each Gaussian)."""
    x = grid(6.0, 0.02)
    a, c, t = 2.0, 1.0, 1.3
    u = convolved_density(MIX, x, t, a, c)
    parts = sum(
        w * convolved_density(gaussian(m, s), x, t, a, c)
        for w, m, s in zip(MIX.weights, MIX.means, MIX.stds, strict=True)
    )
    assert torch.allclose(u, parts, atol=1e-12)


def test_gaussian_mixture_rejects_bad_arguments():
    with pytest.raises(ValueError):
        GaussianMixture1D([1.0], [0.0, 1.0], [1.0])
    with pytest.raises(ValueError):
        GaussianMixture1D([1.0, -1.0], [0.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="std"):
        GaussianMixture1D([1.0], [0.0], [0.0])


# ---------------------------------------------------------------------------- continuity eq.
def _heat_pair(s0: float, sigma: float):
    """p_t = N(0, s0^2 + sigma^2 t) and its velocity sigma^2 x / (2 (s0^2 + sigma^2 t))."""

    def p(t, x):
        var = s0**2 + sigma**2 * t
        return torch.exp(-0.5 * x**2 / var) / torch.sqrt(2 * math.pi * var)

    def v(t, x):
        return sigma**2 * x / (2 * (s0**2 + sigma**2 * t))

    return p, v


def test_continuity_residual_is_second_order_for_heat_flow():
    p, v = _heat_pair(0.5, 1.3)
    t = torch.linspace(0.2, 2.0, 7, dtype=F64)[:, None]
    x = torch.linspace(-3.0, 3.0, 41, dtype=F64)[None, :]
    res1, d_t, _ = continuity_residual(p, v, t, x, 1e-2, 1e-2)
    res2, _, _ = continuity_residual(p, v, t, x, 5e-3, 5e-3)
    assert float(res1.abs().max()) < 1e-3 * float(d_t.abs().max())
    assert 3.8 < float(res1.abs().max() / res2.abs().max()) < 4.2
    # A wrong velocity (the heat velocity from a Dirac, x/(2t)) leaves an O(1) residual.
    bad, _, _ = continuity_residual(p, lambda t, x: x / (2 * t), t, x, 1e-2, 1e-2)
    assert float(bad.abs().max()) > 0.05 * float(d_t.abs().max())


@pytest.mark.parametrize(("a", "c"), [(1.0, 1.0), (25.0, 5.0)])
def test_kac_density_and_velocity_solve_continuity_equation(a, c):
    """Thm 4 [41]: inside the light cone u~ and v satisfy d/dt u~ + d/dx (u~ v) = 0; the
    finite-difference residual is pure truncation error (falls 4x when h halves)."""
    kac = Kac(a, c)
    t = torch.linspace(0.3, 2.0, 12, dtype=F64)[:, None]
    x = c * t * torch.linspace(-0.95, 0.95, 39, dtype=F64)[None, :]
    res = []
    for h in (2e-3, 1e-3):
        r, d_t, _ = continuity_residual(kac.density, kac.velocity, t, x, h, h)
        res.append(float(r.abs().max()))
    assert res[0] < 1e-4 * float(d_t.abs().max())
    assert 3.5 < res[0] / res[1] < 4.5


@pytest.mark.parametrize(("a", "c", "t"), [(1.0, 1.0, 0.5), (2.0, 3.0, 1.0), (25.0, 5.0, 0.2)])
def test_mass_flows_from_atoms_into_the_cone(a, c, t):
    """The atoms lose mass at rate a exp(-a t) [30-31]; the continuous part gains it through
    the cone edges, where its flux relative to the moving edge is u~ (c - v) on each side.
    So 2 u~(t, ct-) (c - v(t, ct-)) = a exp(-a t) (with v(t, ct-) = ct / (t + 2/a))."""
    kac = Kac(a, c)
    edge = torch.tensor(c * t * (1 - 1e-12), dtype=F64)
    tt = torch.tensor(t, dtype=F64)
    u_edge, v_edge = float(kac.density(tt, edge)), float(kac.velocity(tt, edge))
    assert v_edge == pytest.approx(c * t / (t + 2 / a), rel=1e-9)
    assert 2 * u_edge * (c - v_edge) == pytest.approx(a * math.exp(-a * t), rel=1e-9)


# ---------------------------------------------------------------------------- validation
def test_invalid_arguments_raise():
    x = grid(3.0, 0.05)
    f = F0(x)
    with pytest.raises(ValueError, match="a must"):
        solve_telegraph(f, x, 1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="c must"):
        solve_telegraph(f, x, 1.0, 1.0, -1.0)
    with pytest.raises(ValueError, match="t_final"):
        solve_telegraph(f, x, -1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="uniform"):
        solve_telegraph(f, x**3, 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="n_steps"):
        solve_telegraph(f, x, 1.0, 1.0, 1.0, n_steps=5)  # c dt / dx = 4
    with pytest.raises(ValueError, match="cfl"):
        solve_telegraph(f, x, 1.0, 1.0, 1.0, cfl=1.5)
    with pytest.raises(ValueError, match="f0_values"):
        solve_telegraph(f[:-1], x, 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="times"):
        solve_telegraph(f, x, 1.0, 1.0, 1.0, times=[0.5, 2.0])
    with pytest.raises(ValueError, match="t must"):
        convolved_density(F0, x, -0.1, 1.0, 1.0)
    with pytest.raises(ValueError, match="a must"):
        convolved_density(F0, x, 1.0, math.nan, 1.0)
    with pytest.raises(ValueError, match="n_quad"):
        convolved_density(F0, x, 1.0, 1.0, 1.0, n_quad=0)
    with pytest.raises(ValueError, match="f0"):
        convolved_density(lambda y: y[:1], x, 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="sigma"):
        heat_density(F0, x, 1.0, 0.0)
    with pytest.raises(ValueError, match="x must"):
        l2_distance(f, f, x.flip(0))
    with pytest.raises(ValueError, match="h_t"):
        continuity_residual(Kac(1.0, 1.0).density, Kac(1.0, 1.0).velocity, x, x, 0.0, 0.1)


@pytest.mark.parametrize(("a", "c", "t"), [(1.0, 1.0, 0.5), (4.0, 2.0, 3.0), (25.0, 5.0, 10.0)])
def test_symmetric_flux_recovers_the_kac_velocity_from_the_law(a, c, t):
    """From u~ and the atom masses alone (continuity equation [2], J(0) = 0), the velocity of
    the continuous part is Thm 4's formula [41], also where u~ is tiny (a t = 250), and it
    solves the continuity equation: dJ/dx = -du/dt at the nodes."""
    kac = Kac(a, c)

    def density(tt, y):
        return kac.density(torch.tensor(tt, dtype=F64), y)

    res = symmetric_flux_1d(density, t, lambda tt: c * tt, lambda tt: 0.5 * math.exp(-a * tt))
    assert float(res.x.min()) > 0 and float(res.x.max()) < c * t
    v41 = kac.velocity(torch.tensor(t, dtype=F64), res.x)
    assert float((res.velocity - v41).abs().max()) < 2e-5 * c
    assert float(res.velocity.abs().max()) < c
    # the weights integrate the continuous part: half of 1 - exp(-a t) on (0, c t)
    assert float((res.weights * res.density).sum()) == pytest.approx(
        0.5 * (1 - math.exp(-a * t)), rel=1e-10
    )


def test_symmetric_flux_of_the_heat_kernel_is_its_probability_flow():
    """For N(0, sigma^2 t) the recovered velocity is x/(2t) (heat flow, Thm 9's limit)."""
    sigma, t = 0.7, 0.3

    def density(tt, y):
        return torch.exp(-(y**2) / (2 * sigma**2 * tt)) / math.sqrt(2 * math.pi * sigma**2 * tt)

    res = symmetric_flux_1d(density, t, lambda tt: 8 * sigma * math.sqrt(tt))
    ok = res.density > 1e-12 * res.density.max()
    assert torch.allclose(res.velocity[ok], res.x[ok] / (2 * t), rtol=1e-6)
    with pytest.raises(ValueError, match="t"):
        symmetric_flux_1d(density, 0.0, lambda tt: 1.0)


def test_mass_outside_counts_only_the_outer_grid_points():
    x = grid(3.0, 0.001)
    u = gaussian(0.0, 1.0)(x)
    # P(1.5 < |Z| <= 3): the grid ends at +-3
    expected = math.erfc(1.5 / math.sqrt(2)) - math.erfc(3 / math.sqrt(2))
    # the masked integrand jumps at +-1.5: the trapezoid rule is off by O(dx u(1.5))
    assert mass_outside(u, x, -1.5, 1.5) == pytest.approx(expected, abs=0.001 * float(u.max()))
    assert mass_outside(torch.stack([u, 2 * u]), x, -1.5, 1.5) == pytest.approx(
        2 * mass_outside(u, x, -1.5, 1.5)
    )
    with pytest.raises(ValueError):
        mass_outside(u[:-1], x, -1.0, 1.0)


def test_a_solve_beyond_max_steps_is_refused_before_running():
    import time

    from kacnb.theory.telegraph import MAX_STEPS

    x = grid(3.0, 0.05)
    f = F0(x)
    start = time.perf_counter()
    # t = 1e6 at dx = 0.05 and Courant 0.9: 2.2e7 steps
    with pytest.raises(ValueError, match=r"2\.22e\+07 time steps .* MAX_STEPS=1,000,000"):
        solve_telegraph(f, x, 1e6, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"inf time steps"):  # c t / dx overflows
        solve_telegraph(f, x, 1e308, 1.0, 1e3)
    with pytest.raises(ValueError, match=r"1,000,001 time steps"):
        solve_telegraph(f, x, 1.0, 1.0, 1.0, n_steps=MAX_STEPS + 1)
    assert time.perf_counter() - start < 1.0
    assert MAX_STEPS >= 10_000  # the notebooks' solves (about 1e3 steps) fit
