"""Course exercises for notebooks 01-05: autograder checks and student versions.

The exercise notebooks are ``exercises/NN_name.py`` (jupytext percent format), one per
chapter notebook ``notebooks/NN_name.py``. Each exercise has a markdown statement, a code
cell defining one function whose reference solution is marked in the nbgrader way,

.. code-block:: python

    def velocity(t, x):
        \"\"\"What the function returns.\"\"\"
        ### BEGIN SOLUTION
        return ...
        ### END SOLUTION

and a check cell ``check("01.1", velocity)``. :func:`strip` writes the student version: every
region from ``### BEGIN SOLUTION`` to ``### END SOLUTION`` becomes ``# YOUR CODE HERE`` and
``raise NotImplementedError()`` at the marker's indentation (nbgrader's student version), and
the markdown paragraph for teachers (it starts with ``*For teachers:*`` and says where the
reference solutions are) is dropped; everything else is kept. :func:`write_student_versions`
writes them as ``.py`` and ``.ipynb`` (``kacnb exercises --out DIR``); it never writes into
the project's own folders (:func:`check_output_folder`): not into the exercise sources, not
into ``notebooks/`` or ``exercises/``, and not into a folder holding files tracked by the
project's git repository, whatever ``force`` says.

:func:`check` is the autograder of one exercise: it compares the function with an
independent computation (Monte Carlo with a fixed seed, quadrature, finite differences of
the law, moments), prints one line when it agrees and raises :class:`ExerciseFailed` (an
``AssertionError``) with what differs otherwise; a function that raises, for instance the
student version's ``NotImplementedError``, fails its check too. Every check is seeded, runs
in float64 unless float32 is the point, and takes well under two seconds on one CPU thread.
The paper is arXiv:2506.20641v1; [n] is its equation n.
"""

from __future__ import annotations

import math
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.integrate as si
import torch

from .._root import PROJECT_ROOT
from ..cfm.metrics import grid_mixture
from ..theory.kac import Kac, kac_cdf, kac_density, kac_paths, kac_sample, kac_velocity
from ..theory.stats import kac_law, kolmogorov_pvalue, ks_distance, snap_atoms

__all__ = [
    "EXERCISES",
    "Exercise",
    "ExerciseFailed",
    "ProtectedFolderError",
    "SolutionMarkupError",
    "check_output_folder",
    "check",
    "run_check",
    "strip",
    "default_exercises_dir",
    "exercise_sources",
    "write_student_versions",
]

F64 = torch.float64
#: Seed of every check's generators (one generator per check, offset by the exercise).
SEED = 20250625
#: Agreement with a Monte-Carlo estimate: within this many standard errors.
Z_MAX = 5.0

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
#: A markdown paragraph starting with this is for teachers only: the student versions drop it.
TEACHERS_NOTE = "*For teachers:*"
#: The repository holding the ``kacnb`` package (its ``notebooks/`` and ``exercises/``).


# ---------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class Exercise:
    """One exercise: its id ``"NN.k"``, notebook stem, the function to write, a title."""

    id: str
    stem: str
    function: str
    title: str


EXERCISES: tuple[Exercise, ...] = (
    Exercise(
        "01.1",
        "01_velocity_explosion",
        "diffusion_velocity_norm_sq",
        "kinetic energy d/(4t) of the heat flow from a point mass (paper Section 3, [8-12])",
    ),
    Exercise(
        "01.2",
        "01_velocity_explosion",
        "coupling_velocity",
        "velocity -x/(1-t) of the coupling flow and its exploding Lipschitz constant ([6-7])",
    ),
    Exercise(
        "02.1",
        "02_kac_1d",
        "simulate_kac",
        "simulating K(t) by Poisson switching ([25-26], law [30-31])",
    ),
    Exercise(
        "02.2",
        "02_kac_1d",
        "kac_variance",
        "the variance of K(t): ballistic, then diffusive (Thm 9)",
    ),
    Exercise(
        "02.3",
        "02_kac_1d",
        "kac_velocity",
        "the Kac velocity field of Thm 4 [41], stable for large a t",
    ),
    Exercise(
        "02.4",
        "02_kac_1d",
        "kac_density",
        "the density [30-31] of K(t), stable for large a t, and the slip i1e(z)/z in its I1 term",
    ),
    Exercise(
        "03.1",
        "03_kac_multid",
        "increment_msd",
        "mean square increment of the componentwise process and the W2 bound (Prop 11)",
    ),
    Exercise(
        "03.2",
        "03_kac_multid",
        "kac_velocity_norm_sq",
        "the kinetic energy of the componentwise Kac flow stays below d c^2 (Prop 11)",
    ),
    Exercise(
        "04.1",
        "04_cfm_gmm_2d",
        "kac_cfm_target",
        "the conditional flow matching target from the sampled noise ([93], [97])",
    ),
    Exercise(
        "04.2",
        "04_cfm_gmm_2d",
        "mean_reverting_target",
        "the mean-reverting conditional velocity (Remark 17, [98-99])",
    ),
    Exercise(
        "05.1",
        "05_mnist",
        "mean_reverting_draw",
        "a training draw of the mean-reverting path on images: x_t and its target ([98-99])",
    ),
    Exercise(
        "05.2",
        "05_mnist",
        "euler_sample",
        "the explicit Euler sampler, backwards from T to 0 (Section 7)",
    ),
)

_BY_ID = {ex.id: ex for ex in EXERCISES}
#: Notebook stems with exercises, in order.
STEMS: tuple[str, ...] = tuple(dict.fromkeys(ex.stem for ex in EXERCISES))


class ExerciseFailed(AssertionError):
    """An exercise's function disagrees with the check (or raised); the message says how."""


class SolutionMarkupError(ValueError):
    """Unbalanced or nested ``### BEGIN SOLUTION`` / ``### END SOLUTION`` markers."""


class ProtectedFolderError(ValueError):
    """The output folder of the student versions is one of the project's own folders."""


# ---------------------------------------------------------------------------- check utilities
def _gen(ex: Exercise, k: int = 0) -> torch.Generator:
    major, minor = (int(p) for p in ex.id.split("."))
    return torch.Generator().manual_seed(SEED + 1000 * major + 10 * minor + k)


def _call(ex: Exercise, fn: Callable, *args):
    """Call the student's function; any exception becomes a failed check."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise ExerciseFailed(
            f"{ex.function} is not implemented yet: replace the lines '# YOUR CODE HERE' and "
            f"'raise NotImplementedError()' in its cell with your solution"
        ) from None
    except Exception as exc:
        raise ExerciseFailed(f"{ex.function} raised {type(exc).__name__}: {exc}") from exc


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ExerciseFailed(message)


def _scalar(ex: Exercise, value, what: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ExerciseFailed(
            f"{ex.function} must return a number for {what}, got {type(value).__name__}"
        ) from None
    _require(math.isfinite(out), f"{ex.function} returned {out} for {what}: not finite")
    return out


def _tensor(ex: Exercise, value, shape: tuple[int, ...], what: str, dtype=F64) -> torch.Tensor:
    try:
        out = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise ExerciseFailed(
            f"{ex.function} must return a tensor for {what}, got {type(value).__name__}"
        ) from None
    _require(
        tuple(out.shape) == shape,
        f"{ex.function} must return shape {shape} for {what}, got {tuple(out.shape)}",
    )
    out = out.to(dtype)
    bad = int((~torch.isfinite(out)).sum())
    _require(bad == 0, f"{ex.function} returned {bad} values that are not finite for {what}")
    return out


def _mean_se(samples: torch.Tensor) -> tuple[float, float]:
    n = samples.shape[0]
    return float(samples.mean()), float(samples.std()) / math.sqrt(n)


def _kac_var(a: float, c: float, t: float) -> float:
    """Reference ``Var K(t)`` by quadrature of the law [30-31]: atoms plus ``x^2 u~``."""
    tt = torch.tensor(t, dtype=F64)

    def integrand(x: float) -> float:
        return x * x * float(kac_density(tt, torch.tensor(x, dtype=F64), a, c))

    cont, _ = si.quad(integrand, 0.0, c * t, epsabs=0.0, epsrel=1e-11, limit=200)
    return (c * t) ** 2 * math.exp(-a * t) + 2.0 * cont


# ---------------------------------------------------------------------------- 01
def _check_01_1(ex: Exercise, fn: Callable) -> str:
    gen, n = _gen(ex), 20_000
    for d in (1, 3):
        for t in (1e-3, 0.1, 1.0):
            got = _scalar(ex, _call(ex, fn, t, d), f"t = {t:g}, d = {d}")
            x = math.sqrt(t) * torch.randn(n, d, generator=gen, dtype=F64)
            est, se = _mean_se((x / (2.0 * t)).pow(2).sum(-1))
            _require(
                abs(got - est) <= Z_MAX * se,
                f"at t = {t:g}, d = {d} it returned {got:.6g}; a Monte-Carlo estimate of "
                f"E|v_t(X)|^2 with X ~ N(0, t I_d) and v_t(x) = x/(2t) gives {est:.6g} "
                f"+- {se:.2g}",
            )

    def energy(eps: float, d: int = 2) -> float:
        # int_eps^1 of the norm, in the variable s = log t
        val, _ = si.quad(lambda s: fn(math.exp(s), d) * math.exp(s), math.log(eps), 0.0)
        return val

    energies = ", ".join(f"{energy(10.0**-k):.3g}" for k in (2, 4, 8, 16))
    return (
        f"matches Monte Carlo at t = 1e-3, 0.1, 1 and d = 1, 3; the kinetic energy "
        f"int_eps^1 |v_t|^2 dt in d = 2 for eps = 1e-2, 1e-4, 1e-8, 1e-16 is {energies}: "
        f"it grows like (d/4) log(1/eps), so [3] fails at t = 0"
    )


def _check_01_2(ex: Exercise, fn: Callable) -> str:
    gen, n, d = _gen(ex), 1000, 3
    z = torch.randn(n, d, generator=gen, dtype=F64)
    lips = []
    for t in (0.0, 0.5, 0.9, 0.999):
        x = (1.0 - t) * z
        v = _tensor(ex, _call(ex, fn, t, x), (n, d), f"t = {t:g}, x of shape {(n, d)}")
        # the particles move along x_s = (1 - s) z, so their velocity is -z
        err = float((v + z).abs().max())
        _require(
            err <= 1e-8 * (1.0 + float(z.abs().max())),
            f"at t = {t:g} the particles x_s = (1 - s) z have velocity dx_s/ds = -z, but "
            f"{ex.function}(t, x_t) differs from it by up to {err:.3g}",
        )
        # Lipschitz constant from differences in random directions
        u = torch.randn(n, d, generator=gen, dtype=F64)
        u = u / u.norm(dim=-1, keepdim=True)
        delta = 1e-3
        v2 = _tensor(ex, _call(ex, fn, t, x + delta * u), (n, d), f"t = {t:g}")
        lip = float(((v2 - v).norm(dim=-1) / delta).max())
        lips.append(lip)
        want = 1.0 / (1.0 - t)
        _require(
            abs(lip - want) <= 1e-6 * want,
            f"at t = {t:g} the Lipschitz constant of {ex.function}(t, .) measured by finite "
            f"differences is {lip:.6g}, expected 1/(1 - t) = {want:.6g}",
        )
    norm_sq = float(
        _tensor(ex, _call(ex, fn, 0.9, 0.1 * z), (n, d), "t = 0.9").pow(2).sum(-1).mean()
    )
    return (
        f"moves the particles along x_t = (1 - t) z; Lipschitz constants at t = 0, 0.5, 0.9, "
        f"0.999: {', '.join(f'{v:.4g}' for v in lips)}; their integral up to 1 - delta is "
        f"log(1/delta), unbounded, so [4] fails at t = 1 while |v_t|^2 stays near d = {d} "
        f"(here {norm_sq:.3g})"
    )


# ---------------------------------------------------------------------------- 02
def _check_02_1(ex: Exercise, fn: Callable) -> str:
    parts = []
    for k, (a, c, t) in enumerate(((2.0, 1.5, 0.5), (10.0, 1.0, 0.3))):
        n = 20_000
        gen = _gen(ex, k)
        what = f"(t, n, a, c) = ({t:g}, {n}, {a:g}, {c:g})"
        x = _tensor(ex, _call(ex, fn, t, n, a, c, gen), (n,), what)
        ct = c * t
        worst = float(x.abs().max())
        _require(
            worst <= ct * (1.0 + 1e-9),
            f"for {what} a draw has |K(t)| = {worst:.6g} > c t = {ct:g}: the particle cannot "
            f"be faster than c",
        )
        snapped, _ = snap_atoms(x, [-ct, ct], rtol=1e-9)
        p = 0.5 * math.exp(-a * t)
        se = math.sqrt(p * (1.0 - p) / n)
        for side, loc in (("right", ct), ("left", -ct)):
            share = float(np.mean(snapped == loc))
            _require(
                abs(share - p) <= Z_MAX * se,
                f"for {what} a share {share:.4f} of the draws is at the {side} atom {loc:+g}, "
                f"but no switch before t happens with probability e^(-a t) and then both "
                f"directions are equally likely: expected e^(-a t)/2 = {p:.4f} +- {se:.1g}",
            )

        law = kac_law(Kac(a, c), t, n_grid=513)  # CDF of [30-31] by quadrature
        dist = ks_distance(snapped, law.cdf, law.cdf_left)
        pval = kolmogorov_pvalue(dist, n)
        _require(
            pval >= 1e-4,
            f"for {what} the Kolmogorov-Smirnov distance to the law [30-31] is {dist:.4f} "
            f"(p-value {pval:.2g}): the draws do not follow the law of K(t)",
        )
        parts.append(f"(a, c, t) = ({a:g}, {c:g}, {t:g}): KS {dist:.4f}, p-value {pval:.2f}")
    return f"atoms and law agree with [30-31]: {'; '.join(parts)}"


def _check_02_2(ex: Exercise, fn: Callable) -> str:
    rows = []
    for a, c, t in ((1.0, 1.0, 0.5), (4.0, 2.0, 1e-4), (25.0, 5.0, 0.01), (25.0, 5.0, 2.0)):
        what = f"(t, a, c) = ({t:g}, {a:g}, {c:g})"
        got = _scalar(ex, _call(ex, fn, t, a, c), what)
        ref = _kac_var(a, c, t)
        _require(
            abs(got - ref) <= 1e-7 * ref,
            f"for {what} it returned {got:.10g}; the second moment of the law [30-31] "
            f"(atoms (c t)^2 e^(-a t) plus the integral of x^2 u~(t, x)) is {ref:.10g}",
        )
        rows.append(
            f"t = {t:g}: {got:.4g} (c^2 t^2 = {(c * t) ** 2:.4g}, sigma^2 t = {c * c / a * t:.4g})"
        )
    return "matches the quadrature of the law; " + "; ".join(rows)


def _check_02_3(ex: Exercise, fn: Callable) -> str:
    # (a) the continuity equation: d/dt P(K(t) <= x) = -u~(t, x) v(t, x) inside the cone
    worst = 0.0
    for a, c, t in ((4.0, 2.0, 0.7), (25.0, 5.0, 0.3)):
        ct = c * t
        x = torch.linspace(-0.98 * ct, 0.98 * ct, 81, dtype=F64)
        h = 1e-4 * t
        tp, tm = torch.full_like(x, t + h), torch.full_like(x, t - h)
        dF = (kac_cdf(tp, x, a, c) - kac_cdf(tm, x, a, c)) / (2.0 * h)
        ref = -dF / kac_density(torch.full_like(x, t), x, a, c)
        what = f"(a, c, t) = ({a:g}, {c:g}, {t:g})"
        got = _tensor(ex, _call(ex, fn, torch.full_like(x, t), x, a, c), (81,), what)
        err = float((got - ref).abs().max()) / c
        worst = max(worst, err)
        _require(
            err <= 1e-5,
            f"for {what} the velocity differs from the flux of the law, "
            f"v = -(d/dt P(K(t) <= x)) / u~(t, x), by up to {err:.3g} c inside the light cone",
        )
    # (b) the bound |v| <= c and finite values far into the diffusive regime
    a, c = 25.0, 5.0
    for t in (1e-6, 1e-2, 1.0, 100.0, 2000.0):
        x = torch.linspace(-c * t, c * t, 101, dtype=F64)
        tt = torch.full_like(x, t)
        got = _tensor(ex, _call(ex, fn, tt, x, a, c), (101,), f"a t = {a * t:g} (a = 25, c = 5)")
        over = float(got.abs().max())
        _require(
            over <= c * (1.0 + 1e-12),
            f"at a t = {a * t:g} it returned |v| = {over:.6g} > c = {c:g}",
        )
        _require(
            abs(float(got[0]) + c) <= 1e-12 * c and abs(float(got[-1]) - c) <= 1e-12 * c,
            f"at a t = {a * t:g} the atoms x = -c t, +c t move with velocity -c, +c; got "
            f"{float(got[0]):.6g}, {float(got[-1]):.6g}",
        )
    # (c) just inside the cone v tends to c t/(t + 2/a) (the jump at the atoms): points one to
    # four float64 steps inside, where r = sqrt(c^2 t^2 - x^2) can round to 0 (the r -> 0
    # limit of the hint is needed there), and a little further in, for 300 times
    t = torch.logspace(-3.0, math.log10(3.0), 300, dtype=F64)
    ct = c * t
    inner = [ct * (1.0 - d) for d in (1e-14, 1e-12)]
    edge = ct
    for _ in range(4):
        edge = torch.nextafter(edge, torch.zeros_like(edge))
        inner.append(edge)
    x = torch.cat([sign * xi for sign in (1.0, -1.0) for xi in inner])
    tt = t.repeat(2 * len(inner))
    what = "just inside the light cone (|x| = c t less 1 to 4 float64 steps, or c t (1 - 1e-12))"
    got = _call(ex, fn, tt, x, a, c)
    got = _tensor(
        ex,
        got,
        tuple(x.shape),
        f"{what}: there r I0(beta r)/(c I1(beta r)) is 0/0 when r rounds to 0; write it "
        f"through I1(z)/z and use its limit 1/2 at z = 0",
    )
    # reference: the expansion I0(z)/(I1(z)/z) = 2 + z^2/4 + O(z^4), with r from the exact
    # difference c t - |x|; z < 1e-4 here, so the neglected terms are below 1e-16
    ctt = c * tt
    r = torch.sqrt((ctt - x.abs()) * (ctt + x.abs()))
    z = (a / c) * r
    ref = x / (tt + (2.0 + z * z / 4.0) / a)
    bad = (got - ref).abs() > 1e-9 * c
    if bool(bad.any()):
        i = int(torch.nonzero(bad)[0])
        _require(
            False,
            f"{what} it returned {float(got[i]):.8g} at t = {float(tt[i]):.6g}, "
            f"x = {float(x[i]):.17g} ({int(bad.sum())} of {x.numel()} points differ); as "
            f"r -> 0 the formula [41] tends to x/(t + 2/a) = {float(ref[i]):.8g}: take the "
            f"limit I1(z)/z -> 1/2 at z = 0",
        )
    want = c * 0.3 / (0.3 + 2.0 / a)
    return (
        f"agrees with the flux of the law (max error {worst:.1g} c), |v| <= c with v = +-c on "
        f"the atoms for a t up to 5e4, and v -> c t/(t + 2/a) (= {want:.4g} < c at t = 0.3) "
        f"just inside the cone"
    )


def _series_density(t: float, x: np.ndarray, a: float, c: float) -> np.ndarray:
    """``u~(t, x)`` [30-31] from the Poisson-Beta construction, without Bessel functions:
    given ``n >= 1`` switches ``K/(ct) = B (2Y - 1)``, ``Y ~ Beta(floor(n/2)+1, ceil(n/2))``,
    so ``u~ = sum_n P(N = n) (f_n((1+u)/2) + f_n((1-u)/2)) / (4 c t)``, ``u = x/(ct)``."""
    import scipy.stats as st

    at, ct = a * t, c * t
    u = x / ct
    n_max = int(at + 12.0 * math.sqrt(at) + 30.0)
    out = np.zeros_like(x)
    for n in range(1, n_max + 1):
        al, be = n // 2 + 1, (n + 1) // 2
        f = st.beta.pdf((1.0 + u) / 2.0, al, be) + st.beta.pdf((1.0 - u) / 2.0, al, be)
        out += st.poisson.pmf(n, at) * f / (4.0 * ct)
    return out


def _check_02_4(ex: Exercise, fn: Callable) -> str:
    from ..theory.prefix_law import parity_parts

    # (a) pointwise against the Poisson-Beta series, for pairs with a != c
    worst = 0.0
    for a, c, t in ((4.0, 2.0, 0.7), (25.0, 5.0, 0.3), (9.0, 3.0, 1.0)):
        ct = c * t
        x = torch.linspace(-0.98 * ct, 0.98 * ct, 99, dtype=F64)
        tt = torch.full_like(x, t)
        what = f"(a, c, t) = ({a:g}, {c:g}, {t:g})"
        got = _tensor(ex, _call(ex, fn, tt, x, a, c), (99,), what)
        ref = torch.as_tensor(_series_density(t, x.numpy(), a, c), dtype=F64)
        err = float(((got - ref).abs() / ref).max())
        if err > 1e-9:
            odd, even = parity_parts(tt, x, a, c)
            slip = odd + (c / a) * even
            if float(((got - slip).abs() / slip).max()) <= 1e-9:
                _require(
                    False,
                    f"for {what} the I1 term of your density is a factor c/a = {c / a:g} too "
                    f"small: you divided i1e(z) by z = (a/c) r, but [30-31] has I1(beta r)/r, "
                    f"so divide by r (or multiply i1e(z)/z by a/c). The slip is invisible for "
                    f"a = c; the authors' public sampler had it until a later fix",
                )
            _require(
                False,
                f"for {what} the density differs from the Poisson-Beta series of the law "
                f"[30-31] by up to {err:.3g} (relative) inside the light cone",
            )
        worst = max(worst, err)
    # (b) mass 1 - exp(-a t) for large a t (composite Gauss-Legendre over +-12 sd, where the
    # law lives; the variance of K(t) is below c^2 t / a)
    gx, gw = np.polynomial.legendre.leggauss(32)
    masses = []
    for a, c, t in ((25.0, 5.0, 2.0), (1600.0, 10.0, 1.0), (1600.0, 10.0, 5.0)):
        ct = c * t
        half = min(ct, 12.0 * c * math.sqrt(t / a))
        edges = np.linspace(-half, half, 41)
        lo, hi = edges[:-1, None], edges[1:, None]
        nodes = torch.as_tensor(((lo + hi) / 2 + (hi - lo) / 2 * gx).reshape(-1), dtype=F64)
        weights = torch.as_tensor(((hi - lo) / 2 * gw).reshape(-1), dtype=F64)
        what = f"a t = {a * t:g} ((a, c, t) = ({a:g}, {c:g}, {t:g}))"
        got = _tensor(ex, _call(ex, fn, torch.full_like(nodes, t), nodes, a, c), nodes.shape, what)
        mass = float((got * weights).sum())
        want = -math.expm1(-a * t)
        _require(
            abs(mass - want) <= 1e-8,
            f"at {what} the density integrates to {mass:.10g}, but the continuous part of the "
            f"law has mass 1 - e^(-a t) = {want:.10g}",
        )
        masses.append(f"{a * t:g}")
    # (c) the edge of the cone: I1(beta r)/r -> beta/2, so u~ -> a/(2c) e^(-at) (1 + a t/2)
    a, c, t = 25.0, 5.0, 0.3
    ct = c * t
    x = torch.tensor([-ct, ct], dtype=F64) * (1.0 - 1e-14)
    got = _tensor(ex, _call(ex, fn, torch.full_like(x, t), x, a, c), (2,), "the edge of the cone")
    want = a / (2.0 * c) * math.exp(-a * t) * (1.0 + a * t / 2.0)
    _require(
        float((got - want).abs().max()) <= 1e-9 * want,
        f"at x = +-c t (1 - 1e-14), t = {t:g}, it returned {float(got[0]):.10g}, "
        f"{float(got[1]):.10g}; as r -> 0, I1(beta r)/r -> beta/2 and u~ tends to "
        f"a/(2c) e^(-a t) (1 + a t/2) = {want:.10g}",
    )
    # (d) 0 on and off the cone (the atoms are not part of u~)
    x = torch.tensor([-2.0 * ct, -ct, ct, 2.0 * ct], dtype=F64)
    got = _tensor(ex, _call(ex, fn, torch.full_like(x, t), x, a, c), (4,), "|x| >= c t")
    _require(
        bool((got == 0).all()),
        f"for |x| >= c t the density must be 0 (the atoms at +-c t are separate); got "
        f"{got.tolist()} at x = -2ct, -ct, ct, 2ct",
    )
    return (
        f"matches the Poisson-Beta series (max relative error {worst:.1g}) for (a, c) = (4, 2), "
        f"(25, 5), (9, 3); mass 1 - e^(-a t) at a t = {', '.join(masses)}; the edge limit "
        f"a/(2c) e^(-at)(1 + at/2) and 0 off the cone"
    )


# ---------------------------------------------------------------------------- 03
def _check_03_1(ex: Exercise, fn: Callable) -> str:
    a, c, d, s, n = 4.0, 2.0, 2, 0.5, 10_000
    gen = _gen(ex)
    rows = []
    for tau in (0.05, 0.3, 1.0):
        what = f"(tau, a, c, d) = ({tau:g}, {a:g}, {c:g}, {d})"
        got = _scalar(ex, _call(ex, fn, tau, a, c, d), what)
        times = torch.tensor([s, s + tau], dtype=F64)
        k = kac_paths(times, n, a, c, dim=d, generator=gen)
        est, se = _mean_se((k[1] - k[0]).pow(2).sum(-1))
        _require(
            abs(got - est) <= Z_MAX * se,
            f"for {what} it returned {got:.5g}; simulated paths give E|K(s + tau) - K(s)|^2 = "
            f"{est:.5g} +- {se:.2g} (s = {s:g})",
        )
        bound = d * c * c * tau * tau
        _require(got <= bound * (1.0 + 1e-12), f"for {what}: {got:.5g} > d c^2 tau^2 = {bound:.5g}")
        rows.append(
            f"tau = {tau:g}: sqrt = {math.sqrt(got):.4f} <= sqrt(d) c tau = {math.sqrt(bound):.4f}"
        )
    return "matches simulated paths; W2(mu_s, mu_s+tau) <= " + "; ".join(rows)


def _check_03_2(ex: Exercise, fn: Callable) -> str:
    a, c, n = 25.0, 5.0, 20_000
    gen = _gen(ex)
    rows = []
    for d in (2, 3):
        for t in (1e-3, 0.05, 1.0) if d == 2 else (0.2,):
            what = f"(t, a, c, d) = ({t:g}, {a:g}, {c:g}, {d})"
            got = _scalar(ex, _call(ex, fn, t, a, c, d), what)
            tt = torch.full((n,), t, dtype=F64)
            k = kac_sample(tt, a, c, dim=d, generator=gen)
            v = kac_velocity(tt.unsqueeze(-1), k, a, c)
            est, se = _mean_se(v.pow(2).sum(-1))
            _require(
                abs(got - est) <= Z_MAX * se + 1e-9 * est,
                f"for {what} it returned {got:.6g}; the Monte-Carlo mean of |v(t, K(t))|^2 "
                f"over draws of K(t) is {est:.6g} +- {se:.2g}",
            )
            _require(got <= d * c * c * (1.0 + 1e-12), f"for {what}: {got:.6g} > d c^2")
            if d == 2:
                rows.append(f"t = {t:g}: {got:.4g} (diffusion d/(4t) = {d / (4 * t):.4g})")
    return f"matches Monte Carlo, stays below d c^2 = {2 * c * c:g} in d = 2: " + "; ".join(rows)


# ---------------------------------------------------------------------------- 04
def _check_04_1(ex: Exercise, fn: Callable) -> str:
    a, c, n, d = 25.0, 5.0, 20_000, 2
    gen = _gen(ex)
    gmm = grid_mixture(std=1e-4, dtype=torch.float32)
    x0 = gmm.sample(n, generator=gen)
    t = 0.04 * torch.rand(n, generator=gen, dtype=torch.float32)
    k = kac_sample(t, a, c, dim=d, generator=gen)
    got = _call(ex, fn, t, x0, k, a, c)
    _require(
        isinstance(got, torch.Tensor) and got.dtype == torch.float32,
        f"{ex.function} should return a float32 tensor like its inputs (training runs in "
        f"float32), got {getattr(got, 'dtype', type(got).__name__)}",
    )
    got = _tensor(ex, got, (n, d), "float32 training draws")
    on_atom = k.abs() == (c * t).unsqueeze(-1)
    share = float(on_atom.double().mean())
    atom_err = float((got[on_atom] - c * torch.sign(k[on_atom].double())).abs().max())
    _require(
        atom_err <= 1e-6 * c,
        f"on the atoms (|K(t)| = c t, {share:.0%} of the components here) the target must be "
        f"exactly +-c, but it is off by up to {atom_err:.3g}. Did you recompute the noise as "
        f"x_t - x0 in float32? That round trip moves the atoms inside the light cone, where "
        f"[41] gives about c t/(t + 2/a); use the sampled K(t) itself",
    )
    # off the atoms: the float64 field at the same draws (near an atom float32 may round
    # either way, so the atoms are compared above and excluded here)
    ref = kac_velocity(t.double().unsqueeze(-1), k.double(), a, c)
    err = float((got - ref)[~on_atom].abs().max())
    _require(
        err <= 1e-4 * c,
        f"the target differs from v(t, K(t)) (Thm 14, [93]) by up to {err:.3g}",
    )
    return (
        f"exactly +-c on the atoms ({share:.0%} of the components for t < 0.04) and "
        f"v(t, K(t)) elsewhere (max error {err:.1g})"
    )


def _check_04_2(ex: Exercise, fn: Callable) -> str:
    a, c, d, T, n = 4.0, 2.0, 2, 1.0, 50_000
    gen = _gen(ex)
    x0 = torch.tensor([1.0, -0.5], dtype=F64).expand(n, d)
    rows = []
    for t in (0.3, 0.7):
        tt = torch.full((n,), t, dtype=F64)
        k = kac_sample(tt, a, c, dim=d, generator=gen)
        what = f"t = {t:g}, (a, c, T) = ({a:g}, {c:g}, {T:g})"
        v = _tensor(ex, _call(ex, fn, tt, x0, k, a, c, T), (n, d), what)
        f, df = 1.0 - t / T, -1.0 / T
        xt = f * x0 + k
        # d/dt E[X_t | x0] = f'(t) x0, since E K(t) = 0
        for i in range(d):
            est, se = _mean_se(v[:, i])
            want = df * float(x0[0, i])
            _require(
                abs(est - want) <= Z_MAX * se,
                f"at {what} the mean of component {i} of the target is {est:.4f} +- {se:.1g}, "
                f"but d/dt E[X_t | x0] = f'(t) x0 = {want:.4f}",
            )
        # d/dt E|X_t|^2 / 2 = E[X_t . v] = f f' |x0|^2 + (d/2) (c^2/a)(1 - e^(-2 a t))
        est, se = _mean_se((xt * v).sum(-1))
        want = f * df * float(x0[0].pow(2).sum()) + 0.5 * d * (c * c / a) * (
            1.0 - math.exp(-2.0 * a * t)
        )
        _require(
            abs(est - want) <= Z_MAX * se,
            f"at {what} E[X_t . v] = {est:.4f} +- {se:.1g}, but the target must move "
            f"E|X_t|^2/2 at the rate f f'|x0|^2 + (d/2)(c^2/a)(1 - e^(-2at)) = {want:.4f}",
        )
        dev = float((v - df * x0).abs().max())
        _require(dev <= c * (1.0 + 1e-12), f"at {what}: |v - f'(t) x0| reaches {dev:.4g} > c")
        rows.append(f"t = {t:g}: E[X.v] = {est:.3f} (exact {want:.3f})")
    return "moves the mean and the second moment of X_t | x0 correctly: " + "; ".join(rows)


# ---------------------------------------------------------------------------- 05
def _check_05_1(ex: Exercise, fn: Callable) -> str:
    n, shape = 8, (1, 28, 28)
    x0 = 2.0 * torch.rand(n, *shape, generator=_gen(ex), dtype=F64) - 1.0
    per_row = [1] * len(shape)

    def draw(t: torch.Tensor, a: float, c: float, T: float, k: int, what: str):
        out = _call(ex, fn, t, x0, a, c, T, _gen(ex, k))
        _require(
            isinstance(out, tuple | list) and len(out) == 2,
            f"{ex.function} must return the pair (x_t, target), got {type(out).__name__}",
        )
        x_t = _tensor(ex, out[0], tuple(x0.shape), f"x_t at {what}")
        target = _tensor(ex, out[1], tuple(x0.shape), f"the target at {what}")
        tt = t.reshape(n, *per_row)
        noise = x_t - (1.0 - tt / T) * x0  # K(t), up to the rounding of x_t
        kac_part = target + x0 / T  # target - f'(t) x0
        ct = c * tt
        over = float((noise.abs() - ct).max())
        _require(
            over <= 1e-9 * c,
            f"at {what} x_t - f(t) x0 exceeds c t by up to {over:.3g}: the noise K(t) moves at "
            f"most c t, so x_t must be f(t) x0 + K(t) with f(t) = 1 - t/T (one t per image)",
        )
        on_atom = noise.abs() >= ct * (1.0 - 1e-9)
        want = c * torch.sign(noise)
        atom_err = float((kac_part - want)[on_atom].abs().max()) if bool(on_atom.any()) else 0.0
        _require(
            atom_err <= 1e-9 * c,
            f"at {what} the pixels on an atom |K(t)| = c t must have the target f'(t) x0 +- c "
            f"exactly, but it is off by up to {atom_err:.3g}. Did you evaluate v at "
            f"x_t - f(t) x0? That round trip changes K(t) in its last bits and moves an atom "
            f"inside the light cone, where v is about c t/(t + 2/a); use the sampled K(t)",
        )
        ref = kac_velocity(tt.expand_as(noise), noise, a, c)
        err = float((kac_part - ref)[~on_atom].abs().max())
        _require(
            err <= 1e-8 * c,
            f"at {what} the target differs from f'(t) x0 + v(t, x_t - f(t) x0) [99] by up to "
            f"{err:.3g} off the atoms (f'(t) = -1/T)",
        )
        return noise, on_atom

    def law_test(noise: torch.Tensor, on_atom: torch.Tensor, t: float, a: float, c: float, what):
        m = noise.numel()
        p = math.exp(-a * t)
        share = float(on_atom.double().mean())
        se = math.sqrt(max(p * (1.0 - p), 1.0 / m) / m)
        _require(
            abs(share - p) <= Z_MAX * se,
            f"at {what} a share {share:.4f} of the pixels sits on an atom |K(t)| = c t; no "
            f"switch before t happens with probability e^(-a t) = {p:.4f} +- {se:.1g}",
        )
        snapped, _ = snap_atoms(noise.reshape(-1), [-c * t, c * t], rtol=1e-9)
        law = kac_law(Kac(a, c), t, n_grid=513)
        dist = ks_distance(snapped, law.cdf, law.cdf_left)
        pval = kolmogorov_pvalue(dist, m)
        _require(
            pval >= 1e-4,
            f"at {what} the Kolmogorov-Smirnov distance of x_t - f(t) x0 to the law of K(t) "
            f"[30-31] is {dist:.4f} (p-value {pval:.2g}, {m} pixels): are the pixels "
            f"independent draws of K(t)?",
        )
        return pval

    rows = []
    # (a) one time for every image: the pixels are n * 784 draws of K(t)
    for k, (t, a, c, T) in enumerate(((0.05, 25.0, 5.0, 1.0), (0.6, 25.0, 5.0, 5.0))):
        what = f"t = {t:g} for all images, (a, c, T) = ({a:g}, {c:g}, {T:g})"
        tt = torch.full((n,), t, dtype=F64)
        noise, on_atom = draw(tt, a, c, T, 1 + k, what)
        pval = law_test(noise, on_atom, t, a, c, what)
        rows.append(f"t = {t:g}: KS p-value {pval:.2f}, {float(on_atom.double().mean()):.1%} atoms")
    # (b) one time per image: each image follows the law at its own time
    a, c, T = 4.0, 2.0, 5.0
    times = torch.linspace(0.05, 1.2, n, dtype=F64)
    noise, on_atom = draw(times, a, c, T, 3, "one t per image, (a, c, T) = (4, 2, 5)")
    for i, t in enumerate(times.tolist()):
        law_test(noise[i], on_atom[i], t, a, c, f"t = {t:.3g} (image {i} of a batch of times)")
    # (c) reproducible: the same generator state gives the same draw
    tt = torch.full((n,), 0.05, dtype=F64)
    first = [torch.as_tensor(v).clone() for v in _call(ex, fn, tt, x0, 25.0, 5.0, 1.0, _gen(ex, 1))]
    again = [torch.as_tensor(v) for v in _call(ex, fn, tt, x0, 25.0, 5.0, 1.0, _gen(ex, 1))]
    _require(
        all(torch.equal(u, v) for u, v in zip(first, again, strict=True)),
        f"two calls with generators in the same state gave different draws: draw every random "
        f"number of {ex.function} from generator",
    )
    return (
        "x_t - f(t) x0 follows the law of K(t) pixel by pixel ("
        + "; ".join(rows)
        + "; 8 times per image), the target is f'(t) x0 +- c on the atoms and [99] elsewhere"
    )


class _Field:
    """The velocity handed to an Euler sampler: ``g(t) w + lam x``; records the times asked."""

    def __init__(self, ex: Exercise, x_T: torch.Tensor, w: torch.Tensor, lam: float):
        self.ex, self.n, self.shape, self.w, self.lam = ex, x_T.shape[0], x_T.shape, w, lam
        self.times: list[float] = []

    @staticmethod
    def g(s: float) -> float:
        return math.cos(3.0 * s) + s * s

    def __call__(self, t, x):
        n = self.n
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != (n,):
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise TypeError(
                f"the velocity takes one time per image, a tensor t of shape ({n},) like the "
                f"U-Net of notebook 05, got {got}"
            )
        if not isinstance(x, torch.Tensor) or x.shape != self.shape or x.dtype != t.dtype:
            raise TypeError(
                f"the velocity takes x of shape {tuple(self.shape)} and t of the dtype of x, "
                f"got x {getattr(x, 'shape', type(x).__name__)} and t {t.dtype}"
            )
        if bool((t != t[0]).any()):
            raise ValueError("the velocity got different times for the images of one step")
        s = float(t[0])
        self.times.append(s)
        return self.g(s) * self.w + self.lam * x


def _check_05_2(ex: Exercise, fn: Callable) -> str:
    gen = _gen(ex)
    n, shape, lam = 4, (1, 28, 28), 0.5
    rows = []
    for T, steps in ((1.0, 10), (5.0, 50)):
        what = f"T = {T:g}, {steps} steps"
        h = T / steps
        x_T = torch.randn(n, *shape, generator=gen, dtype=F64)
        w = torch.randn(1, *shape, generator=gen, dtype=F64)
        kept = x_T.clone()
        field = _Field(ex, x_T, w, lam)
        out = _tensor(ex, _call(ex, fn, field, x_T, T, steps), tuple(x_T.shape), what)
        _require(
            torch.equal(x_T, kept),
            f"at {what} {ex.function} changed x_T in place; return a new tensor and leave the "
            f"latent as it was",
        )
        nodes = [T - k * h for k in range(steps)]
        asked = field.times
        _require(
            len(asked) == steps,
            f"at {what} the velocity was evaluated {len(asked)} times; explicit Euler evaluates "
            f"it once per step ({steps})",
        )
        off = max(abs(u - v) for u, v in zip(asked, nodes, strict=True))
        _require(
            off <= 1e-12 * T,
            f"at {what} the velocity was evaluated at t = "
            f"{', '.join(f'{u:.4g}' for u in asked[:3])}, ...; explicit Euler backwards with "
            f"h = T/N = {h:g} uses the start of each step, t_k = T - k h = "
            f"{', '.join(f'{u:.4g}' for u in nodes[:3])}, ...",
        )
        # closed form of the iterates x_{k+1} = (1 - h lam) x_k - h g(t_k) w
        q = 1.0 - h * lam
        coef = math.fsum(q ** (steps - 1 - k) * field.g(nodes[k]) for k in range(steps))
        want = q**steps * x_T - h * coef * w
        err = float((out - want).abs().max()) / float(want.abs().max())
        _require(
            err <= 1e-10,
            f"at {what} the result differs from x_N of x_(k+1) = x_k - h v(t_k, x_k) by up to "
            f"{err:.3g} (relative); the steps go backwards in time, from x_T at t = T to t = 0",
        )
        rows.append(f"T = {T:g} in {steps} steps of h = {h:g}")
    return (
        "takes explicit Euler steps x_(k+1) = x_k - h v(t_k, x_k) at t_k = T - k h, one "
        "velocity call per step, latent untouched: " + "; ".join(rows)
    )


_CHECKS: dict[str, Callable[[Exercise, Callable], str]] = {
    "01.1": _check_01_1,
    "01.2": _check_01_2,
    "02.1": _check_02_1,
    "02.2": _check_02_2,
    "02.3": _check_02_3,
    "02.4": _check_02_4,
    "03.1": _check_03_1,
    "03.2": _check_03_2,
    "04.1": _check_04_1,
    "04.2": _check_04_2,
    "05.1": _check_05_1,
    "05.2": _check_05_2,
}


def run_check(exercise_id: str, fn: Callable) -> str:
    """Check ``fn`` for exercise ``exercise_id`` ("02.1"); returns a one-line summary.

    Raises :class:`ExerciseFailed` (an ``AssertionError``) saying what differs, and
    ``KeyError`` for an unknown id.
    """
    ex = _BY_ID.get(exercise_id)
    if ex is None:
        raise KeyError(f"unknown exercise {exercise_id!r}; exercises: {', '.join(_BY_ID)}")
    if not callable(fn):
        raise ExerciseFailed(f"exercise {ex.id}: pass the function {ex.function}, not {fn!r}")
    with torch.no_grad():
        try:
            summary = _CHECKS[ex.id](ex, fn)
        except ExerciseFailed as exc:
            raise ExerciseFailed(f"exercise {ex.id} ({ex.title}): {exc}") from exc.__cause__
    return f"exercise {ex.id} passed: {summary}"


def check(exercise_id: str, fn: Callable) -> None:
    """The autograder cell of an exercise: prints the summary or raises ExerciseFailed."""
    print(run_check(exercise_id, fn))


# ---------------------------------------------------------------------------- student versions
_MARK = re.compile(r"^(?P<indent>[ \t]*)(?P<mark>### (?:BEGIN|END) SOLUTION)[ \t]*$")


def strip(source_text: str) -> str:
    """The student version of an exercise source: solution regions replaced by a stub, the
    note for teachers dropped.

    Each region from a line ``### BEGIN SOLUTION`` to the next line ``### END SOLUTION``
    (markers included) becomes ``# YOUR CODE HERE`` and ``raise NotImplementedError()`` at
    the indentation of the BEGIN marker. A markdown paragraph (``# ...`` lines up to a blank
    ``#`` line) whose first line starts with ``# *For teachers:*`` is removed with the blank
    line that follows it (or, at the end of a cell, the one before it). Every other line is
    kept as it is. Raises :class:`SolutionMarkupError` (with the line number) for an END
    without BEGIN, a BEGIN inside a region, or a region that is not closed.
    """
    out: list[str] = []
    begin_line = None
    for number, line in enumerate(source_text.splitlines(keepends=True), start=1):
        m = _MARK.match(line.rstrip("\r\n"))
        if m is None:
            if begin_line is None:
                out.append(line)
            continue
        if m["mark"] == BEGIN:
            if begin_line is not None:
                raise SolutionMarkupError(
                    f"line {number}: {BEGIN} inside the solution opened on line {begin_line}"
                )
            begin_line = number
            out.extend(f"{m['indent']}{stub}\n" for stub in STUB)
        else:
            if begin_line is None:
                raise SolutionMarkupError(f"line {number}: {END} without {BEGIN}")
            begin_line = None
    if begin_line is not None:
        raise SolutionMarkupError(f"line {begin_line}: {BEGIN} is never closed by {END}")
    return "".join(_drop_teachers_notes(out))


def _drop_teachers_notes(lines: list[str]) -> list[str]:
    def bare(line: str) -> str:
        return line.rstrip("\r\n")

    def is_text(line: str) -> bool:  # a non-blank line of a markdown paragraph
        text = bare(line)
        return text.startswith("# ") and not text.startswith("# %%") and bool(text[2:].strip())

    out: list[str] = []
    i = 0
    while i < len(lines):
        if not bare(lines[i]).startswith(f"# {TEACHERS_NOTE}"):
            out.append(lines[i])
            i += 1
            continue
        i += 1
        while i < len(lines) and is_text(lines[i]):
            i += 1
        if i < len(lines) and bare(lines[i]) == "#":
            i += 1  # the blank line separating it from the next paragraph
        elif out and bare(out[-1]) == "#":
            out.pop()  # it closed its cell: the blank line before it goes instead
    return out


def default_exercises_dir() -> Path:
    """``./exercises`` if it exists in the working directory, else the repository's one."""
    cwd_dir = Path.cwd() / "exercises"
    if cwd_dir.is_dir():
        return cwd_dir.resolve()
    return (PROJECT_ROOT / "exercises").resolve()


def exercise_sources(source_dir: str | Path | None = None) -> list[Path]:
    """The exercise notebooks ``<source_dir>/NN_name.py``, in order; all must exist."""
    src = Path(source_dir) if source_dir is not None else default_exercises_dir()
    if not src.is_dir():
        raise NotADirectoryError(f"exercises folder {src} does not exist")
    paths = [src / f"{stem}.py" for stem in STEMS]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"exercises folder {src} lacks {', '.join(missing)}")
    return paths


def _git_lines(folder: Path, *args: str) -> list[str] | None:
    """Output lines of ``git -C folder args``; None when git is missing or fails there."""
    try:
        res = subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.splitlines() if res.returncode == 0 else None


def _toplevel(folder: Path) -> Path | None:
    lines = _git_lines(folder, "rev-parse", "--show-toplevel")
    return Path(lines[0]).resolve() if lines else None


def check_output_folder(out_dir: str | Path, source_dir: str | Path | None = None) -> None:
    """Refuse (:class:`ProtectedFolderError`, one line) to write student versions into the
    project: the exercise sources' folder, the ``notebooks/`` and ``exercises/`` folders
    beside it and in :data:`PROJECT_ROOT` (or any folder below them), and any folder holding
    files tracked by the git repository of the sources or of the package. A new or untracked
    folder (for instance below the git-ignored ``runs/``) or one outside the repository is
    accepted.
    """
    out = Path(out_dir)
    target = out.resolve()
    src = (Path(source_dir) if source_dir is not None else default_exercises_dir()).resolve()
    protected = {src: "the exercise sources"}
    for root in (src.parent, PROJECT_ROOT):
        protected.setdefault(root / "notebooks", "the project's notebooks/ folder")
        protected.setdefault(root / "exercises", "the project's exercises/ folder")
    advice = "choose a new folder outside the repository or below runs/, e.g. --out runs/student"
    for folder, what in protected.items():
        if target == folder or folder in target.parents:
            where = "is" if target == folder else "is inside"
            raise ProtectedFolderError(
                f"refusing to write the student versions into {out}: it {where} {what} "
                f"({folder}), which they would overwrite; {advice}"
            )
    if not target.is_dir():
        return
    top = _toplevel(target)
    if top is None or top not in {_toplevel(src), _toplevel(PROJECT_ROOT)}:
        return
    tracked = _git_lines(target, "ls-files")
    if tracked:
        raise ProtectedFolderError(
            f"refusing to write the student versions into {out}: it holds files tracked by "
            f"the project's git repository ({len(tracked)}, e.g. {tracked[0]}); {advice}"
        )


def write_student_versions(
    out_dir: str | Path, source_dir: str | Path | None = None, *, force: bool = False
) -> list[Path]:
    """Write the student versions (solutions and the teachers' note stripped) as
    ``NN_name.py`` and ``.ipynb``.

    A folder of the project is always refused (:func:`check_output_folder`,
    :class:`ProtectedFolderError`), ``force`` or not. ``out_dir`` is created if needed; any
    other existing non-empty folder is refused (``FileExistsError``) unless ``force``, which
    replaces the files of the same names. Returns the written paths.
    """
    out = Path(out_dir)
    sources = exercise_sources(source_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output folder {out} is a file")
    check_output_folder(out, source_dir)
    if out.is_dir() and any(out.iterdir()) and not force:
        raise FileExistsError(
            f"output folder {out} is not empty; choose another folder or pass --force to "
            f"replace its student versions"
        )
    student = []
    for src in sources:
        try:
            student.append((src.stem, strip(src.read_text(encoding="utf-8"))))
        except SolutionMarkupError as exc:
            raise SolutionMarkupError(f"{src}: {exc}") from None
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, text in student:
        written += _write_student(out, stem, text)
    return written


def _write_student(out: Path, stem: str, text: str) -> list[Path]:
    """Write one student version as ``out/stem.py`` and ``out/stem.ipynb``."""
    import jupytext

    py = out / f"{stem}.py"
    py.write_text(text, encoding="utf-8")
    nb = jupytext.reads(text, fmt="py:percent")
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3",
        "language": "python",
        "name": "python3",
    }
    ipynb = out / f"{stem}.ipynb"
    jupytext.write(nb, ipynb, fmt="ipynb")
    return [py, ipynb]
