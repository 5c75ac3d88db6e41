"""Sample-quality metrics for the 2D Gaussian-mixture experiment (paper Section 7)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from .._checks import positive_scalar

__all__ = [
    "GaussianMixture",
    "grid_mixture",
    "nll",
    "mode_coverage",
    "nearest_mode_distance",
    "wasserstein2",
    "frechet_distance",
]


@dataclass(frozen=True)
class GaussianMixture:
    """Isotropic Gaussian mixture: ``means`` (K, d), one ``std``, ``weights`` (K,) summing to 1."""

    means: torch.Tensor
    std: float
    weights: torch.Tensor

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x)`` for ``x`` of shape (N, d), computed with logsumexp (no underflow)."""
        d = self.means.shape[1]
        m = self.means.to(x)
        sq = torch.cdist(x, m).pow(2)
        log_norm = -0.5 * d * math.log(2 * math.pi * self.std**2)
        comp = log_norm - sq / (2 * self.std**2) + torch.log(self.weights.to(x))
        return torch.logsumexp(comp, dim=1)

    def sample(self, n: int, generator=None, device=None, dtype=torch.float32) -> torch.Tensor:
        """Draw ``n`` points, shape (n, d), on ``device`` (default: the generator's device).

        The draws are made on the generator's device (CPU without a generator), so a CUDA
        generator works, and a CPU generator gives the same numbers whatever ``device`` is.
        """
        draw = generator.device if generator is not None else torch.device("cpu")
        k = torch.multinomial(
            self.weights.to(device=draw, dtype=torch.float64),
            n,
            replacement=True,
            generator=generator,
        )
        z = torch.randn(n, self.means.shape[1], generator=generator, dtype=dtype, device=draw)
        x = self.means.to(device=draw, dtype=dtype)[k] + self.std * z
        return x.to(device) if device is not None else x


def _batch(x, name: str = "x", min_rows: int = 1) -> None:
    """``ValueError`` naming ``x`` unless it is a tensor (N, d) with at least ``min_rows`` rows
    (a metric of an empty set of samples is undefined, not NaN)."""
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[0] < min_rows:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a tensor (N, d) with N >= {min_rows}, got {shape}")


def grid_mixture(std: float = 1e-4, dtype=torch.float64) -> GaussianMixture:
    """The paper's target: 9 equal Gaussians centred on {-1, 0, 1}^2 with a tiny ``std``
    (finite and > 0)."""
    std = positive_scalar("std", std)
    g = torch.tensor([-1.0, 0.0, 1.0], dtype=dtype)
    means = torch.cartesian_prod(g, g)
    return GaussianMixture(means=means, std=std, weights=torch.full((9,), 1 / 9, dtype=dtype))


def nll(x: torch.Tensor, gmm: GaussianMixture) -> float:
    """Negative log-likelihood ``-(1/N) sum log p_GMM(x)`` of generated points (validation).

    ``x`` is (N, d) with ``N >= 1``."""
    _batch(x)
    return float(-gmm.log_prob(x.to(torch.float64)).mean())


def mode_coverage(x: torch.Tensor, means: torch.Tensor, radius: float) -> torch.Tensor:
    """Share of the samples within ``radius`` of each mode: shape (K,); sums to <= 1.

    ``x`` is (N, d) with ``N >= 1``; ``radius`` is a number >= 0."""
    _batch(x)
    try:
        r = float(radius)
    except (TypeError, ValueError):
        r = math.nan
    if isinstance(radius, bool) or not (math.isfinite(r) and r >= 0):
        raise ValueError(f"radius must be a finite number >= 0, got {radius!r}")
    dist = torch.cdist(x.to(torch.float64), means.to(torch.float64))
    near, idx = dist.min(dim=1)
    counts = torch.bincount(idx[near <= radius], minlength=means.shape[0])
    return counts.to(torch.float64) / x.shape[0]


def nearest_mode_distance(x: torch.Tensor, means: torch.Tensor) -> float:
    """Mean Euclidean distance from each sample to its nearest mode; ``x`` (N, d), N >= 1."""
    _batch(x)
    return float(torch.cdist(x.to(torch.float64), means.to(torch.float64)).min(dim=1).values.mean())


def wasserstein2(x: torch.Tensor, y: torch.Tensor) -> float:
    """Exact W2 between two empirical measures with the same number of points (assignment);
    ``x`` and ``y`` are (N, d) with ``N >= 1``."""
    _batch(x)
    _batch(y, "y")
    if x.shape != y.shape:
        raise ValueError(
            f"x and y must have the same shape, got {tuple(x.shape)}, {tuple(y.shape)}"
        )
    # Exact squared differences: cdist's matmul form leaves ~1e-17 errors, i.e. ~1e-9 in W2.
    x64, y64 = x.to(torch.float64).cpu(), y.to(torch.float64).cpu()
    cost = (x64[:, None, :] - y64[None, :, :]).pow(2).sum(-1).numpy()
    rows, cols = linear_sum_assignment(cost)
    return float(np.sqrt(cost[rows, cols].mean()))


def frechet_distance(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (N_a, F), (N_b, F).

    ``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2})``; the trace of the matrix square
    root is the sum of square roots of the eigenvalues of ``S_a^{1/2} S_b S_a^{1/2}``
    (symmetric, so a symmetric eigensolver in float64 suffices and no complex parts arise).
    Each set needs ``N >= 2`` rows (a covariance).
    """
    a = feats_a.to(torch.float64).cpu()
    b = feats_b.to(torch.float64).cpu()
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"feature sets must be (N, F) with equal F, got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError(
            "feature sets need at least 2 rows each (a covariance), got "
            f"{a.shape[0]} and {b.shape[0]}"
        )
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)
    evals_a, evecs_a = torch.linalg.eigh(cov_a)
    sqrt_a = evecs_a @ torch.diag(evals_a.clamp_min(0).sqrt()) @ evecs_a.T
    middle = sqrt_a @ cov_b @ sqrt_a
    tr_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    value = (mu_a - mu_b).pow(2).sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * tr_sqrt
    return float(value.clamp_min(0))
