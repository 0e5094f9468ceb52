"""Weight init schemes, each a pure function and a Lightning callback that applies it.

Every function re-initializes one ``Conv2d`` or ``Linear`` layer in place and
draws from an explicit ``torch.Generator``, so the same seed gives the same
weights on every device. The callbacks apply their function to every such layer
of the LightningModule once, in ``setup``, before the optimizer takes a step.

The schemes and their sources:

* ``pytorch_default``: what ``nn.Conv2d.reset_parameters`` does in PyTorch,
  ``kaiming_uniform_(a=sqrt(5))`` for the weight, which is U(+-1/sqrt(fan_in)),
  and U(+-1/sqrt(fan_in)) for the bias. Its gain is 1/sqrt(3), not the sqrt(2)
  that He et al. derive for ReLU nets.
* ``kaiming_normal`` and ``kaiming_uniform``: He, Zhang, Ren and Sun, "Delving
  Deep into Rectifiers" (ICCV 2015). Std gain/sqrt(fan) with gain(a) =
  sqrt(2 / (1 + a^2)) for leaky ReLU slope ``a``; zero bias.
* ``xavier_uniform`` and ``xavier_normal``: Glorot and Bengio, "Understanding
  the difficulty of training deep feedforward neural networks" (AISTATS 2010).
  Std gain * sqrt(2 / (fan_in + fan_out)); zero bias.
* ``orthogonal``: Saxe, McClelland and Ganguli (ICLR 2014). The weight,
  flattened to (out_channels, fan_in), has orthonormal rows or columns, scaled
  by ``gain``; zero bias.
"""

from __future__ import annotations

import logging
import math

import pytorch_lightning as pl
import torch
from torch import nn

log = logging.getLogger(__name__)

INIT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def pytorch_default(layer: nn.Module, generator: torch.Generator) -> None:
    """Redraw ``layer`` exactly as PyTorch's ``reset_parameters`` does, from ``generator``."""
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    if layer.bias is not None:
        fan_in, _ = nn.init._calculate_fan_in_and_fan_out(layer.weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


def kaiming_normal(
    layer: nn.Module, generator: torch.Generator, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "relu"
) -> None:
    """Draw the weight from N(0, gain^2 / fan) (He et al. 2015) and zero the bias."""
    nn.init.kaiming_normal_(layer.weight, a=a, mode=mode, nonlinearity=nonlinearity, generator=generator)
    _zero_bias(layer)


def kaiming_uniform(
    layer: nn.Module, generator: torch.Generator, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "relu"
) -> None:
    """Draw the weight from U(+-gain * sqrt(3 / fan)) (He et al. 2015) and zero the bias."""
    nn.init.kaiming_uniform_(layer.weight, a=a, mode=mode, nonlinearity=nonlinearity, generator=generator)
    _zero_bias(layer)


def xavier_uniform(layer: nn.Module, generator: torch.Generator, gain: float = 1.0) -> None:
    """Draw the weight from U(+-gain * sqrt(6 / (fan_in + fan_out))) (Glorot and Bengio 2010) and zero the bias."""
    nn.init.xavier_uniform_(layer.weight, gain=gain, generator=generator)
    _zero_bias(layer)


def xavier_normal(layer: nn.Module, generator: torch.Generator, gain: float = 1.0) -> None:
    """Draw the weight from N(0, gain^2 * 2 / (fan_in + fan_out)) (Glorot and Bengio 2010) and zero the bias."""
    nn.init.xavier_normal_(layer.weight, gain=gain, generator=generator)
    _zero_bias(layer)


def orthogonal(layer: nn.Module, generator: torch.Generator, gain: float = 1.0) -> None:
    """Make the weight, flattened to 2-D, a scaled (semi-)orthogonal matrix (Saxe et al. 2014) and zero the bias."""
    nn.init.orthogonal_(layer.weight, gain=gain, generator=generator)
    _zero_bias(layer)


def _zero_bias(layer: nn.Module) -> None:
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


class WeightInit(pl.Callback):
    """Apply an init scheme to every Conv and Linear layer of the model, once per run.

    The scheme runs in ``on_fit_start``, before the first optimizer step. By
    then Lightning has restored a checkpoint's weights and this callback's own
    state (``applied``), so a resumed run keeps the checkpoint's weights and the
    scheme is not applied again. The parameters are changed in place, so the
    optimizer, which already references them, needs no update.

    Weights are drawn on the CPU, in a contiguous tensor, from a generator
    seeded with ``seed`` and then copied to the parameter, so CPU and GPU runs,
    and runs with and without ``channels_last``, start from the same weights. Subclasses implement :meth:`init_layer`; a user's own scheme can
    subclass this and be selected with ``init._target_=package.module.Class``.

    Args:
        seed: seed of the init generator; None uses ``torch.initial_seed()``,
            which ``seed_everything`` sets.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self.applied = False

    def init_layer(self, layer: nn.Module, generator: torch.Generator) -> None:
        """Re-initialize one layer in place; ``layer`` is an instance of :data:`INIT_LAYERS`."""
        raise NotImplementedError

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.ckpt_path is not None:
            log.info("Resuming from %s: %s is not applied again", trainer.ckpt_path, type(self).__name__)
            self.applied = True
        if not self.applied:
            self.apply_to(pl_module)

    def apply_to(self, model: nn.Module) -> list[str]:
        """Initialize every Conv and Linear layer of ``model``; return their names."""
        seed = torch.initial_seed() if self.seed is None else self.seed
        generator = torch.Generator().manual_seed(seed)
        names = []
        with torch.no_grad():
            for name, layer in model.named_modules():
                if isinstance(layer, INIT_LAYERS):
                    self._init_on_cpu(layer, generator)
                    names.append(name)
        self.applied = True
        log.info("%s initialized %d layers with seed %d: %s", type(self).__name__, len(names), seed, ", ".join(names))
        return names

    def _init_on_cpu(self, layer: nn.Module, generator: torch.Generator) -> None:
        # A channels-last weight would be filled in its own memory order, which puts the same draws
        # at other indices, so only a contiguous CPU weight is filled in place.
        if layer.weight.device.type == "cpu" and layer.weight.is_contiguous():
            self.init_layer(layer, generator)
            return
        twin = _cpu_twin(layer)
        self.init_layer(twin, generator)
        layer.weight.copy_(twin.weight)
        if layer.bias is not None:
            layer.bias.copy_(twin.bias)

    def state_dict(self) -> dict:
        return {"applied": self.applied, "seed": self.seed}

    def load_state_dict(self, state_dict: dict) -> None:
        self.applied = bool(state_dict.get("applied", True))


def _cpu_twin(layer: nn.Module) -> nn.Module:
    twin = nn.Module()
    # torch.empty, unlike empty_like, makes a contiguous twin whatever the layer's memory format.
    twin.weight = nn.Parameter(torch.empty(layer.weight.shape, dtype=layer.weight.dtype))
    twin.bias = None if layer.bias is None else nn.Parameter(torch.empty(layer.bias.shape, dtype=layer.bias.dtype))
    return twin


class PytorchDefaultInit(WeightInit):
    """PyTorch's own default, re-drawn from the run's seed (see :func:`pytorch_default`)."""

    def init_layer(self, layer: nn.Module, generator: torch.Generator) -> None:
        pytorch_default(layer, generator)


class KaimingInit(WeightInit):
    """He et al. (2015) init for (leaky) ReLU nets, normal or uniform.

    Args:
        distribution: ``normal`` or ``uniform``.
        a: negative slope of the leaky ReLU that follows the layer; 0 for ReLU.
        mode: ``fan_in`` keeps the forward variance, ``fan_out`` the backward one.
        nonlinearity: ``relu`` or ``leaky_relu``, as in ``torch.nn.init.calculate_gain``.
        seed: see :class:`WeightInit`.
    """

    def __init__(
        self,
        distribution: str = "normal",
        a: float = 0.0,
        mode: str = "fan_in",
        nonlinearity: str = "relu",
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        _check_choice("init.distribution", distribution, ("normal", "uniform"))
        _check_choice("init.mode", mode, ("fan_in", "fan_out"))
        _check_choice("init.nonlinearity", nonlinearity, ("relu", "leaky_relu"))
        if not math.isfinite(a):
            raise ValueError(f"init.a must be a finite number, got {a}")
        self.distribution = distribution
        self.a = a
        self.mode = mode
        self.nonlinearity = nonlinearity

    def init_layer(self, layer: nn.Module, generator: torch.Generator) -> None:
        scheme = kaiming_normal if self.distribution == "normal" else kaiming_uniform
        scheme(layer, generator, a=self.a, mode=self.mode, nonlinearity=self.nonlinearity)


class XavierInit(WeightInit):
    """Glorot and Bengio (2010) init, uniform or normal.

    Args:
        distribution: ``uniform`` (the paper's) or ``normal``.
        gain: scale factor; 1 is the paper's value for symmetric activations.
        seed: see :class:`WeightInit`.
    """

    def __init__(self, distribution: str = "uniform", gain: float = 1.0, seed: int | None = None) -> None:
        super().__init__(seed)
        _check_choice("init.distribution", distribution, ("uniform", "normal"))
        _check_positive("init.gain", gain)
        self.distribution = distribution
        self.gain = gain

    def init_layer(self, layer: nn.Module, generator: torch.Generator) -> None:
        scheme = xavier_uniform if self.distribution == "uniform" else xavier_normal
        scheme(layer, generator, gain=self.gain)


class OrthogonalInit(WeightInit):
    """Orthogonal init (Saxe et al. 2014) scaled by ``gain``; sqrt(2) suits ReLU nets.

    Args:
        gain: scale factor of the orthonormal matrix.
        seed: see :class:`WeightInit`.
    """

    def __init__(self, gain: float = math.sqrt(2), seed: int | None = None) -> None:
        super().__init__(seed)
        _check_positive("init.gain", gain)
        self.gain = gain

    def init_layer(self, layer: nn.Module, generator: torch.Generator) -> None:
        orthogonal(layer, generator, gain=self.gain)


def _check_choice(key: str, value: str, choices) -> None:
    if value not in choices:
        raise ValueError(f"Invalid {key}={value!r}: expected one of {sorted(choices)}")


def _check_positive(key: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"Invalid {key}={value!r}: expected a finite number greater than 0")
