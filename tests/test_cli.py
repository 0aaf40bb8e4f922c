"""The ``mlp-backend`` command line, in process (click's runner) and for real.

Training runs use a 400-row subset of MAGIC written to a file named
``magic04.data`` (so it is read in the MAGIC layout); the interruption tests
run the real command on the full file in a subprocess and stop it with SIGINT
or a ``stop.request`` file. Case B09 puts the fake CuPy of the shared folder
first on ``PYTHONPATH``; the other backend tests use the real CuPy installed
here, which finds no device.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mlp_backend.backend import cupy_problem
from mlp_backend.checkpoint import CheckpointLog, last_record
from mlp_backend.cli import ReaderGoneSafe, main
from mlp_backend.data import MAGIC_FEATURES
from mlp_backend.errors import EXIT_INTERRUPTED, OutputError
from mlp_backend.runs import RunFolder
from mlp_backend.train import MemberState
from mlp_backend.train_command import run_evaluate
from tests.conftest import CASES, case_file

TPR_KEYS = ["0.01", "0.02", "0.05", "0.1", "0.2"]
FAST = ["--epochs", "2", "--hidden", "8", "--batch-size", "64"]


@pytest.fixture
def subset(tmp_path, magic_path) -> Path:
    """200 gamma and 200 hadron rows of MAGIC, in a file MAGIC's loader reads."""
    lines = magic_path.read_text().splitlines()
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "magic04.data"
    path.write_text("\n".join(lines[:200] + lines[-200:]) + "\n")
    return path


def strict_json(text: str):
    def refuse(name):
        raise AssertionError(f"non-JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def command(*args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    """The real ``mlp-backend`` in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    code = "from mlp_backend.cli import main; main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
        **kwargs,
    )


def run_command(*args: str, env: dict | None = None, timeout: float = 120):
    proc = command(*args, env=env)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


@pytest.fixture
def trained(tmp_path, subset) -> Path:
    runs = tmp_path / "runs"
    result = invoke("train", "--data", subset, "--runs-dir", runs, "--name", "r", *FAST)
    assert result.exit_code == 0, result.output
    return runs / "r"


# train writes the documented run files.


def test_train_writes_the_run_files(trained):
    assert entries(trained) == [
        "config.json",
        "events.jsonl",
        "metrics.jsonl",
        "model.npz",
        "status.json",
        "summary.json",
    ]
    config = strict_json((trained / "config.json").read_text())
    status = strict_json((trained / "status.json").read_text())
    summary = strict_json((trained / "summary.json").read_text())
    lines = (trained / "metrics.jsonl").read_text().splitlines()
    records = [strict_json(line) for line in lines]
    events = (trained / "events.jsonl").read_text().splitlines()
    assert "training on cpu" in strict_json(events[0])["message"]
    for obj in (config, status, summary, *records):
        assert obj["format"] == 1
    assert [r["epoch"] for r in records] == [1, 2]
    assert config["training"]["epochs"] == 2 and config["model"]["hidden"] == [8]
    assert config["backend"]["name"] == "numpy" and config["data"]["rows"] == 400
    assert status["state"] == "finished" and status["epoch"] == 2
    assert summary["state"] == "finished" and summary["epochs_run"] == 2
    test = summary["test"]
    for key in ("accuracy", "log_loss", "roc_auc", "f1"):
        assert isinstance(test[key], float) and np.isfinite(test[key])
    assert 0.0 <= test["accuracy"] <= 1.0 and 0.0 <= test["roc_auc"] <= 1.0
    assert sorted(test["tpr_at_fpr"], key=float) == TPR_KEYS
    assert all(0.0 <= v <= 1.0 for v in test["tpr_at_fpr"].values())


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_a_runs_dir_that_cannot_hold_folders_is_a_usage_error(
    command, subset, tmp_path
):
    """A file on the way ended in a NotADirectoryError traceback, exit code 1."""
    blocker = tmp_path / "afile"
    blocker.write_text("")
    extra = ["--workers", "1"] * (command == "sweep")
    result = invoke(
        command, "--data", subset, "--runs-dir", blocker / "sub", *FAST, *extra
    )
    assert result.exit_code == 2, result.output
    assert f"error: --runs-dir {blocker / 'sub'}: cannot make a run folder" in (
        result.output
    )
    assert blocker.read_text() == ""


def test_a_run_stopped_in_its_first_epoch_records_its_device(
    tmp_path, subset, monkeypatch
):
    import mlp_backend.job

    # A stop request seen after the first batch: no epoch ends.
    monkeypatch.setattr(mlp_backend.job.StopFlag, "__call__", lambda self: True)
    runs = tmp_path / "runs"
    result = invoke("train", "--data", subset, "--runs-dir", runs, "--name", "s", *FAST)
    assert result.exit_code == 0, result.output
    status = strict_json((runs / "s" / "status.json").read_text())
    assert status["state"] == "stopped" and status["epoch"] == 0
    assert set(status["device"]) == {"name", "memory_used", "memory_total"}


def test_existing_name_is_never_overwritten(trained, subset):
    before = {p.name: p.read_bytes() for p in trained.iterdir()}
    result = invoke(
        "train", "--data", subset, "--runs-dir", trained.parent, "--name", "r", *FAST
    )
    assert result.exit_code == 2
    assert "exists already" in result.output
    assert {p.name: p.read_bytes() for p in trained.iterdir()} == before


@pytest.mark.parametrize("name", ["../x", "/abs", "a/b", "..", ".hidden"])
def test_escaping_names_are_rejected(tmp_path, subset, name):
    work = tmp_path / "work"
    work.mkdir()
    result = invoke(
        "train", "--data", subset, "--runs-dir", work / "runs", "--name", name, *FAST
    )
    assert result.exit_code == 2
    assert "--name" in result.output
    assert entries(work / "runs") == []
    assert entries(work) in ([], ["runs"])
    assert entries(tmp_path) == ["data", "work"]
    assert not Path("/abs").exists()


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--batch-size", "0"], "--batch-size"),
        (["--batch-size", "-4"], "--batch-size"),
        (["--epochs", "-1"], "--epochs"),
        (["--epochs", "0"], "--epochs"),
        (["--lr", "abc"], "--lr"),
        (["--lr", "-0.1"], "--lr"),
        (["--lr", "nan"], "--lr"),
        (["--activation", "nope"], "--activation"),
        (["--hidden", "64,x"], "--hidden"),
        (["--hidden", "0"], "--hidden"),
        # As written, not as a Python tuple ((8, 0)).
        (["--hidden", "8x0"], "--hidden: widths must be positive integers, got '8x0'"),
        (["--momentum", "1.5"], "--momentum"),
        (["--weight-decay", "-1"], "--weight-decay"),
        (["--patience", "-2"], "--patience"),
        (["--optimizer", "rmsprop"], "--optimizer"),
        (["--metric", "val_mse"], "--metric"),
    ],
)
def test_bad_values_exit_2_naming_the_option_without_a_run_folder(
    tmp_path, subset, args, option
):
    runs = tmp_path / "runs"
    result = invoke(
        "train", "--data", subset, "--runs-dir", runs, "--epochs", "2", *args
    )
    assert result.exit_code == 2, result.output
    assert option in result.output
    assert "Traceback" not in result.output
    assert entries(runs) == []


def test_data_file_with_short_row_names_file_and_line(tmp_path):
    runs = tmp_path / "runs"
    path = case_file("B12_short_row.csv")
    result = invoke("train", "--data", path, "--runs-dir", runs, *FAST)
    assert result.exit_code == 2
    assert "B12_short_row.csv" in result.output and "line 3" in result.output
    assert "11" in result.output and "10" in result.output
    assert entries(runs) == []


# Backends: the real CuPy here finds no device.


needs_no_gpu = pytest.mark.skipif(
    cupy_problem() is None, reason="a CUDA device works here"
)


@needs_no_gpu
def test_case_b15_a_library_warning_is_one_line_of_the_log(tmp_path):
    code, _, err = run_command(
        "train",
        "--data",
        case_file("B15_constant_column.csv"),
        "--runs-dir",
        tmp_path / "runs",
        "--epochs",
        "1",
    )
    assert code == 0, err
    said = [line for line in err.splitlines() if "constant" in line]
    assert said == [
        "warning: constant feature column(s) col5 (column 5): standardised to "
        "0.0; they carry no information"
    ], err
    assert "MLPBackendWarning" not in err


def test_explicit_cupy_fails_with_one_sentence(tmp_path, subset):
    runs = tmp_path / "runs"
    code, out, err = run_command(
        "train", "--data", subset, "--runs-dir", runs, "--backend", "cupy", *FAST
    )
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --backend cupy:")
    assert "CUDA" in lines[0] and "--backend numpy" in lines[0]
    assert entries(runs) == []


@needs_no_gpu
def test_auto_backend_logs_the_fallback(tmp_path, subset):
    result = invoke(
        "train",
        "--data",
        subset,
        "--runs-dir",
        tmp_path / "runs",
        "--backend",
        "auto",
        *FAST,
    )
    assert result.exit_code == 0
    fallback = [
        line for line in result.output.splitlines() if line.startswith("backend auto")
    ]
    assert len(fallback) == 1
    assert cupy_problem() in fallback[0] and fallback[0].endswith("using numpy")


def test_case_b09_fake_cupy_without_device(tmp_path, subset):
    stub = case_file("B09_fake_cupy_nodevice")
    env = {
        "PYTHONPATH": os.pathsep.join([str(stub), os.environ.get("PYTHONPATH", "")]),
        "MLP_BACKEND": "",
    }
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import cupy, mlp_backend; print(cupy.__file__); "
            "from mlp_backend.backend import get_backend\n"
            "print(get_backend('auto').name)",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    assert str(stub) in probe.stdout and probe.stdout.strip().endswith("numpy")

    runs = tmp_path / "runs"
    code, _, err = run_command(
        "train",
        "--data",
        subset,
        "--runs-dir",
        runs,
        "--name",
        "auto",
        "--backend",
        "auto",
        *FAST,
        env=env,
    )
    assert code == 0, err
    said = [line for line in err.splitlines() if line.startswith("backend auto")]
    assert (
        len(said) == 1 and "cudaErrorNoDevice" in said[0] and "using numpy" in said[0]
    )

    code, _, err = run_command(
        "train",
        "--data",
        subset,
        "--runs-dir",
        runs,
        "--name",
        "gpu",
        "--backend",
        "cupy",
        *FAST,
        env=env,
    )
    assert code == 2
    assert (
        "Traceback" not in err
        and "cudaErrorNoDevice" in err
        and "--backend cupy" in err
    )
    assert entries(runs) == ["auto"]


@pytest.mark.parametrize("refresh", ["nan", "1e-9", "inf", "0"])
def test_monitor_refuses_a_refresh_that_would_spin_or_never_draw(tmp_path, refresh):
    result = invoke("monitor", tmp_path, "--refresh", refresh)
    assert result.exit_code == 2
    assert result.output.startswith(
        "error: --refresh: expected seconds from 0.05 to 3600, got "
    ), result.output


def test_the_monitor_needs_a_terminal(tmp_path):
    # Into a pipe it wrote its escape codes; CliRunner's streams are no terminal.
    needs = "the monitor needs a terminal on standard input and output"
    result = invoke("monitor", tmp_path)
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {needs}"), result.output
    runs = tmp_path / "runs"
    result = invoke("train", "--monitor", "--runs-dir", runs, *FAST)
    assert result.exit_code == 2
    assert result.output.startswith(f"error: --monitor: {needs}"), result.output
    # Refused before the job started.
    assert not runs.exists()


def test_info_runs():
    result = invoke("info")
    assert result.exit_code == 0, result.output
    assert "mlp-backend 0.1.0" in result.output
    assert "cupy" in result.output and "backend now:" in result.output
    assert "MAGIC data:" in result.output
    from importlib import metadata

    assert f"textual {metadata.version('textual')}" in result.output
    assert f"array-api-compat {metadata.version('array-api-compat')}" in result.output


# evaluate and predict read the saved run.


def test_info_goes_on_past_what_it_finds_wrong(tmp_path, monkeypatch):
    monkeypatch.setenv("MLP_BACKEND", "array_api_strict_nope")
    monkeypatch.setenv("MLP_BACKEND_DATA", str(tmp_path / "missing.data"))
    result = invoke("info")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("backend now: none (") for line in lines), lines
    assert lines[-1] == (
        f"MAGIC data: {tmp_path / 'missing.data'} (from MLP_BACKEND_DATA) does not "
        "exist"
    )
    table = tmp_path / "mine.csv"
    table.write_text("1,2,a\n")
    result = invoke("info", "--data", table)
    assert result.output.splitlines()[-1] == (
        f"data: {table} (read as a general table: not magic04.data)"
    )


def test_evaluate_reproduces_the_summary(trained):
    summary = strict_json((trained / "summary.json").read_text())["test"]
    report = run_evaluate(trained, None, None)
    assert set(report) == set(summary)
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"):
        np.testing.assert_allclose(report[key], summary[key], rtol=1e-5, err_msg=key)
    assert report["confusion_matrix"] == summary["confusion_matrix"]
    for key in TPR_KEYS:
        np.testing.assert_allclose(
            report["tpr_at_fpr"][key], summary["tpr_at_fpr"][key], rtol=1e-5
        )
    result = invoke("evaluate", trained)
    assert result.exit_code == 0 and "accuracy" in result.output
    assert f"{summary['accuracy']:.4f}" in result.output


def test_predict_writes_class_and_probabilities(trained, subset, tmp_path):
    out = tmp_path / "pred.csv"
    result = invoke("predict", trained, subset, "-o", out)
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(out.read_text().splitlines()))
    assert rows[0] == ["class", "p_h", "p_g"]
    assert len(rows) == 401
    for label, p_h, p_g in rows[1:]:
        assert abs(float(p_h) + float(p_g) - 1.0) < 2e-6
        assert label == ("g" if float(p_g) > 0.5 else "h")
    # The same rows without their label column give the same answers.
    features = tmp_path / "features.csv"
    features.write_text(
        "".join(
            line.rsplit(",", 1)[0] + "\n" for line in subset.read_text().splitlines()
        )
    )
    result = invoke("predict", trained, features)
    assert result.exit_code == 0, result.output
    assert list(csv.reader(result.stdout.splitlines())) == rows


def test_predict_output_that_cannot_be_written_is_exit_3_and_no_file(
    trained, subset, tmp_path, monkeypatch
):
    import mlp_backend.runs

    def full(path, data, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(mlp_backend.runs, "replace_bytes", full)
    out = tmp_path / "pred.csv"
    result = invoke("predict", trained, subset, "-o", out)
    assert result.exit_code == 3
    assert result.output.endswith(
        f"error: -o/--output: cannot write {out} (No space left on device)\n"
    )
    assert not out.exists()


def test_standard_output_that_cannot_be_written_is_an_output_error():
    class Full(io.StringIO):
        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

    read, written = os.pipe()
    stream = Full()
    stream.fileno = lambda: written
    try:
        with pytest.raises(OutputError, match=r"^cannot write standard output \(No"):
            ReaderGoneSafe(stream, "stdout").write("rows")
    finally:
        os.close(read)
        os.close(written)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("command", ["sweep", "train"])
def test_a_full_standard_output_fails_every_command_once(
    small_magic, tmp_path, command
):
    """click probes the stream with an empty write and swallows what it
    raises: the sweep command ended with exit code 0, its output lost."""
    args = ["--hidden", "4", "--epochs", "1", "--data", str(small_magic)]
    args += ["--runs-dir", str(tmp_path), "--backend", "numpy"]
    if command == "sweep":
        args += ["--lr", "0.1", "--workers", "1"]
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "mlp_backend", command, *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    assert done.returncode == 3, done.stderr
    assert done.stderr.endswith(
        "error: cannot write standard output (No space left on device)\n"
    )
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("labelled", [True, False])
def test_predict_names_the_bad_row_of_either_layout(
    trained, subset, tmp_path, labelled
):
    """Line 3 has a field too many: the error names it, whether the file
    carries the label column or not (not its label read as a feature)."""
    lines = subset.read_text().splitlines()
    if not labelled:
        lines = [line.rsplit(",", 1)[0] for line in lines]
    lines[2] += ",1.5"
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    result = invoke("predict", trained, bad)
    assert result.exit_code == 2, result.output
    fields = 11 if labelled else 10
    assert f"line 3: expected {fields} fields, found {fields + 1}" in result.output


MAGIC_HEADER = ",".join(MAGIC_FEATURES)
OTHER_HEADER = ",".join(f"f{j}" for j in range(10))
RENAMED = (
    "column 1 is named 'f0', the model expects 'fLength' (model features: "
    f"{', '.join(MAGIC_FEATURES)})"
)


@pytest.mark.parametrize(
    "header, edit, problem",
    [
        # Labels no MAGIC model knows, under another model's names.
        (f"{OTHER_HEADER},class", lambda row: row[:-1] + "q", RENAMED),
        # MAGIC's names, and an id column before them.
        (
            f"id,{MAGIC_HEADER},class",
            lambda row: f"7,{row}",
            "has 11 feature columns, the model expects 10 "
            f"({', '.join(MAGIC_FEATURES)}); 'id' is not among them",
        ),
        # Another model's names, and a feature that is no number.
        (
            f"{OTHER_HEADER},class",
            lambda row: "abc" + row[row.index(",") :],
            RENAMED,
        ),
    ],
    ids=["labels", "id-column", "feature"],
)
@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_a_header_for_another_model_is_the_error_before_any_row(
    trained, subset, tmp_path, command, header, edit, problem
):
    """predict and evaluate compare the header with the model's features
    before they read a row: the same one line, not a cell the header makes
    unreadable (nor the label column read as a feature)."""
    rows = subset.read_text().splitlines()
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([header, *map(edit, rows)]) + "\n")
    args = [trained, bad] if command == "predict" else [trained, "--data", bad]
    result = invoke(command, *args)
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1] == f"error: {bad}: {problem}"


def test_evaluate_lists_the_allowed_labels_sorted(trained, subset, tmp_path):
    rows = subset.read_text().splitlines()
    rows[2] = rows[2][: rows[2].rindex(",")] + ",q"
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([f"{MAGIC_HEADER},class", *rows]) + "\n")
    result = invoke("evaluate", trained, "--data", bad)
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1] == (
        f"error: {bad}, line 4, column 11 (class): found 'q'; allowed labels are "
        "'g', 'h'"
    )


def test_evaluate_of_a_folder_without_model(tmp_path):
    result = invoke("evaluate", tmp_path)
    assert result.exit_code == 2 and "model.npz" in result.output


# Interruption of a real training process.


def wait_for_first_epoch(
    proc: subprocess.Popen, metrics: Path, limit: float = 90
) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if metrics.exists() and metrics.read_text().count("\n") >= 1:
            return
        if proc.poll() is not None:
            pytest.fail(f"training ended early: {proc.communicate()[1]}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("no epoch recorded in time")


def check_stopped(folder: Path, code: int, err: str, expected: int) -> None:
    assert code == expected, err
    assert "Traceback" not in err
    status = strict_json((folder / "status.json").read_text())
    summary = strict_json((folder / "summary.json").read_text())
    assert status["state"] == summary["state"] == "stopped"
    assert 1 <= summary["epochs_run"] < 200
    assert (folder / "model.npz").is_file()
    assert isinstance(summary["test"]["accuracy"], float)
    records = [
        strict_json(line)
        for line in (folder / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["epoch"] for r in records] == list(range(1, len(records) + 1))


@pytest.mark.parametrize("how", ["sigint", "stop_request"])
def test_interrupting_a_real_run_stops_cleanly(tmp_path, magic_path, how):
    folder = tmp_path / "runs" / "long"
    proc = command(
        "train",
        "--data",
        magic_path,
        "--runs-dir",
        tmp_path / "runs",
        "--name",
        "long",
        "--epochs",
        "200",
        "--patience",
        "0",
        "--hidden",
        "16",
    )
    try:
        wait_for_first_epoch(proc, folder / "metrics.jsonl")
        if how == "sigint":
            proc.send_signal(signal.SIGINT)
        else:
            (folder / "stop.request").touch()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # A signal is an interruption (130); a stop request is a run ended as asked.
    check_stopped(folder, proc.returncode, err, 130 if how == "sigint" else 0)


def test_cases_folder_is_there_in_ci():
    """Elsewhere the case tests skip without the folder; CI must not skip them."""
    if not os.environ.get("CI"):
        pytest.skip("only CI promises the shared folder")
    assert CASES.is_dir(), f"CI runs without the shared cases at {CASES}"


def test_a_reader_that_goes_away_does_not_stop_the_run(tmp_path, subset):
    # As in `mlp-backend train | head -1`: both pipes closed before any output.
    proc = command(
        "train", "--data", subset, "--runs-dir", tmp_path / "runs", "--name", "p", *FAST
    )
    proc.stdout.close()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 0
    folder = tmp_path / "runs" / "p"
    assert strict_json((folder / "status.json").read_text())["state"] == "finished"
    assert (folder / "model.npz").is_file()


def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path, magic_path):
    runs = tmp_path / "runs"
    options = [
        *("--data", magic_path, "--runs-dir", runs, "--epochs", "12"),
        *("--hidden", "32", "--batch-size", "32", "--patience", "0"),
        *("--dtype", "float64", "--backend", "numpy"),
    ]
    assert invoke("train", *options, "--name", "whole").exit_code == 0
    folder = runs / "killed"
    proc = command("train", *options, "--name", "killed", start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        metrics = folder / "metrics.jsonl"
        while time.monotonic() < deadline and proc.poll() is None:
            if metrics.exists() and metrics.read_text().count("\n") >= 3:
                break
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert not (folder / "summary.json").exists(), "the kill came too late"
    assert (folder / "checkpoint.log").is_file()

    record = last_record((folder / "checkpoint.log").read_bytes())
    assert record is not None
    trained_before = json.loads(record[0])["seconds"]
    assert trained_before > 0

    # Settings come from the run itself; giving one again is refused.
    refused = invoke("train", "--resume", folder, "--epochs", "3")
    assert refused.exit_code == 2 and "leave out --epochs" in refused.output
    tick = time.perf_counter()
    assert invoke("train", "--resume", folder).exit_code == 0
    resumed_for = time.perf_counter() - tick

    whole = strict_json((runs / "whole" / "summary.json").read_text())
    again = strict_json((folder / "summary.json").read_text())
    assert again["state"] == "finished" and again["epochs_run"] == 12
    # The time before the kill counts too, up to the checkpoint resumed from.
    assert trained_before < again["seconds"] < trained_before + resumed_for
    assert again["test"] == whole["test"]
    assert again["best_epoch"] == whole["best_epoch"]
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    epochs = [strict_json(line)["epoch"] for line in lines]
    assert epochs == list(range(1, 13))
    assert "resumed after epoch" in (folder / "events.jsonl").read_text()
    assert not (folder / "checkpoint.log").exists()

    finished = invoke("train", "--resume", folder)
    assert finished.exit_code == 2 and "ended finished" in finished.output


def test_a_run_stopped_in_its_first_epoch_resumes_from_the_start(
    tmp_path, subset, monkeypatch
):
    runs = tmp_path / "runs"
    options = ["--data", subset, "--runs-dir", runs, *FAST, "--dtype", "float64"]
    assert invoke("train", *options, "--name", "whole").exit_code == 0
    # A stop request seen at the first batch: the run ends before any epoch.
    with monkeypatch.context() as patch:
        patch.setattr(RunFolder, "stop_requested", property(lambda self: True))
        assert invoke("train", *options, "--name", "early").exit_code == 0
    folder = runs / "early"
    stopped = strict_json((folder / "summary.json").read_text())
    assert stopped["state"] == "stopped" and stopped["epochs_run"] == 0
    assert not (folder / "checkpoint.log").exists()

    resumed = invoke("train", "--resume", folder)
    assert resumed.exit_code == 0, resumed.output
    whole = strict_json((runs / "whole" / "summary.json").read_text())
    again = strict_json((folder / "summary.json").read_text())
    assert again["state"] == "finished" and again["epochs_run"] == 2
    assert again["test"] == whole["test"]
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    assert [strict_json(line)["epoch"] for line in lines] == [1, 2]
    assert "resumed after epoch 0" in (folder / "events.jsonl").read_text()


def test_a_resume_refuses_a_data_file_that_changed(tmp_path, subset, monkeypatch):
    data = tmp_path / "copy" / "magic04.data"
    data.parent.mkdir()
    original = subset.read_text()
    data.write_text(original)
    runs = tmp_path / "runs"
    options = ["--data", data, "--runs-dir", runs, *FAST, "--name", "r"]
    with monkeypatch.context() as patch:
        patch.setattr(RunFolder, "stop_requested", property(lambda self: True))
        assert invoke("train", *options).exit_code == 0
    before = strict_json((runs / "r" / "config.json").read_text())["data"]
    assert before["checksum"] == f"crc32:{zlib.crc32(original.encode()):08x}"
    # Fewer rows: the resume would have trained on another split, silently.
    data.write_text("".join(original.splitlines(keepends=True)[:-30]))
    result = invoke("train", "--resume", runs / "r")
    assert result.exit_code == 2, result.output
    now = f"crc32:{zlib.crc32(data.read_bytes()):08x}"
    assert result.output.splitlines()[-1] == (
        f"error: {data}: not the file this job began with (checksum "
        f"{before['checksum']}, now {now}); a resume needs the same data: put "
        "the file back, or start a new run"
    )
    assert strict_json((runs / "r" / "summary.json").read_text())["state"] == "stopped"
    data.write_text(original)
    assert invoke("train", "--resume", runs / "r").exit_code == 0


@pytest.mark.parametrize("epochs", ["1", "3"])
def test_a_run_whose_checkpoint_was_removed_is_not_trained_over(
    tmp_path, subset, epochs
):
    runs = tmp_path / "runs"
    options = ["--data", subset, "--runs-dir", runs, "--epochs", epochs]
    assert invoke("train", *options, "--hidden", "8", "--name", "gone").exit_code == 0
    folder = runs / "gone"
    # As if killed after its last epoch, and its checkpoint then deleted.
    (folder / "summary.json").unlink()
    records = (folder / "metrics.jsonl").read_text()
    result = invoke("train", "--resume", folder)
    assert result.exit_code == 2
    assert "has epoch records but no checkpoint.log" in result.output
    assert (folder / "metrics.jsonl").read_text() == records


def test_magic_refuses_another_positive_class_saying_it_is_fixed(tmp_path, subset):
    result = invoke(
        "train", "--data", subset, "--runs-dir", tmp_path, "--positive", "h", *FAST
    )
    assert result.exit_code == 2
    assert "--positive 'h'" in result.output
    assert "positive class is fixed to 'g' (gamma)" in result.output
    assert "Traceback" not in result.output
    assert (
        invoke(
            "train", "--data", subset, "--runs-dir", tmp_path, "--positive", "g", *FAST
        ).exit_code
        == 0
    )


def test_a_run_that_is_training_cannot_be_resumed_beside_it(tmp_path, subset):
    runs = tmp_path / "runs"
    slow = ["--epochs", "400", "--hidden", "8", "--batch-size", "64"]
    proc = command(
        "train", "--data", subset, "--runs-dir", runs, "--name", "live", *slow
    )
    folder = runs / "live"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if (folder / "checkpoint.log").is_file():
                break
            time.sleep(0.02)
        assert (folder / "run.lock").is_file()
        second = invoke("train", "--resume", folder)
        assert second.exit_code == 2
        assert "in use by another run" in second.output
    finally:
        proc.kill()
        proc.communicate()
    # The kill left its lock behind; the process is gone, so a resume takes it.
    assert (folder / "run.lock").is_file()
    assert invoke("train", "--resume", folder).exit_code == 0
    assert not (folder / "run.lock").exists()


def test_a_checkpoint_of_another_network_is_refused(tmp_path, subset):
    runs = tmp_path / "runs"
    assert invoke("train", "--data", subset, "--runs-dir", runs, "--name", "a", *FAST)
    folder = runs / "a"
    # Make it look killed after an epoch, with a checkpoint of 16 hidden units.
    (folder / "summary.json").unlink()
    rng = np.random.default_rng(0)
    params = [rng.normal(size=s) for s in ((10, 16), (16,), (16, 1), (1,))]
    state = MemberState(
        epoch=1,
        steps=10,
        params=params,
        best=params,
        moments=[params, params],
        shuffle=np.random.default_rng(0).bit_generator.state,
        best_value=0.5,
        best_epoch=1,
        waited=0,
        history=[],
    )
    CheckpointLog(folder / "checkpoint.log").write(state)
    result = invoke("train", "--resume", folder)
    assert result.exit_code == 2, result.output
    assert "does not fit the network of layer sizes 10, 8, 1" in result.output
    assert "Traceback" not in result.output


def test_a_cupy_that_fails_to_import_breaks_nothing(tmp_path, subset):
    # A CuPy whose import raises (a broken wheel, a missing CUDA library).
    stub = tmp_path / "broken" / "cupy"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text(
        "raise RuntimeError('libcudart.so.12 not found')\n"
    )
    env = {
        "PYTHONPATH": os.pathsep.join(
            [str(stub.parent), os.environ.get("PYTHONPATH", "")]
        ),
        "MLP_BACKEND": "",
    }
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, mlp_backend; print('cupy' in sys.modules)"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "False"

    runs = tmp_path / "runs"
    code, _, err = run_command(
        "train", "--data", subset, "--runs-dir", runs, "--name", "auto", *FAST, env=env
    )
    assert code == 0, err
    said = [line for line in err.splitlines() if line.startswith("backend auto")]
    assert len(said) == 1 and "libcudart.so.12 not found" in said[0]
    assert said[0].endswith("using numpy")

    code, _, err = run_command(
        "train", "--data", subset, "--runs-dir", runs, "--backend", "cupy", env=env
    )
    assert code == 2 and "Traceback" not in err
    assert "cupy is not importable" in err and "libcudart.so.12" in err
    assert entries(runs) == ["auto"]


def _table(path: Path, rows: int, seed: int = 0) -> Path:
    """A CSV with a header, the label by name in the third column."""
    rng = np.random.default_rng(seed)
    lines = ["a,b,species,c"]
    for _ in range(rows):
        a, b, c = rng.normal(size=3)
        lines.append(f"{a:.4f},{b:.4f},{'cat' if a + b > 0 else 'dog'},{c:.4f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _pets_run(tmp_path: Path) -> tuple[Path, Path]:
    """A run ``pets`` trained on a table with a header; its data and runs folder."""
    data = _table(tmp_path / "pets.csv", 300)
    runs = tmp_path / "runs"
    trained = invoke(
        "train", "--data", data, "--label", "species", "--runs-dir", runs,
        "--name", "pets", *FAST,
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    return data, runs


def test_evaluate_and_predict_use_the_runs_label_column(tmp_path):
    data, runs = _pets_run(tmp_path)
    summary = strict_json((runs / "pets" / "summary.json").read_text())
    assert run_evaluate(runs / "pets", None, "numpy") == summary["test"]
    again = run_evaluate(runs / "pets", str(data), "numpy")
    assert 0.0 <= again["accuracy"] <= 1.0
    out = tmp_path / "out.csv"
    predicted = invoke("predict", runs / "pets", data, "-o", out)
    assert predicted.exit_code == 0, predicted.output
    rows = list(csv.reader(out.read_text().splitlines()))
    assert rows[0] == ["class", "p_cat", "p_dog"] and len(rows) == 301


def test_task_and_label_that_do_not_fit_magic_exit_2(tmp_path, subset):
    runs = tmp_path / "runs"
    for args, named in (
        (["--task", "regression"], "--task regression"),
        (["--label", "99"], "--label"),
    ):
        result = invoke("train", "--data", subset, "--runs-dir", runs, *args, *FAST)
        assert result.exit_code == 2 and named in result.output, result.output
        assert "Traceback" not in result.output
    assert entries(runs) == []


def test_files_scored_later_must_name_the_runs_columns(tmp_path):
    data, runs = _pets_run(tmp_path)
    lines = data.read_text().splitlines()
    swapped = tmp_path / "swapped.csv"
    # Columns a and b exchanged, header and values alike: by position the
    # model would read b as a.
    rows = [line.split(",") for line in lines]
    swapped.write_text("".join(f"{b},{a},{s},{c}\n" for a, b, s, c in rows))
    renamed = tmp_path / "renamed.csv"
    renamed.write_text("\n".join(["a,b,species,d", *lines[1:]]) + "\n")
    order = f"{swapped}: has the model's feature columns in a different order "
    order += "(column 1 is 'b', the model expects 'a' there); expected a, b, c"
    name = f"{renamed}: column 3 is named 'd', the model expects 'c' (model "
    name += "features: a, b, c)"
    for args, message in (
        (["evaluate", runs / "pets", "--data", swapped], order),
        (["predict", runs / "pets", swapped], order),
        (["evaluate", runs / "pets", "--data", renamed], name),
        (["predict", runs / "pets", renamed], name),
        (
            ["train", "--data", data, "--test-data", swapped, "--label", "species"]
            + ["--runs-dir", runs, *FAST],
            order,
        ),
    ):
        result = invoke(*args)
        assert result.exit_code != 0, args
        assert result.output.splitlines()[-1] == f"error: {message}", args
    # The same columns under the same names score as before.
    assert invoke("evaluate", runs / "pets", "--data", data).exit_code == 0


def test_files_scored_later_find_the_label_by_name_or_by_place(tmp_path):
    # The run was trained with --label species, the third of four columns.
    data, runs = _pets_run(tmp_path)
    header, *rows = data.read_text().splitlines()
    first = tmp_path / "first.csv"
    fields = [line.split(",") for line in [header, *rows]]
    first.write_text("".join(f"{s},{a},{b},{c}\n" for a, b, s, c in fields))
    headerless = tmp_path / "headerless.csv"
    headerless.write_text("\n".join(rows) + "\n")
    renamed = tmp_path / "renamed.csv"
    renamed.write_text("\n".join([header.replace("species", "kind"), *rows]) + "\n")
    scored = invoke("evaluate", runs / "pets", "--data", data)
    assert scored.exit_code == 0, scored.output
    # The label first, by its name; no header, at its place in training.
    for other in (first, headerless):
        result = invoke("evaluate", runs / "pets", "--data", other)
        assert result.exit_code == 0, result.output
        assert result.output == scored.output
        predicted = invoke("predict", runs / "pets", other)
        assert predicted.exit_code == 0, predicted.output
        assert predicted.output == invoke("predict", runs / "pets", data).output
    result = invoke("evaluate", runs / "pets", "--data", renamed)
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        f"error: {renamed}, line 1: no column named 'species' for the label; the "
        "header names a, b, kind, c"
    )


def test_predict_refuses_to_write_over_its_input(tmp_path):
    data, runs = _pets_run(tmp_path)
    before = data.read_text()
    result = invoke("predict", runs / "pets", data, "-o", data)
    assert result.exit_code == 2
    assert result.output == (
        f"error: -o/--output: {data} is the file to predict on; it would be "
        "replaced by the predictions\n"
    )
    assert data.read_text() == before


def test_regression_refuses_a_positive_class(tmp_path):
    data = _table(tmp_path / "pets.csv", 60)
    result = invoke(
        "train", "--data", data, "--label", "a", "--task", "regression",
        "--positive", "1", "--runs-dir", tmp_path / "runs", *FAST,
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        "error: --positive '1': only for classification; a regression target has "
        "no classes"
    )


def test_the_runs_own_test_part_needs_its_own_data(tmp_path):
    data, runs = _pets_run(tmp_path)
    before = invoke("evaluate", runs / "pets")
    assert before.exit_code == 0, before.output
    # The rows in another order: another split, whose test part holds rows
    # the model trained on, scored as if new.
    original = data.read_text()
    header, *rows = original.splitlines()
    data.write_text("\n".join([header, *rows[::-1]]) + "\n")
    result = invoke("evaluate", runs / "pets")
    assert result.exit_code == 2
    assert result.output.splitlines()[-1].startswith(
        f"error: {data}: not the file this job began with"
    )
    assert result.output.endswith(
        "the run's test part can only be drawn from the same data: put the file "
        "back, or score a labelled file with --data FILE\n"
    )
    data.write_text(original)
    assert invoke("evaluate", runs / "pets").output == before.output


def test_too_few_rows_to_split_name_the_file(tmp_path):
    data = _table(tmp_path / "tiny.csv", 3)
    runs = tmp_path / "runs"
    result = invoke("train", "--data", data, "--label", "species", "--runs-dir", runs)
    assert result.exit_code == 2
    assert "tiny.csv" in result.output and "too few" in result.output
    assert entries(runs) == []


def test_a_part_without_a_class_is_warned_of(tmp_path):
    # Two rows of "bird": the split keeps both for training, so the validation
    # and test parts have none, and their F1 and ROC AUC leave it out.
    data = _table(tmp_path / "pets.csv", 60)
    data.write_text(data.read_text() + "1.0,1.0,bird,1.0\n-1.0,1.0,bird,0.0\n")
    runs = tmp_path / "runs"
    args = ["train", "--data", data, "--label", "species", "--runs-dir", runs, *FAST]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    warned = [line for line in result.output.splitlines() if "no row of" in line]
    assert warned == [
        f"{data}: the validation part (9 rows) has no row of class 'bird'; its "
        "metrics leave it out",
        f"{data}: the test part (9 rows) has no row of class 'bird'; its "
        "metrics leave it out",
    ]
    # A test file without the class is the file named for the test part.
    test = tmp_path / "test.csv"
    test.write_text("a,b,species,c\n1.0,1.0,cat,1.0\n2.0,1.0,dog,0.0\n")
    result = invoke(*args, "--test-data", test)
    assert result.exit_code == 0, result.output
    warned = [line for line in result.output.splitlines() if "no row of" in line]
    assert warned[-1] == (
        f"{test.resolve()}: the test part (2 rows) has no row of class 'bird'; its "
        "metrics leave it out"
    )
    # With three rows of it every part has one: nothing to say.
    data.write_text(data.read_text() + "0.0,1.0,bird,2.0\n")
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "no row of" not in result.output


def test_a_batch_larger_than_the_training_rows_is_said(tmp_path):
    data = _table(tmp_path / "pets.csv", 100)
    args = ["--data", data, "--label", "species", "--runs-dir", tmp_path / "runs"]
    args += ["--epochs", "1", "--hidden", "4"]
    said = "--batch-size 71 is more than the 70 training rows: each epoch is one "
    said += "full batch"
    for size, expected in (("71", [said]), ("70", [])):
        result = invoke("train", *args, "--batch-size", size)
        assert result.exit_code == 0, result.output
        lines = [line for line in result.output.splitlines() if "--batch-size" in line]
        assert lines == expected


def test_case_b14_small_classes_are_named_as_the_cause(tmp_path):
    runs = tmp_path / "runs"
    data = case_file("B14_unknown_label.csv")
    result = invoke("train", "--data", data, "--runs-dir", runs, *FAST)
    assert result.exit_code == 2, result.output
    assert (
        "the split is stratified, and 3 of 3 classes have fewer than 3 rows: "
        "'g' (2), 'h' (2), 'x' (1); give more rows of those classes"
    ) in result.output
    assert entries(runs) == []


def test_a_numeric_target_read_as_classes_suggests_regression(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    path = tmp_path / "numbers.csv"
    # Whole numbers, such as counts: each value would be a class of one row.
    np.savetxt(path, np.c_[X, np.arange(60) * 7], delimiter=",", fmt="%.6f")
    result = invoke("train", "--data", path, "--runs-dir", tmp_path / "runs", *FAST)
    assert result.exit_code == 2, result.output
    assert "the label column holds 60 distinct numbers: for a numeric target, " in (
        result.output
    )
    assert "give --task regression" in result.output


def test_fractional_labels_are_refused_as_a_numeric_target(tmp_path):
    path = tmp_path / "halves.csv"
    path.write_text("".join(f"{i},{i % 3 + 0.5}\n" for i in range(60)))
    result = invoke("train", "--data", path, "--runs-dir", tmp_path / "runs", *FAST)
    assert result.exit_code == 2, result.output
    assert result.output.endswith(
        f"error: {path}: labels such as 0.5 are not whole numbers, so not classes: "
        "for a numeric target, give --task regression\n"
    ), result.output


def test_monitor_flag_runs_the_job_beside_the_monitor(
    tmp_path, magic_path, monkeypatch, capsys
):
    import tui
    from mlp_backend import launch

    runs = tmp_path / "runs"
    folder = runs / "watched"
    watched = []

    def monitor(runs_dir):
        # The person watches until the first epoch is on screen, then quits.
        watched.append(runs_dir)
        deadline = time.monotonic() + 90
        metrics = folder / "metrics.jsonl"
        while time.monotonic() < deadline and not (
            metrics.exists() and metrics.read_text().count("\n") >= 1
        ):
            time.sleep(0.05)

    monkeypatch.setattr(tui, "run_monitor", monitor)
    # As in a terminal: pytest's streams are none.
    monkeypatch.setattr(tui, "check_terminal", lambda: None)
    # Asked whether to leave the job running, the person says no.
    monkeypatch.setattr(launch.click, "confirm", lambda *a, **k: False)
    args = [
        *("train", "--data", str(magic_path), "--runs-dir", str(runs)),
        *("--name", "watched", "--epochs", "200", "--hidden", "16", "--monitor"),
    ]
    code = launch.run_with_monitor(args, runs)
    assert watched == [runs]
    assert code == 130  # the job was interrupted, as Ctrl-C would
    status = strict_json((folder / "status.json").read_text())
    summary = strict_json((folder / "summary.json").read_text())
    assert status["state"] == summary["state"] == "stopped"
    assert 1 <= summary["epochs_run"] < 200
    assert (folder / "model.npz").is_file() and (folder / "checkpoint.log").is_file()

    # Bad options end the job at once: its message is shown, not an empty
    # monitor; only this job's, though earlier jobs wrote to the same log.
    with open(runs / ".job.log", "a") as log:
        log.write("error: an earlier job's message\n")
    capsys.readouterr()
    bad = [*args[:-1], "--name", "bad", "--batch-size", "0", "--monitor"]
    assert launch.run_with_monitor(bad, runs) == 2
    shown = capsys.readouterr().err
    assert "--batch-size" in shown and "earlier" not in shown, shown
    assert watched == [runs]


def test_resume_with_monitor_follows_the_runs_own_folder(tmp_path, monkeypatch):
    from mlp_backend import launch

    folder = tmp_path / "elsewhere" / "r"
    folder.mkdir(parents=True)
    followed = []
    monkeypatch.setattr(
        launch, "run_with_monitor", lambda argv, runs: followed.append(runs) or 0
    )
    result = invoke("train", "--resume", folder, "--monitor")
    assert result.exit_code == 0, result.output
    assert followed == [tmp_path / "elsewhere"]


class _InterruptedImport:
    """A finder that stands for a Ctrl-C during the import of ``name``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(self, fullname: str, path: object, target: object = None) -> None:
        if fullname == self.name:
            raise KeyboardInterrupt


def test_ctrl_c_while_the_command_line_imports_is_one_line_and_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command line's imports take about 0.1 s, where a quick Ctrl-C
    used to end in a traceback of click's imports."""
    from mlp_backend.__main__ import run

    monkeypatch.delitem(sys.modules, "mlp_backend.cli", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_InterruptedImport("mlp_backend.cli")])
    # run() takes SIGINT and SIGTERM over; pytest's own handling comes back
    # after (left in place, it made later tests' signals stop in-process
    # sweeps that had not been signalled).
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(SystemExit) as stopped:
            run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    assert stopped.value.code == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "error: interrupted\n"


def test_sigterm_while_the_command_line_imports_is_one_line_and_130() -> None:
    """SIGTERM before a command set its handlers ended the process silently
    (exit status -15): here it lands during the import of the command line,
    in a process of its own."""
    script = (
        "import os, signal, sys\n"
        "class Term:\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'mlp_backend.cli':\n"
        "            os.kill(os.getpid(), signal.SIGTERM)\n"
        "sys.meta_path.insert(0, Term())\n"
        "from mlp_backend.__main__ import run\n"
        "run()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == EXIT_INTERRUPTED, done.stderr
    assert done.stderr == "error: interrupted\n"
