"""Training throughput of notebook 04: one stacked ensemble step against four single steps.

Notebook 04 trains four MLPs (3 hidden layers of 256, batch 256, Adam, clipping 1.0) on the
Kac paths (25, 5), (64, 8), (1600, 10) and the diffusion path. The step measured is the one
``kacnb.cfm.train.train`` runs (``make_train_step``): draw starts from the 9-mode mixture and
the path noise on the device, forward/backward of the CFM loss [97], clip, Adam. The MLP is
tiny, so per-operation overhead dominates; the ensemble step (``StackedMLP``, one batched
matmul per layer for the four models, clipping per model) pays it once instead of four times.

Variants, measured in one run on one device:

* ``single x4``: four separate models, one step each per iteration (four sequential steps);
* ``ensemble``: the four models stacked, one step per iteration;
* with ``--compile`` (default on CUDA): the same with ``torch.compile`` of the networks;
* on CUDA also ``ensemble compile+cudagraphs``: the stacked network compiled with
  ``mode="reduce-overhead"`` (CUDA graphs for forward and backward).

Rates are model steps per second (``K`` per ensemble step), after a warm-up (compile time
reported separately). Variants are timed in alternating rounds and the best round is kept,
so a neighbour process on a shared machine slows every variant alike. The last line printed
is a JSON object: ``device``, ``single_it_s``, ``ensemble_it_s``, ``ensemble_speedup``
(eager ensemble over eager single), the other variants' rates and the load average.

    python benchmarks/bench_train_2d.py [--device cuda] [--threads 2] [--steps 300]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from kacnb.cfm.config import TrainConfig
from kacnb.cfm.metrics import grid_mixture
from kacnb.cfm.models import MLP, StackedMLP
from kacnb.cfm.train import make_train_step
from kacnb.experiments.gmm2d import mixture_data, paper_models

K = 4  # the four models of notebook 04


def build(variant: str, device: torch.device, batch: int):
    """The step closure of ``variant`` and the number of model steps it makes per call."""
    specs = paper_models()
    assert len(specs) == K
    gmm = grid_mixture(std=1e-4)
    data = mixture_data(gmm, device)
    cfg = TrainConfig(steps=1, batch_size=batch, compile="compile" in variant, progress=False)
    gens = [torch.Generator(device=device).manual_seed(k) for k in range(K)]
    models = []
    for k in range(K):
        torch.manual_seed(k)
        models.append(MLP(dim=2, width=256, depth=3).to(device))
    if variant.startswith("single"):
        steps = []
        for model, spec, gen in zip(models, specs, gens, strict=True):
            opt = torch.optim.Adam(model.parameters(), lr=5e-4)
            steps.append(make_train_step(model, spec.path, data, opt, cfg, gen))

        def step():
            for s in steps:
                loss = s()
            return loss

        return step, K
    stack = StackedMLP.from_mlps(models)
    opt = torch.optim.Adam(stack.parameters(), lr=5e-4)
    paths = [s.path for s in specs]
    if variant == "ensemble compile+cudagraphs":
        net = torch.compile(stack, mode="reduce-overhead")
        cfg.compile = False
        return make_train_step(net, paths, data, opt, cfg, gens, params=stack.parameters()), K
    return make_train_step(stack, paths, data, opt, cfg, gens), K


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=300, help="timed iterations per round")
    p.add_argument("--rounds", type=int, default=3, help="alternating timing rounds")
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: 2)")
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add torch.compile rows (default: on CUDA only; on CPU inductor needs a C++ "
        "compiler and minutes)",
    )
    args = p.parse_args(argv)
    device = torch.device(args.device)
    torch.set_num_threads(args.threads or 2)
    compile_rows = args.compile if args.compile is not None else device.type == "cuda"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"device {device} ({name}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads, K = {K} models (MLP 3x256), batch "
        f"{args.batch}, {args.rounds} rounds of {args.steps} timed iterations"
    )
    variants = ["single x4", "ensemble"]
    if compile_rows:
        variants += ["single x4 compile", "ensemble compile"]
    if device.type == "cuda":
        variants.append("ensemble compile+cudagraphs")

    steps, warm = {}, {}
    for v in variants:
        try:
            fn, per_call = build(v, device, args.batch)
            t0 = time.perf_counter()
            for _ in range(args.warmup):
                loss = fn()
            float(loss.sum())
            warm[v] = time.perf_counter() - t0
            steps[v] = (fn, per_call)
        except Exception as exc:  # noqa: BLE001 - e.g. no C++ compiler for inductor
            print(f"{v}: failed ({type(exc).__name__}: {exc})")
    rates = {v: 0.0 for v in steps}
    for _ in range(args.rounds):
        for v, (fn, per_call) in steps.items():
            sync(device)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                loss = fn()
            float(loss.sum())  # one synchronisation per round
            rates[v] = max(rates[v], per_call * args.steps / (time.perf_counter() - t0))

    base = rates.get("single x4")
    print("| variant | model steps/s | ratio to single x4 | warm-up s (incl. compile) |")
    print("|---|---|---|---|")
    for v, rate in rates.items():
        ratio = f"{rate / base:.2f}" if base else "-"
        print(f"| {v} | {rate:.0f} | {ratio} | {warm[v]:.1f} |")
    summary = {
        "device": str(device),
        "device_name": name,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "models": K,
        "batch": args.batch,
        "single_it_s": round(rates.get("single x4", float("nan")), 1),
        "ensemble_it_s": round(rates.get("ensemble", float("nan")), 1),
        "ensemble_speedup": round(rates["ensemble"] / base, 3)
        if base and "ensemble" in rates
        else None,
        "rates": {v: round(r, 1) for v, r in rates.items()},
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
