"""``kacnb`` command-line arguments are checked before anything runs (clear one-line errors).

The notebook is never executed here: every case fails before papermill starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kacnb.collection import cli, runner
from kacnb.collection.registry import NOTEBOOKS, FigureSpec, NotebookSpec

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FIXTURE = NotebookSpec(
    99, "99_fixture", "Fixture notebook", (FigureSpec("fig99_fixture", None, "fixture"),)
)
ENTRIES = NOTEBOOKS + (FIXTURE,)
SMOKE = ["--profile", "smoke", "--device", "cpu", "--no-progress"]


@pytest.fixture
def nb_dir(tmp_path, monkeypatch):
    d = tmp_path / "notebooks"
    d.mkdir()
    shutil.copy(FIXTURES / "99_fixture.py", d / "99_fixture.py")

    def no_run(*args, **kwargs):
        raise AssertionError("the notebook must not run")

    monkeypatch.setattr(runner, "run_notebook", no_run)
    monkeypatch.setattr(runner, "make_golden", no_run)
    return d


def kacnb(*argv) -> int:
    return cli.main([str(a) for a in argv], entries=ENTRIES)


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "abc", "nan", ""])
@pytest.mark.parametrize("command", ["run", "golden"])
def test_timeout_is_a_positive_whole_number_of_seconds(nb_dir, capsys, command, value):
    with pytest.raises(SystemExit) as info:
        kacnb(command, "99", "--notebooks-dir", nb_dir, f"--timeout={value}")
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --timeout: expected a positive whole number of seconds, got {value!r}" in err


@pytest.mark.parametrize("value", ["-1", str(2**63), "1.0", "x"])
def test_seed_is_within_0_and_2_63_minus_1(nb_dir, capsys, value):
    with pytest.raises(SystemExit) as info:
        kacnb("run", "99", "--notebooks-dir", nb_dir, f"--seed={value}")
    assert info.value.code == 2
    assert "argument --seed: expected a whole number from 0 to 2**63-1" in capsys.readouterr().err


def test_valid_timeout_and_seed_are_parsed():
    args = cli.build_parser().parse_args(["run", "--timeout", "30", "--seed", str(2**63 - 1)])
    assert (args.timeout, args.seed) == (30, 2**63 - 1)


def test_notebook_parameters_are_read_from_the_parameters_cell():
    assert runner.notebook_parameters(FIXTURES / "99_fixture.py") == [
        "profile",
        "device",
        "seed",
        "figures_dir",
        "fail",
    ]


def test_unknown_parameter_is_an_error_listing_the_valid_ones(nb_dir, capsys):
    assert kacnb("run", "99", *SMOKE, "--notebooks-dir", nb_dir, "-p", "fial=True") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "kacnb: error: notebook 99_fixture has no parameter fial (-p); its parameters: fail"
    ]


def test_a_profile_a_notebook_lacks_is_refused_before_anything_runs(nb_dir, capsys):
    long_nb = NotebookSpec(98, "98_long", "Long fixture", (), ("smoke", "quick", "long", "paper"))
    shutil.copy(FIXTURES / "99_fixture.py", nb_dir / "98_long.py")
    argv = ["run", "98", "99", "--profile", "long", "--notebooks-dir", nb_dir, "--no-progress"]
    assert cli.main([str(a) for a in argv], entries=(*ENTRIES, long_nb)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "kacnb: error: profile 'long' is not a profile of 99_fixture (its profiles: smoke, "
        "quick, paper); run only 98 with it"
    ]
    # the registry: only notebook 05 has the long profile
    assert [s.label for s in NOTEBOOKS if "long" in s.profiles] == ["05"]


def test_output_directory_that_is_a_file(nb_dir, tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    for option in ("--output-dir", "--figures-dir"):
        assert (
            kacnb(
                "run", "99", *SMOKE, "--notebooks-dir", nb_dir, option, tmp_path / "a_file" / "sub"
            )
            == 2
        )
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "is a file, not a directory" in err[0], err
    assert (
        kacnb("golden", "99", "--notebooks-dir", nb_dir, "--golden-dir", tmp_path / "a_file") == 2
    )
    assert "is a file, not a directory" in capsys.readouterr().err


def test_output_directory_not_writable(nb_dir, tmp_path, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.access
    monkeypatch.setattr(
        cli.os, "access", lambda p, mode: False if Path(p) == locked else real(p, mode)
    )
    assert (
        kacnb("run", "99", *SMOKE, "--notebooks-dir", nb_dir, "--output-dir", locked / "out") == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"kacnb: error: output directory {locked / 'out'}: {locked} is not writable"]


def test_os_errors_are_one_line_errors(nb_dir, capsys, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/somewhere/figures")

    monkeypatch.setattr(runner, "run_notebook", denied)
    assert kacnb("run", "99", *SMOKE, "--notebooks-dir", nb_dir) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "kacnb: error: Permission denied: /somewhere/figures"
    assert not any("Traceback" in line for line in err)


def test_run_outside_the_collection_says_so(tmp_path):
    # a folder without notebooks/: the default is the installed package's repository, so
    # point the default at a folder that does not exist to stand for a non-editable install
    code = (
        "import sys; from pathlib import Path; import kacnb.collection.registry as r; "
        "r.default_notebooks_dir = lambda: Path.cwd() / 'notebooks'; "
        "from kacnb.collection import cli; sys.exit(cli.main(sys.argv[1:]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "run", "--profile", "smoke"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "this is not the notebook collection" in proc.stderr
    assert "--notebooks-dir" in proc.stderr
    (tmp_path / "notebooks").mkdir()  # a notebooks folder of something else
    (tmp_path / "notebooks" / "analysis.py").write_text("x = 1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "kacnb", "run"], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 2
    assert "this is not the notebook collection" in proc.stderr
    assert "holds none of its notebooks" in proc.stderr


# --------------------------------------------------------------------------------------------
# what the selected notebooks need is checked before the first one runs


@pytest.fixture
def ran_stems(monkeypatch):
    """Replace ``run_notebook`` by a stub recording the notebooks it was asked to run."""
    stems: list[str] = []

    def fake_run(spec, source, **kwargs):
        stems.append(spec.stem)
        return runner.RunResult(spec, Path(source).with_suffix(".ipynb"), None, {"wall_time_s": 0})

    monkeypatch.setattr(runner, "run_notebook", fake_run)
    return stems


def test_cuda_without_cuda_is_a_one_line_error_naming_the_fix(nb_dir, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = ["run", "99", "--profile", "smoke", "--no-progress", "--notebooks-dir", nb_dir]
    for device in ("cuda", "cuda:1"):
        assert kacnb(*argv, "--device", device) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        assert err[0].startswith(f"kacnb: error: --device {device}: CUDA is not available here")
        assert "run with --device cpu" in err[0]


def _mnist_repo(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """A notebooks folder holding 05_mnist.py (the fixture's text) and an empty data folder."""
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    for name in ("05_mnist.py", "99_fixture.py"):
        shutil.copy(FIXTURES / "99_fixture.py", nb_dir / name)
    data = tmp_path / "mnist"
    data.mkdir()
    monkeypatch.setenv("KACNB_DATA_DIR", str(data))
    return nb_dir, data


def _offline(monkeypatch) -> list[str]:
    import urllib.error
    import urllib.request

    asked: list[str] = []

    def no_network(request, timeout=None):
        asked.append(request.full_url)
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    return asked


def test_mnist_missing_and_not_downloadable_fails_before_anything_runs(
    tmp_path, capsys, monkeypatch, ran_stems
):
    nb_dir, data = _mnist_repo(tmp_path, monkeypatch)
    asked = _offline(monkeypatch)
    (data / "train-images-idx3-ubyte.gz").write_bytes(b"present")
    assert kacnb("run", "99", "05", *SMOKE, "--notebooks-dir", nb_dir) == 2
    assert ran_stems == []  # not even the notebook before it
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("kacnb: error: 05_mnist needs the MNIST files train-labels-idx1-ubyte")
    assert "train-images" not in err[0]
    assert f"not in {data} and cannot be downloaded (no mirror answers" in err[0]
    assert "set KACNB_DATA_DIR to a folder holding them" in err[0]
    assert asked and all(url.endswith("/train-labels-idx1-ubyte.gz") for url in asked)


def test_mnist_present_or_downloadable_runs(tmp_path, capsys, monkeypatch, ran_stems):
    from kacnb.experiments.data import MNIST_FILES

    nb_dir, data = _mnist_repo(tmp_path, monkeypatch)
    monkeypatch.setattr(cli, "_download_blocker", lambda folder, names: None)
    assert kacnb("run", "05", *SMOKE, "--notebooks-dir", nb_dir) == 0
    assert "not in " + str(data) + ", they will be downloaded there" in capsys.readouterr().err
    assert ran_stems == ["05_mnist"]
    for name in (n for pair in MNIST_FILES.values() for n in pair):
        (data / name).write_bytes(b"present")
    assert kacnb("run", "05", *SMOKE, "--notebooks-dir", nb_dir) == 0
    assert "MNIST" not in capsys.readouterr().err
    assert ran_stems == ["05_mnist", "05_mnist"]


def test_notebooks_without_mnist_do_not_need_it(tmp_path, monkeypatch, ran_stems):
    nb_dir, _ = _mnist_repo(tmp_path, monkeypatch)
    asked = _offline(monkeypatch)
    assert kacnb("run", "99", *SMOKE, "--notebooks-dir", nb_dir) == 0
    assert ran_stems == ["99_fixture"] and asked == []


def test_mnist_download_needs_a_writable_folder(tmp_path, monkeypatch):
    folder = tmp_path / "ro" / "mnist"
    (tmp_path / "ro").mkdir()
    real = os.access
    monkeypatch.setattr(
        cli.os, "access", lambda p, mode: False if Path(p) == tmp_path / "ro" else real(p, mode)
    )
    assert cli._download_blocker(folder, ["x"]) == f"{tmp_path / 'ro'} is not a writable folder"


def test_too_little_free_disk_fails_before_anything_runs(nb_dir, tmp_path, capsys, monkeypatch):
    real = shutil.disk_usage
    out = tmp_path / "out"

    def usage(path):
        total, used, free = real(path)
        return type(real(path))(total, used, 300_000_000 if Path(path) == tmp_path else free)

    monkeypatch.setattr(cli.shutil, "disk_usage", usage)
    assert kacnb("run", "99", *SMOKE, "--notebooks-dir", nb_dir, "--output-dir", out / "nb") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"kacnb: error: only 0.30 GB free in {out / 'nb'} (output directory")
    assert "a run needs about 1 GB: free some space or write elsewhere" in err[0]
