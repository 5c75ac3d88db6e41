# %% [markdown]
# # Exercises 05: mean-reverting Kac flows on images
#
# Exercises for the chapter notebook `notebooks/05_mnist.py`, on Section 7 of
# *Telegrapher's Generative Model via Kac Flows* (R. Duong, J. Chemseddine, P. K. Friz,
# G. Steidl, [arXiv:2506.20641v1](https://arxiv.org/abs/2506.20641v1)). A number in square
# brackets such as [99] is an **equation number of the paper**.
#
# **How to work.** Each exercise asks for one function. In its cell, replace the two lines
# `# YOUR CODE HERE` and `raise NotImplementedError()` by your code and run the cell; then
# run the check cell below it. The check compares your function with an independent
# computation and prints one line, or raises an `AssertionError` that says what differs.
# Nothing here trains a network or reads MNIST: the checks use random images and known
# velocity fields, and run in seconds on a CPU.
#
# *For teachers:* this file holds the reference solutions between the lines
# `### BEGIN SOLUTION` and `### END SOLUTION` (nbgrader's markup);
# `kacnb exercises --out DIR` writes the student versions, without them and without this
# paragraph.
#
# Notebook 05 gives every pixel its own one-dimensional Kac process, so an image batch
# `x0` of shape `(n, 1, 28, 28)` gets the noise $K(t)$ of the same shape, with independent
# pixels (Thm 14). It generates with the *mean-reverting* path
# $X_t = f(t)X_0 + K(t)$, $f(t) = 1 - t/T$ (Remark 17, [98]), whose latent $X_T = K(T)$ does
# not depend on the data, and samples by explicit Euler steps from $T$ back to 0.
# `kacnb.Kac(a, c)` draws $K(t)$ (`.sample(t, dim=..., generator=...)`, shape
# `t.shape + (dim,)`) and evaluates the velocity $v$ of Thm 4 [41] (`.velocity(t, x)`).

# %%
import torch

from kacnb.cfm.sampling import integrate
from kacnb.collection.exercises import check
from kacnb.theory.kac import Kac

# %% [markdown]
# ## Exercise 05.1: a training draw of the mean-reverting path on images
#
# One training draw of notebook 05: images `x0` of shape `(n, 1, 28, 28)`, one time per image
# `t` of shape `(n,)`, and the horizon `T`. Write
# `mean_reverting_draw(t, x0, a, c, T, generator)` returning the pair `(x_t, target)`, both
# of the shape and dtype of `x0`:
#
# * `x_t` $= f(t)x_0 + K(t)$ with a fresh, independent $K(t)$ for every pixel, drawn from
#   `generator` (so the draw is reproducible);
# * `target` $= v_t(x_t \mid x_0) = f'(t)x_0 + v(t, x_t - f(t)x_0)$, the conditional
#   velocity [99] (differentiate $X_t$ along a path and condition as in [94]).
#
# *Hints:* `t` has one entry per image; reshape it to `(n, 1, 1, 1)` before it meets an
# image. Two traps from exercises 04.1 and 04.2 come back: the target needs $f'$, not $f$;
# and $v$ must be evaluated on the sampled $K(t)$ itself, not on `x_t - f * x0`, which
# differs from it in the last bits, even in float64, and moves the atoms $|K(t)| = ct$
# (where $v = \pm c$) just inside the light cone (where $v \approx ct/(t + 2/a)$).
#
# The check draws with one time for all images and with a different time per image and
# tests, pixel by pixel, that $x_t - f(t)x_0$ follows the law of $K(t)$ [30-31]
# (Kolmogorov-Smirnov), that a share $e^{-at}$ sits on the atoms, and that the target is
# $f'(t)x_0 \pm c$ there and $f'(t)x_0 + v(t, x_t - f(t)x_0)$ elsewhere.


# %%
def mean_reverting_draw(
    t: torch.Tensor, x0: torch.Tensor, a: float, c: float, T: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_t, v_t(x_t | x0))`` of the path ``f(t) x0 + K(t)``, ``f = 1 - t/T``, per pixel."""
    ### BEGIN SOLUTION
    n = x0.shape[0]
    kac = Kac(a, c)
    k = kac.sample(t, dim=x0[0].numel(), generator=generator).reshape(x0.shape)
    tt = t.reshape(n, *([1] * (x0.dim() - 1)))
    x_t = (1.0 - tt / T) * x0 + k
    return x_t, -x0 / T + kac.velocity(tt, k)
    ### END SOLUTION


# %%
check("05.1", mean_reverting_draw)

# %% [markdown]
# ## Exercise 05.2: the explicit Euler sampler
#
# Generation integrates $\dot x = v_\theta(t, x)$ backwards, from the latent $x_T$ at time
# $T$ to time 0, with $N$ explicit Euler steps of size $h = T/N$: at the nodes
# $t_k = T - kh$,
# $$x_{k+1} = x_k - h\,v_\theta(t_k, x_k), \qquad k = 0, \dots, N - 1,$$
# and $x_N$ is the sample. Write `euler_sample(velocity, x_T, T, steps)` returning $x_N$
# (the shape and dtype of `x_T`). `velocity(t, x)` behaves like the U-Net of notebook 05: it
# takes one time per image, a tensor `t` of shape `(n,)` with the dtype of `x`, and returns
# a tensor shaped like `x`.
#
# *Hints:* one velocity evaluation per step; do not change `x_T` in place (notebook 05
# keeps the latents for its figures). The notebook uses the same $h$ for $T = 1$ and
# $T = 5$, so $T = 5$ takes five times as many steps.
#
# The check integrates two fields whose Euler iterates it computes in closed form, with
# $(T, N) = (1, 10)$ and $(5, 50)$, and records the times at which your sampler asks for the
# velocity.


# %%
def euler_sample(velocity, x_T: torch.Tensor, T: float, steps: int) -> torch.Tensor:
    """``steps`` explicit Euler steps of ``dx/dt = velocity(t, x)`` from ``T`` down to 0."""
    ### BEGIN SOLUTION
    h = T / steps
    x = x_T
    for k in range(steps):
        t = torch.full((x.shape[0],), T - k * h, dtype=x.dtype, device=x.device)
        x = x - h * velocity(t, x)
    return x
    ### END SOLUTION


# %%
check("05.2", euler_sample)

# %% [markdown]
# **Discussion: the data-free latent.** Take the data set to be one image $x_0$. Then the
# conditional velocity [99] is the true velocity field, and its flow carries the latent
# $K(T)$, which knows nothing about $x_0$, back to $x_0$ exactly. Explicit Euler does so up
# to its step size: the error at $t = 0$ shrinks about like $h$ (the field is bounded,
# $|v_t - f'(t)x_0| \le c$ per pixel, Prop 11). The cell uses `kacnb`'s own Euler integrator
# (`kacnb.cfm.sampling.integrate`, the one notebook 05 uses) on a few random 28x28 "images".

# %%
gen = torch.Generator().manual_seed(0)
a, c, T, n = 25.0, 5.0, 1.0, 4
kac = Kac(a, c)
image = 2.0 * torch.rand(n, 1, 28, 28, generator=gen, dtype=torch.float64) - 1.0
latent = kac.sample(torch.full((n,), T, dtype=torch.float64), dim=784, generator=gen)
latent = latent.reshape(image.shape)


def exact_velocity(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    tt = t.reshape(-1, 1, 1, 1)
    return -image / T + kac.velocity(tt, x - (1.0 - tt / T) * image)


print(f"the latent K(T) is on average {float((latent - image).abs().mean()):.3f} from x0")
for steps in (10, 100):
    out = integrate(exact_velocity, latent, T, 0.0, method="euler", steps=steps).x
    err = (out - image).abs()
    print(
        f"N = {steps:3d} steps (h = {T / steps:g}): mean |x_N - x0| = {float(err.mean()):.4f}, "
        f"max {float(err.max()):.4f}"
    )
