"""Smoke test of ``benchmarks/bench_sample_mnist.py`` on the CPU: every sampling variant is
timed in one run against fp32 eager from the same latents and a JSON summary is printed last.
Throughput is not checked (no timed unit tests); the agreement of the images is."""

from __future__ import annotations

import json

from scripts import load_script


def test_sampling_benchmark_compares_every_variant_with_fp32_eager(capsys):
    bench = load_script("benchmarks/bench_sample_mnist.py")
    summary = bench.main(["--n", "8", "--steps", "2", "--base", "8", "--levels", "2"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == summary
    rows = {r["variant"]: r for r in summary["rows"]}
    assert list(rows) == list(bench.VARIANTS)
    assert rows["fp32 eager"]["max_abs_diff"] == 0.0 and rows["fp32 eager"]["speedup"] == 1.0
    # fp32 variants reorder float32 sums only; chunking changes nothing per image
    assert rows["fp32 eager in chunks of n/4"]["max_abs_diff"] < 1e-5
    # forked single-thread workers: the same images, whatever the thread count
    assert rows[bench.FORKED]["max_abs_diff"] < 1e-5 and rows[bench.FORKED]["correct"]
    assert rows["fp32 channels_last"]["max_abs_diff"] < 1e-4
    for name in ("fp32 compile", "fp32 compile + channels_last"):
        assert "error" in rows[name] or rows[name]["max_abs_diff"] < 1e-4, rows[name]
    # bf16 rounds the network's arithmetic: visibly different, but not a different image
    assert 1e-5 < rows["bf16 autocast"]["max_abs_diff"] < 0.5
    assert rows["bf16 autocast"]["correct"] is (rows["bf16 autocast"]["max_abs_diff"] < 1e-3)
    assert summary["fastest_correct_variant"] in rows
    assert rows[summary["fastest_correct_variant"]]["correct"]
