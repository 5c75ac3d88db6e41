"""``tools/gpu_lease_05.py``: the cost model of the GPU plan (FLOP counts checked against a
count by hand), the 64 MiB cap on the files brought back, and one end-to-end run of the plan
on the CPU at smoke scale: a first command stops at its time limit with checkpoints on disk
(exit 3, state "continue"), the same command again finishes the notebook and gathers the
executed notebook, figures, run record and metrics."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REAL = os.environ.get("KACNB_DATA_DIR")


def _lease():
    path = ROOT / "tools" / "gpu_lease_05.py"
    spec = importlib.util.spec_from_file_location("gpu_lease_05", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gpu_lease_05", module)
    spec.loader.exec_module(module)
    return module


def test_plan_uses_the_notebooks_paper_settings():
    s = _lease().paper_settings("paper")
    # the paper's U-Net (Section 7) and the iteration count stated in notebook 05 and README
    assert s["unet"] == {"base": 64, "levels": 3, "blocks": 2}
    assert (s["steps"], s["batch"], s["n_samples"], s["euler_dt"]) == (10_000, 128, 2000, 0.01)
    assert s["gpu"] == {"amp": "bf16", "channels_last": True, "compile": True}


def test_flop_count_matches_a_count_by_hand():
    # UNet(base=8, levels=1, blocks=1), one 28x28 image: 3x3 convolutions cost
    # 2 * 9 * c_in * c_out * 784 FLOPs, a 1x1 one 2 * c_in * c_out * 784, a linear layer
    # 2 * n_in * n_out (t_dim = 4 * base = 32).
    px = 28 * 28
    conv3 = lambda ci, co: 2 * 9 * ci * co * px  # noqa: E731
    time_mlp = 2 * 8 * 32 + 2 * 32 * 32
    block = lambda ci, co: conv3(ci, co) + 2 * 32 * co + conv3(co, co)  # noqa: E731
    expected = (
        time_mlp
        + conv3(1, 8)  # stem
        + block(8, 8)  # down
        + block(8, 8)  # mid
        + block(16, 8)  # up, with the skip concatenated
        + 2 * 16 * 8 * px  # its 1x1 skip convolution
        + conv3(8, 1)  # output
    )
    step, forward = _lease().count_flops(8, 1, 1, batch=4)
    assert forward == expected
    # backward = gradients of inputs and of weights, twice the forward (the image's own
    # gradient is not needed, so slightly less)
    assert 2.9 * 4 * forward < step <= 3 * 4 * forward


def test_estimate_adds_commands_when_one_is_not_enough():
    lease = _lease()
    s = lease.paper_settings("paper")
    assert lease.euler_evaluations(0.01) == 5 * 100 + 5 * 500 + 5 * 100 + 100
    short = lease.estimate(s, 500, 1e12, 2.5e9, 1e14, command_limit=540)
    long = lease.estimate(s, 20_000, 1e12, 2.5e9, 1e14, command_limit=540)
    assert short["train_s"] == pytest.approx(11 * 500 * 1e12 / 1e14)
    assert long["commands"] > short["commands"]
    assert long["total_s"] <= long["commands"] * 540


def test_gather_keeps_under_the_cap_in_order(tmp_path):
    lease = _lease()
    items = []
    for name, size in (("a.json", 10), ("b.ipynb", 60), ("c.png", 50), ("d.png", 20)):
        path = tmp_path / "src" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x" * size)
        items.append((path, f"sub/{name}"))
    items.append((tmp_path / "src" / "missing.pdf", "sub/missing.pdf"))
    out = tmp_path / "out"
    result = lease.gather(items, out, max_bytes=100)
    assert result == {"copied": ["sub/a.json", "sub/b.ipynb", "sub/d.png"],
                      "left_out": ["sub/c.png"], "bytes": 90}  # fmt: skip
    assert sorted(p.name for p in (out / "sub").iterdir()) == ["a.json", "b.ipynb", "d.png"]


@pytest.mark.skipif(
    not REAL or not Path(REAL, "t10k-images-idx3-ubyte.gz").exists(),
    reason="KACNB_DATA_DIR does not point at the MNIST files (CI sets it)",
)
def test_plan_runs_notebook_05_in_resumable_chunks(tmp_path):
    lease = _lease()
    work = tmp_path / "work"
    common = ["run", "--profile", "smoke", "--device", "cpu", "--work", str(work)]
    common += ["--checkpoints", str(work / "ckpt")]  # smoke keeps none by default
    # 1st command: a time limit of 1 s, shorter than the kernel start, so the first model
    # stops after one step with a checkpoint (the budget only bounds the command itself)
    first = lease.main([*common, "--out", str(tmp_path / "out1"), "--budget", "10000",
                        "--time-limit", "1"])  # fmt: skip
    assert first["state"] == "continue", first
    assert [c["rc"] for c in first["chunks"]] == [3]
    assert list((work / "ckpt").glob("a1_c1_T1-*.pt"))
    assert not (tmp_path / "out1" / "notebooks" / "05_mnist.ipynb").exists()
    assert json.loads((tmp_path / "out1" / "lease_status.json").read_text())["state"] == "continue"
    # 2nd command, the same with time enough: it resumes, finishes and gathers
    out = tmp_path / "out2"
    second = lease.main([*common, "--out", str(out), "--budget", "10000", "--reserve", "60"])
    assert second["state"] == "done", second
    assert [c["rc"] for c in second["chunks"]] == [0]
    for rel in ("notebooks/05_mnist.ipynb", "figures/runs/05_mnist.json",
                "figures/runs/05_mnist.metrics.json", "figures/fig07_mnist_T1.png",
                "figures/fig08_mnist_T5.pdf", "kacnb_run.log"):  # fmt: skip
        assert (out / rel).is_file(), rel
    assert second["left_out"] == []
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert total <= 64 * 2**20
    record = json.loads((out / "figures" / "runs" / "05_mnist.json").read_text())
    assert record["profile"] == "smoke"
    log = (out / "kacnb_run.log").read_text()
    assert "stopped at the time limit" in log
    # samples were kept beside the checkpoints (a third command would only score)
    # ten models, the five T = 5 models again with T = 1's steps, and the baseline
    assert len(list((work / "ckpt").glob("samples-*.pt"))) == 16
