"""The MNIST LightningDataModule: the classic 50k/10k/10k split, normalized, on the device."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import pytorch_lightning as pl
import torch

from initbench.device_loader import DeviceBatchLoader
from initbench.mnist import CLASSIC_SIZES, SOURCES, MNISTSplits, load_mnist

log = logging.getLogger(__name__)


class MNISTDataModule(pl.LightningDataModule):
    """Serve MNIST batches drawn on the training device.

    Every split is normalized with the mean and std of the training images,
    which are stored in ``mean`` and ``std`` after :meth:`setup`. The tensors
    are moved to the trainer's root device once; the loaders then gather
    batches by index there (see :class:`~initbench.device_loader.DeviceBatchLoader`).

    Args:
        cache_dir: folder that contains the cached ``mnist.pkl.gz``.
        file: an explicit ``mnist.pkl.gz``; when set, no other source is tried.
        sources: the sources to try, in order, from :data:`initbench.mnist.SOURCES`.
        expected_sizes: image counts of the train, val and test splits, or None to accept any.
        batch_size: training batch size.
        eval_batch_size: batch size for validation and test.
        seed: seed of the shuffling order; epoch ``e`` uses ``seed + e``.
    """

    def __init__(
        self,
        cache_dir: str = "~/.cache/initbench",
        file: str | None = None,
        sources: Sequence[str] = SOURCES,
        expected_sizes: Sequence[int] | None = CLASSIC_SIZES,
        batch_size: int = 64,
        eval_batch_size: int = 1000,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.cache_dir = Path(cache_dir).expanduser()
        self.file = file
        self.sources = tuple(sources)
        self.expected_sizes = None if expected_sizes is None else tuple(expected_sizes)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.seed = seed
        self.splits: MNISTSplits | None = None
        self.mean: float | None = None
        self.std: float | None = None
        self._train_loader: DeviceBatchLoader | None = None

    def prepare_data(self) -> None:
        """Fetch the data into the cache once, on one process per machine."""
        self._load()

    def setup(self, stage: str | None = None) -> None:
        """Load, normalize and move every split to the trainer's device."""
        if self.splits is not None:
            return
        raw = self._load()
        self.mean = float(raw.train_images.mean())
        self.std = float(raw.train_images.std())
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        self.splits = MNISTSplits(
            source=raw.source,
            **{
                field: self._normalized(tensor).to(device) if field.endswith("images") else tensor.to(device)
                for field, tensor in _fields(raw).items()
            },
        )
        log.info("MNIST from %s, normalized with mean %.4f and std %.4f, on %s", raw.source, self.mean, self.std, device)

    def _load(self) -> MNISTSplits:
        if getattr(self, "_raw", None) is None:
            self._raw = load_mnist(self.cache_dir, self.file, self.sources, self.expected_sizes)
        return self._raw

    def _normalized(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std

    def train_dataloader(self) -> DeviceBatchLoader:
        """Return the shuffled training loader; the same object every epoch, so its state carries over."""
        if self._train_loader is None:
            images, labels = self._split("train")
            self._train_loader = DeviceBatchLoader(
                images, labels, self.batch_size, shuffle=True, seed=self.seed, **self._replica_args()
            )
        return self._train_loader

    def val_dataloader(self) -> DeviceBatchLoader:
        images, labels = self._split("val")
        return DeviceBatchLoader(images, labels, self.eval_batch_size, **self._replica_args())

    def test_dataloader(self) -> DeviceBatchLoader:
        images, labels = self._split("test")
        return DeviceBatchLoader(images, labels, self.eval_batch_size, **self._replica_args())

    def fixed_batch(self, split: str = "val", count: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the first ``count`` normalized images and labels of ``split``, the same for every run."""
        images, labels = self._split(split)
        return images[:count], labels[:count]

    def _split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if self.splits is None:
            self.setup()
        return self.splits.split(name)

    def _replica_args(self) -> dict[str, int]:
        if self.trainer is None:
            return {"num_replicas": 1, "rank": 0}
        return {"num_replicas": self.trainer.world_size, "rank": self.trainer.global_rank}


def _fields(splits: MNISTSplits) -> dict[str, torch.Tensor]:
    return {
        f"{split}_{kind}": tensor
        for split in ("train", "val", "test")
        for kind, tensor in zip(("images", "labels"), splits.split(split))
    }
