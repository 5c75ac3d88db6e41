"""The project's root folder: where the notebooks, figures, checkpoints and shipped data live."""

from pathlib import Path

#: ``<repository root>``, the folder above the ``kacnb`` package, whatever the cwd.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
