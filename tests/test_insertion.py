"""Tests of kacnb.theory.insertion (Thm 6 [56-61], Remark 7, Lemma 8 [62-64])."""

import math

import numpy as np
import pytest
import torch

from kacnb.theory.insertion import (
    RadialGaussian,
    brownian_insertion,
    heat_radial,
    kac_insertion,
    lemma8_tau,
    radial_damped_wave_residual,
    radial_fourier,
    radial_mass,
    telegraph_multiplier,
    wave,
    wave_2d,
)
from kacnb.theory.telegraph import convolved_density

F64 = torch.float64
R = torch.linspace(0.0, 3.0, 31, dtype=F64)


def _wave_fn(f0, c, r=R, n=64):
    if f0.dim == 2:
        return lambda s: wave_2d(s, r, f0, c, n_alpha=n, n_phi=n)
    return lambda s: wave(s, r, f0, c)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_wave_matches_fourier_reference_and_keeps_mass(dim):
    f0, c = RadialGaussian(dim, 0.4), 1.5
    s = [0.0, 0.3, 1.0]
    w = _wave_fn(f0, c)(torch.tensor(s, dtype=F64))
    for i, si in enumerate(s):
        ref = radial_fourier(lambda k, si=si: np.cos(c * k * si), R.numpy(), f0)
        np.testing.assert_allclose(w[i].numpy(), ref, atol=1e-10)
    r_long = torch.linspace(0.0, 8.0, 801, dtype=F64)
    w_long = _wave_fn(f0, c, r_long)(torch.tensor([1.0], dtype=F64))[0]
    assert abs(radial_mass(w_long, r_long, dim) - 1.0) < 1e-4  # trapezoid in r


def test_wave_negative_for_d_2_3_and_not_for_d_1():
    r = torch.linspace(0.0, 3.0, 61, dtype=F64)
    mins = {
        d: float(_wave_fn(RadialGaussian(d, 0.25), 1.0, r)(torch.tensor([1.0], dtype=F64)).min())
        for d in (1, 2, 3)
    }
    assert mins[1] >= 0.0 and mins[2] < -1e-2 and mins[3] < -1e-2


def test_wrong_kirchhoff_or_poisson_formula_differs():
    f0, c, s = RadialGaussian(3, 0.4), 1.0, 1.0
    ref = radial_fourier(lambda k: np.cos(c * k * s), R.numpy(), f0)
    g = f0.profile
    rs, cs = R[1:], c * s
    wrong = ((rs + cs) * g(rs + cs) - (rs - cs) * g((rs - cs).abs())) / (2 * rs)  # sign slip
    assert np.abs(wrong.numpy() - ref[1:]).max() > 1e-2
    # 2D: Poisson's weighted mean without its s-derivative is not the wave solution
    f2 = RadialGaussian(2, 0.4)
    ref2 = radial_fourier(lambda k: np.cos(c * k * s), R.numpy(), f2)
    alpha, wa = np.polynomial.legendre.leggauss(64)
    alpha, wa = (alpha + 1) * math.pi / 4, wa * math.pi / 4 * np.sin((alpha + 1) * math.pi / 4)
    phi = np.arange(64) * 2 * math.pi / 64
    zx = np.sin(alpha)[:, None] * np.cos(phi)[None, :]
    zy = np.sin(alpha)[:, None] * np.sin(phi)[None, :]
    rho = np.sqrt((R.numpy()[:, None, None] + c * s * zx) ** 2 + (c * s * zy) ** 2)
    mean_only = (f2.profile(torch.as_tensor(rho)).numpy() * wa[:, None]).sum((1, 2)) / 64
    assert np.abs(mean_only - ref2).max() > 1e-2


def test_telegraph_multiplier_solves_its_ode():
    a, c, h = 1.3, 0.9, 1e-3
    for k in (0.2, a / c, 3.0):  # overdamped, critical, oscillating
        t = np.arange(0.0, 2.0, h)
        m = np.array([float(telegraph_multiplier(tt, k, a, c)) for tt in t])
        res = (
            (m[2:] - 2 * m[1:-1] + m[:-2]) / h**2
            + 2 * a * (m[2:] - m[:-2]) / (2 * h)
            + (c * k) ** 2 * m[1:-1]
        )
        assert np.abs(res).max() < 1e-4
        assert m[0] == pytest.approx(1.0) and abs(m[1] - m[0]) < 1e-5


@pytest.mark.parametrize("dim", [2, 3])
def test_kac_insertion_solves_damped_wave_thm6(dim):
    f0, a, c, t = RadialGaussian(dim, 0.3), 0.7, 1.2, 1.5
    u = kac_insertion(_wave_fn(f0, c), t, a, c, n_quad=64)
    ref = radial_fourier(lambda k: telegraph_multiplier(t, k, a, c), R.numpy(), f0)
    np.testing.assert_allclose(u.numpy(), ref, atol=1e-9)
    # inserting K(t) instead of K(t)/c (c != 1) does not solve it
    wrong = kac_insertion(lambda s: _wave_fn(f0, c)(c * s), t, a, c, n_quad=64)
    assert np.abs(wrong.numpy() - ref).max() > 1e-2


def test_insertion_in_1d_is_the_law_of_x0_plus_k_and_nonnegative():
    f0, a, c, t = RadialGaussian(1, 0.25), 0.5, 1.0, 2.0
    u = kac_insertion(_wave_fn(f0, c), t, a, c, n_quad=256)
    ref = convolved_density(f0.profile, R, t, a, c, n_quad=2048)
    np.testing.assert_allclose(u.numpy(), ref.numpy(), atol=1e-8)
    assert float(u.min()) >= 0.0


def test_remark7_insertion_negative_in_3d():
    f0, a, c, t = RadialGaussian(3, 0.25), 0.5, 1.0, 2.0
    r = torch.linspace(0.0, 4.0, 81, dtype=F64)
    u = kac_insertion(_wave_fn(f0, c, r), t, a, c, n_quad=64)
    assert float(u.min()) < -1e-2
    assert abs(radial_mass(u, r, 3) - 1.0) < 1e-6


def test_damped_wave_residual_of_insertion():
    f0, a, c = RadialGaussian(3, 0.4), 0.8, 1.0
    t = torch.arange(1.0, 1.5, 0.01, dtype=F64)
    r = torch.arange(0.05, 2.0, 0.01, dtype=F64)
    u = torch.stack([kac_insertion(_wave_fn(f0, c, r), float(tt), a, c, n_quad=64) for tt in t])
    res, scale = radial_damped_wave_residual(u, t, r, a, c, 3)
    assert res / scale < 1e-3
    res_bad, scale_bad = radial_damped_wave_residual(u, t, r, a / 2, c, 3)
    assert res_bad / scale_bad > 1e-2


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_lemma8_heat_with_tau_sigma_over_c(dim):
    f0, a, c, t = RadialGaussian(dim, 0.3), 4.0, 2.0, 0.6
    sigma = c / math.sqrt(a)
    tau = lemma8_tau(sigma, c)
    assert tau == pytest.approx(1 / math.sqrt(a))
    heat = heat_radial(t, R, f0, sigma)
    good = brownian_insertion(_wave_fn(f0, c), t, tau, n_nodes=96)
    np.testing.assert_allclose(good.numpy(), heat.numpy(), atol=1e-9)
    bad = brownian_insertion(_wave_fn(f0, c), t, sigma, n_nodes=96)  # scale not divided by c
    assert float((bad - heat).abs().max()) > 1e-2


def test_validation():
    with pytest.raises(ValueError):
        RadialGaussian(4)
    with pytest.raises(ValueError):
        lemma8_tau(1.0, 0.0)
