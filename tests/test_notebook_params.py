"""Reader parameters of notebooks 01-03 through the runner (``kacnb run NN -p NAME=VALUE``).

Each run goes to a temporary folder (``--output-dir``/``--figures-dir``): the published
notebooks and figures are not touched. A refused value stops the notebook in its first code
cell with the parameter's name and an example, not with a traceback from deep inside torch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(tmp_path, *argv):
    cmd = [sys.executable, "-m", "kacnb", "run", *argv, "--profile", "smoke", "--device", "cpu"]
    cmd += ["--no-progress", "--output-dir", tmp_path / "nb", "--figures-dir", tmp_path / "fig"]
    return subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, cwd=ROOT, timeout=600
    )


@pytest.mark.parametrize(
    ("notebook", "param", "message"),
    [
        ("01", "kac_pairs=[(1, 0)]", "parameter kac_pairs must be a list of 1 to 6 distinct"),
        ("02", "t_paths=-1", "parameter t_paths must be a number > 0"),
        ("03", "pairs=[(25, 5, 1)]", "parameter pairs must be a list of 1 to 4 distinct"),
        ("04", "kac_pairs=[(1, 0)]", "parameter kac_pairs must be a list of 1 to 6 distinct"),
        ("05", "pairs=[(1, -1)]", "parameter pairs must be a list of 1 to 8 distinct"),
    ],
)
def test_a_refused_value_names_the_parameter(tmp_path, notebook, param, message):
    proc = run(tmp_path, notebook, "-p", param)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "ParameterError" in out and message in out
    assert not (tmp_path / "fig" / "runs").exists()  # nothing published


def test_notebook_03_runs_with_other_pairs_and_times(tmp_path):
    proc = run(
        tmp_path,
        "03",
        "-p",
        "pairs=[(4, 2)]",
        "-p",
        "cloud_times=[0, 0.5]",
        "-p",
        "n_cloud=200",
        "-p",
        "n_mc=2000",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    nb = nbformat.read(tmp_path / "nb" / "03_kac_multid.ipynb", as_version=4)
    text = "\n".join(
        o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs
    )
    lines = text.splitlines()  # the Prop 11 table has one heading line per pair ...
    assert "(a, c) = (4, 2)" in lines
    assert "(a, c) = (1, 1)" not in lines and "(a, c) = (25, 5)" not in lines  # ... only these
    metrics = json.loads((tmp_path / "fig" / "runs" / "03_kac_multid.metrics.json").read_text())
    assert metrics["profile"] == "smoke" and metrics["rows"]


def test_notebook_04_refuses_pretrained_weights_for_other_pairs(tmp_path):
    proc = run(tmp_path, "04", "-p", "pretrained=True", "-p", "kac_pairs=[(4, 2)]")
    assert proc.returncode != 0
    assert "pretrained=True loads the paper's pairs only" in proc.stdout + proc.stderr


def test_notebook_04_runs_with_other_pairs(tmp_path):
    # a reader's (a, c) beside one of the paper's: every section and verdict row follows
    proc = run(tmp_path, "04", "-p", "kac_pairs=[(4, 2), (25, 5)]")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    metrics = json.loads((tmp_path / "fig" / "runs" / "04_cfm_gmm_2d.metrics.json").read_text())
    assert set(metrics["models"]) == {"kac_4_2", "kac_25_5", "diffusion", "rectified_flow"}
    assert metrics["models"]["kac_4_2"]["paper_best_iteration"] is None
    assert metrics["models"]["kac_25_5"]["paper_best_iteration"] == 80_000
    first = metrics["rows"][0]["measured"]  # "share: <one per Kac model> (5 s: ...)"
    assert first.startswith("share: ") and len(first.split(" (5 s")[0].split(",")) == 2


def test_notebook_05_runs_with_other_pairs(tmp_path):
    proc = run(tmp_path, "05", "-p", "pairs=[(4, 2), (25, 5)]")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    metrics = json.loads((tmp_path / "fig" / "runs" / "05_mnist.metrics.json").read_text())
    assert set(metrics["models"]) == {
        "a4_c2_T1", "a25_c5_T1", "a4_c2_T5", "a25_c5_T5", "rf_T1"
    }  # fmt: skip
    claims = [r["claim"] for r in metrics["rows"]]
    assert not any("(1,1)" in c for c in claims)  # nothing to compare (1, 1) with
    assert "T=5 improves the larger pairs" in claims
