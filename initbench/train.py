"""Train the conv net on MNIST with a chosen init: ``python -m initbench.train init=kaiming``.

Hydra composes the configuration from ``configs/train.yaml``. Each run writes
its TensorBoard events, checkpoints, ``run.json`` and Hydra records into one
folder under ``lightning_logs/``, named after the init and the seed.

Exit statuses of a single run: 0 when it completes, 2 for invalid input
(config or data), 3 when the loss diverges, and 128 + the signal number
(130 for SIGINT, 143 for SIGTERM) when it is interrupted after saving a
checkpoint. In a multirun, a diverged job is recorded and the sweep goes on.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import TensorBoardLogger

from initbench.classifier import ImageClassifier
from initbench.divergence import DivergenceMonitor
from initbench.interruption import GracefulInterrupt, RunInterrupted
from initbench.mnist import DataError
from initbench.run_folders import run_folder
from initbench.run_record import RunRecord
from initbench.validation import EXIT_INVALID_INPUT, ConfigError, explain_unknown_keys, validate_config

log = logging.getLogger(__name__)

EXIT_DIVERGED = 3

def cli() -> None:
    """Entry point: complete a resume's overrides, explain unknown keys, then hand over to Hydra."""
    arguments = sys.argv[1:]
    overrides = [argument for argument in arguments if not argument.startswith("-")]
    resume = next((o.split("=", 1)[1] for o in overrides if o.startswith("resume=")), None)
    if resume is not None:
        sys.argv[1:] = _with_saved_overrides(resume, arguments)
        overrides = [argument for argument in sys.argv[1:] if not argument.startswith("-")]

    message = _unknown_key_message(overrides)
    if message:
        print(f"Error: {message}", file=sys.stderr)
        sys.exit(EXIT_INVALID_INPUT)
    main()


@hydra.main(version_base="1.3", config_path="pkg://initbench.configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Run one training job; return the final val/acc for Hydra sweepers."""
    try:
        return train(cfg)
    except (DataError, ConfigError) as error:
        log.error("%s", error)
        sys.exit(EXIT_INVALID_INPUT)
    except RunInterrupted as interruption:
        run_dir = HydraConfig.get().runtime.output_dir
        log.warning("Run %s. Continue it with: python -m initbench.train resume=%s", interruption, run_dir)
        sys.exit(128 + interruption.signum)


def train(cfg: DictConfig) -> float | None:
    """Train, validate and optionally test with config ``cfg``; return the final val/acc."""
    validate_config(cfg)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    checkpoint_path = find_checkpoint(cfg.resume) if cfg.resume else None
    pl.seed_everything(cfg.seed, workers=True)
    if cfg.matmul_precision is not None:
        torch.set_float32_matmul_precision(cfg.matmul_precision)

    datamodule = instantiate(cfg.data)
    module = build_module(cfg)
    trainer, record = build_trainer(cfg, run_dir, checkpoint_path)

    log.info("Run folder: %s", run_dir)
    trainer.fit(module, datamodule=datamodule, ckpt_path=checkpoint_path)
    if record.status == "diverged":
        log.error("The run diverged at global step %s; its logs and checkpoints are in %s", record.diverged_step, run_dir)
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            sys.exit(EXIT_DIVERGED)
        return None

    if cfg.test_after_fit:
        trainer.test(module, datamodule=datamodule, ckpt_path="best")
    return record.final_metrics(trainer).get("val/acc")


def build_module(cfg: DictConfig) -> ImageClassifier:
    """Build the LightningModule that trains the net of ``cfg.model`` with the optimizer of ``cfg.optimizer``."""
    return ImageClassifier(
        net=instantiate(cfg.model),
        optimizer=OmegaConf.to_container(cfg.optimizer, resolve=True),
        num_classes=cfg.model.num_classes,
        compile=cfg.compile,
        channels_last=cfg.channels_last,
    )


def build_trainer(cfg: DictConfig, run_dir: Path, checkpoint_path: str | None) -> tuple[pl.Trainer, RunRecord]:
    """Create the trainer with its logger and callbacks; return it with the run's record."""
    logger = TensorBoardLogger(save_dir=str(run_dir), name="", version="", default_hp_metric=False)
    checkpoint_dir = cfg.checkpoint.dirpath or str(run_dir / "checkpoints")
    record = RunRecord(run_dir, run_hparams(cfg), resumed_from=checkpoint_path)
    callbacks = [
        instantiate(cfg.init),
        instantiate(cfg.checkpoint, dirpath=checkpoint_dir),
        record,
        DivergenceMonitor(record),
        GracefulInterrupt(checkpoint_dir, record),
    ]
    if cfg.stats is not None:
        callbacks.append(instantiate(cfg.stats))
    callbacks += [instantiate(callback) for callback in (cfg.callbacks or {}).values() if callback is not None]
    trainer = instantiate(cfg.trainer, logger=logger, callbacks=callbacks, default_root_dir=str(run_dir))
    return trainer, record


def find_checkpoint(resume: str) -> str:
    """Return the checkpoint to resume from: ``resume`` itself, or the newest one in a run folder."""
    path = Path(str(resume)).expanduser()
    if path.is_file():
        return str(path)
    candidates = sorted((path / "checkpoints").glob("*.ckpt"), key=lambda file: file.stat().st_mtime)
    if not candidates:
        raise ConfigError(f"resume={resume} is invalid: {path / 'checkpoints'} contains no .ckpt file; pass a checkpoint path instead")
    return str(candidates[-1])


def run_hparams(cfg: DictConfig) -> dict[str, Any]:
    """Flatten the choices and numbers that define a run, for TensorBoard's HParams dashboard."""
    choices = HydraConfig.get().runtime.choices
    params: dict[str, Any] = {"init": choices.get("init"), "seed": cfg.seed}
    for key in ("compile", "channels_last", "matmul_precision"):
        params[key] = str(cfg[key]) if cfg[key] is None else cfg[key]
    for group in ("init", "optimizer", "model", "data", "trainer"):
        params.setdefault(group, choices.get(group))
        section = OmegaConf.to_container(cfg[group], resolve=True)
        for key, value in section.items():
            if key in ("_target_", "seed", "cache_dir", "file", "sources", "expected_sizes"):
                continue
            params[f"{group}/{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    params["init/_target_"] = cfg.init._target_
    return params


def _with_saved_overrides(resume: str, arguments: list[str]) -> list[str]:
    """Put the resumed run's own overrides before the command line's, which take precedence.

    An argument for key ``k`` replaces the saved overrides of ``k`` and of its
    subkeys ``k.*``, so ``~callbacks.extra`` drops a callback that the saved
    overrides added with ``+callbacks.extra._target_=...``.
    """
    saved_file = Path(run_folder("", "", resume)) / ".hydra" / "overrides.yaml"
    if not saved_file.is_file():
        return arguments
    saved = [str(o) for o in OmegaConf.load(saved_file) if not str(o).startswith("resume=")]

    remaining, consumed_deletions = [], set()
    for override in saved:
        key = _override_key(override)
        replaced_by = [a for a in arguments if not a.startswith("-") and _covers(_override_key(a), key)]
        if not replaced_by:
            remaining.append(override)
        consumed_deletions.update(a for a in replaced_by if a.startswith("~") and override.startswith("+"))
    return remaining + [a for a in arguments if a not in consumed_deletions]


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _covers(key: str, other: str) -> bool:
    return other == key or other.startswith(key + ".")


def _unknown_key_message(overrides: list[str]) -> str | None:
    from hydra import compose, initialize_config_module

    try:
        with initialize_config_module(config_module="initbench.configs", version_base="1.3"):
            return explain_unknown_keys(
                overrides, lambda chosen: compose(config_name="train", overrides=chosen, return_hydra_config=True)
            )
    except Exception:  # noqa: BLE001 - any other composition error is Hydra's to report, with its own message
        return None


if __name__ == "__main__":
    cli()
