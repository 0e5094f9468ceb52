"""Tests of the per-layer statistics callback: options, hooks, the step-0 snapshot and the logged keys.

Fast tests train the real StrideConvNet for a few steps on unit-variance
Gaussian images that each test makes. Tests marked slow read the cached real
MNIST validation images and are skipped when the cache is missing.
"""

from __future__ import annotations

import copy
import inspect
import io
import re
import signal
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from PIL import Image
from pytorch_lightning.loggers import Logger, TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from initbench.init_schemes import KaimingInit, PytorchDefaultInit
from initbench.model import StrideConvNet
from initbench.stats_callback import HistogramHistory, LayerHooks, LayerStatsMonitor, select_layers

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
MNIST_CACHE = Path("~/.cache/initbench/mnist.pkl.gz").expanduser()
SEEDS = range(10)
STRIDE_NET_LAYERS = ["conv1", "relu1", "conv2", "relu2", "conv3", "relu3", "conv4", "output"]
STRIDE_NET_WEIGHT_LAYERS = ["conv1", "conv2", "conv3", "conv4"]


class SyntheticImages(pl.LightningDataModule):
    """Unit-variance Gaussian images with random labels, with a ``fixed_batch`` like MNISTDataModule's."""

    def __init__(self, train_count: int = 256, val_count: int = 64, batch_size: int = 32, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.train_images = torch.randn(train_count, 1, 28, 28, generator=generator)
        self.train_labels = torch.randint(0, 10, (train_count,), generator=generator)
        self.val_images = torch.randn(val_count, 1, 28, 28, generator=generator)
        self.val_labels = torch.randint(0, 10, (val_count,), generator=generator)
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.train_images, self.train_labels), batch_size=self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.val_images, self.val_labels), batch_size=self.batch_size)

    def fixed_batch(self, split: str = "val", count: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
        assert split == "val"
        return self.val_images[:count], self.val_labels[:count]


class SyntheticImagesWithoutFixedBatch(SyntheticImages):
    """The same data, but without ``fixed_batch``, as a third-party datamodule would be."""

    fixed_batch = None


class TinyClassifier(pl.LightningModule):
    """Cross-entropy on a StrideConvNet with plain SGD.

    It logs nothing, so the event file contains only the callback's keys.
    """

    def __init__(self, lr: float = 0.05, fail_at_step: int | None = None, failure: type[BaseException] = RuntimeError):
        super().__init__()
        self.net = StrideConvNet()
        self.lr = lr
        self.fail_at_step = fail_at_step
        self.failure = failure

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        logits = self.net(images)
        if self.global_step == self.fail_at_step:
            raise self.failure(f"planned failure at step {self.global_step}")
        return F.cross_entropy(logits, labels)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        F.cross_entropy(self.net(images), labels)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class RecordingLogger(Logger):
    """A logger that keeps every ``log_metrics`` call as ``(step, metrics)``."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, dict[str, float]]] = []

    @property
    def name(self) -> str:
        return "recording"

    @property
    def version(self) -> str:
        return "0"

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.calls.append((step, dict(metrics)))

    def steps_of(self, key: str) -> list[int]:
        return [step for step, metrics in self.calls if key in metrics]

    def values_of(self, key: str) -> list[float]:
        return [metrics[key] for _, metrics in self.calls if key in metrics]


class HookCounter(pl.Callback):
    """Count the forward hooks on the model at the first training batch, to prove that there were some."""

    def __init__(self) -> None:
        self.count_during_fit: int | None = None

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.count_during_fit is None:
            self.count_during_fit = count_forward_hooks(pl_module)


class HooksPerStep(pl.Callback):
    """Count the forward hooks on the model in every training step, after the forward pass."""

    def __init__(self) -> None:
        self.counts: list[int] = []

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        self.counts.append(count_forward_hooks(pl_module))


class CompiledNetClassifier(TinyClassifier):
    """TinyClassifier whose net is compiled, as ImageClassifier does with compile=true."""

    def configure_model(self) -> None:
        self.net.compile()


def count_forward_hooks(model: nn.Module) -> int:
    return sum(len(module._forward_hooks) for module in model.modules())


def fit(
    tmp_path: Path,
    callbacks: list[pl.Callback],
    module: pl.LightningModule | None = None,
    datamodule: pl.LightningDataModule | None = None,
    logger: Any = None,
    **trainer_args: Any,
) -> tuple[pl.Trainer, pl.LightningModule]:
    """Fit ``module`` for one epoch on the CPU and return the trainer and the module."""
    module = module or TinyClassifier()
    arguments = {
        "accelerator": "cpu",
        "devices": 1,
        "max_epochs": 1,
        "logger": logger if logger is not None else RecordingLogger(),
        "callbacks": callbacks,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "limit_val_batches": 0,
        "default_root_dir": str(tmp_path),
    }
    arguments.update(trainer_args)
    trainer = pl.Trainer(**arguments)
    trainer.fit(module, datamodule=datamodule or SyntheticImages())
    return trainer, module


def unit_variance_images(count: int = 256) -> torch.Tensor:
    return torch.randn(count, 1, 28, 28, generator=torch.Generator().manual_seed(123))


def step0_stats(scheme: type, seed: int, images: torch.Tensor) -> dict:
    net = StrideConvNet()
    scheme(seed=seed).apply_to(net)
    return LayerStatsMonitor().measure_activations(net, images)


@pytest.fixture(scope="module")
def real_images() -> torch.Tensor:
    """The first 256 normalized real MNIST validation images, the step-0 snapshot's default batch."""
    if not MNIST_CACHE.is_file():
        pytest.skip(f"real MNIST is not cached at {MNIST_CACHE}")
    from initbench.datamodule import MNISTDataModule

    datamodule = MNISTDataModule(cache_dir=str(MNIST_CACHE.parent), sources=["cache"])
    datamodule.setup()
    images, _ = datamodule.fixed_batch("val", 256)
    return images.cpu()


# Options.


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"every_n_steps": 0}, "stats.every_n_steps must be at least 1, got 0"),
        ({"every_n_steps": 2.5}, "stats.every_n_steps must be an integer or null"),
        ({"every_n_steps": True}, "stats.every_n_steps must be an integer or null"),
        ({"histogram_every_n_steps": 0}, "stats.histogram_every_n_steps must be at least 1, got 0"),
        ({"bins": 1}, "stats.bins must be at least 2, got 1"),
        ({"snapshot_images": -1}, "stats.snapshot_images must be at least 0, got -1"),
        ({"image_max_steps": 1}, "stats.image_max_steps must be at least 2, got 1"),
        ({"near_zero_threshold": -0.1}, "stats.near_zero_threshold must be a finite number of at least 0"),
        ({"near_zero_threshold": float("nan")}, "stats.near_zero_threshold must be a finite number of at least 0"),
        ({"record_output": "yes"}, "stats.record_output must be true or false"),
        ({"validation": 1}, "stats.validation must be true or false"),
        ({"layers": "conv1"}, "stats.layers must be a list of layer names or types"),
        ({"layers": [""]}, "stats.layers entries must be non-empty strings"),
    ],
)
def test_invalid_option_raises(options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        LayerStatsMonitor(**options)


def test_config_keys_match_arguments():
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name=None, overrides=["+stats=default"])
    config_keys = set(cfg.stats) - {"_target_"}
    assert config_keys == set(inspect.signature(LayerStatsMonitor).parameters)


def test_config_instantiates_with_layer_list():
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name=None, overrides=["+stats=default", "stats.layers=[conv1,ReLU]"])
    callback = instantiate(cfg.stats)
    assert callback.layers == ("conv1", "ReLU")


def test_config_off_sets_stats_to_null():
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name=None, overrides=["+stats=off"])
    assert cfg.stats is None


# Layer selection and hooks.


def test_default_layer_selection():
    assert list(select_layers(StrideConvNet(), None, record_output=True)) == STRIDE_NET_LAYERS


def test_layer_patterns_keep_net_order():
    selected = select_layers(StrideConvNet(), ["conv4", "ReLU"], record_output=False)
    assert list(selected) == ["relu1", "relu2", "relu3", "conv4"]


def test_layers_by_glob():
    assert list(select_layers(StrideConvNet(), ["conv*"], record_output=False)) == STRIDE_NET_WEIGHT_LAYERS


def test_unknown_layer_pattern_raises():
    with pytest.raises(ValueError, match=r"stats.layers entry 'conv9' matches no layer"):
        select_layers(StrideConvNet(), ["conv9"], record_output=False)


def test_output_pattern_selects_output_alone():
    assert list(select_layers(StrideConvNet(), ["output"], record_output=True)) == ["output"]


def test_output_pattern_without_record_output_raises():
    with pytest.raises(ValueError, match="Set stats.record_output=true"):
        select_layers(StrideConvNet(), ["conv1", "output"], record_output=False)


def test_output_name_clash_raises():
    net = nn.Sequential()
    net.add_module("output", nn.Linear(2, 2))
    with pytest.raises(ValueError, match="stats.record_output=false"):
        select_layers(net, None, record_output=True)


def test_layer_hooks_removed_on_context_exit():
    net = StrideConvNet()
    with LayerHooks(select_layers(net, None, record_output=True), lambda name, output: None):
        assert count_forward_hooks(net) == len(STRIDE_NET_LAYERS)
    assert count_forward_hooks(net) == 0


def test_layer_hooks_remove_twice_is_harmless():
    net = StrideConvNet()
    hooks = LayerHooks(select_layers(net, None, record_output=False), lambda name, output: None).attach()
    hooks.remove()
    hooks.remove()
    assert count_forward_hooks(net) == 0


def test_layer_hooks_removed_when_block_raises():
    net = StrideConvNet()
    with pytest.raises(RuntimeError), LayerHooks(select_layers(net, None, record_output=False), lambda n, o: None):
        raise RuntimeError("inside the block")
    assert count_forward_hooks(net) == 0


# Measured values against an independent computation.


def test_conv_std_matches_torch():
    net = StrideConvNet()
    images = unit_variance_images()
    stats = LayerStatsMonitor().measure_activations(net, images)
    expected = net.conv1(images).std(correction=0).item()
    assert stats["conv1"].std == pytest.approx(expected, rel=1e-5)


def test_output_mean_matches_torch():
    net = StrideConvNet()
    images = unit_variance_images()
    stats = LayerStatsMonitor().measure_activations(net, images)
    assert stats["output"].mean == pytest.approx(net(images).mean().item(), rel=1e-4, abs=1e-7)


def test_relu_near_zero_matches_torch():
    net = StrideConvNet()
    images = unit_variance_images()
    stats = LayerStatsMonitor(near_zero_threshold=1e-3).measure_activations(net, images)
    expected = (net.relu1(net.conv1(images)).abs() <= 1e-3).double().mean().item()
    assert stats["relu1"].near_zero == pytest.approx(expected, abs=1e-7)


def test_measure_activations_leaves_no_hooks():
    net = StrideConvNet()
    LayerStatsMonitor().measure_activations(net, unit_variance_images(8))
    assert count_forward_hooks(net) == 0


def test_inplace_relu_keeps_conv_stats():
    torch.manual_seed(0)
    net = nn.Sequential()
    net.add_module("conv", nn.Conv2d(1, 4, 3))
    net.add_module("relu", nn.ReLU(inplace=True))
    images = unit_variance_images(16)
    with torch.no_grad():
        conv_output = net.conv(images)
    stats = LayerStatsMonitor(record_output=False).measure_activations(net, images)
    assert stats["conv"].mean == pytest.approx(conv_output.mean().item(), rel=1e-5)
    assert stats["conv"].std == pytest.approx(conv_output.std(correction=0).item(), rel=1e-5)


# The step-0 signal of the two inits.


@pytest.mark.parametrize("seed", SEEDS)
def test_kaiming_relu_std_stays_within_factor_two(seed):
    stats = step0_stats(KaimingInit, seed, unit_variance_images())
    ratio = stats["relu1"].std / stats["relu3"].std
    assert 0.5 <= ratio <= 2.0, f"relu1 std / relu3 std = {ratio:.3f} for seed {seed}"


def test_default_output_std_below_kaiming():
    images = unit_variance_images()
    default_std = sum(step0_stats(PytorchDefaultInit, seed, images)["output"].std for seed in SEEDS) / len(SEEDS)
    kaiming_std = sum(step0_stats(KaimingInit, seed, images)["output"].std for seed in SEEDS) / len(SEEDS)
    assert kaiming_std >= 5 * default_std, f"kaiming {kaiming_std:.4f}, pytorch_default {default_std:.4f}"


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_kaiming_relu_std_on_real_images(seed, real_images):
    stats = step0_stats(KaimingInit, seed, real_images)
    ratio = stats["relu1"].std / stats["relu3"].std
    assert 0.5 <= ratio <= 2.0, f"relu1 std / relu3 std = {ratio:.3f} for seed {seed}"


@pytest.mark.slow
def test_default_output_std_on_real_images(real_images):
    images = real_images
    default_std = sum(step0_stats(PytorchDefaultInit, seed, images)["output"].std for seed in SEEDS) / len(SEEDS)
    kaiming_std = sum(step0_stats(KaimingInit, seed, images)["output"].std for seed in SEEDS) / len(SEEDS)
    assert kaiming_std >= 5 * default_std, f"kaiming {kaiming_std:.4f}, pytorch_default {default_std:.4f}"


# Hooks during and after fit.


def test_no_hooks_after_fit(tmp_path):
    counter = HookCounter()
    _, module = fit(tmp_path, [LayerStatsMonitor(every_n_steps=2), counter], limit_train_batches=3)
    assert counter.count_during_fit == len(STRIDE_NET_LAYERS)
    assert count_forward_hooks(module) == 0


def test_hooks_attached_only_on_recorded_steps(tmp_path):
    counter = HooksPerStep()
    fit(tmp_path, [LayerStatsMonitor(every_n_steps=2), counter], limit_train_batches=5)
    hooks = len(STRIDE_NET_LAYERS)
    assert counter.counts == [hooks, 0, hooks, 0, hooks]


@pytest.mark.slow
def test_compiled_net_records_every_layer(tmp_path):
    logger = RecordingLogger()
    callback = LayerStatsMonitor(every_n_steps=2)
    _, module = fit(tmp_path, [callback], module=CompiledNetClassifier(), logger=logger, limit_train_batches=4)
    assert set(callback.step0_stats) == set(STRIDE_NET_LAYERS)
    for layer in STRIDE_NET_LAYERS:
        assert logger.steps_of(f"activations/std/{layer}") == [0, 2]
    assert count_forward_hooks(module) == 0


@pytest.mark.slow
def test_compiled_net_runs_compiled_between_records(tmp_path):
    module = CompiledNetClassifier()
    fit(tmp_path, [LayerStatsMonitor(every_n_steps=2)], module=module, limit_train_batches=3)
    assert module.net._compiled_call_impl is not None


@pytest.mark.slow
def test_measure_activations_on_compiled_net():
    net = StrideConvNet()
    net.compile()
    images = unit_variance_images(8)
    net(images)  # compiles without hooks, which the compiled code would then ignore
    assert set(LayerStatsMonitor().measure_activations(net, images)) == set(STRIDE_NET_LAYERS)
    assert net._compiled_call_impl is not None


@pytest.mark.parametrize("precision", ["bf16-true", "64-true"])
def test_snapshot_in_precision_of_net(tmp_path, precision):
    callback = LayerStatsMonitor(every_n_steps=2)
    fit(tmp_path, [callback], limit_train_batches=1, precision=precision)
    assert set(callback.step0_stats) == set(STRIDE_NET_LAYERS)


def test_warns_when_hooks_record_nothing(tmp_path):
    module = TinyClassifier()
    # A net that Lightning never calls through its modules, as when compiled code ignores new hooks.
    module.net.forward = lambda images: torch.zeros(images.shape[0], 10, requires_grad=True)
    with pytest.warns(UserWarning, match="recorded no layer output at step 0"):
        fit(tmp_path, [LayerStatsMonitor(every_n_steps=2, snapshot_images=0)], module=module, limit_train_batches=1)


def test_no_hooks_after_exception(tmp_path):
    module = TinyClassifier(fail_at_step=2)
    with pytest.raises(RuntimeError, match="planned failure"):
        fit(tmp_path, [LayerStatsMonitor(every_n_steps=2)], module=module)
    assert count_forward_hooks(module) == 0


def test_no_hooks_after_keyboard_interrupt(tmp_path):
    module = TinyClassifier(fail_at_step=2, failure=KeyboardInterrupt)
    # After a KeyboardInterrupt, Lightning ignores SIGINT while it shuts down and then exits, so restore the handler.
    sigint_handler = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit):
            fit(tmp_path, [LayerStatsMonitor(every_n_steps=2)], module=module)
    finally:
        signal.signal(signal.SIGINT, sigint_handler)
    assert count_forward_hooks(module) == 0


# What is recorded, and when.


def test_training_unchanged_by_callback(tmp_path):
    torch.manual_seed(0)
    plain = TinyClassifier()
    torch.manual_seed(0)
    watched = TinyClassifier()
    fit(tmp_path / "plain", [], module=plain, limit_train_batches=4)
    fit(tmp_path / "watched", [LayerStatsMonitor(every_n_steps=1)], module=watched, limit_train_batches=4)
    assert torch.equal(plain.net.conv3.weight, watched.net.conv3.weight)


def test_recorded_steps_follow_interval(tmp_path):
    logger = RecordingLogger()
    fit(tmp_path, [LayerStatsMonitor(every_n_steps=3)], logger=logger, limit_train_batches=8)
    assert logger.steps_of("activations/std/conv1") == [0, 3, 6]


def test_interval_follows_log_every_n_steps(tmp_path):
    logger = RecordingLogger()
    fit(tmp_path, [LayerStatsMonitor()], logger=logger, limit_train_batches=8, log_every_n_steps=4)
    assert logger.steps_of("activations/std/conv1") == [0, 4]


def test_resumed_run_keeps_histogram_history(tmp_path):
    first, _ = fit(tmp_path, [LayerStatsMonitor(every_n_steps=2)], enable_checkpointing=True)
    checkpoint = first.checkpoint_callback.best_model_path
    callback = LayerStatsMonitor(every_n_steps=2)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=2,
        logger=RecordingLogger(),
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(TinyClassifier(), datamodule=SyntheticImages(), ckpt_path=checkpoint)
    # 8 steps an epoch: the first fit recorded steps 0 to 6, and the resumed one 8 to 14.
    assert callback.histories["conv2"].steps == [0, 2, 4, 6, 8, 10, 12, 14]


def test_history_state_thins_to_smaller_maximum():
    history = HistogramHistory(max_steps=8)
    for step in range(8):
        history.append(step, torch.ones(2), torch.tensor([0.0, 1.0]))
    restored = HistogramHistory.from_state_dict(history.state_dict(), max_steps=4)
    assert restored.steps == [0, 2, 4, 6]


def test_accumulation_records_step_once(tmp_path):
    logger = RecordingLogger()
    fit(
        tmp_path,
        [LayerStatsMonitor(every_n_steps=2)],
        logger=logger,
        limit_train_batches=8,
        accumulate_grad_batches=2,
    )
    assert logger.steps_of("weights/update_ratio/conv1") == [0, 2]


def test_no_validation_statistics_by_default(tmp_path):
    logger = RecordingLogger()
    fit(
        tmp_path,
        [LayerStatsMonitor(every_n_steps=1)],
        logger=logger,
        limit_train_batches=2,
        limit_val_batches=2,
        num_sanity_val_steps=2,
    )
    assert not [key for _, metrics in logger.calls for key in metrics if key.startswith("val/")]


def test_validation_statistics_skip_sanity_check(tmp_path):
    logger = RecordingLogger()
    fit(
        tmp_path,
        [LayerStatsMonitor(every_n_steps=1, validation=True)],
        logger=logger,
        limit_train_batches=2,
        limit_val_batches=2,
        num_sanity_val_steps=2,
    )
    # The one epoch ends with one validation run, and the sanity check before training adds none.
    # Lightning logs a validation run after 2 optimizer steps at step 1, the last training step.
    assert logger.steps_of("val/activations/std/conv1") == [1]


def test_validation_std_covers_all_batches(tmp_path):
    logger = RecordingLogger()
    datamodule = SyntheticImages(val_count=64, batch_size=24)
    _, module = fit(
        tmp_path,
        [LayerStatsMonitor(every_n_steps=1, validation=True)],
        datamodule=datamodule,
        logger=logger,
        limit_train_batches=2,
        limit_val_batches=1.0,
    )
    with torch.no_grad():
        expected = module.net.conv2(module.net.relu1(module.net.conv1(datamodule.val_images))).std(correction=0)
    assert logger.values_of("val/activations/std/conv2") == [pytest.approx(expected.item(), rel=1e-5)]


class LoggingValidationClassifier(TinyClassifier):
    """TinyClassifier that logs its validation loss, as ImageClassifier does."""

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        self.log("val/loss", F.cross_entropy(self.net(images), labels))


def test_validation_statistics_share_step_of_val_loss(tmp_path):
    logger = RecordingLogger()
    fit(
        tmp_path,
        [LayerStatsMonitor(every_n_steps=2, validation=True)],
        module=LoggingValidationClassifier(),
        logger=logger,
        limit_val_batches=1,
        val_check_interval=3,
    )
    assert len(logger.steps_of("val/loss")) == 2
    assert logger.steps_of("val/activations/std/conv2") == logger.steps_of("val/loss")


def test_step0_snapshot_uses_fixed_batch(tmp_path):
    module = TinyClassifier()
    initial_net = copy.deepcopy(module.net)
    datamodule = SyntheticImages()
    callback = LayerStatsMonitor(every_n_steps=1, snapshot_images=40)
    fit(tmp_path, [callback], module=module, datamodule=datamodule, limit_train_batches=2)
    with torch.no_grad():
        expected = initial_net.conv1(datamodule.val_images[:40]).std(correction=0).item()
    assert callback.step0_stats["conv1"].std == pytest.approx(expected, rel=1e-5)


def test_step0_snapshot_logged_at_step_zero(tmp_path):
    logger = RecordingLogger()
    fit(tmp_path, [LayerStatsMonitor(every_n_steps=1)], logger=logger, limit_train_batches=2)
    assert logger.steps_of("step0/activations/std/output") == [0]


def test_snapshot_falls_back_to_training_batch(tmp_path):
    module = TinyClassifier()
    initial_net = copy.deepcopy(module.net)
    datamodule = SyntheticImagesWithoutFixedBatch(batch_size=32)
    callback = LayerStatsMonitor(every_n_steps=1)
    with pytest.warns(UserWarning, match="no fixed_batch"):
        fit(tmp_path, [callback], module=module, datamodule=datamodule, limit_train_batches=2)
    with torch.no_grad():
        expected = initial_net.conv1(datamodule.train_images[:32]).std(correction=0).item()
    assert callback.step0_stats["conv1"].std == pytest.approx(expected, rel=1e-5)


def test_snapshot_off_with_zero_images(tmp_path):
    logger = RecordingLogger()
    callback = LayerStatsMonitor(every_n_steps=1, snapshot_images=0)
    fit(tmp_path, [callback], logger=logger, limit_train_batches=2)
    assert not logger.steps_of("step0/activations/std/conv1")


def test_weight_statistics_of_one_sgd_step(tmp_path):
    logger = RecordingLogger()
    module = TinyClassifier(lr=0.1)
    before = module.net.conv2.weight.detach().clone()
    fit(tmp_path, [LayerStatsMonitor(every_n_steps=1)], module=module, logger=logger, max_steps=1)
    after = module.net.conv2.weight.detach()
    gradient = (before - after) / 0.1  # plain SGD: W_after = W_before - lr * gradient

    assert logger.values_of("weights/std/conv2") == [pytest.approx(before.std(correction=0).item(), rel=1e-5)]
    assert logger.values_of("gradients/std/conv2") == [pytest.approx(gradient.std(correction=0).item(), rel=1e-3)]
    expected_ratio = ((after - before).norm() / before.norm()).item()
    assert logger.values_of("weights/update_ratio/conv2") == [pytest.approx(expected_ratio, rel=1e-4)]


def test_warns_without_any_logger(tmp_path):
    with pytest.warns(UserWarning, match="no logger on the trainer, so it logs nothing"):
        fit(tmp_path, [LayerStatsMonitor(every_n_steps=1)], logger=False, limit_train_batches=1)


def test_warns_without_tensorboard_logger(tmp_path):
    with pytest.warns(UserWarning, match="no TensorBoardLogger"):
        fit(tmp_path, [LayerStatsMonitor(every_n_steps=1)], limit_train_batches=1)


def test_warns_on_uneven_histogram_interval(tmp_path):
    with pytest.warns(UserWarning, match="stats.histogram_every_n_steps=3 is not a multiple"):
        fit(tmp_path, [LayerStatsMonitor(every_n_steps=2, histogram_every_n_steps=3)], limit_train_batches=1)


def test_histogram_history_thins_evenly():
    history = HistogramHistory(max_steps=4)
    for step in range(10):
        history.append(step, torch.ones(2), torch.tensor([0.0, 1.0]))
    # Steps 0-3 fill it. Step 4 overflows it to [0, 2, 4] with stride 2. Steps 6 and 8 are kept, and 8
    # overflows it to [0, 4, 8] with stride 4, which skips step 9.
    assert history.steps == [0, 4, 8]


# The TensorBoard event file.


def documented_keys(layers: list[str], weight_layers: list[str]) -> set[str]:
    """Expand the key templates in the callback's docstring for the given layers."""
    docstring = inspect.getdoc(LayerStatsMonitor)
    section = docstring[docstring.index("Logged keys.") : docstring.index("Args:")]
    templates = set(re.findall(r"``([a-z0-9_]+(?:/[a-z0-9_<>]+)+)``", section))
    keys = set()
    for template in templates:
        if "<weight_layer>" in template:
            keys.update(template.replace("<weight_layer>", name) for name in weight_layers)
        elif "<layer>" in template:
            keys.update(template.replace("<layer>", name) for name in layers)
        else:
            keys.add(template)
    return keys


def event_file_keys(log_dir: str) -> dict[str, set[str]]:
    events = EventAccumulator(log_dir, size_guidance={"scalars": 0, "histograms": 0, "images": 0, "tensors": 0})
    events.Reload()
    tags = events.Tags()
    text_suffix = "/text_summary"  # TensorBoard stores a text summary under this suffix
    return {
        "scalars": set(tags["scalars"]),
        "histograms": set(tags["histograms"]),
        "images": set(tags["images"]),
        "text": {tag.removesuffix(text_suffix) for tag in tags["tensors"]},
    }


def test_event_file_keys_match_docstring(tmp_path):
    logger = TensorBoardLogger(str(tmp_path), name="", version="run", default_hp_metric=False)
    callback = LayerStatsMonitor(every_n_steps=1, histogram_every_n_steps=1, validation=True)
    fit(tmp_path, [callback], logger=logger, limit_train_batches=3, limit_val_batches=1)
    written = set().union(*event_file_keys(logger.log_dir).values())
    # Lightning writes its own epoch key next to the validation keys, which go through pl_module.log_dict.
    assert written - {"epoch"} == documented_keys(STRIDE_NET_LAYERS, STRIDE_NET_WEIGHT_LAYERS)


def test_event_histograms_follow_interval(tmp_path):
    logger = TensorBoardLogger(str(tmp_path), name="", version="run", default_hp_metric=False)
    callback = LayerStatsMonitor(every_n_steps=2, histogram_every_n_steps=4)
    fit(tmp_path, [callback], logger=logger, limit_train_batches=8)
    events = EventAccumulator(logger.log_dir, size_guidance={"histograms": 0})
    events.Reload()
    assert [event.step for event in events.Histograms("activations/histogram/relu2")] == [0, 4]


def test_event_histograms_default_to_fourth_record(tmp_path):
    logger = TensorBoardLogger(str(tmp_path), name="", version="run", default_hp_metric=False)
    # 320 images in batches of 32 make 10 steps, 0 to 9.
    fit(tmp_path, [LayerStatsMonitor(every_n_steps=2)], logger=logger, datamodule=SyntheticImages(train_count=320))
    events = EventAccumulator(logger.log_dir, size_guidance={"histograms": 0})
    events.Reload()
    assert [event.step for event in events.Histograms("activations/histogram/relu2")] == [0, 8]


def last_conv3_image(tmp_path: Path, bins: int, steps: int) -> Any:
    """Record every step of a fit of ``steps`` steps and return the last colorful-dimension image of conv3."""
    logger = TensorBoardLogger(str(tmp_path), name="", version="run", default_hp_metric=False)
    fit(tmp_path, [LayerStatsMonitor(every_n_steps=1, bins=bins)], logger=logger, limit_train_batches=steps)
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0})
    events.Reload()
    return events.Images("activations/colorful_dimension/conv3")[-1]


def test_event_colorful_dimension_image(tmp_path):
    image = last_conv3_image(tmp_path, bins=64, steps=4)
    # 64 bins make 64 rows, already the minimum size, and 4 recorded steps enlarged 16 times make 64 columns.
    assert (image.height, image.width) == (64, 64)
    assert Image.open(io.BytesIO(image.encoded_image_string)).mode == "RGB"


def test_event_image_rounds_enlargement_up(tmp_path):
    image = last_conv3_image(tmp_path, bins=48, steps=3)
    # 48 rows doubled make 96, and 3 columns enlarged 22 times make 66: the smallest whole factors reaching 64.
    assert (image.height, image.width) == (96, 66)
