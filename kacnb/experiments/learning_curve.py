"""Sample quality against training time for one MNIST model (notebook 05, issue "quality per
CPU-minute"): what a given number of CPU minutes buys, so that the quick profile's U-Net size,
batch and step count can be chosen from a measurement instead of a guess.

One :class:`QualityProbe` is handed to :func:`kacnb.experiments.mnist_exp.train_model` as its
validation
callback. Every ``eval_every`` steps it generates ``n_samples`` digits from the sampling (EMA)
weights with the model's own explicit Euler sampler (paper Section 7, [98-99];
:func:`kacnb.experiments.mnist_exp.generate`, the same latents each time) and records a
:class:`CurvePoint`: the step, the **training** seconds so far (the probe's own sampling and
scoring time is left out), the Frechet distance (FD) in the classifier's feature space and the
share of confidently classified samples (:func:`kacnb.experiments.mnist_exp.evaluate`). When the
training
seconds reach ``budget_s`` the probe stops the run (:class:`BudgetReached`).
:func:`measure` runs one configuration; :func:`pick` chooses the configuration that reaches
the lowest FD within a per-model time budget.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .._root import PROJECT_ROOT
from .classifier import DigitClassifier
from .mnist_exp import MnistModel, euler_steps, evaluate, generate, same_step_claim, train_model

__all__ = [
    "CurvePoint",
    "Curve",
    "BudgetReached",
    "QualityProbe",
    "measure",
    "best_within",
    "affordable_train_s",
    "pick",
    "stops_improving",
    "fd_at",
    "more_budget",
    "CLAIM_CURVES",
    "budget_verdicts",
    "config_train_s",
    "long_table",
    "model_label",
    "unfinished",
    "RECORD",
    "LONG_RECORD",
    "load_record",
    "QUICK_TOTAL_S",
    "QUICK_FIXED_S",
    "quick_choice",
    "quick_budget",
]

_RUNS = PROJECT_ROOT / "figures" / "runs"
#: The quick profile's learning curve (240 s per configuration, 20 Euler steps).
RECORD = _RUNS / "05_learning_curve.json"
#: Where ``tools/mnist_learning_curve.py`` writes the long curves (up to 30 minutes per
#: configuration and model, 100 Euler steps; committed with the figures).
LONG_RECORD = _RUNS / "05_learning_curve_long.json"


@dataclass(frozen=True)
class CurvePoint:
    """Scores after ``step`` optimiser steps and ``train_s`` seconds of training (wall time,
    sampling for the probe excluded): ``fd``, ``confident`` (share with classifier
    probability >= 0.9), ``coverage`` (digits predicted for at least half their share);
    ``sample_s``: seconds the probe spent generating its ``n_samples`` digits (the sampling
    cost of this network, for the quick profile's time budget)."""

    step: int
    train_s: float
    fd: float
    confident: float
    coverage: int
    sample_s: float = 0.0


@dataclass
class Curve:
    """The points of one configuration ``name`` with its training ``settings`` (and the
    ``model`` key when a record holds several models)."""

    name: str
    settings: dict
    points: list[CurvePoint] = field(default_factory=list)
    model: str | None = None  # e.g. "a25_c5_T1" (None: the record's single model)

    def to_json(self) -> dict:
        out = {
            "name": self.name,
            "settings": self.settings,
            "points": [asdict(p) for p in self.points],
        }
        if self.model is not None:
            out["model"] = self.model
        return out

    @classmethod
    def from_json(cls, data: dict) -> Curve:
        points = [CurvePoint(**p) for p in data["points"]]
        return cls(data["name"], dict(data["settings"]), points, data.get("model"))


class BudgetReached(Exception):
    """The probe's training-time budget is spent (raised out of the training loop)."""


class QualityProbe:
    """Validation callback ``probe(model, generator) -> fd`` for :func:`kacnb.cfm.train.train`.

    ``spec``: the model (its path and horizon ``T``); ``classifier`` and
    ``reference_features`` (N_ref, 128): the FD yardstick; ``n_samples`` digits per point,
    integrated with ``T / euler_dt`` Euler steps; ``seed`` fixes the latents (the same at every
    point, so the curve's noise is the network's, not the draw's); ``eval_every`` must be the
    training run's validation period (it turns a call into a step number). Training time is
    measured between calls: call :meth:`start` right before training.

    **Scheduled mode** (the long learning curve): with ``score_steps`` the probe scores only at
    those optimiser steps (multiples of ``eval_every``; other calls return the last FD, or
    ``inf`` before the first point, which the trainer never keeps as "best") and stops the run
    at the last one (:class:`BudgetReached`). With ``seconds_per_step`` a point's ``train_s``
    is ``step * seconds_per_step`` (the training time on an idle machine, from a speed measured
    there) instead of the clock, so other work on the machine slows the run down without
    moving the curve. ``points`` and ``start_step`` resume a probe whose run resumes from a
    checkpoint at ``start_step`` (points after it are dropped: they are scored again);
    ``on_point(points)`` is called after every new point (the tool saves them there).
    ``sample_chunk``: images per network call when scoring (the same samples for any value,
    see :func:`~kacnb.experiments.mnist_exp.generate`; 64 is about 1.5 times faster on a CPU
    than 256 at once).
    """

    def __init__(
        self,
        spec: MnistModel,
        classifier: DigitClassifier,
        reference_features: torch.Tensor,
        n_samples: int,
        euler_dt: float,
        eval_every: int,
        seed: int = 0,
        budget_s: float | None = None,
        device: torch.device | str = "cpu",
        clock: Callable[[], float] = time.perf_counter,
        score_steps: Sequence[int] | None = None,
        seconds_per_step: float | None = None,
        points: Sequence[CurvePoint] = (),
        start_step: int = 0,
        on_point: Callable[[list[CurvePoint]], None] | None = None,
        sample_chunk: int = 64,
    ):
        if n_samples < 2:
            raise ValueError(f"n_samples must be >= 2 (a covariance is needed), got {n_samples}")
        self.spec = spec
        self.classifier = classifier
        self.reference_features = reference_features
        self.n_samples = int(n_samples)
        self.steps = euler_steps(spec.T, euler_dt)
        self.eval_every = int(eval_every)
        self.seed = int(seed)
        self.budget_s = budget_s
        self.device = torch.device(device)
        self.clock = clock
        if score_steps is not None:
            score_steps = sorted({int(k) for k in score_steps})
            if not score_steps or any(k <= 0 or k % self.eval_every for k in score_steps):
                raise ValueError(
                    f"score_steps must be positive multiples of eval_every={self.eval_every}, "
                    f"got {score_steps}"
                )
        if seconds_per_step is not None and not seconds_per_step > 0:
            raise ValueError(f"seconds_per_step must be > 0, got {seconds_per_step!r}")
        self.score_steps = score_steps
        self.seconds_per_step = seconds_per_step
        self.on_point = on_point
        if sample_chunk < 1:
            raise ValueError(f"sample_chunk must be >= 1, got {sample_chunk!r}")
        self.sample_chunk = int(sample_chunk)
        self.step = (int(start_step) // self.eval_every) * self.eval_every
        self.points: list[CurvePoint] = [p for p in points if p.step <= self.step]
        self.train_s = self.points[-1].train_s if self.points else 0.0
        self._mark: float | None = None

    def start(self) -> None:
        """Start the training clock (again: time between calls counts as training)."""
        self._mark = self.clock()

    def __call__(self, model: torch.nn.Module, generator: torch.Generator) -> float:
        if self._mark is None:
            raise RuntimeError("QualityProbe.start() must be called before training")
        self.train_s += self.clock() - self._mark
        self.step += self.eval_every
        step = self.step
        if self.score_steps is not None:
            if step not in self.score_steps:
                self._mark = self.clock()
                return self.points[-1].fd if self.points else math.inf
            if self.seconds_per_step is not None:
                self.train_s = step * self.seconds_per_step
        gen = torch.Generator(self.device).manual_seed(self.seed)
        t0 = self.clock()
        with torch.no_grad():
            x = generate(
                model, self.spec, self.n_samples, self.steps, gen, chunk=self.sample_chunk
            ).x
        sample_s = self.clock() - t0
        scores = evaluate(self.classifier, x, self.reference_features)
        self.points.append(
            CurvePoint(
                step=step,
                train_s=self.train_s,
                fd=float(scores["fd"]),
                confident=float(scores["confident"]),
                coverage=int(scores["coverage"]),
                sample_s=sample_s,
            )
        )
        if self.on_point is not None:
            self.on_point(list(self.points))
        self._mark = self.clock()
        if self.score_steps is not None and step >= self.score_steps[-1]:
            raise BudgetReached(f"last scheduled point, step {step}, scored")
        if self.budget_s is not None and self.train_s >= self.budget_s:
            raise BudgetReached(f"{self.train_s:.0f} s of training spent at step {step}")
        return float(scores["fd"])


def measure(
    name: str,
    spec: MnistModel,
    data: Callable[[int, torch.Generator], torch.Tensor],
    settings: dict,
    probe: QualityProbe,
    device: torch.device | str = "cpu",
    seed: int = 0,
    progress: bool = True,
    directory: str | Path | None = None,
) -> Curve:
    """Train ``spec`` with ``settings`` (those of :func:`kacnb.experiments.mnist_exp.train_model`;
    its
    ``steps`` is an upper bound) and return the probe's points as a :class:`Curve`. The run
    ends at ``settings["steps"]`` or when the probe's budget is spent. With ``directory`` the
    run is checkpointed there and resumed from a checkpoint it finds (give the probe the
    checkpoint's step and the points saved so far); at a deadline
    (:class:`kacnb.cfm.train.TimeLimitReached`) the checkpoint is written and the exception
    propagates."""
    probe.start()
    try:
        train_model(
            spec, data, settings, device, directory, seed, progress,
            validate=probe, eval_every=probe.eval_every,
        )  # fmt: skip
    except BudgetReached:
        pass
    return Curve(name, dict(settings), list(probe.points))


def best_within(curve: Curve, budget_s: float) -> CurvePoint | None:
    """The point of lowest FD among those reached within ``budget_s`` training seconds."""
    inside = [p for p in curve.points if p.train_s <= budget_s]
    return min(inside, key=lambda p: p.fd) if inside else None


def affordable_train_s(
    curve: Curve, total_s: float, fixed_s: float, n_models: int, sampling_passes: float
) -> float:
    """Training seconds per model that a whole run of ``total_s`` seconds leaves for this
    configuration: ``(total_s - fixed_s - sampling_passes * sample_s) / n_models``.

    ``sample_s`` is the median time the probe needed for one batch of samples (its
    ``n_samples`` digits, its number of Euler steps); ``sampling_passes`` is how many such
    batches the run generates in all (notebook 05: the network evaluations per digit over all
    models divided by the probe's Euler steps). A larger U-Net thus gets less training time,
    because its sampling costs more. Can be negative (the configuration does not fit).
    """
    sample_s = statistics.median(p.sample_s for p in curve.points)
    return (total_s - fixed_s - sampling_passes * sample_s) / n_models


def pick(curves: Sequence[Curve], budget_s) -> tuple[Curve, CurvePoint]:
    """The configuration (and its point) with the lowest FD within its training budget per
    model: ``budget_s`` seconds, or ``budget_s(curve)`` when it is a function (such as
    :func:`affordable_train_s` with the run's totals). ``ValueError`` when no curve has a
    point inside its budget."""
    budget = budget_s if callable(budget_s) else (lambda _c: budget_s)
    best = [(c, p) for c in curves if (p := best_within(c, budget(c))) is not None]
    if not best:
        raise ValueError(
            "no configuration has a measured point within its budget"
            + ("" if callable(budget_s) else f" of {budget_s:g} s")
        )
    return min(best, key=lambda cp: cp[1].fd)


def stops_improving(curve: Curve, rel: float = 0.05) -> CurvePoint | None:
    """The earliest point after which the FD improves by less than ``rel`` (relative) up to
    the curve's last point, i.e. the first ``p`` with ``min(FD after p) >= (1 - rel) FD(p)``;
    ``None`` when that holds only at the last point (still improving at the end of the
    budget: more training would help). Scores are noisy (one draw of latents), so ``rel``
    should exceed the draw-to-draw spread of the FD (a few per cent at 256 samples)."""
    if not 0 < rel < 1:
        raise ValueError(f"rel must be in (0, 1), got {rel!r}")
    pts = curve.points
    for i, p in enumerate(pts[:-1]):
        if min(q.fd for q in pts[i + 1 :]) >= (1 - rel) * p.fd:
            return p
    return None


def fd_at(curve: Curve, train_s: float) -> float | None:
    """The FD of ``curve`` after ``train_s`` training seconds: that of its last point scored
    at or before then (``None`` before its first point)."""
    before = [p for p in curve.points if p.train_s <= train_s * (1 + 1e-9)]
    return before[-1].fd if before else None


def more_budget(first: Curve, second: Curve, at_s: float, rel: float = 0.05) -> str:
    """Would more training change the comparison of ``first`` and ``second`` (which of the
    two has the lower FD) as it stands after ``at_s`` training seconds?

    Read off the two learning curves: the order at ``at_s`` (:func:`fd_at`) against the
    order at the later of ``at_s`` and the end of the shorter curve. ``"flips ..."``: the
    order changes; ``"settled ..."``: it holds and both curves have stopped improving
    (:func:`stops_improving` with ``rel``), or the worse one (higher FD) has, so that more
    training of the better one can only widen the gap; ``"open ..."``: it holds so far but
    the worse curve is still improving at its end and might catch up; ``"not measured
    ..."``: a curve has no point by ``at_s``. The text names the FD values it compared
    (once, with how far the shorter curve reached, when it ends by ``at_s``).
    """
    now = (fd_at(first, at_s), fd_at(second, at_s))
    if None in now:
        return f"not measured: no point by {at_s / 60:.0f} min"
    shorter_ends = min(first.points[-1].train_s, second.points[-1].train_s)
    end_s = max(at_s, shorter_ends)
    end = (fd_at(first, end_s), fd_at(second, end_s))
    where = f"{now[0]:.3g} vs {now[1]:.3g} at {at_s / 60:.0f} min"
    if end_s > at_s:
        where += f", {end[0]:.3g} vs {end[1]:.3g} at {end_s / 60:.0f} min"
    else:  # nothing later to compare with: say how far the shorter curve reached
        where += f"; a curve ends at {shorter_ends / 60:.0f} min"
    if (now[0] < now[1]) != (end[0] < end[1]):
        return f"flips with more training ({where})"
    flat = [stops_improving(c, rel) for c in (first, second)]
    done = [f is not None and f.train_s <= end_s for f in flat]
    if all(done):
        return f"settled: both curves flat ({where})"
    if done[0 if end[0] > end[1] else 1]:
        return f"settled: the worse curve flat, the better one still improving ({where})"
    return f"open: holds so far, the worse curve still improving ({where})"


#: For the rows of :func:`kacnb.experiments.mnist_exp.claims` that compare FDs: the two
#: long-curve models whose FD order stands for the row (the row's claim without its
#: "with N = ...", :func:`~kacnb.experiments.mnist_exp.same_step_claim` -> model keys; the
#: curves sample every horizon with 100 Euler steps, so they stand for both step settings).
#: (25, 5) stands for the larger pairs, the only one with curves.
CLAIM_CURVES = {
    "T=1: (1,1) has the worst FD": ("a1_c1_T1", "a25_c5_T1"),
    "T=5: (1,1) has the worst FD": ("a1_c1_T5", "a25_c5_T5"),
    "T=5 improves the larger pairs": ("a25_c5_T5", "a25_c5_T1"),
}


def budget_verdicts(
    claims: Sequence[dict], record: dict | None, config: str, at_s: float, rel: float = 0.05
) -> list[str]:
    """One text per row of ``claims``: :func:`more_budget` for the curves of configuration
    ``config`` in a long record (:func:`load_record`) that :data:`CLAIM_CURVES` assigns to
    the row, after ``at_s`` training seconds (the profile's); ``"-"`` for rows that do not
    compare models' FDs, ``"no curve yet: ..."`` naming the missing finished curves."""
    curves = {} if record is None else {c.model: c for c in record["curves"] if c.name == config}
    out = []
    for r in claims:
        models = CLAIM_CURVES.get(same_step_claim(r["claim"]))
        if models is None:
            out.append("-")
            continue
        missing = [m for m in models if m not in curves]
        if missing:
            out.append(f"no curve yet: {', '.join(f'{config}/{m}' for m in missing)}")
            continue
        out.append(more_budget(curves[models[0]], curves[models[1]], at_s, rel))
    return out


def config_train_s(record: dict | None, settings: dict, steps: int) -> tuple[str, float] | None:
    """The configuration of a long record (:func:`load_record`) that trains the U-Net and
    batch of ``settings`` (keys ``base``, ``levels``, ``blocks``, ``batch``) and the training
    seconds ``steps`` optimiser steps take at its measured ``steps_per_s``: ``(name,
    seconds)``, for :func:`budget_verdicts`; ``None`` when the record has no such curve."""
    if record is None:
        return None
    keys = ("base", "levels", "blocks", "batch")
    for curve in record["curves"]:
        if all(curve.settings.get(k) == settings.get(k) for k in keys):
            speed = record.get("speed", {}).get(curve.name, {}).get("steps_per_s")
            if speed:
                return curve.name, steps / float(speed)
    return None


def long_table(record: dict, rel: float = 0.05) -> list[dict]:
    """One row per curve of a long learning-curve record (:func:`load_record` of
    :data:`LONG_RECORD`), in :func:`in_order`: ``model``,
    ``config``, ``best_fd`` and its ``best_min`` (training minutes), the last point's
    ``last_min``, ``last_fd`` and ``last_confident``, and ``plateau_min``: the training
    minutes after which the FD improves by less than ``rel`` (:func:`stops_improving`;
    ``None``: still improving when the budget ended)."""
    rows = []
    for c in in_order(record["curves"]):
        best = min(c.points, key=lambda p: p.fd)
        last = c.points[-1]
        flat = stops_improving(c, rel)
        rows.append(
            {
                "model": c.model,
                "config": c.name,
                "best_fd": best.fd,
                "best_min": best.train_s / 60,
                "last_min": last.train_s / 60,
                "last_fd": last.fd,
                "last_confident": last.confident,
                "plateau_min": None if flat is None else flat.train_s / 60,
            }
        )
    return rows


def _model_params(key: str) -> tuple[float, float, float]:
    match = re.fullmatch(r"a([\d.e+-]+)_c([\d.e+-]+)_T([\d.e+-]+)", key)
    if match is None:
        raise ValueError(f"not a model key of the form a<a>_c<c>_T<T>: {key!r}")
    a, c, T = (float(g) for g in match.groups())
    return a, c, T


def model_label(key: str) -> str:
    """``"a25_c5_T1"`` (a long record's model key) -> ``"(25, 5), T = 1"``."""
    a, c, T = _model_params(key)
    return f"({a:g}, {c:g}), T = {T:g}"


def in_order(curves: Sequence[Curve]) -> list[Curve]:
    """A long record's curves by model, whatever order they finished in (the larger pair
    first, then the shorter horizon: (25, 5) T = 1, (25, 5) T = 5, (1, 1) T = 1, ...), and
    by configuration name within a model."""

    def key(curve: Curve) -> tuple:
        a, c, T = _model_params(curve.model)
        return -a, -c, T, curve.name

    return sorted(curves, key=key)


def unfinished(record: dict) -> list[str]:
    """The curves a long record holds only in part (``"config/model"``), each with how far
    it was scored, e.g. ``"u32-b64/a25_c5_T1: scored up to 6.0 training minutes"``."""
    out = []
    for unit, part in record.get("partial", {}).items():
        points = part.get("points", [])
        reach = max((p["train_s"] for p in points), default=0.0) / 60
        out.append(f"{unit}: scored up to {reach:.1f} training minutes")
    return out


def load_record(path: str | Path | None = None) -> dict | None:
    """The committed learning-curve record (default :data:`RECORD`) with its ``curves`` as
    :class:`Curve` objects, or ``None`` when the file does not exist."""
    path = Path(path) if path is not None else RECORD
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    record["curves"] = [Curve.from_json(c) for c in record["curves"]]
    return record


#: Notebook 05's quick profile must finish in this many seconds on a 2-core CPU (issue target).
QUICK_TOTAL_S = 1800.0
#: Its fixed costs: loading MNIST, training the classifier, Figure 6, plotting (seconds).
QUICK_FIXED_S = 150.0


def quick_choice(
    record: dict, n_models: int = 11, sampling_passes: float = 36.0
) -> tuple[Curve, CurvePoint]:
    """The configuration and step count of notebook 05's quick profile, from a record of
    :func:`load_record`: the lowest FD that each configuration reaches within the training
    time per model it can afford (:func:`affordable_train_s` with :data:`QUICK_TOTAL_S`,
    :data:`QUICK_FIXED_S`, ``n_models`` trained models and ``sampling_passes`` probe-sized
    sampling batches: for 05 the ten Kac models and the baseline, and 720 Euler evaluations
    per digit over all of them against the probe's 20)."""

    return pick(record["curves"], lambda c: quick_budget(c, n_models, sampling_passes))


def quick_budget(curve: Curve, n_models: int = 11, sampling_passes: float = 36.0) -> float:
    """Training seconds per model that the quick profile affords ``curve``'s configuration:
    :func:`affordable_train_s` with :data:`QUICK_TOTAL_S` and :data:`QUICK_FIXED_S`."""
    return affordable_train_s(curve, QUICK_TOTAL_S, QUICK_FIXED_S, n_models, sampling_passes)
