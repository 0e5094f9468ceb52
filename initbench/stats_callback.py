"""A Lightning callback that records per-layer statistics through forward hooks and logs them to TensorBoard.

The statistic maths lives in :mod:`initbench.statistics`. This module only
selects the layers, owns the hooks, keeps device-side buffers and writes the
results to the trainer's loggers.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_warn
from tensorboard.compat.proto.summary_pb2 import Summary
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle
from torch.utils.tensorboard import summary as tensorboard_summary

from initbench.statistics import (
    activation_moments,
    adaptive_histogram,
    colorful_dimension,
    histogram_edges,
    merge_moments,
    population_std,
    update_to_weight_ratio,
)

# Layers recorded when stats.layers is null, because their outputs carry the signal that an init scales.
WEIGHT_LAYER_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
ACTIVATION_TYPES = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Softplus,
    nn.Softsign,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Tanh,
    nn.Sigmoid,
    nn.LogSigmoid,
)

# Recorded steps between logged histograms when stats.histogram_every_n_steps is null. TensorBoard's
# writer computes the checksum of every byte in Python, about 120 ns a byte, while training waits
# for the interpreter lock, and the histograms of eight layers are about 9 KB: 1.1 ms on a 2-core CPU.
HISTOGRAM_EVERY_N_RECORDS = 4

# Name under which the net's own output (the logits) is recorded.
OUTPUT_NAME = "output"

# Colorful-dimension images are enlarged by whole factors to at least this many pixels a side.
# TensorBoard stretches an image to the width of its card with sharp pixels, so only the aspect
# ratio matters: 64 bins by 4 recorded steps would show as a thin strip. Bigger images cost more to
# write, because TensorBoard's writer checksums every byte in Python.
IMAGE_MIN_SIZE = 64


def select_layers(net: nn.Module, patterns: Sequence[str] | None, record_output: bool) -> dict[str, nn.Module]:
    """Return the layers of ``net`` to record, by qualified name relative to ``net``, in registration order.

    With ``patterns`` None, every Conv, Linear and activation layer is
    selected. Otherwise a layer is selected when a pattern matches its name as
    an ``fnmatch`` glob (``conv1``, ``conv*``, ``block.*``) or equals its class
    name (``Conv2d``, ``ReLU``). With ``record_output``, the net itself is added
    last under the name ``output``, and the pattern ``output`` selects nothing
    more, so ``["output"]`` records the output alone.

    Raises:
        ValueError: a pattern matches no layer, nothing is selected, the net
            already has a layer named ``output`` while ``record_output`` is set,
            or ``output`` is listed while ``record_output`` is not set.
    """
    named = [(name, module) for name, module in net.named_modules() if name]
    if patterns is not None and OUTPUT_NAME in patterns and not any(name == OUTPUT_NAME for name, _ in named):
        if not record_output:
            raise ValueError(
                f"stats.layers lists {OUTPUT_NAME!r}, the net's output, while stats.record_output=false. "
                "Set stats.record_output=true to record the output."
            )
        # record_output adds the output, so the pattern is not matched against the layers.
        patterns = [pattern for pattern in patterns if pattern != OUTPUT_NAME]
    if patterns is None:
        selected = {name: module for name, module in named if isinstance(module, WEIGHT_LAYER_TYPES + ACTIVATION_TYPES)}
    else:
        selected = {}
        for pattern in patterns:
            matches = [
                (name, module)
                for name, module in named
                if fnmatch.fnmatchcase(name, pattern) or type(module).__name__ == pattern
            ]
            if not matches:
                available = ", ".join(f"{name} ({type(module).__name__})" for name, module in named)
                raise ValueError(
                    f"stats.layers entry {pattern!r} matches no layer name or type of the model. Layers: {available}"
                )
            selected.update(matches)
        # Keep the net's order, whatever the order of the patterns.
        selected = {name: module for name, module in named if name in selected}

    if record_output:
        if OUTPUT_NAME in selected or any(name == OUTPUT_NAME for name, _ in named):
            raise ValueError(
                f"The model has a layer named {OUTPUT_NAME!r}, which stats.record_output=true would shadow. "
                "Set stats.record_output=false."
            )
        selected[OUTPUT_NAME] = net
    if not selected:
        raise ValueError(
            "stats.layers selects no layer of the model. Name at least one layer or type, or set it to null."
        )
    return selected


class LayerHooks:
    """Forward hooks on named layers that pass each layer's output to ``record(name, output)``.

    Use it as a context manager, or call :meth:`attach` and :meth:`remove`.
    :meth:`remove` is idempotent, so every exit path of a caller may call it.
    """

    def __init__(self, layers: Mapping[str, nn.Module], record: Callable[[str, Any], None]) -> None:
        self.layers = dict(layers)
        self.record = record
        self._handles: list[RemovableHandle] = []

    @property
    def attached(self) -> bool:
        """Whether the hooks are registered on the layers."""
        return bool(self._handles)

    def attach(self) -> LayerHooks:
        """Register one forward hook per layer. Raise RuntimeError if they are registered already."""
        if self._handles:
            raise RuntimeError("LayerHooks are attached already. Remove them before attaching again.")
        for name, layer in self.layers.items():
            self._handles.append(layer.register_forward_hook(self._make_hook(name)))
        return self

    def remove(self) -> None:
        """Remove every hook that :meth:`attach` registered."""
        while self._handles:
            self._handles.pop().remove()

    def __enter__(self) -> LayerHooks:
        return self.attach()

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    def _make_hook(self, name: str) -> Callable[[nn.Module, Any, Any], None]:
        record = self.record

        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            record(name, output)

        return hook


@dataclass
class ActivationSummary:
    """Statistics of one layer output, read back to the host.

    ``std`` is the population std over all elements. ``counts`` and
    ``value_range`` describe the adaptive-range histogram, or are None where no
    histogram was taken.
    """

    count: float
    mean: float
    std: float
    near_zero: float
    counts: Tensor | None = None
    value_range: Tensor | None = None

    @property
    def sum(self) -> float:
        """Sum of all elements."""
        return self.mean * self.count

    @property
    def sum_squares(self) -> float:
        """Sum of the squares of all elements."""
        return self.std**2 * self.count + self.mean**2 * self.count


class HistogramHistory:
    """The histograms of one layer at its recorded steps, thinned to at most ``max_steps`` entries.

    Each time the history exceeds ``max_steps``, every second entry is dropped
    and from then on only every second new histogram is kept. The kept steps
    thus stay evenly spaced and always reach back to the first recorded step.
    """

    def __init__(self, max_steps: int) -> None:
        if max_steps < 2:
            raise ValueError(f"max_steps must be at least 2, got {max_steps}")
        self.max_steps = max_steps
        self.steps: list[int] = []
        self.counts: list[Tensor] = []
        self.value_ranges: list[Tensor] = []
        self._stride = 1
        self._offered = 0

    def append(self, step: int, counts: Tensor, value_range: Tensor) -> None:
        """Offer the histogram of ``step``, which is kept only when it falls on the current stride."""
        offered = self._offered
        self._offered += 1
        if offered % self._stride != 0:
            return
        self.steps.append(step)
        self.counts.append(counts)
        self.value_ranges.append(value_range)
        if len(self.steps) > self.max_steps:
            self.steps = self.steps[::2]
            self.counts = self.counts[::2]
            self.value_ranges = self.value_ranges[::2]
            self._stride *= 2

    def __len__(self) -> int:
        return len(self.steps)

    def state_dict(self) -> dict[str, Any]:
        """Return the history as plain lists, ints and tensors, which a checkpoint can hold."""
        return {
            "steps": list(self.steps),
            "counts": list(self.counts),
            "value_ranges": list(self.value_ranges),
            "stride": self._stride,
            "offered": self._offered,
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any], max_steps: int) -> HistogramHistory:
        """Rebuild a history from :meth:`state_dict`, thinned further if ``max_steps`` is now smaller."""
        history = cls(max_steps)
        history.steps = list(state["steps"])
        history.counts = list(state["counts"])
        history.value_ranges = list(state["value_ranges"])
        history._stride = state["stride"]
        history._offered = state["offered"]
        while len(history.steps) > max_steps:
            history.steps = history.steps[::2]
            history.counts = history.counts[::2]
            history.value_ranges = history.value_ranges[::2]
            history._stride *= 2
        return history


class LayerStatsMonitor(pl.Callback):
    """Record activation, weight and gradient statistics of every selected layer and log them.

    At fit start the callback selects the layers of ``pl_module.net`` (or of
    ``pl_module`` when it has no ``net``) and checks the selection. It
    registers a forward hook on each selected layer at the start of a
    recorded step and removes them at its end, so the other steps run the
    model without hooks. The snapshot and the validation runs get their hooks
    the same way. Modules compiled with ``nn.Module.compile`` run eagerly
    while the hooks are registered, because compiled code does not see hooks
    added after it was compiled. All hooks are removed when fit ends, whether
    normally, by an exception or by a KeyboardInterrupt. The hooks compute, on the device and right after
    the layer runs, the mean, std, near-zero fraction and an adaptive-range
    histogram of the layer's output. Because the statistics are taken before
    the next layer runs, an in-place activation after a conv does not change
    the conv's statistics. The values stay on the device until the end of the
    recorded step, where they are read back in one transfer, and everything
    that a step writes to TensorBoard goes into one event.

    A recorded step is a training step whose ``global_step`` is a multiple of
    ``every_n_steps``. Validation batches are recorded only when
    ``validation`` is set, and sanity-check batches never.

    Before the first update, the callback also takes a step-0 snapshot on a
    fixed batch: the first ``snapshot_images`` images of the datamodule's
    ``fixed_batch("val", count)``, the same images for every init and seed. A
    datamodule without ``fixed_batch`` makes the snapshot use the first
    training batch instead, with a warning. The snapshot is stored in
    :attr:`step0_stats`.

    Under DDP only global rank zero registers hooks and writes. Activation
    statistics are those of rank zero's own batch, not reduced across ranks.
    Gradient statistics are read after DDP's all-reduce, so they describe the
    gradient averaged across ranks, and the weights are the same on every rank.

    Logged keys. ``<layer>`` is the name of a recorded layer relative to the
    net, such as ``conv1``, and includes ``output`` (the net's output) when
    ``record_output`` is set. ``<weight_layer>`` is a recorded layer with a
    trainable ``weight`` parameter. Scalars are logged to every logger of the
    trainer. Histograms, images, the figure and the text table go only to a
    :class:`~pytorch_lightning.loggers.TensorBoardLogger`.

    Every ``every_n_steps`` training steps, at the global step before the update:

    - ``activations/mean/<layer>``: mean of all elements of the output.
    - ``activations/std/<layer>``: population std of all elements of the output.
    - ``activations/near_zero/<layer>``: fraction of elements with
      ``|x| <= near_zero_threshold``. After a ReLU, these are mostly the
      switched-off units.
    - ``weights/std/<weight_layer>``: std of the weight before the update.
    - ``gradients/std/<weight_layer>``: std of the weight's gradient.
    - ``weights/update_ratio/<weight_layer>``: ``||W_after - W_before|| / ||W_before||``
      for the update of that step.

    Every ``histogram_every_n_steps`` training steps:

    - ``activations/histogram/<layer>``: histogram over the output's min to max.

    At the end of every training epoch and of training:

    - ``activations/colorful_dimension/<layer>``: image of the histograms of all
      recorded steps, one column per step, on a log scale.

    Once, at global step 0, from the fixed batch:

    - ``step0/activations/mean/<layer>``
    - ``step0/activations/std/<layer>``
    - ``step0/activations/near_zero/<layer>``
    - ``step0/activations/histogram/<layer>``: histogram.
    - ``step0/activations_std``: bar chart of the std per layer (figure).
    - ``step0/activations``: table of mean, std and near-zero fraction per layer (text).

    With ``validation`` set, after every validation run, over all its batches,
    logged through ``pl_module.log_dict`` (to which Lightning adds its own
    ``epoch`` key):

    - ``val/activations/mean/<layer>``
    - ``val/activations/std/<layer>``
    - ``val/activations/near_zero/<layer>``

    Args:
        layers: layer names (``fnmatch`` globs) or class names to record, such
            as ``["conv1", "ReLU"]``; None records every Conv, Linear and
            activation layer.
        every_n_steps: training steps between recorded steps; None uses the
            trainer's ``log_every_n_steps``.
        histogram_every_n_steps: training steps between logged histograms;
            None logs one at every fourth recorded step. Histograms are logged
            only at recorded steps. The colorful-dimension images take the
            histograms of every recorded step either way.
        bins: number of histogram bins, and rows of a colorful-dimension image.
        near_zero_threshold: an element counts as near zero when its absolute
            value is at most this.
        snapshot_images: number of fixed images in the step-0 snapshot; 0
            turns the snapshot off.
        record_output: also record the net's output under the name ``output``.
        validation: also record activation statistics over every validation
            run (not the sanity check).
        image_max_steps: maximum number of recorded steps, and columns, in a
            colorful-dimension image; older columns are thinned out evenly.
    """

    def __init__(
        self,
        layers: Sequence[str] | None = None,
        every_n_steps: int | None = None,
        histogram_every_n_steps: int | None = None,
        bins: int = 64,
        near_zero_threshold: float = 1e-3,
        snapshot_images: int = 256,
        record_output: bool = True,
        validation: bool = False,
        image_max_steps: int = 256,
    ) -> None:
        _check_layers(layers)
        _check_int("stats.every_n_steps", every_n_steps, minimum=1, optional=True)
        _check_int("stats.histogram_every_n_steps", histogram_every_n_steps, minimum=1, optional=True)
        _check_int("stats.bins", bins, minimum=2)
        _check_int("stats.snapshot_images", snapshot_images, minimum=0)
        _check_int("stats.image_max_steps", image_max_steps, minimum=2)
        _check_bool("stats.record_output", record_output)
        _check_bool("stats.validation", validation)
        if not (_is_number(near_zero_threshold) and math.isfinite(near_zero_threshold) and near_zero_threshold >= 0):
            raise ValueError(
                f"stats.near_zero_threshold must be a finite number of at least 0, got {near_zero_threshold!r}"
            )

        self.layers = None if layers is None else tuple(layers)
        self.every_n_steps = every_n_steps
        self.histogram_every_n_steps = histogram_every_n_steps
        self.bins = bins
        self.near_zero_threshold = float(near_zero_threshold)
        self.snapshot_images = snapshot_images
        self.record_output = record_output
        self.validation = validation
        self.image_max_steps = image_max_steps

        self.step0_stats: dict[str, ActivationSummary] = {}
        self.histories: dict[str, HistogramHistory] = {}
        self._hooks: LayerHooks | None = None
        self._restored_state: Mapping[str, Any] | None = None
        self._reset_fit_state()

    # Lightning hooks, in the order in which a fit calls them.

    def state_dict(self) -> dict[str, Any]:
        """Return what a resumed run needs to continue: the histogram histories and the last recorded step."""
        return {
            "histories": {name: history.state_dict() for name, history in self.histories.items()},
            "last_recorded_step": self._last_recorded_step,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Lightning restores the callbacks before on_fit_start, which resets the fit state, so the
        # state is applied there.
        self._restored_state = state_dict

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._release_hooks()
        self._reset_fit_state()
        self.step0_stats = {}
        restored, self._restored_state = self._restored_state, None
        if restored is not None:
            self.histories = {
                name: HistogramHistory.from_state_dict(history, self.image_max_steps)
                for name, history in restored.get("histories", {}).items()
            }
            self._last_recorded_step = restored.get("last_recorded_step")
        if not trainer.is_global_zero:
            return

        net = _net_of(pl_module)
        layers = select_layers(net, self.layers, self.record_output)
        self._record_interval = self.every_n_steps or max(1, trainer.log_every_n_steps)
        self._histogram_interval = self.histogram_every_n_steps or HISTOGRAM_EVERY_N_RECORDS * self._record_interval
        if self._histogram_interval % self._record_interval != 0:
            rank_zero_warn(
                f"stats.histogram_every_n_steps={self._histogram_interval} is not a multiple of the recording interval "
                f"{self._record_interval} (stats.every_n_steps, or trainer.log_every_n_steps when that is null), so "
                "histograms are logged only at steps that are multiples of both."
            )
        if not trainer.loggers:
            rank_zero_warn(
                "LayerStatsMonitor found no logger on the trainer, so it logs nothing; only its step0_stats and "
                "histories attributes keep what it records. Add a TensorBoardLogger, or set stats=off."
            )
        elif _tensorboard_writer(trainer) is None:
            rank_zero_warn(
                "LayerStatsMonitor found no TensorBoardLogger among the trainer's loggers, so it logs scalars only: "
                "no histograms, colorful-dimension images or step-0 chart. Add a TensorBoardLogger to get them, or "
                "set stats=off."
            )

        self._weight_layers = {
            name: layer
            for name, layer in layers.items()
            if name != OUTPUT_NAME and _has_trainable_weight(layer)
        }
        self._hooks = LayerHooks(layers, self._record)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # A run resumed from a checkpoint has left its initial weights behind, so it takes no snapshot.
        if self._hooks is None or self.snapshot_images == 0 or trainer.global_step != 0:
            return
        images = self._fixed_images(trainer)
        if images is None:
            self._snapshot_from_first_batch = True
            return
        self._take_snapshot(trainer, pl_module, images)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._hooks is None:
            return
        step = trainer.global_step
        if self._snapshot_from_first_batch:
            self._snapshot_from_first_batch = False
            images = _images_of(batch)
            if images is None:
                rank_zero_warn(
                    "LayerStatsMonitor cannot find the images in the first training batch (expected a tensor or a "
                    "tuple whose first item is a tensor), so it takes no step-0 snapshot. Set "
                    "stats.snapshot_images=0 to silence this warning."
                )
            else:
                self._take_snapshot(trainer, pl_module, images)

        # With gradient accumulation several batches share one global step, and only the first is recorded.
        if self._pending_step is None and step != self._last_recorded_step and step % self._record_interval == 0:
            self._pending_step = step
            self._start_recording("train", pl_module)

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if self._pending_step is None or self._weights_before is not None:
            return
        self._weights_before = {}
        with torch.no_grad():
            for name, layer in self._weight_layers.items():
                weight = layer.weight.detach()
                self._step_scalars[f"weights/std/{name}"] = population_std(weight)
                if layer.weight.grad is not None:
                    self._step_scalars[f"gradients/std/{name}"] = population_std(layer.weight.grad)
                self._weights_before[name] = weight.clone()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._pending_step is None:
            return
        self._stop_recording()
        # Under gradient accumulation the optimizer has not stepped yet, so the update is not known.
        if self._weight_layers and self._weights_before is None:
            return
        self._finish_recorded_step(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._hooks is not None:
            self._log_colorful_dimension(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._hooks is None:
            return
        if self._pending_step is not None:
            self._stop_recording()
            self._finish_recorded_step(trainer)
        self._log_colorful_dimension(trainer)

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._hooks is not None and self.validation and not trainer.sanity_checking:
            self._start_recording("val", pl_module)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._mode == "val":
            self._stop_recording()
        if not self._val_moments:
            return
        summaries, _ = _read_summaries(self._val_moments, {})
        self._val_moments = {}
        metrics = {}
        for name, summary in summaries.items():
            metrics.update(_activation_metrics(f"val/activations/{{}}/{name}", summary))
        # Logged through Lightning, so that they land on the same step as the run's val/loss and val/acc.
        # Only rank zero has them, and rank_zero_only spares the other ranks a sync they never join.
        pl_module.log_dict(metrics, rank_zero_only=True)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._release_hooks()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._release_hooks()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._release_hooks()

    # Public helper for use outside a fit.

    def measure_activations(self, net: nn.Module, images: Tensor) -> dict[str, ActivationSummary]:
        """Run ``net`` on ``images`` without gradients and return the statistics of each selected layer.

        The hooks are attached for this call only. This is the measurement of
        the step-0 snapshot, usable on a freshly initialized net without a
        Trainer.

        Raises:
            RuntimeError: the callback's hooks are attached, that is, a fit is running.
        """
        if self._hooks is not None:
            raise RuntimeError("measure_activations cannot run while the callback's hooks are attached during fit")
        with _run_eagerly(net), LayerHooks(select_layers(net, self.layers, self.record_output), self._record):
            return self._measure(net, images)

    # Recording.

    def _record(self, name: str, output: Any) -> None:
        """Forward hook body: accumulate the statistics of one layer output on its device."""
        mode = self._mode
        if mode is None:
            return
        if not isinstance(output, Tensor):
            self._warn_not_tensor(name, output)
            return

        with torch.no_grad():
            moments = activation_moments(output, self.near_zero_threshold)
            buffer = self._val_moments if mode == "val" else self._moments
            previous = buffer.get(name)
            # A layer called twice in one forward pass gets the statistics of both outputs together.
            buffer[name] = moments if previous is None else merge_moments(previous, moments)
            if mode != "val" and name not in self._histograms:
                self._histograms[name] = adaptive_histogram(output, self.bins)

    def _measure(self, net: nn.Module, images: Tensor, precision: Any = None) -> dict[str, ActivationSummary]:
        """Run ``net`` on ``images`` with the hooks attached and return the statistics of each layer.

        ``precision`` is the trainer's precision plugin, which casts the images
        and sets up autocast as in a training step, so that a net in bfloat16
        or float64 gets inputs of its own dtype.
        """
        self._moments, self._histograms = {}, {}
        self._mode = "snapshot"
        try:
            with torch.no_grad():
                if precision is None:
                    net(images)
                else:
                    with precision.forward_context():
                        net(precision.convert_input(images))
        finally:
            self._mode = None
        summaries, _ = _read_summaries(self._moments, self._histograms)
        self._moments, self._histograms = {}, {}
        return summaries

    def _take_snapshot(self, trainer: pl.Trainer, pl_module: pl.LightningModule, images: Tensor) -> None:
        self._attach(pl_module)
        try:
            self.step0_stats = self._measure(
                _net_of(pl_module), images.to(pl_module.device), trainer.precision_plugin
            )
        finally:
            self._detach()
        metrics, histograms = {}, []
        for name, summary in self.step0_stats.items():
            metrics.update(_activation_metrics(f"step0/activations/{{}}/{name}", summary))
            histograms += _histogram_values(f"step0/activations/histogram/{name}", summary)
        _log(trainer, 0, metrics, histograms)

        writer = _tensorboard_writer(trainer)
        if writer is None:
            return
        writer.add_figure("step0/activations_std", _std_bar_chart(self.step0_stats, len(images)), global_step=0)
        writer.add_text("step0/activations", _summary_table(self.step0_stats), global_step=0)

    def _finish_recorded_step(self, trainer: pl.Trainer) -> None:
        step = self._pending_step
        with torch.no_grad():
            for name, before in (self._weights_before or {}).items():
                after = self._weight_layers[name].weight.detach()
                self._step_scalars[f"weights/update_ratio/{name}"] = update_to_weight_ratio(before, after)

        inner_layers = [name for name in self._hooks.layers if name != OUTPUT_NAME] if self._hooks else []
        if inner_layers and not any(name in self._moments for name in inner_layers) and not self._warned_silent_hooks:
            self._warned_silent_hooks = True
            rank_zero_warn(
                f"LayerStatsMonitor recorded no layer output at step {step}: the layers' hooks did not run. A model "
                "compiled with torch.compile from the LightningModule ignores hooks added after compilation; "
                "compile the net instead (compile=true), or set stats=off."
            )
        summaries, scalars = _read_summaries(self._moments, self._histograms, self._step_scalars)
        metrics = {}
        for name, summary in summaries.items():
            metrics.update(_activation_metrics(f"activations/{{}}/{name}", summary))
        metrics.update(scalars)

        log_histograms = step % self._histogram_interval == 0
        histograms = []
        for name, summary in summaries.items():
            if not _has_finite_histogram(summary):
                continue
            if name not in self.histories:
                self.histories[name] = HistogramHistory(self.image_max_steps)
            self.histories[name].append(step, summary.counts, summary.value_range)
            if log_histograms:
                histograms += _histogram_values(f"activations/histogram/{name}", summary)
        _log(trainer, step, metrics, histograms)

        self._last_recorded_step = step
        self._pending_step = None
        self._moments, self._histograms, self._step_scalars = {}, {}, {}
        self._weights_before = None

    def _log_colorful_dimension(self, trainer: pl.Trainer) -> None:
        if _tensorboard_writer(trainer) is None:
            return
        images = []
        for name, history in self.histories.items():
            if not history or self._image_columns.get(name) == history.steps[-1]:
                continue
            image, _ = colorful_dimension(history.counts, history.value_ranges, self.bins)
            picture = _enlarge(_apply_colormap(image[0]), IMAGE_MIN_SIZE)
            tag = f"activations/colorful_dimension/{name}"
            images += tensorboard_summary.image(tag, picture, dataformats="CHW").value
            self._image_columns[name] = history.steps[-1]
        _log(trainer, trainer.global_step, {}, images)

    # Helpers of the lifecycle.

    def _fixed_images(self, trainer: pl.Trainer) -> Tensor | None:
        fixed_batch = getattr(trainer.datamodule, "fixed_batch", None)
        if not callable(fixed_batch):
            rank_zero_warn(
                "LayerStatsMonitor: the datamodule has no fixed_batch(split, count) method, so the step-0 snapshot "
                "uses the first training batch, which changes with the seed. Add fixed_batch to the datamodule to "
                "compare runs on the same images, or set stats.snapshot_images=0 to turn the snapshot off."
            )
            return None
        images = _images_of(fixed_batch("val", self.snapshot_images))
        if images is None:
            rank_zero_warn(
                "LayerStatsMonitor: datamodule.fixed_batch('val', count) returned no tensor of images, so the step-0 "
                "snapshot uses the first training batch."
            )
        return images

    def _warn_not_tensor(self, name: str, output: Any) -> None:
        if name in self._warned_layers:
            return
        self._warned_layers.add(name)
        rank_zero_warn(
            f"LayerStatsMonitor skips layer {name!r}: its output is a {type(output).__name__}, not a tensor. "
            "Remove it from stats.layers to silence this warning."
        )

    def _start_recording(self, mode: str, pl_module: pl.LightningModule) -> None:
        self._mode = mode
        self._attach(pl_module)

    def _stop_recording(self) -> None:
        self._mode = None
        self._detach()

    def _attach(self, pl_module: pl.LightningModule) -> None:
        """Register the hooks, and make the modules compiled with ``nn.Module.compile`` run eagerly until :meth:`_detach`."""
        if self._hooks.attached:
            return
        self._compiled_calls = _set_compiled_calls_aside(pl_module)
        self._hooks.attach()

    def _detach(self) -> None:
        """Remove the hooks and restore the compiled calls that :meth:`_attach` set aside."""
        if self._hooks is not None:
            self._hooks.remove()
        _restore_compiled_calls(self._compiled_calls)
        self._compiled_calls = []

    def _reset_fit_state(self) -> None:
        self._mode: str | None = None
        self._compiled_calls: list[tuple[nn.Module, Callable[..., Any]]] = []
        self._record_interval = 1
        self._histogram_interval = 1
        self._weight_layers: dict[str, nn.Module] = {}
        self._moments: dict[str, Tensor] = {}
        self._histograms: dict[str, tuple[Tensor, Tensor]] = {}
        self._val_moments: dict[str, Tensor] = {}
        self._step_scalars: dict[str, Tensor] = {}
        self._weights_before: dict[str, Tensor] | None = None
        self._pending_step: int | None = None
        self._last_recorded_step: int | None = None
        self._snapshot_from_first_batch = False
        self._image_columns: dict[str, int] = {}
        self._warned_layers: set[str] = set()
        self._warned_silent_hooks = False
        self.histories = {}

    def _release_hooks(self) -> None:
        self._detach()
        self._hooks = None
        self._mode = None
        self._weights_before = None
        self._pending_step = None


def _read_summaries(
    moments: Mapping[str, Tensor],
    histograms: Mapping[str, tuple[Tensor, Tensor]],
    scalars: Mapping[str, Tensor] | None = None,
) -> tuple[dict[str, ActivationSummary], dict[str, float]]:
    """Copy device statistics to the host in one transfer and return a summary per layer and the scalars as floats."""
    scalars = scalars or {}
    parts: list[Tensor] = []
    for name, layer_moments in moments.items():
        parts.append(layer_moments)
        if name in histograms:
            parts.extend(histograms[name])
    parts.extend(scalars.values())
    if not parts:
        return {}, {}

    flat = [part.reshape(-1).float() for part in parts]
    host = iter(torch.cat(flat).cpu().split([part.numel() for part in flat]))  # the one host-device sync

    summaries = {}
    for name in moments:
        count, mean, m2, near_zero_count = next(host).tolist()
        counts, value_range = (next(host), next(host)) if name in histograms else (None, None)
        summaries[name] = ActivationSummary(
            count=count,
            mean=mean,
            std=math.sqrt(max(m2, 0.0) / count),
            near_zero=near_zero_count / count,
            counts=counts,
            value_range=value_range,
        )
    return summaries, {key: next(host).item() for key in scalars}


def _activation_metrics(template: str, summary: ActivationSummary) -> dict[str, float]:
    return {
        template.format("mean"): summary.mean,
        template.format("std"): summary.std,
        template.format("near_zero"): summary.near_zero,
    }


def _log(
    trainer: pl.Trainer, step: int, metrics: Mapping[str, float], tensorboard_values: Sequence[Summary.Value] = ()
) -> None:
    """Log ``metrics`` to every logger, and write them with ``tensorboard_values`` to TensorBoard as one event.

    ``SummaryWriter.add_scalar`` and its kin write one event each. Measured
    on a 2-core CPU, the writer spent about 50 microseconds per event plus a
    Python checksum of every byte, on a thread that competes with training
    for the interpreter lock. One event per step keeps that cost to a few
    hundred microseconds.
    """
    writer = _tensorboard_writer(trainer)
    for logger in trainer.loggers:
        if metrics and not (isinstance(logger, TensorBoardLogger) and logger.experiment is writer):
            logger.log_metrics(dict(metrics), step=step)
    if writer is None:
        return
    values = [value for key, number in metrics.items() for value in tensorboard_summary.scalar(key, number).value]
    values += tensorboard_values
    if values:
        # _get_file_writer is how every SummaryWriter.add_* method reaches the event file.
        writer._get_file_writer().add_summary(Summary(value=values), step)


def _tensorboard_writer(trainer: pl.Trainer) -> Any | None:
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


def _histogram_values(tag: str, summary: ActivationSummary) -> list[Summary.Value]:
    """Return the TensorBoard histogram of ``summary`` under ``tag``, or nothing when it has none or no finite range."""
    if not _has_finite_histogram(summary):
        return []
    edges = histogram_edges(*summary.value_range.tolist(), summary.counts.numel())
    histogram = tensorboard_summary.histogram_raw(
        tag,
        min=edges[0],
        max=edges[-1],
        num=int(summary.count),
        sum=summary.sum,
        sum_squares=summary.sum_squares,
        bucket_limits=edges[1:],
        bucket_counts=summary.counts.tolist(),
    )
    return list(histogram.value)


def _has_finite_histogram(summary: ActivationSummary) -> bool:
    return summary.value_range is not None and all(math.isfinite(value) for value in summary.value_range.tolist())


def _std_bar_chart(summaries: Mapping[str, ActivationSummary], image_count: int) -> Any:
    from matplotlib.figure import Figure  # imported here because matplotlib takes a while to load

    names = list(summaries)
    figure = Figure(figsize=(max(4.0, 0.6 * len(names) + 1.5), 3.0), layout="constrained")
    axes = figure.add_subplot()
    axes.bar(names, [summaries[name].std for name in names], color="tab:blue")
    axes.set_ylabel("activation std")
    axes.set_title(f"Step 0, {image_count} fixed images")
    axes.tick_params(axis="x", labelrotation=45)
    return figure


def _summary_table(summaries: Mapping[str, ActivationSummary]) -> str:
    lines = ["| layer | mean | std | near-zero fraction |", "|---|---:|---:|---:|"]
    for name, summary in summaries.items():
        lines.append(f"| {name} | {summary.mean:.4g} | {summary.std:.4g} | {summary.near_zero:.4f} |")
    return "\n".join(lines)


@functools.cache
def _viridis_table() -> Tensor:
    from matplotlib import colormaps  # imported here because matplotlib takes a while to load

    return torch.tensor(colormaps["viridis"].resampled(256)(range(256)), dtype=torch.float32)[:, :3]


def _apply_colormap(image: Tensor) -> Tensor:
    """Map a (H, W) image with values in [0, 1] to a (3, H, W) RGB image through matplotlib's viridis colormap."""
    indices = (image.clamp(0, 1) * 255).round().long()
    return _viridis_table()[indices].permute(2, 0, 1)


def _enlarge(image: Tensor, min_size: int) -> Tensor:
    """Repeat the pixels of a (C, H, W) image by the smallest whole factors that make each side at least ``min_size``."""
    row_factor = max(1, math.ceil(min_size / image.shape[1]))
    column_factor = max(1, math.ceil(min_size / image.shape[2]))
    return image.repeat_interleave(row_factor, dim=1).repeat_interleave(column_factor, dim=2)


def _set_compiled_calls_aside(module: nn.Module) -> list[tuple[nn.Module, Callable[..., Any]]]:
    """Make the submodules of ``module`` that ``nn.Module.compile`` compiled run eagerly, and return what to restore.

    Compiled code ignores hooks registered after it was compiled, because by
    default torch.compile does not guard on hooks
    (``torch._dynamo.config.skip_nnmodule_hook_guards``). ``nn.Module.compile``
    keeps the compiled call in ``_compiled_call_impl``, and with it unset the
    module runs eagerly. Restoring it reuses the compiled code.
    """
    set_aside = []
    for submodule in module.modules():
        compiled_call = getattr(submodule, "_compiled_call_impl", None)
        if compiled_call is not None:
            set_aside.append((submodule, compiled_call))
            submodule._compiled_call_impl = None
    return set_aside


def _restore_compiled_calls(set_aside: Sequence[tuple[nn.Module, Callable[..., Any]]]) -> None:
    for submodule, compiled_call in set_aside:
        submodule._compiled_call_impl = compiled_call


@contextlib.contextmanager
def _run_eagerly(module: nn.Module) -> Iterator[None]:
    """Run the compiled submodules of ``module`` eagerly inside the block."""
    set_aside = _set_compiled_calls_aside(module)
    try:
        yield
    finally:
        _restore_compiled_calls(set_aside)


def _net_of(pl_module: pl.LightningModule) -> nn.Module:
    net = getattr(pl_module, "net", None)
    return net if isinstance(net, nn.Module) else pl_module


def _has_trainable_weight(layer: nn.Module) -> bool:
    weight = getattr(layer, "weight", None)
    return isinstance(weight, nn.Parameter) and weight.requires_grad


def _images_of(batch: Any) -> Tensor | None:
    if isinstance(batch, Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
        return batch[0]
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_int(key: str, value: Any, minimum: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        expected = "an integer or null" if optional else "an integer"
        raise ValueError(f"{key} must be {expected}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{key} must be at least {minimum}, got {value}")


def _check_bool(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, got {value!r}")


def _check_layers(layers: Any) -> None:
    if layers is None:
        return
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
        raise ValueError(
            f"stats.layers must be a list of layer names or types, such as [conv1, ReLU], or null, got {layers!r}"
        )
    for entry in layers:
        if not isinstance(entry, str) or not entry:
            raise ValueError(f"stats.layers entries must be non-empty strings, got {entry!r}")
