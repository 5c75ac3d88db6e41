"""Tests of the notebook pipeline (registry, runner, CLI, golden notebooks, nbval set-up).

They use the fixture notebook ``tests/fixtures/99_fixture.py`` in a temporary repository
layout (``<tmp>/notebooks``, ``<tmp>/figures``, ``<tmp>/tests/golden``) registered through the
``entries`` argument of ``kacnb.collection.cli.main``; the real list of notebooks is left alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import matplotlib
import nbformat
import pytest
import torch

from kacnb.collection import cli, plotting, runtime
from kacnb.collection.registry import (
    NOTEBOOKS,
    FigureSpec,
    NotebookSpec,
    Registry,
    UnknownNotebookError,
)
from kacnb.collection.runner import GOLDEN_PARAMETERS, clean_notebook, in_sync, to_percent

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parent.parent
FIXTURE_PY = Path(__file__).resolve().parent / "fixtures" / "99_fixture.py"
FIXTURE = NotebookSpec(
    99, "99_fixture", "Fixture notebook", (FigureSpec("fig99_fixture", None, "fixture"),)
)
ENTRIES = NOTEBOOKS + (FIXTURE,)
SMOKE = ["--profile", "smoke", "--device", "cpu", "--no-progress"]


def make_repo(root: Path) -> Path:
    """A repository layout with the fixture notebook; returns the notebooks dir."""
    nb_dir = root / "notebooks"
    nb_dir.mkdir(parents=True)
    shutil.copy(FIXTURE_PY, nb_dir / FIXTURE_PY.name)
    return nb_dir


def kacnb(*argv: str | Path) -> int:
    return cli.main([str(a) for a in argv], entries=ENTRIES)


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """The fixture notebook executed once with ``kacnb run`` (default output and figures)."""
    root = tmp_path_factory.mktemp("repo")
    nb_dir = make_repo(root)
    rc = kacnb("run", "99", *SMOKE, "--seed", "3", "--notebooks-dir", nb_dir)
    return rc, root


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    """Golden notebook of the fixture written by ``kacnb golden`` (default golden dir)."""
    root = tmp_path_factory.mktemp("repo_golden")
    nb_dir = make_repo(root)
    rc = kacnb("golden", "99_fixture", "--no-progress", "--notebooks-dir", nb_dir)
    return rc, root


# --------------------------------------------------------------------------------------------
# registry and CLI look-up


def test_fixture_is_canonical_percent_text():
    # the .py must be what jupytext writes back, else no executed notebook can be in sync
    assert to_percent(jupytext.read(FIXTURE_PY)) == FIXTURE_PY.read_text(encoding="utf-8")


def test_resolve_by_number_stem_and_path(tmp_path):
    nb_dir = make_repo(tmp_path)
    reg = Registry(ENTRIES, nb_dir)
    kac_1d = reg.resolve("02_kac_1d")
    assert kac_1d.number == 2
    assert reg.resolve("02") is kac_1d
    assert reg.resolve("2") is kac_1d
    assert reg.resolve("02_kac_1d.py") is kac_1d
    assert reg.resolve(nb_dir / "02_kac_1d.ipynb") is kac_1d
    assert reg.resolve("99") is reg.resolve(nb_dir / "99_fixture.py")
    assert reg.root == tmp_path.resolve()
    assert reg.figures_dir == tmp_path.resolve() / "figures"


@pytest.mark.parametrize("name", ["7", "00", "kac_1d", "02_kac", "notebooks/06_nope.py"])
def test_resolve_unknown_lists_valid_names(tmp_path, name):
    reg = Registry(NOTEBOOKS, make_repo(tmp_path))
    with pytest.raises(UnknownNotebookError) as info:
        reg.resolve(name)
    message = str(info.value)
    assert "unknown notebook" in message
    for spec in NOTEBOOKS:
        assert spec.stem in message


def test_resolve_path_outside_notebooks_dir(tmp_path):
    reg = Registry(ENTRIES, make_repo(tmp_path / "repo"))
    with pytest.raises(UnknownNotebookError, match="--notebooks-dir"):
        reg.resolve(tmp_path / "elsewhere" / "02_kac_1d.py")


def test_only_existing_notebooks_are_runnable(tmp_path):
    reg = Registry(ENTRIES, make_repo(tmp_path))
    assert reg.available() == [FIXTURE]
    assert reg.resolve_runnable([]) == [FIXTURE]
    assert reg.resolve_runnable(["99", "99_fixture"]) == [FIXTURE]
    with pytest.raises(FileNotFoundError, match="02_kac_1d.py does not exist"):
        reg.resolve_runnable(["02"])
    assert Registry(NOTEBOOKS, tmp_path / "notebooks").resolve_runnable([]) == []


def test_cli_list(tmp_path, capsys):
    nb_dir = make_repo(tmp_path)
    assert kacnb("list", "--notebooks-dir", nb_dir) == 0
    out = capsys.readouterr().out
    assert re.search(r"^99\s+99_fixture\s+\[exists\]", out, re.MULTILINE)
    assert re.search(r"^02\s+02_kac_1d\s+\[not written yet\]", out, re.MULTILINE)
    for expected in [
        "Fig. 1 -> fig01_kac_paths_2d",
        "Fig. 4 -> fig04_backward_evolution",
        "Fig. 5 -> fig05_gmm_samples",
        "Fig. 6 -> fig06_mnist_forward",
        "Fig. 7 -> fig07_mnist_T1",
        "Fig. 8 -> fig08_mnist_T5",
        "App. A.2 -> figA2_mnist_trajectories",
        "nb03_point_cloud",
        "1 of 6 notebooks exist",
    ]:
        assert expected in out


def test_python_dash_m_list():
    proc = subprocess.run(
        [sys.executable, "-m", "kacnb", "list"], capture_output=True, text=True, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr
    assert "01_velocity_explosion" in proc.stdout and "05_mnist" in proc.stdout


def test_cli_in_a_folder_that_is_not_the_collection(tmp_path, capsys):
    (tmp_path / "notebooks").mkdir()
    assert kacnb("run", *SMOKE, "--notebooks-dir", tmp_path / "notebooks") == 2
    assert "this is not the notebook collection" in capsys.readouterr().err
    assert not (tmp_path / "figures").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "42"], "unknown notebook '42'"),
        (["run", "03"], "03_kac_multid.py does not exist yet"),
        (["run", "99", "-p", "profile=paper"], "--profile"),
        (["golden", "nope"], "valid notebooks: 01 (01_velocity_explosion)"),
    ],
)
def test_cli_usage_errors(tmp_path, capsys, argv, message):
    nb_dir = make_repo(tmp_path)
    assert kacnb(*argv, "--notebooks-dir", nb_dir) == 2
    assert message in capsys.readouterr().err


def test_cli_missing_notebooks_dir(tmp_path, capsys):
    assert kacnb("list", "--notebooks-dir", tmp_path / "missing") == 2
    assert "does not exist" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# kacnb run


def test_run_writes_notebook_in_sync_with_py(ran):
    rc, root = ran
    assert rc == 0
    py, ipynb = root / "notebooks" / "99_fixture.py", root / "notebooks" / "99_fixture.ipynb"
    assert ipynb.is_file()
    assert in_sync(py, ipynb)
    # the same check as `jupytext --to py:percent -o - 99_fixture.ipynb | diff - 99_fixture.py`
    proc = subprocess.run(
        [sys.executable, "-m", "jupytext", "--to", "py:percent", "-o", "-", str(ipynb)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == py.read_text(encoding="utf-8")


def test_run_output_is_clean_and_keeps_outputs(ran):
    _, root = ran
    nb = nbformat.read(root / "notebooks" / "99_fixture.ipynb", as_version=4)
    nbformat.validate(nb)
    source = jupytext.read(root / "notebooks" / "99_fixture.py")
    assert [(c.cell_type, c.source) for c in nb.cells] == [
        (c.cell_type, c.source) for c in source.cells
    ]
    assert "papermill" not in nb.metadata
    assert nb.metadata.kernelspec.name == "python3"
    for cell in nb.cells:
        assert "injected-parameters" not in cell.metadata.get("tags", [])
        assert "papermill" not in cell.metadata and "execution" not in cell.metadata
        assert cell.metadata.get("tags", None) != []
    text = "".join(
        out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
    )
    # the notebook prints how it ran (the injected cell is gone) and its checked numbers
    assert "profile=smoke device=cpu seed=3 torch=" in text
    assert re.search(r"n=64 mean=-?\d\.\d{4} std=\d\.\d{4}", text)
    assert "['fig99_fixture.png', 'fig99_fixture.pdf']" in text


def test_run_writes_figures_and_record(ran):
    _, root = ran
    figures = root / "figures"
    assert (figures / "fig99_fixture.png").stat().st_size > 0
    assert (figures / "fig99_fixture.pdf").read_bytes().startswith(b"%PDF")
    record = json.loads((figures / "runs" / "99_fixture.json").read_text())
    for key in [
        "notebook",
        "profile",
        "device",
        "device_name",
        "torch",
        "python",
        "wall_time_s",
        "git_commit",
        "git_dirty",
        "timestamp_utc",
        "seed",
    ]:
        assert key in record
    assert record["notebook"] == "99_fixture"
    assert (record["profile"], record["device"], record["seed"]) == ("smoke", "cpu", 3)
    assert record["torch"] == torch.__version__
    assert record["python"] == ".".join(map(str, sys.version_info[:3]))
    assert isinstance(record["device_name"], str) and record["device_name"]
    assert record["wall_time_s"] > 0
    assert record["git_commit"] is None and record["git_dirty"] is None  # not a git checkout
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["timestamp_utc"])
    assert set(record["figures"]) == {"fig99_fixture.png", "fig99_fixture.pdf"}


def test_a_copy_without_git_takes_its_commit_from_the_environment(tmp_path, monkeypatch):
    # a copy of the tree on a rented machine has no .git; the tool that made the copy
    # names the commit, and "modified" stays unknown
    from kacnb.collection.provenance import git_state

    monkeypatch.delenv("KACNB_SOURCE_COMMIT", raising=False)
    assert git_state(tmp_path) == (None, None)
    monkeypatch.setenv("KACNB_SOURCE_COMMIT", "abc1234")
    assert git_state(tmp_path) == ("abc1234", None)
    # inside a checkout git itself is the authority
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "a.txt").write_text("a")
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "a"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert git_state(repo) == (head, False)


def test_run_failure_keeps_partial_notebook_beside_the_target(tmp_path, capsys):
    nb_dir = make_repo(tmp_path)
    out_dir = tmp_path / "out"
    rc = kacnb(
        "run", "99", *SMOKE, "-p", "fail=True", "--notebooks-dir", nb_dir, "--output-dir", out_dir
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert "notebook 99_fixture failed: RuntimeError: the fixture was asked to fail" in err
    line = FIXTURE_PY.read_text().splitlines().index("if fail:") + 1
    where = f"{(nb_dir / '99_fixture.py').resolve()}:{line}: if fail:"
    assert f"in cell 5 (0-based, counting all cells) at {where}" in err
    partial = out_dir / "99_fixture.partial.ipynb"
    assert f"kept at {partial}" in err
    assert not (out_dir / "99_fixture.ipynb").exists()  # nothing published
    nb = nbformat.read(partial, as_version=4)
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert [(e.ename, e.evalue) for e in errors] == [
        ("RuntimeError", "the fixture was asked to fail")
    ]
    # not cleaned: papermill's injected cell and metadata are still there
    assert "papermill" in nb.metadata
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    assert not (tmp_path / "figures" / "runs" / "99_fixture.json").exists()
    assert not (tmp_path / "figures").exists()  # the figure of the failed run stayed staged


def test_failed_run_leaves_published_outputs_alone(tmp_path, capsys):
    nb_dir = make_repo(tmp_path)
    published = nb_dir / "99_fixture.ipynb"
    figures = tmp_path / "figures"
    (figures / "runs").mkdir(parents=True)
    published.write_text("the published notebook\n")
    (figures / "fig99_fixture.png").write_bytes(b"the published figure")
    (figures / "runs" / "99_fixture.json").write_text('{"profile": "smoke"}\n')
    assert kacnb("run", "99", *SMOKE, "-p", "fail=True", "--notebooks-dir", nb_dir) == 1
    assert f"kept at {nb_dir.resolve() / '99_fixture.partial.ipynb'}" in capsys.readouterr().err
    assert published.read_text() == "the published notebook\n"
    assert (figures / "fig99_fixture.png").read_bytes() == b"the published figure"
    assert (figures / "runs" / "99_fixture.json").read_text() == '{"profile": "smoke"}\n'
    assert sorted(p.name for p in nb_dir.iterdir()) == [
        "99_fixture.ipynb",
        "99_fixture.partial.ipynb",
        "99_fixture.py",
    ]
    # a successful run publishes and removes the partial notebook of the failed one
    assert kacnb("run", "99", *SMOKE, "--notebooks-dir", nb_dir) == 0
    assert in_sync(nb_dir / "99_fixture.py", published)
    assert (figures / "fig99_fixture.png").read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in nb_dir.iterdir()) == ["99_fixture.ipynb", "99_fixture.py"]


def _publish_quick(root: Path) -> dict[Path, bytes]:
    """Published outputs of a quick run of the fixture: path -> content."""
    files = {
        root / "notebooks" / "99_fixture.ipynb": b"the published quick notebook\n",
        root / "figures" / "fig99_fixture.png": b"the published quick figure",
        root / "figures" / "runs" / "99_fixture.json": b'{"profile": "quick"}\n',
    }
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return files


def test_run_of_another_profile_goes_to_the_scratch_folder(tmp_path, capsys):
    nb_dir = make_repo(tmp_path)
    published = _publish_quick(tmp_path)
    assert kacnb("run", "99", *SMOKE, "--notebooks-dir", nb_dir) == 0
    assert {path: path.read_bytes() for path in published} == published  # byte-identical
    assert sorted(p.name for p in (tmp_path / "figures").rglob("*")) == [
        "99_fixture.json",
        "fig99_fixture.png",
        "runs",
    ]
    scratch = tmp_path / "runs" / "smoke"
    assert in_sync(nb_dir / "99_fixture.py", scratch / "99_fixture.ipynb")
    assert (scratch / "figures" / "fig99_fixture.png").read_bytes().startswith(b"\x89PNG")
    record = json.loads((scratch / "figures" / "runs" / "99_fixture.json").read_text())
    assert record["profile"] == "smoke"
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(
        "kacnb: 99_fixture: not published (the published run is profile quick, this one smoke)"
    )
    assert str(scratch / "99_fixture.ipynb") in last and "--publish" in last


def test_publish_replaces_a_published_run_of_another_profile(tmp_path):
    nb_dir = make_repo(tmp_path)
    published = _publish_quick(tmp_path)
    assert kacnb("run", "99", *SMOKE, "--publish", "--notebooks-dir", nb_dir) == 0
    assert in_sync(nb_dir / "99_fixture.py", nb_dir / "99_fixture.ipynb")
    figures = tmp_path / "figures"
    assert (figures / "fig99_fixture.png").read_bytes().startswith(b"\x89PNG")
    assert json.loads((figures / "runs" / "99_fixture.json").read_text())["profile"] == "smoke"
    assert not (tmp_path / "runs").exists()
    assert all(path.read_bytes() != content for path, content in published.items())


def test_run_of_the_published_profile_publishes(tmp_path, capsys):
    nb_dir = make_repo(tmp_path)
    record = tmp_path / "figures" / "runs" / "99_fixture.json"
    record.parent.mkdir(parents=True)
    record.write_text('{"profile": "smoke"}\n')
    (nb_dir / "99_fixture.ipynb").write_text("the published smoke notebook\n")
    assert kacnb("run", "99", *SMOKE, "--notebooks-dir", nb_dir) == 0
    assert in_sync(nb_dir / "99_fixture.py", nb_dir / "99_fixture.ipynb")
    assert json.loads(record.read_text())["wall_time_s"] > 0
    assert not (tmp_path / "runs").exists()
    assert "not published" not in capsys.readouterr().err


def test_explicit_output_folders_are_used_as_given(tmp_path):
    nb_dir = make_repo(tmp_path)
    published = _publish_quick(tmp_path)
    out, figs = tmp_path / "out", tmp_path / "figs"
    argv = ["run", "99", *SMOKE, "--notebooks-dir", nb_dir]
    assert kacnb(*argv, "--output-dir", out, "--figures-dir", figs) == 0
    assert in_sync(nb_dir / "99_fixture.py", out / "99_fixture.ipynb")
    assert (figs / "runs" / "99_fixture.json").is_file()
    assert {path: path.read_bytes() for path in published} == published
    assert not (tmp_path / "runs").exists()
    # one of them given: the other default location is still protected
    assert kacnb(*argv, "--output-dir", tmp_path / "out2") == 0
    assert (tmp_path / "out2" / "99_fixture.ipynb").is_file()
    assert (tmp_path / "runs" / "smoke" / "figures" / "fig99_fixture.png").is_file()
    assert {path: path.read_bytes() for path in published} == published


def test_dead_kernel_message_shows_the_kernels_stderr(tmp_path, capsys):
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    dies_py = FIXTURE_PY.with_name("97_dies.py")
    assert to_percent(jupytext.read(dies_py)) == dies_py.read_text(encoding="utf-8")
    shutil.copy(dies_py, nb_dir / "97_dies.py")
    dies = NotebookSpec(97, "97_dies", "Dying kernel fixture", ())
    argv = ["run", "97", *SMOKE, "--notebooks-dir", nb_dir]
    assert cli.main([str(a) for a in argv], entries=NOTEBOOKS + (dies,)) == 1
    err = capsys.readouterr().err
    assert "notebook 97_dies failed: DeadKernelError" in err
    assert "the kernel's stderr ended with:\n    | the kernel says goodbye" in err, err
    assert not (nb_dir / "97_dies.ipynb").exists()


def test_output_lock_refuses_a_second_run_and_takes_over_a_stale_one(tmp_path):
    from kacnb.collection.runner import OutputLocked, output_lock

    output = tmp_path / "nb" / "99_fixture.ipynb"
    with output_lock(output) as lock:
        assert lock.read_text().strip() == str(os.getpid())
        with pytest.raises(OutputLocked, match=rf"another kacnb run \(PID {os.getpid()}\)"):
            with output_lock(output):
                pass
    assert not lock.exists()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    lock.write_text(f"{dead}\n")  # left by a process that is gone
    with output_lock(output):
        assert lock.read_text().strip() == str(os.getpid())
    assert not lock.exists()


def test_cli_reports_a_locked_output(tmp_path, capsys):
    from kacnb.collection.runner import output_lock

    nb_dir = make_repo(tmp_path)
    with output_lock(nb_dir / "99_fixture.ipynb"):
        assert kacnb("run", "99", *SMOKE, "--notebooks-dir", nb_dir) == 2
    err = capsys.readouterr().err
    assert f"being written by another kacnb run (PID {os.getpid()})" in err
    assert not (nb_dir / "99_fixture.ipynb").exists()


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_signal_while_publishing_takes_effect_once_everything_is_in_place(signame):
    import signal

    from kacnb.collection.runner import Interrupted, _signals_deferred, sigterm_interrupts

    signum = getattr(signal, signame)
    steps = []
    with sigterm_interrupts(), pytest.raises(KeyboardInterrupt) as info:
        with _signals_deferred():
            os.kill(os.getpid(), signum)
            steps.append("figures")
            steps.append("notebook")
        steps.append("after")
    assert steps == ["figures", "notebook"]
    assert isinstance(info.value, Interrupted) is (signame == "SIGTERM")
    assert getattr(info.value, "exit_status", 130) == 128 + signum
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_write_text_atomic_uses_unique_temporary_files(tmp_path, monkeypatch):
    from kacnb.collection import runner

    target = tmp_path / "runs" / "x.json"
    runner.write_text_atomic(target, "one\n")
    seen = []
    real = os.replace

    def spy(src, dst):
        seen.append(Path(src))
        return real(src, dst)

    monkeypatch.setattr(runner.os, "replace", spy)
    runner.write_text_atomic(target, "two\n")
    runner.write_text_atomic(target, "three\n")
    assert target.read_text() == "three\n"
    assert len(set(seen)) == 2 and all(p.parent == target.parent for p in seen)
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.json"]


SLOW_PY = Path(__file__).resolve().parent / "fixtures" / "97_slow.py"
_SLOW_MAIN = """
import sys
from kacnb.collection import cli
from kacnb.collection.registry import NOTEBOOKS, FigureSpec, NotebookSpec
SLOW = NotebookSpec(97, "97_slow", "Slow fixture", (FigureSpec("fig97_slow", None, "fixture"),))
sys.exit(cli.main(sys.argv[1:], entries=NOTEBOOKS + (SLOW,)))
"""


def test_slow_fixture_is_canonical_percent_text():
    assert to_percent(jupytext.read(SLOW_PY)) == SLOW_PY.read_text(encoding="utf-8")


def _interrupt_slow_run(tmp_path: Path, signum: int, *, group: bool) -> tuple[int, str, Path]:
    """Run the slow fixture notebook over a published one, send ``signum`` while it sleeps
    (to the process group, as Ctrl-C in a terminal, or to the ``kacnb`` process alone, as
    ``kill``); returns the exit status, stderr and the run's temporary folder."""
    import signal
    import time

    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    shutil.copy(SLOW_PY, nb_dir / SLOW_PY.name)
    published, figures = nb_dir / "97_slow.ipynb", tmp_path / "figures"
    figures.mkdir()
    published.write_text("the published notebook\n")
    (figures / "fig97_slow.png").write_bytes(b"the published figure")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    marker = tmp_path / "sleeping"
    argv = ["run", "97", *SMOKE, "--notebooks-dir", str(nb_dir), "-p", f"marker={str(marker)!r}"]
    # a session of its own: a signal to its process group reaches the kernel too
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_MAIN, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "TMPDIR": str(tmp)},
    )
    try:
        t0 = time.monotonic()
        while not marker.exists() and proc.poll() is None and time.monotonic() - t0 < 120:
            time.sleep(0.2)
        assert marker.exists(), proc.communicate()
        os.killpg(proc.pid, signum) if group else os.kill(proc.pid, signum)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "Traceback" not in err and "ZMQError" not in err, err
    assert published.read_text() == "the published notebook\n"
    assert sorted(p.name for p in figures.rglob("*")) == ["fig97_slow.png"]
    assert (figures / "fig97_slow.png").read_bytes() == b"the published figure"
    assert sorted(p.name for p in nb_dir.iterdir()) == ["97_slow.ipynb", "97_slow.py"]
    return proc.returncode, err, tmp


def test_ctrl_c_publishes_nothing_and_exits_130(tmp_path):
    import signal

    status, err, _ = _interrupt_slow_run(tmp_path, signal.SIGINT, group=True)
    assert status == 130, err
    assert err.strip().splitlines()[-1] == "kacnb: interrupted in 97_slow: nothing published"


@pytest.mark.parametrize("group", [False, True], ids=["kill", "killpg"])
def test_sigterm_is_handled_like_ctrl_c_and_exits_143(tmp_path, group):
    import signal

    status, err, tmp = _interrupt_slow_run(tmp_path, signal.SIGTERM, group=group)
    assert status == 143, err
    lines = [line for line in err.strip().splitlines() if not line.startswith("kacnb: running")]
    assert lines == ["kacnb: terminated (SIGTERM) in 97_slow: nothing published"]
    assert [p.name for p in tmp.iterdir() if p.name.startswith("kacnb-")] == []  # no staging


# --------------------------------------------------------------------------------------------
# kacnb golden and the nbval regression set-up


def test_golden_keeps_injected_parameters(golden):
    rc, root = golden
    assert rc == 0
    golden_dir = root / "tests" / "golden"
    nb = nbformat.read(golden_dir / "99_fixture.ipynb", as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    assert "papermill" not in nb.metadata
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1
    for name, value in GOLDEN_PARAMETERS.items():
        assert f"{name} = {value!r}".replace("'", '"') in injected[0].source
    others = [(c.cell_type, c.source) for c in nb.cells if c not in injected]
    assert others == [(c.cell_type, c.source) for c in jupytext.read(FIXTURE_PY).cells]
    for cell in nb.cells:
        assert "papermill" not in cell.metadata and cell.metadata.get("tags", None) != []
    # figures went to the relative smoke dir, next to the golden notebook
    assert (golden_dir / "_smoke_figures" / "fig99_fixture.png").is_file()


def test_golden_passes_nbval_and_detects_changes(golden, tmp_path):
    """Run the real pytest configuration (pyproject.toml + tests/conftest.py) on goldens."""
    _, root = golden
    repo = tmp_path / "mini"
    gdir = repo / "tests" / "golden"
    gdir.mkdir(parents=True)
    shutil.copy(REPO / "tests" / "conftest.py", repo / "tests" / "conftest.py")
    shutil.copy(REPO / "tests" / "tolerance.py", repo / "tests" / "tolerance.py")
    shutil.copy(REPO / "tests" / "golden" / "sanitize.cfg", gdir / "sanitize.cfg")
    good = root / "tests" / "golden" / "99_fixture.ipynb"
    shutil.copy(good, gdir / "99_fixture.ipynb")
    nb = nbformat.read(good, as_version=4)
    checked = [c for c in nb.cells if "# NBVAL_CHECK_OUTPUT" in c.source]
    assert len(checked) == 1
    stdout = next(o for o in checked[0].outputs if o.get("name") == "stdout")
    assert re.search(r"elapsed \d\.\d{3} s", stdout.text)  # sanitised timing
    original = stdout.text
    stdout.text = re.sub(r"mean=(-?\d\.\d{4})", "mean=9.9999", stdout.text)
    stderr = next(o for o in checked[0].outputs if o.get("name") == "stderr")
    stderr.text = "anything: stderr is not compared\n"
    nbformat.write(nb, gdir / "97_tampered.ipynb")
    # A cell with a stated tolerance (tests/tolerance.py): a reference off by 0.01 passes at
    # atol 0.05, one off by 1 fails.
    mean = float(re.search(r"mean=(-?\d\.\d{4})", original).group(1))
    checked[0].source = "# NBVAL_TOLERANCE rtol=0 atol=0.05\n" + checked[0].source
    for name, shift in (("96_tolerant_near", 0.01), ("95_tolerant_far", 1.0)):
        stdout.text = original.replace(f"mean={mean:.4f}", f"mean={mean + shift:.4f}")
        nbformat.write(nb, gdir / f"{name}.ipynb")

    def pytest_(*args):
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-c"]
            + [str(REPO / "pyproject.toml"), "--rootdir", str(repo), *args],
            capture_output=True,
            text=True,
            cwd=repo,
        )

    collected = pytest_("--collect-only", "-q", "-k", "99_fixture", "tests")
    ids = [line for line in collected.stdout.splitlines() if "::" in line]
    assert ids and all(i.startswith("tests/golden/99_fixture.ipynb::Cell ") for i in ids)

    proc = pytest_("tests", "-q")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failed = re.findall(r"^FAILED (\S+)", proc.stdout, re.MULTILINE)
    assert failed == [
        "tests/golden/95_tolerant_far.ipynb::Cell",
        "tests/golden/97_tampered.ipynb::Cell",
    ], proc.stdout
    assert "mismatch 'stdout'" in proc.stdout
    assert "outside the cell's tolerance" in proc.stdout
    assert f"2 failed, {4 * len(ids) - 2} passed" in proc.stdout


def test_sanitize_file_covers_nondeterministic_text():
    from nbval.plugin import get_sanitize_patterns

    patterns = get_sanitize_patterns((REPO / "tests" / "golden" / "sanitize.cfg").read_text())
    assert len(patterns) >= 4

    def sanitize(s: str) -> str:
        for regex, replace in patterns:
            s = re.sub(regex, replace, s)
        return s

    for a, b in [
        ("elapsed 0.012 s", "elapsed 1.5 s"),
        ("took 850 ms", "took 12 ms"),
        ("10/10 [00:01<00:00, 12.3it/s]", "10/10 [00:01<00:00, 9.81it/s]"),
        ("<Figure size 640x480 with 1 Axes>", "<Figure size 800x400 with 2 Axes>"),
        ("<Model object at 0x7f3a2c1b9d90>", "<Model object at 0x7f00deadbeef>"),
    ]:
        assert sanitize(a) == sanitize(b)
    for kept in ["loss=0.1234 s=2", "64 samples", "T = 5", "mean=-0.1420 std=1.1198"]:
        assert sanitize(kept) == kept


def test_clean_notebook_strips_papermill_clutter():
    nb = nbformat.v4.new_notebook()
    nb.metadata.papermill = {"parameters": {}}
    params = nbformat.v4.new_code_cell("a = 1", metadata={"tags": ["parameters"]})
    injected = nbformat.v4.new_code_cell("a = 2", metadata={"tags": ["injected-parameters"]})
    body = nbformat.v4.new_code_cell(
        "print(a)",
        metadata={"tags": [], "papermill": {"duration": 1.0}, "execution": {"x": "1"}},
        outputs=[
            nbformat.v4.new_output("stream", name="stdout", text="1\r2"),
            nbformat.v4.new_output("stream", name="stdout", text="\r3\n"),
            nbformat.v4.new_output("stream", name="stderr", text="w\n"),
        ],
    )
    nb.cells = [params, injected, body]
    published = clean_notebook(nb)
    assert [c.source for c in published.cells] == ["a = 1", "print(a)"]
    assert published.cells[1].metadata == {}
    assert [(o.name, o.text) for o in published.cells[1].outputs] == [
        ("stdout", "3\n"),
        ("stderr", "w\n"),
    ]
    assert "papermill" not in published.metadata
    assert clean_notebook(nb).cells[1].id == published.cells[1].id  # deterministic ids
    kept = clean_notebook(nb, keep_injected=True)
    assert [c.source for c in kept.cells] == ["a = 1", "a = 2", "print(a)"]


# --------------------------------------------------------------------------------------------
# kacnb.collection.runtime and kacnb.collection.plotting


def test_pick():
    table = {"smoke": 1, "quick": 2, "long": 4, "paper": 3}
    assert [runtime.pick(p, table) for p in runtime.PROFILES] == [1, 2, 4, 3]
    with pytest.raises(ValueError, match="no entry for profile 'long'"):
        runtime.pick("long", {"smoke": 1, "quick": 2, "paper": 3})
    with pytest.raises(ValueError, match="unknown profile 'full'"):
        runtime.pick("full", table)
    with pytest.raises(ValueError, match="no entry for profile 'paper'"):
        runtime.pick("paper", {"smoke": 1, "quick": 2})


def test_setup_seeds_and_reports(capsys):
    threads = torch.get_num_threads()
    try:
        rt = runtime.setup("smoke", "cpu", 5)
        assert torch.get_num_threads() == 1
        a = torch.rand(3)
        b = torch.rand(3, generator=rt.generator)
        runtime.setup("smoke", "auto" if not torch.cuda.is_available() else "cpu", 5)
        assert torch.equal(a, torch.rand(3))
        assert torch.equal(b, torch.rand(3, generator=torch.Generator().manual_seed(5)))
    finally:
        torch.set_num_threads(threads)
    assert (rt.profile, rt.device, rt.seed) == ("smoke", torch.device("cpu"), 5)
    line = capsys.readouterr().out.splitlines()[0]
    assert line == f"profile=smoke device=cpu seed=5 torch={torch.__version__}"
    assert matplotlib.rcParams["axes.spines.top"] is False


def test_setup_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown profile"):
        runtime.setup("fast", "cpu", 0)
    with pytest.raises(ValueError, match="unknown device"):
        runtime.resolve_device("tpu")
    assert runtime.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            runtime.setup("quick", "cuda", 0)


def test_save_figure(tmp_path):
    import matplotlib.pyplot as plt

    plotting.use_style()
    assert matplotlib.rcParams["savefig.bbox"] == "tight"
    assert matplotlib.rcParams["axes.prop_cycle"].by_key()["color"][:2] == [
        plotting.GENERATED,
        plotting.GROUND_TRUTH,
    ]
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    try:
        assert plotting.save_figure(fig, "figX_test", None) == []
        paths = plotting.save_figure(fig, "figX_test", tmp_path / "new" / "dir")
        assert [p.name for p in paths] == ["figX_test.png", "figX_test.pdf"]
        assert all(p.stat().st_size > 0 for p in paths)
        first_pdf = paths[1].read_bytes()
        plotting.save_figure(fig, "figX_test", tmp_path / "new" / "dir")
        assert paths[1].read_bytes() == first_pdf  # no creation date: reproducible PDFs
        for bad in ["figX.png", "sub/figX", "", "../x"]:
            with pytest.raises(ValueError, match="bare file stem"):
                plotting.save_figure(fig, bad, tmp_path)
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------------------------
# kacnb run --time-limit

TIMELIMIT_PY = Path(__file__).resolve().parent / "fixtures" / "98_timelimit.py"
TIMELIMIT = NotebookSpec(
    98, "98_timelimit", "Time-limit fixture", (FigureSpec("fig98_timelimit", None, "fixture"),)
)


def test_time_limit_fixture_is_canonical_percent_text():
    assert to_percent(jupytext.read(TIMELIMIT_PY)) == TIMELIMIT_PY.read_text(encoding="utf-8")


def test_time_limit_stops_publishes_nothing_and_the_rerun_resumes(tmp_path, capsys):
    from kacnb.cfm.config import DEADLINE_ENV as TRAIN_ENV
    from kacnb.cfm.train import TimeLimitReached
    from kacnb.collection.runner import DEADLINE_ENV, TIME_LIMIT_ENAME

    assert (DEADLINE_ENV, TIME_LIMIT_ENAME) == (TRAIN_ENV, TimeLimitReached.__name__)
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    shutil.copy(TIMELIMIT_PY, nb_dir / TIMELIMIT_PY.name)
    published, figure = nb_dir / "98_timelimit.ipynb", tmp_path / "figures" / "fig98_timelimit.png"
    figure.parent.mkdir()
    published.write_text("the published notebook\n")
    figure.write_bytes(b"the published figure")
    ckpt = tmp_path / "ckpt" / "run.pt"
    argv = ["run", "98", *SMOKE, "--notebooks-dir", nb_dir, "-p", f"checkpoint={ckpt}"]

    def run(*extra):
        return cli.main([str(a) for a in [*argv, *extra]], entries=ENTRIES + (TIMELIMIT,))

    # The kernel starts after more than 0.01 s: training stops after its first step.
    assert run("--time-limit", "0.01") == cli.EXIT_TIME_LIMIT == 3
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "stopped at the time limit" in line]
    assert len(lines) == 1, err
    assert re.search(r"^kacnb: stopped at the time limit after \d+ s in 98_timelimit", lines[0])
    assert "run the same command again to continue" in lines[0]
    assert "train at step 1 of 300" in lines[0] and "checkpoints written" in lines[0]
    assert published.read_text() == "the published notebook\n"  # nothing published
    assert figure.read_bytes() == b"the published figure"
    assert not (tmp_path / "figures" / "runs").exists()
    assert torch.load(ckpt, weights_only=False)["step"] == 1

    assert run("--time-limit", "600") == 0  # the same command, time enough: it resumes
    text = published.read_text()
    assert "starting at step 1" in text and "trained 300 steps" in text
    assert figure.read_bytes().startswith(b"\x89PNG")  # the staged figure was published
    assert (tmp_path / "figures" / "runs" / "98_timelimit.json").is_file()
    assert torch.load(ckpt, weights_only=False)["step"] == 300


@pytest.mark.parametrize("value", ["0", "-5", "abc", "inf", "nan"])
def test_time_limit_must_be_a_positive_number(tmp_path, capsys, value):
    nb_dir = make_repo(tmp_path)
    with pytest.raises(SystemExit) as info:
        kacnb("run", "99", *SMOKE, "--notebooks-dir", nb_dir, "--time-limit", value)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --time-limit: expected a positive number of seconds, got '{value}'" in err


def test_goldens_drop_image_outputs_and_keep_text():
    import nbformat

    from kacnb.collection.runner import without_images

    cell = nbformat.v4.new_code_cell("plot()")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="value 1.5\n"),
        nbformat.v4.new_output("display_data", data={"image/png": "iVBOR", "text/plain": "<F>"}),
        nbformat.v4.new_output("display_data", data={"text/plain": "a table"}),
    ]
    nb = nbformat.v4.new_notebook(cells=[cell, nbformat.v4.new_markdown_cell("text")])
    out = without_images(nb)
    kinds = [(o["output_type"], sorted(o.get("data", {}))) for o in out.cells[0].outputs]
    assert kinds == [("stream", []), ("display_data", ["text/plain"])]
    assert len(nb.cells[0].outputs) == 3  # the input is left as it was
