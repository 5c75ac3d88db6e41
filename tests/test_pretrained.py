"""Pretrained bundles: a round trip keeps the models; altered or crafted files are refused."""

from __future__ import annotations

import json
import pickle
from types import SimpleNamespace

import pytest
import torch
from tolerance import shares_agree

from kacnb.cfm import pretrained
from kacnb.cfm.metrics import grid_mixture
from kacnb.cfm.models import MLP, UNet
from kacnb.cfm.train import TrainResult
from kacnb.experiments import gmm2d


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


# ---------------------------------------------------------------------------------------------
# The shipped paper-scale bundle against the committed notebook 04 (paper profile).

ROOT = pretrained.default_dir().parent
METRICS = ROOT / "figures" / "runs" / "04_cfm_gmm_2d.metrics.json"
BUNDLE = "04_cfm_gmm_2d_paper"
N_CHECK = 4000  # generated points per model; 5 binomial standard errors at this size


def _committed():
    import json

    return json.loads(METRICS.read_text())


def _shares(model, path, gmm, n, seed):
    gen = torch.Generator().manual_seed(seed)
    x0 = gmm.sample(n, generator=gen)
    x = gmm2d.generate(model, path, x0, generator=gen).x
    q = gmm2d.sample_quality(x, gmm, radii=(5e-3, 0.05))
    cov = q["covered"]
    return {"coverage_50sigma": float(cov[5e-3]), "coverage_0.05": float(cov[0.05])}


def test_shipped_bundle_reproduces_the_committed_metrics():
    """The committed notebook 04 is the paper run, and the shipped weights are its models.

    Fresh samples of each shipped model (another seed, ``N_CHECK`` points) reproduce the
    committed shares within 50 mode standard deviations and within 0.05 of a mode to five
    standard errors, and the bundle's selected iterations are the committed ones. Loading the
    quick-profile weights (or swapping two models) fails this test: the shares differ by far
    more than the tolerance (diffusion 0.57 within 0.05 against 0.99 for Kac).
    """
    committed = _committed()
    assert committed["profile"] == "paper", "notebook 04 is not committed from the paper profile"
    entries, info = pretrained.load_bundle(pretrained.default_dir(), BUNDLE)
    specs = {s.key: s for s in [*gmm2d.paper_models(eps=1e-3, T=1.0), gmm2d.baseline_model()]}
    gmm = grid_mixture(std=1e-4)
    assert set(entries) == set(committed["models"]) == set(specs)
    for key, entry in entries.items():
        ref = committed["models"][key]
        assert entry["best_step"] == ref["best_iteration"], key
        assert entry["iterations"] == ref["iterations"] >= 460_000, key
        got = _shares(entry["model"], specs[key].path, gmm, N_CHECK, seed=12345)
        for name, value in got.items():
            assert shares_agree(value, ref[name], N_CHECK, z=5), (key, name, value, ref[name])


PREFIX_BUNDLE = "04_prefix_law_paper"


def test_shipped_prefix_model_reproduces_the_committed_scores():
    """Section 13 of the committed notebook 04 scores the shipped pre-fix-law (25, 5) model.

    The bundle holds that one model, trained for 500k iterations with the settings of the
    paper bundle (the two (25, 5) models differ only in the law of K(t)), and fresh samples
    from its own latent reproduce the committed shares within 50 mode standard deviations
    and within 0.05 of a mode to five standard errors.
    """
    committed = _committed().get("prefix_law")
    assert committed is not None, "notebook 04 is committed without section 13's pre-fix model"
    assert committed["weights"] == f"pretrained bundle {PREFIX_BUNDLE}"
    entries, info = pretrained.load_bundle(pretrained.default_dir(), PREFIX_BUNDLE)
    spec = gmm2d.prefix_model(T=1.0)
    assert set(entries) == {spec.key}
    entry = entries[spec.key]
    assert entry["iterations"] == info["settings"]["steps"] == 500_000
    paper = json.loads((pretrained.default_dir() / f"{BUNDLE}.json").read_text())["settings"]
    for key in ("batch_size", "lr", "grad_clip", "ema_decay", "width", "depth", "rtol", "atol"):
        assert info["settings"][key] == paper[key], key
    got = _shares(entry["model"], spec.path, grid_mixture(std=1e-4), N_CHECK, seed=12345)
    for name, value in got.items():
        assert shares_agree(value, committed[spec.key][name], N_CHECK, z=5), (
            name,
            value,
            committed,
        )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text, info: "{not json", r"b\.json: not readable JSON"),
        (lambda text, info: "[1, 2]", r"b\.json: expected a JSON object, got list"),
        (lambda text, info: {**info, "models": None}, r"b\.json: no table of models"),
        (lambda text, info: {k: v for k, v in info.items() if k != "sha256"}, "no SHA-256"),
        (
            lambda text, info: _shape(info, width=100_000),
            r"model kac_25_5: width must be an integer from 1 to 4096, got 100000",
        ),
        (lambda text, info: _shape(info, depth=0), r"depth must be an integer from 1 to 16"),
        (lambda text, info: _shape(info, width="16"), r"width must be an integer .* got '16'"),
        (lambda text, info: _shape(info, width=32), r"weights of kac_25_5 do not fit the MLP"),
        (
            lambda text, info: {**info, "models": {"diffusion": info["models"]["diffusion"]}},
            r"b\.json: no architecture for the models kac_25_5",
        ),
    ],
)
def test_malformed_json_is_refused_naming_the_file(tmp_path, trained, edit, message):
    import json

    _, models = trained
    pretrained.save_bundle(models, tmp_path, "b", {"run": "test"})
    js = tmp_path / "b.json"
    text = js.read_text()
    new = edit(text, json.loads(text))
    js.write_text(new if isinstance(new, str) else json.dumps(new))
    with pytest.raises(pretrained.BundleError, match=message):
        pretrained.load_bundle(tmp_path, "b")


def _shape(info: dict, **shape) -> dict:
    models = {k: dict(v) for k, v in info["models"].items()}
    models["kac_25_5"].update(shape)
    return {**info, "models": models}


# ---------------------------------------------------------------------------------------------
# Architectures: U-Nets travel through the same checked path; the first (MLP-only) form loads.

#: The smallest U-Net of the tests (base 4 with two levels does not build: its group norms of
#: 8 do not divide the 12 channels of the first up block).
SMALL_UNET = {"arch": "unet", "channels": 1, "base": 8, "levels": 2, "blocks": 1}


def _trained(model: torch.nn.Module) -> SimpleNamespace:
    """What save_bundle needs of a trained model, as notebook 05's ``Trained``: ``model`` and
    ``result``, and no ``settings``."""
    result = TrainResult(
        model=model,
        ema=None,
        losses=torch.linspace(2.0, 1.0, 40),
        validation=[(20, 1.5), (40, 1.25)],
        best_step=40,
        best_value=1.25,
    )
    return SimpleNamespace(model=model, result=result)


def _unet_bundle(tmp_path) -> UNet:
    torch.manual_seed(3)
    net = UNet(channels=1, base=8, levels=2, blocks=1)
    with torch.no_grad():  # weights no fresh initialisation reproduces
        for p in net.parameters():
            p.add_(0.01 * torch.randn_like(p))
    pretrained.save_bundle({"mnist": _trained(net)}, tmp_path, "u", {"run": "test"})
    return net


def test_unet_bundle_round_trip(tmp_path):
    net = _unet_bundle(tmp_path)
    meta = json.loads((tmp_path / "u.json").read_text())
    assert meta["models"] == {"mnist": SMALL_UNET}
    torch.manual_seed(99)  # the loaded weights, not the RNG, make the model
    entries, info = pretrained.load_bundle(tmp_path, "u")
    back = entries["mnist"]["model"]
    assert type(back) is UNet and not back.training
    assert not any(p.requires_grad for p in back.parameters())
    assert entries["mnist"]["best_step"] == 40
    assert entries["mnist"]["validation"] == [(20, 1.5), (40, 1.25)]
    ref, got = net.state_dict(), back.state_dict()
    assert list(got) == list(ref)
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=0, atol=0)
    gen = torch.Generator().manual_seed(0)
    t, x = torch.rand(3, generator=gen), torch.randn(3, 1, 28, 28, generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(back(t, x), net.eval()(t, x), rtol=0, atol=0)


def test_mlp_bundle_is_written_with_its_architecture_and_loads_in_the_first_form(tmp_path):
    torch.manual_seed(4)
    net = MLP(dim=3, width=8, depth=2)
    pretrained.save_bundle({"m": _trained(net)}, tmp_path, "b", {"run": "test"})
    js = tmp_path / "b.json"
    meta = json.loads(js.read_text())
    assert meta["models"] == {"m": {"arch": "mlp", "dim": 3, "width": 8, "depth": 2}}
    x, t = torch.randn(16, 3), torch.rand(16)
    # the first form: width and depth only, the dimension is load_bundle's argument
    js.write_text(json.dumps({**meta, "models": {"m": {"width": 8, "depth": 2}}}))
    entries, _ = pretrained.load_bundle(tmp_path, "b", dim=3)
    torch.testing.assert_close(entries["m"]["model"](t, x), net(t, x), rtol=0, atol=0)
    with pytest.raises(pretrained.BundleError, match=r"weights of m do not fit the MLP of dim 2"):
        pretrained.load_bundle(tmp_path, "b")  # dim 2 by default: the weights are 3D


def test_shipped_bundle_in_the_first_form_still_loads():
    """The committed 04 bundle names ``width`` and ``depth`` only; it loads as the MLPs
    (dim 2) its ``.pt`` holds, weight for weight."""
    directory = pretrained.default_dir()
    meta = json.loads((directory / f"{BUNDLE}.json").read_text())
    assert all(set(entry) == {"width", "depth"} for entry in meta["models"].values())
    entries, info = pretrained.load_bundle(directory, BUNDLE)
    assert info["sha256"] == meta["sha256"] == pretrained.sha256(directory / f"{BUNDLE}.pt")
    stored = torch.load(directory / f"{BUNDLE}.pt", map_location="cpu", weights_only=True)
    assert set(entries) == set(stored["models"]) == set(meta["models"])
    gen = torch.Generator().manual_seed(0)
    t, x = torch.rand(32, generator=gen), torch.randn(32, 2, generator=gen)
    for key, entry in entries.items():
        model = entry["model"]
        assert type(model) is MLP and (model.dim, model.width, model.depth) == (2, 256, 3)
        ref = MLP(dim=2, width=256, depth=3)
        ref.load_state_dict(stored["models"][key]["state"])
        torch.testing.assert_close(model(t, x), ref(t, x), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"base": 100_000}, r"model mnist: base must be an integer from 1 to 256, got 100000"),
        ({"levels": 0}, r"model mnist: levels must be an integer from 1 to 4, got 0"),
        ({"blocks": True}, r"model mnist: blocks must be an integer from 1 to 4, got True"),
        ({"channels": 2.0}, r"model mnist: channels must be an integer .* got 2\.0"),
        ({"arch": "transformer"}, r"model mnist: arch must be one of 'mlp', 'unet', got 'trans"),
        ({"width": 16}, r"model mnist: width is not a field of arch 'unet'"),
        ({"base": 4}, r"model mnist: base 4 does not fit levels 2"),
    ],
)
def test_out_of_range_unet_is_refused_before_weights_are_built(
    tmp_path, monkeypatch, change, message
):
    _unet_bundle(tmp_path)
    js = tmp_path / "u.json"
    meta = json.loads(js.read_text())
    js.write_text(json.dumps({**meta, "models": {"mnist": {**SMALL_UNET, **change}}}))

    def never(*args, **kwargs):
        raise AssertionError("weights were read or a model was built")

    monkeypatch.setattr(pretrained.torch, "load", never)
    monkeypatch.setattr(pretrained, "build", never)
    monkeypatch.setattr(pretrained.torch.nn.Module, "load_state_dict", never)
    with pytest.raises(pretrained.BundleError, match=r"^u\.json: " + message):
        pretrained.load_bundle(tmp_path, "u")


def test_unet_weights_under_another_unet_are_refused(tmp_path):
    _unet_bundle(tmp_path)
    js = tmp_path / "u.json"
    meta = json.loads(js.read_text())
    js.write_text(json.dumps({**meta, "models": {"mnist": {**SMALL_UNET, "blocks": 2}}}))
    with pytest.raises(pretrained.BundleError, match=r"weights of mnist do not fit the U-Net"):
        pretrained.load_bundle(tmp_path, "u")


def test_save_bundle_refuses_a_model_it_could_not_load(tmp_path):
    with pytest.raises(ValueError, match=r"model k: architecture\(\) knows MLP and UNet"):
        pretrained.save_bundle(
            {"k": _trained(torch.nn.Linear(2, 2))}, tmp_path, "b", {"run": "test"}
        )
    assert not any(tmp_path.iterdir())


def test_extras_round_trip_and_are_checked(tmp_path, trained):
    from kacnb.experiments.classifier import DigitClassifier
    from kacnb.experiments.mnist_exp import CLASSIFIER_EXTRA, shipped_classifier

    _, models = trained
    torch.manual_seed(3)
    clf = DigitClassifier().eval()
    extras = {CLASSIFIER_EXTRA: clf.state_dict()}
    js = pretrained.save_bundle(models, tmp_path, "b", {"run": "test"}, extras=extras)
    assert json.loads(js.read_text())["extras"] == [CLASSIFIER_EXTRA]
    back = shipped_classifier(tmp_path, "b")
    x = torch.rand(8, 1, 28, 28) * 2 - 1
    torch.testing.assert_close(back(x), clf(x), rtol=0, atol=0)
    with pytest.raises(pretrained.BundleError, match="no extra weights 'other'"):
        pretrained.load_extra(tmp_path, "b", "other")
    # weights of another network under the classifier's key: refused, not half-loaded
    wrong = {CLASSIFIER_EXTRA: DigitClassifier(n_features=64).state_dict()}
    pretrained.save_bundle(models, tmp_path, "w", {"run": "test"}, extras=wrong)
    with pytest.raises(pretrained.BundleError, match="do not fit DigitClassifier"):
        shipped_classifier(tmp_path, "w")
    # an altered file is refused before the extras are read
    pt = tmp_path / "b.pt"
    pt.write_bytes(pt.read_bytes()[:-10])
    with pytest.raises(pretrained.BundleError, match="does not match"):
        shipped_classifier(tmp_path, "b")
    with pytest.raises(ValueError, match="dict of tensors"):
        pretrained.save_bundle(models, tmp_path, "x", {"run": "test"}, extras={"c": {"a": 1}})
    assert not (tmp_path / "x.pt").exists()
