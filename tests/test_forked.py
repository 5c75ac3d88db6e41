"""kacnb.cfm.forked: independent work in forked single-thread processes, in order."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from kacnb.cfm import forked
from kacnb.cfm.forked import cpu_workers, fork_available, forked_map

needs_fork = pytest.mark.skipif(not fork_available(), reason="forked workers need Linux")


def _where(item: int) -> tuple[int, int, int]:
    return item, os.getpid(), torch.get_num_threads()


def _sigint_ignored(_item: int) -> bool:
    return signal.getsignal(signal.SIGINT) is signal.SIG_IGN


@needs_fork
def test_items_come_back_in_order_from_other_processes_with_their_threads():
    """Every result is the item's own, in the items' order, computed outside this process
    by a worker running the asked number of torch threads."""
    out = forked_map(_where, range(7), workers=2, threads=1)
    assert [item for item, _, _ in out] == list(range(7))
    assert os.getpid() not in {pid for _, pid, _ in out}
    assert {threads for _, _, threads in out} == {1}
    assert len({pid for _, pid, _ in out}) <= 2
    # Ctrl-C is the parent's to handle: a worker killed mid-task would hang the pool
    assert forked_map(_sigint_ignored, range(2), workers=2) == [True, True]


@needs_fork
def test_a_closure_is_inherited_not_pickled():
    """A local function over a tensor (which pickle cannot send) works in the workers and
    sees the parent's data."""
    weights = torch.arange(5.0)

    def dot(i: int) -> float:
        return float(weights[: i + 1].sum())

    assert forked_map(dot, range(5), workers=2) == [0.0, 1.0, 3.0, 6.0, 10.0]


@needs_fork
def test_a_worker_error_is_raised_here():
    def fail(i: int) -> int:
        if i == 3:
            raise ValueError("item 3 is bad")
        return i

    with pytest.raises(ValueError, match="item 3 is bad"):
        forked_map(fail, range(5), workers=2)


def test_one_worker_or_no_fork_runs_in_this_process(monkeypatch):
    assert {pid for _, pid, _ in forked_map(_where, range(3), workers=1)} == {os.getpid()}
    monkeypatch.setattr(forked, "fork_available", lambda: False)
    assert {pid for _, pid, _ in forked_map(_where, range(3), workers=2)} == {os.getpid()}
    assert forked_map(_where, [], workers=2) == []


@pytest.mark.parametrize("workers, threads", [(0, 1), (2, 0)])
def test_bad_counts_are_refused(workers, threads):
    with pytest.raises(ValueError, match="must be >= 1"):
        forked_map(_where, range(3), workers=workers, threads=threads)


def test_cpu_workers_follow_the_threads_and_stay_home_on_cuda(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    monkeypatch.setattr(forked, "fork_available", lambda: True)
    assert cpu_workers("cpu") == 4
    assert cpu_workers("cuda") == 1
    monkeypatch.setattr(forked, "fork_available", lambda: False)
    assert cpu_workers("cpu") == 1
