"""Names of run and sweep folders, as OmegaConf resolvers for the Hydra configs.

Importing this module registers the resolvers:

* ``${initbench_run_id:}``: a random id, one per process, so two runs started in
  the same second with the same config still get different folders;
* ``${initbench_run_stamp:}``: the process's start time, ``YYYYmmdd-HHMMSS``;
* ``${initbench_run_folder:log_dir,run_name,resume}``: a new run's folder, or
  the folder of the run that ``resume`` names;
* ``${initbench_hydra_subdir:resume}``: where Hydra records the config;
* ``${initbench_job_folder:task_overrides}``: a sweep job's folder, named after
  the swept keys only, such as ``init=kaiming,seed=0``.
"""

from __future__ import annotations

import os
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

from hydra.experimental.callback import Callback as HydraCallback
from omegaconf import DictConfig, OmegaConf

RUN_STAMP = datetime.now().strftime("%Y%m%d-%H%M%S")
RUN_ID = secrets.token_hex(3)

# The swept keys travel to the jobs through the environment, which Hydra's
# joblib launcher passes on to its worker processes.
SWEPT_KEYS_VARIABLE = "INITBENCH_SWEPT_KEYS"


def run_folder(log_dir: str, run_name: str, resume: str | None) -> str:
    """Return a new run's folder, or the folder of the run that ``resume`` names."""
    if resume is None:
        return f"{log_dir}/{run_name}-{RUN_STAMP}-{RUN_ID}"
    path = Path(str(resume)).expanduser()
    if path.is_file():
        path = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return str(path)


def hydra_subdir(resume: str | None) -> str:
    """Return ``.hydra`` for a new run, or a new subfolder of it for a resumed one, so no record is overwritten."""
    return ".hydra" if resume is None else f".hydra/resumed-{RUN_STAMP}-{RUN_ID}"


def job_folder(task_overrides: Iterable[str]) -> str:
    """Name a sweep job's folder after its swept ``key=value`` overrides, with ``/`` made safe."""
    swept = set(filter(None, os.environ.get(SWEPT_KEYS_VARIABLE, "").split(",")))
    chosen = [str(o) for o in task_overrides if not swept or str(o).split("=", 1)[0].lstrip("+~") in swept]
    name = ",".join(sorted(chosen)) or "default"
    return name.replace(os.sep, "_")


def swept_keys(task_overrides: Iterable[str], sweeper_params: dict[str, Any] | None) -> list[str]:
    """Return the keys that take several values in a sweep: ``a=1,2``, ``range(...)`` and the sweeper's params."""
    keys = set(sweeper_params or {})
    for override in map(str, task_overrides):
        if "=" not in override:
            continue
        key, value = override.split("=", 1)
        if ("," in value and not value.lstrip().startswith(("[", "{"))) or value.startswith(("range(", "choice(", "glob(")):
            keys.add(key.lstrip("+~"))
    return sorted(keys)


class RecordSweptKeys(HydraCallback):
    """Hydra callback that stores the swept keys for :func:`job_folder` when a multirun starts."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        params = OmegaConf.select(config, "hydra.sweeper.params", default=None)
        params = OmegaConf.to_container(params) if params is not None else None
        os.environ[SWEPT_KEYS_VARIABLE] = ",".join(swept_keys(config.hydra.overrides.task, params))


OmegaConf.register_new_resolver("initbench_run_id", lambda: RUN_ID, replace=True)
OmegaConf.register_new_resolver("initbench_run_stamp", lambda: RUN_STAMP, replace=True)
OmegaConf.register_new_resolver("initbench_run_folder", run_folder, replace=True)
OmegaConf.register_new_resolver("initbench_hydra_subdir", hydra_subdir, replace=True)
OmegaConf.register_new_resolver("initbench_job_folder", job_folder, replace=True)
