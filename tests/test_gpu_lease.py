"""``tools/gpu_lease.py`` and ``tools/gpu_lease_05.py``: the cost model of notebook 05's GPU
plan (FLOP counts checked against a count by hand), the 64 MiB cap on the files brought back,
which files of a run come back, the gradient check that decides notebook 05's ``gpu_fast``,
the refusals, the three benchmarks run as one command, and end-to-end runs on the CPU at smoke
scale: for 05 a first command stops at its time limit with checkpoints on disk (exit 3, state
"continue"), the same command again finishes the notebook and gathers the executed notebook,
figures, run record and metrics; for 04 one command runs and gathers the notebook."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
from scripts import load_script

REAL = os.environ.get("KACNB_DATA_DIR")


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _lease():
    return load_script("tools/gpu_lease_05.py")


def _tool():
    return load_script("tools/gpu_lease.py")


def test_plan_uses_the_notebooks_paper_settings():
    s = _lease().paper_settings("paper")
    # the paper's U-Net (Section 7) and the iteration count stated in notebook 05 and README
    assert s["unet"] == {"base": 64, "levels": 3, "blocks": 2}
    assert (s["steps"], s["batch"], s["n_samples"], s["euler_dt"]) == (10_000, 128, 2000, 0.01)
    assert s["gpu"] == {"amp": "bf16", "channels_last": True, "compile": True}
    # the authors' MNIST script (commit be1cb4d): Adam 5e-4, EMA 0.97, clipping 5.0
    assert (s["lr"], s["ema"], s["grad_clip"]) == (5e-4, 0.97, 5.0)


def test_plan_costs_the_authors_iterations_and_what_fits_a_lease(capsys):
    lease = _lease()
    out = lease.main(["plan"])
    assert out["authors_steps"]["steps_per_model"] == lease.AUTHORS_STEPS == 500_000
    # eleven models at the assumed rate: training time is linear in the iterations
    paper, authors = out["paper_profile"], out["authors_steps"]
    assert authors["train_s"] == pytest.approx(paper["train_s"] * 50, rel=1e-12)
    assert authors["train_s_per_model"] == pytest.approx(authors["train_s"] / 11)
    assert authors["total_s"] > 10 * 3600 > 15 * 60  # far beyond a 15-minute lease
    fit = out["fits_lease"]
    assert out["lease_s"] == lease.LEASE_S and fit["total_s"] <= lease.LEASE_S
    assert 0 < fit["steps_per_model"] < paper["steps_per_model"] < authors["steps_per_model"]
    more = lease.estimate(out["settings"], fit["steps_per_model"] + 500,
                          out["flops_train_step"], out["flops_forward_per_image"],
                          out["assumed_flops_per_s"], 540.0)  # fmt: skip
    assert more["total_s"] > lease.LEASE_S  # the largest multiple of 500 that fits
    assert "a 15-minute lease fits" in capsys.readouterr().out


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
    lease = _tool()
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


def _record(path, started):
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
    path.write_text(json.dumps({"timestamp_utc": stamp}))


def test_gather_list_brings_back_the_bundle_only_when_this_run_wrote_it(tmp_path):
    tool = _tool()
    root, work = tmp_path / "repo", tmp_path / "work"
    # the notebook leaves its bundle in its figures folder's pretrained/ for publishing
    bundle = [work / "figures" / "pretrained" / Path(rel).name for rel in tool.EXTRA_OUTPUTS["04"]]
    for f in bundle:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("weights")
        os.utime(f, (time.time() - 3600, time.time() - 3600))  # from an earlier command
    (work / "figures").mkdir(parents=True, exist_ok=True)
    for name in ("fig05_gmm_samples.png", "fig05_gmm_samples.pdf", "nb04_a.png", "nb04_b.gif"):
        (work / "figures" / name).write_text("figure")
    record = work / "figures" / "runs" / "04_cfm_gmm_2d.json"
    _record(record, time.time() - 60)
    rels = [rel for _, rel in tool.gather_list("04", work, root)]
    assert rels == [
        "figures/runs/04_cfm_gmm_2d.json",
        "figures/runs/04_cfm_gmm_2d.metrics.json",
        "notebooks/04_cfm_gmm_2d.ipynb",
        "figures/fig05_gmm_samples.png",
        "figures/nb04_a.png",
        "figures/nb04_b.gif",
        "figures/fig05_gmm_samples.pdf",
    ]
    for f in bundle:  # written by this run (after the record's start): it comes back
        os.utime(f)
    rels = [rel for _, rel in tool.gather_list("04", work, root)]
    assert rels[5:7] == list(tool.EXTRA_OUTPUTS["04"]) and len(rels) == 9
    # 05 writes nothing outside its figures
    assert [rel for _, rel in tool.gather_list("05", work, root)][3:] == [
        "figures/fig05_gmm_samples.png",
        "figures/nb04_a.png",
        "figures/nb04_b.gif",
        "figures/fig05_gmm_samples.pdf",
    ]


@pytest.mark.parametrize(
    "err, ok", [(0.01, True), (0.36, False), (None, None)], ids=["bf16", "miscompiled", "none"]
)
def test_gradient_check_reads_the_bench_summary(tmp_path, err, ok):
    tool = _tool()
    bench, work, out = tmp_path / "bench", tmp_path / "work", tmp_path / "out"
    for d in (bench, work, out):
        d.mkdir()
    if err is None:  # a summary without the optimised row and no device: the short run is
        # attempted, fails without CUDA, and the optimised step is not used
        (bench / "bench_train_mnist.json").write_text(json.dumps({"speedup": None}))
        ok = False
    else:
        (bench / "bench_train_mnist.json").write_text(json.dumps({"optimised_grad_rel_err": err}))
    env = tool.child_env("abc1234")
    summary = tool.gradient_check(sys.executable, env, work, bench, out)
    assert summary["optimised_ok"] is ok
    assert json.loads((out / "bench_train_mnist.json").read_text())["optimised_ok"] is ok


def test_bench_runs_the_three_benchmarks_and_brings_back_their_summaries(tmp_path):
    tool = _tool()
    out, work = tmp_path / "out", tmp_path / "work"
    small = [
        "--args", "bench_sampler=--n 20000 --dims 1 --n-times 100 --n-levels 64 --repeats 1",
        "--args", "bench_train_2d=--steps 3 --rounds 1 --warmup 1",
        "--args", "bench_train_mnist=--base 8 --levels 1 --blocks 1 --batch 4 --steps 1 "
        "--warmup 1 --variants 'bf16 + channels_last'",
    ]  # fmt: skip
    status = tool.main(["bench", "--device", "cpu", "--out", str(out), "--work", str(work),
                        "--commit", "abc1234", *small])  # fmt: skip
    assert status["commit"] == "abc1234"
    assert list(status["benchmarks"]) == list(tool.BENCHMARKS)
    for name, result in status["benchmarks"].items():
        assert result["state"] == "done", (name, (out / f"{name}.log").read_text()[-2000:])
        summary = json.loads((out / f"{name}.json").read_text())
        assert summary == json.loads((work / f"{name}.json").read_text())
        assert (out / f"{name}.log").read_text().strip().endswith(json.dumps(summary))
    assert json.loads((out / "bench_train_2d.json").read_text())["device"] == "cpu"
    sampler = json.loads((out / "bench_sampler.json").read_text())
    assert {r["sampler"] for r in sampler["rows"]} == {"exact", "table", "walk"}
    mnist = json.loads((out / "bench_train_mnist.json").read_text())
    assert [r["variant"] for r in mnist["rows"]] == ["fp32 eager", "bf16 + channels_last"]
    assert json.loads((out / "bench_status.json").read_text()) == status
    # a budget that leaves nothing runs nothing
    none = tool.main(["bench", "--device", "cpu", "--out", str(tmp_path / "o2"), "--work",
                      str(work), "--budget", "5", "--finish-reserve", "10"])  # fmt: skip
    assert {r["state"] for r in none["benchmarks"].values()} == {"no time"}


def test_bench_reads_the_summary_from_stdout_when_warnings_follow_on_stderr(tmp_path, monkeypatch):
    # on a GPU, compile and CUDA warnings reach stderr after the summary was printed
    tool = _tool()
    fake = tmp_path / "repo" / "benchmarks" / "bench_sampler.py"
    fake.parent.mkdir(parents=True)
    fake.write_text(
        "import json, sys\n"
        "print('| table |')\n"
        "print(json.dumps({'benchmark': 'bench_sampler', 'args': sys.argv[1:]}))\n"
        "sys.stdout.flush()\n"
        "print('UserWarning: something', file=sys.stderr)\n"
    )
    monkeypatch.setattr(tool, "ROOT", tmp_path / "repo")
    out = tmp_path / "out"
    status = tool.main(["bench", "--device", "cpu", "--only", "bench_sampler", "--out",
                        str(out), "--work", str(tmp_path / "work")])  # fmt: skip
    assert status["benchmarks"]["bench_sampler"]["state"] == "done"
    summary = json.loads((out / "bench_sampler.json").read_text())
    assert summary == {"benchmark": "bench_sampler", "args": ["--devices", "cpu"]}
    log = (out / "bench_sampler.log").read_text()
    assert log.index("| table |") < log.index("--- stderr ---") < log.index("UserWarning")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "04", "--train-steps", "10"], "--train-steps applies to notebook 05 only"),
        (["run", "04", "--checkpoints", "x"], "--checkpoints applies to notebook 05 only"),
        (["bench", "--args", "bench_magic=--x 1"], "--args takes NAME=ARGUMENTS"),
        (["run", "04", "--budget", "0"], "--budget and --max-mib must be > 0"),
    ],
)
def test_refusals_say_why_without_a_traceback(tmp_path, argv, message):
    argv = [*argv, "--out", str(tmp_path / "out"), "--device", "cpu"]
    with pytest.raises(SystemExit) as exc:
        _tool().main(argv)
    assert message in str(exc.value)


@pytest.mark.skipif(_cuda_available(), reason="this machine has CUDA")
def test_cuda_is_refused_where_there_is_none(tmp_path):
    with pytest.raises(SystemExit, match="sees no CUDA device"):
        _tool().main(["run", "04", "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match="sees no CUDA device"):
        _lease().main(["run", "--out", str(tmp_path / "out")])


def test_run_04_runs_the_notebook_and_gathers_it(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    status = _tool().main(["run", "04", "--profile", "smoke", "--device", "cpu", "--work",
                           str(work), "--out", str(out), "--commit", "abc1234"])  # fmt: skip
    assert status["state"] == "done", (out / "kacnb_run.log").read_text()[-3000:]
    assert status["notebook"] == "04_cfm_gmm_2d" and status["commit"] == "abc1234"
    for rel in ("notebooks/04_cfm_gmm_2d.ipynb", "figures/runs/04_cfm_gmm_2d.json",
                "figures/runs/04_cfm_gmm_2d.metrics.json", "figures/fig05_gmm_samples.png",
                "figures/fig05_gmm_samples.pdf", "figures/nb04_backward_evolution.gif",
                "kacnb_run.log"):  # fmt: skip
        assert (out / rel).is_file(), rel
    # smoke writes no weights bundle, and the committed one is not passed off as this run's
    assert not (out / "pretrained").exists()
    record = json.loads((out / "figures" / "runs" / "04_cfm_gmm_2d.json").read_text())
    assert record["profile"] == "smoke" and record["device"] == "cpu"
    # what comes back is laid out as `kacnb drift` reads a fresh run: compared with the
    # committed paper-profile run, the smoke run's metrics differ (drift, exit 1)
    from kacnb.collection import cli

    report = tmp_path / "drift"
    assert cli.main(["drift", str(out), "--output", str(report)]) == 1
    summary = json.loads((report / "summary.json").read_text())
    assert summary["drift"] is True and summary["compared"]["metrics"] > 0
    assert summary["compared"]["figures"] >= 1


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
    # ten models, the five T = 5 models again with T = 1's steps, the baseline, and the
    # best T = 1 model's fresh samples at the larger size
    assert len(list((work / "ckpt").glob("samples-*.pt"))) == 17
