"""Smoke tests of the benchmark scripts: every contender runs a few steps on tiny synthetic data.

They check that the scripts work, not how fast anything is.
"""

from __future__ import annotations

import json
import sys

import pytest

from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import statistics_parts  # noqa: E402 - importable only once benchmarks/ is on the path
import throughput  # noqa: E402


@pytest.fixture(scope="module")
def benchmark_run(tmp_path_factory):
    """One run of the script on 256 synthetic training images, with each section reduced to a few steps."""
    from conftest import make_splits, write_pickle

    folder = tmp_path_factory.mktemp("benchmark")
    data_file = write_pickle(folder / "tiny_mnist.pkl.gz", make_splits())
    json_file = folder / "results.json"
    results = throughput.main([
        "--data-file", str(data_file),
        "--device", "cpu",
        "--batch-sizes", "32", "64",
        "--repeats", "2",
        "--max-batches", "3",
        "--warmup-batches", "1",
        "--startup-runs", "1",
        "--variant", "few_bins", "stats.bins=8",
        "--options", "channels_last",
        "--options-repeats", "1",
        "--json", str(json_file),
    ])
    return results, json_file


def test_every_contender_is_timed(benchmark_run):
    results, _ = benchmark_run
    samples = results["devices"]["cpu"]["throughput"]

    for contender in (*throughput.CONTENDERS, "few_bins"):
        for batch_size in (32, 64):
            timed = [s for s in samples if s["contender"] == contender and s["batch_size"] == batch_size]
            assert len(timed) == 2, (contender, batch_size)
            assert all(s["seconds"] > 0 for s in timed), timed


def test_epochs_stop_at_max_batches(benchmark_run):
    results, _ = benchmark_run
    samples = results["devices"]["cpu"]["throughput"]

    # 3 batches of 32 images, and 3 batches of 64 images capped by the 256 training images.
    assert {s["images"] for s in samples if s["batch_size"] == 32} == {96}
    assert {s["images"] for s in samples if s["batch_size"] == 64} == {192}


def test_data_path_times_both_loaders(benchmark_run):
    results, _ = benchmark_run
    samples = results["devices"]["cpu"]["data_path"]

    for loader in throughput.DATA_LOADERS:
        timed = [s for s in samples if s["contender"] == loader]
        assert len(timed) == 4, loader
        assert all(s["seconds"] > 0 for s in timed), timed
        assert {s["images"] for s in timed if s["batch_size"] == 32} == {96}


def test_startup_stages_are_in_order(benchmark_run):
    results, _ = benchmark_run
    (run,) = results["devices"]["cpu"]["startup"]
    stages = [run[key] for key, _ in throughput.STARTUP_STAGES]

    assert stages[0] > 0
    assert stages == sorted(stages)
    assert run["exit"] >= stages[-1]


def test_options_include_the_default(benchmark_run):
    results, _ = benchmark_run
    options = results["devices"]["cpu"]["options"]

    assert [s["contender"] for s in options] == ["default", "channels_last"]
    assert all(s["first_epoch_seconds"] > 0 for s in options)


def test_json_matches_the_results(benchmark_run):
    results, json_file = benchmark_run

    assert json.loads(json_file.read_text()) == json.loads(json.dumps(results))


def test_report_has_the_tables(benchmark_run, capsys):
    results, _ = benchmark_run
    report = throughput.format_report(results)

    assert "## Throughput on cpu" in report
    assert "| stats_default / plain | 64 |" in report
    assert "## Data path on cpu" in report
    assert "## Start-up on cpu" in report
    assert "## Options on cpu" in report


def test_variant_name_must_be_new():
    with pytest.raises(SystemExit):
        throughput.parse_arguments(["--variant", "plain", "stats.bins=8"])


def test_statistics_parts_prints_every_table(capsys):
    statistics_parts.main(["--batch-sizes", "4", "--repeats", "1", "--steps", "1"])
    report = capsys.readouterr().out

    assert "## Training step with 8 forward hooks" in report
    # The 8 recorded outputs of 4 images have 4 x (2 x 1,568 + 2 x 784 + 2 x 512 + 40 + 10) elements.
    assert "| 4 | 23,112 |" in report
    assert "## TensorBoard writes" in report
