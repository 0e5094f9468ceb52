"""Time the parts of a recorded statistics step, to show where the cost of ``stats`` comes from.

    python benchmarks/statistics_parts.py                 # about a minute on 2 CPU cores
    python benchmarks/statistics_parts.py --batch-sizes 64 --repeats 3

Three measurements, each repeated and reported as a median, printed as Markdown.
The machines are shared, so compare figures of one run, not of different runs:

- hooks: one training step of the net (``configs/model``) in a plain PyTorch
  loop, without hooks and with one forward hook per recorded layer that returns
  at once. The difference is what registered hooks cost a step that records
  nothing.
- statistics: the moments and the histogram of every recorded layer output,
  as a recorded step computes them.
- tensorboard: one ``SummaryWriter.add_scalar`` per value against one event
  that contains all the values, and the time per byte of TensorBoard's checksum.

The throughput of whole training epochs is ``benchmarks/throughput.py``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Callable, Sequence

import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from tensorboard.compat.proto.summary_pb2 import Summary
from torch.nn import functional as F
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard import summary as tensorboard_summary

from initbench.statistics import activation_moments, adaptive_histogram
from initbench.stats_callback import LayerHooks, select_layers

# Scalars that a recorded step logs with the default settings: 8 layers x 3 activation
# statistics and 4 weight layers x 3 weight statistics, rounded to 40.
SCALARS_PER_STEP = 40


def main(argv: Sequence[str] | None = None) -> list[str]:
    """Run the measurements, print the report and return its lines."""
    args = parse_arguments(argv)
    torch.manual_seed(0)
    net = instantiate(compose_model_config())
    lines = [
        "# Parts of a recorded statistics step",
        "",
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats} repeats.",
        "",
        *hook_table(net, args.batch_sizes, args.repeats, args.steps),
        "",
        *statistics_table(net, args.batch_sizes, args.repeats, args.bins),
        "",
        *tensorboard_table(args.repeats),
    ]
    print("\n".join(lines))
    return lines


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse and check the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 512], help="batch sizes (default: 64 512)")
    parser.add_argument("--repeats", type=int, default=7, help="repeats of each measurement (default 7)")
    parser.add_argument("--steps", type=int, default=100, help="training steps per timed hook repeat (default 100)")
    parser.add_argument("--bins", type=int, default=64, help="histogram bins (default 64, as stats.bins)")
    args = parser.parse_args(argv)
    for name in ("repeats", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if not 2 <= args.bins <= 4096:
        parser.error(f"--bins must be between 2 and 4096, got {args.bins}")
    if any(size < 1 for size in args.batch_sizes):
        parser.error(f"--batch-sizes must be at least 1, got {args.batch_sizes}")
    return args


def compose_model_config():
    """Return the ``model`` group of the real training config."""
    with initialize_config_module(config_module="initbench.configs", version_base="1.3"):
        return compose(config_name="train").model


def hook_table(net: torch.nn.Module, batch_sizes: Sequence[int], repeats: int, steps: int) -> list[str]:
    """Time training steps with and without forward hooks that do nothing."""
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    hooks = LayerHooks(select_layers(net, None, record_output=True), lambda name, output: None)
    lines = [
        f"## Training step with {len(hooks.layers)} forward hooks that return at once",
        "",
        "| batch | without hooks, ms | with hooks, ms | paired difference, us | paired ratio - 1 |",
        "|---:|---:|---:|---:|---:|",
    ]
    for batch_size in batch_sizes:
        images = torch.randn(batch_size, 1, 28, 28)
        labels = torch.randint(0, 10, (batch_size,))

        def train_steps() -> None:
            for _ in range(steps):
                optimizer.zero_grad()
                F.cross_entropy(net(images), labels).backward()
                optimizer.step()

        train_steps()  # untimed warm-up
        without, with_hooks = [], []
        # Alternate the two cases and compare each pair, so that a slow spell of a shared machine
        # hits both sides of a difference alike.
        for _ in range(repeats):
            without.append(_seconds(train_steps) / steps)
            with hooks:
                with_hooks.append(_seconds(train_steps) / steps)
        difference = statistics.median(hooked - plain for plain, hooked in zip(without, with_hooks))
        ratio = statistics.median(hooked / plain for plain, hooked in zip(without, with_hooks))
        lines.append(
            f"| {batch_size} | {statistics.median(without) * 1e3:.2f} | {statistics.median(with_hooks) * 1e3:.2f} "
            f"| {difference * 1e6:+.0f} | {ratio - 1:+.1%} |"
        )
    return lines


def statistics_table(net: torch.nn.Module, batch_sizes: Sequence[int], repeats: int, bins: int) -> list[str]:
    """Time the moments and the histograms of all recorded layer outputs."""
    lines = [
        "## Statistics of all recorded layer outputs",
        "",
        "| batch | elements | moments, ms | histograms, ms |",
        "|---:|---:|---:|---:|",
    ]
    for batch_size in batch_sizes:
        outputs = _layer_outputs(net, torch.randn(batch_size, 1, 28, 28))

        def moments() -> None:
            for output in outputs:
                activation_moments(output, 1e-3)

        def histograms() -> None:
            for output in outputs:
                adaptive_histogram(output, bins)

        elements = sum(output.numel() for output in outputs)
        lines.append(
            f"| {batch_size} | {elements:,} | {_median_seconds(moments, repeats) * 1e3:.2f} "
            f"| {_median_seconds(histograms, repeats) * 1e3:.2f} |"
        )
    return lines


def tensorboard_table(repeats: int) -> list[str]:
    """Time scalar events one by one and in one event, and TensorBoard's checksum per byte."""
    from tensorboard.summary.writer.record_writer import masked_crc32c

    values = {f"activations/std/layer{index}": 0.5 for index in range(SCALARS_PER_STEP)}
    payload = bytes(range(256)) * 64
    with tempfile.TemporaryDirectory() as folder, SummaryWriter(folder) as writer:

        def one_event_per_scalar() -> None:
            for key, value in values.items():
                writer.add_scalar(key, value, global_step=1)
            writer.flush()

        def one_event() -> None:
            merged = [value for key, number in values.items() for value in tensorboard_summary.scalar(key, number).value]
            writer.file_writer.add_summary(Summary(value=merged), global_step=1)
            writer.flush()

        per_scalar = _median_seconds(one_event_per_scalar, repeats)
        merged = _median_seconds(one_event, repeats)
    checksum = _median_seconds(lambda: masked_crc32c(payload), repeats) / len(payload)
    return [
        "## TensorBoard writes",
        "",
        "| what | median |",
        "|---|---:|",
        f"| {SCALARS_PER_STEP} scalars, one event each, then flush | {per_scalar * 1e3:.2f} ms |",
        f"| {SCALARS_PER_STEP} scalars in one event, then flush | {merged * 1e3:.2f} ms |",
        f"| checksum of the event file's records | {checksum * 1e9:.0f} ns per byte |",
    ]


def _layer_outputs(net: torch.nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    outputs: list[torch.Tensor] = []
    with LayerHooks(select_layers(net, None, record_output=True), lambda name, output: outputs.append(output)):
        with torch.no_grad():
            net(images)
    return outputs


def _median_seconds(action: Callable[[], object], repeats: int) -> float:
    action()  # untimed, so that first-call costs stay out of the figures
    return statistics.median(_seconds(action) for _ in range(repeats))


def _seconds(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
