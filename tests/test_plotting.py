"""The plotting helpers added for notebook 04: zoom-inset scatter and GIF animations."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.animation import FuncAnimation  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from PIL import Image  # noqa: E402

from kacnb.plotting import GENERATED, GROUND_TRUTH, save_animation, scatter_with_zoom  # noqa: E402


def test_scatter_with_zoom_draws_both_sets_and_an_inset_on_the_square():
    rng = np.random.default_rng(0)
    gen, ref = rng.normal(size=(50, 2)), rng.normal(size=(40, 2))
    fig, ax = plt.subplots()
    inset = scatter_with_zoom(ax, gen, ref, center=(1.0, -1.0), half_width=0.25)
    assert inset in ax.child_axes
    assert inset.get_xlim() == pytest.approx((0.75, 1.25))
    assert inset.get_ylim() == pytest.approx((-1.25, -0.75))
    for target in (ax, inset):
        gen_pts, ref_pts = target.collections[0], target.collections[1]
        np.testing.assert_allclose(gen_pts.get_offsets(), gen)
        np.testing.assert_allclose(ref_pts.get_offsets(), ref)
        assert to_hex(gen_pts.get_facecolor()[0]) == GENERATED
        assert to_hex(ref_pts.get_facecolor()[0]) == GROUND_TRUTH
    plt.close(fig)


def test_save_animation_writes_a_gif_with_every_frame(tmp_path):
    fig, ax = plt.subplots(figsize=(2, 2))
    (line,) = ax.plot([], [])
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)

    def update(k):
        line.set_data([0, 1], [k / 4, 1 - k / 4])
        return (line,)

    anim = FuncAnimation(fig, update, frames=4, blit=False)
    assert save_animation(anim, "nb99_anim", None) == []
    written = save_animation(anim, "nb99_anim", tmp_path / "sub", fps=5, dpi=50)
    assert written == [tmp_path / "sub" / "nb99_anim.gif"]
    with Image.open(written[0]) as img:
        assert img.format == "GIF" and img.n_frames == 4
        assert img.size == (100, 100)  # 2 x 2 inches at 50 dpi
    with pytest.raises(ValueError, match="bare file stem"):
        save_animation(anim, "dir/anim", tmp_path)
    plt.close(fig)
