"""Carrying an unfinished run's checkpoints between sessions: verified, plain data, never back."""

from __future__ import annotations

import argparse

import pytest
import torch
from scripts import load_script


@pytest.fixture()
def carry():
    return load_script("tools/carry_checkpoints.py")


def _ckpt(path, step: int, value: float = 1.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"step": step, "model": {"w": torch.full((3,), value)}}, path)


def test_pack_then_unpack_restores_the_same_bytes(tmp_path, carry):
    src, carried, dest = tmp_path / "ck", tmp_path / "carry" / "run", tmp_path / "fresh"
    _ckpt(src / "u32" / "a.pt", 500)
    _ckpt(src / "b.pt", 1000, 2.0)
    lines = carry.pack(src, carried)
    assert len(lines) == 2 and (carried / "SHA256SUMS").exists()
    done = carry.unpack(carried, dest)
    assert sorted(done) == ["restored b.pt (step 1000)", "restored u32/a.pt (step 500)"]
    for rel in ("u32/a.pt", "b.pt"):
        assert (dest / rel).read_bytes() == (src / rel).read_bytes()


def test_unpack_refuses_an_altered_file_and_copies_nothing(tmp_path, carry):
    src, carried, dest = tmp_path / "ck", tmp_path / "carry", tmp_path / "fresh"
    _ckpt(src / "a.pt", 500)
    _ckpt(src / "b.pt", 600)
    carry.pack(src, carried)
    data = bytearray((carried / "b.pt").read_bytes())
    data[-20] ^= 0xFF
    (carried / "b.pt").write_bytes(bytes(data))
    with pytest.raises(SystemExit, match="b.pt: SHA-256 differs"):
        carry.unpack(carried, dest)
    assert not dest.exists()  # a.pt, which checks out, was not copied either


def test_unpack_refuses_more_than_plain_data(tmp_path, carry):
    src, carried = tmp_path / "ck", tmp_path / "carry"
    src.mkdir()
    torch.save({"step": 1, "obj": argparse.Namespace(a=1)}, src / "a.pt")  # an object
    carry.pack(src, carried)
    with pytest.raises(SystemExit, match="a.pt: refused to load"):
        carry.unpack(carried, tmp_path / "fresh")


def test_unpack_keeps_a_checkpoint_that_is_further_along(tmp_path, carry):
    src, carried, dest = tmp_path / "ck", tmp_path / "carry", tmp_path / "fresh"
    _ckpt(src / "a.pt", 500)
    carry.pack(src, carried)
    _ckpt(dest / "a.pt", 900, 3.0)
    assert carry.unpack(carried, dest) == ["kept a.pt (step 900 > carried 500)"]
    assert float(torch.load(dest / "a.pt", weights_only=True)["model"]["w"][0]) == 3.0
