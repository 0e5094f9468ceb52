"""A callback for the tests: send a signal to this process at one global step."""

from __future__ import annotations

import os
import signal

import pytorch_lightning as pl


class SendSignalAtStep(pl.Callback):
    """Send ``signum`` (a name such as SIGINT) to the own process when training reaches ``step``."""

    def __init__(self, step: int, signum: str = "SIGINT") -> None:
        self.step = step
        self.signum = signal.Signals[signum]

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)
