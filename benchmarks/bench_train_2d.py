"""Training throughput of the 2D flow-matching loop: eager against optimised, in one run.

The step is the one ``kacnb.train.train`` runs (``make_train_step``): draw starts from the
9-mode mixture and Kac noise on the device, MLP 3x256 forward/backward, clip, Adam. The MLP
is tiny, so launch overhead and host synchronisation dominate on a GPU; the loop keeps the
loss on the device and synchronises only when the timer stops.

Variants: ``eager``; ``compile`` (``torch.compile`` of the model); on CUDA also
``compile+cudagraphs`` (``mode="reduce-overhead"``, CUDA graphs for forward and backward).
Reports iterations/s after warm-up (compile time reported separately) and the ratio to
eager measured in the same run.

    python benchmarks/bench_train_2d.py [--device cuda] [--steps 2000] [--batch 256]
"""

from __future__ import annotations

import argparse
import time

import torch

from kacnb.kac import Kac
from kacnb.metrics import grid_mixture
from kacnb.models import MLP
from kacnb.paths import KacPath
from kacnb.train import TrainConfig, make_train_step


def measure(variant: str, device: torch.device, steps: int, warmup: int, batch: int):
    torch.manual_seed(0)
    model = MLP(dim=2, width=256, depth=3).to(device)
    fused = {"fused": True} if device.type == "cuda" else {"foreach": True}
    opt = torch.optim.Adam(model.parameters(), lr=5e-4, **fused)
    gmm = grid_mixture(std=1e-4, dtype=torch.float32)
    means = gmm.means.to(device)

    def data(n, gen):
        # Sampled on the device: no host-to-device copy per step.
        k = torch.randint(0, 9, (n,), generator=gen, device=device)
        return means[k] + gmm.std * torch.randn(n, 2, generator=gen, device=device)

    path = KacPath(Kac(25.0, 5.0), T=1.0)
    cfg = TrainConfig(steps=steps, batch_size=batch, compile=variant != "eager", progress=False)
    gen = torch.Generator(device=device).manual_seed(0)
    if variant == "compile+cudagraphs":
        model_c = torch.compile(model, mode="reduce-overhead")
        cfg.compile = False
        step = make_train_step(model_c, path, data, opt, cfg, gen, params=model.parameters())
    else:
        step = make_train_step(model, path, data, opt, cfg, gen)
    t0 = time.perf_counter()
    for _ in range(warmup):
        loss = step()
    float(loss)
    warm_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    float(loss)  # one synchronisation at the end
    secs = time.perf_counter() - t0
    return steps / secs, warm_s


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--batch", type=int, default=256)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"device {device} ({name}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads, batch {args.batch}, {args.steps} timed steps"
    )
    variants = ["eager", "compile"] + (["compile+cudagraphs"] if device.type == "cuda" else [])
    rows, base = [], None
    for v in variants:
        try:
            rate, warm = measure(v, device, args.steps, args.warmup, args.batch)
        except Exception as exc:  # noqa: BLE001 - e.g. no C++ compiler for inductor
            print(f"{v}: failed ({type(exc).__name__}: {exc})")
            continue
        base = rate if v == "eager" else base
        rows.append((v, rate, rate / base, warm))
    print("| variant | it/s | ratio to eager | warm-up s (incl. compile) |")
    print("|---|---|---|---|")
    for v, rate, ratio, warm in rows:
        print(f"| {v} | {rate:.0f} | {ratio:.2f} | {warm:.1f} |")


if __name__ == "__main__":
    main()
