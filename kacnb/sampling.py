"""Generation: integrate a learned velocity field backwards in time (paper Sections 6-7).

One thin wrapper around ``torchdiffeq.odeint`` on a decreasing time grid from ``T`` to
``t_min`` (0 for Kac paths, the truncation ``eps`` for diffusion), counting function
evaluations (NFE), optionally returning the trajectory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torchdiffeq import odeint

__all__ = ["SampleResult", "integrate"]

FIXED_STEP = {"euler", "midpoint", "rk4", "explicit_adams", "implicit_adams"}


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
) -> SampleResult:
    """Solve ``dx/dt = velocity(t, x)`` from ``t_start`` down to ``t_end``.

    ``velocity`` takes per-row times ``t`` of shape (B,) and ``x`` of shape (B, ...), as a
    flow-matching model does. Adaptive methods (``dopri5``...) use ``rtol``/``atol``;
    fixed-step methods (``euler``...) take ``steps`` equal steps. ``n_saved`` equally spaced
    times (``t_start`` and ``t_end`` included) are kept when ``return_trajectory``.
    """
    if not t_start > t_end:
        raise ValueError(f"t_start must be > t_end, got {t_start} and {t_end}")
    if method in FIXED_STEP and (steps is None or steps < 1):
        raise ValueError(f"steps must be a positive integer for the fixed-step method {method}")
    if n_saved < 2:
        raise ValueError(f"n_saved must be >= 2, got {n_saved}")
    nfe = 0
    batch = x_start.shape[0]

    def field(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        nonlocal nfe
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
        traj = odeint(field, x_start, times, method=method, options=options, **kwargs)
    return SampleResult(
        x=traj[-1], nfe=nfe, times=times, trajectory=traj if return_trajectory else None
    )
