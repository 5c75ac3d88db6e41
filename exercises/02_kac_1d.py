# %% [markdown]
# # Exercises 02: the one-dimensional Kac process
#
# Exercises for the chapter notebook `notebooks/02_kac_1d.py`, on Section 4 of
# *Telegrapher's Generative Model via Kac Flows* (R. Duong, J. Chemseddine, P. K. Friz,
# G. Steidl, [arXiv:2506.20641v1](https://arxiv.org/abs/2506.20641v1)). A number in square
# brackets such as [30] is an **equation number of the paper**.
#
# **How to work.** Each exercise asks for one function. In its cell, replace the two lines
# `# YOUR CODE HERE` and `raise NotImplementedError()` by your code and run the cell; then
# run the check cell below it. The check compares your function with an independent
# computation and prints one line, or raises an `AssertionError` that says what differs.
#
# *For teachers:* this file holds the reference solutions between the lines
# `### BEGIN SOLUTION` and `### END SOLUTION` (nbgrader's markup);
# `kacnb exercises --out DIR` writes the student versions, without them and without this
# paragraph.
#
# The Kac process $K(t) = B\,c\int_0^t(-1)^{N(s)}\,ds$ [25-26] starts at 0 in a fair random
# direction $B = \pm 1$, moves with speed $c$ and reverses at the jumps of a Poisson process
# $N$ of rate $a$. Its law [30-31] has two atoms of mass $e^{-at}/2$ at $\pm ct$ and a
# density $\tilde u(t, x)$ on $(-ct, ct)$; `kacnb.Kac(a, c)` evaluates it
# (`.density`, `.cdf`, `.atom_mass`).

# %%
import math

import torch

from kacnb.collection.exercises import check

# %% [markdown]
# ## Exercise 02.1: simulate $K(t)$ by Poisson switching
#
# Write `simulate_kac(t, n, a, c, generator)` returning `n` independent draws of $K(t)$ as a
# float64 tensor of shape `(n,)`, simulated from the definition: draw the waiting times
# between direction switches (i.i.d. exponential with rate $a$), add up the time spent in
# each direction before $t$, and give every particle a fair random initial direction. Draw
# all random numbers from `generator` (a `torch.Generator`), so the result is reproducible.
#
# *Hints:* `-torch.log1p(-u) / a` with `u = torch.rand(...)` is an exponential variable. With
# switching times $J_1 < J_2 < \dots$ and $J_0 = 0$, the particle moves in its initial
# direction on $[J_0, J_1)$, in the opposite one on $[J_1, J_2)$, and so on; clip the
# $J_k$ at $t$. Draw enough waiting times that $J_m > t$ for every particle.
#
# The check compares the shares of draws on the atoms with $e^{-at}/2$ and the whole sample
# with the law [30-31] (Kolmogorov-Smirnov test).


# %%
def simulate_kac(t: float, n: int, a: float, c: float, generator: torch.Generator) -> torch.Tensor:
    """``n`` draws of ``K(t)`` for switching rate ``a`` and speed ``c``; shape ``(n,)``."""
    ### BEGIN SOLUTION
    f64 = torch.float64

    def waiting_times(m: int) -> torch.Tensor:
        u = torch.rand(n, m, generator=generator, dtype=f64)
        return -torch.log1p(-u) / a

    m = int(math.ceil(a * t + 6.0 * math.sqrt(a * t) + 10.0))
    jumps = torch.cumsum(waiting_times(m), dim=1)
    while bool((jumps[:, -1] <= t).any()):  # rare: some particle needs more switches
        jumps = torch.cat([jumps, jumps[:, -1:] + torch.cumsum(waiting_times(m), dim=1)], 1)
    # time spent on each straight piece [J_k, J_k+1) before t
    edges = torch.cat([torch.zeros(n, 1, dtype=f64), jumps], dim=1).clamp_max(t)
    pieces = torch.diff(edges, dim=1)
    alternating = torch.ones(pieces.shape[1], dtype=f64)
    alternating[1::2] = -1.0
    direction = 2.0 * torch.randint(0, 2, (n,), generator=generator).to(f64) - 1.0
    return c * direction * (pieces * alternating).sum(dim=1)
    ### END SOLUTION


# %%
check("02.1", simulate_kac)

# %% [markdown]
# ## Exercise 02.2: the variance of $K(t)$
#
# Show that $E[(-1)^{N(s)}(-1)^{N(u)}] = e^{-2a|s - u|}$ (the number of jumps in an interval
# of length $h$ is Poisson with mean $a h$), deduce
# $\mathrm{Var}\,K(t) = E K(t)^2 = c^2\int_0^t\!\int_0^t e^{-2a|s-u|}\,ds\,du$, evaluate the
# integral and write the result as `kac_variance(t, a, c)` (a float).
#
# Then compare it with $c^2t^2$ for $at \ll 1$ (ballistic) and with $\sigma^2 t$,
# $\sigma^2 = c^2/a$, for $at \gg 1$ (the diffusion limit, Thm 9). For $at \ll 1$ prefer
# `math.expm1` to `1 - math.exp(...)`. The check compares your formula with the second
# moment of the law [30-31] computed by quadrature.


# %%
def kac_variance(t: float, a: float, c: float) -> float:
    """``Var K(t)`` in units of space squared."""
    ### BEGIN SOLUTION
    # c^2 int int exp(-2a|s-u|) = (c^2/a) (t - (1 - exp(-2at)) / (2a))
    return (c * c / a) * (t + math.expm1(-2.0 * a * t) / (2.0 * a))
    ### END SOLUTION


# %%
check("02.2", kac_variance)

# %% [markdown]
# ## Exercise 02.3: the velocity field, stable for large $at$
#
# Thm 4 gives the velocity that moves the law of $K(t)$ [41]: with $\beta = a/c$ and
# $r = \sqrt{c^2t^2 - x^2}$,
# $$v(t, x) = \frac{x}{t + r I_0(\beta r)/(c I_1(\beta r))}, \qquad |x| < ct,$$
# and $v = \pm c$ on the atoms $x = \pm ct$. Write `kac_velocity(t, x, a, c)` for float64
# tensors `t`, `x` of the same shape (the result has that shape too; return `sign(x) c` for
# $|x| \ge ct$).
#
# Two traps: $I_0(z)$ and $I_1(z)$ overflow float64 for $z > 700$, which happens for
# $at > 700$; use the exponentially scaled `torch.special.i0e`, `torch.special.i1e`, whose
# ratio is the same. And as $r \to 0$ (just inside the light cone) $I_1(\beta r)/r \to \beta/2$,
# so write the denominator through $I_1(z)/z$ and take its limit $1/2$ at $z = 0$.
#
# The check compares your field with the flux of the law,
# $v = -\partial_t P(K(t) \le x)/\tilde u(t, x)$ (the continuity equation), computed from
# `kacnb`'s CDF by finite differences, tests $|v| \le c$ for $at$ up to $5\cdot 10^4$, and
# evaluates it one to four floating-point steps inside the light cone, where
# $c^2t^2 - x^2$ can round to 0.


# %%
def kac_velocity(t: torch.Tensor, x: torch.Tensor, a: float, c: float) -> torch.Tensor:
    """The Kac velocity [41] at ``(t, x)``; ``+-c`` on and outside the light cone."""
    ### BEGIN SOLUTION
    ct = c * t
    inside = x.abs() < ct
    r = torch.sqrt(((ct - x.abs()) * (ct + x.abs())).clamp_min(0.0))
    z = (a / c) * r
    # r I0(z) / (c I1(z)) = I0(z) / (a I1(z)/z), and exp(-z) cancels in the ratio
    positive = z > 0
    z_safe = torch.where(positive, z, torch.ones_like(z))
    i1_over_z = torch.where(positive, torch.special.i1e(z_safe) / z_safe, torch.full_like(z, 0.5))
    v_inside = x / (t + torch.special.i0e(z) / (a * i1_over_z))
    return torch.where(inside, v_inside, torch.sign(x) * c)
    ### END SOLUTION


# %%
check("02.3", kac_velocity)

# %% [markdown]
# **Discussion.** Just inside the light cone the velocity is about $ct/(t + 2/a) < c$, while
# the atoms move with exactly $\pm c$: the field jumps at $x = \pm ct$. This jump is the
# reason why notebook 04 computes its training targets from the sampled $K(t)$ (exercise
# 04.1).

# %% [markdown]
# ## Exercise 02.4: the density [30-31], and a slip in its $I_1$ term
#
# Write `kac_density(t, x, a, c)`, the continuous part of the law of $K(t)$ [30-31],
# $$\tilde u(t, x) = \frac{a}{2c}e^{-at}\Bigl(I_0(\beta r) + ct\,\frac{I_1(\beta r)}{r}\Bigr),
# \qquad \beta = \frac ac,\quad r = \sqrt{c^2t^2 - x^2},$$
# for float64 tensors `t`, `x` of the same shape with $t > 0$ (the result has that shape;
# return 0 for $|x| \ge ct$: the atoms at $\pm ct$ are not part of $\tilde u$).
#
# It must stay finite for $at$ in the thousands, where $e^{-at}$ underflows and $I_0$,
# $I_1$ overflow: use the scaled functions, $e^{-at}I_k(z) = \mathrm{i}_k\mathrm{e}(z)\,
# e^{z - at}$ with $z = \beta r \le at$, and form the exponent as
# $z - at = -\beta x^2/(r + ct)$, which does not cancel. As $r \to 0$ (at the edge of the
# cone) $I_1(\beta r)/r \to \beta/2$.
#
# *Watch the denominator of the second term:* it is $r$, not $z = \beta r$. With the scaled
# functions it is easy to write `i1e(z) / z` where `i1e(z) / r` is meant; the two differ by
# the factor $\beta = a/c$, so the slip is invisible for $a = c$. The authors' own public
# sampler had exactly this slip until a later fix; notebook 02, section 8, works out which
# law it drew instead.
#
# The check compares your density with the Poisson-Beta series of the law (given $n \ge 1$
# switches, $K(t)/(ct) = B(2Y - 1)$ with $Y \sim \mathrm{Beta}(\lfloor n/2\rfloor + 1,
# \lceil n/2\rceil)$), which uses no Bessel function, for pairs with $a \ne c$; checks the
# mass $1 - e^{-at}$ for $at$ up to 8000; the limit at the edge of the cone; and 0 off it.


# %%
def kac_density(t: torch.Tensor, x: torch.Tensor, a: float, c: float) -> torch.Tensor:
    """The density ``u~(t, x)`` [30-31] per unit of ``x``; 0 for ``|x| >= c t``."""
    ### BEGIN SOLUTION
    ct = c * t
    ax = x.abs()
    inside = ax < ct
    r = torch.sqrt(((ct - ax) * (ct + ax)).clamp_min(0.0))
    z = (a / c) * r
    # exp(z - a t) with z - a t = -(a/c) x^2 / (r + c t) (no cancellation for large a t)
    denom = torch.where(inside, r + ct, torch.ones_like(ct))
    scale = torch.exp(-(a / c) * x * x / denom)
    # exp(-z) I1(z) / r = (a/c) exp(-z) I1(z) / z, with the limit (a/c)/2 at z = 0
    positive = z > 0
    z_safe = torch.where(positive, z, torch.ones_like(z))
    i1_over_z = torch.where(positive, torch.special.i1e(z_safe) / z_safe, torch.full_like(z, 0.5))
    dens = (a / (2.0 * c)) * scale * (torch.special.i0e(z) + ct * (a / c) * i1_over_z)
    return torch.where(inside, dens, torch.zeros_like(dens))
    ### END SOLUTION


# %%
check("02.4", kac_density)

# %% [markdown]
# **Discussion.** The two terms have a meaning: $\frac{a}{2c}e^{-at}I_0(\beta r)$ is the law
# of $K(t)$ on the event of an odd number of switches, $\frac{a}{2c}e^{-at}ct\,I_1(\beta r)/r$
# the law on an even number $\ge 2$. The slip `i1e(z)/z` weights the second by $c/a$; since
# the authors' sampler renormalised its table to the mass $1 - e^{-at}$, it drew a Kac
# process whose paths with an even number of switches were $c/a$ times too rare, a slightly
# narrower law (notebook 02, section 8).
