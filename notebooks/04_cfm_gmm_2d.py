# %% [markdown]
# # 04 · Kac flow matching on a 2D Gaussian mixture (paper Figures 4-5)
#
# The paper's toy experiment (PAPER.md section 5): learn to generate nine "Dirac-like" modes,
#
# $$\mu_0 = \tfrac19 \sum_{k=1}^{9} N(m_k, s^2 I_2), \qquad m_k \in \{-1, 0, 1\}^2,
#   \qquad s = 10^{-4}.$$
#
# **Kac flow matching.** The forward path is the standard (not mean-reverting) componentwise
# Kac process $X_t = X_0 + K(t)$ [66]. Given the start $x_0$ its velocity is
# $v_t(x \mid x_0) = \big(v(t, x^i - x_0^i)\big)_{i=1,2}$ [93], with the 1D Kac velocity
# $v$ of Thm 4 [41], $|v| \le c$. A network $v_\theta(t, x)$ is trained with the conditional
# flow-matching (CFM) loss [97]
#
# $$L(\theta) = \mathbb E_{t \sim U(0,T),\ x_0 \sim \mu_0,\ x \sim \mu_t(\cdot \mid x_0)}
#   \big\|v_\theta(t, x) - v_t(x \mid x_0)\big\|^2 ,$$
#
# whose minimiser is the marginal velocity of Cor 15 [95]. **Generation** draws the latent
# $x_T = x_0 + K(T)$ with a fresh $x_0 \sim \mu_0$ (the paper's choice: the standard Kac
# path does not forget its start) and integrates $\dot x = v_\theta(t, x)$ backwards from $T$
# to $0$ with the adaptive dopri5 solver, counting network evaluations (NFE).
#
# **Diffusion baseline.** $X_t = X_0 + W(t)$ with target $(x - x_0)/(2t)$, whose size
# $\sim t^{-1/2}$ explodes at $t = 0$ (PAPER.md section 1), so it is trained on
# $[\varepsilon, T]$ and integrated from $T$ down to $\varepsilon$.
#
# **Why this target is hard.** Near the mode $m_k$,
#
# $$-\log p(x) \approx \log 9 + \log(2\pi s^2) + \frac{|x - m_k|^2}{2 s^2},$$
#
# so exact samples have mean NLL $\log 9 + \log(2\pi e s^2) \approx -13.4$, but a sample
# only $0.01$ off a mode costs $5000$ nats. The paper's validation
# number, the mean NLL of generated samples, is therefore a very sharp detector of blurred
# modes and is dominated by the worst samples; we keep it as the primary number and also
# report the median, mode coverage at two radii, the distance to the nearest mode and $W_2$.
#
# What this notebook shows: the validation curves, the metrics table, **Figure 5**
# (generated vs ground truth with a zoom on one mode), **Figure 4** (backward evolution of
# the $(25, 5)$ flow, also as an animation), the learned speed $|v_\theta(t, x_t)|$ along
# trajectories, and a computed "reproduced / differs" table. The experiment logic lives in
# `kacnb.gmm2d` (tested in `tests/test_gmm2d.py`); training, paths and sampling are
# `kacnb.train`, `kacnb.paths`, `kacnb.sampling`.

# %% tags=["parameters"]
profile = "quick"
device = "auto"
seed = 0
figures_dir = None

# %%
# ruff: noqa: E402 (the imports follow the parameters cell)
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.animation import FuncAnimation

from kacnb import gmm2d, runtime
from kacnb.metrics import grid_mixture
from kacnb.plotting import (
    COLORS,
    GENERATED,
    GROUND_TRUTH,
    save_animation,
    save_figure,
    scatter_with_zoom,
)

rt = runtime.setup(profile, device, seed)
if rt.device.type == "cpu":
    # The MLP is too small to gain from intra-op threads; on a shared 2-core machine a second
    # thread made a training step up to 50 times slower (measured), so use one.
    torch.set_num_threads(1)
STEM = "04_cfm_gmm_2d"
EPS = 1e-3  # diffusion truncation (see the settings table below)
MODELS = gmm2d.paper_models(eps=EPS, T=1.0)
KEYS = [m.key for m in MODELS]
PAPER_STEPS = {m.key: m.paper_steps for m in MODELS}

SETTINGS = {
    # steps: optimiser steps per model; eval_every / n_val: validation period and samples;
    # ema_decay: EMA of the weights (validation and sampling use it); n_gen: generated points
    # per model for the metrics and Figure 5; n_w2: points for the exact W2; n_speed /
    # n_speed_times: trajectories and log-spaced times for the learned speed; n_fig4 /
    # frames: points and saved times of the Figure 4 evolution (frames = 5 k + 1);
    # zoom: half-width of the Figure 5 inset; checkpoint: save/resume training runs.
    "smoke": {
        "steps": {k: 150 for k in KEYS},
        "eval_every": 50,
        "n_val": 128,
        "ema_decay": 0.9,
        "n_gen": 400,
        "n_w2": 300,
        "n_speed": 200,
        "n_speed_times": 16,
        "n_fig4": 400,
        "frames": 11,
        "zoom": 0.1,
        "checkpoint": False,
    },
    "quick": {
        "steps": {k: 20_000 for k in KEYS},
        "eval_every": 2000,
        "n_val": 500,
        "ema_decay": 0.999,
        "n_gen": 4000,
        "n_w2": 2000,
        "n_speed": 1000,
        "n_speed_times": 30,
        "n_fig4": 1500,
        "frames": 41,
        "zoom": 0.1,
        "checkpoint": True,
    },
    "paper": {
        "steps": dict(PAPER_STEPS),
        "eval_every": 10_000,
        "n_val": 2000,
        "ema_decay": 0.9999,
        "n_gen": 10_000,
        "n_w2": 2000,
        "n_speed": 2000,
        "n_speed_times": 40,
        "n_fig4": 2000,
        "frames": 41,
        "zoom": 2e-3,
        "checkpoint": True,
    },
}
cfg = runtime.pick(profile, SETTINGS)
TRAIN = {
    "batch_size": 256,
    "lr": 5e-4,
    "grad_clip": 1.0,
    "ema_decay": cfg["ema_decay"],
    "eval_every": cfg["eval_every"],
    "n_val": cfg["n_val"],
    "width": 256,
    "depth": 3,
    "rtol": 1e-5,
    "atol": 1e-5,
}
RADII = (5e-4, 0.05)  # tight: 5 mode standard deviations; loose: 5% of the mode spacing
checkpoint_dir = gmm2d.default_checkpoint_dir(STEM, profile) if cfg["checkpoint"] else None
gmm = grid_mixture(std=1e-4)
MODEL_COLORS = dict(zip(KEYS, [COLORS[2], COLORS[3], COLORS[4], COLORS[7]], strict=True))

# %% [markdown]
# ## Settings
#
# Paper (first version) → here:
#
# - **network**: MLP on $(x, t)$, 3 hidden layers of 256, ReLU → the same
#   (`kacnb.models.MLP`);
# - **optimiser**: Adam, batch size and learning rate not stated → the public code's values:
#   Adam, learning rate $5\cdot10^{-4}$, batch 256, gradient-norm clipping 1.0;
# - **EMA**: not stated for this experiment → our choice: decay 0.999 (quick), 0.9999
#   (paper), 0.9 (smoke); validation and sampling use the EMA weights;
# - **diffusion $\varepsilon$**: not stated → $10^{-3}$ (below);
# - **solver**: torchdiffeq dopri5 → dopri5 with rtol = atol = $10^{-5}$ (our choice: a
#   tenth of the mode standard deviation);
# - **validation**: NLL of generated samples, best checkpoint kept → NLL of `n_val` samples
#   every `eval_every` steps, the same random draw each time; the best (EMA) weights are
#   kept and used below;
# - **iterations**: 80k / 280k / 460k / 420k for (25,5) / (64,8) / (1600,10) / diffusion →
#   smoke 150 each, quick 20k each, paper as in the paper.
#
# **Diffusion truncation $\varepsilon = 10^{-3}$.** The truncated flow can at best return
# $x_0 + W(\varepsilon)$: blobs of standard deviation $\sqrt\varepsilon \approx 0.032$ around
# each mode (mean distance to the mode $0.040$, `gmm2d.blur_distance`). A smaller
# $\varepsilon$ shrinks the blobs only like $\sqrt\varepsilon$, while the target's RMS size
# $\sqrt{d/(4t)}$ (PAPER.md section 1) and the solver's work near $t = \varepsilon$ grow.
# At $\varepsilon = 10^{-3}$ the target's RMS size at the end, $\approx 22$, is of the same
# order as the largest Kac speed bound $c\sqrt2 = 14.1$, so the two families face regression
# targets of similar size; the price of the truncation is the blob floor, and we report it
# next to the measured numbers.
#
# **Iterations.** One optimiser step (batch 256, MLP 3×256) takes about 5 ms on one core of
# the 2-core CPU used for the quick profile, so 20k steps per model (under 2 minutes each,
# about 8 minutes with validation and evaluation) is what fits: 4-23 times fewer than the
# paper. All models
# get the same budget, so differences in sharpness are differences in learning speed.
# With `checkpoint` set, every run is saved to `checkpoints/04_cfm_gmm_2d/<profile>/`
# (git-ignored) each `eval_every` steps, and a re-run resumes there: an interrupted paper run
# continues where it stopped, and a finished one is loaded instead of retrained.

# %% [markdown]
# ## 1. Reference values
#
# Before training: what exact samples score. The NLL floor $\log 9 + \log(2\pi e s^2)$, the
# nearest-mode distance $s\sqrt{\pi/2}$ of exact samples, the best nearest-mode distance of a
# perfectly trained truncated diffusion model, the Kac speed bounds $c\sqrt2$, and the $W_2$
# between two independent sets of exact samples. This last one is **not** small: with $n$
# points the mode counts fluctuate by $\sim\sqrt{n/9}$, and the surplus must travel a
# distance $\ge 1$, so $W_2 \approx 0.2$ for $n = 2000$ even for perfect samples. $W_2$ thus
# only separates models that misplace mass on a scale above this noise floor.

# %%
# NBVAL_CHECK_OUTPUT
truth = gmm.sample(cfg["n_gen"], generator=rt.generator, device=rt.device).cpu()
exact = gmm.sample(cfg["n_gen"], generator=rt.generator, device=rt.device).cpu()
exact_q = gmm2d.sample_quality(exact, gmm, truth, RADII, n_w2=cfg["n_w2"])
print(f"NLL floor log 9 + log(2 pi e s^2):     {gmm2d.nll_floor(gmm):.3f}")
print(f"NLL of {cfg['n_gen']} exact samples:          {exact_q['nll']:.3f}")
print(f"nearest-mode distance, exact s sqrt(pi/2): {gmm2d.blur_distance(gmm.std):.4g}")
print(f"  measured on exact samples:               {exact_q['nearest']:.4g}")
print(f"diffusion floor, eps = {EPS:g}:              {gmm2d.blur_distance(gmm.std, 1.0, EPS):.4g}")
print(f"W2 between two exact sample sets (n = {cfg['n_w2']}): {exact_q['w2']:.3f}")
for m in MODELS[:3]:
    print(f"{m.label}: speed bound c sqrt(2) = {m.speed_bound:.3f}")

# %% [markdown]
# ## 2. Training with NLL validation
#
# Each model is trained by `gmm2d.train_model` (CFM loss [97], `kacnb.train.train`); every
# `eval_every` steps it generates `n_val` samples with the EMA weights, computes their NLL
# under the true mixture and keeps the best weights. Timings are printed here (not checked).

# %%
trained = {}
for spec in MODELS:
    trained[spec.key] = gmm2d.train_model(
        spec,
        cfg["steps"][spec.key],
        device=rt.device,
        gmm=gmm,
        seed=seed,
        checkpoint_dir=checkpoint_dir,
        progress=profile != "smoke",
        **TRAIN,
    )
    tr = trained[spec.key]
    print(f"{spec.label}: {tr.seconds:.1f} s for {cfg['steps'][spec.key]} steps")
print(f"checkpoints: {f'checkpoints/{STEM}/{profile}' if checkpoint_dir else 'none (smoke)'}")

# %% [markdown]
# The CFM loss does not go to zero: its minimum is the variance of the conditional target
# around the marginal velocity. The validation NLL (right, symmetric-log scale) is what
# measures progress; the dashed line is the floor of exact samples. Look for: how fast each
# curve falls, and whether it is still falling at the end (then more steps would help).

# %%
fig, (ax_l, ax_v) = plt.subplots(1, 2, figsize=(12, 4.2), constrained_layout=True)
for spec in MODELS:
    res = trained[spec.key].result
    losses = res.losses.numpy()
    window = max(1, len(losses) // 50)
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    steps_axis = np.arange(window, len(losses) + 1)
    ax_l.plot(steps_axis, smooth, color=MODEL_COLORS[spec.key], label=spec.label)
    vsteps, values = zip(*res.validation, strict=True)
    ax_v.plot(vsteps, values, "o-", ms=3, color=MODEL_COLORS[spec.key], label=spec.label)
    ax_v.plot(res.best_step, res.best_value, "*", ms=12, color=MODEL_COLORS[spec.key])
ax_v.axhline(gmm2d.nll_floor(gmm), ls="--", color=GROUND_TRUTH, lw=1, label="exact samples")
ax_l.set_yscale("log")
ax_l.set_xlabel("optimiser step")
ax_l.set_ylabel("CFM loss (running mean)")
ax_l.set_title("training loss [97]")
ax_v.set_yscale("symlog", linthresh=100)
ax_v.set_ylim(bottom=-30)
ax_v.set_xlabel("optimiser step")
ax_v.set_ylabel("NLL of generated samples (nats)")
ax_v.set_title("validation NLL (star: best, kept)")
ax_v.legend(fontsize=9)
save_figure(fig, "nb04_validation_nll", figures_dir)
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
print("model            steps  (paper)  best step  best validation NLL")
for spec in MODELS:
    res = trained[spec.key].result
    print(
        f"{spec.label:15s} {cfg['steps'][spec.key]:6d} {spec.paper_steps:8d} "
        f"{res.best_step:10d}  {res.best_value:.3g}"
    )

# %% [markdown]
# ## 3. Generation and metrics
#
# With the best weights, each model generates `n_gen` samples: latent $x_T$ from fresh
# mixture starts, then dopri5 from $T$ to $t_{\min}$ (0 for Kac, $\varepsilon$ for
# diffusion). We also follow `n_speed` trajectories on a log-spaced time grid
# (`gmm2d.speed_along`) and record the learned speed $|v_\theta(t, x_t)|$.

# %%
samples, quality, speeds = {}, {}, {}
for spec in MODELS:
    model = trained[spec.key].model
    x0 = gmm.sample(cfg["n_gen"], generator=rt.generator, device=rt.device)
    samples[spec.key] = gmm2d.generate(model, spec.path, x0, generator=rt.generator)
    quality[spec.key] = gmm2d.sample_quality(
        samples[spec.key].x, gmm, truth, RADII, n_w2=cfg["n_w2"]
    )
    times = gmm2d.log_time_grid(spec.path, cfg["n_speed_times"]).to(torch.float32)
    x0s = gmm.sample(cfg["n_speed"], generator=rt.generator, device=rt.device)
    x_T = spec.path.latent(x0s, generator=rt.generator)
    _, speed = gmm2d.speed_along(model, x_T, times.to(rt.device))
    speeds[spec.key] = (times.double(), speed.cpu().double())

# %% [markdown]
# The metrics table. `NLL` is the paper's number (mean), `med` the median of
# $-\log p(x_i)$; `cov` the share of samples within $5s = 5\cdot10^{-4}$ (tight) and within
# $0.05$ (loose) of a mode; `modes` the number of modes holding at least half of their
# $1/9$ at the loose radius; `dist` the mean distance to the nearest mode; `W2` against
# ground-truth samples (noise floor in section 1); `NFE` of the dopri5 generation;
# `max|v|` the largest learned speed met along the trajectories and `c√2` the Kac bound.
# The first row scores exact samples.


# %%
# NBVAL_CHECK_OUTPUT
def modes_hit(q, r):
    """Modes holding at least half of their 1/9 share within radius r."""
    return int((q["coverage"][r] >= 0.5 / 9).sum())


rows = {}
for spec in MODELS:
    q, (times, speed) = quality[spec.key], speeds[spec.key]
    bound = spec.speed_bound if spec.is_kac else math.inf
    rows[spec.key] = {
        "nll": q["nll"],
        "nearest": q["nearest"],
        "modes_loose": modes_hit(q, RADII[1]),
        "nfe": samples[spec.key].nfe,
        "vmax": float(speed.max()),
        "vmax_early": float(speed[times >= 0.5 * spec.path.T].max()),
        "vmax_late": float(speed[-1].max()),
        "q99": float(torch.quantile(speed, 0.99, dim=1).max()),
        "over_bound": float((speed > bound).double().mean()),
        "bound": spec.speed_bound,
    }
head = (
    f"{'model':15s} {'NLL':>9s} {'med':>9s} {'cov 5e-4':>8s} {'cov .05':>7s} {'modes':>5s} "
    f"{'dist':>8s} {'W2':>6s} {'NFE':>5s} {'max|v|':>7s} {'c√2':>5s}"
)
print(head)


def line(label, q, nfe="-", vmax="-", bound="-"):
    return (
        f"{label:15s} {q['nll']:9.3g} {q['nll_median']:9.3g} {q['covered'][RADII[0]]:8.3f} "
        f"{q['covered'][RADII[1]]:7.3f} {modes_hit(q, RADII[1]):5d} {q['nearest']:8.2e} "
        f"{q['w2']:6.3f} {nfe:>5} {vmax:>7} {bound:>5}"
    )


print(line("exact samples", exact_q))
for spec in MODELS:
    r = rows[spec.key]
    bound = f"{spec.speed_bound:.1f}" if spec.is_kac else "-"
    print(line(spec.label, quality[spec.key], r["nfe"], f"{r['vmax']:.3g}", bound))

# %%
# NBVAL_CHECK_OUTPUT
print(f"per-mode share of samples within {RADII[1]} (percent; exact: 11.1 each)")
print("modes, row by row: " + " ".join(f"({a:g},{b:g})" for a, b in gmm.means.tolist()))
for spec in MODELS:
    shares = 100 * quality[spec.key]["coverage"][RADII[1]]
    print(f"{spec.label:15s} " + " ".join(f"{v:5.1f}" for v in shares.tolist()))
print("quantiles of -log p(x) (nats): median and 90%")
for spec in MODELS:
    q = quality[spec.key]
    print(f"{spec.label:15s} {q['nll_median']:9.3g} {q['nll_q90']:9.3g}")

# %% [markdown]
# ## 4. Figure 5: generated vs ground-truth samples
#
# Blue: generated samples; red: ground truth. The inset zooms on the mode at the origin
# (half-width given in the inset title). In the paper, after 80k-460k iterations, the Kac
# models put the samples into the tiny modes while diffusion produces "blobs"; for the
# diffusion model the blob radius cannot drop below the $\sqrt\varepsilon$ floor computed in
# section 1.

# %%
fig, axes = plt.subplots(2, 2, figsize=(11, 8.4))
fig.subplots_adjust(left=0.06, right=0.8, bottom=0.06, top=0.88, wspace=0.75, hspace=0.28)
n_show = min(2000, cfg["n_gen"])
for ax, spec in zip(axes.flat, MODELS, strict=True):
    x = samples[spec.key].x[:n_show].cpu().numpy()
    inset = scatter_with_zoom(
        ax, x, truth[:n_show].numpy(), (0.0, 0.0), cfg["zoom"], bounds=(1.04, 0.2, 0.6, 0.6)
    )
    inset.set_title(f"zoom ±{cfg['zoom']:g}", fontsize=9)
    ax.set_xlim(-1.6, 1.6)
    ax.set_ylim(-1.6, 1.6)
    ax.set_aspect("equal")
    ax.set_xlabel("$x^1$")
    ax.set_ylabel("$x^2$")
    steps = cfg["steps"][spec.key]
    ax.set_title(f"{spec.label}: {steps:,} steps (paper {spec.paper_steps // 1000}k)", fontsize=11)
for ax in axes[:, 1]:
    ax.set_ylabel("")  # the inset of the left panel sits there
handles = [
    plt.Line2D([], [], ls="", marker="o", color=GENERATED, label="generated"),
    plt.Line2D([], [], ls="", marker="o", color=GROUND_TRUTH, label="ground truth"),
]
fig.legend(handles=handles, loc="upper center", ncol=2, bbox_to_anchor=(0.45, 0.96))
fig.suptitle("Figure 5: generated (blue) vs ground-truth (red) samples, zoom on the mode (0, 0)")
save_figure(fig, "fig05_gmm_samples", figures_dir)
plt.show()

# %% [markdown]
# ## 5. Figure 4: backward evolution of the $(25, 5)$ flow
#
# The generation of the $(25, 5)$ model, from the latent $x_T = x_0 + K(T)$ at $t = T = 1$
# (spread like $\sigma W(1)$ with $\sigma^2 = c^2/a = 1$) to $t = 0$; blue: the samples, red
# circles: the nine modes. The dashed square is $[-1 - ct, 1 + ct]^2$, the bound
# $\mathrm{supp}\,\mu_0 + [-ct, ct]^2$ on the support of $\mu_t$ (Prop 11); the exact flow
# keeps every sample inside it. Look for: the cloud contracts slowly at first and splits
# into the nine groups only at small $t$, where the conditional velocity [41] points
# towards the start with speed close to $c$ per component. The panels use the times below
# (positions by dopri5 restarted on each interval, `gmm2d.speed_along`); the animation uses
# 41 times equally spaced in $\sqrt t$, so that the final collapse is not a single frame.

# %%
spec25 = MODELS[0]
x0_fig4 = gmm.sample(cfg["n_fig4"], generator=rt.generator, device=rt.device)
xT_fig4 = spec25.path.latent(x0_fig4, generator=rt.generator)
PANEL_TIMES = torch.tensor([1.0, 0.5, 0.25, 0.1, 0.03, 0.0])
frame_times = (1.0 - torch.linspace(0.0, 1.0, cfg["frames"])) ** 2 * spec25.path.T
model25 = trained[spec25.key].model
panels, _ = gmm2d.speed_along(model25, xT_fig4, PANEL_TIMES.to(rt.device))
frames, _ = gmm2d.speed_along(model25, xT_fig4, frame_times.to(rt.device))
panels, frames = panels.cpu().numpy(), frames.cpu().numpy()
means_np = gmm.means.numpy()
c25 = spec25.path.kac.c
LIM4 = 4.0


def draw_state(ax, pts, t, size):
    """One time of the evolution: samples, modes and the support bound of Prop 11."""
    half = 1.0 + c25 * t
    square = np.array([[-half, -half], [half, -half], [half, half], [-half, half], [-half, -half]])
    ax.plot(*square.T, "--", color="grey", lw=0.8)
    ax.plot(*means_np.T, "o", mfc="none", mec=GROUND_TRUTH, ms=7, mew=1.0)
    return ax.scatter(pts[:, 0], pts[:, 1], s=size, color=GENERATED, alpha=0.6, linewidths=0)


# %%
fig, axes = plt.subplots(1, 6, figsize=(17, 3.4), constrained_layout=True)
for ax, t, pts in zip(axes, PANEL_TIMES.tolist(), panels, strict=True):
    draw_state(ax, pts, t, 1.5)
    ax.set_xlim(-LIM4, LIM4)
    ax.set_ylim(-LIM4, LIM4)
    ax.set_aspect("equal")
    ax.set_title(f"$t = {t:g}$")
    ax.set_xlabel("$x^1$")
axes[0].set_ylabel("$x^2$")
fig.suptitle(
    "Figure 4: backward evolution of the learned Kac (25, 5) flow, t = T = 1 → 0 "
    "(dashed: supp $\\mu_0 + [-ct, ct]^2$)"
)
save_figure(fig, "fig04_backward_evolution", figures_dir)
plt.show()

# %% [markdown]
# The same evolution as an animation (`nb04_backward_evolution.gif` in the figures
# directory, written only when `figures_dir` is set).

# %%
fig, ax = plt.subplots(figsize=(4, 4), constrained_layout=True)
ax.set_xlim(-LIM4, LIM4)
ax.set_ylim(-LIM4, LIM4)
ax.set_aspect("equal")


def show_frame(k):
    for artist in list(ax.lines) + list(ax.collections):
        artist.remove()
    t = float(frame_times[k])
    draw_state(ax, frames[k], t, 2)
    ax.set_title(f"Kac (25, 5), t = {t:.3f}")


anim = FuncAnimation(fig, show_frame, frames=len(frames), blit=False)
gif = save_animation(anim, "nb04_backward_evolution", figures_dir, fps=8, dpi=90)
plt.close(fig)
print([(p.name, f"{Path(p).stat().st_size / 1e6:.2f} MB") for p in gif])

# %% [markdown]
# ## 6. The learned speed along trajectories
#
# The exact Kac velocity satisfies $|v| \le c$ per component [41], i.e.
# $|v_t(x)| \le c\sqrt2$ (dashed lines); near $t = 0$ almost all mass sits on the atoms, where
# the speed is exactly $c$ per component. The diffusion velocity $(x - x_0)/(2t)$ has mean
# size $\sqrt{\pi/2}/(2\sqrt t)$ near a mode (black dotted line), which explodes as
# $t \to 0$; the truncation stops it at $t = \varepsilon$. Curves: median (solid) and
# maximum (thin) over the trajectories of $|v_\theta(t, x_t)|$.
#
# What to look for: the diffusion median follows the $t^{-1/2}$ law and the Kac curves
# flatten out below their bounds. For the exact Kac field the median would approach the
# bound itself as $t \to 0$ (each component sits on an atom with probability $e^{-at}$, and
# there the speed is exactly $c$); a learned field that stays below it has smoothed the
# sign change of $v$ across each mode, which happens on the tiny scale $ct$. Single
# trajectories may exceed the bound: between modes there is no mass, the CFM loss puts no
# weight there and the network is unconstrained, so the table reports the share of points
# above the bound next to the maximum.

# %%
fig, ax = plt.subplots(figsize=(7.5, 4.6), constrained_layout=True)
for spec in MODELS:
    times, speed = speeds[spec.key]
    keep = times > 0
    t_np = times[keep].numpy()
    colour = MODEL_COLORS[spec.key]
    ax.plot(t_np, speed[keep].median(dim=1).values.numpy(), color=colour, label=spec.label)
    ax.plot(t_np, speed[keep].max(dim=1).values.numpy(), color=colour, lw=0.8, alpha=0.7)
    if spec.is_kac:
        ax.axhline(spec.speed_bound, color=colour, ls="--", lw=1)
t_ref = np.geomspace(EPS, 0.03, 50)  # small t only: there the modes do not overlap yet
ax.plot(
    t_ref,
    math.sqrt(math.pi / 2) / (2 * np.sqrt(t_ref)),
    ":",
    color="black",
    lw=1.2,
    label="exact diffusion, mean ($t \\ll 1$)",
)
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("time $t$")
ax.set_ylabel(r"$|v_\theta(t, x_t)|$")
ax.set_title("learned speed along generated trajectories (dashed: $c\\sqrt{2}$)")
ax.legend(fontsize=9, ncol=2, loc="lower left")
save_figure(fig, "nb04_velocity_norm", figures_dir)
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
print("max over t of: the largest |v| (max), its 99% quantile over trajectories (q99);")
print("share: of all (t, trajectory) points with |v| > c sqrt(2); last two columns: max |v|")
print("model            max    q99  max/c√2  q99/c√2  share   at t_min  t >= T/2")
for spec in MODELS:
    r = rows[spec.key]
    if spec.is_kac:
        b = spec.speed_bound
        extra = f"{r['vmax'] / b:8.3f} {r['q99'] / b:8.3f} {r['over_bound']:6.1%}"
    else:
        extra = f"{'-':>8s} {'-':>8s} {'-':>6s}"
    print(
        f"{spec.label:15s} {r['vmax']:5.3g} {r['q99']:6.3g} {extra} "
        f"{r['vmax_late']:8.3g} {r['vmax_early']:9.3g}"
    )

# %% [markdown]
# ## 7. Reproduced / differs
#
# The claims of the paper's 2D experiment (Section 7, Figures 4-5, PAPER.md section 5),
# checked against the numbers above by `gmm2d.claims`: all Kac models cover the nine modes
# (loose radius), Kac modes are sharper than the diffusion blobs (mean distance to the
# nearest mode), diffusion needs more dopri5 evaluations, the learned Kac speed stays near
# its bound $c\sqrt2$ (allowed: 25% above, the network is not constrained), and the
# learned diffusion speed grows as $t \to \varepsilon$ (more than twice its value for
# $t \ge T/2$).

# %%
# NBVAL_CHECK_OUTPUT
table = gmm2d.claims(rows, KEYS[:3], KEYS[3], gmm2d.blur_distance(gmm.std, 1.0, EPS))
width = max(len(r["claim"]) for r in table)
for r in table:
    print(f"{r['claim']:{width}s} | {r['measured']:56s} | {r['verdict']}")
steps_used = ", ".join(f"{cfg['steps'][k]:,}" for k in KEYS)
paper_used = ", ".join(f"{PAPER_STEPS[k]:,}" for k in KEYS)
print(f"steps per model: {steps_used} (paper: {paper_used})")

# %% [markdown]
# **Summary.** The verdicts above are computed by the notebook; this paragraph describes the
# quick run (20k steps per model on one CPU core, 4-23 times fewer than the paper; record in
# `figures/runs/04_cfm_gmm_2d.json`).
#
# *Reproduced.* All three Kac models put their samples into all nine modes with balanced
# weights (98-99% within 0.05 of a mode, 9.8-11.8% per mode), the diffusion model only 57%.
# The Kac modes are about three times sharper (mean nearest-mode distance 0.016-0.020
# against 0.053), below the floor 0.040 that any diffusion model truncated at
# $\varepsilon = 10^{-3}$ must respect, and the paper's metric agrees: NLL
# $2.5\cdot10^4$-$4.1\cdot10^4$ for Kac against $2.3\cdot10^5$ for diffusion. Figure 5 shows
# the paper's contrast: compact clusters for Kac (small squares for $(25, 5)$, the trace of
# the light-cone box $|x - x_0|_\infty \le ct$) and round blobs for diffusion. The learned
# diffusion speed grows about 15-fold from $t \ge T/2$ to $t = \varepsilon$ and follows the
# exact $t^{-1/2}$ law down to $t \approx 10^{-2}$ (below that the network falls short of it,
# one reason why its blobs are wider than the floor); the learned Kac speed stays below
# $c\sqrt2$ at 98-100% of the trajectory points.
#
# *Not reached at this scale, or different.* (1) The paper's "tiny modes": our Kac clusters
# are still 150-200 mode standard deviations wide (almost no sample within $5s$ of a mode),
# so the NLL is far above the floor $-13.4$ and the zoom shows clusters rather than the
# resolved modes of the paper's Figure 5. The validation NLL of $(25, 5)$ and $(64, 8)$ was
# still falling at 20k steps; the paper trained 80k-460k. $(1600, 10)$, which the paper
# trained longest, learned fastest here (sharpest clusters, best validation NLL at 18k
# steps). (2) NFE: dopri5 needed 122-188 evaluations for the Kac models and 152 for
# diffusion, so we see no NFE advantage of Kac at this scale. (3) Single Kac trajectories
# between the modes, where there is no mass and the CFM loss puts no weight, reach up to
# 2.7 times $c\sqrt2$: the bound of Thm 4 holds for the exact field, not automatically for the
# network. $W_2$ does not separate the models (0.22-0.24, below the 0.26 of two exact
# sample sets): it is dominated by the fluctuation of the mode counts. The paper profile
# (its iteration counts, for a GPU) is the test of the sharp-mode claim.
