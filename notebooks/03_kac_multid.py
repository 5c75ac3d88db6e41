# %% [markdown]
# # 03 · Componentwise Kac processes in several dimensions
#
# The one-dimensional Kac process $K(t)$ (notebook 02) moves with speed $c$ and reverses
# direction at the jumps of a Poisson process of rate $a$ [25-26]. In $d$ dimensions the
# paper does **not** use Kac's classical construction for the $d$-dimensional damped wave
# equation (Thm 6): that solution operator does not keep densities nonnegative for $d > 1$,
# so it cannot describe the law of a particle. Instead it takes $d$ independent copies,
#
# $$K(t) = (K^1(t), \dots, K^d(t)), \qquad X_t = X_0 + K(t) \qquad [66],$$
#
# with $X_0$ independent of $K$. This notebook checks the multi-dimensional facts of the paper
# (R. Duong, J. Chemseddine, P. K. Friz, G. Steidl, *Telegrapher's Generative Model via Kac
# Flows*, [arXiv:2506.20641v1](https://arxiv.org/abs/2506.20641v1), Sections 5-6) numerically:
#
# 1. **Figure 1**: paths of the componentwise walk in 2D, and the process started in a point
#    cloud (talk figure);
# 2. **Prop 11**: $t \mapsto \mathrm{law}(X_t)$ is Lipschitz in $W_2$ with constant
#    $\sqrt d\,c$, $\|v_t\|^2_{L^2(\mu_t)} \le d c^2$, and the support grows at most like $ct$;
# 3. **Thm 12**: the density of $X_t$ approaches the one of $X_0 + \sigma W(t)$,
#    $\sigma^2 = c^2/a$, in $L^2$, at a rate in $t$ that improves with $d$ (the rate as the
#    talk slides give it, $O(t^{-(1/2 + (d-1)/4)})$);
# 4. **Lemma 13 / Thm 14 [88, 93], Cor 15 [95]**: for product densities the velocity is the
#    vector of the 1D velocities: a finite-difference check of the 2D continuity equation [2].
# 5. **Thm 6, Remark 7, Lemma 8 [56-64]**: Kac's insertion of the random time $K(t)/c$ into
#    the undamped wave solution solves the damped wave equation, but for $d = 2, 3$ it takes
#    negative values for a nonnegative $f_0$; a Wiener time gives the heat solution.
#
# The reusable numerics (product densities, 1D fluxes, $W_2$ helpers) live in `kacnb.theory.multid`
# and `kacnb.theory.insertion` and are unit-tested in `tests/test_multid.py` and
# `tests/test_insertion.py`. Every computation here is small, so it runs on the CPU with a generator
# seeded from `seed`: the printed numbers do not depend on the device. At the end, an explorer moves
# the point cloud of section 2 to any time $t$ for any $(a, c)$ (sliders in JupyterLab, a static
# figure otherwise).
#
# > **Reading the references.** A number in square brackets, such as [66], is an **equation
# > number of the paper**; Thm, Prop, Lemma, Remark, Cor and App. refer to its statements and
# > appendix, "Section 5" (capitalised) to its sections, and "section N" in lower case to a
# > section of this notebook. The formulas and settings are collected in
# > [docs/paper-notes.md](../docs/paper-notes.md); the rate of Thm 12 used below is not in
# > the paper's text (see there). The parameters cell below holds the settings you may
# > change (here, or with `kacnb run 03 -p NAME=VALUE`).

# %% tags=["parameters"]
profile = "quick"
device = "auto"
seed = 0
figures_dir = None
# Settings a reader may change; None means the value of the profile, which decides the scale.
pairs = [(1.0, 1.0), (25.0, 5.0)]  # (a, c) of sections 2-4 (point cloud, Prop 11, Thm 12)
fig1_pairs = [(1.0, 1.0), (2.0, 1.0), (4.0, 2.0), (25.0, 5.0)]  # (a, c) of Figure 1
t_paths = 10.0  # horizon of the Figure 1 paths
cloud_times = [0.0, 0.1, 0.3, 1.0, 2.0]  # times of the point-cloud figure
n_cloud = None  # points of the cloud (smoke 400, quick 1500, paper 4000)
n_mc = None  # Monte-Carlo draws per velocity norm (smoke 20k, quick 200k, paper 2M)
interactive = False  # True: sliders for the explorer at the end (needs ipywidgets)
explore_t = 0.3  # time of the static figure of the explorer, between 0 and 2

# %%
# ruff: noqa: E402 (the imports follow the parameters cell)
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.collections import LineCollection
from matplotlib.colors import LogNorm

from kacnb import report
from kacnb.collection import explore, params, runtime
from kacnb.collection.plotting import COLORS, GENERATED, GROUND_TRUTH, save_figure
from kacnb.theory.flows import KacFlow, mc_velocity_norm_sq
from kacnb.theory.insertion import (
    RadialGaussian,
    brownian_insertion,
    heat_radial,
    kac_insertion,
    lemma8_tau,
    radial_fourier,
    telegraph_multiplier,
    wave,
    wave_2d,
)
from kacnb.theory.kac import Kac
from kacnb.theory.multid import (
    brownian_paths,
    continuity_residual_2d,
    convolved_velocity_norm_sq,
    gaussian_telegraph_heat_l2_leading,
    kac_increment_second_moment,
    loglog_slope,
    mean_square_displacement,
    product_flow_2d,
    rate_bound_verdict,
    rms_displacement,
    smiley_cloud,
    sup_excursion,
    support_verdict,
    telegraph_heat_l2,
    thm12_slides_exponent,
    w2_assignment,
    w2_lipschitz_verdict,
)
from kacnb.theory.stats import max_abs_z
from kacnb.theory.telegraph import convolved_density, heat_density, mass_outside, solve_telegraph

rt = runtime.setup(profile, device, seed)

SETTINGS = {
    # path_steps: time steps of the Figure 1 paths on [0, 10]; n_cloud: points of the smiley;
    # n_w2: particles for the exact (assignment) W2; n_rms: particles for the coupled RMS and
    # the support check; n_taus: time lags; n_mc / n_mc_times: Monte-Carlo velocity norm;
    # n_thm12: times in [0.1, 100] for Thm 12; grids: the two 2D grid sizes for Lemma 13.
    "smoke": {
        "path_steps": 2000,
        "n_cloud": 400,
        "n_w2": 150,
        "n_rms": 4000,
        "n_taus": 6,
        "n_mc": 20_000,
        "n_mc_times": 5,
        "n_thm12": 7,
        "grids": (61, 121),
    },
    "quick": {
        "path_steps": 5000,
        "n_cloud": 1500,
        "n_w2": 500,
        "n_rms": 50_000,
        "n_taus": 10,
        "n_mc": 200_000,
        "n_mc_times": 8,
        "n_thm12": 13,
        "grids": (121, 241),
    },
    "paper": {
        "path_steps": 20_000,
        "n_cloud": 4000,
        "n_w2": 1500,
        "n_rms": 500_000,
        "n_taus": 16,
        "n_mc": 2_000_000,
        "n_mc_times": 12,
        "n_thm12": 25,
        "grids": (241, 481),
    },
}
cfg = runtime.pick(profile, SETTINGS)
cfg = {
    **cfg,
    "n_cloud": params.count("n_cloud", n_cloud, cfg["n_cloud"], minimum=10, maximum=10**5),
    "n_mc": params.count("n_mc", n_mc, cfg["n_mc"], minimum=100, maximum=10**7),
}
PAIRS = params.pairs("pairs", pairs, max_len=4)  # default: the talk figure's and Figure 6's
FIG1_PAIRS = params.pairs("fig1_pairs", fig1_pairs, max_len=6)
T_FIG1 = params.positive("t_paths", t_paths, maximum=1000.0)
CLOUD_TIMES = params.times("cloud_times", cloud_times, maximum=100.0, max_len=8)
INTERACTIVE = params.flag("interactive", interactive)
EXPLORE_T = params.positive("explore_t", explore_t, maximum=2.0)
F64 = torch.float64
gen = torch.Generator().manual_seed(seed)  # CPU generator: device-independent numbers
D = 2  # dimension of the Prop 11 and Lemma 13 checks


def gauss(mean, std):
    """Density of N(mean, std^2) as a callable on tensors (the initial laws f_0 below)."""

    def f(y):
        return torch.exp(-0.5 * ((y - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))

    return f


# %% [markdown]
# ## 1. Paths of the componentwise walk (paper Figure 1)
#
# Each component is the random walk of App. A.1: a run of constant velocity $\pm c$, whose
# direction flips after independent $\mathrm{Exp}(a)$ waiting times. In 2D the particle
# therefore moves along the four diagonals $(\pm c, \pm c)$, and the two components switch
# independently. Below: one path on $[0, 10]$ for $(a, c) = (1, 1), (2, 1), (4, 2), (25, 5)$
# and a standard Brownian motion, coloured by time. What to look for: long straight diagonal
# runs for small $a$; as $a$ and $c$ grow with $c^2/a$ fixed (here $c^2/a = 1$ for $(1,1)$,
# $(4,2)$ and $(25,5)$), the runs get shorter and the path looks more and more like the
# Brownian one (Thm 9, Remark 10), yet its speed stays exactly $c$ per component.

# %%
path_times = torch.linspace(0.0, T_FIG1, cfg["path_steps"] + 1, dtype=F64)
fig1_paths = {ac: Kac(*ac).paths(path_times, 1, dim=2, generator=gen)[:, 0] for ac in FIG1_PAIRS}
fig1_paths["bm"] = brownian_paths(path_times, 1, dim=2, generator=gen)[:, 0]

# %%
n_panels = len(fig1_paths)
fig, axes = plt.subplots(1, n_panels, figsize=(3.4 * n_panels, 3.9), constrained_layout=True)
for ax, (key, path) in zip(axes, fig1_paths.items(), strict=True):
    xy = path.numpy()
    segments = np.stack([xy[:-1], xy[1:]], axis=1)
    lc = LineCollection(segments, cmap="viridis", linewidth=0.9)
    lc.set_array(path_times.numpy()[:-1])
    ax.add_collection(lc)
    ax.plot(*xy[0], "o", color="black", ms=4, label="start")
    ax.plot(*xy[-1], "s", color=GROUND_TRUTH, ms=4, label=f"end, t = {T_FIG1:g}")
    ax.autoscale()
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("$x^1$")
    title = "Brownian motion" if key == "bm" else f"Kac, $(a, c) = ({key[0]:g}, {key[1]:g})$"
    ax.set_title(title)
axes[0].set_ylabel("$x^2$")
axes[0].legend(loc="best", fontsize=8)
fig.colorbar(lc, ax=axes, label="time $t$", shrink=0.8)
fig.suptitle(f"Figure 1: paths of the componentwise 2D Kac walk until T = {T_FIG1:g}")
save_figure(fig, "fig01_kac_paths_2d", figures_dir)
plt.show()

# %% [markdown]
# ## 2. A point cloud under the Kac process (talk figure)
#
# The process $X_t = X_0 + K(t)$ started in a recognisable point cloud: a **smiley**
# (`smiley_cloud`: a unit circle for the face, two small circles for the eyes, an arc for
# the mouth; all points deterministic). The same particles (coupled random-walk paths) are
# shown at $t = 0, 0.1, 0.3, 1, 2$ for $(a, c) = (1, 1)$ (upper row) and $(25, 5)$ (lower row).
#
# What to look for: for $(1, 1)$ at small $t$ most particles have not switched yet, so the
# cloud splits into four translated copies of the smiley (the four diagonal directions, each
# with probability $e^{-2at}/4$ that neither component switched), plus a smeared part. For
# $(25, 5)$ the switching is fast and the cloud blurs like under a heat flow. The dashed
# line bounds $\mathrm{supp}\,\mu_0 + [-ct, ct]^2$ (Prop 11): no particle leaves it. For
# $(25,5)$ at $t \ge 0.3$ that bound lies (partly) outside the frame: it is far from sharp when
# $a t \gg 1$.

# %%
x0_cloud = smiley_cloud(cfg["n_cloud"])
cloud_times = torch.tensor(CLOUD_TIMES, dtype=F64)
clouds = {
    ac: x0_cloud + Kac(*ac).paths(cloud_times, cfg["n_cloud"], dim=2, generator=gen) for ac in PAIRS
}
n_face = cfg["n_cloud"] // 2
part_colour = np.where(np.arange(cfg["n_cloud"]) < n_face, GENERATED, COLORS[3])


def support_outline(ct):
    """Boundary of (unit disk) + [-ct, ct]^2: four quarter circles joined by straight edges."""
    pts = []
    for q in range(4):
        th = np.linspace(q * np.pi / 2, (q + 1) * np.pi / 2, 30)
        sx, sy = np.sign(np.cos(th.mean())), np.sign(np.sin(th.mean()))
        pts.append(np.stack([sx * ct + np.cos(th), sy * ct + np.sin(th)], axis=1))
    pts = np.concatenate(pts)
    return np.concatenate([pts, pts[:1]])


# %%
LIM = 3.6
n_rows, n_cols = len(PAIRS), len(CLOUD_TIMES)
fig, axes = plt.subplots(
    n_rows, n_cols, figsize=(3 * n_cols, 3.2 * n_rows), squeeze=False, constrained_layout=True
)
for row, ac in enumerate(PAIRS):
    for col, t in enumerate(CLOUD_TIMES):
        ax = axes[row, col]
        pts = clouds[ac][col].numpy()
        ax.scatter(pts[:, 0], pts[:, 1], s=1.5, c=part_colour, linewidths=0)
        ax.plot(*support_outline(ac[1] * t).T, "--", color="grey", lw=0.8)
        ax.set_xlim(-LIM, LIM)
        ax.set_ylim(-LIM, LIM)
        ax.set_aspect("equal")
        ax.set_xticks([-3, 0, 3])
        ax.set_yticks([-3, 0, 3])
        if row == 0:
            ax.set_title(f"$t = {t:g}$")
        if col == 0:
            ax.set_ylabel(f"$(a, c) = ({ac[0]:g}, {ac[1]:g})$\n$x^2$")
        if row == n_rows - 1:
            ax.set_xlabel("$x^1$")
fig.suptitle(
    "Kac process $X_t = X_0 + K(t)$ started in a smiley (dashed: supp $\\mu_0 + [-ct, ct]^2$)"
)
save_figure(fig, "nb03_point_cloud", figures_dir)
plt.show()

# %% [markdown]
# ## 3. Prop 11: Lipschitz in $W_2$, bounded velocity, linear support growth
#
# **$W_2$-Lipschitz.** Observing the same particle at two times is a coupling of $\mu_s$ and
# $\mu_t$, so $W_2(\mu_s, \mu_t)^2 \le \mathbb E|X_t - X_s|^2 = \mathbb E|K(t) - K(s)|^2$, and
# since every component moves with speed $c$, $|K^i(t) - K^i(s)| \le c|t - s|$ pathwise:
# $W_2(\mu_s, \mu_t) \le \sqrt d\, c\, |t - s|$. We can say more: the direction
# $B(-1)^{N}$ is a stationary telegraph signal with correlation $e^{-2a|r - r'|}$, so (our
# computation, `kac_increment_second_moment`)
#
# $$\mathbb E|X_{s+\tau} - X_s|^2 = d\,c^2\Big(\frac{\tau}{a} - \frac{1 - e^{-2a\tau}}{2a^2}\Big)
#   = d c^2 \tau^2 \big(1 - \tfrac{2}{3} a\tau + \dots\big),$$
#
# which is ballistic ($\propto \tau^2$, constant $\sqrt d\,c$ sharp) for $a\tau \ll 1$ and
# diffusive ($\approx d\sigma^2\tau$) for $a\tau \gg 1$. Below, with $X_0$ the smiley and
# $s = 0.5$: the Monte-Carlo RMS displacement of coupled paths, the exact $W_2$ between the
# two empirical clouds of the same particles (optimal assignment, `w2_assignment`; it can
# only be smaller than the coupled RMS), the closed form and the bound.
#
# The pathwise ratio RMS / $(\sqrt d\,c\,\tau)$ cannot exceed 1 for the random walk, whose
# components move with speed $c$ by construction, so it is shown but does not decide the
# verdict. The verdict asks two things that can fail: the Monte-Carlo mean square
# displacement of the coupled paths (`mean_square_displacement`) agrees with the closed form
# within $|z| < 4$ at every lag (a walk with a wrong switching rate or correlation would not),
# and the closed form's root stays at or below $\sqrt d\, c\,\tau$.
#
# **Velocity.** The conditional velocity is $v(t, K^i(t))$ componentwise with $|v| \le c$
# [41], so $\|v_t\|^2_{L^2(\mu_t)} \le d c^2$ for all $t$, in contrast to the $d/(4t)$ of the
# heat flow (notebook 01). As in notebook 01 (section 5), the norm for $X_0 = 0$ is recovered
# from the law of $K(t)$ alone, through the continuity equation (`KacFlow.law_velocity`, no
# use of [41]); it is compared with $d c^2$ and with a Monte-Carlo estimate that evaluates
# [41] on exact draws (`mc_velocity_norm_sq`, $|z| < 4$ at every time). We also compute the
# norm of the **marginal** velocity of $X_0 + K(t)$ for $X_0 \sim N(0, 0.5^2 I_2)$ (Cor 15,
# `convolved_velocity_norm_sq`), which Jensen's inequality puts below the conditional one.
#
# **Support.** Along the walk $\max_j |X_t^j - X_0^j|_\infty \le c t$ holds by construction
# (attained as long as some component has not switched, probability $e^{-at}$ each), so the
# samples illustrate the claim but cannot test it. The test uses the telegrapher's equation
# instead (Thm 1: its solution is the density of $X_0 + K(t)$ in each coordinate): the
# finite-difference solution (`solve_telegraph`, $\Delta x = 0.01$ and $0.005$) started from
# the Epanechnikov density $f_0(x) = \tfrac34(1 - x^2)$ on $[-1, 1]$ (the range of each
# coordinate of the smiley) must leave at most $5\cdot 10^{-5}$ of its mass outside
# $[-1 - ct, 1 + ct]$ at $t = 0.1, 0.3, 1, 2$ on the fine grid; what it leaves there is
# discretisation error, which falls as $\Delta x$ does. As a control, the heat density with the
# same $\sigma$ (infinite propagation speed) is measured the same way.

# %%
S0_PROP11 = 0.5
taus = torch.logspace(-2, math.log10(2.0), cfg["n_taus"], dtype=F64)
s_ref = 0.5
lag_times = torch.cat([torch.tensor([s_ref], dtype=F64), s_ref + taus])
exc_times = torch.logspace(-2, 1, 7, dtype=F64)
mc_times = torch.logspace(-2, 1, cfg["n_mc_times"], dtype=F64)
quad_times = torch.logspace(-2.5, 1, 60, dtype=F64)
f0_gauss = gauss(0.0, S0_PROP11)

prop11 = {}
for ac in PAIRS:
    a, c = ac
    kac = Kac(a, c)
    # coupled displacements: many particles for the RMS, a subset for the exact W2
    x0 = smiley_cloud(cfg["n_rms"])
    xs = x0 + kac.paths(lag_times, cfg["n_rms"], dim=D, generator=gen)
    rms = np.array([rms_displacement(xs[0], xs[i + 1]) for i in range(len(taus))])
    msd = np.array([mean_square_displacement(xs[0], xs[i + 1]) for i in range(len(taus))])
    sub = torch.randperm(cfg["n_rms"], generator=gen)[: cfg["n_w2"]]
    w2 = np.array([w2_assignment(xs[0][sub], xs[i + 1][sub]) for i in range(len(taus))])
    rms_exact = torch.sqrt(D * kac_increment_second_moment(taus, a, c)).numpy()
    # support growth
    xe = x0 + kac.paths(exc_times, cfg["n_rms"], dim=D, generator=gen)
    exc = np.array([sup_excursion(x0, xe[i]) for i in range(len(exc_times))])
    # velocity norms
    flow = KacFlow(kac, D)
    mc = [mc_velocity_norm_sq(flow, float(t), cfg["n_mc"], generator=gen) for t in mc_times]
    law = np.array([flow.law_velocity(float(t)).norm_sq for t in mc_times])
    law_curve = np.array([flow.law_velocity(float(t)).norm_sq for t in quad_times])
    marg = np.array(
        [convolved_velocity_norm_sq(f0_gauss, float(t), a, c, S0_PROP11, dim=D) for t in mc_times]
    )
    prop11[ac] = {
        "rms": rms,
        "w2": w2,
        "rms_exact": rms_exact,
        "msd": msd[:, 0],
        "msd_se": msd[:, 1],
        "msd_exact": D * kac_increment_second_moment(taus, a, c).numpy(),
        "bound": math.sqrt(D) * c * taus.numpy(),
        "exc_ratio": exc / (c * exc_times.numpy()),
        "mc": np.array([m.mean for m in mc]),
        "mc_se": np.array([m.stderr for m in mc]),
        "law": law,
        "law_curve": law_curve,
        "marg": marg,
    }

# %%
# NBVAL_CHECK_OUTPUT
print(f"d = {D}, s = {s_ref}, tau in [{float(taus[0]):.3g}, {float(taus[-1]):.3g}]")
for (a, c), r in prop11.items():
    quantities = {
        "max_tau RMS_MC / (sqrt(d) c tau), walk": (r["rms"] / r["bound"]).max(),
        "max_tau W2_assign / (sqrt(d) c tau)": (r["w2"] / r["bound"]).max(),
        "max_tau |MSD_MC - MSD_exact| / s.e.": max_abs_z(r["msd"], r["msd_se"], r["msd_exact"]),
        "max_tau sqrt(MSD_exact) / (sqrt(d) c tau)": (np.sqrt(r["msd_exact"]) / r["bound"]).max(),
        "max_t law ||v_t||^2 / (d c^2)": (r["law"] / (D * c**2)).max(),
        "max_t |MC [41] - law| / s.e.": max_abs_z(r["mc"], r["mc_se"], r["law"]),
        "max_t marginal ||v_t||^2 / (d c^2)": (r["marg"] / (D * c**2)).max(),
        "max_t max|X_t - X_0|_inf / (c t), walk": r["exc_ratio"].max(),
    }
    print(f"(a, c) = ({a:g}, {c:g})")
    for label, value in quantities.items():
        print(f"  {label:<42} = {value:.4f}")

# %% [markdown]
# The ratios marked "(walk)" are at most 1 by construction of the random walk. What can fail
# is the agreement of the coupled paths with the closed form, and of the Monte-Carlo norm
# with the norm recovered from the law: both are within sampling error, and the closed form
# and the law's norm stay below their bounds. The figure shows the two regimes: for
# $\tau \ll 1/a$ the displacement follows the ballistic bound $\sqrt d\, c\,\tau$ (the constant
# of Prop 11 is sharp), for $\tau \gg 1/a$ it is diffusive, $\approx \sqrt{d\sigma^2\tau}$. The
# velocity norm starts at $d c^2$ (all mass still on the atoms, moving with $\pm c$) and
# decays; the marginal norm for a spread-out $X_0$ is smaller still.

# %%
SUPPORT_TIMES = [0.1, 0.3, 1.0, 2.0]
SUPPORT_DX = (0.01, 0.005)
SUPPORT_TOL = 5e-5


def epanechnikov(y):
    """Density 3/4 (1 - y^2) on [-1, 1]: an initial law with the support [-1, 1]."""
    return 0.75 * (1.0 - y * y).clamp_min(0.0)


support = {}
for a, c in PAIRS:
    t_end = max(SUPPORT_TIMES)
    half = 2.0 + c * t_end  # the PDE solution never reaches the ends of the grid
    out = {}
    for dx in SUPPORT_DX:
        grid = torch.linspace(-half, half, int(round(2 * half / dx)) + 1, dtype=F64)
        _, snaps = solve_telegraph(epanechnikov(grid), grid, t_end, a, c, times=SUPPORT_TIMES)
        edges = [(-1.0 - c * t, 1.0 + c * t) for t in SUPPORT_TIMES]
        out[dx] = max(mass_outside(snaps[i], grid, *edges[i]) for i in range(len(edges)))
    sigma = c / math.sqrt(a)
    heats = [heat_density(epanechnikov, grid, t, sigma) for t in SUPPORT_TIMES]
    heat_out = max(mass_outside(heats[i], grid, *edges[i]) for i in range(len(edges)))
    support[(a, c)] = {"out": out, "heat_out": heat_out, "grid": grid, "pde": snaps, "heat": heats}
pde_out = max(r["out"][SUPPORT_DX[-1]] for r in support.values())

# %%
# NBVAL_CHECK_OUTPUT
print("telegraph PDE from 3/4 (1 - x^2) on [-1, 1]; mass outside [-1 - ct, 1 + ct], max over")
print(f"t in {SUPPORT_TIMES}; heat control: same sigma, fine grid")
for (a, c), r in support.items():
    coarse, fine = (r["out"][dx] for dx in SUPPORT_DX)
    print(
        f"(a, c) = ({a:g}, {c:g}): dx = {SUPPORT_DX[0]:g}: {coarse:.2e}, "
        f"dx = {SUPPORT_DX[1]:g}: {fine:.2e}; heat control: {r['heat_out']:.2e}"
    )

# %% [markdown]
# The PDE solution leaves only discretisation error outside the cone, falling with
# $\Delta x$, below the threshold; the heat density with the same $\sigma$ puts far more
# there. For $(25, 5)$ the control leaks mainly at the smallest time: once $at \gg 1$ the
# spread $\sigma\sqrt t$ of the law is much smaller than $ct$, so the support bound is far
# from sharp and even the heat density stays (almost) inside it.

# %%
fig, axes = plt.subplots(1, 3, figsize=(16, 4.4), constrained_layout=True)
for k, ((a, c), r) in enumerate(prop11.items()):
    col = COLORS[2 * k]
    lab = f"$({a:g}, {c:g})$"
    ax = axes[0]
    ax.loglog(taus, r["bound"], ":", color=col, lw=1.2)
    ax.loglog(
        taus, r["rms_exact"], "-", color=col, label=f"{lab}: exact $\\sqrt{{E|X_t - X_s|^2}}$"
    )
    ax.loglog(taus, r["rms"], "o", color=col, ms=4, mfc="none", label=f"{lab}: coupled RMS (MC)")
    ax.loglog(taus, r["w2"], "^", color=col, ms=4, label=f"{lab}: $W_2$ of the clouds")
    ax = axes[1]
    ax.loglog(
        quad_times,
        r["law_curve"] / (D * c**2),
        "-",
        color=col,
        label=f"{lab}: $\\|v_t\\|^2$ from the law of $K(t)$",
    )
    ax.errorbar(
        mc_times,
        r["mc"] / (D * c**2),
        yerr=2 * r["mc_se"] / (D * c**2),
        fmt="o",
        color=col,
        ms=4,
        mfc="none",
        label=f"{lab}: Monte Carlo with [41]",
    )
    ax.loglog(
        mc_times,
        r["marg"] / (D * c**2),
        "s--",
        color=col,
        ms=3,
        lw=0.8,
        label=f"{lab}: marginal, $X_0 \\sim N(0, 0.25 I)$",
    )
    ax = axes[2]
    sup = support[(a, c)]
    i_show = SUPPORT_TIMES.index(0.3)
    g = sup["grid"].numpy()
    ax.semilogy(g, sup["pde"][i_show].abs().numpy().clip(1e-16), "-", color=col, label=lab)
    ax.semilogy(g, sup["heat"][i_show].numpy().clip(1e-16), "--", color=col, lw=0.8)
    for edge in (-1.0 - c * 0.3, 1.0 + c * 0.3):
        ax.axvline(edge, color=col, ls=":", lw=0.8)
axes[0].plot([], [], ":", color="grey", label="bound $\\sqrt{d}\\, c\\, |t - s|$")
axes[0].set_xlabel("lag $\\tau = t - s$ ($s = 0.5$)")
axes[0].set_ylabel("distance")
axes[0].set_title("$W_2(\\mu_s, \\mu_t)$, $X_0$ = smiley")
axes[0].legend(fontsize=7)
axes[1].axhline(1.0, color="grey", ls=":", label="bound $d c^2$")
axes[1].set_xlabel("time $t$")
axes[1].set_ylabel("$\\|v_t\\|^2_{L^2(\\mu_t)} / (d c^2)$")
axes[1].set_title("velocity norm: conditional ($X_0 = 0$) and marginal")
axes[1].legend(fontsize=7)
axes[2].plot([], [], "--", color="grey", lw=0.8, label="heat density, same $\\sigma$")
axes[2].plot([], [], ":", color="grey", lw=0.8, label="$\\pm(1 + ct)$")
axes[2].set_ylim(1e-12, 3.0)
axes[2].set_xlim(-5, 5)
axes[2].set_xlabel("$x$")
axes[2].set_ylabel("$|u(t, x)|$ at $t = 0.3$")
axes[2].set_title("support: telegraph PDE from $\\frac{3}{4}(1 - x^2)$ on $[-1, 1]$")
axes[2].legend(fontsize=8)
fig.suptitle("Prop 11 in d = 2: Lipschitz curve in $W_2$, bounded velocity, linear support growth")
save_figure(fig, "nb03_prop11", figures_dir)
plt.show()

# %% [markdown]
# ## 4. Thm 12: the diffusion limit in $d$ dimensions, and its rate
#
# Take $X_0 \sim N(0, 0.5^2 I_d)$ (independent components) and compare the density $p_t$ of
# $X_0 + K(t)$ with the density $q_t$ of $X_0 + \sigma W(t)$, $\sigma^2 = c^2/a$. Both are
# products of 1D factors: the telegraph density $u = f_0 * \mathrm{law}(K(t))$ [27]
# (`telegraph.convolved_density`) and the heat density $h$ (`telegraph.heat_density`). For
# products,
#
# $$\|p_t - q_t\|_{L^2(\mathbb R^d)}^2
#   = \Big(\int u^2\Big)^d - 2\Big(\int u h\Big)^d + \Big(\int h^2\Big)^d,$$
#
# so the $d$-dimensional distance is exact up to 1D quadrature (`telegraph_heat_l2`, which
# evaluates this without cancellation).
#
# **The rate.** The paper's text lost the rate of Thm 12. The talk slides give it, as far as
# their text can be read, as
#
# $$\|p_t - q_t\|_{L^2(\mathbb R^d)} = O\big(t^{-(1/2 + (d-1)/4)}\big) \qquad (t \to \infty),$$
#
# with a remainder term of order $t^{-(1/2 + d/4)}$ (docs/paper-notes.md,
# `thm12_slides_exponent`). This reading is uncertain: the exponent is taken from the text of
# the slides, not from a proof we could follow, and the slides do not say under which
# assumptions on $X_0$ it holds or whether it is sharp. It is an upper bound, so a measured
# log-log slope at least as steep as $-(1/2 + (d-1)/4) = -0.5, -0.75, -1$ for $d = 1, 2, 3$ is
# consistent with it, and a flatter slope would contradict it (`rate_bound_verdict`:
# measured slope $\le$ that exponent). We fit the slope on $t \in [10, 100]$.
#
# To explain what we measure, here is **our own derivation** (not the paper's; a heuristic
# made exact at leading order for Gaussian $X_0$, `gaussian_telegraph_heat_l2_leading`). The
# characteristic function of $K(t)$ is
# $e^{-at}(\cosh \omega t + \tfrac{a}{\omega}\sinh\omega t)$, $\omega = \sqrt{a^2 - c^2k^2}$;
# expanding for $ck \ll a$ gives
# $\hat u = \hat h\,\big(1 + \tfrac{\sigma^2k^2}{4a} - \tfrac{\sigma^4 k^4 t}{8a} + \dots\big)$.
# At the relevant frequencies $k \sim 1/(\sigma\sqrt t)$ the correction is a relative
# $O(1/(at))$, while the $L^2$ norm of a $d$-dimensional density of spread $\sqrt t$ is
# $O(t^{-d/4})$. Hence, for smooth $X_0$ such as this Gaussian,
#
# $$\|p_t - q_t\|_{L^2(\mathbb R^d)} \approx C_d\, a^{-1}\, t^{-(1 + d/4)} \qquad (t \to \infty),$$
#
# steeper than the slides' bound by $3/4$ in every dimension, and improving with $d$ at the
# same $1/4$ per dimension. The table also gives the margin between the measured slope and
# the slides' exponent: the verdict would only change if the exponent of the slides were
# misread by more than that margin.

# %%
S0 = 0.5
THM12_DIMS = (1, 2, 3)
thm12_times = torch.logspace(-1, 2, cfg["n_thm12"], dtype=F64)
FIT_FROM = 10.0
fit_mask = (thm12_times >= FIT_FROM - 1e-9).numpy()
f0_thm12 = gauss(0.0, S0)
slides = {d: thm12_slides_exponent(d) for d in THM12_DIMS}
thm12 = {}
for a, c in PAIRS:
    res = telegraph_heat_l2(f0_thm12, thm12_times.tolist(), a, c, S0, dims=THM12_DIMS)
    dist = res.distance.numpy()
    lead = np.stack(
        [gaussian_telegraph_heat_l2_leading(thm12_times, a, c, S0, d).numpy() for d in THM12_DIMS],
        axis=1,
    )
    tf = thm12_times.numpy()[fit_mask]
    thm12[(a, c)] = {
        "dist": dist,
        "rel": dist / res.heat_norm.numpy(),
        "lead": lead,
        "slope": [loglog_slope(tf, dist[fit_mask, j]) for j in range(len(THM12_DIMS))],
        "slope_lead": [loglog_slope(tf, lead[fit_mask, j]) for j in range(len(THM12_DIMS))],
        "slope_rel": [
            loglog_slope(tf, (dist / res.heat_norm.numpy())[fit_mask, j])
            for j in range(len(THM12_DIMS))
        ],
    }

# %%
# NBVAL_CHECK_OUTPUT
print(f"X_0 ~ N(0, {S0}^2 I_d); slopes fitted on t in [{FIT_FROM:g}, 100]")
print("columns: ||p_t - q_t|| at t = 1 and t = 100; fitted slope; slides' exponent")
print("-(1/2 + (d-1)/4) and the margin (exponent - slope, > 0: steeper than the bound);")
print("our leading term: its exponent -(1 + d/4), its slope on the fit window, exact/leading")
print("at t = 100; slope of ||p-q||/||q||")
print(
    " (a, c)   d     t = 1    t = 100   slope  slides  margin   ours  leading  exact/lead"
    "  rel. slope"
)
for (a, c), r in thm12.items():
    i1 = int(np.argmin(np.abs(thm12_times.numpy() - 1.0)))
    for j, d in enumerate(THM12_DIMS):
        print(
            f"({a:g}, {c:g}) {d:3d}  {r['dist'][i1, j]:9.3e}  {r['dist'][-1, j]:9.3e}  "
            f"{r['slope'][j]:6.3f}  {slides[d]:6.3f}  {slides[d] - r['slope'][j]:6.3f}  "
            f"{-(1 + d / 4):5.2f}  {r['slope_lead'][j]:7.3f}  "
            f"{r['dist'][-1, j] / r['lead'][-1, j]:10.4f}  {r['slope_rel'][j]:10.3f}"
        )

# %% [markdown]
# What to read in the table: every fitted slope is steeper than the slides' exponent
# $-(1/2 + (d-1)/4)$, so the measurements are consistent with the rate as we read it from the
# slides; the margin is about $3/4$ in every dimension, so the bound, if read correctly, is
# far from sharp for a Gaussian $X_0$. The slopes themselves lie within a few hundredths of
# our leading-order exponent $-(1 + d/4)$, one step of $-1/4$ apart from one dimension to the
# next, and the relative distance $\|p_t - q_t\|/\|q_t\|$ decays like $t^{-1}$ in every
# dimension. The small remaining gap to $-(1 + d/4)$ is pre-asymptotic: for $(25, 5)$ the
# slope of our closed-form leading term on the same window reproduces the measured one (the
# initial spread still matters, $s_0^2/(\sigma^2 t) = 0.025$ at $t = 10$), and for $(1, 1)$
# the $O(1/(at))$ corrections to the leading term ($at = 10 \dots 100$) add a few hundredths.
# The ratio exact/leading tends to 1 like $1 + O(1/(at))$: closer for $(25, 5)$ than for
# $(1, 1)$ at the same $t$, and larger $a$ at fixed $\sigma^2$ gives a distance smaller by
# about $1/a$ (Thm 9). At small $t$ the distance first grows, since both densities start
# equal at $t = 0$.

# %%
fig, axes = plt.subplots(
    1, len(PAIRS), figsize=(6.5 * len(PAIRS), 4.6), constrained_layout=True, sharey=True
)
axes = np.atleast_1d(axes)
t_np = thm12_times.numpy()
for ax, ((a, c), r) in zip(axes, thm12.items(), strict=True):
    for j, d in enumerate(THM12_DIMS):
        col = COLORS[j]
        ax.loglog(
            t_np,
            r["dist"][:, j],
            "o-",
            color=col,
            ms=4,
            label=f"d = {d}: exact (1D factors), slope {r['slope'][j]:.3f}",
        )
        ax.loglog(
            t_np,
            r["lead"][:, j],
            "--",
            color=col,
            lw=1.0,
            label=f"d = {d}: our leading term, $\\propto t^{{-{1 + d / 4:g}}}$ for large t",
        )
        # slides' bound: slope -(1/2 + (d-1)/4), drawn through the measured value at t = 10
        i10 = int(np.argmin(np.abs(t_np - FIT_FROM)))
        tt = t_np[i10:]
        ax.loglog(
            tt,
            r["dist"][i10, j] * (tt / t_np[i10]) ** slides[d],
            ":",
            color=col,
            lw=1.2,
            label=f"d = {d}: slides' bound slope {slides[d]:g}",
        )
    ax.axvspan(FIT_FROM, t_np[-1], color="grey", alpha=0.1, lw=0)
    ax.set_xlabel("time $t$")
    ax.set_title(f"$(a, c) = ({a:g}, {c:g})$, $\\sigma^2 = c^2/a = {c * c / a:g}$")
    ax.legend(fontsize=6.5, loc="lower left")
axes[0].set_ylabel("$\\|p_t - q_t\\|_{L^2(\\mathbb{R}^d)}$")
fig.suptitle("Thm 12: telegraph vs heat density in d dimensions (shaded: fit window)")
save_figure(fig, "nb03_thm12_rate", figures_dir)
plt.show()

# %% [markdown]
# ## 5. Lemma 13 / Thm 14 and Cor 15: product densities move with componentwise velocities
#
# In 1D the law of $X_0 + K(t)$ has density $u$ and flux
# $J(t, x) = \mathbb E[v(t, K(t))\, f_0(x - K(t))]$ (Cor 15 [95]: the marginal velocity is the
# conditional one, $v_t(x \mid x_0) = v(t, x - x_0)$ [41], averaged over $X_0$ given $X_t = x$),
# so $w = J/u$ is the 1D marginal velocity (`convolved_flux`, `convolved_velocity`). Lemma 13 /
# Thm 14 [88, 93]: if $p_t(x) = u_1(t, x^1)\, u_2(t, x^2)$, then $v_t = (w_1(t, x^1), w_2(t, x^2))$
# solves $\partial_t p + \nabla\cdot(p\, v) = 0$ [2].
#
# The check: $X_0$ with a Gaussian first component, $N(0, 0.5^2)$, and a bimodal second one,
# $\tfrac12 N(-1, 0.3^2) + \tfrac12 N(1, 0.3^2)$. On the box $[-3.5, 3.5]^2$ we evaluate
# $\partial_t p + \nabla\cdot(p v)$ by centred differences (time step $h = \Delta x / c$) and
# report $\max|\text{residual}| / \max|\partial_t p|$ on two grids. For an exact solution
# this is pure discretisation error, $O(\Delta x^2)$: it must fall by about 4 when the grid
# is refined by 2 (observed order $\approx 2$). As a **control**, the same density with the
# velocity of the heat flow with the same $\sigma$, $-\tfrac{\sigma^2}{2}\nabla\log p$ (the
# probability-flow velocity of the diffusion limit), must leave a residual far above the
# discretisation error at moderate $a t$: the Kac flow is not a diffusion (the control
# residual shrinks as $a t$ grows, Thm 9).

# %%
LEMMA13_CASES = [(1.0, 1.0, 0.5), (25.0, 5.0, 0.2)]
BOX = 3.5
f0_first = gauss(0.0, 0.5)


def f0_second(y):
    return 0.5 * gauss(-1.0, 0.3)(y) + 0.5 * gauss(1.0, 0.3)(y)


lemma13 = {}
for a, c, t in LEMMA13_CASES:
    out = {"rel": [], "heat_rel": []}
    for n in cfg["grids"]:
        grid = torch.linspace(-BOX, BOX, n, dtype=F64)
        dx = float(grid[1] - grid[0])
        h = dx / c
        now = product_flow_2d(f0_first, f0_second, grid, grid, t, a, c)
        before = product_flow_2d(f0_first, f0_second, grid, grid, t - h, a, c).density
        after = product_flow_2d(f0_first, f0_second, grid, grid, t + h, a, c).density
        res = continuity_residual_2d(
            before, after, h, now.density, now.velocity_x, now.velocity_y, dx, dx
        )
        # control: heat-flow velocity -sigma^2/2 grad log p on the same density
        gx, gy = torch.gradient(torch.log(now.density), spacing=(dx, dx))
        sig2 = c * c / a
        ctrl = continuity_residual_2d(
            before, after, h, now.density, -0.5 * sig2 * gx, -0.5 * sig2 * gy, dx, dx
        )
        out["rel"].append(res.relative)
        out["heat_rel"].append(ctrl.relative)
    out.update(grid=grid, now=now, res=res, ctrl=ctrl)
    out["vmax"] = max(float(now.velocity_x.abs().max()), float(now.velocity_y.abs().max())) / c
    lemma13[(a, c, t)] = out

# %%
# NBVAL_CHECK_OUTPUT
n1, n2 = cfg["grids"]
print(f"box [-{BOX}, {BOX}]^2, grids {n1}^2 and {n2}^2; relative residual = max|res| / max|dp/dt|")
for (a, c, t), r in lemma13.items():
    order = math.log2(r["rel"][0] / r["rel"][1])
    print(f"(a, c) = ({a:g}, {c:g}), t = {t:g}:")
    print(
        f"  Kac velocity:       {r['rel'][0]:.3e} -> {r['rel'][1]:.3e} (observed order {order:.2f})"
    )
    print(f"  heat-flow control:  {r['heat_rel'][0]:.3f} -> {r['heat_rel'][1]:.3f}")
    print(f"  max |v^i| / c on the grid = {r['vmax']:.4f}")

# %%
a, c, t = LEMMA13_CASES[0]
r = lemma13[(a, c, t)]
g = r["grid"].numpy()
extent = [g[0], g[-1], g[0], g[-1]]
scale = float(r["res"].time_derivative.abs().max())
fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), constrained_layout=True)
ax = axes[0]
im = ax.imshow(r["now"].density.numpy().T, origin="lower", extent=extent, cmap="Blues")
step = max(1, len(g) // 16)
sl = slice(step // 2, None, step)
p_sub = r["now"].density.numpy()[sl, sl].T
show = p_sub > 1e-3 * p_sub.max()  # arrows only where there is mass
gx_sub, gy_sub = np.meshgrid(g[sl], g[sl])
ax.quiver(
    gx_sub[show],
    gy_sub[show],
    r["now"].velocity_x.numpy()[sl, sl].T[show],
    r["now"].velocity_y.numpy()[sl, sl].T[show],
    color=GROUND_TRUTH,
    scale=12,
    width=0.004,
)
fig.colorbar(im, ax=ax, label="density $p_t$")
ax.set_title(f"$p_t$ and $v_t = (w_1(x^1), w_2(x^2))$, $t = {t:g}$")
gi = g[1:-1]
norm = LogNorm(vmin=1e-6, vmax=3.0)
for ax, field, title in [
    (axes[1], r["res"].residual, "residual with the Kac velocity"),
    (
        axes[2],
        r["ctrl"].residual,
        "control: heat-flow velocity $-\\frac{\\sigma^2}{2}\\nabla \\log p$",
    ),
]:
    im = ax.imshow(
        (field.abs() / scale).numpy().T.clip(1e-6),
        origin="lower",
        extent=[gi[0], gi[-1], gi[0], gi[-1]],
        norm=norm,
        cmap="magma",
    )
    ax.set_title(title)
fig.colorbar(
    im, ax=axes[1:], label="$|\\partial_t p + \\nabla\\cdot(p v)| \\,/\\, \\max|\\partial_t p|$"
)
for ax in axes:
    ax.set_xlabel("$x^1$  ($X_0^1 \\sim N(0, 0.25)$)")
    ax.set_aspect("equal")
axes[0].set_ylabel("$x^2$  ($X_0^2$ bimodal)")
fig.suptitle(
    f"Lemma 13 / Thm 14: 2D continuity equation, $(a, c) = ({a:g}, {c:g})$, grid {len(g)}$^2$"
)
save_figure(fig, "nb03_lemma13_continuity", figures_dir)
plt.show()

# %% [markdown]
# ## 6. Why not Kac's insertion: Thm 6, Remark 7 and Lemma 8
#
# Kac's classical route to the damped wave equation in $d$ dimensions (Thm 6 [56-61]) takes
# the solution $w(s, x)$ of the *undamped* wave equation $w_{ss} = c^2 \Delta w$,
# $w(0) = f_0$, $w_s(0) = 0$ (extended evenly in $s$) and inserts the random time
# $T(t) = \int_0^t (-1)^{N(s)} ds = K(t)/c$:
# $$u(t, x) = E\big[w(T(t), x)\big]$$
# solves $u_{tt} + 2a u_t = c^2 \Delta u$, $u(0) = f_0$, $u_t(0) = 0$. In $d = 1$ this is
# the density of $X_0 + K(t)$ (notebook 02). We take the radial Gaussian density
# $f_0(x) = (2\pi s_0^2)^{-d/2} e^{-|x|^2/(2 s_0^2)}$, $s_0 = 0.25$, and compute $w$ by the
# classical formulas (`kacnb.theory.insertion`):
#
# * $d = 3$, Kirchhoff: $w = \partial_s[s\,M_{cs} f_0]$ with the spherical mean $M$; for a
#   radial profile $g$ this is $w(s, r) = \big((r + cs)g(r + cs) + (r - cs)g(|r - cs|)\big)/(2r)$;
# * $d = 2$, Poisson: $w(s, x) = \partial_s\big[\frac{s}{2\pi}\int_{|z|<1}
#   \frac{f_0(x + csz)}{\sqrt{1 - |z|^2}}dz\big]$, by quadrature with $|z| = \sin\alpha$.
#
# Both are checked against an independent Fourier-Hankel evaluation with the multiplier
# $\cos(c|k|s)$; the inserted $u$ is checked against the Fourier solution of the damped
# wave equation, multiplier $e^{-at}(\cosh\omega t + a\sinh(\omega t)/\omega)$,
# $\omega = \sqrt{a^2 - c^2|k|^2}$ (Thm 6), and in $d = 1$ against the density of
# $X_0 + K(t)$ (`convolved_density`). The expectation over $T(t)$ uses the law of $K(t)$
# [30-31]: the atoms $e^{-at}/2$ at $\pm t$ and the density on $(-t, t)$.
#
# **Remark 7.** For $d = 2, 3$ the wave solution of a nonnegative $f_0$ has a negative wake
# behind its front (in $d = 3$ already at the centre: $w(s, 0) = g(cs)(1 - c^2s^2/s_0^2)$),
# and averaging over $T(t)$ does not remove it when the atoms $e^{-at}$ carry enough mass:
# $u$ is then not a probability density, so no particle process has it as its law. We
# report $\min u$ for $(a, c, t) = (0.5, 1, 2)$ and how it depends on $a$.
#
# **Lemma 8 [62-64]** inserts a Wiener process instead: $E[w(\tau W(t), x)]$ is the heat
# solution. The scaling constant is lost in our copy of the paper; we derive it from $d = 1$,
# where $w(s, x) = (f_0(x + cs) + f_0(x - cs))/2$ gives
# $E[w(\tau W(t), x)] = E[f_0(x + c\tau W(t))]$, the density of $X_0 + c\tau W(t)$. Matching
# $X_0 + \sigma W(t)$ needs $\tau = \sigma/c$, i.e. $\tau = 1/\sqrt a$ for the diffusion
# scaling $\sigma^2 = c^2/a$ of Thm 9. The same $\tau$ works in every $d$, because
# $E\cos(c|k|\tau W(t)) = e^{-c^2\tau^2|k|^2 t/2}$. We check it against the heat kernel in
# $d = 1, 2, 3$, with the unscaled $\tau = \sigma$ as a control. (A Gaussian time average
# of $w$ is a positive heat density, but the Kac time $T(t)$ is not Gaussian.)
#
# This is why the paper does not use Kac's insertion for $d > 1$ and works with the
# componentwise process [66] of sections 1-5 instead: its law is a product of 1D laws of
# $X_0^i + K^i(t)$, nonnegative by construction.

# %%
S0_I, A_I, C_I, T_I = 0.25, 0.5, 1.0, 2.0
r_ins = torch.linspace(0.0, 4.0, 81, dtype=F64)
f0_ins = {d: RadialGaussian(d, S0_I) for d in (1, 2, 3)}


def wave_on(d, c, r=r_ins):
    """w(s, r) on the grid r as a function of s (Poisson quadrature sized for s0 = 0.25)."""
    if d == 2:
        return lambda s: wave_2d(s, r, f0_ins[2], c, n_alpha=96, n_phi=96)
    return lambda s: wave(s, r, f0_ins[d], c)


# wave solutions against the Fourier reference
wave_check = {}
for d in (2, 3):
    for s_w in (0.5, 1.0, 2.0):
        w_s = wave_on(d, C_I)(torch.tensor([s_w], dtype=F64))[0]
        ref = radial_fourier(lambda k, s_w=s_w: np.cos(C_I * k * s_w), r_ins.numpy(), f0_ins[d])
        wave_check[(d, s_w)] = dict(
            w=w_s,
            err=float(np.abs(w_s.numpy() - ref).max() / np.abs(ref).max()),
            min=float(w_s.min()),
            max=float(w_s.max()),
        )
# Thm 6: the insertion against the damped-wave Fourier solution; Remark 7: its minimum
ins = {}
for d in (1, 2, 3):
    u_d = kac_insertion(wave_on(d, C_I), T_I, A_I, C_I, n_quad=64)
    if d == 1:
        ref = convolved_density(f0_ins[1].profile, r_ins, T_I, A_I, C_I, n_quad=2048).numpy()
    else:
        ref = radial_fourier(
            lambda k: telegraph_multiplier(T_I, k, A_I, C_I), r_ins.numpy(), f0_ins[d]
        )
    wrong = kac_insertion(lambda s, d=d: wave_on(d, C_I)(2.0 * s), T_I, A_I, C_I, n_quad=64)
    ins[d] = dict(
        u=u_d,
        ref=ref,
        err=float(np.abs(u_d.numpy() - ref).max() / np.abs(ref).max()),
        err_wrong=float(np.abs(wrong.numpy() - ref).max() / np.abs(ref).max()),
        min=float(u_d.min()),
        argmin=float(r_ins[int(u_d.argmin())]),
        max=float(u_d.max()),
    )
A_SWEEP = [0.25, 0.5, 1.0, 2.0, 4.0]
min_sweep = {
    d: [float(kac_insertion(wave_on(d, C_I), T_I, a, C_I, n_quad=64).min()) for a in A_SWEEP]
    for d in (2, 3)
}
# Lemma 8 with (a, c) = (4, 2): sigma = c / sqrt(a) = 1, tau = sigma / c = 0.5
A_L8, C_L8 = 4.0, 2.0
SIGMA_L8 = C_L8 / math.sqrt(A_L8)
TAU_L8 = lemma8_tau(SIGMA_L8, C_L8)
lemma8 = {}
for d in (1, 2, 3):
    for t_l in (0.5, 1.0):
        heat = heat_radial(t_l, r_ins, f0_ins[d], SIGMA_L8)
        good = brownian_insertion(wave_on(d, C_L8), t_l, TAU_L8, n_nodes=96)
        bad = brownian_insertion(wave_on(d, C_L8), t_l, SIGMA_L8, n_nodes=96)
        lemma8[(d, t_l)] = dict(
            heat=heat,
            good=good,
            bad=bad,
            err=float((good - heat).abs().max() / heat.max()),
            err_bad=float((bad - heat).abs().max() / heat.max()),
        )

# %%
# NBVAL_CHECK_OUTPUT
print(f"f0 = radial Gaussian, s0 = {S0_I}; wave speed c = {C_I:g}")
print("wave solutions (Kirchhoff d = 3, Poisson d = 2) against Fourier-Hankel:")
for (d, s_w), r in wave_check.items():
    print(
        f"  d = {d}, s = {s_w:3.1f}: rel. err {r['err']:.1e}, min w {r['min']:+.4f},"
        f" max w {r['max']:.4f}"
    )
print(f"insertion u(t, r) = E[w(K(t)/c, r)] at (a, c, t) = ({A_I:g}, {C_I:g}, {T_I:g}):")
for d, r in ins.items():
    ref_name = "law of X0 + K(t)" if d == 1 else "damped-wave Fourier"
    print(
        f"  d = {d}: rel. err vs {ref_name} {r['err']:.1e} (time 2T instead of T:"
        f" {r['err_wrong']:.2f}); min u {r['min']:+.5f} at r = {r['argmin']:.2f}, max u"
        f" {r['max']:.4f}"
    )
print(f"min u at t = {T_I:g} against a: " + ", ".join(f"a = {a:g}" for a in A_SWEEP))
for d, mins in min_sweep.items():
    print(f"  d = {d}: " + ", ".join(f"{m:+.4f}" for m in mins))
print(f"Lemma 8, (a, c) = ({A_L8:g}, {C_L8:g}), sigma = {SIGMA_L8:g}, tau = sigma/c = {TAU_L8:g}:")
for (d, t_l), r in lemma8.items():
    print(
        f"  d = {d}, t = {t_l:3.1f}: rel. err vs heat {r['err']:.1e};"
        f" with tau = sigma {r['err_bad']:.2f}"
    )
ins_wave_err = max(r["err"] for r in wave_check.values())
ins_wave_neg = {
    d: min(r["min"] / r["max"] for (dd, _), r in wave_check.items() if dd == d) for d in (2, 3)
}
ins_err = max(r["err"] for r in ins.values())
ins_err_wrong = min(r["err_wrong"] for r in ins.values())
ins_neg = {d: ins[d]["min"] / ins[d]["max"] for d in (1, 2, 3)}
l8_err = max(r["err"] for r in lemma8.values())
l8_err_bad = min(r["err_bad"] for r in lemma8.values())

# %% [markdown]
# The figure shows, left, the wave solutions in $d = 2, 3$ at $s = 1, 2$ with their negative
# wakes; second, the inserted $u(t, r)$ at $t = 2$ for $d = 1, 2, 3$ (lines) against the
# Fourier / law references (dots); third, $\min_r u$ against $a$; right, Lemma 8:
# the Wiener insertion with $\tau = \sigma/c$ on the heat density, and the unscaled control.

# %%
fig, axes = plt.subplots(1, 4, figsize=(20, 4.3))
ax = axes[0]
for j, (d, s_w) in enumerate([(3, 1.0), (3, 2.0), (2, 1.0), (2, 2.0)]):
    ax.plot(
        r_ins,
        wave_check[(d, s_w)]["w"],
        color=COLORS[j],
        ls="-" if d == 3 else "--",
        label=f"$d={d}$, $s={s_w:g}$",
    )
ax.axhline(0.0, color="k", lw=0.8)
ax.set_ylim(-0.5, 0.5)
ax.set_xlabel("radius $r$")
ax.set_ylabel("$w(s, r)$")
ax.set_title(r"undamped wave of $f_0 \geq 0$: negative wake")
ax.legend(fontsize=8)
ax = axes[1]
for j, d in enumerate((1, 2, 3)):
    ax.plot(r_ins, ins[d]["u"], color=COLORS[j], label=f"$d={d}$: $E[w(K(t)/c, r)]$")
    ax.plot(r_ins[::4], ins[d]["ref"][::4], "o", color=COLORS[j], ms=3, mfc="none")
ax.axhline(0.0, color="k", lw=0.8)
ax.set_xlabel("radius $r$")
ax.set_ylabel("$u(t, r)$")
ax.set_title(f"Kac's insertion, $(a,c,t)=({A_I:g},{C_I:g},{T_I:g})$: dots = reference")
ax.legend(fontsize=8, loc="upper right")
ax = axes[2]
for j, d in enumerate((2, 3)):
    ax.semilogx(A_SWEEP, min_sweep[d], "o-", color=COLORS[j + 1], label=f"$d={d}$")
ax.axhline(0.0, color="k", lw=0.8)
ax.set_xlabel("switching rate $a$")
ax.set_xticks(A_SWEEP, [f"{a:g}" for a in A_SWEEP])
ax.minorticks_off()
ax.set_ylabel(r"$\min_r u(t, r)$")
ax.set_title(f"Remark 7: negative part at $t={T_I:g}$, $c={C_I:g}$")
ax.legend(fontsize=8)
ax = axes[3]
for j, d in enumerate((2, 3)):
    r8 = lemma8[(d, 1.0)]
    ax.plot(r_ins, r8["heat"], color=COLORS[j + 1], lw=2.4, alpha=0.5, label=f"heat, $d={d}$")
    ax.plot(r_ins, r8["good"], color=COLORS[j + 1], ls="--", label=rf"$\tau=\sigma/c$, $d={d}$")
    ax.plot(r_ins, r8["bad"], color=COLORS[j + 1], ls=":", label=rf"$\tau=\sigma$, $d={d}$")
ax.set_xlabel("radius $r$")
ax.set_ylabel("density")
ax.set_title(rf"Lemma 8: $E[w(\tau W(t), r)]$, $t=1$, $\sigma={SIGMA_L8:g}$, $c={C_L8:g}$")
ax.legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "nb03_kac_insertion", figures_dir)
plt.show()

# %% [markdown]
# ## 7. Reproduced / differs
#
# The table is computed from the numbers above; each verdict is a comparison with the
# paper's statement, for the rate of Thm 12 with the rate as read from the talk slides. The
# thresholds are those of the text: $|z| < 4$ for Monte Carlo against a closed form or the
# law, ratios $\le 1$ for the bounds, $5\cdot 10^{-5}$ for the PDE mass outside the cone,
# slope $\le -(1/2 + (d-1)/4)$ for the rate, 2 % for our leading term, and for Lemma 13 a
# fine-grid residual below $2\cdot 10^{-2}$ with observed order in $(1.7, 2.3)$ and a control
# residual more than 10 times larger. For section 6: relative errors below $10^{-8}$ for the
# closed-form and quadrature checks (their actual size is $10^{-11}$ or less, a wrong time
# scale gives $O(1)$), and for Remark 7 a minimum below $-10^{-3}$ times the maximum (far
# outside the quadrature error) in $d = 2, 3$, and no negative value beyond $10^{-12}$ in
# $d = 1$.

# %%
# NBVAL_CHECK_OUTPUT
rows = []
z_w2 = max(max_abs_z(r["msd"], r["msd_se"], r["msd_exact"]) for r in prop11.values())
ratio_w2 = max((np.sqrt(r["msd_exact"]) / r["bound"]).max() for r in prop11.values())
w2_ok = all(
    w2_lipschitz_verdict(r["msd"], r["msd_se"], r["msd_exact"], r["bound"], z_max=4.0)
    for r in prop11.values()
)
rows.append(
    (
        "Prop 11: W2(mu_s, mu_t) <= sqrt(d) c |t - s|",
        f"paths vs exact: max|z| {z_w2:.2f}; exact/bound {ratio_w2:.4f}",
        "|z| < 4, <= 1",
        w2_ok,
    )
)
ratio_v = max((r["law"] / (D * ac[1] ** 2)).max() for ac, r in prop11.items())
z_v = max(max_abs_z(r["mc"], r["mc_se"], r["law"]) for r in prop11.values())
rows.append(
    (
        "Prop 11: ||v_t||^2 <= d c^2",
        f"law: max ratio {ratio_v:.4f}; MC max|z| {z_v:.2f}",
        "<= 1, |z| < 4",
        ratio_v <= 1.0 and z_v < 4.0,
    )
)
rows.append(
    (
        "Prop 11: supp mu_t in supp mu_0 + [-ct, ct]^d",
        f"PDE mass outside {pde_out:.1e}",
        f"<= {SUPPORT_TOL:.0e}",
        support_verdict(pde_out, tol=SUPPORT_TOL),
    )
)
dec = all(r["dist"][-1, j] < 0.01 * r["dist"][:, j].max() for r in thm12.values() for j in range(3))
rows.append(
    (
        "Thm 12: ||p_t - q_t||_L2 -> 0 as t grows",
        "drops > 100x by t = 100" if dec else "does not drop 100x",
        "-> 0",
        dec,
    )
)
for j, d in enumerate(THM12_DIMS):
    sl = [r["slope"][j] for r in thm12.values()]
    ok = all(rate_bound_verdict(s, slides[d]) for s in sl)
    rows.append(
        (
            f"Thm 12 rate, d = {d} (slides)",
            "slopes " + ", ".join(f"{s:.3f}" for s in sl),
            f"<= {slides[d]:.3f}",
            ok,
        )
    )
improves = all(r["slope"][0] > r["slope"][1] > r["slope"][2] for r in thm12.values())
rows.append(
    (
        "Thm 12: rate improves with d",
        "slope d=1 > d=2 > d=3" if improves else "not monotone",
        "monotone in d",
        improves,
    )
)
lead_ok = all(
    abs(r["dist"][-1, j] / r["lead"][-1, j] - 1) < 0.02 for r in thm12.values() for j in range(3)
)
rows.append(
    (
        "Thm 12: our leading term at t = 100 (not paper)",
        "exact/leading within 2 %" if lead_ok else "off by > 2 %",
        "ratio -> 1",
        lead_ok,
    )
)
fine = max(r["rel"][1] for r in lemma13.values())
orders = [math.log2(r["rel"][0] / r["rel"][1]) for r in lemma13.values()]
ctrl = min(r["heat_rel"][1] for r in lemma13.values())
ok13 = fine < 2e-2 and all(1.7 < o < 2.3 for o in orders) and ctrl > 10 * fine
rows.append(
    (
        "Lemma 13 / Thm 14: product p, componentwise v",
        f"residual {fine:.1e}, order {min(orders):.2f}-{max(orders):.2f}",
        "O(dx^2) -> 0",
        ok13,
    )
)
rows.append(
    (
        "  control: heat-flow velocity on the same p",
        f"residual {ctrl:.3f}",
        "> 10x the Kac one",
        ctrl > 10 * fine,
    )
)
rows.append(
    (
        "Kirchhoff (d=3) / Poisson (d=2) wave solutions [56-61]",
        f"max rel. err vs Fourier {ins_wave_err:.1e}",
        "< 1e-8",
        ins_wave_err < 1e-8,
    )
)
rows.append(
    (
        "Thm 6: u = E[w(K(t)/c, x)] solves the damped wave eq. (d = 1, 2, 3)",
        f"max rel. err {ins_err:.1e}; time 2T instead of T: {ins_err_wrong:.2f}",
        "< 1e-8",
        ins_err < 1e-8,
    )
)
rows.append(
    (
        "Remark 7: wave solution of f0 >= 0 is negative (d = 2, 3)",
        f"min w / max w: d=2 {ins_wave_neg[2]:+.3f}, d=3 {ins_wave_neg[3]:+.3f}",
        "< -1e-3 each",
        all(v < -1e-3 for v in ins_wave_neg.values()),
    )
)
rows.append(
    (
        "Remark 7: inserted u is negative (d = 2, 3), not for d = 1",
        f"min u / max u: d=1 {ins_neg[1]:+.1e}, d=2 {ins_neg[2]:+.3f}, d=3 {ins_neg[3]:+.3f}",
        "d=2,3 < -1e-3; d=1 >= -1e-12",
        ins_neg[2] < -1e-3 and ins_neg[3] < -1e-3 and ins_neg[1] >= -1e-12,
    )
)
rows.append(
    (
        "Lemma 8: E[w(tau W(t), x)] = heat, tau = sigma/c (derived from d = 1)",
        f"max rel. err {l8_err:.1e}; tau = sigma: {l8_err_bad:.2f}",
        "< 1e-8",
        l8_err < 1e-8,
    )
)
verdicts = [report.row(claim, measured, expected, ok) for claim, measured, expected, ok in rows]
report.print_verdicts(verdicts)
_ = report.write_metrics("03_kac_multid", profile, verdicts, figures_dir)

# %% [markdown]
# **Summary.** The componentwise Kac process behaves as Sections 5-6 of the paper state. Its
# paths (Figure 1) are piecewise linear along the diagonals and look Brownian for large
# $(a, c)$ with $c^2/a$ fixed; a point cloud first splits into translated copies and then
# blurs (talk figure). For Prop 11 the coupled random-walk paths reproduce the closed-form
# increment moment, which stays below $d c^2 \tau^2$ and is sharp for small lags; the velocity
# norm recovered from the law of $K(t)$ stays below $d c^2$ and matches Monte Carlo with the
# velocity formula; and the telegrapher's equation keeps its solution inside
# $\mathrm{supp}\,f_0 + [-ct, ct]$ up to discretisation error. For Thm 12 the $L^2$ distance to
# the heat density, computed exactly through 1D factors, decays in $d = 1, 2, 3$ with slopes
# steeper than the exponent $-(1/2 + (d-1)/4)$ that the talk slides give (as far as their text
# can be read), by about $3/4$: consistent with that upper bound, which is far from sharp
# here. The measured slopes follow our own leading-order exponent $-(1 + d/4)$ (not the
# paper's) within a few hundredths, a pre-asymptotic gap our closed-form leading term
# explains; both improve with $d$, as the paper says. The 2D continuity equation with the
# componentwise velocity of Lemma 13 / Thm 14 and Cor 15 holds up to second-order
# discretisation error, while the heat-flow velocity fails it. Kac's insertion (section 6)
# does solve the damped wave equation in $d = 2, 3$ (Thm 6, to $10^{-11}$ against the Fourier
# solution), but for a Gaussian $f_0$ with $s_0 = 0.25$ at $(a, c, t) = (0.5, 1, 2)$ its
# minimum is about $-16\%$ ($d = 2$) and $-85\%$ ($d = 3$) of its maximum, while in $d = 1$ it
# is the nonnegative law of $X_0 + K(t)$ (Remark 7); the negative part shrinks as $a$ grows.
# Inserting $\tau W(t)$ with $\tau = \sigma/c$ (our derivation from $d = 1$) gives the heat
# density exactly (Lemma 8). This is why the paper uses the componentwise process.

# %% [markdown]
# ## 8. Explore: the point cloud at any time
#
# The smiley of section 2 moved by $X_t = X_0 + K(t)$ for any $(a, c)$ and $0 \le t \le 2$.
# With `interactive = True` in the parameters cell and ipywidgets installed (the `lab`
# extra), sliders for $a$, $c$ and $t$ redraw it; moving $t$ moves the same particles (the
# random walks depend only on the seed), and the dashed box $X_0 + [-ct, ct]^2$ bounds them
# (Prop 11). The numbers come from `kacnb.collection.explore.cloud_frame` (tested in
# `tests/test_explore.py`). Otherwise, and in every batch run, a static figure shows each
# pair of `pairs` at `explore_t`.

# %%
explorer = explore.cloud_explorer(INTERACTIVE, smiley_cloud(cfg["n_cloud"]), PAIRS, EXPLORE_T)
if isinstance(explorer, plt.Figure):  # the static figure (no sliders)
    plt.show()
