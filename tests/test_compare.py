"""Tests of initbench.compare, its statistics and its run reader.

The fast tests write their own event files and run.json with known curves
and check every number against scipy or a hand computation. The slow test
trains a tiny real sweep on MNIST and compares it end to end.
"""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from scipy import stats
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.util import tensor_util
from torch.utils.tensorboard import SummaryWriter

from initbench import compare
from initbench.convergence_stats import (
    aggregate_curves,
    area_under_curve,
    mean_confidence_interval,
    seconds_to_target,
    steps_to_target,
    value_at_step,
    welch_t_test,
)
from initbench.run_reader import COMPARE_MARKER, find_run_dirs, read_run

START_TIME = 1_000.0
VAL_STEPS = (49, 99, 149, 199, 249)
LOSS_STEPS = tuple(range(10, 260, 10))


def hand_welch(sample: list[float], baseline: list[float], confidence: float = 0.95) -> dict[str, float]:
    """Welch's t-test written out from its formulas, independent of scipy.stats.ttest_ind."""
    n1, n2 = len(sample), len(baseline)
    mean1, mean2 = sum(sample) / n1, sum(baseline) / n2
    var1 = sum((x - mean1) ** 2 for x in sample) / (n1 - 1)
    var2 = sum((x - mean2) ** 2 for x in baseline) / (n2 - 1)
    standard_error = math.sqrt(var1 / n1 + var2 / n2)
    df = (var1 / n1 + var2 / n2) ** 2 / ((var1 / n1) ** 2 / (n1 - 1) + (var2 / n2) ** 2 / (n2 - 1))
    t_value = (mean1 - mean2) / standard_error
    critical = stats.t.ppf((1 + confidence) / 2, df)
    return {
        "difference": mean1 - mean2,
        "p_value": 2 * stats.t.sf(abs(t_value), df),
        "low": mean1 - mean2 - critical * standard_error,
        "high": mean1 - mean2 + critical * standard_error,
        "df": df,
    }


def float32(values) -> list[float]:
    """Round values to float32 as TensorBoard stores them."""
    return [float(np.float32(value)) for value in values]


# Pure statistics.


def test_confidence_interval_matches_scipy():
    values = [0.2, 0.5, 0.4, 0.9, 0.3]
    expected_low, expected_high = stats.t.interval(0.95, df=4, loc=np.mean(values), scale=stats.sem(values))

    estimate = mean_confidence_interval(values)

    assert estimate.mean == pytest.approx(0.46)
    assert estimate.low == pytest.approx(expected_low)
    assert estimate.high == pytest.approx(expected_high)
    assert estimate.n == 5


def test_confidence_interval_by_hand():
    # mean 3, s = sqrt(2.5), t(0.975, 4) = 2.776445105
    estimate = mean_confidence_interval([1, 2, 3, 4, 5])

    assert estimate.half_width == pytest.approx(2.776445105 * math.sqrt(2.5) / math.sqrt(5), rel=1e-9)


def test_confidence_interval_of_one_value_is_nan():
    estimate = mean_confidence_interval([0.7])

    assert estimate.mean == 0.7
    assert math.isnan(estimate.half_width)


def test_confidence_interval_of_no_values_is_nan():
    estimate = mean_confidence_interval([])

    assert estimate.n == 0
    assert math.isnan(estimate.mean)


def test_welch_matches_hand_formula():
    sample, baseline = [149.0, 199.0, 199.0, 99.0], [249.0, 199.0, 199.0]
    expected = hand_welch(sample, baseline)

    result = welch_t_test(sample, baseline)

    assert result.difference == pytest.approx(expected["difference"])
    assert result.p_value == pytest.approx(expected["p_value"], rel=1e-9)
    assert result.low == pytest.approx(expected["low"], rel=1e-9)
    assert result.high == pytest.approx(expected["high"], rel=1e-9)
    assert result.df == pytest.approx(expected["df"], rel=1e-9)


def test_welch_without_spread_has_note():
    result = welch_t_test([99.0, 99.0], [149.0, 149.0, 149.0])

    assert result.difference == -50.0
    assert math.isnan(result.p_value)
    assert "same" in result.note


def test_welch_with_one_value_has_note():
    result = welch_t_test([0.9], [0.91, 0.92])

    assert math.isnan(result.p_value)
    assert "at least 2" in result.note


def test_steps_to_target_first_crossing():
    steps, values = [49, 99, 149, 199], [0.5, 0.91, 0.89, 0.95]

    assert steps_to_target(steps, values, 0.9) == 99
    assert steps_to_target(steps, values, 0.95) == 199
    assert steps_to_target(steps, values, 0.97) is None


def test_steps_to_target_counts_float32_equality():
    logged = float32([0.8, 0.9])  # 0.9 in float32 is 0.8999999762

    assert steps_to_target([49, 99], logged, 0.9) == 99


def test_steps_to_target_ignores_nan():
    assert steps_to_target([1, 2], [math.nan, 0.5], 0.4) == 2


def test_seconds_to_target_from_start():
    assert seconds_to_target([1003.5, 1010.0], [0.8, 0.95], 0.9, 1000.0) == pytest.approx(10.0)


def test_value_at_step_takes_last_logged():
    steps, values = [49, 99, 149], [2.0, 1.0, 0.5]

    assert value_at_step(steps, values, 100) == 1.0
    assert value_at_step(steps, values, 149) == 0.5
    assert value_at_step(steps, values, 10) is None
    assert value_at_step(steps, values, 150) is None


def test_area_under_curve_by_hand():
    # Trapezoids: 10 * (2 + 1) / 2 + 10 * (1 + 0) / 2 = 20
    assert area_under_curve([0, 10, 20], [2.0, 1.0, 0.0]) == pytest.approx(20.0)


def test_area_under_curve_interpolates_end():
    # 15 up to step 10, then (1 + 0.5) / 2 * 5 = 3.75 up to the interpolated value 0.5 at step 15
    assert area_under_curve([0, 10, 20], [2.0, 1.0, 0.0], end_step=15) == pytest.approx(18.75)


def test_area_under_curve_rejects_end_after_last_step():
    assert area_under_curve([0, 10, 20], [2.0, 1.0, 0.0], end_step=21) is None


def test_aggregate_curves_ci_band():
    curves = [([0, 10], [1.0, 0.5]), ([0, 10], [3.0, 0.7]), ([0, 10], [2.0, 0.6])]
    low, high = stats.t.interval(0.95, df=2, loc=2.0, scale=stats.sem([1.0, 3.0, 2.0]))

    band = aggregate_curves(curves, band="ci")

    assert band.mean.tolist() == pytest.approx([2.0, 0.6])
    assert band.lower[0] == pytest.approx(low)
    assert band.upper[0] == pytest.approx(high)


def test_aggregate_curves_counts_ragged_steps():
    band = aggregate_curves([([0, 10, 20], [1.0, 1.0, 1.0]), ([0, 10], [3.0, 3.0])], band="range")

    assert band.count.tolist() == [2, 2, 1]
    assert band.lower.tolist() == [1.0, 1.0, 1.0]
    assert band.upper.tolist() == [3.0, 3.0, 1.0]


def test_aggregate_curves_std_band():
    band = aggregate_curves([([0], [1.0]), ([0], [3.0])], band="std")

    assert band.upper[0] == pytest.approx(2.0 + math.sqrt(2.0))


def test_aggregate_curves_rejects_unknown_band():
    with pytest.raises(ValueError, match="band"):
        aggregate_curves([([0], [1.0])], band="quartiles")


# A synthetic sweep with known curves.


def write_run(
    folder: Path,
    init: str,
    seed: int,
    val_acc: list[float],
    loss_offset: float = 2.0,
    status: str = "completed",
    diverged_step: int | None = None,
    loss_steps: tuple[int, ...] = LOSS_STEPS,
    with_record: bool = True,
) -> None:
    """Write a run folder as initbench.train does: events, run.json and .hydra/overrides.yaml.

    val/acc point i is logged at VAL_STEPS[i], ``step / 10`` seconds after the
    first event. train/loss is ``loss_offset - step / 200`` at ``loss_steps``.
    """
    folder.mkdir(parents=True)
    with mock.patch("time.time", return_value=START_TIME):
        writer = SummaryWriter(log_dir=str(folder))  # its first event, file_version, gets START_TIME
    for step, value in zip(VAL_STEPS, val_acc):
        writer.add_scalar("val/acc", value, global_step=step, walltime=START_TIME + step / 10)
        writer.add_scalar("val/loss", 1.0 - value, global_step=step, walltime=START_TIME + step / 10)
    for step in loss_steps:
        writer.add_scalar("train/loss", loss_offset - step / 200, global_step=step, walltime=START_TIME + step / 10)
    writer.add_scalar("activations/std/net.conv1", 1.0, global_step=10, walltime=START_TIME + 1)
    writer.close()

    if with_record:
        record = {"status": status, "hparams": {"init": init, "seed": seed, "optimizer/lr": 0.05},
                  "diverged_step": diverged_step, "final_metrics": {}}
        (folder / "run.json").write_text(json.dumps(record), encoding="utf-8")
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "overrides.yaml").write_text(f"- init={init}\n- seed={seed}\n", encoding="utf-8")


KAIMING_VAL_ACC = {
    0: [0.91, 0.96, 0.975, 0.98, 0.981],   # reaches 0.9 at 49, 0.95 at 99, 0.97 at 149
    1: [0.905, 0.94, 0.965, 0.972, 0.978],  # 49, 149, 199
    2: [0.88, 0.95, 0.96, 0.971, 0.975],   # 99, 99, 199
}
DEFAULT_VAL_ACC = {
    0: [0.80, 0.92, 0.955, 0.968, 0.974],  # 99, 149, 249
    1: [0.70, 0.91, 0.94, 0.972, 0.976],   # 99, 199, 199
    2: [0.85, 0.89, 0.951, 0.966, 0.9695],  # 149, 149, never 0.97
    3: [0.86, 0.93, 0.96, 0.971, 0.977],   # 99, 149, 199
}


@pytest.fixture()
def sweep(tmp_path: Path) -> Path:
    """2 inits: kaiming with 3 completed runs; pytorch_default with 4 completed, 1 diverged and 1 running."""
    root = tmp_path / "sweep"
    for seed, curve in KAIMING_VAL_ACC.items():
        write_run(root / f"init=kaiming,seed={seed}", "kaiming", seed, curve, loss_offset=1.5 + seed / 10)
    for seed, curve in DEFAULT_VAL_ACC.items():
        # Seed 3 logs train/loss only up to step 240, which sets the shared AUC end step.
        loss_steps = LOSS_STEPS[:-1] if seed == 3 else LOSS_STEPS
        write_run(root / f"init=pytorch_default,seed={seed}", "pytorch_default", seed, curve,
                  loss_offset=2.0 + seed / 10, loss_steps=loss_steps)
    write_run(root / "init=pytorch_default,seed=4", "pytorch_default", 4, [0.99], status="diverged", diverged_step=120)
    write_run(root / "init=pytorch_default,seed=5", "pytorch_default", 5, [0.99, 0.99], status="running")
    return root


@pytest.fixture()
def report(sweep: Path) -> compare.ComparisonReport:
    return compare.compare_sweep(sweep)


def group(report: compare.ComparisonReport, value: str) -> compare.GroupSummary:
    return next(summary for summary in report.groups if summary.value == value)


def comparison(report: compare.ComparisonReport, metric_name: str) -> compare.PairComparison:
    return next(item for item in report.comparisons if item.metric.name == metric_name)


def test_sweep_groups_in_sort_order(report):
    assert [summary.value for summary in report.groups] == ["kaiming", "pytorch_default"]


def test_sweep_baseline_is_pytorch_default(report):
    assert report.baseline == "pytorch_default"


def test_sweep_counts_completed_runs(report):
    assert len(group(report, "pytorch_default").analysed) == 4


def test_sweep_counts_diverged_runs(report):
    assert [run.diverged_step for run in group(report, "pytorch_default").diverged] == [120]


def test_sweep_counts_incomplete_runs(report):
    assert [run.status for run in group(report, "pytorch_default").incomplete] == ["running"]


def test_final_accuracy_excludes_diverged_and_running(report):
    expected = np.mean(float32(curve[-1] for curve in DEFAULT_VAL_ACC.values()))

    estimate = group(report, "pytorch_default").estimates["final_val_acc"]

    assert estimate.mean == pytest.approx(expected, rel=1e-12)


def test_final_accuracy_interval_matches_scipy(report):
    finals = float32(curve[-1] for curve in KAIMING_VAL_ACC.values())
    low, high = stats.t.interval(0.95, df=2, loc=np.mean(finals), scale=stats.sem(finals))

    estimate = group(report, "kaiming").estimates["final_val_acc"]

    assert estimate.low == pytest.approx(low, rel=1e-9)
    assert estimate.high == pytest.approx(high, rel=1e-9)


def test_steps_to_target_per_run(report):
    values = {item.run.name: item.values["steps_to_val_acc_0.97"] for item in group(report, "pytorch_default").analysed}

    assert values == {
        "init=pytorch_default,seed=0": 249.0,
        "init=pytorch_default,seed=1": 199.0,
        "init=pytorch_default,seed=2": None,
        "init=pytorch_default,seed=3": 199.0,
    }


def test_steps_to_target_mean_over_reached(report):
    estimate = group(report, "pytorch_default").estimates["steps_to_val_acc_0.97"]

    assert estimate.n == 3
    assert estimate.mean == pytest.approx((249 + 199 + 199) / 3)


def test_steps_to_target_interval_matches_scipy(report):
    steps = [149.0, 199.0, 199.0]
    low, high = stats.t.interval(0.95, df=2, loc=np.mean(steps), scale=stats.sem(steps))

    estimate = group(report, "kaiming").estimates["steps_to_val_acc_0.97"]

    assert estimate.low == pytest.approx(low, rel=1e-9)
    assert estimate.high == pytest.approx(high, rel=1e-9)


def test_seconds_to_target_from_first_event(report):
    estimate = group(report, "kaiming").estimates["seconds_to_val_acc_0.97"]

    assert estimate.mean == pytest.approx((14.9 + 19.9 + 19.9) / 3, abs=1e-3)


def test_steps_to_target_welch_matches_hand_formula(report):
    expected = hand_welch([149.0, 199.0, 199.0], [249.0, 199.0, 199.0])

    result = comparison(report, "steps_to_val_acc_0.97").result

    assert result.p_value == pytest.approx(expected["p_value"], rel=1e-9)
    assert result.low == pytest.approx(expected["low"], rel=1e-9)
    assert result.high == pytest.approx(expected["high"], rel=1e-9)


def test_final_accuracy_welch_matches_scipy(report):
    kaiming = float32(curve[-1] for curve in KAIMING_VAL_ACC.values())
    default = float32(curve[-1] for curve in DEFAULT_VAL_ACC.values())
    expected = stats.ttest_ind(kaiming, default, equal_var=False)

    result = comparison(report, "final_val_acc").result

    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)


def test_steps_to_target_difference_of_means(report):
    # 0.95: kaiming 99, 149, 99; pytorch_default 149, 199, 149, 149
    result = comparison(report, "steps_to_val_acc_0.95").result

    assert result.difference == pytest.approx((99 + 149 + 99) / 3 - (149 + 199 + 149 + 149) / 4)


def test_train_loss_at_step(report):
    # train/loss = 1.5 + seed / 10 - step / 200 for kaiming; at step 100: 1.0, 1.1, 1.2
    estimate = group(report, "kaiming").estimates["train_loss_at_step_100"]

    assert estimate.mean == pytest.approx(1.1, rel=1e-6)


def test_loss_after_run_end_missing(report):
    estimate = group(report, "kaiming").estimates["train_loss_at_step_1000"]

    assert estimate.n == 0


def test_auc_end_step_is_shortest_run(report):
    assert report.auc_end_step == 240.0


def test_auc_by_hand(report):
    # Integral of (c - s / 200) from 10 to 240 is 230 c - (240^2 - 10^2) / 400, with c = 1.5, 1.6, 1.7.
    expected = np.mean([230 * offset - (240**2 - 10**2) / 400 for offset in (1.5, 1.6, 1.7)])

    estimate = group(report, "kaiming").estimates["train_loss_auc"]

    assert estimate.mean == pytest.approx(expected, rel=1e-5)


def test_verdict_names_faster_init(report):
    # The mean offsets are 1.6 and 2.15 over the same 230 steps, so the areas differ by 230 * 0.55 = 126.5.
    verdict = next(line for line in report.verdicts if line.startswith("train/loss AUC"))

    assert "kaiming has a train/loss AUC 126.5 loss x steps smaller than pytorch_default" in verdict


def test_verdict_counts_runs_that_reached(report):
    verdict = next(line for line in report.verdicts if line.startswith("steps to val/acc >= 0.97"))

    assert "3 of 4 pytorch_default runs" in verdict


def test_notes_name_diverged_step(report):
    assert any("diverged at global step 120" in note for note in report.notes)


def test_group_by_seed(sweep):
    report = compare.compare_sweep(sweep, group_by="seed")

    assert [summary.value for summary in report.groups] == ["0", "1", "2", "3", "4", "5"]


def test_group_by_dotted_key(sweep):
    report = compare.compare_sweep(sweep, group_by="optimizer.lr")

    assert [summary.value for summary in report.groups] == ["0.05"]


def test_unknown_baseline_is_rejected(sweep):
    with pytest.raises(ValueError, match="xavier"):
        compare.compare_sweep(sweep, baseline="xavier")


def test_empty_folder_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="No run folder"):
        compare.compare_sweep(tmp_path)


# Reading runs.


def test_reader_ignores_other_tags(sweep):
    run = read_run(sweep / "init=kaiming,seed=0")

    assert run.scalars["val/acc"].values.tolist() == pytest.approx(float32(KAIMING_VAL_ACC[0]))


def test_reader_start_time_is_first_event(sweep):
    assert read_run(sweep / "init=kaiming,seed=0").start_time == START_TIME


def test_reader_falls_back_to_overrides(tmp_path):
    write_run(tmp_path / "run", "xavier", 7, [0.9], with_record=False)

    run = read_run(tmp_path / "run")

    assert run.lookup("init") == "xavier"
    assert run.status == "missing"


def test_run_without_record_is_incomplete(tmp_path):
    write_run(tmp_path / "sweep" / "a", "xavier", 7, [0.9], with_record=False)

    report = compare.compare_sweep(tmp_path / "sweep")

    assert len(report.groups[0].incomplete) == 1


def test_finder_skips_compare_output(sweep):
    (sweep / "compare" / "tensorboard" / "init=kaiming").mkdir(parents=True)
    (sweep / "compare" / COMPARE_MARKER).write_text("", encoding="utf-8")
    (sweep / "compare" / "tensorboard" / "init=kaiming" / "events.out.tfevents.0.host").write_bytes(b"")

    assert len(find_run_dirs(sweep)) == 9


# The command line and its files.


def run_cli(args: list[str], capsys) -> str:
    assert compare.main(args) == 0
    return capsys.readouterr().out


def test_cli_json_output(sweep, tmp_path, capsys):
    output = run_cli([str(sweep), "--format", "json", "--output", str(tmp_path / "out")], capsys)
    summary = json.loads(output)

    assert summary["groups"][0]["estimates"]["steps_to_val_acc_0.97"]["n"] == 3


def test_cli_csv_output(sweep, tmp_path, capsys):
    output = run_cli([str(sweep), "--format", "csv", "--output", str(tmp_path / "out")], capsys)
    rows = list(csv.DictReader(io.StringIO(output)))
    row = next(row for row in rows if row["kind"] == "summary" and row["group"] == "kaiming"
               and row["metric"] == "steps_to_val_acc_0.97")

    assert float(row["value"]) == pytest.approx((149 + 199 + 199) / 3)


def test_cli_table_shows_not_reached(sweep, tmp_path, capsys):
    output = run_cli([str(sweep), "--targets", "0.99", "--output", str(tmp_path / "out")], capsys)

    assert "not reached (0/3)" in output


def test_cli_writes_report_files(sweep, tmp_path, capsys):
    out = tmp_path / "out"
    run_cli([str(sweep), "--output", str(out)], capsys)

    for name in ("report.md", "curves.png", "summary.json", "summary.csv"):
        assert (out / name).is_file(), name


def test_cli_report_links_picture(sweep, tmp_path, capsys):
    out = tmp_path / "out"
    run_cli([str(sweep), "--output", str(out)], capsys)

    assert "](curves.png)" in (out / "report.md").read_text(encoding="utf-8")


def test_cli_png_is_an_image(sweep, tmp_path, capsys):
    out = tmp_path / "out"
    run_cli([str(sweep), "--output", str(out)], capsys)

    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_default_output_is_not_read_back(sweep, capsys):
    run_cli([str(sweep)], capsys)
    second = json.loads(run_cli([str(sweep), "--format", "json"], capsys))

    assert sum(item["completed"] for item in second["groups"]) == 7


def test_cli_rejects_missing_folder(tmp_path, capsys):
    assert compare.main([str(tmp_path / "absent")]) == compare.EXIT_INVALID_INPUT


def test_cli_rejects_output_at_logdir(sweep, capsys):
    assert compare.main([str(sweep), "--output", str(sweep)]) == compare.EXIT_INVALID_INPUT


def test_cli_rejects_foreign_tensorboard_folder(sweep, tmp_path, capsys):
    (tmp_path / "out" / "tensorboard").mkdir(parents=True)

    assert compare.main([str(sweep), "--output", str(tmp_path / "out")]) == compare.EXIT_INVALID_INPUT


def test_tensorboard_band_is_group_mean(sweep, tmp_path, capsys):
    out = tmp_path / "out"
    run_cli([str(sweep), "--output", str(out)], capsys)
    accumulator = event_accumulator.EventAccumulator(str(out / "tensorboard" / "init=kaiming"))
    accumulator.Reload()
    means = [event.value for event in accumulator.Scalars("compare/val/acc/mean")]

    expected = np.mean([float32(curve) for curve in KAIMING_VAL_ACC.values()], axis=0)
    assert means == pytest.approx(expected.tolist(), rel=1e-6)


def test_tensorboard_layout_has_margin_chart(sweep, tmp_path, capsys):
    out = tmp_path / "out"
    run_cli([str(sweep), "--output", str(out)], capsys)
    accumulator = event_accumulator.EventAccumulator(str(out / "tensorboard" / "init=kaiming"))
    accumulator.Reload()
    event = accumulator.Tensors("custom_scalars__config__")[0]
    layout = layout_pb2.Layout.FromString(tensor_util.make_ndarray(event.tensor_proto).item())
    chart = next(chart for category in layout.category for chart in category.chart if chart.title == "val/acc")

    assert chart.margin.series[0].value == "compare/val/acc/mean"
    assert chart.margin.series[0].lower == "compare/val/acc/lower"
    assert chart.margin.series[0].upper == "compare/val/acc/upper"


# End to end on real MNIST.


@pytest.mark.slow
def test_tiny_real_sweep(tmp_path):
    train = [
        sys.executable, "-m", "initbench.train", "-m", "init=pytorch_default,kaiming", "seed=0,1",
        "trainer.max_epochs=1", "+trainer.limit_train_batches=20", "+trainer.limit_val_batches=2",
        "+trainer.val_check_interval=10", "trainer.log_every_n_steps=5", "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false", f"log_dir={tmp_path}",
    ]
    subprocess.run(train, check=True, capture_output=True, timeout=300)
    sweep_dir = next(tmp_path.glob("sweep-*"))

    result = subprocess.run(
        [sys.executable, "-m", "initbench.compare", str(sweep_dir), "--format", "json", "--targets", "0.5"],
        check=True, capture_output=True, text=True, timeout=120,
    )
    summary = json.loads(result.stdout)

    assert [item["value"] for item in summary["groups"]] == ["kaiming", "pytorch_default"]
    assert [item["completed"] for item in summary["groups"]] == [2, 2]
    assert any(item["metric"] == "steps_to_val_acc_0.5" for item in summary["comparisons"])
    assert (sweep_dir / "compare" / "curves.png").is_file()


# The sweep preset.


def compose_preset():
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="initbench.configs", version_base="1.3"):
        return compose(config_name="train", overrides=["experiment=sqrt5_vs_kaiming"], return_hydra_config=True)


def test_preset_sweeps_both_inits():
    assert compose_preset().hydra.sweeper.params["init"] == "pytorch_default,kaiming"


def test_preset_sweeps_ten_seeds():
    assert compose_preset().hydra.sweeper.params["seed"] == "range(10)"


def test_preset_validates_every_50_steps():
    assert compose_preset().trainer.val_check_interval == 50
