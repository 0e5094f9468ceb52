"""Tests of ``python -m initbench.why_sqrt5`` and its statistics.

Fast tests run on synthetic unit-variance images. Tests marked ``slow`` load
the real MNIST data through the data module that training uses.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from omegaconf import OmegaConf
from scipy import stats
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from initbench import why_sqrt5
from initbench.init_schemes import kaiming_uniform, pytorch_default

SQRT5 = math.sqrt(5)
DEFAULT_SEEDS = list(range(20))

# gain(a) = sqrt(2 / (1 + a^2)), evaluated by hand to 7 decimals.
EXACT_GAINS = [(1.0, 1.0), (0.0, 1.4142136), (0.01, 1.4141429), (0.1, 1.4071951), (SQRT5, 0.5773503)]


@pytest.fixture(scope="module")
def synthetic_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Return 100 images with iid N(0, 1) pixels and integer labels 0 to 9 as floats."""
    generator = torch.Generator().manual_seed(1234)
    images = torch.randn(100, 1, 28, 28, generator=generator)
    targets = torch.randint(0, 10, (100,), generator=generator).float()
    return images, targets


@pytest.fixture(scope="module")
def synthetic_rows(synthetic_batch) -> list[dict]:
    images, targets = synthetic_batch
    return why_sqrt5.measure_rows(images, targets, seeds=[0, 1, 2])


def compose_config(overrides: list[str] | None = None):
    with initialize_config_module("initbench.configs", version_base="1.3"):
        return compose("why_sqrt5", overrides=overrides or [])


def run_command(*overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "initbench.why_sqrt5", *overrides],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


# Gain, U(-1, 1) and fan.


@pytest.mark.parametrize(("a", "expected"), EXACT_GAINS)
def test_gain_equals_exact_value(a, expected):
    assert abs(why_sqrt5.leaky_relu_gain(a) - expected) < 1e-6


@pytest.mark.parametrize("a", [a for a, _ in EXACT_GAINS])
def test_gain_equals_calculate_gain(a):
    assert abs(why_sqrt5.leaky_relu_gain(a) - nn.init.calculate_gain("leaky_relu", a)) < 1e-6


@pytest.mark.parametrize("seed", DEFAULT_SEEDS)
def test_uniform_std_near_inverse_sqrt3(seed):
    measured = why_sqrt5.uniform_std(10_000, torch.Generator().manual_seed(seed))

    assert abs(measured - 1 / math.sqrt(3)) < 0.01


def test_fan_of_conv2d_weight():
    fan_in, fan_out = why_sqrt5.fan_in_and_fan_out(nn.Conv2d(1, 32, 5).weight)

    assert fan_in == 25
    assert fan_out == 800


@pytest.mark.parametrize("shape", [(10, 3), (32, 1, 5, 5), (16, 8, 3, 3), (4, 2, 3, 5, 7)])
def test_fan_equals_torch_definition(shape):
    weight = torch.empty(shape)

    assert why_sqrt5.fan_in_and_fan_out(weight) == nn.init._calculate_fan_in_and_fan_out(weight)


def test_fan_rejects_1d_weight():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        why_sqrt5.fan_in_and_fan_out(torch.empty(5))


# Hand-written Kaiming uniform against torch.nn.init.kaiming_uniform_.


@pytest.mark.parametrize(("a", "expected"), [(0.0, math.sqrt(6) / 5), (SQRT5, 0.2)])
def test_kaiming_uniform_bound_for_fan_in_25(a, expected):
    assert why_sqrt5.kaiming_uniform_bound(a, 25) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("a", [0.0, SQRT5])
def test_hand_equals_library_same_seed(a):
    hand = why_sqrt5.kaiming_uniform_by_hand_(torch.empty(32, 1, 5, 5), a, torch.Generator().manual_seed(7))
    library = nn.init.kaiming_uniform_(torch.empty(32, 1, 5, 5), a=a, generator=torch.Generator().manual_seed(7))

    # One uniform draw scaled by the bound, so equal tensors mean an equal bound.
    assert torch.allclose(hand, library, rtol=1e-6, atol=0.0)


@pytest.mark.parametrize(("a", "bound"), [(0.0, math.sqrt(6) / 5), (SQRT5, 0.2)])
def test_hand_and_library_max_abs_reach_same_bound(a, bound):
    hand = why_sqrt5.kaiming_uniform_by_hand_(torch.empty(4000, 1, 5, 5), a, torch.Generator().manual_seed(1))
    library = nn.init.kaiming_uniform_(torch.empty(4000, 1, 5, 5), a=a, generator=torch.Generator().manual_seed(2))

    # The max of 100,000 draws from U(-b, b) falls short of b by about b / 100,000.
    assert bound * (1 - 1e-3) < hand.abs().max().item() <= bound
    assert bound * (1 - 1e-3) < library.abs().max().item() <= bound


@pytest.mark.parametrize("a", [0.0, SQRT5])
def test_hand_and_library_std_within_sampling_error(a):
    count = 100_000
    shape = (count // 25, 1, 5, 5)
    hand = why_sqrt5.kaiming_uniform_by_hand_(torch.empty(shape), a, torch.Generator().manual_seed(1))
    library = nn.init.kaiming_uniform_(torch.empty(shape), a=a, generator=torch.Generator().manual_seed(2))

    # For U(-b, b) the sample std has standard error about sigma * sqrt(0.2 / n),
    # so the difference of two independent ones has sigma * sqrt(0.4 / n).
    sigma = why_sqrt5.leaky_relu_gain(a) / 5
    difference_error = sigma * math.sqrt(0.4 / count)
    assert abs(hand.std().item() - library.std().item()) < 4 * difference_error


@pytest.mark.parametrize("a", [0.0, SQRT5])
def test_hand_and_library_same_distribution_ks(a):
    hand = why_sqrt5.kaiming_uniform_by_hand_(torch.empty(400, 1, 5, 5), a, torch.Generator().manual_seed(1))
    library = nn.init.kaiming_uniform_(torch.empty(400, 1, 5, 5), a=a, generator=torch.Generator().manual_seed(2))

    result = stats.ks_2samp(hand.flatten().numpy(), library.flatten().numpy())

    assert result.pvalue > 0.01


# The 4-layer net.


@pytest.fixture(scope="module")
def synthetic_net_means(synthetic_batch) -> dict[str, tuple[float, float]]:
    """Return the mean over seeds 0 to 9 of (output std, conv1 gradient std) per init."""
    images, targets = synthetic_batch
    means = {}
    for init in (pytorch_default, kaiming_uniform):
        pairs = [
            why_sqrt5.net_output_and_gradient_std(images, targets, init, torch.Generator().manual_seed(seed))
            for seed in range(10)
        ]
        means[init.__name__] = (statistics.fmean(p[0] for p in pairs), statistics.fmean(p[1] for p in pairs))
    return means


def test_net_default_output_std_10x_smaller(synthetic_net_means):
    default = synthetic_net_means["pytorch_default"][0]
    kaiming = synthetic_net_means["kaiming_uniform"][0]

    assert default * 10 <= kaiming


def test_net_default_gradient_std_10x_smaller(synthetic_net_means):
    default = synthetic_net_means["pytorch_default"][1]
    kaiming = synthetic_net_means["kaiming_uniform"][1]

    assert default * 10 <= kaiming


def test_net_output_has_one_value_per_image(synthetic_batch):
    images, targets = synthetic_batch
    net_output_std, gradient_std = why_sqrt5.net_output_and_gradient_std(
        images, targets, pytorch_default, torch.Generator().manual_seed(0)
    )

    assert math.isfinite(net_output_std)
    assert gradient_std > 0


# Rows, the within-spread rule and the output files.


def test_measure_seed_returns_every_quantity(synthetic_batch):
    images, targets = synthetic_batch
    values = why_sqrt5.measure_seed(images, targets, torch.Generator().manual_seed(0))

    assert set(values) == {quantity.key for quantity in why_sqrt5.QUANTITIES}


def test_measure_seed_repeats_for_same_seed(synthetic_batch):
    images, targets = synthetic_batch
    first = why_sqrt5.measure_seed(images, targets, torch.Generator().manual_seed(3))
    second = why_sqrt5.measure_seed(images, targets, torch.Generator().manual_seed(3))

    assert first == second


def test_rows_hold_per_seed_values(synthetic_rows):
    for row in synthetic_rows:
        assert row["n"] == 3, row["key"]
        assert list(row["per_seed"]) == ["0", "1", "2"], row["key"]
        assert row["mean"] == pytest.approx(statistics.fmean(row["values"])), row["key"]


def test_summarize_within_spread_at_edge():
    # Values 1 and 3 have mean 2 and sample std sqrt(2). Four decimals allow 0.5e-4 of rounding.
    reference = 2 + 3 * math.sqrt(2) + 0.4e-4
    quantity = why_sqrt5.Quantity("x", "section", "x", reference=reference, decimals=4, source="test")

    row = why_sqrt5.summarize(quantity, {0: 1.0, 1: 3.0}, spread_factor=3)

    assert row["within_spread"] is True


def test_summarize_reports_miss():
    reference = 2 + 3 * math.sqrt(2) + 1e-3
    quantity = why_sqrt5.Quantity("x", "section", "x", reference=reference, decimals=4, source="test")

    row = why_sqrt5.summarize(quantity, {0: 1.0, 1: 3.0}, spread_factor=3)

    assert row["within_spread"] is False
    assert row["miss"] == pytest.approx(1e-3 - 0.5e-4)


def test_summarize_exact_value_with_zero_std():
    quantity = why_sqrt5.Quantity("x", "section", "x", reference=25, decimals=0, source="test")

    row = why_sqrt5.summarize(quantity, {0: 25.0, 1: 25.0}, spread_factor=3)

    assert row["within_spread"] is True
    assert row["deviation_in_std"] is None


def test_write_outputs_json_holds_every_row(synthetic_rows, tmp_path):
    why_sqrt5.write_outputs(synthetic_rows, _context([0, 1, 2]), tmp_path)

    content = json.loads((tmp_path / "why_sqrt5.json").read_text())

    assert [row["key"] for row in content["rows"]] == [quantity.key for quantity in why_sqrt5.QUANTITIES]
    for row in content["rows"]:
        assert set(row) >= {"reference", "values", "per_seed", "mean", "std", "n"}, row["key"]


def test_write_outputs_report_lists_every_label(synthetic_rows, tmp_path):
    why_sqrt5.write_outputs(synthetic_rows, _context([0, 1, 2]), tmp_path)

    report = (tmp_path / "report.md").read_text()

    for quantity in why_sqrt5.QUANTITIES:
        escaped_label = quantity.label.replace("|", "\\|")
        assert f"| {escaped_label} |" in report, quantity.key


def test_write_outputs_tensorboard_text(synthetic_rows, tmp_path):
    why_sqrt5.write_outputs(synthetic_rows, _context([0, 1, 2]), tmp_path)

    events = EventAccumulator(str(tmp_path), size_guidance={"tensors": 0})
    events.Reload()

    assert "why_sqrt5/text_summary" in events.Tags()["tensors"]


def _context(seeds: list[int]) -> dict:
    return {
        "command": "python -m initbench.why_sqrt5",
        "seeds": seeds,
        "spread_factor": 3.0,
        "rule": why_sqrt5.spread_rule(3.0),
        "images": "100 synthetic images",
        "data_source": "synthetic",
        "machine": why_sqrt5.describe_machine(),
        "load_and_measure_s": 0.0,
    }


def test_markdown_table_rows_have_same_cell_count(synthetic_rows):
    table = why_sqrt5.format_markdown_table(synthetic_rows, 3)

    # Count the cell separators that are not escaped as \|.
    counts = {len(re.findall(r"(?<!\\)\|", line)) for line in table.splitlines()}

    assert counts == {7}


def test_text_table_has_row_per_quantity(synthetic_rows):
    table = why_sqrt5.format_text_table(synthetic_rows, 3, 3.0)

    for quantity in why_sqrt5.QUANTITIES:
        assert quantity.label in table, quantity.key


# Configuration and the command.


def test_config_defaults():
    cfg = compose_config()

    assert cfg.seeds == 20
    assert cfg.spread_factor == 3
    assert cfg.output_dir.startswith("lightning_logs/why_sqrt5/")


def test_config_data_equals_training_data():
    with initialize_config_module("initbench.configs", version_base="1.3"):
        data = compose("why_sqrt5").data
        training_data = compose("train").data

    assert OmegaConf.to_container(data, resolve=True) == OmegaConf.to_container(training_data, resolve=True)


def test_config_data_instantiates_data_module():
    cfg = compose_config()

    datamodule = instantiate(cfg.data)

    assert type(datamodule).__name__ == "MNISTDataModule"


@pytest.mark.parametrize("count", [1, 0, "many"])
def test_seed_list_rejects_fewer_than_2(count):
    with pytest.raises(why_sqrt5.InvalidSetting, match="seeds="):
        why_sqrt5.seed_list(0, count)


def test_seed_list_counts_from_first_seed():
    assert why_sqrt5.seed_list(5, 3) == [5, 6, 7]


@pytest.mark.parametrize("factor", [-1, math.inf, "three", True])
def test_spread_factor_rejects_invalid(factor):
    with pytest.raises(why_sqrt5.InvalidSetting, match="spread_factor="):
        why_sqrt5.check_spread_factor(factor)


@pytest.mark.parametrize(
    ("override", "message"),
    [("data.file=/nonexistent/mnist.pkl.gz", "does not exist"), ("seeds=1", "Invalid seeds=1")],
)
def test_command_invalid_input_exits_2(tmp_path, override, message):
    result = run_command(override, f"log_dir={tmp_path}", cwd=tmp_path)
    output = result.stdout + result.stderr

    assert result.returncode == 2
    assert message in output
    assert "Traceback" not in output


# Real MNIST.


@pytest.fixture(scope="module")
def mnist_rows() -> list[dict]:
    cfg = compose_config()
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    images, labels = datamodule.fixed_batch("val", 100)
    return why_sqrt5.measure_rows(images, labels.float(), DEFAULT_SEEDS)


@pytest.mark.slow
def test_mnist_default_output_std_10x_smaller(mnist_rows):
    rows = {row["key"]: row for row in mnist_rows}

    assert rows["net/default/output_std"]["mean"] * 10 <= rows["net/kaiming_uniform/output_std"]["mean"]


@pytest.mark.slow
def test_mnist_default_gradient_std_10x_smaller(mnist_rows):
    rows = {row["key"]: row for row in mnist_rows}

    assert rows["net/default/grad_std"]["mean"] * 10 <= rows["net/kaiming_uniform/grad_std"]["mean"]


@pytest.mark.slow
def test_command_writes_report_json_and_tensorboard(tmp_path):
    result = run_command("seeds=3", f"output_dir={tmp_path / 'run'}", cwd=tmp_path)
    run_dir = tmp_path / "run"

    assert result.returncode == 0, result.stderr
    assert "mean ± std (3 seeds)" in result.stdout
    assert (run_dir / "report.md").is_file()
    assert len(json.loads((run_dir / "why_sqrt5.json").read_text())["rows"]) == len(why_sqrt5.QUANTITIES)
    assert list(run_dir.glob("events.out.tfevents.*"))
    assert not (tmp_path / "outputs").exists()
