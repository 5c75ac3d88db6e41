"""pytest set-up for the nbval regression test of the golden notebooks (tests/golden/*.ipynb).

pyproject.toml runs nbval in lax mode: every cell of a golden notebook is executed, and the
outputs of the cells marked ``# NBVAL_CHECK_OUTPUT`` are compared with the stored ones after
``tests/golden/sanitize.cfg`` is applied.  Here:

* stderr (progress bars, warnings) is never compared;
* ``TQDM_DISABLE=1`` for the kernels, as when ``kacnb golden`` wrote the references (so a
  progress bar can never add an output, e.g. a widget, that the reference lacks);
* the sanitize file given relative to the repository root also works from another directory.

``pytest -k 02_kac_1d`` selects that notebook's cells: pytest matches ``-k`` against the names
of an item's parents, which include the file name ``02_kac_1d.ipynb``.
"""

from __future__ import annotations

import os
from pathlib import Path


def pytest_configure(config):
    os.environ.setdefault("TQDM_DISABLE", "1")
    option = getattr(config.option, "nbval_sanitize_with", None)
    if option and not Path(option).is_absolute() and not Path(option).exists():
        candidate = Path(config.rootpath) / option
        if candidate.exists():
            config.option.nbval_sanitize_with = str(candidate)


def _is_nbval_file(collector) -> bool:
    try:
        from nbval.plugin import IPyNbFile
    except ImportError:  # nbval not installed: no notebook is collected anyway
        return False
    return isinstance(collector, IPyNbFile)


def pytest_collectstart(collector):
    if _is_nbval_file(collector):
        collector.skip_compare += ("stderr",)
