"""Checks of the notebooks' reader-facing parameters (kacnb.params)."""

import math

import pytest

from kacnb import params
from kacnb.params import ParameterError


def test_pairs_accepts_lists_tuples_and_one_pair():
    assert params.pairs("pairs", [(1, 1), [25, 5.0]]) == [(1.0, 1.0), (25.0, 5.0)]
    assert params.pairs("pairs", (4, 2)) == [(4.0, 2.0)]
    assert all(isinstance(v, float) for pair in params.pairs("pairs", [(1, 2)]) for v in pair)


@pytest.mark.parametrize(
    "value",
    [
        [],
        [(1, 0)],
        [(-1, 1)],
        [(1, math.inf)],
        [(1, math.nan)],
        [(1, 1, 1)],
        [(True, 1)],
        [("1", 1)],
        "25,5",
        [(1, 1), (1, 1)],
        [(1, 1)] * 9,
        5,
    ],
)
def test_pairs_refuses_with_the_name_and_an_example(value):
    with pytest.raises(ParameterError, match=r"parameter pairs must be .*e\.g\. pairs="):
        params.pairs("pairs", value)


def test_count_none_means_the_default_and_bounds_hold():
    assert params.count("n_mc", None, 2000) == 2000
    assert params.count("n_mc", 10, 2000) == 10
    assert params.count("n_mc", 1e3, 2000) == 1000  # a float literal like 1e3 is an integer
    for bad in (0, -3, 2.5, "10", True, 10**9):
        with pytest.raises(ParameterError, match="n_mc"):
            params.count("n_mc", bad, 2000)


def test_positive_and_times():
    assert params.positive("t_paths", None, 10.0) == 10.0
    assert params.positive("t_paths", 3, 10.0) == 3.0
    for bad in (0, -1.0, math.inf, math.nan, "x", None, 1e7):
        with pytest.raises(ParameterError, match="t_paths"):
            params.positive("t_paths", bad)
    assert params.times("ts", [0, 0.5, 2]) == [0.0, 0.5, 2.0]
    for bad in ([], [0.5, 0.1], [0.1, 0.1], [-1.0], "0.1", [0.1] * 13, [math.nan]):
        with pytest.raises(ParameterError, match="ts"):
            params.times("ts", bad)
    with pytest.raises(ParameterError):
        params.times("ts", [0.0, 1.0], allow_zero=False)


def test_flag_is_strict():
    assert params.flag("interactive", True) is True
    for bad in (1, "no", None):
        with pytest.raises(ParameterError, match="interactive must be True or False"):
            params.flag("interactive", bad)
