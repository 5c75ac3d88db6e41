"""The explorers' callbacks, tested headless (kacnb.collection.explore): the numbers behind a
slider."""

import math

import matplotlib
import numpy as np
import pytest
import torch

from kacnb.collection import explore
from kacnb.collection.params import ParameterError
from kacnb.theory.multid import smiley_cloud

matplotlib.use("Agg")

CASES = [
    (1.0, 1.0, 0.5),
    (25.0, 5.0, 0.05),
    (25.0, 5.0, 1.0),
    (0.1, 30.0, 4.0),
    (1000.0, 30.0, 2.0),
]


@pytest.mark.parametrize(("a", "c", "t"), CASES)
def test_law_frame_masses_atoms_and_velocity_bound(a, c, t):
    f = explore.kac_law_frame(a, c, t)
    assert f.atom_mass == pytest.approx(math.exp(-a * t) / 2, rel=1e-14)
    assert 2 * f.atom_mass + f.continuous_mass == pytest.approx(1.0, abs=1e-10)
    assert f.edge == pytest.approx(c * t)
    assert float(f.x.abs().max()) < c * t  # the grid lies inside the open cone
    assert torch.isfinite(f.density).all() and (f.density >= 0).all()
    assert float(f.velocity.abs().max()) <= c * (1 + 1e-12)
    # odd velocity, even density (the law is symmetric)
    torch.testing.assert_close(f.velocity, -f.velocity.flip(0), rtol=0, atol=1e-12 * c)
    torch.testing.assert_close(f.density, f.density.flip(0), rtol=1e-12, atol=0)


def test_law_frame_velocity_at_the_cone_edge_and_at_zero():
    # [41]: r I0(beta r) / (c I1(beta r)) -> 2/a as r -> 0, so just inside the cone the
    # velocity is c t / (t + 2/a), below the atoms' speed c (a jump at the atoms)
    f = explore.kac_law_frame(1.0, 1.0, 0.5, n_x=2001)
    assert float(f.velocity[-1]) == pytest.approx(0.5 / (0.5 + 2.0), rel=5e-3)
    assert float(f.velocity[1000]) == pytest.approx(0.0, abs=1e-15)  # x = 0


def test_law_frame_refuses_bad_slider_values():
    with pytest.raises(ParameterError, match="parameter t must be"):
        explore.kac_law_frame(1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="a must be"):
        explore.kac_law_frame(-1.0, 1.0, 0.5)


def test_cloud_frame_is_coupled_in_t_and_bounded_by_ct():
    x0 = smiley_cloud(300)
    a, c, t_max = 4.0, 2.0, 2.0
    frames = [explore.cloud_frame(x0, a, c, t, t_max, seed=3) for t in (0.0, 0.1, 0.11, 1.5)]
    torch.testing.assert_close(frames[0].points, frames[0].x0, rtol=0, atol=0)
    for f in frames:
        assert float((f.points - f.x0).abs().max()) <= c * f.t * (1 + 1e-12)
    # the same particles at nearby times: each coordinate moved by at most c |t - s|
    for s_, t_ in [(0.1, 0.11), (1.0, 1.05), (1.9, 2.0)]:
        fs, ft = (explore.cloud_frame(x0, a, c, u, t_max, seed=3) for u in (s_, t_))
        assert float((ft.points - fs.points).abs().max()) <= c * (t_ - s_) * (1 + 1e-9)
    # a particle whose component has not switched by t sits at distance exactly c t
    on_edge = ((frames[1].points - x0).abs() > c * 0.1 * (1 - 1e-12)).double().mean()
    assert float(on_edge) == pytest.approx(math.exp(-a * 0.1), abs=4 * math.sqrt(0.25 / 600))
    again = explore.cloud_frame(x0, a, c, 0.1, t_max, seed=3)
    torch.testing.assert_close(again.points, frames[1].points, rtol=0, atol=0)


def test_cloud_frame_refuses_t_outside_the_range():
    with pytest.raises(ParameterError, match="t must lie in"):
        explore.cloud_frame(smiley_cloud(10), 1.0, 1.0, 3.0, 2.0)


def test_static_fallbacks_draw_without_widgets():
    fig = explore.law_explorer(False, 25.0, 5.0, [0.02, 0.2])
    assert len(fig.axes) == 4
    matplotlib.pyplot.close(fig)
    fig = explore.cloud_explorer(False, smiley_cloud(50), [(1, 1), (25, 5)], t=0.3)
    assert len(fig.axes) == 2
    assert np.isclose(fig.axes[1].collections[0].get_offsets()[:, 0].std(), 0.7, atol=0.7)
    matplotlib.pyplot.close(fig)
    with pytest.raises(ParameterError, match="interactive must be True or False"):
        explore.law_explorer("yes", 1.0, 1.0, [0.5])


def test_slider_callbacks_return_the_frame_of_the_slider_values():
    pytest.importorskip("ipywidgets")
    w = explore.law_widget(1.0, 1.0, 0.5)
    sliders = {child.description.split()[0]: child for child in w.children[:3]}
    sliders["a"].value = 25.0
    sliders["t"].value = 0.2
    assert w.result.a == pytest.approx(25.0) and w.result.t == pytest.approx(0.2)
    assert w.result.atom_mass == pytest.approx(math.exp(-25.0 * 0.2) / 2, rel=1e-12)
    x0 = smiley_cloud(100)
    w = explore.cloud_widget(x0, 25.0, 5.0, t=0.3, t_max=2.0)
    w.children[2].value = 1.0
    assert w.result.t == pytest.approx(1.0)
    assert float((w.result.points - x0).abs().max()) <= 5.0 * 1.0 * (1 + 1e-12)
    with pytest.raises(ParameterError, match="a must lie in"):
        explore.law_widget(1e5, 1.0, 0.5)
