"""Bad input, divergence, interruption, concurrency and determinism, through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import REPO_ROOT, run_module

TESTS = Path(__file__).resolve().parent


def _env_with_tests_on_path() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    return env


def _run_folders(log_dir: Path) -> list[Path]:
    return sorted(path for path in log_dir.iterdir() if path.is_dir()) if log_dir.exists() else []


def _record(run_folder: Path) -> dict:
    return json.loads((run_folder / "run.json").read_text())


def _scalars(run_folder: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(run_folder), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.mark.parametrize(
    "override, named",
    [
        ("init=nope", "pytorch_default"),
        ("model=nope", "stride_conv"),
        ("optimizer=nope", "sgd"),
        ("trainer.max_epoch=3", "max_epochs"),
    ],
)
def test_unknown_value_lists_valid_choices(tmp_path, override, named):
    result = run_module("initbench.train", override, f"log_dir={tmp_path / 'logs'}", cwd=tmp_path)

    assert result.returncode != 0
    assert override.split("=")[0].split(".")[-1] in result.stderr
    assert named in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize(
    "override, accepted",
    [
        ("data.batch_size=0", "integer >= 1"),
        ("optimizer.lr=-1", "number > 0"),
        ("trainer.max_epochs=0", "integer >= 1"),
        ("stats.every_n_steps=0", "integer >= 1"),
        ("trainer.accelerator=tpu", "expected one of"),
        ("data.batch_size=abc", "integer >= 1"),
        ("optimizer.lr=fast", "number > 0"),
        ("compile=maybe", "true or false"),
        ("matmul_precision=low", "expected one of"),
        ("stats.image_max_steps=1", "integer >= 2"),
        ("stats.layers=conv1", "list of layer names"),
    ],
)
def test_invalid_value_is_rejected_before_any_folder(tmp_path, override, accepted):
    result = run_module("initbench.train", override, f"log_dir={tmp_path / 'logs'}", "data.sources=[]", cwd=tmp_path)
    key, value = override.split("=")

    assert result.returncode == 2, result.stderr[-2000:]
    assert key in result.stderr
    assert value in result.stderr
    assert accepted in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "logs").exists()


def test_unknown_stats_layer_is_rejected_before_any_folder(tmp_path):
    result = run_module(
        "initbench.train", "stats.layers=[conv1,nope]", f"log_dir={tmp_path / 'logs'}", "data.sources=[]", cwd=tmp_path
    )

    assert result.returncode == 2, result.stderr[-2000:]
    assert "'nope' matches no layer" in result.stderr
    assert "conv2 (Conv2d)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "logs").exists()


def test_gpu_request_without_gpu_is_rejected(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = run_module("initbench.train", "trainer.accelerator=gpu", f"log_dir={tmp_path / 'logs'}", cwd=tmp_path)

    assert result.returncode == 2
    assert "not available on this machine" in result.stderr


def test_log_dir_that_is_a_file_is_rejected(tmp_path):
    blocker = tmp_path / "lightning_logs"
    blocker.write_text("a file where the log folder should be")

    result = run_module("initbench.train", f"log_dir={blocker}", cwd=tmp_path)

    assert result.returncode == 2
    assert str(blocker) in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to a folder without write permission")
def test_read_only_log_dir_is_rejected(tmp_path):
    read_only = tmp_path / "read-only"
    read_only.mkdir(mode=0o555)

    result = run_module("initbench.train", f"log_dir={read_only / 'logs'}", cwd=tmp_path)

    assert result.returncode == 2
    assert str(read_only) in result.stderr


def test_missing_data_file_is_named(tmp_path):
    missing = tmp_path / "missing.pkl.gz"

    result = run_module("initbench.train", f"data.file={missing}", f"log_dir={tmp_path / 'logs'}", cwd=tmp_path)

    assert result.returncode == 2
    assert str(missing) in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("override", ["optimizer.lr=100", "init=xavier init.gain=1e30"])
def test_divergence_stops_and_is_recorded(tiny_data_overrides, tmp_path, override):
    result = run_module("initbench.train", *override.split(), *tiny_data_overrides, "trainer.max_epochs=3", cwd=tmp_path)
    run_folder, = _run_folders(tmp_path / "logs")
    record = _record(run_folder)
    scalars = _scalars(run_folder)

    assert result.returncode == 3, result.stderr[-2000:]
    assert record["status"] == "diverged"
    assert record["final_metrics"]["diverged"] == 1.0
    assert scalars["train/diverged_step"][0][1] == record["diverged_step"]
    assert record["global_step"] < 3 * 8
    assert (run_folder / "checkpoints" / "last.ckpt").is_file()


def test_sweep_continues_after_divergence(tiny_data_overrides, tmp_path):
    result = run_module("initbench.train", "-m", "optimizer.lr=100,0.05", *tiny_data_overrides, cwd=tmp_path)
    sweep, = _run_folders(tmp_path / "logs")
    statuses = {folder.name: _record(folder)["status"] for folder in _run_folders(sweep)}

    assert result.returncode == 0, result.stderr[-2000:]
    assert statuses == {"optimizer.lr=100": "diverged", "optimizer.lr=0.05": "completed"}


@pytest.mark.parametrize("signum, status", [("SIGINT", 130), ("SIGTERM", 143)])
def test_interrupted_run_resumes_to_same_metrics(tiny_data_overrides, tmp_path, signum, status):
    common = [*tiny_data_overrides, "trainer.max_epochs=3", "init=kaiming"]
    reference = run_module("initbench.train", *common, f"log_dir={tmp_path / 'reference'}", cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr[-2000:]
    reference_record = _record(_run_folders(tmp_path / "reference")[0])

    # 8 batches per epoch: step 13 is in the middle of the second epoch.
    interrupted = run_module(
        "initbench.train", *common, f"+callbacks.stop._target_=signal_at_step.SendSignalAtStep",
        "+callbacks.stop.step=13", f"+callbacks.stop.signum={signum}", cwd=tmp_path, env=_env_with_tests_on_path(),
    )
    run_folder, = _run_folders(tmp_path / "logs")
    assert interrupted.returncode == status, interrupted.stderr[-2000:]
    assert _record(run_folder)["status"] == "interrupted"
    assert (run_folder / "checkpoints" / "interrupted.ckpt").is_file()
    assert "train/loss" in _scalars(run_folder)

    resumed = run_module("initbench.train", f"resume={run_folder}", "~callbacks.stop", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    record = _record(run_folder)

    assert _run_folders(tmp_path / "logs") == [run_folder]
    assert record["status"] == "completed"
    assert record["hparams"]["init"] == "kaiming"
    assert record["global_step"] == reference_record["global_step"]
    assert record["final_metrics"] == reference_record["final_metrics"]


def test_resume_does_not_apply_init_again(tiny_data_overrides, tmp_path):
    first = run_module("initbench.train", *tiny_data_overrides, "init=kaiming", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    run_folder, = _run_folders(tmp_path / "logs")

    resumed = run_module("initbench.train", f"resume={run_folder}", "trainer.max_epochs=2", cwd=tmp_path)

    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "is not applied again" in resumed.stderr
    assert "KaimingInit initialized" not in resumed.stderr
    assert _record(run_folder)["global_step"] == 16


def test_concurrent_runs_get_separate_folders(tiny_data_overrides, tmp_path):
    command = [sys.executable, "-m", "initbench.train", *tiny_data_overrides]
    processes = [
        subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    errors = [process.communicate(timeout=300)[1] for process in processes]

    assert [process.returncode for process in processes] == [0, 0], errors
    folders = _run_folders(tmp_path / "logs")
    assert len(folders) == 2
    for folder in folders:
        assert len(list(folder.glob("events.out.tfevents.*"))) == 1
        assert (folder / "checkpoints" / "last.ckpt").is_file()
        assert _record(folder)["status"] == "completed"


def test_same_seed_gives_identical_metrics(tiny_data_overrides, tmp_path):
    for name in ("first", "second"):
        result = run_module("initbench.train", *tiny_data_overrides, "trainer.max_epochs=2", f"log_dir={tmp_path / name}", cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]

    first = _scalars(_run_folders(tmp_path / "first")[0])
    second = _scalars(_run_folders(tmp_path / "second")[0])

    assert set(first) == set(second)
    for tag in first:
        # assert_array_equal is exact and treats the NaN placeholders at step 0 as equal.
        np.testing.assert_array_equal(np.array(first[tag]), np.array(second[tag]), err_msg=tag)
