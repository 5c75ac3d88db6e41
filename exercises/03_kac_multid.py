# %% [markdown]
# # Exercises 03: the componentwise Kac process in several dimensions
#
# Exercises for the chapter notebook `notebooks/03_kac_multid.py`, on Sections 5-6 of
# *Telegrapher's Generative Model via Kac Flows* (R. Duong, J. Chemseddine, P. K. Friz,
# G. Steidl, [arXiv:2506.20641v1](https://arxiv.org/abs/2506.20641v1)). A number in square
# brackets such as [66] is an **equation number of the paper**.
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
# In $d$ dimensions the paper uses the componentwise process
# $K(t) = (K^1(t), \dots, K^d(t))$ with independent one-dimensional Kac components and
# $X_t = X_0 + K(t)$ [66]. Prop 11 states that $t \mapsto \mathrm{law}(X_t)$ is Lipschitz in
# the Wasserstein distance $W_2$ with constant $\sqrt d\,c$ and that
# $\|v_t\|^2_{L^2(\mu_t)} \le d c^2$.

# %%
import math

import scipy.integrate as si
import torch

from kacnb.collection.exercises import check
from kacnb.theory.kac import Kac

# %% [markdown]
# ## Exercise 03.1: mean square increments and the $W_2$ bound
#
# Fix $s \ge 0$ and $\tau > 0$. Given the direction of every component at time $s$ (fair,
# by symmetry), the process starts afresh, so each component of $K(s + \tau) - K(s)$ has
# the law of $K(\tau)$. Use this (and exercise 02.2, or derive
# $\mathrm{Var}\,K(\tau) = (c^2/a)(\tau - (1 - e^{-2a\tau})/(2a))$) to write
# `increment_msd(tau, a, c, d)` $= E|K(s + \tau) - K(s)|^2$ in $\mathbb R^d$ (a float; it
# does not depend on $s$).
#
# Coupling $X_s$ and $X_{s+\tau}$ along the same path gives
# $W_2(\mu_s, \mu_{s+\tau})^2 \le E|X_{s+\tau} - X_s|^2$. Why is your result at most
# $d c^2\tau^2$, which is Prop 11's bound? The check compares your function with simulated
# random-walk paths (App. A.1).


# %%
def increment_msd(tau: float, a: float, c: float, d: int) -> float:
    """``E |K(s + tau) - K(s)|^2`` of the componentwise process in ``R^d`` (space^2)."""
    ### BEGIN SOLUTION
    # d independent components, each increment distributed as K(tau)
    return d * (c * c / a) * (tau + math.expm1(-2.0 * a * tau) / (2.0 * a))
    ### END SOLUTION


# %%
check("03.1", increment_msd)

# %% [markdown]
# ## Exercise 03.2: the kinetic energy of the Kac flow is bounded
#
# By Lemma 13 / Thm 14 the componentwise process started at 0 moves with the vector of the
# one-dimensional velocities, $v_t(x) = (v(t, x^1), \dots, v(t, x^d))$, so
# $\|v_t\|^2_{L^2(\mu_t)} = d\,E[v(t, K(t))^2]$ in one dimension. The law of $K(t)$ has
# atoms of total mass $e^{-at}$ at $\pm ct$, where $|v| = c$, and the density $\tilde u$
# inside.
#
# Write `kac_velocity_norm_sq(t, a, c, d)` $= \|v_t\|^2_{L^2(\mu_t)}$ (a float), computing
# the continuous part by quadrature (`si.quad`) with `Kac(a, c).density` and
# `Kac(a, c).velocity`. Compare it with $d c^2$ and with the heat flow's $d/(4t)$ of
# exercise 01.1. The check compares it with a Monte Carlo estimate over draws of $K(t)$.


# %%
def kac_velocity_norm_sq(t: float, a: float, c: float, d: int) -> float:
    """``||v_t||^2`` in ``L^2(mu_t)`` of the componentwise Kac flow from the point mass at 0."""
    ### BEGIN SOLUTION
    kac = Kac(a, c)
    tt = torch.tensor(t, dtype=torch.float64)

    def integrand(x: float) -> float:
        xx = torch.tensor(x, dtype=torch.float64)
        return float(kac.velocity(tt, xx) ** 2 * kac.density(tt, xx))

    inside, _ = si.quad(integrand, 0.0, c * t, epsabs=0.0, epsrel=1e-10, limit=200)
    one_dim = c * c * math.exp(-a * t) + 2.0 * inside  # atoms plus the symmetric density
    return d * one_dim
    ### END SOLUTION


# %%
check("03.2", kac_velocity_norm_sq)

# %% [markdown]
# **Discussion.** For $t \to 0$ almost all mass sits on the atoms and the energy tends to
# $d c^2$; for large $at$ it behaves like the heat flow with $\sigma^2 = c^2/a$, but it never
# exceeds $d c^2$, so the kinetic energy [3] is finite on every interval $[0, T]$.
