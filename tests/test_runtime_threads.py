"""Thread policy of kacnb.collection.runtime: KACNB_THREADS overrides, smoke defaults to one
thread."""

from __future__ import annotations

import pytest
import torch

from kacnb.collection import runtime


def test_thread_count_policy(monkeypatch):
    monkeypatch.delenv("KACNB_THREADS", raising=False)
    assert runtime.thread_count("smoke") == 1
    assert runtime.thread_count("quick") is None and runtime.thread_count("paper") is None
    monkeypatch.setenv("KACNB_THREADS", "2")
    assert [runtime.thread_count(p) for p in runtime.PROFILES] == [2, 2, 2, 2]
    for bad in ("0", "two", "-1", "1.5"):
        monkeypatch.setenv("KACNB_THREADS", bad)
        with pytest.raises(ValueError, match="KACNB_THREADS must be a positive integer"):
            runtime.thread_count("smoke")


def test_setup_applies_the_thread_count(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("KACNB_THREADS", "2")
        runtime.setup("smoke", "cpu", 0)
        assert torch.get_num_threads() == 2
        monkeypatch.delenv("KACNB_THREADS")
        runtime.setup("smoke", "cpu", 0)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
