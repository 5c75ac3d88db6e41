"""Kac's insertion in d dimensions (Thm 6 [56-61], Remark 7, Lemma 8 [62-64]; paper Sections 5-6).

If ``w(s, x)`` solves the undamped wave equation ``w_ss = c^2 Lap w`` with ``w(0) = f0``,
``w_s(0) = 0`` (extended evenly in ``s``), then

    u(t, x) = E[ w(T(t), x) ],   T(t) = K(t)/c   (K the 1D Kac process, [25-26])

solves the damped wave equation ``u_tt + 2a u_t = c^2 Lap u`` with ``u(0) = f0``,
``u_t(0) = 0`` (Thm 6). Everything here is for a radial initial density, the Gaussian
``f0(x) = (2 pi s0^2)^(-d/2) exp(-|x|^2 / (2 s0^2))``, evaluated on a radius grid ``r``:

* ``d = 3``, Kirchhoff: ``w = d/ds [s M_{cs} f0]`` with the spherical mean; for a radial
  profile ``g`` this is ``w(s, r) = ((r + cs) g(r + cs) + (r - cs) g(|r - cs|)) / (2 r)``
  (:func:`wave_3d`);
* ``d = 2``, Poisson:
  ``w(s, x) = d/ds [ s/(2 pi) int_{|z|<1} f0(x + c s z) / sqrt(1 - |z|^2) dz ]``, evaluated
  with ``|z| = sin(alpha)`` (smooth integrand) by Gauss-Legendre in ``alpha`` and the
  periodic trapezoid rule in the polar angle (:func:`wave_2d`);
* an independent reference by the Fourier (Hankel) transform with any radial multiplier
  ``m(k)`` (:func:`radial_fourier`): ``m = cos(c k s)`` for the wave, and
  ``m = exp(-a t)(cosh(omega t) + a sinh(omega t)/omega)``, ``omega = sqrt(a^2 - c^2 k^2)``,
  for the damped wave (:func:`telegraph_multiplier`), which is how Thm 6 is checked.

Remark 7: for ``d > 1`` the wave solution of a nonnegative ``f0`` takes negative values, and
so does ``u``: the insertion is not the density of a particle. Lemma 8: inserting a scaled
Wiener process ``tau W(t)`` instead of ``T(t)`` gives the heat solution; from ``d = 1``,
where ``E[w(tau W(t), x)] = E[f0(x + c tau W(t))]`` is the density of ``X0 + c tau W(t)``,
matching ``X0 + sigma W(t)`` needs ``tau = sigma / c`` (``= 1/sqrt(a)`` for the diffusion
scaling ``sigma^2 = c^2/a`` of Thm 9); the same holds in every ``d`` because
``E cos(c |k| tau W(t)) = exp(-c^2 tau^2 |k|^2 t / 2)`` (:func:`lemma8_tau`).

Units: densities per unit of d-dimensional volume; ``s``, ``t`` times; ``r`` lengths.
All functions work in float64 on the CPU (small radial problems).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.special as sp
import torch

from .._checks import positive_int, positive_scalar
from .telegraph import kac_cone_quadrature

__all__ = [
    "RadialGaussian",
    "wave_3d",
    "wave_2d",
    "wave",
    "radial_fourier",
    "telegraph_multiplier",
    "kac_insertion",
    "brownian_insertion",
    "lemma8_tau",
    "heat_radial",
    "radial_mass",
    "radial_damped_wave_residual",
]

F64 = torch.float64


@dataclass(frozen=True)
class RadialGaussian:
    """``f0(x) = (2 pi s0^2)^(-d/2) exp(-|x|^2/(2 s0^2))`` on ``R^d``: a density, radial."""

    dim: int
    s0: float = 1.0

    def __post_init__(self):
        if self.dim not in (1, 2, 3):
            raise ValueError(f"dim must be 1, 2 or 3, got {self.dim!r}")
        positive_scalar("s0", self.s0)

    def profile(self, rho):
        """``g(rho) = f0(x)`` for ``|x| = rho`` (even in ``rho``)."""
        rho = torch.as_tensor(rho, dtype=F64)
        return (2 * math.pi * self.s0**2) ** (-self.dim / 2) * torch.exp(
            -(rho**2) / (2 * self.s0**2)
        )

    def dprofile(self, rho):
        """``g'(rho)``."""
        rho = torch.as_tensor(rho, dtype=F64)
        return -rho / self.s0**2 * self.profile(rho)

    def fourier(self, k):
        """``f0^(k) = exp(-s0^2 k^2 / 2)`` (integral of ``f0(x) e^{-i k x}``)."""
        return np.exp(-(self.s0**2) * np.asarray(k, dtype=np.float64) ** 2 / 2)


def _grid(s, r):
    s = torch.as_tensor(s, dtype=F64).reshape(-1, 1)
    r = torch.as_tensor(r, dtype=F64).reshape(1, -1)
    return s.abs(), r  # the wave solution is extended evenly in s


def wave_3d(s, r, f0: RadialGaussian, c: float) -> torch.Tensor:
    """Kirchhoff's solution in ``d = 3`` for radial ``f0``: shape ``(len(s), len(r))``.

    ``w(s, r) = ((r + cs) g(r + cs) + (r - cs) g(|r - cs|)) / (2r)`` (from
    ``w = d/ds [s M_{cs} f0]``, [56-61]); at ``r = 0`` the limit ``g(cs) + cs g'(cs)``.
    """
    c = positive_scalar("c", c)
    s, r = _grid(s, r)
    cs = c * s
    g = f0.profile
    small = r < 1e-7 * max(f0.s0, 1e-300)
    r_safe = torch.where(small, torch.ones_like(r), r)
    full = ((r_safe + cs) * g(r_safe + cs) + (r_safe - cs) * g((r_safe - cs).abs())) / (2 * r_safe)
    limit = g(cs) + cs * f0.dprofile(cs)
    return torch.where(small, limit.expand_as(full), full)


def wave_2d(s, r, f0: RadialGaussian, c: float, n_alpha: int = 192, n_phi: int = 192):
    """Poisson's solution in ``d = 2`` for radial ``f0``: shape ``(len(s), len(r))``.

    ``w(s, x) = (1/2pi) int_{|z|<1} [f0(p) + c s z . grad f0(p)] / sqrt(1 - |z|^2) dz`` with
    ``p = x + c s z`` (the ``s``-derivative of Poisson's formula). With ``|z| = sin(alpha)``
    the weight becomes ``sin(alpha) d alpha d phi``; ``n_alpha`` Gauss-Legendre nodes on
    ``[0, pi/2]``, ``n_phi`` trapezoid nodes in ``phi`` (exact for trigonometric polynomials
    of degree below ``n_phi``). Accurate while ``f0`` is resolved at scale ``c s``: raise the
    node counts when ``c s / s0`` is large.
    """
    c = positive_scalar("c", c)
    positive_int("n_alpha", n_alpha)
    positive_int("n_phi", n_phi)
    s, r = _grid(s, r)
    nodes, weights = np.polynomial.legendre.leggauss(n_alpha)
    alpha = torch.as_tensor((nodes + 1) * math.pi / 4, dtype=F64)
    w_alpha = torch.as_tensor(weights * math.pi / 4, dtype=F64) * torch.sin(alpha)
    phi = torch.arange(n_phi, dtype=F64) * (2 * math.pi / n_phi)
    w_phi = 2 * math.pi / n_phi
    zx = (torch.sin(alpha)[:, None] * torch.cos(phi)[None, :]).reshape(-1)
    zy = (torch.sin(alpha)[:, None] * torch.sin(phi)[None, :]).reshape(-1)
    wz = (w_alpha[:, None] * w_phi).expand(n_alpha, n_phi).reshape(-1)
    out = torch.empty(s.shape[0], r.shape[1], dtype=F64)
    for i in range(s.shape[0]):
        cs = c * s[i, 0]
        px = r.reshape(-1, 1) + cs * zx[None, :]  # x = (r, 0)
        py = cs * zy[None, :].expand_as(px)
        rho = torch.sqrt(px * px + py * py)
        g = f0.profile(rho)
        # z . grad f0(p) = g'(rho) (z . p)/rho = -(z . p) g(rho)/s0^2 for the Gaussian
        z_dot_p = zx[None, :] * px + zy[None, :] * py
        integrand = g - cs * z_dot_p * g / f0.s0**2
        out[i] = (integrand * wz[None, :]).sum(1) / (2 * math.pi)
    return out


def wave(s, r, f0: RadialGaussian, c: float) -> torch.Tensor:
    """The wave solution for ``f0.dim`` = 1 (d'Alembert), 2 (Poisson) or 3 (Kirchhoff)."""
    if f0.dim == 3:
        return wave_3d(s, r, f0, c)
    if f0.dim == 2:
        return wave_2d(s, r, f0, c)
    s, r = _grid(s, r)
    return 0.5 * (f0.profile(r + c * s) + f0.profile(r - c * s))


def radial_fourier(
    multiplier: Callable[[np.ndarray], np.ndarray], r, f0: RadialGaussian, n_k: int = 800
) -> np.ndarray:
    """``(2 pi)^-d int f0^(k) m(|k|) e^{i k.x} dk`` at ``|x| = r`` (radial ``m``), shape ``(n_r,)``.

    Hankel forms: ``d = 1``: ``(1/pi) int_0^inf f0^ m cos(k r) dk``; ``d = 2``:
    ``(1/2pi) int f0^ m J0(k r) k dk``; ``d = 3``: ``(1/2pi^2) int f0^ m sin(k r)/(k r) k^2 dk``.
    Gauss-Legendre with ``n_k`` nodes on ``[0, k_max]``, ``f0^(k_max) = e^-40``.
    """
    r = np.asarray(r, dtype=np.float64).reshape(-1)
    k_max = math.sqrt(80.0) / f0.s0
    nodes, weights = np.polynomial.legendre.leggauss(n_k)
    k = (nodes + 1) * k_max / 2
    wk = weights * k_max / 2 * f0.fourier(k) * multiplier(k)
    kr = k[None, :] * r[:, None]
    if f0.dim == 1:
        kern, pref = np.cos(kr), 1 / math.pi
    elif f0.dim == 2:
        kern, pref = sp.j0(kr) * k[None, :], 1 / (2 * math.pi)
    else:
        kern, pref = np.sinc(kr / math.pi) * k[None, :] ** 2, 1 / (2 * math.pi**2)
    return pref * (kern * wk[None, :]).sum(1)


def telegraph_multiplier(t: float, k, a: float, c: float) -> np.ndarray:
    """Fourier multiplier of the damped wave equation with ``u_t(0) = 0`` [20-22]:

    ``m(t, k) = e^{-at}(cosh(omega t) + a sinh(omega t)/omega)``, ``omega = sqrt(a^2 - c^2k^2)``
    (cos/sin with ``sqrt(c^2k^2 - a^2)`` above ``c k = a``; ``1 + a t`` times ``e^{-at}`` at it).
    """
    k = np.asarray(k, dtype=np.float64)
    disc = a * a - (c * k) ** 2
    om = np.sqrt(np.abs(disc))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        ep, em = np.exp((om - a) * t), np.exp(-(om + a) * t)
        real = 0.5 * (ep + em) + a * 0.5 * (ep - em) / om
        osc = np.exp(-a * t) * (np.cos(om * t) + a * np.sin(om * t) / om)
    out = np.where(disc > 0, real, osc)
    return np.where(om * t < 1e-8, np.exp(-a * t) * (1 + a * t), out)


def kac_insertion(
    wave_fn: Callable[[torch.Tensor], torch.Tensor], t: float, a: float, c: float, n_quad: int = 256
) -> torch.Tensor:
    """``u(t, .) = E[w(T(t), .)]``, ``T(t) = K(t)/c`` (Thm 6 [56-61]).

    ``wave_fn(s)`` returns ``w`` at times ``s`` (1D tensor) on a fixed radius grid, shape
    ``(len(s), n_r)``. The law of ``K(t)`` [30-31]: atoms ``e^{-at}/2`` at ``+-ct`` (both give
    ``w(t)`` since ``w`` is even in ``s``) and the density ``u~`` on ``(-ct, ct)``, integrated
    with the angle-substituted Gauss-Legendre rule of
    :func:`kacnb.theory.telegraph.kac_cone_quadrature`.
    Returns shape ``(n_r,)``.
    """
    a = positive_scalar("a", a)
    c = positive_scalar("c", c)
    y, wy = kac_cone_quadrature(t, a, c, n_quad, F64, torch.device("cpu"))
    s = torch.cat([torch.tensor([t], dtype=F64), y.abs() / c])
    w = wave_fn(s)
    return math.exp(-a * t) * w[0] + (wy[:, None] * w[1:]).sum(0)


def brownian_insertion(
    wave_fn: Callable[[torch.Tensor], torch.Tensor], t: float, tau: float, n_nodes: int = 192
) -> torch.Tensor:
    """``E[w(tau W(t), .)]`` with a 1D Wiener process ``W`` (Lemma 8 [62-64]), shape ``(n_r,)``.

    ``w`` is even in ``s``, so this is ``2 int_0^inf w(s) phi(s) ds`` with ``phi`` the
    ``N(0, tau^2 t)`` density; Gauss-Legendre with ``n_nodes`` nodes on ``[0, 9 tau sqrt(t)]``
    (the Gaussian tail beyond is below ``1e-18``). ``w`` varies in ``s`` on the scale
    ``s0 / c``: the node spacing must resolve it.
    """
    positive_int("n_nodes", n_nodes)
    sd = positive_scalar("tau", tau) * math.sqrt(positive_scalar("t", t))
    nodes, weights = np.polynomial.legendre.leggauss(n_nodes)
    s_max = 9.0 * sd
    s = (nodes + 1) * s_max / 2
    ws = weights * s_max / 2 * 2 * np.exp(-(s**2) / (2 * sd**2)) / (sd * math.sqrt(2 * math.pi))
    w = wave_fn(torch.as_tensor(s, dtype=F64))
    return (torch.as_tensor(ws, dtype=F64)[:, None] * w).sum(0)


def lemma8_tau(sigma: float, c: float) -> float:
    """Scale ``tau = sigma / c`` of the inserted Wiener process so that
    ``E[w(tau W(t), x)]`` is the density of ``X0 + sigma W_d(t)`` (Lemma 8; derived from
    ``d = 1``, see the module docstring). With ``sigma^2 = c^2/a`` this is ``1/sqrt(a)``."""
    return positive_scalar("sigma", sigma) / positive_scalar("c", c)


def heat_radial(t: float, r, f0: RadialGaussian, sigma: float) -> torch.Tensor:
    """Density of ``X0 + sigma W_d(t)``, ``X0 ~ f0``: Gaussian of variance ``s0^2 + sigma^2 t``."""
    var = f0.s0**2 + sigma**2 * t
    r = torch.as_tensor(r, dtype=F64)
    return (2 * math.pi * var) ** (-f0.dim / 2) * torch.exp(-(r**2) / (2 * var))


def radial_mass(u: torch.Tensor, r: torch.Tensor, dim: int) -> float:
    """``int_{R^d} u dx = |S^{d-1}| int_0^R u(r) r^{d-1} dr`` by the trapezoid rule."""
    sphere = {1: 2.0, 2: 2 * math.pi, 3: 4 * math.pi}[dim]
    return float(sphere * torch.trapezoid(u * r ** (dim - 1), r))


def radial_damped_wave_residual(
    u: torch.Tensor, t: torch.Tensor, r: torch.Tensor, a: float, c: float, dim: int
) -> tuple[float, float]:
    """``(max|u_tt + 2a u_t - c^2 (u_rr + (d-1)/r u_r)|, largest single term)``, central
    differences on uniform grids ``t`` (rows of ``u``) and ``r > 0`` (columns)."""
    dt = float(t[1] - t[0])
    dr = float(r[1] - r[0])
    rr = r[None, 1:-1]
    u_tt = (u[2:, 1:-1] - 2 * u[1:-1, 1:-1] + u[:-2, 1:-1]) / dt**2
    u_t = 2 * a * (u[2:, 1:-1] - u[:-2, 1:-1]) / (2 * dt)
    lap = c**2 * (
        (u[1:-1, 2:] - 2 * u[1:-1, 1:-1] + u[1:-1, :-2]) / dr**2
        + (dim - 1) / rr * (u[1:-1, 2:] - u[1:-1, :-2]) / (2 * dr)
    )
    scale = max(float(x.abs().max()) for x in (u_tt, u_t, lap))
    return float((u_tt + u_t - lap).abs().max()), scale
