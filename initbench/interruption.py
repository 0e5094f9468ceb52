"""Stop a run on SIGINT or SIGTERM without losing it: checkpoint, flush the logs, then exit."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import pytorch_lightning as pl

from initbench.run_record import RunRecord

log = logging.getLogger(__name__)

INTERRUPTED_CHECKPOINT = "interrupted.ckpt"
HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(Exception):
    """Raised after an interrupted run has saved its checkpoint; ``signum`` is the signal received."""

    def __init__(self, signum: int, checkpoint: Path) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}; checkpoint saved to {checkpoint}")
        self.signum = signum
        self.checkpoint = checkpoint


class GracefulInterrupt(pl.Callback):
    """Turn SIGINT (Ctrl-C) and SIGTERM into a checkpoint at the next batch boundary.

    While training runs, the signal only sets a flag. At the end of the
    current training batch, after the optimizer step, the callback saves
    ``<checkpoint_dir>/interrupted.ckpt`` with the full training state,
    including the position inside the epoch, and marks the run record as
    interrupted. At the next hook, once Lightning has logged that batch's
    metrics, it flushes the logger and raises :class:`RunInterrupted`.
    Resuming from that checkpoint continues with the next batch.

    A second SIGINT before the batch ends raises ``KeyboardInterrupt`` at once,
    for a user who does not want to wait. The previous signal handlers are
    restored when fit ends, whichever way it ends.

    Args:
        checkpoint_dir: folder for ``interrupted.ckpt``.
        record: the run's record, marked as interrupted.
    """

    def __init__(self, checkpoint_dir: str | Path, record: RunRecord | None = None) -> None:
        self.checkpoint_dir = Path(checkpoint_dir)
        self.record = record
        self.signal_received: int | None = None
        self._pending: RunInterrupted | None = None
        self._previous_handlers: dict[int, Any] = {}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Signal handlers can only be set from the main thread.
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in HANDLED_SIGNALS:
            self._previous_handlers[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal_received == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_received = signum
        log.warning(
            "Received %s: saving a checkpoint after the current batch (press Ctrl-C again to stop at once)",
            signal.Signals(signum).name,
        )

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.signal_received is None or self._pending is not None:
            return
        checkpoint = self.checkpoint_dir / INTERRUPTED_CHECKPOINT
        trainer.save_checkpoint(checkpoint)
        if self.record is not None:
            self.record.mark_interrupted()
        self._pending = RunInterrupted(self.signal_received, checkpoint)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        self._stop_if_pending(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop_if_pending(trainer)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop_if_pending(trainer)

    def _stop_if_pending(self, trainer: pl.Trainer) -> None:
        if self._pending is None:
            return
        if trainer.logger is not None:
            trainer.logger.save()
        raise self._pending

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore_handlers()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._restore_handlers()

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers = {}
