"""The LightningModule that trains a classifier net with cross-entropy."""

from __future__ import annotations

from typing import Any, Mapping

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from torch import Tensor, nn
from torch.nn import functional as F
from torchmetrics.classification import MulticlassAccuracy


class ImageClassifier(pl.LightningModule):
    """Train ``net`` with cross-entropy and report loss and accuracy.

    Logged keys: ``train/loss`` and ``train/acc`` of the current batch at every
    ``trainer.log_every_n_steps``-th step, ``val/loss`` and ``val/acc`` per validation run, and
    ``test/loss`` and ``test/acc`` per test run.

    Args:
        net: the plain ``nn.Module`` that maps images to logits.
        optimizer: a Hydra config with ``_target_``, such as
            ``{"_target_": "torch.optim.SGD", "lr": 0.05, "momentum": 0.9}``;
            it is instantiated with the module's parameters.
        num_classes: number of classes, for the accuracy metric.
        compile: compile the net with ``torch.compile`` (``nn.Module.compile``,
            which keeps the layer names, so forward hooks still find them).
        channels_last: store the net's weights and the input batches in the
            channels-last memory format, which suits tensor cores on GPUs.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Mapping[str, Any],
        num_classes: int = 10,
        compile: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        # The run's own record logs the hyperparameters, so Lightning must not log a second set.
        self.save_hyperparameters(ignore=["net"], logger=False)
        self.net = net
        self.val_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")

    def configure_model(self) -> None:
        if self.hparams.channels_last:
            self.net.to(memory_format=torch.channels_last)
        if self.hparams.compile:
            self.net.compile()

    def forward(self, images: Tensor) -> Tensor:
        if self.hparams.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.net(images)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss, logits, labels = self._shared_step(batch)
        # Each self.log call costs Lightning about a millisecond on a slow CPU, more than
        # a training step at batch 64, so the step logs only when Lightning writes to the
        # logger: at every log_every_n_steps-th optimizer step.
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:
            accuracy = (logits.detach().argmax(dim=1) == labels).float().mean()
            # No prog_bar: Lightning 2.6 calls .item() on progress-bar values after every
            # batch, a host-device sync per step on a GPU, even on steps that log nothing.
            self.log("train/loss", loss, on_step=True, on_epoch=False)
            self.log("train/acc", accuracy, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        loss, logits, labels = self._shared_step(batch)
        self.val_acc(logits, labels)
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, sync_dist=True)
        self.log("val/acc", self.val_acc, on_epoch=True, prog_bar=True)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        loss, logits, labels = self._shared_step(batch)
        self.test_acc(logits, labels)
        self.log("test/loss", loss, on_epoch=True, sync_dist=True)
        self.log("test/acc", self.test_acc, on_epoch=True)

    def _shared_step(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        images, labels = batch
        logits = self(images)
        return F.cross_entropy(logits, labels), logits, labels

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return instantiate(self.hparams.optimizer, params=self.parameters())
