"""Publishing a run is one transaction; what a run says at its end is what happened.

``kacnb.collection.runner.publish`` replaces the executed notebook, figures, metrics, run record and
weights bundle all together or not at all; every test here fails one step of it (a copy, a
hard link, a rename, the journal) or the disk, and checks that the published files are
entirely the old ones or entirely the new ones, with nothing left beside them.  The
notebooks are not executed: ``runner._execute`` is replaced by a stand-in that writes the
files a notebook writes (so each case takes milliseconds); ``tests/test_runner.py`` runs
the real kernel for Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from kacnb.cfm import pretrained
from kacnb.collection import cli, runner
from kacnb.collection.registry import NOTEBOOKS, FigureSpec, NotebookSpec

FIXTURE = NotebookSpec(
    99, "99_fixture", "Fixture notebook", (FigureSpec("fig99_fixture", None, "fixture"),)
)
ENTRIES = NOTEBOOKS + (FIXTURE,)
SMOKE = ["--profile", "smoke", "--device", "cpu", "--no-progress"]
#: A notebook source with the parameters the runner and notebook 04 know.
SOURCE = """# %% tags=["parameters"]
profile = "quick"
device = "auto"
seed = 0
figures_dir = None
pretrained = False
kac_pairs = None

# %%
print("body")
"""


def kacnb(*argv) -> int:
    return cli.main([str(a) for a in argv], entries=ENTRIES)


def make_repo(root: Path, *stems: str) -> Path:
    """``root/notebooks`` holding a source for each stem (default: the fixture's)."""
    nb_dir = root / "notebooks"
    nb_dir.mkdir(parents=True)
    for stem in stems or ("99_fixture",):
        (nb_dir / f"{stem}.py").write_text(SOURCE)
    return nb_dir


def metrics(stem: str, verdicts: list[str]) -> bytes:
    rows = [{"claim": f"claim {i}", "verdict": v} for i, v in enumerate(verdicts)]
    return json.dumps({"notebook": stem, "rows": rows}).encode()


def stand_in_kernel(monkeypatch):
    """Replace the kernel: each 'executed' notebook writes ``files[stem]`` (path relative to
    its figures folder -> bytes) and prints ``new run``; ``raises[stem]`` is raised instead;
    ``seen`` collects the parameters of each execution."""
    files: dict[str, dict[str, bytes]] = {}
    raises: dict[str, BaseException] = {}
    seen: list[dict] = []

    def execute(spec, source, output, parameters, cwd, **options):
        seen.append({"stem": spec.stem, **parameters})
        if spec.stem in raises:
            raise raises[spec.stem]
        figures = Path(parameters["figures_dir"])
        default = {
            "fig99_fixture.png": b"new png",
            f"runs/{spec.stem}.metrics.json": metrics(spec.stem, ["reproduced"]),
        }
        for rel, data in files.get(spec.stem, default).items():
            (figures / rel).parent.mkdir(parents=True, exist_ok=True)
            (figures / rel).write_bytes(data)
        nb = nbformat.v4.new_notebook()
        out = nbformat.v4.new_output("stream", name="stdout", text="new run\n")
        nb.cells = [nbformat.v4.new_code_cell("x = 1", outputs=[out])]
        return nb

    monkeypatch.setattr(runner, "_execute", execute)
    return files, raises, seen


@pytest.fixture
def notebook_writes(monkeypatch, tmp_path_factory):
    """:func:`stand_in_kernel` for one test, with a temporary folder of its own (staging
    folders, and the outputs a failed publication keeps)."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path_factory.mktemp("tmp")))
    return stand_in_kernel(monkeypatch)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` except the notebook sources: relative path -> content."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix != ".py"
    }


def published_old(root: Path) -> dict[str, bytes]:
    """A published run of the fixture at the smoke profile (notebook, figure, metrics,
    record) whose every file says ``old``."""
    files = {
        "notebooks/99_fixture.ipynb": b"old notebook\n",
        "figures/fig99_fixture.png": b"old png",
        "figures/fig99_fixture.pdf": b"old pdf",
        "figures/runs/99_fixture.metrics.json": b"old metrics",
        "figures/runs/99_fixture.json": b'{"profile": "smoke", "old": true}\n',
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return snapshot(root)


def assert_entirely_new(root: Path, old: dict[str, bytes]) -> None:
    now = snapshot(root)
    assert b"new run" in now["notebooks/99_fixture.ipynb"]
    assert now["figures/fig99_fixture.png"] == b"new png"
    assert now["figures/runs/99_fixture.metrics.json"] == metrics("99_fixture", ["reproduced"])
    assert json.loads(now["figures/runs/99_fixture.json"])["profile"] == "smoke"
    assert now["figures/fig99_fixture.pdf"] == old["figures/fig99_fixture.pdf"]  # not rewritten
    assert not [name for name in now if Path(name).name.startswith(".")], now.keys()


# --------------------------------------------------------------------------------------------
# the transaction itself: a failure at every step leaves the old files


@contextlib.contextmanager
def failing_at(k: int, error: OSError, counter: list[str]):
    """Make the ``k``-th file operation of a publication (0-based, counting the staging
    copies, hard links, renames, replaces and the journal's write) raise ``error``."""
    patched = {
        (runner, "_copy_new"): runner._copy_new,
        (runner, "write_text_atomic"): runner.write_text_atomic,
        (os, "link"): os.link,
        (os, "rename"): os.rename,
        (os, "replace"): os.replace,
    }

    def wrap(name, real):
        def op(*args, **kwargs):
            counter.append(name)
            if len(counter) - 1 == k:
                raise error
            return real(*args, **kwargs)

        return op

    try:
        for (owner, name), real in patched.items():
            setattr(owner, name, wrap(name, real))
        yield
    finally:
        for (owner, name), real in patched.items():
            setattr(owner, name, real)


def _transaction(tmp_path: Path) -> tuple[dict[Path, Path], Path, dict[str, bytes]]:
    """Five targets (three with an old file, two new) and their staged new files."""
    pub, staged = tmp_path / "pub", tmp_path / "staged"
    names = ["nb.ipynb", "figs/a.png", "figs/b.gif", "figs/runs/r.json", "weights/w.pt"]
    files = {}
    for i, name in enumerate(names):
        if i < 3:
            (pub / name).parent.mkdir(parents=True, exist_ok=True)
            (pub / name).write_bytes(f"old {name}".encode())
        (staged / name).parent.mkdir(parents=True, exist_ok=True)
        (staged / name).write_bytes(f"new {name}".encode())
        files[pub / name] = staged / name
    return files, pub / ".nb.ipynb.publishing.json", snapshot(pub)


def test_publish_replaces_every_file(tmp_path):
    files, journal, _ = _transaction(tmp_path)
    assert runner.publish(files, journal) == list(files)
    pub = tmp_path / "pub"
    assert snapshot(pub) == {str(t.relative_to(pub)): s.read_bytes() for t, s in files.items()}


@pytest.mark.parametrize("error", [PermissionError(errno.EACCES, "Permission denied"),
                                   OSError(errno.ENOSPC, "No space left on device")])  # fmt: skip
def test_a_failure_at_any_step_of_publishing_leaves_the_old_files(tmp_path, error):
    files, journal, old = _transaction(tmp_path)
    ops: list[str] = []
    with failing_at(-1, error, ops):  # a dry count of the steps
        runner.publish(dict(files), journal)
    steps = len(ops)
    assert steps >= 2 * len(files) + 3 + 1  # copies, replaces, links of the old ones, journal
    for k in range(steps):
        files, journal, old = _transaction(tmp_path / f"k{k}")
        pub = tmp_path / f"k{k}" / "pub"
        if ops[k] == "link":  # no hard links there: the old file is renamed aside instead
            with failing_at(k, error, []):
                runner.publish(files, journal)
            assert snapshot(pub) == {
                str(t.relative_to(pub)): s.read_bytes() for t, s in files.items()
            }
            continue
        with failing_at(k, error, []), pytest.raises(OSError) as info:
            runner.publish(files, journal)
        assert info.value is error, f"step {k} ({ops[k]})"
        assert snapshot(pub) == old, f"step {k} ({ops[k]})"


def _no_links(src, dst):
    raise OSError(errno.EPERM, "Operation not permitted")


def test_without_hard_links_a_failing_rename_leaves_the_old_files(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "link", _no_links)
    for k in range(3):  # the renames of the three old files aside (steps 8, 11, 14)
        files, journal, old = _transaction(tmp_path / f"k{k}")
        with failing_at(8 + 3 * k, OSError(errno.EIO, "Input/output error"), []):
            with pytest.raises(OSError, match="Input/output"):
                runner.publish(files, journal)
        assert snapshot(tmp_path / f"k{k}" / "pub") == old


_KILLED_AT = """
import json, os, sys
from pathlib import Path
from kacnb.collection import runner
files = {Path(t): Path(s) for t, s in json.loads(sys.argv[1]).items()}
real, calls = os.replace, []
def replace(src, dst):
    calls.append(dst)
    if len(calls) == int(sys.argv[3]):
        os._exit(9)  # killed: no roll-back, no clean-up
    return real(src, dst)
os.replace = replace
runner.publish(files, Path(sys.argv[2]))
"""


@pytest.mark.parametrize("kill_at", [3, 6])  # the 1st replace writes the journal
def test_a_publication_killed_midway_is_rolled_back_by_the_next_run(tmp_path, kill_at):
    files, journal, old = _transaction(tmp_path)
    argv = [json.dumps({str(t): str(s) for t, s in files.items()}), str(journal), str(kill_at)]
    proc = subprocess.run([sys.executable, "-c", _KILLED_AT, *argv], capture_output=True)
    assert proc.returncode == 9, proc.stderr
    assert journal.exists() and snapshot(tmp_path / "pub") != old  # a mix, for now
    assert runner.recover_publication(journal.parent / "nb.ipynb") is True
    assert snapshot(tmp_path / "pub") == old
    assert runner.recover_publication(journal.parent / "nb.ipynb") is False


def test_side_files_of_a_killed_publication_are_removed(tmp_path):
    pub, new = tmp_path / "pub", tmp_path / "new.png"
    pub.mkdir()
    (pub / "fig.png").write_bytes(b"old")
    new.write_bytes(b"new")
    stale = pub / f".fig.png.{_dead_pid()}.0123abcd.old"
    live = pub / f".fig.png.{os.getppid()}.0123abcd.new"  # a publication still going
    stale.write_bytes(b"x")
    live.write_bytes(b"x")
    runner.publish({pub / "fig.png": new}, pub / ".j.json")
    assert (pub / "fig.png").read_bytes() == b"new"
    assert sorted(p.name for p in pub.iterdir()) == [live.name, "fig.png"]


# --------------------------------------------------------------------------------------------
# kacnb run: a failed publication is one line, leaves the old set, keeps the new outputs


@contextlib.contextmanager
def read_only(folder: Path):
    """``folder`` unwritable in the block: chmod where that works, else (as root, where
    permissions are not enforced) no file can be created in it."""
    real = runner._copy_new

    def refuse(source, temp):
        if Path(temp).parent == folder:
            raise PermissionError(errno.EACCES, "Permission denied", str(temp))
        return real(source, temp)

    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            runner._copy_new = refuse
        yield
    finally:
        runner._copy_new = real
        folder.chmod(0o755)


def test_read_only_runs_folder_publishes_nothing(tmp_path, capsys, notebook_writes):
    nb_dir = make_repo(tmp_path)
    old = published_old(tmp_path)
    with read_only(tmp_path / "figures" / "runs"):
        assert kacnb("run", "99", *SMOKE, "--notebooks-dir", nb_dir) == 1
    assert snapshot(tmp_path) == old
    err = capsys.readouterr().err.strip().splitlines()
    failed = [line for line in err if "FAILED" in line]
    assert len(failed) == 1 and "Traceback" not in "\n".join(err)
    assert failed[0].startswith("kacnb: FAILED: 99_fixture was not published, the published ")
    assert "(Permission denied: " in failed[0] and str(tmp_path / "figures" / "runs") in failed[0]
    kept = Path(failed[0].split("its outputs are kept in ")[1])
    assert (kept / "publish" / "99_fixture.ipynb").is_file()
    assert (kept / "figures" / "fig99_fixture.png").read_bytes() == b"new png"
    assert err[-1] == "kacnb: stopped in 99_fixture: nothing published"
    # the folder writable again, the same command publishes the whole new set
    assert kacnb("run", "99", *SMOKE, "--notebooks-dir", nb_dir) == 0
    assert_entirely_new(tmp_path, old)


@pytest.mark.parametrize("nth", [0, 1, 3])  # of figure, metrics, record, notebook
def test_a_full_disk_mid_publish_publishes_nothing(
    tmp_path, capsys, monkeypatch, notebook_writes, nth
):
    nb_dir = make_repo(tmp_path)
    old = published_old(tmp_path)
    real, copies = runner._copy_new, []

    def disk_fills(source, temp):
        copies.append(temp)
        if len(copies) - 1 == nth:
            Path(temp).write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device", str(temp))
        return real(source, temp)

    monkeypatch.setattr(runner, "_copy_new", disk_fills)
    assert kacnb("run", "99", *SMOKE, "--notebooks-dir", nb_dir) == 1
    assert snapshot(tmp_path) == old  # no half-written copy either
    err = capsys.readouterr().err
    assert "(No space left on device: " in err and err.count("FAILED") == 1
    assert len(copies) > nth


@pytest.mark.parametrize("op", ["replace", "rename"])  # rename: where there are no hard links
def test_a_failing_rename_mid_publish_puts_the_old_files_back(
    tmp_path, monkeypatch, notebook_writes, op
):
    nb_dir = make_repo(tmp_path)
    old = published_old(tmp_path)
    real, calls = getattr(os, op), []

    def fails_third(src, dst, *args, **kwargs):
        calls.append(dst)
        if len(calls) == 3:
            raise OSError(errno.EIO, "Input/output error", str(dst))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, op, fails_third)
    if op == "rename":
        monkeypatch.setattr(os, "link", _no_links)
    status = kacnb("run", "99", *SMOKE, "--notebooks-dir", nb_dir)
    monkeypatch.setattr(os, op, real)
    assert status == 1
    assert snapshot(tmp_path) == old


def test_a_completed_publication_leaves_nothing_beside_the_files(tmp_path, notebook_writes):
    nb_dir = make_repo(tmp_path)
    old = published_old(tmp_path)
    assert kacnb("run", "99", *SMOKE, "--notebooks-dir", nb_dir) == 0
    assert_entirely_new(tmp_path, old)
    assert sorted(p.name for p in nb_dir.iterdir()) == ["99_fixture.ipynb", "99_fixture.py"]


# --------------------------------------------------------------------------------------------
# staging folders of killed runs


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(proc.stdout)


def test_a_run_removes_the_staging_folders_its_notebook_left_when_killed(
    tmp_path, monkeypatch, notebook_writes
):
    import tempfile

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    dead, alive = _dead_pid(), os.getppid()
    stale = tmp / f"kacnb-99_fixture-{dead}-abc_12"
    others = [
        tmp / f"kacnb-99_fixture-{alive}-abc_12",  # a run that is still going
        tmp / f"kacnb-02_kac_1d-{dead}-abc_12",  # another notebook's
        tmp / "kacnb-unpublished-99_fixture-20250101-000000-abcdef",  # kept on purpose
    ]
    for folder in [stale, *others]:
        (folder / "figures").mkdir(parents=True)
    nb_dir = make_repo(tmp_path)
    assert kacnb("run", "99", *SMOKE, "--notebooks-dir", nb_dir) == 0
    assert sorted(tmp.iterdir()) == sorted(others)  # and the run's own staging is gone


# --------------------------------------------------------------------------------------------
# the weights bundle: published to pretrained/ only by a run that publishes into figures/

BUNDLE = {
    "pretrained/04_cfm_gmm_2d_paper.pt": b"new weights",
    "pretrained/04_cfm_gmm_2d_paper.json": b'{"new": true}',
    "runs/04_cfm_gmm_2d.metrics.json": metrics("04_cfm_gmm_2d", ["reproduced", "differs"]),
}


def _shipped(root: Path) -> dict[str, bytes]:
    weights = root / "pretrained"
    weights.mkdir(exist_ok=True)
    (weights / "04_cfm_gmm_2d_paper.pt").write_bytes(b"shipped weights")
    (weights / "04_cfm_gmm_2d_paper.json").write_bytes(b'{"shipped": true}')
    return snapshot(weights)


#: The bundles the notebooks write when they train a shipped profile (04: paper; 05: long).
BUNDLES = {
    "04_cfm_gmm_2d": ("paper", BUNDLE),
    "05_mnist": (
        "long",
        {
            "pretrained/05_mnist_long.pt": b"new weights",
            "pretrained/05_mnist_long.json": b'{"new": true}',
            "runs/05_mnist.metrics.json": metrics("05_mnist", ["reproduced", "differs"]),
        },
    ),
}


@pytest.mark.parametrize("stem", sorted(BUNDLES))
def test_a_publishing_run_publishes_the_bundle_with_the_rest(
    tmp_path, capsys, monkeypatch, notebook_writes, stem
):
    profile, bundle = BUNDLES[stem]
    files, _, _ = notebook_writes
    files[stem] = bundle
    nb_dir = make_repo(tmp_path, stem)
    _shipped(tmp_path)
    monkeypatch.chdir(tmp_path)
    argv = ["run", stem[:2], "--profile", profile, "--device", "cpu", "--no-progress"]
    assert kacnb(*argv, "--notebooks-dir", nb_dir) == 0
    name = f"{stem}_{profile}"
    old = {
        "04_cfm_gmm_2d_paper.pt": b"shipped weights",
        "04_cfm_gmm_2d_paper.json": b'{"shipped": true}',
    }
    new = {f"{name}.pt": b"new weights", f"{name}.json": b'{"new": true}'}
    assert snapshot(tmp_path / "pretrained") == {**old, **new}  # its own replaced, others kept
    assert not (tmp_path / "figures" / "pretrained").exists()
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"{stem}: 1 of 2 reproduced -> notebooks/{stem}.ipynb, figures/, pretrained/"


@pytest.mark.parametrize("where", ["explicit folders", "scratch folder"])
def test_other_paper_runs_keep_the_bundle_with_their_outputs(tmp_path, notebook_writes, where):
    files, _, _ = notebook_writes
    files["04_cfm_gmm_2d"] = BUNDLE
    nb_dir = make_repo(tmp_path, "04_cfm_gmm_2d")
    shipped = _shipped(tmp_path)
    argv = ["run", "04", "--profile", "paper", "--device", "cpu", "--no-progress"]
    argv += ["--notebooks-dir", nb_dir]
    if where == "explicit folders":  # e.g. a fresh run for kacnb drift
        argv += ["--output-dir", tmp_path / "out", "--figures-dir", tmp_path / "figs"]
        figures = tmp_path / "figs"
    else:  # the published run is of another profile
        record = tmp_path / "figures" / "runs" / "04_cfm_gmm_2d.json"
        record.parent.mkdir(parents=True)
        record.write_text('{"profile": "quick"}\n')
        figures = tmp_path / "runs" / "paper" / "figures"
    assert kacnb(*argv) == 0
    assert snapshot(tmp_path / "pretrained") == shipped  # the shipped bundle is untouched
    assert (figures / "pretrained" / "04_cfm_gmm_2d_paper.pt").read_bytes() == b"new weights"


def test_pretrained_weights_run_publishes_only_with_publish(tmp_path, capsys, notebook_writes):
    _, _, seen = notebook_writes
    nb_dir = make_repo(tmp_path, "04_cfm_gmm_2d")
    argv = ["run", "04", *SMOKE, "--notebooks-dir", nb_dir, "-p", "pretrained=True"]
    assert kacnb(*argv) == 0  # no published record yet: still not published
    scratch = tmp_path / "runs" / "smoke"
    assert (scratch / "04_cfm_gmm_2d.ipynb").is_file()
    assert not (nb_dir / "04_cfm_gmm_2d.ipynb").exists() and not (tmp_path / "figures").exists()
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(
        "kacnb: 04_cfm_gmm_2d: not published (-p pretrained=True evaluates the shipped weights; "
        "it publishes with --publish): notebook "
    )
    assert kacnb(*argv, "--publish") == 0
    assert (nb_dir / "04_cfm_gmm_2d.ipynb").is_file()
    assert (tmp_path / "figures" / "runs" / "04_cfm_gmm_2d.json").is_file()
    assert [s["pretrained"] for s in seen] == [True, True]


@pytest.mark.parametrize(
    ("profile", "loaded", "pairs", "expected"),
    [
        ("paper", False, None, True),
        ("paper", False, [[64, 8], [25, 5], [1600, 10]], True),  # the paper's, in any order
        ("paper", False, [(4, 2), (25, 5)], False),  # other models
        ("paper", False, [(25, 5)], False),  # some of the paper's only
        ("paper", True, None, False),  # loaded, not trained
        ("quick", False, None, False),
    ],
)
def test_notebook_04_saves_a_bundle_only_for_a_paper_training_of_the_papers_models(
    profile, loaded, pairs, expected
):
    from kacnb.experiments.gmm2d import PAPER_PAIRS

    assert pretrained.writes_bundle(profile, loaded, pairs, PAPER_PAIRS) is expected
    assert pretrained.run_dir("figs") == Path("figs") / pretrained.RUN_SUBDIR


def test_notebook_04_saves_its_bundle_in_its_output_folder_only():
    text = (Path(__file__).resolve().parent.parent / "notebooks" / "04_cfm_gmm_2d.py").read_text()
    assert "shipped.save_bundle(" in text and "shipped.default_dir(), BUNDLE, {" not in text
    assert "shipped.run_dir(figures_dir)" in text and "shipped.writes_bundle(" in text


# --------------------------------------------------------------------------------------------
# what the run says at its end


LINE_01 = (
    "01_velocity_explosion: 3 of 4 reproduced -> notebooks/01_velocity_explosion.ipynb, figures/"
)


def _three(tmp_path, notebook_writes):
    files, raises, _ = notebook_writes
    stems = ["01_velocity_explosion", "02_kac_1d", "03_kac_multid"]
    nb_dir = make_repo(tmp_path, *stems)
    files["01_velocity_explosion"] = {
        "runs/01_velocity_explosion.metrics.json": metrics("01", ["reproduced"] * 3 + ["differs"])
    }
    files["02_kac_1d"] = {"runs/02_kac_1d.metrics.json": metrics("02", ["reproduced"] * 18)}
    files["03_kac_multid"] = {"nb03_x.png": b"png"}  # no verdict table
    return nb_dir, raises


def test_a_completed_run_ends_with_a_line_per_notebook(
    tmp_path, capsys, monkeypatch, notebook_writes
):
    nb_dir, _ = _three(tmp_path, notebook_writes)
    monkeypatch.chdir(tmp_path)
    assert kacnb("run", "1", "2", "3", *SMOKE, "--notebooks-dir", nb_dir) == 0
    assert capsys.readouterr().err.strip().splitlines()[-3:] == [
        LINE_01,
        "02_kac_1d: 18 of 18 reproduced -> notebooks/02_kac_1d.ipynb, figures/",
        "03_kac_multid: no verdict table -> notebooks/03_kac_multid.ipynb, figures/",
    ]


@pytest.mark.parametrize(
    ("raised", "status", "event"),
    [
        (KeyboardInterrupt(), 130, "interrupted"),
        (runner.Interrupted(15), 143, "terminated (SIGTERM)"),
    ],
)
def test_an_interruption_says_which_notebooks_were_published(
    tmp_path, capsys, monkeypatch, notebook_writes, raised, status, event
):
    nb_dir, raises = _three(tmp_path, notebook_writes)
    raises["02_kac_1d"] = raised
    monkeypatch.chdir(tmp_path)
    assert kacnb("run", "1", "2", "3", *SMOKE, "--notebooks-dir", nb_dir) == status
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"kacnb: {event} in 02_kac_1d (not published); published: 01_velocity_explosion; "
        f"not run: 03_kac_multid"
    )
    assert err[-2].startswith("01_velocity_explosion: done in ")  # one line, nothing more
    assert (nb_dir / "01_velocity_explosion.ipynb").is_file()
    assert not (nb_dir / "02_kac_1d.ipynb").exists()


def test_a_failure_says_which_notebooks_were_published(
    tmp_path, capsys, monkeypatch, notebook_writes
):
    nb_dir, raises = _three(tmp_path, notebook_writes)
    raises["02_kac_1d"] = runner.NotebookFailed(
        "02_kac_1d", nb_dir / "02_kac_1d.py", cell_index=1, line=9, ename="E", evalue="boom"
    )
    monkeypatch.chdir(tmp_path)
    assert kacnb("run", "1", "2", "3", *SMOKE, "--notebooks-dir", nb_dir) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-2:] == [
        LINE_01,
        "kacnb: stopped in 02_kac_1d (not published); published: 01_velocity_explosion; "
        "not run: 03_kac_multid",
    ]
    assert any(line.startswith("kacnb: FAILED: notebook 02_kac_1d failed: E: boom") for line in err)


def test_notebooks_written_to_the_scratch_folder_are_not_called_published(
    tmp_path, capsys, monkeypatch, notebook_writes
):
    nb_dir, raises = _three(tmp_path, notebook_writes)
    record = tmp_path / "figures" / "runs" / "01_velocity_explosion.json"
    record.parent.mkdir(parents=True)
    record.write_text('{"profile": "quick"}\n')
    raises["03_kac_multid"] = KeyboardInterrupt()
    monkeypatch.chdir(tmp_path)
    assert kacnb("run", "1", "2", "3", *SMOKE, "--notebooks-dir", nb_dir) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "kacnb: interrupted in 03_kac_multid (not published); published: 02_kac_1d; "
        "written to the scratch folder: 01_velocity_explosion"
    )
