"""Course exercises for notebooks 01-04: autograder checks and student versions.

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
``raise NotImplementedError()`` at the marker's indentation (nbgrader's student version);
everything else is kept. :func:`write_student_versions` writes them as ``.py`` and
``.ipynb`` (``kacnb exercises --out DIR``).

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.integrate as si
import torch

from .kac import Kac, kac_cdf, kac_density, kac_paths, kac_sample, kac_velocity
from .metrics import grid_mixture
from .stats import kac_law, kolmogorov_pvalue, ks_distance, snap_atoms

__all__ = [
    "EXERCISES",
    "Exercise",
    "ExerciseFailed",
    "SolutionMarkupError",
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
)

_BY_ID = {ex.id: ex for ex in EXERCISES}
#: Notebook stems with exercises, in order.
STEMS: tuple[str, ...] = tuple(dict.fromkeys(ex.stem for ex in EXERCISES))


class ExerciseFailed(AssertionError):
    """An exercise's function disagrees with the check (or raised); the message says how."""


class SolutionMarkupError(ValueError):
    """Unbalanced or nested ``### BEGIN SOLUTION`` / ``### END SOLUTION`` markers."""


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
    # (c) just inside the cone v tends to c t / (t + 2/a) (the jump at the atoms)
    t = 0.3
    x = torch.tensor([c * t * (1.0 - 1e-12)], dtype=F64)
    edge = float(_tensor(ex, _call(ex, fn, torch.full_like(x, t), x, a, c), (1,), "t = 0.3")[0])
    want = c * t / (t + 2.0 / a)
    _require(
        abs(edge - want) <= 1e-6 * c,
        f"just inside the light cone (x = c t (1 - 1e-12), t = 0.3) it returned {edge:.8g}; "
        f"as r -> 0 the formula [41] tends to c t/(t + 2/a) = {want:.8g}",
    )
    return (
        f"agrees with the flux of the law (max error {worst:.1g} c), |v| <= c with v = +-c on "
        f"the atoms for a t up to 5e4, and v -> c t/(t + 2/a) = {want:.4g} < c just inside "
        f"the cone"
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


_CHECKS: dict[str, Callable[[Exercise, Callable], str]] = {
    "01.1": _check_01_1,
    "01.2": _check_01_2,
    "02.1": _check_02_1,
    "02.2": _check_02_2,
    "02.3": _check_02_3,
    "03.1": _check_03_1,
    "03.2": _check_03_2,
    "04.1": _check_04_1,
    "04.2": _check_04_2,
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
    """The student version of an exercise source: solution regions replaced by a stub.

    Each region from a line ``### BEGIN SOLUTION`` to the next line ``### END SOLUTION``
    (markers included) becomes ``# YOUR CODE HERE`` and ``raise NotImplementedError()`` at
    the indentation of the BEGIN marker; every other line is kept as it is. Raises
    :class:`SolutionMarkupError` (with the line number) for an END without BEGIN, a BEGIN
    inside a region, or a region that is not closed.
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
    return "".join(out)


def default_exercises_dir() -> Path:
    """``./exercises`` if it exists in the working directory, else the repository's one."""
    cwd_dir = Path.cwd() / "exercises"
    if cwd_dir.is_dir():
        return cwd_dir.resolve()
    return (Path(__file__).resolve().parent.parent / "exercises").resolve()


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


def write_student_versions(
    out_dir: str | Path, source_dir: str | Path | None = None, *, force: bool = False
) -> list[Path]:
    """Write the student versions (solutions stripped) as ``NN_name.py`` and ``.ipynb``.

    ``out_dir`` is created if needed; an existing non-empty folder is refused
    (``FileExistsError``) unless ``force``, which replaces the files of the same names.
    Returns the written paths.
    """
    import jupytext

    out = Path(out_dir)
    sources = exercise_sources(source_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output folder {out} is a file")
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
        written += [py, ipynb]
    return written
