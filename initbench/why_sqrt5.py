"""Measure why PyTorch's default conv init is too small: ``python -m initbench.why_sqrt5``.

PyTorch's ``nn.Conv2d.reset_parameters`` (torch/nn/modules/conv.py) draws the
weight with ``kaiming_uniform_(a=sqrt(5))``. That is U(+-1/sqrt(fan_in)), whose
gain sqrt(2 / (1 + 5)) = 1/sqrt(3) is far below the sqrt(2) that He et al.
(2015) derive for ReLU nets. The fast.ai course notebook ``02a_why_sqrt5``
(2019 part 2, lesson 9) shows the consequences with one random draw. This
command measures the same statistics on the first 100 normalized MNIST
validation images, once per seed, and prints the mean and std across seeds
next to the notebook's value:

1. the leaky-ReLU gain sqrt(2 / (1 + a^2)) for a = 1, 0, 0.01, 0.1 and sqrt(5);
2. the std of 10,000 draws from U(-1, 1);
3. fan_in and fan_out of a ``Conv2d(1, 32, 5)`` weight;
4. mean and std of one ``Conv2d(1, 32, 5)`` output, with and without ReLU;
5. a hand-written Kaiming uniform init against ``kaiming_uniform_``;
6. output std and first-layer gradient std of the 4-layer stride-2 net.

Every weight is drawn from one ``torch.Generator`` per seed, seeded with the
seed itself, so a seed gives the same numbers on every run.

A reference is *within the spread* when
``|reference - mean| <= spread_factor * std + rounding``. Here mean and std are
the mean and sample std (n - 1) of the per-seed values. ``spread_factor`` is 3
by default, and ``rounding`` is half a unit in the last decimal with which the
reference was published. The std across seeds is the spread of single draws,
and each notebook value is one such draw. The command reports each miss, and
its exit status stays 0.

Outputs, in the run folder (default ``lightning_logs/why_sqrt5/<time>-<id>``):

* ``report.md``: the table in Markdown, with the command, the machine and the rule;
* ``why_sqrt5.json``: every row with its reference, per-seed values, mean, std and n;
* a TensorBoard event file with the Markdown table as text under the tag ``why_sqrt5``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import hydra
import torch
import torch.nn.functional as F
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor, nn
from torch.utils.tensorboard import SummaryWriter

from initbench.init_schemes import kaiming_uniform, pytorch_default
from initbench.mnist import DataError
from initbench.model import StrideConvNet
import initbench.run_folders  # noqa: F401 - importing it registers the run folder resolvers
from initbench.validation import EXIT_INVALID_INPUT

log = logging.getLogger(__name__)

NOTEBOOK = "fast.ai notebook 02a_why_sqrt5 (2019 part 2, lesson 9)"
SQRT5 = math.sqrt(5)

# The notebook's experiments fix these sizes, and its reference values hold only for them.
IMAGE_COUNT = 100
UNIFORM_DRAWS = 10_000
CONV_WEIGHT_SHAPE = (32, 1, 5, 5)
# 4,000 x 25 = 100,000 draws with fan_in 25, so that max |w| is within about 1e-5 of the bound.
BOUND_DRAW_SHAPE = (4_000, 1, 5, 5)
NET_CHANNELS = (8, 16, 32)

# Meaning of the reference sources, printed under every table.
SOURCE_NOTE = (
    f"Sources: notebook = one random draw in the {NOTEBOOK}; exact = the formula's value; "
    "theory = gain(a) / sqrt(fan_in), the std that Kaiming uniform aims at; "
    "hand-written = the hand-written bound, which max |w| of kaiming_uniform_ approaches from below."
)

REPORT_NAME = "report.md"
JSON_NAME = "why_sqrt5.json"
TENSORBOARD_TAG = "why_sqrt5"


class InvalidSetting(ValueError):
    """Invalid configuration value. The message names the key and the expected value."""


@hydra.main(version_base="1.3", config_path="pkg://initbench.configs", config_name="why_sqrt5")
def main(cfg: DictConfig) -> None:
    """Run the measurements, print the table and write the report files."""
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    command = " ".join(["python -m initbench.why_sqrt5", *HydraConfig.get().overrides.task])
    try:
        why_sqrt5(cfg, output_dir, command)
    except (DataError, InvalidSetting) as error:
        log.error("%s", error)
        sys.exit(EXIT_INVALID_INPUT)


def why_sqrt5(cfg: DictConfig, output_dir: Path, command: str) -> list[dict[str, Any]]:
    """Measure every quantity once per seed on the validation batch, print the table and write the files.

    Returns the rows that :func:`summarize` builds, in the order of :data:`QUANTITIES`.
    """
    started = time.perf_counter()
    seeds = seed_list(cfg.seed, cfg.seeds)
    spread_factor = check_spread_factor(cfg.spread_factor)

    datamodule = instantiate(cfg.data)
    datamodule.setup()
    images, labels = datamodule.fixed_batch("val", IMAGE_COUNT)
    if len(images) < IMAGE_COUNT:
        raise DataError(
            f"The validation split has {len(images)} images, but the command needs the first {IMAGE_COUNT}. "
            "Use the classic MNIST split (data.expected_sizes=[50000,10000,10000])."
        )
    targets = labels.float()
    log.info(
        "Measuring %d quantities on %d validation images, seeds %d to %d",
        len(QUANTITIES), len(images), seeds[0], seeds[-1],
    )

    rows = measure_rows(images, targets, seeds, spread_factor)
    elapsed_s = time.perf_counter() - started

    context = {
        "command": command,
        "seeds": seeds,
        "spread_factor": spread_factor,
        "rule": spread_rule(spread_factor),
        "images": (
            f"first {len(images)} validation images, "
            f"normalized with the training mean {datamodule.mean:.4f} and std {datamodule.std:.4f}"
        ),
        "data_source": datamodule.splits.source,
        "machine": describe_machine(),
        "load_and_measure_s": round(elapsed_s, 2),
    }
    print(format_text_table(rows, len(seeds), spread_factor))
    write_outputs(rows, context, output_dir)
    log.info("Measured in %.1f s. The report, JSON and TensorBoard text are in %s", elapsed_s, output_dir)
    return rows


@dataclass(frozen=True)
class Quantity:
    """Row of the table: a statistic and the reference value that it is compared with.

    Attributes:
        key: JSON key of the row, such as ``conv/default/std``.
        section: table section that the row belongs to.
        label: row label in the tables.
        reference: the value printed for comparison.
        decimals: number of decimals with which the reference was published.
            Half a unit in the last one is its rounding error.
        source: where the reference comes from.
    """

    key: str
    section: str
    label: str
    reference: float
    decimals: int
    source: str


def leaky_relu_gain(a: float) -> float:
    """Return the leaky-ReLU gain sqrt(2 / (1 + a^2)) for negative slope ``a``.

    He et al., "Delving Deep into Rectifiers" (ICCV 2015): a layer followed by a
    leaky ReLU keeps the variance of its input when Var(w) = gain^2 / fan_in.
    ``torch.nn.init.calculate_gain('leaky_relu', a)`` uses the same formula.
    """
    return math.sqrt(2.0 / (1.0 + a**2))


def uniform_std(count: int, generator: torch.Generator) -> float:
    """Return the sample std of ``count`` draws from U(-1, 1). The exact std is 1/sqrt(3)."""
    draws = torch.empty(count).uniform_(-1.0, 1.0, generator=generator)
    return draws.std().item()


def fan_in_and_fan_out(weight: Tensor) -> tuple[int, int]:
    """Return (fan_in, fan_out) of a conv or linear weight of shape (out, in, *kernel).

    fan_in is in x kernel elements, the number of inputs that feed one output.
    fan_out is out x kernel elements, the number of outputs that one input feeds.
    This is the definition of ``torch.nn.init._calculate_fan_in_and_fan_out``.
    """
    if weight.dim() < 2:
        raise ValueError(f"fan_in and fan_out need a weight of at least 2 dimensions, got shape {tuple(weight.shape)}")
    kernel_elements = math.prod(weight.shape[2:])
    return weight.shape[1] * kernel_elements, weight.shape[0] * kernel_elements


def kaiming_uniform_bound(a: float, fan_in: int) -> float:
    """Return sqrt(3) * gain(a) / sqrt(fan_in), the bound of Kaiming uniform for fan_in mode.

    U(-b, b) has std b / sqrt(3), so this bound gives the std gain(a) / sqrt(fan_in)
    of He et al. (2015).
    """
    return math.sqrt(3.0) * leaky_relu_gain(a) / math.sqrt(fan_in)


def kaiming_uniform_by_hand_(weight: Tensor, a: float, generator: torch.Generator) -> Tensor:
    """Draw ``weight`` in place from U(-bound, bound) with :func:`kaiming_uniform_bound`, without ``torch.nn.init``."""
    fan_in, _ = fan_in_and_fan_out(weight)
    bound = kaiming_uniform_bound(a, fan_in)
    with torch.no_grad():
        return weight.uniform_(-bound, bound, generator=generator)


def conv_output_stats(conv: nn.Module, images: Tensor, relu: bool = False) -> tuple[float, float]:
    """Return the mean and std of ``conv(images)`` over all its elements, after a ReLU if ``relu``."""
    with torch.no_grad():
        output = conv(images)
        if relu:
            output = F.relu(output)
    return output.mean().item(), output.std().item()


def default_conv(generator: torch.Generator) -> nn.Conv2d:
    """Build a ``Conv2d(1, 32, 5)`` with PyTorch's default weight and bias, drawn from ``generator``."""
    conv = nn.Conv2d(CONV_WEIGHT_SHAPE[1], CONV_WEIGHT_SHAPE[0], CONV_WEIGHT_SHAPE[2])
    pytorch_default(conv, generator)
    return conv


def net_output_and_gradient_std(
    images: Tensor,
    targets: Tensor,
    init: Callable[[nn.Module, torch.Generator], None],
    generator: torch.Generator,
) -> tuple[float, float]:
    """Return the output std and the first layer's weight-gradient std of the 4-layer net.

    The net is :class:`~initbench.model.StrideConvNet` with channels 1, 8, 16,
    32 and 1. ``init`` re-initializes every conv layer. The loss is the MSE
    between the squeezed output and ``targets``, and one backward pass fills
    the gradient.
    """
    net = StrideConvNet(in_channels=images.shape[1], channels=NET_CHANNELS, num_classes=1)
    for layer in net.modules():
        if isinstance(layer, nn.Conv2d):
            init(layer, generator)

    output = net(images)
    loss = F.mse_loss(output.squeeze(-1), targets)
    loss.backward()
    return output.std().item(), net.conv1.weight.grad.std().item()


def measure_seed(images: Tensor, targets: Tensor, generator: torch.Generator) -> dict[str, float]:
    """Measure every quantity of :data:`QUANTITIES` once, drawing all weights from ``generator``.

    Conv layers in sections 4 and 5 keep PyTorch's default bias and only redraw
    the weight, as the notebook does. Each row gets its own fresh draw.
    """
    values: dict[str, float] = {}
    for name, a in GAIN_SLOPES.items():
        values[f"gain/a={name}"] = leaky_relu_gain(a)

    values["uniform/std"] = uniform_std(UNIFORM_DRAWS, generator)

    values["fan/fan_in"], values["fan/fan_out"] = fan_in_and_fan_out(torch.empty(CONV_WEIGHT_SHAPE))

    values.update(_single_conv_values(images, generator))

    for name, a in HAND_SLOPES.items():
        values.update(_hand_kaiming_uniform_values(images, name, a, generator))

    for name, init in NET_INITS.items():
        values[f"net/{name}/output_std"], values[f"net/{name}/grad_std"] = net_output_and_gradient_std(
            images, targets, init, generator
        )
    return values


def _single_conv_values(images: Tensor, generator: torch.Generator) -> dict[str, float]:
    values = {}
    # (key prefix, slope a of kaiming_normal_ or None for the default weight, whether a ReLU follows)
    setups = [
        ("conv/default", None, False),
        ("conv/kaiming_normal_a=1", 1.0, False),
        ("relu/kaiming_normal_a=0", 0.0, True),
        ("relu/default", None, True),
    ]
    for prefix, kaiming_a, relu in setups:
        conv = default_conv(generator)
        if kaiming_a is not None:
            nn.init.kaiming_normal_(conv.weight, a=kaiming_a, generator=generator)
        values[f"{prefix}/mean"], values[f"{prefix}/std"] = conv_output_stats(conv, images, relu)
    return values


def _hand_kaiming_uniform_values(images: Tensor, name: str, a: float, generator: torch.Generator) -> dict[str, float]:
    library_draws = nn.init.kaiming_uniform_(torch.empty(BOUND_DRAW_SHAPE), a=a, generator=generator)
    hand_weight = kaiming_uniform_by_hand_(torch.empty(CONV_WEIGHT_SHAPE), a, generator)
    library_weight = nn.init.kaiming_uniform_(torch.empty(CONV_WEIGHT_SHAPE), a=a, generator=generator)
    conv = default_conv(generator)
    kaiming_uniform_by_hand_(conv.weight, a, generator)
    relu_mean, relu_std = conv_output_stats(conv, images, relu=True)
    return {
        f"kaiming_uniform/max_abs/a={name}": library_draws.abs().max().item(),
        f"kaiming_uniform/hand_std/a={name}": hand_weight.std().item(),
        f"kaiming_uniform/library_std/a={name}": library_weight.std().item(),
        f"relu/hand_kaiming_uniform_a={name}/mean": relu_mean,
        f"relu/hand_kaiming_uniform_a={name}/std": relu_std,
    }


def measure_rows(
    images: Tensor, targets: Tensor, seeds: Sequence[int], spread_factor: float = 3.0
) -> list[dict[str, Any]]:
    """Measure every quantity once per seed and summarize each across seeds, in the order of :data:`QUANTITIES`.

    Seed ``s`` draws all its weights from ``torch.Generator().manual_seed(s)``.
    """
    per_seed = {seed: measure_seed(images, targets, torch.Generator().manual_seed(seed)) for seed in seeds}
    return [
        summarize(quantity, {seed: values[quantity.key] for seed, values in per_seed.items()}, spread_factor)
        for quantity in QUANTITIES
    ]


def summarize(quantity: Quantity, per_seed: dict[int, float], spread_factor: float) -> dict[str, Any]:
    """Return the JSON row of ``quantity``: its per-seed values, mean, sample std, n and the spread check.

    ``allowed_deviation`` is spread_factor * std + half a unit in the reference's
    last decimal. ``miss`` is how far ``|reference - mean|`` exceeds it, 0 when
    the reference is within the spread.
    """
    values = [float(value) for value in per_seed.values()]
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else math.nan
    deviation = quantity.reference - mean
    allowed = spread_factor * std + 0.5 * 10.0 ** -quantity.decimals
    return {
        "key": quantity.key,
        "section": quantity.section,
        "label": quantity.label,
        "reference": quantity.reference,
        "reference_decimals": quantity.decimals,
        "reference_source": quantity.source,
        "values": values,
        "per_seed": {str(seed): float(value) for seed, value in per_seed.items()},
        "mean": mean,
        "std": std,
        "n": len(values),
        "deviation": deviation,
        "deviation_in_std": deviation / std if std > 0 else None,
        "allowed_deviation": allowed,
        "within_spread": abs(deviation) <= allowed,
        "miss": max(0.0, abs(deviation) - allowed),
    }


def spread_rule(spread_factor: float) -> str:
    """Describe the within-spread rule in one sentence, for the report and the JSON file."""
    return (
        f"A reference is within the spread when |reference - mean| <= {spread_factor:g} x std + half a unit "
        "in the reference's last published decimal, where mean and std are the mean and sample std (n - 1) "
        "of the per-seed values."
    )


def seed_list(first_seed: int, count: int) -> list[int]:
    """Return the seeds first_seed to first_seed + count - 1. Raise InvalidSetting unless count is at least 2."""
    if not isinstance(count, int) or count < 2:
        raise InvalidSetting(
            f"Invalid seeds={count!r}: expected an integer of at least 2, because a std needs two or more seeds."
        )
    if not isinstance(first_seed, int) or first_seed < 0:
        raise InvalidSetting(f"Invalid seed={first_seed!r}: expected an integer of at least 0.")
    return list(range(first_seed, first_seed + count))


def check_spread_factor(spread_factor: float) -> float:
    """Return ``spread_factor`` as a float. Raise :class:`InvalidSetting` unless it is finite and at least 0."""
    if isinstance(spread_factor, bool) or not isinstance(spread_factor, (int, float)):
        raise InvalidSetting(f"Invalid spread_factor={spread_factor!r}: expected a number such as 3.")
    if not math.isfinite(spread_factor) or spread_factor < 0:
        raise InvalidSetting(f"Invalid spread_factor={spread_factor!r}: expected a finite number of at least 0.")
    return float(spread_factor)


TABLE_HEADER = ("quantity", "mean ± std", "reference", "source", "reference - mean", "within spread")


def format_text_table(rows: Sequence[dict[str, Any]], seed_count: int, spread_factor: float) -> str:
    """Format the rows as a fixed-width table for the terminal, one block per section, and the rule below."""
    cells = [_row_cells(row) for row in rows]
    header = (TABLE_HEADER[0], f"mean ± std ({seed_count} seeds)", *TABLE_HEADER[2:])
    widths = [max(len(text) for text in column) for column in zip(header, *cells)]

    lines = [_join_padded(header, widths), "  ".join("-" * width for width in widths)]
    section = None
    for row, row_cells in zip(rows, cells):
        if row["section"] != section:
            section = row["section"]
            lines.append(section)
        lines.append(_join_padded(row_cells, widths))
    lines += ["", SOURCE_NOTE, spread_rule(spread_factor), _summary_line(rows)]
    return "\n".join(lines)


def format_markdown_table(rows: Sequence[dict[str, Any]], seed_count: int) -> str:
    """Format the rows as a Markdown table, with a bold row before each section."""
    header = (TABLE_HEADER[0], f"mean ± std ({seed_count} seeds)", *TABLE_HEADER[2:])
    lines = [_markdown_row(header), "|" + "---|" * len(header)]
    section = None
    for row in rows:
        if row["section"] != section:
            section = row["section"]
            lines.append(_markdown_row([f"**{section}**", *[""] * (len(header) - 1)]))
        lines.append(_markdown_row(_row_cells(row)))
    return "\n".join(lines)


def _markdown_row(cells: Sequence[str]) -> str:
    # A literal | would end the cell, as in the label "max |w|".
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _row_cells(row: dict[str, Any]) -> tuple[str, ...]:
    decimals = row["reference_decimals"]
    deviation = f"{row['deviation']:+.{decimals}f}"
    if row["deviation_in_std"] is not None:
        deviation += f" ({row['deviation_in_std']:+.1f} std)"
    within = "yes" if row["within_spread"] else f"NO, misses by {row['miss']:.{decimals}f}"
    return (
        row["label"],
        f"{row['mean']:.{decimals}f} ± {row['std']:.{decimals}f}",
        f"{row['reference']:.{decimals}f}",
        row["reference_source"],
        deviation,
        within,
    )


def _join_padded(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()


def _summary_line(rows: Sequence[dict[str, Any]]) -> str:
    misses = [row for row in rows if not row["within_spread"]]
    if not misses:
        return f"Every one of the {len(rows)} references is within the spread."
    parts = [f"{row['key']} by {row['miss']:.{row['reference_decimals']}f}" for row in misses]
    return f"{len(misses)} of {len(rows)} references are outside the spread: " + "; ".join(parts) + "."


def describe_machine() -> dict[str, Any]:
    """Return the CPU count, CPU model and library versions, for the report."""
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": _cpu_model(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_outputs(rows: Sequence[dict[str, Any]], context: dict[str, Any], output_dir: Path) -> None:
    """Write ``why_sqrt5.json``, ``report.md`` and the TensorBoard text into ``output_dir``."""
    output_dir.mkdir(parents=True, exist_ok=True)
    seed_count = len(context["seeds"])

    with open(output_dir / JSON_NAME, "w", encoding="utf-8") as stream:
        json.dump({**context, "reference_notebook": NOTEBOOK, "rows": list(rows)}, stream, indent=2)
        stream.write("\n")

    markdown_table = format_markdown_table(rows, seed_count)
    (output_dir / REPORT_NAME).write_text(_markdown_report(rows, context, markdown_table), encoding="utf-8")

    writer = SummaryWriter(log_dir=str(output_dir))
    try:
        writer.add_text(TENSORBOARD_TAG, markdown_table, global_step=0)
    finally:
        writer.close()


def _markdown_report(rows: Sequence[dict[str, Any]], context: dict[str, Any], markdown_table: str) -> str:
    machine = context["machine"]
    return "\n".join(
        [
            "# Why sqrt(5): PyTorch's default conv init, measured over seeds",
            "",
            f"Command: `{context['command']}`",
            "",
            f"Data: {context['images']}, from source {context['data_source']}.",
            f"Seeds: {context['seeds'][0]} to {context['seeds'][-1]} ({len(context['seeds'])} seeds).",
            f"Machine: {machine['nproc']} CPUs ({machine['cpu_model']}), torch {machine['torch']}, "
            f"Python {machine['python']}. Loading and measuring took {context['load_and_measure_s']} s.",
            "",
            SOURCE_NOTE,
            context["rule"],
            "",
            markdown_table,
            "",
            _summary_line(rows),
            "",
        ]
    )


GAIN_SLOPES = {"1": 1.0, "0": 0.0, "0.01": 0.01, "0.1": 0.1, "sqrt5": SQRT5}
HAND_SLOPES = {"0": 0.0, "sqrt5": SQRT5}
NET_INITS: dict[str, Callable[[nn.Module, torch.Generator], None]] = {
    "default": pytorch_default,
    "kaiming_uniform": kaiming_uniform,
}


def _quantities() -> tuple[Quantity, ...]:
    bound = {name: kaiming_uniform_bound(a, 25) for name, a in HAND_SLOPES.items()}
    weight_std = {name: leaky_relu_gain(a) / math.sqrt(25) for name, a in HAND_SLOPES.items()}
    # Section title: rows of (key, label, reference, decimals, source).
    sections = {
        "1. leaky-ReLU gain sqrt(2 / (1 + a^2))": [
            ("gain/a=1", "gain(1)", 1.0, 7, "exact"),
            ("gain/a=0", "gain(0)", 1.4142136, 7, "exact"),
            ("gain/a=0.01", "gain(0.01)", 1.4141429, 7, "exact"),
            ("gain/a=0.1", "gain(0.1)", 1.4071951, 7, "exact"),
            ("gain/a=sqrt5", "gain(sqrt(5))", 0.5773503, 7, "exact"),
        ],
        "2. std of 10,000 draws from U(-1, 1)": [
            ("uniform/std", "std", 0.5773503, 7, "exact"),
        ],
        "3. fan of a Conv2d(1, 32, 5) weight": [
            ("fan/fan_in", "fan_in", 25, 0, "exact"),
            ("fan/fan_out", "fan_out", 800, 0, "exact"),
        ],
        "4. one Conv2d(1, 32, 5) on 100 validation images": [
            ("conv/default/mean", "default init: conv mean", 0.0107, 4, "notebook"),
            ("conv/default/std", "default init: conv std", 0.5978, 4, "notebook"),
            ("conv/kaiming_normal_a=1/mean", "kaiming_normal_(a=1): conv mean", 0.0267, 4, "notebook"),
            ("conv/kaiming_normal_a=1/std", "kaiming_normal_(a=1): conv std", 1.1067, 4, "notebook"),
            ("relu/kaiming_normal_a=0/mean", "kaiming_normal_(a=0): ReLU mean", 0.5547, 4, "notebook"),
            ("relu/kaiming_normal_a=0/std", "kaiming_normal_(a=0): ReLU std", 1.0199, 4, "notebook"),
            ("relu/default/mean", "default init: ReLU mean", 0.2219, 4, "notebook"),
            ("relu/default/std", "default init: ReLU std", 0.3653, 4, "notebook"),
        ],
        "5. hand-written Kaiming uniform, bound sqrt(3) * gain(a) / sqrt(fan_in); max |w| of 100,000 draws": [
            ("kaiming_uniform/max_abs/a=0", "kaiming_uniform_(a=0): max |w|", bound["0"], 7, "hand-written"),
            (
                "kaiming_uniform/max_abs/a=sqrt5", "kaiming_uniform_(a=sqrt(5)): max |w|",
                bound["sqrt5"], 7, "hand-written",
            ),
            ("kaiming_uniform/hand_std/a=0", "hand-written, a=0: weight std", weight_std["0"], 4, "theory"),
            ("kaiming_uniform/library_std/a=0", "kaiming_uniform_(a=0): weight std", weight_std["0"], 4, "theory"),
            (
                "kaiming_uniform/hand_std/a=sqrt5", "hand-written, a=sqrt(5): weight std",
                weight_std["sqrt5"], 4, "theory",
            ),
            (
                "kaiming_uniform/library_std/a=sqrt5", "kaiming_uniform_(a=sqrt(5)): weight std",
                weight_std["sqrt5"], 4, "theory",
            ),
            ("relu/hand_kaiming_uniform_a=0/mean", "hand-written, a=0: ReLU mean", 0.5603, 4, "notebook"),
            ("relu/hand_kaiming_uniform_a=0/std", "hand-written, a=0: ReLU std", 1.0921, 4, "notebook"),
            ("relu/hand_kaiming_uniform_a=sqrt5/mean", "hand-written, a=sqrt(5): ReLU mean", 0.2186, 4, "notebook"),
            ("relu/hand_kaiming_uniform_a=sqrt5/std", "hand-written, a=sqrt(5): ReLU std", 0.3437, 4, "notebook"),
        ],
        "6. 4-layer stride-2 net: output std, and conv1 weight gradient std of the MSE against the labels": [
            ("net/default/output_std", "PyTorch default: output std", 0.0065, 4, "notebook"),
            ("net/default/grad_std", "PyTorch default: conv1 gradient std", 0.0333, 4, "notebook"),
            ("net/kaiming_uniform/output_std", "kaiming_uniform_, zero bias: output std", 0.4043, 4, "notebook"),
            ("net/kaiming_uniform/grad_std", "kaiming_uniform_, zero bias: conv1 gradient std", 0.4231, 4, "notebook"),
        ],
    }
    return tuple(
        Quantity(key, section, label, reference, decimals, source)
        for section, rows in sections.items()
        for key, label, reference, decimals, source in rows
    )


# Every row of the table, in print order; measure_seed returns one value per key.
QUANTITIES = _quantities()


if __name__ == "__main__":
    main()
