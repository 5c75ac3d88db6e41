"""U-Net training throughput on MNIST-shaped data: fp32 eager against the optimised step
(bf16 autocast + channels_last + torch.compile, and on CUDA also with CUDA graphs), measured
in one run.

The step is ``kacnb.train.make_train_step`` (the one ``train`` runs) plus the EMA update of
the training loop, on the mean-reverting Kac path (a, c) = (25, 5), T = 1 (paper Remark 17,
[98-99]), with the light U-Net of the paper's MNIST experiment (Section 7, arXiv:2506.20641v1;
``--base 64 --levels 3 --blocks 2``, the defaults). Random images held on the device stand in
for MNIST: throughput does not depend on pixel values, and the benchmark needs no data files.
The timed loop only enqueues work (one host synchronisation at its end); on CUDA it runs
under ``torch.cuda.set_sync_debug_mode("warn")`` and reports how many host synchronisations
it saw. Each row reports images/s after ``--warmup`` steps (compile time is in the warm-up
column), the speed-up over fp32 eager, and the relative error of one step's loss and
gradients against fp32 eager from the same weights and draws (a miscompiled step shows up
there; bf16 accuracy is about 1e-2). The last printed line is a JSON summary.

    python benchmarks/bench_train_mnist.py [--device cuda] [--batch 128] [--steps 50]
    python benchmarks/bench_train_mnist.py --device cpu --steps 2 --batch 8 --base 8   # smoke
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import torch

from kacnb.kac import Kac
from kacnb.models import UNet
from kacnb.paths import MeanRevertingKacPath
from kacnb.train import TrainConfig, make_train_step

#: Variants: name -> (autocast dtype, channels_last, compile). The first is the reference.
VARIANTS = {
    "fp32 eager": (None, False, False),
    "bf16 + channels_last": (torch.bfloat16, True, False),
    "bf16 + channels_last + compile": (torch.bfloat16, True, True),
    "bf16 + channels_last + compile (CUDA graphs)": (torch.bfloat16, True, "reduce-overhead"),
}
#: The variant the paper profile of notebook 05 trains with on a GPU.
OPTIMISED = "bf16 + channels_last + compile"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(variant: str, device: torch.device, args, batch: int, steps: int) -> dict:
    """images/s of ``steps`` timed training steps after ``args.warmup`` warm-up steps."""
    amp, channels_last, compile_ = VARIANTS[variant]
    torch.manual_seed(0)
    model = UNet(base=args.base, levels=args.levels, blocks=args.blocks).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    pool = torch.rand(4096, 1, 28, 28, device=device) * 2 - 1

    def data(n: int, gen: torch.Generator) -> torch.Tensor:
        idx = torch.randint(0, pool.shape[0], (n,), generator=gen, device=device)
        return pool[idx]

    cfg = TrainConfig(
        steps=steps,
        batch_size=batch,
        amp_dtype=amp,
        compile=compile_,
        channels_last=channels_last,
        progress=False,
    )
    gen = torch.Generator(device=device).manual_seed(0)
    step = make_train_step(model, MeanRevertingKacPath(Kac(25.0, 5.0), T=1.0), data, opt, cfg, gen)
    ema = [p.detach().clone() for p in model.parameters()]  # in the model's (new) layout
    params = [p.detach() for p in model.parameters()]
    losses = torch.zeros(steps + args.warmup, device=device)

    def train_step(i: int) -> None:
        losses[i] = step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, params, 1.0 - 0.999)

    t0 = time.perf_counter()
    for i in range(args.warmup):
        train_step(i)
    _sync(device)
    warm = time.perf_counter() - t0
    syncs = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if device.type == "cuda":
            torch.cuda.set_sync_debug_mode("warn")
        t0 = time.perf_counter()
        try:
            for i in range(args.warmup, args.warmup + steps):
                train_step(i)
        finally:
            if device.type == "cuda":
                torch.cuda.set_sync_debug_mode("default")
        _sync(device)
        seconds = time.perf_counter() - t0
    if device.type == "cuda":
        syncs = sum("synchroniz" in str(w.message).lower() for w in caught)
    final = float(losses[-1])
    if not bool(torch.isfinite(losses).all()):
        raise FloatingPointError(f"{variant}: non-finite loss")
    return {
        "variant": variant,
        "images_per_s": steps * batch / seconds,
        "warmup_s": warm,
        "host_syncs_in_loop": syncs,
        "last_loss": final,
    }


def gradient_check(variant: str, device: torch.device, args, batch: int) -> dict:
    """One step of ``variant`` against fp32 eager from the same weights and the same draws
    (SGD with learning rate 0, no clipping): relative error of the loss and of the whole
    gradient (bf16 accuracy is about 1e-2; a miscompiled step is far off)."""
    out = []
    for name in ("fp32 eager", variant):
        amp, channels_last, compile_ = VARIANTS[name]
        torch.manual_seed(0)
        model = UNet(base=args.base, levels=args.levels, blocks=args.blocks).to(device)
        pool = torch.rand(256, 1, 28, 28, device=device) * 2 - 1
        cfg = TrainConfig(
            steps=1,
            batch_size=batch,
            amp_dtype=amp,
            compile=compile_,
            channels_last=channels_last,
            grad_clip=None,
            progress=False,
        )
        gen = torch.Generator(device=device).manual_seed(0)
        step = make_train_step(
            model,
            MeanRevertingKacPath(Kac(1.0, 1.0), T=1.0),
            lambda n, g, pool=pool: pool[torch.randint(0, 256, (n,), generator=g, device=device)],
            torch.optim.SGD(model.parameters(), lr=0.0),
            cfg,
            gen,
        )
        loss = float(step())
        grads = torch.cat([p.grad.detach().double().flatten() for p in model.parameters()])
        out.append((loss, grads))
    (l0, g0), (l1, g1) = out
    return {
        "loss_rel_err": abs(l1 - l0) / abs(l0),
        "grad_rel_err": float((g1 - g0).norm() / g0.norm()),
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--base", type=int, default=64)
    p.add_argument("--levels", type=int, default=3)
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--batch", type=int, default=None, help="default 128 on CUDA, 32 on CPU")
    p.add_argument("--steps", type=int, default=None, help="default 50 on CUDA, 5 on CPU")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (compile)")
    p.add_argument(
        "--variants",
        default=None,
        help="comma-separated subset of: " + "; ".join(VARIANTS) + " (default: all that apply)",
    )
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda requested but CUDA is not available")
    gpu = device.type == "cuda"
    batch = args.batch or (128 if gpu else 32)
    steps = args.steps or (50 if gpu else 5)
    if batch < 1 or steps < 1 or args.warmup < 1:
        p.error("--batch, --steps and --warmup must be >= 1")
    names = (
        [v.strip() for v in args.variants.split(",")]
        if args.variants
        else [v for v in VARIANTS if gpu or "CUDA" not in v]
    )
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    if names[0] != "fp32 eager":
        names.insert(0, "fp32 eager")
    name = torch.cuda.get_device_name(device) if gpu else "CPU"
    print(
        f"device {device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} CPU "
        f"threads, U-Net base {args.base}, {args.levels} levels, {args.blocks} blocks, batch "
        f"{batch}, {steps} timed steps after {args.warmup} warm-up steps"
    )
    rows = []
    for variant in names:
        try:
            row = measure(variant, device, args, batch, steps)
            if variant != "fp32 eager":
                row.update(gradient_check(variant, device, args, batch))
            rows.append(row)
        except Exception as exc:  # noqa: BLE001 - e.g. no C++ compiler for inductor
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            print(f"{variant}: failed ({type(exc).__name__}: {first})")
            rows.append({"variant": variant, "error": f"{type(exc).__name__}: {first}"})
    reference = rows[0].get("images_per_s")
    for row in rows:
        if "images_per_s" in row and reference:
            row["speedup"] = row["images_per_s"] / reference
    print(
        "| variant | images/s | speed-up | warm-up s (incl. compile) | host syncs in loop | "
        "gradient rel. error vs fp32 |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['variant']} | failed | - | - | - | - |")
            continue
        syncs = "-" if r["host_syncs_in_loop"] is None else r["host_syncs_in_loop"]
        err = f"{r['grad_rel_err']:.2e}" if "grad_rel_err" in r else "-"
        print(
            f"| {r['variant']} | {r['images_per_s']:.1f} | {r['speedup']:.2f} | "
            f"{r['warmup_s']:.1f} | {syncs} | {err} |"
        )
    optimised = next((r for r in rows if r["variant"] == OPTIMISED and "speedup" in r), None)
    summary = {
        "benchmark": "bench_train_mnist",
        "device": str(device),
        "device_name": name,
        "torch": torch.__version__,
        "unet": {"base": args.base, "levels": args.levels, "blocks": args.blocks},
        "batch": batch,
        "timed_steps": steps,
        "fp32_eager_images_per_s": reference,
        "optimised_variant": OPTIMISED,
        "optimised_images_per_s": optimised["images_per_s"] if optimised else None,
        "speedup": optimised["speedup"] if optimised else None,
        "optimised_grad_rel_err": optimised["grad_rel_err"] if optimised else None,
        "rows": rows,
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
