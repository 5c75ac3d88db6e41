"""U-Net sampling throughput on MNIST: the explicit Euler sampler of notebook 05
(:func:`kacnb.experiments.mnist_exp.generate`) in fp32 eager against smaller chunks (the
images of one chunk go through the network together; smaller activations stay in the CPU's
caches), the chunks in forked single-thread processes (one per torch thread,
:mod:`kacnb.cfm.forked`), channels_last, ``torch.compile`` (fp32), their combinations and
bf16 autocast, measured in one run.

Sampling is what bounds ``kacnb run 05 -p pretrained=True``: the long profile integrates
eleven models, the five T = 5 ones twice (500 and 100 Euler steps), 3600 network calls on
256 images in all. Each row times ``--steps`` Euler steps of ``--n`` latents of the
mean-reverting Kac model (25, 5), T = 1 (paper Section 7, [98-99]) after one untimed
warm-up run (compile time is in the warm-up column), from a randomly initialised U-Net
(``--base 16 --levels 2 --blocks 1``, the long profile's, by default): speed does not depend
on the weights. ``max_abs_diff`` is the largest pixel difference of the generated images
against fp32 eager from the same latents; a variant counts as correct below
``--tolerance`` (fp32 reorderings give about 1e-5; bf16 about 1e-2). The last printed line
is a JSON summary whose ``fastest_correct_variant`` and ``speedup`` name the variant to use.

    python benchmarks/bench_sample_mnist.py                      # the long profile's U-Net
    python benchmarks/bench_sample_mnist.py --n 8 --steps 2 --base 8   # smoke
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from kacnb.cfm.forked import cpu_workers
from kacnb.cfm.models import UNet
from kacnb.experiments.mnist_exp import MnistModel, generate

REFERENCE = "fp32 eager"
FORKED = "fp32 eager in chunks of n/4 in forked single-thread workers"
#: name -> (chunk divisor, channels_last, compile, amp, forked workers)
VARIANTS = {
    REFERENCE: (1, False, False, None, False),
    "fp32 eager in chunks of n/4": (4, False, False, None, False),
    "fp32 eager in chunks of n/8": (8, False, False, None, False),
    "fp32 eager in chunks of n/16": (16, False, False, None, False),
    FORKED: (4, False, False, None, True),
    "fp32 channels_last": (1, True, False, None, False),
    "fp32 compile": (1, False, True, None, False),
    "fp32 compile + channels_last": (1, True, True, None, False),
    "fp32 compile + channels_last in chunks of n/4": (4, True, True, None, False),
    "fp32 compile + channels_last in chunks of n/8": (8, True, True, None, False),
    "bf16 autocast": (1, False, False, "bf16", False),
}


def _run(model, spec, n, steps, chunk, amp, workers=1, seed=0):
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    out = generate(model, spec, n, steps, gen, chunk=chunk, amp=amp, workers=workers)
    return out.x, time.perf_counter() - t0


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", type=int, default=16)
    p.add_argument("--levels", type=int, default=2)
    p.add_argument("--blocks", type=int, default=1)
    p.add_argument("--n", type=int, default=256, help="latents per run (notebook 05: 256)")
    p.add_argument("--steps", type=int, default=20, help="timed Euler steps per run")
    p.add_argument("--tolerance", type=float, default=1e-3, help="max pixel difference")
    p.add_argument("--variants", default=None, help="comma-separated subset of the VARIANTS")
    args = p.parse_args(argv)
    if args.n < 4 or args.steps < 1 or not args.tolerance > 0:
        p.error("--n >= 4, --steps >= 1 and --tolerance > 0 are needed")
    names = [v.strip() for v in args.variants.split(",")] if args.variants else list(VARIANTS)
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    names = [REFERENCE] + [v for v in names if v != REFERENCE]
    torch.manual_seed(0)
    base = UNet(channels=1, base=args.base, levels=args.levels, blocks=args.blocks).eval()
    spec = MnistModel(25.0, 5.0, 1.0)
    print(
        f"CPU, torch {torch.__version__}, {torch.get_num_threads()} threads, U-Net "
        f"{args.base}/{args.levels}/{args.blocks}, {args.n} latents, {args.steps} Euler steps"
    )
    rows, reference = [], None
    for name in names:
        divisor, channels_last, compiled, amp, forked = VARIANTS[name]
        model = UNet(channels=1, base=args.base, levels=args.levels, blocks=args.blocks).eval()
        model.load_state_dict(base.state_dict())
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        try:
            if compiled:
                model = torch.compile(model)
            chunk = max(1, args.n // divisor)
            # one forked process of one thread per torch thread (kacnb.cfm.forked)
            workers = cpu_workers("cpu") if forked else 1
            _, warm = _run(model, spec, args.n, args.steps, chunk, amp, workers)
            x, seconds = _run(model, spec, args.n, args.steps, chunk, amp, workers)
        except Exception as exc:  # noqa: BLE001 - e.g. no C++ compiler for inductor
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            print(f"{name}: failed ({type(exc).__name__}: {first})")
            rows.append({"variant": name, "error": f"{type(exc).__name__}: {first}"})
            continue
        if reference is None:
            reference = (x, seconds)
        rows.append(
            {
                "variant": name,
                "seconds": seconds,
                "warmup_s": warm,
                "images_steps_per_s": args.n * args.steps / seconds,
                "speedup": reference[1] / seconds,
                "max_abs_diff": float((x - reference[0]).abs().max()),
            }
        )
        rows[-1]["correct"] = rows[-1]["max_abs_diff"] < args.tolerance
    print("| variant | image-steps/s | speed-up | warm-up s | max pixel diff vs fp32 eager |")
    print("|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['variant']} | failed | - | - | - |")
            continue
        print(
            f"| {r['variant']} | {r['images_steps_per_s']:.0f} | {r['speedup']:.2f} | "
            f"{r['warmup_s']:.1f} | {r['max_abs_diff']:.1e} |"
        )
    correct = [r for r in rows if r.get("correct")]
    fastest = max(correct, key=lambda r: r["speedup"])
    summary = {
        "benchmark": "bench_sample_mnist",
        "device": "cpu",
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "unet": {"base": args.base, "levels": args.levels, "blocks": args.blocks},
        "n": args.n,
        "euler_steps": args.steps,
        "fp32_eager_image_steps_per_s": rows[0]["images_steps_per_s"],
        "fastest_correct_variant": fastest["variant"],
        "speedup": fastest["speedup"],
        "tolerance": args.tolerance,
        "rows": rows,
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
