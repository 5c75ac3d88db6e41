"""A checkpoint folder is trained into by one process at a time
(``kacnb.cfm.train.checkpoint_lock``).

Two runs of notebook 04 with different output folders share ``checkpoints/04_cfm_gmm_2d/``:
the second one stops at once with a message naming the first one's PID instead of writing
the same checkpoint files.  The lock is the operating system's (``flock``), so a run that is
killed releases it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kacnb.cfm.train import CheckpointLocked, checkpoint_lock
from kacnb.collection import cli
from kacnb.collection.registry import NOTEBOOKS, FigureSpec, NotebookSpec

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TIMELIMIT = NotebookSpec(
    98, "98_timelimit", "Time-limit fixture", (FigureSpec("fig98_timelimit", None, "fixture"),)
)
_HOLD = """
import sys, time
from kacnb.cfm.train import checkpoint_lock
with checkpoint_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(300)
"""


@pytest.fixture(scope="module")
def held(tmp_path_factory):
    """A checkpoint folder whose lock another process holds: ``(folder, its PID)``."""
    folder = tmp_path_factory.mktemp("ckpt") / "04_cfm_gmm_2d" / "paper"
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(folder)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield folder, proc
    finally:
        proc.kill()
        proc.wait()


def test_a_second_process_is_refused_with_the_holders_pid(held):
    folder, proc = held
    with pytest.raises(CheckpointLocked) as info:
        with checkpoint_lock(folder):
            pass
    assert str(info.value) == (
        f"the checkpoint folder {folder.resolve()} is in use by another training run "
        f"(PID {proc.pid}); wait for it to finish, or run with other checkpoints"
    )


def test_the_lock_is_reentrant_and_released(tmp_path):
    folder = tmp_path / "ckpt"
    with checkpoint_lock(folder):
        with checkpoint_lock(folder):  # e.g. two trainings of one notebook, nested
            pass
        holder = subprocess.run(
            [sys.executable, "-c", _HOLD.replace("time.sleep(300)", "pass"), str(folder)],
            capture_output=True,
            text=True,
        )
        assert holder.returncode == 1 and "CheckpointLocked" in holder.stderr
    with checkpoint_lock(folder):  # released at the end of the block
        pass


def test_a_killed_holder_releases_the_lock(tmp_path):
    folder = tmp_path / "ckpt"
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with checkpoint_lock(folder) as lock:
        assert lock.read_text().strip() == str(os.getpid())


def test_a_second_run_training_into_the_same_checkpoints_stops_with_a_clear_message(
    held, tmp_path, capsys
):
    folder, proc = held
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    shutil.copy(FIXTURES / "98_timelimit.py", nb_dir / "98_timelimit.py")
    argv = ["run", "98", "--profile", "smoke", "--device", "cpu", "--no-progress"]
    argv += ["--notebooks-dir", nb_dir, "--output-dir", tmp_path / "b", "--figures-dir"]
    argv += [tmp_path / "b" / "figures", "-p", f"checkpoint={str(folder / 'run.pt')!r}"]
    status = cli.main([str(a) for a in argv], entries=NOTEBOOKS + (TIMELIMIT,))
    assert status == 1
    err = capsys.readouterr().err
    assert (
        f"kacnb: FAILED: notebook 98_timelimit failed: CheckpointLocked: the checkpoint folder "
        f"{folder.resolve()} is in use by another training run (PID {proc.pid})"
    ) in err
    assert "Traceback" not in err
    assert not (tmp_path / "b" / "98_timelimit.ipynb").exists()
    assert not (folder / "run.pt").exists()  # nothing written into the other run's folder
