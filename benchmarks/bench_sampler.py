"""Throughput, set-up cost and accuracy of the three Kac samplers, measured in one run.

Samplers (paper Section 4):

* ``exact``  - Poisson-Beta construction, ``Kac.sample`` (no set-up);
* ``table``  - inverse-CDF table interpolated in (t, level), ``KacTableSampler``
  (the paper's route; default grid 10^4 times x 4096 levels as in its public code);
* ``walk``   - random walk of App. A.1, ``Kac.paths`` (one path per draw).

Throughput counts scalar draws per second: a draw of shape ``(n, dim)`` with ``t ~ U(0, T)``
per row (the flow-matching training draw). For ``dim = 784`` the number of rows is capped
so that ``n * dim`` stays within ``--max-elements`` (memory); the table prints the ``n``
used. Ratios are to the exact sampler on the same device and dim, measured in this run;
with two devices the JSON summary also gives each sampler's rate on the second over the
first (e.g. CUDA over CPU), from the same run.
Accuracy: the KS distance of 10^5 draws at ``t = T/2`` against ``Kac.cdf`` (continuous
part, atoms removed), next to the Monte-Carlo floor ``~0.87/sqrt(n)`` (the KS statistic's
median under the null). The last line printed is a JSON object: the settings, the devices,
one row per (device, dim, sampler) and ``device_ratios``.

Usage::

    python benchmarks/bench_sampler.py            # CPU, and CUDA when present
    python benchmarks/bench_sampler.py --a 1600 --c 10 --T 5
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import scipy.stats as st
import torch

from kacnb.collection.provenance import device_name
from kacnb.theory.kac import Kac, KacTableSampler


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device, repeats: int) -> float:
    fn()  # warm-up (allocations, CUDA kernels)
    _sync(device)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def _ks(kac: Kac, t: float, draws: torch.Tensor) -> float:
    draws = draws.double().cpu().reshape(-1)
    inner = draws[draws.abs() < kac.c * t * (1 - 1e-6)]
    m = math.exp(-kac.a * t)

    def cond_cdf(x):
        x = torch.as_tensor(np.asarray(x), dtype=torch.float64)
        return ((kac.cdf(torch.tensor(t, dtype=torch.float64), x) - m / 2) / (1 - m)).numpy()

    return float(st.kstest(inner.numpy(), cond_cdf).statistic), inner.numel()


def _samplers(kac: Kac, table: KacTableSampler, t: torch.Tensor, dim: int, T: float, gen):
    """The three samplers as zero-argument callables drawing ``(len(t), dim)`` values."""
    horizon = torch.tensor([T], device=t.device)
    return {
        "exact": lambda: kac.sample(t, dim=dim, generator=gen),
        "table": lambda: table.sample(t, dim=dim, generator=gen),
        # The walk draws whole paths; each is observed at the horizon T.
        "walk": lambda: kac.paths(horizon, t.numel(), dim=dim, generator=gen),
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", type=float, default=25.0)
    p.add_argument("--c", type=float, default=5.0)
    p.add_argument("--T", type=float, default=1.0)
    p.add_argument("--n", type=int, default=1_000_000, help="rows per draw")
    p.add_argument("--dims", type=int, nargs="+", default=[1, 784])
    p.add_argument(
        "--max-elements",
        type=int,
        default=None,
        help="cap on n*dim (default 2^24 on CPU, 2^28 on CUDA)",
    )
    p.add_argument("--n-times", type=int, default=10_000)
    p.add_argument("--n-levels", type=int, default=4096)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--devices", nargs="+", default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    kac = Kac(args.a, args.c)
    print(
        f"Kac(a={args.a:g}, c={args.c:g}), T={args.T:g}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads"
    )
    print(f"CPU: {device_name('cpu')}")
    rows, names = [], {}
    for dev_name in devices:
        device = torch.device(dev_name)
        names[dev_name] = device_name(dev_name)
        if device.type == "cuda":
            print(f"GPU: {names[dev_name]}")
        gen = torch.Generator(device=device).manual_seed(args.seed)
        table = KacTableSampler(
            kac, args.T, n_times=args.n_times, n_levels=args.n_levels, device=device
        )
        cap = args.max_elements or (1 << 24 if device.type == "cpu" else 1 << 28)
        for dim in args.dims:
            n = max(1, min(args.n, cap // dim))
            t = args.T * (1 - torch.rand(n, generator=gen, device=device))  # (0, T]
            samplers = _samplers(kac, table, t, dim, args.T, gen)
            base = None
            for name, fn in samplers.items():
                secs = _time(fn, device, args.repeats)
                rate = n * dim / secs
                base = rate if name == "exact" else base
                rows.append(
                    dict(device=dev_name, dim=dim, n=n, sampler=name, rate=rate, ratio=rate / base)
                )
        # Accuracy and set-up: once per device, at t = T/2 with 1e5 draws.
        t_half = torch.full((100_000,), args.T / 2, device=device)
        acc = {
            "exact": kac.sample(t_half, generator=gen),
            "table": table.sample(t_half, generator=gen),
            "walk": kac.paths(torch.tensor([args.T / 2], device=device), 100_000, generator=gen)[0],
        }
        for row in rows:
            if row["device"] == dev_name:
                ks, m = _ks(kac, args.T / 2, acc[row["sampler"]])
                row["ks"], row["floor"] = ks, 0.87 / math.sqrt(m)
                row["setup"] = table.setup_seconds if row["sampler"] == "table" else 0.0
                row["mem"] = table.nbytes / 2**20 if row["sampler"] == "table" else 0.0

    print(
        f"\nTable grid: {args.n_times} times x {args.n_levels} levels. "
        "Rate = scalar draws per second (best of repeats)."
    )
    header = (
        "| device | dim | n | sampler | draws/s | ratio to exact | set-up s | "
        "table MiB | KS at T/2 | MC floor |"
    )
    print(header)
    print("|" + "---|" * 10)
    for r in rows:
        print(
            f"| {r['device']} | {r['dim']} | {r['n']:,} | {r['sampler']} | {r['rate']:.3g} | "
            f"{r['ratio']:.2f} | {r['setup']:.2f} | {r['mem']:.0f} | {r['ks']:.4f} | "
            f"{r['floor']:.4f} |"
        )
    summary = {
        "benchmark": "bench_sampler",
        "kac": {"a": args.a, "c": args.c, "T": args.T},
        "table_grid": {"n_times": args.n_times, "n_levels": args.n_levels},
        "torch": torch.__version__,
        "devices": names,
        "rows": rows,
        "device_ratios": device_ratios(rows, devices),
    }
    print(json.dumps(summary))
    return summary


def device_ratios(rows: list[dict], devices: list[str]) -> list[dict]:
    """Each (dim, sampler)'s rate on every later device over its rate on the first."""
    first = {(r["dim"], r["sampler"]): r["rate"] for r in rows if r["device"] == devices[0]}
    return [
        {
            "device": r["device"],
            "over": devices[0],
            "dim": r["dim"],
            "sampler": r["sampler"],
            "ratio": r["rate"] / first[(r["dim"], r["sampler"])],
        }
        for r in rows
        if r["device"] != devices[0] and (r["dim"], r["sampler"]) in first
    ]


if __name__ == "__main__":
    main()
