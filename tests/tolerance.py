"""Numeric comparison of notebook text outputs with a stated tolerance (see tests/README.md).

A cell of a golden notebook that carries, besides ``# NBVAL_CHECK_OUTPUT``, a line

    # NBVAL_TOLERANCE rtol=0.25 atol=0.02

is compared by :func:`compare_text`: the text between the numbers must agree (runs of
whitespace collapsed, since column padding follows the width of the numbers), the outputs
must print the same count of numbers, and each pair ``(ref, new)`` must satisfy
``|ref - new| <= atol + rtol * max(|ref|, |new|)``. Every other checked cell is compared
exactly by nbval.
"""

from __future__ import annotations

import math
import re

from kacnb.collection.numtext import split_numbers

__all__ = ["MARKER", "Tolerance", "parse_marker", "compare_text", "shares_agree"]

MARKER = "NBVAL_TOLERANCE"
_MARKER_RE = re.compile(r"#\s*NBVAL_TOLERANCE\b(?P<args>[^\n]*)")
_ARG_RE = re.compile(r"(rtol|atol)\s*=\s*([0-9.eE+-]+)")


class Tolerance:
    """``rtol`` and ``atol`` of one cell."""

    def __init__(self, rtol: float = 0.0, atol: float = 0.0):
        if not (rtol >= 0 and atol >= 0 and math.isfinite(rtol) and math.isfinite(atol)):
            raise ValueError(f"tolerances must be finite and >= 0, got rtol={rtol}, atol={atol}")
        self.rtol, self.atol = rtol, atol

    def __repr__(self) -> str:
        return f"rtol={self.rtol:g}, atol={self.atol:g}"

    def accepts(self, ref: float, new: float) -> bool:
        if math.isnan(ref) or math.isnan(new):
            return False
        if math.isinf(ref) or math.isinf(new):
            return ref == new
        return abs(ref - new) <= self.atol + self.rtol * max(abs(ref), abs(new))


def shares_agree(a: float, b: float, n: int, z: float) -> bool:
    """Two independent estimates ``a``, ``b`` of one share, each from ``n`` draws, agree to
    ``z`` standard errors of their difference (binomial, the pooled share clipped to
    ``[1/n, 1 - 1/n]`` so that a share of 0 or 1 still has a nonzero error)."""
    p = min(max((a + b) / 2, 1.0 / n), 1 - 1.0 / n)
    return abs(a - b) <= z * math.sqrt(2 * p * (1 - p) / n)


def parse_marker(source: str) -> Tolerance | None:
    """The :class:`Tolerance` of a cell source with a ``# NBVAL_TOLERANCE`` line, else None."""
    match = _MARKER_RE.search(source)
    if match is None:
        return None
    args = dict(_ARG_RE.findall(match.group("args")))
    if not args:
        raise ValueError(f"'{match.group(0).strip()}' states no rtol= or atol=")
    return Tolerance(float(args.get("rtol", 0.0)), float(args.get("atol", 0.0)))


def _split(text: str) -> tuple[str, list[float]]:
    skeleton, tokens = split_numbers(text)
    return skeleton, [float(t) for t in tokens]


def compare_text(ref: str, new: str, tol: Tolerance) -> str | None:
    """``None`` when ``new`` agrees with ``ref`` within ``tol``, else a one-line reason."""
    ref_skel, ref_nums = _split(ref)
    new_skel, new_nums = _split(new)
    if ref_skel != new_skel:
        i = next(
            (k for k, (a, b) in enumerate(zip(ref_skel, new_skel, strict=False)) if a != b),
            min(len(ref_skel), len(new_skel)),
        )
        lo, hi = max(0, i - 30), i + 30
        return f"text differs near {ref_skel[lo:hi]!r} / {new_skel[lo:hi]!r}"
    if len(ref_nums) != len(new_nums):
        return f"{len(new_nums)} numbers printed, reference has {len(ref_nums)}"
    for k, (a, b) in enumerate(zip(ref_nums, new_nums, strict=True)):
        if not tol.accepts(a, b):
            return f"number {k + 1}: {b:g} against reference {a:g}, outside {tol!r}"
    return None
