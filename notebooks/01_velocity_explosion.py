# %% [markdown]
# # Why the Kac flow: exploding velocity fields
#
# > **Reading the references.** This notebook follows R. Duong, J. Chemseddine, P. K. Friz,
# > G. Steidl, *Telegrapher's Generative Model via Kac Flows*,
# > [arXiv:2506.20641v1](https://arxiv.org/abs/2506.20641v1). A number in square brackets,
# > such as [41], is an **equation number of that paper**; Thm, Prop, Lemma, Remark and
# > App. refer to its statements and appendix, and "Section 3" (capitalised) to its sections,
# > while "section N" in lower case means a section of this notebook. The formulas and
# > settings used here are collected in [docs/paper-notes.md](../docs/paper-notes.md).
# > The parameters cell below holds the settings you may change (here, or with
# > `kacnb run 01 -p NAME=VALUE`).
#
# A flow model moves samples along a curve of probability measures $\mu_t$ with a velocity
# field $v_t$ that satisfies the **continuity equation** [2]
# $$\partial_t \mu_t + \nabla\cdot(\mu_t v_t) = 0 .$$
# Flow matching learns $v_t$ by least squares, which is well posed when the kinetic energy is
# integrable [3],
# $$\int_0^1 \|v_t\|^2_{L^2(\mu_t)}\,dt < \infty ,$$
# and the generating ODE $\dot\varphi = v_t(\varphi)$ is well behaved when
# $\sup|v_t| + \mathrm{Lip}(v_t)$ is integrable in $t$ on compact sets [4].
#
# Section 3 of the paper goes through the usual flows and shows that each
# breaks one of these conditions, while the Kac flow does not (Prop. 11):
#
# | flow | $\|v_t\|^2_{L^2(\mu_t)}$ | what breaks |
# |---|---|---|
# | coupling [6-7], $N(0, I_d) \to \delta_0$ | $d$ | [4] at $t=1$: Lip$(v_t) = 1/(1-t)$ |
# | diffusion from $\delta_0$ [8-12] | $d/(4t)$ | [3] at $t = 0$ |
# | Boltzmann interpolation [13-16] | explodes with the distance between modes | [3] in practice |
# | Poisson flow (PFGM) [17-19] | unbounded as $z \to 0$ near the data | needs truncation |
# | **Kac flow** | $\le d c^2$ for every $t$ | nothing |
#
# This notebook measures every row. Analytic or quadrature curves are checked against Monte
# Carlo estimates $\frac1n\sum_k |v_t(X_k)|^2$, $X_k \sim \mu_t$, in every case. Every verdict
# at the end compares two routes that do not share the formula under test: closed forms
# against Monte Carlo, a Lipschitz constant measured on coupled sample paths, and for the Kac
# flow a velocity recovered from its law alone (through the continuity equation) and the
# speeds of the random-walk paths of App. A.1.

# %% tags=["parameters"]
profile = "quick"
device = "auto"
seed = 0
figures_dir = None
# Settings a reader may change; None means the value of the profile, which decides the scale.
kac_pairs = [(1.0, 1.0), (4.0, 2.0), (25.0, 5.0)]  # (a, c) of the Kac flows, sections 1-2
bound_pair = (25.0, 5.0)  # (a, c) of the bound check of section 5 (dimensions 1 to 3)
n_mc = None  # Monte-Carlo draws per check (smoke 20k, quick 100k, paper 1M)

# %%
# ruff: noqa: E402 (the imports follow the parameters cell)
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from kacnb import report
from kacnb.collection import params, runtime
from kacnb.collection.plotting import COLORS, GROUND_TRUTH, save_figure
from kacnb.theory.flows import (
    BoltzmannFlow1D,
    CouplingFlow,
    DiffusionFlow,
    KacFlow,
    PoissonFlow,
    energy_divergence_verdict,
    growth_rate,
    kac_path_projection,
    lipschitz_divergence_verdict,
    log_time_integral,
    mc_energy,
    mc_velocity_norm_sq,
    mixture_potential_1d,
    path_lipschitz_lower_bound,
    poisson_field,
)
from kacnb.theory.kac import Kac
from kacnb.theory.stats import agrees, max_abs_z

rt = runtime.setup(profile, device, seed)
SETTINGS = {
    # n_mc: Monte-Carlo draws per check; n_curve: times per analytic curve;
    # dx_boltzmann: grid step of the Boltzmann quadrature; n_poisson: grid points on [-R, R]
    "smoke": {"n_mc": 20_000, "n_curve": 60, "dx_boltzmann": 0.01, "n_poisson": 30_001},
    "quick": {"n_mc": 100_000, "n_curve": 200, "dx_boltzmann": 0.005, "n_poisson": 60_001},
    "paper": {"n_mc": 1_000_000, "n_curve": 400, "dx_boltzmann": 0.0025, "n_poisson": 120_001},
}
cfg = runtime.pick(profile, SETTINGS)
cfg = {**cfg, "n_mc": params.count("n_mc", n_mc, cfg["n_mc"], minimum=100, maximum=10**7)}
KAC_PAIRS = params.pairs("kac_pairs", kac_pairs, max_len=6)
KAC_BOUND = params.pairs("bound_pair", bound_pair, max_len=1)[0]
F64 = torch.float64

# %% [markdown]
# ## 1. The flows and their velocity norms
#
# All flows in this section are one dimensional ($d = 1$) and run on $t \in (0, 1)$:
#
# * **coupling**: $X_t = (1-t)Z$, $Z \sim N(0,1)$, $v_t(x) = -x/(1-t)$, so
#   $\|v_t\|^2 = E|Z|^2 = 1$ for every $t$, but
#   $\mathrm{Lip}(v_t) = \sup_{|x|\le 1}|v_t(x)| = 1/(1-t)$;
# * **diffusion**: $X_t = W(t)$, $v_t(x) = x/(2t)$, $\|v_t\|^2 = 1/(4t)$;
# * **Boltzmann interpolation**: $p_t \propto e^{-f_t}$, $f_t = (1-t)f_0 + t f_1$. The paper leaves
#   the example open; we take two Gaussian modes at $\pm m$, $m = 3$, unit standard deviation, with
#   weights $0.9/0.1$ at $t = 0$ and $0.1/0.9$ at $t = 1$ (mass must cross the valley between the
#   modes). The velocity comes from the 1D flux $J = p_t v_t = \int_{-\infty}^x p_t(\partial_t f_t -
#   E_{p_t}\partial_t f_t)$ on a grid;
# * **Poisson flow**: three data points $y \in \{-1, -0.2, 0.6\}$ on the line $z = 0$, with the
#   height $z$ as time; $\mu_z$ has density $2E_z$ and velocity $E_x/E_z$. Its full norm is
#   infinite (Cauchy tails), so we report the norm **truncated to the window $|x| \le R = 3$**;
# * **Kac**: $\mu_t = \mathrm{law}(K(t))$ for $(a, c) \in \{(1,1), (4,2), (25,5)\}$, velocity [41].
#   All three have $c^2/a = 1$, the diffusion's $\sigma^2$ (Thm 9), so for $at \gg 1$ their norms
#   approach the diffusion's $1/(4t)$, while Prop. 11 caps them at $c^2$.
#
# The time axis is a **logit** axis, logarithmic both near $t = 0$ and near $t = 1$.

# %%
M_BOLTZ = 3.0
R_POISSON = 3.0
POISSON_DATA = torch.tensor([-1.0, -0.2, 0.6], dtype=F64)
BOLTZ = f"Boltzmann (m = {M_BOLTZ:g})"
POISSON = f"Poisson (t = z, |x| <= {R_POISSON:g})"


def boltzmann_grid(m, half_width):
    """Uniform grid over [-m - half_width, m + half_width] with the profile's step."""
    n = int(round((2 * m + 2 * half_width) / cfg["dx_boltzmann"])) + 1
    return torch.linspace(-m - half_width, m + half_width, n, dtype=F64, device=rt.device)


def reweighting_flow(m, kind="gaussian", half_width=10.0, rel_floor=1e-12):
    """Boltzmann interpolation moving the weights 0.9/0.1 of modes at -m/+m to 0.1/0.9."""
    f0 = mixture_potential_1d([-m, m], [0.9, 0.1], kind=kind)
    f1 = mixture_potential_1d([-m, m], [0.1, 0.9], kind=kind)
    return BoltzmannFlow1D(f0, f1, boltzmann_grid(m, half_width), rel_floor=rel_floor)


poisson_window = torch.linspace(
    -R_POISSON, R_POISSON, cfg["n_poisson"], dtype=F64, device=rt.device
)
flows = {
    "coupling": CouplingFlow(1),
    "diffusion": DiffusionFlow(1),
    BOLTZ: reweighting_flow(M_BOLTZ),
    POISSON: PoissonFlow(POISSON_DATA),
    **{f"Kac (a, c) = ({a:g}, {c:g})": KacFlow(Kac(a, c), 1) for a, c in KAC_PAIRS},
}


def norm_sq(name, t):
    """||v_t||^2_{L2(mu_t)}: closed form, grid or Kac quadrature (truncated for Poisson)."""
    flow = flows[name]
    if isinstance(flow, PoissonFlow):
        return flow.velocity_norm_sq(t, poisson_window)
    return flow.velocity_norm_sq(t)


def mc_norm_sq(name, t):
    """Monte-Carlo estimate of the same quantity (truncated to |x| <= R for Poisson)."""
    flow = flows[name]
    radius = R_POISSON if isinstance(flow, PoissonFlow) else None
    return mc_velocity_norm_sq(flow, t, cfg["n_mc"], rt.generator, radius, rt.device)


# Poisson: the grid must resolve the Cauchy scale z, so its curve starts at z = 1e-3.
T_MIN = {name: 1e-3 if name == POISSON else 1e-4 for name in flows}
curves = {}
for name in flows:
    ts = 1 / (1 + np.exp(-np.linspace(math.log(T_MIN[name]), math.log(1e4), cfg["n_curve"])))
    curves[name] = (ts, np.array([norm_sq(name, float(t)) for t in ts]))

MC_TIMES = [1e-3, 1e-2, 0.1, 0.5, 0.9, 0.99, 0.999]
mc = {name: [(t, mc_norm_sq(name, t), norm_sq(name, t)) for t in MC_TIMES] for name in flows}

# %% [markdown]
# **Monte-Carlo check.** For every flow and every marker time, $z = (\text{MC} -
# \text{curve})/\text{stderr}$ should look like a standard normal draw; we call the curve
# confirmed when $\max|z| < 4$ over the seven times. The Poisson estimate at small $z$ is noisy
# (rare draws in the Cauchy tails carry most of the norm) but unbiased.

# %%
# NBVAL_CHECK_OUTPUT
mc_ok = {}
print(f"{'flow':<34} {'max |z|':>8} {'max rel. err':>13}  verdict")
for name, rows in mc.items():
    means, ses, refs = (
        [r[1].mean for r in rows],
        [r[1].stderr for r in rows],
        [r[2] for r in rows],
    )
    rel = max(abs(m - ref) / ref for m, ref in zip(means, refs, strict=True))
    mc_ok[name] = agrees(means, ses, refs, z_max=4.0)
    z = max_abs_z(means, ses, refs)
    print(f"{name:<34} {z:8.2f} {rel:13.3f}  {'agree' if mc_ok[name] else 'DISAGREE'}")

# %% [markdown]
# ## 2. Energy [3] and the ODE condition [4]
#
# The left panel shows $\|v_t\|^2$; the right panel shows what it means for condition [3]: the
# energy $E(\varepsilon) = \int_\varepsilon^1 \|v_t\|^2\,dt$ as the lower end
# $\varepsilon \to 0$ (Gauss-Legendre in $\log t$, one panel per decade). Diffusion gives
# $E(\varepsilon) = \tfrac14\log(1/\varepsilon)$, a straight line on a log axis that never
# levels off; the truncated Poisson norm grows like $1/z$ too, so its energy also diverges
# logarithmically. The Kac energies level off: their norm is at most $c^2$, so
# $E(0) - E(\varepsilon) \le c^2 \varepsilon$. For the coupling flow the energy is finite, and
# the dotted line shows the integral in condition [4] instead:
# $\int_0^{1-\varepsilon}\mathrm{Lip}(v_t)\,dt = \log(1/\varepsilon)$.
#
# Three of these curves are measured without the formula they test:
#
# * **coupling, [4]**: the Lipschitz constant comes from 1000 coupled pairs of sample paths
#   $X_t = (1-t)Z$ (`CouplingFlow.paths`, `path_lipschitz_lower_bound`). A velocity field that
#   moves the particles has $v_t(X_j) = \dot X_j$, so
#   $\mathrm{Lip}(v_t) \ge |\dot X_j - \dot X_k| / |X_j - X_k|$ for every pair, with the
#   speeds taken as centred differences of the paths;
# * **Kac**: the norms are recovered from the law of $K(t)$ alone (section 5: the flux from
#   the continuity equation), not from the velocity formula [41];
# * **diffusion**: besides the closed-form curve, the energy of each of the last two decades,
#   $[10^{-5}, 10^{-4}]$ and $[10^{-6}, 10^{-5}]$, is estimated by Monte Carlo: an independent
#   `mc_velocity_norm_sq` at each of 16 Gauss nodes in $\log t$ (`mc_energy`).

# %%
EPS = np.logspace(-6, 0, 7)  # 1e-6, ..., 1


def energy_curve(fn, eps_min):
    """E(eps) = int_eps^1 fn(t) dt on the decades of EPS down to eps_min (cumulative)."""
    eps = EPS[EPS >= eps_min * (1 - 1e-9)][::-1]  # 1, 0.1, ...
    pieces = [log_time_integral(fn, lo, hi) for hi, lo in zip(eps[:-1], eps[1:], strict=True)]
    return eps, np.concatenate([[0.0], np.cumsum(pieces)])


def law_norm_sq(name, t):
    """||v_t||^2 of a Kac flow from the law of K(t) alone (section 5), not from [41]."""
    return flows[name].law_velocity(t).norm_sq


energies = {}
for name in flows:
    if name == BOLTZ:
        continue  # bounded on [0, 1]; its size is the subject of section 3
    eps_min = 1e-3 if name == POISSON else 1e-6
    source = law_norm_sq if name.startswith("Kac") else norm_sq
    energies[name] = energy_curve(lambda t, name=name, f=source: f(name, t), eps_min)
coupling = flows["coupling"]
N_PAIRS = 1000


def path_lipschitz(s):
    """Lower bound of Lip(v_t) at t = 1 - s from N_PAIRS coupled pairs of paths (1/time)."""

    def paths(ts):
        gen = torch.Generator(device=rt.device).manual_seed(seed)  # the same particles
        return coupling.paths(ts, 2 * N_PAIRS, generator=gen, device=rt.device)

    return path_lipschitz_lower_bound(paths, 1.0 - s, 1e-3 * s)


lip_integral = energy_curve(path_lipschitz, 1e-6)
diffusion_decades = [
    mc_energy(flows["diffusion"], lo, 10 * lo, cfg["n_mc"], rt.generator, device=rt.device)
    for lo in (1e-5, 1e-6)
]

# %%
styles = {name: {"color": COLORS[i % len(COLORS)]} for i, name in enumerate(flows)}
fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
for name, (ts, ns) in curves.items():
    ax.plot(ts, ns, label=name, **styles[name])
    ax.plot(
        [t for t, _, _ in mc[name]],
        [est.mean for _, est, _ in mc[name]],
        "o",
        ms=4.5,
        mfc="none",
        **styles[name],
    )
ts = curves["coupling"][0]
lip_label = r"coupling: Lip$(v_t) = 1/(1-t)$; in (b) $\int$ Lip $dt$ from paths [4]"
ax.plot(ts, [coupling.lipschitz(t) for t in ts], ":", label=lip_label, **styles["coupling"])
for _, c in KAC_PAIRS:
    ax.axhline(c**2, color="0.6", lw=0.7, ls="--", zorder=0)
    ax.text(1.3e-4, c**2 * 1.12, f"$c^2 = {c**2:g}$", fontsize=8, color="0.4")
ax.set_xscale("logit")
ax.set_yscale("log")
ax.set_xlim(1e-4, 1 - 1e-4)
ax.set_ylim(0.05, 2e4)
ax.set_xlabel("time t (logit scale; Poisson: height z)")
ax.set_ylabel(r"$\|v_t\|^2_{L^2(\mu_t)}$  (length$^2$/time$^2$)")
ax.set_title("(a) squared velocity norm, d = 1 (o: Monte Carlo; dashed: Kac bounds $c^2$)")

for name, (eps, e) in energies.items():
    ax2.plot(eps, e, "o-", ms=3.5, **styles[name])
eps, e = lip_integral
ax2.plot(eps, e, "o:", ms=3.5, **styles["coupling"])
ax2.set_xscale("log")
ax2.invert_xaxis()
ax2.set_xlabel(r"$\varepsilon$  (lower end; for the coupling Lip: $1-$upper end)")
ax2.set_ylabel(r"$E(\varepsilon)=\int_\varepsilon^1 \|v_t\|^2 dt$  (length$^2$/time)")
ax2.set_title(r"(b) energy [3] as $\varepsilon \to 0$ (straight line = divergence)")
fig.legend(loc="lower center", ncol=4, fontsize=9, bbox_to_anchor=(0.5, -0.1))
fig.tight_layout()
save_figure(fig, "nb01_velocity_norms", figures_dir)
plt.show()

# %% [markdown]
# The slope of $E(\varepsilon)$ per decade of $\varepsilon$ over the last decade measures the
# divergence: $\tfrac14 \ln 10 \approx 0.576$ for diffusion, $\ln 10 \approx 2.303$ for the
# coupling's Lipschitz integral, and $\to 0$ for every Kac flow. The verdicts use the
# measured versions: the path-based Lipschitz integral must gain $\ln 10$ per decade within a
# relative $10^{-3}$; the Monte-Carlo diffusion energy must not shrink from one decade to the
# next (ratio at least 0.9, where an integrable norm $t^{-p}$, $p < 1$, gives $10^{p-1}$)
# and its last decade must lie within 4 standard errors of $\tfrac14\ln 10$; a Kac energy's
# last decade may add at most $c^2 (10^{-5} - 10^{-6})$ (Prop. 11).


# %%
# NBVAL_CHECK_OUTPUT
def last_decade(curve):
    eps, e = curve
    return e[-1] - e[-2], eps[-1]


print(f"{'flow':<34} {'smallest eps':>12} {'E(eps)':>9} {'last decade adds':>17}")
for name, curve in {**energies, "coupling: int Lip dt [4], paths": lip_integral}.items():
    inc, eps_end = last_decade(curve)
    print(f"{name:<34} {eps_end:12.0e} {curve[1][-1]:9.4g} {inc:17.4g}")
lip_slope = last_decade(lip_integral)[0]
# Prop. 11: the last decade [1e-6, 1e-5] can add at most c^2 (1e-5 - 1e-6) to a Kac energy
kac_tails = {
    name: (last_decade(curve)[0], flows[name].kac.c ** 2 * 9e-6)
    for name, curve in energies.items()
    if name.startswith("Kac")
}
prev_decade, last_decade_mc = diffusion_decades
print("diffusion energy by Monte Carlo (ln(10)/4 = 0.5756):")
print(f"  [1e-5, 1e-4] adds {prev_decade.mean:.4f} +- {prev_decade.stderr:.4f}")
print(f"  [1e-6, 1e-5] adds {last_decade_mc.mean:.4f} +- {last_decade_mc.stderr:.4f}")
print(f"  ratio of the two decades = {last_decade_mc.mean / prev_decade.mean:.4f}")
print(f"coupling: path-based Lip integral per decade / ln(10) = {lip_slope / math.log(10):.6f}")

# %% [markdown]
# ## 3. Boltzmann interpolation: the peak explodes with the distance between the modes
#
# Re-weighting two modes at $\pm m$ (weights $0.9/0.1 \to 0.1/0.9$) forces a fixed amount of
# mass per unit time through the valley between them, where $p_t$ is tiny. The flux $J$ there is
# of order one, so $v_t = J/p_t$ is of order $1/p_t(\text{valley})$, and so is
# $\|v_t\|^2 = \int J^2/p_t$. The valley density sets the rate:
#
# * **Laplace modes** $\tfrac12 e^{-|x\mp m|}$ (the Laplace example of the paper's ref. [4]):
#   $p_t(0) \sim e^{-m}$, so $\max_t \|v_t\|^2 \sim C e^{m}$, exponential growth with rate 1 per
#   unit of $m$ (rate 1/2 per unit of the distance $2m$ between the modes);
# * **Gaussian modes** $N(\pm m, 1)$: $p_t(0) \sim e^{-m^2/2}$ and the valley has width
#   $\sim 1/m$, so $\max_t\|v_t\|^2 \sim C e^{m^2/2}/m$, faster than exponential.
#
# By the symmetry $x \to -x$, $t \to 1-t$ the peak sits at $t = 1/2$. We locate it numerically
# (41 times and a bounded search) and fit $\log$ peak against $m$ (Laplace, $m \ge 6$) and
# $\log(m\cdot$peak$)$ against $m^2$ (Gaussian, $m \ge 3$). The grid covers
# $[-m-30, m+30]$ (Laplace) or $[-m-10, m+10]$ (Gaussian) with the profile's step.

# %%
M_LAPLACE = np.arange(1.0, 13.0)
M_GAUSS = np.arange(1.0, 8.0)
peaks = {
    "laplace": [reweighting_flow(m, "laplace", 30.0, 1e-30).peak_norm_sq() for m in M_LAPLACE],
    "gaussian": [reweighting_flow(m, "gaussian", 10.0, 1e-30).peak_norm_sq() for m in M_GAUSS],
}
peak_laplace = np.array([p for _, p in peaks["laplace"]])
peak_gauss = np.array([p for _, p in peaks["gaussian"]])
fit_laplace = growth_rate(M_LAPLACE[M_LAPLACE >= 6], peak_laplace[M_LAPLACE >= 6])
sel = M_GAUSS >= 3
fit_gauss = growth_rate(M_GAUSS[sel] ** 2, (M_GAUSS * peak_gauss)[sel])
t_peaks = [t for kind in peaks for t, _ in peaks[kind]]

# %%
# NBVAL_CHECK_OUTPUT
print(f"peak times: min {min(t_peaks):.4f}, max {max(t_peaks):.4f} (symmetry: 0.5)")
print("m     Laplace peak   Gaussian peak")
for i, m in enumerate(M_LAPLACE):
    g = f"{peak_gauss[i]:.4g}" if i < len(M_GAUSS) else "-"
    print(f"{m:4.0f}  {peak_laplace[i]:12.4g}   {g:>12}")
print(f"Laplace: log peak ~ rate * m, rate = {fit_laplace[0]:.4f} (predicted 1)")
print(f"Gaussian: log(m peak) ~ rate * m^2, rate = {fit_gauss[0]:.4f} (predicted 0.5)")

# %% [markdown]
# The left panel shows the peaks on a log scale with the fits; the middle and right panels show
# $p_t$ and $v_t$ for the Gaussian modes at $m = 3$. The velocity is a bump centred in the
# valley whose height ($\approx J/p_t(0)$) dwarfs the speeds of order one at the modes.

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
ax = axes[0]
ax.semilogy(M_LAPLACE, peak_laplace, "o", color=COLORS[0], label="Laplace modes")
ml = np.linspace(4.5, M_LAPLACE[-1], 50)
ax.semilogy(
    ml,
    np.exp(fit_laplace[1] + fit_laplace[0] * ml),
    "-",
    color=COLORS[0],
    lw=1,
    label=rf"fit $\propto e^{{{fit_laplace[0]:.3f}\,m}}$",
)
ax.semilogy(M_GAUSS, peak_gauss, "s", color=COLORS[1], label="Gaussian modes")
mg = np.linspace(2.5, M_GAUSS[-1], 50)
ax.semilogy(
    mg,
    np.exp(fit_gauss[1] + fit_gauss[0] * mg**2) / mg,
    "-",
    color=COLORS[1],
    lw=1,
    label=rf"fit $\propto e^{{{fit_gauss[0]:.3f}\,m^2}}/m$",
)
ax.set_xlabel("half distance m between the modes (modes at ±m)")
ax.set_ylabel(r"$\max_t \|v_t\|^2_{L^2(p_t)}$")
ax.set_title("(a) Boltzmann peak norm vs mode distance")
ax.legend(fontsize=8)

demo = flows[BOLTZ]
x = demo.x.cpu().numpy()
for i, t in enumerate([0.0, 0.25, 0.5, 0.75, 1.0]):
    state = demo.state(t)
    col = plt.get_cmap("viridis")(i / 4)
    axes[1].plot(x, state.density.cpu().numpy(), color=col, label=f"t = {t:g}")
    axes[2].plot(x, state.velocity.cpu().numpy(), color=col, label=f"t = {t:g}")
axes[1].set_xlim(-7, 7)
axes[1].set_xlabel("x")
axes[1].set_ylabel(r"$p_t(x)$")
axes[1].set_title(rf"(b) density $p_t$, Gaussian modes at $\pm{M_BOLTZ:g}$")
axes[1].legend(fontsize=8)
axes[2].set_xlim(-7, 7)
axes[2].set_yscale("log")  # v_t > 0: mass flows from the left mode to the right one
axes[2].set_xlabel("x")
axes[2].set_ylabel(r"$v_t(x)$ (length/time)")
axes[2].set_title(r"(c) velocity $v_t = J/p_t$ (peak in the valley)")
fig.tight_layout()
save_figure(fig, "nb01_boltzmann", figures_dir)
plt.show()

# %% [markdown]
# ## 4. The Poisson field near the data plane
#
# PFGM [17-19] places the data as point charges on the plane $z = 0$ of $\mathbb R^{d+1}$ and
# follows the field
# $E(x, z) = \frac1{S_d}\sum_i w_i \frac{(x - y_i, z)}{|(x-y_i, z)|^{d+1}}$ down to $z = 0$. Here
# $d = 1$ ($S_1 = 2\pi$) and three equally weighted points. The field lines fan out of each
# point charge (left). Above a point $y_i$ and at horizontal distance $\delta \gg z$ the
# velocity is $dx/dz = E_x/E_z \approx \delta / z$, so $|v|$ grows without bound as
# $z \to 0$ everywhere except exactly above the data (middle). Weighted with $\mu_z$ (Cauchy
# bumps of width $z$ around the points), the truncated norm grows like $1/z$ (right): its
# exponent, fitted over $z \in [10^{-3}, 10^{-2}]$, should be $-1$.

# %%
poisson = flows[POISSON]
gx, gz = np.meshgrid(np.linspace(-2.5, 2.5, 121), np.linspace(0.02, 2.0, 100))
pts = torch.tensor(gx.ravel(), dtype=F64, device=rt.device)[:, None]
field = poisson_field(pts, torch.tensor(gz.ravel(), dtype=F64, device=rt.device), POISSON_DATA)
ex = field[:, 0].cpu().numpy().reshape(gx.shape)
ez = field[:, 1].cpu().numpy().reshape(gx.shape)

Z_PROFILES = [0.5, 0.1, 0.02, 0.004]
xs = torch.linspace(-2.5, 2.5, 2001, dtype=F64, device=rt.device)[:, None]
speed = {z: poisson.velocity(z, xs)[:, 0].abs().cpu().numpy() for z in Z_PROFILES}

zs_norm = np.logspace(-3, 0, 13)
poisson_norms = np.array([poisson.velocity_norm_sq(float(z), poisson_window) for z in zs_norm])
sel = zs_norm <= 1e-2 * (1 + 1e-9)
poisson_exponent = growth_rate(np.log(zs_norm[sel]), poisson_norms[sel])[0]
z_times_norm = zs_norm[0] * poisson_norms[0]

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
ax = axes[0]
mag = np.hypot(ex, ez)
strm = ax.streamplot(
    gx, gz, ex, ez, color=np.log10(mag), cmap="viridis", density=1.3, linewidth=0.8
)
fig.colorbar(strm.lines, ax=ax, label=r"$\log_{10}|E|$")
ax.plot(POISSON_DATA.numpy(), np.zeros(3), "o", color=GROUND_TRUTH, ms=7, clip_on=False)
ax.set_xlabel("x")
ax.set_ylabel("height z")
ax.set_ylim(0, 2)
ax.set_title("(a) field lines of E, data (red) at z = 0")
for z in Z_PROFILES:
    axes[1].semilogy(xs[:, 0].cpu().numpy(), speed[z], label=f"z = {z:g}")
for y in POISSON_DATA.numpy():
    axes[1].axvline(y, color=GROUND_TRUTH, lw=0.6, ls=":")
axes[1].set_ylim(1e-2, 1e3)
axes[1].set_xlabel("x")
axes[1].set_ylabel(r"$|v| = |E_x/E_z|$ (length per unit z)")
axes[1].set_title("(b) speed on horizontal lines (dotted: data)")
axes[1].legend(fontsize=8)
axes[2].loglog(zs_norm, poisson_norms, "o-", ms=4, label="truncated norm (grid)")
mc_p = mc[POISSON]
axes[2].errorbar(
    [t for t, _, _ in mc_p if t <= 1],
    [est.mean for t, est, _ in mc_p if t <= 1],
    yerr=[2 * est.stderr for t, est, _ in mc_p if t <= 1],
    fmt="s",
    mfc="none",
    color=COLORS[1],
    label="Monte Carlo ±2 s.e.",
)
axes[2].loglog(zs_norm, z_times_norm / zs_norm, "--", color="0.5", lw=1, label=r"$\propto 1/z$")
axes[2].set_xlabel("height z")
axes[2].set_ylabel(r"$\int_{|x|\leq 3} 2E_z\,|E_x/E_z|^2\,dx$")
axes[2].set_title(r"(c) truncated $\|v_z\|^2$ grows like $1/z$")
axes[2].legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "nb01_poisson_field", figures_dir)
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
print(f"fitted exponent of the truncated norm in z (z <= 1e-2): {poisson_exponent:.4f}")
print(f"z * norm at z = 1e-3: {z_times_norm:.4f}; at z = 1e-2: {1e-2 * poisson_norms[sel][-1]:.4f}")
print(f"max |v| at z = {Z_PROFILES[-1]:g} on |x| <= 2.5: {speed[Z_PROFILES[-1]].max():.4g}")

# %% [markdown]
# ## 5. Kac in several dimensions: $\|v_t\|_{L^2(\mu_t)} \le \sqrt d\, c$ (Prop. 11)
#
# The componentwise Kac process has velocity $(v(t, x^1), \dots, v(t, x^d))$ (Lemma 13 /
# Thm 14), so everything follows from the 1D bound $|v(t, \cdot)| \le c$: every sample then
# moves with speed at most $\sqrt d\, c$, and $\|v_t\|^2_{L^2(\mu_t)} \le d c^2$. Evaluating the
# formula [41] on samples would test it against itself, so we recover the velocity from the
# **law** of $K(t)$ [30-31] alone (`symmetric_flux_1d`, `KacFlow.law_velocity`). The law is
# symmetric; its two atoms of mass $e^{-at}/2$ sit at $\pm ct$, so they move with $\pm c$; on
# the open cone the continuous part $\tilde u$ obeys $\partial_t \tilde u + \partial_x J = 0$
# with $J(t, 0) = 0$. Following the point $x = ct\,\xi$ for fixed $\xi \in (0, 1)$,
#
# $$J(t, x) = c\,\xi\,\tilde u(t, x) - \frac{d}{dt}\int_0^{ct\xi} \tilde u(t, y)\,dy ,$$
#
# (or the same with the mass to the right of $x$, atom included, whichever is smaller), with
# the masses by Gauss-Legendre quadrature and $d/dt$ by a centred difference. Then
# $v = J/\tilde u$ and $\|v_t\|^2 = d\,\big(c^2 e^{-at} + \int J^2/\tilde u\,dx\big)$.
#
# We check (i) the largest speed of the continuous part, $\max |J/\tilde u| \le c$, for the
# three pairs of section 1 at 25 times in $[10^{-6}, 1]$; (ii) for $(a, c) = (25, 5)$ (the
# paper's 2D model) in $d = 1, 2, 3$, the norm from the law, its ratio to $d c^2$, and a
# Monte-Carlo estimate that evaluates [41] on exact draws: they must agree within
# $\max|z| < 4$ over the 18 pairs $(d, t)$. At $t \to 0$ almost all the mass sits on the
# atoms, which move with speed exactly $c$ per component, and the bound is attained.

# %%
DIMS = [1, 2, 3]
T_BOUND = [1e-3, 1e-2, 0.03, 0.1, 0.3, 1.0]
SPEED_TIMES = np.logspace(-6, 0, 25)
kac_names = [name for name in flows if name.startswith("Kac")]
law_speed = {
    name: max(flows[name].law_velocity(float(t)).max_speed for t in SPEED_TIMES) / flows[name].kac.c
    for name in kac_names
}
t_dense = np.logspace(-4, 0, cfg["n_curve"])
kac_line = KacFlow(Kac(*KAC_BOUND), 1)
law_dense = np.array([kac_line.law_velocity(float(t)).norm_sq for t in t_dense])  # d = 1
bound_rows = []
for d in DIMS:
    flow = KacFlow(Kac(*KAC_BOUND), d)
    for t in T_BOUND:
        est = mc_velocity_norm_sq(flow, t, cfg["n_mc"], rt.generator, device=rt.device)
        bound_rows.append((d, t, flow.law_velocity(t).norm_sq, est))

# %%
fig, ax = plt.subplots(figsize=(7, 4.2))
c = KAC_BOUND[1]
for i, d in enumerate(DIMS):
    col = COLORS[i]
    ax.plot(t_dense, np.sqrt(d * law_dense), color=col, label=f"d = {d} (from the law)")
    rows = [r for r in bound_rows if r[0] == d]
    ax.errorbar(
        [r[1] for r in rows],
        [math.sqrt(r[3].mean) for r in rows],
        yerr=[r[3].stderr / math.sqrt(r[3].mean) for r in rows],  # 2 s.e. of sqrt(mean)
        fmt="o",
        mfc="none",
        color=col,
    )
    ax.axhline(math.sqrt(d) * c, color=col, ls="--", lw=1)
    ax.text(1.1e-4, math.sqrt(d) * c * 1.02, rf"$\sqrt{{{d}}}\,c$", color=col, fontsize=9)
ax.set_xscale("log")
ax.set_xlabel("time t")
ax.set_ylabel(r"$\|v_t\|_{L^2(\mu_t)}$ (length/time)")
ax.set_title(
    f"Kac (a, c) = ({KAC_BOUND[0]:g}, {c:g}): "
    + r"$\|v_t\| \leq \sqrt{d}\,c$ (o: Monte Carlo with [41])"
)
ax.legend(fontsize=8, loc="lower left")
fig.tight_layout()
save_figure(fig, "nb01_kac_bound", figures_dir)
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
print(" d      t   ||v|| law   ||v|| MC       z   sqrt(d) c")
for d, t, law, est in bound_rows:
    z = (est.mean - law) / est.stderr
    print(
        f"{d:2d} {t:7.3g} {math.sqrt(law):11.4f} {math.sqrt(est.mean):10.4f} {z:7.2f}"
        f" {math.sqrt(d) * c:11.4f}"
    )
kac_ratio_law = max(law_dense.max() / c**2, max(law / (d * c**2) for d, _, law, _ in bound_rows))
law_means = [est.mean for _, _, _, est in bound_rows]
law_ses = [est.stderr for _, _, _, est in bound_rows]
law_refs = [law for _, _, law, _ in bound_rows]
kac_z_law = max_abs_z(law_means, law_ses, law_refs)
kac_mc_ok = agrees(law_means, law_ses, law_refs, z_max=4.0)
print(f"max ||v||^2 / (d c^2) from the law, t in [1e-4, 1] = {kac_ratio_law:.4f}")
print(f"Monte Carlo with [41] vs the law: max |z| = {kac_z_law:.2f}")
print("largest speed of the continuous part / c, from the law, t in [1e-6, 1]:")
for name, ratio in law_speed.items():
    print(f"  {name:<24} {ratio:.4f}")

# %% [markdown]
# **The formula [41] against the random walk.** The curves of section 1 use the velocity
# formula [41]. Since $v(t, x) = \mathbb E[\dot K(t) \mid K(t) = x]$ [94], the tower property
# gives $\mathbb E[v(t, K(t))\,\dot K(t)] = \mathbb E[v(t, K(t))^2] = \|v_t\|^2$: the velocity
# tested against the speeds of the walk itself. We estimate the left side on random-walk
# paths of App. A.1 (`kac_path_projection`; speeds as forward differences over
# $h = 10^{-6}/a$) at the seven marker times of section 1, for the three Kac pairs, and
# require $\max|z| < 4$ against the quadrature curve. A velocity that were zero, negated or
# scaled would fail.

# %%
projection = {
    name: [
        (t, kac_path_projection(flows[name].kac, t, cfg["n_mc"], rt.generator, device=rt.device))
        for t in MC_TIMES
    ]
    for name in kac_names
}

# %%
# NBVAL_CHECK_OUTPUT
proj_z = {}
for name, rows in projection.items():
    means = [est.mean for _, est in rows]
    ses = [est.stderr for _, est in rows]
    refs = [norm_sq(name, t) for t, _ in rows]
    proj_z[name] = max_abs_z(means, ses, refs)
    print(f"{name:<24} E[v(t, K) dK/dt] vs ||v_t||^2: max |z| = {proj_z[name]:.2f}")
proj_ok = max(proj_z.values()) < 4.0

# %% [markdown]
# ## Reproduced / differs
#
# Each claim of the paper's Section 3 table against what this notebook
# measured; the verdict is computed from the numbers above, with the thresholds stated in
# the text: $\max|z| < 4$ for Monte Carlo, $10^{-3}$ relative for the path-based Lipschitz
# integral, ratio $\ge 0.9$ and $|z| < 4$ for the diffusion energy, $0.05$ and $0.025$ for the
# Boltzmann rates, $0.05$ for the Poisson exponent, and ratios $\le 1$ for the Kac bounds.

# %%
# NBVAL_CHECK_OUTPUT
prev_decade, last_decade_mc = diffusion_decades
claims = [
    (
        "coupling: ||v_t||^2 = d",
        f"MC max|z| over 7 times: agree={mc_ok['coupling']}",
        mc_ok["coupling"],
    ),
    (
        "coupling: [4] fails at t = 1 (Lip = 1/(1-t))",
        f"int Lip dt from paths gains {lip_slope:.4f}/decade (ln 10 = 2.3026)",
        lipschitz_divergence_verdict(lip_slope, rtol=1e-3),
    ),
    (
        "diffusion: ||v_t||^2 = d/(4t)",
        f"MC max|z| over 7 times: agree={mc_ok['diffusion']}",
        mc_ok["diffusion"],
    ),
    (
        "diffusion: energy [3] diverges at t = 0",
        f"MC decades add {prev_decade.mean:.4f}, {last_decade_mc.mean:.4f} (ln(10)/4 = 0.5756)",
        energy_divergence_verdict(
            prev_decade, last_decade_mc, math.log(10) / 4, ratio_min=0.9, z_max=4.0
        ),
    ),
    (
        "Boltzmann: peak explodes with mode distance",
        f"Laplace rate {fit_laplace[0]:.3f}/m (pred. 1); Gauss {fit_gauss[0]:.3f}/m^2 (pred. 0.5)",
        abs(fit_laplace[0] - 1) < 0.05 and abs(fit_gauss[0] - 0.5) < 0.025,
    ),
    (
        "Poisson: unbounded near the data (z -> 0)",
        f"truncated norm ~ z^({poisson_exponent:.3f}); MC agree={mc_ok[POISSON]}",
        abs(poisson_exponent + 1) < 0.05 and mc_ok[POISSON],
    ),
    (
        "Kac: |v| <= c from the law (Prop. 11)",
        f"max |J/u|/c = {max(law_speed.values()):.4f}; atoms move with c",
        max(law_speed.values()) <= 1.0,
    ),
    (
        "Kac: ||v_t||^2 <= d c^2, d = 1-3 (Prop. 11)",
        f"law: max ratio {kac_ratio_law:.4f}; MC [41] vs law max|z| {kac_z_law:.2f}",
        kac_ratio_law <= 1.0 and kac_mc_ok,
    ),
    (
        "Kac: energy [3] finite as eps -> 0",
        "law: last decade adds " + ", ".join(f"{v:.1e}" for v, _ in kac_tails.values()),
        all(0 <= v <= cap for v, cap in kac_tails.values()),
    ),
    (
        "Kac: v = E[dK/dt | K] on random-walk paths",
        f"E[v dK/dt] vs ||v||^2: max|z| {max(proj_z.values()):.2f}",
        proj_ok,
    ),
]
thresholds = [
    "max|z| < 4",
    "gain ln 10 within 1e-3 rel.",
    "max|z| < 4",
    "decade ratio >= 0.9, |z| < 4",
    "within 0.05 and 0.025",
    "exponent within 0.05 of -1; max|z| < 4",
    "<= 1",
    "ratio <= 1; max|z| < 4",
    "<= c^2 * 9e-6 per decade",
    "max|z| < 4",
]
rows = [
    report.row(claim, measured, th, ok)
    for (claim, measured, ok), th in zip(claims, thresholds, strict=True)
]
report.print_verdicts(rows)
_ = report.write_metrics("01_velocity_explosion", profile, rows, figures_dir)

# %% [markdown]
# **Summary.** The table above is computed from this notebook's measurements. The coupling
# flow has constant energy $d$, but the particles $X_t = (1-t)Z$ themselves force a
# Lipschitz constant $1/(1-t)$ on any velocity that moves them, and its integral diverges
# logarithmically, so condition [4] fails at $t = 1$. Diffusion's $\|v_t\|^2 = d/(4t)$ is
# confirmed by Monte Carlo, and the Monte-Carlo energy adds the same $\tfrac14\ln 10$ in each
# of the last two decades of $\varepsilon$, so condition [3] fails. For the Boltzmann
# interpolation the numbers confirm the paper's claim and make the mechanism explicit. The
# peak norm grows like $e^{m}$ for Laplace modes, the exponential growth the paper describes.
# For Gaussian modes it grows faster, like $e^{m^2/2}/m$, because the norm is of order one over
# the density of the valley the mass must cross. A plain translation of one mode does not
# explode (its velocity is constant, `tests/test_flows.py`): the blow-up needs mass to cross a
# low-density region. The Poisson field gives speeds $\approx \delta/z$ near the data plane,
# and the truncated norm grows like $z^{-1}$, so PFGM needs a cut-off $z_{\min}$. For the Kac
# flow the velocity recovered from the law of $K(t)$ alone stays below $c$, its norm below
# $d c^2$ at every time in $d = 1, 2, 3$ (attained as $t \to 0$, where the atoms move at
# speed $c$), and its energy converges. The formula [41] matches both that norm and the
# speeds of the random walk. For $at \gg 1$ the Kac norms follow the diffusion's $1/(4t)$ (all
# pairs share $c^2/a = 1$). Rows marked "differs", if any, are reported as measured.
