"""The settings of one conditional flow matching run (:func:`kacnb.cfm.train.train`).

:class:`TrainConfig` lives below both the trainer and :mod:`kacnb.cfm.ensemble` (whose
members each carry one), so that neither imports the other's module for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["DEADLINE_ENV", "COMPILE_MODES", "TrainConfig"]

#: Environment variable holding the training deadline (absolute UNIX time, seconds).
DEADLINE_ENV = "KACNB_DEADLINE"

#: ``torch.compile`` modes accepted by ``TrainConfig.compile`` ("reduce-overhead" records
#: CUDA graphs of the compiled network).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class TrainConfig:
    """Optimisation settings. ``steps`` counts optimiser steps; ``lr`` is Adam's step size.

    ``deadline``: absolute UNIX time (``time.time()``, seconds) at which training stops with
    :class:`~kacnb.cfm.train.TimeLimitReached`; ``None`` reads :data:`DEADLINE_ENV` (no limit when
    unset).

    Speed settings (same mathematics, see the module docstring): ``amp_dtype`` (autocast
    dtype of the forward pass and loss, e.g. ``torch.bfloat16``; ``None``: the weights'
    dtype), ``channels_last`` (NHWC convolution weights), ``compile`` (``False``, ``True``
    for ``torch.compile``'s default mode, or one of :data:`COMPILE_MODES`).
    """

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
    compile: bool | str = False  # True, or a torch.compile mode such as "reduce-overhead"
    channels_last: bool = False
    progress: bool = True
    desc: str = "train"
    deadline: float | None = None

    def __post_init__(self):
        for name in ("steps", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.lr, bool) or not (
            isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0
        ):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if self.grad_clip is not None and (
            isinstance(self.grad_clip, bool)
            or not isinstance(self.grad_clip, (int, float))
            or not self.grad_clip > 0  # NaN fails this too
        ):
            raise ValueError(f"grad_clip must be > 0 or None, got {self.grad_clip!r}")
        for name in ("eval_every", "checkpoint_every"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {self.ema_decay!r}")
        if self.checkpoint_every and self.checkpoint_path is None:
            raise ValueError("checkpoint_every needs checkpoint_path")
        if self.deadline is not None and not math.isfinite(float(self.deadline)):
            raise ValueError(f"deadline must be a finite UNIX time, got {self.deadline!r}")
        if not isinstance(self.compile, bool) and self.compile not in COMPILE_MODES:
            raise ValueError(
                f"compile must be True, False or one of {', '.join(COMPILE_MODES)}, "
                f"got {self.compile!r}"
            )
        if self.amp_dtype is not None and self.amp_dtype not in (torch.bfloat16, torch.float16):
            raise ValueError(
                f"amp_dtype must be torch.bfloat16, torch.float16 or None, got {self.amp_dtype!r}"
            )
