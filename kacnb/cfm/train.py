"""Conditional flow matching training (CFM loss [97], paper Sections 6-7, arXiv:2506.20641v1).

``train`` minimises ``E || v_theta(t, x_t) - v_t(x_t | x0) ||^2`` over draws from any
probability path of :mod:`kacnb.cfm.paths` (it never branches on the model). It uses Adam with
gradient-norm clipping, an optional exponential moving average (EMA) of the weights, a
periodic validation callback that keeps the best weights, checkpoints every N steps and
resumes from them. All randomness comes from one ``torch.Generator`` on the training
device whose state is checkpointed, so a run killed and resumed ends with the same weights
as an uninterrupted run. Per-step losses stay on the device; they are checked for NaN or
infinite values every :data:`LOSS_CHECK_EVERY` steps, before each validation and checkpoint
and at the end (one host sync each), and such a loss stops training with
:class:`NonFiniteLoss` naming its step.  A checkpoint is loaded with ``weights_only=True``:
one that holds more than tensors and plain data, or is truncated or corrupt, raises
:class:`CheckpointError` naming the file.

``train`` also takes an :class:`~kacnb.cfm.ensemble.Ensemble`: ``K`` such runs of one MLP
architecture advanced by one stacked step (:class:`~kacnb.cfm.models.StackedMLP`), each with
its own path, generator, clipping, EMA, validation and checkpoint file, as if trained alone.

Runs with a ``checkpoint_path`` are saved every ``checkpoint_every`` steps, when they finish
and at the deadline.

**Fast step on a GPU.** ``TrainConfig.amp_dtype`` (e.g. ``torch.bfloat16``) runs the forward
pass and the loss under ``torch.autocast``; ``channels_last`` stores the 4D (convolution)
weights, and so the image activations, in NHWC order; ``compile`` wraps the network in
``torch.compile`` (``"reduce-overhead"`` adds CUDA graphs). None of them is meant to change
the mathematics: ``tests/test_train_optimised.py`` checks the loss and the gradients of
bf16 autocast with channels_last and of the compiled step against the fp32 eager step (to
bf16 or float32 accuracy); inductor's CPU backend (torch 2.13) gets the three combined
wrong, so ``benchmarks/bench_train_mnist.py`` checks the optimised step on the GPU that runs
it. The step
draws its data and path noise on the device and returns the loss as a device tensor, so the
loop has no host synchronisation between the loss checks.

**Time limit.** With a deadline (``TrainConfig.deadline``, else the environment variable
``KACNB_DEADLINE``; an absolute UNIX time in seconds, which ``kacnb run --time-limit`` sets
for the notebook kernel), training stops at the first step past it, writes the checkpoints
of the runs that have a ``checkpoint_path`` and raises :class:`TimeLimitReached`; the same
call again resumes there.

**One run per checkpoint folder.** Training into checkpoint files holds an advisory lock on
their folder (:func:`checkpoint_lock`, the file ``.lock`` there naming the PID); a second
process training into the same folder, e.g. a second ``kacnb run 04`` with other output
folders, stops at once with :class:`CheckpointLocked`.  The operating system releases the
lock when the process ends, however it ends.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm  # text bars: tqdm.auto warns without ipywidgets

from .._root import PROJECT_ROOT
from .config import DEADLINE_ENV, TrainConfig
from .ensemble import (
    Ensemble,
    clip_grad_norm_per_model,
    member_optimizer_state,
    stack_optimizer_states,
)
from .models import StackedMLP

__all__ = [
    "TimeLimitReached",
    "NonFiniteLoss",
    "CheckpointError",
    "CheckpointLocked",
    "checkpoint_lock",
    "TrainResult",
    "train",
    "cfm_loss",
    "stacked_cfm_loss",
    "make_train_step",
    "checkpoint_dir",
    "checkpoint_file",
    "deadline_from_env",
]

#: Steps between the checks for a NaN or infinite loss (also checked before each validation
#: and checkpoint and at the end).
LOSS_CHECK_EVERY = 100


class TimeLimitReached(Exception):
    """Training stopped at its deadline after writing its checkpoints; run again to resume."""


class NonFiniteLoss(FloatingPointError):
    """The training loss became NaN or infinite; the message names the first such step."""


class CheckpointError(ValueError):
    """A checkpoint file cannot be loaded (corrupt, truncated, or holding more than data)."""


class CheckpointLocked(RuntimeError):
    """Another process is training into the same checkpoint folder."""


#: Checkpoint folders this process holds the lock of, with how many holders each.
_LOCKS_HELD: dict[Path, list] = {}


def _lock_holder(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip() or "unknown"
    except OSError:
        return "unknown"


@contextlib.contextmanager
def checkpoint_lock(directory: str | Path) -> Iterator[Path]:
    """Hold the lock of the checkpoint folder ``directory`` (``<directory>/.lock``, an
    advisory ``flock`` naming this PID) for the block; raise :class:`CheckpointLocked` at once
    when another process holds it.  Re-entrant within a process; no lock where the system has
    no ``fcntl`` (Windows)."""
    directory = Path(directory).resolve()
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield directory / ".lock"
        return
    held = _LOCKS_HELD.get(directory)
    if held is not None:
        held[1] += 1
        try:
            yield directory / ".lock"
        finally:
            held[1] -= 1
        return
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise CheckpointLocked(
                f"the checkpoint folder {directory} is in use by another training run "
                f"(PID {_lock_holder(path)}); wait for it to finish, or run with other "
                f"checkpoints"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _LOCKS_HELD[directory] = [fd, 1]
        try:
            yield path
        finally:
            del _LOCKS_HELD[directory]
    finally:
        os.close(fd)  # releases the lock


@dataclass
class TrainResult:
    """``losses`` (steps,) per-step CFM loss; ``validation`` [(step, value)]; ``best_*``."""

    model: torch.nn.Module
    ema: torch.nn.Module | None
    losses: torch.Tensor
    validation: list[tuple[int, float]] = field(default_factory=list)
    best_step: int | None = None
    best_value: float | None = None
    best_state: dict | None = None

    def eval_model(self) -> torch.nn.Module:
        """The weights to sample with: the EMA when there is one, else the trained model."""
        return self.ema if self.ema is not None else self.model


def checkpoint_dir(stem: str, profile: str) -> Path:
    """``<repository root>/checkpoints/<stem>/<profile>`` (git-ignored), whatever the cwd."""
    return PROJECT_ROOT / "checkpoints" / stem / profile


def checkpoint_file(directory: str | Path, key: str, settings: dict) -> Path:
    """Checkpoint path ``<directory>/<key>-<hash>.pt``; the hash covers the run ``settings``.

    A run with other settings (network, steps, learning rate, EMA, seed, ...) therefore never
    resumes from a stale checkpoint of a different run; the order of ``settings`` is irrelevant.
    """
    text = repr(sorted((str(k), repr(v)) for k, v in settings.items()))
    return Path(directory) / f"{key}-{hashlib.sha1(text.encode()).hexdigest()[:10]}.pt"


def deadline_from_env() -> float | None:
    """The deadline in :data:`DEADLINE_ENV` (absolute UNIX time, s), or ``None`` if unset."""
    text = os.environ.get(DEADLINE_ENV, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{DEADLINE_ENV} must be a UNIX time in seconds, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{DEADLINE_ENV} must be a finite UNIX time, got {text!r}")
    return value


def cfm_loss(model: torch.nn.Module, sample) -> torch.Tensor:
    """Mean over the batch of the squared error summed over coordinates [97]."""
    pred = model(sample.t, sample.xt)
    return (pred - sample.target).pow(2).flatten(1).sum(1).mean()


def stacked_cfm_loss(
    model: torch.nn.Module, t: torch.Tensor, xt: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """The CFM loss [97] of each of ``K`` stacked models: (K,).

    ``t`` (K, B), ``xt`` and ``target`` (K, B, *event); ``model(t, xt)`` returns (K, B, *event).
    Entry ``k`` is :func:`cfm_loss` of model ``k`` on its batch; the sum over ``k`` has model
    ``k``'s loss gradient as its gradient with respect to model ``k``'s weights.
    """
    pred = model(t, xt)
    return (pred - target).pow(2).flatten(2).sum(2).mean(1)


# ---------------------------------------------------------------------------------------------
# the training loop


@dataclass
class _Run:
    """Book-keeping of one model's run between and during the steps.

    ``model``/``ema`` hold the current weights whenever no stacked step holds them;
    ``opt_state``/``gen_state`` the Adam and generator states (``None``: fresh).
    """

    model: torch.nn.Module
    path: object
    data: Callable
    config: TrainConfig
    validate: Callable | None
    ema: torch.nn.Module | None
    losses: torch.Tensor
    ckpt: Path | None
    step: int = 0
    saved: int = 0
    checked: int = 0
    opt_state: dict | None = None
    gen_state: torch.Tensor | None = None
    validation: list = field(default_factory=list)
    best: dict = field(default_factory=lambda: {"step": None, "value": None, "state": None})

    def result(self) -> TrainResult:
        return TrainResult(
            model=self.model,
            ema=self.ema,
            losses=self.losses.cpu(),
            validation=self.validation,
            best_step=self.best["step"],
            best_value=self.best["value"],
            best_state=self.best["state"],
        )


def _new_run(model, path, data, config, validate, device, dtype, resume) -> _Run:
    # dtype (default: the model's) applies to the weights; ``data`` must draw in the same dtype.
    model.to(device=device, dtype=dtype)
    if config.channels_last:  # before the EMA copy, so that both share one layout
        model.to(memory_format=torch.channels_last)
    ema = copy.deepcopy(model).requires_grad_(False) if config.ema_decay else None
    ckpt = Path(config.checkpoint_path) if config.checkpoint_path else None
    run = _Run(
        model=model,
        path=path,
        data=data,
        config=config,
        validate=validate,
        ema=ema,
        losses=torch.zeros(config.steps, device=device),
        ckpt=ckpt,
    )
    if ckpt is not None and resume and ckpt.exists():
        state = _load_checkpoint(ckpt, device)
        model.load_state_dict(state["model"])
        if ema is not None and state["ema"] is not None:
            ema.load_state_dict(state["ema"])
        run.opt_state = state["optimizer"]
        # Generator.set_state takes a CPU byte tensor for CPU and CUDA generators alike, and
        # map_location put it on ``device``.
        run.gen_state = state["generator"].to("cpu", torch.uint8)
        run.step = run.saved = run.checked = int(state["step"])
        run.losses[: run.step] = state["losses"].to(device)
        run.validation = list(state["validation"])
        run.best = state["best"]
    return run


def _load_checkpoint(path: Path, device: torch.device) -> dict:
    """``torch.load`` of a checkpoint with ``weights_only=True``; :class:`CheckpointError`
    naming the file when it holds anything but tensors and plain data (loading it could run
    code) or is truncated or corrupt."""
    import pickle
    import zipfile

    advice = "delete it to train from the start"
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {path} was not loaded: it holds more than tensors and plain data, "
            f"and loading it could run code ({first}); unless you know where it comes from, "
            f"{advice}"
        ) from exc
    except (EOFError, RuntimeError, OSError, zipfile.BadZipFile, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {path} cannot be read, it is truncated or corrupt "
            f"({type(exc).__name__}: {first}); {advice}"
        ) from exc
    keys = ("model", "ema", "optimizer", "generator", "step", "losses", "validation", "best")
    missing = [k for k in keys if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(
            f"checkpoint {path} is not a training checkpoint (missing {', '.join(missing)}); "
            f"{advice}"
        )
    return state


def _generator(run: _Run, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device).manual_seed(run.config.seed)
    if run.gen_state is not None:
        gen.set_state(run.gen_state)
    return gen


class _SingleJob:
    """One model advanced by :func:`make_train_step`: the single-run training step."""

    def __init__(self, run: _Run, device: torch.device):
        self.run = run
        self.gen = _generator(run, device)
        self.opt = torch.optim.Adam(run.model.parameters(), lr=run.config.lr)
        if run.opt_state is not None:
            self.opt.load_state_dict(run.opt_state)
        self.step_fn = make_train_step(
            run.model, run.path, run.data, self.opt, run.config, self.gen
        )
        self.lerp = (
            (list(run.ema.parameters()), list(run.model.parameters()))
            if run.ema is not None
            else None
        )

    def step(self, step: int) -> None:
        self.run.losses[step] = self.step_fn()
        if self.lerp is not None:
            with torch.no_grad():
                torch._foreach_lerp_(*self.lerp, 1.0 - self.run.config.ema_decay)

    def flush(self) -> None:
        pass

    def eval_module(self, j: int) -> torch.nn.Module:
        return self.run.ema if self.run.ema is not None else self.run.model

    def member_state(self, j: int) -> dict:
        run = self.run
        return {
            "model": run.model.state_dict(),
            "ema": run.ema.state_dict() if run.ema is not None else None,
            "optimizer": self.opt.state_dict(),
            "generator": self.gen.get_state(),
        }

    def release(self) -> None:
        self.run.opt_state = self.opt.state_dict()
        self.run.gen_state = self.gen.get_state()


class _StackJob:
    """``K`` runs at the same step advanced together by one stacked step.

    Weights, EMA and Adam moments are stacked from the runs' states on entry and written
    back by :meth:`release`; losses go to a (steps, K) buffer copied out by :meth:`flush`.
    Adam and the EMA update act elementwise, so on the stacked tensors they are exactly the
    per-model updates; clipping is per model (:func:`clip_grad_norm_per_model`).
    """

    def __init__(self, runs: list[_Run], device: torch.device, start: int, stop: int):
        self.runs, self.start, self.filled = runs, start, start
        cfg = runs[0].config
        self.decay = cfg.ema_decay
        self.stack = StackedMLP.from_mlps([r.model for r in runs])
        self.ema = (
            StackedMLP.from_mlps([r.ema for r in runs]).requires_grad_(False)
            if cfg.ema_decay
            else None
        )
        self.opt = torch.optim.Adam(self.stack.parameters(), lr=cfg.lr)
        state = stack_optimizer_states([r.opt_state for r in runs], self.opt.state_dict())
        if state is not None:
            self.opt.load_state_dict(state)
        self.gens = [_generator(r, device) for r in runs]
        self.step_fn = make_train_step(
            self.stack, [r.path for r in runs], [r.data for r in runs], self.opt, cfg, self.gens
        )
        self.lerp = (
            (list(self.ema.parameters()), list(self.stack.parameters()))
            if self.ema is not None
            else None
        )
        self.buf = torch.zeros(stop - start, len(runs), device=device)

    def step(self, step: int) -> None:
        self.buf[step - self.start] = self.step_fn()
        if self.lerp is not None:
            with torch.no_grad():
                torch._foreach_lerp_(*self.lerp, 1.0 - self.decay)

    def flush(self) -> None:
        upto = self.runs[0].step
        if upto > self.filled:
            rows = self.buf[self.filled - self.start : upto - self.start]
            for j, run in enumerate(self.runs):
                run.losses[self.filled : upto] = rows[:, j]
            self.filled = upto

    def eval_module(self, j: int) -> torch.nn.Module:
        source = self.ema if self.ema is not None else self.stack
        module = copy.deepcopy(self.runs[j].model)  # no RNG draw, unlike building an MLP
        module.load_state_dict(source.member_state_dict(j))
        return module

    def member_state(self, j: int) -> dict:
        return {
            "model": self.stack.member_state_dict(j),
            "ema": self.ema.member_state_dict(j) if self.ema is not None else None,
            "optimizer": member_optimizer_state(self.opt.state_dict(), j),
            "generator": self.gens[j].get_state(),
        }

    def release(self) -> None:
        for j, run in enumerate(self.runs):
            state = self.member_state(j)
            run.model.load_state_dict(state["model"])
            if run.ema is not None:
                run.ema.load_state_dict(state["ema"])
            run.opt_state, run.gen_state = state["optimizer"], state["generator"]


def _save(run: _Run, state: dict) -> None:
    """Write ``run``'s checkpoint atomically (an interruption never leaves half a file)."""
    run.ckpt.parent.mkdir(parents=True, exist_ok=True)
    tmp = run.ckpt.with_suffix(run.ckpt.suffix + ".tmp")
    torch.save(
        {
            "model": state["model"],
            "ema": state["ema"],
            "optimizer": state["optimizer"],
            "generator": state["generator"],
            "step": run.step,
            "losses": run.losses[: run.step].cpu(),
            "validation": list(run.validation),
            "best": run.best,
        },
        tmp,
    )
    tmp.replace(run.ckpt)
    run.saved = run.step


def _check_losses(run: _Run) -> None:
    """:class:`NonFiniteLoss` naming the first step with a NaN or infinite loss."""
    if run.step <= run.checked:
        return
    bad = (~torch.isfinite(run.losses[run.checked : run.step])).nonzero()
    if bad.numel():
        i = run.checked + int(bad[0, 0])
        raise NonFiniteLoss(
            f"{run.config.desc}: the loss is {float(run.losses[i])} at step {i + 1} of "
            f"{run.config.steps}; training stopped (try a smaller lr, a grad_clip, or check "
            f"the data)"
        )
    run.checked = run.step


def _validate(job, j: int, run: _Run, val_gen: torch.Generator, bar) -> None:
    target = job.eval_module(j)
    val_gen.manual_seed(run.config.seed + 1)  # the same validation draw every time
    target.eval()
    value = float(run.validate(target, val_gen))
    target.train()
    run.validation.append((run.step, value))
    if math.isfinite(value) and (run.best["value"] is None or value < run.best["value"]):
        run.best = {
            "step": run.step,
            "value": value,
            "state": {k: v.detach().clone() for k, v in target.state_dict().items()},
        }
    job.flush()
    bar.set_postfix(  # the runner's status line shows these (kacnb.collection.liveprogress)
        model=run.config.desc,
        step=run.step,
        loss=f"{float(run.losses[run.step - 1]):.4g}",
        val=f"{value:.4g}",
    )


def _deadline(runs: Sequence[_Run]) -> float | None:
    explicit = [r.config.deadline for r in runs if r.config.deadline is not None]
    return min(explicit) if explicit else deadline_from_env()


def _stop(runs: Sequence[_Run], group: list[_Run], job) -> TimeLimitReached:
    """Checkpoint every run with unsaved progress; the exception saying what was kept."""
    job.flush()
    for run in runs:
        if run.ckpt is None or run.step <= run.saved:
            continue
        if run in group:
            state = job.member_state(group.index(run))
        else:  # released by an earlier stacked phase: its states are in the run
            state = {
                "model": run.model.state_dict(),
                "ema": run.ema.state_dict() if run.ema is not None else None,
                "optimizer": run.opt_state,
                "generator": run.gen_state,
            }
        _save(run, state)
    where = ", ".join(f"{r.config.desc} at step {r.step} of {r.config.steps}" for r in runs)
    lost = [r.config.desc for r in runs if r.ckpt is None and r.step > 0]
    tail = (
        f"no checkpoint_path for {', '.join(lost)}: a new run starts those over"
        if lost
        else "checkpoints written; the same call again resumes from them"
    )
    return TimeLimitReached(f"time limit reached: stopped training {where}; {tail}")


def _train_runs(runs: list[_Run], device: torch.device, desc: str, progress: bool) -> None:
    """Advance every run to its ``config.steps``, stacking the runs that are at one step.

    Runs at the smallest step advance together (one :class:`_StackJob`, or a
    :class:`_SingleJob` when alone) until one of them finishes or they reach the next run's
    step; then the stack is rebuilt from the remaining runs.
    """
    with contextlib.ExitStack() as stack:
        for folder in sorted({r.ckpt.parent for r in runs if r.ckpt is not None}):
            stack.enter_context(checkpoint_lock(folder))
        _train_locked(runs, device, desc, progress)


def _train_locked(runs: list[_Run], device: torch.device, desc: str, progress: bool) -> None:
    """:func:`_train_runs` with the checkpoint folders locked."""
    deadline = _deadline(runs)
    val_gen = torch.Generator(device=device)
    bar = tqdm(
        total=sum(r.config.steps for r in runs),
        initial=sum(min(r.step, r.config.steps) for r in runs),
        desc=desc,
        disable=not progress,
    )
    while True:
        pending = [r for r in runs if r.step < r.config.steps]
        if not pending:
            break
        start = min(r.step for r in pending)
        group = [r for r in pending if r.step == start]
        stop = min([r.config.steps for r in group] + [r.step for r in pending if r.step > start])
        if len(group) == 1:
            job = _SingleJob(group[0], device)
        else:
            job = _StackJob(group, device, start, stop)
        for step in range(start, stop):
            job.step(step)
            done = step + 1
            bar.update(len(group))
            for run in group:
                run.step = done
            if done % LOSS_CHECK_EVERY == 0:
                job.flush()
                for run in group:
                    _check_losses(run)
            for j, run in enumerate(group):
                cfg = run.config
                if run.validate is not None and cfg.eval_every and done % cfg.eval_every == 0:
                    job.flush()
                    _check_losses(run)
                    _validate(job, j, run, val_gen, bar)
                if run.ckpt is not None and cfg.checkpoint_every:
                    if done % cfg.checkpoint_every == 0:
                        job.flush()
                        _check_losses(run)
                        _save(run, job.member_state(j))
            if deadline is not None and time.time() >= deadline:
                bar.close()
                raise _stop(runs, group, job)
        job.flush()
        for run in group:
            _check_losses(run)
        for j, run in enumerate(group):  # a finished run is saved whatever checkpoint_every
            if run.ckpt is not None and run.step >= run.config.steps and run.step > run.saved:
                _save(run, job.member_state(j))
        job.release()
    bar.close()


def train(
    model: torch.nn.Module | Ensemble,
    path=None,
    data: Callable[[int, torch.Generator], torch.Tensor] | None = None,
    config: TrainConfig | None = None,
    validate: Callable[[torch.nn.Module, torch.Generator], float] | None = None,
    device: torch.device | str | None = None,
    resume: bool = True,
    dtype: torch.dtype | None = None,
) -> TrainResult | list[TrainResult]:
    """Train ``model(t, x)`` on ``path`` with starts ``x0 = data(batch_size, generator)``.

    ``validate(model, generator)`` returns a number, lower is better (the 2D experiment uses
    the NLL of generated samples); it runs every ``eval_every`` steps on the EMA weights when
    there are any, and the best weights are kept. ``device`` and ``dtype`` default to the
    model's. With ``checkpoint_path`` set and
    ``resume`` true, an existing checkpoint there is loaded and training continues from it.
    Past the deadline (see the module docstring) it checkpoints and raises
    :class:`TimeLimitReached`.

    ``model`` may be an :class:`~kacnb.cfm.ensemble.Ensemble` (then ``path``, ``data``,
    ``config`` and ``validate`` come from its members and must not be given): the members
    train together with stacked weights and the result is one :class:`TrainResult` per
    member, each as the member's own ``train`` call would give (to float rounding of the
    batched matmuls), its ``model`` being the member's MLP trained in place.
    """
    if isinstance(model, Ensemble):
        if any(x is not None for x in (path, data, config, validate)):
            raise ValueError(
                "an Ensemble carries its members' paths, data, configs and validators; "
                "pass only the ensemble (and device, resume, dtype)"
            )
        members = model.members
        device = (
            torch.device(device)
            if device is not None
            else next(members[0].model.parameters()).device
        )
        runs = [
            _new_run(m.model, m.path, m.data, m.config, m.validate, device, dtype, resume)
            for m in members
        ]
        progress = any(m.config.progress for m in members)
        _train_runs(runs, device, f"{len(runs)} models", progress)
        return [r.result() for r in runs]
    if path is None or data is None or config is None:
        raise TypeError("train() of one model needs path, data and config")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    run = _new_run(model, path, data, config, validate, device, dtype, resume)
    _train_runs([run], device, config.desc, config.progress)
    return run.result()


def make_train_step(model, path, data, opt, config: TrainConfig, gen, params=None):
    """One optimiser step as a closure returning the loss as a device tensor (no sync).

    ``model`` may already be compiled; ``params`` (default: the model's) are clipped.
    ``config.channels_last`` converts ``model``'s 4D weights in place (the optimiser keeps
    its parameter objects); ``config.compile`` compiles it, ``config.amp_dtype`` autocasts
    the forward pass and the loss (the data, path noise and targets stay in full precision).

    Stacked models (:class:`~kacnb.cfm.models.StackedMLP`, ``K`` models): ``path`` and ``gen``
    are sequences of ``K`` paths and generators and ``data`` one sampler or ``K``; model
    ``k`` draws its batch and path noise from ``gen[k]`` exactly as its single step would,
    the gradients are clipped per model and the closure returns the ``K`` losses (K,).
    """
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    if config.compile:
        mode = None if config.compile is True else config.compile
        forward = torch.compile(model, mode=mode)
        if any(p.is_cuda for p in model.parameters()):
            # Inductor's fused "mix-order" reductions have silently produced wrong gradients
            # for exactly this U-Net pattern (conv output + time embedding[:, :, None, None];
            # pytorch/pytorch#190796, torch 2.10) and for related ones up to 2.13 (#193061):
            # keep them off, whatever the speed cost.
            import torch._inductor.config as inductor_config

            inductor_config.triton.mix_order_reduction = False
    else:
        forward = model
    params = [p for p in (params if params is not None else model.parameters()) if p.requires_grad]
    autocast = {"dtype": config.amp_dtype, "enabled": config.amp_dtype is not None}

    if isinstance(path, (list, tuple)):
        paths, gens = list(path), list(gen)
        datas = list(data) if isinstance(data, (list, tuple)) else [data] * len(paths)
        if not len(paths) == len(gens) == len(datas):
            raise ValueError(
                f"stacked step: {len(paths)} paths, {len(datas)} samplers, {len(gens)} generators"
            )

        def stacked_step() -> torch.Tensor:
            ts, xs, targets = [], [], []
            for p, d, g in zip(paths, datas, gens, strict=True):
                sample = p.sample(d(config.batch_size, g), generator=g)
                ts.append(sample.t)
                xs.append(sample.xt)
                targets.append(sample.target)
            xt = torch.stack(xs)
            with torch.autocast(device_type=xt.device.type, **autocast):
                losses = stacked_cfm_loss(forward, torch.stack(ts), xt, torch.stack(targets))
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()
            if config.grad_clip is not None:
                clip_grad_norm_per_model(params, config.grad_clip)
            opt.step()
            return losses.detach()

        return stacked_step

    def step() -> torch.Tensor:
        x0 = data(config.batch_size, gen)
        sample = path.sample(x0, generator=gen)
        with torch.autocast(device_type=x0.device.type, **autocast):
            loss = cfm_loss(forward, sample)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        opt.step()
        return loss.detach()

    return step
