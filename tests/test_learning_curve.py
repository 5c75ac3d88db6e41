"""The learning-curve probe of notebook 05: timing that excludes its own sampling, the budget
stop, step numbering, and the choice of configuration."""

from __future__ import annotations

import math

import pytest
import torch
from scripts import load_script

from kacnb.experiments import learning_curve
from kacnb.experiments.classifier import DigitClassifier
from kacnb.experiments.learning_curve import (
    BudgetReached,
    Curve,
    CurvePoint,
    QualityProbe,
    best_within,
    measure,
    pick,
)
from kacnb.experiments.mnist_exp import MnistModel, generate, image_sampler


class Clock:
    """A scripted ``perf_counter``: each call returns the next value."""

    def __init__(self, values):
        self.values = list(values)

    def __call__(self) -> float:
        return self.values.pop(0)


def _probe(clock, budget=None, every=5, **kwargs):
    torch.manual_seed(0)
    clf = DigitClassifier().eval()
    ref = torch.randn(50, 128)
    return QualityProbe(
        MnistModel(1.0, 1.0, 1.0), clf, ref, n_samples=8, euler_dt=0.5, eval_every=every,
        budget_s=budget, clock=clock, **kwargs,
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


def test_probe_scores_the_same_samples_in_any_chunk_size(monkeypatch):
    # the probe passes its chunk to the sampler, and the chunk changes no digit
    def shrink(t, x):
        return -0.3 * x

    used = []

    def spy(*args, **kwargs):
        used.append(kwargs.get("chunk"))
        return generate(*args, **kwargs)

    monkeypatch.setattr(learning_curve, "generate", spy)
    scores = []
    for chunk in (3, 8, 64):
        probe = _probe(Clock([0, 1, 1, 2, 2]), sample_chunk=chunk)
        probe.start()
        probe(shrink, None)
        scores.append((probe.points[0].fd, probe.points[0].confident))
    assert used == [3, 8, 64]
    assert scores[0] == scores[1] == scores[2]
    with pytest.raises(ValueError, match="sample_chunk"):
        _probe(Clock([0]), sample_chunk=0)


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

    from kacnb.experiments.learning_curve import affordable_train_s

    small, big = curve("small", 2.0), curve("big", 20.0)
    # (1800 - 100 - 36 * 2) / 11 = 148 s; (1800 - 100 - 36 * 20) / 11 = 89 s
    assert affordable_train_s(small, 1800, 100, 11, 36) == pytest.approx(1628 / 11)
    assert affordable_train_s(big, 1800, 100, 11, 36) == pytest.approx(980 / 11)
    # both curves are the same in training time; the cheaper sampler gets more of it
    budget = lambda c: affordable_train_s(c, 1800, 100, 11, 36)  # noqa: E731
    chosen, point = pick([big, small], budget)
    assert chosen.name == "small" and point.train_s == 120


def test_load_record_round_trip(tmp_path):
    from kacnb.experiments.learning_curve import load_record

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

    from kacnb.experiments.learning_curve import load_record, quick_choice

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


def _scheduled(score_steps, every=2, **kw):
    torch.manual_seed(0)
    clf = DigitClassifier().eval()
    ref = torch.randn(50, 128)
    return QualityProbe(
        MnistModel(1.0, 1.0, 1.0), clf, ref, n_samples=8, euler_dt=0.5, eval_every=every,
        score_steps=score_steps, seconds_per_step=0.25, **kw,
    )  # fmt: skip


def test_scheduled_probe_scores_only_at_its_steps_and_stops_at_the_last():
    saved = []
    probe = _scheduled([4, 8], on_point=saved.append)
    probe.start()
    assert probe(still, None) == math.inf  # step 2: nothing scored yet, never "best"
    fd = probe(still, None)  # step 4: scored
    assert math.isfinite(fd) and [p.step for p in probe.points] == [4]
    assert probe(still, None) == fd  # step 6: the last score again
    with pytest.raises(BudgetReached, match="step 8"):
        probe(still, None)
    # train_s from the step count and the idle speed, not from the clock
    assert [p.train_s for p in probe.points] == [1.0, 2.0]
    assert [[p.step for p in pts] for pts in saved] == [[4], [4, 8]]
    with pytest.raises(ValueError, match="multiples of eval_every"):
        _scheduled([3, 8])


def test_scheduled_probe_resumes_at_a_checkpoint_and_drops_later_points():
    old = [CurvePoint(4, 1.0, 300.0, 0.1, 5), CurvePoint(8, 2.0, 200.0, 0.2, 6)]
    probe = _scheduled([4, 8, 12], points=old, start_step=7)  # checkpoint at step 7
    assert [p.step for p in probe.points] == [4] and probe.step == 6
    probe.start()
    assert probe(still, None) != 200.0  # step 8 scored again with the network it has now
    assert [p.step for p in probe.points] == [4, 8]


def test_a_killed_and_resumed_curve_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    import time

    from kacnb.cfm.train import TimeLimitReached

    settings = {"base": 4, "levels": 1, "blocks": 1, "steps": 1000, "batch": 4,
                "lr": 1e-3, "ema": 0.9, "grad_clip": 1.0}  # fmt: skip
    images = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(3)) * 2 - 1
    data = image_sampler(images, "cpu")
    whole = measure("w", MnistModel(1.0, 1.0, 1.0), data, settings, _scheduled([4, 8]),
                    progress=False, directory=tmp_path / "a")  # fmt: skip
    assert [p.step for p in whole.points] == [4, 8]

    from kacnb.experiments.mnist_exp import checkpoint_step, model_checkpoint

    spec = MnistModel(1.0, 1.0, 1.0)
    monkeypatch.setenv("KACNB_DEADLINE", str(time.time() - 1))  # stop after the first step
    with pytest.raises(TimeLimitReached):
        measure("r", spec, data, settings, _scheduled([4, 8]), progress=False,
                directory=tmp_path / "b")  # fmt: skip
    monkeypatch.delenv("KACNB_DEADLINE")
    step = checkpoint_step(model_checkpoint(tmp_path / "b", spec, settings))
    assert step == 1
    resumed = measure("r", spec, data, settings, _scheduled([4, 8], start_step=step),
                      progress=False, directory=tmp_path / "b")  # fmt: skip
    assert [(p.step, p.fd, p.confident) for p in resumed.points] == [
        (p.step, p.fd, p.confident) for p in whole.points
    ]


def test_stops_improving_finds_the_plateau_or_says_still_improving():
    from kacnb.experiments.learning_curve import stops_improving

    def curve(fds):
        return Curve("c", {}, [CurvePoint(10 * k, 60.0 * k, fd, 0.5, 9) for k, fd in
                               enumerate(fds, 1)])  # fmt: skip

    # 300 -> 150 -> 100 -> 98 -> 97: flat from the third point on (within 5 %)
    assert stops_improving(curve([300, 150, 100, 98, 97])).step == 30
    # a noisy bump does not end the improvement: 100 -> 104 -> 90 is still falling
    assert stops_improving(curve([300, 100, 104, 90, 89])).step == 40
    # still improving at the last point: None (more budget would help)
    assert stops_improving(curve([300, 200, 150, 120, 100])) is None
    assert stops_improving(curve([300, 200]), rel=0.5).step == 10
    with pytest.raises(ValueError):
        stops_improving(curve([1, 2]), rel=0)


def test_long_table_reads_a_record_of_several_models(tmp_path):
    import json

    from kacnb.experiments.learning_curve import load_record, long_table

    def pts(fds):
        return [CurvePoint(100 * k, 60.0 * k, fd, 0.1 * k, 9) for k, fd in enumerate(fds, 1)]

    curves = [
        Curve("u16", {"base": 16}, pts([300, 150, 100, 99]), "a25_c5_T1"),
        Curve("u32", {"base": 32}, pts([400, 200, 120, 90]), "a25_c5_T1"),
    ]
    path = tmp_path / "long.json"
    path.write_text(json.dumps({"curves": [c.to_json() for c in curves]}))
    record = load_record(path)
    assert [c.model for c in record["curves"]] == ["a25_c5_T1", "a25_c5_T1"]
    small, big = long_table(record)
    assert (small["config"], small["best_fd"], small["best_min"]) == ("u16", 99, 4.0)
    assert small["plateau_min"] == 3.0 and big["plateau_min"] is None
    assert big["last_fd"] == 90 and big["last_confident"] == pytest.approx(0.4)


def test_long_table_orders_by_model_then_config_not_by_finishing_time(tmp_path):
    """A curve trained again (here (25, 5), T = 1 with u16) is appended to the record last;
    the table and the notebook's panels still put the larger pair first and T = 1 first."""
    import json

    from kacnb.experiments.learning_curve import load_record, long_table

    def pts():
        return [CurvePoint(100, 60.0, 100.0, 0.5, 9)]

    finished = [("u16", "a25_c5_T5"), ("u16", "a1_c1_T1"), ("u32", "a25_c5_T1"),
                ("u16", "a1_c1_T5"), ("u16", "a25_c5_T1")]  # fmt: skip
    path = tmp_path / "long.json"
    curves = [Curve(name, {}, pts(), model).to_json() for name, model in finished]
    path.write_text(json.dumps({"curves": curves}))
    rows = long_table(load_record(path))
    assert [(r["model"], r["config"]) for r in rows] == [
        ("a25_c5_T1", "u16"),
        ("a25_c5_T1", "u32"),
        ("a25_c5_T5", "u16"),
        ("a1_c1_T1", "u16"),
        ("a1_c1_T5", "u16"),
    ]
    with pytest.raises(ValueError, match="not a model key"):
        learning_curve.in_order([Curve("u16", {}, pts(), "u32-b64")])


def test_model_label_reads_the_key_and_refuses_others():
    assert learning_curve.model_label("a25_c5_T1") == "(25, 5), T = 1"
    assert learning_curve.model_label("a1_c1_T5") == "(1, 1), T = 5"
    assert learning_curve.model_label("a0.5_c2_T1.5") == "(0.5, 2), T = 1.5"
    with pytest.raises(ValueError, match="not a model key"):
        learning_curve.model_label("u32-b64")


def test_unfinished_names_each_partial_curve_with_its_reach():
    record = {
        "partial": {
            "u32-b64/a25_c5_T1": {"points": [{"train_s": 90.0}, {"train_s": 360.0}]},
            "u16-b32/a1_c1_T5": {"points": []},
        }
    }
    assert learning_curve.unfinished(record) == [
        "u32-b64/a25_c5_T1: scored up to 6.0 training minutes",
        "u16-b32/a1_c1_T5: scored up to 0.0 training minutes",
    ]
    assert learning_curve.unfinished({"curves": []}) == []


def _tool():
    return load_script("tools/mnist_learning_curve.py")


def test_a_new_speed_moves_every_stored_point_of_its_configuration_only():
    tool = _tool()
    pts = [{"step": 600, "train_s": 100.0}, {"step": 1200, "train_s": 200.0}]
    record = {
        "speed": {"u16-b32": {"steps_per_s": 6.0}, "u32-b64": {"steps_per_s": 1.0}},
        "curves": [
            {"name": "u16-b32", "model": "m", "steps_per_s": 6.0, "points": [dict(p) for p in pts]},
            {"name": "u32-b64", "model": "m", "steps_per_s": 1.0, "points": [dict(p) for p in pts]},
        ],
        "partial": {"u16-b32/n": {"score_steps": [600], "points": [dict(pts[0])]}},
    }
    tool._rescale(record, "u16-b32", {"steps_per_s": 12.0})
    assert [p["train_s"] for p in record["curves"][0]["points"]] == [50.0, 100.0]
    assert record["curves"][0]["steps_per_s"] == 12.0
    assert [p["train_s"] for p in record["curves"][1]["points"]] == [100.0, 200.0]  # untouched
    assert record["partial"]["u16-b32/n"]["points"][0]["train_s"] == 50.0
    assert "score_steps" not in record["partial"]["u16-b32/n"]  # follows the new speed
    assert record["speed_superseded"]["u16-b32"] == [{"steps_per_s": 6.0}]


def test_score_steps_are_multiples_of_the_probe_period_at_or_after_each_time():
    tool = _tool()
    steps = tool._score_steps(12.24, (90, 1800))
    assert steps == [1150, 22050]
    assert all(s % tool.EVAL_EVERY == 0 for s in steps)
    assert all(s / 12.24 >= t for s, t in zip(steps, (90, 1800), strict=True))


def test_rescored_reports_how_far_a_retrained_curve_moved():
    tool = _tool()
    old = [
        {"step": 650, "fd": 100.0, "confident": 0.5},
        {"step": 1250, "fd": 80.0, "confident": 0.6},
    ]
    new = [
        CurvePoint(650, 1.0, 100.0, 0.5, 10),
        CurvePoint(1250, 2.0, 83.0, 0.55, 10),
        CurvePoint(2000, 3.0, 70.0, 0.6, 10),
    ]
    out = tool._rescored(old, new)
    assert out["steps"] == [650, 1250]
    assert out["max_abs_fd_change"] == pytest.approx(3.0)
    assert out["max_abs_confident_change"] == pytest.approx(0.05)


def _curve(model, fds, minutes=(1, 2, 5, 10, 20, 30)):
    pts = [
        CurvePoint(i * 100, m * 60.0, fd, 0.5, 10)
        for i, (m, fd) in enumerate(zip(minutes, fds, strict=True))
    ]
    return Curve("u16-b32", {}, pts, model)


def test_more_budget_tells_flipped_settled_and_open_comparisons_apart():
    from kacnb.experiments.learning_curve import fd_at, more_budget

    worse = _curve("a", [400, 200, 120, 100, 99, 98.5])  # flat from 10 min
    better = _curve("b", [300, 150, 90, 80, 79, 78.6])  # flat from 10 min
    crossing = _curve("c", [500, 300, 130, 104, 90, 70])  # still improving, passes `worse`
    assert fd_at(worse, 10 * 60) == 100 and fd_at(worse, 0.5 * 60) is None
    assert fd_at(worse, 11 * 60) == 100  # the last point at or before
    assert more_budget(better, worse, 10 * 60).startswith("settled")
    assert more_budget(crossing, worse, 10 * 60).startswith("flips")  # 104 > 100, 70 < 98.5
    improving = _curve("d", [350, 180, 100, 85, 75, 65])  # below `worse` throughout
    # the worse curve is flat: more training of the better one only widens the gap
    text = more_budget(improving, worse, 10 * 60)
    assert text.startswith("settled: the worse curve flat")
    assert "85 vs 100 at 10 min, 65 vs 98.5 at 30 min" in text
    # the worse curve still improving, though not enough to cross by 30 min: open, either way
    slow = _curve("s", [400, 250, 160, 120, 100, 90])
    assert more_budget(slow, better, 10 * 60).startswith("open")
    assert more_budget(better, slow, 10 * 60).startswith("open")
    assert more_budget(crossing, worse, 0.5 * 60).startswith("not measured")
    # a curve that ends before the run's training time: one comparison, and where it ends
    short = _curve("e", [350, 180, 100, 85], minutes=(1, 2, 5, 17))
    text = more_budget(worse, short, 25 * 60)
    assert text.startswith("settled: the worse curve flat") and text.count(" vs ") == 1
    assert "99 vs 85 at 25 min; a curve ends at 17 min" in text
    still = _curve("f", [450, 300, 200, 150], minutes=(1, 2, 5, 17))  # worse, improving
    assert more_budget(still, worse, 25 * 60).startswith("open")


def test_budget_verdicts_map_rows_to_their_curves_and_flag_missing_ones():
    from kacnb.experiments.learning_curve import budget_verdicts

    record = {
        "curves": [
            _curve("a1_c1_T1", [400, 200, 120, 100, 99, 98.5]),
            _curve("a25_c5_T1", [300, 150, 90, 80, 79, 78.6]),
        ]
    }
    rows = [
        {"claim": "T=1: (1,1) has the worst FD"},
        {"claim": "T=5: (1,1) has the worst FD"},
        {"claim": "ours: classifier accuracy"},
        {"claim": "T=5 with N = 100 (step x5): (1,1) has the worst FD"},
        {"claim": "T=5 with N = 100 (step x5) improves the larger pairs"},
    ]
    out = budget_verdicts(rows, record, "u16-b32", 600.0)
    # the step-count rows are read off the same curves as the rows they vary
    assert out[3].startswith("no curve yet") and "a1_c1_T5" in out[3]
    assert "u16-b32/a25_c5_T5" in out[4] and "a1_c1" not in out[4]
    assert out[0].startswith("settled") and "100 vs 80" in out[0]
    assert out[1].startswith("no curve yet") and "u16-b32/a1_c1_T5" in out[1]
    assert out[2] == "-"
    assert budget_verdicts(rows, record, "u32-b64", 600.0)[0].startswith("no curve yet")


def test_every_fd_row_of_the_mnist_claims_is_read_off_its_curves():
    """The rows come from :func:`kacnb.experiments.mnist_exp.claims` itself, at both step
    settings and at another step count: each row comparing FDs maps to the curves of
    :data:`CLAIM_CURVES` (a renamed row would fall back to "-" and fail here), and a row and
    its step-count variant map to the same curves."""
    from kacnb.experiments.learning_curve import CLAIM_CURVES, budget_verdicts
    from kacnb.experiments.mnist_exp import claims, paper_models, same_step_claim

    specs = paper_models()
    scores = {s.key: {"fd": 100.0 + i, "fd_latent": 900.0} for i, s in enumerate(specs)}
    coarse = {s.key: scores[s.key] for s in specs if s.T == 5.0}
    for same, n in ((coarse, 100), (None, 20)):
        rows = claims(specs, scores, same, n, 0.99, ("rf_T1", {"fd": 50.0}))
        out = budget_verdicts(rows, {"curves": []}, "u16-b32", 600.0)
        fd_rows = [r for r in rows if not r["claim"].startswith("ours")]
        assert len(fd_rows) == (5 if same is not None else 3)
        for r, verdict in zip(rows, out, strict=True):
            if r in fd_rows:
                assert same_step_claim(r["claim"]) in CLAIM_CURVES, r["claim"]
                assert verdict.startswith("no curve yet"), (r["claim"], verdict)
            else:
                assert verdict == "-"
    assert same_step_claim("T=5 with N = 20 (step x5): (1,1) has the worst FD") == (
        "T=5: (1,1) has the worst FD"
    )


def test_config_train_s_matches_the_unet_and_batch_and_uses_the_measured_speed():
    from kacnb.experiments.learning_curve import config_train_s

    small = Curve("u16-b32", {"base": 16, "levels": 2, "blocks": 1, "batch": 32}, [], "m")
    big = Curve("u32-b64", {"base": 32, "levels": 2, "blocks": 1, "batch": 64}, [], "m")
    record = {
        "curves": [small, big],
        "speed": {"u16-b32": {"steps_per_s": 12.0}, "u32-b64": {"steps_per_s": 2.5}},
    }
    long = {"base": 16, "levels": 2, "blocks": 1, "batch": 32, "lr": 2e-3}
    assert config_train_s(record, long, 18_000) == ("u16-b32", pytest.approx(1500.0))
    assert config_train_s(record, {**long, "base": 32, "batch": 64}, 500) == (
        "u32-b64",
        pytest.approx(200.0),
    )
    # the same U-Net at another batch size, the paper's U-Net, no record: no curve
    assert config_train_s(record, {**long, "batch": 64}, 100) is None
    assert config_train_s(record, {"base": 64, "levels": 3, "blocks": 2, "batch": 128}, 1) is None
    assert config_train_s(None, long, 100) is None
