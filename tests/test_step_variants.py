"""Choosing the training-step variant: fastest among those whose one-step gradient matches fp32
eager (`kacnb.cfm.step_variants`). The choice logic runs on scripted measurements (no timed unit
tests); the gradient check runs for real on a tiny U-Net."""

from __future__ import annotations

import pytest
import torch

from kacnb.cfm import step_variants as sv

TINY = {"base": 8, "levels": 2, "blocks": 1}


def _scripted(monkeypatch, speeds: dict, errors: dict, fail=()):
    """Replace the measurements: ``speeds`` images/s and ``errors`` gradient errors per
    variant; variants in ``fail`` raise as a missing compiler would."""

    def ips(variant, unet, batch, device, steps, warmup):
        if variant in fail:
            raise RuntimeError("no C++ compiler\nmore lines")
        return {"variant": variant, "images_per_s": speeds[variant], "warmup_s": 0.0,
                "host_syncs_in_loop": None, "last_loss": 1.0}  # fmt: skip

    def grad(variant, unet, batch, device):
        return {"loss_rel_err": 0.0, "grad_rel_err": errors[variant]}

    monkeypatch.setattr(sv, "images_per_second", ips)
    monkeypatch.setattr(sv, "gradient_error", grad)


def test_settings_of_maps_variants_to_training_settings():
    assert sv.settings_of("fp32 eager") == {"amp": None, "channels_last": False, "compile": False}
    assert sv.settings_of("bf16 + channels_last") == {
        "amp": "bf16",
        "channels_last": True,
        "compile": False,
    }
    assert sv.settings_of("bf16 + channels_last + compile (CUDA graphs)")["compile"] == (
        "reduce-overhead"
    )
    with pytest.raises(ValueError, match="unknown step variant"):
        sv.settings_of("fp8 magic")


def test_choose_takes_the_fastest_correct_variant(monkeypatch):
    speeds = {"fp32 eager": 100.0, "bf16 + channels_last": 130.0, "fp32 + compile": 120.0,
              "bf16 + channels_last + compile": 160.0}  # fmt: skip
    # the compiled bf16 step is fastest but wrong (as inductor's CPU backend has been)
    errors = {"bf16 + channels_last": 1e-2, "fp32 + compile": 1e-6,
              "bf16 + channels_last + compile": 0.36}  # fmt: skip
    _scripted(monkeypatch, speeds, errors)
    choice = sv.choose(TINY, 8, candidates=list(speeds))
    assert choice.name == "bf16 + channels_last"
    assert choice.speedup == pytest.approx(1.3)
    assert choice.settings == sv.settings_of("bf16 + channels_last")
    usable = {r["variant"]: r["usable"] for r in choice.rows}
    assert usable == {"fp32 eager": True, "bf16 + channels_last": True, "fp32 + compile": True,
                      "bf16 + channels_last + compile": False}  # fmt: skip
    assert choice.to_json()["variant"] == "bf16 + channels_last"


def test_choose_keeps_fp32_when_nothing_is_faster_and_correct(monkeypatch):
    # a CPU without bf16 instructions: bf16 ten times slower; compile fails to build
    speeds = {"fp32 eager": 100.0, "bf16 + channels_last": 10.0, "fp32 + compile": 103.0}
    errors = {"bf16 + channels_last": 1e-2, "fp32 + compile": 1e-6}
    _scripted(monkeypatch, speeds, errors, fail=("fp32 + compile",))
    choice = sv.choose(TINY, 8, candidates=list(speeds))
    assert choice.name == "fp32 eager" and choice.speedup == 1.0
    failed = next(r for r in choice.rows if r["variant"] == "fp32 + compile")
    assert failed["error"] == "RuntimeError: no C++ compiler" and not failed["usable"]
    # 3 % faster is within timing noise: not worth a change of variant
    _scripted(monkeypatch, speeds, errors)
    assert sv.choose(TINY, 8, candidates=list(speeds)).name == "fp32 eager"
    assert sv.choose(TINY, 8, candidates=list(speeds), min_speedup=1.0).name == "fp32 + compile"


def test_choose_refuses_unknown_candidates_before_measuring(monkeypatch):
    _scripted(monkeypatch, {}, {})
    with pytest.raises(ValueError, match="unknown step variant"):
        sv.choose(TINY, 8, candidates=["fp8 magic"])


def test_gradient_error_is_zero_for_the_reference_and_bf16_sized_for_bf16():
    assert sv.gradient_error("fp32 eager", TINY, 4)["grad_rel_err"] == 0.0
    err = sv.gradient_error("bf16 + channels_last", TINY, 4)
    assert 1e-5 < err["grad_rel_err"] < sv.GRADIENT_TOLERANCE
    assert err["loss_rel_err"] < 1e-2


def test_images_per_second_reports_a_finite_run():
    row = sv.images_per_second("fp32 eager", TINY, 4, "cpu", steps=2, warmup=1)
    assert row["variant"] == "fp32 eager" and row["images_per_s"] > 0
    assert row["host_syncs_in_loop"] is None and torch.isfinite(torch.tensor(row["last_loss"]))
