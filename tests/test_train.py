"""The flow-matching training loop: it learns, and resuming is exact."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
import torch

import kacnb.cfm.train as train_module
from kacnb.cfm.config import DEADLINE_ENV, TrainConfig
from kacnb.cfm.models import MLP
from kacnb.cfm.paths import DiffusionPath, KacPath
from kacnb.cfm.train import TimeLimitReached, checkpoint_dir, checkpoint_file, train
from kacnb.theory.kac import Kac


def one_mode(n, gen):
    """A one-mode target: every start at (0.5, -0.5)."""
    return torch.tensor([0.5, -0.5]).expand(n, 2).clone()


def fresh_model(seed=0):
    torch.manual_seed(seed)
    return MLP(dim=2, width=32, depth=2)


@pytest.mark.parametrize("path", [KacPath(Kac(4.0, 2.0)), DiffusionPath(eps=0.05)], ids=repr)
def test_training_lowers_the_loss(path):
    cfg = TrainConfig(steps=300, batch_size=128, lr=3e-3, progress=False)
    res = train(fresh_model(), path, one_mode, cfg)
    first, last = res.losses[:30].mean(), res.losses[-30:].mean()
    assert float(last) < 0.7 * float(first)


class Interrupt(Exception):
    pass


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path):
    path = KacPath(Kac(25.0, 5.0))
    common = dict(steps=40, batch_size=64, lr=1e-3, ema_decay=0.9, eval_every=10, progress=False)

    def validate(model, gen):
        x = torch.randn(32, 2, generator=gen)
        return float(model(torch.full((32,), 0.5), x).pow(2).mean())

    ref = train(fresh_model(), path, one_mode, TrainConfig(**common), validate=validate)

    calls = {"n": 0}

    def dying_data(n, gen):
        calls["n"] += 1
        if calls["n"] == 26:  # killed after the step-20 checkpoint
            raise Interrupt
        return one_mode(n, gen)

    ckpt = tmp_path / "run.pt"
    cfg = TrainConfig(**common, checkpoint_every=10, checkpoint_path=ckpt)
    with pytest.raises(Interrupt):
        train(fresh_model(), path, dying_data, cfg, validate=validate)
    assert torch.load(ckpt, weights_only=False)["step"] == 20
    resumed = train(fresh_model(seed=123), path, one_mode, cfg, validate=validate)

    for a, b in zip(
        ref.model.state_dict().values(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    for a, b in zip(ref.ema.state_dict().values(), resumed.ema.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(ref.losses, resumed.losses)
    assert ref.validation == resumed.validation
    assert ref.best_step == resumed.best_step


def test_best_weights_are_kept():
    values = iter([3.0, 1.0, 2.0])
    cfg = TrainConfig(steps=30, batch_size=16, eval_every=10, progress=False)
    res = train(
        fresh_model(), KacPath(Kac(1.0, 1.0)), one_mode, cfg, validate=lambda m, g: next(values)
    )
    assert res.best_step == 20 and res.best_value == 1.0
    assert [v for _, v in res.validation] == [3.0, 1.0, 2.0]


def test_bad_config():
    with pytest.raises(ValueError, match="^steps "):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="^ema_decay "):
        TrainConfig(steps=1, ema_decay=1.5)
    with pytest.raises(ValueError, match="checkpoint_path"):
        TrainConfig(steps=1, checkpoint_every=5)


def test_explicit_dtype_trains_in_float64():
    def data64(n, gen):
        return one_mode(n, gen).double()

    cfg = TrainConfig(steps=5, batch_size=8, progress=False)
    res = train(
        fresh_model(), KacPath(Kac(1.0, 1.0)), data64, cfg, dtype=torch.float64, device="cpu"
    )
    assert all(p.dtype == torch.float64 for p in res.model.parameters())
    assert torch.isfinite(res.losses).all()


def test_checkpoint_file_depends_on_the_settings_only(tmp_path):
    a = checkpoint_file(tmp_path, "kac_25_5", {"steps": 10, "lr": 5e-4})
    b = checkpoint_file(tmp_path, "kac_25_5", {"lr": 5e-4, "steps": 10})  # order irrelevant
    c = checkpoint_file(tmp_path, "kac_25_5", {"steps": 11, "lr": 5e-4})
    assert a == b != c
    assert a.parent == tmp_path and a.name.startswith("kac_25_5-") and a.suffix == ".pt"
    assert checkpoint_dir("04_x", "quick").parts[-3:] == ("checkpoints", "04_x", "quick")


class Clock:
    """``time.time`` advancing by one second per call: the training loop asks once a step."""

    def __init__(self):
        self.now = 0.0

    def time(self):
        self.now += 1.0
        return self.now


def test_deadline_stops_with_a_checkpoint_and_the_rerun_equals_the_uninterrupted_run(
    tmp_path, monkeypatch
):
    monkeypatch.delenv(DEADLINE_ENV, raising=False)
    path = KacPath(Kac(25.0, 5.0))
    common = dict(steps=40, batch_size=64, lr=1e-3, ema_decay=0.9, eval_every=10, progress=False)

    def validate(model, gen):
        x = torch.randn(32, 2, generator=gen)
        return float(model(torch.full((32,), 0.5), x).pow(2).mean())

    ref = train(fresh_model(), path, one_mode, TrainConfig(**common), validate=validate)
    ckpt = tmp_path / "run.pt"
    cfg = TrainConfig(**common, checkpoint_every=10, checkpoint_path=ckpt)
    with monkeypatch.context() as m:
        m.setattr(train_module, "time", Clock())  # the deadline passes during step 17
        with pytest.raises(TimeLimitReached, match="at step 17 of 40; checkpoints written"):
            train(fresh_model(), path, one_mode, replace(cfg, deadline=17.0), validate=validate)
    assert torch.load(ckpt, weights_only=False)["step"] == 17
    resumed = train(fresh_model(seed=123), path, one_mode, cfg, validate=validate)
    for a, b in [(ref.model, resumed.model), (ref.ema, resumed.ema)]:
        assert all(
            torch.equal(u, v)
            for u, v in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
        )
    assert torch.equal(ref.losses, resumed.losses)
    assert ref.validation == resumed.validation and ref.best_step == resumed.best_step


def test_deadline_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(DEADLINE_ENV, repr(time.time() - 1.0))  # already past
    cfg = TrainConfig(steps=50, batch_size=8, progress=False, desc="tiny")
    with pytest.raises(TimeLimitReached, match="tiny at step 1 of 50; no checkpoint_path"):
        train(fresh_model(), KacPath(Kac(1.0, 1.0)), one_mode, cfg)
    ckpt = tmp_path / "run.pt"
    with pytest.raises(TimeLimitReached, match="checkpoints written"):
        train(fresh_model(), KacPath(Kac(1.0, 1.0)), one_mode, replace(cfg, checkpoint_path=ckpt))
    assert torch.load(ckpt, weights_only=False)["step"] == 1
    # an explicit deadline wins over the environment; a finished run never stops
    res = train(
        fresh_model(), KacPath(Kac(1.0, 1.0)), one_mode, replace(cfg, steps=3, deadline=1e12)
    )
    assert len(res.losses) == 3
    monkeypatch.setenv(DEADLINE_ENV, "soon")
    with pytest.raises(ValueError, match=f"{DEADLINE_ENV} must be a UNIX time"):
        train(fresh_model(), KacPath(Kac(1.0, 1.0)), one_mode, cfg)
    with pytest.raises(ValueError, match="deadline must be a finite"):
        TrainConfig(steps=1, deadline=float("nan"))


# --------------------------------------------------------------------------------------------
# bad checkpoints, resuming the generator, settings and non-finite losses


def _write_checkpoint(tmp_path, steps=5):
    ckpt = tmp_path / "run.pt"
    cfg = TrainConfig(steps=steps, batch_size=8, checkpoint_path=ckpt, progress=False)
    train(fresh_model(), KacPath(Kac(4.0, 2.0)), one_mode, cfg)
    return ckpt, cfg


class _RunsCode:
    """An object whose unpickling calls a function (here: a harmless marker)."""

    def __reduce__(self):
        return (print, ("the checkpoint ran code",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, capsys):
    import pickle

    from kacnb.cfm.train import CheckpointError

    ckpt = tmp_path / "run.pt"
    torch.save({"model": _RunsCode(), "step": 1}, ckpt)
    cfg = TrainConfig(steps=5, batch_size=8, checkpoint_path=ckpt, progress=False)
    with pytest.raises(CheckpointError, match="could run code") as info:
        train(fresh_model(), KacPath(Kac(4.0, 2.0)), one_mode, cfg)
    assert str(ckpt) in str(info.value) and "delete it" in str(info.value)
    assert isinstance(info.value, ValueError)
    ckpt.write_bytes(pickle.dumps({"model": _RunsCode()}))  # a plain pickle, not torch's zip
    with pytest.raises(CheckpointError, match="could run code"):
        train(fresh_model(), KacPath(Kac(4.0, 2.0)), one_mode, cfg)
    assert "the checkpoint ran code" not in capsys.readouterr().out


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "not_a_checkpoint"])
def test_a_corrupt_checkpoint_is_named_in_the_error(tmp_path, damage):
    from kacnb.cfm.train import CheckpointError

    ckpt, cfg = _write_checkpoint(tmp_path)
    data = ckpt.read_bytes()
    if damage == "truncated":
        ckpt.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        ckpt.write_bytes(b"\x00not a checkpoint" * 10)
    elif damage == "empty":
        ckpt.write_bytes(b"")
    else:
        torch.save({"weights": torch.zeros(2)}, ckpt)
    with pytest.raises(CheckpointError, match="delete it to train from the start") as info:
        train(fresh_model(), KacPath(Kac(4.0, 2.0)), one_mode, replace(cfg, steps=10))
    assert str(ckpt) in str(info.value)


@pytest.mark.filterwarnings("ignore:for net:UserWarning")
def test_resumed_generator_state_is_a_cpu_byte_tensor_whatever_the_device(tmp_path, monkeypatch):
    from kacnb.cfm.train import _generator, _new_run

    ckpt, cfg = _write_checkpoint(tmp_path)
    real_load = torch.load
    saved = real_load(ckpt, map_location="cpu", weights_only=True)["generator"]

    class OnDevice:
        """What map_location=<accelerator> makes of the saved generator state."""

        device = torch.device("cuda")

        def __init__(self, t):
            self.t = t

        def to(self, *args, **kwargs):
            return self.t.to(*args, **kwargs)

        def cpu(self):
            return self.t.cpu()

    def load_to_device(path, map_location=None, weights_only=None):
        state = real_load(path, map_location="cpu", weights_only=weights_only)
        state["generator"] = OnDevice(state["generator"])
        return state

    monkeypatch.setattr(torch, "load", load_to_device)
    # "meta" stands for a device other than the CPU (no CUDA here)
    for device in (torch.device("meta"), torch.device("cpu")):
        model = fresh_model()
        run = _new_run(model, None, one_mode, replace(cfg, steps=10), None, device, None, True)
        assert run.step == 5
        assert isinstance(run.gen_state, torch.Tensor)
        assert run.gen_state.device.type == "cpu" and run.gen_state.dtype == torch.uint8
        assert torch.equal(run.gen_state, saved)
    gen = _generator(run, torch.device("cpu"))
    assert torch.equal(gen.get_state(), saved)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("lr", float("nan"), "lr must be a finite number > 0"),
        ("lr", float("inf"), "lr must be a finite number > 0"),
        ("lr", 0.0, "lr must be a finite number > 0"),
        ("lr", "1e-3", "lr must be a finite number > 0"),
        ("grad_clip", 0.0, "grad_clip must be > 0 or None"),
        ("grad_clip", -1.0, "grad_clip must be > 0 or None"),
        ("grad_clip", float("nan"), "grad_clip must be > 0 or None"),
        ("eval_every", 0, "eval_every must be a positive integer or None"),
        ("eval_every", 2.5, "eval_every must be a positive integer or None"),
        ("checkpoint_every", 0, "checkpoint_every must be a positive integer or None"),
        ("checkpoint_every", -3, "checkpoint_every must be a positive integer or None"),
        ("checkpoint_every", True, "checkpoint_every must be a positive integer or None"),
    ],
)
def test_bad_training_settings(tmp_path, field, value, message):
    kwargs = {"checkpoint_path": tmp_path / "c.pt"} if field == "checkpoint_every" else {}
    with pytest.raises(ValueError, match=message):
        TrainConfig(steps=10, **kwargs, **{field: value})
    TrainConfig(steps=10, grad_clip=None, eval_every=None, checkpoint_every=None, lr=1)


def test_a_non_finite_loss_stops_training_naming_the_step(tmp_path):
    from kacnb.cfm.train import NonFiniteLoss

    def nan_after_7(n, gen, calls={"n": 0}):  # noqa: B006 - a call counter
        calls["n"] += 1
        x = one_mode(n, gen)
        return x * float("nan") if calls["n"] >= 7 else x

    values = []

    def validate(model, gen):
        values.append(1.0)
        return 1.0

    ckpt = tmp_path / "run.pt"
    cfg = TrainConfig(
        steps=50,
        batch_size=8,
        eval_every=5,
        checkpoint_every=5,
        checkpoint_path=ckpt,
        progress=False,
    )
    with pytest.raises(NonFiniteLoss, match=r"the loss is nan at step 7 of 50"):
        train(fresh_model(), KacPath(Kac(4.0, 2.0)), nan_after_7, cfg, validate=validate)
    assert values == [1.0]  # validated at step 5 only, never on the diverged weights
    state = torch.load(ckpt, weights_only=True)
    assert state["step"] == 5 and torch.isfinite(state["losses"]).all()


def test_a_nan_validation_value_never_becomes_the_best():
    vals = iter([float("nan"), 2.0, float("nan"), 1.0])

    def validate(model, gen):
        return next(vals)

    cfg = TrainConfig(steps=20, batch_size=8, eval_every=5, progress=False)
    res = train(fresh_model(), KacPath(Kac(4.0, 2.0)), one_mode, cfg, validate=validate)
    assert (res.best_step, res.best_value) == (20, 1.0)
    assert len(res.validation) == 4
