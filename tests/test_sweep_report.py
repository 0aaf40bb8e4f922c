"""Sweep reports: configurations over seeds, and sweep folders that were damaged."""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mlp_backend.cli import main as cli
from mlp_backend.sweep import report as reports
from mlp_backend.sweep.driver import run_sweep
from mlp_backend.sweep.folder import SweepFolder
from tests.test_sweep import b21_trials, options


def table(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def repeated(small_magic: Path, tmp_path: Path) -> Path:
    """A sweep of 4 configurations with 3 seeds each."""
    path, _ = run_sweep(options(small_magic, tmp_path / "runs", repeats=3))
    return path


@pytest.fixture
def single(small_magic: Path, tmp_path: Path) -> Path:
    """A sweep of 4 trials, one seed each."""
    path, _ = run_sweep(options(small_magic, tmp_path / "runs", name="single"))
    return path


# Configurations trained with several seeds.


def test_configurations_hold_the_mean_and_spread_over_seeds(repeated: Path) -> None:
    trials = table(repeated / "results.csv")
    configurations = table(repeated / "configurations.csv")
    assert len(trials) == 12 and len(configurations) == 4
    for row in configurations:
        seeds = [
            t for t in trials if (t["hidden"], t["lr"]) == (row["hidden"], row["lr"])
        ]
        assert row["seeds"] == "0 1 2" and row["trained"] == "3"
        assert sorted(t["seed"] for t in seeds) == ["0", "1", "2"]
        for metric in ("val_f1", "test_roc_auc", "val_loss"):
            values = np.array([float(t[metric]) for t in seeds])
            assert float(row[f"{metric}_mean"]) == pytest.approx(
                values.mean(), abs=1e-12
            )
            assert float(row[f"{metric}_std"]) == pytest.approx(
                values.std(ddof=1), abs=1e-12
            )


def test_the_report_ranks_configurations_by_their_mean(repeated: Path) -> None:
    result = CliRunner().invoke(cli, ["report", str(repeated), "--no-figures"])
    assert result.exit_code == 0, result.output
    assert "configurations over seeds, best mean val_f1 first" in result.output
    assert f"wrote {repeated / 'configurations.csv'}" in result.output
    found = reports.build_report(repeated, "val_loss", "hidden", "lr", figures=False)
    means = [row["val_loss_mean"] for row in found.configurations]
    assert means == sorted(means)
    by_lr = reports.build_report(repeated, "lr", "hidden", "lr", figures=False)
    assert [row["lr"] for row in by_lr.configurations] == [0.01, 0.01, 0.1, 0.1]


def test_one_seed_each_writes_no_configurations(single: Path) -> None:
    assert not (single / "configurations.csv").exists()
    found = reports.build_report(single, None, "hidden", "lr", figures=False)
    assert found.configurations is None
    assert found.written == [single / "results.csv"]


def test_the_heatmap_of_repeats_ranks_means_not_the_luckiest_seed(
    repeated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("matplotlib")
    drawn = []

    def heatmap(plt, path, rows, metric, x_key, y_key, *, means=False):
        drawn.append((list(rows), metric, means))
        return path / "heatmap.png"

    monkeypatch.setattr(reports, "_heatmap", heatmap)
    reports.build_report(repeated, "val_f1", "hidden", "lr")
    rows, metric, means = drawn[-1]
    assert metric == "val_f1" and means
    expected = {
        (row["hidden"], float(row["lr"])): float(row["val_f1_mean"])
        for row in table(repeated / "configurations.csv")
    }
    assert {(r["hidden"], r["lr"]): r["val_f1"] for r in rows} == pytest.approx(
        expected, abs=1e-12
    )
    # Over the seed itself, the cells are the trials.
    reports.build_report(repeated, "val_f1", "seed", "lr")
    rows, _, means = drawn[-1]
    assert not means and len(rows) == 12


# Damaged sweep folders: a clear word, never a traceback.


def test_a_damaged_metrics_line_is_skipped_and_told(single: Path) -> None:
    pytest.importorskip("matplotlib")
    metrics = single / "trial-0001" / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    damaged = json.loads(lines[1])
    damaged["val_f1"] = "x"
    damaged["val_loss"] = 10**400  # a gap in the curve, as "x" is
    far = {**damaged, "epoch": 10**400}
    records = ["{oops", json.dumps(damaged), "[1, 2]", json.dumps(far)]
    metrics.write_text("\n".join(records) + "\n")
    result = CliRunner().invoke(cli, ["report", str(single)])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"{metrics}, line {n}: not an epoch record; skipped" for n in (1, 3, 4)
    ]
    assert (single / "curves_by_hidden.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "content,says",
    [
        ([], "expected a JSON object"),
        ({"version": 1, "spec": {}}, "'trials' is not a list"),
        ({"version": 1, "spec": {}, "trials": None}, "'trials' is not a list"),
        ({"version": 1, "trials": []}, "'spec' is not an object"),
        (
            {"version": 1, "spec": {}, "trials": [{}]},
            "trial 0 has no 'hyperparameters'",
        ),
    ],
)
def test_a_sweep_json_not_laid_out_as_a_sweep_is_one_line(
    single: Path, content: object, says: str
) -> None:
    (single / "sweep.json").write_text(json.dumps(content))
    check_refused(single, says)


@pytest.mark.parametrize(
    "key,value,says",
    [
        ("hidden", 5, "trial 0: hidden is 5, not a list of widths"),
        ("lr", None, "trial 0 lacks lr"),
        ("lr", "0.01", "trial 0: lr is '0.01', not a number"),
        ("lr", math.nan, "trial 0: lr is nan, not a number"),
        ("batch_size", 0, "trial 0: batch_size is 0, not a positive count"),
        ("epochs", 2.0, "trial 0: epochs is 2.0, not a positive count"),
        ("activation", 1, "trial 0: activation is 1, not a name"),
        ("groups", [[0, 0, 3]], "spec.groups is not a list of stacks of distinct"),
        ("groups", [[0, 9]], "spec.groups is not a list of stacks of distinct"),
    ],
)
def test_a_trial_the_sweep_could_not_have_written_is_one_line(
    single: Path, key: str, value: object, says: str
) -> None:
    info = json.loads((single / "sweep.json").read_text())
    values = info["trials"][0]["hyperparameters"]
    if key == "groups":
        info["spec"]["groups"] = value
    elif value is None:
        del values[key]
    else:
        values[key] = value
    (single / "sweep.json").write_text(json.dumps(info))
    check_refused(single, says)
    # A resume reads the folder the same way.
    resumed = CliRunner().invoke(cli, ["sweep", "--resume", str(single)])
    assert resumed.exit_code == 2 and says in resumed.output, resumed.output


def check_refused(sweep: Path, says: str) -> None:
    for args in (
        ["report", str(sweep)],
        ["report", str(sweep), "--compare", str(sweep)],
    ):
        result = CliRunner().invoke(cli, [*args, "--no-figures"])
        assert result.exit_code == 2, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert f"{sweep / 'sweep.json'}: {says}" in result.output


def test_results_lines_that_are_no_trials_results_are_skipped(
    single: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = single / "results.jsonl"
    before = SweepFolder(single).results()
    good = path.read_text().splitlines()
    first = json.loads(good[0])
    strays = [
        {**first, "trial": 7, "name": "trial-0007"},  # no such trial
        {"trial": 1},  # no state, no name
        {**first, "trial": "1"},  # an index written as text
        {**first, "val_f1": "abc"},  # a metric that is no number
        {**first, "state": "exploded"},
        {**first, "val_f1": math.nan},  # never written: the writers write null
        {**first, "val_loss": math.inf},
        {**first, "test_f1": 10**400},  # no float can hold it
        {**first, "lr": 123.0},  # hyperparameters come from sweep.json
    ]
    # A form feed splits a str's lines: it must not hide the lines after it.
    path.write_text("x\f\n" + "".join(json.dumps(s) + "\n" for s in strays[:-1]))
    with open(path, "a") as f:
        f.write("\n".join(good) + "\n" + json.dumps(strays[-1]) + "\n")
    with caplog.at_level(logging.WARNING):
        after = SweepFolder(single).results()
        result = CliRunner().invoke(cli, ["report", str(single), "--no-figures"])
    assert result.exit_code == 0, result.output
    assert after == before
    warned = {r.getMessage() for r in caplog.records}
    assert warned == {
        f"{path}, line {n}: not a results record; skipped" for n in range(1, 10)
    }
    assert "trials have no final result" not in result.output
    members = [str(before[i]["members"]) for i in sorted(before)]
    assert [row["members"] for row in table(single / "results.csv")] == members


def test_an_unreadable_summary_is_told_and_its_trial_not_ended(
    single: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (single / "results.jsonl").unlink()
    summary = single / "trial-0002" / "summary.json"
    summary.write_text('{"state": "fini')
    with caplog.at_level(logging.WARNING):
        found = reports.build_report(single, None, "hidden", "lr", figures=False)
    assert sorted(row["trial"] for row in found.rows) == [0, 1, 3]
    assert found.unended == 1
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith(f"{summary}: cannot be read as JSON")
    assert message.endswith("; the trial counts as not ended")


@pytest.mark.parametrize(
    "damage",
    [
        {"test": [1]},
        {"epochs_run": "x"},
        {"val": {"f1": "0.9"}},
        {"best_value": 10**400},
        {"state": "done"},
    ],
)
def test_a_summary_not_laid_out_as_a_runs_is_told_and_trained_again(
    single: Path, damage: dict, caplog: pytest.LogCaptureFixture
) -> None:
    before = SweepFolder(single).results()
    lines = (single / "results.jsonl").read_text().splitlines()
    kept = [line for line in lines if json.loads(line)["trial"] != 0]
    (single / "results.jsonl").write_text("\n".join(kept) + "\n")
    summary = single / "trial-0000" / "summary.json"
    summary.write_text(json.dumps({**json.loads(summary.read_text()), **damage}))
    with caplog.at_level(logging.WARNING):
        found = reports.build_report(single, None, "hidden", "lr", figures=False)
    assert sorted(row["trial"] for row in found.rows) == [1, 2, 3]
    told = f"{summary}: not a run's summary; the trial counts as not ended"
    assert [r.getMessage() for r in caplog.records] == [told]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        run_sweep({"resume": single, "workers": 1})
    # Trained again, alike (float64, the same stack), and told once.
    assert [r.getMessage() for r in caplog.records] == [told]
    after = SweepFolder(single).results()
    assert after[0]["val_f1"] == pytest.approx(before[0]["val_f1"], abs=1e-12)
    assert sorted(after) == [0, 1, 2, 3]


def test_a_table_that_cannot_be_written_is_named(single: Path) -> None:
    pytest.importorskip("matplotlib")
    for name in ("configurations.csv", "heatmap_val_f1_hidden_lr.png"):
        (single / name).mkdir()
    result = CliRunner().invoke(cli, ["report", str(single)])
    # One seed each: no configurations.csv to write, so the heatmap fails.
    assert result.exit_code == 3, result.output
    assert f"error: {single / 'heatmap_val_f1_hidden_lr.png'}: cannot be written" in (
        result.output
    )


def test_a_resume_goes_on_past_tables_it_cannot_write(
    repeated: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines = (repeated / "results.jsonl").read_text().splitlines()
    kept = [line for line in lines if json.loads(line)["trial"] >= 4]
    (repeated / "results.jsonl").write_text("\n".join(kept) + "\n")
    for i in range(4):
        (repeated / f"trial-{i:04d}" / "summary.json").unlink()
    (repeated / "configurations.csv").unlink()
    (repeated / "configurations.csv").mkdir()
    with caplog.at_level(logging.WARNING):
        run_sweep({"resume": repeated, "workers": 1})
    assert sorted(SweepFolder(repeated).results()) == list(range(12))
    (message,) = {r.getMessage() for r in caplog.records}
    assert message.startswith(f"{repeated / 'configurations.csv'}: cannot be written")
    assert message.endswith("; results.jsonl keeps every result")
    result = CliRunner().invoke(cli, ["report", str(repeated), "--no-figures"])
    assert result.exit_code == 3
    assert f"{repeated / 'configurations.csv'}: cannot be written" in result.output


def test_configurations_rank_by_the_mean_best_value_in_its_direction(
    repeated: Path,
) -> None:
    found = reports.build_report(repeated, "best_value", "hidden", "lr", figures=False)
    means = [row["best_value_mean"] for row in found.configurations]
    # The trials monitor val_loss: lowest first.
    assert means == sorted(means) and None not in means


def test_an_empty_spec_or_data_option_is_refused(
    small_magic: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    for flag in ("--spec", "--data", "--test-data", "--scheduler"):
        result = CliRunner().invoke(
            cli, ["sweep", flag, "", "--runs-dir", str(runs), "--epochs", "1"]
        )
        assert result.exit_code == 2, (flag, result.output)
        assert f"Invalid value for '{flag}': expected a value, got an empty string" in (
            result.output
        )
    assert not runs.exists()
    for args, named in (
        (["evaluate", str(tmp_path), "--data", ""], "'--data'"),
        (["report", str(tmp_path), "--sort", ""], "'--sort'"),
        (["predict", str(tmp_path), ""], "'FILE'"),
        (["predict", str(tmp_path), str(small_magic), "-o", ""], "'-o' / '--output'"),
        (["sweep", "--resume", ""], "'--resume'"),
        (["sweep", "--runs-dir", ""], "'--runs-dir'"),
        (["train", "--runs-dir", ""], "'--runs-dir'"),
    ):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        assert f"Invalid value for {named}: expected a value" in result.output


def test_a_failed_trial_is_told_once_even_when_quiet(
    small_magic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, trials = b21_trials()
    monkeypatch.setattr(
        "mlp_backend.sweep.driver.build_trials", lambda options: (trials, {})
    )
    args = ["--data", str(small_magic), "--runs-dir", str(tmp_path), "--workers", "1"]
    result = CliRunner().invoke(cli, ["-q", "sweep", *args, "--backend", "numpy"])
    assert result.exit_code == 3, result.output
    assert result.stderr.count("trial 1 failed: ") == 1, result.stderr


def test_an_unwritable_results_csv_is_exit_3(single: Path) -> None:
    (single / "results.csv").unlink()
    (single / "results.csv").mkdir()
    result = CliRunner().invoke(cli, ["report", str(single), "--no-figures"])
    assert result.exit_code == 3, result.output
    assert f"error: {single / 'results.csv'}: cannot be written" in result.output
    assert not list(single.glob("results.csv.tmp-*"))


def test_compare_needs_a_metric_to_find_the_best(single: Path) -> None:
    args = ["report", str(single), "--no-figures", "--compare", str(single)]
    result = CliRunner().invoke(cli, [*args, "--sort", "lr"])
    assert result.exit_code == 2
    assert "--compare: the best configuration is the best by a metric" in result.output
    result = CliRunner().invoke(cli, [*args, "--sort", "val_f1"])
    assert result.exit_code == 0, result.output


def test_the_pruning_line_counts_in_words(tmp_path: Path) -> None:
    one = reports.Report(tmp_path, [], "val_f1")
    one.pruning = {
        "pruned": 1,
        "planned_epochs": 8,
        "run_epochs": 6,
        "saved_fraction": 0.25,
    }
    assert reports.pruning_line(one) == (
        "pruning: 1 trial pruned; 6 of 8 member-epochs run (25% compute saved)"
    )
