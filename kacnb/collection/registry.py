"""The notebooks of the collection: number, file stem, title and the figures they write.

``notebooks/<stem>.py`` (jupytext percent format) is the source of truth of a notebook; the
executed ``notebooks/<stem>.ipynb`` is generated from it by ``kacnb run``.  A notebook is
*registered* when it is listed in :data:`NOTEBOOKS` and *available* (runnable) when its
``.py`` exists.  :class:`Registry` pairs a list of entries with a notebooks directory, so
tests can use a temporary directory and extra entries without touching the real list.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .._root import PROJECT_ROOT

__all__ = [
    "FigureSpec",
    "NotebookSpec",
    "NOTEBOOKS",
    "Registry",
    "UnknownNotebookError",
    "default_notebooks_dir",
]


@dataclass(frozen=True)
class FigureSpec:
    """A figure written by a notebook as ``<stem>.png`` and ``<stem>.pdf``."""

    stem: str
    #: What it reproduces in the paper ("Fig. 1", "App. A.2"), or None for notebook-only figures.
    paper: str | None = None
    #: Short description.
    caption: str = ""


@dataclass(frozen=True)
class NotebookSpec:
    """One notebook of the collection."""

    number: int
    stem: str
    title: str
    #: Figures with a fixed file stem (paper figures and named extra figures).
    figures: tuple[FigureSpec, ...] = ()
    #: The run profiles its settings table has (:data:`kacnb.collection.runtime.PROFILES`).
    profiles: tuple[str, ...] = ("smoke", "quick", "paper")

    @property
    def label(self) -> str:
        """Two-digit number, as used on the command line ("02")."""
        return f"{self.number:02d}"

    @property
    def file_prefix(self) -> str:
        """Prefix of the notebook's own (non-paper) figure files, e.g. ``"nb02_"``."""
        return f"nb{self.number:02d}_"

    @property
    def paper_figures(self) -> tuple[FigureSpec, ...]:
        return tuple(f for f in self.figures if f.paper is not None)


NOTEBOOKS: tuple[NotebookSpec, ...] = (
    NotebookSpec(
        1,
        "01_velocity_explosion",
        "Exploding velocities of existing flows, and the bounded Kac flow",
    ),
    NotebookSpec(
        2,
        "02_kac_1d",
        "The one-dimensional Kac process: paths, density and velocity field",
    ),
    NotebookSpec(
        3,
        "03_kac_multid",
        "Component-wise Kac processes in several dimensions",
        (
            FigureSpec("fig01_kac_paths_2d", "Fig. 1", "paths of a 2D Kac process"),
            FigureSpec("nb03_point_cloud", None, "talk figure: a point cloud under the Kac flow"),
        ),
    ),
    NotebookSpec(
        4,
        "04_cfm_gmm_2d",
        "Kac flow matching on a 2D Gaussian mixture",
        (
            FigureSpec("fig04_backward_evolution", "Fig. 4", "backward evolution of the samples"),
            FigureSpec("fig05_gmm_samples", "Fig. 5", "generated vs ground-truth samples"),
        ),
    ),
    NotebookSpec(
        5,
        "05_mnist",
        "Kac flow matching on MNIST",
        (
            FigureSpec("fig06_mnist_forward", "Fig. 6", "forward Kac process on MNIST"),
            FigureSpec("fig07_mnist_T1", "Fig. 7", "generated digits, T = 1"),
            FigureSpec("fig08_mnist_T5", "Fig. 8", "generated digits, T = 5"),
            FigureSpec("figA2_mnist_trajectories", "App. A.2", "sampling trajectories"),
        ),
        ("smoke", "quick", "long", "paper"),
    ),
)


class UnknownNotebookError(ValueError):
    """A notebook name that matches no registered notebook."""


def default_notebooks_dir() -> Path:
    """``./notebooks`` if it exists in the working directory, else the repository's one.

    The repository's directory is ``notebooks/`` next to the installed package's parent
    directory (the repository root for an editable install).
    """
    cwd_dir = Path.cwd() / "notebooks"
    if cwd_dir.is_dir():
        return cwd_dir.resolve()
    return (PROJECT_ROOT / "notebooks").resolve()


class Registry:
    """Registered notebooks plus the directory holding their ``.py`` sources."""

    def __init__(
        self,
        entries: Iterable[NotebookSpec] = NOTEBOOKS,
        notebooks_dir: str | Path | None = None,
    ) -> None:
        self.entries: tuple[NotebookSpec, ...] = tuple(sorted(entries, key=lambda e: e.number))
        numbers = [e.number for e in self.entries]
        stems = [e.stem for e in self.entries]
        if len(set(numbers)) != len(numbers) or len(set(stems)) != len(stems):
            raise ValueError("notebook numbers and stems must be unique")
        self.notebooks_dir = (
            Path(notebooks_dir).resolve() if notebooks_dir is not None else default_notebooks_dir()
        )

    # -- locations -------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        """Repository root: the parent of the notebooks directory."""
        return self.notebooks_dir.parent

    @property
    def figures_dir(self) -> Path:
        return self.root / "figures"

    @property
    def golden_dir(self) -> Path:
        return self.root / "tests" / "golden"

    def source(self, spec: NotebookSpec) -> Path:
        """The notebook's source of truth, ``<notebooks_dir>/<stem>.py``."""
        return self.notebooks_dir / f"{spec.stem}.py"

    def exists(self, spec: NotebookSpec) -> bool:
        return self.source(spec).is_file()

    def available(self) -> list[NotebookSpec]:
        """Registered notebooks whose ``.py`` exists, in order."""
        return [e for e in self.entries if self.exists(e)]

    # -- look-up ---------------------------------------------------------------------------
    def valid_names(self) -> str:
        return ", ".join(f"{e.label} ({e.stem})" for e in self.entries)

    def _unknown(self, name: str, why: str = "") -> UnknownNotebookError:
        return UnknownNotebookError(
            f"unknown notebook {name!r}{why}; valid notebooks: {self.valid_names()}"
        )

    def resolve(self, name: str | Path) -> NotebookSpec:
        """Find a notebook by number ("02", "2"), stem ("02_kac_1d") or path.

        A path (anything with a directory part or a ``.py``/``.ipynb`` suffix) resolves by its
        file stem and must lie in the notebooks directory.
        """
        text = str(name).strip()
        if text.isdigit():
            for e in self.entries:
                if e.number == int(text):
                    return e
            raise self._unknown(text)
        for e in self.entries:
            if e.stem == text:
                return e
        path = Path(text)
        if path.suffix in (".py", ".ipynb") or len(path.parts) > 1:
            for e in self.entries:
                if e.stem == path.stem:
                    if len(path.parts) > 1 and path.resolve().parent != self.notebooks_dir:
                        raise UnknownNotebookError(
                            f"{text!r} is not in the notebooks directory {self.notebooks_dir}; "
                            f"pass --notebooks-dir {path.resolve().parent} to use that directory"
                        )
                    return e
            raise self._unknown(text, f" (file stem {path.stem!r})")
        raise self._unknown(text)

    def resolve_runnable(self, names: Iterable[str | Path]) -> list[NotebookSpec]:
        """Resolve ``names`` (all available notebooks if empty), requiring the ``.py`` to exist.

        Raises :class:`UnknownNotebookError` for unknown names and :class:`FileNotFoundError`
        for registered notebooks whose source does not exist yet.  Returns an empty list when
        no names are given and no notebook exists yet.
        """
        names = list(names)
        if not names:
            return self.available()
        specs: list[NotebookSpec] = []
        for name in names:
            spec = self.resolve(name)
            if not self.exists(spec):
                raise FileNotFoundError(
                    f"notebook {spec.label} ({spec.stem}) is registered but "
                    f"{self.source(spec)} does not exist yet"
                )
            if spec not in specs:
                specs.append(spec)
        return specs
