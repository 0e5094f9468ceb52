"""Statistics of training curves across seeds: confidence intervals, Welch's t-test and convergence measures.

Every function here is pure: it takes numbers or arrays and returns numbers,
so the tests check each one against a hand computation or scipy.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import integrate, stats


@dataclass(frozen=True)
class Estimate:
    """Mean of ``n`` values with a two-sided t confidence interval ``[low, high]``.

    ``half_width`` and the bounds are NaN when ``n < 2``, and every field but
    ``n`` is NaN when ``n == 0``.
    """

    n: int
    mean: float
    std: float
    half_width: float
    low: float
    high: float


@dataclass(frozen=True)
class WelchResult:
    """Welch's t-test of ``mean(sample) - mean(baseline)``.

    ``low`` and ``high`` bound the confidence interval of the difference with
    the Welch-Satterthwaite degrees of freedom ``df``. ``p_value`` is two-sided.
    ``note`` explains why the test is NaN, when it is.
    """

    difference: float
    low: float
    high: float
    p_value: float
    df: float
    n: int
    n_baseline: int
    note: str = ""


@dataclass(frozen=True)
class Band:
    """Per-step mean of several curves with a lower and an upper bound and the number of curves at each step."""

    steps: np.ndarray
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    count: np.ndarray


BAND_KINDS = ("ci", "std", "range")


def mean_confidence_interval(values: Sequence[float], confidence: float = 0.95) -> Estimate:
    """Return the mean of ``values`` and its t-distribution confidence interval.

    The half width is ``t_{(1 + confidence) / 2, n - 1} * s / sqrt(n)`` with the
    sample standard deviation ``s`` (``ddof=1``).
    """
    sample = np.asarray(values, dtype=np.float64)
    n = len(sample)
    if n == 0:
        return Estimate(0, math.nan, math.nan, math.nan, math.nan, math.nan)

    mean = float(np.mean(sample))
    if n == 1:
        return Estimate(1, mean, math.nan, math.nan, math.nan, math.nan)

    std = float(np.std(sample, ddof=1))
    half_width = float(stats.t.ppf((1.0 + confidence) / 2.0, n - 1)) * std / math.sqrt(n)
    return Estimate(n, mean, std, half_width, mean - half_width, mean + half_width)


def welch_t_test(sample: Sequence[float], baseline: Sequence[float], confidence: float = 0.95) -> WelchResult:
    """Compare the means of two samples with Welch's unequal-variance t-test (``scipy.stats.ttest_ind``).

    The test needs at least two values in each sample and some spread in at
    least one of them. Otherwise the difference of the means is still
    returned, and the interval and p-value are NaN with a ``note`` that explains why.
    """
    first = np.asarray(sample, dtype=np.float64)
    second = np.asarray(baseline, dtype=np.float64)
    n, n_baseline = len(first), len(second)
    difference = float(np.mean(first) - np.mean(second)) if n and n_baseline else math.nan

    if n < 2 or n_baseline < 2:
        note = f"needs at least 2 values in each group, got {n} and {n_baseline}"
        return WelchResult(difference, math.nan, math.nan, math.nan, math.nan, n, n_baseline, note)
    if np.ptp(first) == 0 and np.ptp(second) == 0:
        note = "every value within each group is the same, so there is no spread to test against"
        return WelchResult(difference, math.nan, math.nan, math.nan, math.nan, n, n_baseline, note)

    with warnings.catch_warnings():
        # scipy warns about precision loss when the values of a group are nearly equal, but the result is still valid.
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(first, second, equal_var=False)
        interval = result.confidence_interval(confidence_level=confidence)
    return WelchResult(
        difference=difference,
        low=float(interval.low),
        high=float(interval.high),
        p_value=float(result.pvalue),
        df=float(result.df),
        n=n,
        n_baseline=n_baseline,
    )


def first_index_reaching(values: Sequence[float], target: float) -> int | None:
    """Return the index of the first value ``>= target``, or None when no value reaches it. NaN never does.

    The comparison is made in float32, the precision of TensorBoard scalars,
    so that an accuracy of exactly 0.9 logged as float32 (0.89999998) counts
    as reaching the target 0.9.
    """
    reached = np.flatnonzero(np.asarray(values, dtype=np.float32) >= np.float32(target))
    return int(reached[0]) if len(reached) else None


def steps_to_target(steps: Sequence[int], values: Sequence[float], target: float) -> int | None:
    """Return the global step of the first logged value ``>= target``, or None when none reaches it.

    The resolution is the logging interval: a run that crosses the target
    between two validations is credited with the step of the later one.
    """
    index = first_index_reaching(values, target)
    return None if index is None else int(steps[index])


def seconds_to_target(
    wall_times: Sequence[float], values: Sequence[float], target: float, start_time: float
) -> float | None:
    """Return the wall time of the first logged value ``>= target`` minus ``start_time``, or None."""
    index = first_index_reaching(values, target)
    return None if index is None else float(wall_times[index]) - start_time


def value_at_step(steps: Sequence[int], values: Sequence[float], step: int) -> float | None:
    """Return the last value logged at a global step ``<= step``.

    None when ``step`` lies before the first or after the last logged step,
    so that a run that stopped early gets no value rather than its final one.
    """
    step_array = np.asarray(steps)
    if len(step_array) == 0 or step < step_array[0] or step > step_array[-1]:
        return None
    index = int(np.searchsorted(step_array, step, side="right")) - 1
    return float(values[index])


def area_under_curve(steps: Sequence[int], values: Sequence[float], end_step: float | None = None) -> float | None:
    """Integrate ``values`` over ``steps`` with the trapezoid rule, from the first logged step to ``end_step``.

    The curve is linear between logged points, so an ``end_step`` between two
    points adds a partial trapezoid up to the interpolated value. None means
    the whole curve. The result is None when fewer than two points lie in the
    range, or when ``end_step`` lies after the last logged step.
    """
    step_array = np.asarray(steps, dtype=np.float64)
    value_array = np.asarray(values, dtype=np.float64)
    if len(step_array) < 2:
        return None
    if end_step is None:
        end_step = float(step_array[-1])
    if end_step > step_array[-1] or end_step <= step_array[0]:
        return None

    inside = step_array <= end_step
    clipped_steps = step_array[inside]
    clipped_values = value_array[inside]
    if clipped_steps[-1] < end_step:
        end_value = float(np.interp(end_step, step_array, value_array))
        clipped_steps = np.append(clipped_steps, end_step)
        clipped_values = np.append(clipped_values, end_value)
    return float(integrate.trapezoid(clipped_values, clipped_steps))


def aggregate_curves(
    curves: Sequence[tuple[Sequence[int], Sequence[float]]], band: str = "ci", confidence: float = 0.95
) -> Band:
    """Average curves step by step over the runs that logged each step.

    Args:
        curves: one ``(steps, values)`` pair per run.
        band: ``ci`` for the t confidence interval of the mean, ``std`` for
            mean +- one sample standard deviation, ``range`` for the minimum
            and maximum. The bounds are NaN at a step with fewer than two
            values, except for ``range``.
        confidence: confidence level of the ``ci`` band.
    """
    if band not in BAND_KINDS:
        raise ValueError(f"Invalid band {band!r}; choose one of {', '.join(BAND_KINDS)}")

    values_by_step: dict[int, list[float]] = {}
    for steps, values in curves:
        for step, value in zip(steps, values):
            values_by_step.setdefault(int(step), []).append(float(value))

    all_steps = np.array(sorted(values_by_step), dtype=np.int64)
    mean, lower, upper, count = (np.full(len(all_steps), math.nan) for _ in range(4))
    for index, step in enumerate(all_steps):
        sample = values_by_step[int(step)]
        estimate = mean_confidence_interval(sample, confidence)
        mean[index] = estimate.mean
        count[index] = estimate.n
        if band == "ci":
            lower[index], upper[index] = estimate.low, estimate.high
        elif band == "std":
            lower[index], upper[index] = estimate.mean - estimate.std, estimate.mean + estimate.std
        else:
            lower[index], upper[index] = min(sample), max(sample)
    return Band(all_steps, mean, lower, upper, count.astype(np.int64))
