"""The runner shows a notebook's own progress bars live (kacnb.collection.liveprogress)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kacnb.collection import liveprogress, runner
from kacnb.collection.liveprogress import ProgressEcho, latest_bar, status_text
from kacnb.collection.registry import NotebookSpec

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
    assert shown == ["x 10% 1/10, 1.00it/s, ETA 00:09", "x 30% 3/10, 1.00it/s, ETA 00:07"]
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
    assert seen and all(line.startswith("training model (25, 5) ") for line in seen)
    assert seen[-1].startswith("training model (25, 5) 100% 3/3, ")
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


@pytest.mark.parametrize(
    "line, expected",
    [
        # the training bar: the postfix of the last validation first, then the count
        (
            "5 models:   3%|▎   | 56488/2500000 [02:39<1:45:09, 308.05it/s, "
            "model=Kac (25, 5), step=11297, loss=0.4123, val=6.981e+06]",
            "Kac (25, 5) step 11297, loss 0.4123, val NLL 6.981e+06 | "
            "5 models 3% 56488/2500000, 308.05it/s, ETA 1:45:09",
        ),
        # before the first validation: no postfix
        (
            "5 models:   0%|   | 12/2500000 [00:01<52:00:00, 9.1it/s]",
            "5 models 0% 12/2500000, 9.1it/s, ETA 52:00:00",
        ),
        # a sampling bar without a total, an unknown rate, a bar without a description
        ("sampling: 5000it [00:10, 480.1it/s]", "sampling 5000it, 480.1it/s"),
        ("x:  20%|██ | 2/10 [00:02<?, ?it/s]", "x 20% 2/10, ?it/s, ETA ?"),
        ("20%|██ | 2/10 [00:02<00:08, 1.00it/s, n=3]", "n 3 | 20% 2/10, 1.00it/s, ETA 00:08"),
        # not tqdm's format: shown as it is
        ("step 5 [00:01 of something", "step 5 [00:01 of something"),
    ],
)
def test_status_text_puts_model_step_loss_and_validation_first(line, expected):
    assert status_text(line) == expected


def test_the_training_bar_names_model_step_loss_and_validation_nll(capsys, monkeypatch):
    """What ``kacnb.cfm.train`` writes is what the status line reads (real tqdm output)."""
    import torch

    from kacnb.cfm.config import TrainConfig
    from kacnb.cfm.models import MLP
    from kacnb.cfm.paths import KacPath
    from kacnb.cfm.train import train
    from kacnb.theory.kac import Kac

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    torch.manual_seed(0)
    config = TrainConfig(steps=4, batch_size=8, eval_every=2, desc="Kac (4, 2)", progress=True)
    train(
        MLP(dim=2, width=8, depth=1),
        KacPath(Kac(4.0, 2.0)),
        lambda n, gen: torch.zeros(n, 2),
        config,
        validate=lambda model, gen: 6.5,
    )
    shown = status_text(latest_bar(capsys.readouterr().err))
    assert shown.startswith("Kac (4, 2) step 4, loss ")
    assert ", val NLL 6.5 | Kac (4, 2) 100% 4/4, " in shown


def test_module_names_its_public_api():
    assert set(liveprogress.__all__) == {"ProgressEcho", "latest_bar", "status_text"}
    assert Path(liveprogress.__file__).name == "liveprogress.py"
