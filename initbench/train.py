"""Train the conv net on MNIST with a chosen init: ``python -m initbench.train init=kaiming``.

Hydra composes the configuration from ``configs/train.yaml``; each run writes
its TensorBoard events, checkpoints and Hydra records into one folder under
``lightning_logs/``, named after the init and the seed.
"""

from __future__ import annotations

import logging
import secrets
import sys
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from hydra.types import RunMode
from pytorch_lightning.loggers import TensorBoardLogger

from initbench.classifier import ImageClassifier
from initbench.divergence import DivergenceMonitor
from initbench.mnist import DataError
from initbench.run_record import RunRecord

log = logging.getLogger(__name__)

# One id per process, so that two runs started in the same second with the same
# config still get different folders.
RUN_ID = secrets.token_hex(3)
OmegaConf.register_new_resolver("initbench_run_id", lambda: RUN_ID, replace=True)

# Exit statuses of a single run; in a multirun, a diverged job is recorded and the sweep goes on.
EXIT_INVALID_INPUT = 2
EXIT_DIVERGED = 3


@hydra.main(version_base="1.3", config_path="pkg://initbench.configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Run one training job; return the final val/acc for Hydra sweepers."""
    try:
        return train(cfg)
    except DataError as error:
        log.error("%s", error)
        sys.exit(EXIT_INVALID_INPUT)


def train(cfg: DictConfig) -> float | None:
    """Train, validate and optionally test as ``cfg`` says; return the final val/acc."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    pl.seed_everything(cfg.seed, workers=True)

    datamodule = instantiate(cfg.data)
    module = ImageClassifier(
        net=instantiate(cfg.model),
        optimizer=OmegaConf.to_container(cfg.optimizer, resolve=True),
        num_classes=cfg.model.num_classes,
    )
    logger = TensorBoardLogger(save_dir=str(run_dir), name="", version="", default_hp_metric=False)
    record = RunRecord(run_dir, run_hparams(cfg))
    callbacks = [
        instantiate(cfg.init),
        instantiate(cfg.checkpoint, dirpath=cfg.checkpoint.dirpath or str(run_dir / "checkpoints")),
        record,
        DivergenceMonitor(record),
    ]
    trainer: pl.Trainer = instantiate(cfg.trainer, logger=logger, callbacks=callbacks, default_root_dir=str(run_dir))

    log.info("Run folder: %s", run_dir)
    trainer.fit(module, datamodule=datamodule)
    if record.status == "diverged":
        log.error("The run diverged at global step %s; its logs and checkpoints are in %s", record.diverged_step, run_dir)
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            sys.exit(EXIT_DIVERGED)
        return None

    if cfg.test_after_fit:
        trainer.test(module, datamodule=datamodule, ckpt_path="best")
    return record.final_metrics(trainer).get("val/acc")


def run_hparams(cfg: DictConfig) -> dict[str, Any]:
    """Flatten the choices and numbers that define a run, for TensorBoard's HParams dashboard."""
    choices = HydraConfig.get().runtime.choices
    params: dict[str, Any] = {"init": choices.get("init"), "seed": cfg.seed}
    for group in ("init", "optimizer", "model", "data", "trainer"):
        params.setdefault(group, choices.get(group))
        section = OmegaConf.to_container(cfg[group], resolve=True)
        for key, value in section.items():
            if key in ("_target_", "seed", "cache_dir", "file", "sources", "expected_sizes"):
                continue
            params[f"{group}/{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    params["init/_target_"] = cfg.init._target_
    return params


if __name__ == "__main__":
    main()
