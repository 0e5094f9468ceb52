"""Measure initbench's training throughput and start-up against a hand-written PyTorch loop.

    python benchmarks/throughput.py                  # full run, about 5 minutes on 2 idle CPU cores
    python benchmarks/throughput.py --quick          # smoke run, about a minute
    python benchmarks/throughput.py --json results.json

The contenders train the same net (``configs/model``) with the same optimizer
(``configs/optimizer``) on the same normalized MNIST tensors, which stay on the
training device:

- ``plain``: a hand-written loop (index gather, forward, cross-entropy,
  backward, optimizer step) with no framework;
- ``lightning``: a minimal LightningModule on the same device loader, with no
  logger, metric, checkpoint or callback, to separate Lightning's own cost;
- ``stats_off``: initbench's training path with ``stats=off``;
- ``stats_default``: initbench's training path with the default statistics;
- ``cli_default``: ``stats_default`` with the progress bar, as the CLI runs by default;
- any ``--variant NAME OVERRIDE...``: initbench's training path without the
  progress bar and with those Hydra overrides, to measure a what-if such as
  ``--variant no_histograms stats.histogram_every_n_steps=1000000``.

The initbench contenders compose the real Hydra config and build the data
module, the LightningModule and the trainer as ``initbench.train`` does. An
:class:`~timing_callbacks.EpochTimer` times the training epoch only, so the
data load, setup, validation and checkpoint writes are excluded. The data
module of each batch size is built once and reused, so MNIST is loaded once
per batch size and not in every repeat. Start-up, from the command to the first
training step, is measured separately by running ``python -m initbench.train``.

Every repeat runs each contender once, one after the other, and the order
rotates from repeat to repeat, so a slow spell of a shared machine spreads over
all contenders. The script reports the median epoch time over the repeats and,
as the ratio of two contenders, the median over the repeats of the ratio of
their epochs in the same repeat. It prints Markdown to stdout and logs its
progress to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import json
import logging
import os
import platform
import pstats
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from timing_callbacks import EpochTimer, synchronize

from initbench.device_loader import DeviceBatchLoader
from initbench.train import build_module, build_trainer
from initbench.validation import validate_config

log = logging.getLogger("throughput")

BENCHMARKS_DIR = Path(__file__).resolve().parent
CONTENDERS = ("plain", "lightning", "stats_off", "stats_default", "cli_default")

# Hydra overrides of each initbench contender, on top of the shared ones in Bench.compose.
INITBENCH_CONTENDERS = {
    "stats_off": ["stats=off", "trainer.enable_progress_bar=false"],
    "stats_default": ["trainer.enable_progress_bar=false"],
    "cli_default": ["trainer.enable_progress_bar=true"],
}

# Ways to draw the training batches, timed without training.
DATA_LOADERS = ("device_loader", "dataloader")

# Training options compared on top of stats_default, by name.
OPTIONS = {
    "default": [],
    "channels_last": ["channels_last=true"],
    "matmul_high": ["matmul_precision=high"],
    "matmul_medium": ["matmul_precision=medium"],
    "bf16_mixed": ["trainer.precision=bf16-mixed"],
    "compile": ["compile=true"],
}

# Ratios of epoch times that initbench should stay within on the CPU, as (numerator,
# denominator, batch size, maximum), checked on the median over the repeats of the paired ratio.
CPU_TARGETS = (
    ("stats_default", "plain", 64, 1.25),
    ("stats_default", "plain", 512, 1.10),
    ("stats_default", "stats_off", 64, 1.05),
    ("stats_default", "stats_off", 512, 1.05),
)

# Start-up stages: the key that timing_callbacks.StartupProbe writes, and what is done when it is reached.
STARTUP_STAGES = (
    ("built", "Python imports, Hydra config, model built"),
    ("setup", "data loaded, normalized and on the device"),
    ("train_start", "trainer, init scheme, callbacks and step-0 snapshot"),
    ("first_batch", "first batch drawn"),
)


@dataclass
class Sample:
    """One timed epoch: of a training contender, of a data loader (data path) or of an option (2-epoch fits)."""

    device: str
    batch_size: int
    contender: str
    repeat: int
    seconds: float
    images: int
    first_epoch_seconds: float | None = None
    load_average: float | None = None  # the 1-minute load average of the machine when the epoch ended


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark that ``argv`` selects, print the Markdown report and return the results."""
    args = parse_arguments(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    log.setLevel(logging.INFO)
    devices = _resolve_devices(args.device)
    command = "python " + " ".join(shlex.quote(part) for part in [_display_path(sys.argv[0]), *(argv or sys.argv[1:])])

    results: dict[str, Any] = {"command": command, "machine": machine_info(), "settings": vars(args).copy()}
    results["machine"]["load_average_before"] = _load_average()
    started = time.perf_counter()
    with _quiet_lightning(), tempfile.TemporaryDirectory(prefix="initbench-benchmark-") as scratch:
        bench = Bench(args, Path(scratch))
        for device in devices:
            section = results.setdefault("devices", {}).setdefault(device, {})
            if args.contenders:
                section["throughput"] = [asdict(sample) for sample in bench.measure_throughput(device)]
                section["data_path"] = [asdict(sample) for sample in bench.measure_data_path(device)]
            if args.profile:
                section["profile"] = bench.profile(device)
            if args.startup_runs:
                section["startup"] = bench.measure_startup(device)
            if args.options:
                section["options"] = [asdict(sample) for sample in bench.measure_options(device)]
    results["machine"]["load_average_after"] = _load_average()
    results["wall_seconds"] = time.perf_counter() - started

    print(format_report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        log.info("Wrote %s", args.json)
    return results


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line, fill in the defaults that depend on ``--quick`` and check the values."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=None, help="timed epochs per contender and batch size (default 9, or 2 with --quick)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 512], help="training batch sizes (default: 64 512)")
    parser.add_argument(
        "--contenders", nargs="*", choices=CONTENDERS, default=list(CONTENDERS),
        help="contenders to time; none given skips the throughput and data path sections (default: all)",
    )
    parser.add_argument(
        "--device", nargs="+", choices=("auto", "cpu", "cuda"), default=["auto"],
        help="devices to measure on; auto is cuda when a CUDA GPU is present, else cpu (default: auto)",
    )
    parser.add_argument("--max-batches", type=int, default=None, help="train on at most this many batches per epoch (default: the whole epoch, or 150 with --quick)")
    parser.add_argument("--warmup-batches", type=int, default=20, help="batches of the untimed warm-up epoch of each contender (default 20)")
    parser.add_argument("--startup-runs", type=int, default=None, help="runs of `python -m initbench.train` for the start-up time; 0 skips it (default 3, or 1 with --quick)")
    parser.add_argument(
        "--options", nargs="*", choices=tuple(OPTIONS), default=None,
        help="training options to compare on top of stats_default; none given skips them (default: all, or all but compile with --quick)",
    )
    parser.add_argument("--options-batch-size", type=int, default=512, help="batch size of the options comparison (default 512)")
    parser.add_argument("--options-repeats", type=int, default=None, help="timed fits per option; each fit trains 2 epochs (default 3, or 1 with --quick)")
    parser.add_argument(
        "--variant", nargs="+", action="append", default=[], metavar=("NAME", "OVERRIDE"),
        help="an extra contender: initbench without the progress bar and with these Hydra overrides; repeatable",
    )
    parser.add_argument("--data-file", default=None, help="train on this mnist.pkl.gz of any size instead of the cached MNIST")
    parser.add_argument(
        "--profile", nargs="*", choices=CONTENDERS, default=None, metavar="CONTENDER",
        help="after the timed repeats, train one more epoch of each named contender (stats_default when none is named) "
        "at the first batch size under cProfile, and print the functions with the largest cumulative and own time",
    )
    parser.add_argument("--profile-lines", type=int, default=40, help="functions listed per profile and sort order (default 40)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 repeats, 150 batches per epoch, 1 start-up run, no compile")
    parser.add_argument("--json", default=None, help="also write every sample and the machine's details to this JSON file")
    args = parser.parse_args(argv)

    for name, *overrides in args.variant:
        if name in CONTENDERS or name in args.contenders:
            parser.error(f"--variant {name}: the name is taken by a contender; choose another")
        if not overrides:
            parser.error(f"--variant {name} needs at least one Hydra override, such as stats.bins=32")
        args.contenders.append(name)
    if args.repeats is None:
        args.repeats = 2 if args.quick else 9
    if args.max_batches is None and args.quick:
        args.max_batches = 150
    if args.startup_runs is None:
        args.startup_runs = 1 if args.quick else 3
    if args.options is None:
        args.options = [name for name in OPTIONS if not (args.quick and name == "compile")]
    if args.options and "default" not in args.options:
        args.options.insert(0, "default")
    if args.profile == []:
        args.profile = ["stats_default"]
    if args.options_repeats is None:
        args.options_repeats = 1 if args.quick else 3
    for name in ("repeats", "options_repeats", "options_batch_size", "warmup_batches", "profile_lines"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.max_batches is not None and args.max_batches < 1:
        parser.error(f"--max-batches must be at least 1, got {args.max_batches}")
    if any(size < 1 for size in args.batch_sizes):
        parser.error(f"--batch-sizes must be at least 1, got {args.batch_sizes}")
    return args


class Bench:
    """Run the contenders; owns the scratch folder and the data modules, one per device and batch size."""

    def __init__(self, args: argparse.Namespace, scratch: Path) -> None:
        self.args = args
        self.scratch = scratch
        self._datamodules: dict[tuple[str, int], pl.LightningDataModule] = {}
        self._fits = 0

    # Throughput.

    def measure_throughput(self, device: str) -> list[Sample]:
        """Warm every contender up, then time ``repeats`` rounds of all contenders at every batch size."""
        contenders = self.args.contenders
        for batch_size in self.args.batch_sizes:
            for contender in contenders:
                log.info("Warm-up on %s, batch %d: %s", device, batch_size, contender)
                self.run_contender(contender, device, batch_size, self.args.warmup_batches)

        samples = []
        for repeat in range(self.args.repeats):
            for batch_size in self.args.batch_sizes:
                for contender in _rotated(contenders, repeat):
                    seconds, images = self.run_contender(contender, device, batch_size, self.args.max_batches)
                    samples.append(Sample(device, batch_size, contender, repeat, seconds, images, load_average=_load_1min()))
                    log.info(
                        "Repeat %d/%d on %s, batch %d: %-13s %.3f s (%.0f img/s)",
                        repeat + 1, self.args.repeats, device, batch_size, contender, seconds, images / seconds,
                    )
        return samples

    def run_contender(self, contender: str, device: str, batch_size: int, max_batches: int | None) -> tuple[float, int]:
        """Train one epoch of ``contender``; return its seconds and its number of images."""
        gc.collect()
        if contender == "plain":
            images, labels = self.train_tensors(device, batch_size)
            return run_plain_epoch(self.compose(device, batch_size), images, labels, batch_size, max_batches)
        if contender == "lightning":
            images, labels = self.train_tensors(device, batch_size)
            timer = run_minimal_lightning(self.compose(device, batch_size), images, labels, batch_size, max_batches)
        else:
            cfg = self.compose(device, batch_size, self.overrides_of(contender), max_batches)
            timer = self.run_initbench(cfg, device, batch_size)
        return timer.epoch_seconds[0], timer.epoch_images[0]

    def overrides_of(self, contender: str) -> list[str]:
        """Return the Hydra overrides of an initbench contender or of a ``--variant``."""
        if contender in INITBENCH_CONTENDERS:
            return INITBENCH_CONTENDERS[contender]
        variants = {name: overrides for name, *overrides in self.args.variant}
        return ["trainer.enable_progress_bar=false", *variants[contender]]

    def run_initbench(self, cfg: DictConfig, device: str, batch_size: int) -> EpochTimer:
        """Fit as ``initbench.train.train`` does, with the data module of ``(device, batch_size)``; return the timer."""
        validate_config(cfg)
        HydraConfig.instance().set_config(cfg)
        self._fits += 1
        run_dir = self.scratch / f"fit-{self._fits}"
        pl.seed_everything(cfg.seed, workers=True)
        previous_precision = torch.get_float32_matmul_precision()
        if cfg.matmul_precision is not None:
            torch.set_float32_matmul_precision(cfg.matmul_precision)
        if cfg.compile:
            # Each fit compiles a new module, so drop the graphs compiled for the previous fits.
            torch.compiler.reset()

        module = build_module(cfg)
        trainer, _ = build_trainer(cfg, run_dir, None)
        try:
            # Lightning's progress bar writes to stdout, which this script keeps for the report.
            with contextlib.redirect_stdout(sys.stderr):
                trainer.fit(module, datamodule=self.datamodule(cfg, device, batch_size))
        finally:
            torch.set_float32_matmul_precision(previous_precision)
        return next(callback for callback in trainer.callbacks if isinstance(callback, EpochTimer))

    def datamodule(self, cfg: DictConfig, device: str, batch_size: int) -> pl.LightningDataModule:
        """Return the data module of ``(device, batch_size)``, built from ``cfg.data`` on first use."""
        key = (device, batch_size)
        if key not in self._datamodules:
            self._datamodules[key] = instantiate(cfg.data)
        return self._datamodules[key]

    def train_tensors(self, device: str, batch_size: int) -> tuple[Tensor, Tensor]:
        """Return the normalized training images and labels on ``device`` that the initbench contenders train on."""
        datamodule = self._datamodules.get((device, batch_size))
        if datamodule is None or datamodule.splits is None:
            # A fit sets the data module up on the trainer's device.
            self.run_contender("stats_off", device, batch_size, 1)
            datamodule = self._datamodules[(device, batch_size)]
        return datamodule.splits.split("train")

    def compose(
        self, device: str, batch_size: int, extra: Sequence[str] = (), max_batches: int | None = None, epochs: int = 1
    ) -> DictConfig:
        """Compose the training config of an in-process initbench fit."""
        overrides = [
            f"trainer.accelerator={_accelerator(device)}",
            f"trainer.max_epochs={epochs}",
            f"data.batch_size={batch_size}",
            f"log_dir={self.scratch}",
            "+trainer.enable_model_summary=false",
            # Validation runs inside Lightning's training epoch, so it is turned off to time the training alone.
            "+trainer.limit_val_batches=0",
            "+callbacks.epoch_timer._target_=timing_callbacks.EpochTimer",
            *self.data_overrides(),
            *extra,
        ]
        if max_batches is not None:
            overrides.append(f"+trainer.limit_train_batches={max_batches}")
        return compose_config(overrides)

    def data_overrides(self) -> list[str]:
        if self.args.data_file is None:
            return []
        return [f"data.file={Path(self.args.data_file).resolve()}", "data.expected_sizes=null"]

    # Data path.

    def measure_data_path(self, device: str) -> list[Sample]:
        """Time passes over the training batches without training: initbench's device loader against a DataLoader."""
        repeats = min(self.args.repeats, 3)
        samples = []
        for repeat in range(repeats):
            for batch_size in self.args.batch_sizes:
                images, labels = self.train_tensors(device, batch_size)
                for loader in _rotated(DATA_LOADERS, repeat):
                    gc.collect()
                    seconds, count = time_data_pass(loader, images, labels, batch_size, self.args.max_batches)
                    samples.append(Sample(device, batch_size, loader, repeat, seconds, count))
        log.info("Timed the data path on %s", device)
        return samples

    # Profile.

    def profile(self, device: str) -> dict[str, str]:
        """Train one epoch of each ``--profile`` contender under cProfile; return the statistics as text, by contender."""
        batch_size = self.args.batch_sizes[0]
        reports = {}
        for contender in self.args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            seconds, images = self.run_contender(contender, device, batch_size, self.args.max_batches)
            profiler.disable()
            stream = io.StringIO()
            stats = pstats.Stats(profiler, stream=stream).strip_dirs()
            stats.sort_stats("cumulative").print_stats(self.args.profile_lines)
            stats.sort_stats("tottime").print_stats(self.args.profile_lines)
            reports[contender] = (
                f"{contender} on {device}, batch {batch_size}: {images} images in {seconds:.3f} s under cProfile\n"
                + stream.getvalue().strip()
            )
            log.info("Profiled %s on %s, batch %d", contender, device, batch_size)
        return reports

    # Start-up.

    def measure_startup(self, device: str) -> list[dict[str, float]]:
        """Run ``python -m initbench.train`` until its first training step and return the times of its stages."""
        runs = []
        for run in range(self.args.startup_runs):
            probe_file = self.scratch / f"startup-{device}-{run}.json"
            command = [
                sys.executable, "-m", "initbench.train",
                f"log_dir={self.scratch / 'startup'}",
                f"trainer.accelerator={_accelerator(device)}",
                "+trainer.max_steps=1",
                "+trainer.limit_val_batches=0",
                "+callbacks.startup_probe._target_=timing_callbacks.StartupProbe",
                f"+callbacks.startup_probe.output={probe_file}",
                *self.data_overrides(),
            ]
            environment = dict(os.environ)
            environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCHMARKS_DIR), environment.get("PYTHONPATH")]))
            gc.collect()
            launched = time.time()
            result = subprocess.run(command, cwd=self.scratch, env=environment, capture_output=True, text=True, check=False)
            finished = time.time()
            if result.returncode != 0 or not probe_file.is_file():
                raise RuntimeError(
                    f"The start-up run failed with exit status {result.returncode}: {shlex.join(command)}\n"
                    f"{result.stderr[-3000:]}"
                )
            stages = json.loads(probe_file.read_text(encoding="utf-8"))
            times = {key: stages[key] - launched for key, _ in STARTUP_STAGES}
            times["exit"] = finished - launched
            runs.append(times)
            log.info("Start-up run %d/%d on %s: %.2f s to the first training step", run + 1, self.args.startup_runs, device, times["first_batch"])
        return runs

    # Options.

    def measure_options(self, device: str) -> list[Sample]:
        """Time 2-epoch fits of stats_default with each option; the second epoch is the steady state."""
        batch_size = self.args.options_batch_size
        samples = []
        for repeat in range(self.args.options_repeats):
            for option in _rotated(self.args.options, repeat):
                extra = INITBENCH_CONTENDERS["stats_default"] + OPTIONS[option]
                cfg = self.compose(device, batch_size, extra, self.args.max_batches, epochs=2)
                gc.collect()
                timer = self.run_initbench(cfg, device, batch_size)
                first, second = timer.epoch_seconds
                samples.append(
                    Sample(device, batch_size, option, repeat, second, timer.epoch_images[1], first, _load_1min())
                )
                log.info(
                    "Options repeat %d/%d on %s, batch %d: %-13s epoch 1 %.3f s, epoch 2 %.3f s",
                    repeat + 1, self.args.options_repeats, device, batch_size, option, first, second,
                )
        return samples


def run_plain_epoch(
    cfg: DictConfig, images: Tensor, labels: Tensor, batch_size: int, max_batches: int | None
) -> tuple[float, int]:
    """Train a fresh net for one epoch in a hand-written loop; return the seconds and the number of images."""
    net = instantiate(cfg.model).to(images.device)
    optimizer = instantiate(cfg.optimizer, params=net.parameters())
    count = len(labels)
    if max_batches is not None:
        count = min(count, max_batches * batch_size)

    synchronize(images.device)
    start = time.perf_counter()
    order = torch.randperm(len(labels)).to(images.device)
    for first in range(0, count, batch_size):
        indices = order[first:first + batch_size]
        loss = F.cross_entropy(net(images[indices]), labels[indices])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    synchronize(images.device)
    return time.perf_counter() - start, count


def time_data_pass(
    loader_name: str, images: Tensor, labels: Tensor, batch_size: int, max_batches: int | None
) -> tuple[float, int]:
    """Draw one epoch of shuffled batches onto the device of ``images``; return the seconds and the number of images.

    ``device_loader`` is initbench's :class:`DeviceBatchLoader`, one index gather
    per batch on the device. ``dataloader`` is the usual pipeline: a
    ``DataLoader`` over a ``TensorDataset`` of host tensors, with per-sample
    indexing, collation and a copy of each batch to the device.
    """
    device = images.device
    if loader_name == "device_loader":
        loader = DeviceBatchLoader(images, labels, batch_size, shuffle=True)
    else:
        loader = DataLoader(TensorDataset(images.cpu(), labels.cpu()), batch_size=batch_size, shuffle=True)

    count = 0
    synchronize(device)
    start = time.perf_counter()
    for batch_index, (batch_images, batch_labels) in enumerate(loader):
        if max_batches is not None and batch_index >= max_batches:
            break
        batch_images = batch_images.to(device)
        count += len(batch_labels.to(device))
    synchronize(device)
    return time.perf_counter() - start, count


class MinimalModule(pl.LightningModule):
    """The smallest LightningModule that trains the net: no metric, no logging, no hooks of its own."""

    def __init__(self, net: nn.Module, optimizer: DictConfig) -> None:
        super().__init__()
        self.net = net
        self.optimizer_config = optimizer

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        return F.cross_entropy(self.net(images), labels)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return instantiate(self.optimizer_config, params=self.parameters())


def run_minimal_lightning(
    cfg: DictConfig, images: Tensor, labels: Tensor, batch_size: int, max_batches: int | None
) -> EpochTimer:
    """Fit :class:`MinimalModule` for one epoch on a shuffled device loader; return the timer."""
    timer = EpochTimer()
    trainer = pl.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=1,
        max_epochs=1,
        limit_train_batches=max_batches,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    loader = DeviceBatchLoader(images, labels, batch_size, shuffle=True)
    trainer.fit(MinimalModule(instantiate(cfg.model), cfg.optimizer), train_dataloaders=loader)
    return timer


def compose_config(overrides: Sequence[str]) -> DictConfig:
    """Compose the real training config, with Hydra's own keys, as ``python -m initbench.train`` composes it."""
    with initialize_config_module(config_module="initbench.configs", version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides), return_hydra_config=True)


def machine_info() -> dict[str, Any]:
    """Return the processor, core count, thread count and library versions of this machine."""
    info = {
        "cpu": _cpu_model(),
        "nproc": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pytorch_lightning": pl.__version__,
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# Report.


def format_report(results: dict[str, Any]) -> str:
    """Return the Markdown report of ``results``: machine, throughput, targets, start-up and options."""
    machine = results["machine"]
    lines = [
        "## Machine",
        "",
        f"- CPU: {machine['cpu']}, nproc {machine['nproc']}, torch threads {machine['torch_threads']}",
        f"- GPU: {machine.get('gpu', 'none')}",
        f"- Python {machine['python']}, torch {machine['torch']}, pytorch-lightning {machine['pytorch_lightning']}",
        f"- load average (1, 5, 15 min) before: {_format_load(machine['load_average_before'])}, "
        f"after: {_format_load(machine['load_average_after'])}",
        f"- command: `{results['command']}`, {results['wall_seconds'] / 60:.1f} minutes",
    ]
    for device, section in results.get("devices", {}).items():
        samples = [Sample(**sample) for sample in section.get("throughput", [])]
        if samples:
            lines += ["", *_throughput_tables(device, samples)]
        targets = _target_table(samples) if device == "cpu" else []
        if targets:
            lines += ["", *targets]
        if section.get("data_path"):
            lines += ["", *_data_path_table(device, [Sample(**sample) for sample in section["data_path"]], samples)]
        for text in section.get("profile", {}).values():
            lines += ["", f"## Profile on {device}", "", "```", text, "```"]
        if section.get("startup"):
            lines += ["", *_startup_table(device, section["startup"])]
        if section.get("options"):
            lines += ["", *_options_table(device, [Sample(**sample) for sample in section["options"]])]
    return "\n".join(lines)


def _throughput_tables(device: str, samples: list[Sample]) -> list[str]:
    repeats = len({sample.repeat for sample in samples})
    loads = [sample.load_average for sample in samples if sample.load_average is not None]
    load_text = f" The 1-minute load average after each epoch: median {statistics.median(loads):.2f}, max {max(loads):.2f}." if loads else ""
    lines = [
        f"## Throughput on {device}",
        "",
        f"Median over {repeats} repeats of one timed training epoch. A ratio is the median over the repeats of "
        "the ratio of two contenders' epochs in the same repeat, which cancels the slow and fast spells of a "
        "shared machine. Extra ms/step is the median epoch time minus plain's, per training step."
        f"{load_text}",
    ]
    for batch_size in sorted({sample.batch_size for sample in samples}):
        group = [sample for sample in samples if sample.batch_size == batch_size]
        medians = _medians(group)
        images = group[0].images
        steps = -(-images // batch_size)
        lines += [
            "",
            f"Batch {batch_size}, {images} images, {steps} steps per timed epoch:",
            "",
            "| contender | median s | img/s | vs plain | vs stats_off | extra ms/step | min-max s |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for contender, median in medians.items():
            seconds = [sample.seconds for sample in group if sample.contender == contender]
            lines.append(
                f"| {contender} | {median:.3f} | {images / median:,.0f} | {_paired_ratio(group, contender, 'plain')} "
                f"| {_paired_ratio(group, contender, 'stats_off')} "
                f"| {_extra_ms(median, medians.get('plain'), steps)} | {min(seconds):.3f}-{max(seconds):.3f} |"
            )
    return lines


def _target_table(samples: list[Sample]) -> list[str]:
    rows = []
    for numerator, denominator, batch_size, maximum in CPU_TARGETS:
        group = [sample for sample in samples if sample.batch_size == batch_size]
        medians = _medians(group)
        if numerator not in medians or denominator not in medians:
            continue
        paired = _paired_ratio(group, numerator, denominator)
        fastest = {name: min(s.seconds for s in group if s.contender == name) for name in (numerator, denominator)}
        met = "yes" if float(paired) <= maximum else "no"
        rows.append(
            f"| {numerator} / {denominator} | {batch_size} | {paired} | {medians[numerator] / medians[denominator]:.3f} "
            f"| {fastest[numerator] / fastest[denominator]:.3f} | <= {maximum:.2f} | {met} |"
        )
    if not rows:
        return []
    return [
        "Targets on the CPU, judged on the median of the paired ratios. The ratio of the medians and the ratio of "
        "the fastest epochs are shown for comparison.",
        "",
        "| ratio of epoch times | batch | paired median | ratio of medians | fastest | target | met |",
        "|---|---:|---:|---:|---:|---:|---|",
        *rows,
    ]


def _data_path_table(device: str, samples: list[Sample], training: list[Sample]) -> list[str]:
    lines = [
        f"## Data path on {device}",
        "",
        f"One pass over the shuffled training batches without training, median over "
        f"{len({sample.repeat for sample in samples})} repeats. The share is of plain's median training epoch.",
        "",
        "| loader | batch | median s | ms/batch | share of plain epoch |",
        "|---|---:|---:|---:|---:|",
    ]
    for batch_size in sorted({sample.batch_size for sample in samples}):
        group = [sample for sample in samples if sample.batch_size == batch_size]
        plain = _medians([sample for sample in training if sample.batch_size == batch_size]).get("plain")
        batches = -(-group[0].images // batch_size)
        for loader, median in _medians(group).items():
            share = "" if plain is None else f"{100 * median / plain:.1f}%"
            lines.append(f"| {loader} | {batch_size} | {median:.3f} | {1000 * median / batches:.3f} | {share} |")
    return lines


def _startup_table(device: str, runs: list[dict[str, float]]) -> list[str]:
    lines = [
        f"## Start-up on {device}",
        "",
        f"`python -m initbench.train` with the default config, median of {len(runs)} runs, seconds since the command:",
        "",
        "| stage reached | median s | min-max s |",
        "|---|---:|---:|",
    ]
    for key, description in (*STARTUP_STAGES, ("exit", "process exited after 1 step")):
        values = [run[key] for run in runs]
        lines.append(f"| {description} | {statistics.median(values):.2f} | {min(values):.2f}-{max(values):.2f} |")
    return lines


def _options_table(device: str, samples: list[Sample]) -> list[str]:
    medians = _medians(samples)
    first_epoch = {
        option: statistics.median(sample.first_epoch_seconds for sample in samples if sample.contender == option)
        for option in medians
    }
    lines = [
        f"## Options on {device}",
        "",
        f"stats_default at batch {samples[0].batch_size}, fits of 2 epochs, median over "
        f"{len({sample.repeat for sample in samples})} repeats. Epoch 2 is the steady state; "
        "epoch 1 includes one-off costs such as compilation.",
        "",
        "| option | overrides | epoch 2 median s | img/s | vs default | epoch 1 median s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for option, median in medians.items():
        overrides = " ".join(OPTIONS[option]) or "(none)"
        images = next(sample.images for sample in samples if sample.contender == option)
        lines.append(
            f"| {option} | `{overrides}` | {median:.3f} | {images / median:,.0f} "
            f"| {_paired_ratio(samples, option, 'default')} | {first_epoch[option]:.3f} |"
        )
    return lines


def _medians(samples: list[Sample]) -> dict[str, float]:
    """Return the median seconds of each contender, in the order of the first repeat, which is not rotated."""
    names = dict.fromkeys(sample.contender for sample in samples)
    return {name: statistics.median(s.seconds for s in samples if s.contender == name) for name in names}


def _paired_ratio(samples: list[Sample], numerator: str, denominator: str) -> str:
    """Return the median over the repeats of numerator's seconds over denominator's in the same repeat, as text."""
    seconds = {(sample.contender, sample.repeat): sample.seconds for sample in samples}
    ratios = [
        seconds[(numerator, repeat)] / seconds[(denominator, repeat)]
        for repeat in sorted({sample.repeat for sample in samples})
        if (numerator, repeat) in seconds and (denominator, repeat) in seconds
    ]
    return f"{statistics.median(ratios):.3f}" if ratios else ""


def _extra_ms(value: float, reference: float | None, steps: int) -> str:
    return "" if reference is None else f"{1000 * (value - reference) / steps:+.2f}"


# Helpers.


def _rotated(names: Sequence[str], repeat: int) -> list[str]:
    shift = repeat % len(names)
    return [*names[shift:], *names[:shift]]


def _resolve_devices(requested: Sequence[str]) -> list[str]:
    # NOTE: the cuda path has never run, because no GPU was available when this script was written.
    devices = []
    for device in requested:
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise SystemExit("Error: --device cuda needs a CUDA GPU, and torch.cuda.is_available() is false here.")
        if device not in devices:
            devices.append(device)
    return devices


def _accelerator(device: str) -> str:
    return "gpu" if device == "cuda" else "cpu"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def _load_1min() -> float | None:
    load = _load_average()
    return None if load is None else load[0]


def _format_load(load: list[float] | None) -> str:
    return "unknown" if load is None else ", ".join(f"{value:.2f}" for value in load)


def _display_path(path: str) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return path


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Silence Lightning's per-fit banners and the warnings that the timed configuration causes on purpose."""
    loggers = [logging.getLogger(name) for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        # limit_val_batches=0 leaves ModelCheckpoint without its monitored val/acc.
        warnings.filterwarnings("ignore", message=r".*could not find the monitored key.*")
        # Short epochs (--max-batches, --quick) have fewer steps than log_every_n_steps.
        warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
        for logger in loggers:
            logger.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


if __name__ == "__main__":
    main()
