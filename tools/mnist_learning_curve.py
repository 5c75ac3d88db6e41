"""Measure sample quality against training time for one MNIST model on this machine's CPU.

For the model (a, c) = (25, 5), T = 1 (notebook 05) and each U-Net / batch configuration below,
train from scratch and, every ``eval_every`` steps, generate digits with the EMA weights and
score them (Frechet distance in the classifier's feature space, share of confidently
classified samples, label coverage; `kacnb.learning_curve`). Each configuration runs until
``--budget`` seconds of training are spent. The record (with the machine, torch version,
thread count and commit) goes to ``figures/runs/05_learning_curve.json``; notebook 05 plots it
as ``nb05_learning_curve`` and its quick profile is the configuration this record picks.

    python tools/mnist_learning_curve.py --budget 360 --data-dir DIR

Run it on an otherwise idle machine: the times are the point. The last line printed is a JSON
summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from kacnb.provenance import device_name, git_state

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "figures" / "runs" / "05_learning_curve.json"

#: Configurations measured: U-Net (base, levels, blocks), batch, learning rate, EMA decay.
CONFIGS = {
    "u16-b32": {"base": 16, "levels": 2, "blocks": 1, "batch": 32, "lr": 2e-3, "ema": 0.99},
    "u16-b128": {"base": 16, "levels": 2, "blocks": 1, "batch": 128, "lr": 2e-3, "ema": 0.99},
    "u32-b64": {"base": 32, "levels": 2, "blocks": 1, "batch": 64, "lr": 2e-3, "ema": 0.99},
    "u24l3-b64": {"base": 24, "levels": 3, "blocks": 1, "batch": 64, "lr": 2e-3, "ema": 0.99},
}


def _steps_per_second(spec, data, settings, device) -> float:
    """Training speed of a configuration (for the eval period): the time of a 15-step run
    minus that of a 3-step one, so that set-up and the first, slow steps do not count."""
    from kacnb.mnist_exp import train_model

    seconds = []
    for steps in (3, 15):
        t0 = time.perf_counter()
        train_model(spec, data, {**settings, "steps": steps}, device, None, 0, progress=False)
        seconds.append(time.perf_counter() - t0)
    return 12 / max(seconds[1] - seconds[0], 1e-9)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--budget", type=float, default=360.0, help="training seconds per configuration"
    )
    parser.add_argument("--points", type=int, default=10, help="scored points per configuration")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--n-samples", type=int, default=256, help="digits per scored point")
    parser.add_argument("--euler-dt", type=float, default=0.05)
    parser.add_argument("--data-dir", default=None, help="MNIST folder (else KACNB_DATA_DIR)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--append",
        action="store_true",
        help="keep the other configurations of an existing record (those measured now replace "
        "their old curves)",
    )
    args = parser.parse_args(argv)

    import torch

    from kacnb.classifier import features
    from kacnb.data import DataError, mnist
    from kacnb.learning_curve import QualityProbe, measure
    from kacnb.metrics import frechet_distance
    from kacnb.mnist_exp import (
        MnistModel,
        checkpoint_dir,
        classifier_or_train,
        euler_steps,
        image_sampler,
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
    spec = MnistModel(25.0, 5.0, 1.0)
    data = image_sampler(train_x, device)
    floor = frechet_distance(features(clf, test_a[: args.n_samples]), ref)
    zeros = torch.zeros((args.n_samples, 1, 28, 28))
    noise = spec.path().latent(zeros, torch.Generator().manual_seed(0))  # K(T), no data
    ceiling = frechet_distance(features(clf, noise.clamp(-1, 1)), ref)
    print(f"FD floor ({args.n_samples} test images): {floor:.1f}; latent noise: {ceiling:.1f}")

    curves = []
    for name in args.configs:
        c = CONFIGS[name]
        settings = {
            "base": c["base"], "levels": c["levels"], "blocks": c["blocks"], "steps": 10**6,
            "batch": c["batch"], "lr": c["lr"], "ema": c["ema"], "grad_clip": 1.0,
        }  # fmt: skip
        rate = _steps_per_second(spec, data, settings, device)
        every = max(1, round(rate * args.budget / args.points))
        probe = QualityProbe(
            spec, clf, ref, args.n_samples, args.euler_dt, every, seed=1, budget_s=args.budget
        )
        t0 = time.perf_counter()
        curve = measure(name, spec, data, settings, probe, device, seed=0, progress=False)
        curve.settings.pop("steps")
        curve.settings["measured_utc"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        curves.append(curve)
        last = curve.points[-1]
        print(
            f"{name}: {last.step} steps in {last.train_s:.0f} s training "
            f"({time.perf_counter() - t0:.0f} s with scoring), FD {last.fd:.1f}, "
            f"best FD {min(p.fd for p in curve.points):.1f}, confident {last.confident:.2f}",
            flush=True,
        )

    record = {
        "what": "sample quality of (a, c) = (25, 5), T = 1 against CPU training time",
        "model": spec.key,
        "n_samples": args.n_samples,
        "euler_dt": args.euler_dt,
        "euler_steps": euler_steps(spec.T, args.euler_dt),
        "budget_s": args.budget,
        "fd_floor": floor,
        "fd_latent": ceiling,
        "reference": f"{half} test images (half B)",
        "machine": {
            "cpu": device_name("cpu"),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "git_commit": git_state(ROOT)[0],
        "timestamp_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "curves": [c.to_json() for c in curves],
    }
    if args.append and args.out.exists():
        old = json.loads(args.out.read_text())
        fresh = {c.name for c in curves}
        kept = [c for c in old["curves"] if c["name"] not in fresh]
        record["curves"] = kept + record["curves"]
        order = list(CONFIGS)
        record["curves"].sort(key=lambda c: order.index(c["name"]) if c["name"] in order else 99)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(args.out)
    summary = {
        c.name: {
            "steps": c.points[-1].step,
            "train_s": round(c.points[-1].train_s, 1),
            "best_fd": round(min(p.fd for p in c.points), 1),
        }
        for c in curves
    }
    summary = {"out": str(args.out), "fd_floor": round(floor, 1), "configs": summary}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
