"""The ODE sampler and the mixture metrics against problems with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from kacnb.metrics import (
    GaussianMixture,
    grid_mixture,
    mode_coverage,
    nearest_mode_distance,
    nll,
    wasserstein2,
)
from kacnb.sampling import integrate

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
    from kacnb.metrics import frechet_distance

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
