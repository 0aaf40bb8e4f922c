"""The model of a runs folder: rows, sweeps, stale runs, folders that go."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from tests.tui.conftest import NOW, fixed_now
from tests.tui.writer import (
    T0,
    append_jsonl,
    metrics_line,
    write_json,
    write_run,
    write_sweep,
)
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
    assert progress.results == sweep.epoch == 4
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
    name = str(row_cells(row, grouped=False)["name"])
    assert len(name) == NAME_WIDTH and name.endswith("trial-0012")
    assert name.startswith("sweep-2026") and "…" in name
    assert elide("short", NAME_WIDTH) == "short"
    assert elide("abcdefgh", 5) == "ab…gh"


def rendered(renderable: Any) -> str:
    """What a Rich renderable shows, as plain text."""
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def mixed_metric_sweep(root: Path) -> Path:
    """A finished sweep of four trials, two per monitored metric.

    As ``sweep --metric val_loss,val_accuracy`` writes it: the best trial by
    loss is trial-000 (the fastest), and by accuracy trial-003.
    """
    trials = [
        {"speed": 2.0, "lr": 0.1},
        {"speed": 0.5, "lr": 0.1, "monitor": "val_accuracy"},
        {"speed": 1.0, "lr": 0.01},
        {"speed": 1.5, "lr": 0.01, "monitor": "val_accuracy"},
    ]
    return write_sweep(root, "mixed", trials)


def test_mixed_metric_sweep_compares_like_with_like(tmp_path: Path) -> None:
    # Once a loss was compared with an accuracy, and the sweep's best was the
    # trial of the worst accuracy (lower taken as better).
    root = tmp_path / "runs"
    mixed_metric_sweep(root)
    rows = RunsFolder(root, now=fixed_now).poll().rows
    trials = [row for row in rows.values() if row.sweep == "mixed"]
    sweep = rows["mixed"]
    assert sweep.monitor == "val_loss"
    assert sweep.best == rows["mixed/trial-000"].best
    assert sweep.test == rows["mixed/trial-000"].test
    from tui.sweep_screen import heatmap, ranked_trials

    assert [row.name for row in ranked_trials(trials)] == [
        "trial-000",
        "trial-002",
        "trial-003",
        "trial-001",
    ]
    # The heatmap maps only the sweep's metric: one cell per learning rate.
    text = rendered(heatmap(trials, "training.lr", "training.monitor"))
    assert "best val_loss" in text and "val_accuracy" not in text


def test_runs_sort_by_best_within_one_metric(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    root.mkdir()
    for name, speed, monitor in (
        ("loss-good", 2.0, "val_loss"),
        ("loss-bad", 0.5, "val_loss"),
        ("acc-good", 2.0, "val_accuracy"),
        ("acc-bad", 0.5, "val_accuracy"),
    ):
        write_run(root, name, speed=speed, monitor=monitor)
    from tui.runs_screen import sort_rows, sort_value

    rows = list(RunsFolder(root, now=fixed_now).poll().rows.values())
    # Grouped by metric, and the best of each first, an accuracy too.
    assert [row.key for row in sort_rows(rows, "best", reverse=False)] == [
        "acc-good",
        "acc-bad",
        "loss-good",
        "loss-bad",
    ]
    assert sort_value(rows[0], "test") is not None
    by_test = [row.key for row in sort_rows(rows, "test", reverse=False)]
    assert by_test.index("acc-good") < by_test.index("acc-bad")
    assert by_test.index("loss-good") < by_test.index("loss-bad")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"state": "runn', "not JSON"),
        ("[1, 2]", "a JSON list, not an object"),
        ("", "not JSON"),
    ],
)
def test_unreadable_status_says_so_once(
    runs_dir: Path, text: str, problem: str
) -> None:
    # Once shown as "queued", with nothing said.
    (runs_dir / "bravo" / "status.json").write_text(text)
    folder = RunsFolder(runs_dir, now=fixed_now)
    snapshot = folder.poll()
    bravo = snapshot.rows["bravo"]
    assert bravo.state == "unreadable"
    assert len(bravo.problems) == 1 and problem in bravo.problems[0]
    assert [n for n in snapshot.notices if "status.json" in n] == [bravo.problems[0]]
    # Told once while it lasts, not at every look.
    assert folder.poll().notices == ()
    # A file that is not there is no problem: the run is not started yet.
    (runs_dir / "bravo" / "status.json").unlink()
    bravo = folder.poll().rows["bravo"]
    assert (bravo.state, bravo.problems) == ("queued", ())
    write_json(runs_dir / "bravo" / "status.json", {"state": "running"})
    bravo = folder.poll().rows["bravo"]
    assert (bravo.state, bravo.problems) == ("running", ())


def test_unreadable_summary_of_a_run_without_status(runs_dir: Path) -> None:
    (runs_dir / "alpha" / "status.json").unlink()
    (runs_dir / "alpha" / "summary.json").write_text("{oops")
    assert RunsFolder(runs_dir, now=fixed_now).poll().rows["alpha"].state == (
        "unreadable"
    )


def test_unreadable_config_and_sweep_spec_are_told(runs_dir: Path) -> None:
    (runs_dir / "bravo" / "config.json").write_text("{not json")
    (runs_dir / "sweep-hl" / "sweep.json").write_text("{oops")
    folder = RunsFolder(runs_dir, now=fixed_now)
    snapshot = folder.poll()
    told = [n for n in snapshot.notices if "not JSON" in n]
    assert len(told) == 2
    assert any("bravo/config.json" in n for n in told)
    assert any("sweep-hl/sweep.json" in n for n in told)
    # The run's state still comes from its status, the sweep's from its
    # running trial.
    bravo, sweep = snapshot.rows["bravo"], snapshot.rows["sweep-hl"]
    assert bravo.state == "running" and sweep.state == "running"
    assert len(bravo.problems) == 1 and "config.json" in bravo.problems[0]
    assert len(sweep.problems) == 1 and "sweep.json" in sweep.problems[0]
    write_json(runs_dir / "sweep-hl" / "sweep.json", {"trials": []})
    assert "not JSON" not in " ".join(folder.poll().notices)


def _sweep_of(root: Path, states: list[str], planned: int | None = None) -> str:
    trials = [{"state": state, "reason": "fixture"} for state in states]
    write_sweep(root, "s", trials, planned=planned)
    return RunsFolder(root, now=fixed_now).poll().rows["s"].state


@pytest.mark.parametrize(
    ("states", "planned", "expected"),
    [
        # Diverged trials are results (exit status 0), not failures.
        (["diverged"] * 4, None, "diverged"),
        (["finished", "diverged", "pruned"], None, "finished"),
        # Interrupted trials are resumable, begun or not.
        (["interrupted"] * 4, None, "interrupted"),
        (["finished", "interrupted"], 4, "interrupted"),
        (["finished", "failed"], None, "failed"),
        (["failed", "interrupted", "stopped"], None, "failed"),
        (["finished", "stopped"], None, "stopped"),
        (["finished"], 3, "queued"),
    ],
)
def test_sweep_state_from_its_trials(
    tmp_path: Path, states: list[str], planned: int | None, expected: str
) -> None:
    # Once "failed" whenever no trial finished, with "0 failed" beside it.
    assert _sweep_of(tmp_path, states, planned) == expected


@pytest.mark.parametrize(
    ("states", "results"),
    [
        (["interrupted"] * 2, 0),
        (["finished", "stopped", "failed", "interrupted"], 1),
        (["finished", "diverged", "pruned", "failed"], 3),
    ],
)
def test_a_sweeps_bar_counts_trials_with_a_result(
    tmp_path: Path, states: list[str], results: int
) -> None:
    # An interrupted sweep once showed a full bar, 2/2, with nothing trained.
    _sweep_of(tmp_path, states)
    row = RunsFolder(tmp_path, now=fixed_now).poll().rows["s"]
    assert (row.epoch, row.epochs) == (results, len(states))
    assert row.progress is not None and row.progress.ended == len(states)


def test_non_finite_metrics_never_win_best(runs_dir: Path) -> None:
    # Python's JSON reads NaN and Infinity, which the trainer never writes (it
    # writes null); a NaN once stayed "best" for good.
    metrics = runs_dir / "bravo" / "metrics.jsonl"
    metrics.write_text('{"epoch": 1, "val_loss": NaN}\n')
    good = metrics_line(2)
    append_jsonl(metrics, [good])
    folder = RunsFolder(runs_dir, now=fixed_now)
    assert folder.poll().rows["bravo"].best == pytest.approx(good["val_loss"])
    with open(metrics, "a") as handle:
        handle.write('{"epoch": 3, "val_loss": -Infinity}\n')
    assert folder.poll().rows["bravo"].best == pytest.approx(good["val_loss"])


def test_metrics_deleted_and_written_again_start_afresh(runs_dir: Path) -> None:
    # Once the deleted file's best value stayed with the new file.
    metrics = runs_dir / "bravo" / "metrics.jsonl"
    folder = RunsFolder(runs_dir, now=fixed_now)
    folder.watch({"bravo"})
    folder.poll()
    metrics.unlink()
    folder.poll()
    worse = [metrics_line(e, 0.1) for e in (1, 2)]
    append_jsonl(metrics, worse)
    snapshot = folder.poll()
    assert snapshot.rows["bravo"].best == pytest.approx(worse[1]["val_loss"])
    assert [r["epoch"] for r in snapshot.details["bravo"].history] == [1, 2]


def test_sweep_with_unreadable_spec_and_no_trial_running(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, "s", [{"state": "finished"}] * 2)
    (sweep / "sweep.json").write_text("[]")
    # Whether every planned trial has ended is unknown: not "finished".
    assert RunsFolder(tmp_path, now=fixed_now).poll().rows["s"].state == "unreadable"


def test_heatmap_shows_values_as_they_are_not_as_markup() -> None:
    from tui.sweep_screen import heatmap

    trials = [
        runs.RunRow(
            f"s/t{i}",
            f"t{i}",
            "s",
            "run",
            "finished",
            best=0.5 + i,
            params={"model.activation": name, "training.lr": 0.1},
        )
        for i, name in enumerate(("[b]relu", "tanh"))
    ]
    text = rendered(heatmap(trials, "model.activation", "training.lr"))
    assert "[b]relu" in text
