"""The probability paths of kacnb.paths satisfy the identities of PAPER.md section 4."""

from __future__ import annotations

import math

import pytest
import torch

from kacnb.kac import Kac, MeanRevertingKac
from kacnb.paths import DiffusionPath, KacPath, MeanRevertingKacPath

F64 = torch.float64


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


ALL_PATHS = [
    KacPath(Kac(25.0, 5.0), T=1.0),
    MeanRevertingKacPath(Kac(25.0, 5.0), T=2.0),
    DiffusionPath(sigma=1.0, T=1.0, eps=1e-2),
]


@pytest.mark.parametrize("path", ALL_PATHS, ids=repr)
def test_training_draw_shapes_and_time_interval(path):
    x0 = torch.randn(512, 1, 4, 4, dtype=F64, generator=gen(1))
    s = path.sample(x0, generator=gen(2))
    assert s.t.shape == (512,)
    assert s.xt.shape == s.target.shape == x0.shape
    assert float(s.t.min()) >= path.t_min and float(s.t.max()) <= path.T
    assert torch.isfinite(s.target).all()
    # The same generator seed reproduces the draw exactly.
    s2 = path.sample(x0, generator=gen(2))
    assert torch.equal(s.xt, s2.xt) and torch.equal(s.target, s2.target)


def test_kac_target_is_componentwise_velocity_and_bounded():
    kac = Kac(25.0, 5.0)
    path = KacPath(kac)
    x0 = torch.randn(256, 3, 2, dtype=F64, generator=gen(3))
    s = path.sample(x0, generator=gen(4))
    flat = kac.conditional_velocity(s.t, s.xt.reshape(256, -1), x0.reshape(256, -1))
    torch.testing.assert_close(s.target, flat.reshape(x0.shape), rtol=0, atol=0)
    assert float(s.target.abs().max()) <= kac.c
    # Displacement from the start stays in the light cone |x - x0| <= c t.
    assert torch.all((s.xt - x0).abs() <= kac.c * s.t[:, None, None] + 1e-12)


def test_diffusion_target_is_the_pathwise_time_derivative():
    # x_t = x0 + sigma sqrt(t) z has d/dt x_t = (x_t - x0)/(2t) along a fixed z.
    path = DiffusionPath(sigma=0.7, T=1.0, eps=1e-3)
    x0 = torch.randn(100, 2, dtype=F64, generator=gen(5))
    t = torch.rand(100, dtype=F64, generator=gen(6)) * 0.9 + 0.05
    h = 1e-6
    xa = path.sample_at(t - h, x0, generator=gen(7))
    xb = path.sample_at(t + h, x0, generator=gen(7))
    xt = path.sample_at(t, x0, generator=gen(7))
    torch.testing.assert_close(
        (xb - xa) / (2 * h), path.conditional_velocity(t, xt, x0), rtol=1e-6, atol=1e-8
    )


def test_mean_reverting_latent_is_independent_of_the_data():
    path = MeanRevertingKacPath(Kac(100.0, 10.0), T=1.0)
    a = path.latent(torch.zeros(64, 1, 28, 28), generator=gen(8))
    b = path.latent(torch.rand(64, 1, 28, 28) * 2 - 1, generator=gen(8))
    assert torch.equal(a, b)


def test_mean_reverting_target_matches_the_process_definition():
    kac = Kac(4.0, 2.0)
    path, proc = MeanRevertingKacPath(kac, T=2.0), MeanRevertingKac(kac, T=2.0)
    x0 = torch.randn(50, 3, dtype=F64, generator=gen(9))
    x = torch.randn(50, 3, dtype=F64, generator=gen(10))
    t = torch.rand(50, dtype=F64, generator=gen(11)) * 2
    torch.testing.assert_close(
        path.conditional_velocity(t, x, x0), proc.conditional_velocity(t, x, x0)
    )


def test_mean_reverting_target_is_the_expected_speed_along_paths():
    # E[d/dt (f(t) x0 + K(t)) | X_t] = f'(t) x0 + v(t, X_t - f(t) x0) [99]: the residual of
    # the finite-difference speed against the target has mean zero.
    kac, T, t, h = Kac(4.0, 2.0), 2.0, 0.8, 1e-4
    path = MeanRevertingKacPath(kac, T=T)
    n = 200_000
    k = kac.paths(torch.tensor([t, t + h], dtype=F64), n, generator=gen(12))[:, :, 0]
    x0 = torch.full((n, 1), 1.5, dtype=F64)
    f = path.schedule.value
    xt = f(torch.tensor(t, dtype=F64)) * x0 + k[0, :, None]
    xh = f(torch.tensor(t + h, dtype=F64)) * x0 + k[1, :, None]
    resid = (xh - xt) / h - path.conditional_velocity(torch.full((n,), t, dtype=F64), xt, x0)
    assert abs(float(resid.mean())) < 5 * float(resid.std()) / math.sqrt(n) + 4 * kac.a * kac.c * h


def test_bad_arguments():
    with pytest.raises(ValueError, match="^eps "):
        DiffusionPath(eps=0.0)
    with pytest.raises(ValueError, match="eps must be < T"):
        DiffusionPath(eps=2.0, T=1.0)
    with pytest.raises(ValueError, match="^T "):
        KacPath(Kac(1.0, 1.0), T=-1.0)
