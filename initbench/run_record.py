"""The record of one run: hyperparameters, final metrics and how the run ended.

Besides the TensorBoard events, every run folder gets ``run.json``::

    {"status": "running" | "completed" | "diverged" | "interrupted" | "failed",
     "hparams": {...}, "global_step": int, "diverged_step": int | null,
     "final_metrics": {...}, "started": ISO time, "ended": ISO time | null,
     "resumed_from": checkpoint path | null}

It is written atomically when fit starts and again when it ends, so a run that
is still in progress or was killed reads as ``running``, and tools such as
``initbench.compare`` can tell it apart from a finished run.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_only

RECORD_NAME = "run.json"
FINAL_METRICS = ("val/acc", "val/loss", "train/loss")


class RunRecord(pl.Callback):
    """Log the run's hyperparameters to TensorBoard and keep ``run.json`` up to date.

    Logged keys: the HParams summary of ``hparams`` with the metrics
    ``hp/val/acc``, ``hp/val/loss``, ``hp/train/loss`` and ``hp/diverged``. They
    are NaN at step 0 and receive their final values at the last global step,
    so the HParams dashboard shows each run's final metrics.

    Args:
        run_dir: the run folder, where ``run.json`` is written.
        hparams: flat mapping of names to numbers, strings or booleans.
        resumed_from: the checkpoint this run resumed from, if any.
    """

    def __init__(self, run_dir: str | os.PathLike, hparams: dict[str, Any], resumed_from: str | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.hparams = dict(hparams)
        self.resumed_from = resumed_from
        self.status = "running"
        self.diverged_step: int | None = None
        self.started = _now()

    def mark_diverged(self, step: int) -> None:
        """Record that the loss became non-finite at global step ``step``."""
        self.status = "diverged"
        self.diverged_step = step

    def mark_interrupted(self) -> None:
        """Record that the run was stopped by a signal before it finished."""
        self.status = "interrupted"

    @rank_zero_only
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        placeholders = {f"hp/{name}": math.nan for name in FINAL_METRICS} | {"hp/diverged": math.nan}
        if trainer.logger is not None:
            trainer.logger.log_hyperparams(self.hparams, placeholders)
        self._write(trainer, ended=None)

    @rank_zero_only
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.status == "running":
            self.status = "completed"
        final = self.final_metrics(trainer)
        if trainer.logger is not None:
            trainer.logger.log_metrics({f"hp/{name}": value for name, value in final.items()}, step=trainer.global_step)
            trainer.logger.save()
        self._write(trainer, ended=_now(), final=final)

    @rank_zero_only
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        interrupted = isinstance(exception, KeyboardInterrupt) or self.status == "interrupted"
        self.status = "interrupted" if interrupted else "failed"
        self._write(trainer, ended=_now(), final=self.final_metrics(trainer), error=repr(exception))

    def final_metrics(self, trainer: pl.Trainer) -> dict[str, float]:
        """Return the last logged value of each final metric, and 1.0 or 0.0 for ``diverged``."""
        final = {name: float(trainer.callback_metrics[name]) for name in FINAL_METRICS
                 if name in trainer.callback_metrics}
        final["diverged"] = 1.0 if self.status == "diverged" else 0.0
        return final

    def _write(self, trainer: pl.Trainer, ended: str | None, final: dict | None = None, error: str | None = None) -> None:
        record = {
            "status": self.status,
            "hparams": self.hparams,
            "global_step": trainer.global_step,
            "diverged_step": self.diverged_step,
            "final_metrics": final or {},
            "started": self.started,
            "ended": ended,
            "resumed_from": self.resumed_from,
        }
        if error is not None:
            record["error"] = error
        write_json_atomically(self.run_dir / RECORD_NAME, record)


def read_run_record(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """Return the parsed ``run.json`` of ``run_dir``, or None when there is none."""
    path = Path(run_dir) / RECORD_NAME
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as stream:
        return json.load(stream)


def write_json_atomically(path: Path, content: dict[str, Any]) -> None:
    """Write ``content`` as JSON through a temporary file and a rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(content, stream, indent=2, allow_nan=True)
            stream.write("\n")
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
