"""The progress bar of a notebook's long loops (``Runtime.progress``), as the runner shows it."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from kacnb.collection.liveprogress import latest_bar, status_text
from kacnb.collection.runtime import Runtime


def _rt(profile: str) -> Runtime:
    return Runtime(profile=profile, device=torch.device("cpu"), seed=0, generator=torch.Generator())


MODELS = [SimpleNamespace(label=f"kac ({a}, 5)") for a in (4, 25, 100)]


def test_the_bar_names_the_model_being_worked_on(capsys):
    seen = []
    for spec in _rt("quick").progress(MODELS, "generate"):
        # while this model is worked on, the status line names it (not the previous one)
        seen.append(status_text(latest_bar(capsys.readouterr().err) or ""))
        assert seen[-1].startswith(spec.label + " | generate")
    final = status_text(latest_bar(capsys.readouterr().err) or "")
    assert final.startswith("kac (100, 5) | generate 100% 3/3")
    assert "ETA" in seen[1]  # an estimate once one model is done


def test_items_come_back_in_order_and_smoke_prints_nothing(capsys):
    names = [s.label for s in _rt("smoke").progress(MODELS, "generate")]
    assert names == [s.label for s in MODELS]
    assert capsys.readouterr().err == ""
    keys = list(_rt("paper").progress(["a", "b"], "score", name=str.upper))
    assert keys == ["a", "b"]
    assert status_text(latest_bar(capsys.readouterr().err)).startswith("B | score")
