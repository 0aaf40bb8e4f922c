"""The model of a runs folder: rows, sweeps, stale runs, folders that go."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.tui.conftest import NOW, fixed_now
from tests.tui.writer import T0, append_jsonl, metrics_line, write_json, write_run
from tui import runs
from tui.runs import RunsFolder, request_stop


def test_rows_of_the_standard_folder(runs_dir: Path) -> None:
    rows = RunsFolder(runs_dir, now=fixed_now).poll().rows
    assert [key for key in rows if "/" not in key] == [
        "alpha",
        "bravo",
        "charlie",
        "delta",
        "sweep-hl",
    ]
    alpha = rows["alpha"]
    assert (alpha.state, alpha.epoch, alpha.epochs) == ("finished", 30, 30)
    assert alpha.test_name == "accuracy" and alpha.test is not None
    assert alpha.backend == "numpy/cpu"
    assert rows["charlie"].state == "diverged"
    assert rows["charlie"].reason == "step"
    # Updated 500 s before the start: far older than a minute at NOW.
    assert rows["delta"].state == "stale"
    bravo = rows["bravo"]
    assert bravo.state == "running"
    assert bravo.elapsed == pytest.approx(NOW - T0)
    assert bravo.eta == pytest.approx(28.0)


def test_running_run_best_comes_from_its_metrics(runs_dir: Path) -> None:
    folder = RunsFolder(runs_dir, now=fixed_now)
    best = folder.poll().rows["bravo"].best
    expected = min(metrics_line(e, 0.6)["val_loss"] for e in range(1, 13))
    assert best == pytest.approx(expected)
    tracker = folder.tracker("bravo")
    assert tracker is not None and tracker.tail is not None
    # A run with a summary is not read line by line at all.
    alpha = folder.tracker("alpha")
    assert alpha is not None and alpha.tail is None


def test_appended_epoch_shows_on_the_next_poll(runs_dir: Path) -> None:
    folder = RunsFolder(runs_dir, now=fixed_now)
    folder.poll()
    append_jsonl(runs_dir / "bravo" / "metrics.jsonl", [metrics_line(13, 5.0)])
    row = folder.poll().rows["bravo"]
    assert row.epoch == 13
    assert row.best == pytest.approx(metrics_line(13, 5.0)["val_loss"])


def test_sweep_progress(runs_dir: Path) -> None:
    rows = RunsFolder(runs_dir, now=fixed_now).poll().rows
    sweep = rows["sweep-hl"]
    assert sweep.kind == "sweep" and sweep.state == "running"
    progress = sweep.progress
    assert progress is not None
    assert (progress.total, progress.done, progress.running) == (8, 4, 1)
    assert (progress.queued, progress.failed, progress.ended) == (2, 1, 5)
    trials = [row for row in rows.values() if row.sweep == "sweep-hl"]
    assert len(trials) == 6
    assert trials[0].params["model.hidden"] == (32,)
    assert sweep.best == min(row.best for row in trials if row.best is not None)


def test_deleted_run_and_trial_drop_out_with_a_notice(runs_dir: Path) -> None:
    folder = RunsFolder(runs_dir, now=fixed_now)
    folder.poll()
    shutil.rmtree(runs_dir / "alpha")
    shutil.rmtree(runs_dir / "sweep-hl" / "trial-000")
    snapshot = folder.poll()
    assert "alpha" not in snapshot.rows
    assert "sweep-hl/trial-000" not in snapshot.rows
    assert "run alpha is gone" in snapshot.notices
    assert "trial sweep-hl/trial-000 is gone" in snapshot.notices
    assert folder.poll().notices == ()


def test_unreadable_folders_drop_out(
    runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = RunsFolder(runs_dir, now=fixed_now)
    folder.poll()
    monkeypatch.setattr(
        runs.os, "access", lambda path, mode: Path(path).name != "bravo"
    )
    snapshot = folder.poll()
    assert "bravo" not in snapshot.rows
    assert any("bravo" in notice for notice in snapshot.notices)


def test_unreadable_root_gives_a_notice(
    runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(path: object) -> None:
        raise PermissionError(13, "Permission denied")

    folder = RunsFolder(runs_dir, now=fixed_now)
    monkeypatch.setattr(runs.os, "scandir", refuse)
    snapshot = folder.poll()
    assert snapshot.rows == {}
    assert len(snapshot.notices) == 1 and "Permission denied" in snapshot.notices[0]
    assert folder.poll().notices == ()


def test_new_run_appears(runs_dir: Path) -> None:
    folder = RunsFolder(runs_dir, now=fixed_now)
    folder.poll()
    write_run(runs_dir, "echo", state="running", epoch=1, epochs=5)
    assert folder.poll().rows["echo"].epoch == 1


def test_watched_run_history(runs_dir: Path) -> None:
    folder = RunsFolder(runs_dir, now=fixed_now)
    folder.watch({"bravo"})
    detail = folder.poll().details["bravo"]
    assert [r["epoch"] for r in detail.history] == list(range(1, 13))
    assert detail.events[0]["message"] == "started bravo"
    assert "bravo" not in folder.poll().details
    append_jsonl(runs_dir / "bravo" / "metrics.jsonl", [metrics_line(13)])
    assert len(folder.poll().details["bravo"].history) == 13
    folder.watch(set())
    assert folder.poll().details == {}


def test_summary_replaces_the_tail(runs_dir: Path) -> None:
    folder = RunsFolder(runs_dir, now=fixed_now)
    folder.poll()
    write_json(
        runs_dir / "bravo" / "summary.json",
        {"state": "stopped", "monitor": "val_loss", "best_value": 0.25},
    )
    write_json(runs_dir / "bravo" / "status.json", {"state": "stopped", "epoch": 12})
    row = folder.poll().rows["bravo"]
    assert (row.state, row.best) == ("stopped", 0.25)
    tracker = folder.tracker("bravo")
    assert tracker is not None and tracker.tail is None


def test_request_stop_writes_the_file(runs_dir: Path) -> None:
    path = request_stop(runs_dir / "bravo")
    assert path == runs_dir / "bravo" / "stop.request"
    assert path.is_file()


def test_long_metrics_file_is_read_from_its_end_first(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    write_run(root, "long", state="running", epoch=600, epochs=1000, speed=0.05)
    metrics = root / "long" / "metrics.jsonl"
    assert metrics.stat().st_size > runs.EAGER_BYTES
    # A torn last line must wait for its newline, also when read from the end.
    with open(metrics, "a") as handle:
        handle.write('{"epoch": 601, "val_lo')
    folder = RunsFolder(root, now=lambda: T0 + 600)
    first = folder.poll().rows["long"]
    assert first.epoch == 600 and first.best_partial
    expected = min(metrics_line(e, 0.05)["val_loss"] for e in range(1, 601))
    for _ in range(100):
        row = folder.poll().rows["long"]
        if not row.best_partial:
            break
    assert row.best == pytest.approx(expected)
    with open(metrics, "a") as handle:
        handle.write('ss": 0.01}\n')
    row = folder.poll().rows["long"]
    assert (row.epoch, row.best) == (601, 0.01)
    tail = folder.tracker("long").tail  # type: ignore[union-attr]
    assert tail is not None
    assert tail.follower.bytes_read < 1024


def test_sweep_eta_before_and_after_a_trial_ends() -> None:
    def trial(state: str, elapsed: float, eta: float | None = None) -> runs.RunRow:
        return runs.RunRow("s/t", "t", "s", "run", state, elapsed=elapsed, eta=eta)

    # Nothing ended yet: two trials 30 s in with 90 s to go, two queued.
    rows = [trial("running", 30.0, 90.0), trial("running", 30.0, 90.0)]
    progress = runs.SweepProgress(total=4, running=2, queued=2)
    # (90 + 90 left, plus 2 queued of 120 s each) over 2 running: 210 s.
    assert runs.SweepTracker._eta(rows, progress) == pytest.approx(210.0)

    # One trial ended after 100 s: the queued ones take that long.
    rows = [trial("finished", 100.0), trial("running", 50.0, 40.0)]
    progress = runs.SweepProgress(total=3, done=1, running=1, queued=1)
    assert runs.SweepTracker._eta(rows, progress) == pytest.approx(140.0)

    assert runs.SweepTracker._eta([], runs.SweepProgress(total=2, queued=2)) is None


def test_long_names_keep_both_ends() -> None:
    from tui.cells import NAME_WIDTH, elide, row_cells

    key = "sweep-20261203-215227-6dbf/trial-0012"
    row = runs.RunRow(key, "trial-0012", "sweep-20261203-215227-6dbf", "run", "running")
    name = row_cells(row, grouped=False)["name"]
    assert len(name) == NAME_WIDTH and name.endswith("trial-0012")
    assert name.startswith("sweep-2026") and "…" in name
    assert elide("short", NAME_WIDTH) == "short"
    assert elide("abcdefgh", 5) == "ab…gh"
