"""pytest set-up for the nbval regression test of the golden notebooks (tests/golden/*.ipynb).

pyproject.toml runs nbval in lax mode: every cell of a golden notebook is executed, and the
outputs of the cells marked ``# NBVAL_CHECK_OUTPUT`` are compared with the stored ones after
``tests/golden/sanitize.cfg`` is applied.  Here:

* stderr (progress bars, warnings) is never compared;
* ``TQDM_DISABLE=1`` for the kernels, as when ``kacnb golden`` wrote the references (so a
  progress bar can never add an output, e.g. a widget, that the reference lacks);
* the sanitize file given relative to the repository root also works from another directory;
* the kernels start with matplotlib's inline backend whatever ``MPLBACKEND`` the test run has
  (``.ci/run`` sets ``Agg`` for the tests themselves), as ``kacnb run`` executes the
  notebooks; inline images are never compared (nbval skips ``image/png`` unless run with
  ``--nbdime``), so a figure that changes pixels does not fail the regression.

* a checked cell that also carries ``# NBVAL_TOLERANCE rtol=... atol=...`` (numbers downstream
  of training, which differ across CPUs and torch builds in their last digits) has its text
  outputs compared number by number within that tolerance (``tests/tolerance.py``; the policy
  is in ``tests/README.md``); every other checked cell is compared exactly.

``pytest -k 02_kac_1d`` selects that notebook's cells: pytest matches ``-k`` against the names
of an item's parents, which include the file name ``02_kac_1d.ipynb``.
"""

from __future__ import annotations

import os
import sys
import types
from collections import defaultdict
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from tolerance import compare_text, parse_marker  # noqa: E402


def pytest_configure(config):
    os.environ.setdefault("TQDM_DISABLE", "1")
    option = getattr(config.option, "nbval_sanitize_with", None)
    if option and not Path(option).is_absolute() and not Path(option).exists():
        candidate = Path(config.rootpath) / option
        if candidate.exists():
            config.option.nbval_sanitize_with = str(candidate)


#: matplotlib's backend for the nbval kernels (kacnb.collection.plotting.INLINE_BACKEND).
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def _is_nbval_file(collector) -> bool:
    try:
        from nbval.plugin import IPyNbFile
    except ImportError:  # nbval not installed: no notebook is collected anyway
        return False
    return isinstance(collector, IPyNbFile)


def pytest_collectstart(collector):
    if _is_nbval_file(collector):
        collector.skip_compare += ("stderr",)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    """Start a notebook's kernel (nbval does it in the set-up of its first cell) with
    ``MPLBACKEND`` set to the inline backend; the test process keeps its own backend."""
    if not _is_nbval_file(item.parent):
        yield
        return
    old = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = INLINE_BACKEND
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = old


def _text_outputs(cell, outputs, skip) -> dict[str, str]:
    """Sanitised text outputs of a cell by key ('stdout', 'text/plain', ...), chunks joined."""
    from nbval.plugin import transform_streams_for_comparison

    texts: dict[str, list[str]] = defaultdict(list)
    for out in transform_streams_for_comparison(outputs):
        for key, value in out.items():
            if key in skip or key in ("output_type", "metadata", "execution_count"):
                continue
            items = value.items() if key == "data" else [(key, value)]
            for sub, text in items:
                if sub not in skip:
                    texts[sub].append(cell.sanitize(text) if isinstance(text, str) else text)
    return {k: "".join(map(str, v)) for k, v in texts.items()}


def _tolerant_compare(tol):
    def compare_outputs(self, test, ref, skip_compare=None):
        skip = skip_compare or self.parent.skip_compare
        new, old = _text_outputs(self, test, skip), _text_outputs(self, ref, skip)
        self.comparison_traceback = []
        if set(new) != set(old):
            self.comparison_traceback.append(
                f"output fields differ: reference {sorted(old)}, test {sorted(new)}"
            )
            return False
        for key in old:
            reason = compare_text(old[key], new[key], tol)
            if reason is not None:
                self.comparison_traceback.append(f"'{key}' outside the cell's tolerance: {reason}")
                self.format_output_compare(key, old[key], new[key])
                return False
        return True

    return compare_outputs


def pytest_collection_modifyitems(items):
    try:
        from nbval.plugin import IPyNbCell
    except ImportError:
        return
    for item in items:
        if isinstance(item, IPyNbCell):
            tol = parse_marker(item.cell.source)
            if tol is not None:
                item.compare_outputs = types.MethodType(_tolerant_compare(tol), item)
