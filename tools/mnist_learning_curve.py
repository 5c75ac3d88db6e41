"""Measure MNIST sample quality against CPU training time, long enough to see where it stops.

For each U-Net / batch configuration (:data:`CONFIGS`) and each model (default: (a, c) = (25, 5)
and (1, 1), each for T = 1 and T = 5), train from scratch and score the EMA weights at fixed
training times (``--score-at``, seconds; default up to 30 minutes): 256 digits generated with
100 explicit Euler steps (the authors' MNIST script integrates over 100 time points) from the
same latents each time, scored by the Frechet distance (FD) in the classifier's feature space,
the share of confidently classified digits and the label coverage
(`kacnb.experiments.learning_curve`).

**Speed and time.** Before the first curve of a configuration, the fastest training-step
variant whose gradient matches fp32 (`kacnb.cfm.step_variants.choose`: fp32 eager or bf16 autocast
with channels_last on a CPU) and its speed in optimiser steps per second are measured once, on
the machine as it is then (run it idle: the record keeps the load average). A point's
``train_s`` is its step count divided by that speed, the training time on the idle machine, so
that other work slowing the run down does not move the curve; the points are scheduled by step.
A finished curve names the CPU that trained it (``cpu``) and the FD floor of the classifier
that scored it (``fd_floor``; the classifier is trained again, seeded, in every call); trained
on another machine than the one whose speed was measured, its time axis is still that
machine's (same steps, same seconds), and only float32 rounding differs.

**Resumable.** The record (``--out``) is rewritten after every scored point; checkpoints go
to ``--work``. The same command continues where a run stopped: finished curves are kept,
an unfinished one resumes from its checkpoint (its points after the checkpoint are scored
again). With ``--time-limit SECONDS`` no curve is started that would not finish in time
(estimated from the budget and the scoring cost seen so far) and training stops at the limit
with a checkpoint (exit 3).

    python tools/mnist_learning_curve.py --data-dir DIR --time-limit 9000

``--remeasure-speed`` measures the speed of the named configurations again (keep the machine
idle) and puts every stored point of theirs on the new time axis (``train_s = step / speed``);
the superseded measurement stays in the record under ``speed_superseded``. The scoring steps
of unfinished curves follow the new speed, and a finished curve that the new speed leaves
short of the last scoring time is trained again up to it (from scratch, as no checkpoint is
kept of a finished curve); its earlier steps are scored again, and the curve's ``rescored``
entry says how far those points moved (0 on the same machine: the run is seeded).

The last line printed is a JSON summary. The record of the quick profile's choice
(``figures/runs/05_learning_curve.json``, 240 s per configuration, 20 Euler steps) was made by
this tool's first version at commit 24b71df.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from kacnb.collection.provenance import device_name, git_state

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "figures" / "runs" / "05_learning_curve_long.json"
WORK = ROOT / "checkpoints" / "05_learning_curve"

#: Configurations: U-Net (base, levels, blocks), batch, learning rate, EMA decay.
CONFIGS = {
    "u16-b32": {"base": 16, "levels": 2, "blocks": 1, "batch": 32, "lr": 2e-3, "ema": 0.999},
    "u32-b64": {"base": 32, "levels": 2, "blocks": 1, "batch": 64, "lr": 2e-3, "ema": 0.999},
    "u32l3-b64": {"base": 32, "levels": 3, "blocks": 1, "batch": 64, "lr": 2e-3, "ema": 0.999},
}
#: Models: key -> (a, c, T).
MODELS = {
    "a25_c5_T1": (25.0, 5.0, 1.0),
    "a25_c5_T5": (25.0, 5.0, 5.0),
    "a1_c1_T1": (1.0, 1.0, 1.0),
    "a1_c1_T5": (1.0, 1.0, 5.0),
}
#: Training seconds (idle machine) at which the curves are scored.
SCORE_AT = (90, 180, 360, 720, 1200, 1800)
#: Optimiser steps between the probe's calls (scoring steps are multiples of it).
EVAL_EVERY = 50
#: Seconds of training steps timed for a configuration's speed (after 5 warm-up steps).
SPEED_S = 45.0


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(path)


def _speed(name, data, device) -> dict:
    """The step variant chosen for a configuration and its optimiser steps per second."""
    import torch

    from kacnb.cfm import step_variants
    from kacnb.experiments.mnist_exp import MnistModel, train_model

    c = CONFIGS[name]
    unet = {k: c[k] for k in ("base", "levels", "blocks")}
    choice = step_variants.choose(unet, c["batch"], device, steps=4, warmup=1)
    settings = {**unet, "batch": c["batch"], "lr": c["lr"], "ema": c["ema"], "grad_clip": 1.0}
    settings.update({k: v for k, v in choice.settings.items() if k != "compile"})
    spec = MnistModel(25.0, 5.0, 1.0)
    # about SPEED_S seconds of timed steps at the speed the variant check saw
    ips = next(r["images_per_s"] for r in choice.rows if r["variant"] == choice.name)
    timed = max(20, round(SPEED_S * ips / c["batch"]))
    seconds = []
    for steps in (5, 5 + timed):
        t0 = time.perf_counter()
        train_model(spec, data, {**settings, "steps": steps}, device, None, 0, progress=False)
        seconds.append(time.perf_counter() - t0)
    return {
        "variant": choice.to_json(),
        "steps_per_s": timed / max(seconds[1] - seconds[0], 1e-9),
        "timed_steps": timed,
        "torch_threads": torch.get_num_threads(),
        "load_avg_1min": os.getloadavg()[0],
        "measured_utc": _now(),
    }


def _rescale(record: dict, name: str, speed: dict) -> None:
    """Put the stored points of configuration ``name`` on the time axis of ``speed``."""
    rate = speed["steps_per_s"]
    old = record["speed"].pop(name, None)
    if old is not None:
        record.setdefault("speed_superseded", {}).setdefault(name, []).append(old)
    record["speed"][name] = speed
    partial = [v for k, v in record["partial"].items() if k.split("/")[0] == name]
    curves = [c for c in record["curves"] if c["name"] == name]
    for holder in partial + curves:
        for p in holder["points"]:
            p["train_s"] = p["step"] / rate
        holder.pop("score_steps", None)  # recomputed from the new speed when it resumes
    for c in curves:
        c["steps_per_s"] = rate


def _score_steps(rate: float, score_at) -> list[int]:
    """Optimiser steps (multiples of EVAL_EVERY) at ``rate`` steps/s nearest above the
    training times ``score_at`` (s)."""
    return sorted({max(1, math.ceil(rate * t / EVAL_EVERY)) * EVAL_EVERY for t in score_at})


def _rescored(old_points: list[dict], points) -> dict:
    """How far the points of an extended curve moved from its first run at the same steps."""
    new = {p.step: p for p in points}
    pairs = [(p, new[p["step"]]) for p in old_points if p["step"] in new]
    return {
        "steps": [p["step"] for p, _ in pairs],
        "max_abs_fd_change": max((abs(p["fd"] - q.fd) for p, q in pairs), default=None),
        "max_abs_confident_change": max(
            (abs(p["confident"] - q.confident) for p, q in pairs), default=None
        ),
        "first_run": old_points,
    }


def _settings(name: str, speed: dict) -> dict:
    c = CONFIGS[name]
    out = {
        "base": c["base"], "levels": c["levels"], "blocks": c["blocks"], "steps": 10**6,
        "batch": c["batch"], "lr": c["lr"], "ema": c["ema"], "grad_clip": 1.0,
    }  # fmt: skip
    variant = speed["variant"]["settings"]
    out["amp"] = variant["amp"]
    out["channels_last"] = variant["channels_last"]
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--score-at", nargs="+", type=float, default=list(SCORE_AT))
    parser.add_argument("--euler-steps", type=int, default=100, help="Euler steps per sample")
    parser.add_argument("--n-samples", type=int, default=256, help="digits per scored point")
    parser.add_argument("--data-dir", default=None, help="MNIST folder (else KACNB_DATA_DIR)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--time-limit", type=float, default=None, help="seconds for this call")
    parser.add_argument(
        "--remeasure-speed", nargs="+", default=[], choices=list(CONFIGS), metavar="CONFIG",
        help="measure these configurations' speed again and rescale their stored points",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--work", type=Path, default=WORK, help="checkpoint folder")
    args = parser.parse_args(argv)
    if args.euler_steps < 1 or args.n_samples < 2 or min(args.score_at) <= 0:
        parser.error("--euler-steps >= 1, --n-samples >= 2 and --score-at > 0 are needed")
    start = time.time()
    stop_at = start + args.time_limit if args.time_limit else None
    if stop_at is not None:
        os.environ["KACNB_DEADLINE"] = str(stop_at)  # training checkpoints and stops there

    import torch

    from kacnb.cfm.metrics import frechet_distance
    from kacnb.cfm.train import TimeLimitReached
    from kacnb.experiments.classifier import features
    from kacnb.experiments.data import DataError, mnist
    from kacnb.experiments.learning_curve import Curve, CurvePoint, QualityProbe, measure
    from kacnb.experiments.mnist_exp import (
        MnistModel,
        checkpoint_dir,
        checkpoint_step,
        classifier_or_train,
        image_sampler,
        model_checkpoint,
    )

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    try:
        train_x, train_y = mnist("train", root=args.data_dir, download=False)
        test_x, _ = mnist("test", root=args.data_dir, download=False)
    except DataError as exc:
        sys.exit(f"error: {exc}")
    half = test_x.shape[0] // 2
    test_a, test_b = test_x[:half], test_x[half:]
    # the classifier of notebook 05's quick profile (cached there when that ran)
    clf = classifier_or_train(train_x, train_y, 2, device, checkpoint_dir("05_mnist", "quick"), 0)
    ref = features(clf, test_b)
    data = image_sampler(train_x, device)
    floor = frechet_distance(features(clf, test_a[: args.n_samples]), ref)

    record = json.loads(args.out.read_text()) if args.out.exists() else None
    if record is None:
        record = {
            "what": "MNIST sample quality against CPU training time, per U-Net configuration "
            "and model",
            "n_samples": args.n_samples,
            "euler_steps": args.euler_steps,
            "score_at_s": sorted(args.score_at),
            "eval_every": EVAL_EVERY,
            "train_s": "optimiser steps / the configuration's steps_per_s measured on the "
            "idle machine (scoring time not included)",
            "fd_floor": floor,
            "fd_latent": {},
            "reference": f"{half} test images (half B)",
            "machine": {
                "cpu": device_name("cpu"),
                "cpu_count": os.cpu_count(),
                "torch_threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "python": platform.python_version(),
            },
            "started_utc": _now(),
            "speed": {},
            "partial": {},
            "curves": [],
        }
    for key in ("n_samples", "euler_steps", "score_at_s"):
        given = {"n_samples": args.n_samples, "euler_steps": args.euler_steps,
                 "score_at_s": sorted(args.score_at)}[key]  # fmt: skip
        if record[key] != given:
            sys.exit(f"error: {args.out} was measured with {key}={record[key]}, not {given}")
    print(f"FD floor ({args.n_samples} test images): {floor:.1f}", flush=True)

    # Every configuration's speed first, while the machine is (kept) idle.
    for name in dict.fromkeys(args.configs + args.remeasure_speed):
        if name not in record["speed"] or name in args.remeasure_speed:
            print(f"{name}: measuring the step variants and the speed ...", flush=True)
            _rescale(record, name, _speed(name, data, device))
            _write(args.out, record)
            sp = record["speed"][name]
            print(
                f"{name}: {sp['variant']['variant']} ({sp['variant']['speedup']:.2f}x fp32), "
                f"{sp['steps_per_s']:.2f} steps/s",
                flush=True,
            )

    # A finished curve that a new speed leaves short of the last scoring time is trained again
    # to it; its old steps are scored again too (a determinism check: same seed, same points).
    for cur in list(record["curves"]):
        name, model_key = cur["name"], cur["model"]
        if name not in args.configs or model_key not in args.models:
            continue
        last = _score_steps(record["speed"][name]["steps_per_s"], args.score_at)[-1]
        if cur["points"][-1]["step"] < last:
            record["curves"].remove(cur)
            record["partial"][f"{name}/{model_key}"] = {
                "points": [],
                "extends": cur,
            }
            _write(args.out, record)
            print(f"{name}/{model_key}: finished at step {cur['points'][-1]['step']}, "
                  f"short of step {last}: trained again to it", flush=True)  # fmt: skip

    done = {(c["name"], c["model"]) for c in record["curves"]}
    units = [(m, c) for m in args.models for c in args.configs if (c, m) not in done]
    ran, stopped = [], None
    for model_key, name in units:
        a, c_, T = MODELS[model_key]
        spec = MnistModel(a, c_, T)
        speed = record["speed"][name]
        if model_key not in record["fd_latent"]:
            zeros = torch.zeros((args.n_samples, 1, 28, 28))
            noise = spec.path().latent(zeros, torch.Generator().manual_seed(0))  # K(T), no data
            record["fd_latent"][model_key] = frechet_distance(
                features(clf, noise.clamp(-1, 1)), ref
            )
        rate = speed["steps_per_s"]
        score_steps = _score_steps(rate, args.score_at)
        unit = f"{name}/{model_key}"
        partial = record["partial"].get(unit, {"points": []})
        extends = partial.get("extends")
        if extends is not None:
            score_steps = sorted(set(score_steps) | {p["step"] for p in extends["points"]})
        # the scoring cost per point of this configuration (a larger U-Net samples several
        # times more slowly); of any configuration while this one has none yet
        same = [p["sample_s"] for cur in record["curves"] if cur.get("name") == name
                for p in cur["points"]]  # fmt: skip
        same += [p["sample_s"] for u, part in record["partial"].items()
                 if u.split("/")[0] == name for p in part["points"]]  # fmt: skip
        seen = sorted(same or [p["sample_s"] for cur in record["curves"] for p in cur["points"]])
        # the median: single points scored while other work shared the cores took up to 6x
        sample_s = seen[len(seen) // 2] if seen else 90.0
        estimate = (score_steps[-1] - max([p["step"] for p in partial["points"]] or [0])) / rate
        estimate += sample_s * len(score_steps) + 30
        if stop_at is not None and time.time() + estimate > stop_at:
            print(f"{unit}: not started, it needs about {estimate:.0f} s", flush=True)
            stopped = "time limit"
            break
        settings = _settings(name, speed)
        work = args.work / name
        ckpt_step = checkpoint_step(model_checkpoint(work, spec, settings, 0))

        def save(points, unit=unit, score_steps=score_steps):
            record["partial"][unit] = {
                **record["partial"].get(unit, {}),
                "score_steps": score_steps,
                "points": [p.__dict__ for p in points],
            }
            _write(args.out, record)
            p = points[-1]
            print(
                f"{unit}: step {p.step} ({p.train_s:.0f} s of training), FD {p.fd:.1f}, "
                f"confident {p.confident:.2f}, covered {p.coverage}, sampling {p.sample_s:.0f} s",
                flush=True,
            )

        probe = QualityProbe(
            spec, clf, ref, args.n_samples, spec.T / args.euler_steps, EVAL_EVERY, seed=1,
            score_steps=score_steps, seconds_per_step=1.0 / rate,
            points=[CurvePoint(**p) for p in partial["points"]], start_step=ckpt_step,
            on_point=save,
        )  # fmt: skip
        print(f"{unit}: training from step {ckpt_step} to {score_steps[-1]}", flush=True)
        try:
            curve: Curve = measure(
                name, spec, data, settings, probe, device, seed=0, progress=False, directory=work
            )
        except TimeLimitReached as exc:
            print(f"{unit}: {exc}", flush=True)
            stopped = "time limit"
            break
        entry = curve.to_json()
        entry["settings"].pop("steps")
        if extends is not None:
            entry["rescored"] = _rescored(extends["points"], curve.points)
        entry.update(
            {
                "model": model_key,
                "steps_per_s": rate,
                "variant": speed["variant"]["variant"],
                # the CPU that trained it (train_s stays in the speed's machine's seconds) and
                # the floor of the classifier that scored it: the classifier is trained again
                # in every call, the same on one machine but not to the last bit on another
                "cpu": device_name("cpu"),
                "fd_floor": floor,
                "git_commit": git_state(ROOT)[0],
                "finished_utc": _now(),
            }
        )
        record["curves"].append(entry)
        record["partial"].pop(unit, None)
        _write(args.out, record)
        ran.append(unit)
        best = min(curve.points, key=lambda p: p.fd)
        print(f"{unit}: done, best FD {best.fd:.1f} at {best.train_s:.0f} s", flush=True)

    left = [f"{c}/{m}" for m, c in units if f"{c}/{m}" not in ran]
    summary = {
        "out": str(args.out),
        "fd_floor": round(floor, 1),
        "finished_now": ran,
        "left": left,
        "stopped": stopped,
        "seconds": round(time.time() - start),
    }
    print(json.dumps(summary))
    if stopped:
        sys.exit(3)
    return summary


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        # the record is rewritten atomically after every point, checkpoints every 500 steps
        sys.exit("interrupted: the record keeps every scored point; the same command resumes")
