"""Smoke test of ``benchmarks/bench_train_mnist.py`` on the CPU: it times fp32 eager and the
optimised step (bf16 + channels_last, with and without torch.compile) in one run and prints
a JSON summary as its last line. Throughput numbers are not checked (no timed unit tests);
the structure and the finiteness of the measured losses are."""

from __future__ import annotations

import json
import math

import pytest
from scripts import load_script


def _bench():
    return load_script("benchmarks/bench_train_mnist.py")


def test_benchmark_smoke_prints_a_json_summary_last(capsys):
    bench = _bench()
    # the small U-Net and batch of tests/test_train_optimised.py: inductor's cache is shared
    argv = ["--device", "cpu", "--steps", "2", "--batch", "8", "--base", "8", "--levels", "2"]
    bench.main([*argv, "--blocks", "1", "--warmup", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["device"] == "cpu"
    assert summary["unet"] == {"base": 8, "levels": 2, "blocks": 1}
    assert summary["batch"] == 8 and summary["timed_steps"] == 2
    names = [row["variant"] for row in summary["rows"]]
    assert names == [
        "fp32 eager",
        "bf16 + channels_last",
        "fp32 + compile",
        "bf16 + channels_last + compile",
    ]
    for row in summary["rows"]:
        assert "error" not in row, row
        assert row["images_per_s"] > 0 and math.isfinite(row["last_loss"])
        assert row["host_syncs_in_loop"] is None  # only counted on CUDA
    for row in summary["rows"][1:]:  # one step against fp32 eager, same weights and draws
        assert 0 < row["grad_rel_err"] < 1 and row["loss_rel_err"] < 1e-2, row
    assert summary["rows"][1]["grad_rel_err"] < 5e-2  # eager bf16: bf16 accuracy
    assert summary["rows"][2]["grad_rel_err"] < 1e-4  # compiled fp32: float32 accuracy
    assert summary["optimised_grad_rel_err"] == summary["rows"][3]["grad_rel_err"]
    assert summary["rows"][0]["speedup"] == 1.0
    assert summary["optimised_variant"] == "bf16 + channels_last + compile"
    assert summary["speedup"] == pytest.approx(
        summary["optimised_images_per_s"] / summary["fp32_eager_images_per_s"]
    )
    # cpu_speedup: the fastest variant among those whose gradient passes the tolerance
    tol = summary["gradient_tolerance"]
    ok = [r for r in summary["rows"] if r.get("grad_rel_err", 0.0) < tol]
    best = max(ok, key=lambda r: r["speedup"])
    assert summary["fastest_correct_variant"] == best["variant"]
    assert summary["cpu_speedup"] == best["speedup"]
    # the human-readable table precedes the JSON line
    assert any(line.startswith("| fp32 eager |") for line in lines[:-1])


def test_benchmark_refuses_an_unknown_variant(capsys):
    with pytest.raises(SystemExit):
        _bench().main(["--device", "cpu", "--variants", "fp8 magic"])
    assert "unknown variant" in capsys.readouterr().err
