"""Notebook 05 at paper scale on one rented GPU: the plan, and one command of it.

A lent GPU machine typically runs one command at a time (here: at most about 9 minutes
each), keeps its disk only while it stays busy (it is handed back after a short idle time)
and returns at most 64 MiB of files per command. So the paper profile of notebook 05 is run
as a few long commands of the same form, each continuing where the previous one stopped:

    python tools/gpu_lease_05.py run --out "$OUT" --budget 540 --wheelhouse wheelhouse

Prepared once on a machine with internet, and carried with the repository (both folders are
git-ignored; about 30 MB together):

    SKIP="numpy scipy matplotlib pillow fonttools contourpy kiwisolver pyparsing cycler \
          packaging python-dateutil six tqdm ruff hypothesis pytest" \
        tools/build_wheelhouse.sh wheelhouse 3.12      # the GPU machine's Python version
    mkdir -p data/mnist && cp "$KACNB_DATA_DIR"/*-ubyte.gz data/mnist/

On a CUDA device the first command also runs ``benchmarks/bench_train_mnist.py`` once (about
a minute; its compile warms inductor's cache for the notebook): it measures fp32 eager
against the optimised step and compares one step's gradients with fp32 eager. Inductor's
CPU backend fails that comparison for this U-Net (see ``tests/test_train_optimised.py``),
so the optimised step is used only if the device passes it (relative gradient error below
5e-2); otherwise the notebook trains in float32
(``-p gpu_fast=False``, slower: the plan then does not fit its estimate). The benchmark's
JSON comes back with the results.

Each command installs the notebook tool chain from a wheelhouse when it is missing (the
machine has torch but not papermill, nbclient, ipykernel, jupytext; see
``tools/build_wheelhouse.sh``), then runs ``kacnb run 05 --profile paper --device cuda
--time-limit S`` with ``S`` = budget - time used - ``--reserve``. Training stops cleanly at
the limit with its checkpoints on the machine's disk (``checkpoints/05_mnist/paper``, kept
between commands while the machine stays lent), sampling continues model
by model from saved samples, and the same command again resumes (exit status 3 means "run me
again"). When the notebook completes, the executed notebook, its figures (PNG and PDF), the
run record and the metrics JSON are copied to ``--out`` (at most ``--max-mib``, default 64
MiB; checkpoints never leave the machine), with ``lease_status.json`` saying what happened.
Issue the commands back to back: an idle machine is taken back after about 30 s and its disk
with it, and the next command then starts over. ``--loop`` repeats the chunks inside one
command until the notebook is done (for machines without a per-command limit).

    python tools/gpu_lease_05.py plan [--budget 1500]

prints the cost estimate: FLOPs of one training step and of one network evaluation of the
paper's U-Net counted on the CPU (``torch.utils.flop_counter`` on the meta device, no
arithmetic is done), times the iterations, models, samples and Euler steps of the paper
profile, divided by an assumed sustained bf16 throughput (``--utilisation`` of the H100/H200
dense bf16 peak), plus fixed costs per command; and the number of training iterations per
model that fits a given ``--budget``. ``-p train_steps=N`` is how ``run --train-steps N``
passes a smaller count to the notebook.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "05_mnist.py"
STEM = "05_mnist"
#: Exit status of ``kacnb run`` when it stopped at ``--time-limit`` (resume by running again).
EXIT_TIME_LIMIT = 3
#: Modules the notebook runner needs besides torch (installed from the wheelhouse if missing).
TOOL_MODULES = ("papermill", "nbclient", "nbformat", "ipykernel", "jupytext")
TOOL_PACKAGES = ("papermill", "nbclient", "nbformat", "ipykernel", "jupytext")

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

    from kacnb.models import UNet

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


def plan(args) -> dict:
    settings = paper_settings()
    unet = settings["unet"]
    flops_step, flops_forward = count_flops(
        unet["base"], unet["levels"], unet["blocks"], settings["batch"]
    )
    rate = args.peak_tflops * 1e12 * args.utilisation
    limit = args.command_limit
    paper = estimate(settings, settings["steps"], flops_step, flops_forward, rate, limit)
    fit = None
    steps = 0
    while True:  # the largest multiple of 500 iterations per model that fits the budget
        trial = estimate(settings, steps + 500, flops_step, flops_forward, rate, limit)
        if trial["total_s"] > args.budget:
            break
        steps, fit = steps + 500, trial
    out = {
        "settings": settings,
        "flops_train_step": flops_step,
        "flops_forward_per_image": flops_forward,
        "assumed_flops_per_s": rate,
        "fixed_costs_s": FIXED_S,
        "paper_profile": paper,
        "budget_s": args.budget,
        "fits_budget": fit,
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
    for name, e in (("paper profile", paper), (f"budget {args.budget:g} s", fit)):
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
    print(json.dumps(out))
    return out


# ---------------------------------------------------------------------------------------------
# one command of the plan


def _has_modules(python: str, modules) -> bool:
    code = "import importlib.util, sys; sys.exit(any(importlib.util.find_spec(m) is None "
    code += f"for m in {list(modules)!r}))"
    return subprocess.run([python, "-c", code], capture_output=True).returncode == 0


def tool_python(work: Path, wheelhouse: Path | None) -> str:
    """A Python that has torch and the notebook tool chain: this one if it has both, else a
    virtual environment in ``work`` on top of this one's packages, filled from
    ``wheelhouse`` without network."""
    if _has_modules(sys.executable, TOOL_MODULES):
        return sys.executable
    venv = work / "venv"
    python = str(venv / "bin" / "python")
    if venv.exists() and _has_modules(python, TOOL_MODULES):
        return python
    if wheelhouse is None or not wheelhouse.is_dir():
        raise SystemExit(
            f"{Path(__file__).name}: this Python lacks {', '.join(TOOL_MODULES)} and no "
            f"--wheelhouse folder was given (build one with tools/build_wheelhouse.sh)"
        )
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-index", "--find-links",
         str(wheelhouse), *TOOL_PACKAGES],
        check=True,
    )  # fmt: skip
    return python


#: Gathered files, most important first: records, the notebook, PNG figures, PDF figures.
def _gather_list(work: Path) -> list[tuple[Path, str]]:
    figures = work / "figures"
    items = [
        (figures / "runs" / f"{STEM}.json", f"figures/runs/{STEM}.json"),
        (figures / "runs" / f"{STEM}.metrics.json", f"figures/runs/{STEM}.metrics.json"),
        (work / "notebooks" / f"{STEM}.ipynb", f"notebooks/{STEM}.ipynb"),
    ]
    for ext in ("png", "pdf"):
        for f in sorted(figures.glob(f"*.{ext}")):
            items.append((f, f"figures/{f.name}"))
    return items


def gather(items: list[tuple[Path, str]], out: Path, max_bytes: int) -> dict:
    """Copy ``items`` (source, relative destination) to ``out`` in order while the total
    stays within ``max_bytes``; the rest is listed as left out, never copied."""
    copied, left_out, total = [], [], 0
    for src, rel in items:
        if not src.is_file():
            continue
        size = src.stat().st_size
        if total + size > max_bytes:
            left_out.append(rel)
            continue
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        copied.append(rel)
        total += size
    return {"copied": copied, "left_out": left_out, "bytes": total}


#: Largest relative error of the compiled bf16 step's gradient against fp32 eager accepted
#: (bf16 accuracy is about 1e-2; a miscompiled backward is off by order 1).
GRADIENT_TOLERANCE = 5e-2


def gradient_check(python: str, env: dict, work: Path, out: Path) -> dict:
    """Once per ``work`` folder: ``benchmarks/bench_train_mnist.py`` on the device (speed of
    fp32 eager against the optimised step, and one step's gradients against fp32 eager). Its
    compile of the paper's U-Net at batch 128 also fills inductor's cache for the notebook.
    The optimised step is used only when its gradient error is below
    :data:`GRADIENT_TOLERANCE`; the JSON summary is copied to ``out``."""
    summary_file = work / "bench_train_mnist.json"
    if not summary_file.exists():
        proc = subprocess.run(
            [python, str(ROOT / "benchmarks" / "bench_train_mnist.py"), "--device", "cuda",
             "--steps", "20", "--variants", "bf16 + channels_last + compile"],
            capture_output=True, text=True, env=env, cwd=ROOT,
        )  # fmt: skip
        lines = proc.stdout.strip().splitlines()
        try:
            summary = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            summary = {"error": (proc.stdout + proc.stderr)[-2000:]}
        summary_file.write_text(json.dumps(summary) + "\n")
    summary = json.loads(summary_file.read_text())
    err = summary.get("optimised_grad_rel_err")
    summary["optimised_ok"] = err is not None and err < GRADIENT_TOLERANCE
    shutil.copyfile(summary_file, out / "bench_train_mnist.json")
    return summary


def run(args) -> dict:
    t0 = time.time()
    out, work = args.out.resolve(), args.work.resolve()
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    python = tool_python(work, args.wheelhouse)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    data_dir = args.data_dir
    if data_dir is None and not env.get("KACNB_DATA_DIR") and (ROOT / "data" / "mnist").is_dir():
        data_dir = ROOT / "data" / "mnist"  # where the plan carries the MNIST files
    if data_dir is not None:
        env["KACNB_DATA_DIR"] = str(data_dir.resolve())
    cmd = [python, "-m", "kacnb", "run", STEM, "--profile", args.profile, "--device",
           args.device, "--output-dir", str(work / "notebooks"), "--figures-dir",
           str(work / "figures"), "--no-progress"]  # fmt: skip
    if args.checkpoints is not None:  # (the executed notebook then shows this path)
        cmd += ["-p", f"checkpoints={str(args.checkpoints.resolve())!r}"]
    if args.train_steps is not None:
        cmd += ["-p", f"train_steps={args.train_steps}"]
    if args.device.startswith("cuda"):
        check = gradient_check(python, env, work, out)
        if not check["optimised_ok"]:
            cmd += ["-p", "gpu_fast=False"]
    log = work / "kacnb_run.log"
    chunks = []
    while True:
        left = args.budget - (time.time() - t0)
        limit = left - args.reserve
        if args.time_limit is not None and not chunks:
            limit = min(limit, args.time_limit) if limit >= 1.0 else limit
        if limit < 1.0:
            state = "continue" if chunks else "no time"
            break
        started = time.time()
        with open(log, "a") as fh:
            fh.write(f"\n--- chunk {len(chunks) + 1}: --time-limit {limit:.0f}\n")
            fh.flush()
            try:
                rc = subprocess.run(
                    [*cmd, "--time-limit", f"{max(limit, 1.0):.0f}"],
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=ROOT,
                    timeout=max(1.0, left - args.finish_reserve),
                ).returncode
            except subprocess.TimeoutExpired:
                rc = None
        chunks.append({"time_limit_s": round(limit), "seconds": time.time() - started, "rc": rc})
        if rc == 0:
            state = "done"
            break
        if rc != EXIT_TIME_LIMIT:
            state = "failed" if rc is not None else "killed at the budget"
            break
        if not args.loop:
            state = "continue"
            break
    items = _gather_list(work) if state == "done" else []
    items.append((log, "kacnb_run.log"))
    partial = work / "notebooks" / f"{STEM}.partial.ipynb"
    if state != "done":
        items.append((partial, f"notebooks/{STEM}.partial.ipynb"))
    result = gather(items, out, int(args.max_mib * 2**20))
    status = {
        "state": state,
        "next": {
            "done": "nothing: the results are in this folder",
            "continue": "run the same command again (checkpoints are on the machine's disk)",
        }.get(state, "read kacnb_run.log"),
        "profile": args.profile,
        "train_steps": args.train_steps,
        "chunks": chunks,
        "seconds": time.time() - t0,
        **result,
    }
    (out / "lease_status.json").write_text(json.dumps(status, indent=1) + "\n")
    print(json.dumps(status))
    return status


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    pp = sub.add_parser("plan", help="print the cost estimate and what fits a budget")
    pp.add_argument("--budget", type=float, default=1500.0, help="seconds of GPU time in all")
    pp.add_argument("--command-limit", type=float, default=540.0, help="seconds per command")
    pp.add_argument("--utilisation", type=float, default=UTILISATION)
    pp.add_argument("--peak-tflops", type=float, default=PEAK_BF16 / 1e12)
    pp.set_defaults(func=plan)
    pr = sub.add_parser("run", help="one command of the plan (run it again to continue)")
    pr.add_argument("--out", type=Path, required=True, help="folder of the files to bring back")
    pr.add_argument("--budget", type=float, default=540.0, help="seconds this command may take")
    pr.add_argument(
        "--reserve",
        type=float,
        default=150.0,
        help="seconds kept after the training deadline: the step or compile in progress, "
        "one model's sampling, figures, publishing and copying (default 150)",
    )
    pr.add_argument(
        "--finish-reserve",
        type=float,
        default=15.0,
        help="seconds kept for copying when the notebook has to be killed at the budget",
    )
    pr.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="a shorter time limit for the first chunk (default: budget - used - reserve)",
    )
    pr.add_argument(
        "--checkpoints",
        type=Path,
        default=None,
        help="checkpoint folder (default: the notebook's, checkpoints/05_mnist/<profile>; "
        "the smoke profile keeps none unless given)",
    )
    pr.add_argument("--work", type=Path, default=ROOT / "runs" / "lease05", help="machine disk")
    pr.add_argument("--wheelhouse", type=Path, default=None)
    pr.add_argument("--data-dir", type=Path, default=None, help="MNIST IDX files")
    pr.add_argument("--profile", default="paper", choices=("smoke", "quick", "paper"))
    pr.add_argument("--device", default="cuda")
    pr.add_argument("--train-steps", type=int, default=None, help="iterations per model")
    pr.add_argument("--max-mib", type=float, default=64.0, help="cap on the files brought back")
    pr.add_argument("--loop", action="store_true", help="repeat chunks until done or budget")
    pr.set_defaults(func=run)
    return p


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    if getattr(args, "budget", 1) <= 0 or getattr(args, "max_mib", 1) <= 0:
        raise SystemExit("--budget and --max-mib must be > 0")
    return args.func(args)


if __name__ == "__main__":
    main()
