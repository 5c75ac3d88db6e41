"""Exact marginal velocity fields of the 2D mixture experiment (paper Sections 5-7).

For ``X_0 ~ sum_k w_k N(m_k, s^2 I_d)`` (the grid mixture of notebook 04, or any isotropic
mixture) and the componentwise Kac process ``K`` with rate ``a`` and speed ``c`` [66], the law
``mu_t`` of ``X_t = X_0 + K(t)`` is a mixture of product densities: given the mode ``k``,
component ``i`` is ``m_k^i + s Z + K^i(t)`` with density ``p_s(t, x^i - m_k^i)``,

    p_s(t, y) = exp(-a t)/2 (phi_s(y - c t) + phi_s(y + c t))
                + integral_{-ct}^{ct} u~(t, z) phi_s(y - z) dz,

the 1D Kac law [30-31] (atoms included) smoothed by the Gaussian ``phi_s`` of the modes. Its
flux is ``J_s(t, y) = E[v(t, K(t)) phi_s(y - K(t))]`` with the Kac velocity ``v`` [41]
(``+-c`` on the atoms), so each mode moves with the vector of 1D velocities
``(J_s / p_s)(t, x^i - m_k^i)`` (Lemma 13 / Thm 14 [88, 93]), and the marginal field is
(Cor 15 [95])

    v_t(x) = sum_k w_k(t, x) ( J_s(t, x^i - m_k^i) / p_s(t, x^i - m_k^i) )_i,
    w_k(t, x) proportional to w_k prod_i p_s(t, x^i - m_k^i)   (posterior weights).

The diffusion baseline ``X_0 + sigma W(t)`` has the mixture with variances
``s^2 + sigma^2 t`` and the field of :func:`kacnb.experiments.truncation.diffusion_velocity`.

Numerics (float64 throughout):

* ``J_s / p_s`` is a posterior mean of ``v(t, K)`` given the smoothed point: each term of
  ``p_s`` (the two atoms, and the quadrature nodes of the integral) enters through its
  logarithm, ``log p_s`` is their logsumexp and ``J_s / p_s`` their softmax average of
  ``+c``, ``-c`` and ``v(t, z_j)``; so ``|v_i| <= c`` holds exactly, and nothing underflows
  in the far tails (there the atoms win and ``v_i -> sign(y) c``) or as ``t -> 0`` (the atoms
  hold all the mass and ``v -> 0``). ``log u~`` is formed from the exponentially scaled
  Bessel functions with the cancellation-free exponent of :mod:`kacnb.theory.kac`.
* The integral is a composite Gauss-Legendre rule on ``[y - 9 s, y + 9 s]`` intersected with
  the light cone (for points outside the cone, on the ``9 s`` next to its nearest edge;
  ``u~`` is smooth up to the edges, only truncated there). Panels of 16 nodes are at most
  ``18 s`` wide and at most the width ``c t / sqrt(max(1, a t))`` on which ``u~`` varies, so
  Dirac-like modes (the paper's ``s = 1e-4``) cost one panel per point (relative error about
  4e-10 against a fine linear-space quadrature; two panels reach 1e-13) and wider modes stay
  resolved (up to 64 panels).
* The posterior uses the distinct mode coordinates per axis (3 per axis for the grid), so a
  call costs ``B * sum_i U_i`` 1D evaluations instead of ``B * K * d``.

Contents: the fields :class:`KacMixtureField` and :class:`DiffusionMixtureField` with one
interface (``field(t, x)``, ``velocity``, ``log_density``, ``sample``, ``draw``, ``T``,
``t_min``), :func:`exact_field` (from a probability path of :mod:`kacnb.cfm.paths`), and the
three uses of issue 14: the field error of a network along time (:func:`field_error`),
"oracle" samples from the exact field (:func:`oracle_samples`), and the L2(mu_t) distance
between the Kac field and the diffusion field with ``sigma^2 = c^2/a``
(:func:`kac_vs_diffusion_distance`, Section 7.1's "large (a, c) give diffusion-like
results").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from .._checks import positive_int, positive_scalar
from ..cfm.metrics import GaussianMixture, grid_mixture
from ..cfm.sampling import SampleResult, integrate
from ..theory.kac import _cone, _i1e_over_z, kac_sample
from ..theory.telegraph import _composite_gauss_legendre
from .truncation import diffusion_velocity

__all__ = [
    "KacMixtureField",
    "DiffusionMixtureField",
    "RectifiedMixtureField",
    "exact_field",
    "speed_and_lipschitz",
    "smoothed_kac_1d",
    "field_error",
    "oracle_samples",
    "kac_vs_diffusion_distance",
]

# Half-width of the smoothing window in mode standard deviations (tail mass 2e-19).
_WINDOW_STDS = 9.0
_PANEL_NODES = 16  # nodes per panel of telegraph._composite_gauss_legendre
_PANEL_STDS = 18.0  # widest panel, in mode standard deviations
_MAX_PANELS = 64
# Rows per block of field evaluations (memory ~ rows * U * nodes numbers per tensor).
_BLOCK_ROWS = 4096
_LOG_FLOOR = -1e300  # 1D log densities below this (absurd |x|) are clamped: finite posteriors


# ---------------------------------------------------------------------------- 1D kernel
def _log_kac_density_and_velocity(
    t: torch.Tensor, z: torch.Tensor, a: float, c: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log u~(t, z), v(t, z))`` [30-31], [41] on the closed light cone, sharing the Bessels.

    At the edges ``|z| = c t`` both are their limits from inside (``log u~ = log(a/(2c))
    - a t + log(1 + a t/2)``, ``v = sign(z) c``); the same formulas as :mod:`kacnb.theory.kac`.
    """
    ct, inside, _, zz, log_scale = _cone(t, z, a, c)
    i0 = torch.special.i0e(zz)
    i1_over_z = _i1e_over_z(zz)
    log_u = math.log(a / (2.0 * c)) + log_scale + torch.log(i0 + a * t * i1_over_z)
    v = torch.where(inside, z / (t + i0 / (a * i1_over_z)), torch.sign(z) * c)
    return log_u, v


def smoothed_kac_1d(
    t: torch.Tensor, y: torch.Tensor, a: float, c: float, std: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log p_s(t, y), J_s(t, y) / p_s(t, y))`` of ``s Z + K(t)`` in 1D (module docstring).

    ``t`` (B, 1) and ``y`` (B, U) are float64 (``y`` relative to the mode's mean); returns
    two (B, U) tensors: the log density per unit length and the velocity (space/time),
    ``|velocity| <= c``, atoms included. ``log p`` is ``-inf`` only where ``|y|/s`` overflows
    (``|y| > 1e150 s``); the velocity is then ``sign(y) c`` (0 at ``t = 0``). Unchecked kernel.
    """
    s = std
    ct = c * t
    center = torch.minimum(torch.maximum(y, -ct), ct)
    lo = torch.maximum(center - _WINDOW_STDS * s, -ct)
    hi = torch.minimum(center + _WINDOW_STDS * s, ct)
    width = hi - lo
    scale = ct / torch.sqrt(torch.clamp(a * t, min=1.0))  # where u~ varies
    need = torch.where(
        width > 0,
        torch.maximum(width / torch.where(scale > 0, scale, 1.0), width / (_PANEL_STDS * s)),
        torch.zeros_like(width),
    )
    panels = int(min(_MAX_PANELS, max(1, math.ceil(float(need.max())))))
    z, w = _composite_gauss_legendre(lo, hi, panels * _PANEL_NODES)  # (B, U, n)
    tz = t.unsqueeze(-1)
    log_norm = -math.log(s * math.sqrt(2.0 * math.pi))

    def log_phi(d: torch.Tensor) -> torch.Tensor:
        return log_norm - 0.5 * (d / s) ** 2

    yy = y.unsqueeze(-1)
    log_u, v_nodes = _log_kac_density_and_velocity(tz.expand_as(z), z, a, c)
    log_nodes = torch.where(
        w > 0, torch.log(w) + log_u + log_phi(yy - z), torch.full_like(z, -math.inf)
    )
    log_atom = -a * t - math.log(2.0)  # (B, 1)
    log_terms = torch.cat(
        [
            (log_atom + log_phi(y - ct)).unsqueeze(-1),
            (log_atom + log_phi(y + ct)).unsqueeze(-1),
            log_nodes,
        ],
        dim=-1,
    )
    speeds = torch.cat(
        [
            torch.full_like(y, c).unsqueeze(-1),
            torch.full_like(y, -c).unsqueeze(-1),
            v_nodes,
        ],
        dim=-1,
    )
    log_p = torch.logsumexp(log_terms, dim=-1)
    finite = torch.isfinite(log_p)
    post = torch.softmax(torch.where(finite.unsqueeze(-1), log_terms, 0.0), dim=-1)
    vel = (post * speeds).sum(-1)
    vel = torch.where(finite, vel, torch.sign(y) * torch.where(ct > 0, c, 0.0))
    return log_p, vel.clamp(-c, c)  # a convex combination: the clamp only removes round-off


# ---------------------------------------------------------------------------- fields
def _times(t, batch: int) -> torch.Tensor:
    """Per-row float64 times (B,) from a number, a 0-dim tensor or a (B,) tensor."""
    tt = torch.as_tensor(t, dtype=torch.float64).reshape(-1).cpu()
    if tt.numel() == 1:
        tt = tt.expand(batch)
    if tt.shape != (batch,):
        raise ValueError(f"t must be a number or have shape ({batch},), got {tuple(tt.shape)}")
    if not bool(torch.isfinite(tt).all()) or bool((tt < 0).any()):
        raise ValueError("t must be finite and >= 0")
    return tt


def _points(x: torch.Tensor, dim: int) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != dim:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a tensor of shape (B, {dim}), got {shape}")
    if bool(torch.isnan(x).any()):
        raise ValueError("x must not contain NaN")
    return x.detach().to(device="cpu", dtype=torch.float64)


class _MixtureField:
    """Shared interface: ``field(t, x)`` is the velocity; times per row or one number."""

    gmm: GaussianMixture
    T: float
    t_min: float

    @property
    def dim(self) -> int:
        return self.gmm.means.shape[1]

    def __call__(self, t, x: torch.Tensor) -> torch.Tensor:
        return self.velocity(t, x)

    def velocity(self, t, x: torch.Tensor) -> torch.Tensor:
        """Exact marginal velocity ``v_t(x)`` (B, d), in the dtype and device of ``x``."""
        x64 = _points(x, self.dim)
        tt = _times(t, x64.shape[0])
        out = torch.cat(
            [
                self._velocity(tt[i : i + _BLOCK_ROWS], x64[i : i + _BLOCK_ROWS])
                for i in range(0, x64.shape[0], _BLOCK_ROWS)
            ]
        )
        return out.to(device=x.device, dtype=x.dtype)

    def log_density(self, t, x: torch.Tensor) -> torch.Tensor:
        """``log p_t(x)`` of ``mu_t`` (B,), float64 on the CPU (per unit area in 2D)."""
        x64 = _points(x, self.dim)
        tt = _times(t, x64.shape[0])
        return torch.cat(
            [
                self._log_density(tt[i : i + _BLOCK_ROWS], x64[i : i + _BLOCK_ROWS])
                for i in range(0, x64.shape[0], _BLOCK_ROWS)
            ]
        )

    def sample(self, t: float, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` exact draws of ``mu_t`` (n, d), float64: mixture starts, then :meth:`draw`."""
        positive_int("n", n)
        x0 = self.gmm.sample(n, generator=generator, dtype=torch.float64)
        return self.draw(t, x0, generator)

    def draw(self, t, x0: torch.Tensor, generator: torch.Generator | None = None):
        raise NotImplementedError

    def latent(self, x0: torch.Tensor, generator: torch.Generator | None = None):
        """``x_T`` given starts ``x0`` (B, d): where generation starts (paper Section 7.1)."""
        return self.draw(self.T, x0, generator)


class KacMixtureField(_MixtureField):
    """Law and exact velocity of ``X_0 + K(t)``, ``X_0 ~ gmm``, componentwise Kac ``(a, c)``.

    ``velocity(t, x)`` is Cor 15 [95] with the per-mode velocities of Thm 14 [93] and the
    atoms (see the module docstring); ``|v_i| <= c``. ``t`` is a number or per-row times
    (B,) in ``[0, inf)`` (the path lives on ``[0, T]``); ``x`` is (B, d).
    """

    def __init__(self, gmm: GaussianMixture, a: float, c: float, T: float = 1.0):
        self.gmm = gmm
        self.a = positive_scalar("a", a)
        self.c = positive_scalar("c", c)
        self.T = positive_scalar("T", T)
        self.t_min = 0.0
        self.std = positive_scalar("gmm.std", gmm.std)
        means = gmm.means.to(device="cpu", dtype=torch.float64)
        self._axes = [torch.unique(means[:, i], return_inverse=True) for i in range(self.dim)]
        self._log_w = torch.log(gmm.weights.to(device="cpu", dtype=torch.float64))

    def __repr__(self) -> str:
        return f"KacMixtureField(a={self.a:g}, c={self.c:g}, T={self.T:g}, std={self.std:g})"

    def _per_mode(self, t: torch.Tensor, x: torch.Tensor):
        """Per-mode log densities (B, K) and velocities (B, K, d)."""
        logs, vels = [], []
        for i, (values, inverse) in enumerate(self._axes):
            lp, v = smoothed_kac_1d(
                t[:, None], x[:, i : i + 1] - values[None], self.a, self.c, self.std
            )
            logs.append(lp.clamp_min(_LOG_FLOOR)[:, inverse])
            vels.append(v[:, inverse])
        return sum(logs) + self._log_w, torch.stack(vels, dim=-1)

    def _velocity(self, t, x):
        log_k, v_k = self._per_mode(t, x)
        v = (torch.softmax(log_k, dim=1).unsqueeze(-1) * v_k).sum(1)
        return v.clamp(-self.c, self.c)  # round-off of the convex combination

    def _log_density(self, t, x):
        return torch.logsumexp(self._per_mode(t, x)[0], dim=1)

    def draw(self, t, x0: torch.Tensor, generator: torch.Generator | None = None):
        """``x0 + K(t)`` for starts ``x0`` (B, d) (the draw order of ``KacPath.latent``)."""
        tt = _times(t, x0.shape[0]).to(device=x0.device, dtype=x0.dtype)
        return x0 + kac_sample(tt, self.a, self.c, dim=x0.shape[1], generator=generator)


class DiffusionMixtureField(_MixtureField):
    """Law and exact velocity of ``X_0 + sigma W(t)``, ``X_0 ~ gmm``, on ``[t_min, T]``.

    ``mu_t`` is the mixture with variances ``s^2 + sigma^2 t``; the velocity is
    :func:`kacnb.experiments.truncation.diffusion_velocity` (``-(sigma^2/2) grad log p_t``).
    ``t_min`` is
    the truncation ``eps`` where generation stops (0 allowed for evaluation).
    """

    def __init__(self, gmm: GaussianMixture, sigma: float = 1.0, T: float = 1.0, t_min=0.0):
        self.gmm = gmm
        self.sigma = positive_scalar("sigma", sigma)
        self.T = positive_scalar("T", T)
        self.t_min = float(t_min)
        if not 0.0 <= self.t_min < self.T:
            raise ValueError(f"t_min must lie in [0, T), got {t_min!r}")
        self._v = diffusion_velocity(gmm, self.sigma)

    def __repr__(self) -> str:
        return f"DiffusionMixtureField(sigma={self.sigma:g}, T={self.T:g}, t_min={self.t_min:g})"

    def _velocity(self, t, x):
        return self._v(t, x)

    def _log_density(self, t, x):
        var = (self.gmm.std**2 + self.sigma**2 * t)[:, None]  # (B, 1)
        means = self.gmm.means.to(x)
        sq = (x[:, None, :] - means[None]).pow(2).sum(-1)
        log_norm = -0.5 * self.dim * torch.log(2.0 * math.pi * var)
        comp = log_norm - sq / (2.0 * var) + torch.log(self.gmm.weights.to(x))[None]
        return torch.logsumexp(comp, dim=1)

    def draw(self, t, x0: torch.Tensor, generator: torch.Generator | None = None):
        """``x0 + sigma sqrt(t) Z`` for starts ``x0`` (B, d) (the draw of ``DiffusionPath``)."""
        tt = _times(t, x0.shape[0]).to(device=x0.device, dtype=x0.dtype)
        z = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        return x0 + self.sigma * torch.sqrt(tt)[:, None] * z


class RectifiedMixtureField(_MixtureField):
    """Law and exact velocity of ``(1 - t/T) X_0 + (t/T) sigma Z``, ``X_0 ~ gmm`` (the
    rectified-flow / OT-CFM baseline, :class:`kacnb.cfm.paths.RectifiedFlowPath`).

    With ``u = t/T``, ``mu_t`` is the mixture of ``N((1 - u) m_k, v I)``,
    ``v = (1 - u)^2 s^2 + u^2 sigma^2``; the velocity is the conditional mean of the target
    ``(sigma Z - X_0)/T`` given ``X_t = x`` (Cor 15's construction for this path): with the
    posterior weights ``w_k(x)`` and the per-mode posterior mean of ``X_0``,
    ``E[X_0 | x, k] = m_k + (1 - u) s^2 / v (x - (1 - u) m_k)``, and
    ``sigma Z = (x - (1 - u) X_0)/u``. Near a Dirac-like mode it is ``(x - m_k)/t`` (paper
    Section 3): bounded along the flow, Lipschitz constant ``1/t``. Defined for
    ``0 < t <= T``.
    """

    def __init__(self, gmm: GaussianMixture, sigma: float = 1.0, T: float = 1.0):
        self.gmm = gmm
        self.sigma = positive_scalar("sigma", sigma)
        self.T = positive_scalar("T", T)
        self.t_min = 0.0
        self.std = float(gmm.std)

    def __repr__(self) -> str:
        return f"RectifiedMixtureField(sigma={self.sigma:g}, T={self.T:g}, std={self.std:g})"

    def _parts(self, t, x):
        u = (t / self.T)[:, None]  # (B, 1)
        var = (1.0 - u) ** 2 * self.std**2 + u**2 * self.sigma**2  # (B, 1)
        means = self.gmm.means.to(x)
        centre = (1.0 - u)[:, :, None] * means[None]  # (B, K, d)
        sq = (x[:, None, :] - centre).pow(2).sum(-1)  # (B, K)
        log_comp = (
            -0.5 * self.dim * torch.log(2.0 * math.pi * var)
            - sq / (2.0 * var)
            + torch.log(self.gmm.weights.to(x))[None]
        )
        return u, var, means, centre, log_comp

    def _velocity(self, t, x):
        if bool((t <= 0).any()):
            raise ValueError("the rectified-flow field is defined for t > 0 only")
        u, var, means, centre, log_comp = self._parts(t, x)
        w = torch.softmax(log_comp, dim=1)[..., None]  # (B, K, 1)
        gain = ((1.0 - u) * self.std**2 / var)[:, :, None]  # (B, 1, 1)
        x0_k = means[None] + gain * (x[:, None, :] - centre)  # E[X_0 | x, k]
        x0 = (w * x0_k).sum(1)
        noise = (x - (1.0 - u) * x0) / u  # E[sigma Z | x]
        return (noise - x0) / self.T

    def _log_density(self, t, x):
        return torch.logsumexp(self._parts(t, x)[-1], dim=1)

    def draw(self, t, x0: torch.Tensor, generator: torch.Generator | None = None):
        """``(1 - t/T) x0 + (t/T) sigma Z`` for starts ``x0`` (B, d) (the path's draw)."""
        tt = _times(t, x0.shape[0]).to(device=x0.device, dtype=x0.dtype)[:, None] / self.T
        z = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        return (1.0 - tt) * x0 + tt * self.sigma * z


def exact_field(path, gmm: GaussianMixture | None = None) -> _MixtureField:
    """The exact field of a path of :mod:`kacnb.cfm.paths` for the mixture ``gmm`` (default grid).

    ``KacPath`` gives :class:`KacMixtureField` with its ``(a, c, T)``; ``DiffusionPath`` gives
    :class:`DiffusionMixtureField` with its ``sigma``, ``T`` and ``t_min = eps``. Other paths
    ``RectifiedFlowPath`` gives :class:`RectifiedMixtureField`. The mean-reverting path is
    refused with a ``ValueError``.
    """
    from ..cfm.paths import DiffusionPath, KacPath, MeanRevertingKacPath, RectifiedFlowPath

    gmm = gmm if gmm is not None else grid_mixture()
    if isinstance(path, KacPath) and not isinstance(path, MeanRevertingKacPath):
        return KacMixtureField(gmm, path.kac.a, path.kac.c, T=path.T)
    if isinstance(path, DiffusionPath):
        return DiffusionMixtureField(gmm, path.sigma, T=path.T, t_min=path.t_min)
    if isinstance(path, RectifiedFlowPath):
        return RectifiedMixtureField(gmm, path.sigma, T=path.T)
    raise ValueError(
        f"no exact field for {path!r}: only KacPath, DiffusionPath and RectifiedFlowPath"
    )


def speed_and_lipschitz(
    field: _MixtureField, t: float, n: int, generator: torch.Generator | None = None
) -> tuple[float, float]:
    """Medians over ``n`` exact draws of ``mu_t`` of the speed ``|v_t(x)|`` and of the local
    Lipschitz constant, the spectral norm of ``dv_t/dx`` by central differences with step
    ``1e-3 t`` (the fields are smooth on the scale ``t`` of the spread around a mode)."""
    x = field.sample(t, n, generator)
    h = 1e-3 * t
    cols = []
    for i in range(field.dim):
        e = torch.zeros(field.dim, dtype=torch.float64)
        e[i] = h
        cols.append((field.velocity(t, x + e) - field.velocity(t, x - e)) / (2 * h))
    lip = torch.linalg.matrix_norm(torch.stack(cols, dim=-1), ord=2)
    return float(field.velocity(t, x).norm(dim=1).median()), float(lip.median())


# ---------------------------------------------------------------------------- (a) field error
def _model_caller(model) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``f(t, x)`` evaluating ``model`` in its own dtype/device, returning float64 CPU."""
    param = None
    if isinstance(model, torch.nn.Module):
        param = next(iter(model.parameters()), None)

    def call(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if param is not None:
            t, x = t.to(param), x.to(param)
        with torch.no_grad():
            out = model(t, x)
        return out.detach().to(device="cpu", dtype=torch.float64)

    return call


def _mean_se(values: torch.Tensor) -> tuple[float, float]:
    n = values.numel()
    se = float(values.std() / math.sqrt(n)) if n > 1 else math.nan
    return float(values.mean()), se


def field_error(
    model,
    exact: _MixtureField,
    times: Sequence[float],
    n: int,
    generator: torch.Generator | None = None,
) -> list[dict]:
    """``E_{mu_t} |v_theta(t, X) - v_t(X)|^2`` at each time, ``X`` exact draws of ``mu_t``.

    ``model`` is a network ``v_theta(t, x)`` (per-row times (B,), points (B, d); evaluated in
    its parameters' dtype and device) or any such callable. For each ``t`` in ``times``
    (within ``[exact.t_min, exact.T]``), ``n`` points are drawn with :meth:`sample`. Returns
    one dict per time: ``t``, ``mse`` and its Monte-Carlo standard error ``se``, ``ref`` =
    ``E|v_t|^2`` (the error of the zero field, a scale) with ``ref_se``, and ``rel`` =
    ``sqrt(mse / ref)``. Units: (space/time)^2.
    """
    positive_int("n", n)
    call = _model_caller(model)
    rows = []
    for t in times:
        t = float(t)
        if not exact.t_min <= t <= exact.T:
            raise ValueError(f"times must lie in [{exact.t_min:g}, {exact.T:g}], got {t:g}")
        x = exact.sample(t, n, generator)
        tt = torch.full((n,), t, dtype=torch.float64)
        v = exact.velocity(tt, x)
        err = (call(tt, x) - v).pow(2).sum(1)
        mse, se = _mean_se(err)
        ref, ref_se = _mean_se(v.pow(2).sum(1))
        rel = math.sqrt(mse / ref) if ref > 0 else math.nan
        rows.append({"t": t, "mse": mse, "se": se, "ref": ref, "ref_se": ref_se, "rel": rel})
    return rows


# ---------------------------------------------------------------------------- (b) oracle
def oracle_samples(
    exact: _MixtureField,
    x0: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    x_start: torch.Tensor | None = None,
    method: str = "dopri5",
    steps: int | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    n_saved: int = 2,
    return_trajectory: bool = False,
) -> SampleResult:
    """What a perfect network generates: ``dx/dt = v_t(x)`` from ``T`` down to ``t_min``.

    The latent is ``x_start`` if given, else ``exact.latent(x0)`` (``x0 + K(T)`` or
    ``x0 + sigma W(T)``; same draw as the path's ``latent`` for the same generator state).
    Integration uses :func:`kacnb.cfm.sampling.integrate` with the given solver settings, so
    ``nfe`` counts field evaluations exactly as for the trained models (fixed-step methods
    take ``steps``). Computed in the dtype of the latent (float64 recommended).
    """
    if x_start is None:
        if x0 is None:
            raise ValueError("pass the mixture starts x0 or the latent x_start")
        x_start = exact.latent(x0, generator)
    t_min = exact.t_min

    def velocity(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        # adaptive solvers probe slightly beyond the end time: hold the field there
        return exact(t.clamp_min(t_min), x)

    return integrate(
        velocity,
        x_start,
        exact.T,
        exact.t_min,
        method=method,
        steps=steps,
        rtol=rtol,
        atol=atol,
        n_saved=n_saved,
        return_trajectory=return_trajectory,
    )


# ---------------------------------------------------------------------------- (c) Kac vs heat
def kac_vs_diffusion_distance(
    pairs: Sequence[tuple[float, float]],
    times: Sequence[float],
    n: int,
    generator: torch.Generator | None = None,
    gmm: GaussianMixture | None = None,
) -> list[dict]:
    """L2(mu_t) distance between the exact Kac field and the diffusion field, ``sigma^2 = c^2/a``.

    For each ``(a, c)`` in ``pairs`` and ``t`` in ``times`` (> 0), ``n`` exact draws of the
    Kac law ``mu_t`` (mixture ``gmm``, default the grid) estimate
    ``D = (E_{mu_t} |v^Kac_t - v^heat_t|^2)^(1/2)``. Thm 9 / Remark 10 (the densities
    converge as ``a, c -> inf`` with ``c^2/a`` fixed) and Section 7.1 ("large (a, c) give
    diffusion-like results") predict that ``D`` falls as ``(a, c)`` grows. One dict per
    (pair, time): ``a``, ``c``, ``sigma``, ``t``, ``dist`` with standard error ``se`` (delta
    method), ``kac_norm`` and ``heat_norm`` (L2(mu_t) norms of both fields) and
    ``rel = dist / heat_norm``. Units: space/time.
    """
    positive_int("n", n)
    gmm = gmm if gmm is not None else grid_mixture()
    rows = []
    for a, c in pairs:
        kac = KacMixtureField(gmm, a, c)
        heat = DiffusionMixtureField(gmm, sigma=kac.c / math.sqrt(kac.a))
        for t in times:
            t = positive_scalar("t", t)
            x = kac.sample(t, n, generator)
            vk, vh = kac.velocity(t, x), heat.velocity(t, x)
            msq, msq_se = _mean_se((vk - vh).pow(2).sum(1))
            dist = math.sqrt(msq)
            kn = math.sqrt(float(vk.pow(2).sum(1).mean()))
            hn = math.sqrt(float(vh.pow(2).sum(1).mean()))
            rows.append(
                {
                    "a": kac.a,
                    "c": kac.c,
                    "sigma": heat.sigma,
                    "t": t,
                    "dist": dist,
                    "se": msq_se / (2.0 * dist) if dist > 0 else math.nan,
                    "kac_norm": kn,
                    "heat_norm": hn,
                    "rel": dist / hn if hn > 0 else math.nan,
                }
            )
    return rows
