"""The incremental readers: torn and bad lines, truncation, replacement."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from tests.tui.conftest import case_path
from tui import follow
from tui.follow import JsonFile, JsonlFollower
from tui.runs import RunDetail


def _lines(*epochs: int) -> str:
    return "".join(json.dumps({"epoch": e, "loss": 1 / e}) + "\n" for e in epochs)


def _epochs(records: list[dict]) -> list[int]:
    return [record["epoch"] for record in records]


def test_missing_file_is_empty_until_it_appears(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    follower = JsonlFollower(path)
    assert follower.poll().records == []
    assert follower.notice is None
    path.write_text(_lines(1, 2))
    assert _epochs(follower.poll().records) == [1, 2]


def test_reads_only_appended_bytes(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text(_lines(1, 2))
    follower = JsonlFollower(path)
    assert _epochs(follower.poll().records) == [1, 2]
    assert follower.poll().records == []
    with open(path, "a") as handle:
        handle.write(_lines(3))
    assert _epochs(follower.poll().records) == [3]
    assert follower.bytes_read == path.stat().st_size


def test_torn_line_waits_for_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    whole = _lines(1)
    path.write_text(whole[:7])
    follower = JsonlFollower(path)
    assert follower.poll().records == []
    with open(path, "a") as handle:
        handle.write(whole[7:-1])
    assert follower.poll().records == []
    with open(path, "a") as handle:
        handle.write("\n")
    assert _epochs(follower.poll().records) == [1]
    assert follower.bad_count == 0


def test_garbage_lines_are_skipped_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text(_lines(1) + "not json\n" + "\n" + "[1, 2]\n" + _lines(2))
    follower = JsonlFollower(path)
    assert _epochs(follower.poll().records) == [1, 2]
    assert follower.bad_count == 2
    first, second = follower.bad_lines
    assert (first.path, first.line) == (path, 2)
    assert "not JSON" in first.error
    assert (second.line, second.excerpt) == (4, "[1, 2]")
    assert "metrics.jsonl:2" in first.describe()


def test_truncation_starts_again_without_doubling_epochs(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text(_lines(1, 2, 3, 4))
    detail = RunDetail(tmp_path, "run")
    detail.poll()
    assert sorted(detail.history) == [1, 2, 3, 4]
    # Truncated in place (same inode) and rewritten shorter.
    with open(path, "r+") as handle:
        handle.truncate(0)
        handle.write(_lines(1, 2))
    detail.poll()
    assert [r["epoch"] for r in detail.snapshot().history] == [1, 2]
    with open(path, "a") as handle:
        handle.write(_lines(3))
    detail.poll()
    assert [r["epoch"] for r in detail.snapshot().history] == [1, 2, 3]


def test_atomic_replacement_starts_again(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text(_lines(1, 2))
    follower = JsonlFollower(path)
    follower.poll()
    tmp = tmp_path / "metrics.jsonl.tmp-1"
    tmp.write_text(_lines(1, 2, 3, 4, 5))
    os.replace(tmp, path)
    chunk = follower.poll()
    assert chunk.reset
    assert _epochs(chunk.records) == [1, 2, 3, 4, 5]
    detail = RunDetail(tmp_path, "run")
    detail.poll()
    tmp.write_text(_lines(1, 2, 3))
    os.replace(tmp, path)
    detail.poll()
    assert [r["epoch"] for r in detail.snapshot().history] == [1, 2, 3]


def test_deleted_file_gives_a_notice_and_no_error(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text(_lines(1))
    follower = JsonlFollower(path)
    follower.poll()
    path.unlink()
    chunk = follower.poll()
    # What was read described the deleted file: readers must forget it.
    assert chunk.records == [] and chunk.reset
    assert follower.notice is not None and "disappeared" in follower.notice
    path.write_text(_lines(1))
    assert _epochs(follower.poll().records) == [1]


def test_deleted_folder_gives_no_error(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(_lines(1))
    detail = RunDetail(run, "run")
    detail.poll()
    shutil.rmtree(run)
    detail.poll()
    assert detail.snapshot().status is None


def test_permission_errors_never_raise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text(_lines(1))
    status = tmp_path / "status.json"
    status.write_text('{"state": "running"}')

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(follow, "open", refuse, raising=False)
    follower = JsonlFollower(path)
    assert follower.poll().records == []
    assert follower.notice is not None and "Permission denied" in follower.notice
    json_file = JsonFile(status)
    assert not json_file.poll()
    assert json_file.notice is not None

    monkeypatch.setattr(follow.os, "stat", refuse)
    assert follower.poll().records == []
    assert not json_file.poll()
    monkeypatch.undo()
    assert _epochs(follower.poll().records) == [1]
    assert json_file.poll() and json_file.value == {"state": "running"}


def test_json_file_is_parsed_only_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    path.write_text('{"epoch": 1}')
    json_file = JsonFile(path)
    assert json_file.poll()
    assert not json_file.poll()
    tmp = tmp_path / "status.json.tmp-1"
    tmp.write_text('{"epoch": 2}')
    os.replace(tmp, path)
    assert json_file.poll() and json_file.value == {"epoch": 2}
    path.write_text("[")
    assert not json_file.poll()
    assert json_file.value == {"epoch": 2}
    assert json_file.notice is not None and "not JSON" in json_file.notice


def test_b18_torn_last_line(tmp_path: Path) -> None:
    """B18: epochs 1-2 without complaint, then 3 exactly once after the append."""
    path = tmp_path / "metrics.jsonl"
    shutil.copyfile(case_path("B18_metrics_partial.jsonl"), path)
    follower = JsonlFollower(path)
    assert _epochs(follower.poll().records) == [1, 2]
    assert follower.bad_count == 0 and follower.notice is None
    with open(path, "ab") as handle:
        handle.write(case_path("B18_metrics_remainder.txt").read_bytes())
    assert _epochs(follower.poll().records) == [3]
    assert follower.poll().records == []
    assert follower.bad_count == 0


def test_b18_malformed_line_in_the_middle(tmp_path: Path) -> None:
    """B18: a complete but malformed line is reported with file and line."""
    partial = case_path("B18_metrics_partial.jsonl").read_bytes()
    remainder = case_path("B18_metrics_remainder.txt").read_bytes()
    first, second, torn = partial.split(b"\n")
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(first + b"\n" + b'{"epoch": 2, "loss"\n' + second + b"\n" + torn)
    follower = JsonlFollower(path)
    assert _epochs(follower.poll().records) == [1, 2]
    with open(path, "ab") as handle:
        handle.write(remainder)
    assert _epochs(follower.poll().records) == [3]
    assert follower.bad_count == 1
    assert (follower.bad_lines[0].path, follower.bad_lines[0].line) == (path, 2)


def test_b19_rereading_on_change(tmp_path: Path) -> None:
    """B19: lines appended 20 ms apart; each epoch once; bytes read <= 2x size."""
    lines = case_path("B19_metrics_10lines.jsonl").read_bytes().splitlines(True)
    path = tmp_path / "metrics.jsonl"
    path.touch()
    done = threading.Event()

    def write() -> None:
        for line in lines:
            with open(path, "ab") as handle:
                handle.write(line)
            time.sleep(0.02)
        done.set()

    writer = threading.Thread(target=write)
    follower = JsonlFollower(path)
    seen: list[int] = []
    writer.start()
    while not done.is_set():
        seen += _epochs(follower.poll().records)
        time.sleep(0.005)
    writer.join()
    seen += _epochs(follower.poll().records)
    assert seen == list(range(1, 11))
    assert follower.bytes_read <= 2 * path.stat().st_size
