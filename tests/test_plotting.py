"""The plotting helpers: zoom-inset scatter, GIF animations, and saved figures shown inline
once in a Jupyter kernel (here with a stand-in for the kernel; tests/test_inline_figures.py
uses real kernels)."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.animation import FuncAnimation  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from PIL import Image  # noqa: E402

from kacnb.collection import plotting  # noqa: E402
from kacnb.collection.plotting import GENERATED, GROUND_TRUTH, save_animation, scatter_with_zoom  # noqa: E402


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


@pytest.fixture
def kernel(monkeypatch):
    """A stand-in Jupyter kernel: what :func:`plotting.show_inline` publishes, in order."""
    shown = []
    monkeypatch.setattr(plotting, "_kernel_shell", lambda: object())
    monkeypatch.setattr(plotting, "_publish", lambda data, md: shown.append((data, md)))
    return shown


def _figure():
    plotting.use_style()
    fig, ax = plt.subplots(figsize=(4.0, 2.5))
    ax.plot([0, 1, 2], [0, 1, 0], color=GENERATED)
    ax.fill_between([0, 1], [0, 0], [1, 1], color=GROUND_TRUTH)
    ax.set_title("a triangle")
    return fig


def _pixels(png: bytes, size=None) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as img:
        img = img.convert("RGB")
        return np.asarray(img.resize(size, Image.BILINEAR) if size else img, dtype=float)


def test_saved_figure_is_shown_inline_once_as_the_same_drawing(tmp_path, kernel):
    fig = _figure()
    written = plotting.save_figure(fig, "nb99_triangle", tmp_path)
    assert [p.name for p in written] == ["nb99_triangle.png", "nb99_triangle.pdf"]
    assert len(kernel) == 1
    data, metadata = kernel[0]
    assert set(data) == {"image/png"}  # no text for a notebook regression test to compare
    assert metadata == {plotting.FIGURE_KEY: "nb99_triangle"}
    inline = base64.b64decode(data["image/png"])
    saved = (tmp_path / "nb99_triangle.png").read_bytes()
    # Screen resolution: the saved file's pixels scaled by INLINE_DPI / savefig.dpi.
    small, big = _pixels(inline), _pixels(saved)
    scale = plotting.INLINE_DPI / plotting.STYLE["savefig.dpi"]
    assert small.shape[1] == pytest.approx(big.shape[1] * scale, abs=3)
    assert small.shape[0] == pytest.approx(big.shape[0] * scale, abs=3)
    # The same drawing: the saved file scaled down looks like the inline image, while a
    # different drawing at the same size does not.
    size = (small.shape[1], small.shape[0])
    same = np.abs(_pixels(saved, size) - small).mean()
    other = plt.figure(figsize=(4.0, 2.5))
    other.gca().plot([0, 2], [1, 0], color=GROUND_TRUTH)
    different = np.abs(_pixels(plotting.figure_png(other), size) - small).mean()
    plt.close(other)
    assert same < 10 < different
    # Closed, so that the notebook's following plt.show() does not show it a second time.
    assert not plt.fignum_exists(fig.number)


def test_figure_is_shown_inline_without_saving(kernel):
    fig = _figure()
    assert plotting.save_figure(fig, "nb99_unsaved", None) == []
    assert [md for _, md in kernel] == [{plotting.FIGURE_KEY: "nb99_unsaved"}]
    assert not plt.fignum_exists(fig.number)


def test_outside_a_kernel_nothing_is_shown_and_the_figure_stays_open(tmp_path, monkeypatch):
    published = []
    monkeypatch.setattr(plotting, "_publish", lambda data, md: published.append(md))
    assert plotting._kernel_shell() is None  # pytest is not a Jupyter kernel
    fig = _figure()
    plotting.save_figure(fig, "nb99_script", tmp_path)
    assert published == [] and plt.fignum_exists(fig.number)
    plt.close(fig)


def test_a_bad_name_shows_nothing(kernel, tmp_path):
    fig = _figure()
    with pytest.raises(ValueError, match="bare file stem"):
        plotting.save_figure(fig, "nb99.png", tmp_path)
    assert kernel == [] and list(tmp_path.iterdir()) == []
    plt.close(fig)


def test_inline_figures_lists_images_in_order_with_their_names():
    import nbformat

    nb = nbformat.v4.new_notebook()
    png = {"image/png": "iVBORw0KGgo="}
    first, second = nbformat.v4.new_code_cell("a"), nbformat.v4.new_code_cell("b")
    first.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="x\n"),
        nbformat.v4.new_output("display_data", data=png, metadata={plotting.FIGURE_KEY: "f1"}),
    ]
    second.outputs = [
        nbformat.v4.new_output("display_data", data={"text/plain": "<Figure>", **png}),
        nbformat.v4.new_output("display_data", data={"text/plain": "text only"}),
        nbformat.v4.new_output("display_data", data=png, metadata={plotting.FIGURE_KEY: "f2"}),
    ]
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), first, second]
    assert plotting.inline_figures(nb) == ["f1", None, "f2"]
