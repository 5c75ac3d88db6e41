# %% [markdown]
# # Exercises 04: Kac flow matching targets
#
# Exercises for the chapter notebook `notebooks/04_cfm_gmm_2d.py`, on Sections 6-7 of
# *Telegrapher's Generative Model via Kac Flows* (R. Duong, J. Chemseddine, P. K. Friz,
# G. Steidl, [arXiv:2506.20641v1](https://arxiv.org/abs/2506.20641v1)). A number in square
# brackets such as [97] is an **equation number of the paper**.
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
# Conditional flow matching [97] trains a network $v_\theta(t, x)$ on draws of
# $t \sim U(0, T)$, a data point $x_0$ and $x_t$ from the conditional law of $X_t$ given
# $X_0 = x_0$, with the conditional velocity $v_t(x_t \mid x_0)$ as target. For the
# componentwise Kac path $X_t = X_0 + K(t)$ it is $v_t(x \mid x_0) = (v(t, x^i - x_0^i))_i$
# (Thm 14, [93]), with the one-dimensional velocity $v$ of Thm 4 [41]
# (`kacnb.Kac(a, c).velocity`).

# %%
import torch

from kacnb.cfm.metrics import grid_mixture
from kacnb.collection.exercises import check
from kacnb.theory.kac import Kac

# %% [markdown]
# ## Exercise 04.1: the training target, from the sampled noise
#
# One training draw of notebook 04 (in float32, as in training): times `t` of shape `(n,)`,
# data points `x0` of shape `(n, 2)` from the nine-mode mixture, the noise `k = K(t)` of
# shape `(n, 2)` drawn by `Kac(a, c).sample(t, dim=2)`, and $x_t = x_0 + k$.
#
# Write `kac_cfm_target(t, x0, k, a, c)` returning the target $v_t(x_t \mid x_0)$, shape
# `(n, 2)`, float32. Think about which of the inputs you need. The check uses
# $(a, c) = (25, 5)$ and $t < 0.04$, where a large share of the components still sits on an
# atom $|K(t)| = ct$, whose target is exactly $\pm c$.


# %%
def kac_cfm_target(
    t: torch.Tensor, x0: torch.Tensor, k: torch.Tensor, a: float, c: float
) -> torch.Tensor:
    """Target ``v_t(x0 + k | x0)`` of a Kac CFM draw: ``t`` ``(n,)``, ``x0``, ``k`` ``(n, d)``."""
    ### BEGIN SOLUTION
    # v(t, x_t - x0) with x_t - x0 = k exactly: evaluate on the sampled noise itself
    return Kac(a, c).velocity(t.unsqueeze(-1), k)
    ### END SOLUTION


# %%
check("04.1", kac_cfm_target)

# %% [markdown]
# **Why the check insists on the atoms.** The tempting `Kac(a, c).velocity(t, x_t - x0)`
# is the same formula, but in float32 the round trip $x_0 + k - x_0$ changes $k$ in its
# last bits. An atom $|k| = ct$ then lands just inside the light cone, where the field is
# about $ct/(t + 2/a)$, not $c$ (exercise 02.3). This cell counts how often that happens
# for the draws of the check's kind:

# %%
gen = torch.Generator().manual_seed(0)
kac = Kac(25.0, 5.0)
t = 0.04 * torch.rand(10_000, generator=gen)
x0 = grid_mixture(dtype=torch.float32).sample(10_000, generator=gen)
k = kac.sample(t, dim=2, generator=gen)
on_atom = k.abs() == (kac.c * t).unsqueeze(-1)
round_trip = kac.velocity(t.unsqueeze(-1), (x0 + k) - x0)
moved = on_atom & (round_trip.abs() < kac.c)
print(
    f"{int(on_atom.sum())} atom components, of which {int(moved.sum())} get a target below c "
    f"after the float32 round trip (smallest {float(round_trip[moved].abs().min()):.3f})"
)

# %% [markdown]
# ## Exercise 04.2: the mean-reverting target
#
# The mean-reverting path $X_t = f(t)X_0 + K(t)$ with $f(t) = 1 - t/T$ (Remark 17, [98])
# reaches the data-free law of $K(T)$ at $t = T$. Differentiate $X_t$ along a path, take
# the conditional expectation given $X_t$ and $X_0 = x_0$ as in [94], and write the
# conditional velocity [99] as `mean_reverting_target(t, x0, k, a, c, T)` for a draw with
# noise `k = K(t)`, so that $x_t = f(t)x_0 + k$ (shapes as in 04.1, any float dtype).
#
# The check tests two consequences of the continuity equation:
# $E[v_t(X_t \mid x_0)] = \frac{d}{dt}E[X_t \mid x_0]$ and
# $E[X_t\cdot v_t(X_t \mid x_0)] = \frac{d}{dt}\frac12 E[|X_t|^2 \mid x_0]$.


# %%
def mean_reverting_target(
    t: torch.Tensor, x0: torch.Tensor, k: torch.Tensor, a: float, c: float, T: float
) -> torch.Tensor:
    """Target ``v_t(f(t) x0 + k | x0)`` of the mean-reverting Kac path with ``f = 1 - t/T``."""
    ### BEGIN SOLUTION
    # f'(t) x0 + v(t, x_t - f(t) x0) with f'(t) = -1/T and x_t - f(t) x0 = k
    return -x0 / T + Kac(a, c).velocity(t.unsqueeze(-1), k)
    ### END SOLUTION


# %%
check("04.2", mean_reverting_target)

# %% [markdown]
# **Discussion.** The term $f'(t)x_0 = -x_0/T$ drags every sample towards the origin at a
# constant rate, while the Kac part spreads it with speed at most $c$ per component; at
# $t = T$ no trace of the data is left, which is why generation can start from $K(T)$
# alone. With the standard path $X_t = X_0 + K(t)$ that latent is only an approximation
# (Section 7 of the paper; notebook 04 measures its error).
