# %% [markdown]
# # Exercises 01: exploding velocity fields
#
# Exercises for the chapter notebook `notebooks/01_velocity_explosion.py`, on Section 3 of
# *Telegrapher's Generative Model via Kac Flows* (R. Duong, J. Chemseddine, P. K. Friz,
# G. Steidl, [arXiv:2506.20641v1](https://arxiv.org/abs/2506.20641v1)). A number in square
# brackets such as [8] is an **equation number of the paper**.
#
# **How to work.** Each exercise asks for one function. In its cell, replace the two lines
# `# YOUR CODE HERE` and `raise NotImplementedError()` by your code and run the cell; then
# run the check cell below it. The check compares your function with an independent
# computation (a seeded Monte Carlo estimate, a quadrature, finite differences) and prints
# one line, or raises an `AssertionError` that says what differs.
#
# *For teachers:* this file holds the reference solutions between the lines
# `### BEGIN SOLUTION` and `### END SOLUTION` (nbgrader's markup);
# `kacnb exercises --out DIR` writes the student versions, with every such region replaced
# by the two lines above and without this paragraph.
#
# Flow models transport samples with a velocity field $v_t$ that moves the curve of laws
# $\mu_t$ by the continuity equation [2]. Learning $v_t$ by least squares needs finite
# kinetic energy $\int_0^1 \|v_t\|^2_{L^2(\mu_t)}\,dt < \infty$ [3]; integrating the ODE
# $\dot x = v_t(x)$ needs $\sup|v_t| + \mathrm{Lip}(v_t)$ integrable in time [4]. The two
# exercises show how two popular flows break one condition each.

# %%
import torch

from kacnb.collection.exercises import check

# %% [markdown]
# ## Exercise 01.1: the heat flow from a point mass has infinite kinetic energy
#
# Start Brownian motion in the point mass $\delta_0$: $\mu_t = N(0, t I_d)$ with density
# $p_t$ [8-12]. Its velocity field is $v_t(x) = x/(2t)$ (check that
# $\partial_t p_t + \nabla\cdot(p_t v_t) = 0$, using $\partial_t p_t = \frac12\Delta p_t$
# and $\nabla p_t = -p_t\,x/t$).
#
# Compute $\|v_t\|^2_{L^2(\mu_t)} = E|v_t(X_t)|^2$ with $X_t \sim N(0, t I_d)$ in closed form
# and write it as `diffusion_velocity_norm_sq(t, d)` (a float, for $t > 0$ and a dimension
# $d \ge 1$). *Hint:* $E|X_t|^2 = d\,t$.
#
# The check also integrates your function from $\varepsilon$ to 1: watch how the kinetic
# energy [3] behaves as $\varepsilon \to 0$.


# %%
def diffusion_velocity_norm_sq(t: float, d: int) -> float:
    """``E |X_t/(2t)|^2`` for ``X_t ~ N(0, t I_d)``: kinetic energy density at time ``t``."""
    ### BEGIN SOLUTION
    # E|X_t|^2 / (4 t^2) = d t / (4 t^2)
    return d / (4.0 * t)
    ### END SOLUTION


# %%
check("01.1", diffusion_velocity_norm_sq)

# %% [markdown]
# ## Exercise 01.2: the coupling flow has an exploding Lipschitz constant
#
# The coupling (rectified) flow towards the point mass moves every sample on a straight
# line, $x_t = (1 - t) z$ with $z \sim N(0, I_d)$, and reaches $\delta_0$ at $t = 1$ [6-7].
#
# Write its velocity field $v_t(x)$ as `coupling_velocity(t, x)`: `x` is a float64 tensor of
# shape `(n, d)` (points at time $t \in [0, 1)$), the result has the same shape. *Hint:*
# differentiate $x_t$ in $t$ and express the result through $x_t$, not $z$.
#
# The check follows particles along $x_t = (1 - t) z$ and measures the Lipschitz constant
# of your field by finite differences. Its kinetic energy is harmless
# ($\|v_t\|^2_{L^2(\mu_t)} = d$); which condition fails, and where?


# %%
def coupling_velocity(t: float, x: torch.Tensor) -> torch.Tensor:
    """Velocity of the coupling flow ``x_t = (1 - t) z`` at the points ``x``, shape ``(n, d)``."""
    ### BEGIN SOLUTION
    # dx_t/dt = -z and z = x_t / (1 - t)
    return -x / (1.0 - t)
    ### END SOLUTION


# %%
check("01.2", coupling_velocity)

# %% [markdown]
# **Discussion.** The Lipschitz constant $1/(1 - t)$ is not integrable up to $t = 1$, so
# condition [4] fails there: trajectories started apart at $t = 0$ all collide at $t = 1$,
# and the backward ODE cannot be solved uniquely from $\delta_0$. The heat flow fails [3]
# instead, at $t = 0$. The Kac flow of the next chapters keeps $|v_t| \le c$ in every
# component (Prop 11), so neither happens; exercise 03.2 computes its kinetic energy.
