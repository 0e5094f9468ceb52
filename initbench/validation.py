"""Check a training config before anything runs, and explain bad overrides.

Hydra itself rejects an unknown option such as ``init=nope`` and lists the
choices. The checks here add what Hydra cannot know: the accepted range of
each number, the accelerators this machine has, a writable log folder, and
the valid keys next to a misspelled one such as ``trainer.max_epoch``.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

from hydra.experimental.callback import Callback as HydraCallback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

EXIT_INVALID_INPUT = 2
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
MATMUL_PRECISIONS = ("highest", "high", "medium")


class ConfigError(ValueError):
    """A config value outside its accepted range; the message names key, value and range."""


def validate_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` listing every invalid value in the training config ``cfg``."""
    problems = [problem for check in _CHECKS for problem in check(cfg)]
    if problems:
        raise ConfigError("Invalid configuration:\n" + "\n".join(f"  - {problem}" for problem in problems))


def check_log_dir(path: str | os.PathLike) -> None:
    """Raise :class:`ConfigError` unless the run folders can be created under ``path``."""
    folder = Path(path).expanduser().absolute()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent

    if not existing.is_dir():
        raise ConfigError(
            f"Invalid log_dir={path}: {existing} is a file, not a folder. "
            "Move the file away or set log_dir=/another/folder."
        )
    try:
        # A real write, because os.access ignores read-only mounts and is always true for root.
        os.rmdir(tempfile.mkdtemp(prefix=".initbench-write-check-", dir=existing))
    except OSError as error:
        raise ConfigError(
            f"Invalid log_dir={path}: the folder {existing} is not writable ({error.strerror}). "
            "Fix its permissions or set log_dir=/a/writable/folder."
        ) from error


class ValidateBeforeRun(HydraCallback):
    """Hydra callback that checks the config before Hydra creates the run folder.

    It is registered in ``configs/train.yaml`` under ``hydra.callbacks``. A
    single run is checked in ``on_run_start``; in a multirun, the shared
    values are checked once in ``on_multirun_start`` and each job's own
    values in ``on_job_start``. An invalid config prints one message and
    exits with status 2, without a traceback.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _exit_on_error(lambda: _check_all(config))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _exit_on_error(lambda: check_log_dir(config.log_dir))

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        # NOTE: in a multirun, Hydra has created the job's folder by now. A bad swept
        # value therefore leaves an empty job folder. Shared values are checked earlier.
        if OmegaConf.select(config, "hydra.mode") is not None and str(config.hydra.mode) == "RunMode.MULTIRUN":
            _exit_on_error(lambda: validate_config(config))


def _check_all(config: DictConfig) -> None:
    validate_config(config)
    check_log_dir(config.log_dir)


def _exit_on_error(check: Callable[[], None]) -> None:
    try:
        check()
    except ConfigError as error:
        print(f"Error: {error}", file=sys.stderr)
        sys.exit(EXIT_INVALID_INPUT)


def explain_unknown_keys(overrides: Iterable[str], compose: Callable[[list[str]], DictConfig]) -> str | None:
    """Return a message for the first override that sets a key the config does not have, else None.

    ``compose`` builds the config, with its ``hydra`` node, from a list of
    overrides. Overrides that add keys (``+key=``), delete them (``~key``) or
    select a group option are left to Hydra, and so are keys inside a group
    whose option is swept, because each option may have other keys.
    """
    assignments = [o for o in overrides if "=" in o and o[0] not in "+~" and "@" not in o.split("=", 1)[0]]
    groups = set(compose([]).hydra.runtime.choices.keys())
    choices = [o for o in assignments if o.split("=", 1)[0] in groups]
    swept_groups = {o.split("=", 1)[0] for o in choices if _is_sweep(o)}
    config = compose([o for o in choices if not _is_sweep(o)])

    for override in assignments:
        key = override.split("=", 1)[0]
        if key in groups or key.startswith("hydra.") or key.split(".")[0] in swept_groups:
            continue
        parent_key, _, leaf = key.rpartition(".")
        parent = OmegaConf.select(config, parent_key) if parent_key else config
        if isinstance(parent, DictConfig) and leaf not in parent:
            valid = sorted(str(name) for name in parent.keys() if str(name) != "hydra")
            where = f"'{parent_key}'" if parent_key else "the top level"
            return (
                f"Unknown config key '{key}' in the override {override!r}. "
                f"Valid keys in {where}: {', '.join(valid)}. "
                f"To add a new key on purpose, write +{override}."
            )
    return None


def _is_sweep(override: str) -> bool:
    value = override.split("=", 1)[1]
    return "," in value and not value.lstrip().startswith("[") or value.startswith(("range(", "choice(", "glob("))


# Range checks. Each takes the whole config and yields messages.

def _integer(cfg: DictConfig, key: str, minimum: int, allowed: tuple = ()) -> Iterable[str]:
    value = OmegaConf.select(cfg, key, default=None)
    if value is None or value in allowed:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        extra = f" or one of {list(allowed)}" if allowed else ""
        yield f"{key}={value!r} is invalid: expected an integer >= {minimum}{extra}"


def _number(cfg: DictConfig, key: str, minimum: float, strict: bool = True, maximum: float | None = None) -> Iterable[str]:
    value = OmegaConf.select(cfg, key, default=None)
    if value is None:
        return
    low = f"> {minimum}" if strict else f">= {minimum}"
    high = f" and < {maximum}" if maximum is not None else ""
    valid = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > minimum if strict else value >= minimum)
        and (maximum is None or value < maximum)
    )
    if not valid:
        yield f"{key}={value!r} is invalid: expected a finite number {low}{high}"


def _check_numbers(cfg: DictConfig) -> Iterable[str]:
    yield from _integer(cfg, "seed", 0)
    yield from _integer(cfg, "data.batch_size", 1)
    yield from _integer(cfg, "data.eval_batch_size", 1)
    yield from _integer(cfg, "trainer.max_epochs", 1, allowed=(-1,))
    yield from _integer(cfg, "trainer.max_steps", 1, allowed=(-1,))
    yield from _integer(cfg, "trainer.log_every_n_steps", 1)
    yield from _integer(cfg, "trainer.devices", 1, allowed=(-1, "auto"))
    yield from _number(cfg, "optimizer.lr", 0.0)
    yield from _number(cfg, "optimizer.momentum", 0.0, strict=False, maximum=1.0)
    yield from _number(cfg, "optimizer.weight_decay", 0.0, strict=False)
    yield from _number(cfg, "init.gain", 0.0)
    yield from _number(cfg, "init.a", -math.inf, strict=False)


def _check_stats(cfg: DictConfig) -> Iterable[str]:
    stats = OmegaConf.select(cfg, "stats", default=None)
    if not isinstance(stats, DictConfig):
        return
    for key in stats:
        if str(key).endswith("every_n_steps"):
            yield from _integer(cfg, f"stats.{key}", 1)
    yield from _integer(cfg, "stats.image_max_steps", 2)
    yield from _integer(cfg, "stats.bins", 2)
    yield from _integer(cfg, "stats.snapshot_images", 0)
    yield from _number(cfg, "stats.near_zero_threshold", 0.0, strict=False)
    yield from _check_stats_layers(cfg)


def _check_stats_layers(cfg: DictConfig) -> Iterable[str]:
    layers = OmegaConf.select(cfg, "stats.layers", default=None)
    if layers is None:
        return
    if not OmegaConf.is_list(layers) or not all(isinstance(entry, str) and entry for entry in layers):
        yield f"stats.layers={layers!r} is invalid: expected a list of layer names or types, such as [conv1,ReLU], or null"
        return
    model = OmegaConf.select(cfg, "model", default=None)
    if model is None:
        return
    # Imported here because they load torch, which the other checks do not need.
    from hydra.utils import instantiate

    from initbench.stats_callback import select_layers

    try:
        net = instantiate(model)
    except Exception:  # noqa: BLE001 - the model's own check reports a model that cannot be built
        return
    record_output = OmegaConf.select(cfg, "stats.record_output", default=True)
    try:
        select_layers(net, list(layers), record_output is True)
    except ValueError as error:
        yield str(error)


def _check_model(cfg: DictConfig) -> Iterable[str]:
    channels = OmegaConf.select(cfg, "model.channels", default=None)
    kernels = OmegaConf.select(cfg, "model.kernel_sizes", default=None)
    for key, values in (("model.channels", channels), ("model.kernel_sizes", kernels)):
        if values is not None and not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
            yield f"{key}={list(values)!r} is invalid: expected a list of integers >= 1"
    if channels is not None and kernels is not None and len(kernels) != len(channels) + 1:
        yield (
            f"model.kernel_sizes has {len(kernels)} entries but model.channels has {len(channels)}: "
            "expected one kernel size per conv layer, len(channels) + 1"
        )
    yield from _integer(cfg, "model.num_classes", 2)


def _check_accelerator(cfg: DictConfig) -> Iterable[str]:
    accelerator = OmegaConf.select(cfg, "trainer.accelerator", default="auto")
    available = _available_accelerators()
    if accelerator not in ACCELERATORS:
        yield f"trainer.accelerator={accelerator!r} is invalid: expected one of {list(ACCELERATORS)}"
    elif accelerator not in available:
        yield (
            f"trainer.accelerator={accelerator!r} is not available on this machine: "
            f"expected one of {list(available)}"
        )


def _available_accelerators() -> tuple[str, ...]:
    import torch

    available = ["auto", "cpu"]
    if torch.cuda.is_available():
        available += ["gpu", "cuda"]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        available.append("mps")
    return tuple(available)


def _check_speed_options(cfg: DictConfig) -> Iterable[str]:
    for key in ("compile", "channels_last"):
        value = OmegaConf.select(cfg, key, default=False)
        if not isinstance(value, bool):
            yield f"{key}={value!r} is invalid: expected true or false"
    precision = OmegaConf.select(cfg, "matmul_precision", default=None)
    if precision is not None and precision not in MATMUL_PRECISIONS:
        yield f"matmul_precision={precision!r} is invalid: expected one of {list(MATMUL_PRECISIONS)} or null"


def _check_data_file(cfg: DictConfig) -> Iterable[str]:
    file = OmegaConf.select(cfg, "data.file", default=None)
    if file is not None and not Path(str(file)).expanduser().is_file():
        yield f"data.file={file} is invalid: the file does not exist. Pass an existing mnist.pkl.gz or drop data.file"


def _check_resume(cfg: DictConfig) -> Iterable[str]:
    resume = OmegaConf.select(cfg, "resume", default=None)
    if resume is not None and not Path(str(resume)).expanduser().exists():
        yield f"resume={resume} is invalid: no such run folder or checkpoint"


_CHECKS = (
    _check_numbers,
    _check_stats,
    _check_model,
    _check_accelerator,
    _check_speed_options,
    _check_data_file,
    _check_resume,
)
