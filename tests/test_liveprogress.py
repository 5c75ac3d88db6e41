"""The runner shows a notebook's own progress bars live (kacnb.liveprogress)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kacnb import liveprogress, runner
from kacnb.liveprogress import ProgressEcho, latest_bar
from kacnb.registry import NotebookSpec

TRAIN = "4 models:   3%|▎         | 56488/2000000 [02:39<1:45:09, 308.05it/s, loss=0.41]"


@pytest.mark.parametrize(
    "text, expected",
    [
        (TRAIN, TRAIN),
        # tqdm redraws with carriage returns: the newest state is the last segment
        (
            "a:  10%|█ | 1/10 [00:01<00:09, 1.00it/s]\ra:  20%|██ | 2/10 [00:02<00:08, 1.00it/s]",
            "a:  20%|██ | 2/10 [00:02<00:08, 1.00it/s]",
        ),
        # a bar without a total, then a trailing newline
        ("sampling: 5000it [00:10, 480.1it/s]\n", "sampling: 5000it [00:10, 480.1it/s]"),
        # terminal colour codes do not hide a bar
        (
            "\x1b[32mfit: 50%|█| 5/10 [00:05<00:05, 1.0it/s]\x1b[0m",
            "fit: 50%|█| 5/10 [00:05<00:05, 1.0it/s]",
        ),
        # warnings and plain text are not progress
        ("UserWarning: TF32 is off\n", None),
        ("progress 256.0it/s\n", None),
        ("", None),
    ],
)
def test_latest_bar(text, expected):
    assert latest_bar(text) == expected


def test_echo_keeps_the_newest_bar_and_throttles():
    shown, now = [], [0.0]
    echo = ProgressEcho(show=shown.append, interval=1.0, clock=lambda: now[0])
    assert echo.write("a warning\n") == len("a warning\n") and shown == [] and echo.last is None
    echo.write("x:  10%|█ | 1/10 [00:01<00:09, 1.00it/s]")
    now[0] = 0.5  # within the interval: remembered, not shown
    echo.write("\rx:  20%|██ | 2/10 [00:02<00:08, 1.00it/s]")
    now[0] = 1.2
    echo.write("\rx:  30%|███ | 3/10 [00:03<00:07, 1.00it/s]")
    echo.write("a warning in between\n")  # does not replace the bar
    assert shown == [
        "x:  10%|█ | 1/10 [00:01<00:09, 1.00it/s]",
        "x:  30%|███ | 3/10 [00:03<00:07, 1.00it/s]",
    ]
    assert echo.last == "x:  30%|███ | 3/10 [00:03<00:07, 1.00it/s]"
    echo.flush()
    echo.close()


NOTEBOOK = """# %% tags=["parameters"]
profile = "smoke"
device = "cpu"
seed = 0
figures_dir = None

# %%
import sys

from tqdm import tqdm

for _ in tqdm(range(3), desc="training model (25, 5)", file=sys.stderr, mininterval=0):
    pass
print("done")
"""


def test_runner_echoes_the_kernels_progress_bars(tmp_path, monkeypatch):
    """A run without --log-output hands the kernel's stderr to the echo (default)."""
    seen: list[str] = []
    monkeypatch.delenv("TQDM_DISABLE", raising=False)  # the suite turns bars off in kernels

    class Recording(ProgressEcho):
        def __init__(self):
            super().__init__(show=seen.append, interval=0.0)

    monkeypatch.setattr(runner, "ProgressEcho", Recording)
    source = tmp_path / "98_bars.py"
    source.write_text(NOTEBOOK)
    spec = NotebookSpec(98, "98_bars", "bars", ())
    runner.run_notebook(
        spec,
        source,
        profile="smoke",
        device="cpu",
        figures_dir=tmp_path / "fig",
        write_record=False,
    )
    assert seen and all("training model (25, 5)" in line for line in seen)
    assert "3/3 [" in seen[-1]
    # with --log-output (cells echoed anyway) or without progress, no echo is made
    seen.clear()
    runner.run_notebook(
        spec,
        source,
        profile="smoke",
        device="cpu",
        figures_dir=tmp_path / "fig",
        write_record=False,
        progress_bar=False,
    )
    assert seen == []


def test_module_names_its_public_api():
    assert set(liveprogress.__all__) == {"ProgressEcho", "latest_bar"}
    assert Path(liveprogress.__file__).name == "liveprogress.py"
