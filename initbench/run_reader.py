"""Find the runs under a log folder and read their TensorBoard scalars and ``run.json`` back.

A run is any folder that directly contains a TensorBoard event file
(``events.out.tfevents.*``). Folders below one that contains
:data:`COMPARE_MARKER` are skipped, because ``initbench.compare`` writes its
own summary event files there.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tensorboard.backend.event_processing import event_accumulator

from initbench.run_record import read_run_record

log = logging.getLogger(__name__)

EVENT_FILE_PREFIX = "events.out.tfevents."
COMPARE_MARKER = ".initbench-compare"

# Tags that ImageClassifier logs and the comparison reads.
TRAIN_LOSS = "train/loss"
VAL_ACC = "val/acc"
VAL_LOSS = "val/loss"

# Statuses of ``run.json`` whose metrics are final. Every other status, and a
# run without ``run.json``, counts as incomplete.
FINISHED_STATUSES = ("completed", "diverged")


@dataclass
class ScalarSeries:
    """One scalar tag of one run: parallel arrays of global steps, values and wall times in seconds."""

    steps: np.ndarray
    values: np.ndarray
    wall_times: np.ndarray

    def __len__(self) -> int:
        return len(self.steps)


@dataclass
class Run:
    """A run folder with its record, its scalars and the wall time of its first event.

    Attributes:
        path: the run folder.
        name: the folder's path relative to the log folder that was searched.
        status: ``status`` from ``run.json``; ``missing`` when the folder has no ``run.json``.
        hparams: ``hparams`` from ``run.json``, or an empty dict.
        overrides: the Hydra overrides from ``.hydra/overrides.yaml`` as key to value,
            with any leading ``+`` or ``~`` removed from the key.
        diverged_step: global step of the first non-finite training loss, or None.
        scalars: every scalar tag that the event files contain.
        start_time: wall time in seconds of the first event, the reference of the seconds-to-target metrics.
    """

    path: Path
    name: str
    status: str
    hparams: dict[str, Any]
    overrides: dict[str, str]
    diverged_step: int | None
    scalars: dict[str, ScalarSeries] = field(default_factory=dict)
    start_time: float | None = None

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    def lookup(self, key: str) -> Any:
        """Return the value of the hyperparameter ``key``, or None when the run does not record it.

        ``key`` may use ``/`` (the ``run.json`` spelling, such as ``optimizer/lr``)
        or ``.`` (the Hydra spelling, such as ``optimizer.lr``). ``run.json`` is
        searched first, then ``.hydra/overrides.yaml``.
        """
        slash_key = key.replace(".", "/")
        dot_key = key.replace("/", ".")
        for candidate in (key, slash_key, dot_key):
            if candidate in self.hparams:
                return self.hparams[candidate]
        for candidate in (key, dot_key):
            if candidate in self.overrides:
                return self.overrides[candidate]
        return None


def find_run_dirs(logdir: str | os.PathLike) -> list[Path]:
    """Return every folder under ``logdir`` (``logdir`` included) that directly contains an event file, sorted."""
    root = Path(logdir)
    if not root.is_dir():
        raise FileNotFoundError(f"Log folder not found: {root}")

    run_dirs = []
    for folder, subfolders, files in os.walk(root):
        if COMPARE_MARKER in files:
            subfolders.clear()  # the output of initbench.compare, not runs
            continue
        subfolders.sort()
        if any(name.startswith(EVENT_FILE_PREFIX) for name in files):
            run_dirs.append(Path(folder))
    return sorted(run_dirs)


def read_runs(logdir: str | os.PathLike) -> list[Run]:
    """Read every run under ``logdir``, as :func:`find_run_dirs` finds them."""
    root = Path(logdir)
    return [read_run(folder, root) for folder in find_run_dirs(root)]


def read_run(run_dir: str | os.PathLike, logdir: str | os.PathLike | None = None) -> Run:
    """Read the record, the Hydra overrides and all scalars of one run folder."""
    path = Path(run_dir)
    name = str(path.relative_to(logdir)) if logdir is not None else path.name
    record = read_run_record(path) or {}
    run = Run(
        path=path,
        name=name if name != "." else path.name,
        status=str(record.get("status", "missing")),
        hparams=dict(record.get("hparams") or {}),
        overrides=read_overrides(path),
        diverged_step=record.get("diverged_step"),
    )
    run.scalars, run.start_time = read_scalars(path)
    return run


def read_scalars(run_dir: str | os.PathLike) -> tuple[dict[str, ScalarSeries], float | None]:
    """Return all scalar series of the event files in ``run_dir`` and the wall time of their first event.

    TensorBoard's :class:`EventAccumulator` reads every event file of the
    folder in order and, as TensorBoard does, drops points that a restarted
    run logged again at earlier steps. Nothing is sampled away.
    """
    accumulator = event_accumulator.EventAccumulator(
        str(run_dir), size_guidance={event_accumulator.SCALARS: 0}
    )
    accumulator.Reload()

    scalars = {}
    for tag in accumulator.Tags()[event_accumulator.SCALARS]:
        events = accumulator.Scalars(tag)
        scalars[tag] = ScalarSeries(
            steps=np.array([event.step for event in events], dtype=np.int64),
            values=np.array([event.value for event in events], dtype=np.float64),
            wall_times=np.array([event.wall_time for event in events], dtype=np.float64),
        )
    try:
        start_time = accumulator.FirstEventTimestamp()
    except ValueError:  # raised when the files hold no event at all
        start_time = None
    return scalars, start_time


def read_overrides(run_dir: str | os.PathLike) -> dict[str, str]:
    """Return ``.hydra/overrides.yaml`` of a run as key to value, or an empty dict when it is missing or invalid."""
    path = Path(run_dir) / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return {}
    try:
        with open(path, encoding="utf-8") as stream:
            lines = yaml.safe_load(stream) or []
    except yaml.YAMLError as error:
        log.warning("Ignoring %s, which is not valid YAML: %s", path, error)
        return {}

    overrides = {}
    for line in lines:
        key, separator, value = str(line).partition("=")
        if separator:
            overrides[key.lstrip("+~")] = value
    return overrides
