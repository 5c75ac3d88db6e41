"""U-Net training throughput on MNIST-shaped data: fp32 eager against bf16 + channels_last +
torch.compile, measured in one run.

The step is ``kacnb.train.make_train_step`` (the one ``train`` runs) on the mean-reverting Kac
path (a, c) = (25, 5), T = 1, with the light U-Net of PAPER.md section 5 (``--base 64``).
Random images stand in for MNIST: throughput does not depend on pixel values, and the
benchmark then needs no data files. Reports images/s after warm-up (compile time separately)
and the speed-up over fp32 eager. Target on a GPU: >= 2x.

    python benchmarks/bench_train_mnist.py [--device cuda] [--batch 128] [--steps 50]
"""

from __future__ import annotations

import argparse
import time

import torch

from kacnb.kac import Kac
from kacnb.models import UNet
from kacnb.paths import MeanRevertingKacPath
from kacnb.train import TrainConfig, make_train_step


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(variant, device, base, batch, steps, warmup):
    torch.manual_seed(0)
    optimised = variant != "fp32 eager"
    fmt = torch.channels_last if optimised else torch.contiguous_format
    model = UNet(base=base).to(device=device, memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    pool = (torch.rand(4096, 1, 28, 28, device=device) * 2 - 1).contiguous(memory_format=fmt)

    def data(n, gen):
        idx = torch.randint(0, pool.shape[0], (n,), generator=gen, device=device)
        return pool[idx].contiguous(memory_format=fmt)

    amp = torch.bfloat16 if optimised else None
    cfg = TrainConfig(
        steps=steps, batch_size=batch, amp_dtype=amp, compile=optimised, progress=False
    )
    gen = torch.Generator(device=device).manual_seed(0)
    step = make_train_step(model, MeanRevertingKacPath(Kac(25.0, 5.0), T=1.0), data, opt, cfg, gen)
    t0 = time.perf_counter()
    for _ in range(warmup):
        loss = step()
    float(loss)
    warm = time.perf_counter() - t0
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    float(loss)
    return steps * batch / (time.perf_counter() - t0), warm


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--base", type=int, default=64)
    p.add_argument("--batch", type=int, default=None, help="default 128 on CUDA, 32 on CPU")
    p.add_argument("--steps", type=int, default=None, help="default 50 on CUDA, 5 on CPU")
    p.add_argument("--warmup", type=int, default=3)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    batch = args.batch or (128 if gpu else 32)
    steps = args.steps or (50 if gpu else 5)
    name = torch.cuda.get_device_name(device) if gpu else "CPU"
    print(
        f"device {device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} CPU "
        f"threads, U-Net base {args.base}, batch {batch}, {steps} timed steps"
    )
    rows, base_rate = [], None
    for variant in ("fp32 eager", "bf16 + channels_last + compile"):
        try:
            rate, warm = measure(variant, device, args.base, batch, steps, args.warmup)
        except Exception as exc:  # noqa: BLE001 - e.g. no compiler for inductor
            print(f"{variant}: failed ({type(exc).__name__}: {exc})")
            continue
        base_rate = rate if base_rate is None else base_rate
        rows.append((variant, rate, rate / base_rate, warm))
    print("| variant | images/s | speed-up | warm-up s (incl. compile) |")
    print("|---|---|---|---|")
    for v, rate, ratio, warm in rows:
        print(f"| {v} | {rate:.1f} | {ratio:.2f} | {warm:.1f} |")


if __name__ == "__main__":
    main()
