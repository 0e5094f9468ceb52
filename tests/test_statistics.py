"""Tests of the pure statistic functions against numpy on the whole tensor."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from initbench.statistics import (
    COUNT,
    M2,
    MEAN,
    NEAR_ZERO_COUNT,
    activation_moments,
    adaptive_histogram,
    colorful_dimension,
    count_indices,
    histogram_edges,
    merge_moments,
    population_std,
    rebin_histogram,
    summarize_moments,
    update_to_weight_ratio,
)


@pytest.fixture
def activations() -> torch.Tensor:
    """A conv-shaped batch with a nonzero mean, so that mean and std errors both show."""
    generator = torch.Generator().manual_seed(0)
    return torch.randn(16, 8, 14, 14, generator=generator) * 1.7 + 0.4


def test_moments_count(activations):
    moments = activation_moments(activations, 0.0)
    assert moments[COUNT].item() == activations.numel()


def test_moments_mean_matches_numpy(activations):
    moments = activation_moments(activations, 0.0)
    assert moments[MEAN].item() == pytest.approx(activations.numpy().astype(np.float64).mean(), rel=1e-5)


def test_moments_m2_matches_numpy(activations):
    values = activations.numpy().astype(np.float64)
    moments = activation_moments(activations, 0.0)
    assert moments[M2].item() == pytest.approx(((values - values.mean()) ** 2).sum(), rel=1e-5)


def test_near_zero_count_matches_numpy(activations):
    threshold = 0.05
    moments = activation_moments(activations, threshold)
    assert moments[NEAR_ZERO_COUNT].item() == int((np.abs(activations.numpy()) <= threshold).sum())


def test_near_zero_count_skips_nan():
    values = torch.tensor([0.0, float("nan"), 1e-4, -2.0, float("-inf")])
    assert activation_moments(values, 1e-3)[NEAR_ZERO_COUNT].item() == 2


def test_near_zero_count_includes_the_threshold():
    values = torch.tensor([0.5, -0.5, 0.5001, 0.4999])
    assert activation_moments(values, 0.5)[NEAR_ZERO_COUNT].item() == 3


def test_summary_std_is_population_std(activations):
    summary = summarize_moments(activation_moments(activations, 0.0))
    assert summary[1].item() == pytest.approx(activations.numpy().astype(np.float64).std(ddof=0), rel=1e-5)


def test_summary_after_relu_counts_dead_units(activations):
    after_relu = torch.relu(activations)
    summary = summarize_moments(activation_moments(after_relu, 0.0))
    assert summary[2].item() == pytest.approx((after_relu.numpy() == 0).mean(), abs=1e-7)


def test_moments_build_no_autograd_graph():
    weight = torch.randn(4, requires_grad=True)
    moments = activation_moments(weight * 2, 0.0)
    assert not moments.requires_grad


def test_merge_moments_equals_whole_tensor(activations):
    first, second = activations[:5], activations[5:]
    merged = merge_moments(activation_moments(first, 0.1), activation_moments(second, 0.1))
    whole = activation_moments(activations, 0.1)
    assert torch.allclose(merged, whole, rtol=1e-5)


def test_merge_moments_of_shifted_halves():
    # Halves with very different means test the cross term of the pairwise update.
    first = torch.full((1000,), 10.0) + torch.linspace(-1, 1, 1000)
    second = torch.full((3000,), -5.0) + torch.linspace(-2, 2, 3000)
    merged = summarize_moments(merge_moments(activation_moments(first, 0.0), activation_moments(second, 0.0)))
    both = torch.cat((first, second)).numpy().astype(np.float64)
    assert merged[1].item() == pytest.approx(both.std(), rel=1e-5)


def test_population_std_matches_numpy(activations):
    assert population_std(activations).item() == pytest.approx(activations.numpy().astype(np.float64).std(), rel=1e-5)


def test_update_ratio_matches_numpy():
    generator = torch.Generator().manual_seed(1)
    before = torch.randn(8, 4, 3, 3, generator=generator)
    after = before - 0.01 * torch.randn(8, 4, 3, 3, generator=generator)
    expected = np.linalg.norm((after - before).numpy().ravel()) / np.linalg.norm(before.numpy().ravel())
    assert update_to_weight_ratio(before, after).item() == pytest.approx(expected, rel=1e-5)


def test_update_ratio_of_unchanged_weight_is_zero():
    weight = torch.randn(5, 5)
    assert update_to_weight_ratio(weight, weight.clone()).item() == 0.0


def test_update_ratio_of_zero_weight_is_inf():
    assert math.isinf(update_to_weight_ratio(torch.zeros(3), torch.ones(3)).item())


def test_histogram_counts_match_numpy():
    values = torch.randn(20_000, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    counts, _ = adaptive_histogram(values, 40)
    expected, _ = np.histogram(values.numpy(), bins=40, range=(values.min().item(), values.max().item()))
    assert counts.tolist() == expected.astype(float).tolist()


@pytest.mark.parametrize(("read_back", "dtype"), [(True, torch.int32), (True, torch.int64), (False, torch.int64)])
def test_count_indices_matches_numpy(read_back, dtype):
    indices = torch.randint(0, 7, (5000,), generator=torch.Generator().manual_seed(3), dtype=dtype)
    expected = np.bincount(indices.numpy(), minlength=9)
    assert count_indices(indices, 9, read_back).tolist() == expected.astype(float).tolist()


def test_histogram_range_is_min_and_max():
    values = torch.tensor([[-3.0, 0.5], [2.0, 7.25]])
    _, value_range = adaptive_histogram(values, 8)
    assert value_range.tolist() == [-3.0, 7.25]


def test_histogram_puts_maximum_in_last_bin():
    counts, _ = adaptive_histogram(torch.tensor([0.0, 1.0, 2.0, 4.0]), 4)
    assert counts.tolist() == [1.0, 1.0, 1.0, 1.0]


def test_histogram_of_constant_tensor_widens_range():
    _, value_range = adaptive_histogram(torch.full((10,), 2.0), 5)
    assert value_range.tolist() == [1.5, 2.5]


def test_histogram_of_constant_tensor_fills_middle_bin():
    counts, _ = adaptive_histogram(torch.full((10,), 2.0), 5)
    assert counts.tolist() == [0.0, 0.0, 10.0, 0.0, 0.0]


def test_histogram_with_nan_counts_every_element():
    values = torch.tensor([1.0, float("nan"), 3.0, float("inf")])
    counts, _ = adaptive_histogram(values, 4)
    assert counts.sum().item() == 4


def test_histogram_rejects_zero_bins():
    with pytest.raises(ValueError, match="bins must be at least 1"):
        adaptive_histogram(torch.ones(3), 0)


def test_histogram_edges_are_linspace():
    assert histogram_edges(-1.0, 3.0, 4) == [-1.0, 0.0, 1.0, 2.0, 3.0]


def test_rebin_onto_same_range_is_identity():
    counts = torch.tensor([3.0, 0.0, 5.0, 1.0])
    value_range = torch.tensor([0.0, 4.0])
    assert rebin_histogram(counts, value_range, value_range, 4).tolist() == counts.tolist()


def test_rebin_keeps_total_count():
    counts = torch.tensor([3.0, 2.0, 5.0, 1.0])
    rebinned = rebin_histogram(counts, torch.tensor([-10.0, 10.0]), torch.tensor([-1.0, 1.0]), 6)
    assert rebinned.sum().item() == counts.sum().item()


def test_rebin_into_wider_range_places_by_center():
    # Source bins over [0, 1] have centers 0.125 to 0.875. Target bins over [0, 4] are 1 wide, so all land in bin 0.
    rebinned = rebin_histogram(torch.ones(4), torch.tensor([0.0, 1.0]), torch.tensor([0.0, 4.0]), 4)
    assert rebinned.tolist() == [4.0, 0.0, 0.0, 0.0]


def test_colorful_dimension_shape():
    histograms = [torch.ones(8), torch.ones(8), torch.ones(8)]
    ranges = [torch.tensor([0.0, 1.0])] * 3
    image, _ = colorful_dimension(histograms, ranges, 8)
    assert image.shape == (1, 8, 3)


def test_colorful_dimension_values_span_zero_to_one():
    histograms = [torch.tensor([0.0, 1.0, 10.0, 100.0])]
    image, _ = colorful_dimension(histograms, [torch.tensor([0.0, 1.0])], 4)
    assert image.min().item() == 0.0
    assert image.max().item() == 1.0


def test_colorful_dimension_uses_log_scale():
    histograms = [torch.tensor([0.0, 9.0, 99.0, 0.0])]
    image, _ = colorful_dimension(histograms, [torch.tensor([0.0, 4.0])], 4)
    # Rows are flipped, so source bin 1 is row 2, with log1p(9) / log1p(99) = log(10) / log(100) = 0.5.
    assert image[0, 2, 0].item() == pytest.approx(0.5)


def test_colorful_dimension_puts_high_values_on_top():
    histograms = [torch.tensor([0.0, 0.0, 0.0, 5.0])]
    image, _ = colorful_dimension(histograms, [torch.tensor([0.0, 4.0])], 4)
    assert image[0, :, 0].tolist() == [1.0, 0.0, 0.0, 0.0]


def test_colorful_dimension_shared_range_spans_all():
    ranges = [torch.tensor([-1.0, 0.5]), torch.tensor([0.0, 3.0])]
    _, shared_range = colorful_dimension([torch.ones(4), torch.ones(4)], ranges, 4)
    assert shared_range.tolist() == [-1.0, 3.0]


def test_collapsed_column_fills_one_row():
    # A collapsed layer: its whole histogram falls inside one row of the shared range.
    ranges = [torch.tensor([-4.0, 4.0]), torch.tensor([0.01, 0.02])]
    image, _ = colorful_dimension([torch.ones(8), torch.ones(8)], ranges, 8)
    assert int((image[0, :, 1] > 0).sum()) == 1


def test_colorful_dimension_rejects_empty_history():
    with pytest.raises(ValueError, match="at least one histogram"):
        colorful_dimension([], [], 4)


def test_rebin_batch_equals_rebin_one_by_one():
    counts = torch.tensor([[3.0, 0.0, 5.0, 1.0], [1.0, 2.0, 3.0, 4.0]])
    ranges = torch.tensor([[0.0, 4.0], [-2.0, 1.0]])
    target = torch.tensor([-2.0, 4.0])
    batch = rebin_histogram(counts, ranges, target, 6)
    one_by_one = torch.stack([rebin_histogram(counts[i], ranges[i], target, 6) for i in range(2)])
    assert torch.equal(batch, one_by_one)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_per_step_functions_need_no_host_sync():
    # These are the functions that run inside the forward hooks and before the optimizer step.
    values = torch.randn(64, 8, 14, 14, device="cuda")
    weight = torch.randn(16, 8, 3, 3, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        moments = activation_moments(values, 1e-3)
        merge_moments(moments, activation_moments(values * 2, 1e-3))
        adaptive_histogram(values, 64)
        population_std(weight)
        update_to_weight_ratio(weight, weight * 0.99)
    finally:
        torch.cuda.set_sync_debug_mode("default")
