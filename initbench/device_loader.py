"""Batches drawn by index from tensors that already sit on the training device.

MNIST fits in memory on any device (50,000 x 784 float32 is about 157 MB), so
the data module moves the normalized tensors to the device once. Each batch is
then one index gather on that device: no per-sample ``Dataset.__getitem__``, no
collate and no host-to-device copy per step.
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import torch


class DeviceBatchLoader:
    """Iterate over ``(images, labels)`` batches of tensors held on one device.

    With ``shuffle``, every epoch draws a fresh permutation from a generator
    seeded with ``seed``, so the order depends only on the seed and the epoch.
    With ``num_replicas > 1``, the permutation is padded to a multiple of
    ``num_replicas`` and each rank takes every ``num_replicas``-th index. This is
    the contract of ``torch.utils.data.DistributedSampler``, so each epoch covers
    the data once across the ranks, and all ranks get the same number of batches.

    The loader is stateful (``state_dict``/``load_state_dict``), so Lightning
    saves the epoch and the position inside it with a checkpoint, and a run that
    resumes mid-epoch continues with the next batch it would have trained on.
    The epoch counter advances when an iteration starts, not when it is
    exhausted, because Lightning stops after ``len(loader)`` batches without
    asking for more. Lightning 2.6 draws no batch ahead from a loader that has
    a length, so the batches drawn are the batches trained on.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"images ({images.shape[0]}) and labels ({labels.shape[0]}) differ in length")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside [0, {num_replicas})")
        self.images = images
        self.labels = labels
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self._position = 0
        self._resume_batch = 0

    @property
    def samples_per_replica(self) -> int:
        """Number of samples this rank draws in one epoch."""
        return math.ceil(len(self.labels) / self.num_replicas)

    def __len__(self) -> int:
        if self.drop_last:
            return self.samples_per_replica // self.batch_size
        return math.ceil(self.samples_per_replica / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield the batches of epoch :attr:`epoch`, from the resumed position if there is one."""
        epoch = self.epoch
        indices = self._epoch_indices(epoch)
        first_batch = self._resume_batch
        self._resume_batch = 0
        self._position = first_batch
        self.epoch = epoch + 1

        for batch in range(first_batch, len(self)):
            start = batch * self.batch_size
            batch_indices = indices[start:start + self.batch_size]
            self._position = batch + 1
            yield self.images[batch_indices], self.labels[batch_indices]

    def _epoch_indices(self, epoch: int) -> torch.Tensor:
        count = len(self.labels)
        device = self.labels.device
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            # Drawn on the CPU, so the order is the same on every device, then moved.
            order = torch.randperm(count, generator=generator).to(device)
        else:
            order = torch.arange(count, device=device)

        if self.num_replicas > 1:
            padding = self.samples_per_replica * self.num_replicas - count
            if padding:
                order = torch.cat([order, order[:padding]])
            order = order[self.rank::self.num_replicas]
        return order

    def state_dict(self) -> dict[str, Any]:
        """Return the epoch in progress and how many of its batches were drawn."""
        if self._resume_batch:
            return {"epoch": self.epoch, "batch": self._resume_batch, "seed": self.seed}
        if 0 < self._position < len(self):
            return {"epoch": self.epoch - 1, "batch": self._position, "seed": self.seed}
        return {"epoch": self.epoch, "batch": 0, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict`: the next iteration resumes inside that epoch."""
        self.epoch = int(state["epoch"])
        self._resume_batch = int(state["batch"])
        self._position = 0
        self.seed = int(state.get("seed", self.seed))
