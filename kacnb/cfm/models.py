"""Velocity-field networks ``v_theta(t, x)``: the MLP of the 2D experiment and the light U-Net of
the MNIST experiment (paper Section 7, arXiv:2506.20641v1)."""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from .._checks import check_size

__all__ = [
    "MLP",
    "StackedLinear",
    "StackedMLP",
    "UNet",
    "ResBlock",
    "sinusoidal_embedding",
    "check_architecture",
    "mlp_parameters",
    "ARCH_LIMITS",
    "architecture",
    "validate_architecture",
    "build",
]


def mlp_parameters(dim: int, width: int, depth: int) -> int:
    """Number of weights and biases of ``MLP(dim, width, depth)``."""
    return (dim + 1) * width + (depth - 1) * width * width + width * dim + depth * width + dim


def check_architecture(dim, width, depth, n_models: int = 1) -> None:
    """``ValueError`` naming the argument unless ``dim``, ``width`` and ``depth`` are
    integers >= 1 and the float32 weights of ``n_models`` such MLPs fit in
    :data:`kacnb._checks.MAX_BYTES` (checked before anything is allocated)."""
    for name, value in (("dim", dim), ("width", width), ("depth", depth)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    n = n_models * mlp_parameters(dim, width, depth)
    check_size(f"an MLP of dim {dim}, width {width:,}, depth {depth} ({n:,} weights)", n, 4)


class MLP(nn.Module):
    """Fully connected network on the input ``(x, t)``: the 2D experiment's model.

    ``dim`` coordinates plus time in, ``dim`` velocity coordinates out; ``depth`` hidden
    layers of ``width`` units with ReLU (the paper: three layers of 256). ``forward(t, x)``
    takes times (B,) and points (B, dim).
    """

    def __init__(self, dim: int = 2, width: int = 256, depth: int = 3):
        super().__init__()
        check_architecture(dim, width, depth)
        self.dim, self.width, self.depth = dim, width, depth  # for architecture()
        layers: list[nn.Module] = []
        n_in = dim + 1
        for _ in range(depth):
            layers += [nn.Linear(n_in, width), nn.ReLU()]
            n_in = width
        layers.append(nn.Linear(n_in, dim))
        self.net = nn.Sequential(*layers)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, t.reshape(-1, 1).to(x.dtype)], dim=1))


class StackedLinear(nn.Module):
    """``K`` independent affine maps applied with one batched matmul (``torch.baddbmm``).

    ``weight`` (K, out, in) and ``bias`` (K, out) keep the :class:`torch.nn.Linear` layout,
    so ``weight[k]``, ``bias[k]`` are model ``k``'s ``nn.Linear`` parameters.
    ``forward(h)``: (K, B, in) -> (K, B, out), ``h[k] @ weight[k].T + bias[k]`` for each k.
    """

    def __init__(self, n_models: int, n_in: int, n_out: int, *, init: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_models, n_out, n_in))
        self.bias = nn.Parameter(torch.empty(n_models, n_out))
        if init:  # per model as nn.Linear.reset_parameters: U(-1/sqrt(in), 1/sqrt(in))
            bound = 1.0 / math.sqrt(n_in)
            with torch.no_grad():
                for k in range(n_models):
                    nn.init.kaiming_uniform_(self.weight[k], a=math.sqrt(5))
                    self.bias[k].uniform_(-bound, bound)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias.unsqueeze(1), h, self.weight.transpose(1, 2))


class StackedMLP(nn.Module):
    """``K`` :class:`MLP` of one architecture, weights stacked along a leading model axis.

    Model ``k`` computes exactly what ``MLP(dim, width, depth)`` with the weights
    ``layers[i].weight[k]``, ``layers[i].bias[k]`` computes, but all ``K`` models advance in
    one batched matmul per layer (:class:`StackedLinear`). ``forward(t, x)`` takes times
    (K, B) and points (K, B, dim) (row ``k`` is model ``k``'s batch) and returns the
    velocities (K, B, dim).

    ``parameters()`` come in the order of a single :class:`MLP`'s (weight, bias per layer),
    so index ``i`` of an optimiser state refers to the same tensor in both. Build from
    trained or freshly initialised models with :meth:`from_mlps` and go back with
    :meth:`member_state_dict` / :meth:`to_mlps`.
    """

    def __init__(
        self, n_models: int, dim: int = 2, width: int = 256, depth: int = 3, *, init: bool = True
    ):
        super().__init__()
        if n_models < 1:
            raise ValueError(f"n_models must be >= 1, got {n_models!r}")
        check_architecture(dim, width, depth, n_models)
        self.n_models, self.dim, self.width, self.depth = n_models, dim, width, depth
        sizes = [dim + 1] + [width] * depth + [dim]
        self.layers = nn.ModuleList(
            StackedLinear(n_models, sizes[i], sizes[i + 1], init=init)
            for i in range(len(sizes) - 1)
        )

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        h = torch.cat([x, t.unsqueeze(-1).to(x.dtype)], dim=-1)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < last:
                h = torch.relu(h)
        return h

    @staticmethod
    def architecture(model: MLP) -> tuple[int, int, int]:
        """``(dim, width, depth)`` of an :class:`MLP`, read from its layers."""
        linears = [m for m in model.net if isinstance(m, nn.Linear)]
        return linears[-1].out_features, linears[0].out_features, len(linears) - 1

    @classmethod
    def from_mlps(cls, models: list[MLP]) -> StackedMLP:
        """Stack (copy) the weights of ``models``, all of one architecture, on their device."""
        models = list(models)
        if not models:
            raise ValueError("from_mlps needs at least one model")
        arch = {cls.architecture(m) for m in models}
        if len(arch) != 1:
            raise ValueError(f"models of one architecture (dim, width, depth) needed, got {arch}")
        dim, width, depth = arch.pop()
        ref = next(models[0].parameters())
        stacked = cls(len(models), dim, width, depth, init=False).to(ref.device, ref.dtype)
        for k, m in enumerate(models):
            stacked.load_member_state_dict(k, m.state_dict())
        return stacked

    def _keys(self) -> list[tuple[str, str]]:
        # MLP.net alternates Linear and ReLU: layer i is net.{2 i}
        return [(f"net.{2 * i}.weight", f"net.{2 * i}.bias") for i in range(len(self.layers))]

    def member_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Model ``k`` as an :class:`MLP` ``state_dict`` (detached copies)."""
        out = {}
        for layer, (wk, bk) in zip(self.layers, self._keys(), strict=True):
            out[wk] = layer.weight[k].detach().clone()
            out[bk] = layer.bias[k].detach().clone()
        return out

    @torch.no_grad()
    def load_member_state_dict(self, k: int, state: dict[str, torch.Tensor]) -> None:
        """Copy an :class:`MLP` ``state_dict`` into slot ``k``."""
        for layer, (wk, bk) in zip(self.layers, self._keys(), strict=True):
            layer.weight[k].copy_(state[wk])
            layer.bias[k].copy_(state[bk])

    def to_mlps(self) -> list[MLP]:
        """``K`` separate :class:`MLP` with copies of the weights (uses the global RNG to build
        the layers before overwriting them; fork it around the call to keep it untouched)."""
        ref = self.layers[0].weight
        out = []
        for k in range(self.n_models):
            m = MLP(self.dim, self.width, self.depth).to(ref.device, ref.dtype)
            m.load_state_dict(self.member_state_dict(k))
            out.append(m)
        return out


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal features of times ``t`` (B,): shape (B, dim), frequencies log-spaced.

    Times of the paper's models lie in ``[0, T]`` with ``T <= 10``; they are scaled by 1000 so
    that the lowest frequencies still resolve differences of 1e-3.
    """
    if dim % 2:
        raise ValueError(f"dim must be even, got {dim}")
    half = dim // 2
    freqs = torch.exp(
        -torch.log(torch.tensor(max_period)) * torch.arange(half, device=t.device) / half
    ).to(t.dtype if t.is_floating_point() else torch.float32)
    args = 1000.0 * t.reshape(-1, 1) * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, the time embedding added in between, with a skip."""

    def __init__(self, c_in: int, c_out: int, t_dim: int, groups: int = 8):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(t_dim, c_out)
        self.norm2 = nn.GroupNorm(min(groups, c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        h = h + self.time(emb)[:, :, None, None]
        h = self.conv2(nn.functional.silu(self.norm2(h)))
        return h + self.skip(x)


class UNet(nn.Module):
    """The light U-Net ``v_theta(t, x)`` of the MNIST experiment, 28x28 images (paper Section 7).

    ``levels`` resolutions (28, 14, 7 for three), ``blocks`` residual blocks per level on the
    way down and up, ``base`` channels doubling at each downsampling (64, 128, 256 by
    default), a sinusoidal time embedding fed through an MLP into every block.
    ``forward(t, x)``: times (B,), images (B, C, 28, 28) -> velocity of the same shape.
    """

    def __init__(self, channels: int = 1, base: int = 64, levels: int = 3, blocks: int = 2):
        super().__init__()
        t_dim = 4 * base
        # constructor arguments, for architecture() (plain attributes: not in the state dict)
        self.channels, self.base, self.levels, self.blocks = channels, base, levels, blocks
        self.time_mlp = nn.Sequential(nn.Linear(base, t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim))
        self.stem = nn.Conv2d(channels, base, 3, padding=1)
        widths = [base * 2**i for i in range(levels)]
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c = base
        skips = []
        for i, w in enumerate(widths):
            level = nn.ModuleList()
            for _ in range(blocks):
                level.append(ResBlock(c, w, t_dim))
                c = w
                skips.append(c)
            self.down.append(level)
            last = i == levels - 1
            self.downsample.append(
                nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1)
            )
        self.mid = ResBlock(c, c, t_dim)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            level = nn.ModuleList()
            for _ in range(blocks):
                level.append(ResBlock(c + skips.pop(), w, t_dim))
                c = w
            self.up.append(level)
            self.upsample.append(
                nn.Identity()
                if i == 0
                else nn.Sequential(
                    nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1)
                )
            )
        self.out = nn.Sequential(
            nn.GroupNorm(min(8, c), c), nn.SiLU(), nn.Conv2d(c, channels, 3, padding=1)
        )

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(sinusoidal_embedding(t.reshape(-1).to(x.dtype), self.base))
        h = self.stem(x)
        skips = []
        for level, down in zip(self.down, self.downsample, strict=True):
            for block in level:
                h = block(h, emb)
                skips.append(h)
            h = down(h)
        h = self.mid(h, emb)
        for level, up in zip(self.up, self.upsample, strict=True):
            for block in level:
                h = block(torch.cat([h, skips.pop()], dim=1), emb)
            h = _match(up(h), skips[-1] if skips else None)
        return self.out(h)


def _match(h: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
    """Crop an upsampled map to the skip's size (7 -> 14 -> 28 is exact; odd sizes are not)."""
    if ref is None or h.shape[-2:] == ref.shape[-2:]:
        return h
    return h[..., : ref.shape[-2], : ref.shape[-1]]


#: Per ``arch``, the constructor arguments :func:`build` accepts and their largest values
#: (all are integers >= 1). They bound what a weights file's description may make us allocate:
#: the shipped MLPs are 256 wide and 3 deep, the paper's U-Net has base 64, 3 levels, 2 blocks.
ARCH_LIMITS: dict[str, dict[str, int]] = {
    "mlp": {"dim": 64, "width": 4096, "depth": 16},
    "unet": {"channels": 4, "base": 256, "levels": 4, "blocks": 4},
}


def architecture(model: nn.Module) -> dict:
    """The constructor arguments of an :class:`MLP` or a :class:`UNet`, JSON-ready.

    ``{"arch": "mlp", "dim": D, "width": W, "depth": L}`` (D coordinates, L hidden layers of
    W units) or ``{"arch": "unet", "channels": C, "base": B, "levels": N, "blocks": K}``;
    :func:`build` turns it back into a freshly initialised model whose ``state_dict`` has the
    same keys and shapes. ``TypeError`` for any other module.
    """
    if isinstance(model, MLP):
        return {"arch": "mlp", "dim": model.dim, "width": model.width, "depth": model.depth}
    if isinstance(model, UNet):
        return {
            "arch": "unet",
            "channels": model.channels,
            "base": model.base,
            "levels": model.levels,
            "blocks": model.blocks,
        }
    raise TypeError(f"architecture() knows MLP and UNet, got {type(model).__name__}")


def _unet_parameters(channels: int, base: int, levels: int, blocks: int) -> int:
    """Number of weights of a U-Net, counted on the ``meta`` device (nothing is allocated);
    ``ValueError`` naming ``base`` when its group norms do not divide the channel counts."""
    try:
        with torch.device("meta"):
            net = UNet(channels=channels, base=base, levels=levels, blocks=blocks)
    except ValueError as exc:  # GroupNorm: channels (e.g. 3 * base) not divisible by 8
        raise ValueError(
            f"base {base} does not fit levels {levels}: {str(exc).splitlines()[0]}"
        ) from None
    return sum(p.numel() for p in net.parameters())


def validate_architecture(arch) -> dict:
    """Check a description as :func:`architecture` writes it, without building the model.

    ``arch`` must be a dict with ``"arch"`` one of :data:`ARCH_LIMITS` and exactly that
    architecture's fields, each an integer (not a bool) from 1 to its limit; a U-Net's
    ``base`` must moreover be even (the width of its sinusoidal time embedding) and fit its
    group norms, and the float32 weights must fit :data:`kacnb._checks.MAX_BYTES`. Returns a
    normalised copy (plain ``int`` values); raises ``ValueError`` with a one-line message
    naming the first offending field.
    """
    if not isinstance(arch, dict):
        raise ValueError(f"an architecture must be a dict with 'arch', got {type(arch).__name__}")
    kind = arch.get("arch")
    if not isinstance(kind, str) or kind not in ARCH_LIMITS:
        known = ", ".join(repr(k) for k in ARCH_LIMITS)
        raise ValueError(f"arch must be one of {known}, got {kind!r}")
    limits = ARCH_LIMITS[kind]
    unknown = sorted(str(k) for k in arch if k != "arch" and k not in limits)
    if unknown:
        raise ValueError(
            f"{unknown[0]} is not a field of arch {kind!r} (fields: {', '.join(limits)})"
        )
    out: dict = {"arch": kind}
    for name, limit in limits.items():
        if name not in arch:
            raise ValueError(f"{name} is missing (arch {kind!r}: an integer from 1 to {limit})")
        value = arch[name]
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Integral)
            or not 1 <= value <= limit
        ):
            raise ValueError(f"{name} must be an integer from 1 to {limit}, got {value!r}")
        out[name] = int(value)
    if kind == "mlp":
        check_architecture(out["dim"], out["width"], out["depth"])
    else:
        if out["base"] % 2:
            raise ValueError(f"base must be even (time embedding width), got {out['base']}")
        n = _unet_parameters(out["channels"], out["base"], out["levels"], out["blocks"])
        desc = ", ".join(f"{k} {out[k]}" for k in limits)
        check_size(f"a U-Net of {desc} ({n:,} weights)", n, 4)
    return out


def build(arch: dict) -> nn.Module:
    """A freshly initialised :class:`MLP` or :class:`UNet` from its :func:`architecture`.

    Every field is checked first (:func:`validate_architecture`: integers within
    :data:`ARCH_LIMITS`, no unknown ``arch`` or field), so an out-of-range description raises
    ``ValueError`` naming the field before any weight is allocated. Parameters are float32
    on the CPU, initialised from the global RNG.
    """
    checked = validate_architecture(arch)
    kwargs = {k: v for k, v in checked.items() if k != "arch"}
    return MLP(**kwargs) if checked["arch"] == "mlp" else UNet(**kwargs)
