"""Stop a run whose training loss becomes NaN or inf, and record it as diverged."""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_warn

from initbench.run_record import RunRecord

log = logging.getLogger(__name__)


class DivergenceMonitor(pl.Callback):
    """Watch the training loss and stop at the first non-finite value.

    The check stays on the device: each step updates a device tensor that
    stores the first global step with a non-finite loss, and the host reads it
    every ``check_every_n_steps`` steps. Reading it is a host-device sync, so on
    a GPU the default checks once per logging interval; on the CPU there is no
    sync to avoid and the default checks every step. Either way the recorded
    step is the first non-finite one, and training stops at the next check.

    Logged key: ``train/diverged_step``, once, when the run diverges.

    Args:
        record: the run's :class:`~initbench.run_record.RunRecord`, marked as diverged.
        check_every_n_steps: steps between host reads; None picks 1 on the CPU
            and the trainer's ``log_every_n_steps`` elsewhere.
    """

    def __init__(self, record: RunRecord | None = None, check_every_n_steps: int | None = None) -> None:
        if check_every_n_steps is not None and check_every_n_steps < 1:
            raise ValueError(f"check_every_n_steps must be at least 1, got {check_every_n_steps}")
        self.record = record
        self.check_every_n_steps = check_every_n_steps
        self.diverged_step: int | None = None
        self._first_bad_step: torch.Tensor | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.check_every_n_steps is None:
            on_cpu = trainer.strategy.root_device.type == "cpu"
            self.check_every_n_steps = 1 if on_cpu else max(1, trainer.log_every_n_steps)
        self._first_bad_step = torch.full((), -1, dtype=torch.long, device=pl_module.device)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None or self.diverged_step is not None:
            return
        step = trainer.global_step - 1
        first_bad = self._first_bad_step
        not_finite = ~torch.isfinite(loss.detach())
        self._first_bad_step = torch.where(not_finite & (first_bad < 0), torch.full_like(first_bad, step), first_bad)

        if (step + 1) % self.check_every_n_steps == 0:
            self._check(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._check(trainer)

    def _check(self, trainer: pl.Trainer) -> None:
        if self._first_bad_step is None or self.diverged_step is not None:
            return
        first_bad = int(self._first_bad_step)  # host-device sync, once per check
        if first_bad < 0:
            return

        self.diverged_step = first_bad
        trainer.should_stop = True
        if self.record is not None:
            self.record.mark_diverged(first_bad)
        if trainer.logger is not None:
            trainer.logger.log_metrics({"train/diverged_step": first_bad}, step=first_bad)
        rank_zero_warn(
            f"The training loss became NaN or inf at global step {first_bad}, so the run stops and is recorded "
            "as diverged. Lower optimizer.lr or choose another init to train it."
        )
