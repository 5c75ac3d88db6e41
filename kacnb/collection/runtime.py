"""Run-time set-up shared by the notebooks: profile, device, seeds and figure style.

Every notebook starts with::

    rt = runtime.setup(profile, device, seed)
    cfg = runtime.pick(profile, SETTINGS)

``setup`` validates the profile and device (``"auto"`` -> CUDA when available), seeds Python,
NumPy and torch, sets torch's CPU thread count, applies the figure style and prints one line
recording the set-up, so an executed notebook says how it was run.

Threads: ``KACNB_THREADS`` (a positive integer) sets the count for every profile; without
it the ``smoke`` profile uses one thread (the regression references are made that way, and
the CI regression run repeats them with 2 threads and a different CPU kernel set to show
that the comparison does not depend on it) and the other profiles keep torch's default.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from .plotting import use_style

__all__ = ["PROFILES", "DEVICES", "Runtime", "resolve_device", "setup", "pick"]

#: Run profiles: ``smoke`` (seconds, CPU, regression tests), ``quick`` (minutes, a first look),
#: ``long`` (hours of a 2-core CPU in the background; notebook 05 only, see
#: :attr:`kacnb.collection.registry.NotebookSpec.profiles`) and ``paper`` (the settings of the
#: paper's figures).
PROFILES = ("smoke", "quick", "long", "paper")
#: Device choices accepted on the command line (``"cuda:N"`` is accepted too).
DEVICES = ("auto", "cpu", "cuda")

T = TypeVar("T")


@dataclass(frozen=True)
class Runtime:
    """What :func:`setup` decided."""

    profile: str
    device: torch.device
    seed: int
    #: A generator on ``device`` seeded with ``seed``, for sampling calls that take one.
    generator: torch.Generator

    def progress(
        self, items: Sequence[T], desc: str, name: Callable[[T], str] | None = None
    ) -> Iterator[T]:
        """``items`` one by one behind a progress bar with ETA on stderr (none in ``smoke``).

        For a notebook's long loops over models (sampling, scoring): the bar's postfix
        ``model=<name(item)>`` names the item being worked on (default: its ``label``), which
        the runner's status line shows first (:mod:`kacnb.collection.liveprogress`).
        """
        from tqdm import tqdm  # text bars: tqdm.auto warns without ipywidgets

        name = name or (lambda item: str(getattr(item, "label", item)))
        bar = tqdm(items, desc=desc, unit="model", disable=self.profile == "smoke")
        for item in bar:
            bar.set_postfix_str(f"model={name(item)}", refresh=True)
            yield item


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
    return profile


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> ``cuda`` when available else ``cpu``; validate ``"cpu"``/``"cuda[:N]"``."""
    if isinstance(device, torch.device):
        dev = device
    else:
        text = str(device).strip().lower()
        if text == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            dev = torch.device(text)
        except RuntimeError:
            raise ValueError(
                f"unknown device {device!r}; valid devices: auto, cpu, cuda, cuda:N"
            ) from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {device!r}; valid devices: auto, cpu, cuda, cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device {device!r} requested but CUDA is not available "
                f"(torch {torch.__version__}); use device='cpu' or 'auto'"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RuntimeError(
                f"device {device!r} requested but only {torch.cuda.device_count()} "
                f"CUDA device(s) are visible"
            )
    return dev


def thread_count(profile: str) -> int | None:
    """CPU threads for ``profile``: ``$KACNB_THREADS``, else 1 for smoke, else None (default)."""
    text = os.environ.get("KACNB_THREADS", "").strip()
    if text:
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"KACNB_THREADS must be a positive integer, got {text!r}")
        return int(text)
    return 1 if profile == "smoke" else None


def setup(profile: str, device: str | torch.device = "auto", seed: int = 0) -> Runtime:
    """Validate and apply the run settings of a notebook; see the module docstring."""
    check_profile(profile)
    dev = resolve_device(device)
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the legacy global RNG, for notebook code
    torch.manual_seed(seed)  # seeds every CUDA device too
    threads = thread_count(profile)
    if threads is not None:
        torch.set_num_threads(threads)
    use_style()
    generator = torch.Generator(device=dev)
    generator.manual_seed(seed)
    print(f"profile={profile} device={dev} seed={seed} torch={torch.__version__}")
    return Runtime(profile=profile, device=dev, seed=seed, generator=generator)


def pick(profile: str, table: Mapping[str, T]) -> T:
    """Return ``table[profile]``: the per-profile settings of a notebook.

    Raises ``ValueError`` for an unknown profile or a table that lacks the profile.
    """
    check_profile(profile)
    if profile not in table:
        raise ValueError(
            f"the settings table has no entry for profile {profile!r} "
            f"(it has: {', '.join(map(repr, table))})"
        )
    return table[profile]
