"""The exact diffusion field of the mixture (kacnb.experiments.truncation) solves the continuity
equation
and behaves as the truncation study says."""

from __future__ import annotations

import math

import torch

from kacnb.cfm.metrics import GaussianMixture, grid_mixture
from kacnb.experiments.truncation import diffusion_velocity, truncation_study

F64 = torch.float64


def _density(gmm: GaussianMixture, t: float, sigma: float, x: torch.Tensor) -> torch.Tensor:
    """p_t = mixture with std sqrt(s^2 + sigma^2 t), through GaussianMixture.log_prob."""
    wide = GaussianMixture(gmm.means, math.sqrt(gmm.std**2 + sigma**2 * t), gmm.weights)
    return wide.log_prob(x).exp()


def test_velocity_solves_the_continuity_equation():
    # d/dt p_t + div(p_t v_t) = 0 [2], by central differences in t and x, at random points.
    gmm = GaussianMixture(
        torch.tensor([[-1.0, 0.0], [0.5, 0.5], [0.0, -0.7]], dtype=F64),
        0.3,
        torch.tensor([0.5, 0.3, 0.2], dtype=F64),
    )
    sigma, t, h = 0.8, 0.4, 1e-4
    v = diffusion_velocity(gmm, sigma)
    x = torch.randn(50, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    tt = torch.full((50,), t, dtype=F64)
    dp_dt = (_density(gmm, t + h, sigma, x) - _density(gmm, t - h, sigma, x)) / (2 * h)
    div = torch.zeros(50, dtype=F64)
    for i in range(2):
        e = torch.zeros(2, dtype=F64)
        e[i] = h
        flux_p = _density(gmm, t, sigma, x + e) * v(tt, x + e)[:, i]
        flux_m = _density(gmm, t, sigma, x - e) * v(tt, x - e)[:, i]
        div += (flux_p - flux_m) / (2 * h)
    scale = float(dp_dt.abs().max())
    assert float((dp_dt + div).abs().max()) < 1e-5 * scale
    # A wrong factor (no 1/2, the score instead of the velocity) breaks it.
    assert float((dp_dt + 2 * div).abs().max()) > 0.1 * scale


def test_point_mass_limit_is_x_over_2t():
    # From a single Dirac-like mode at 0 the field is x/(2t) (paper Section 3, sigma = 1).
    gmm = GaussianMixture(torch.zeros(1, 2, dtype=F64), 1e-8, torch.ones(1, dtype=F64))
    x = torch.randn(20, 2, dtype=F64, generator=torch.Generator().manual_seed(1))
    t = torch.full((20,), 0.3, dtype=F64)
    torch.testing.assert_close(diffusion_velocity(gmm)(t, x), x / (2 * 0.3))


def test_truncation_study_trades_quality_for_work():
    gmm = grid_mixture(std=1e-4)
    gen = torch.Generator().manual_seed(2)
    x0 = gmm.sample(300, generator=gen, dtype=F64)
    rows = truncation_study(gmm, (1e-2, 1e-4, 1e-6), x0, generator=gen, radii=(5e-3,))
    assert [r["status"] for r in rows] == ["ok"] * 3
    nfe = [r["nfe"] for r in rows]
    cov = [r["coverage"][5e-3] for r in rows]
    speed = [r["speed"] for r in rows]
    assert nfe[0] < nfe[1] < nfe[2]
    assert cov[0] < cov[1] < cov[2] and cov[2] > 0.9  # blob std 1e-3 at eps = 1e-6
    # |v_eps| ~ |x - m|/(2 eps) with |x - m| ~ sqrt(eps): growth ~ eps^(-1/2), 10x per 100x
    assert 8 < speed[1] / speed[0] < 12 and 8 < speed[2] / speed[1] < 12
    assert rows[0]["blob_std"] == math.sqrt(1e-8 + 1e-2)
    capped = truncation_study(gmm, (1e-6,), x0, generator=gen, max_nfe=20)
    assert capped[0]["status"] == "NFE budget exceeded" and capped[0]["nfe"] == 21
    assert math.isnan(capped[0]["coverage"][5e-4])
