"""Generation: integrate a learned velocity field backwards in time (paper Sections 6-7).

One thin wrapper around ``torchdiffeq.odeint`` on a decreasing time grid from ``T`` to
``t_min`` (0 for Kac paths, the truncation ``eps`` for diffusion), counting function
evaluations (NFE), optionally returning the trajectory.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torchdiffeq import odeint

__all__ = ["SampleResult", "SolverFailed", "integrate", "MAX_NFE"]

FIXED_STEP = {"euler", "midpoint", "rk4", "explicit_adams", "implicit_adams"}

#: Default cap on the field evaluations of an adaptive solve. The notebooks' dopri5 solves
#: take a few hundred (notebook 04) to some thousands (the exact fields near ``t = 0``); a
#: stiff or non-finite field would otherwise shrink the step without bound.
MAX_NFE = 100_000


class SolverFailed(ValueError, AssertionError):
    """An adaptive solve could not finish: the step size underflowed (a non-finite or too
    stiff field for ``rtol``/``atol``) or it needed more than ``max_nfe`` evaluations.

    Also an ``AssertionError``, the type torchdiffeq raises for a collapsed step, so callers
    that catch that keep working."""


@dataclass(frozen=True)
class SampleResult:
    """``x``: the end point (B, ...); ``times`` (S,) and ``trajectory`` (S, B, ...) when asked."""

    x: torch.Tensor
    nfe: int
    times: torch.Tensor
    trajectory: torch.Tensor | None


def integrate(
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x_start: torch.Tensor,
    t_start: float,
    t_end: float = 0.0,
    method: str = "dopri5",
    steps: int | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    n_saved: int = 2,
    return_trajectory: bool = False,
    max_nfe: int = MAX_NFE,
) -> SampleResult:
    """Solve ``dx/dt = velocity(t, x)`` from ``t_start`` down to ``t_end``.

    ``velocity`` takes per-row times ``t`` of shape (B,) and ``x`` of shape (B, ...), as a
    flow-matching model does; ``x_start`` is a finite, non-empty batch. Adaptive methods
    (``dopri5``...) use ``rtol``/``atol`` (finite, >= 0, not both 0) and stop with
    :class:`SolverFailed` when the step size underflows (a non-finite or too stiff field) or
    after ``max_nfe`` field evaluations (default :data:`MAX_NFE`); fixed-step methods
    (``euler``...) take ``steps`` equal steps. ``n_saved`` equally spaced times
    (``t_start`` and ``t_end`` included) are kept when ``return_trajectory``.
    """
    if not (math.isfinite(t_start) and math.isfinite(t_end) and t_start > t_end):
        raise ValueError(f"t_start must be > t_end, both finite, got {t_start} and {t_end}")
    if method in FIXED_STEP and not _positive_int(steps):
        raise ValueError(f"steps must be a positive integer for the fixed-step method {method}")
    if not _positive_int(n_saved) or n_saved < 2:
        raise ValueError(f"n_saved must be an integer >= 2, got {n_saved}")
    if not _positive_int(max_nfe):
        raise ValueError(f"max_nfe must be a positive integer, got {max_nfe!r}")
    if method not in FIXED_STEP:
        for name, tol in (("rtol", rtol), ("atol", atol)):
            if not (math.isfinite(tol) and tol >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {tol!r}")
        if rtol == 0 and atol == 0:
            raise ValueError("rtol and atol must not both be 0 (no step could meet them)")
    if not isinstance(x_start, torch.Tensor) or x_start.ndim < 1 or x_start.shape[0] == 0:
        shape = tuple(x_start.shape) if isinstance(x_start, torch.Tensor) else x_start
        raise ValueError(f"x_start must be a non-empty batch (B, ...), got {shape!r}")
    if not bool(torch.isfinite(x_start).all()):
        raise ValueError("x_start must be finite (no NaN or inf)")
    nfe = 0
    batch = x_start.shape[0]
    adaptive = method not in FIXED_STEP

    def field(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        nonlocal nfe
        if adaptive and nfe >= max_nfe:
            raise SolverFailed(
                f"{method} needed more than max_nfe={max_nfe:,} field evaluations between "
                f"t={t_start:g} and t={t_end:g} (reached t={float(t):.6g}): the field is too "
                f"stiff for rtol={rtol:g}, atol={atol:g}; loosen them, raise max_nfe or use "
                "a fixed-step method"
            )
        nfe += 1
        return velocity(t.expand(batch), x)

    times = torch.linspace(
        t_start,
        t_end,
        n_saved if return_trajectory else 2,
        device=x_start.device,
        dtype=x_start.dtype,
    )
    options = {}
    if method in FIXED_STEP:
        options["step_size"] = (t_start - t_end) / steps
    kwargs = {"rtol": rtol, "atol": atol} if method not in FIXED_STEP else {}
    with torch.no_grad():
        try:
            traj = odeint(field, x_start, times, method=method, options=options, **kwargs)
        except SolverFailed:
            raise
        except AssertionError as exc:  # torchdiffeq: "underflow in dt ..."
            if "underflow in dt" not in str(exc):
                raise
            raise SolverFailed(
                f"{method}: the step size underflowed after {nfe:,} field evaluations "
                f"between t={t_start:g} and t={t_end:g}: the velocity field returned "
                f"non-finite values or is too stiff for rtol={rtol:g}, atol={atol:g}"
            ) from None
    return SampleResult(
        x=traj[-1], nfe=nfe, times=times, trajectory=traj if return_trajectory else None
    )


def _positive_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1
