"""Argument checks and dtype/device promotion shared by the numerics modules.

Every public numerical entry point of kacnb validates its inputs here, so that a bad
argument fails with a ``ValueError`` that names it instead of producing NaNs downstream.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "positive_scalar",
    "positive_int",
    "nonnegative_time",
    "uniform_grid",
    "as_tensors",
    "check_times",
    "check_not_nan",
    "check_size",
    "MAX_BYTES",
]

#: Largest single result a numerics call may allocate (bytes); larger requests are refused
#: before any memory is touched, with the size in the message.
MAX_BYTES = 8 * 1024**3


def positive_scalar(name: str, value: float) -> float:
    """Return ``value`` as a float, or raise ``ValueError`` unless it is finite and > 0."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}") from None
    if not math.isfinite(v) or v <= 0.0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def as_tensors(*values, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, ...]:
    """Convert numbers/tensors to tensors sharing one floating dtype and one device.

    The dtype is the promotion of the tensor inputs (integers become the default float
    dtype) unless ``dtype`` is given; the device is that of the first tensor input, so a
    CUDA ``t`` with a Python-float ``x`` gives CUDA results.
    """
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    device = tensors[0].device if tensors else torch.device("cpu")
    if dtype is None:
        dtype = torch.get_default_dtype()
        if tensors:
            dtype = tensors[0].dtype
            for other in tensors[1:]:
                dtype = torch.promote_types(dtype, other.dtype)
            if not dtype.is_floating_point:
                dtype = torch.get_default_dtype()
    return tuple(torch.as_tensor(v, dtype=dtype, device=device) for v in values)


def check_times(t: torch.Tensor, name: str = "t") -> None:
    """Raise ``ValueError`` naming ``name`` unless every entry of ``t`` is finite and >= 0."""
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    if bool((t < 0).any()):
        raise ValueError(f"{name} must be >= 0, got min {float(t.min())}")


def check_not_nan(x: torch.Tensor, name: str = "x") -> None:
    """Raise ``ValueError`` naming ``name`` if ``x`` holds a NaN."""
    if bool(torch.isnan(x).any()):
        raise ValueError(f"{name} must not contain NaN")


def positive_int(name: str, value) -> int:
    """``value`` unchanged, or ``ValueError`` naming it unless a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def nonnegative_time(t, name: str = "t") -> float:
    """``t`` as a float, or ``ValueError`` naming it unless finite and >= 0."""
    try:
        v = float(t)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number >= 0, got {t!r}") from None
    if not math.isfinite(v) or v < 0.0:
        raise ValueError(f"{name} must be a finite number >= 0, got {t!r}")
    return v


def uniform_grid(x, name: str = "x") -> tuple[torch.Tensor, float]:
    """Check that ``x`` is a 1D, increasing, uniform, finite grid; return it and its step."""
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x, dtype=torch.get_default_dtype())
    if not x.dtype.is_floating_point:
        x = x.to(torch.get_default_dtype())
    if x.ndim != 1 or x.numel() < 3:
        raise ValueError(f"{name} must be a 1D grid with at least 3 points, got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite")
    diffs = torch.diff(x)
    dx = float((x[-1] - x[0]) / (x.numel() - 1))
    if dx <= 0.0:
        raise ValueError(f"{name} must be increasing")
    # Round-off of the grid values themselves sets the tolerance (matters in float32).
    tol = max(1e-6, 64 * torch.finfo(x.dtype).eps * float(x.abs().max()) / dx)
    if float((diffs - dx).abs().max()) > tol * dx:
        raise ValueError(f"{name} must be a uniform grid (equal spacing)")
    return x, dx


def check_size(what: str, elements: int, itemsize: int, limit: int | None = None) -> None:
    """Raise ``ValueError`` before allocating when ``elements * itemsize`` exceeds ``limit``.

    ``limit`` defaults to :data:`MAX_BYTES`; the message gives the size and the limit in GiB.
    """
    limit = MAX_BYTES if limit is None else limit
    size = int(elements) * int(itemsize)
    if size > limit:
        raise ValueError(
            f"{what} would need {size / 1024**3:.3g} GiB ({int(elements):,} numbers of "
            f"{itemsize} bytes), more than the {limit / 1024**3:.3g} GiB allowed: ask for less"
        )
