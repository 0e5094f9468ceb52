"""Compare how fast and how far the runs of a sweep train: ``python -m initbench.compare LOGDIR``.

The command reads the TensorBoard event files and ``run.json`` of every run
under LOGDIR and groups the runs by one hyperparameter (``init`` by default).
It prints a table of mean +- confidence interval per group and tests each
group against a baseline group. It also writes a Markdown report, a PNG of
the mean curves and TensorBoard summary runs with a custom-scalars layout.
Nothing is trained again.

Definitions, for every run whose ``run.json`` status is ``completed``:

- final val/acc and val/loss: the last logged value of each tag.
- steps to target: the global step of the first logged ``val/acc >= target``,
  the step that Lightning logged the validation at (the last training step
  before it). The resolution is the validation interval. A run that never
  reaches the target is counted as not reached, left out of the mean and of
  the t-test, and the number of runs that reached it is shown.
- seconds to target: the wall time of that ``val/acc`` event minus the wall
  time of the run's first event.
- train/loss at step S: the last ``train/loss`` logged at a global step
  ``<= S``; missing when S lies outside the logged steps.
- train/loss AUC: trapezoid integral of ``train/loss`` over the global step,
  from the first logged step to one end step shared by all runs (by default
  the last logged step of the shortest run), in loss x steps.

Runs with status ``diverged`` are counted per group and left out of every
mean and test. Runs with any other status (``running``, ``interrupted``,
``failed``) or without ``run.json`` are listed as incomplete and left out too.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from initbench import compare_report
from initbench.convergence_stats import (
    BAND_KINDS,
    Estimate,
    WelchResult,
    area_under_curve,
    mean_confidence_interval,
    seconds_to_target,
    steps_to_target,
    value_at_step,
    welch_t_test,
)
from initbench.run_reader import TRAIN_LOSS, VAL_ACC, VAL_LOSS, Run, read_runs

log = logging.getLogger(__name__)

DEFAULT_TARGETS = (0.90, 0.95, 0.97)
DEFAULT_LOSS_STEPS = (50, 100, 200, 500, 1000)
DEFAULT_BASELINES = {"init": "pytorch_default"}
MISSING_GROUP = "(not recorded)"

EXIT_INVALID_INPUT = 2


@dataclass(frozen=True)
class Metric:
    """A per-run number that is averaged per group.

    Attributes:
        name: key in the JSON and CSV output, such as ``steps_to_val_acc_0.97``.
        label: row label in the table.
        number_format: format spec of the mean and its interval.
        unit: unit word after a difference in a verdict, or empty.
        smaller, larger: how a verdict describes a negative and a positive difference.
        counts_reached: whether a missing value means "not reached" rather than "not logged".
        verb_phrase: what a group does in a verdict, such as ``reaches val/acc >= 0.97``.
    """

    name: str
    label: str
    number_format: str
    unit: str = ""
    smaller: str = "lower"
    larger: str = "higher"
    counts_reached: bool = False
    verb_phrase: str = ""


@dataclass
class RunMetrics:
    """One analysed run, its group value and its value of every metric (None when missing)."""

    run: Run
    group: str
    values: dict[str, float | None]


@dataclass
class GroupSummary:
    """The runs of one group value and the estimate of every metric over its completed runs."""

    value: str
    analysed: list[RunMetrics]
    diverged: list[Run]
    incomplete: list[Run]
    estimates: dict[str, Estimate] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return len(self.analysed) + len(self.diverged) + len(self.incomplete)


@dataclass
class PairComparison:
    """Welch's t-test of one metric between a group and the baseline group."""

    group: str
    baseline: str
    metric: Metric
    result: WelchResult


@dataclass
class ComparisonReport:
    """Everything that ``compare`` prints and writes for one log folder."""

    logdir: Path
    group_by: str
    baseline: str | None
    confidence: float
    targets: tuple[float, ...]
    loss_steps: tuple[int, ...]
    auc_end_step: float | None
    metrics: list[Metric]
    groups: list[GroupSummary]
    comparisons: list[PairComparison]
    verdicts: list[str]
    notes: list[str]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the process exit status."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tensorboard").setLevel(logging.WARNING)  # it logs one INFO line per event file read
    try:
        report = compare_sweep(
            args.logdir,
            group_by=args.group_by,
            targets=args.targets,
            loss_steps=args.loss_steps,
            baseline=args.baseline,
            confidence=args.confidence,
            auc_end_step=args.auc_end_step,
        )
    except (FileNotFoundError, ValueError) as error:
        log.error("%s", error)
        return EXIT_INVALID_INPUT

    output = Path(args.output) if args.output else Path(args.logdir) / "compare"
    command = shlex.join(["python", "-m", "initbench.compare", *(sys.argv[1:] if argv is None else argv)])
    try:
        written = compare_report.write_outputs(report, output, band=args.band, command=command)
    except (FileExistsError, ValueError) as error:
        log.error("%s", error)
        return EXIT_INVALID_INPUT

    print(compare_report.format_report(report, args.format))
    log.info("Wrote %s", ", ".join(str(path) for path in written))
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m initbench.compare",
        description="Compare convergence across the runs under LOGDIR, such as a Hydra sweep folder, "
        "from their TensorBoard event files and run.json.",
    )
    parser.add_argument("logdir", help="folder searched recursively for run folders with TensorBoard event files")
    parser.add_argument("--group-by", default="init",
                        help="hyperparameter that groups the runs, as in run.json (optimizer/lr) or Hydra "
                        "(optimizer.lr); default: init")
    parser.add_argument("--baseline", default=None,
                        help="group value that every other group is tested against; default: pytorch_default "
                        "when grouping by init, else the first group in sort order")
    parser.add_argument("--targets", type=float, nargs="+", default=list(DEFAULT_TARGETS),
                        help="val/acc thresholds for steps and seconds to target, as fractions; "
                        "default: %(default)s")
    parser.add_argument("--loss-steps", type=int, nargs="+", default=list(DEFAULT_LOSS_STEPS),
                        help="global steps at which train/loss is reported; default: %(default)s")
    parser.add_argument("--auc-end-step", type=float, default=None,
                        help="last global step of the train/loss area; default: the last logged step "
                        "of the shortest run")
    parser.add_argument("--confidence", type=float, default=0.95,
                        help="confidence level of the intervals; the tests use 1 - confidence as the "
                        "significance level; default: %(default)s")
    parser.add_argument("--band", choices=BAND_KINDS, default="ci",
                        help="band around the mean curves in the PNG and TensorBoard: ci (confidence "
                        "interval of the mean), std (+- one standard deviation) or range (min to max); "
                        "default: %(default)s")
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table",
                        help="what is printed on standard output; default: %(default)s")
    parser.add_argument("--output", default=None,
                        help="folder for report.md, curves.png, summary.json, summary.csv and the "
                        "TensorBoard summary runs; default: LOGDIR/compare")
    args = parser.parse_args(argv)

    if not 0.0 < args.confidence < 1.0:
        parser.error(f"--confidence must lie between 0 and 1, got {args.confidence}")
    for target in args.targets:
        if not 0.0 < target <= 1.0:
            parser.error(f"--targets are val/acc fractions in (0, 1], got {target}")
    return args


def compare_sweep(
    logdir: str | Path,
    group_by: str = "init",
    targets: Sequence[float] = DEFAULT_TARGETS,
    loss_steps: Sequence[int] = DEFAULT_LOSS_STEPS,
    baseline: str | None = None,
    confidence: float = 0.95,
    auc_end_step: float | None = None,
) -> ComparisonReport:
    """Read every run under ``logdir``, summarize each group and test each group against the baseline.

    Raises:
        FileNotFoundError: ``logdir`` does not exist.
        ValueError: ``logdir`` contains no run, or ``baseline`` is not a group value.
    """
    runs = read_runs(logdir)
    if not runs:
        raise ValueError(f"No run folder with TensorBoard event files found under {logdir}; "
                         "pass a sweep folder such as lightning_logs/sweep-<time>-<id>")

    targets = tuple(sorted(targets))
    loss_steps = tuple(sorted(loss_steps))
    grouped = group_runs(runs, group_by)
    if MISSING_GROUP in grouped:
        log.warning("%d of %d runs record no value for %r in run.json or .hydra/overrides.yaml, so they form "
                    "the group %s; check the spelling of --group-by", len(grouped[MISSING_GROUP]), len(runs),
                    group_by, MISSING_GROUP)
    finished = [run for run in runs if run.status == "completed"]
    if auc_end_step is None:
        auc_end_step = shared_end_step(finished, TRAIN_LOSS)
    metrics = define_metrics(targets, loss_steps, auc_end_step)

    groups = []
    for value, members in grouped.items():
        measured = [RunMetrics(run, value, measure_run(run, targets, loss_steps, auc_end_step))
                    for run in members if run.status == "completed"]
        groups.append(summarize_group(value, members, measured, metrics, confidence))

    baseline = choose_baseline(list(grouped), group_by, baseline)
    comparisons = compare_groups(groups, baseline, metrics, confidence)
    verdicts = [describe_comparison(comparison, groups, confidence) for comparison in comparisons]
    return ComparisonReport(
        logdir=Path(logdir),
        group_by=group_by,
        baseline=baseline,
        confidence=confidence,
        targets=targets,
        loss_steps=loss_steps,
        auc_end_step=auc_end_step,
        metrics=metrics,
        groups=groups,
        comparisons=comparisons,
        verdicts=verdicts,
        notes=describe_excluded_runs(groups),
    )


def group_runs(runs: Sequence[Run], key: str) -> dict[str, list[Run]]:
    """Group runs by the value of hyperparameter ``key``, ordered by value (numerically where possible)."""
    grouped: dict[str, list[Run]] = {}
    for run in runs:
        value = run.lookup(key)
        grouped.setdefault(MISSING_GROUP if value is None else str(value), []).append(run)
    return dict(sorted(grouped.items(), key=lambda item: sort_key(item[0])))


def sort_key(value: str) -> tuple[int, float, str]:
    """Sort numbers numerically before text, so seeds 2 and 10 come in that order."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def choose_baseline(values: Sequence[str], group_by: str, requested: str | None) -> str | None:
    """Return the requested baseline, the default baseline of ``group_by`` when present, else the first value."""
    if requested is not None:
        if requested not in values:
            raise ValueError(f"Baseline {requested!r} is not a value of {group_by!r}; "
                             f"the runs have {', '.join(values)}")
        return requested
    default = DEFAULT_BASELINES.get(group_by)
    if default in values:
        return default
    return values[0] if values else None


def shared_end_step(runs: Sequence[Run], tag: str) -> float | None:
    """Return the smallest last logged step of ``tag`` over ``runs``, or None when no run logged it."""
    last_steps = [int(run.scalars[tag].steps[-1]) for run in runs if tag in run.scalars and len(run.scalars[tag])]
    return float(min(last_steps)) if last_steps else None


def define_metrics(targets: Sequence[float], loss_steps: Sequence[int], auc_end_step: float | None) -> list[Metric]:
    """List the metrics of the table in display order."""
    metrics = [
        Metric("final_val_acc", "final val/acc", ".4f", verb_phrase="ends with a final val/acc"),
        Metric("final_val_loss", "final val/loss", ".4f", verb_phrase="ends with a final val/loss"),
    ]
    for target in targets:
        metrics.append(Metric(f"steps_to_val_acc_{target:g}", f"steps to val/acc >= {target:g}", ".0f",
                              unit="steps", smaller="earlier", larger="later", counts_reached=True,
                              verb_phrase=f"reaches val/acc >= {target:g}"))
    for target in targets:
        metrics.append(Metric(f"seconds_to_val_acc_{target:g}", f"seconds to val/acc >= {target:g}", ".1f",
                              unit="s", smaller="earlier", larger="later", counts_reached=True))
    for step in loss_steps:
        metrics.append(Metric(f"train_loss_at_step_{step}", f"train/loss at step {step}", ".4f"))
    end = "?" if auc_end_step is None else f"{auc_end_step:g}"
    metrics.append(Metric("train_loss_auc", f"train/loss AUC to step {end}", ".1f", unit="loss x steps",
                          smaller="smaller", larger="larger", verb_phrase="has a train/loss AUC"))
    return metrics


def measure_run(
    run: Run, targets: Sequence[float], loss_steps: Sequence[int], auc_end_step: float | None
) -> dict[str, float | None]:
    """Compute every metric of one run from its scalars, as the module docstring defines them."""
    values: dict[str, float | None] = {}
    val_acc = run.scalars.get(VAL_ACC)
    val_loss = run.scalars.get(VAL_LOSS)
    train_loss = run.scalars.get(TRAIN_LOSS)

    values["final_val_acc"] = float(val_acc.values[-1]) if val_acc is not None and len(val_acc) else None
    values["final_val_loss"] = float(val_loss.values[-1]) if val_loss is not None and len(val_loss) else None

    for target in targets:
        steps = seconds = None
        if val_acc is not None:
            steps = steps_to_target(val_acc.steps, val_acc.values, target)
            if run.start_time is not None:
                seconds = seconds_to_target(val_acc.wall_times, val_acc.values, target, run.start_time)
        values[f"steps_to_val_acc_{target:g}"] = None if steps is None else float(steps)
        values[f"seconds_to_val_acc_{target:g}"] = seconds

    for step in loss_steps:
        loss = None if train_loss is None else value_at_step(train_loss.steps, train_loss.values, step)
        values[f"train_loss_at_step_{step}"] = loss

    auc = None
    if train_loss is not None and auc_end_step is not None:
        auc = area_under_curve(train_loss.steps, train_loss.values, auc_end_step)
    values["train_loss_auc"] = auc
    return values


def summarize_group(
    value: str, members: Sequence[Run], measured: Sequence[RunMetrics], metrics: Sequence[Metric], confidence: float
) -> GroupSummary:
    """Estimate each metric over the completed runs of one group, leaving out missing values."""
    summary = GroupSummary(
        value=value,
        analysed=list(measured),
        diverged=[run for run in members if run.status == "diverged"],
        incomplete=[run for run in members if not run.is_finished],
    )
    for metric in metrics:
        sample = metric_sample(summary, metric.name)
        summary.estimates[metric.name] = mean_confidence_interval(sample, confidence)
    return summary


def metric_sample(group: GroupSummary, name: str) -> list[float]:
    """Return the non-missing values of metric ``name`` over the analysed runs of ``group``."""
    return [item.values[name] for item in group.analysed if item.values.get(name) is not None]


def compare_groups(
    groups: Sequence[GroupSummary], baseline: str | None, metrics: Sequence[Metric], confidence: float
) -> list[PairComparison]:
    """Test every group against the baseline on final val/acc and val/loss, steps to each target and the loss AUC."""
    if baseline is None:
        return []
    reference = next(group for group in groups if group.value == baseline)
    tested = [metric for metric in metrics if not metric.name.startswith(("seconds_to_", "train_loss_at_step_"))]

    comparisons = []
    for group in groups:
        if group.value == baseline:
            continue
        for metric in tested:
            result = welch_t_test(metric_sample(group, metric.name), metric_sample(reference, metric.name), confidence)
            comparisons.append(PairComparison(group.value, baseline, metric, result))
    return comparisons


def describe_comparison(comparison: PairComparison, groups: Sequence[GroupSummary], confidence: float) -> str:
    """Write one sentence stating whether and by how much a group differs from the baseline on one metric."""
    metric, result = comparison.metric, comparison.result
    group, baseline = comparison.group, comparison.baseline
    number = metric.number_format
    unit = f" {metric.unit}" if metric.unit else ""
    counts = run_counts(comparison, groups)

    if result.note:
        if result.n == 0 or result.n_baseline == 0:
            return f"{metric.label}: no comparison of {group} with {baseline}, because {result.note}{counts}."
        return (f"{metric.label}: {group} - {baseline} = {result.difference:+{number}}{unit}, with no t-test "
                f"because {result.note}{counts}.")

    level = round(100 * confidence)
    alpha = 1.0 - confidence
    interval = (f"{group} - {baseline} = {result.difference:+{number}}{unit}, {level}% CI "
                f"[{result.low:{number}}, {result.high:{number}}]{unit}, Welch p = {result.p_value:.3g}{counts}")
    if result.p_value < alpha:
        direction = metric.smaller if result.difference < 0 else metric.larger
        return (f"{metric.label}: {group} {metric.verb_phrase} {abs(result.difference):{number}}{unit} {direction} "
                f"than {baseline} ({interval}).")
    return (f"{metric.label}: no significant difference between {group} and {baseline} at the "
            f"{100 * alpha:g}% level ({interval}).")


def run_counts(comparison: PairComparison, groups: Sequence[GroupSummary]) -> str:
    """Return the clause that counts, for a target metric, the runs that reached it and so enter the test.

    Other metrics get an empty string.
    """
    if not comparison.metric.counts_reached:
        return ""
    totals = {group.value: len(group.analysed) for group in groups}
    result = comparison.result
    return (f"; {result.n} of {totals[comparison.group]} {comparison.group} runs and {result.n_baseline} of "
            f"{totals[comparison.baseline]} {comparison.baseline} runs reached it, and only those are tested")


def describe_excluded_runs(groups: Sequence[GroupSummary]) -> list[str]:
    """List the diverged and incomplete runs that the means leave out, one line per run."""
    notes = []
    for group in groups:
        for run in group.diverged:
            step = "an unknown step" if run.diverged_step is None else f"global step {run.diverged_step}"
            notes.append(f"{group.value}: {run.name} diverged at {step} and is left out of every mean and test.")
        for run in group.incomplete:
            notes.append(f"{group.value}: {run.name} is incomplete (status {run.status}) and is left out "
                         "of every mean and test.")
    return notes


if __name__ == "__main__":
    sys.exit(main())
