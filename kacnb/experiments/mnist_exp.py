"""The MNIST experiment of the paper (arXiv:2506.20641v1, Section 7 and App. A.2; notebook 05):
models, training, sampling, scores.

Generation uses the mean-reverting Kac path ``X_t = f(t) X_0 + K(t)``, ``f(t) = 1 - t/T``
(Remark 17, [98-99]) for the five pairs ``(a, c)`` of :data:`PAIRS` (all with ``c^2/a = 1``)
and ``T`` in {1, 5}: ten models (:func:`paper_models`). Each is a U-Net trained by
conditional flow matching [97] (:func:`train_model`, which reuses a finished checkpoint
instead of training again), then sampled from the latent ``K(T)`` by explicit Euler steps
backwards from ``T`` to 0 (:func:`generate`; :func:`euler_steps` gives both horizons the
same step size ``T/N``). The paper shows the samples only as pictures;
:func:`evaluate` adds numbers: the Frechet distance in the feature space of a small MNIST
classifier and the distribution of the predicted labels (:func:`label_stats`).

For runs in time-limited chunks (``kacnb run --time-limit``), training resumes from its
checkpoints, and :func:`generate_cached` keeps each model's samples on disk and stops with
:class:`~kacnb.cfm.train.TimeLimitReached` between models once the deadline has passed
(:func:`stop_at_deadline`), so the same command again continues with the next model.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..cfm import pretrained
from ..cfm.config import TrainConfig
from ..cfm.forked import forked_map
from ..cfm.metrics import frechet_distance
from ..cfm.models import UNet
from ..cfm.paths import MeanRevertingKacPath, RectifiedFlowPath
from ..cfm.pretrained import train_result
from ..cfm.sampling import integrate
from ..cfm.train import (
    TimeLimitReached,
    TrainResult,
    checkpoint_dir,
    checkpoint_file,
    deadline_from_env,
    train,
)
from ..report import row, span
from ..theory.kac import Kac
from .classifier import DigitClassifier, confidence, features, predict, train_classifier

__all__ = [
    "PAIRS",
    "IMAGE_SHAPE",
    "MnistModel",
    "BaselineModel",
    "paper_models",
    "claims",
    "euler_steps",
    "image_sampler",
    "checkpoint_dir",
    "checkpoint_file",
    "model_checkpoint",
    "restep_checkpoint",
    "checkpoint_step",
    "Trained",
    "train_model",
    "classifier_or_train",
    "SHIPPED_PROFILES",
    "bundle_name",
    "writes_bundle",
    "subset_fds",
    "from_bundle",
    "CLASSIFIER_EXTRA",
    "shipped_classifier",
    "Generated",
    "generate",
    "generate_cached",
    "stop_at_deadline",
    "AMP_DTYPES",
    "label_stats",
    "CONFIDENT",
    "evaluate",
    "sample_and_score",
    "tile_images",
    "run_summary",
    "TARGETS",
    "target_rows",
]

#: The paper's pairs (a, c) for MNIST generation (Figures 7-8); c^2 / a = 1 for each.
PAIRS: tuple[tuple[float, float], ...] = ((1, 1), (25, 5), (100, 10), (225, 15), (900, 30))
#: Shape of one MNIST image (channels, height, width).
IMAGE_SHAPE = (1, 28, 28)


@dataclass(frozen=True)
class MnistModel:
    """One generative model: mean-reverting Kac path with rate ``a``, speed ``c``, horizon ``T``."""

    a: float
    c: float
    T: float

    @property
    def key(self) -> str:
        """File-name friendly name, e.g. ``"a25_c5_T1"``."""
        return f"a{self.a:g}_c{self.c:g}_T{self.T:g}"

    @property
    def label(self) -> str:
        """Plot label, e.g. ``"(a, c) = (25, 5), T = 1"``."""
        return f"(a, c) = ({self.a:g}, {self.c:g}), T = {self.T:g}"

    def path(self) -> MeanRevertingKacPath:
        """The probability path ``X_t = (1 - t/T) X_0 + K(t)`` [98-99]."""
        return MeanRevertingKacPath(Kac(self.a, self.c), T=self.T)


@dataclass(frozen=True)
class BaselineModel:
    """The rectified-flow / OT-CFM baseline (not in the paper): ``X_t = (1 - t/T) X_0 +
    (t/T) Z`` with ``Z ~ N(0, I)`` per pixel (:class:`kacnb.cfm.paths.RectifiedFlowPath`),
    trained and sampled like the Kac models (its latent ``Z`` needs no data either)."""

    T: float = 1.0

    @property
    def key(self) -> str:
        return f"rf_T{self.T:g}"

    @property
    def label(self) -> str:
        return f"rectified flow, T = {self.T:g}"

    def path(self) -> RectifiedFlowPath:
        return RectifiedFlowPath(T=self.T, sigma=1.0)


def paper_models(
    horizons: Sequence[float] = (1.0, 5.0), pairs: Sequence | None = None
) -> list[MnistModel]:
    """The ten models of Figures 7 (T = 1) and 8 (T = 5): every pair of :data:`PAIRS` (or of
    ``pairs``, a reader's choice) per T, all pairs of the first horizon first."""
    chosen = PAIRS if pairs is None else pairs
    return [MnistModel(float(a), float(c), float(T)) for T in horizons for a, c in chosen]


#: How a claim's name marks the rows read with the step count of ``T = 1`` at ``T = 5``.
_STEP_COUNT_TAG = " with N = {n} (step x5)"
_STEP_COUNT_RE = re.compile(r" with N = \d+ \(step x5\)")


def same_step_claim(claim: str) -> str:
    """The name of the row that a row of :func:`claims` read with the step count of ``T = 1``
    varies (``"T=5 with N = 100 (step x5) improves ..."`` -> ``"T=5 improves ..."``); other
    names unchanged. Both kinds of row compare the same two models."""
    return _STEP_COUNT_RE.sub("", claim)


def claims(
    specs: Sequence[MnistModel],
    scores: dict[str, dict],
    scores_same_count: dict[str, dict] | None,
    n_same_count: int,
    accuracy: float,
    baseline: tuple[str, dict] | None = None,
) -> list[dict]:
    """The "reproduced / differs" rows of notebook 05 from the FD of every model.

    The paper's findings (Figures 7-8; Section 7): at each horizon ``(1, 1)`` has the worst
    FD, and ``T = 5`` improves the larger pairs (at least three quarters of them). The rows
    for ``T = 5`` come twice: with the same step size as ``T = 1`` (``scores``) and with the
    step count of ``T = 1`` (``scores_same_count``, ``n_same_count`` steps, a step five times
    larger; the rows named "T=5 with N = ..."). ``scores_same_count=None`` says that
    ``scores`` themselves were sampled with ``n_same_count`` steps at both horizons: the rows
    with the same step size are then left out and the "with N" rows read ``scores``, so a
    run sampled only that way has a subset of the rows of a full run, under the same names.
    These rows need ``(1, 1)``, a larger pair and both horizons among ``specs``; otherwise
    they are left out. Ours: every model's samples beat their latent noise; the
    classifier's test ``accuracy`` is at least 0.98; and, with ``baseline`` (``(key,
    scores)`` of the rectified flow at ``T = 1``), the best Kac model at ``T = 1`` has a
    lower FD than the baseline.
    """
    horizons = sorted({s.T for s in specs})
    pairs = list(dict.fromkeys((s.a, s.c) for s in specs))
    large = [p for p in pairs if p != (1.0, 1.0)]
    fd = {(s.a, s.c, s.T): scores[s.key]["fd"] for s in specs}
    same_count = scores if scores_same_count is None else scores_same_count
    fd_n = {**fd, **{(s.a, s.c, s.T): same_count[s.key]["fd"] for s in specs if s.T != 1.0}}
    # (name suffix, FDs) for T = 5: with the same step size when it was sampled, and with
    # the step count of T = 1
    at_t5 = [("", fd)] if scores_same_count is not None else []
    at_t5.append((_STEP_COUNT_TAG.format(n=n_same_count), fd_n))
    tables = {T: [("", fd)] if T == 1.0 else at_t5 for T in horizons}
    out = []
    if (1.0, 1.0) in pairs and large:
        for T in horizons:
            for name, table in tables[T]:
                others = [table[(*p, T)] for p in large]
                worst = table[(1.0, 1.0, T)]
                out.append(
                    row(
                        f"T={T:g}{name}: (1,1) has the worst FD",
                        f"{worst:.4g} vs max of others {max(others):.4g}",
                        "(1,1) > every larger pair",
                        worst > max(others),
                    )
                )
    if {1.0, 5.0} <= set(horizons) and large:
        need = math.ceil(0.75 * len(large))
        for name, table in tables[5.0]:
            better = sum(table[(*p, 5.0)] < fd[(*p, 1.0)] for p in large)
            out.append(
                row(
                    f"T=5{name} improves the larger pairs",
                    f"{better} of {len(large)} improve",
                    f">= {need} of {len(large)}",
                    better >= need,
                )
            )
    beats = sum(scores[s.key]["fd"] < scores[s.key]["fd_latent"] for s in specs)
    n = len(specs)
    out.append(row("ours: samples beat their latent noise", f"{beats} of {n}", f"{n} of {n}",
                   beats == n))  # fmt: skip
    out.append(row("ours: classifier accuracy", f"{accuracy:.4f}", ">= 0.98", accuracy >= 0.98))
    if baseline is not None:
        first = [s for s in specs if s.T == horizons[0]]
        best = min(scores[s.key]["fd"] for s in first)
        fd_rf = baseline[1]["fd"]
        out.append(
            row(
                f"ours: the best Kac model (T={horizons[0]:g}) beats rectified flow in FD",
                f"best Kac {best:.4g} vs rectified flow {fd_rf:.4g}",
                "best Kac < rectified flow",
                best < fd_rf,
            )
        )
    return out


def euler_steps(T: float, dt: float, n_saved: int = 2) -> int:
    """Number ``N`` of explicit Euler steps of size ``dt`` that cover ``[0, T]``: ``N = T/dt``.

    With one ``dt`` for every model, ``T = 1`` and ``T = 5`` are integrated with the same step
    size (``T = 5`` takes five times as many steps). ``T/dt`` must be a whole number, and a
    multiple of ``n_saved - 1`` so that the ``n_saved`` equally spaced stored times of
    :func:`generate` are Euler nodes; otherwise ``ValueError``. ``T``, ``dt`` in the time
    units of the path.
    """
    if not (T > 0 and dt > 0):
        raise ValueError(f"T and dt must be > 0, got T={T!r}, dt={dt!r}")
    n = round(T / dt)
    if n < 1 or abs(n * dt - T) > 1e-9 * max(1.0, T):
        raise ValueError(f"T/dt must be a whole number, got T={T:g}, dt={dt:g}")
    if n_saved < 2 or n % (n_saved - 1):
        raise ValueError(f"T/dt = {n} steps is not a multiple of n_saved - 1 = {n_saved - 1}")
    return n


def image_sampler(
    images: torch.Tensor, device: torch.device | str
) -> Callable[[int, torch.Generator], torch.Tensor]:
    """Data closure for :func:`kacnb.cfm.train.train`: ``data(n, generator)`` -> (n, 1, 28, 28).

    ``images`` (N, 1, 28, 28) are moved to ``device`` once; each call draws ``n`` indices
    uniformly with replacement using ``generator`` (which must live on ``device``), so no
    host-device copy happens in the training loop.
    """
    pool = images.to(device)

    def data(n: int, generator: torch.Generator) -> torch.Tensor:
        idx = torch.randint(0, pool.shape[0], (n,), generator=generator, device=pool.device)
        return pool[idx]

    return data


@dataclass
class Trained:
    """A trained model: ``model`` are the weights to sample with (the EMA), in eval mode.

    ``seconds`` is the wall time of the call (near 0 when a finished checkpoint was loaded);
    ``resumed_from`` the step the checkpoint held when the call started (0: trained afresh);
    ``step`` the number of optimiser steps behind ``model``; ``ema_decay`` the decay of the
    exponential moving average ``model`` is (None: the raw weights of the last step);
    ``stored_loss_curve`` the block-averaged loss a weights bundle keeps instead of the
    per-step losses (:meth:`loss_curve`).
    """

    spec: MnistModel
    model: torch.nn.Module
    result: TrainResult
    seconds: float
    resumed_from: int = 0
    step: int = 0
    ema_decay: float | None = None
    stored_loss_curve: tuple[torch.Tensor, torch.Tensor] | None = None

    def loss_curve(self, points: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
        """Block-averaged training loss ``(steps, means)`` (float64, about ``points`` each;
        :func:`kacnb.cfm.pretrained.loss_curve`), the same whether the model was trained
        here or loaded from a bundle (which keeps the curve of 500 points)."""
        return pretrained.stored_or_loss_curve(self.stored_loss_curve, self.result.losses, points)

    @property
    def weights(self) -> str:
        """Which checkpoint samples come from, e.g. ``"EMA (0.99) weights at step 400"``."""
        kind = f"EMA ({self.ema_decay:g}) weights" if self.ema_decay else "raw weights"
        return f"{kind} at step {self.step}"


#: Keys of the training settings read by :func:`train_model`.
TRAIN_KEYS = ("base", "levels", "blocks", "steps", "batch", "lr", "ema", "grad_clip")
#: Values of the optional setting ``amp`` (autocast dtype of training and sampling).
AMP_DTYPES = {None: None, "bf16": torch.bfloat16}


def model_checkpoint(directory: str | Path, spec, settings: dict, seed: int = 0) -> Path:
    """The checkpoint file :func:`train_model` uses for ``spec`` with ``settings`` and
    ``seed`` in ``directory`` (its name hashes the training settings, ``amp`` when set)."""
    s = {k: settings[k] for k in TRAIN_KEYS}
    amp = settings.get("amp")
    named = {**s, "seed": seed, **({"amp": amp} if amp is not None else {})}
    return checkpoint_file(directory, spec.key, named)


def restep_checkpoint(
    directory: str | Path, spec, settings: dict, steps: int, seed: int = 0
) -> Path | None:
    """Let a run of ``steps`` optimiser steps continue the checkpoint of the same run with
    ``settings["steps"]``: the file is renamed to the longer run's name (the name hashes the
    step count) and returned; ``None`` when there is none.

    Sound because nothing in :func:`train_model` depends on the step count before the end:
    the learning rate is constant and the checkpoint holds the generator, so the longer run
    passes through exactly the states of the shorter one. Raises ``ValueError`` when the
    checkpoint is past ``steps`` or a checkpoint of the longer run exists already.
    """
    old = model_checkpoint(directory, spec, settings, seed)
    if not old.exists():
        return None
    new = model_checkpoint(directory, spec, {**settings, "steps": int(steps)}, seed)
    if new.exists():
        raise ValueError(f"{new} exists already: not replaced by {old.name}")
    if checkpoint_step(old) > steps:
        raise ValueError(f"{old} is at step {checkpoint_step(old)}, past {steps}")
    old.rename(new)
    return new


def checkpoint_step(path: str | Path) -> int:
    """The optimiser step a training checkpoint holds (0 when the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return 0
    return int(torch.load(path, map_location="cpu", weights_only=True)["step"])


def train_model(
    spec: MnistModel,
    data: Callable[[int, torch.Generator], torch.Tensor],
    settings: dict,
    device: torch.device | str,
    directory: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
    validate: Callable[[torch.nn.Module, torch.Generator], float] | None = None,
    eval_every: int | None = None,
) -> Trained:
    """Train a :class:`~kacnb.cfm.models.UNet` on ``spec``'s path with the CFM loss [97].

    ``settings``: ``base``, ``levels``, ``blocks`` (U-Net), ``steps``, ``batch``, ``lr``
    (Adam), ``ema`` (EMA decay), ``grad_clip``; optional speed settings for a GPU: ``amp``
    (``"bf16"``: autocast, see :data:`AMP_DTYPES`), ``channels_last`` and ``compile``
    (``True`` or a ``torch.compile`` mode) as in :class:`~kacnb.cfm.config.TrainConfig`. With
    ``directory`` the run is checkpointed there (every ``min(steps, 500)`` steps and at the
    end) and a finished or interrupted run with the same settings and seed is resumed instead
    of started again. ``amp`` is part of the checkpoint name when set (it changes the
    arithmetic); ``channels_last`` and ``compile`` are not (they change only the speed).
    ``validate(model, generator)`` is called with the sampling (EMA) weights every
    ``eval_every`` steps (:func:`kacnb.cfm.train.train`; the learning curve of
    :mod:`kacnb.experiments.learning_curve` measures sample quality this way).
    """
    s = {k: settings[k] for k in TRAIN_KEYS}
    amp = settings.get("amp")
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp must be one of {list(AMP_DTYPES)}, got {amp!r}")
    torch.manual_seed(seed)  # the initial weights
    model = UNet(channels=IMAGE_SHAPE[0], base=s["base"], levels=s["levels"], blocks=s["blocks"])
    ckpt = None
    resumed = 0
    if directory is not None:
        ckpt = model_checkpoint(directory, spec, settings, seed)
        resumed = checkpoint_step(ckpt)
    config = TrainConfig(
        steps=s["steps"],
        batch_size=s["batch"],
        lr=s["lr"],
        ema_decay=s["ema"],
        grad_clip=s["grad_clip"],
        checkpoint_every=min(s["steps"], 500) if ckpt is not None else None,
        checkpoint_path=ckpt,
        seed=seed,
        amp_dtype=AMP_DTYPES[amp],
        compile=settings.get("compile", False),
        channels_last=bool(settings.get("channels_last", False)),
        progress=progress,
        desc=spec.key,
        eval_every=eval_every,
    )
    t0 = time.perf_counter()
    result = train(model, spec.path(), data, config, validate=validate, device=device)
    seconds = time.perf_counter() - t0
    ema = s["ema"] if result.ema is not None else None
    return Trained(spec, result.eval_model().eval(), result, seconds, resumed, s["steps"], ema)


#: Profiles whose training run ships its weights (``pretrained/05_mnist_<profile>.pt``).
SHIPPED_PROFILES = ("long", "paper")


def bundle_name(profile: str) -> str:
    """The weights bundle of ``profile``: ``"05_mnist_<profile>"`` (in ``pretrained/``)."""
    return f"05_mnist_{profile}"


def writes_bundle(profile: str, loaded: bool, pairs) -> bool:
    """Whether a run of notebook 05 leaves a weights bundle for the runner to publish: it
    trained (``loaded`` false) a profile of :data:`SHIPPED_PROFILES` with the paper's pairs
    (``pairs`` ``None`` or the same set; :func:`kacnb.cfm.pretrained.writes_bundle`)."""
    return pretrained.writes_bundle(profile, loaded, pairs, PAIRS, SHIPPED_PROFILES)


def from_bundle(specs: Sequence, entries: dict, info: dict) -> dict[str, Trained]:
    """``{key: Trained}`` for ``specs`` from :func:`kacnb.cfm.pretrained.load_bundle` entries.

    The models are the shipped (EMA) weights after ``iterations`` optimiser steps; the EMA
    decay is the bundle's ``settings["ema"]``. ``seconds`` is 0 and ``resumed_from`` the
    step count, as for a finished checkpoint; ``losses`` is empty, the bundle's block-averaged
    curve is :meth:`Trained.loss_curve`.
    Raises ``KeyError`` naming a model the bundle lacks.
    """
    ema = info.get("settings", {}).get("ema")
    out = {}
    for spec in specs:
        if spec.key not in entries:
            raise KeyError(f"the pretrained bundle has no model {spec.key!r}")
        e = entries[spec.key]
        result = train_result(e)
        steps = int(e["iterations"])
        out[spec.key] = Trained(spec, e["model"], result, 0.0, steps, steps, ema, e["loss_curve"])
    return out


#: Key of the classifier's weights among a 05 bundle's extras
#: (:func:`kacnb.cfm.pretrained.save_bundle`): the shipped models are scored with the very
#: classifier that scored them when they were committed.
CLASSIFIER_EXTRA = "classifier"


def shipped_classifier(directory: str | Path, name: str) -> DigitClassifier:
    """The :class:`DigitClassifier` kept in bundle ``name`` (extra :data:`CLASSIFIER_EXTRA`),
    on the CPU in eval mode, after the bundle's checksum and plain-data checks
    (:func:`kacnb.cfm.pretrained.load_extra`). Raises
    :class:`~kacnb.cfm.pretrained.BundleError` when it is missing or does not fit."""
    state = pretrained.load_extra(directory, name, CLASSIFIER_EXTRA)
    clf = DigitClassifier()
    try:
        clf.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise pretrained.BundleError(
            f"{name}: the classifier weights do not fit DigitClassifier ({first})"
        ) from None
    return clf.eval().requires_grad_(False)


def classifier_or_train(
    images: torch.Tensor,
    labels: torch.Tensor,
    epochs: int,
    device: torch.device | str,
    directory: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
) -> DigitClassifier:
    """:func:`kacnb.experiments.classifier.train_classifier` (batch 128, lr 1e-3), cached in
    ``directory``.

    Shuffling uses a CPU generator seeded with ``seed``; the cache file name hashes the
    number of images, ``epochs`` and ``seed``.
    """
    ckpt = None
    if directory is not None:
        settings = {"n": int(images.shape[0]), "epochs": epochs, "seed": seed}
        ckpt = checkpoint_file(directory, "classifier", settings)
        if ckpt.exists():
            clf = DigitClassifier().to(device)
            clf.load_state_dict(torch.load(ckpt, map_location=device, weights_only=True))
            return clf.eval()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    clf = train_classifier(
        images, labels, epochs=epochs, device=device, generator=gen, progress=progress
    )
    if ckpt is not None:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        torch.save(clf.state_dict(), ckpt)
    return clf


@dataclass(frozen=True)
class Generated:
    """Samples ``x`` (n, 1, 28, 28) at ``t = 0``, their ``latent`` ``K(T)`` and, when kept,
    ``times`` (S,) from ``T`` down to 0 and ``trajectory`` (S, n, 1, 28, 28), on the CPU."""

    x: torch.Tensor
    latent: torch.Tensor
    times: torch.Tensor
    trajectory: torch.Tensor | None
    nfe: int


def generate(
    model: torch.nn.Module,
    spec: MnistModel,
    n: int,
    steps: int,
    generator: torch.Generator,
    n_saved: int = 2,
    keep_trajectory: int = 0,
    chunk: int = 500,
    amp: str | None = None,
    workers: int = 1,
) -> Generated:
    """Draw ``n`` latents ``K(T)`` (independent of the data [98-99]) on the generator's device
    and integrate ``dx/dt = model(t, x)`` from ``T`` to 0 with ``steps`` explicit Euler steps.

    ``n_saved`` equally spaced times are stored for the first ``keep_trajectory`` samples
    (choose ``steps`` a multiple of ``n_saved - 1`` so the stored times are Euler nodes).
    Sampling runs in chunks of ``chunk`` images (the same samples for every ``chunk``: the
    latents are drawn first and the network treats each image alone; on a CPU, chunks of 64
    keep the activations in cache and run about 1.5 times faster than 256 at once,
    ``benchmarks/bench_sample_mnist.py``); ``nfe`` counts network calls per chunk.
    ``amp="bf16"`` evaluates the network under bf16 autocast (the Euler state stays in
    float32). ``workers`` > 1 integrates the chunks in that many forked single-thread
    processes (:func:`kacnb.cfm.forked.forked_map`; a CPU only, speed only, measured
    against threads by ``benchmarks/bench_sample_mnist.py``;
    :func:`kacnb.cfm.forked.cpu_workers` picks the count).
    """
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp must be one of {list(AMP_DTYPES)}, got {amp!r}")
    device = generator.device
    path = spec.path()
    velocity = model
    if amp is not None:

        def velocity(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            with torch.autocast(device_type=x.device.type, dtype=AMP_DTYPES[amp]):
                return model(t, x).to(x.dtype)

    zeros = torch.zeros((n, *IMAGE_SHAPE), device=device)
    latent = path.latent(zeros, generator)

    def one_chunk(start: int):
        out = integrate(
            velocity,
            latent[start : start + chunk],
            spec.T,
            0.0,
            method="euler",
            steps=steps,
            n_saved=n_saved,
            return_trajectory=True,
        )
        kept = (
            out.trajectory[:, : keep_trajectory - start].cpu() if start < keep_trajectory else None
        )
        return out.x.cpu(), kept, out.nfe, out.times.cpu()

    parts = forked_map(
        one_chunk, range(0, n, chunk), workers=workers if device.type == "cpu" else 1
    )
    trajs = [kept for _, kept, _, _ in parts if kept is not None]
    traj = torch.cat(trajs, dim=1) if trajs else None
    _, _, nfe, times = parts[-1]
    return Generated(torch.cat([x for x, *_ in parts]), latent.cpu(), times, traj, nfe)


def stop_at_deadline(what: str) -> None:
    """Raise :class:`~kacnb.cfm.train.TimeLimitReached` when the deadline of ``kacnb run
    --time-limit`` (:data:`kacnb.cfm.config.DEADLINE_ENV`) has passed; ``what`` names the work
    that was not started (the runner then stops with exit status 3)."""
    deadline = deadline_from_env()
    if deadline is not None and time.time() >= deadline:
        raise TimeLimitReached(
            f"time limit reached before {what}; finished work is saved, the same call again "
            f"continues"
        )


def generate_cached(
    model: torch.nn.Module,
    spec: MnistModel,
    n: int,
    steps: int,
    generator: torch.Generator,
    directory: str | Path | None,
    settings: dict,
    n_saved: int = 2,
    keep_trajectory: int = 0,
    amp: str | None = None,
    chunk: int = 500,
    workers: int = 1,
) -> Generated:
    """:func:`generate`, its result kept in ``directory`` (``None``: not kept).

    The file name hashes ``spec``, ``n``, ``steps``, ``n_saved``, ``keep_trajectory``,
    ``amp``, the generator's initial seed and ``settings`` (those of the trained model), so
    a changed model or sampler never reuses stale samples (``chunk`` and ``workers`` change
    the speed only, not the samples, and are not part of the name). Before sampling
    anything it calls :func:`stop_at_deadline`; a cached result is returned whatever the
    deadline.
    """
    ckpt = None
    if directory is not None:
        named = {
            **settings,
            "n": n,
            "steps": steps,
            "n_saved": n_saved,
            "keep_trajectory": keep_trajectory,
            "amp": amp,
            "generator_seed": generator.initial_seed(),
        }
        ckpt = checkpoint_file(directory, f"samples-{spec.key}", named)
        if ckpt.exists():
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
            return Generated(
                state["x"], state["latent"], state["times"], state["trajectory"], state["nfe"]
            )
    stop_at_deadline(f"sampling {spec.key} ({n} samples, {steps} Euler steps)")
    out = generate(model, spec, n, steps, generator, n_saved, keep_trajectory, chunk, amp, workers)
    if ckpt is not None:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        tmp = ckpt.with_suffix(".tmp")
        torch.save(
            {
                "x": out.x,
                "latent": out.latent,
                "times": out.times,
                "trajectory": out.trajectory,
                "nfe": out.nfe,
            },
            tmp,
        )
        tmp.replace(ckpt)
    return out


def label_stats(pred: torch.Tensor, n_classes: int = 10) -> dict[str, float | torch.Tensor]:
    """Distribution of predicted labels (N,): ``shares`` (n_classes,) summing to 1, its
    Shannon ``entropy`` in nats, ``entropy_ratio`` = entropy / log(n_classes) (1: all
    classes equally often, 0: one class only), ``max_share``, ``min_share`` and
    ``coverage``, the number of classes predicted for at least half their fair share
    (share >= 1 / (2 n_classes)): 10 for real digits, fewer when digits are missing."""
    counts = torch.bincount(pred.reshape(-1).cpu(), minlength=n_classes).to(torch.float64)
    shares = counts / counts.sum()
    nz = shares[shares > 0]
    entropy = float(-(nz * nz.log()).sum())
    return {
        "shares": shares,
        "entropy": entropy,
        "entropy_ratio": entropy / math.log(n_classes),
        "max_share": float(shares.max()),
        "min_share": float(shares.min()),
        "coverage": int((shares >= 0.5 / n_classes).sum()),
    }


#: Classifier probability from which a sample counts as a recognisable digit (``confident``).
CONFIDENT = 0.9


def evaluate(
    classifier: DigitClassifier, images: torch.Tensor, reference_features: torch.Tensor
) -> dict[str, float | torch.Tensor]:
    """Scores of images (N, 1, 28, 28), clipped to the data range [-1, 1] first.

    ``fd``: Frechet distance between the classifier features of ``images`` and
    ``reference_features`` (a held-out test set); ``confident``: share of the images whose
    predicted digit has classifier probability >= :data:`CONFIDENT` (real test digits: about
    0.98; noise: near 0); plus :func:`label_stats` of the predictions (``coverage``: digits
    predicted for at least half their fair share).
    """
    x = images.clamp(-1.0, 1.0)
    out = {"fd": frechet_distance(features(classifier, x), reference_features)}
    out["confident"] = float((confidence(classifier, x) >= CONFIDENT).double().mean())
    out.update(label_stats(predict(classifier, x)))
    return out


def sample_and_score(
    model: torch.nn.Module,
    spec: MnistModel,
    n: int,
    steps: int,
    generator: torch.Generator,
    directory: str | Path | None,
    settings: dict,
    classifier: DigitClassifier,
    reference_features: torch.Tensor,
    n_saved: int = 2,
    keep_trajectory: int = 0,
    amp: str | None = None,
    chunk: int = 500,
    workers: int = 1,
) -> tuple[Generated, dict]:
    """``n`` samples of one model (:func:`generate_cached`: ``steps`` Euler steps from the
    latents of ``generator``, kept in ``directory``) and their :func:`evaluate` scores, with
    ``fd_latent``, the FD of the latents ``K(T)`` themselves (the ceiling a model must beat).
    ``chunk``: images per network call, ``workers``: processes (:func:`generate`; speed
    only). Raises
    ``RuntimeError`` if the sampler did not make ``steps`` network calls."""
    out = generate_cached(
        model,
        spec,
        n,
        steps,
        generator,
        directory,
        settings,
        n_saved,
        keep_trajectory,
        amp,
        chunk,
        workers,
    )
    if out.nfe != steps:
        raise RuntimeError(f"{spec.key}: {out.nfe} network calls instead of {steps} Euler steps")
    scores = evaluate(classifier, out.x, reference_features)
    scores["fd_latent"] = evaluate(classifier, out.latent, reference_features)["fd"]
    return out, scores


def tile_images(images: torch.Tensor, ncol: int, pad: int = 2, fill: float = 1.0) -> torch.Tensor:
    """Arrange images (N, 1, H, W) in a grid of ``ncol`` columns: a (rows*(H+pad)-pad,
    ncol*(W+pad)-pad) tensor, image ``i`` in row ``i // ncol``; ``pad`` pixels of value
    ``fill`` between images and in empty slots. Values are clipped to [-1, 1] (the data range)."""
    n, _, h, w = images.shape
    rows = max(1, -(-n // ncol))
    out = torch.full((rows * (h + pad) - pad, ncol * (w + pad) - pad), float(fill))
    x = images.detach().to("cpu", torch.float32).clamp(-1.0, 1.0)
    for i in range(n):
        r, c = divmod(i, ncol)
        out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = x[i, 0]
    return out


def run_summary(
    specs: Sequence[MnistModel],
    scores: dict[str, dict],
    fd_floor: float,
    n_samples: int,
    table: Sequence[dict],
    baseline: tuple[str, dict] | None = None,
) -> list[str]:
    """Sentences summarising one run of notebook 05, computed from its scores.

    ``scores[spec.key]`` are :func:`evaluate`'s numbers plus ``fd_latent``; ``fd_floor`` the
    FD of ``n_samples`` test digits; ``table`` the verdict rows; ``baseline`` an optional
    ``(label, scores)`` of the rectified-flow model. The notebook prints the sentences, so
    its summary describes whichever run produced it and is never typed in by hand.
    """
    out = []
    n_ok = sum(r["verdict"] == "reproduced" for r in table)
    out.append(f"{n_ok} of {len(table)} rows reproduced.")
    by_t: dict[float, list[MnistModel]] = {}
    for s in specs:
        by_t.setdefault(s.T, []).append(s)
    parts = [
        f"{span([scores[s.key]['fd'] for s in group], '.0f')} for T = {T:g}"
        for T, group in sorted(by_t.items())
    ]
    ceiling = span([scores[s.key]["fd_latent"] for s in specs], ".0f")
    out.append(
        f"FD {', '.join(parts)}, against a floor of {fd_floor:.0f} ({n_samples} test digits) "
        f"and a latent-noise ceiling of {ceiling}."
    )
    out.append(
        "Confidently classified samples (probability >= "
        f"{CONFIDENT:g}): {span([100 * scores[s.key]['confident'] for s in specs], '.0f')}%; "
        f"digits covered (at least half their share): "
        f"{span([scores[s.key]['coverage'] for s in specs], 'd')} of 10."
    )
    for T, group in sorted(by_t.items()):
        ranked = sorted(group, key=lambda s: scores[s.key]["fd"])
        out.append(
            f"T = {T:g}, from best to worst FD: "
            + ", ".join(f"({s.a:g}, {s.c:g}) {scores[s.key]['fd']:.0f}" for s in ranked)
            + "."
        )
    ones = {(s.a, s.c): s for s in by_t.get(1.0, [])}
    pairs = [(ones[(s.a, s.c)], s) for s in by_t.get(5.0, []) if (s.a, s.c) in ones and s.a > 1]
    if pairs:
        change = [100 * (scores[s5.key]["fd"] / scores[s1.key]["fd"] - 1) for s1, s5 in pairs]
        better = sum(c < 0 for c in change)
        out.append(
            "T = 5 against T = 1 for the larger pairs: FD change "
            + ", ".join(f"{c:+.0f}%" for c in change)
            + f" ({better} of {len(pairs)} better)."
        )
    if baseline is not None:
        label, sc = baseline
        kac1 = by_t.get(1.0, specs)
        best = min(kac1, key=lambda s: scores[s.key]["fd"])
        out.append(
            f"{label}: FD {sc['fd']:.0f}, confident {100 * sc['confident']:.0f}%, against "
            f"the best Kac model at the same horizon, ({best.a:g}, {best.c:g}), "
            f"FD {scores[best.key]['fd']:.0f}."
        )
    return out


#: The targets for notebook 05's long profile (2-core CPU, hours): the best Kac model at
#: ``T = 1`` reaches an FD of at most ``fd`` at 256 samples and a ``confident`` share of at
#: least 0.6 (readable digits); project goals, not claims of the paper.
TARGETS = {"fd": 70.0, "confident": 0.6}


def subset_fds(
    classifier: DigitClassifier, images: torch.Tensor, reference_features: torch.Tensor, n: int
) -> list[float]:
    """FD of each disjoint set of ``n`` consecutive images (N, 1, 28, 28) against
    ``reference_features``: ``N // n`` values (the rest of the images unused), each
    comparable with an FD of ``n`` samples (the estimate is biased upwards by a term of order
    ``1/n``, so only sets of one size are comparable). Images are clipped to [-1, 1]."""
    if n < 2:
        raise ValueError(f"subset_fds needs sets of at least 2 images, got n = {n}")
    feats = features(classifier, images.clamp(-1.0, 1.0))
    return [
        float(frechet_distance(feats[i * n : (i + 1) * n], reference_features))
        for i in range(feats.shape[0] // n)
    ]


def best_at_t1(specs: Sequence[MnistModel], scores: dict[str, dict]) -> MnistModel:
    """The model of lowest FD in ``scores`` among the ``T = 1`` models of ``specs``: the one
    sampled again at a larger size and judged by :func:`target_rows`. Raises ``ValueError``
    without a ``T = 1`` model."""
    ones = [s for s in specs if s.T == 1.0]
    if not ones:
        raise ValueError("the targets need a model with T = 1 among the specs")
    return min(ones, key=lambda s: scores[s.key]["fd"])


def target_rows(
    specs: Sequence[MnistModel],
    scores: dict[str, dict],
    targets: dict | None = None,
    fresh: dict | None = None,
) -> list[dict]:
    """Each of :data:`TARGETS` (or ``targets``) for the Kac model of lowest FD at ``T = 1``
    among ``specs``: ``{"target", "model", "value", "met", "gap", "basis"}``. ``gap`` is how
    far the value is on the wrong side of the target (0 when met): ``fd - 70`` for the FD,
    ``0.6 - confident`` for the share.

    The model is chosen by its FD in ``scores``, so that FD favours it (the lowest of several
    noisy estimates). ``fresh`` (``{"fds": [...], "confident": share}``: the chosen model's FD
    on disjoint sets of as many fresh samples as ``scores`` used, :func:`subset_fds`, and the
    confident share of all the fresh samples) judges the targets on samples the choice did
    not see: the FD target on the mean of ``fds``, the share on ``confident``; ``basis``
    says which. Raises ``ValueError`` without a ``T = 1`` model."""
    targets = TARGETS if targets is None else targets
    best = best_at_t1(specs, scores)
    sc, basis = dict(scores[best.key]), {}
    if fresh is not None and fresh.get("fds"):
        fds = [float(v) for v in fresh["fds"]]
        sc["fd"] = sum(fds) / len(fds)
        basis["fd"] = f"mean of {len(fds)} fresh sets"
    if fresh is not None and fresh.get("confident") is not None:
        sc["confident"] = float(fresh["confident"])
        basis["confident"] = "fresh samples"
    out = []
    for key, target in targets.items():
        upper = key == "fd"  # the FD is an upper bound, every share a lower one
        gap = max(0.0, (sc[key] - target) if upper else (target - sc[key]))
        name = f"FD <= {target:g}" if upper else f"{key} >= {target:g}"
        out.append({"target": name, "model": best.label, "value": float(sc[key]),
                    "met": gap == 0.0, "gap": gap,
                    "basis": basis.get(key, "the scored samples")})  # fmt: skip
    return out
