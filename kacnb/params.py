"""Checks for the reader-facing settings in a notebook's parameters cell.

A notebook's parameters cell holds plain literals that a reader may change, by editing the
cell or from the command line (``kacnb run 03 -p "pairs=[(4, 2)]"``, or papermill's ``-p``).
Settings whose size the profile decides (sample counts) default to ``None``, meaning "the
profile's value". Each function below returns the checked value, or the default for
``None``, and raises :class:`ParameterError` with the parameter's name, what it must be, an
example and what it got, so a mistake stops the notebook in its first cell instead of deep
inside a computation.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Sequence

__all__ = ["ParameterError", "pairs", "count", "positive", "times", "flag"]


class ParameterError(ValueError):
    """A notebook parameter has a value the notebook cannot use."""


def _number(value) -> float | None:
    """``value`` as a float if it is a real number (not a bool or a string), else None."""
    if isinstance(value, (bool, str, bytes)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _fail(name: str, must: str, example: str, value) -> ParameterError:
    return ParameterError(f"parameter {name} must be {must}, e.g. {name}={example}; got {value!r}")


def pairs(name: str, value, *, max_len: int = 8) -> list[tuple[float, float]]:
    """A non-empty list of ``(a, c)`` pairs, each a switching rate ``a > 0`` (1/time) and a
    speed ``c > 0`` (length/time), finite; at most ``max_len`` pairs, no duplicates.

    A single pair ``(a, c)`` is accepted as a list of one.
    """
    must = f"a list of 1 to {max_len} distinct (a, c) pairs of finite numbers > 0"
    example = "[(1, 1), (25, 5)]"
    items = value
    if isinstance(value, tuple) and len(value) == 2 and all(_number(v) is not None for v in value):
        items = [value]
    if not isinstance(items, (list, tuple)) or not 1 <= len(items) <= max_len:
        raise _fail(name, must, example, value)
    out = []
    for item in items:
        if isinstance(item, str):
            # papermill writes a tuple inside an injected list as its text, e.g. '(4, 2)'
            try:
                item = ast.literal_eval(item)
            except (ValueError, SyntaxError):
                raise _fail(name, must, example, value) from None
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise _fail(name, must, example, value)
        a, c = (_number(v) for v in item)
        if a is None or c is None or not (math.isfinite(a) and math.isfinite(c)):
            raise _fail(name, must, example, value)
        if a <= 0 or c <= 0:
            raise _fail(name, must, example, value)
        out.append((a, c))
    if len(set(out)) != len(out):
        raise _fail(name, must, example, value)
    return out


def count(name: str, value, default: int, *, minimum: int = 1, maximum: int = 10**8) -> int:
    """An integer in ``[minimum, maximum]`` (a sample or grid count); ``None`` -> ``default``."""
    if value is None:
        return int(default)
    must = f"an integer from {minimum:,} to {maximum:,} (None: the profile's {default:,})"
    if isinstance(value, bool) or not isinstance(value, int):
        number = _number(value)
        if number is None or not number.is_integer():
            raise _fail(name, must, str(default), value)
        value = int(number)
    if not minimum <= value <= maximum:
        raise _fail(name, must, str(default), value)
    return int(value)


def positive(name: str, value, default: float | None = None, *, maximum: float = 1e6) -> float:
    """A finite number in ``(0, maximum]`` (a horizon, a time); ``None`` -> ``default``."""
    if value is None and default is not None:
        return float(default)
    number = _number(value)
    example = f"{default:g}" if default is not None else "1.0"
    if number is None or not math.isfinite(number) or not 0 < number <= maximum:
        raise _fail(name, f"a number > 0 and <= {maximum:g}", example, value)
    return number


def times(
    name: str, value, *, maximum: float = 1e6, allow_zero: bool = True, max_len: int = 12
) -> list[float]:
    """A non-empty increasing list of at most ``max_len`` finite times in ``[0, maximum]``
    (``(0, maximum]`` when ``allow_zero`` is False)."""
    low = "0 <=" if allow_zero else "0 <"
    must = f"an increasing list of 1 to {max_len} times with {low} t <= {maximum:g}"
    example = "[0.0, 0.1, 1.0]" if allow_zero else "[0.1, 1.0]"
    if not isinstance(value, Sequence) or isinstance(value, str) or not 1 <= len(value) <= max_len:
        raise _fail(name, must, example, value)
    out = [_number(v) for v in value]
    ok = all(
        t is not None and math.isfinite(t) and (t >= 0 if allow_zero else t > 0) and t <= maximum
        for t in out
    )
    if not ok or any(s >= t for s, t in zip(out, out[1:], strict=False)):
        raise _fail(name, must, example, value)
    return out


def flag(name: str, value) -> bool:
    """``True`` or ``False`` (nothing else, so that a typo such as ``"no"`` is not truthy)."""
    if not isinstance(value, bool):
        raise _fail(name, "True or False", "True", value)
    return value
