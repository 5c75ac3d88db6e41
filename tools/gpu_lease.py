"""Notebooks 04 and 05 and the three benchmarks on one lent GPU, in commands of a few minutes.

A lent GPU machine typically runs one command at a time (at most about 9 minutes each), keeps
its disk only while it stays busy (it is handed back after a short idle time), has no git
metadata and returns at most 64 MiB of files per command. This tool runs one such command:

    python tools/gpu_lease.py bench --out "$OUT/bench" --budget 240 --commit 1a2b3c4
    python tools/gpu_lease.py run 04 --out "$OUT/04" --budget 540 --wheelhouse wheelhouse \\
        --commit 1a2b3c4
    python tools/gpu_lease.py run 05 --out "$OUT/05" --budget 540 --wheelhouse wheelhouse \\
        --commit 1a2b3c4 [--train-steps 1000]

``run NN`` installs the notebook tool chain from a wheelhouse when it is missing (the machine
has torch but not papermill, nbclient, ipykernel, jupytext; see ``tools/build_wheelhouse.sh``),
then runs ``kacnb run NN --profile paper --device cuda --time-limit S`` with ``S`` = budget -
time used - ``--reserve``. Training stops cleanly at the limit with its checkpoints on the
machine's disk (kept between commands while the machine stays lent), and the same command
again resumes (``kacnb run`` exit status 3 means "run me again"; state "continue" here).
When the notebook completes, the executed notebook, its figures (PNG and PDF), the run record
and the metrics JSON (for 04 also the paper-scale weights bundle it writes) are copied to
``--out``, most important first and at most ``--max-mib`` (default 64 MiB; checkpoints never
leave the machine), with ``lease_status.json`` saying what happened and how long each chunk
took. Issue the commands back to back: an idle machine is taken back after about 30 s and its
disk with it, and the next command then starts over. ``--loop`` repeats the chunks inside one
command until the notebook is done (for machines without a per-command limit).

``--commit`` names the commit the copy was made from: the machine's copy of the tree has no
``.git``, so the run record would otherwise say ``git_commit: null``. It is passed to
``kacnb run`` as ``KACNB_SOURCE_COMMIT`` (see ``kacnb.collection.provenance.git_state``).

Notebook 05 on CUDA trains with bf16 autocast, channels_last and ``torch.compile`` only if
that step's gradients agree with fp32 eager on the device (relative error below
:data:`GRADIENT_TOLERANCE`); inductor's CPU backend fails that comparison for this U-Net
(``tests/test_train_optimised.py``). The check is the JSON of ``bench_train_mnist.py``: the
one ``bench`` left in ``--bench-work`` if it is there, else a short run of it (about a minute;
its compile also warms inductor's cache for the notebook). Otherwise the notebook trains in
float32 (``-p gpu_fast=False``). Notebook 04's MLPs train in float32 eager either way.

``bench`` runs ``benchmarks/bench_sampler.py``, ``bench_train_2d.py`` and
``bench_train_mnist.py`` one after the other on ``--device`` (each measures its ratios within
its own run), each under what is left of ``--budget``, and brings back each one's output and
JSON summary (its last line) in ``--out``; ``--args NAME="..."`` adds arguments to one of them.

``tools/gpu_lease_05.py plan`` is the cost estimate of notebook 05's paper profile.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # kacnb from this copy (a lent machine has it uninstalled)
from kacnb.cfm.pretrained import RUN_SUBDIR  # noqa: E402
from kacnb.collection.provenance import git_state  # noqa: E402 (torch only, no notebook tools)

#: The notebooks this tool runs, by number.
NOTEBOOKS = {"04": "04_cfm_gmm_2d", "05": "05_mnist"}
#: Files a completed run leaves for publishing beside its figures (in the figures folder's
#: ``pretrained/``), brought back after the figures under these repository-relative names:
#: notebook 04's paper profile writes the shipped weights bundle.
EXTRA_OUTPUTS = {
    "04": ("pretrained/04_cfm_gmm_2d_paper.json", "pretrained/04_cfm_gmm_2d_paper.pt"),
    "05": (),
}
#: Notebook parameters a notebook has that ``--checkpoints`` / ``--train-steps`` set.
HAS_PARAMETER = {"04": set(), "05": {"checkpoints", "train_steps"}}
#: Where a command keeps its state on the machine's disk (git-ignored).
LEASE_DIR = ROOT / "runs" / "lease"
#: Exit status of ``kacnb run`` when it stopped at ``--time-limit`` (resume by running again).
EXIT_TIME_LIMIT = 3
#: Modules the notebook runner needs besides torch (installed from the wheelhouse if missing).
TOOL_MODULES = ("papermill", "nbclient", "nbformat", "ipykernel", "jupytext")
TOOL_PACKAGES = ("papermill", "nbclient", "nbformat", "ipykernel", "jupytext")
#: The benchmarks ``bench`` runs, in this order, with the arguments for ``--device``.
BENCHMARKS = ("bench_sampler", "bench_train_2d", "bench_train_mnist")
#: Largest relative error of the compiled bf16 step's gradient against fp32 eager accepted
#: (bf16 accuracy is about 1e-2; a miscompiled backward is off by order 1).
GRADIENT_TOLERANCE = 5e-2


# ---------------------------------------------------------------------------------------------
# shared pieces


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


def gather_list(number: str, work: Path, root: Path = ROOT) -> list[tuple[Path, str]]:
    """Files of a completed run of notebook ``number``, most important first: the run record
    and metrics, the executed notebook, PNG figures, the notebook's extra outputs written by
    this run (04: the weights bundle, 2.7 MB), animations (GIF), PDF figures."""
    stem = NOTEBOOKS[number]
    figures = work / "figures"
    items = [
        (figures / "runs" / f"{stem}.json", f"figures/runs/{stem}.json"),
        (figures / "runs" / f"{stem}.metrics.json", f"figures/runs/{stem}.metrics.json"),
        (work / "notebooks" / f"{stem}.ipynb", f"notebooks/{stem}.ipynb"),
    ]
    items += [(f, f"figures/{f.name}") for f in sorted(figures.glob("*.png"))]
    started = _record_start(figures / "runs" / f"{stem}.json")
    # only what this run wrote (a folder reused from an earlier command may hold an older one)
    left = figures / RUN_SUBDIR
    items += [
        (left / Path(rel).name, rel)
        for rel in EXTRA_OUTPUTS[number]
        if started is not None
        and (left / Path(rel).name).is_file()
        and (left / Path(rel).name).stat().st_mtime >= started - 1.0
    ]
    for ext in ("gif", "pdf"):
        items += [(f, f"figures/{f.name}") for f in sorted(figures.glob(f"*.{ext}"))]
    return items


def _record_start(path: Path) -> float | None:
    """UNIX time at which the run of record ``path`` started (its ``timestamp_utc``)."""
    import datetime as dt

    try:
        stamp = json.loads(path.read_text())["timestamp_utc"]
        when = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")
    except (OSError, KeyError, ValueError, TypeError):
        return None
    return when.replace(tzinfo=dt.timezone.utc).timestamp()


def source_commit(given: str | None) -> str | None:
    """``given``, else the commit of this checkout, else ``KACNB_SOURCE_COMMIT``."""
    return given or git_state(ROOT)[0]


def child_env(commit: str | None, data_dir: Path | None = None) -> dict:
    """The environment of the commands this tool starts: the repository on ``PYTHONPATH``,
    the commit for the run record, the MNIST folder (``--data-dir``, else ``data/mnist`` of
    the repository when the lease carried the files there)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if commit:
        env["KACNB_SOURCE_COMMIT"] = commit
    if data_dir is None and not env.get("KACNB_DATA_DIR") and (ROOT / "data" / "mnist").is_dir():
        data_dir = ROOT / "data" / "mnist"
    if data_dir is not None:
        env["KACNB_DATA_DIR"] = str(Path(data_dir).resolve())
    return env


def last_json(text: str) -> dict | None:
    """The JSON object on the last non-empty line of ``text`` (a benchmark's summary)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    try:
        value = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


# ---------------------------------------------------------------------------------------------
# bench: the three benchmarks


def benchmark_args(name: str, device: str) -> list[str]:
    """Default arguments of benchmark ``name`` on ``device``: on CUDA the sampler also times
    the CPU (the ratio between devices comes from the same run)."""
    if name == "bench_sampler":
        return ["--devices", *(("cpu", device) if device.startswith("cuda") else (device,))]
    return ["--device", device]


def bench(args) -> dict:
    t0 = time.time()
    out, work = args.out.resolve(), args.work.resolve()
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    extra = {}
    for item in args.args or []:
        name, sep, value = item.partition("=")
        if not sep or name not in BENCHMARKS:
            raise SystemExit(
                f"--args takes NAME=ARGUMENTS with NAME one of {', '.join(BENCHMARKS)}"
            )
        extra[name] = shlex.split(value)
    names = args.only or list(BENCHMARKS)
    env = child_env(source_commit(args.commit))
    results = {}
    for name in names:
        left = args.budget - (time.time() - t0) - args.finish_reserve
        if left < 1.0:
            results[name] = {"state": "no time"}
            continue
        cmd = [sys.executable, str(ROOT / "benchmarks" / f"{name}.py")]
        cmd += benchmark_args(name, args.device) + extra.get(name, [])
        started = time.time()
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=left
            )
            stdout, stderr, rc = proc.stdout, proc.stderr, proc.returncode
        except subprocess.TimeoutExpired as exc:
            stdout, stderr, rc = _text(exc.stdout), _text(exc.stderr), None
        log = stdout + (f"\n--- stderr ---\n{stderr}" if stderr.strip() else "")
        (out / f"{name}.log").write_text(log)
        # the summary is stdout's last line; warnings on stderr (compile, CUDA) come after it
        summary = last_json(stdout)
        result = {
            "state": "done" if rc == 0 and summary else "failed" if rc is not None else "killed",
            "rc": rc,
            "seconds": round(time.time() - started, 1),
        }
        if summary is not None:
            (out / f"{name}.json").write_text(json.dumps(summary) + "\n")
            (work / f"{name}.json").write_text(json.dumps(summary) + "\n")
        results[name] = result
    status = {
        "command": "bench",
        "device": args.device,
        "commit": source_commit(args.commit),
        "benchmarks": results,
        "seconds": round(time.time() - t0, 1),
    }
    (out / "bench_status.json").write_text(json.dumps(status, indent=1) + "\n")
    print(json.dumps(status))
    return status


def _text(data) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


# ---------------------------------------------------------------------------------------------
# run NN: one command of a notebook's run


def gradient_check(python: str, env: dict, work: Path, bench_work: Path, out: Path) -> dict:
    """Whether notebook 05 may use the optimised step on this device: the JSON summary of
    ``benchmarks/bench_train_mnist.py`` (the one ``bench`` left in ``bench_work``, else one
    short run of the optimised variant, kept in ``work``), with ``optimised_ok`` added; the
    summary is copied to ``out``."""
    summary = None
    for folder in (bench_work, work):
        path = folder / "bench_train_mnist.json"
        if path.exists():
            summary = json.loads(path.read_text())
            if summary.get("optimised_grad_rel_err") is not None:
                break
    if summary is None or summary.get("optimised_grad_rel_err") is None:
        proc = subprocess.run(
            [python, str(ROOT / "benchmarks" / "bench_train_mnist.py"), "--device", "cuda",
             "--steps", "20", "--variants", "bf16 + channels_last + compile"],
            capture_output=True, text=True, env=env, cwd=ROOT,
        )  # fmt: skip
        summary = last_json(proc.stdout) or {"error": (proc.stdout + proc.stderr)[-2000:]}
        (work / "bench_train_mnist.json").write_text(json.dumps(summary) + "\n")
    err = summary.get("optimised_grad_rel_err")
    summary["optimised_ok"] = err is not None and err < GRADIENT_TOLERANCE
    (out / "bench_train_mnist.json").write_text(json.dumps(summary) + "\n")
    return summary


def run(args) -> dict:
    t0 = time.time()
    number = args.notebook
    stem = NOTEBOOKS[number]
    for flag, name in (("--checkpoints", "checkpoints"), ("--train-steps", "train_steps")):
        if getattr(args, name) is not None and name not in HAS_PARAMETER[number]:
            raise SystemExit(f"{flag} applies to notebook 05 only (04 has no such parameter)")
    out = args.out.resolve()
    work = (args.work or LEASE_DIR / stem).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    python = tool_python(work, args.wheelhouse)
    commit = source_commit(args.commit)
    env = child_env(commit, args.data_dir)
    cmd = [python, "-m", "kacnb", "run", stem, "--profile", args.profile, "--device",
           args.device, "--output-dir", str(work / "notebooks"), "--figures-dir",
           str(work / "figures"), "--no-progress"]  # fmt: skip
    if args.checkpoints is not None:  # (the executed notebook then shows this path)
        cmd += ["-p", f"checkpoints={str(args.checkpoints.resolve())!r}"]
    if args.train_steps is not None:
        cmd += ["-p", f"train_steps={args.train_steps}"]
    if number == "05" and args.device.startswith("cuda"):
        check = gradient_check(python, env, work, args.bench_work.resolve(), out)
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
    items = gather_list(number, work) if state == "done" else []
    items.append((log, "kacnb_run.log"))
    if state != "done":
        partial = work / "notebooks" / f"{stem}.partial.ipynb"
        items.append((partial, f"notebooks/{stem}.partial.ipynb"))
    result = gather(items, out, int(args.max_mib * 2**20))
    status = {
        "notebook": stem,
        "state": state,
        "next": {
            "done": "nothing: the results are in this folder",
            "continue": "run the same command again (checkpoints are on the machine's disk)",
        }.get(state, "read kacnb_run.log"),
        "profile": args.profile,
        "device": args.device,
        "commit": commit,
        "train_steps": args.train_steps,
        "chunks": chunks,
        "seconds": time.time() - t0,
        **result,
    }
    (out / "lease_status.json").write_text(json.dumps(status, indent=1) + "\n")
    print(json.dumps(status))
    return status


def add_run_options(pr: argparse.ArgumentParser) -> None:
    """The options of one ``run`` command (shared with ``tools/gpu_lease_05.py run``)."""
    pr.add_argument("--out", type=Path, required=True, help="folder of the files to bring back")
    pr.add_argument("--budget", type=float, default=540.0, help="seconds this command may take")
    pr.add_argument(
        "--reserve",
        type=float,
        default=150.0,
        help="seconds kept after the training deadline: the step or compile in progress, "
        "sampling, figures, publishing and copying (default 150)",
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
        help="05 only: checkpoint folder (default: the notebook's, "
        "checkpoints/05_mnist/<profile>; the smoke profile keeps none unless given)",
    )
    pr.add_argument(
        "--work", type=Path, default=None, help="machine disk (default runs/lease/<stem>)"
    )
    pr.add_argument(
        "--bench-work",
        type=Path,
        default=LEASE_DIR / "bench",
        help="where `bench` left its JSON summaries (05's gradient check reuses them)",
    )
    pr.add_argument("--wheelhouse", type=Path, default=None)
    pr.add_argument("--data-dir", type=Path, default=None, help="MNIST IDX files")
    pr.add_argument("--profile", default="paper", choices=("smoke", "quick", "paper"))
    pr.add_argument("--device", default="cuda")
    pr.add_argument("--commit", default=None, help="commit of the copied tree (for the record)")
    pr.add_argument("--train-steps", type=int, default=None, help="05 only: iterations per model")
    pr.add_argument("--max-mib", type=float, default=64.0, help="cap on the files brought back")
    pr.add_argument("--loop", action="store_true", help="repeat chunks until done or budget")
    pr.set_defaults(func=run)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("run", help="one command of a notebook's run (run it again to continue)")
    pr.add_argument("notebook", choices=sorted(NOTEBOOKS), help="04 or 05")
    add_run_options(pr)
    pb = sub.add_parser("bench", help="the three benchmarks, one after the other")
    pb.add_argument("--out", type=Path, required=True, help="folder of the files to bring back")
    pb.add_argument("--budget", type=float, default=300.0, help="seconds for all three")
    pb.add_argument("--finish-reserve", type=float, default=10.0)
    pb.add_argument("--device", default="cuda")
    pb.add_argument("--work", type=Path, default=LEASE_DIR / "bench", help="machine disk")
    pb.add_argument("--only", nargs="+", choices=BENCHMARKS, default=None)
    pb.add_argument(
        "--args",
        action="append",
        metavar='NAME="ARGS"',
        help='extra arguments of one benchmark, e.g. bench_train_2d="--steps 100"',
    )
    pb.add_argument("--commit", default=None, help="commit of the copied tree (for the record)")
    pb.set_defaults(func=bench)
    return p


def check_args(args) -> None:
    """Refuse what cannot work before any time is spent (a message, not a traceback)."""
    if getattr(args, "budget", 1) <= 0 or getattr(args, "max_mib", 1) <= 0:
        raise SystemExit("--budget and --max-mib must be > 0")
    if getattr(args, "device", "cpu").startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--device cuda, but this machine's torch sees no CUDA device")


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    check_args(args)
    return args.func(args)


if __name__ == "__main__":
    main()
