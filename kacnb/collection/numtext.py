"""Printed text as a skeleton and its numbers: the shared grammar of tolerant text comparison.

Used by the golden-notebook tolerance check (``tests/tolerance.py``) and by ``kacnb drift``;
each keeps its own rule for when two numbers agree.
"""

from __future__ import annotations

import re

__all__ = ["NUMBER_RE", "split_numbers"]

# A number: optional sign, digits with optional decimals (or leading dot), optional exponent.
# Not preceded by a letter or digit, so "c2" or "x1" stay text; "1e-3" stays one number.
NUMBER_RE = re.compile(r"(?<![A-Za-z0-9_.])[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def split_numbers(text: str) -> tuple[str, list[str]]:
    """``(skeleton, tokens)``: ``text`` with every number replaced by ``#`` and whitespace
    collapsed, and the numbers as printed, in order."""
    return " ".join(NUMBER_RE.sub("#", text).split()), NUMBER_RE.findall(text)
