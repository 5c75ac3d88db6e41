"""The course exercises (exercises/NN_name.py, kacnb.collection.exercises, ``kacnb exercises``).

* every reference solution passes its check, executing the exercise notebook cell by cell;
* the student version (solutions stripped) fails every check, each one on its own;
* a plausible wrong solution of every exercise fails its check (the checks discriminate);
* stripping removes every solution line and the note for teachers, keeps every other line,
  and reports bad markup;
* the CLI writes the student versions as .py and .ipynb, refuses a non-empty folder without
  --force, and refuses the project's own folders (notebooks/, exercises/, tracked ones)
  whatever the flags; those cases run on a temporary git repository, or on the real one with
  the writer replaced by a failure, so no test can overwrite the real sources.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import shutil
import subprocess
from pathlib import Path

import jupytext
import nbformat
import pytest
import torch

from kacnb.collection import exercises
from kacnb.collection.cli import main
from kacnb.collection.exercises import (
    EXERCISES,
    STEMS,
    ExerciseFailed,
    ProtectedFolderError,
    SolutionMarkupError,
    check,
    check_output_folder,
    run_check,
    strip,
    write_student_versions,
)
from kacnb.collection.registry import NOTEBOOKS
from kacnb.theory.kac import Kac

ROOT = Path(__file__).resolve().parent.parent
EXERCISES_DIR = ROOT / "exercises"
CHECK_CELL = re.compile(r'check\("(\d\d\.\d)", (\w+)\)')
MARKER = re.compile(r"^\s*### (BEGIN|END) SOLUTION\s*$")


def _source(stem: str) -> str:
    return (EXERCISES_DIR / f"{stem}.py").read_text(encoding="utf-8")


def _execute(text: str, name: str) -> dict[str, AssertionError | None]:
    """Run the code cells in one namespace, as a kernel would; every cell but the check
    cells must succeed. Returns each check's outcome: None (passed) or its AssertionError."""
    namespace: dict = {"__name__": "__main__"}
    outcomes: dict[str, AssertionError | None] = {}
    for cell in jupytext.reads(text, fmt="py:percent").cells:
        if cell.cell_type != "code":
            continue
        code = compile(cell.source, name, "exec")
        match = CHECK_CELL.fullmatch(cell.source.strip())
        if match is None:
            exec(code, namespace)
            continue
        try:
            exec(code, namespace)
            outcomes[match[1]] = None
        except AssertionError as exc:
            outcomes[match[1]] = exc
    return outcomes


@functools.cache
def _reference(stem: str) -> dict:
    """The reference functions of one exercise notebook (its non-check code cells run)."""
    namespace: dict = {"__name__": "__main__"}
    for cell in jupytext.reads(_source(stem), fmt="py:percent").cells:
        if cell.cell_type == "code" and not CHECK_CELL.fullmatch(cell.source.strip()):
            exec(compile(cell.source, stem, "exec"), namespace)
    return namespace


# ---------------------------------------------------------------------------- layout
def test_exercises_are_one_source_per_chapter_notebook():
    chapters = {spec.stem for spec in NOTEBOOKS}
    assert set(STEMS) <= chapters
    assert STEMS == tuple(f"{spec.stem}" for spec in NOTEBOOKS if spec.number <= 5)
    files = sorted(p.name for p in EXERCISES_DIR.iterdir() if not p.name.startswith("."))
    assert files == [f"{stem}.py" for stem in STEMS], "only the .py sources are committed"
    ids = [ex.id for ex in EXERCISES]
    assert len(set(ids)) == len(ids)
    for stem in STEMS:
        count = sum(ex.stem == stem for ex in EXERCISES)
        assert 2 <= count <= 4, (stem, count)


@pytest.mark.parametrize("stem", STEMS)
def test_each_exercise_has_one_solution_and_one_check_cell(stem):
    cells = jupytext.reads(_source(stem), fmt="py:percent").cells
    checks = [CHECK_CELL.fullmatch(c.source.strip()) for c in cells if c.cell_type == "code"]
    found = [(m[1], m[2]) for m in checks if m]
    assert found == [(ex.id, ex.function) for ex in EXERCISES if ex.stem == stem]
    for ex in (ex for ex in EXERCISES if ex.stem == stem):
        (cell,) = [c for c in cells if f"def {ex.function}(" in c.source]
        assert cell.cell_type == "code"
        assert sum(bool(MARKER.match(line)) for line in cell.source.splitlines()) == 2


# ---------------------------------------------------------------------------- checks
@pytest.mark.parametrize("stem", STEMS)
def test_reference_solutions_pass_every_check(stem, capsys):
    outcomes = _execute(_source(stem), stem)
    assert outcomes and all(v is None for v in outcomes.values()), outcomes
    printed = capsys.readouterr().out
    for exercise_id in outcomes:
        assert f"exercise {exercise_id} passed: " in printed


@pytest.mark.parametrize("stem", STEMS)
def test_student_versions_fail_every_check(stem):
    outcomes = _execute(strip(_source(stem)), f"{stem} (student)")
    assert set(outcomes) == {ex.id for ex in EXERCISES if ex.stem == stem}
    for exercise_id, exc in outcomes.items():
        assert isinstance(exc, ExerciseFailed), (exercise_id, exc)
        assert "not implemented yet" in str(exc)
        assert str(exc).startswith(f"exercise {exercise_id} (")


def _wrong_01_2(t, x):
    return -x  # forgets the factor 1/(1 - t)


def _wrong_02_1(rate: float = 1.0, random_sign: bool = True):
    def simulate(t, n, a, c, generator):
        fn = _reference("02_kac_1d")["simulate_kac"]
        draws = fn(t, n, a * rate, c, generator)
        return draws if random_sign else draws.abs()

    return simulate


def _wrong_02_3(t, x, a, c):
    # I0 and I1 swapped in [41]
    ct = c * t
    r = torch.sqrt((ct * ct - x * x).clamp_min(0.0))
    z = (a / c) * r
    v = x / (t + r * torch.special.i1e(z) / (c * torch.special.i0e(z)))
    return torch.where(x.abs() < ct, v, torch.sign(x) * c)


def _unscaled_02_3(t, x, a, c):
    # [41] with the unscaled Bessel functions: overflow for large a t
    ct = c * t
    r = torch.sqrt((ct * ct - x * x).clamp_min(0.0))
    z = (a / c) * r
    v = x / (t + r * torch.special.i0(z) / (c * torch.special.i1(z)))
    return torch.where(x.abs() < ct, v, torch.sign(x) * c)


def _no_limit_02_3(t, x, a, c):
    # [41] as written, r = sqrt(c^2 t^2 - x^2), without the r -> 0 limit: 0/0 where r rounds
    # to 0 just inside the light cone
    ct = c * t
    r = torch.sqrt((c**2 * t**2 - x**2).clamp_min(0.0))
    z = (a / c) * r
    v = x / (t + r * torch.special.i0e(z) / (c * torch.special.i1e(z)))
    return torch.where(x.abs() < ct, v, torch.sign(x) * c)


def _wrong_limit_02_3(t, x, a, c):
    # written through I1(z)/z as the hint says, but with the limit 1 instead of 1/2 at z = 0
    ct = c * t
    r = torch.sqrt((c**2 * t**2 - x**2).clamp_min(0.0))
    z = (a / c) * r
    positive = z > 0
    z_safe = torch.where(positive, z, torch.ones_like(z))
    i1_over_z = torch.where(positive, torch.special.i1e(z_safe) / z_safe, torch.ones_like(z))
    v = x / (t + torch.special.i0e(z) / (a * i1_over_z))
    return torch.where(x.abs() < ct, v, torch.sign(x) * c)


def _draw_05_1(round_trip=False, drift=True, standard=False, one_k_per_image=False):
    def draw(t, x0, a, c, T, generator):
        n, pixels = x0.shape[0], x0[0].numel()
        kac = Kac(a, c)
        k = kac.sample(t, dim=1 if one_k_per_image else pixels, generator=generator)
        k = k.expand(n, pixels).reshape(x0.shape)
        tt = t.reshape(n, 1, 1, 1)
        f = 1.0 - tt / T
        x_t = (x0 if standard else f * x0) + k
        noise = x_t - f * x0 if round_trip else k
        return x_t, (-x0 / T if drift else 0.0) + kac.velocity(tt, noise)

    return draw


def _euler_05_2(step_sign=-1.0, end_nodes=False, unit_h=False, in_place=False, float_t=False):
    def euler_sample(velocity, x_T, T, steps):
        h = 1.0 / steps if unit_h else T / steps
        x = x_T if in_place else x_T.clone()
        for k in range(steps):
            s = T - (k + 1) * h if end_nodes else T - k * h
            t = s if float_t else torch.full((x.shape[0],), s, dtype=x.dtype)
            x += step_sign * h * velocity(t, x)
        return x

    return euler_sample


def _var(t, a, c):
    return (c * c / a) * (t + math.expm1(-2.0 * a * t) / (2.0 * a))


def _round_trip_04_1(t, x0, k, a, c):
    return Kac(a, c).velocity(t.unsqueeze(-1), (x0 + k) - x0)  # the float32 trap


def _density_02_4(slip=False, unscaled=False, no_exp=False):
    """[30-31] written plainly; ``slip``: ``i1e(z)/z`` where ``i1e(z)/r`` is meant (the I1
    term a factor c/a too small); ``unscaled``: I0, I1 and exp(-a t) (overflow for large
    a t); ``no_exp``: the factor exp(z - a t) forgotten."""

    def density(t, x, a, c):
        ct = c * t
        inside = x.abs() < ct
        r = torch.sqrt((ct * ct - x * x).clamp_min(0.0))
        z = (a / c) * r
        z_safe = torch.where(z > 0, z, torch.ones_like(z))
        r_safe = torch.where(z > 0, r, torch.ones_like(r))
        if unscaled:
            i1_r = torch.where(z > 0, torch.special.i1(z) / r_safe, torch.full_like(z, a / c / 2))
            u = (a / (2 * c)) * torch.exp(-a * t) * (torch.special.i0(z) + ct * i1_r)
        else:
            limit = 0.5 if slip else a / c / 2
            i1 = torch.special.i1e(z_safe) / (z_safe if slip else r_safe)
            i1 = torch.where(z > 0, i1, torch.full_like(z, limit))
            scale = torch.ones_like(z) if no_exp else torch.exp(z - a * t)
            u = (a / (2 * c)) * scale * (torch.special.i0e(z) + ct * i1)
        return torch.where(inside, u, torch.zeros_like(u))

    return density


WRONG = {
    "01.1 factor 2": ("01.1", lambda t, d: d / (2.0 * t)),
    "01.1 no d": ("01.1", lambda t, d: 1.0 / (4.0 * t)),
    "01.2 no 1/(1-t)": ("01.2", _wrong_01_2),
    "01.2 sign": ("01.2", lambda t, x: x / (1.0 - t)),
    "02.1 rate 2a": ("02.1", _wrong_02_1(rate=2.0)),
    "02.1 no random start": ("02.1", _wrong_02_1(random_sign=False)),
    "02.2 exp(-at)": ("02.2", lambda t, a, c: (c * c / a) * (t + math.expm1(-a * t) / (2 * a))),
    "02.2 Brownian": ("02.2", lambda t, a, c: c * c / a * t),
    "02.3 I0/I1 swapped": ("02.3", _wrong_02_3),
    "02.3 unscaled Bessel": ("02.3", _unscaled_02_3),
    "02.3 x/t": ("02.3", lambda t, x, a, c: (x / t).clamp(-c, c)),
    "02.3 no r -> 0 limit": ("02.3", _no_limit_02_3),
    "02.3 limit 1 of I1(z)/z": ("02.3", _wrong_limit_02_3),
    "02.4 i1e(z)/z instead of i1e(z)/r": ("02.4", _density_02_4(slip=True)),
    "02.4 unscaled Bessel": ("02.4", _density_02_4(unscaled=True)),
    "02.4 no exp(z - a t)": ("02.4", _density_02_4(no_exp=True)),
    "03.1 no d": ("03.1", lambda tau, a, c, d: _var(tau, a, c)),
    "03.1 increments of the variance": (
        "03.1",
        lambda tau, a, c, d: d * (_var(0.5 + tau, a, c) - _var(0.5, a, c)),
    ),
    "03.2 no atoms": (
        "03.2",
        lambda t, a, c, d: (
            _reference("03_kac_multid")["kac_velocity_norm_sq"](t, a, c, d)
            - d * c * c * math.exp(-a * t)
        ),
    ),
    "03.2 one component": (
        "03.2",
        lambda t, a, c, d: _reference("03_kac_multid")["kac_velocity_norm_sq"](t, a, c, 1),
    ),
    "04.1 round trip x_t - x0": ("04.1", _round_trip_04_1),
    "04.1 evaluated at x_t": (
        "04.1",
        lambda t, x0, k, a, c: Kac(a, c).velocity(t.unsqueeze(-1), x0 + k),
    ),
    "04.2 no drift": ("04.2", lambda t, x0, k, a, c, T: Kac(a, c).velocity(t.unsqueeze(-1), k)),
    "04.2 f instead of f'": (
        "04.2",
        lambda t, x0, k, a, c, T: (
            (1.0 - t / T).unsqueeze(-1) * x0 + Kac(a, c).velocity(t.unsqueeze(-1), k)
        ),
    ),
    "05.1 round trip x_t - f x0": ("05.1", _draw_05_1(round_trip=True)),
    "05.1 no drift f'(t) x0": ("05.1", _draw_05_1(drift=False)),
    "05.1 standard path x0 + K": ("05.1", _draw_05_1(standard=True)),
    "05.1 one K(t) per image": ("05.1", _draw_05_1(one_k_per_image=True)),
    "05.2 forward steps": ("05.2", _euler_05_2(step_sign=1.0)),
    "05.2 nodes at the step ends": ("05.2", _euler_05_2(end_nodes=True)),
    "05.2 h = 1/steps": ("05.2", _euler_05_2(unit_h=True)),
    "05.2 x_T changed in place": ("05.2", _euler_05_2(in_place=True)),
    "05.2 one float t": ("05.2", _euler_05_2(float_t=True)),
}


@pytest.mark.parametrize("name", WRONG)
def test_plausible_wrong_solutions_fail(name):
    exercise_id, fn = WRONG[name]
    with pytest.raises(ExerciseFailed, match=rf"^exercise {re.escape(exercise_id)} \("):
        run_check(exercise_id, fn)


def test_every_exercise_has_a_wrong_solution_tested():
    assert {v[0] for v in WRONG.values()} == {ex.id for ex in EXERCISES}


def test_the_float32_trap_is_named_in_the_message():
    with pytest.raises(ExerciseFailed, match=r"x_t - x0 in float32"):
        run_check("04.1", _round_trip_04_1)


@pytest.mark.parametrize("fn", [_no_limit_02_3, _wrong_limit_02_3])
def test_the_r_to_0_limit_is_checked_just_inside_the_light_cone(fn):
    with pytest.raises(ExerciseFailed, match=r"just inside the light cone.*1/2 at z = 0"):
        run_check("02.3", fn)


def test_the_05_messages_name_the_trap():
    with pytest.raises(ExerciseFailed, match=r"Did you evaluate v at x_t - f\(t\) x0\?"):
        run_check("05.1", _draw_05_1(round_trip=True))
    with pytest.raises(ExerciseFailed, match=r"uses the start of each step, t_k = T - k h"):
        run_check("05.2", _euler_05_2(end_nodes=True))
    with pytest.raises(ExerciseFailed, match=r"changed x_T in place"):
        run_check("05.2", _euler_05_2(in_place=True))
    with pytest.raises(ExerciseFailed, match=r"a tensor t of shape \(4,\)"):
        run_check("05.2", _euler_05_2(float_t=True))


def test_the_density_slip_is_named_and_the_formula_is_otherwise_right():
    # the slip of the authors' pre-fix sampler: the check names it
    with pytest.raises(ExerciseFailed, match=r"factor c/a = 0\.5 too small: you divided i1e"):
        run_check("02.4", _density_02_4(slip=True))
    # the same code with the right denominator passes: the check catches exactly the slip
    assert run_check("02.4", _density_02_4()).startswith("exercise 02.4 passed: ")
    # for a = c the slip changes nothing, so the check must not rely on such a pair
    t, x = torch.full((5,), 0.7, dtype=torch.float64), torch.linspace(-0.6, 0.6, 5)
    x = x.to(torch.float64)
    assert torch.equal(_density_02_4(slip=True)(t, x, 2.0, 2.0), _density_02_4()(t, x, 2.0, 2.0))


def test_unscaled_bessel_functions_fail_for_large_at():
    with pytest.raises(ExerciseFailed, match=r"not finite for a t = \d+"):
        run_check("02.3", _unscaled_02_3)


def test_checks_are_seeded():
    fn = _reference("02_kac_1d")["simulate_kac"]
    assert run_check("02.1", fn) == run_check("02.1", fn)


def test_check_errors():
    with pytest.raises(KeyError, match="unknown exercise '09.9'"):
        run_check("09.9", print)
    with pytest.raises(ExerciseFailed, match="pass the function"):
        check("01.1", 3.0)

    def raises(t, d):
        raise ZeroDivisionError("oops")

    with pytest.raises(ExerciseFailed, match="raised ZeroDivisionError: oops"):
        check("01.1", raises)
    with pytest.raises(ExerciseFailed, match="must return a number"):
        check("01.1", lambda t, d: "d/(4t)")
    with pytest.raises(ExerciseFailed, match=r"must return shape \(1000, 3\)"):
        check("01.2", lambda t, x: x[:, 0])


# ---------------------------------------------------------------------------- strip
def test_strip_on_a_small_example():
    source = (
        "# %%\n"
        "def f(x):\n"
        '    """Doc."""\n'
        "    ### BEGIN SOLUTION\n"
        "    y = x + 1\n"
        "    return y\n"
        "    ### END SOLUTION\n"
        "\n"
        "\n"
        "# %%\n"
        "### BEGIN SOLUTION\n"
        "z = 3\n"
        "### END SOLUTION\n"
        "check('01.1', f)\n"
    )
    assert strip(source) == (
        "# %%\n"
        "def f(x):\n"
        '    """Doc."""\n'
        "    # YOUR CODE HERE\n"
        "    raise NotImplementedError()\n"
        "\n"
        "\n"
        "# %%\n"
        "# YOUR CODE HERE\n"
        "raise NotImplementedError()\n"
        "check('01.1', f)\n"
    )
    assert strip("no markers\n`### BEGIN SOLUTION` in prose\n") == (
        "no markers\n`### BEGIN SOLUTION` in prose\n"
    )


def test_strip_drops_the_note_for_teachers_only():
    source = (
        "# %% [markdown]\n"
        "# # Title\n"
        "#\n"
        "# *For teachers:* this file holds the reference solutions;\n"
        "# `kacnb exercises` writes the student versions.\n"
        "#\n"
        "# The text for students, which mentions *For teachers:* in passing.\n"
        "\n"
        "# %% [markdown]\n"
        "# Second cell.\n"
        "#\n"
        "# *For teachers:* a note that closes its cell.\n"
        "\n"
        "# %%\n"
        "x = 1  # *For teachers:* in code is code\n"
    )
    assert strip(source) == (
        "# %% [markdown]\n"
        "# # Title\n"
        "#\n"
        "# The text for students, which mentions *For teachers:* in passing.\n"
        "\n"
        "# %% [markdown]\n"
        "# Second cell.\n"
        "\n"
        "# %%\n"
        "x = 1  # *For teachers:* in code is code\n"
    )


@pytest.mark.parametrize("stem", STEMS)
def test_student_versions_hold_no_note_for_teachers(stem):
    source = _source(stem)
    assert "*For teachers:*" in source and "reference solutions" in source
    student = strip(source)
    assert "For teachers" not in student
    assert "reference solution" not in student.lower()
    assert "**How to work.**" in student  # the students' instructions stay


def _regions(lines: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(lines outside the solution regions and the teachers' note, solution lines, BEGIN
    marker lines). The note runs from its line '# *For teachers:*' to the next blank '#'
    line, both included."""
    outside, inside, begins, depth, note = [], [], [], 0, False
    for line in lines:
        if line.startswith("# *For teachers:*"):
            note = True
        if note:
            note = line != "#"
            continue
        if MARKER.match(line):
            depth = 1 if "BEGIN" in line else 0
            begins += [line] if depth else []
        elif depth:
            inside.append(line)
        else:
            outside.append(line)
    return outside, inside, begins


@pytest.mark.parametrize("stem", STEMS)
def test_strip_removes_solutions_and_keeps_everything_else(stem):
    source = _source(stem)
    student = strip(source)
    outside, inside, begins = _regions(source.splitlines())
    assert inside and begins
    lines = student.splitlines()
    # every stub sits at its marker's indentation; without the stubs nothing else changed
    stubs = [i for i, line in enumerate(lines) if line.strip() == "# YOUR CODE HERE"]
    assert len(stubs) == len(begins)
    for i, begin in zip(stubs, begins, strict=True):
        indent = begin[: len(begin) - len(begin.lstrip())]
        assert lines[i] == f"{indent}# YOUR CODE HERE"
        assert lines[i + 1] == f"{indent}raise NotImplementedError()"
    kept = [line for i, line in enumerate(lines) if i not in stubs and i - 1 not in stubs]
    assert kept == outside
    # no solution line survives (except lines that also occur outside the solutions)
    survivors = {
        line.strip()
        for line in inside
        if line.strip() and line.strip() not in map(str.strip, outside)
    }
    assert survivors
    assert not [s for s in survivors if s in student]
    assert not [line for line in lines if MARKER.match(line)]
    compile(student, stem, "exec")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x = 1\n### END SOLUTION\n", "line 2: ### END SOLUTION without ### BEGIN SOLUTION"),
        ("### BEGIN SOLUTION\nx = 1\n", "line 1: ### BEGIN SOLUTION is never closed"),
        (
            "### BEGIN SOLUTION\n  ### BEGIN SOLUTION\n### END SOLUTION\n",
            "line 2: ### BEGIN SOLUTION inside the solution opened on line 1",
        ),
    ],
)
def test_strip_reports_bad_markup(text, message):
    with pytest.raises(SolutionMarkupError, match=re.escape(message)):
        strip(text)


# ---------------------------------------------------------------------------- writing
def test_cli_writes_the_student_versions(tmp_path, capsys):
    out = tmp_path / "student"
    assert main(["exercises", "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([f"{s}.py" for s in STEMS] + [f"{s}.ipynb" for s in STEMS])
    printed = capsys.readouterr().out.split()
    assert sorted(Path(p).name for p in printed) == names
    for stem in STEMS:
        text = (out / f"{stem}.py").read_text(encoding="utf-8")
        assert text == strip(_source(stem))
        nb = nbformat.read(out / f"{stem}.ipynb", as_version=4)
        nbformat.validate(nb)
        expected = jupytext.reads(text, fmt="py:percent").cells
        assert [(c.cell_type, c.source) for c in nb.cells] == [
            (c.cell_type, c.source) for c in expected
        ]
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert "SOLUTION" not in code and "raise NotImplementedError()" in code


def test_cli_refuses_a_non_empty_folder_without_force(tmp_path, capsys):
    out = tmp_path / "student"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["exercises", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not empty" in err and "--force" in err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert main(["exercises", "--out", str(out), "--force"]) == 0
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / f"{STEMS[0]}.ipynb").is_file()


def test_cli_usage_errors(tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("")
    assert main(["exercises", "--out", str(a_file)]) == 2
    assert "is a file" in capsys.readouterr().err
    missing = tmp_path / "nowhere"
    assert main(["exercises", "--out", str(tmp_path / "o"), "--exercises-dir", str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / f"{STEMS[0]}.py").write_text(_source(STEMS[0]))
    assert main(["exercises", "--out", str(tmp_path / "o"), "--exercises-dir", str(partial)]) == 2
    assert "lacks 02_kac_1d.py" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_bad_markup_in_a_source_writes_nothing(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for stem in STEMS:
        (src / f"{stem}.py").write_text(_source(stem))
    (src / f"{STEMS[-1]}.py").write_text("### BEGIN SOLUTION\n")
    with pytest.raises(SolutionMarkupError):
        write_student_versions(tmp_path / "out", src)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------- protected folders
def _tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(folder).parts
    }


@pytest.fixture
def no_writing(monkeypatch):
    """Replace the writer by a failure: a broken refusal cannot touch the real sources."""

    def refuse(out, stem, text):
        raise AssertionError(f"student version {stem} about to be written into {out}")

    monkeypatch.setattr(exercises, "_write_student", refuse)


def _refused(capsys, *argv) -> str:
    assert main(["exercises", *map(str, argv)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("kacnb: error: refusing to write"), err
    assert "--force" not in err  # the refusal never suggests forcing it
    return err


@pytest.mark.parametrize("force", [[], ["--force"]])
@pytest.mark.parametrize("folder", ["notebooks", "exercises"])
def test_cli_refuses_the_real_notebooks_and_exercises(folder, force, capsys, no_writing):
    before = _tree_digest(ROOT / folder)
    err = _refused(capsys, "--out", ROOT / folder, *force)
    what = {"notebooks": "the project's notebooks/ folder", "exercises": "the exercise sources"}
    assert f"it is {what[folder]} ({ROOT / folder})" in err
    assert _tree_digest(ROOT / folder) == before


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="not a git checkout")
@pytest.mark.parametrize("folder", ["tests", "docs", "."])
def test_cli_refuses_real_folders_with_tracked_files(folder, capsys, no_writing):
    err = _refused(capsys, "--out", ROOT / folder, "--force")
    assert "holds files tracked by the project's git repository" in err


def test_the_refusal_comes_before_the_not_empty_message(capsys, no_writing):
    err = _refused(capsys, "--out", ROOT / "notebooks")  # non-empty, no --force
    assert "not empty" not in err


@pytest.fixture
def git_copy(tmp_path) -> Path:
    """A temporary git repository laid out like the project: exercises/ (the sources),
    notebooks/ and docs/ with tracked files, an untracked notes/ and a git-ignored runs/."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    (repo / "exercises").mkdir(parents=True)
    for stem in STEMS:
        (repo / "exercises" / f"{stem}.py").write_text(_source(stem), encoding="utf-8")
    (repo / "notebooks").mkdir()
    (repo / "notebooks" / "01_velocity_explosion.py").write_text("# chapter 01\n")
    (repo / "docs").mkdir()
    (repo / "docs" / "notes.md").write_text("tracked\n")
    (repo / "notes").mkdir()
    (repo / "notes" / "mine.txt").write_text("untracked\n")
    (repo / ".gitignore").write_text("/runs/\n")
    (repo / "runs").mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(
        ["git", "-C", str(repo), "add", "exercises", "notebooks", "docs", ".gitignore"],
        check=True,
    )
    return repo


@pytest.mark.parametrize("force", [[], ["--force"]])
@pytest.mark.parametrize(
    ("folder", "reason"),
    [
        ("notebooks", "it is the project's notebooks/ folder"),
        ("exercises", "it is the exercise sources"),
        ("exercises/student", "it is inside the exercise sources"),
        ("notebooks/student", "it is inside the project's notebooks/ folder"),
        ("docs", "holds files tracked by the project's git repository (1, e.g. notes.md)"),
        (".", "holds files tracked by the project's git repository"),
    ],
)
def test_cli_refuses_project_folders_of_a_git_copy(git_copy, folder, reason, force, capsys):
    before = _tree_digest(git_copy)
    src = git_copy / "exercises"
    err = _refused(capsys, "--out", git_copy / folder, *force, "--exercises-dir", src)
    assert reason in err
    assert _tree_digest(git_copy) == before  # nothing written, no folder created
    assert not (git_copy / "exercises" / "student").exists()
    assert not (git_copy / "notebooks" / "student").exists()


@pytest.mark.parametrize("folder", ["runs/student", "notes", "new"])
def test_cli_writes_into_untracked_folders_of_a_git_copy(git_copy, folder, capsys):
    src = git_copy / "exercises"
    args = ["exercises", "--out", str(git_copy / folder), "--exercises-dir", str(src)]
    assert main([*args, "--force"]) == 0
    assert (git_copy / folder / f"{STEMS[-1]}.ipynb").is_file()
    assert (src / f"{STEMS[0]}.py").read_text(encoding="utf-8") == _source(STEMS[0])


def test_check_output_folder_outside_git(tmp_path):
    src = tmp_path / "project" / "exercises"
    src.mkdir(parents=True)
    check_output_folder(tmp_path / "elsewhere", src)  # not a repository: accepted
    check_output_folder(tmp_path / "project" / "new", src)
    for folder in (src, tmp_path / "project" / "notebooks", ROOT / "exercises"):
        with pytest.raises(ProtectedFolderError, match="refusing to write"):
            check_output_folder(folder, src)
