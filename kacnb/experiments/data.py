"""MNIST in its standard IDX format, verified by checksum (paper Section 7; docs/paper-notes.md).

``mnist(split, root)`` reads the four standard files (gzipped or not) from the first of these
folders (:func:`data_root`):

1. ``root``, when given;
2. ``$KACNB_DATA_DIR``, when set and not empty;
3. the copy shipped with the repository, ``datasets/mnist/`` beside the ``kacnb`` package
   (:data:`SHIPPED_MNIST_DIR`, CC BY-SA 3.0, Y. LeCun and C. Cortes), when it holds all four
   files; so a checkout needs no network;
4. ``./data/mnist`` below the working directory (the notebooks run in ``notebooks/``).

Files missing from the chosen folder are downloaded into it from public mirrors (or those
passed in ``mirrors``) and verified before they are kept; the shipped folder is chosen only
when it is complete, so nothing is ever downloaded into it. The SHA-256 of the
*decompressed* content is checked (gzip archives of the same content differ between
distributions), so a corrupt or truncated file is never used, wherever it lies: it raises
:class:`DataError` naming the file and saying what to do (no other folder is tried instead).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from .._root import PROJECT_ROOT

__all__ = [
    "DataError",
    "mnist",
    "data_root",
    "missing_mnist_files",
    "MNIST_FILES",
    "MNIST_SHA256",
    "MNIST_MIRRORS",
    "SHIPPED_MNIST_DIR",
]

#: split -> (images file, labels file), without the ``.gz`` suffix.
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
#: SHA-256 of the decompressed IDX files.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
#: Public mirrors serving ``<name>.gz``, tried in order.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
#: The MNIST files shipped with the repository (``datasets/mnist`` at its root).
SHIPPED_MNIST_DIR = PROJECT_ROOT / "datasets" / "mnist"
_IDX_MAGIC = {3: 2051, 1: 2049}  # number of dimensions -> magic number (unsigned bytes)


class DataError(RuntimeError):
    """A data file is missing, corrupt or truncated."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The MNIST folder: ``root``, else ``$KACNB_DATA_DIR``, else the shipped copy
    :data:`SHIPPED_MNIST_DIR` if it holds all four files, else ``./data/mnist``."""
    if root is not None:
        return Path(root)
    env = os.environ.get("KACNB_DATA_DIR")
    if env:
        return Path(env)
    if not missing_mnist_files(SHIPPED_MNIST_DIR):
        return SHIPPED_MNIST_DIR
    return Path("data") / "mnist"


def _read_verified(path: Path, name: str, sha256: Mapping[str, str]) -> bytes:
    """Decompressed content of ``path``, checked against ``sha256[name]``."""
    if path.resolve().parent == SHIPPED_MNIST_DIR.resolve():
        advice = (
            "It is the copy shipped with the repository: restore it with "
            "'git checkout -- datasets/mnist', or delete it and run again to download the "
            "four files into ./data/mnist, or point KACNB_DATA_DIR at a folder with intact "
            "MNIST files."
        )
    else:
        advice = (
            f"Delete {path} and run again to download a fresh copy, or point "
            f"KACNB_DATA_DIR at a folder with intact MNIST files."
        )
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                content = fh.read()
        else:
            content = path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path} cannot be read ({type(exc).__name__}: {exc}). {advice}") from exc
    digest = hashlib.sha256(content).hexdigest()
    if digest != sha256[name]:
        raise DataError(
            f"{path} is corrupt or truncated: SHA-256 of its content is {digest}, "
            f"expected {sha256[name]}. {advice}"
        )
    return content


def _parse_idx(content: bytes, ndim: int, name: str) -> np.ndarray:
    magic = int.from_bytes(content[:4], "big")
    if magic != _IDX_MAGIC[ndim]:
        raise DataError(f"{name}: not an IDX file with {ndim} dimension(s) (magic {magic})")
    dims = [int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    data = np.frombuffer(content, dtype=np.uint8, offset=offset)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{name}: header says {dims} but holds {data.size} values")
    return data.reshape(dims)


def _download(name: str, dest_dir: Path, mirrors: Sequence[str], sha256, timeout: float) -> Path:
    """Fetch ``name.gz`` from the first mirror that serves a verified copy."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    errors = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + name + ".gz"
        with tempfile.NamedTemporaryFile(dir=dest_dir, suffix=".gz", delete=False) as tmp:
            tmp_path = Path(tmp.name)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp_path, "wb") as out:
                shutil.copyfileobj(resp, out)
            _read_verified(tmp_path, name, sha256)  # never keep an unverified file
            final = dest_dir / (name + ".gz")
            tmp_path.replace(final)
            return final
        except (urllib.error.URLError, OSError, DataError) as exc:
            errors.append(f"{url}: {exc}")
            tmp_path.unlink(missing_ok=True)
    raise DataError(
        f"could not download {name}: "
        + "; ".join(errors)
        + f". Download the MNIST IDX files by hand into {dest_dir} or set KACNB_DATA_DIR."
    )


def _locate(name: str, root: Path) -> Path | None:
    for candidate in (root / name, root / (name + ".gz")):
        if candidate.exists():
            return candidate
    return None


def missing_mnist_files(root: str | os.PathLike) -> list[str]:
    """The MNIST file names (of :data:`MNIST_FILES`) found in ``root`` neither raw nor gzipped."""
    names = [name for pair in MNIST_FILES.values() for name in pair]
    return [name for name in names if _locate(name, Path(root)) is None]


def mnist(
    split: str = "train",
    root: str | os.PathLike | None = None,
    download: bool = True,
    mirrors: Sequence[str] = MNIST_MIRRORS,
    sha256: Mapping[str, str] = MNIST_SHA256,
    timeout: float = 60.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load an MNIST split: ``(images, labels)``.

    ``images``: float32 in ``[-1, 1]``, shape ``(N, 1, 28, 28)`` (grey level ``g`` in 0..255
    maps to ``2 g / 255 - 1``); ``labels``: int64, shape ``(N,)``. ``N`` is 60000 for
    ``"train"`` and 10000 for ``"test"``.
    """
    if split not in MNIST_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = data_root(root)
    arrays = []
    for name, ndim in zip(MNIST_FILES[split], (3, 1), strict=True):
        path = _locate(name, folder)
        if path is None:
            if not download:
                raise DataError(
                    f"{name}(.gz) not found in {folder}; pass download=True, "
                    "or set KACNB_DATA_DIR to a folder holding the MNIST IDX files"
                )
            path = _download(name, folder, mirrors, sha256, timeout)
        arrays.append(_parse_idx(_read_verified(path, name, sha256), ndim, name))
    images, labels = arrays
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{split}: {images.shape[0]} images but {labels.shape[0]} labels")
    x = torch.from_numpy(images.astype(np.float32)).div_(127.5).sub_(1.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))
