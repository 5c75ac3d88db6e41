"""Pretrained bundles: a round trip keeps the models; altered or crafted files are refused."""

from __future__ import annotations

import pickle

import pytest
import torch

from kacnb import gmm2d, pretrained
from kacnb.metrics import grid_mixture


@pytest.fixture(scope="module")
def trained():
    specs = gmm2d.paper_models()[::3]  # Kac (25, 5) and diffusion
    return specs, gmm2d.train_models(
        specs, 30, gmm=grid_mixture(), width=16, depth=2, eval_every=15, n_val=16, progress=False
    )


def test_round_trip(tmp_path, trained):
    specs, models = trained
    pretrained.save_bundle(models, tmp_path, "b", {"settings": {"width": 16}, "run": "test"})
    entries, info = pretrained.load_bundle(tmp_path, "b")
    assert info["run"] == "test" and len(info["sha256"]) == 64
    back = gmm2d.from_bundle(specs, entries, info)
    t, x = torch.rand(64), torch.randn(64, 2)
    for spec in specs:
        a, b = models[spec.key], back[spec.key]
        torch.testing.assert_close(a.model(t, x), b.model(t, x), rtol=0, atol=0)
        assert b.result.best_step == a.result.best_step
        assert [s for s, _ in b.result.validation] == [s for s, _ in a.result.validation]
        assert [v for _, v in b.result.validation] == pytest.approx(
            [v for _, v in a.result.validation]
        )
        it, mean = b.loss_curve()
        it0, mean0 = a.loss_curve()
        torch.testing.assert_close(mean, mean0)
        # block means of the per-iteration loss: their mean is the mean loss
        assert float(mean.mean()) == pytest.approx(float(a.result.losses.double().mean()))
    with pytest.raises(KeyError, match="kac_64_8"):
        gmm2d.from_bundle(gmm2d.paper_models(), entries, info)


def test_altered_and_crafted_files_are_refused(tmp_path, trained):
    _, models = trained
    pretrained.save_bundle(models, tmp_path, "b", {"run": "test"})
    pt = tmp_path / "b.pt"
    data = bytearray(pt.read_bytes())
    pt.write_bytes(bytes(data[:-10]))  # truncated
    with pytest.raises(pretrained.BundleError, match="SHA-256 .* does not match"):
        pretrained.load_bundle(tmp_path, "b")

    class Boom:
        def __reduce__(self):
            return (print, ("code ran",))

    pt.write_bytes(pickle.dumps({"models": Boom()}))
    # even with a matching checksum, a pickle with code is not loaded
    info = (tmp_path / "b.json").read_text()
    (tmp_path / "b.json").write_text(
        info.replace(info.split('"sha256": "')[1][:64], pretrained.sha256(pt))
    )
    with pytest.raises(pretrained.BundleError, match="refused to load"):
        pretrained.load_bundle(tmp_path, "b")
    with pytest.raises(pretrained.BundleError, match="not found"):
        pretrained.load_bundle(tmp_path, "missing")
