"""Smoke test of ``benchmarks/bench_sampler.py`` on the CPU: the three samplers timed in one
run, with a JSON summary as the last line. Throughput numbers are not checked (no timed unit
tests); the structure, the ratios' definition and the accuracy columns are."""

from __future__ import annotations

import json

import pytest
from scripts import load_script


def _bench():
    return load_script("benchmarks/bench_sampler.py")


def test_benchmark_smoke_prints_a_json_summary_last(capsys):
    argv = ["--devices", "cpu", "--n", "20000", "--dims", "1", "3", "--n-times", "200"]
    _bench().main([*argv, "--n-levels", "256", "--repeats", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["kac"] == {"a": 25.0, "c": 5.0, "T": 1.0}
    assert list(summary["devices"]) == ["cpu"]
    rows = summary["rows"]
    assert [(r["dim"], r["sampler"]) for r in rows] == [
        (d, s) for d in (1, 3) for s in ("exact", "table", "walk")
    ]
    for r in rows:
        assert r["rate"] > 0
        base = next(q for q in rows if q["dim"] == r["dim"] and q["sampler"] == "exact")
        assert r["ratio"] == pytest.approx(r["rate"] / base["rate"])
        # the floor is that of the 1e5 accuracy draws at T/2, whatever --n
        assert r["floor"] == pytest.approx(0.87 / 100_000**0.5, rel=0.05)
    exact = next(r for r in rows if r["sampler"] == "exact")
    assert exact["ks"] < 4 * exact["floor"]  # the exact law: near the Monte-Carlo floor
    assert summary["device_ratios"] == []  # one device: nothing to compare
    assert any(line.startswith("| cpu | 1 |") for line in lines[:-1])


def test_device_ratios_compare_each_sampler_with_the_first_device():
    rows = [
        {"device": "cpu", "dim": 1, "sampler": "exact", "rate": 2.0},
        {"device": "cpu", "dim": 1, "sampler": "walk", "rate": 1.0},
        {"device": "cuda", "dim": 1, "sampler": "exact", "rate": 50.0},
        {"device": "cuda", "dim": 1, "sampler": "walk", "rate": 4.0},
    ]
    ratios = _bench().device_ratios(rows, ["cpu", "cuda"])
    assert [(r["sampler"], r["ratio"]) for r in ratios] == [("exact", 25.0), ("walk", 4.0)]
    assert all(r["device"] == "cuda" and r["over"] == "cpu" for r in ratios)
