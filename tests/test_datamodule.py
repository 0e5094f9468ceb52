"""Tests of the MNIST data module on a tiny file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from initbench.datamodule import MNISTDataModule

from conftest import make_splits


@pytest.fixture
def datamodule(tiny_mnist, tmp_path) -> MNISTDataModule:
    module = MNISTDataModule(cache_dir=str(tmp_path / "cache"), file=str(tiny_mnist), expected_sizes=None, batch_size=32)
    module.setup()
    return module


def test_normalization_uses_training_statistics(datamodule):
    (train_images, _), (val_images, _), _ = make_splits()
    mean = train_images.astype(np.float64).mean()
    std = train_images.astype(np.float64).std(ddof=1)

    expected_val = (val_images - mean) / std

    assert datamodule.mean == pytest.approx(mean, rel=1e-5)
    assert datamodule.std == pytest.approx(std, rel=1e-5)
    np.testing.assert_allclose(datamodule.splits.val_images.reshape(64, 784).numpy(), expected_val, atol=1e-5)


def test_normalized_training_images_have_unit_scale(datamodule):
    images = datamodule.splits.train_images

    assert float(images.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(images.std()) == pytest.approx(1.0, abs=1e-5)


def test_train_loader_batches(datamodule):
    loader = datamodule.train_dataloader()
    images, labels = next(iter(loader))

    assert len(loader) == 8
    assert images.shape == (32, 1, 28, 28)
    assert labels.dtype == torch.int64


def test_fixed_batch_is_first_validation_images(datamodule):
    images, labels = datamodule.fixed_batch("val", 10)

    assert torch.equal(images, datamodule.splits.val_images[:10])
    assert torch.equal(labels, torch.from_numpy(make_splits()[1][1][:10]))
