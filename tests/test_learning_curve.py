"""The learning-curve probe of notebook 05: timing that excludes its own sampling, the budget
stop, step numbering, and the choice of configuration."""

from __future__ import annotations

import math

import pytest
import torch

from kacnb.classifier import DigitClassifier
from kacnb.learning_curve import (
    BudgetReached,
    Curve,
    CurvePoint,
    QualityProbe,
    best_within,
    measure,
    pick,
)
from kacnb.mnist_exp import MnistModel, image_sampler


class Clock:
    """A scripted ``perf_counter``: each call returns the next value."""

    def __init__(self, values):
        self.values = list(values)

    def __call__(self) -> float:
        return self.values.pop(0)


def _probe(clock, budget=None, every=5):
    torch.manual_seed(0)
    clf = DigitClassifier().eval()
    ref = torch.randn(50, 128)
    return QualityProbe(
        MnistModel(1.0, 1.0, 1.0), clf, ref, n_samples=8, euler_dt=0.5, eval_every=every,
        budget_s=budget, clock=clock,
    )  # fmt: skip


def still(t, x):
    return torch.zeros_like(x)


def test_probe_counts_training_time_only():
    # start 0; call 1 enters at 10, samples 10 -> 30, leaves 30; call 2 enters at 45,
    # samples 45 -> 47, leaves 47: training time 10 + 15 = 25, sampling 20 and 2
    probe = _probe(Clock([0, 10, 10, 30, 30, 45, 45, 47, 47]))
    probe.start()
    fd1 = probe(still, None)
    fd2 = probe(still, None)
    a, b = probe.points
    assert (a.step, b.step) == (5, 10)
    assert (a.train_s, b.train_s) == (10, 25)
    assert (a.sample_s, b.sample_s) == (20, 2)
    assert math.isfinite(fd1) and fd1 == a.fd and fd2 == b.fd
    # the same latents at every point: the same (still) network gives the same scores
    assert a.fd == b.fd and a.confident == b.confident
    assert 0.0 <= a.confident <= 1.0 and 0 <= a.coverage <= 10


def test_probe_stops_at_its_budget_and_needs_start():
    probe = _probe(Clock([0, 10, 10, 11, 11, 20, 20, 21, 21]), budget=18)
    with pytest.raises(RuntimeError, match="start"):
        _probe(Clock([0]))(still, None)
    probe.start()
    probe(still, None)  # 10 s < 18 s: goes on
    with pytest.raises(BudgetReached, match="19 s"):
        probe(still, None)  # 10 + 9 = 19 s
    assert len(probe.points) == 2


def test_measure_trains_and_scores_at_each_period():
    settings = {"base": 4, "levels": 1, "blocks": 1, "steps": 6, "batch": 4,
                "lr": 1e-3, "ema": 0.9, "grad_clip": 1.0}  # fmt: skip
    images = torch.rand(16, 1, 28, 28) * 2 - 1
    probe = _probe(__import__("time").perf_counter, every=2)
    curve = measure("tiny", probe.spec, image_sampler(images, "cpu"), settings, probe,
                    progress=False)  # fmt: skip
    assert [p.step for p in curve.points] == [2, 4, 6]
    times = [p.train_s for p in curve.points]
    assert all(0 < s < u for s, u in zip(times, times[1:], strict=False)) and times[0] > 0
    assert all(math.isfinite(p.fd) for p in curve.points)
    again = Curve.from_json(curve.to_json())
    assert again == curve


def test_pick_takes_the_lowest_fd_inside_the_budget():
    slow = Curve("slow", {}, [CurvePoint(10, 50, 300, 0.1, 8), CurvePoint(20, 200, 40, 0.9, 10)])
    fast = Curve("fast", {}, [CurvePoint(10, 40, 200, 0.2, 9), CurvePoint(20, 90, 120, 0.5, 10)])
    assert best_within(slow, 100).fd == 300
    curve, point = pick([slow, fast], 100)  # slow's FD 40 comes after the budget
    assert curve.name == "fast" and point.fd == 120
    curve, point = pick([slow, fast], 250)
    assert curve.name == "slow" and point.fd == 40
    with pytest.raises(ValueError, match="budget of 5 s"):
        pick([slow, fast], 5)


def test_affordable_time_charges_each_configuration_its_sampling():
    def curve(name, sample_s):
        pts = [CurvePoint(10 * k, 30.0 * k, 300.0 / k, 0.1, 9, sample_s) for k in (1, 2, 3, 4)]
        return Curve(name, {}, pts)

    from kacnb.learning_curve import affordable_train_s

    small, big = curve("small", 2.0), curve("big", 20.0)
    # (1800 - 100 - 36 * 2) / 11 = 148 s; (1800 - 100 - 36 * 20) / 11 = 89 s
    assert affordable_train_s(small, 1800, 100, 11, 36) == pytest.approx(1628 / 11)
    assert affordable_train_s(big, 1800, 100, 11, 36) == pytest.approx(980 / 11)
    # both curves are the same in training time; the cheaper sampler gets more of it
    budget = lambda c: affordable_train_s(c, 1800, 100, 11, 36)  # noqa: E731
    chosen, point = pick([big, small], budget)
    assert chosen.name == "small" and point.train_s == 120


def test_load_record_round_trip(tmp_path):
    from kacnb.learning_curve import load_record

    assert load_record(tmp_path / "missing.json") is None
    c = Curve("x", {"base": 8}, [CurvePoint(5, 1.5, 200.0, 0.2, 7, 0.5)])
    (tmp_path / "r.json").write_text(__import__("json").dumps({"curves": [c.to_json()], "n": 3}))
    rec = load_record(tmp_path / "r.json")
    assert rec["n"] == 3 and rec["curves"] == [c]


def test_the_quick_profile_is_the_committed_learning_curves_choice():
    """Notebook 05's quick settings are the configuration and step count that the committed
    record picks (a changed record or profile without the other fails here)."""
    import sys
    from pathlib import Path

    from kacnb.learning_curve import load_record, quick_choice

    record = load_record()
    if record is None:
        pytest.skip("no committed learning-curve record")
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "tools"))
    try:
        from gpu_lease_05 import paper_settings
    finally:
        sys.path.pop(0)
    quick = paper_settings("quick")
    curve, point = quick_choice(record)
    assert quick["unet"] == {k: curve.settings[k] for k in ("base", "levels", "blocks")}
    assert (quick["batch"], quick["lr"], quick["ema"]) == (
        curve.settings["batch"], curve.settings["lr"], curve.settings["ema"]
    )  # fmt: skip
    assert quick["steps"] == point.step
    assert record["machine"]["torch_threads"] == 2 and record["n_samples"] == 256
