"""The optimised U-Net training step (bf16 autocast + channels_last + torch.compile) computes
the same CFM loss [97] and gradients as the fp32 eager step, to bf16 accuracy.

All steps start from the same weights and draw the same batch, times and Kac noise from
generators with the same seed (the draws happen outside autocast, in float32), so any
difference comes from the arithmetic: bf16 keeps 8 significant bits (relative rounding
2^-9, about 2e-3 per operation), and the errors of a few dozen layers add up to about 1e-2
in a gradient tensor. An SGD optimiser with learning rate 0 keeps the weights fixed, so the
second step compares the gradients at a new batch through the already compiled graph.

On the CPU the parts are checked separately: bf16 autocast with channels_last (eager), and
torch.compile (inductor) of the fp32 step. The three combined, compiled by inductor's CPU
backend, give wrong gradients with torch 2.13 (kept as a strict xfail, so a fix shows up);
a GPU compiles with another backend, and ``benchmarks/bench_train_mnist.py`` repeats this
one-step gradient check on the device before the optimised step is used. A small U-Net
keeps the compile short.
"""

from __future__ import annotations

import pytest
import torch

from kacnb.cfm.config import TrainConfig
from kacnb.cfm.models import UNet
from kacnb.cfm.paths import MeanRevertingKacPath
from kacnb.cfm.train import make_train_step
from kacnb.theory.kac import Kac

BATCH = 8
ARCH = {"base": 8, "levels": 2, "blocks": 1}


def _pool() -> torch.Tensor:
    gen = torch.Generator().manual_seed(123)
    return torch.rand(64, 1, 28, 28, generator=gen) * 2 - 1


def _run(amp, channels_last, compile_, n_steps=2):
    """Losses and float64 gradients of ``n_steps`` steps at fixed weights (SGD, lr 0)."""
    torch.manual_seed(0)
    model = UNet(channels=1, **ARCH)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    pool = _pool()

    def data(n, gen):
        return pool[torch.randint(0, pool.shape[0], (n,), generator=gen)]

    cfg = TrainConfig(
        steps=n_steps,
        batch_size=BATCH,
        amp_dtype=amp,
        channels_last=channels_last,
        compile=compile_,
        grad_clip=None,
        progress=False,
    )
    # (a, c) = (1, 1): targets of size one, so the loss depends on the network's output
    # (with large c the squared targets would dominate it).
    path = MeanRevertingKacPath(Kac(1.0, 1.0), T=1.0)
    step = make_train_step(model, path, data, opt, cfg, torch.Generator().manual_seed(7))
    out = []
    for _ in range(n_steps):
        loss = float(step())
        grads = {n: p.grad.detach().double().clone() for n, p in model.named_parameters()}
        out.append((loss, grads))
    return model, opt, out


@pytest.fixture(scope="module")
def eager():
    return _run(None, False, False)[2]


def _check_close(reference, other, loss_rtol, grad_rtol):
    for (loss_ref, g_ref), (loss, g) in zip(reference, other, strict=True):
        assert abs(loss - loss_ref) <= loss_rtol * abs(loss_ref), (loss, loss_ref)
        assert g.keys() == g_ref.keys()
        flat_ref = torch.cat([v.flatten() for v in g_ref.values()])
        flat = torch.cat([g[k].flatten() for k in g_ref])
        assert float((flat - flat_ref).norm() / flat_ref.norm()) < grad_rtol
        for name, ref in g_ref.items():
            # per tensor, relative to its own size, with a floor of 1e-2 of the whole
            # gradient: with one channel per GroupNorm group (base 8, 8 groups) a per-channel
            # shift before the norm does not change the output, so the gradients of the
            # biases and time projections there are exactly zero, and what is measured is
            # round-off (1e-5 in float32, 5e-5 of the whole gradient in bf16)
            err = float((g[name] - ref).norm())
            scale = float(ref.norm()) + 1e-2 * float(flat_ref.norm())
            assert err <= grad_rtol * scale, (name, err, scale)


def test_bf16_channels_last_step_matches_eager_loss_and_gradients(eager):
    model, opt, out = _run(torch.bfloat16, True, False)
    _check_close(eager, out, loss_rtol=1e-2, grad_rtol=5e-2)
    # the optimiser still holds the model's own parameters, now in NHWC layout
    assert [p for g in opt.param_groups for p in g["params"]] == list(model.parameters())
    convs = [p for p in model.parameters() if p.ndim == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    # the tolerance is not vacuous: bf16 does change the numbers beyond float32 round-off
    (_, g_ref), (_, g) = eager[0], out[0]
    flat_ref = torch.cat([v.flatten() for v in g_ref.values()])
    flat = torch.cat([g[k].flatten() for k in g_ref])
    assert float((flat - flat_ref).norm() / flat_ref.norm()) > 1e-4


def test_channels_last_is_the_same_arithmetic(eager):
    # Without autocast the layout alone changes only the summation order: agreement to
    # float32 round-off, far tighter than the bf16 tolerance above.
    out = _run(None, True, False)[2]
    _check_close(eager, out, loss_rtol=1e-5, grad_rtol=1e-4)


def test_compiled_step_matches_eager(eager):
    # torch.compile (inductor) of the fp32 step: the compiled network shares the model's
    # parameters, its gradients land on them, the second call reuses the graph.
    model, opt, out = _run(None, False, True)
    _check_close(eager, out, loss_rtol=1e-5, grad_rtol=1e-4)
    assert [p for g in opt.param_groups for p in g["params"]] == list(model.parameters())


@pytest.mark.xfail(
    strict=True,
    reason="inductor's CPU backend (torch 2.13) compiles the bf16 + channels_last backward of "
    "this U-Net wrongly: whole-gradient error 0.36, the 14x14 level's gradients off by 100 %, "
    "while the same step in eager mode and the compiled fp32 step agree (tests above); a GPU "
    "run checks its own backend with benchmarks/bench_train_mnist.py",
)
def test_optimised_step_on_the_cpu_backend(eager):
    out = _run(torch.bfloat16, True, True)[2]
    _check_close(eager, out, loss_rtol=1e-2, grad_rtol=5e-2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"compile": "fast"}, "compile must be"),
        ({"amp_dtype": torch.float64}, "amp_dtype must be"),
    ],
)
def test_config_refuses_unknown_speed_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(steps=1, **kwargs)


def test_config_accepts_compile_modes():
    assert TrainConfig(steps=1, compile="reduce-overhead").compile == "reduce-overhead"
    assert TrainConfig(steps=1, compile=True, channels_last=True).channels_last
