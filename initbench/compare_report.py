"""Output of ``initbench.compare``: the text table, Markdown, JSON and CSV, the PNG and the TensorBoard summary runs."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from matplotlib.figure import Figure

from initbench.convergence_stats import Band, Estimate, aggregate_curves
from initbench.run_reader import COMPARE_MARKER, TRAIN_LOSS, VAL_ACC

if TYPE_CHECKING:
    from initbench.compare import ComparisonReport, GroupSummary, Metric

CURVE_TAGS = ("train/loss", "train/acc", "val/loss", "val/acc")
SUMMARY_TAG_PREFIX = "compare"
TENSORBOARD_FOLDER = "tensorboard"


def write_outputs(report: ComparisonReport, output: Path, band: str, command: str) -> list[Path]:
    """Write report.md, curves.png, summary.json, summary.csv and the TensorBoard summary runs into ``output``.

    ``output`` is marked with :data:`~initbench.run_reader.COMPARE_MARKER`, so
    that a later ``compare`` of the same log folder does not read these event
    files as runs. Its ``tensorboard`` folder is replaced on every call.

    Raises:
        ValueError: ``output`` is the log folder or a folder above it.
        FileExistsError: ``output`` has a ``tensorboard`` folder that an earlier call did not write.
    """
    logdir = report.logdir.resolve()
    resolved = output.resolve()
    if resolved == logdir or resolved in logdir.parents:
        raise ValueError(f"--output {output} must not be the log folder {report.logdir} or a folder above it")
    tensorboard_dir = output / TENSORBOARD_FOLDER
    if tensorboard_dir.exists() and not (output / COMPARE_MARKER).exists():
        raise FileExistsError(f"{tensorboard_dir} exists and was not written by initbench.compare; "
                              "choose another --output folder")

    output.mkdir(parents=True, exist_ok=True)
    (output / COMPARE_MARKER).write_text("Written by initbench.compare; not a run folder.\n", encoding="utf-8")
    if tensorboard_dir.exists():
        shutil.rmtree(tensorboard_dir)

    paths = {
        "png": output / "curves.png",
        "markdown": output / "report.md",
        "json": output / "summary.json",
        "csv": output / "summary.csv",
    }
    plot_curves(report, paths["png"], band)
    paths["markdown"].write_text(format_markdown(report, command, paths["png"].name, band), encoding="utf-8")
    paths["json"].write_text(format_json(report) + "\n", encoding="utf-8")
    paths["csv"].write_text(format_csv(report), encoding="utf-8")
    write_tensorboard_bands(report, tensorboard_dir, band)
    return [*paths.values(), tensorboard_dir]


def format_report(report: ComparisonReport, output_format: str) -> str:
    """Return the report as ``table`` (plain text), ``json`` or ``csv``."""
    if output_format == "json":
        return format_json(report)
    if output_format == "csv":
        return format_csv(report).rstrip("\n")
    if output_format == "table":
        return format_text(report)
    raise ValueError(f"Invalid output format {output_format!r}; choose table, json or csv")


# Tables shared by the text and the Markdown output.


def summary_rows(report: ComparisonReport) -> list[list[str]]:
    """Return the summary table, one row per metric and one column per group, with its header row first."""
    header = ["metric"] + [group.value for group in report.groups]
    rows = [header, ["runs completed / diverged / incomplete"]
            + [f"{len(group.analysed)} / {len(group.diverged)} / {len(group.incomplete)}" for group in report.groups]]
    for metric in report.metrics:
        rows.append([metric.label] + [format_estimate(group.estimates[metric.name], metric, len(group.analysed))
                                      for group in report.groups])
    return rows


def format_estimate(estimate: Estimate, metric: Metric, analysed: int) -> str:
    """Format ``mean ± half width``, with the count of runs that reached a target or had a value."""
    if estimate.n == 0:
        return f"not reached (0/{analysed})" if metric.counts_reached and analysed else "n/a"

    number = metric.number_format
    text = f"{estimate.mean:{number}}"
    if estimate.n >= 2:
        text += f" ± {estimate.half_width:{number}}"
    if metric.counts_reached:
        text += f" ({estimate.n}/{analysed})"
    elif estimate.n < analysed or estimate.n == 1:
        text += f" (n={estimate.n})"
    return text


def comparison_rows(report: ComparisonReport) -> list[list[str]]:
    """Return one row per Welch t-test, with its header row first."""
    level = f"{round(100 * report.confidence)}% CI"
    rows = [["metric", "group", "difference", level, "Welch p", "runs tested"]]
    for comparison in report.comparisons:
        result, number = comparison.result, comparison.metric.number_format
        interval = "n/a" if math.isnan(result.low) else f"[{result.low:{number}}, {result.high:{number}}]"
        p_value = "n/a" if math.isnan(result.p_value) else f"{result.p_value:.3g}"
        difference = "n/a" if math.isnan(result.difference) else f"{result.difference:+{number}}"
        rows.append([comparison.metric.label, comparison.group, difference, interval, p_value,
                     f"{result.n} vs {result.n_baseline}"])
    return rows


def overview(report: ComparisonReport) -> str:
    """Return one paragraph on what was compared and how the intervals are computed."""
    groups = report.groups
    total = sum(group.total for group in groups)
    completed = sum(len(group.analysed) for group in groups)
    diverged = sum(len(group.diverged) for group in groups)
    incomplete = sum(len(group.incomplete) for group in groups)
    level = round(100 * report.confidence)
    return (f"{total} runs grouped by {report.group_by}: {completed} completed, {diverged} diverged, "
            f"{incomplete} incomplete. Means are over the completed runs of each group, shown as mean ± half "
            f"width of the {level}% t confidence interval. Diverged and incomplete runs are left out of every "
            "mean and test. Steps and seconds to a target count only the runs that reached it, shown as "
            "(reached/completed).")


# Plain text.


def format_text(report: ComparisonReport) -> str:
    lines = [f"initbench.compare: {report.logdir}", overview(report), "", *align_columns(summary_rows(report))]
    if report.comparisons:
        lines += ["", f"Welch t-tests, difference = group - {report.baseline}:",
                  *align_columns(comparison_rows(report))]
    if report.verdicts:
        lines += ["", "Verdict:", *(f"- {verdict}" for verdict in report.verdicts)]
    if report.notes:
        lines += ["", "Excluded runs:", *(f"- {note}" for note in report.notes)]
    return "\n".join(lines)


def align_columns(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


# Markdown.


def format_markdown(report: ComparisonReport, command: str, image_name: str, band: str) -> str:
    lines = [
        "# Convergence comparison",
        "",
        f"Command: `{command}`",
        "",
        f"Log folder: `{report.logdir}`. {overview(report)}",
        "",
        "## Summary",
        "",
        *markdown_table(summary_rows(report)),
    ]
    if report.comparisons:
        lines += ["", f"## Welch t-tests against {report.baseline}", "",
                  f"The difference is group - {report.baseline}. Negative steps mean that the group reaches "
                  "the target earlier.", "", *markdown_table(comparison_rows(report))]
    if report.verdicts:
        lines += ["", "## Verdict", "", *(f"- {verdict}" for verdict in report.verdicts)]
    if report.notes:
        lines += ["", "## Excluded runs", "", *(f"- {note}" for note in report.notes)]
    lines += [
        "",
        "## Curves",
        "",
        f"Mean over the completed runs of each group, with a band of {describe_band(band, report.confidence)}.",
        "",
        f"![Mean train/loss and val/acc against the global step]({image_name})",
        "",
        "## Runs",
        "",
        *markdown_table(run_rows(report)),
        "",
    ]
    return "\n".join(lines)


def markdown_table(rows: Sequence[Sequence[str]]) -> list[str]:
    escaped = [[cell.replace("|", "\\|") for cell in row] for row in rows]
    lines = ["| " + " | ".join(escaped[0]) + " |", "|" + "---|" * len(escaped[0])]
    lines += ["| " + " | ".join(row) + " |" for row in escaped[1:]]
    return lines


def run_rows(report: ComparisonReport) -> list[list[str]]:
    """Return one row per run with its status, final val/acc and steps to each target."""
    header = ["run", report.group_by, "status", "final val/acc"] + [f"steps to {target:g}" for target in report.targets]
    rows = [header]
    for group in report.groups:
        for item in group.analysed:
            final = item.values["final_val_acc"]
            steps = [item.values[f"steps_to_val_acc_{target:g}"] for target in report.targets]
            rows.append([item.run.name, group.value, item.run.status, "n/a" if final is None else f"{final:.4f}",
                         *("not reached" if step is None else f"{step:.0f}" for step in steps)])
        for run in [*group.diverged, *group.incomplete]:
            status = run.status if run.diverged_step is None else f"{run.status} at step {run.diverged_step}"
            rows.append([run.name, group.value, status, "excluded", *("excluded" for _ in report.targets)])
    return rows


# JSON and CSV.


def format_json(report: ComparisonReport) -> str:
    return json.dumps(report_to_dict(report), indent=2, allow_nan=False)


def report_to_dict(report: ComparisonReport) -> dict[str, Any]:
    """Convert the report to plain JSON types, with null for NaN."""
    return {
        "logdir": str(report.logdir),
        "group_by": report.group_by,
        "baseline": report.baseline,
        "confidence": report.confidence,
        "targets": list(report.targets),
        "loss_steps": list(report.loss_steps),
        "auc_end_step": report.auc_end_step,
        "metrics": {metric.name: metric.label for metric in report.metrics},
        "groups": [group_to_dict(group) for group in report.groups],
        "comparisons": [
            {
                "group": comparison.group,
                "baseline": comparison.baseline,
                "metric": comparison.metric.name,
                "difference": json_number(comparison.result.difference),
                "low": json_number(comparison.result.low),
                "high": json_number(comparison.result.high),
                "p_value": json_number(comparison.result.p_value),
                "df": json_number(comparison.result.df),
                "n": comparison.result.n,
                "n_baseline": comparison.result.n_baseline,
                "note": comparison.result.note,
            }
            for comparison in report.comparisons
        ],
        "verdicts": report.verdicts,
        "excluded": report.notes,
    }


def group_to_dict(group: GroupSummary) -> dict[str, Any]:
    return {
        "value": group.value,
        "completed": len(group.analysed),
        "diverged": [{"run": run.name, "diverged_step": run.diverged_step} for run in group.diverged],
        "incomplete": [{"run": run.name, "status": run.status} for run in group.incomplete],
        "estimates": {
            name: {key: json_number(getattr(estimate, key)) for key in ("n", "mean", "std", "half_width", "low", "high")}
            for name, estimate in group.estimates.items()
        },
        "runs": [
            {"run": item.run.name, "status": item.run.status,
             "values": {name: json_number(value) for name, value in item.values.items()}}
            for item in group.analysed
        ],
    }


def json_number(value: float | int | None) -> float | int | None:
    if value is None or isinstance(value, int):
        return value
    return None if math.isnan(value) else float(value)


CSV_COLUMNS = ["kind", "group", "baseline", "metric", "n", "n_baseline", "value", "low", "high", "p_value", "note"]


def format_csv(report: ComparisonReport) -> str:
    """Return one CSV row per group and metric (kind ``summary``, value = mean) and per test (kind ``comparison``, value = difference)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for group in report.groups:
        for metric in report.metrics:
            estimate = group.estimates[metric.name]
            writer.writerow({"kind": "summary", "group": group.value, "metric": metric.name, "n": estimate.n,
                             "value": csv_number(estimate.mean), "low": csv_number(estimate.low),
                             "high": csv_number(estimate.high)})
    for comparison in report.comparisons:
        result = comparison.result
        writer.writerow({"kind": "comparison", "group": comparison.group, "baseline": comparison.baseline,
                         "metric": comparison.metric.name, "n": result.n, "n_baseline": result.n_baseline,
                         "value": csv_number(result.difference), "low": csv_number(result.low),
                         "high": csv_number(result.high), "p_value": csv_number(result.p_value),
                         "note": result.note})
    return buffer.getvalue()


def csv_number(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))


# Curves: the PNG and the TensorBoard summary runs.


def group_bands(group: GroupSummary, tag: str, band: str, confidence: float) -> Band | None:
    """Aggregate ``tag`` over the completed runs of ``group``, or return None when no run logged it."""
    curves = [(item.run.scalars[tag].steps, item.run.scalars[tag].values)
              for item in group.analysed if tag in item.run.scalars]
    if not curves:
        return None
    return aggregate_curves(curves, band=band, confidence=confidence)


def describe_band(band: str, confidence: float) -> str:
    if band == "ci":
        return f"the {round(100 * confidence)}% t confidence interval of the mean"
    if band == "std":
        return "plus and minus one sample standard deviation"
    return "the minimum to the maximum over the runs"


def plot_curves(report: ComparisonReport, path: Path, band: str) -> None:
    """Plot mean train/loss and val/acc against the global step, one line with a band per group."""
    figure = Figure(figsize=(12, 4.5), layout="constrained")
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for index, group in enumerate(report.groups):
        color = f"C{index % 10}"
        label = f"{group.value} (n={len(group.analysed)})"
        for axes, tag in ((loss_axes, TRAIN_LOSS), (accuracy_axes, VAL_ACC)):
            curve = group_bands(group, tag, band, report.confidence)
            if curve is None:
                continue
            axes.plot(curve.steps, curve.mean, color=color, label=label)
            axes.fill_between(curve.steps, curve.lower, curve.upper, color=color, alpha=0.25, linewidth=0)

    loss_axes.set(title=f"mean {TRAIN_LOSS}", xlabel="global step", ylabel=TRAIN_LOSS, yscale="log")
    accuracy_axes.set(title=f"mean {VAL_ACC}", xlabel="global step", ylabel=VAL_ACC)
    bottom = max(0.0, min(report.targets) - 0.05)
    accuracy_axes.set_ylim(bottom, 1.0)
    for target in report.targets:
        accuracy_axes.axhline(target, color="grey", linestyle=":", linewidth=0.8)
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
        axes.legend(title=report.group_by)
    figure.suptitle(f"Band: {describe_band(band, report.confidence)}; val/acc axis starts at {bottom:g}")
    figure.savefig(path, dpi=110)


def write_tensorboard_bands(report: ComparisonReport, folder: Path, band: str) -> None:
    """Write one TensorBoard run per group with ``compare/<tag>/mean``, ``/lower`` and ``/upper``.

    The first group's run also contains a custom-scalars layout with one Margin
    chart per tag, so the Custom Scalars dashboard draws one line per group
    with its band. Where fewer than two runs logged a step, the bounds equal the mean.
    """
    from torch.utils.tensorboard import SummaryWriter  # torch loads only when TensorBoard output is written

    layout = {
        f"Mean over completed runs per {report.group_by}, band: {describe_band(band, report.confidence)}": {
            tag: ["Margin", [f"{SUMMARY_TAG_PREFIX}/{tag}/{part}" for part in ("mean", "lower", "upper")]]
            for tag in CURVE_TAGS
        }
    }
    for index, group in enumerate(report.groups):
        writer = SummaryWriter(log_dir=str(folder / safe_folder_name(f"{report.group_by}={group.value}")))
        try:
            if index == 0:
                writer.add_custom_scalars(layout)
            for tag in CURVE_TAGS:
                curve = group_bands(group, tag, band, report.confidence)
                if curve is None:
                    continue
                for step, mean, lower, upper in zip(curve.steps, curve.mean, curve.lower, curve.upper):
                    lower = mean if math.isnan(lower) else lower
                    upper = mean if math.isnan(upper) else upper
                    for part, value in (("mean", mean), ("lower", lower), ("upper", upper)):
                        writer.add_scalar(f"{SUMMARY_TAG_PREFIX}/{tag}/{part}", value, global_step=int(step))
        finally:
            writer.close()


def safe_folder_name(name: str) -> str:
    """Replace every character other than letters, digits and ``._=+,-`` with ``_``."""
    return re.sub(r"[^\w.=+,-]", "_", name)
