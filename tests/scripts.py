"""Import a script of the repository (``benchmarks/``, ``tools/``) as a module in a test."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_script(relpath: str):
    """The module of ``ROOT / relpath``, executed once per test call and registered under
    its file stem (so a script importing a sibling finds the same module)."""
    path = ROOT / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(path.stem, module)
    spec.loader.exec_module(module)
    return module
