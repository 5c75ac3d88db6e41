"""Pretrained weight bundles: save, verify and load (no code execution on load).

A bundle is two files in ``pretrained/``: ``<name>.pt`` holds, per model key, the selected
(best validation) weights of an :class:`~kacnb.cfm.models.MLP` or a
:class:`~kacnb.cfm.models.UNet`, its validation curve and a block-averaged loss curve;
``<name>.json`` holds, per model key, the architecture the weights belong to
(:func:`~kacnb.cfm.models.architecture`: ``{"arch": "mlp", "dim", "width", "depth"}`` or
``{"arch": "unet", "channels", "base", "levels", "blocks"}``; bundles written before U-Nets
were supported give an MLP's ``{"width", "depth"}`` only), the training settings, the run's
provenance and the SHA-256 of the ``.pt`` file. :func:`load_bundle` checks every architecture
against :data:`~kacnb.cfm.models.ARCH_LIMITS` and the checksum before reading, and reads with
``torch.load(weights_only=True)``, which refuses pickled code. A bundle may also keep
``extras``, further state dicts in the same checksummed ``.pt`` (notebook 05 keeps the
classifier that scored its models), read with :func:`load_extra` after the same checks.

Notebook 04 (MLPs of the 2D experiment) never writes ``pretrained/`` itself: a paper-profile
training run of the paper's models (:func:`writes_bundle`) saves its bundle in its own output
folder, :func:`run_dir` of its ``figures_dir``, and ``kacnb run`` publishes it to
``pretrained/`` only in a publishing run of the paper profile, with the run's other outputs
(``kacnb.collection.runner.publish``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch

from .._root import PROJECT_ROOT
from .models import architecture, build, validate_architecture
from .train import TrainResult

__all__ = [
    "BundleError",
    "save_bundle",
    "load_bundle",
    "load_extra",
    "train_result",
    "sha256",
    "loss_curve",
    "stored_or_loss_curve",
    "default_dir",
    "run_dir",
    "writes_bundle",
    "RUN_SUBDIR",
]

FORMAT = 1
#: Sub-folder of a run's figures folder where a notebook leaves its bundle for the runner.
RUN_SUBDIR = "pretrained"


class BundleError(RuntimeError):
    """A pretrained bundle is missing, altered or of another format."""


def default_dir() -> Path:
    """``<repository root>/pretrained`` (committed)."""
    return PROJECT_ROOT / "pretrained"


def run_dir(figures_dir: str | os.PathLike) -> Path:
    """Where a run leaves its bundle: ``<figures_dir>/pretrained`` (the runner moves it to
    :func:`default_dir` only when the run publishes the paper profile)."""
    return Path(figures_dir) / RUN_SUBDIR


def writes_bundle(
    profile: str, loaded: bool, pairs, paper_pairs, shipped_profiles=("paper",)
) -> bool:
    """Whether a run of a notebook saves a bundle: it trained (``loaded`` is false) at one of
    the ``shipped_profiles`` (04: the paper profile; 05: long and paper), and its Kac
    ``pairs`` (``None``: the paper's) are the ``paper_pairs``."""
    if profile not in shipped_profiles or loaded:
        return False
    return pairs is None or {tuple(p) for p in pairs} == {tuple(p) for p in paper_pairs}


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def loss_curve(losses: torch.Tensor, points: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """Block means of a per-iteration loss (N,): ``(iterations, means)``, about ``points`` each.

    ``iterations`` are the block centres (1-based iteration numbers, float64).
    """
    n = losses.numel()
    block = max(1, n // points)
    m = (n // block) * block
    means = losses[:m].double().reshape(-1, block).mean(1)
    centres = torch.arange(means.numel(), dtype=torch.float64) * block + (block + 1) / 2
    return centres, means


def stored_or_loss_curve(
    stored: tuple[torch.Tensor, torch.Tensor] | None, losses: torch.Tensor, points: int = 500
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss curve of a trained model, the same whether it was trained here or loaded: a
    bundle keeps only the block means (``stored``, as :func:`save_bundle` wrote them), a
    model trained here has its per-iteration ``losses`` (:func:`loss_curve`)."""
    return stored if stored is not None else loss_curve(losses, points)


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_bundle(
    trained: dict,
    directory: str | os.PathLike,
    name: str,
    info: dict,
    extras: dict[str, dict[str, torch.Tensor]] | None = None,
) -> Path:
    """Write ``<directory>/<name>.pt`` and ``.json`` from ``{key: trained model}``.

    Each value has ``model`` (an :class:`~kacnb.cfm.models.MLP` or
    :class:`~kacnb.cfm.models.UNet`) and ``result`` (a :class:`~kacnb.cfm.train.TrainResult`:
    ``losses``, ``validation``, ``best_step``, ``best_value``), as the ``Trained`` of
    ``gmm2d`` and ``mnist_exp``. The ``.json`` names each model's
    :func:`~kacnb.cfm.models.architecture`; ``info`` (JSON-serialisable: settings, profile,
    device, commit, wall time) goes into it with the checksum. Returns the ``.json`` path.
    ``ValueError`` (nothing written) for a model :func:`load_bundle` would refuse to build.
    ``extras`` (``{key: state dict}``) are further plain tensors kept in the same checksummed
    ``.pt``, e.g. the weights of the classifier that scored the models; their keys are listed
    under ``"extras"`` in the ``.json`` and :func:`load_extra` reads them back.
    """
    shapes = {}
    for key, tr in trained.items():
        try:
            shapes[key] = validate_architecture(architecture(tr.model))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: model {key}: {exc}") from None
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    extras = {} if extras is None else extras
    for key, state in extras.items():
        if not isinstance(state, dict) or not all(
            isinstance(v, torch.Tensor) for v in state.values()
        ):
            raise ValueError(f"{name}: extra {key!r} must be a dict of tensors (a state dict)")
    payload = {"format": FORMAT, "models": {}}
    if extras:
        payload["extras"] = {
            key: {k: v.detach().cpu().clone() for k, v in state.items()}
            for key, state in extras.items()
        }
    for key, tr in trained.items():
        res = tr.result
        it, mean = loss_curve(res.losses)
        payload["models"][key] = {
            "state": {
                k: v.detach().cpu().float().clone() for k, v in tr.model.state_dict().items()
            },
            "best_step": int(res.best_step) if res.best_step is not None else -1,
            "best_value": float(res.best_value) if res.best_value is not None else float("nan"),
            "validation": torch.tensor(res.validation, dtype=torch.float64),
            "loss_iterations": it,
            "loss_means": mean,
            "iterations": int(res.losses.numel()),
        }
    pt = directory / f"{name}.pt"
    _atomic_write(pt, lambda tmp: torch.save(payload, tmp))
    meta = {"format": FORMAT, "file": pt.name, "sha256": sha256(pt), "models": shapes, **info}
    if extras:
        meta["extras"] = sorted(extras)
    js = directory / f"{name}.json"
    _atomic_write(js, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1) + "\n"))
    return js


#: Largest MLP width and depth a bundle's ``.json`` may name (the shipped models are 256
#: wide, 3 deep); larger values are refused before any weights are allocated. The limits of
#: every architecture are :data:`~kacnb.cfm.models.ARCH_LIMITS`.


def train_result(entry: dict) -> TrainResult:
    """The :class:`~kacnb.cfm.train.TrainResult` of one :func:`load_bundle` entry: its model,
    validation curve and selected step; ``losses`` is empty (a bundle keeps only the
    block-averaged curve, ``entry["loss_curve"]``) and there is no separate EMA."""
    return TrainResult(
        model=entry["model"],
        ema=None,
        losses=torch.zeros(0),
        validation=entry["validation"],
        best_step=entry["best_step"],
        best_value=entry["best_value"],
    )


def _read_info(js: Path, dim: int = 2) -> tuple[dict, dict[str, dict]]:
    """The ``.json`` of a bundle, checked: ``(info, {key: architecture})``.

    ``info`` must be an object of this :data:`FORMAT` with a SHA-256 and a table of models
    whose entries :func:`~kacnb.cfm.models.validate_architecture` accepts, or, in the form of
    the first bundles (no ``"arch"``), give an MLP's ``width`` and ``depth`` (its ``dim`` is
    the argument). Raises :class:`BundleError` naming the file, the model key and what is
    wrong; nothing is built.
    """
    try:
        info = json.loads(js.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f"{js.name}: not readable JSON ({exc})") from None
    if not isinstance(info, dict):
        raise BundleError(f"{js.name}: expected a JSON object, got {type(info).__name__}")
    if info.get("format") != FORMAT:
        raise BundleError(f"{js.name}: format {info.get('format')!r}, expected {FORMAT}")
    if not isinstance(info.get("sha256"), str):
        raise BundleError(f"{js.name}: no SHA-256 of the weights file")
    models = info.get("models")
    if not isinstance(models, dict) or not models:
        raise BundleError(f"{js.name}: no table of models (key -> architecture)")
    archs = {}
    for key, entry in models.items():
        if not isinstance(entry, dict):
            raise BundleError(
                f"{js.name}: model {key}: expected an architecture object, got {entry!r}"
            )
        if "arch" not in entry:  # the first bundles: an MLP's width and depth only
            entry = {
                "arch": "mlp",
                "dim": dim,
                "width": entry.get("width"),
                "depth": entry.get("depth"),
            }
        try:
            archs[key] = validate_architecture(entry)
        except ValueError as exc:
            raise BundleError(f"{js.name}: model {key}: {exc}") from None
    return info, archs


def _describe(arch: dict) -> str:
    """``"MLP of dim 2, width 256, depth 3"`` or ``"U-Net of channels 1, base 64, ..."``."""
    kind = {"mlp": "MLP", "unet": "U-Net"}[arch["arch"]]
    return f"{kind} of " + ", ".join(f"{k} {v}" for k, v in arch.items() if k != "arch")


def _checked_payload(
    directory: str | os.PathLike, name: str, dim: int = 2
) -> tuple[dict, dict, object, tuple[Path, Path]]:
    """``(info, {key: architecture}, payload, (json path, pt path))`` of a bundle whose
    ``.json`` passes :func:`_read_info` and whose ``.pt`` matches its SHA-256, read with
    ``weights_only=True``; :class:`BundleError` otherwise."""
    directory = Path(directory)
    js, pt = directory / f"{name}.json", directory / f"{name}.pt"
    if not js.exists() or not pt.exists():
        raise BundleError(f"pretrained bundle {name!r} not found in {directory}")
    info, archs = _read_info(js, dim)
    digest = sha256(pt)
    if digest != info.get("sha256"):
        raise BundleError(
            f"{pt.name}: SHA-256 {digest[:16]}... does not match {js.name} "
            f"({str(info.get('sha256'))[:16]}...): the file was altered or truncated"
        )
    try:
        payload = torch.load(pt, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError for anything but plain data
        raise BundleError(f"{pt.name}: refused to load ({type(exc).__name__}: {exc})") from None
    return info, archs, payload, (js, pt)


def load_bundle(directory: str | os.PathLike, name: str, dim: int = 2) -> tuple[dict, dict]:
    """Verify and read a bundle: ``({key: entry}, info)``.

    Each entry has ``model`` (the :class:`~kacnb.cfm.models.MLP` or
    :class:`~kacnb.cfm.models.UNet` the ``.json`` names, float32 on the CPU, in eval mode, no
    gradients), ``best_step``, ``best_value``, ``validation`` [(iteration, value)],
    ``loss_curve`` (iterations, means) and ``iterations``. ``dim`` is the number of
    coordinates of the MLPs of bundles in the first form (``{"width", "depth"}`` only); the
    other entries carry their own. Raises :class:`BundleError` naming the file (and the model
    key) when it is missing, its ``.json`` is malformed or names an architecture beyond
    :data:`~kacnb.cfm.models.ARCH_LIMITS` (checked before anything is read or built), its
    checksum differs from the ``.json``, it holds anything but tensors and numbers, or the
    weights do not fit the architecture.
    """
    info, archs, payload, (js, pt) = _checked_payload(directory, name, dim)
    models = payload.get("models") if isinstance(payload, dict) else None
    if not isinstance(models, dict):
        raise BundleError(f"{pt.name}: no table of models")
    missing = sorted(set(models) - set(archs))
    if missing:
        raise BundleError(f"{js.name}: no architecture for the models {', '.join(missing)}")
    out = {}
    for key, entry in models.items():
        model = build(archs[key])  # validated by _read_info: cannot fail here
        try:
            model.load_state_dict(entry["state"])
        except (KeyError, TypeError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BundleError(
                f"{pt.name}: the weights of {key} do not fit the {_describe(archs[key])} "
                f"that {js.name} names ({first})"
            ) from None
        model.eval().requires_grad_(False)
        out[key] = {
            "model": model,
            "best_step": entry["best_step"],
            "best_value": entry["best_value"],
            "validation": [(int(s), float(v)) for s, v in entry["validation"].tolist()],
            "loss_curve": (entry["loss_iterations"], entry["loss_means"]),
            "iterations": entry["iterations"],
        }
    return out, info


def load_extra(directory: str | os.PathLike, name: str, key: str) -> dict[str, torch.Tensor]:
    """The state dict ``extras[key]`` that :func:`save_bundle` kept in bundle ``name``, after
    the same checks as :func:`load_bundle` (checksum, plain data only). Raises
    :class:`BundleError` when the bundle is missing or altered or has no such extra."""
    _, _, payload, (_, pt) = _checked_payload(directory, name)
    extras = payload.get("extras") if isinstance(payload, dict) else None
    state = extras.get(key) if isinstance(extras, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BundleError(f"{pt.name}: no extra weights {key!r}")
    return state
