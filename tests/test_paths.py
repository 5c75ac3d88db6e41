"""The probability paths of kacnb.cfm.paths satisfy the identities of paper Sections 6-7."""

from __future__ import annotations

import math

import pytest
import torch

from kacnb.cfm.paths import DiffusionPath, KacPath, MeanRevertingKacPath, RectifiedFlowPath
from kacnb.theory.kac import Kac, MeanRevertingKac

F64 = torch.float64


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


ALL_PATHS = [
    KacPath(Kac(25.0, 5.0), T=1.0),
    MeanRevertingKacPath(Kac(25.0, 5.0), T=2.0),
    DiffusionPath(sigma=1.0, T=1.0, eps=1e-2),
    RectifiedFlowPath(T=1.0),
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


def test_kac_target_is_the_velocity_of_the_drawn_noise():
    # The target is v(t, K(t)) on the drawn K(t) itself [93]: redraw K with the same
    # generator and evaluate the 1D velocity [41] on it, component by component.
    kac = Kac(25.0, 5.0)
    path = KacPath(kac)
    x0 = torch.randn(256, 3, 2, dtype=F64, generator=gen(3))
    t = torch.rand(256, dtype=F64, generator=gen(4))
    xt, target = path.draw(t, x0, generator=gen(5))
    k = kac.sample(t, dim=6, generator=gen(5)).reshape(x0.shape)
    torch.testing.assert_close(xt, x0 + k, rtol=0, atol=0)
    expected = kac.velocity(t[:, None, None].expand_as(k), k)
    torch.testing.assert_close(target, expected, rtol=0, atol=0)
    assert float(target.abs().max()) <= kac.c
    # Displacement from the start stays in the light cone |x - x0| <= c t.
    assert torch.all((xt - x0).abs() <= kac.c * t[:, None, None] + 1e-12)


SMALL_TIMES = {(25.0, 5.0): (1e-3, 1e-2, 4e-2), (1600.0, 10.0): (1e-5, 1e-4, 5e-4)}


def _atom_share(path, t_value, n=20_000, seed=0):
    """Share of float32 target components that sit on an atom, and the expected exp(-a t)."""
    kac = path.kac
    # data of size ~10 spread over several binades, so rounding x0 + k moves atoms both ways
    x0 = (10.0 * torch.randn(n, 2, generator=gen(seed))).float()
    t = torch.full((n,), t_value, dtype=torch.float32)
    xt, target = path.draw(t, x0, generator=gen(seed + 1))
    drift = path.schedule.derivative(t)[:, None] * x0 if hasattr(path, "schedule") else 0.0
    speed = (target - drift).abs()
    on_atom = (speed - kac.c).abs() <= 1e-5 * kac.c
    p = math.exp(-kac.a * t_value)
    return float(on_atom.double().mean()), p, math.sqrt(p * (1 - p) / (2 * n)), (xt, x0, t)


@pytest.mark.parametrize("mean_reverting", [False, True], ids=["kac", "mean-reverting"])
@pytest.mark.parametrize("ac", list(SMALL_TIMES), ids=lambda ac: f"a{ac[0]:g}-c{ac[1]:g}")
def test_float32_targets_keep_the_atoms(ac, mean_reverting):
    # paper Sections 6-7: with probability exp(-a t) a component of K(t) sits on an atom
    # |k| = c t, where the target speed is exactly c [41]. Computed from x_t - x0 in float32,
    # the atom moves inside the light cone and the interior formula gives ~ c t/(t + 2/a).
    kac = Kac(*ac)
    path = MeanRevertingKacPath(kac, T=1.0) if mean_reverting else KacPath(kac, T=1.0)
    for i, t_value in enumerate(SMALL_TIMES[ac]):
        share, p, se, _ = _atom_share(path, t_value, seed=10 * i)
        assert abs(share - p) <= 5 * se + 1e-9, (t_value, share, p)


def test_round_trip_target_loses_the_atoms_in_float32():
    # The trap the exact targets avoid, measured: evaluating the target on x_t - x0 (float32)
    # at (25, 5), t = 1e-3 puts far fewer components on the atoms than exp(-a t) = 97.5%
    # (72% with this data).
    path = KacPath(Kac(25.0, 5.0))
    share, p, se, (xt, x0, t) = _atom_share(path, 1e-3)
    round_trip = path.conditional_velocity(t, xt, x0)
    lost = float(((round_trip.abs() - 5.0).abs() <= 5e-5).double().mean())
    assert abs(share - p) <= 5 * se
    assert lost < p - 50 * se, (lost, p)


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
    # E[d/dt (f(t) x0 + K(t)) | X_t = x] = f'(t) x0 + v(t, x - f(t) x0) [99], checked as a
    # regression in bins of x: the pathwise finite-difference speed, averaged within each bin,
    # equals the target averaged there (a zero, negated or tripled v fails in the outer bins,
    # where the conditional speed is about +-c).
    kac, T, t, h = Kac(4.0, 2.0), 2.0, 0.8, 1e-4
    path = MeanRevertingKacPath(kac, T=T)
    n = 400_000
    k = kac.paths(torch.tensor([t, t + h], dtype=F64), n, generator=gen(12))[:, :, 0]
    x0 = torch.full((n, 1), 1.5, dtype=F64)
    f = path.schedule.value
    xt = f(torch.tensor(t, dtype=F64)) * x0 + k[0, :, None]
    xh = f(torch.tensor(t + h, dtype=F64)) * x0 + k[1, :, None]
    speed = ((xh - xt) / h)[:, 0]
    target = path.conditional_velocity(torch.full((n,), t, dtype=F64), xt, x0)[:, 0]
    inside = k[0].abs() < kac.c * t  # the atoms move at exactly +-c: checked elsewhere
    edges = torch.linspace(-kac.c * t, kac.c * t, 9, dtype=F64)
    bins = torch.bucketize(k[0].contiguous(), edges[1:-1].contiguous())
    checked = 0
    for b in range(8):
        sel = inside & (bins == b)
        m = int(sel.sum())
        if m < 2000:
            continue
        diff = float(speed[sel].mean() - target[sel].mean())
        err = float(speed[sel].std()) / math.sqrt(m)
        # bias: the velocity changes by O(h * dv/dt) over one step, and a bin is 1/8 of 2 c t wide
        assert abs(diff) < 5 * err + 0.2 * kac.c / 8 + 4 * kac.a * kac.c * h, (b, diff, err)
        checked += 1
    assert checked >= 6


def test_bad_arguments():
    with pytest.raises(ValueError, match="^eps "):
        DiffusionPath(eps=0.0)
    with pytest.raises(ValueError, match="eps must be < T"):
        DiffusionPath(eps=2.0, T=1.0)
    with pytest.raises(ValueError, match="^T "):
        KacPath(Kac(1.0, 1.0), T=-1.0)


@pytest.mark.parametrize("path", ALL_PATHS, ids=repr)
def test_sample_at_refuses_bad_requests(path):
    x0 = torch.zeros(4, 2, dtype=F64)
    inside = torch.full((4,), 0.5 * (path.t_min + path.T), dtype=F64)
    assert path.sample_at(inside, x0, generator=gen(0)).shape == (4, 2)
    for bad, match in [
        (torch.full((4,), path.T * 1.5, dtype=F64), r"t must lie in \[t_min, T\]"),
        (torch.full((4,), -0.1, dtype=F64), r"t must lie in \[t_min, T\]"),
        (torch.full((4,), float("nan"), dtype=F64), "t must be finite"),
        (torch.full((3,), 0.5, dtype=F64), r"t must have shape \(4,\)"),
    ]:
        with pytest.raises(ValueError, match=match):
            path.sample_at(bad, x0)
    with pytest.raises(ValueError, match="non-empty batch"):
        path.sample_at(torch.zeros(0, dtype=F64), torch.zeros(0, 2, dtype=F64))
    with pytest.raises(TypeError, match="must be tensors"):
        path.sample_at([0.5] * 4, x0)


def test_non_numeric_parameters_are_refused():
    for bad in ("five", None, [1.0]):
        with pytest.raises(ValueError, match="must be a finite number > 0"):
            Kac(bad, 1.0)
        with pytest.raises(ValueError, match="must be a finite number > 0"):
            KacPath(Kac(1.0, 1.0), T=bad)


def test_rectified_flow_target_is_the_pathwise_derivative_from_the_noise():
    path = RectifiedFlowPath(T=2.0, sigma=1.5)
    x0 = torch.randn(300, 2, dtype=F64, generator=gen(20))
    t = torch.rand(300, dtype=F64, generator=gen(21)) * 1.8 + 0.1
    h = 1e-6
    xa, _ = path.draw(t - h, x0, generator=gen(22))
    xb, _ = path.draw(t + h, x0, generator=gen(22))
    xt, target = path.draw(t, x0, generator=gen(22))
    torch.testing.assert_close((xb - xa) / (2 * h), target, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(path.conditional_velocity(t, xt, x0), target)
    # the latent is sigma Z whatever the data: variance sigma^2 per coordinate
    lat = path.latent(torch.full((40_000, 2), 7.0, dtype=F64), generator=gen(23))
    assert float(lat.var()) == pytest.approx(1.5**2, rel=0.03)
    assert abs(float(lat.mean())) < 0.05
    # float32: the target comes from the drawn noise, not from a round trip through x_t
    x0f = (10.0 * torch.randn(1000, 2, generator=gen(24))).float()
    tf = torch.full((1000,), 1e-4)
    _, tgt = path.draw(tf, x0f, generator=gen(25))
    z = torch.randn(x0f.shape, generator=gen(25))
    torch.testing.assert_close(tgt, (1.5 * z - x0f) / 2.0, rtol=0, atol=0)


def test_kac_paths_beyond_the_float32_training_range_are_refused():
    # c = 1e20 made float32 targets NaN ((c t)^2 overflows): refused at construction
    cases = [(Kac(1.0, 1e20), 1.0), (Kac(1e11, 1.0), 1.0), (Kac(1.0, 1e17), 100.0)]
    cases += [(Kac(1.0, 1e-10), 1.0), (Kac(1e-31, 1.0), 1.0)]
    for kac, T in cases:
        with pytest.raises(ValueError, match=r"beyond the float32 training range: c T must"):
            KacPath(kac, T)
        with pytest.raises(ValueError, match="beyond the float32 training range"):
            MeanRevertingKacPath(kac, T)


@pytest.mark.parametrize(("a", "c"), [(1.0, 1e18), (1e10, 1.0), (1.0, 1e-9)])
def test_kac_path_at_the_range_limit_draws_finite_exact_targets(a, c):
    from kacnb.theory.kac import kac_velocity

    draw = KacPath(Kac(a, c)).sample(torch.zeros(4000, 2), torch.Generator().manual_seed(0))
    assert draw.target.dtype == torch.float32
    assert torch.isfinite(draw.target).all()
    assert float(draw.target.abs().max()) <= c * (1 + 1e-6)
    t, k = draw.t[:, None].expand(-1, 2).double(), draw.xt.double()
    inner = k.abs() < 0.999 * c * t
    assert int(inner.sum()) > 100
    err = (draw.target.double() - kac_velocity(t, k, a, c)).abs()[inner] / c
    assert float(err.max()) < 1e-5


# -- a Kac path drawing another law of K(t) (the authors' sampler before its fix) ------------


def _noise_at(path, t: float, n: int, seed: int = 0):
    x0 = torch.zeros(n, 2)
    tt = torch.full((n,), t)
    xt, target = path.draw(tt, x0, torch.Generator().manual_seed(seed))
    return xt, target


@pytest.mark.parametrize(("a", "c", "t"), [(25.0, 5.0, 0.3), (4.0, 2.0, 2.0)])
def test_noise_law_sets_the_law_and_keeps_the_exact_target(a, c, t):
    from kacnb.theory.prefix_law import exact_law, prefix_law, prefix_second_moment

    kac, n = Kac(a, c), 40_000
    for law in (prefix_law(a, c), exact_law(a, c), None):
        path = KacPath(kac, noise_law=law)
        xt, target = _noise_at(path, t, n)
        assert xt.dtype == target.dtype == torch.float32
        w = 1.0 if law is None else law.even_weight
        want = float(prefix_second_moment(t, a, c, w))
        k2 = xt.double().pow(2).flatten()
        se = float(k2.std()) / math.sqrt(k2.numel())
        assert abs(float(k2.mean()) - want) < 4 * se, (law, float(k2.mean()), want)
        # the target is the exact velocity [41] of the drawn noise; atoms move at +-c
        ref = kac.velocity(torch.full_like(xt.double(), t), xt.double()).float()
        atoms = xt.abs() == torch.tensor(c * t, dtype=torch.float32)
        assert torch.equal(target[atoms].abs(), torch.full_like(target[atoms], c))
        assert torch.allclose(target[~atoms], ref[~atoms], rtol=1e-4, atol=1e-5)
    # the pre-fix law is narrower: its second moment is below the exact one by many errors
    exact_m = float(prefix_second_moment(t, a, c, 1.0))
    pre = _noise_at(KacPath(kac, noise_law=prefix_law(a, c)), t, n, seed=1)[0].double().pow(2)
    assert float(pre.mean()) < exact_m - 5 * float(pre.std()) / math.sqrt(pre.numel())


def test_noise_law_of_another_pair_is_refused():
    from kacnb.theory.prefix_law import prefix_law

    with pytest.raises(ValueError, match="another pair"):
        KacPath(Kac(25.0, 5.0), noise_law=prefix_law(64.0, 8.0))
    assert "noise_law=ParityWeightedLaw" in repr(
        KacPath(Kac(25.0, 5.0), noise_law=prefix_law(25, 5))
    )
