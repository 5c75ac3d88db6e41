"""The MNIST classifier learns; on real MNIST it reaches a useful accuracy quickly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from kacnb.experiments.classifier import features, predict, train_classifier


def synthetic_digits(n: int, seed: int):
    """Class k = a bright 6x6 square at one of 10 fixed places, plus noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    x = -1 + 0.3 * torch.rand(n, 1, 28, 28, generator=g)
    for i in range(n):
        r, c = divmod(int(y[i]), 5)
        x[i, 0, 2 + 12 * r : 8 + 12 * r, 1 + 5 * c : 7 + 5 * c] = 1.0
    return x, y


def test_classifier_separates_separable_classes_and_gives_features():
    x, y = synthetic_digits(600, 0)
    model = train_classifier(
        x, y, epochs=3, batch_size=64, progress=False, generator=torch.Generator().manual_seed(1)
    )
    xt, yt = synthetic_digits(300, 2)
    assert float((predict(model, xt) == yt).double().mean()) >= 0.99
    f = features(model, xt)
    assert f.shape == (300, 128) and torch.all(f >= 0)  # after a ReLU


REAL = os.environ.get("KACNB_DATA_DIR")


@pytest.mark.skipif(
    not REAL or not Path(REAL, "t10k-images-idx3-ubyte.gz").exists(),
    reason="KACNB_DATA_DIR does not point at the MNIST files (CI sets it)",
)
def test_classifier_on_a_real_mnist_subset():
    from kacnb.experiments.data import mnist

    torch.manual_seed(0)
    x, y = mnist("test", download=False)
    model = train_classifier(
        x[:8000], y[:8000], epochs=1, progress=False, generator=torch.Generator().manual_seed(0)
    )
    acc = float((predict(model, x[8000:]) == y[8000:]).double().mean())
    assert acc >= 0.93  # one epoch on 8k images; the notebook trains on all 60k
