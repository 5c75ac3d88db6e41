"""Probability paths for conditional flow matching, behind one small interface (paper Sections 6-7).

A path says how a data point ``x0`` is carried to noise on ``[t_min, T]``:

* ``sample(x0, generator)`` draws ``t ~ U(t_min, T)`` per row, ``x_t`` given ``x0`` and the
  conditional target velocity ``v_t(x_t | x0)``, returned as a :class:`PathSample`;
* ``latent(x0, generator)`` draws ``x_T``, where generation starts;
* ``conditional_velocity(t, x, x0)`` evaluates the target for given points.

Training and sampling code use only this interface, so they never branch on the model.
Data may have any trailing shape ``(B, *event)`` (points ``(B, 2)``, images
``(B, 1, 28, 28)``); every coordinate gets its own independent Kac component (Section 5).

Paths: :class:`KacPath` ``X_t = X_0 + K(t)`` [66] with target ``v(t, K(t))`` (Thm 14);
:class:`MeanRevertingKacPath` ``X_t = f(t) X_0 + K(t)`` with target
``f'(t) x0 + v(t, K(t))`` [98-99]; :class:`DiffusionPath`
``X_t = X_0 + sigma W(t)`` with target ``sigma Z / (2 sqrt t)`` on ``[eps, T]``.

**Training targets come from the sampled noise.** ``sample`` evaluates the target on the
noise it drew (``K(t)``, ``Z``), never on ``x_t - x0`` (docs/paper-notes.md). In float32 the
round trip ``(x0 + k) - x0`` moves an atom ``|k| = c t`` (probability ``exp(-a t)``) inside
the light cone, where the interior formula of [41] gives about ``c t/(t + 2/a)`` instead of
``c``; for data of size ~10 at ``t = 1e-3`` that corrupted about a fifth of the targets.
``conditional_velocity(t, x, x0)`` keeps its meaning for given evaluation points.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._checks import positive_scalar
from ..theory.kac import Kac, LinearSchedule, kac_sample, kac_velocity

__all__ = ["PathSample", "KacPath", "MeanRevertingKacPath", "DiffusionPath", "RectifiedFlowPath"]


@dataclass(frozen=True)
class PathSample:
    """One training draw: times ``t`` (B,); start ``x0``, point ``xt``, ``target`` (B, ...)."""

    t: torch.Tensor
    x0: torch.Tensor
    xt: torch.Tensor
    target: torch.Tensor


#: Range of ``c T`` and ``a T`` of a Kac path: training draws in float32 (:mod:`kacnb.theory.kac`),
#: where ``(c t)^2`` overflows beyond ``c t = 1.8e19`` (NaN targets) and underflows below
#: ``c t ~ 1e-19``; and the drawn share ``2Y - 1 = (G1 - G2)/(G1 + G2)`` of the exact sampler
#: is quantised to about ``6e-8 sqrt(a t)`` of its spread (0.6% at ``a t = 1e10``; beyond
#: 9.2e18 ``torch.poisson`` overflows and every draw becomes an atom). The paper's pairs have
#: ``c T`` from 1 to 150 and ``a T`` from 1 to 4500.
MAX_CT = 1e18
MIN_CT = 1e-9
MAX_AT = 1e10
MIN_AT = 1e-30


def check_kac_range(kac: Kac, T: float) -> None:
    """``ValueError`` unless ``MIN_CT <= c T <= MAX_CT`` and ``MIN_AT <= a T <= MAX_AT``, the
    range in which float32 training draws finite, exact targets."""
    ct, at = kac.c * T, kac.a * T
    if not (MIN_CT <= ct <= MAX_CT and MIN_AT <= at <= MAX_AT):
        raise ValueError(
            f"a Kac path with a={kac.a:g}, c={kac.c:g}, T={T:g} is beyond the float32 training "
            f"range: c T must be in [{MIN_CT:g}, {MAX_CT:g}], a T in [{MIN_AT:g}, {MAX_AT:g}], "
            f"got c T = {ct:g}, a T = {at:g}"
        )


def _expand_time(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape per-row times (B,) to broadcast over ``x`` of shape (B, *event)."""
    return t.reshape(t.shape + (1,) * (x.ndim - t.ndim))


class _Path:
    """Shared logic: the time interval and the training draw."""

    T: float
    t_min: float = 0.0

    def sample_times(self, n: int, like: torch.Tensor, generator=None) -> torch.Tensor:
        u = torch.rand(n, generator=generator, device=like.device, dtype=like.dtype)
        return self.t_min + (self.T - self.t_min) * u

    def sample(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> PathSample:
        """Draw ``t ~ U(t_min, T)``, ``x_t | x0`` and the target ``v_t(x_t | x0)``.

        The target is computed from the sampled noise itself (:meth:`draw`), exact in the
        working dtype.
        """
        t = self.sample_times(x0.shape[0], x0, generator)
        xt, target = self.draw(t, x0, generator)
        return PathSample(t=t, x0=x0, xt=xt, target=target)

    def draw(
        self, t: torch.Tensor, x0: torch.Tensor, generator=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x_t, v_t(x_t | x0))`` for times ``t`` (B,) and starts ``x0`` (B, *event).

        The target is a function of the drawn noise, not of ``x_t - x0``.
        """
        raise NotImplementedError

    def sample_at(self, t: torch.Tensor, x0: torch.Tensor, generator=None) -> torch.Tensor:
        """Draw ``x_t`` given ``x0`` at times ``t`` (B,) in ``[t_min, T]``.

        Raises ``ValueError`` for an empty batch, a shape mismatch, or times outside the
        path's interval (checked here, not in the training draw, whose times are drawn inside).
        """
        self.check_draw(t, x0)
        return self.draw(t, x0, generator)[0]

    def check_draw(self, t: torch.Tensor, x0: torch.Tensor) -> None:
        """Validate a request for ``x_t | x0``: see :meth:`sample_at`."""
        if not isinstance(x0, torch.Tensor) or not isinstance(t, torch.Tensor):
            raise TypeError("t and x0 must be tensors")
        if x0.ndim < 1 or x0.shape[0] == 0:
            raise ValueError(f"x0 must be a non-empty batch (B, ...), got shape {tuple(x0.shape)}")
        if t.shape != (x0.shape[0],):
            raise ValueError(f"t must have shape ({x0.shape[0]},), got {tuple(t.shape)}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError("t must be finite (no NaN or inf)")
        lo, hi = float(t.min()), float(t.max())
        if lo < self.t_min or hi > self.T:
            raise ValueError(
                f"t must lie in [t_min, T] = [{self.t_min:g}, {self.T:g}] for {self!r}, "
                f"got values in [{lo:g}, {hi:g}]"
            )

    def conditional_velocity(self, t, x, x0) -> torch.Tensor:
        raise NotImplementedError

    def latent(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``x_T`` (the generation start) for starts ``x0`` (B, *event)."""
        t = torch.full((x0.shape[0],), self.T, device=x0.device, dtype=x0.dtype)
        return self.sample_at(t, x0, generator)


class KacPath(_Path):
    """Standard Kac path ``X_t = X_0 + K(t)`` on ``[0, T]`` [66], target ``v(t, x - x0)`` [93].

    The latent ``x_T = x0 + K(T)`` depends on the data (the 2D experiment draws ``x0`` from
    the mixture at inference, paper Section 7).
    """

    def __init__(self, kac: Kac, T: float = 1.0, noise_law=None):
        self.kac = kac
        self.T = positive_scalar("T", T)
        check_kac_range(kac, self.T)
        if noise_law is not None and (noise_law.a, noise_law.c) != (kac.a, kac.c):
            raise ValueError(
                f"noise_law {noise_law!r} is for another pair than a={kac.a:g}, c={kac.c:g}"
            )
        #: ``None``: the exact law of ``K(t)`` [30-31]. Otherwise a law with
        #: ``sample(t, dim, generator)`` (float64 draws, shape ``t.shape + (dim,)``), e.g.
        #: :func:`kacnb.theory.prefix_law.prefix_law`: the path then moves *that* law while
        #: its target stays the exact velocity [41] of the drawn noise, as a flow trained
        #: with the authors' sampler before its fix did.
        self.noise_law = noise_law

    def __repr__(self) -> str:
        law = "" if self.noise_law is None else f", noise_law={self.noise_law!r}"
        return f"KacPath(a={self.kac.a:g}, c={self.kac.c:g}, T={self.T:g}{law})"

    def _kac_noise(self, t: torch.Tensor, x0: torch.Tensor, generator) -> torch.Tensor:
        """``K(t)`` per coordinate, shape of ``x0``: in ``x0``'s dtype from the exact sampler,
        or float64 from :attr:`noise_law`."""
        dim = x0[0].numel()
        if self.noise_law is None:
            flat = kac_sample(t, self.kac.a, self.kac.c, dim=dim, generator=generator)
        else:
            flat = self.noise_law.sample(t.to(torch.float64), dim=dim, generator=generator)
        return flat.reshape(x0.shape)

    def draw(self, t, x0, generator=None):
        k = self._kac_noise(t, x0, generator)
        # v(t, k) on the drawn k, in k's dtype: an atom (|k| = c t exactly) gets exactly
        # +-c [41]; float64 noise is rounded to the working dtype only after that.
        v = kac_velocity(_expand_time(t.to(k.dtype), k), k, self.kac.a, self.kac.c)
        return x0 + k.to(x0.dtype), v.to(x0.dtype)

    def conditional_velocity(self, t, x, x0):
        return kac_velocity(_expand_time(t, x), x - x0, self.kac.a, self.kac.c)


class MeanRevertingKacPath(KacPath):
    """Mean-reverting Kac path ``X_t = f(t) X_0 + K(t)`` (Remark 17, [98-99]).

    ``schedule`` has ``value(t)`` and ``derivative(t)`` with ``f(0) = 1``, ``f(T) = 0``
    (default :class:`~kacnb.theory.kac.LinearSchedule`, ``f(t) = 1 - t/T``). The latent is ``K(T)``
    whatever the data.
    """

    def __init__(self, kac: Kac, T: float = 1.0, schedule=None):
        super().__init__(kac, T)
        self.schedule = schedule if schedule is not None else LinearSchedule(self.T)

    def __repr__(self) -> str:
        return f"MeanRevertingKacPath(a={self.kac.a:g}, c={self.kac.c:g}, T={self.T:g})"

    def draw(self, t, x0, generator=None):
        te = _expand_time(t, x0)
        f, df = self.schedule.value(te), self.schedule.derivative(te)
        k = self._kac_noise(t, x0, generator)
        return f * x0 + k, df * x0 + kac_velocity(te, k, self.kac.a, self.kac.c)

    def conditional_velocity(self, t, x, x0):
        te = _expand_time(t, x)
        f, df = self.schedule.value(te), self.schedule.derivative(te)
        return df * x0 + kac_velocity(te, x - f * x0, self.kac.a, self.kac.c)


class DiffusionPath(_Path):
    """Diffusion (heat-flow) path ``X_t = X_0 + sigma W(t)`` on ``[eps, T]`` (paper Section 7).

    The conditional velocity ``(x - x0)/(2t)`` explodes as ``t -> 0``, so training and
    generation are truncated at ``t_min = eps > 0``.
    """

    def __init__(self, sigma: float = 1.0, T: float = 1.0, eps: float = 1e-3):
        self.sigma = positive_scalar("sigma", sigma)
        self.T = positive_scalar("T", T)
        self.t_min = positive_scalar("eps", eps)
        if self.t_min >= self.T:
            raise ValueError(f"eps must be < T, got eps={eps}, T={T}")

    def __repr__(self) -> str:
        return f"DiffusionPath(sigma={self.sigma:g}, T={self.T:g}, eps={self.t_min:g})"

    def draw(self, t, x0, generator=None):
        z = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        root = torch.sqrt(_expand_time(t, x0))
        # (x - x0)/(2t) with x - x0 = sigma sqrt(t) z, written without the subtraction
        return x0 + self.sigma * root * z, (0.5 * self.sigma) * z / root

    def conditional_velocity(self, t, x, x0):
        return (x - x0) / (2.0 * _expand_time(t, x))


class RectifiedFlowPath(_Path):
    """Linear interpolation to a Gaussian, ``X_t = (1 - t/T) X_0 + (t/T) sigma Z`` on ``[0, T]``.

    The conditional-OT / rectified-flow path that today's flow-matching libraries use by
    default, as a baseline for the Kac paths. Its target is the pathwise derivative
    ``(sigma Z - x0)/T``, computed from the drawn ``Z``; the latent ``sigma Z`` needs no data.
    Near Dirac-like data the marginal velocity behaves like ``(x - m)/t`` as ``t -> 0``: its
    Lipschitz constant explodes at the data end (paper Section 3, the coupling flow read
    backwards), although ``|v|`` stays bounded in mean square.
    """

    def __init__(self, T: float = 1.0, sigma: float = 1.0):
        self.T = positive_scalar("T", T)
        self.sigma = positive_scalar("sigma", sigma)

    def __repr__(self) -> str:
        return f"RectifiedFlowPath(T={self.T:g}, sigma={self.sigma:g})"

    def draw(self, t, x0, generator=None):
        z = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        s = _expand_time(t, x0) / self.T
        noise = self.sigma * z
        return (1.0 - s) * x0 + s * noise, (noise - x0) / self.T

    def conditional_velocity(self, t, x, x0):
        # from x = (1 - s) x0 + s sigma z: sigma z - x0 = (x - x0)/s (undefined at t = 0)
        s = _expand_time(t, x) / self.T
        return (x - x0) / (s * self.T)
