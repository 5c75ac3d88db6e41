"""Train notebook 04's four models at the quick settings and write their sample metrics as JSON.

Used once to measure the effect of the training-target fix (targets from the sampled noise,
paper Sections 6-7): run it with the package before the fix and after it, same settings and
seeds, and compare. Usage::

    python tools/target_fix_baseline.py OUT.json [--steps 20000]

The numbers are those of notebook 04's metrics table: coverage within 5 and 50 mode standard
deviations (5e-4, 5e-3) and within 0.05, mean nearest-mode distance, the largest learned speed
along trajectories, and the dopri5 NFE of generation.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from kacnb.cfm.metrics import grid_mixture
from kacnb.experiments import gmm2d

RADII = (5e-4, 5e-3, 0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--n-gen", type=int, default=4000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    gmm = grid_mixture(std=1e-4)
    gen = torch.Generator().manual_seed(0)
    truth = gmm.sample(args.n_gen, generator=gen)
    out = {"steps": args.steps, "n_gen": args.n_gen, "cpu": platform.processor(), "models": {}}
    for spec in gmm2d.paper_models(eps=1e-3, T=1.0):
        start = time.perf_counter()
        tr = gmm2d.train_model(
            spec,
            args.steps,
            gmm=gmm,
            seed=0,
            batch_size=256,
            lr=5e-4,
            grad_clip=1.0,
            ema_decay=0.999,
            eval_every=2000,
            n_val=500,
            progress=False,
        )
        x0 = gmm.sample(args.n_gen, generator=gen)
        res = gmm2d.generate(tr.model, spec.path, x0, generator=gen)
        q = gmm2d.sample_quality(res.x, gmm, truth, RADII)
        times = gmm2d.log_time_grid(spec.path, 30).to(torch.float32)
        x_T = spec.path.latent(gmm.sample(1000, generator=gen), generator=gen)
        _, speed = gmm2d.speed_along(tr.model, x_T, times)
        out["models"][spec.key] = {
            "best_step": tr.result.best_step,
            "best_val_nll": tr.result.best_value,
            "nll": q["nll"],
            "coverage_5sigma": q["covered"][5e-4],
            "coverage_50sigma": q["covered"][5e-3],
            "coverage_0.05": q["covered"][0.05],
            "nearest": q["nearest"],
            "max_speed": float(speed.max()),
            "nfe": res.nfe,
            "seconds": time.perf_counter() - start,
        }
        print(spec.key, out["models"][spec.key], flush=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
