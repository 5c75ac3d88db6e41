"""U-Net training throughput on MNIST-shaped data: fp32 eager against bf16 autocast +
channels_last, the compiled fp32 step and the optimised step (bf16 + channels_last +
torch.compile, and on CUDA also with CUDA graphs), measured in one run.

The timing and the gradient check are those of :mod:`kacnb.cfm.step_variants`, which training
uses to pick its variant: ``kacnb.cfm.train.make_train_step`` (the one ``train`` runs) plus the
EMA update of the training loop, on the mean-reverting Kac path (paper Remark 17,
[98-99]), with the light U-Net of the paper's MNIST experiment (Section 7, arXiv:2506.20641v1;
``--base 64 --levels 3 --blocks 2``, the defaults). Random images held on the device stand in
for MNIST: throughput does not depend on pixel values, and the benchmark needs no data files.
The timed loop only enqueues work (one host synchronisation at its end); on CUDA it runs
under ``torch.cuda.set_sync_debug_mode("warn")`` and reports how many host synchronisations
it saw. Each row reports images/s after ``--warmup`` steps (compile time is in the warm-up
column), the speed-up over fp32 eager, and the relative error of one step's loss and
gradients against fp32 eager from the same weights and draws (a miscompiled step shows up
there; bf16 accuracy is about 1e-2). The last printed line is a JSON summary; its
``cpu_speedup`` (on a CPU) is the speed-up of the fastest variant whose gradient passes
``kacnb.cfm.step_variants.GRADIENT_TOLERANCE`` (``fastest_correct_variant``), 1.0 when that is
fp32 eager.

    python benchmarks/bench_train_mnist.py [--device cuda] [--batch 128] [--steps 50]
    python benchmarks/bench_train_mnist.py --device cpu --steps 2 --batch 8 --base 8   # smoke
"""

from __future__ import annotations

import argparse
import json

import torch

from kacnb.cfm.step_variants import (
    GRADIENT_TOLERANCE,
    REFERENCE,
    VARIANTS,
    gradient_error,
    images_per_second,
)

#: The variant the paper profile of notebook 05 trains with on a GPU.
OPTIMISED = "bf16 + channels_last + compile"


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
    if names[0] != REFERENCE:
        names = [REFERENCE] + [n for n in names if n != REFERENCE]
    unet = {"base": args.base, "levels": args.levels, "blocks": args.blocks}
    name = torch.cuda.get_device_name(device) if gpu else "CPU"
    print(
        f"device {device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} CPU "
        f"threads, U-Net base {args.base}, {args.levels} levels, {args.blocks} blocks, batch "
        f"{batch}, {steps} timed steps after {args.warmup} warm-up steps"
    )
    rows = []
    for variant in names:
        try:
            row = images_per_second(variant, unet, batch, device, steps, args.warmup)
            if variant != REFERENCE:
                row.update(gradient_error(variant, unet, batch, device))
            rows.append(row)
        except Exception as exc:  # noqa: BLE001 - e.g. no C++ compiler for inductor
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            print(f"{variant}: failed ({type(exc).__name__}: {first})")
            rows.append({"variant": variant, "error": f"{type(exc).__name__}: {first}"})
    reference = rows[0].get("images_per_s")
    for row in rows:
        if "images_per_s" in row and reference:
            row["speedup"] = row["images_per_s"] / reference
            row["gradient_ok"] = row.get("grad_rel_err", 0.0) < GRADIENT_TOLERANCE
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
    correct = [r for r in rows if r.get("gradient_ok")]
    fastest = max(correct, key=lambda r: r["speedup"]) if correct else None
    summary = {
        "benchmark": "bench_train_mnist",
        "device": str(device),
        "device_name": name,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "unet": unet,
        "batch": batch,
        "timed_steps": steps,
        "fp32_eager_images_per_s": reference,
        "optimised_variant": OPTIMISED,
        "optimised_images_per_s": optimised["images_per_s"] if optimised else None,
        "speedup": optimised["speedup"] if optimised else None,
        "optimised_grad_rel_err": optimised.get("grad_rel_err") if optimised else None,
        "gradient_tolerance": GRADIENT_TOLERANCE,
        "fastest_correct_variant": fastest["variant"] if fastest else None,
        "cpu_speedup": fastest["speedup"] if fastest and not gpu else None,
        "rows": rows,
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
