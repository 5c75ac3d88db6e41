"""Notebook 05 at paper scale on one rented GPU: the plan, and one command of it.

A lent GPU machine typically runs one command at a time (here: at most about 9 minutes
each), keeps its disk only while it stays busy (it is handed back after a short idle time)
and returns at most 64 MiB of files per command. So the paper profile of notebook 05 is run
as a few long commands of the same form, each continuing where the previous one stopped:

    python tools/gpu_lease_05.py run --out "$OUT" --budget 540 --wheelhouse wheelhouse

which is ``tools/gpu_lease.py run 05`` (same options; that file describes the chunks, the
wheelhouse, the gradient check that decides ``gpu_fast`` and what comes back).

Prepared once on a machine with internet, and carried with the repository (both folders are
git-ignored; about 30 MB together):

    SKIP="numpy scipy matplotlib pillow fonttools contourpy kiwisolver pyparsing cycler \
          packaging python-dateutil six tqdm ruff hypothesis pytest" \
        tools/build_wheelhouse.sh wheelhouse 3.12      # the GPU machine's Python version
    mkdir -p data/mnist && cp "$KACNB_DATA_DIR"/*-ubyte.gz data/mnist/

    python tools/gpu_lease_05.py plan [--budget 1500]

prints the cost estimate: FLOPs of one training step and of one network evaluation of the
paper's U-Net counted on the CPU (``torch.utils.flop_counter`` on the meta device, no
arithmetic is done), times the iterations, models, samples and Euler steps of the paper
profile, divided by an assumed sustained bf16 throughput (``--utilisation`` of the H100/H200
dense bf16 peak), plus fixed costs per command; and the number of training iterations per
model that fits a given ``--budget``. It also costs the authors' own iteration count
(``--authors-steps``, 500k per model in their MNIST script: 81 minutes of training per
model, 15 GPU-hours for the eleven models at the assumed rate, so far beyond any lease) and
says what fits the commands of a 15-minute lease (``--lease``, about 11 minutes: 1000
iterations per model, 0.2 % of theirs).
``-p train_steps=N`` is how ``run --train-steps N`` passes a smaller count to the notebook.
The learning rate, EMA decay and clipping of the paper profile (the authors' values) do not
change the cost.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_lease  # noqa: E402 (the shared command runner, beside this file)

ROOT = gpu_lease.ROOT
NOTEBOOK = ROOT / "notebooks" / "05_mnist.py"

#: Iterations per model of the authors' first public MNIST script (repository
#: JChemseddine/telegraphers, commit be1cb4d, radial/train_mnist_ou_z.py: --epochs 500000,
#: one batch of 128 per iteration).
AUTHORS_STEPS = 500_000
#: Seconds of commands a 15-minute lease leaves once the machine has started (its start, the
#: transfers and the idle waits between commands count against the lease too).
LEASE_S = 660.0
#: Dense bf16 tensor-core peak of an H100 SXM and of an H200 (same chip; NVIDIA's data sheets
#: give 1,979 TFLOPS "with sparsity", twice the dense rate), FLOP/s.
PEAK_BF16 = 989e12
#: Assumed share of that peak sustained by this U-Net: small 28x28 maps of 64-256 channels at
#: batch 128 give thin GEMMs (64-256 output channels), and GroupNorm/SiLU/Adam are
#: memory-bound passes that the FLOP count leaves out; 10 % is deliberately pessimistic.
UTILISATION = 0.10
#: Fixed costs in seconds (assumed, not measured on a GPU): installing the wheels once;
#: per command the kernel start, imports, MNIST and the cached classifier; torch.compile of
#: the U-Net's forward and backward once per command (cold caches the first time, inductor's
#: on-disk cache afterwards); training the classifier once; figures, publishing and copying
#: at the end.
FIXED_S = {
    "install": 60.0,
    "per_command": 30.0,
    "compile_first": 120.0,
    "compile_again": 40.0,
    "classifier": 30.0,
    "finish": 40.0,
}


# ---------------------------------------------------------------------------------------------
# the plan: cost model


def paper_settings(profile: str = "paper") -> dict:
    """The ``SETTINGS[profile]`` dict literal of notebook 05, read without running it."""
    tree = ast.parse(NOTEBOOK.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "SETTINGS" for t in node.targets
        ):
            return ast.literal_eval(node.value)[profile]
    raise LookupError(f"no SETTINGS dict in {NOTEBOOK}")


def count_flops(base: int, levels: int, blocks: int, batch: int) -> tuple[float, float]:
    """(FLOPs of one training step at ``batch``, FLOPs of one forward pass per image) of the
    U-Net, counted by ``torch.utils.flop_counter`` on the meta device (convolutions and
    matrix products, a multiply-add counted as 2; norms and activations are left out)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from kacnb.cfm.models import UNet

    model = UNet(channels=1, base=base, levels=levels, blocks=blocks).to("meta")
    x = torch.zeros(batch, 1, 28, 28, device="meta")
    t = torch.zeros(batch, device="meta")
    with FlopCounterMode(display=False) as counter:
        model(t, x)
    forward = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        model(t, x).pow(2).sum().backward()
    return float(counter.get_total_flops()), float(forward) / batch


def euler_evaluations(euler_dt: float) -> int:
    """Network evaluations per sample over the eleven models: N = T/dt steps for the ten Kac
    models at T = 1 and 5, the T = 5 models again with the N of T = 1 (notebook 05,
    section 4), and the rectified-flow baseline at T = 1 (section 7)."""
    n1, n5 = round(1.0 / euler_dt), round(5.0 / euler_dt)
    return 5 * n1 + 5 * n5 + 5 * n1 + n1


def estimate(
    settings: dict,
    steps: int,
    flops_step: float,
    flops_forward: float,
    rate: float,
    command_limit: float,
) -> dict:
    """Seconds of the whole plan with ``steps`` iterations per model, at ``rate`` FLOP/s."""
    train_s = 11 * steps * flops_step / rate  # ten Kac models and the baseline
    n_eval = euler_evaluations(settings["euler_dt"])
    sample_s = settings["n_samples"] * n_eval * flops_forward / rate
    work = train_s + sample_s + FIXED_S["classifier"] + FIXED_S["finish"] + FIXED_S["install"]
    commands = 1
    while True:  # each command adds its start-up and a (cached) compile
        fixed = commands * FIXED_S["per_command"] + FIXED_S["compile_first"]
        fixed += (commands - 1) * FIXED_S["compile_again"]
        total = work + fixed
        if total <= commands * command_limit:
            break
        commands += 1
    return {
        "steps_per_model": steps,
        "train_s": train_s,
        "sample_s": sample_s,
        "network_evaluations_per_sample": n_eval,
        "fixed_s": total - train_s - sample_s,
        "total_s": total,
        "commands": commands,
    }


def largest_fit(settings, budget, flops_step, flops_forward, rate, limit) -> dict | None:
    """The estimate for the largest multiple of 500 iterations per model whose whole plan
    fits ``budget`` seconds (``None`` if not even 500 do)."""
    fit, steps = None, 0
    while True:
        trial = estimate(settings, steps + 500, flops_step, flops_forward, rate, limit)
        if trial["total_s"] > budget:
            return fit
        steps, fit = steps + 500, trial


def plan(args) -> dict:
    settings = paper_settings()
    unet = settings["unet"]
    flops_step, flops_forward = count_flops(
        unet["base"], unet["levels"], unet["blocks"], settings["batch"]
    )
    rate = args.peak_tflops * 1e12 * args.utilisation
    limit = args.command_limit
    paper = estimate(settings, settings["steps"], flops_step, flops_forward, rate, limit)
    authors = estimate(settings, args.authors_steps, flops_step, flops_forward, rate, limit)
    authors["train_s_per_model"] = authors["train_s"] / 11
    fit = largest_fit(settings, args.budget, flops_step, flops_forward, rate, limit)
    lease = largest_fit(settings, args.lease, flops_step, flops_forward, rate, limit)
    out = {
        "settings": settings,
        "flops_train_step": flops_step,
        "flops_forward_per_image": flops_forward,
        "assumed_flops_per_s": rate,
        "fixed_costs_s": FIXED_S,
        "paper_profile": paper,
        "authors_steps": authors,
        "budget_s": args.budget,
        "fits_budget": fit,
        "lease_s": args.lease,
        "fits_lease": lease,
    }
    print(
        f"U-Net base {unet['base']}, {unet['levels']} levels, {unet['blocks']} blocks: "
        f"{flops_step / 1e12:.3f} TFLOP per training step of {settings['batch']}, "
        f"{flops_forward / 1e9:.2f} GFLOP per image and network evaluation"
    )
    print(
        f"assumed {rate / 1e12:.0f} TFLOP/s ({args.utilisation:.0%} of {args.peak_tflops:g} "
        f"TFLOP/s dense bf16)"
    )
    rows = (
        ("paper profile", paper),
        ("authors' iterations", authors),
        (f"budget {args.budget:g} s", fit),
        (f"15-minute lease ({args.lease:g} s of commands)", lease),
    )
    for name, e in rows:
        if e is None:
            print(f"{name}: nothing fits (the fixed costs and sampling alone exceed it)")
            continue
        print(
            f"{name}: {e['steps_per_model']} iterations per model; training {e['train_s']:.0f} "
            f"s, sampling {e['sample_s']:.0f} s ({settings['n_samples']} samples x "
            f"{e['network_evaluations_per_sample']} evaluations), fixed {e['fixed_s']:.0f} s; "
            f"total {e['total_s'] / 60:.1f} min in {e['commands']} command(s) of at most "
            f"{args.command_limit:g} s"
        )
    print(
        f"the authors' {args.authors_steps} iterations per model: "
        f"{authors['train_s_per_model'] / 60:.0f} min of training per model, "
        f"{authors['total_s'] / 3600:.1f} h for the plan; a 15-minute lease fits "
        + (
            f"{lease['steps_per_model']} iterations per model "
            f"({lease['steps_per_model'] / args.authors_steps:.2%} of theirs)"
            if lease
            else "no training at all"
        )
    )
    print(json.dumps(out))
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    pp = sub.add_parser("plan", help="print the cost estimate and what fits a budget")
    pp.add_argument("--budget", type=float, default=1500.0, help="seconds of GPU time in all")
    pp.add_argument(
        "--authors-steps",
        type=int,
        default=AUTHORS_STEPS,
        help="iterations per model of the authors' MNIST script, costed for comparison",
    )
    pp.add_argument(
        "--lease", type=float, default=LEASE_S, help="seconds of commands in a 15-minute lease"
    )
    pp.add_argument("--command-limit", type=float, default=540.0, help="seconds per command")
    pp.add_argument("--utilisation", type=float, default=UTILISATION)
    pp.add_argument("--peak-tflops", type=float, default=PEAK_BF16 / 1e12)
    pp.set_defaults(func=plan)
    pr = sub.add_parser("run", help="one command of the plan (run it again to continue)")
    gpu_lease.add_run_options(pr)
    pr.set_defaults(notebook="05")
    return p


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    gpu_lease.check_args(args)
    return args.func(args)


if __name__ == "__main__":
    main()
