"""Conditional flow matching training (CFM loss [97], PAPER.md section 4).

``train`` minimises ``E || v_theta(t, x_t) - v_t(x_t | x0) ||^2`` over draws from any
probability path of :mod:`kacnb.paths` (it never branches on the model). It uses Adam with
gradient-norm clipping, an optional exponential moving average (EMA) of the weights, a
periodic validation callback that keeps the best weights, checkpoints every N steps and
resumes from them. All randomness comes from one ``torch.Generator`` on the training
device whose state is checkpointed, so a run killed and resumed ends with the same weights
as an uninterrupted run. Per-step losses stay on the device (no host sync in the loop)
until a validation or the end.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm  # text bars: tqdm.auto warns without ipywidgets

__all__ = [
    "TrainConfig",
    "TrainResult",
    "train",
    "cfm_loss",
    "make_train_step",
    "checkpoint_dir",
    "checkpoint_file",
]


@dataclass
class TrainConfig:
    """Optimisation settings. ``steps`` counts optimiser steps; ``lr`` is Adam's step size."""

    steps: int
    batch_size: int = 256
    lr: float = 5e-4
    grad_clip: float | None = 1.0
    ema_decay: float | None = None
    eval_every: int | None = None
    checkpoint_every: int | None = None
    checkpoint_path: str | Path | None = None
    seed: int = 0
    amp_dtype: torch.dtype | None = None  # e.g. torch.bfloat16 for autocast on CUDA
    compile: bool = False
    progress: bool = True
    desc: str = "train"

    def __post_init__(self):
        for name in ("steps", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {self.ema_decay!r}")
        if self.checkpoint_every and self.checkpoint_path is None:
            raise ValueError("checkpoint_every needs checkpoint_path")


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
    return Path(__file__).resolve().parent.parent / "checkpoints" / stem / profile


def checkpoint_file(directory: str | Path, key: str, settings: dict) -> Path:
    """Checkpoint path ``<directory>/<key>-<hash>.pt``; the hash covers the run ``settings``.

    A run with other settings (network, steps, learning rate, EMA, seed, ...) therefore never
    resumes from a stale checkpoint of a different run; the order of ``settings`` is irrelevant.
    """
    text = repr(sorted((str(k), repr(v)) for k, v in settings.items()))
    return Path(directory) / f"{key}-{hashlib.sha1(text.encode()).hexdigest()[:10]}.pt"


def cfm_loss(model: torch.nn.Module, sample) -> torch.Tensor:
    """Mean over the batch of the squared error summed over coordinates [97]."""
    pred = model(sample.t, sample.xt)
    return (pred - sample.target).pow(2).flatten(1).sum(1).mean()


def _state(model, ema, opt, gen, step, losses, validation, best):
    return {
        "model": model.state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
        "optimizer": opt.state_dict(),
        "generator": gen.get_state(),
        "step": step,
        "losses": losses[:step].cpu(),
        "validation": list(validation),
        "best": best,
    }


def train(
    model: torch.nn.Module,
    path,
    data: Callable[[int, torch.Generator], torch.Tensor],
    config: TrainConfig,
    validate: Callable[[torch.nn.Module, torch.Generator], float] | None = None,
    device: torch.device | str | None = None,
    resume: bool = True,
    dtype: torch.dtype | None = None,
) -> TrainResult:
    """Train ``model(t, x)`` on ``path`` with starts ``x0 = data(batch_size, generator)``.

    ``validate(model, generator)`` returns a number, lower is better (the 2D experiment uses
    the NLL of generated samples); it runs every ``eval_every`` steps on the EMA weights when
    there are any, and the best weights are kept. ``device`` and ``dtype`` default to the
    model's. With ``checkpoint_path`` set and
    ``resume`` true, an existing checkpoint there is loaded and training continues from it.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    # dtype (default: the model's) applies to the weights; ``data`` must draw in the same dtype.
    model.to(device=device, dtype=dtype)
    gen = torch.Generator(device=device).manual_seed(config.seed)
    val_gen = torch.Generator(device=device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    ema = copy.deepcopy(model).requires_grad_(False) if config.ema_decay else None
    losses = torch.zeros(config.steps, device=device)
    validation: list[tuple[int, float]] = []
    best = {"step": None, "value": None, "state": None}
    start = 0

    ckpt = Path(config.checkpoint_path) if config.checkpoint_path else None
    if ckpt is not None and resume and ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        if ema is not None and state["ema"] is not None:
            ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"].cpu() if device.type == "cpu" else state["generator"])
        start = int(state["step"])
        losses[:start] = state["losses"].to(device)
        validation = list(state["validation"])
        best = state["best"]

    step_fn = make_train_step(model, path, data, opt, config, gen)
    bar = tqdm(total=config.steps, initial=start, desc=config.desc, disable=not config.progress)
    for step in range(start, config.steps):
        losses[step] = step_fn()
        if ema is not None:
            with torch.no_grad():
                torch._foreach_lerp_(
                    list(ema.parameters()), list(model.parameters()), 1.0 - config.ema_decay
                )
        done = step + 1
        bar.update(1)
        if validate is not None and config.eval_every and done % config.eval_every == 0:
            target = ema if ema is not None else model
            val_gen.manual_seed(config.seed + 1)  # the same validation draw every time
            target.eval()
            value = float(validate(target, val_gen))
            target.train()
            validation.append((done, value))
            if best["value"] is None or value < best["value"]:
                best = {
                    "step": done,
                    "value": value,
                    "state": {k: v.detach().clone() for k, v in target.state_dict().items()},
                }
            bar.set_postfix(loss=f"{float(losses[step]):.4g}", val=f"{value:.4g}")
        if ckpt is not None and config.checkpoint_every and done % config.checkpoint_every == 0:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            tmp = ckpt.with_suffix(ckpt.suffix + ".tmp")
            torch.save(_state(model, ema, opt, gen, done, losses, validation, best), tmp)
            tmp.replace(ckpt)  # atomic: an interruption never leaves a half-written file
    bar.close()
    return TrainResult(
        model=model,
        ema=ema,
        losses=losses.cpu(),
        validation=validation,
        best_step=best["step"],
        best_value=best["value"],
        best_state=best["state"],
    )


def make_train_step(model, path, data, opt, config: TrainConfig, gen, params=None):
    """One optimiser step as a closure returning the loss as a device tensor (no sync).

    ``model`` may already be compiled; ``params`` (default: the model's) are clipped.
    """
    forward = torch.compile(model) if config.compile else model
    params = [p for p in (params if params is not None else model.parameters()) if p.requires_grad]

    def step() -> torch.Tensor:
        x0 = data(config.batch_size, gen)
        sample = path.sample(x0, generator=gen)
        with torch.autocast(
            device_type=x0.device.type, dtype=config.amp_dtype, enabled=config.amp_dtype is not None
        ):
            loss = cfm_loss(forward, sample)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        opt.step()
        return loss.detach()

    return step
