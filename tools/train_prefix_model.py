"""Train notebook 04's Kac (25, 5) model on the pre-fix law and ship it as a weights bundle.

The model is :func:`kacnb.experiments.gmm2d.prefix_model`: the path draws ``K(t)`` from the
law the authors' sampler drew before pull request #1 (docs/paper-notes.md, "what the
authors' public code says"; :mod:`kacnb.theory.prefix_law`), the target is the exact velocity
[41] of the drawn noise. Every other setting is that of the shipped paper-scale bundle
``pretrained/04_cfm_gmm_2d_paper.json`` (batch, learning rate, clipping, EMA, validation,
MLP, tolerances), with 500,000 iterations and seed 0, so that the two (25, 5) models differ
only in the law of the noise. Notebook 04 scores them side by side.

Resumable: checkpoints go to ``checkpoints/04_prefix_law/`` every validation (20,000
iterations); the same command continues. With ``--time-limit SECONDS`` training stops at the
limit after writing its checkpoint (exit 3). When training finishes, the bundle
``pretrained/04_prefix_law_paper.pt`` + ``.json`` (SHA-256, settings, run) is written. The
last line printed is a JSON summary.

    python tools/train_prefix_model.py --time-limit 3000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = "04_cfm_gmm_2d_paper"
NAME = "04_prefix_law_paper"
#: Settings of the shipped bundle this model copies (the rest of its .json is provenance).
COPIED = ("batch_size", "lr", "grad_clip", "ema_decay", "eval_every", "n_val", "width", "depth")
COPIED += ("rtol", "atol")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500_000, help="iterations (paper: 500k)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=None, help="seconds for this call")
    parser.add_argument("--out", type=Path, default=ROOT / "pretrained", help="bundle folder")
    parser.add_argument("--work", type=Path, default=ROOT / "checkpoints" / "04_prefix_law")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.steps < 1 or (args.time_limit is not None and args.time_limit <= 0):
        parser.error("--steps and --time-limit must be positive")
    start = time.time()
    if args.time_limit is not None:
        os.environ["KACNB_DEADLINE"] = str(start + args.time_limit)  # training stops there

    import torch

    from kacnb.cfm import pretrained
    from kacnb.cfm.metrics import grid_mixture
    from kacnb.cfm.train import TimeLimitReached
    from kacnb.collection.provenance import device_name, git_state
    from kacnb.experiments import gmm2d

    shipped = json.loads((ROOT / "pretrained" / f"{SHIPPED}.json").read_text())
    settings = {k: shipped["settings"][k] for k in COPIED}
    spec = gmm2d.prefix_model(T=1.0)
    gmm = grid_mixture(std=1e-4)  # notebook 04's mixture
    print(f"{spec.label}: {args.steps:,} iterations, settings of {SHIPPED}: {settings}")
    try:
        trained = gmm2d.train_model(
            spec, args.steps, gmm=gmm, seed=args.seed, checkpoint_dir=args.work,
            progress=not args.no_progress, **settings,
        )  # fmt: skip
    except TimeLimitReached as exc:
        print(f"stopped at the time limit: {exc}; the same command continues", flush=True)
        print(json.dumps({"finished": False, "seconds": round(time.time() - start)}))
        sys.exit(3)
    commit, dirty = git_state(ROOT)
    run = (
        f"pre-fix law, {args.steps:,} iterations, device cpu ({device_name('cpu')}), "
        f"torch {torch.__version__}, seed {args.seed}, commit {commit}{' (dirty)' if dirty else ''}"
    )
    info = {"settings": {**settings, "steps": args.steps}, "run": run, "path": repr(spec.path)}
    js = pretrained.save_bundle({spec.key: trained}, args.out, NAME, info)
    res = trained.result
    summary = {
        "finished": True,
        "bundle": str(js),
        "best_step": res.best_step,
        "best_val_nll": res.best_value,
        "seconds": round(time.time() - start),
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted: checkpoints are written every validation; the same command resumes")
