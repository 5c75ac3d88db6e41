"""The diffusion baseline's truncation, measured with the exact velocity field (paper Section 7).

For the Gaussian mixture ``mu_0 = sum_k w_k N(m_k, s^2 I)`` and the heat path
``X_t = X_0 + sigma W(t)``, the marginal law is the mixture with variances
``s^2 + sigma^2 t`` and the marginal velocity (the minimiser of the CFM loss [97], Cor 15
[95]) is, from ``d/dt p_t = (sigma^2/2) Lap p_t`` and the continuity equation [2],

    v_t(x) = -(sigma^2/2) grad log p_t(x)
           = (sigma^2/2) sum_k w_k(t, x) (x - m_k) / (s^2 + sigma^2 t),

with posterior weights ``w_k(t, x)`` proportional to ``w_k N(x; m_k, (s^2 + sigma^2 t) I)``.
Near a mode its size is ``|x - m|/(2t)``, growing like ``t^{-1/2}`` along the flow: this is the
explosion of Section 3 that forces training and generation to stop at ``t = eps``.
:func:`truncation_study` integrates this exact field with dopri5 from ``T`` down to several
``eps`` and records the work (NFE), a collapse of the step size (torchdiffeq's "underflow in
dt") or a divergence, and the quality of what a *perfect* diffusion network would return at
each ``eps``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..cfm.metrics import GaussianMixture
from ..cfm.sampling import integrate

__all__ = ["diffusion_velocity", "truncation_study"]


def diffusion_velocity(gmm: GaussianMixture, sigma: float = 1.0):
    """The exact marginal velocity ``v(t, x)`` of ``X_0 + sigma W(t)`` for ``X_0 ~ gmm``.

    Returns a callable ``v(t, x)`` with per-row times ``t`` (B,) and points ``x`` (B, d),
    computed in the dtype of ``x``; units of ``x`` per unit time.
    """

    def v(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        var = (gmm.std**2 + sigma**2 * t)[:, None]  # (B, 1)
        means = gmm.means.to(x)
        diff = x[:, None, :] - means[None]  # (B, K, d)
        logits = -diff.pow(2).sum(-1) / (2 * var) + torch.log(gmm.weights.to(x))[None]
        w = torch.softmax(logits, dim=1)  # posterior weights; the normalisation cancels
        return 0.5 * sigma**2 * (w[..., None] * diff).sum(1) / var

    return v


def truncation_study(
    gmm: GaussianMixture,
    eps_values: Sequence[float],
    x0: torch.Tensor,
    generator: torch.Generator | None = None,
    sigma: float = 1.0,
    T: float = 1.0,
    radii: Sequence[float] = (5e-4, 5e-3),
    rtol: float = 1e-5,
    atol: float = 1e-5,
    max_nfe: int = 20_000,
) -> list[dict]:
    """Integrate the exact diffusion field from ``T`` to each ``eps``; one dict per ``eps``.

    The latent is ``x0 + sigma W(T)`` (the same draw for every ``eps``; ``x0`` (N, d) mixture
    starts, float64 recommended). Each dict holds ``eps``, ``nfe``, ``status`` ("ok",
    "step-size collapse" when dopri5 underflows, "NFE budget exceeded" past ``max_nfe``,
    "diverged" for a non-finite end point), the ``coverage`` within each radius of ``radii``
    (share of points within ``r`` of a mode), the ``blob_std`` ``sqrt(s^2 + sigma^2 eps)`` of
    the exact end law, and the end-point velocity size ``speed`` (median ``|v_eps(x)|``).
    """
    v = diffusion_velocity(gmm, sigma)
    z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    x_T = x0 + sigma * math.sqrt(T) * z
    out = []
    for eps in eps_values:
        calls = 0

        def counted(t, x):
            nonlocal calls
            calls += 1
            if calls > max_nfe:
                raise _Budget
            return v(t, x)

        row = {"eps": float(eps), "blob_std": math.sqrt(gmm.std**2 + sigma**2 * eps)}
        try:
            res = integrate(counted, x_T, T, eps, method="dopri5", rtol=rtol, atol=atol)
            x = res.x
            row["status"] = "ok" if torch.isfinite(x).all() else "diverged"
        except AssertionError:  # torchdiffeq: "underflow in dt"
            x, row["status"] = None, "step-size collapse"
        except _Budget:
            x, row["status"] = None, "NFE budget exceeded"
        row["nfe"] = calls
        if x is not None and row["status"] == "ok":
            dist = torch.cdist(x, gmm.means.to(x)).min(dim=1).values
            row["coverage"] = {r: float((dist <= r).double().mean()) for r in radii}
            t_end = torch.full((x.shape[0],), float(eps), dtype=x.dtype, device=x.device)
            row["speed"] = float(v(t_end, x).norm(dim=1).median())
        else:
            row["coverage"] = {r: float("nan") for r in radii}
            row["speed"] = float("nan")
        out.append(row)
    return out


class _Budget(Exception):
    """Raised inside the solver when the NFE budget is spent."""
