"""Ensemble training: K models in one stacked step end where their separate runs end.

Tolerance of "the same weights" between an ensemble and separate ``train`` runs: every
tensor within ``1e-5 * max(1, max|w|)`` (float32; the batched matmuls of the stack round
differently from one model's matmuls, which moves the weights by about 2e-7 relative after
a few hundred steps). A killed-and-resumed ensemble equals an uninterrupted one bitwise.
"""

from __future__ import annotations

import pytest
import torch

import kacnb.cfm.train as train_mod
from kacnb.cfm.config import DEADLINE_ENV, TrainConfig
from kacnb.cfm.ensemble import Ensemble, Member, clip_grad_norm_per_model
from kacnb.cfm.metrics import grid_mixture
from kacnb.cfm.models import MLP, StackedMLP
from kacnb.cfm.paths import KacPath
from kacnb.cfm.train import TimeLimitReached, make_train_step, train
from kacnb.experiments import gmm2d
from kacnb.theory.kac import Kac

GMM = grid_mixture(std=1e-4)
SPECS = gmm2d.paper_models()  # the four paths of notebook 04
REL = 1e-5


@pytest.fixture(autouse=True)
def _no_deadline(monkeypatch):
    monkeypatch.delenv(DEADLINE_ENV, raising=False)


def mlp(seed, width=32, depth=2):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MLP(dim=2, width=width, depth=depth)


def mixture(n, gen):
    return GMM.sample(n, generator=gen)


def validate(model, gen):
    """A deterministic number of the weights (a regression error on a fixed draw)."""
    with torch.no_grad():
        t, x = torch.rand(64, generator=gen), torch.randn(64, 2, generator=gen)
        return float((model(t, x) - x).pow(2).mean())


def assert_close_tensors(a, b, rel=REL):
    for key in a:
        scale = max(1.0, float(a[key].abs().max()))
        assert float((a[key] - b[key]).abs().max()) <= rel * scale, key


def assert_same_run(ref, got, exact):
    pairs = [(ref.model.state_dict(), got.model.state_dict())]
    if ref.ema is not None:
        pairs.append((ref.ema.state_dict(), got.ema.state_dict()))
    for a, b in pairs:
        if exact:
            assert all(torch.equal(a[k], b[k]) for k in a)
        else:
            assert_close_tensors(a, b)
    if exact:
        assert torch.equal(ref.losses, got.losses)
        assert ref.validation == got.validation
    else:
        torch.testing.assert_close(ref.losses, got.losses, rtol=REL, atol=1e-6)
        assert [s for s, _ in ref.validation] == [s for s, _ in got.validation]
        for (_, u), (_, v) in zip(ref.validation, got.validation, strict=True):
            assert v == pytest.approx(u, rel=REL)
    assert ref.best_step == got.best_step


def configs(steps, seeds, **kw):
    common = dict(batch_size=64, lr=1e-3, ema_decay=0.9, eval_every=25, progress=False)
    common.update(kw)
    return [
        TrainConfig(steps=n, seed=s, desc=f"m{k}", **common)
        for k, (n, s) in enumerate(zip(steps, seeds, strict=True))
    ]


def ensemble(cfgs, data=None):
    data = data or [mixture] * len(cfgs)
    return Ensemble(
        [Member(mlp(10 + k), SPECS[k].path, data[k], cfg, validate) for k, cfg in enumerate(cfgs)]
    )


def test_stacked_mlp_computes_each_mlp():
    models = [mlp(k, width=16, depth=3) for k in range(3)]
    stack = StackedMLP.from_mlps(models)
    # optimiser state index i refers to the same tensor: the parameter order of one MLP
    assert [p.shape[1:] for p in stack.parameters()] == [p.shape for p in models[0].parameters()]
    t, x = torch.rand(3, 5), torch.randn(3, 5, 2)
    out = stack(t, x)
    for k, m in enumerate(models):
        torch.testing.assert_close(out[k], m(t[k], x[k]), rtol=1e-6, atol=1e-6)
        assert all(torch.equal(v, stack.member_state_dict(k)[n]) for n, v in m.state_dict().items())
    back = stack.to_mlps()
    assert all(
        torch.equal(a, b)
        for m, n in zip(models, back, strict=True)
        for a, b in zip(m.parameters(), n.parameters(), strict=True)
    )
    with pytest.raises(ValueError, match="one architecture"):
        StackedMLP.from_mlps([mlp(0, width=16), mlp(1, width=8)])


def test_ensemble_ends_with_the_weights_of_separate_runs():
    """4 models (the four paths of notebook 04, own seeds; one with fewer steps, so the
    stack is rebuilt without it) against 4 separate ``train`` runs, to ``REL``."""
    steps, seeds = [300, 300, 200, 300], [0, 1, 2, 0]
    singles = [
        train(mlp(10 + k), SPECS[k].path, mixture, cfg, validate=validate)
        for k, cfg in enumerate(configs(steps, seeds))
    ]
    ens = ensemble(configs(steps, seeds))
    results = train(ens)
    assert len(results) == 4
    for member, ref, got in zip(ens.members, singles, results, strict=True):
        assert got.model is member.model  # trained in place, as by train()
        assert len(got.losses) == member.config.steps
        assert_same_run(ref, got, exact=False)
        assert got.best_state is not None and got.best_step == ref.best_step


class Interrupt(Exception):
    pass


def test_killed_and_resumed_ensemble_equals_an_uninterrupted_one(tmp_path):
    steps, seeds = [120, 200, 200], [0, 1, 2]

    def cfgs(tag):
        return [
            TrainConfig(
                steps=n,
                seed=s,
                batch_size=64,
                lr=1e-3,
                ema_decay=0.9,
                eval_every=25,
                checkpoint_every=50,
                checkpoint_path=tmp_path / tag / f"m{k}.pt",
                progress=False,
            )
            for k, (n, s) in enumerate(zip(steps, seeds, strict=True))
        ]

    ref = train(ensemble(cfgs("ref")))

    calls = {"n": 0}

    def dying(n, gen):
        calls["n"] += 1
        if calls["n"] == 171:  # member 1 killed in step 171: after the step-150 checkpoint
            raise Interrupt
        return mixture(n, gen)

    with pytest.raises(Interrupt):
        train(ensemble(cfgs("run"), data=[mixture, dying, mixture]))
    saved = [torch.load(tmp_path / "run" / f"m{k}.pt", weights_only=False) for k in range(3)]
    assert [s["step"] for s in saved] == [120, 150, 150]  # member 0 saved when it finished
    resumed = train(ensemble(cfgs("run")))  # fresh networks: everything comes from the files
    for a, b in zip(ref, resumed, strict=True):
        assert_same_run(a, b, exact=True)


class Clock:
    """``time.time`` advancing by one second per call: the training loop asks once a step."""

    def __init__(self):
        self.now = 0.0

    def time(self):
        self.now += 1.0
        return self.now


def test_ensemble_stopped_at_the_deadline_resumes_exactly(tmp_path, monkeypatch):
    def cfgs(tag, deadline=None):
        return [
            TrainConfig(
                steps=n,
                seed=k,
                batch_size=32,
                checkpoint_path=tmp_path / tag / f"m{k}.pt",
                deadline=deadline,
                progress=False,
                desc=f"m{k}",
            )
            for k, n in enumerate([60, 80])
        ]

    ref = train(ensemble(cfgs("ref")))
    with monkeypatch.context() as m:
        m.setattr(train_mod, "time", Clock())
        with pytest.raises(TimeLimitReached, match="m0 at step 37 of 60, m1 at step 37 of 80"):
            train(ensemble(cfgs("run", deadline=37.0)))
    steps = [torch.load(tmp_path / "run" / f"m{k}.pt", weights_only=False)["step"] for k in (0, 1)]
    assert steps == [37, 37]
    resumed = train(ensemble(cfgs("run")))
    for a, b in zip(ref, resumed, strict=True):
        assert_same_run(a, b, exact=True)


def _global_clip(params, max_norm):
    """The wrong clipping: one norm over the whole stack."""
    return torch.nn.utils.clip_grad_norm_(list(params), max_norm)


@pytest.mark.parametrize("clip", ["per-model", "global"])
def test_clipping_is_per_model(monkeypatch, clip):
    """Model 0 has huge gradients (starts scaled by 1e4); model 1 must step as if alone.

    Run with the wrong global-norm clipping too: the same comparison then fails, so the
    test would catch it.
    """
    if clip == "global":
        monkeypatch.setattr(train_mod, "clip_grad_norm_per_model", _global_clip)
    path = KacPath(Kac(25.0, 5.0))
    cfg = TrainConfig(steps=1, batch_size=64, lr=1e-3, grad_clip=1.0, progress=False)

    def huge(n, gen):
        return 1e4 * mixture(n, gen)

    alone = mlp(1)
    opt = torch.optim.Adam(alone.parameters(), lr=cfg.lr)
    step = make_train_step(alone, path, mixture, opt, cfg, torch.Generator().manual_seed(1))

    stack = StackedMLP.from_mlps([mlp(0), mlp(1)])
    sopt = torch.optim.Adam(stack.parameters(), lr=cfg.lr)
    gens = [torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)]
    sstep = make_train_step(stack, [path, path], [huge, mixture], sopt, cfg, gens)

    step()
    losses = sstep()
    assert losses.shape == (2,)
    norm0 = torch.sqrt(sum(p.grad[0].pow(2).sum() for p in stack.parameters()))
    grads_match = all(
        torch.allclose(p.grad, q.grad[1], rtol=1e-4, atol=1e-9)
        for p, q in zip(alone.parameters(), stack.parameters(), strict=True)
    )
    for _ in range(20):
        step()
        sstep()
    weights_match = all(
        torch.allclose(p, q[1], rtol=1e-4, atol=1e-6)
        for p, q in zip(alone.parameters(), stack.parameters(), strict=True)
    )
    if clip == "per-model":
        assert float(norm0) == pytest.approx(1.0, rel=1e-4)  # model 0 clipped to grad_clip
        assert grads_match and weights_match
    else:
        assert not grads_match and not weights_match


def test_clip_grad_norm_per_model_matches_torch_per_model():
    torch.manual_seed(0)
    params = [torch.zeros(3, 4, 5, requires_grad=True), torch.zeros(3, 4, requires_grad=True)]
    for p, s in zip(params, [1.0, 30.0], strict=True):
        p.grad = s * torch.randn(p.shape)
    singles = [[p.grad[k].clone() for p in params] for k in range(3)]
    norms = clip_grad_norm_per_model(params, 2.0)
    for k, grads in enumerate(singles):
        ps = [torch.zeros_like(g, requires_grad=True) for g in grads]
        for p, g in zip(ps, grads, strict=True):
            p.grad = g
        n = torch.nn.utils.clip_grad_norm_(ps, 2.0)
        assert float(norms[k]) == pytest.approx(float(n), rel=1e-6)
        for p, q in zip(ps, params, strict=True):
            torch.testing.assert_close(p.grad, q.grad[k], rtol=1e-6, atol=1e-7)


def test_ensemble_rejects_what_one_stacked_step_cannot_do():
    a, b = configs([10, 10], [0, 1])
    with pytest.raises(ValueError, match="config.lr"):
        Ensemble(
            [
                Member(mlp(0), SPECS[0].path, mixture, a),
                Member(
                    mlp(1), SPECS[1].path, mixture, TrainConfig(steps=10, batch_size=64, lr=3e-3)
                ),
            ]
        )
    with pytest.raises(ValueError, match="one architecture"):
        Ensemble(
            [
                Member(mlp(0), SPECS[0].path, mixture, a),
                Member(mlp(1, width=8), SPECS[1].path, mixture, b),
            ]
        )
    ens = ensemble([a, b])
    with pytest.raises(ValueError, match="pass only the ensemble"):
        train(ens, SPECS[0].path)


def test_train_models_equals_train_model_and_shares_its_checkpoints(tmp_path):
    specs = [SPECS[0], SPECS[3]]
    steps = {specs[0].key: 40, specs[1].key: 30}
    kw = dict(
        batch_size=32,
        width=16,
        depth=2,
        ema_decay=0.9,
        eval_every=10,
        n_val=32,
        progress=False,
    )
    ens = gmm2d.train_models(specs, steps, checkpoint_dir=tmp_path / "ens", **kw)
    assert list(ens) == [s.key for s in specs]
    for spec in specs:
        one = gmm2d.train_model(spec, steps[spec.key], checkpoint_dir=tmp_path / "one", **kw)
        got = ens[spec.key]
        assert got.settings == one.settings
        assert_close_tensors(one.model.state_dict(), got.model.state_dict())
        assert got.result.best_step == one.result.best_step
        assert not got.model.training and not any(p.requires_grad for p in got.model.parameters())
    names = sorted(p.name for p in (tmp_path / "ens").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "one").iterdir())
    # train_model finds the ensemble's finished run and loads it instead of training
    again = gmm2d.train_model(specs[1], steps[specs[1].key], checkpoint_dir=tmp_path / "ens", **kw)
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            again.model.state_dict().values(),
            ens[specs[1].key].model.state_dict().values(),
            strict=True,
        )
    )
