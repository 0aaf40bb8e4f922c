"""Run files on disk: atomic JSON, whole JSONL lines, names, locks, model.npz.

Real files in a temporary folder; the model file is damaged in each way a
reader could meet (missing key, wrong shape, wrong dtype, non-finite values,
not an archive at all) and must fail with a RunError naming the problem.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mlp_backend.data import Standardizer
from mlp_backend.errors import RunError, UsageError
from mlp_backend.persist import SavedModel, load_model, save_model
from mlp_backend.runs import (
    FORMAT,
    FolderLock,
    RunFolder,
    append_jsonl,
    check_name,
    create_folder,
    plain,
    read_json,
    replace_bytes,
    write_json,
)

# JSON writing.


def test_write_json_replaces_content_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "status.json"
    write_json(path, {"state": "running", "epoch": 1})
    write_json(path, {"state": "finished", "epoch": 2})
    assert json.loads(path.read_text()) == {
        "format": FORMAT,
        "state": "finished",
        "epoch": 2,
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]


def test_write_json_failure_keeps_old_content(tmp_path):
    path = tmp_path / "summary.json"
    write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        write_json(path, {"a": object()})
    assert json.loads(path.read_text())["a"] == 1


def test_a_write_that_fails_on_the_disk_keeps_the_old_file_and_no_temporary(
    tmp_path, monkeypatch
):
    path = tmp_path / "out.csv"
    path.write_bytes(b"old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        replace_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_write_json_never_writes_nan(tmp_path):
    path = tmp_path / "s.json"
    write_json(
        path, {"loss": float("nan"), "best": np.float32("inf"), "ok": np.float64(0.5)}
    )
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"format": FORMAT, "loss": None, "best": None, "ok": 0.5}


def test_append_jsonl_writes_whole_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    for epoch in range(1, 51):
        append_jsonl(path, {"epoch": epoch, "loss": np.float32(1.0 / epoch)})
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    lines = raw.decode().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, 51))
    assert all(json.loads(line)["format"] == FORMAT for line in lines)


def test_append_jsonl_from_concurrent_processes_never_interleaves(tmp_path):
    path = tmp_path / "metrics.jsonl"
    code = (
        "import sys; from pathlib import Path\n"
        "from mlp_backend.runs import append_jsonl\n"
        "for i in range(200): append_jsonl(Path(sys.argv[1]), "
        "{'who': sys.argv[2], 'i': i, 'pad': 'x' * 2000})\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), w]) for w in "ab"]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == 400
    for who in "ab":
        assert [r["i"] for r in records if r["who"] == who] == list(range(200))


def test_plain_turns_numpy_into_python_and_nonfinite_into_none():
    value = plain(
        {
            "i": np.int64(3),
            "f": np.float32(0.25),
            "d": np.float64(2.5),
            "b": np.bool_(True),
            "nan": np.float64("nan"),
            "inf": float("-inf"),
            "arr": np.array([1.0, np.nan]),
            "nested": [(np.int32(1), {"x": np.float16(0.5)})],
            "path": Path("a/b"),
            7: "key",
        }
    )
    assert value == {
        "i": 3,
        "f": 0.25,
        "d": 2.5,
        "b": True,
        "nan": None,
        "inf": None,
        "arr": [1.0, None],
        "nested": [[1, {"x": 0.5}]],
        "path": "a/b",
        "7": "key",
    }
    assert (
        type(value["i"]) is int
        and type(value["f"]) is float
        and type(value["b"]) is bool
    )
    with pytest.raises(TypeError, match="set"):
        plain({"s": {1, 2}})


def test_read_json_errors_name_the_file(tmp_path):
    with pytest.raises(RunError, match="missing.json: not found"):
        read_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"epoch": 1')
    with pytest.raises(RunError, match="bad.json: cannot be read as JSON"):
        read_json(bad)


# Names and folders.


@pytest.mark.parametrize("name", ["run1", "a.b-c_d", "2026-01-01", "X" * 128])
def test_check_name_accepts_plain_names(name):
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "..",
        "../x",
        "a/../b",
        "/abs",
        "a/b",
        "a\\b",
        ".hidden",
        "-x",
        "a..b",
        "sp ace",
        "X" * 129,
        "nul\0",
    ],
)
def test_check_name_rejects_escapes(name):
    with pytest.raises(UsageError, match="--name"):
        check_name(name)


def test_create_folder_never_reuses_and_stays_inside_root(tmp_path):
    root = tmp_path / "runs"
    first = create_folder(root, "r")
    assert first == root / "r" and first.is_dir()
    (first / "keep").write_text("x")
    with pytest.raises(RunError, match="exists already"):
        create_folder(root, "r")
    assert (first / "keep").read_text() == "x"
    with pytest.raises(UsageError):
        create_folder(root, "../outside")
    assert not (tmp_path / "outside").exists()
    fresh = {create_folder(root, None).name for _ in range(5)}
    assert len(fresh) == 5


def test_run_folder_status_keeps_fields_and_rejects_unknown_state(tmp_path):
    folder = RunFolder(tmp_path)
    folder.set_status("running", epoch=1, epochs=5)
    folder.set_status("finished", epoch=5)
    status = read_json(tmp_path / "status.json")
    assert (
        status["state"] == "finished" and status["epoch"] == 5 and status["epochs"] == 5
    )
    assert status["pid"] == os.getpid() and status["host"] == socket.gethostname()
    with pytest.raises(AssertionError):
        folder.set_status("completed")
    assert not folder.stop_requested
    (tmp_path / "stop.request").touch()
    assert folder.stop_requested


@pytest.mark.parametrize("sync", [True, False])
def test_run_folder_waits_for_the_disk_only_when_made_to(tmp_path, monkeypatch, sync):
    """A sweep's trial folders (sync=False) write the same files, unsynced."""
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real(fd))
    folder = RunFolder(tmp_path, sync=sync)
    folder.write_config({"epochs": 3})
    folder.set_status("running", epoch=0)
    folder.set_status("running", sync=False, epoch=1)
    folder.write_summary({"state": "finished"})
    assert len(synced) == (3 if sync else 0)
    assert read_json(tmp_path / "config.json")["epochs"] == 3
    assert read_json(tmp_path / "status.json")["epoch"] == 1
    assert read_json(tmp_path / "summary.json")["state"] == "finished"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "config.json",
        "status.json",
        "summary.json",
    ]


# The sweep lock.


def test_second_lock_fails_with_clear_message(tmp_path):
    path = tmp_path / "sweep.lock"
    with FolderLock(path):
        assert path.read_text() == f"{socket.gethostname()} {os.getpid()}"
        with pytest.raises(RunError, match="in use by another sweep") as info:
            FolderLock(path).__enter__()
        assert str(os.getpid()) in str(info.value) and str(path) in str(info.value)
    assert not path.exists()


def test_stale_lock_of_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = tmp_path / "sweep.lock"
    path.write_text(f"{socket.gethostname()} {dead.pid}")
    with FolderLock(path):
        assert path.read_text().split()[1] == str(os.getpid())
    assert not path.exists()


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc for zombies")
def test_lock_of_a_killed_process_not_yet_reaped_is_taken_over(tmp_path):
    # Right after a kill -9 its parent may not have reaped it yet: a resume
    # then said the folder was in use, a report that the sweep was running.
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    stat = Path(f"/proc/{zombie.pid}/stat")
    deadline = time.monotonic() + 30
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    path = tmp_path / "sweep.lock"
    path.write_text(f"{socket.gethostname()} {zombie.pid}")
    try:
        assert not FolderLock(path).held()
        with FolderLock(path):
            assert path.read_text().split()[1] == str(os.getpid())
    finally:
        zombie.wait()


def test_lock_of_live_process_elsewhere_is_respected(tmp_path):
    path = tmp_path / "sweep.lock"
    path.write_text(f"{socket.gethostname()} 1")  # pid 1 is alive
    with pytest.raises(RunError, match="in use"):
        FolderLock(path).__enter__()
    path.write_text(f"other-host-{socket.gethostname()} 999999")
    with pytest.raises(RunError, match="in use"):
        FolderLock(path).__enter__()
    assert path.exists()


# model.npz.


def saved_model() -> SavedModel:
    rng = np.random.default_rng(0)
    params = [
        rng.normal(size=(3, 4)),
        np.zeros(4),
        rng.normal(size=(4, 1)),
        np.zeros(1),
    ]
    config = {
        "task": "binary",
        "data": {"features": 3},
        "model": {"hidden": [4], "outputs": 1, "activation": "tanh"},
    }
    return SavedModel(params, Standardizer(np.zeros(3), np.ones(3)), ["h", "g"], config)


def test_model_round_trip(tmp_path):
    path = tmp_path / "model.npz"
    model = saved_model()
    save_model(path, model)
    back = load_model(path)
    for a, b in zip(model.params, back.params, strict=True):
        np.testing.assert_array_equal(a, b)
    assert back.classes == ["h", "g"] and back.config == model.config
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]
    with np.load(path, allow_pickle=False) as npz:
        assert int(npz["format"]) == FORMAT


def rewrite(path: Path, **changes) -> None:
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    np.savez(path, **arrays)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"W1": None}, "missing array 'W1'"),
        ({"b0": np.zeros(5)}, r"'b0' has shape \(5,\), expected \(4,\)"),
        ({"W0": np.zeros((4, 3))}, r"'W0' has shape \(4, 3\), expected \(3, 4\)"),
        ({"W0": np.zeros((3, 4), dtype=np.int64)}, "'W0' has dtype int64"),
        ({"W1": np.array([[1.0], [np.nan], [0.0], [0.0]])}, "'W1' holds non-finite"),
        ({"b1": np.array([np.inf])}, "'b1' holds non-finite"),
        ({"config": None}, "missing array 'config'"),
        ({"config": np.array('{"model": {}}')}, "saved config is incomplete"),
        ({"mean": np.zeros(2)}, "standardiser does not have 3 columns"),
    ],
)
def test_damaged_model_gets_clear_error(tmp_path, changes, message):
    path = tmp_path / "model.npz"
    save_model(path, saved_model())
    rewrite(path, **changes)
    with pytest.raises(RunError, match=message) as info:
        load_model(path)
    assert "model.npz" in str(info.value)


def test_pickled_object_array_is_refused(tmp_path):
    path = tmp_path / "model.npz"
    save_model(path, saved_model())
    rewrite(path, classes=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(RunError, match="model.npz"):
        load_model(path)


@pytest.mark.parametrize("content", [b"", b"not a zip archive", b"PK\x03\x04garbage"])
def test_non_npz_file_gets_clear_error(tmp_path, content):
    path = tmp_path / "model.npz"
    path.write_bytes(content)
    with pytest.raises(RunError, match="not a readable model file"):
        load_model(path)


def test_missing_model_file(tmp_path):
    with pytest.raises(RunError, match="no saved model"):
        load_model(tmp_path / "model.npz")


def test_single_npy_array_instead_of_archive_gets_clear_error(tmp_path):
    path = tmp_path / "model.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(RunError, match="model.npz"):
        load_model(path)
