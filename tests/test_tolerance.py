"""The tolerant comparison of trained-model numbers (tests/tolerance.py) accepts hardware noise
and rejects real changes."""

from __future__ import annotations

import math

import pytest
from tolerance import Tolerance, compare_text, parse_marker, shares_agree

REF = "Kac (25, 5)      7.26e+06  5.75e+06    0.000   0.020     9 3.47e-01   26 | reproduced\n"


def test_marker_parsing():
    assert parse_marker("x = 1\n") is None
    tol = parse_marker("# NBVAL_CHECK_OUTPUT\n# NBVAL_TOLERANCE rtol=0.25 atol=0.02\nprint(1)")
    assert (tol.rtol, tol.atol) == (0.25, 0.02)
    with pytest.raises(ValueError, match="states no rtol"):
        parse_marker("# NBVAL_TOLERANCE\n")
    with pytest.raises(ValueError, match="finite"):
        Tolerance(rtol=-1.0)


def test_identical_and_last_digit_changes_pass():
    tol = Tolerance(rtol=0.05, atol=0.0)
    assert compare_text(REF, REF, tol) is None
    # the third significant digit moves and the column padding follows the width
    new = "Kac (25, 5)      7.34e+06  5.63e+06     0.000  0.020     9 3.48e-01   26 | reproduced\n"
    assert compare_text(REF, new, tol) is None


def test_changes_beyond_the_tolerance_fail():
    tol = Tolerance(rtol=0.05, atol=0.0)
    doubled = REF.replace("7.26e+06", "1.45e+07")
    assert "number 3" in compare_text(REF, doubled, tol)
    assert "text differs" in compare_text(REF, REF + "extra 1\n", tol)
    assert "text differs" in compare_text(REF, REF.replace("reproduced", "differs"), tol)
    assert compare_text("v = 5.0", "v = nan", tol) is not None
    assert compare_text("v = inf", "v = inf", tol) is None
    # labels and tags are compared as numbers too: a 1% change of (a, c) fails at rtol 0
    assert compare_text("(25, 5)", "(25, 5.05)", Tolerance(atol=0.01)) is not None


def test_absolute_tolerance_for_small_counts():
    # per-mode shares in percent: one sample of 400 is 0.25 points
    tol = Tolerance(rtol=0.0, atol=0.5)
    assert compare_text("0.2   0.5   0.0", "0.0   0.2   0.2", tol) is None
    assert compare_text("0.2   0.5   0.0", "0.0   1.2   0.2", tol) is not None


def test_shares_agree_at_the_binomial_standard_error_of_a_difference():
    # p = 0.5, n = 200: the difference of two independent shares has SE sqrt(2 * 0.25 / 200)
    se = math.sqrt(2 * 0.25 / 200)
    assert shares_agree(0.5 - 1.9 * se, 0.5 + 1.9 * se, 200, z=4)  # 3.8 SE apart
    assert not shares_agree(0.5 - 2.1 * se, 0.5 + 2.1 * se, 200, z=4)  # 4.2 SE apart
    # the SE shrinks with n: the same 0.1 gap passes at n = 100 and fails at n = 10 000
    assert shares_agree(0.45, 0.55, 100, z=4)
    assert not shares_agree(0.45, 0.55, 10_000, z=4)
    # shares of 0 and 1 keep a nonzero error: a single draw of 1000 does not fail the check
    assert shares_agree(0.0, 0.001, 1000, z=4)
    assert not shares_agree(0.0, 0.05, 1000, z=4)
