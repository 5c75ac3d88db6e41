"""The ODE sampler and the mixture metrics against problems with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from kacnb.cfm.metrics import (
    GaussianMixture,
    grid_mixture,
    mode_coverage,
    nearest_mode_distance,
    nll,
    wasserstein2,
)
from kacnb.cfm.sampling import integrate

F64 = torch.float64


@pytest.mark.parametrize("method,steps", [("dopri5", None), ("euler", 2000), ("rk4", 50)])
def test_backward_integration_of_a_linear_field(method, steps):
    # dx/dt = x / (2 t) (the diffusion velocity of delta_0) maps x(T) to x(s) = x(T) sqrt(s/T).
    x_T = torch.randn(64, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    res = integrate(
        lambda t, x: x / (2 * t[:, None]),
        x_T,
        1.0,
        0.25,
        method=method,
        steps=steps,
        rtol=1e-8,
        atol=1e-10,
    )
    tol = 1e-6 if method != "euler" else 1e-3
    torch.testing.assert_close(res.x, x_T * 0.5, rtol=tol, atol=tol)


def test_nfe_counter_counts_every_evaluation():
    calls = []

    def field(t, x):
        calls.append(t.shape)
        return -x

    res = integrate(field, torch.ones(5, 3), 1.0, 0.0, method="euler", steps=10)
    assert res.nfe == len(calls) == 10
    assert all(shape == (5,) for shape in calls)  # times arrive per row
    adaptive = integrate(field, torch.ones(5, 3), 1.0, 0.0, method="dopri5")
    assert adaptive.nfe > 0


def test_trajectory_is_returned_on_a_descending_grid():
    res = integrate(
        lambda t, x: torch.zeros_like(x),
        torch.ones(4, 2),
        2.0,
        0.5,
        method="euler",
        steps=3,
        n_saved=4,
        return_trajectory=True,
    )
    assert res.trajectory.shape == (4, 4, 2)
    assert res.times.tolist() == [2.0, 1.5, 1.0, 0.5]
    with pytest.raises(ValueError, match="t_start"):
        integrate(lambda t, x: x, torch.ones(1, 1), 0.0, 1.0)


def test_nll_of_a_single_gaussian_is_its_entropy():
    gmm = GaussianMixture(torch.zeros(1, 2, dtype=F64), 0.3, torch.ones(1, dtype=F64))
    x = gmm.sample(200_000, generator=torch.Generator().manual_seed(1), dtype=F64)
    entropy = 0.5 * 2 * math.log(2 * math.pi * math.e * 0.3**2)
    assert nll(x, gmm) == pytest.approx(entropy, abs=0.01)


def test_grid_mixture_metrics_on_exact_samples():
    gmm = grid_mixture(std=1e-4)
    x = gmm.sample(90_000, generator=torch.Generator().manual_seed(2), dtype=F64)
    cover = mode_coverage(x, gmm.means, radius=5e-4)
    assert float(cover.sum()) == pytest.approx(1.0, abs=1e-4)
    assert torch.allclose(cover, torch.full((9,), 1 / 9, dtype=F64), atol=0.005)
    # E|z| for a 2D Gaussian of std s is s sqrt(pi/2).
    assert nearest_mode_distance(x, gmm.means) == pytest.approx(
        1e-4 * math.sqrt(math.pi / 2), rel=0.01
    )
    # A point between modes has a huge NLL; the exact samples have the entropy's.
    assert nll(torch.tensor([[0.5, 0.5]], dtype=F64), gmm) > 1e6
    assert nll(x, gmm) == pytest.approx(
        math.log(9) + math.log(2 * math.pi * math.e * 1e-8), abs=0.02
    )


def test_w2_of_a_translation_is_its_length():
    x = torch.randn(300, 2, dtype=F64, generator=torch.Generator().manual_seed(3))
    shift = torch.tensor([0.3, -0.4], dtype=F64)
    assert wasserstein2(x, x + shift) == pytest.approx(0.5, rel=1e-10)
    assert wasserstein2(x, x[torch.randperm(300)]) == pytest.approx(0.0, abs=1e-12)


def test_frechet_distance_matches_gaussian_closed_forms():
    from kacnb.cfm.metrics import frechet_distance

    g = torch.Generator().manual_seed(4)
    z1 = torch.randn(200_000, 3, generator=g, dtype=F64)
    z2 = torch.randn(200_000, 3, generator=g, dtype=F64)
    shift = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    # Equal covariances: the squared distance of the means.
    assert frechet_distance(z1, z2 + shift) == pytest.approx(5.25, abs=0.03)
    # N(0, I) against N(0, s^2 I): d (1 - s)^2.
    assert frechet_distance(z1, 2.0 * z2) == pytest.approx(3.0, abs=0.03)
    # Commuting anisotropic covariances: sum of (sqrt(a_i) - sqrt(b_i))^2.
    a, b = torch.tensor([1.0, 4.0, 9.0], dtype=F64), torch.tensor([4.0, 1.0, 1.0], dtype=F64)
    expected = float(((a.sqrt() - b.sqrt()) ** 2).sum())
    assert frechet_distance(z1 * a.sqrt(), z2 * b.sqrt()) == pytest.approx(expected, abs=0.05)
    assert frechet_distance(z1, z1) == pytest.approx(0.0, abs=1e-8)
    with pytest.raises(ValueError, match="feature sets"):
        frechet_distance(z1, z2[:, :2])


# --------------------------------------------------------------------------- bad inputs
def test_metrics_of_an_empty_sample_are_refused_not_nan():
    gmm = grid_mixture()
    empty = torch.zeros(0, 2, dtype=F64)
    for metric in (
        lambda x: nll(x, gmm),
        lambda x: mode_coverage(x, gmm.means, 0.1),
        lambda x: nearest_mode_distance(x, gmm.means),
        lambda x: wasserstein2(x, x),
    ):
        with pytest.raises(ValueError, match=r"x must be a tensor \(N, d\) with N >= 1"):
            metric(empty)
    with pytest.raises(ValueError, match=r"x must be a tensor \(N, d\)"):
        nll(torch.zeros(2, dtype=F64), gmm)  # one point without its batch axis
    with pytest.raises(ValueError, match="radius must be a finite number >= 0"):
        mode_coverage(gmm.means, gmm.means, -1.0)
    # one sample is a sample: finite answers
    one = gmm.means[:1]
    assert nearest_mode_distance(one, gmm.means) == 0.0
    assert float(mode_coverage(one, gmm.means, 0.1).sum()) == 1.0


def test_frechet_distance_needs_two_rows_per_set():
    from kacnb.cfm.metrics import frechet_distance

    with pytest.raises(ValueError, match="at least 2 rows each .* got 1 and 5"):
        frechet_distance(torch.zeros(1, 3), torch.randn(5, 3))
    # two rows suffice: N(mu, S) fitted to {0, 2e_1} against the same set is 0
    two = torch.tensor([[0.0, 0.0], [2.0, 0.0]], dtype=F64)
    assert frechet_distance(two, two) == pytest.approx(0.0, abs=1e-12)


def test_grid_mixture_needs_a_positive_std():
    for bad in (-1.0, 0.0, math.nan, math.inf, None):
        with pytest.raises(ValueError, match="std must be a finite number > 0"):
            grid_mixture(std=bad)
    assert grid_mixture(std=0.5).std == 0.5


def test_integrate_refuses_an_empty_or_non_finite_start_and_zero_tolerances():
    def field(t, x):
        return x

    with pytest.raises(ValueError, match=r"x_start must be a non-empty batch .*\(0, 2\)"):
        integrate(field, torch.zeros(0, 2), 1.0)
    with pytest.raises(ValueError, match="x_start must be finite"):
        integrate(field, torch.tensor([[math.nan, 0.0]]), 1.0)
    with pytest.raises(ValueError, match="rtol and atol must not both be 0"):
        integrate(field, torch.ones(3, 2), 1.0, rtol=0.0, atol=0.0)
    with pytest.raises(ValueError, match="rtol must be a finite number >= 0"):
        integrate(field, torch.ones(3, 2), 1.0, rtol=-1e-5)
    with pytest.raises(ValueError, match="t_start must be > t_end, both finite"):
        integrate(field, torch.ones(3, 2), math.inf)
    # rtol = 0 alone is a pure absolute tolerance and still solves dx/dt = x exactly enough
    res = integrate(field, torch.ones(3, 2, dtype=F64), 1.0, rtol=0.0, atol=1e-8)
    torch.testing.assert_close(res.x, torch.full((3, 2), math.exp(-1.0), dtype=F64))


def test_integrate_with_a_non_finite_field_says_so():
    from kacnb.cfm.sampling import SolverFailed

    with pytest.raises(SolverFailed, match="step size underflowed .* non-finite values"):
        integrate(lambda t, x: x * math.nan, torch.ones(3, 2), 1.0)
    # also an AssertionError, which callers that caught torchdiffeq's assertion still catch
    assert issubclass(SolverFailed, AssertionError) and issubclass(SolverFailed, ValueError)


def test_integrate_stops_a_stiff_solve_at_max_nfe():
    from kacnb.cfm.sampling import MAX_NFE, SolverFailed

    def stiff(t, x):  # oscillates on a time scale of 1e-6: dopri5 needs ~10^6 steps
        return 1e6 * torch.sin(1e6 * t[:, None] * x)

    calls = []

    def counted(t, x):
        calls.append(1)
        return stiff(t, x)

    x = torch.ones(3, 2, dtype=F64)
    with pytest.raises(SolverFailed, match=r"more than max_nfe=300 field evaluations"):
        integrate(counted, x, 1.0, max_nfe=300)
    assert len(calls) == 300  # the cap is exact, not approximate
    assert 1000 <= MAX_NFE <= 10**6  # room for the notebooks' solves, a bound on the rest
    with pytest.raises(ValueError, match="max_nfe must be a positive integer"):
        integrate(counted, x, 1.0, max_nfe=0)
