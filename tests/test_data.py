"""The MNIST loader: real files when KACNB_DATA_DIR points at them, synthetic ones otherwise."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from kacnb.data import MNIST_FILES, DataError, mnist

REAL = os.environ.get("KACNB_DATA_DIR")
needs_real = pytest.mark.skipif(
    not REAL or not Path(REAL, "t10k-labels-idx1-ubyte.gz").exists(),
    reason="KACNB_DATA_DIR does not point at the MNIST files (CI sets it)",
)
# Label counts of digits 0-9 (the data set's documentation).
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@needs_real
@pytest.mark.parametrize("split,counts", [("train", TRAIN_COUNTS), ("test", TEST_COUNTS)])
def test_real_mnist_shapes_scaling_and_label_counts(split, counts):
    x, y = mnist(split, download=False)
    assert x.shape == (sum(counts), 1, 28, 28) and x.dtype == torch.float32
    assert y.dtype == torch.int64
    assert float(x.min()) == -1.0 and float(x.max()) == 1.0
    assert torch.bincount(y, minlength=10).tolist() == counts


def _idx(array: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.fixture
def synthetic(tmp_path):
    """A tiny 'test' split: 6 images with known pixels, gzipped, and its checksum table."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 28, 28))
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    labels = np.array([3, 1, 4, 1, 5, 9])
    folder = tmp_path / "src"
    folder.mkdir()
    contents = {
        MNIST_FILES["test"][0]: _idx(images, 2051),
        MNIST_FILES["test"][1]: _idx(labels, 2049),
    }
    for name, content in contents.items():
        (folder / (name + ".gz")).write_bytes(gzip.compress(content))
    sha = {name: hashlib.sha256(c).hexdigest() for name, c in contents.items()}
    return folder, sha, images, labels, contents


def test_synthetic_loader_scales_to_minus_one_one(synthetic):
    folder, sha, images, labels, _ = synthetic
    x, y = mnist("test", root=folder, sha256=sha, download=False)
    assert x.shape == (6, 1, 28, 28)
    expected = torch.from_numpy(images.astype(np.float32)) * (2 / 255) - 1
    torch.testing.assert_close(x[:, 0], expected, rtol=0, atol=1e-6)
    assert float(x[0, 0, 0, 0]) == -1.0 and float(x[0, 0, 0, 1]) == 1.0
    assert y.tolist() == labels.tolist()


def test_uncompressed_files_are_read_too(synthetic, tmp_path):
    _, sha, _, labels, contents = synthetic
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, content in contents.items():
        (raw / name).write_bytes(content)
    assert mnist("test", root=raw, sha256=sha, download=False)[1].tolist() == labels.tolist()


def test_environment_variable_is_the_default_root(synthetic, monkeypatch):
    folder, sha, *_ = synthetic
    monkeypatch.setenv("KACNB_DATA_DIR", str(folder))
    assert mnist("test", sha256=sha, download=False)[0].shape[0] == 6


def test_corrupted_content_fails_naming_the_file(synthetic):
    folder, sha, _, _, contents = synthetic
    name = MNIST_FILES["test"][0]
    bad = bytearray(contents[name])
    bad[100] ^= 0xFF
    (folder / (name + ".gz")).write_bytes(gzip.compress(bytes(bad)))
    with pytest.raises(DataError, match=rf"{name}\.gz is corrupt.*Delete"):
        mnist("test", root=folder, sha256=sha, download=False)


def test_truncated_archive_fails_naming_the_file(synthetic):
    folder, sha, *_ = synthetic
    name = MNIST_FILES["test"][1]
    gz = folder / (name + ".gz")
    gz.write_bytes(gz.read_bytes()[:-10])
    with pytest.raises(DataError, match=rf"{name}\.gz"):
        mnist("test", root=folder, sha256=sha, download=False)


def test_missing_files_without_download(tmp_path):
    with pytest.raises(DataError, match="not found"):
        mnist("test", root=tmp_path, download=False)
    with pytest.raises(ValueError, match="split"):
        mnist("valid", root=tmp_path)


@pytest.fixture
def loopback_server():
    """Serve a folder over HTTP on 127.0.0.1; yields a function folder -> base URL."""
    servers = []

    def serve(folder: Path) -> str:
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        handler.log_message = lambda *args: None
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_download_from_a_mirror_with_verification(synthetic, loopback_server, tmp_path):
    folder, sha, images, labels, _ = synthetic
    dead = loopback_server(tmp_path / "missing")  # serves 404s: the next mirror is tried
    good = loopback_server(folder)
    dest = tmp_path / "dest"
    x, y = mnist("test", root=dest, sha256=sha, mirrors=[dead, good], timeout=10)
    assert y.tolist() == labels.tolist() and x.shape[0] == 6
    assert sorted(p.name for p in dest.iterdir()) == sorted(n + ".gz" for n in MNIST_FILES["test"])


def test_a_corrupt_download_is_rejected_and_not_kept(synthetic, loopback_server, tmp_path):
    folder, sha, *_ = synthetic
    name = MNIST_FILES["test"][0]
    gz = folder / (name + ".gz")
    gz.write_bytes(gzip.compress(b"\x00" * 100))
    url = loopback_server(folder)
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match=f"could not download {name}"):
        mnist("test", root=dest, sha256=sha, mirrors=[url], timeout=10)
    assert not any(dest.glob("*.gz"))
