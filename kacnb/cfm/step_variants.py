"""Which variant of the U-Net training step is fastest *and* correct on the machine that runs it.

The CFM step of :func:`kacnb.cfm.train.make_train_step` can run in fp32 eager mode (the reference),
with bf16 autocast and channels_last weights, compiled by ``torch.compile``, or combinations of
these (:data:`VARIANTS`). None of them is meant to change the mathematics, but two can: bf16
keeps 8 significant bits (a step's gradient then differs from fp32 by about 1e-2 relative), and
inductor has compiled this U-Net's step into wrong gradients (torch 2.13 on the CPU: relative
error 0.36). So a variant is used only when

* its one-step gradient, from the same weights and the same draws, is within
  :data:`GRADIENT_TOLERANCE` of fp32 eager (:func:`gradient_error`), and
* it is measurably faster on this machine (:func:`images_per_second`, timed after warm-up).

:func:`choose` measures the candidates and returns a :class:`Choice`: the variant's name, the
training settings it stands for (``amp``, ``channels_last``, ``compile`` as
:func:`kacnb.experiments.mnist_exp.train_model` takes them) and every measurement, so that a run
records
which variant it trained with and why. ``benchmarks/bench_train_mnist.py`` reports the same
measurements as a table.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import torch

from ..theory.kac import Kac
from .config import TrainConfig
from .models import UNet
from .paths import MeanRevertingKacPath
from .train import make_train_step

__all__ = [
    "VARIANTS",
    "REFERENCE",
    "GRADIENT_TOLERANCE",
    "CPU_CANDIDATES",
    "Choice",
    "settings_of",
    "images_per_second",
    "gradient_error",
    "choose",
]

#: Variants: name -> (autocast dtype, channels_last, compile). The first is the reference.
VARIANTS: dict[str, tuple[torch.dtype | None, bool, bool | str]] = {
    "fp32 eager": (None, False, False),
    "bf16 + channels_last": (torch.bfloat16, True, False),
    "fp32 + compile": (None, False, True),
    "bf16 + channels_last + compile": (torch.bfloat16, True, True),
    "bf16 + channels_last + compile (CUDA graphs)": (torch.bfloat16, True, "reduce-overhead"),
}
REFERENCE = "fp32 eager"
#: Largest relative error of one step's whole gradient against fp32 eager that a variant may
#: have: bf16 rounding over a few dozen layers gives about 1e-2; a miscompiled step is far off.
GRADIENT_TOLERANCE = 5e-2
#: Candidates on a CPU when compiling is not wanted (compilation costs minutes per model and
#: inductor's CPU backend has been wrong for this network; ``choose`` checks it when asked).
CPU_CANDIDATES = ("fp32 eager", "bf16 + channels_last")


def settings_of(variant: str) -> dict:
    """The speed settings of ``variant`` as :func:`kacnb.experiments.mnist_exp.train_model` takes
    them:
    ``{"amp": "bf16" or None, "channels_last": bool, "compile": bool or mode}``."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown step variant {variant!r}; choose from {list(VARIANTS)}")
    amp, channels_last, compile_ = VARIANTS[variant]
    return {
        "amp": "bf16" if amp is torch.bfloat16 else None,
        "channels_last": channels_last,
        "compile": compile_,
    }


def _step(variant: str, unet: dict, batch: int, device: torch.device, lr: float, pool, seed=0):
    amp, channels_last, compile_ = VARIANTS[variant]
    torch.manual_seed(seed)
    model = UNet(**unet).to(device)
    opt = (
        torch.optim.SGD(model.parameters(), lr=0.0)
        if lr == 0
        else torch.optim.Adam(model.parameters(), lr=lr)
    )
    cfg = TrainConfig(
        steps=1,
        batch_size=batch,
        amp_dtype=amp,
        compile=compile_,
        channels_last=channels_last,
        grad_clip=None if lr == 0 else 1.0,
        progress=False,
    )
    n = pool.shape[0]

    def data(k: int, gen: torch.Generator) -> torch.Tensor:
        return pool[torch.randint(0, n, (k,), generator=gen, device=device)]

    # (a, c) = (1, 1): targets of size one, so the loss depends on the network's output.
    path = MeanRevertingKacPath(Kac(1.0, 1.0), T=1.0)
    gen = torch.Generator(device=device).manual_seed(seed)
    return model, make_train_step(model, path, data, opt, cfg, gen)


def _pool(n: int, device: torch.device) -> torch.Tensor:
    # Random images stand in for MNIST: speed does not depend on pixel values.
    gen = torch.Generator().manual_seed(123)
    return (torch.rand(n, 1, 28, 28, generator=gen) * 2 - 1).to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_second(
    variant: str,
    unet: dict,
    batch: int,
    device: torch.device | str = "cpu",
    steps: int = 5,
    warmup: int = 2,
) -> dict:
    """Training throughput of ``variant``: images per second over ``steps`` timed Adam steps
    (with the EMA update of the training loop) after ``warmup`` untimed ones (compilation
    happens there).

    ``unet``: :class:`~kacnb.cfm.models.UNet` keywords (``base``, ``levels``, ``blocks``); batch of
    ``batch`` images 1x28x28. Returns ``{"variant", "images_per_s", "warmup_s",
    "host_syncs_in_loop" (CUDA only, else None), "last_loss"}``. The timed loop only enqueues
    work; one synchronisation ends it. :class:`FloatingPointError` on a non-finite loss.
    """
    device = torch.device(device)
    model, train_step = _step(variant, unet, batch, device, 2e-4, _pool(4096, device))
    # the EMA update of the training loop is part of a step's cost
    params = [p.detach() for p in model.parameters()]
    ema = [p.clone() for p in params]

    def step() -> torch.Tensor:
        loss = train_step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, params, 1.0 - 0.999)
        return loss

    losses = torch.zeros(steps + warmup, device=device)
    t0 = time.perf_counter()
    for i in range(warmup):
        losses[i] = step()
    _sync(device)
    warm = time.perf_counter() - t0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if device.type == "cuda":
            torch.cuda.set_sync_debug_mode("warn")
        t0 = time.perf_counter()
        try:
            for i in range(warmup, warmup + steps):
                losses[i] = step()
        finally:
            if device.type == "cuda":
                torch.cuda.set_sync_debug_mode("default")
        _sync(device)
        seconds = time.perf_counter() - t0
    syncs = None
    if device.type == "cuda":
        syncs = sum("synchroniz" in str(w.message).lower() for w in caught)
    if not bool(torch.isfinite(losses).all()):
        raise FloatingPointError(f"{variant}: non-finite loss")
    return {
        "variant": variant,
        "images_per_s": steps * batch / seconds,
        "warmup_s": warm,
        "host_syncs_in_loop": syncs,
        "last_loss": float(losses[-1]),
    }


def gradient_error(
    variant: str, unet: dict, batch: int, device: torch.device | str = "cpu"
) -> dict:
    """One step of ``variant`` against fp32 eager from the same weights and the same draws
    (SGD with learning rate 0, no clipping): ``{"loss_rel_err", "grad_rel_err"}``, the
    relative errors of the loss and of the whole gradient vector (float64 comparison)."""
    device = torch.device(device)
    pool = _pool(256, device)
    out = []
    for name in (REFERENCE, variant):
        model, step = _step(name, unet, batch, device, 0.0, pool)
        loss = float(step())
        grads = torch.cat([p.grad.detach().double().flatten() for p in model.parameters()])
        out.append((loss, grads))
    (l0, g0), (l1, g1) = out
    return {
        "loss_rel_err": abs(l1 - l0) / abs(l0),
        "grad_rel_err": float((g1 - g0).norm() / g0.norm()),
    }


@dataclass
class Choice:
    """The variant chosen by :func:`choose`: ``name``, its training ``settings``
    (:func:`settings_of`), ``speedup`` over fp32 eager (1.0 for the reference) and ``rows``,
    one measurement per candidate (``images_per_s``, ``speedup``, ``grad_rel_err``,
    ``usable``, or ``error`` when it could not run)."""

    name: str
    settings: dict
    speedup: float
    rows: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "variant": self.name,
            "settings": self.settings,
            "speedup": self.speedup,
            "rows": self.rows,
        }


def choose(
    unet: dict,
    batch: int,
    device: torch.device | str = "cpu",
    candidates=None,
    steps: int = 5,
    warmup: int = 2,
    min_speedup: float = 1.05,
) -> Choice:
    """Measure ``candidates`` (default :data:`CPU_CANDIDATES` on a CPU, every non-reference
    variant on CUDA) and pick the fastest whose gradient passes :data:`GRADIENT_TOLERANCE` and
    that beats fp32 eager by at least ``min_speedup`` (timing noise must not decide); fp32
    eager otherwise. A candidate that fails to run (no compiler, unsupported dtype) is
    recorded with its error and skipped."""
    device = torch.device(device)
    if candidates is None:
        candidates = (
            CPU_CANDIDATES
            if device.type != "cuda"
            else tuple(v for v in VARIANTS if v != REFERENCE)
        )
    names = [REFERENCE] + [c for c in candidates if c != REFERENCE]
    for name in names:
        settings_of(name)  # unknown names fail before anything is measured
    rows = []
    for name in names:
        try:
            row = images_per_second(name, unet, batch, device, steps, warmup)
            if name != REFERENCE:
                row.update(gradient_error(name, unet, batch, device))
        except Exception as exc:  # noqa: BLE001 - e.g. no C++ compiler for inductor
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            rows.append({"variant": name, "error": f"{type(exc).__name__}: {first}"})
            continue
        rows.append(row)
    ref = rows[0].get("images_per_s")
    if not ref:
        raise RuntimeError(f"the reference step {REFERENCE} failed: {rows[0].get('error')}")
    for row in rows:
        if "images_per_s" in row:
            row["speedup"] = row["images_per_s"] / ref
            row["usable"] = row["variant"] == REFERENCE or (
                row.get("grad_rel_err", 1.0) < GRADIENT_TOLERANCE and row["speedup"] >= min_speedup
            )
        else:
            row["usable"] = False
    best = max((r for r in rows if r["usable"]), key=lambda r: r["speedup"])
    return Choice(best["variant"], settings_of(best["variant"]), best["speedup"], rows)
