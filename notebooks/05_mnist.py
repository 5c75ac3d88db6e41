# %% [markdown]
# # 05 · Kac flow matching on MNIST
#
# The image experiment of the paper (arXiv:2506.20641v1, Section 7 and App. A.2). Numbers in
# square brackets such as [93] are equation numbers of the paper; Thm, Prop and Remark are the
# paper's statements. Every pixel gets its own
# independent one-dimensional Kac process, $K(t) = (K^1(t), \dots, K^{784}(t))$ [66], so the
# conditional velocity is the vector of 1D velocities (Thm 14, [93]) and is bounded by $c$
# in every pixel (Prop 11).
#
# 1. **Figure 6**: the *standard* forward process $X_t = X_0 + K(t)$ started in an MNIST digit,
#    until $T = 10$, for $(a, c) = (1, 1)$ and $(25, 5)$.
# 2. **Figures 7-8**: generation with the *mean-reverting* process
#    $X_t = f(t) X_0 + K(t)$, $f(t) = 1 - t/T$ (Remark 17, [98-99]), whose latent $X_T = K(T)$
#    does not depend on the data. Ten models: $(a, c) \in \{(1,1), (25,5), (100,10),
#    (225,15), (900,30)\}$ (all with $c^2/a = 1$, the same diffusion limit, Thm 9) and
#    $T \in \{1, 5\}$. A U-Net $v_\theta(t, x)$ is trained with the CFM loss [97] on the
#    conditional target $v_t(x \mid x_0) = f'(t) x_0 + v(t, x - f(t) x_0)$ [99] and sampled by
#    explicit Euler steps backwards from $T$ to 0, with the same step size for both horizons.
# 3. **App. A.2**: generated trajectories along the Euler path, all ten models.
# 4. **Numbers the paper does not give**: the Fréchet distance (FD) between generated and
#    test digits in the 128-dimensional feature space of a small MNIST classifier, and the
#    distribution of the digits the classifier reads in the samples (mode coverage).
#
# The experiment logic (model list, data closure, train-or-load, Euler sampling, scores) lives in
# `kacnb.experiments.mnist_exp` (tests in `tests/test_mnist_exp.py`); training, sampling, the
# classifier and the FD are `kacnb.cfm.train`, `kacnb.cfm.sampling`, `kacnb.experiments.classifier`
# and `kacnb.cfm.metrics`. The data come from `kacnb.experiments.data.mnist`, which reads the IDX
# files from `$KACNB_DATA_DIR` (or `./data/mnist`, downloading and checksumming them if missing).

# %% tags=["parameters"]
profile = "quick"
device = "auto"
seed = 0
figures_dir = None
# Training iterations per model (None: the profile's); a shorter GPU lease sets fewer.
train_steps = None
# Folder for checkpoints and saved samples (None: checkpoints/05_mnist/<profile> at the
# repository root, and nothing saved for smoke); a time-limited run resumes from it.
checkpoints = None
# The (a, c) pairs, each trained for T = 1 and T = 5 (None: the paper's five, (1, 1),
# (25, 5), (100, 10), (225, 15), (900, 30)); other pairs are trained afresh.
pairs = None
# True: load the shipped weights of this profile (pretrained/05_mnist_<profile>.pt, the long
# and paper profiles) instead of training; they are checked by SHA-256 before loading.
pretrained = False
# Sample the T = 5 models with the step size of T = 1 (500 Euler steps in long and paper)
# as well as with its step count (100, the authors'; the variant of section 6). None: yes,
# except with pretrained=True, which samples every model with the step count of T = 1 only:
# the 500-step sampling is about 60 % of evaluating the shipped weights (about 20 instead
# of 10 minutes on a 2-core CPU). True or False decides.
same_step = None
# On a CUDA device the paper profile trains and samples with bf16 autocast, channels_last
# and torch.compile (its "gpu" settings); False: plain float32 (e.g. when the gradient
# check of benchmarks/bench_train_mnist.py fails on that device).
gpu_fast = True

# %%
# ruff: noqa: E402 (the imports follow the parameters cell)
import textwrap
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from kacnb import report
from kacnb.cfm import pretrained as shipped
from kacnb.cfm.forked import cpu_workers
from kacnb.cfm.metrics import frechet_distance
from kacnb.collection import params, runtime
from kacnb.collection.plotting import COLORS, GENERATED, GROUND_TRUTH, save_figure
from kacnb.experiments import learning_curve
from kacnb.experiments.classifier import features, predict
from kacnb.experiments.data import mnist
from kacnb.experiments.mnist_exp import (
    CLASSIFIER_EXTRA,
    CONFIDENT,
    IMAGE_SHAPE,
    PAIRS,
    SHIPPED_PROFILES,
    BaselineModel,
    best_at_t1,
    bundle_name,
    checkpoint_dir,
    classifier_or_train,
    euler_steps,
    evaluate,
    from_bundle,
    image_sampler,
    paper_models,
    run_summary,
    shipped_classifier,
    subset_fds,
    target_rows,
    tile_images,
    train_model,
    writes_bundle,
)
from kacnb.experiments.mnist_exp import claims as mnist_claims
from kacnb.experiments.mnist_exp import sample_and_score as mnist_sample_and_score
from kacnb.theory.kac import Kac
from kacnb.theory.multid import kac_increment_second_moment

rt = runtime.setup(profile, device, seed)

SETTINGS = {
    # n_train: training images the flows draw from (None: all 60000); n_clf / clf_epochs:
    # classifier training images and epochs; n_test: test images (split into two halves A, B);
    # unet: U-Net size; steps / batch / lr / ema / grad_clip: CFM training of each model;
    # n_samples: generated digits per model; n_large: digits drawn again from the best Kac
    # model at T = 1 for its FD at a larger sample size (None: none beyond n_samples);
    # euler_dt: the explicit Euler step size, the same
    # for T = 1 and T = 5 (N = T / euler_dt steps); n_saved: times stored along the Euler
    # path (T / euler_dt must be a multiple of n_saved - 1); n_traj: trajectories shown per
    # model (App. A.2); sample_chunk: images per network call when sampling (speed only, the
    # samples do not depend on it; 64 is fastest on a 2-core CPU,
    # benchmarks/bench_sample_mnist.py); gpu: speed settings used on a CUDA device only (bf16
    # autocast for training and sampling, channels_last, torch.compile; see
    # kacnb.cfm.config.TrainConfig).
    "smoke": {
        "n_train": 500,
        "n_clf": 2000,
        "clf_epochs": 1,
        "n_test": 400,
        "unet": {"base": 8, "levels": 2, "blocks": 1},
        "steps": 3,
        "batch": 16,
        "lr": 2e-3,
        "ema": 0.9,
        "grad_clip": 1.0,
        "n_samples": 32,
        "n_large": 64,
        "euler_dt": 0.25,
        "n_saved": 5,
        "n_traj": 2,
        "sample_chunk": 64,
        "gpu": None,
    },
    "quick": {
        "n_train": None,
        "n_clf": None,
        "clf_epochs": 2,
        "n_test": None,
        "unet": {"base": 16, "levels": 2, "blocks": 1},
        "steps": 1704,  # the learning curve's choice (section 9)
        "batch": 32,
        "lr": 2e-3,
        "ema": 0.99,
        "grad_clip": 1.0,
        "n_samples": 256,
        "n_large": 1000,
        "euler_dt": 0.05,
        "n_saved": 6,
        "n_traj": 2,
        "sample_chunk": 64,
        "gpu": None,
    },
    "long": {
        # hours of a 2-core CPU in the background (section 10): the learning curves' fastest
        # configuration per CPU minute, 18 000 steps per model (about 25 minutes of training
        # each at 12.2 steps/s, 4.5 hours for the eleven models); 100 Euler steps for T = 1
        # and, for T = 5, 500 (the same step) and 100 (the authors' count) as the variant of
        # section 6
        "n_train": None,
        "n_clf": None,
        "clf_epochs": 2,
        "n_test": None,
        "unet": {"base": 16, "levels": 2, "blocks": 1},
        "steps": 18_000,
        "batch": 32,
        "lr": 2e-3,
        "ema": 0.999,
        "grad_clip": 1.0,
        "n_samples": 256,
        "n_large": 1000,
        "euler_dt": 0.01,
        "n_saved": 6,
        "n_traj": 2,
        "sample_chunk": 64,
        "gpu": None,
    },
    "paper": {
        # U-Net, batch, lr, ema, grad_clip and the 100 Euler steps of T = 1 follow the
        # authors' MNIST script (docs/paper-notes.md); steps do not (see the settings text)
        "n_train": None,
        "n_clf": None,
        "clf_epochs": 5,
        "n_test": None,
        "unet": {"base": 64, "levels": 3, "blocks": 2},
        "steps": 10_000,
        "batch": 128,
        "lr": 5e-4,
        "ema": 0.97,
        "grad_clip": 5.0,
        "n_samples": 2000,
        "n_large": None,
        "euler_dt": 0.01,
        "n_saved": 6,
        "n_traj": 2,
        "sample_chunk": 500,
        "gpu": {"amp": "bf16", "channels_last": True, "compile": True},
    },
}
cfg = runtime.pick(profile, SETTINGS)
cfg["steps"] = params.count("train_steps", train_steps, cfg["steps"], maximum=10**7)
if checkpoints is not None and not (isinstance(checkpoints, str) and checkpoints.strip()):
    raise params.ParameterError(
        f"parameter checkpoints must be a folder name, e.g. checkpoints='ckpt'; got {checkpoints!r}"
    )
fast = params.flag("gpu_fast", gpu_fast)
pretrained = params.flag("pretrained", pretrained)
if pretrained and (profile not in SHIPPED_PROFILES or pairs is not None):
    raise params.ParameterError(
        f"parameter pretrained=True loads the shipped weights of the "
        f"{' and '.join(SHIPPED_PROFILES)} profiles for the paper's pairs; this run has "
        f"profile={profile!r}" + ("" if pairs is None else " and its own pairs")
    )
same_step = not pretrained if same_step is None else params.flag("same_step", same_step)
gpu = dict(cfg["gpu"]) if fast and rt.device.type == "cuda" and cfg["gpu"] else {}
train_settings = {
    **cfg["unet"],
    **{k: cfg[k] for k in ("steps", "batch", "lr", "ema", "grad_clip")},
    **gpu,
}
sample_amp = gpu.get("amp")  # bf16 network evaluations on the GPU, float32 Euler state
if checkpoints is not None:
    ckpt_dir = checkpoints
else:
    # shipped weights are evaluated afresh: no cached samples or classifier
    fresh = profile == "smoke" or pretrained
    ckpt_dir = None if fresh else checkpoint_dir("05_mnist", profile)
RUN_PAIRS = PAIRS if pairs is None else params.pairs("pairs", pairs, max_len=8)
BUNDLE = bundle_name(profile)  # the shipped weights of this profile (long, paper)
MODELS = paper_models(pairs=RUN_PAIRS)  # every pair for T = 1, then for T = 5
# Euler steps per model: one step size T/N = euler_dt for both horizons (same_step), or
# else the number of steps of T = 1 for both.
N_EULER = {
    spec.key: euler_steps(spec.T if same_step else 1.0, cfg["euler_dt"], cfg["n_saved"])
    for spec in MODELS
}
# The variant that keeps the number of steps of T = 1 for T = 5 (a step five times larger).
N_SAME_COUNT = euler_steps(1.0, cfg["euler_dt"])
timings = {}


def bare(ax):
    """No ticks and no frame: for image panels."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


# %% [markdown]
# ### Settings: what the paper fixes, what it leaves open, what we chose
#
# The paper fixes the paths, the ten $(a, c, T)$, $f(t) = 1 - t/T$, the light U-Net (three
# resolutions, two residual blocks per level, 64 base channels doubling at each
# downsampling), Adam, an EMA of the weights and the explicit Euler solver. It leaves open
# the number of iterations, the batch size, the learning rate, the EMA decay and the number of
# Euler steps. Our choices:
#
# | profile | U-Net base, levels, blocks | steps × batch | lr | EMA | Euler step (N) | samples |
# |---|---|---|---|---|---|---|
# | smoke (CI) | 8, 2, 1 | 3 × 16 | 2e-3 | 0.9 | 0.25 (4, 20) | 32 |
# | quick (2-core CPU) | 16, 2, 1 (0.1 M weights) | 1704 × 32 | 2e-3 | 0.99 | 0.05 (20, 100) | 256 |
# | long (2-core CPU, hours) | 16, 2, 1 | 18000 × 32 | 2e-3 | 0.999 | 0.01 (100, 500) | 256 |
# | paper (GPU) | 64, 3, 2 (paper's, 10.7 M) | 10k × 128 | 5e-4 | 0.97 | 0.01 (100, 500) | 2000 |
#
# (lr: Adam's step size; Euler step: the step $T/N$ of the explicit Euler solver from $T$
# to 0, and in brackets the number $N$ of steps for $T = 1$ and $T = 5$; samples: generated
# digits per model; the best Kac model at $T = 1$ is also scored with 1000, 64 in smoke, for
# the FD at a larger sample size, section 6.) Samples come from the EMA weights after the last
# training step; every figure title names that checkpoint.
#
# **Euler step.** Both horizons are integrated with the **same step size** $T/N$, so $T = 5$
# takes five times as many steps as $T = 1$. The paper's claim "$T = 5$ slightly improves the
# larger pairs" is about the horizon of the model; with the same number of steps instead,
# $T = 5$ would also get a five times coarser solver, and the comparison would mix the two
# effects. To show how much the choice matters, section 6 also samples the $T = 5$ models with
# the number of steps of $T = 1$ (step $5 \times$ `euler_dt`), as a separate row.
#
# **The paper profile follows the authors' MNIST code where ours supports it** (their first
# public MNIST script; file, commit and details in
# [docs/paper-notes.md, "What the authors' public code says"](../docs/paper-notes.md)):
# the U-Net above (64 base channels, multipliers 1, 2, 4, two residual blocks, no
# attention), Adam with learning rate $5\cdot10^{-4}$, EMA decay 0.97, gradient-norm
# clipping 5.0, batch 128 and 100 Euler steps for $T = 1$ (their grid has 100 time points,
# i.e. 99 steps). Three differences remain. (i) Our learning rate is constant: the authors
# anneal it with a cosine schedule between $5\cdot10^{-4}$ and $5\cdot10^{-5}$
# (half-period 30k steps), and `kacnb.cfm.train` has no learning-rate schedule. (ii) One network
# learns the full target [99]; the authors' script trains a second U-Net to predict the
# clean image and adds the drift $f'(t)\,\hat x_0(t, x)$ at sampling, while the first one
# learns only the Kac part $v(t, x - f(t)x_0)$. The sum of the two regressions is the
# regression of the sum, so both learn the same marginal field; the split doubles the
# training and sampling cost, and the authors' later CIFAR-10 script also uses one network
# with the full target. (iii) 10k instead of their 500k iterations per model, for the cost
# stated below. Smoke and quick clip gradients to norm 1; every profile uses the same
# training seed for every model.
# **The quick profile is chosen from a measured learning curve** (section 9). On a 2-core
# CPU the whole notebook has about 30 minutes; sampling every model (720 Euler evaluations
# per digit over the eleven models) and the classifier take a fixed share of it, and a larger
# U-Net both trains and samples more slowly. `tools/mnist_learning_curve.py` measured, for
# the model $(25, 5)$, $T = 1$, the FD reached against CPU training time for four U-Net and
# batch sizes; at the training time per model that each can afford, the smallest U-Net
# (two resolutions, one block, 16 channels, 0.1 M weights) with batches of 32 reaches the
# lowest FD, so the quick profile trains it for the step count where that curve is best
# within the budget. It is still far from the paper's model: its samples are blurry, only
# about half of them are digits the classifier reads with confidence, and its comparisons
# are indicative only.
#
# **The paper profile: 10 000 iterations of batch 128 per model, on one GPU.** The paper
# does not state its iteration count; the authors' MNIST script trains 500k iterations of
# batch 128 per model and their CIFAR-10 script 400k. At the rate assumed below, 500k
# iterations cost 81 minutes of training per model, 15 GPU-hours for the eleven models: no
# lease we have comes close, so the paper profile reproduces the authors' settings, not
# their budget. We chose 10k (about 21 passes over the 60 000 training digits)
# so that the ten models and the baseline, their sampling and the scores fit in about
# 30 minutes of one
# H100/H200, by this estimate (`python tools/gpu_lease_05.py plan`): one training step of
# the paper's U-Net costs 0.96 TFLOP at batch 128 and one network evaluation 2.5 GFLOP per
# image, counted with `torch.utils.flop_counter` on the CPU (convolutions and matrix
# products only). At an assumed 10 % of the 989 TFLOP/s dense bf16 peak of an H100/H200
# (NVIDIA data sheets; deliberately pessimistic for 28x28 maps of 64-256 channels and the
# memory-bound GroupNorm, SiLU and Adam passes the count leaves out), training takes
# about 1070 s (eleven models), sampling about 180 s (2000 samples × 3600 network
# evaluations: 100 and 500 Euler steps, the $T = 5$ models again with 100, and 100 for the
# baseline) and the fixed costs (installing the notebook tools, kernel start and
# `torch.compile` per command, classifier, figures) about 490 s: 29 minutes in four
# commands of at most 9 minutes. A 15-minute lease leaves about
# 11 minutes of commands, enough for the whole notebook only at about 1000 iterations per
# model (`-p train_steps=1000`, 0.2 % of the authors' 500k): a check of the plan and a
# measurement of the real speed (`benchmarks/bench_train_mnist.py`), not a test of the
# paper's claims. The learning rate, EMA decay and clipping do not change these costs.
# None of these GPU times has been measured yet. On a CUDA device the paper profile trains
# and samples with bf16 autocast, channels_last weights and `torch.compile` (the `gpu` entry of the
# settings); on a CPU it runs in float32. `tests/test_train_optimised.py` checks bf16
# autocast with channels_last, and the compiled step, against the fp32 step (same loss and
# gradients to bf16 or float32 accuracy), but inductor's CPU backend (torch 2.13) gets the
# three combined wrong, so on a GPU the optimised step is used only after
# `benchmarks/bench_train_mnist.py` has checked its gradients there (`tools/gpu_lease_05.py`
# does; otherwise `-p gpu_fast=False`).
# Checkpoints and samples of the quick and paper profiles are kept in
# `checkpoints/05_mnist/<profile>/` at the repository root (git-ignored, named by a hash of
# the settings; `-p checkpoints=DIR` puts them elsewhere) and reused, so a rerun only
# scores, and a run stopped by `kacnb run --time-limit` resumes where it stopped.

# %%
all_x, all_y = mnist("train")
test_x, test_y = mnist("test")
train_x = all_x[: cfg["n_train"]]  # None: all 60000
clf_x, clf_y = all_x[: cfg["n_clf"]], all_y[: cfg["n_clf"]]
if cfg["n_test"] is not None:
    test_x, test_y = test_x[: cfg["n_test"]], test_y[: cfg["n_test"]]
half = test_x.shape[0] // 2
test_a, test_b = test_x[:half], test_x[half:]  # B is the reference set of the FD

# %% [markdown]
# ## 1. The forward Kac process on MNIST (paper Figure 6)
#
# One digit, the same realisation of the 784 independent Kac components (random-walk
# sampler of App. A.1, so the columns are one path in time) at $t = 0, 0.1, 0.5, 1, 2, 5, 10$.
# Upper row $(a, c) = (1, 1)$, lower row $(25, 5)$. Grey levels are shown clipped to the data
# range $[-1, 1]$ (black $-1$, white $1$). What to look for: with $(1, 1)$ a pixel keeps its
# direction for a time of order $1/a$, so at small $t$ every pixel is the digit plus a
# value close to $\pm c t$ (salt-and-pepper noise); with $(25, 5)$ the directions switch fast
# and the noise looks Gaussian, of variance about $\sigma^2 t$, $\sigma^2 = c^2/a = 1$, from
# early on. The checked numbers compare the pixel mean square of $X_t - X_0$ with the exact
# $E K(t)^2 = c^2 (t/a - (1 - e^{-2at})/(2a^2))$ (for large $t$ it approaches $\sigma^2 t$).

# %%
FIG6_TIMES = [0.0, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0]
FIG6_PAIRS = [(1.0, 1.0), (25.0, 5.0)]
fig6_gen = torch.Generator().manual_seed(seed)  # CPU: the figure does not depend on the device
digit = test_x[0]  # a "7"
fig6_times = torch.tensor(FIG6_TIMES, dtype=torch.float64)
forward = {
    ac: digit.double()
    + Kac(*ac)
    .paths(fig6_times, 1, dim=784, generator=fig6_gen)[:, 0]
    .reshape(len(FIG6_TIMES), 1, 28, 28)
    for ac in FIG6_PAIRS
}

# %%
# NBVAL_CHECK_OUTPUT
print("pixel mean square of X_t - X_0 (784 pixels, one path) vs exact E K(t)^2")
for ac in FIG6_PAIRS:
    for i in (3, 6):  # t = 1 and t = 10
        t = FIG6_TIMES[i]
        ms = float((forward[ac][i] - digit.double()).pow(2).mean())
        exact = float(kac_increment_second_moment(t, *ac))
        print(f"(a, c) = ({ac[0]:g}, {ac[1]:g}), t = {t:g}: {ms:.3g} vs {exact:.3g}")

# %%
fig, axes = plt.subplots(2, len(FIG6_TIMES), figsize=(12, 4.1), constrained_layout=True)
for row, ac in enumerate(FIG6_PAIRS):
    for col, t in enumerate(FIG6_TIMES):
        ax = axes[row, col]
        ax.imshow(forward[ac][col, 0].numpy(), cmap="gray", vmin=-1, vmax=1)
        bare(ax)
        if row == 0:
            ax.set_title(f"t = {t:g}")
    axes[row, 0].set_ylabel(f"(a, c) = ({ac[0]:g}, {ac[1]:g})")
fig.suptitle("Figure 6: forward Kac process $X_t = X_0 + K(t)$ on MNIST (grey range [-1, 1])")
save_figure(fig, "fig06_mnist_forward", figures_dir)
plt.show()

# %% [markdown]
# ## 2. The yardstick: an MNIST classifier
#
# `DigitClassifier` (two convolutions, a 128-unit feature layer, 10 logits) is trained on the
# MNIST training set (smoke: a few thousand images, one epoch, so its accuracy there is low
# and only a regression number). Its test accuracy below says whether its features and
# labels are worth anything; quick and paper need at least 98 %. The FD of generated digits
# is measured against test half B (5000 images in quick/paper). Two reference rows bracket
# the scale: the **floor**, FD between test half A and half B (once with as many images of A
# as there are samples per model, since the FD estimate is biased upwards for small sets,
# once with all of A), and the **ceiling**, FD of the latent noise $K(T)$ itself (one value
# per model, in the table below).

# %%
t0 = time.perf_counter()
if pretrained:  # the classifier that scored the shipped models, from the same checked bundle
    classifier = shipped_classifier(shipped.default_dir(), BUNDLE).to(rt.device)
else:
    classifier = classifier_or_train(clf_x, clf_y, cfg["clf_epochs"], rt.device, ckpt_dir, seed)
accuracy = float((predict(classifier, test_x) == test_y).double().mean())
ref_features = features(classifier, test_b)
fd_floor_n = frechet_distance(features(classifier, test_a[: cfg["n_samples"]]), ref_features)
fd_floor_all = frechet_distance(features(classifier, test_a), ref_features)
timings["classifier"] = time.perf_counter() - t0

# %%
# NBVAL_CHECK_OUTPUT
# NBVAL_TOLERANCE rtol=0.1 atol=0.01
shipped_with = f" (shipped with {BUNDLE})" if pretrained else ""
print(f"classifier trained on {clf_x.shape[0]} images, {cfg['clf_epochs']} epoch(s){shipped_with}")
print(f"test accuracy on {test_x.shape[0]} images: {accuracy:.4f}")
print(f"FD floor, {min(cfg['n_samples'], half)} test images (A) vs {half} (B): {fd_floor_n:.4g}")
print(f"FD floor, {half} test images (A) vs {half} (B): {fd_floor_all:.4g}")

# %% [markdown]
# ## 3. Training the ten mean-reverting Kac flows (and the baseline of section 7)
#
# Each model minimises the CFM loss [97]: draw a training digit $x_0$, a time
# $t \sim U(0, T)$, the exact Kac noise $K(t)$ (Poisson-Beta sampler), set
# $x_t = (1 - t/T) x_0 + K(t)$ and regress $v_\theta(t, x_t)$ on
# $-x_0/T + v(t, K(t))$ [99]. The 1D velocity is evaluated on the sampled noise $K(t)$ itself,
# not on $x_t - (1 - t/T) x_0$: in float32 that round trip moves the atoms $|K| = ct$ slightly
# inside $(-ct, ct)$, where the interior formula gives about $ct/(t + 2/a)$ instead of $c$
# (see the note on training targets in `docs/paper-notes.md`). Sampling uses the EMA weights
# after the last step. The loss is the
# squared error summed over the 784 pixels. It is smallest for $(1, 1)$ and larger and spiky
# for the larger pairs: for $t$ below about $1/a$ a share $e^{-at}$ of the pixels still sit
# on an atom $\pm c t$ with a random sign. The target is then $\pm c$ in those pixels, and
# its sign shows in $x_t$ only as an offset $\pm c t$, tiny at such $t$, which a small network
# hardly resolves: an error of order $c^2$ per pixel, and one such small $t$ in a batch of 32
# adds up to $784 c^2 / 32$ (about $2 \cdot 10^4$ for $c = 30$) to that batch's loss.
# (Training times are printed in an unchecked cell: they depend on the machine, and a run
# that loads finished checkpoints prints near-zero times; the from-scratch timings of the
# quick profile are in the README.)

# %%
BASELINE = BaselineModel(T=1.0)  # not in the paper: the rectified flow of section 7
if pretrained:
    entries, bundle_info = shipped.load_bundle(shipped.default_dir(), BUNDLE)
    trained = from_bundle([*MODELS, BASELINE], entries, bundle_info)
    print(f"loaded {BUNDLE} (SHA-256 checked): {bundle_info['run']}")
else:
    trained = {}
    for spec in [*MODELS, BASELINE]:
        trained[spec.key] = train_model(
            spec, image_sampler(train_x, rt.device), train_settings, rt.device, ckpt_dir, seed
        )
timings["training"] = sum(tr.seconds for tr in trained.values())
for spec in [*MODELS, BASELINE]:
    tr = trained[spec.key]
    how = "loaded" if tr.resumed_from >= cfg["steps"] else "trained"
    print(f"{spec.label}: {how}, {tr.seconds:.1f} s")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), constrained_layout=True, sharey=True)
for ax, T in zip(axes, (1.0, 5.0), strict=True):
    for i, spec in enumerate(s for s in MODELS if s.T == T):
        # block means of about 500 blocks (what a weights bundle keeps), then a moving
        # average over a twentieth of them, so shipped and fresh runs draw the same curve
        steps_at, means = trained[spec.key].loss_curve()
        window = max(1, means.numel() // 20)
        smooth = np.convolve(means.numpy(), np.ones(window) / window, mode="valid")
        ax.plot(
            steps_at.numpy()[window - 1 :],
            smooth,
            color=COLORS[i],
            label=f"({spec.a:g}, {spec.c:g})",
        )
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_title(f"T = {T:g}")
axes[0].set_ylabel("CFM loss (moving average, 1/20 of the run)")
axes[0].legend(title="(a, c)", fontsize=9)
fig.suptitle("Training loss of the ten mean-reverting Kac flows")
save_figure(fig, "nb05_training_loss", figures_dir)
plt.show()

# %% [markdown]
# ## 4. Generation (paper Figures 7 and 8)
#
# For each model: draw the latent $K(T)$ per pixel (exact sampler; independent of the data,
# [98-99]) and integrate $\dot x = v_\theta(t, x)$ from $t = T$ to $0$ with explicit Euler
# (torchdiffeq `"euler"`), step $T/N$ = `euler_dt` for both horizons (quick: 0.05, so
# $N = 20$ for $T = 1$ and $N = 100$ for $T = 5$; long and paper: 0.01, so $N = 100$ and
# $N = 500$). The $T = 5$ models are also
# sampled with the $N$ of $T = 1$ (scores in section 6). With `same_step=False`, the default
# when the shipped weights are evaluated (`pretrained=True`), every model is sampled with the
# $N$ of $T = 1$ only, as the learning curves of section 10 are; the figure titles give the
# step counts. As in the paper, each figure shows
# the five $(a, c)$ side by side, one grid of samples each (the first 64 samples of the model,
# not selected); images are shown clipped to $[-1, 1]$. On a CPU the chunks of 64 images are
# integrated in forked processes of one thread each, one per torch thread, rather than with
# all threads in one process (the same samples; `benchmarks/bench_sample_mnist.py` compares
# the two). The paper's finding: $(1, 1)$ gives an irregular flow and worse digits, larger
# $(a, c)$ are stable and consistent, and $T = 5$ slightly improves the larger pairs.

# %%
t0 = time.perf_counter()
samples, scores, scores_same_count = {}, {}, {}
sample_key = {**train_settings, "seed": seed}  # samples are saved per trained model
sample_workers = cpu_workers(rt.device)  # forked single-thread processes on a CPU, else 1


def sample_and_score(spec, index, steps, **kwargs):
    # the latents of model `index` come from generator seed `seed + 1 + index`
    gen = torch.Generator(device=rt.device).manual_seed(seed + 1 + index)
    return mnist_sample_and_score(
        trained[spec.key].model, spec, cfg["n_samples"], steps, gen, ckpt_dir, sample_key,
        classifier, ref_features, amp=sample_amp, chunk=cfg["sample_chunk"],
        workers=sample_workers, **kwargs,
    )  # fmt: skip


for i, spec in enumerate(rt.progress(MODELS, "sample and score")):
    samples[spec.key], scores[spec.key] = sample_and_score(
        spec, i, N_EULER[spec.key], n_saved=cfg["n_saved"], keep_trajectory=cfg["n_traj"]
    )
    if spec.T != 1.0 and same_step:  # the same latents, with the number of steps of T = 1
        coarse, scores_same_count[spec.key] = sample_and_score(spec, i, N_SAME_COUNT)
        assert torch.equal(coarse.latent, samples[spec.key].latent)
timings["sampling"] = time.perf_counter() - t0

# %%
N_GRID = 8  # an 8 x 8 grid of samples per (a, c)


def run_text(specs):
    """The checkpoint and solver behind the samples of ``specs``, for figure titles."""
    weights = sorted({trained[s.key].weights for s in specs})
    steps = sorted({N_EULER[s.key] for s in specs})
    return (
        f"{', '.join(weights)} of each run; {'/'.join(map(str, steps))} Euler steps of "
        f"{cfg['euler_dt']:g}; {profile} profile"
    )


def sample_figure(T, stem, title):
    models_T = [s for s in MODELS if s.T == T]
    grid_rows = -(-min(N_GRID**2, cfg["n_samples"]) // N_GRID)
    fig, axes = plt.subplots(
        1,
        len(models_T),
        figsize=(2.9 * len(models_T), 2.9 * grid_rows / N_GRID + 1.0),
        constrained_layout=True,
        squeeze=False,
    )
    for ax, spec in zip(axes[0], models_T, strict=True):
        grid = tile_images(samples[spec.key].x[: N_GRID**2], N_GRID)
        ax.imshow(grid, cmap="gray", vmin=-1, vmax=1)
        bare(ax)
        ax.set_title(f"(a, c) = ({spec.a:g}, {spec.c:g})")
    fig.suptitle(f"{title}\n{run_text(models_T)}")
    save_figure(fig, stem, figures_dir)
    plt.show()


sample_figure(1.0, "fig07_mnist_T1", "Figure 7: mean-reverting Kac samples, T = 1")

# %%
sample_figure(5.0, "fig08_mnist_T5", "Figure 8: mean-reverting Kac samples, T = 5")

# %% [markdown]
# ## 5. Generated trajectories (paper App. A.2)
#
# The first samples of each of the ten models (left column $T = 1$, right column $T = 5$;
# one row per $(a, c)$), at equally spaced times of the Euler path from the latent
# ($t = T$, left in each panel) to the sample ($t = 0$, right). The stored times are Euler
# nodes. What to look for: the digit emerges gradually as the mean reversion $f(t) x_0$ and
# the learned velocity remove the noise; for $(1, 1)$ the latent $K(T)$ is not Gaussian-like
# (with $T = 1$ a share $e^{-1} \approx 0.37$ of the pixels still sit at $\pm c T$) and the
# path is rougher; with $T = 5$ the latent spreads further ($E K(5)^2 \approx 5$ against
# about 1 for $T = 1$) and most of the digit forms in the last steps.

# %%
side = IMAGE_SHAPE[-1]
panel_h = 6.0 * cfg["n_traj"] / cfg["n_saved"]  # inches, for panels 6 inches wide
fig, axes = plt.subplots(
    len(RUN_PAIRS),
    2,
    figsize=(12.5, 1.0 + (panel_h + 0.75) * len(RUN_PAIRS)),
    constrained_layout=True,
    squeeze=False,
)
for col, T in enumerate((1.0, 5.0)):
    for row, spec in enumerate(s for s in MODELS if s.T == T):
        gs = samples[spec.key]
        # rows of the panel: samples; columns: the stored times from T down to 0
        frames = gs.trajectory[:, : cfg["n_traj"]].transpose(0, 1).reshape(-1, *IMAGE_SHAPE)
        ax = axes[row, col]
        ax.imshow(tile_images(frames, cfg["n_saved"]), cmap="gray", vmin=-1, vmax=1)
        bare(ax)
        ax.set_xticks(
            [k * (side + 2) + side / 2 - 0.5 for k in range(cfg["n_saved"])],
            [f"t = {float(t):.3g}" for t in gs.times],
            fontsize=8,
        )
        ax.tick_params(length=0)
        ax.set_title(f"(a, c) = ({spec.a:g}, {spec.c:g}), T = {T:g}", fontsize=10)
fig.suptitle(
    "App. A.2: generated trajectories, latent (left) to sample (right)\n" + run_text(MODELS)
)
save_figure(fig, "figA2_mnist_trajectories", figures_dir)
plt.show()

# %% [markdown]
# ## 6. Scores: Fréchet distance and predicted labels
#
# Per model: the FD of the samples to test half B (lower is better; compare with the floor
# above), the FD of the latent noise (the ceiling), the share of samples the classifier
# reads with probability at least 0.9 (`conf`: recognisable digits; test digits score
# about 0.98), the number of digits predicted for at least half their fair share (`cover`,
# out of 10), and the distribution of predicted labels: its entropy relative to $\log 10$
# (1 = all ten digits equally often) and the largest and smallest class share (a uniform
# spread is 0.1 each; the test set itself has 0.089 to 0.114). All images are clipped to
# $[-1, 1]$ before scoring. `N` is the number of Euler steps; the last five rows are the
# $T = 5$ models sampled from the same latents with the $N$ of $T = 1$ (a step five times
# larger), the variant discussed in the settings. The last row scores as many test digits
# (half A) as there are samples: the floor.

# %%
# NBVAL_CHECK_OUTPUT
# NBVAL_TOLERANCE rtol=0.25 atol=0.05
print(f"scores of {cfg['n_samples']} samples per model; FD against {half} test images")
print(
    f"{'model':<28}{'N':>5}{'FD':>9}{'FD latent':>11}{'conf':>7}{'cover':>6}"
    f"{'H/log10':>9}{'max':>7}{'min':>7}"
)
rows = [(spec, N_EULER[spec.key], scores[spec.key]) for spec in MODELS]
rows += [(spec, N_SAME_COUNT, scores_same_count[spec.key]) for spec in MODELS if spec.key in
         scores_same_count]  # fmt: skip
for spec, n_steps, s in rows:
    latent = f"{scores[spec.key]['fd_latent']:>11.4g}"
    print(
        f"{spec.label:<28}{n_steps:>5}{s['fd']:>9.4g}{latent}{s['confident']:>7.3f}"
        f"{s['coverage']:>6d}{s['entropy_ratio']:>9.3f}{s['max_share']:>7.3f}"
        f"{s['min_share']:>7.3f}"
    )
floor_scores = evaluate(classifier, test_a[: cfg["n_samples"]], ref_features)
print(
    f"{'test digits (A)':<28}{'':>5}{fd_floor_n:>9.4g}{'':>11}"
    f"{floor_scores['confident']:>7.3f}{floor_scores['coverage']:>6d}"
)

# %% [markdown]
# **The FD at a larger sample size.** The FD of $n$ samples is biased upwards, by a term
# of order $1/n$, so an FD of 256 samples is only comparable with a floor of 256 test digits.
# The Kac model with the lowest FD at $T = 1$ is therefore sampled again, `n_large` fresh
# latents (their own generator seed, after the eleven models' seeds) with the same Euler
# steps, and scored beside the floor of as many test digits of half A: both numbers fall, and
# their distance is what the model is missing at that sample size.
#
# The fresh samples also check the 256-sample FD itself. That FD varies from one set of
# latents to the next, and this model was *chosen* for having the lowest of five such noisy
# values, so its own value favours it. The fresh samples, cut into disjoint sets of
# `n_samples`, give FDs of the same size that the choice did not see; the long profile's
# targets (section 8) are judged on their mean, and on the confident share of all fresh
# samples.

# %%
best_t1 = best_at_t1(MODELS, scores)
n_large = min(cfg["n_large"] or cfg["n_samples"], half)
large_gen = torch.Generator(device=rt.device).manual_seed(seed + 2 + len(MODELS))
t0 = time.perf_counter()
large, large_scores = mnist_sample_and_score(
    trained[best_t1.key].model, best_t1, n_large, N_EULER[best_t1.key], large_gen, ckpt_dir,
    sample_key, classifier, ref_features, amp=sample_amp, chunk=cfg["sample_chunk"],
    workers=sample_workers,
)  # fmt: skip
fd_floor_large = frechet_distance(features(classifier, test_a[:n_large]), ref_features)
fresh_fds = subset_fds(classifier, large.x, ref_features, cfg["n_samples"])
timings["sampling"] += time.perf_counter() - t0

# %%
# NBVAL_CHECK_OUTPUT
# NBVAL_TOLERANCE rtol=0.25 atol=0.05
print(f"best Kac model at T = 1: {best_t1.label}, {N_EULER[best_t1.key]} Euler steps")
print(f"{'samples':>8}{'FD':>9}{'floor':>9}{'conf':>7}")
for n, sc, floor in ((cfg["n_samples"], scores[best_t1.key], fd_floor_n),
                     (n_large, large_scores, fd_floor_large)):  # fmt: skip
    print(f"{n:>8}{sc['fd']:>9.4g}{floor:>9.4g}{sc['confident']:>7.3f}")
if fresh_fds:  # their mean judges the FD target (section 8)
    print(
        f"FD of the fresh samples in {len(fresh_fds)} disjoint sets of {cfg['n_samples']}: "
        f"{', '.join(f'{v:.4g}' for v in fresh_fds)}"
    )

# %%
n_pairs = len(RUN_PAIRS)
fig, axes = plt.subplots(
    2, n_pairs, figsize=(2.8 * n_pairs, 5), constrained_layout=True, sharey=True, squeeze=False
)
test_shares = torch.bincount(test_y, minlength=10).double() / test_y.numel()
for ax, spec in zip(axes.flat, MODELS, strict=True):
    ax.bar(range(10), scores[spec.key]["shares"].numpy(), color=GENERATED, label="samples")
    ax.step(
        np.arange(11) - 0.5,
        np.append(test_shares.numpy(), test_shares[-1].item()),
        where="post",
        color=GROUND_TRUTH,
        label="test set",
    )
    ax.set_xticks(range(10))
    ax.set_title(f"({spec.a:g}, {spec.c:g}), T = {spec.T:g}", fontsize=10)
for ax in axes[:, 0]:
    ax.set_ylabel("share of samples")
for ax in axes[1]:
    ax.set_xlabel("predicted digit")
axes[0, 0].legend(fontsize=8)
fig.suptitle("Predicted-label distribution of the generated digits (mode coverage)")
save_figure(fig, "nb05_label_histograms", figures_dir)
plt.show()

# %%
fig, ax = plt.subplots(figsize=(6.4, 4.0))
for i, T in enumerate((1.0, 5.0)):
    rows = [s for s in MODELS if s.T == T]
    ax.plot([s.a for s in rows], [scores[s.key]["fd"] for s in rows], "o-", color=COLORS[i],
            label=f"samples, T = {T:g}")  # fmt: skip
    ax.plot([s.a for s in rows], [scores[s.key]["fd_latent"] for s in rows], "x:",
            color=COLORS[i], label=f"latent K(T), T = {T:g}")  # fmt: skip
rows5 = [s for s in MODELS if s.key in scores_same_count]
if rows5:  # the T = 5 models again with the number of steps of T = 1
    ax.plot([s.a for s in rows5], [scores_same_count[s.key]["fd"] for s in rows5], "s--",
            color=COLORS[2], label=f"samples, T = 5, N = {N_SAME_COUNT} (step x5)")  # fmt: skip
ax.axhline(fd_floor_n, color="black", ls="--", lw=1, label="floor: test A vs B")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("switching rate a (with c = sqrt(a))")
ax.set_ylabel("Fréchet distance (classifier features)")
ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0.02, 0.08))
ax.set_title("FD to MNIST test digits")
save_figure(fig, "nb05_fd_vs_a", figures_dir)
plt.show()

# %% [markdown]
# ## 7. A baseline the paper does not run: rectified flow
#
# The default path of today's flow-matching libraries, $X_t = (1 - t) X_0 + t Z$ with
# $Z \sim N(0, I)$ per pixel (rectified flow / conditional OT; `BaselineModel`), trained with
# the same U-Net, steps, batch, learning rate, EMA and seed as each Kac model (in section
# 3, with them) and sampled
# with the same explicit Euler step from its latent $Z$ (no data needed, like $K(T)$), at
# $T = 1$. Its samples and scores sit beside the five $T = 1$ Kac models: where does Kac
# stand against it at this scale?

# %%
N_EULER[BASELINE.key] = euler_steps(BASELINE.T, cfg["euler_dt"], cfg["n_saved"])
samples[BASELINE.key], scores[BASELINE.key] = sample_and_score(
    BASELINE, len(MODELS), N_EULER[BASELINE.key]
)
fig, axes = plt.subplots(1, 2, figsize=(6.2, 3.6), constrained_layout=True)
best_kac = best_at_t1(MODELS, scores)
for ax, spec in zip(axes, (BASELINE, best_kac), strict=True):
    ax.imshow(tile_images(samples[spec.key].x[: N_GRID**2], N_GRID), cmap="gray", vmin=-1, vmax=1)
    bare(ax)
    ax.set_title(f"{spec.label}\nFD {scores[spec.key]['fd']:.0f}", fontsize=10)
fig.suptitle(f"Rectified flow against the best Kac model, T = 1\n{run_text([BASELINE])}",
             fontsize=10)  # fmt: skip
save_figure(fig, "nb05_rf_baseline", figures_dir)
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
# NBVAL_TOLERANCE rtol=0.25 atol=0.05
print(f"{'model':<28}{'N':>5}{'FD':>9}{'FD latent':>11}{'conf':>7}{'cover':>6}")
for spec in [*(s for s in MODELS if s.T == 1.0), BASELINE]:
    s = scores[spec.key]
    print(
        f"{spec.label:<28}{N_EULER[spec.key]:>5}{s['fd']:>9.4g}{s['fd_latent']:>11.4g}"
        f"{s['confident']:>7.3f}{s['coverage']:>6d}"
    )

# %% [markdown]
# ## 8. Reproduced / differs
#
# The claims of the paper (qualitative, read off Figures 7-8) turned into comparisons of the
# numbers above, plus checks of our own (the rows marked "ours"), among them the comparison
# with the rectified-flow baseline. The verdicts are computed.

# %%
claims = mnist_claims(
    MODELS,
    scores,
    scores_same_count if same_step else None,  # None: scores are the N of T = 1 throughout
    N_SAME_COUNT,
    accuracy,
    baseline=(BASELINE.key, scores[BASELINE.key]),
)
scale = {
    "smoke": "regression check only",
    "quick": "small CPU models, indicative",
    "long": "small CPU models trained for hours (section 10 says how far that goes)",
}
print(f"profile {profile}: {scale.get(profile, 'the paper-sized setting')}")
report.print_verdicts(claims)
print(f"samples: {run_text(MODELS)}")
if not same_step:
    print(f"same_step=False: T = 5 sampled with N = {N_SAME_COUNT} only, so no row compares "
          "the horizons at one step size")  # fmt: skip
fresh = {"fds": fresh_fds, "confident": large_scores["confident"]}
targets = target_rows(MODELS, scores, fresh=fresh)
print(f"targets of the long profile, best Kac model at T = 1 ({targets[0]['model']}):")
for t in targets:
    miss = "met" if t["met"] else f"missed by {t['gap']:.3g}"
    print(f"  {t['target']} ({t['basis']}): {t['value']:.3g}, {miss}")
long_record = learning_curve.load_record(learning_curve.LONG_RECORD)
curve_of_run = learning_curve.config_train_s(long_record, train_settings, cfg["steps"])
budget = learning_curve.budget_verdicts(claims, long_record, *(curve_of_run or ("-", 0.0)))
if curve_of_run is None:  # rows that compare FDs have no curve to be read off
    budget = [v if v == "-" else "no long learning curve for this U-Net and batch" for v in budget]
models_json = {
    spec.key: {
        "a": getattr(spec, "a", None),
        "c": getattr(spec, "c", None),
        "T": spec.T,
        "euler_steps": N_EULER[spec.key],
        **{k: float(v) for k, v in scores[spec.key].items() if isinstance(v, (int, float))},
    }
    for spec in [*MODELS, BASELINE]
}
_ = report.write_metrics(
    "05_mnist",
    profile,
    claims,
    figures_dir,
    models=models_json,
    fd_floor=float(fd_floor_n),
    classifier_accuracy=float(accuracy),
    large_sample={
        "model": best_t1.key,
        "n": n_large,
        "fd": float(large_scores["fd"]),
        "confident": float(large_scores["confident"]),
        "fd_floor": float(fd_floor_large),
        "fd_sets": fresh_fds,
    },
    targets=targets,
    more_budget={r["claim"]: v for r, v in zip(claims, budget, strict=True)},
)

# %%
print({k: f"{v:.1f} s" for k, v in timings.items()})
if figures_dir is not None and writes_bundle(profile, pretrained, pairs):
    # the runner publishes it as pretrained/05_mnist_<profile>.pt with the run's outputs
    run_info = (
        f"{profile} profile, {cfg['steps']:,} steps per model, device {rt.device}, "
        f"torch {torch.__version__}, seed {seed}"
    )
    bundle_json = shipped.save_bundle(
        trained,
        shipped.run_dir(figures_dir),
        BUNDLE,
        {"settings": train_settings, "run": run_info},
        extras={CLASSIFIER_EXTRA: classifier.state_dict()},  # scores the shipped models again
    )
    print(f"wrote {bundle_json.name} and its weights")

# %% [markdown]
# **Would more training change a row?** For each row that compares the FD of two models, the
# long learning curves of section 10 (the same U-Net and batch as this run, the models that
# stand for the row: (25, 5) for the larger pairs) are read at this run's training time and at
# their end: "flips" means the order of the two FDs changes with more training, so the row's
# verdict is a matter of budget; "settled" that the order is unchanged and the worse curve
# (higher FD) has stopped improving, so that more training of the better one can only widen
# the gap; "open" that the order holds so far but the worse curve was still improving when it
# ended and might catch up (`learning_curve.budget_verdicts`). The curves score every model
# with 100 Euler steps, so for $T = 5$ they measure the variant with the step count of
# $T = 1$; the row with the same step size is read off the same curves.

# %%
if curve_of_run is None:
    print(f"no long learning curve for this U-Net and batch ({cfg['unet']}, batch {cfg['batch']})")
else:
    print(f"long curves of {curve_of_run[0]}, read at {curve_of_run[1] / 60:.0f} training "
          f"minutes ({cfg['steps']} steps at the speed measured for them):")  # fmt: skip
    for r, verdict in zip(claims, budget, strict=True):
        if verdict != "-":
            print(textwrap.fill(f"{r['verdict']:<10} {r['claim']}: {verdict}", 92,
                                subsequent_indent=" " * 11))  # fmt: skip

# %% [markdown]
# **Reading the summary.** The rows without "ours" are the paper's claims, those for $T = 5$
# twice: with the step size of $T = 1$ and, as "T=5 with N = ...", with its number of steps
# (a run with `same_step=False` has only the second kind); only the `paper`
# profile (the paper's U-Net, 10k steps per model) makes them a fair test. The `smoke`
# profile trains for three steps: its table is a regression check of the pipeline, nothing
# more. The sentences below are printed from this run's numbers (nothing is typed in), so
# they describe whichever profile produced the committed notebook; its run record
# `figures/runs/05_mnist.json` names the profile, the device and the wall time.

# %%
for sentence in run_summary(
    MODELS,
    scores,
    fd_floor_n,
    min(cfg["n_samples"], half),
    claims,
    baseline=(BASELINE.label, scores[BASELINE.key]),
):
    print(textwrap.fill(sentence, 92))

# %% [markdown]
# **How to read a "differs".** At the quick and long profiles the networks are small (0.1 M
# weights against the paper's 10.7 M) and trained on a CPU, so the paper's visual findings
# (Figures 7-8) are compared with samples that are not converged: a "differs" there says what
# this budget shows, not that the paper is wrong, and the learning-curve lines above say which
# verdicts more training of the same network would change.
# Two effects work against $T = 5$ at a small budget: with $t \sim U(0, T)$ only a fifth of
# the training draws fall on $[0, 1]$, where the trajectories (App. A.2) show the digit
# forming; and for large $(a, c)$ the target behaves like the diffusion velocity
# $K(t)/(2t)$ (Thm 9), steep at small $t$ and capped only at $c$ (up to 30), with the
# unpredictable atom part described in section 3. The comparison the paper makes needs the
# paper-sized run (`kacnb run 05 --profile paper` on a GPU; `tools/gpu_lease_05.py` runs it
# in resumable commands on a rented one).

# %% [markdown]
# ## 9. Quality per CPU minute: how the quick profile was chosen
#
# `tools/mnist_learning_curve.py` trains the model $(a, c) = (25, 5)$, $T = 1$ from scratch for
# several U-Net sizes and batch sizes on a 2-core CPU and, at regular intervals, scores 256 samples
# of its EMA weights (20 Euler steps, the same latents each time): FD against test half B and the
# share of confidently classified samples, against the seconds of training (the scoring time left
# out; `kacnb.experiments.learning_curve`). A larger U-Net learns more per step but also costs more
# to sample, and notebook 05 samples every model about 36 times as much as one scored point (100 and
# 20 Euler steps for the ten models, the $T = 5$ models again with 20, and the baseline), so each
# configuration is charged its own sampling time: the training time per model it can afford in a
# 30-minute run is `learning_curve.affordable_train_s` (dashed line per configuration), and the
# quick profile is the configuration, and step count, with the lowest FD inside that time. The
# record (machine, torch, threads, commit) is `figures/runs/05_learning_curve.json`; this cell only
# plots it.

# %%
# quick_budget: the paper's ten models and the baseline, 720 Euler evaluations per digit over
# them against the probe's 20 (36 probe-sized batches), 30 minutes in all
afford = learning_curve.quick_budget
record = learning_curve.load_record()
if record is None:
    print(f"no learning-curve record at {learning_curve.RECORD}")
else:
    chosen, point = learning_curve.quick_choice(record)
    fig, (ax_fd, ax_conf) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for i, curve in enumerate(record["curves"]):
        t = [p.train_s / 60 for p in curve.points]
        colour = COLORS[i]
        ax_fd.plot(t, [p.fd for p in curve.points], "o-", ms=3, color=colour, label=curve.name)
        ax_conf.plot(t, [p.confident for p in curve.points], "o-", ms=3, color=colour)
        for ax in (ax_fd, ax_conf):
            ax.axvline(afford(curve) / 60, color=colour, ls="--", lw=0.8)
    ax_fd.plot(point.train_s / 60, point.fd, "*", ms=14, color="black", label="quick profile")
    ax_fd.axhline(record["fd_floor"], color="black", ls=":", lw=1, label="test digits")
    ax_fd.set_yscale("log")
    ax_fd.set_ylabel("FD to test digits")
    ax_conf.set_ylabel(f"share classified with probability >= {CONFIDENT:g}")
    for ax in (ax_fd, ax_conf):
        ax.set_xlabel("training time (minutes, 2-core CPU)")
    ax_fd.legend(fontsize=8)
    m = record["machine"]
    fig.suptitle(
        f"(25, 5), T = 1: sample quality against training time ({m['cpu']}, "
        f"{m['torch_threads']} threads, torch {m['torch']})",
        fontsize=10,
    )
    save_figure(fig, "nb05_learning_curve", figures_dir)
    plt.show()
    print(
        f"chosen: {chosen.name} (U-Net base {chosen.settings['base']}, levels "
        f"{chosen.settings['levels']}, blocks {chosen.settings['blocks']}, batch "
        f"{chosen.settings['batch']}), {point.step} steps in "
        f"{point.train_s:.0f} s (affordable {afford(chosen):.0f} s): FD {point.fd:.1f}, "
        f"confident {point.confident:.2f}"
    )
    for curve in record["curves"]:
        best = min(curve.points, key=lambda p: p.fd)
        print(
            f"{curve.name:>10}: best FD {best.fd:6.1f} at {best.train_s:4.0f} s "
            f"(step {best.step}); affordable {afford(curve):4.0f} s per model"
        )

# %% [markdown]
# ## 10. How far CPU training goes: the long learning curves
#
# Section 9 chose the quick profile inside a 30-minute run. To judge the claims, we need to know
# where the models stop improving. `tools/mnist_learning_curve.py` (the same tool, a longer
# record `figures/runs/05_learning_curve_long.json`) trains each of three configurations (U-Net
# base channels / levels / blocks and batch: 16/2/1 with batch 32, 32/2/1 and the three-level
# 32/3/1 with batch 64; Adam $2\cdot10^{-3}$, EMA 0.999) for 30 minutes of training on the 2-core
# CPU, for $(a, c) = (25, 5)$ and $(1, 1)$ at $T = 1$ and $T = 5$, and scores it at 1.5, 3, 6,
# 12, 20 and 30 minutes with 100 Euler steps (the authors' MNIST script integrates over 100 time
# points), 256 digits from the same latents each time. An open square marks where the FD stops
# improving by more than 5% (`learning_curve.stops_improving`); no square: still improving when
# the budget ended, so more training would help. The tool records which curves are finished;
# unfinished ones are listed below the table. The long profile was chosen from the two-level
# curves, before the three-level one was measured; the table below says where each
# configuration stands after 30 minutes. The time axis is steps divided by the speed each
# configuration had on the machine named in the title; some curves were trained on another
# 2-core CPU (the record names it per curve), on the same axis.

# %%
long_curves = [] if long_record is None else learning_curve.in_order(long_record["curves"])
if not long_curves:
    print(f"no finished long curve in figures/runs/{learning_curve.LONG_RECORD.name}")
else:
    long_models = list(dict.fromkeys(c.model for c in long_curves))
    long_configs = sorted({c.name for c in long_curves})
    fig, axes = plt.subplots(
        1, len(long_models), figsize=(4.2 * len(long_models), 3.8), squeeze=False,
        sharey=True, constrained_layout=True,
    )  # fmt: skip
    for ax, model in zip(axes[0], long_models, strict=True):
        for curve in (c for c in long_curves if c.model == model):
            colour = COLORS[long_configs.index(curve.name)]
            minutes = [p.train_s / 60 for p in curve.points]
            ax.plot(minutes, [p.fd for p in curve.points], "o-", ms=3, color=colour,
                    label=curve.name)  # fmt: skip
            flat = learning_curve.stops_improving(curve)
            if flat is not None:
                ax.plot(flat.train_s / 60, flat.fd, "s", ms=10, mfc="none", color=colour)
        ax.axhline(long_record["fd_floor"], color="black", ls=":", lw=1, label="test digits")
        ax.set_title(learning_curve.model_label(model))
        ax.set_xlabel("training time (minutes, 2-core CPU)")
        ax.set_yscale("log")
    axes[0][0].set_ylabel(f"FD to test digits ({long_record['n_samples']} samples)")
    max(axes[0], key=lambda ax: len(ax.lines)).legend(fontsize=8)  # the panel with every config
    m = long_record["machine"]
    fig.suptitle(
        f"FD against training time, {long_record['euler_steps']} Euler steps\n"
        f"(time = steps / the speed measured on {m['cpu']}, {m['torch_threads']} threads, "
        f"torch {m['torch']})",
        fontsize=10,
    )
    save_figure(fig, "nb05_learning_curve_long", figures_dir)
    plt.show()

# %% [markdown]
# The same curves as numbers: the best FD and when it was reached, the last point, and the
# training minutes after which the FD improved by less than 5% ("-": still improving at the end).

# %%
if long_curves:
    print(f"{'model':<16}{'config':>11}{'best FD':>9}{'at min':>8}{'last FD':>9}"
          f"{'conf':>6}{'flat after':>12}")  # fmt: skip
    for r in learning_curve.long_table(long_record):
        flat = "-" if r["plateau_min"] is None else f"{r['plateau_min']:.1f} min"
        print(
            f"{learning_curve.model_label(r['model']):<16}{r['config']:>11}"
            f"{r['best_fd']:>9.1f}{r['best_min']:>8.1f}{r['last_fd']:>9.1f}"
            f"{r['last_confident']:>6.2f}{flat:>12}"
        )
    for unit in learning_curve.unfinished(long_record):
        print(f"not finished yet: {unit}")
