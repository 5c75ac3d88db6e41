"""The MNIST loader: the real files (KACNB_DATA_DIR, else the copy shipped in datasets/mnist),
synthetic ones for the failure cases, and ``kacnb run``'s pre-check without a network."""

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

from kacnb.collection import cli, runner
from kacnb.experiments import data
from kacnb.experiments.data import MNIST_FILES, SHIPPED_MNIST_DIR, DataError, data_root, mnist

ROOT = Path(__file__).resolve().parents[1]
NAMES = [name for pair in MNIST_FILES.values() for name in pair]
REAL = os.environ.get("KACNB_DATA_DIR") or str(SHIPPED_MNIST_DIR)
needs_real = pytest.mark.skipif(
    not Path(REAL, "t10k-labels-idx1-ubyte.gz").exists(),
    reason="neither KACNB_DATA_DIR nor datasets/mnist holds the MNIST files",
)
# Label counts of digits 0-9 (the data set's documentation).
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@needs_real
@pytest.mark.parametrize("split,counts", [("train", TRAIN_COUNTS), ("test", TEST_COUNTS)])
def test_real_mnist_shapes_scaling_and_label_counts(split, counts):
    x, y = mnist(split, root=REAL, download=False)
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


# ---------------------------------------------------------------------------- shipped copy
@pytest.fixture
def offline(monkeypatch, tmp_path) -> list[str]:
    """A fresh machine without network: KACNB_DATA_DIR unset, an empty working directory,
    and every download attempt fails (the URLs asked for are recorded)."""
    import urllib.error
    import urllib.request

    asked: list[str] = []

    def no_network(request, timeout=None):
        asked.append(getattr(request, "full_url", request))
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.delenv("KACNB_DATA_DIR", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return asked


def test_the_repository_ships_the_four_mnist_files_with_a_licence_note():
    assert SHIPPED_MNIST_DIR == ROOT / "datasets" / "mnist"
    assert sorted(p.name for p in SHIPPED_MNIST_DIR.glob("*.gz")) == sorted(
        n + ".gz" for n in NAMES
    )
    note = (SHIPPED_MNIST_DIR / "README.md").read_text(encoding="utf-8")
    assert "CC BY-SA 3.0" in note and "LeCun" in note and "Cortes" in note
    sums = (SHIPPED_MNIST_DIR / "SHA256SUMS").read_text().split()
    for digest, name in zip(sums[::2], sums[1::2], strict=True):
        assert hashlib.sha256((SHIPPED_MNIST_DIR / name).read_bytes()).hexdigest() == digest


def test_shipped_files_are_used_without_network(offline):
    assert data_root() == SHIPPED_MNIST_DIR
    x, y = mnist("test")  # download allowed, but nothing is missing
    assert x.shape == (10000, 1, 28, 28)
    assert torch.bincount(y, minlength=10).tolist() == TEST_COUNTS
    assert offline == [] and not Path("data").exists()


def test_explicit_root_and_environment_override_the_shipped_copy(synthetic, offline, monkeypatch):
    folder, sha, _, labels, _ = synthetic
    assert data_root(folder) == folder
    assert mnist("test", root=folder, sha256=sha)[1].tolist() == labels.tolist()
    monkeypatch.setenv("KACNB_DATA_DIR", str(folder))
    assert data_root() == folder
    assert mnist("test", sha256=sha)[1].tolist() == labels.tolist()
    monkeypatch.setenv("KACNB_DATA_DIR", "")  # empty: as if unset
    assert data_root() == SHIPPED_MNIST_DIR
    assert offline == []


def _shipped_copy(tmp_path, monkeypatch) -> Path:
    """A copy of datasets/mnist that the loader takes for the shipped one (the test split
    copied, the large training files linked)."""
    copy = tmp_path / "datasets" / "mnist"
    copy.mkdir(parents=True)
    for name in NAMES:
        src = SHIPPED_MNIST_DIR / (name + ".gz")
        if name.startswith("t10k"):
            (copy / src.name).write_bytes(src.read_bytes())
        else:
            (copy / src.name).symlink_to(src)
    monkeypatch.setattr(data, "SHIPPED_MNIST_DIR", copy)
    return copy


def test_a_corrupted_shipped_file_is_refused(tmp_path, monkeypatch, offline):
    copy = _shipped_copy(tmp_path, monkeypatch)
    name = MNIST_FILES["test"][1]
    gz = copy / (name + ".gz")
    content = bytearray(gzip.decompress(gz.read_bytes()))
    content[-1] = (content[-1] + 1) % 10  # one label changed: a valid gzip, a wrong checksum
    gz.write_bytes(gzip.compress(bytes(content)))
    assert data_root() == copy
    with pytest.raises(DataError, match=rf"{name}\.gz is corrupt.*shipped with the repository"):
        mnist("test")
    assert offline == [] and not Path("data").exists()  # refused, not replaced by a download


def test_an_incomplete_shipped_copy_falls_back_to_data_mnist(tmp_path, monkeypatch, offline):
    copy = _shipped_copy(tmp_path, monkeypatch)
    (copy / "t10k-images-idx3-ubyte.gz").unlink()
    assert data_root() == Path("data") / "mnist"
    with pytest.raises(DataError, match="could not download t10k-images-idx3-ubyte"):
        mnist("test")
    assert offline and all("t10k-images" in url for url in offline)


def test_kacnb_run_passes_its_mnist_precheck_offline(offline, monkeypatch, capsys, tmp_path):
    class Started(Exception):
        """The pre-checks passed and the first notebook was about to run."""

    def start(spec, *args, **kwargs):
        raise Started(spec.stem)

    monkeypatch.setattr(runner, "run_notebook", start)
    out = tmp_path / "out"
    with pytest.raises(Started, match="01_velocity_explosion"):
        cli.main(["run", "--no-progress", "--output-dir", str(out), "--figures-dir", str(out)])
    err = capsys.readouterr().err
    assert "error" not in err and "MNIST" not in err and "downloaded" not in err
    assert offline == []
    # control: without the shipped files the same pre-check stops with the fix
    monkeypatch.setattr(data, "SHIPPED_MNIST_DIR", tmp_path / "nowhere")
    code = cli.main(
        ["run", "05", "--no-progress", "--output-dir", str(out), "--figures-dir", str(out)]
    )
    assert code == 2
    assert "05_mnist needs the MNIST files" in capsys.readouterr().err
    assert offline  # it asked the mirrors
