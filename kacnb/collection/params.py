"""Checks for the reader-facing settings in a notebook's parameters cell.

A notebook's parameters cell holds plain literals that a reader may change, by editing the
cell or from the command line (``kacnb run 03 -p "pairs=[(4, 2)]"``, or papermill's ``-p``).
Settings whose size the profile decides (sample counts) default to ``None``, meaning "the
profile's value". Each function below returns the checked value, or the default for
``None``, and raises :class:`ParameterError` with the parameter's name, what it must be, an
example and what it got, so a mistake stops the notebook in its first cell instead of deep
inside a computation.

Values given with ``kacnb run -p NAME=VALUE`` are checked before any kernel starts
(:func:`check_value`): the value must be a plain literal (``None``, a boolean, a number, a
string, or a list, tuple or dict of those: what papermill can write into a notebook), and
of the kind of the default in the notebook's parameters cell (:func:`cell_defaults`), so a
boolean setting takes only ``True`` or ``False`` (``-p pretrained=false`` passes the
string ``'false'``, which Python would take as true).

Bounds, chosen from what the numerics handle (each is said in the error message):

* ``(a, c)`` pairs: ``MIN_RATE <= a <= MAX_RATE``, ``MIN_SPEED <= c <= MAX_SPEED``
  (:data:`MAX_RATE`: the random-walk paths of notebooks 02-03 draw about ``a t`` switches
  per path, so their cost grows linearly in ``a``);
* times: at most ``maximum`` (default :data:`MAX_TIME`); horizons and other positive
  numbers: at most ``maximum`` (default :data:`MAX_POSITIVE`, the notebooks pass smaller);
* counts: at most ``maximum`` (default ``10**8``; the notebooks pass smaller ones).
"""

from __future__ import annotations

import ast
import math
from collections.abc import Sequence

__all__ = [
    "ParameterError",
    "pairs",
    "count",
    "positive",
    "times",
    "flag",
    "check_value",
    "check_values",
    "cell_defaults",
    "notebook_defaults",
    "MAX_RATE",
    "MAX_SPEED",
    "MIN_RATE",
    "MIN_SPEED",
    "MAX_TIME",
    "MAX_POSITIVE",
]

#: Largest switching rate ``a`` (1/time) of a pair. The paper's largest is 1600 (notebook
#: 04). The random-walk paths of notebooks 02-03 draw about ``a t`` exponential waiting times
#: per path up to ``t = 10``: the variance check of notebook 02 takes about a minute at the
#: quick profile for ``a = 1000`` on one CPU thread, and ten times that for ``a = 10^4``.
MAX_RATE = 2000.0
#: Largest speed ``c`` (space/time) of a pair (the paper's largest is 30). The data of
#: notebooks 04-05 are of size 1, and float32 training keeps the noise ``c T`` and its
#: square far from overflow.
MAX_SPEED = 1000.0
#: Smallest rate and speed of a pair: below them the Kac law's scales (``1/a``, ``c t``)
#: leave the range the figures and checks are drawn on.
MIN_RATE = 1e-3
MIN_SPEED = 1e-3
#: Default largest time of :func:`times` (the times at which a notebook draws the law): with
#: ``a <= MAX_RATE`` it keeps ``a t`` within a few million, where the law's quadratures and
#: figure grids still resolve it.
MAX_TIME = 1000.0
#: Default largest value of :func:`positive`; the notebooks pass their own, smaller, bound
#: for each horizon (``t_paths <= 1000``, ``explore_t <= 2``).
MAX_POSITIVE = 1e6


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


def pairs(
    name: str,
    value,
    *,
    max_len: int = 8,
    max_rate: float = MAX_RATE,
    max_speed: float = MAX_SPEED,
) -> list[tuple[float, float]]:
    """A non-empty list of ``(a, c)`` pairs, each a switching rate ``a`` (1/time) in
    ``[MIN_RATE, max_rate]`` and a speed ``c`` (length/time) in ``[MIN_SPEED, max_speed]``;
    at most ``max_len`` pairs, no duplicates.

    A single pair ``(a, c)`` is accepted as a list of one.
    """
    must = (
        f"a list of 1 to {max_len} distinct (a, c) pairs with {MIN_RATE:g} <= a <= "
        f"{max_rate:g} and {MIN_SPEED:g} <= c <= {max_speed:g}"
    )
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
        if not (MIN_RATE <= a <= max_rate and MIN_SPEED <= c <= max_speed):
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


def positive(
    name: str, value, default: float | None = None, *, maximum: float = MAX_POSITIVE
) -> float:
    """A finite number in ``(0, maximum]`` (a horizon, a time); ``None`` -> ``default``."""
    if value is None and default is not None:
        return float(default)
    number = _number(value)
    example = f"{default:g}" if default is not None else "1.0"
    if number is None or not math.isfinite(number) or not 0 < number <= maximum:
        raise _fail(name, f"a number > 0 and <= {maximum:g}", example, value)
    return number


def times(
    name: str, value, *, maximum: float = MAX_TIME, allow_zero: bool = True, max_len: int = 12
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


# ---------------------------------------------------------------------- command-line values
#: Marks a parameter whose default in the parameters cell is not a plain literal.
_UNKNOWN = object()
_MAX_DEPTH = 4


def _plain(value, depth: int = 0) -> bool:
    """Whether ``value`` is a literal papermill can write into a notebook: ``None``, a
    boolean, an int, a float, a string, or a list, tuple or string-keyed dict of those."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if depth >= _MAX_DEPTH:
        return False
    if isinstance(value, (list, tuple)):
        return all(_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v, depth + 1) for k, v in value.items())
    return False


def _kind(default) -> tuple[str, tuple[type, ...]] | None:
    """What a value must be, given the notebook's default: ``(words, types)``, or ``None``
    when any plain literal may be given (the notebook checks it)."""
    if isinstance(default, bool):
        return "True or False", (bool,)
    if isinstance(default, (int, float)):
        return "a number", (int, float)
    if isinstance(default, str):
        return "a string", (str,)
    if isinstance(default, (list, tuple)):
        return "a list", (list, tuple)
    return None


def check_value(name: str, value, default=_UNKNOWN, notebook: str = "the notebook") -> object:
    """``value`` of a ``kacnb run -p NAME=VALUE``, checked before any kernel starts.

    It must be a plain literal (``None``, a boolean, a number, a string, or a list, tuple or
    dict of those, at most four levels deep): a set or a complex number cannot be written
    into the notebook. When the parameters cell gives a ``default``, the value must be of
    its kind: ``True``/``False`` for a boolean default (the text ``false`` is refused), a
    finite number for a number, a string for a string, a list or tuple for a list. A
    ``None`` default (the profile's value) admits any plain literal; the notebook's own
    checks (:func:`pairs`, :func:`count`...) then apply. Raises :class:`ParameterError`.
    """
    if not _plain(value):
        raise ParameterError(
            f"parameter {name} must be a plain literal (None, True/False, a number, a string, "
            f"or a list, tuple or dict of those); got {value!r} ({type(value).__name__})"
        )
    kind = None if default is _UNKNOWN else _kind(default)
    if kind is None:
        return value
    words, types = kind
    ok = isinstance(value, types) and (bool in types or not isinstance(value, bool))
    if ok and types == (int, float):
        ok = math.isfinite(value)
    if not ok:
        raise _fail(name, f"{words} (its default in {notebook})", repr(default), value)
    return value


def cell_defaults(cell_source: str) -> dict[str, object]:
    """The literal defaults a parameters cell assigns, by name (later assignments win); a
    name assigned anything but a literal maps to a marker that :func:`check_value` treats
    as "no default"."""
    try:
        tree = ast.parse(cell_source)
    except SyntaxError:
        return {}
    out: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        try:
            literal = ast.literal_eval(value)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            literal = _UNKNOWN
        for target in targets:
            if isinstance(target, ast.Name):
                out[target.id] = literal
    return out


def notebook_defaults(source) -> dict[str, object]:
    """:func:`cell_defaults` of the parameters cell of the percent-format ``.py`` notebook
    ``source`` (the cell tagged ``parameters``; none: an empty dict)."""
    from .runner import PARAMETERS_TAG, read_source

    for cell in read_source(source).cells:
        if PARAMETERS_TAG in cell.get("metadata", {}).get("tags", []):
            return cell_defaults(cell.source)
    return {}


def check_values(values, defaults, notebook: str = "the notebook") -> None:
    """:func:`check_value` for every ``name: value`` of ``values`` against ``defaults``
    (:func:`notebook_defaults`); raises :class:`ParameterError` at the first refused one."""
    for name, value in values.items():
        check_value(name, value, defaults.get(name, _UNKNOWN), notebook)
