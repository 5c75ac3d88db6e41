"""Checks of the notebooks' reader-facing parameters (kacnb.collection.params)."""

import math

import pytest

from kacnb.collection import params
from kacnb.collection.params import ParameterError


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


@pytest.mark.parametrize(
    "value",
    [[(1e6, 1)], [(1e300, 1e300)], [(25, 1e4)], [(1e-4, 1)], [(1, 1e-4)], [(2000.5, 1)]],
)
def test_pairs_are_bounded_by_what_the_numerics_handle(value):
    # the bound is in the message, so a reader knows what to ask for instead
    bounds = f"{params.MIN_RATE:g} <= a <= {params.MAX_RATE:g} and {params.MIN_SPEED:g} <= c"
    with pytest.raises(ParameterError, match=f"parameter path_pairs must be .*{bounds}"):
        params.pairs("path_pairs", value)


def test_pairs_up_to_the_bounds_are_accepted_and_a_notebook_may_allow_more():
    edge = [(params.MAX_RATE, params.MAX_SPEED), (params.MIN_RATE, params.MIN_SPEED), (1600, 10)]
    assert params.pairs("pairs", edge) == [(2000.0, 1000.0), (0.001, 0.001), (1600.0, 10.0)]
    assert params.pairs("pairs", [(5000, 1)], max_rate=1e4) == [(5000.0, 1.0)]


def test_times_and_horizons_have_a_default_bound():
    assert params.times("ts", [0.5, params.MAX_TIME]) == [0.5, 1000.0]
    with pytest.raises(ParameterError, match=r"t <= 1000"):
        params.times("ts", [0.5, 1e6])
    assert params.positive("t", params.MAX_POSITIVE) == 1e6
    with pytest.raises(ParameterError, match=r"<= 1e\+06"):
        params.positive("t", 1.01e6)
    with pytest.raises(ParameterError, match=r"<= 1000"):
        params.positive("t", 1001.0, maximum=1000.0)


@pytest.mark.parametrize(
    "value", [{1, 2}, 1j, b"x", [(1, 2), {3}], frozenset(), {1: 2}, Ellipsis, [[[[[1]]]]]]
)
def test_command_line_values_must_be_plain_literals(value):
    with pytest.raises(ParameterError, match="parameter p must be a plain literal"):
        params.check_value("p", value)


def test_command_line_values_must_be_of_the_kind_of_the_default():
    # a boolean setting takes True or False only: the text 'false' would be truthy
    assert params.check_value("pretrained", True, False) is True
    for bad in ("false", "False", 0, 1, None, [True]):
        with pytest.raises(ParameterError, match=r"pretrained must be True or False .*got"):
            params.check_value("pretrained", bad, False, "04_cfm_gmm_2d")
    assert params.check_value("t_paths", 3, 10.0) == 3
    for bad in ("3", True, math.nan, math.inf, None):
        with pytest.raises(ParameterError, match="t_paths must be a number"):
            params.check_value("t_paths", bad, 10.0)
    with pytest.raises(ParameterError, match="must be a list"):
        params.check_value("pairs", "(1, 1)", [(1.0, 1.0)])
    with pytest.raises(ParameterError, match="must be a string"):
        params.check_value("name", 3, "abc")
    # a None default (the profile's value) admits any plain literal: the notebook checks it
    assert params.check_value("n_mc", [1, "x"], None) == [1, "x"]
    assert params.check_value("kac_pairs", [(4, 2)], None) == [(4, 2)]


def test_cell_defaults_reads_the_literals_of_a_parameters_cell():
    cell = 'profile = "quick"\nflag = False  # comment\npairs = [(1.0, 1.0)]\nn = None\nx = f(1)\n'
    defaults = params.cell_defaults(cell)
    assert {k: defaults[k] for k in ("profile", "flag", "pairs", "n")} == {
        "profile": "quick",
        "flag": False,
        "pairs": [(1.0, 1.0)],
        "n": None,
    }
    params.check_value("x", {"any": 1}, defaults["x"])  # not a literal: no kind imposed
    assert params.cell_defaults("not python(") == {}


@pytest.mark.parametrize(
    ("notebook", "param", "message"),
    [
        ("02", "path_pairs={1,2}", "parameter path_pairs must be a plain literal"),
        ("02", "path_pairs=1j", "parameter path_pairs must be a plain literal"),
        ("02", "interactive=false", "parameter interactive must be True or False"),
        ("04", "pretrained=false", "parameter pretrained must be True or False"),
        ("04", "pretrained=1", "parameter pretrained must be True or False"),
        ("03", "t_paths=[1]", "parameter t_paths must be a number"),
    ],
)
def test_kacnb_run_refuses_a_bad_value_in_one_line_before_any_kernel(
    tmp_path, capsys, monkeypatch, notebook, param, message
):
    from kacnb.collection import cli, runner

    def no_run(*args, **kwargs):
        raise AssertionError("the notebook must not run")

    monkeypatch.setattr(runner, "run_notebook", no_run)
    argv = ["run", notebook, "-p", param, "--profile", "smoke", "--device", "cpu"]
    argv += ["--output-dir", str(tmp_path / "nb"), "--figures-dir", str(tmp_path / "fig")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert message in err[0]
    assert not (tmp_path / "fig").exists()


def test_the_notebooks_own_defaults_pass_the_command_line_check():
    # every default of every notebook is a value the check accepts for itself
    from pathlib import Path

    sources = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("0*.py"))
    assert len(sources) >= 5
    for source in sources:
        defaults = params.notebook_defaults(source)
        assert defaults, source
        params.check_values(defaults, defaults, source.stem)
