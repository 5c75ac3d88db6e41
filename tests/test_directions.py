"""Tests of kacnb.theory.directions (Remark 3, [32-33]) against independent computations."""

import math

import numpy as np
import pytest
import scipy.integrate as si
import scipy.special as sp
import torch

from kacnb.theory import stats
from kacnb.theory.directions import (
    binned_chi2,
    current_direction_densities,
    directed_walk,
    first_order_residual,
    initial_left_density,
    initial_right_density,
    telegraph_residual,
)
from kacnb.theory.kac import kac_density

F64 = torch.float64


def p_plus_scipy(t, x, a, c, sign=1.0):
    """p+ from the unscaled scipy Bessel functions (moderate a t only); sign=-1: (ct - x)."""
    r = math.sqrt(c * c * t * t - x * x)
    beta = a / c
    i1_over_r = beta / 2 if r == 0 else sp.iv(1, beta * r) / r
    return a / (2 * c) * math.exp(-a * t) * (sp.iv(0, beta * r) + (c * t + sign * x) * i1_over_r)


@pytest.mark.parametrize("a,c,t", [(1.0, 1.0, 1.0), (2.0, 0.5, 3.0), (5.0, 2.0, 0.7)])
def test_p_plus_matches_unscaled_formula_and_mass(a, c, t):
    xs = np.linspace(-c * t, c * t, 41)[1:-1]
    ours = initial_right_density(t, torch.tensor(xs, dtype=F64), a, c).numpy()
    ref = np.array([p_plus_scipy(t, x, a, c) for x in xs])
    np.testing.assert_allclose(ours, ref, rtol=1e-10)
    mass, _ = si.quad(
        lambda x: float(initial_right_density(t, torch.tensor(x, dtype=F64), a, c)),
        -c * t,
        c * t,
        epsabs=1e-12,
        epsrel=1e-12,
    )
    assert abs(mass - (1 - math.exp(-a * t))) < 1e-9
    # prefactor a/c instead of a/(2c): the mass check of the notebook flips
    assert abs(2 * mass - (1 - math.exp(-a * t))) > 1e-2
    # the mirror (ct - x) is a different function: it must differ from p+ pointwise
    wrong = np.array([p_plus_scipy(t, x, a, c, sign=-1.0) for x in xs])
    assert np.abs(ours - wrong).max() > 1e-2 * ours.max()


def test_p_plus_zero_outside_and_stable_for_large_at():
    x = torch.tensor([-3.0, 3.0, 0.0, 0.999], dtype=F64)
    out = initial_right_density(1.0, x, 1e4, 1.0)
    assert out[0] == 0 and out[1] == 0
    assert torch.isfinite(out).all() and out[2] > 0


def test_symmetrisation_gives_kac_density():
    a, c, t = 3.0, 1.5, 0.8
    x = torch.linspace(-c * t, c * t, 101, dtype=F64)
    mean = 0.5 * (initial_right_density(t, x, a, c) + initial_left_density(t, x, a, c))
    torch.testing.assert_close(mean, kac_density(torch.tensor(t, dtype=F64), x, a, c))


def _right_started(a, c, t, n, seed):
    s = directed_walk([t], n, a, c, initial=1, generator=torch.Generator().manual_seed(seed))
    pos = s.position[0].numpy()
    return pos, np.isclose(pos, c * t, rtol=0, atol=1e-12)


def test_monte_carlo_of_right_started_process_matches_p_plus_and_atom():
    a, c, t, n = 1.0, 1.0, 1.0, 100_000
    pos, atom = _right_started(a, c, t, n, 1)
    edges = np.linspace(-c * t, c * t, 41)

    def probs_of(fn):
        return stats.bin_probabilities(lambda z: fn(torch.as_tensor(z)).numpy(), edges)

    _, p_ok, _ = binned_chi2(
        pos[~atom], n, edges, probs_of(lambda z: initial_right_density(t, z, a, c))
    )
    assert p_ok > 1e-3
    # wrong factor (ct - x): rejected
    _, p_bad, _ = binned_chi2(
        pos[~atom], n, edges, probs_of(lambda z: initial_left_density(t, z, a, c))
    )
    assert p_bad < 1e-10
    # atom of mass exp(-at) at +ct, none at -ct
    z = (atom.mean() - math.exp(-a * t)) / math.sqrt(math.exp(-a * t) * (1 - math.exp(-a * t)) / n)
    assert abs(z) < 4
    assert not np.isclose(pos, -c * t, rtol=0, atol=1e-12).any()
    # a missing atom (all draws put in the continuous part with p+ renormalised): rejected
    p_noatom = binned_chi2(
        pos,
        n,
        edges,
        probs_of(lambda z: initial_right_density(t, z, a, c) / (1 - math.exp(-a * t))),
    )[1]
    assert p_noatom < 1e-10


def test_directed_walk_directions_and_initial_sign():
    s = directed_walk([0.0, 0.3, 2.0], 2000, 2.0, 1.0, generator=torch.Generator().manual_seed(3))
    assert s.position.shape == (3, 2000) and s.direction.shape == (3, 2000)
    torch.testing.assert_close(s.direction[0], s.initial)
    assert set(s.direction.unique().tolist()) <= {-1.0, 1.0}
    assert (s.position[2].abs() <= 2.0 + 1e-12).all()
    with pytest.raises(ValueError):
        directed_walk([1.0], 10, 1.0, 1.0, initial=0)


def test_current_direction_densities_match_monte_carlo():
    a, c, t, n = 1.0, 1.0, 1.5, 100_000
    s = directed_walk([t], n, a, c, generator=torch.Generator().manual_seed(4))
    pos, d = s.position[0].numpy(), s.direction[0].numpy()
    on_atom = np.isclose(np.abs(pos), c * t, rtol=0, atol=1e-12)
    edges = np.linspace(-c * t, c * t, 31)
    f_probs = stats.bin_probabilities(
        lambda z: current_direction_densities(t, torch.as_tensor(z), a, c)[0].numpy(), edges
    )
    b_probs = stats.bin_probabilities(
        lambda z: current_direction_densities(t, torch.as_tensor(z), a, c)[1].numpy(), edges
    )
    right = (d > 0) & ~on_atom
    left = (d < 0) & ~on_atom
    assert binned_chi2(pos[right], n, edges, f_probs)[1] > 1e-3
    assert binned_chi2(pos[left], n, edges, b_probs)[1] > 1e-3
    # f and b swapped (velocity sign flipped): rejected
    assert binned_chi2(pos[right], n, edges, b_probs)[1] < 1e-10
    # the atoms move outward: right atom only in f, left atom only in b
    assert np.all(d[on_atom] == np.sign(pos[on_atom]))
    # f + b = u~
    x = torch.linspace(-c * t, c * t, 51, dtype=F64)[1:-1]
    f, b = current_direction_densities(t, x, a, c)
    torch.testing.assert_close(f + b, kac_density(torch.tensor(t, dtype=F64), x, a, c))


def _grid(a, c):
    t = torch.linspace(1.0, 2.0, 101, dtype=F64)
    x = torch.linspace(-0.6 * c, 0.6 * c, 121, dtype=F64)
    return t, x, t[:, None], x[None, :]


def test_first_order_system_residual_small_and_sensitive():
    a, c = 1.5, 1.0
    t, x, tt, xx = _grid(a, c)
    f, b = current_direction_densities(tt, xx, a, c)
    assert first_order_residual(f, b, t, x, a, c).relative < 1e-3
    # wrong sign of the exchange term, or f and b swapped: the residual is O(1)
    assert first_order_residual(f, b, t, x, -a, c).relative > 0.1
    assert first_order_residual(b, f, t, x, a, c).relative > 0.1


def test_sum_solves_telegraph_equation():
    a, c = 1.5, 1.0
    t, x, tt, xx = _grid(a, c)
    f, b = current_direction_densities(tt, xx, a, c)
    res, scale = telegraph_residual(f + b, t, x, a, c)
    assert res / scale < 1e-3
    # damping a u_t instead of 2a u_t (the rate a passed as a/2): rejected
    res_bad, scale_bad = telegraph_residual(f + b, t, x, a / 2, c)
    assert res_bad / scale_bad > 0.05


def test_binned_chi2_handles_draws_in_empty_cells():
    stat, p, _ = binned_chi2(np.array([0.5]), 10, np.array([0.0, 1.0]), np.array([0.0]))
    assert p == 0.0 and math.isinf(stat)


def test_weak_residual_of_monte_carlo_directions():
    from kacnb.theory.directions import weak_first_order_residual

    a, c, t, h, n = 1.0, 1.0, 1.0, 0.02, 100_000
    s = directed_walk(
        [t + j * h for j in range(-2, 3)], n, a, c, generator=torch.Generator().manual_seed(5)
    )
    centres, width = [-0.6, -0.3, 0.0, 0.3, 0.6], 0.15
    assert weak_first_order_residual(s, h, centres, width, a, c).z < 4.0
    # exchange terms with the wrong sign, or the transport direction reversed: rejected
    assert weak_first_order_residual(s, h, centres, width, -a, c).z > 6.0
    assert weak_first_order_residual(s, h, centres, width, a, -c).z > 6.0
    # the second-order stencil on the middle three rows agrees within the noise
    three = type(s)(s.position[1:4], s.direction[1:4], s.initial)
    assert weak_first_order_residual(three, h, centres, width, a, c).z < 4.0
    with pytest.raises(ValueError):
        weak_first_order_residual(
            type(s)(s.position[:2], s.direction[:2], s.initial), h, centres, width, a, c
        )
