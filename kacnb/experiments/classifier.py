"""A small MNIST classifier: accuracy for the record, features for the Frechet distance.

The paper shows MNIST samples only as pictures; notebook 05 adds numbers: the Frechet
distance between generated and test images in this classifier's 128-dimensional feature
space (an MNIST analogue of FID) and the distribution of predicted labels (mode coverage).
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm import tqdm  # text bars: tqdm.auto warns without ipywidgets

__all__ = ["DigitClassifier", "train_classifier", "predict", "confidence", "features"]


class DigitClassifier(nn.Module):
    """Two 5x5 conv layers (16, 32 channels, each followed by 2x2 max-pooling), a 128-unit
    hidden layer (the feature space) and 10 logits. Input: images (B, 1, 28, 28) in [-1, 1]."""

    def __init__(self, n_features: int = 128):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, n_features), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Linear(n_features, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    epochs: int = 2,
    batch_size: int = 128,
    lr: float = 1e-3,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> DigitClassifier:
    """Train :class:`DigitClassifier` with Adam and cross-entropy; shuffles with ``generator``."""
    model = DigitClassifier().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = images.shape[0]
    steps = epochs * ((n + batch_size - 1) // batch_size)
    bar = tqdm(total=steps, desc="classifier", disable=not progress)
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            x, y = images[idx].to(device), labels[idx].to(device)
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.update(1)
    bar.close()
    return model.eval()


@torch.no_grad()
def _batched(fn, images: torch.Tensor, device, batch_size: int) -> torch.Tensor:
    out = [
        fn(images[i : i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out)


def predict(model: DigitClassifier, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Predicted digits (N,) for images (N, 1, 28, 28)."""
    device = next(model.parameters()).device
    return _batched(lambda x: model(x).argmax(1), images, device, batch_size)


def confidence(
    model: DigitClassifier, images: torch.Tensor, batch_size: int = 1000
) -> torch.Tensor:
    """The classifier's probability of its predicted digit, ``max_k softmax(logits)_k``, (N,)
    in [0.1, 1] for images (N, 1, 28, 28): near 1 for a clear digit, low for a blot."""
    device = next(model.parameters()).device
    return _batched(lambda x: model(x).softmax(1).amax(1), images, device, batch_size)


def features(model: DigitClassifier, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Penultimate-layer features (N, 128) for the Frechet distance."""
    device = next(model.parameters()).device
    return _batched(model.features, images, device, batch_size)
