"""Argument checks and dtype/device promotion shared by the numerics modules.

Every public numerical entry point of kacnb validates its inputs here, so that a bad
argument fails with a ``ValueError`` that names it instead of producing NaNs downstream.
"""

from __future__ import annotations

import math

import torch

__all__ = ["positive_scalar", "as_tensors", "check_times", "check_not_nan"]


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
