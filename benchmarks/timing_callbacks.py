"""Lightning callbacks that time a fit for ``benchmarks/throughput.py``.

Both are plain importable classes, so the training CLI can add them as extra
callbacks, such as ``+callbacks.probe._target_=timing_callbacks.StartupProbe``,
when this folder is on ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch


class EpochTimer(pl.Callback):
    """Measure the wall time of every training epoch, from ``on_train_epoch_start`` to ``on_train_epoch_end``.

    The window contains the training steps and the per-step and per-epoch hooks of
    the callbacks that run before this one, so add it after them. It excludes
    setup, the data load, validation and the checkpoints that ``ModelCheckpoint``
    writes at the end of an epoch, because Lightning calls that callback last.
    On a CUDA device both ends synchronize, so queued kernels count.

    Attributes:
        epoch_seconds: duration of each finished training epoch, in seconds.
        epoch_images: number of training images in each finished epoch.
    """

    def __init__(self) -> None:
        self.epoch_seconds: list[float] = []
        self.epoch_images: list[int] = []
        self._start: float | None = None
        self._images = 0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        synchronize(pl_module.device)
        self._images = 0
        self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # Reading a shape does not wait for the device.
        self._images += len(batch[1])

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._start is None:
            return
        synchronize(pl_module.device)
        self.epoch_seconds.append(time.perf_counter() - self._start)
        self.epoch_images.append(self._images)
        self._start = None


class StartupProbe(pl.Callback):
    """Write the wall-clock times (``time.time()``) of the first stages of a fit to a JSON file.

    The keys, in the order in which a fit reaches them:

    - ``built``: the probe was created, which ``initbench.train`` does after its
      imports, the Hydra config and the model are ready and before the trainer exists;
    - ``setup``: Lightning called ``setup``, after ``prepare_data`` and the data
      module's ``setup`` loaded the data and moved it to the device;
    - ``train_start``: ``on_train_start``, after the model, the optimizer, the init
      scheme and the other ``on_fit_start``/``on_train_start`` hooks;
    - ``first_batch``: the first ``on_train_batch_start``, right before the first
      training step.

    The file is written once, at the first batch.

    Args:
        output: path of the JSON file to write.
    """

    def __init__(self, output: str) -> None:
        self.output = Path(output)
        self.times: dict[str, float] = {"built": time.time()}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.times.setdefault("setup", time.time())

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.times.setdefault("train_start", time.time())

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        if "first_batch" in self.times:
            return
        self.times["first_batch"] = time.time()
        self.output.write_text(json.dumps(self.times), encoding="utf-8")


def synchronize(device: torch.device) -> None:
    """Wait for the kernels queued on ``device``; a no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
