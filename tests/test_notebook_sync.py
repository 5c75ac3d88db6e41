"""The committed notebooks agree with their sources and with the registry.

* ``notebooks/<stem>.py`` (source of truth) and the executed ``notebooks/<stem>.ipynb`` are in
  sync: the ``.ipynb`` converted to jupytext percent text equals the ``.py``
  (``kacnb run <stem>`` writes such a pair; ``jupytext --sync`` by file time stamps is not a
  check, a fresh clone scrambles them).
* the golden notebook ``tests/golden/<stem>.ipynb`` has the ``.py``'s cells plus the injected
  smoke parameters, so a stale golden fails (``kacnb golden <stem>`` regenerates it).
* every notebook file is registered in ``kacnb.collection.registry.NOTEBOOKS``.
"""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import nbformat
import pytest
from papermill.translators import translate_parameters

from kacnb.collection.registry import NOTEBOOKS, Registry
from kacnb.collection.runner import GOLDEN_PARAMETERS, INJECTED_TAG, to_percent

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = Registry(NOTEBOOKS, ROOT / "notebooks")
GOLDEN_DIR = ROOT / "tests" / "golden"
EXISTING = REGISTRY.available()

# one parameter per existing notebook; an honest skip while none is written yet
NOTEBOOK_PARAMS = [pytest.param(spec, id=spec.stem) for spec in EXISTING] or [
    pytest.param(None, id="none", marks=pytest.mark.skip(reason="no notebooks/*.py written yet"))
]


def test_registry_is_consistent():
    numbers = [spec.number for spec in NOTEBOOKS]
    assert numbers == list(range(1, len(NOTEBOOKS) + 1))
    figure_stems = []
    for spec in NOTEBOOKS:
        assert re.fullmatch(rf"{spec.number:02d}_[a-z0-9_]+", spec.stem), spec.stem
        assert spec.title
        for fig in spec.figures:
            figure_stems.append(fig.stem)
            if fig.paper is None:
                assert fig.stem.startswith(spec.file_prefix), fig.stem
            else:
                assert re.fullmatch(r"fig(\d\d|[A-Z]\d+)_\w+", fig.stem), fig.stem
    assert len(set(figure_stems)) == len(figure_stems)
    papers = [fig.paper for spec in NOTEBOOKS for fig in spec.paper_figures]
    assert len(set(papers)) == len(papers)
    assert {"Fig. 1", "Fig. 4", "Fig. 5", "Fig. 6", "Fig. 7", "Fig. 8", "App. A.2"} <= set(papers)


def test_every_notebook_file_is_registered():
    stems = {spec.stem for spec in NOTEBOOKS}
    nb_dir = REGISTRY.notebooks_dir
    files = sorted(nb_dir.glob("*.py")) + sorted(nb_dir.glob("*.ipynb"))
    unregistered = [p.name for p in files if p.stem not in stems]
    assert not unregistered, f"add these notebooks to kacnb/collection/registry.py: {unregistered}"
    orphans = [p.name for p in nb_dir.glob("*.ipynb") if not p.with_suffix(".py").is_file()]
    assert not orphans, f"executed notebooks without their .py source: {orphans}"
    goldens = [
        p.name for p in GOLDEN_DIR.glob("*.ipynb") if p.stem not in {s.stem for s in EXISTING}
    ]
    assert not goldens, f"golden notebooks without a notebooks/<stem>.py: {goldens}"


@pytest.mark.parametrize("spec", NOTEBOOK_PARAMS)
def test_ipynb_in_sync_with_py(spec):
    py = REGISTRY.source(spec)
    ipynb = py.with_suffix(".ipynb")
    assert ipynb.is_file(), f"{ipynb.name} missing: run `kacnb run {spec.stem}`"
    converted = to_percent(jupytext.read(ipynb))
    assert converted == py.read_text(encoding="utf-8"), (
        f"{ipynb.name} is out of sync with {py.name}: re-run `kacnb run {spec.stem}`"
    )


@pytest.mark.parametrize("spec", NOTEBOOK_PARAMS)
def test_golden_matches_py(spec):
    golden = GOLDEN_DIR / f"{spec.stem}.ipynb"
    hint = f"regenerate with `kacnb golden {spec.stem}`"
    assert golden.is_file(), f"{golden.name} missing: {hint}"
    nb = nbformat.read(golden, as_version=4)
    injected = [c for c in nb.cells if INJECTED_TAG in c.metadata.get("tags", [])]
    assert len(injected) == 1, f"{golden.name} must have one injected-parameters cell: {hint}"
    expected = translate_parameters("python3", "python", GOLDEN_PARAMETERS, "Parameters")
    assert injected[0].source.strip() == expected.strip(), f"smoke parameters differ: {hint}"
    cells = [(c.cell_type, c.source) for c in nb.cells if c is not injected[0]]
    source = jupytext.read(REGISTRY.source(spec))
    assert cells == [(c.cell_type, c.source) for c in source.cells], f"stale golden: {hint}"
    assert any(
        c.cell_type == "code" and c.execution_count is not None and c.outputs for c in nb.cells
    ), f"{golden.name} holds no executed outputs: {hint}"


LOCAL_PATH = re.compile(r"(/home/|/Users/|/root/|/tmp/|/work/|site-packages|[A-Za-z]:\\\\Users)")


@pytest.mark.parametrize("spec", NOTEBOOK_PARAMS)
def test_published_outputs_carry_no_local_paths(spec):
    """Executed notebooks and run records are published: no machine paths in them."""
    files = [REGISTRY.source(spec).with_suffix(".ipynb"), GOLDEN_DIR / f"{spec.stem}.ipynb"]
    record = REGISTRY.notebooks_dir.parent / "figures" / "runs" / f"{spec.stem}.json"
    files += [record] if record.exists() else []
    for path in files:
        hits = sorted(set(LOCAL_PATH.findall(path.read_text(encoding="utf-8"))))
        assert not hits, f"{path.name} mentions local paths {hits}: re-run it"


@pytest.mark.parametrize("spec", NOTEBOOK_PARAMS)
def test_papermill_reads_every_line_of_the_parameters_cell(spec, caplog):
    """papermill parses each assignment of the parameters cell (what ``-p`` may change); a
    comment it cannot read (e.g. one holding ``<=``) only logs "Unable to parse line" and
    that parameter is then missing from ``papermill --help-notebook``."""
    import logging

    from papermill.translators import PythonTranslator

    nb = jupytext.read(ROOT / "notebooks" / f"{spec.stem}.py")
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assigned = [
        line.split("=")[0].strip()
        for line in cell.source.splitlines()
        if re.match(r"^[A-Za-z_]\w*\s*=", line)
    ]
    with caplog.at_level(logging.WARNING, logger="papermill"):
        found = [p.name for p in PythonTranslator.inspect(cell)]
    assert not [r.getMessage() for r in caplog.records if "Unable to parse" in r.getMessage()]
    assert found == assigned
