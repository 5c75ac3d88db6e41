"""Spread independent CPU work over forked single-thread processes (speed only).

Sampling a batch of images in chunks is embarrassingly parallel: every chunk starts from its
own, already drawn latents and the network treats each image alone. Where torch's threads
split the U-Net's small convolutions (64 images of 28 x 28) poorly, one process per core
with one torch thread each does better than one process with all cores as threads; where
they split well, the two are about even (``benchmarks/bench_sample_mnist.py`` measures
both). :func:`forked_map` applies a function to items in such processes, in order;
:func:`cpu_workers` says how many to use.

Forking copies the parent's memory, so the function (a closure over a model, say) is never
pickled; only the items and the results are. Fork is used only where it is safe with torch:
on Linux, for CPU work. Elsewhere (macOS, Windows, CUDA) everything runs in this process.
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import torch

__all__ = ["fork_available", "cpu_workers", "forked_map"]

T = TypeVar("T")
R = TypeVar("R")

#: The function a forked worker applies; set in each worker by :func:`_start_worker`.
_WORKER_FN: Callable[[Any], Any] | None = None


def fork_available() -> bool:
    """Whether :func:`forked_map` may fork: Linux with the ``fork`` start method (macOS
    forks unsafely with system frameworks loaded, Windows cannot fork)."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def cpu_workers(device: torch.device | str) -> int:
    """Processes for independent work on ``device``: torch's CPU thread count on a CPU where
    forking is safe (each worker then runs one thread; :func:`forked_map` starts no more than
    it has items); 1 on a CUDA device, where the work stays in this process."""
    if torch.device(device).type != "cpu" or not fork_available():
        return 1
    return max(1, torch.get_num_threads())


def _start_worker(fn: Callable[[Any], Any], threads: int) -> None:
    global _WORKER_FN
    _WORKER_FN = fn
    torch.set_num_threads(threads)
    # Ctrl-C reaches the whole process group; only the parent handles it (and stops the
    # pool): a worker that died of it mid-task would leave the parent waiting for ever
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _call(item: Any) -> Any:
    assert _WORKER_FN is not None, "forked worker started without a function"
    return _WORKER_FN(item)


def forked_map(
    fn: Callable[[T], R], items: Iterable[T], workers: int = 1, threads: int = 1
) -> list[R]:
    """``[fn(item) for item in items]``, the items shared out over ``workers`` forked
    processes that run ``threads`` torch threads each.

    With ``workers <= 1``, a single item, or where :func:`fork_available` is false, it runs
    in this process unchanged. ``fn`` is inherited by the fork, not pickled; the items and
    results travel by pickle. An exception in a worker is raised here; on return or error
    (Ctrl-C included) the workers are stopped, so none outlive the call.
    """
    items = list(items)
    if workers < 1 or threads < 1:
        raise ValueError(f"workers and threads must be >= 1, got {workers} and {threads}")
    if workers == 1 or len(items) < 2 or not fork_available():
        return [fn(item) for item in items]
    context = multiprocessing.get_context("fork")
    with context.Pool(min(workers, len(items)), _start_worker, (fn, threads)) as pool:
        # one item per task: the pieces are few and of equal size, so no batching is needed
        return pool.map(_call, items, chunksize=1)
