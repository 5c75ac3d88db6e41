"""Velocity-field networks ``v_theta(t, x)`` (PAPER.md section 5)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MLP", "UNet", "ResBlock", "sinusoidal_embedding"]


class MLP(nn.Module):
    """Fully connected network on the input ``(x, t)``: the 2D experiment's model.

    ``dim`` coordinates plus time in, ``dim`` velocity coordinates out; ``depth`` hidden
    layers of ``width`` units with ReLU (the paper: three layers of 256). ``forward(t, x)``
    takes times (B,) and points (B, dim).
    """

    def __init__(self, dim: int = 2, width: int = 256, depth: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        n_in = dim + 1
        for _ in range(depth):
            layers += [nn.Linear(n_in, width), nn.ReLU()]
            n_in = width
        layers.append(nn.Linear(n_in, dim))
        self.net = nn.Sequential(*layers)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, t.reshape(-1, 1).to(x.dtype)], dim=1))


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
    """A light U-Net ``v_theta(t, x)`` for 28x28 images (PAPER.md section 5).

    ``levels`` resolutions (28, 14, 7 for three), ``blocks`` residual blocks per level on the
    way down and up, ``base`` channels doubling at each downsampling (64, 128, 256 by
    default), a sinusoidal time embedding fed through an MLP into every block.
    ``forward(t, x)``: times (B,), images (B, C, 28, 28) -> velocity of the same shape.
    """

    def __init__(self, channels: int = 1, base: int = 64, levels: int = 3, blocks: int = 2):
        super().__init__()
        t_dim = 4 * base
        self.base = base
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
