"""Init schemes checked against theory, and against PyTorch's own reset_parameters."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from initbench.classifier import ImageClassifier
from initbench.datamodule import MNISTDataModule
from initbench.init_schemes import (
    KaimingInit,
    OrthogonalInit,
    PytorchDefaultInit,
    WeightInit,
    XavierInit,
)
from initbench.model import StrideConvNet

SEEDS = range(20)


def _convs(model: nn.Module) -> dict[str, nn.Conv2d]:
    return {name: layer for name, layer in model.named_modules() if isinstance(layer, nn.Conv2d)}


def _fan_in(layer: nn.Conv2d) -> int:
    return layer.weight[0].numel()


def _fan_out(layer: nn.Conv2d) -> int:
    return layer.weight.shape[0] * layer.weight[0, 0].numel()


def _pooled_weights(scheme: WeightInit) -> dict[str, torch.Tensor]:
    """Concatenate each conv layer's weights over 20 seeds.

    One layer alone is too small for a 5% check: conv1 has 200 weights, so the
    relative standard error of its sample std is about 1/sqrt(2 * 200) = 5%.
    Pooled over 20 seeds it is about 1.1%.
    """
    pooled: dict[str, list[torch.Tensor]] = {}
    for seed in SEEDS:
        scheme.seed = seed
        net = StrideConvNet()
        scheme.apply_to(net)
        for name, layer in _convs(net).items():
            pooled.setdefault(name, []).append(layer.weight.detach().flatten())
    return {name: torch.cat(weights) for name, weights in pooled.items()}


def test_kaiming_std_is_sqrt_two_over_fan_in():
    net = StrideConvNet()
    for name, weights in _pooled_weights(KaimingInit()).items():
        expected = math.sqrt(2 / _fan_in(_convs(net)[name]))

        assert float(weights.std()) == pytest.approx(expected, rel=0.05), name


def test_kaiming_zeroes_biases():
    net = StrideConvNet()
    KaimingInit(seed=0).apply_to(net)

    for name, layer in _convs(net).items():
        assert torch.count_nonzero(layer.bias) == 0, name


def test_kaiming_fan_out_mode_uses_fan_out():
    net = StrideConvNet()
    for name, weights in _pooled_weights(KaimingInit(mode="fan_out")).items():
        expected = math.sqrt(2 / _fan_out(_convs(net)[name]))

        assert float(weights.std()) == pytest.approx(expected, rel=0.05), name


def test_kaiming_uniform_bound_and_std():
    net = StrideConvNet()
    for name, weights in _pooled_weights(KaimingInit(distribution="uniform")).items():
        fan_in = _fan_in(_convs(net)[name])
        bound = math.sqrt(2) * math.sqrt(3 / fan_in)

        assert float(weights.abs().max()) <= bound, name
        assert float(weights.std()) == pytest.approx(math.sqrt(2 / fan_in), rel=0.05), name


def test_pytorch_default_bound_and_std():
    net = StrideConvNet()
    for name, weights in _pooled_weights(PytorchDefaultInit()).items():
        fan_in = _fan_in(_convs(net)[name])

        assert float(weights.abs().max()) <= 1 / math.sqrt(fan_in), name
        assert float(weights.std()) == pytest.approx(1 / math.sqrt(3 * fan_in), rel=0.05), name


def test_pytorch_default_biases_within_bound():
    net = StrideConvNet()
    PytorchDefaultInit(seed=0).apply_to(net)

    for name, layer in _convs(net).items():
        assert float(layer.bias.abs().max()) <= 1 / math.sqrt(_fan_in(layer)), name
        assert torch.count_nonzero(layer.bias) == layer.bias.numel(), name


def test_pytorch_default_equals_reset_parameters():
    ours = nn.Conv2d(16, 32, 3)
    PytorchDefaultInit(seed=11).apply_to(ours)

    torch.manual_seed(11)
    reference = nn.Conv2d(16, 32, 3)
    torch.manual_seed(11)
    reference.reset_parameters()

    assert torch.equal(ours.weight, reference.weight)
    assert torch.equal(ours.bias, reference.bias)


def test_xavier_std_uses_both_fans():
    net = StrideConvNet()
    for name, weights in _pooled_weights(XavierInit()).items():
        layer = _convs(net)[name]
        expected = math.sqrt(2 / (_fan_in(layer) + _fan_out(layer)))

        assert float(weights.std()) == pytest.approx(expected, rel=0.05), name


@pytest.mark.parametrize("gain", [1.0, math.sqrt(2)])
def test_orthogonal_rows_or_columns_are_orthonormal(gain):
    net = StrideConvNet()
    OrthogonalInit(gain=gain, seed=0).apply_to(net)

    for name, layer in _convs(net).items():
        matrix = layer.weight.detach().reshape(layer.weight.shape[0], -1).double() / gain
        rows, columns = matrix.shape
        gram = matrix @ matrix.T if rows <= columns else matrix.T @ matrix

        torch.testing.assert_close(gram, torch.eye(min(rows, columns), dtype=torch.float64), atol=1e-5, rtol=0)


def test_linear_layers_are_initialized():
    model = nn.Sequential(nn.Linear(400, 300), nn.ReLU(), nn.Linear(300, 10))
    KaimingInit(seed=0).apply_to(model)

    assert float(model[0].weight.std()) == pytest.approx(math.sqrt(2 / 400), rel=0.05)
    assert torch.count_nonzero(model[2].bias) == 0


@pytest.mark.parametrize("scheme", [PytorchDefaultInit, KaimingInit, XavierInit, OrthogonalInit])
def test_same_seed_gives_same_weights(scheme):
    first, second, other = StrideConvNet(), StrideConvNet(), StrideConvNet()
    scheme(seed=4).apply_to(first)
    scheme(seed=4).apply_to(second)
    scheme(seed=5).apply_to(other)

    for name in _convs(first):
        assert torch.equal(_convs(first)[name].weight, _convs(second)[name].weight), name
        assert not torch.equal(_convs(first)[name].weight, _convs(other)[name].weight), name


@pytest.mark.parametrize("scheme", [PytorchDefaultInit, KaimingInit, XavierInit, OrthogonalInit])
def test_channels_last_gives_same_weights(scheme):
    contiguous, channels_last = StrideConvNet(), StrideConvNet().to(memory_format=torch.channels_last)
    scheme(seed=4).apply_to(contiguous)
    scheme(seed=4).apply_to(channels_last)

    for name in _convs(contiguous):
        assert torch.equal(_convs(contiguous)[name].weight, _convs(channels_last)[name].weight), name
        assert _convs(channels_last)[name].weight.is_contiguous(memory_format=torch.channels_last), name


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: KaimingInit(mode="fan_middle"), "init.mode"),
        (lambda: KaimingInit(distribution="cauchy"), "init.distribution"),
        (lambda: KaimingInit(nonlinearity="tanh"), "init.nonlinearity"),
        (lambda: XavierInit(gain=0), "init.gain"),
        (lambda: OrthogonalInit(gain=float("nan")), "init.gain"),
    ],
)
def test_invalid_arguments_name_the_key(make, message):
    with pytest.raises(ValueError, match=message):
        make()


class CountingKaiming(KaimingInit):
    """Kaiming init that counts how many layers it initialized."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.layers_initialized = 0

    def init_layer(self, layer, generator):
        self.layers_initialized += 1
        super().init_layer(layer, generator)


class WeightsAtTrainStart(pl.Callback):
    """Keep a copy of the net's weights as training starts."""

    def on_train_start(self, trainer, pl_module):
        self.weights = {name: tensor.detach().clone() for name, tensor in pl_module.state_dict().items()}


def _fit(tiny_mnist, tmp_path, callbacks, max_epochs, ckpt_path=None) -> pl.Trainer:
    datamodule = MNISTDataModule(cache_dir=str(tmp_path / "cache"), file=str(tiny_mnist), expected_sizes=None, batch_size=64)
    module = ImageClassifier(StrideConvNet(), {"_target_": "torch.optim.SGD", "lr": 0.05, "momentum": 0.9})
    trainer = pl.Trainer(
        max_epochs=max_epochs, accelerator="cpu", logger=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=str(tmp_path), callbacks=callbacks,
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    return trainer


def test_init_applies_once_before_training(tiny_mnist, tmp_path):
    scheme = CountingKaiming(seed=0)
    _fit(tiny_mnist, tmp_path, [scheme], max_epochs=1)

    assert scheme.layers_initialized == 4


def test_resume_does_not_initialize_again(tiny_mnist, tmp_path):
    first = _fit(tiny_mnist, tmp_path, [CountingKaiming(seed=0)], max_epochs=1)
    checkpoint_path = tmp_path / "after-one-epoch.ckpt"
    first.save_checkpoint(checkpoint_path)
    saved = torch.load(checkpoint_path, weights_only=False)["state_dict"]

    scheme = CountingKaiming(seed=0)
    spy = WeightsAtTrainStart()
    _fit(tiny_mnist, tmp_path, [scheme, spy], max_epochs=2, ckpt_path=str(checkpoint_path))

    assert scheme.layers_initialized == 0
    for name, tensor in saved.items():
        assert torch.equal(spy.weights[name], tensor), name
