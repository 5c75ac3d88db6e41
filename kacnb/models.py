"""Velocity-field networks ``v_theta(t, x)`` (PAPER.md section 5)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MLP"]


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
