"""Resume after ``kill -9`` of the whole sweep process tree, with real processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlp_backend import job
from mlp_backend.cli import main
from mlp_backend.sweep import worker
from mlp_backend.sweep.driver import run_sweep
from mlp_backend.sweep.folder import SweepFolder
from mlp_backend.sweep.report import build_report

OPTIONS = [
    "--hidden",
    "3",
    "--lr",
    "0.2,0.1,0.05,0.02,0.01,0.005,0.002,0.001",
    "--epochs",
    "30",
    "--batch-size",
    "1",
    "--optimizer",
    "sgd",
    "--patience",
    "0",
    "--dtype",
    "float64",
    "--backend",
    "numpy",
    "--no-fuse",
]


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mlp_backend", "sweep", *args]


def test_kill_9_midway_then_resume_equals_uninterrupted(
    small_magic: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    args = [*OPTIONS, "--data", str(small_magic), "--runs-dir", str(runs)]
    process = subprocess.Popen(
        command(*args, "--name", "killed", "--workers", "2"),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    results = runs / "killed" / "results.jsonl"
    deadline = time.monotonic() + 60
    try:
        # Midway: two trials have ended and one in flight has a checkpoint
        # (trials in a sweep need not write one every epoch).
        while time.monotonic() < deadline and process.poll() is None:
            if (
                results.is_file()
                and len(results.read_text().splitlines()) >= 2
                and list((runs / "killed").glob("trial-*/checkpoint.log"))
            ):
                break
            time.sleep(0.01)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        process.stderr.close()
    done_before = len(results.read_text().splitlines())
    assert 2 <= done_before < 8, "the kill did not land midway"
    assert (runs / "killed" / "sweep.lock").exists()
    # The report says how many trials a resume still has to train.
    report = build_report(runs / "killed", "val_f1", "hidden", "lr", figures=False)
    assert (report.total, report.unended) == (8, 8 - done_before)

    # A writer killed mid-line leaves a torn line: the resume must cut it.
    with open(results, "ab") as f:
        f.write(b'{"format": 1, "trial": 7, "st')
    resumed = subprocess.run(
        command("--resume", str(runs / "killed"), "--workers", "2"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    after = SweepFolder(runs / "killed").results()
    for line in (runs / "killed" / "results.jsonl").read_text().splitlines():
        json.loads(line)

    _, whole = run_sweep(
        {
            "data": str(small_magic),
            "runs_dir": runs,
            "name": "whole",
            "hidden": "3",
            "lr": OPTIONS[3],
            "epochs": "30",
            "batch_size": "1",
            "optimizer": "sgd",
            "patience": "0",
            "dtype": "float64",
            "backend": "numpy",
            "no_fuse": True,
            "workers": 1,
        }
    )
    assert len(after) == len(whole) == 8
    # The trials in flight at the kill went on from their last epoch.
    resumed = [
        path
        for path in (runs / "killed").glob("trial-*/events.jsonl")
        if "resumed after epoch" in path.read_text()
    ]
    assert resumed, "no trial went on from its checkpoint"
    assert not list((runs / "killed").glob("trial-*/checkpoint.log"))
    for record in whole:
        again = after[record["trial"]]
        assert again["state"] == record["state"] == "finished"
        for key in ("val_loss", "val_f1", "test_f1", "test_log_loss", "best_value"):
            assert again[key] == pytest.approx(record[key], rel=0, abs=1e-12), key
        lines = (runs / "killed" / record["name"] / "metrics.jsonl").read_text()
        assert len(lines.splitlines()) == 30
        summary = json.loads(
            (runs / "killed" / record["name"] / "summary.json").read_text()
        )
        assert summary["state"] == "finished"
    assert not (runs / "killed" / "sweep.lock").exists()


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid``: workers may be children of a fork server."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent]
        found += children
        frontier += children
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc for children")
@pytest.mark.parametrize("reaped", [True, False])
def test_workers_end_when_the_sweep_is_killed(
    small_magic: Path, tmp_path: Path, reaped: bool
) -> None:
    """Also when whoever killed the sweep does not reap it: the zombie kept
    its pid, the workers took it for alive and trained on, and the fork
    server waited for them."""
    runs = tmp_path / "runs"
    args = [*OPTIONS, "--data", str(small_magic), "--runs-dir", str(runs)]
    process = subprocess.Popen(
        command(*args, "--name", "orphans", "--workers", "2"),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while time.monotonic() < deadline and process.poll() is None:
            if any(p.stat().st_size for p in runs.glob("orphans/*/metrics.jsonl")):
                break
            time.sleep(0.05)
        workers = [p for p in _descendants(process.pid) if _alive(p)]
        # Two workers, plus the fork server where the platform has one.
        assert len(workers) >= 2, "the worker processes did not start"
        process.kill()  # the sweep process alone, as `kill -9 PID` does
        if reaped:
            process.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.1)
        assert not any(_alive(p) for p in workers), "workers outlived the sweep"
        process.wait()
    finally:
        os.killpg(process.pid, signal.SIGKILL) if _alive(process.pid) else None


def interrupted_after(
    steps: int, options: dict, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, list[dict]]:
    """A sweep run in this process that a Ctrl-C interrupts after ``steps``
    batches, counted over all its stacks."""

    class StopAfter(job.StopFlag):
        count = 0

        def __call__(self) -> bool:
            StopAfter.count += 1
            if StopAfter.count == steps:
                job._INTERRUPT.set()
            return super().__call__()

    monkeypatch.setattr(worker, "StopFlag", StopAfter)
    try:
        return run_sweep(options)
    finally:
        job._INTERRUPT.clear()
        monkeypatch.undo()


def test_a_resumed_stack_is_the_stack_that_was_interrupted(
    small_magic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two trials fused at batch 1, interrupted in epoch 5, then resumed on two
    workers, where planning afresh would give each trial a worker of its own:
    the stack is rebuilt from its checkpoints, and every figure equals the
    uninterrupted sweep's exactly (a lone member rounds differently)."""
    options = {
        "data": str(small_magic),
        "runs_dir": tmp_path / "runs",
        "hidden": "5",
        "lr": "0.1,0.01",
        "epochs": "8",
        "batch_size": "1",
        "optimizer": "sgd",
        "activation": "tanh",
        "patience": "0",
        "dtype": "float64",
        "backend": "numpy",
        "workers": 1,
    }
    _, whole = run_sweep({**options, "name": "whole"})

    cut_options = {**options, "name": "cut"}
    path, cut = interrupted_after(4 * 280 + 100, cut_options, monkeypatch)
    assert [r["state"] for r in cut] == ["interrupted", "interrupted"]

    _, resumed = run_sweep({"resume": str(path), "workers": 2})
    for before, after in zip(whole, resumed, strict=True):
        assert after["state"] == before["state"] == "finished"
        for key in ("val_loss", "val_f1", "test_f1", "test_log_loss", "best_value"):
            assert after[key] == before[key], key
    for name in ("trial-0000", "trial-0001"):
        events = (path / name / "events.jsonl").read_text()
        assert "resumed after epoch" in events
        assert json.loads((path / name / "summary.json").read_text())["state"] == (
            "finished"
        )


def test_members_that_end_early_are_written_before_their_stack_ends(
    small_magic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four trials in one stack, halved after epochs 2 and 4 of 16: the three
    pruned have their final files before the sweep dies in epoch 6, the
    resume keeps them and trains the last one on, and everything equals the
    sweep that never died."""
    options = {
        "data": str(small_magic),
        "runs_dir": tmp_path / "runs",
        "hidden": "8",
        "lr": "0.3,0.1,0.03,0.01",
        "epochs": "16",
        "batch_size": "8",
        "optimizer": "momentum",
        "patience": "0",
        "prune": "halving",
        "dtype": "float64",
        "backend": "numpy",
        "workers": 1,
    }
    _, whole = run_sweep({**options, "name": "whole"})
    assert sorted(r["state"] for r in whole) == ["finished"] + ["pruned"] * 3

    class Killed(BaseException):
        """Ends the sweep where it is, as a kill would: nothing more is written."""

    class KillInEpochSix(job.StopFlag):
        steps = 0

        def __call__(self) -> bool:
            KillInEpochSix.steps += 1
            if KillInEpochSix.steps == 5 * 35 + 10:
                raise Killed
            return super().__call__()

    monkeypatch.setattr(worker, "StopFlag", KillInEpochSix)
    with pytest.raises(Killed):
        run_sweep({**options, "name": "cut"})
    monkeypatch.undo()
    path = tmp_path / "runs" / "cut"
    assert not (path / "results.jsonl").exists()
    pruned = [r["trial"] for r in whole if r["state"] == "pruned"]
    for i in pruned:
        summary = json.loads((path / f"trial-{i:04d}" / "summary.json").read_text())
        assert summary["state"] == "pruned" and summary["epochs_run"] in (2, 4)

    _, resumed = run_sweep({"resume": str(path), "workers": 1})
    for before, after in zip(whole, resumed, strict=True):
        assert after["state"] == before["state"]
        for key in ("val_loss", "val_f1", "test_f1", "test_log_loss", "best_value"):
            assert after[key] == before[key], key


def test_a_trial_trained_again_from_the_start_keeps_its_events(tmp_path):
    # What a sweep killed in a trial's first epoch leaves: no checkpoint, a
    # status and a config, events of that attempt (the last one torn).
    path = tmp_path / "trial-0000"
    path.mkdir()
    earlier = [
        '{"format": 1, "time": 1.0, "level": "info", "message": "training on cpu"}',
        '{"format": 1, "time": 2.0, "level": "warning", "message": "stop"}',
    ]
    (path / "events.jsonl").write_text("\n".join(earlier) + '\n{"format": 1, "ti')
    (path / "status.json").write_text('{"state": "running"}')
    (path / "metrics.jsonl").write_text("")

    worker._fresh_folder(path)
    assert sorted(p.name for p in path.iterdir()) == ["events.jsonl"]
    lines = (path / "events.jsonl").read_text().splitlines()
    assert lines[:2] == earlier
    assert len(lines) == 3
    assert "started again" in json.loads(lines[2])["message"]


def test_resume_refuses_options_that_change_what_the_sweep_trains(
    small_magic: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    options = {"data": str(small_magic), "runs_dir": runs, "name": "s", "workers": 1}
    path, _ = run_sweep({**options, "hidden": "4", "epochs": "1", "backend": "numpy"})
    recorded = (path / "sweep.json").read_text()
    resume = ["sweep", "--resume", str(path)]
    for given in (
        ["--epochs", "12", "--lr", "0.5", "--hidden", "99"],
        ["--dtype", "float64", "--data", "other.csv", "--prune", "halving"],
        ["--no-fuse", "--repeats", "2", "--trials", "3", "--backend", "numpy"],
        # Given as the default is given all the same.
        ["--split-seed", "0", "--dtype", "float32", "--name", "s"],
    ):
        result = CliRunner().invoke(main, [*resume, *given])
        assert result.exit_code == 2, result.output
        flags = ", ".join(arg for arg in given if arg.startswith("--"))
        assert result.output == (
            "error: --resume: the sweep keeps its own trials and settings; "
            f"leave out {flags}\n"
        )
    # Where and how the trials run may change.
    where = ["--workers", "1", "--max-group", "4", "--runs-dir", str(runs)]
    kept = CliRunner().invoke(main, [*resume, *where])
    assert kept.exit_code == 0, kept.output
    assert (path / "sweep.json").read_text() == recorded


def test_a_resume_cuts_groups_as_the_sweep_did(small_magic, tmp_path):
    options = {
        "data": str(small_magic),
        "runs_dir": tmp_path,
        "name": "s",
        "workers": 1,
        "hidden": "4",
        "lr": "0.5,0.1,0.05",
        "epochs": "1",
        "backend": "numpy",
        "max_group": 1,
    }
    path, _ = run_sweep(options)
    spec = json.loads((path / "sweep.json").read_text())["spec"]
    assert (spec["max_group"], spec["max_bytes"]) == (1, None)
    # What a kill before any trial began leaves: no trial folders.
    for i in range(3):
        shutil.rmtree(path / f"trial-{i:04d}")

    def resume(*given: str) -> str:
        args = ["sweep", "--resume", str(path), "--workers", "1", *given]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        for i in range(3):
            shutil.rmtree(path / f"trial-{i:04d}")
        return result.output

    # Three trials of one width share a stack unless the recorded cut stands.
    assert "3 trials (0 kept, 0 resumed) in 3 groups" in resume()
    assert "in 2 groups" in resume("--max-group", "2")


def test_a_resume_finds_the_sweeps_data_and_refuses_other_data(
    small_magic, tmp_path, monkeypatch
):
    data = tmp_path / "copy" / "magic04.data"
    data.parent.mkdir()
    original = small_magic.read_text()
    data.write_text(original)
    monkeypatch.chdir(tmp_path)
    options = ["--hidden", "4", "--lr", "0.5,0.1", "--epochs", "1", "--workers", "1"]
    relative = ["--data", "copy/magic04.data", "--runs-dir", "runs", "--name", "s"]
    assert CliRunner().invoke(main, ["sweep", *options, *relative]).exit_code == 0
    spec = json.loads((tmp_path / "runs" / "s" / "sweep.json").read_text())["spec"]
    assert spec["data"]["data"] == str(data)
    shutil.rmtree(tmp_path / "runs" / "s" / "trial-0001")
    # From another directory the sweep's own file is found...
    monkeypatch.chdir(data.parent)
    resume = ["sweep", "--resume", str(tmp_path / "runs" / "s"), "--workers", "1"]
    result = CliRunner().invoke(main, resume)
    assert result.exit_code == 0, result.output
    # ...and another file in its place is refused.
    shutil.rmtree(tmp_path / "runs" / "s" / "trial-0001")
    data.write_text(original.replace("g\n", "h\n", 1))
    result = CliRunner().invoke(main, resume)
    assert result.exit_code == 2, result.output
    assert f"{data}: not the file this job began with" in result.output


def test_a_resume_reads_the_data_the_sweep_found_from_anywhere(
    small_magic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Data found through $MLP_BACKEND_DATA (a relative path, as CI sets it)
    is recorded by its absolute path: a resume from another directory,
    without the variable, looked for MAGIC again and tried to download it."""
    monkeypatch.chdir(small_magic.parent.parent)
    monkeypatch.setenv("MLP_BACKEND_DATA", str(Path("data") / small_magic.name))
    options = {
        "runs_dir": tmp_path / "runs",
        "name": "found",
        "hidden": "3",
        "lr": "0.1",
        "epochs": "2",
        "dtype": "float64",
        "backend": "numpy",
        "workers": 1,
    }
    folder, first = run_sweep(options)
    recorded = json.loads((folder / "sweep.json").read_text())["spec"]["data"]
    assert recorded["data"] == str(small_magic.resolve())
    monkeypatch.delenv("MLP_BACKEND_DATA")
    monkeypatch.chdir(tmp_path)
    _, again = run_sweep({"resume": folder, "workers": 1})
    assert again == first


def test_trials_that_never_trained_resume_in_their_planned_stack(
    small_magic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four trials in one stack, interrupted in epoch 1 (no checkpoint yet),
    resumed on two workers, where planning afresh would halve the stack: the
    stack recorded in sweep.json is trained again, and every figure equals
    the uninterrupted sweep's exactly (a stack of other members rounds
    otherwise)."""
    options = {
        "data": str(small_magic),
        "runs_dir": tmp_path / "runs",
        "hidden": "5,25",
        "lr": "0.1,0.01",
        "epochs": "3",
        "batch_size": "1",
        "activation": "tanh",
        "optimizer": "sgd",
        "patience": "0",
        "dtype": "float64",
        "backend": "numpy",
        "workers": 1,
    }
    whole_path, whole = run_sweep({**options, "name": "whole"})
    planned = json.loads((whole_path / "sweep.json").read_text())["spec"]["groups"]
    assert planned == [[0, 1, 2, 3]]
    assert {r["members"] for r in whole} == {4}

    path, cut = interrupted_after(100, {**options, "name": "cut"}, monkeypatch)
    assert {r["state"] for r in cut} == {"interrupted"}

    _, resumed = run_sweep({"resume": str(path), "workers": 2})
    for before, after in zip(whole, resumed, strict=True):
        assert after["state"] == before["state"] == "finished"
        assert after["members"] == 4
        for key in ("val_loss", "val_f1", "test_f1", "test_log_loss", "best_value"):
            assert after[key] == before[key], key
