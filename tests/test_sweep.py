"""Sweeps: spec parsing, grouping, pruning, folders, failures, report, Dask."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mlp_backend.backend import Backend
from mlp_backend.cli import main as cli
from mlp_backend.errors import RunError, UsageError
from mlp_backend.runs import FolderLock
from mlp_backend.sweep import spec as specs
from mlp_backend.sweep.driver import run_sweep
from mlp_backend.sweep.execute import (
    InlineExecutor,
    Settings,
    check_scheduler,
    run_groups,
)
from mlp_backend.sweep.folder import SweepFolder
from mlp_backend.sweep.plan import (
    balance,
    device_chunks,
    finish_time,
    member_bytes,
    plan_groups,
)
from mlp_backend.sweep.report import _tick, build_report, leaderboard, sort_rows
from mlp_backend.sweep.worker import DataSpec, SuccessiveHalving
from mlp_backend.sweep_command import report, sweep
from tests.conftest import SHARED, case_file


def options(data: Path, runs: Path, **extra) -> dict:
    base = {
        "data": str(data),
        "runs_dir": runs,
        "dtype": "float64",
        "backend": "numpy",
        "epochs": "2",
        "batch_size": "64",
        "hidden": "4,8",
        "lr": "0.1,0.01",
        "optimizer": "momentum",
        "patience": "0",
        "workers": 1,
    }
    return {**base, **extra}


# Spec parsing.


def test_grid_from_options_is_the_product_with_repeats() -> None:
    trials = specs.from_options({"hidden": "5,25", "lr": "0.1,0.01", "epochs": "3"}, 2)
    assert len(trials) == 8
    assert {t["hidden"] for t in trials} == {(5,), (25,)}
    assert {t["seed"] for t in trials} == {0, 1}
    assert all(t["epochs"] == 3 for t in trials)


@pytest.mark.parametrize(
    "key,text,named",
    [
        ("lr", "0.1,abc", "--lr"),
        ("hidden", "5,0", "--hidden"),
        ("activation", "relu,nope", "--activation"),
        ("batch_size", "0", "--batch-size"),
        ("momentum", "1.5", "--momentum"),
    ],
)
def test_bad_option_values_name_the_option(key: str, text: str, named: str) -> None:
    with pytest.raises(UsageError, match=named):
        specs.from_options({key: text}, 1)


def test_reference_preset() -> None:
    trials = specs.from_preset("reference", {}, 1)
    assert len(trials) == 16
    assert {t["hidden"] for t in trials} == {(5,), (25,), (50,), (100,)}
    assert {t["lr"] for t in trials} == {1.0, 0.1, 0.01, 0.001}
    assert {
        (t["activation"], t["optimizer"], t["batch_size"], t["epochs"]) for t in trials
    } == {("tanh", "sgd", 1, 20)}
    # Plain SGD: none of the default network's schedule or weight decay.
    assert {(t["schedule"], t["weight_decay"]) for t in trials} == {("none", 0.0)}


def test_spec_file_grid_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "sweep.toml"
    path.write_text('hidden = [16, "32x16", [8, 8]]\nlr = [0.1, 0.01]\nepochs = 3\n')
    trials = specs.from_spec(specs.load_toml(path), str(path))
    assert {t["hidden"] for t in trials} == {(16,), (32, 16), (8, 8)}
    assert len(trials) == 6
    with pytest.raises(UsageError, match="sweep.toml: lrr: unknown key"):
        specs.from_spec({"lrr": 0.1}, "sweep.toml")
    with pytest.raises(UsageError, match="sweep.toml: epochs"):
        specs.from_spec({"epochs": "many"}, "sweep.toml")
    with pytest.raises(UsageError, match="sweep.toml: momentum"):
        specs.from_spec({"momentum": 2.0}, "sweep.toml")


def test_random_search_is_seeded_and_log_uniform() -> None:
    table = {
        "search": "random",
        "lr": [1e-4, 1e-1],
        "hidden": [8, 16, 32],
        "sample_seed": 7,
    }
    first = specs.from_spec(table, "s.toml", 50)
    assert first == specs.from_spec(table, "s.toml", 50)
    lrs = [t["lr"] for t in first]
    assert all(1e-4 <= lr <= 1e-1 for lr in lrs)
    # Log-uniform: about half of the draws fall below the geometric middle.
    below = sum(lr < math.sqrt(1e-4 * 1e-1) for lr in lrs)
    assert 10 < below < 40
    with pytest.raises(UsageError, match="trials"):
        specs.from_spec({"search": "random", "lr": [0.1, 0.01]}, "s.toml")


# Grouping.


def test_grouping_pads_close_widths_and_splits_far_ones() -> None:
    trials = specs.from_options({"hidden": "5,8,100,128", "lr": "0.1,0.01"}, 1)
    groups = plan_groups(trials, range(len(trials)), backend="cupy")
    widths = [sorted({trials[i]["hidden"][0] for i in g.trials}) for g in groups]
    assert sorted(widths) == [[5, 8], [100, 128]]
    unfused = plan_groups(trials, range(len(trials)), fuse=False)
    assert len(unfused) == len(trials)
    chunked = plan_groups(trials, range(len(trials)), max_group=3, backend="cupy")
    assert max(len(g.trials) for g in chunked) == 3
    assert sorted(i for g in chunked for i in g.trials) == list(range(len(trials)))


@pytest.mark.parametrize(
    "batch, widths",
    [
        # Mostly arithmetic: padding 100 to 128 costs more than a second stack,
        # 5 to 8 less.
        ("256", [[5, 8], [100], [128]]),
        # Less arithmetic per step: 100 and 128 share one too, 8 and 100 not.
        ("32", [[5, 8], [100, 128]]),
        # A step is its fixed cost: any padding pays.
        ("1", [[5, 8, 100, 128]]),
    ],
)
def test_numpy_pads_where_the_padded_stack_costs_less_than_two(
    batch: str, widths: list[list[int]]
) -> None:
    options = {"hidden": "5,8,100,128", "lr": "0.1,0.01", "batch_size": batch}
    trials = specs.from_options(options, 1)
    groups = plan_groups(trials, range(len(trials)))
    found = [sorted({trials[i]["hidden"][0] for i in g.trials}) for g in groups]
    assert sorted(found) == widths
    assert sorted(i for g in groups for i in g.trials) == list(range(len(trials)))


def test_grouping_keeps_different_optimizers_apart() -> None:
    trials = specs.from_options({"optimizer": "sgd,adam", "lr": "0.1,0.01"}, 1)
    groups = plan_groups(trials, range(len(trials)))
    assert len(groups) == 2
    for g in groups:
        assert len({trials[i]["optimizer"] for i in g.trials}) == 1


def test_balance_halves_a_group_only_where_the_workers_end_sooner() -> None:
    # The reference preset at batch 1: one stack of all 16, halved once into
    # its narrower and wider members; halving again would only add steps.
    reference = specs.from_preset("reference", dict.fromkeys(specs.KEYS), 1)
    whole = plan_groups(reference, range(16))
    assert [len(g.trials) for g in whole] == [16]
    halves = balance(reference, whole, 2)
    widths = sorted(
        sorted({reference[i]["hidden"][0] for i in g.trials}) for g in halves
    )
    assert widths == [[5, 25], [50, 100]]
    assert finish_time(reference, halves, 2) < finish_time(reference, whole, 2)
    assert balance(reference, whole, 1) == whole
    # The benchmark grid at batch 256: no group is above the fair share.
    options = {"hidden": "16,32,64,128", "lr": "0.1,0.2,0.3,0.4", "batch_size": "256"}
    grid = specs.from_options(options, 1)
    groups = plan_groups(grid, range(16))
    assert balance(grid, groups, 2) == groups
    # One group that would keep a worker busy alone is halved.
    options = {"hidden": "16,128", "lr": "0.1,0.2,0.3,0.4,0.5,0.6", "batch_size": "256"}
    lopsided = specs.from_options(options, 1)
    groups = plan_groups(lopsided, range(12))
    balanced = balance(lopsided, groups, 2)
    assert sorted(len(g.trials) for g in balanced) == [3, 3, 6]
    assert sorted(i for g in balanced for i in g.trials) == list(range(12))
    assert finish_time(lopsided, balanced, 2) < finish_time(lopsided, groups, 2)


def test_a_resume_rebuilds_the_recorded_stacks_as_they_were() -> None:
    """Stacks [5, 4] and [6, 7] checkpointed at epoch 3 come back whole and
    in their order, though planning afresh would join them and balance would
    halve them; a stack with a member at another epoch, or finished, does not."""
    trials = specs.from_options({"lr": ",".join(f"0.0{k + 1}" for k in range(8))}, 1)
    started = {4: 3, 5: 3, 6: 3, 7: 3, 0: 2, 1: 3}
    stacks = {4: (5, 4), 5: (5, 4), 6: (6, 7), 7: (6, 7), 0: (0, 1), 1: (0, 1)}
    todo = [0, 1, 4, 5, 6, 7]
    groups = plan_groups(trials, todo, started=started, stacks=stacks)
    resumed = [g.trials for g in groups if g.fixed]
    assert sorted(resumed) == [(5, 4), (6, 7)]
    # Trials 0 and 1 stand at different epochs: each joins no recorded stack.
    assert sorted(g.trials for g in groups if not g.fixed) == [(0,), (1,)]
    balanced = balance(trials, groups, 2)
    assert sorted(g.trials for g in balanced if g.fixed) == [(5, 4), (6, 7)]
    # Without its partner (finished before the kill), 6 is planned afresh.
    alone = plan_groups(trials, [6], started={6: 3}, stacks={6: (6, 7)})
    assert [(g.trials, g.fixed) for g in alone] == [((6,), False)]
    unfused = plan_groups(trials, todo, fuse=False, started=started, stacks=stacks)
    assert sorted(g.trials for g in unfused if g.fixed) == [(5, 4), (6, 7)]


def test_memory_budget_splits_groups() -> None:
    trials = specs.from_options({"lr": "0.1,0.05,0.01,0.005"}, 1)
    whole = plan_groups(trials, range(4), n_rows=1000, n_features=10)
    assert len(whole) == 1
    split = plan_groups(trials, range(4), n_rows=1000, n_features=10, max_bytes=100_000)
    assert len(split) > 1


def test_numpy_stacks_keep_their_arrays_in_the_cache() -> None:
    lrs = ",".join(str(0.001 * (k + 1)) for k in range(128))
    wide = specs.from_options({"hidden": "128", "lr": lrs, "batch_size": "256"}, 1)
    groups = plan_groups(wide, range(128), n_rows=13314, n_features=10)
    # 32 members x 256 rows x 128 units x 4 bytes is the 4 MiB limit.
    assert [len(g.trials) for g in groups] == [32] * 4
    assert sorted(i for g in groups for i in g.trials) == list(range(128))
    # Narrow members reach --max-group first; CuPy is not held to the cache.
    narrow = specs.from_options({"hidden": "16", "lr": lrs, "batch_size": "256"}, 1)
    assert [len(g.trials) for g in plan_groups(narrow, range(128))] == [64, 64]
    on_gpu = plan_groups(wide, range(128), n_rows=13314, backend="cupy")
    assert [len(g.trials) for g in on_gpu] == [64, 64]


def test_device_chunks_fit_the_budget() -> None:
    trials = specs.from_options({"hidden": "8,64", "lr": "0.1,0.05,0.01"}, 1)
    trials = sorted(trials, key=lambda t: t["hidden"])
    one = member_bytes(trials[-1], 1000, 10, 4)
    cuts = device_chunks(trials, 2 * one, 1000, 10, 4)
    assert sorted(k for cut in cuts for k in cut) == list(range(6))
    for cut in cuts:
        widest = max(trials[k]["hidden"][0] for k in cut)
        padded = dict(trials[cut[0]], hidden=(widest,))
        assert len(cut) * member_bytes(padded, 1000, 10, 4) <= 2 * one
    assert len(device_chunks(trials, 10**12, 1000, 10, 4)) == 1
    # A trial bigger than the whole budget still trains, as a stack of its own.
    assert device_chunks(trials, 1, 1000, 10, 4) == [[k] for k in range(6)]


def test_a_group_cut_to_fit_the_device_trains_as_before(
    small_magic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, whole = run_sweep(options(small_magic, tmp_path / "a", batch_size="16"))
    # A device with room for none of them: each trial becomes a stack alone.
    monkeypatch.setattr(
        Backend, "memory", lambda self: {"memory_used": 0, "memory_total": 1}
    )
    _, cut = run_sweep(options(small_magic, tmp_path / "b", batch_size="16"))
    assert [r["members"] for r in whole] == [4] * 4
    assert [r["members"] for r in cut] == [1] * 4
    for w, c in zip(whole, cut, strict=True):
        assert c["state"] == w["state"] == "finished"
        for key in ("val_loss", "test_f1", "test_log_loss"):
            assert c[key] == pytest.approx(w[key], abs=1e-10)


def test_successive_halving_rungs() -> None:
    halving = SuccessiveHalving(8, "val_loss")
    assert halving.rungs == [1, 2, 4]
    values = {j: float(j) for j in range(8)}
    assert sorted(halving(1, values)) == [4, 5, 6, 7]
    assert halving(3, values) == []
    assert sorted(SuccessiveHalving(8, "val_f1")(2, values)) == [0, 1, 2, 3]


# Whole sweeps.


def test_sweep_writes_folder_results_and_trial_runs(
    small_magic: Path, tmp_path: Path
) -> None:
    path, results = run_sweep(options(small_magic, tmp_path / "runs", name="s"))
    assert [r["state"] for r in results] == ["finished"] * 4
    info = json.loads((path / "sweep.json").read_text())
    assert info["format"] == 1 and len(info["trials"]) == 4
    for record in results:
        trial = path / record["name"]
        config = json.loads((trial / "config.json").read_text())
        assert config["sweep"] == "s" and config["trial"] == record["trial"]
        assert json.loads((trial / "summary.json").read_text())["state"] == "finished"
        assert len((trial / "metrics.jsonl").read_text().splitlines()) == 2
    lines = (path / "results.jsonl").read_text().splitlines()
    assert len(lines) == 4
    csv_rows = (path / "results.csv").read_text().splitlines()
    assert len(csv_rows) == 5 and csv_rows[0].startswith("trial,name,state")
    assert not (path / "sweep.lock").exists()


def test_fused_and_unfused_sweeps_agree(small_magic: Path, tmp_path: Path) -> None:
    _, fused = run_sweep(options(small_magic, tmp_path / "a", batch_size="16"))
    _, alone = run_sweep(
        options(small_magic, tmp_path / "b", batch_size="16", no_fuse=True)
    )
    assert [r["members"] for r in fused] == [4] * 4  # widths 4 and 8 share a stack
    for f, a in zip(fused, alone, strict=True):
        for key in ("val_loss", "test_f1", "test_log_loss"):
            assert f[key] == pytest.approx(a[key], abs=1e-10)


def test_bad_options_leave_no_folder(small_magic: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for bad in (
        {"lr": "0.1,-1"},
        {"workers": 0},
        {"prune": "median"},
        # Halving compares the members of a fused stack; unfused there are none.
        {"prune": "halving", "no_fuse": True},
        # Nor in stacks of one, nor in one epoch (no rung before the last).
        {"prune": "halving", "max_group": 1},
        {"prune": "halving", "epochs": "1"},
        {"metric": "val_r2"},
        {"backend": "nope"},
    ):
        with pytest.raises(UsageError):
            run_sweep(options(small_magic, runs, **bad))
    assert not runs.exists() or not any(runs.iterdir())


def test_lock_keeps_a_second_sweep_out(small_magic: Path, tmp_path: Path) -> None:
    path, _ = run_sweep(
        options(small_magic, tmp_path / "runs", name="s", lr="0.1", hidden="4")
    )
    with FolderLock(path / "sweep.lock"):
        with pytest.raises(RunError, match="in use"):
            run_sweep({"resume": path, "workers": 1})


def test_pruning_marks_members_pruned(small_magic: Path, tmp_path: Path) -> None:
    path, results = run_sweep(
        options(
            small_magic,
            tmp_path / "runs",
            epochs="8",
            hidden="4",
            lr="0.3,0.1,0.03,0.01",
            prune="halving",
        )
    )
    states = sorted(r["state"] for r in results)
    assert states == ["finished", "pruned", "pruned", "pruned"]
    for record in results:
        status = json.loads((path / record["name"] / "status.json").read_text())
        assert status["state"] == record["state"]
    result = CliRunner().invoke(report, [str(path), "--no-figures"])
    assert result.exit_code == 0, result.output
    assert "compute saved" in result.output
    # 4 trials x 8 epochs planned; the rungs after epochs 1 and 2 keep 2, then
    # 1, which trains on alone: 1 + 1 + 2 + 8 member-epochs run.
    assert "12 of 32 member-epochs run (62% compute saved)" in result.output

    # Against the same trials unpruned: does their best survive here?
    full, unpruned = run_sweep(
        options(
            small_magic,
            tmp_path / "runs",
            name="full",
            epochs="8",
            hidden="4",
            lr="0.3,0.1,0.03,0.01",
        )
    )
    best = sort_rows(unpruned, "val_loss")[0]
    here = next(r for r in results if r["lr"] == best["lr"])
    result = CliRunner().invoke(
        report,
        [str(path), "--no-figures", "--sort", "val_loss", "--compare", str(full)],
    )
    assert result.exit_code == 0, result.output
    line = result.output.replace("\n", " ")
    assert f"best of {full} by val_loss: {best['name']}" in line
    if here["state"] == "pruned":
        assert f"{here['name']} pruned after {here['epochs_run']} epochs" in line
    else:
        assert f"{here['name']} finished, ranked" in line
    # The same trials on another split are no comparison.
    other, _ = run_sweep(
        options(
            small_magic,
            tmp_path / "runs",
            name="other",
            epochs="1",
            hidden="4",
            lr="0.3",
            split_seed=1,
        )
    )
    result = CliRunner().invoke(
        cli, ["report", str(path), "--no-figures", "--compare", str(other)]
    )
    assert result.exit_code == 2
    assert result.output == (
        f"error: --compare {other}: its trials were trained on other data or "
        "another split than this sweep's; compare sweeps of the same data\n"
    )
    # A folder that is no sweep is named as --compare's.
    trial = path / "trial-0000"
    args = ["report", str(path), "--no-figures", "--compare", str(trial)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert result.output.startswith(f"error: --compare: {trial} holds no sweep.json")


def b21_trials() -> tuple[dict, list[dict]]:
    case = json.loads(case_file("B21_sweep_one_bad_trial.json").read_text())
    base = {
        **specs.DEFAULTS,
        "hidden": tuple(case["hidden"]),
        "activation": case["activation"],
        "epochs": case["epochs"],
        "batch_size": case["batch_size"],
        "patience": 0,
    }
    trials = []
    for entry in case["trials"]:
        names = {"learning_rate": "lr"}
        trials.append({**base, **{names.get(k, k): v for k, v in entry.items()}})
    return case, trials


def test_b21_one_bad_trial_fails_alone(small_magic: Path, tmp_path: Path) -> None:
    case, trials = b21_trials()
    folder = SweepFolder.create(tmp_path, "b21", {}, trials)
    groups = plan_groups(trials, range(len(trials)))
    settings = Settings(DataSpec(str(small_magic)), "numpy", "float32")

    def results_stay_valid(record: dict) -> None:
        for line in (folder.path / "results.jsonl").read_text().splitlines():
            json.loads(line)

    run_groups(folder, trials, groups, settings, InlineExecutor(), results_stay_valid)
    results = folder.results()
    expect = case["expect"]
    assert (
        sorted(i for i, r in results.items() if r["state"] == "finished")
        == expect["completed"]
    )
    assert (
        sorted(i for i, r in results.items() if r["state"] == "failed")
        == expect["failed"]
    )
    failed = results[expect["failed"][0]]
    assert "no_such_activation" in failed["error"]
    status = json.loads((folder.path / "trial-0001" / "status.json").read_text())
    assert status["state"] == "failed" and "no_such_activation" in status["reason"]


def test_b21_command_exits_3_after_all_trials(
    small_magic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The case's bad trial cannot come from the options (they are checked first),
    so the trial list is put in place of the parsed one."""
    _, trials = b21_trials()
    monkeypatch.setattr(
        "mlp_backend.sweep.driver.build_trials", lambda options: (trials, {})
    )
    runs = tmp_path / "runs"
    args = [
        "--data",
        str(small_magic),
        "--runs-dir",
        str(runs),
        "--name",
        "b21",
        "--workers",
        "1",
        "--backend",
        "numpy",
    ]
    result = CliRunner().invoke(sweep, args)
    assert result.exit_code == 3, result.output
    results = SweepFolder(runs / "b21").results()
    assert len(results) == 4
    assert [results[i]["state"] for i in range(4)] == [
        "finished",
        "failed",
        "finished",
        "finished",
    ]


def test_b21_shared_data_path_exists() -> None:
    case, _ = b21_trials()
    # The case names the data relative to the folder holding shared/.
    assert (SHARED.parent / case["data"]).exists() or not SHARED.exists()


def test_report_writes_csv_and_figures(small_magic: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path, _ = run_sweep(options(small_magic, tmp_path / "runs"))
    (path / "results.csv").unlink()
    result = CliRunner().invoke(report, [str(path), "--sort", "test_f1"])
    assert result.exit_code == 0, result.output
    assert (path / "results.csv").is_file()
    for name in (
        "curves_by_hidden.png",
        "curves_by_lr.png",
        "heatmap_test_f1_hidden_lr.png",
    ):
        assert (path / name).read_bytes()[:4] == b"\x89PNG"
    bad = CliRunner().invoke(report, [str(path), "--sort", "nope"])
    assert bad.exit_code != 0
    # A random search's drawn learning rates label the heatmap shortly.
    assert [_tick(v) for v in (0.003604551411348232, 0.1, 16, "64x32")] == [
        *("0.0036", "0.1", "16", "64x32")
    ]
    # Sorted by what is no metric, the heatmap shows val_f1.
    for column in ("state", "lr", "trial", "seconds"):
        result = CliRunner().invoke(report, [str(path), "--sort", column])
        assert result.exit_code == 0, result.output
        assert (path / "heatmap_val_f1_hidden_lr.png").is_file()
        assert not (path / f"heatmap_{column}_hidden_lr.png").exists()


def test_report_tells_a_running_sweep_from_an_interrupted_one(
    small_magic: Path, tmp_path: Path
) -> None:
    path, _ = run_sweep(options(small_magic, tmp_path / "runs"))
    # As if no trial had ended yet: no results lines, no final summaries.
    (path / "results.jsonl").write_text("")
    for summary in path.glob("trial-*/summary.json"):
        summary.unlink()
    args = [str(path), "--no-figures"]
    stopped = CliRunner().invoke(report, args)
    assert stopped.exit_code == 0, stopped.output
    # No result yet, and still a results.csv with its header.
    header = (path / "results.csv").read_text().splitlines()
    assert header[0].startswith("trial,name,state,hidden,") and len(header) == 1
    assert "4 of 4 trials have no final result" in stopped.output
    assert "--resume" in stopped.output
    with FolderLock(path / "sweep.lock"):  # this live process: a running sweep
        running = CliRunner().invoke(report, args)
    assert running.exit_code == 0, running.output
    assert "still running" in running.output and "--resume" not in running.output
    same = CliRunner().invoke(cli, ["report", *args, "--x", "lr", "--y", "lr"])
    assert same.exit_code == 2 and "two different hyperparameters" in same.output


def test_report_defaults_follow_the_task(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    table = tmp_path / "num.csv"
    lines = [f"{a:.4f},{b:.4f},{c:.4f},{a + 0.5 * b:.4f}" for a, b, c in X]
    table.write_text("\n".join(lines) + "\n")
    path, _ = run_sweep(options(table, tmp_path / "runs", task="regression"))
    found = build_report(path, None, "hidden", "lr", figures=False)
    assert found.sort_by == "val_r2"
    r2 = [row["val_r2"] for row in found.rows]
    assert r2 == sorted(r2, reverse=True)
    headers = [column.header for column in leaderboard(found).columns]
    assert headers == [
        *("trial", "state", "hidden", "lr", "epochs_run"),
        *("val_loss", "val_r2", "test_mse", "test_r2"),
    ]


def test_report_of_a_sweep_that_all_diverged_is_a_table(
    small_magic: Path, tmp_path: Path
) -> None:
    path, _ = run_sweep(
        options(
            small_magic,
            tmp_path / "runs",
            lr="1e30,1e35",
            optimizer="sgd",
            dtype="float32",
        )
    )
    for sort_by in (None, "val_loss"):
        found = build_report(path, sort_by, "hidden", "lr", figures=False)
        assert [row["state"] for row in found.rows] == ["diverged"] * 4
        assert [row["trial"] for row in found.rows] == [0, 1, 2, 3]
    with pytest.raises(UsageError, match="--sort: no column 'nope'"):
        build_report(path, "nope", "hidden", "lr", figures=False)


def test_report_ranks_trials_that_trained_before_diverged_ones(
    small_magic: Path, tmp_path: Path
) -> None:
    grid = options(small_magic, tmp_path / "runs", hidden="8", dtype="float32")
    path, _ = run_sweep({**grid, "lr": "1e30,0.01,0.1", "optimizer": "sgd"})
    found = build_report(path, "test_f1", "hidden", "lr", figures=False)
    states = [row["state"] for row in found.rows]
    assert states == ["finished", "finished", "diverged"]
    assert isinstance(found.rows[2]["test_f1"], float)
    assert found.rows[0]["test_f1"] >= found.rows[1]["test_f1"]
    with pytest.raises(UsageError) as error:
        build_report(path, "nope", "hidden", "lr", figures=False)
    assert "format" not in str(error.value) and "test_f1" in str(error.value)


def test_report_of_more_than_two_classes_shows_accuracy(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 3))
    table = tmp_path / "three.csv"
    kinds = ["a", "b", "c"]
    lines = [
        f"{a:.4f},{b:.4f},{c:.4f},{kinds[int(a > 0) + int(b > 0)]}" for a, b, c in X
    ]
    table.write_text("\n".join(lines) + "\n")
    path, _ = run_sweep(options(table, tmp_path / "runs"))
    found = build_report(path, None, "hidden", "lr", figures=False)
    headers = [column.header for column in leaderboard(found).columns]
    assert headers[-2:] == ["test_f1", "test_accuracy"]
    with pytest.raises(UsageError, match="--sort: no column 'test_roc_auc'"):
        build_report(path, "test_roc_auc", "hidden", "lr", figures=False)


def test_report_sorts_hyperparameters_in_order_and_best_value_by_its_metric(
    small_magic: Path, tmp_path: Path
) -> None:
    grid = options(small_magic, tmp_path / "runs", hidden="8,4,16")
    path, _ = run_sweep({**grid, "metric": "val_loss,val_f1", "lr": "0.1"})
    by_hidden = build_report(path, "hidden", "hidden", "metric", figures=False)
    assert [row["hidden"] for row in by_hidden.rows] == ["4"] * 2 + ["8"] * 2 + [
        "16"
    ] * 2
    with pytest.raises(UsageError, match=r"monitor different metrics \(val_f1, "):
        build_report(path, "best_value", "hidden", "lr", figures=False)
    path, _ = run_sweep({**grid, "metric": "val_f1", "name": "f1"})
    best = build_report(path, "best_value", "hidden", "lr", figures=False)
    f1 = [row["best_value"] for row in best.rows]
    assert f1 == sorted(f1, reverse=True) and len(set(f1)) > 1


def test_seed_list_with_repeats_is_refused() -> None:
    # seed + r would train seed 1 twice: 0, 1 and 1, 2.
    with pytest.raises(UsageError, match="--repeats: .*0, 1"):
        specs.from_options({"seed": "0,1"}, 2)
    with pytest.raises(UsageError, match="s.toml: repeats"):
        specs.from_spec({"seed": [1, 2], "repeats": 2}, "s.toml")
    assert [t["seed"] for t in specs.from_options({"seed": "3"}, 2)] == [3, 4]
    # Random search once drew seeds 1, 2 for one trial and 0, 1 for another.
    random = {"search": "random", "trials": 3, "lr": [1e-3, 1e-1], "repeats": 2}
    with pytest.raises(UsageError, match="s.toml: repeats: .*0, 1"):
        specs.from_spec({**random, "seed": [0, 1]}, "s.toml")
    assert len(specs.from_spec({**random, "seed": 5}, "s.toml")) == 6


def test_a_value_listed_twice_is_refused() -> None:
    with pytest.raises(UsageError, match=r"^--lr: 0.1 is listed twice"):
        specs.from_options({"lr": "0.1,0.01,0.10"}, 1)
    with pytest.raises(UsageError, match=r"^--hidden: 64x32 is listed twice"):
        specs.from_options({"hidden": "64x32,16,64x32"}, 1)
    with pytest.raises(UsageError, match=r"^s.toml: seed: 3 is listed twice"):
        specs.from_spec({"seed": [3, 3]}, "s.toml")
    with pytest.raises(UsageError, match=r"^--lr: 0.5 is listed twice"):
        specs.from_preset("reference", {"lr": "0.5,0.5"}, 1)
    assert len(specs.from_options({"lr": "0.1,0.01", "hidden": "8,16"}, 1)) == 4


def test_random_search_draws_each_configuration_once() -> None:
    spec = {
        "search": "random",
        "sample_seed": 3,
        "hidden": [[8], [16]],
        "activation": ["relu", "tanh"],
    }
    # Six draws from these four once trained three of them twice.
    trials = specs.from_spec({**spec, "trials": 4}, "r.toml")
    assert sorted((t["hidden"], t["activation"]) for t in trials) == [
        ((8,), "relu"),
        ((8,), "tanh"),
        ((16,), "relu"),
        ((16,), "tanh"),
    ]
    with pytest.raises(UsageError, match="^r.toml: trials: 6 trials, but the ch"):
        specs.from_spec({**spec, "trials": 6}, "r.toml")
    with pytest.raises(UsageError, match="^--trials: 5 trials, but the choices"):
        specs.from_spec(spec, "r.toml", 5)
    # A choice written twice is one configuration.
    with pytest.raises(UsageError, match="hold 1 configuration;"):
        specs.from_spec({"search": "random", "trials": 2, "hidden": [8, "8"]}, "r")
    ranged = specs.from_spec({**spec, "trials": 20, "lr": [1e-4, 1e-1]}, "r.toml")
    assert len({(t["hidden"], t["activation"], t["lr"]) for t in ranged}) == 20


def test_a_spec_metric_the_task_lacks_names_the_file(
    small_magic: Path, tmp_path: Path
) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text('metric = "val_r2"\nepochs = 1\n')
    with pytest.raises(UsageError, match=rf"^{spec}: metric: val_r2 is for regr"):
        run_sweep({"spec": str(spec), "data": str(small_magic), "workers": 1})


def test_a_spec_number_written_as_a_string_is_refused() -> None:
    # "0.01" once passed while "0.01,0.1" failed as no float.
    for value in ("0.01", ["0.01", 0.1]):
        with pytest.raises(UsageError, match="s.toml: lr: expected a number, got the"):
            specs.from_spec({"lr": value}, "s.toml")
    assert specs.from_spec({"lr": 0.01, "hidden": "64x32"}, "s.toml")[0]["lr"] == 0.01
    random = {"search": "random", "trials": 3, "lr": [1e-4, 1e-1]}
    for key in ("trials", "sample_seed", "repeats"):
        with pytest.raises(UsageError, match=f"s.toml: {key}: expected a number"):
            specs.from_spec({**random, key: "2"}, "s.toml")


def test_resume_of_a_missing_folder_says_so(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="no such sweep folder"):
        run_sweep({"resume": tmp_path / "nowhere", "workers": 1})


def test_dask_local_cluster_runs_the_same_code_path(
    small_magic: Path, tmp_path: Path
) -> None:
    pytest.importorskip("distributed")
    _, local = run_sweep(options(small_magic, tmp_path / "a"))
    _, dask = run_sweep(
        options(small_magic, tmp_path / "b", workers=None, dask_local=2)
    )
    by_trial = {r["trial"]: r for r in dask}
    for record in local:
        assert by_trial[record["trial"]]["val_loss"] == pytest.approx(
            record["val_loss"], abs=1e-10
        )


def test_spec_file_random_search_through_the_command(
    small_magic: Path, tmp_path: Path
) -> None:
    spec = tmp_path / "sweep.toml"
    spec.write_text(
        'search = "random"\nlr = [0.001, 0.3]\nhidden = [4, "4x4"]\n'
        'epochs = 1\nbatch_size = 64\noptimizer = "adam"\nsample_seed = 3\n'
    )
    runs = tmp_path / "runs"
    base = ["--data", str(small_magic), "--runs-dir", str(runs), "--workers", "1"]
    result = CliRunner().invoke(sweep, [*base, "--spec", str(spec), "--trials", "3"])
    assert result.exit_code == 0, result.output
    (folder,) = runs.iterdir()
    info = json.loads((folder / "sweep.json").read_text())
    assert len(info["trials"]) == 3
    assert info["spec"]["spec"]["sample_seed"] == 3

    spec.write_text("lr = [0.1]\nlearning_rate = 0.1\n")
    bad = CliRunner().invoke(sweep, [*base, "--spec", str(spec), "--name", "bad"])
    assert isinstance(bad.exception, UsageError)
    assert "learning_rate: unknown key" in str(bad.exception)
    assert not (runs / "bad").exists()


def test_a_lost_worker_fails_its_group_only(tmp_path: Path) -> None:
    from concurrent.futures import Executor, Future
    from concurrent.futures.process import BrokenProcessPool

    class Broken(Executor):
        def submit(self, fn, /, *args, **kwargs) -> Future:
            future: Future = Future()
            future.set_exception(BrokenProcessPool("a worker died"))
            return future

    trials = specs.from_options({"lr": "0.1,0.01"}, 1)
    folder = SweepFolder.create(tmp_path, "lost", {}, trials)
    folder.trial_path(0).mkdir()
    settings = Settings(DataSpec("unused"), "numpy", "float32")
    run_groups(folder, trials, plan_groups(trials, range(2)), settings, Broken())
    results = folder.results()
    assert [results[i]["state"] for i in (0, 1)] == ["failed", "failed"]
    assert "a worker died" in results[0]["error"]
    status = json.loads((folder.trial_path(0) / "status.json").read_text())
    assert status["state"] == "failed"


def test_in_process_groups_are_recorded_as_they_end(
    small_magic: Path, tmp_path: Path
) -> None:
    # With --workers 1 a kill midway must leave the ended trials' results.
    _, trials = b21_trials()
    folder = SweepFolder.create(tmp_path, "inline", {}, trials)
    groups = plan_groups(trials, range(len(trials)), fuse=False)
    seen: list[int] = []

    class Watching(InlineExecutor):
        def submit(self, fn, /, *args, **kwargs):
            path = folder.path / "results.jsonl"
            seen.append(len(path.read_text().splitlines()) if path.is_file() else 0)
            return super().submit(fn, *args, **kwargs)

    settings = Settings(DataSpec(str(small_magic)), "numpy", "float32")
    run_groups(folder, trials, groups, settings, Watching())
    assert seen == list(range(len(trials)))


def refuse_non_finite(constant: str) -> None:
    pytest.fail(f"a run file holds {constant}")


def test_case_b04_in_a_sweep_the_next_trial_still_runs(
    magic_path: Path, tmp_path: Path
) -> None:
    case = json.loads(case_file("B04_diverge_lr10.json").read_text())
    assert case["activation"] == "tanh" and case["loss"] == "bce"
    lr = case["learning_rate"]
    # The case's trial stacked with a calm one, and the calm one alone.
    path, results = run_sweep(
        options(
            magic_path,
            tmp_path / "runs",
            dtype="float32",
            hidden=str(case["hidden"][0]),
            activation=case["activation"],
            optimizer="sgd",
            lr=f"{lr},0.01",
            batch_size=str(case["batch_size"]),
            epochs=str(case["epochs"]),
            seed=str(case["seed"]),
        )
    )
    states = {r["lr"]: r["state"] for r in results}
    assert states[lr] in ("finished", "diverged")
    assert states[0.01] == "finished"
    for record in results:
        for name in ("status.json", "summary.json"):
            # JSON without NaN or Infinity, whatever the case's trial did.
            text = (path / record["name"] / name).read_text()
            json.loads(text, parse_constant=refuse_non_finite)
        if record["state"] == "finished":
            assert all(math.isfinite(record[k]) for k in ("val_loss", "test_log_loss"))
    _, alone = run_sweep(
        options(
            magic_path,
            tmp_path / "runs",
            name="alone",
            dtype="float32",
            hidden=str(case["hidden"][0]),
            activation=case["activation"],
            optimizer="sgd",
            lr="0.01",
            batch_size=str(case["batch_size"]),
            epochs=str(case["epochs"]),
            seed=str(case["seed"]),
        )
    )
    calm = next(r for r in results if r["lr"] == 0.01)
    assert calm["test_accuracy"] == pytest.approx(alone[0]["test_accuracy"], abs=1e-3)


def test_spec_file_with_trial_options_on_the_command_line_is_refused(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "sweep.toml"
    spec.write_text("hidden = [[8]]\nlr = [0.1]\nepochs = 3\n")
    from mlp_backend.cli import main

    args = ["sweep", "--spec", str(spec), "--hidden", "16", "--runs-dir", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "--spec" in result.output and "--hidden" in result.output
    assert not any(tmp_path.glob("sweep-*"))


@pytest.mark.parametrize(
    "text,args,message",
    [
        (
            "sample_seed = -1\ntrials = 2\n",
            [],
            "sweep.toml: sample_seed: must be 0 or more, got -1",
        ),
        ("trials = 0\n", [], "sweep.toml: trials: must be at least 1, got 0"),
        ("trials = 2\n", ["--trials", "-1"], "--trials: must be at least 1, got -1"),
        (
            "trials = 2\nrepeats = 0\n",
            [],
            "sweep.toml: repeats: must be at least 1, got 0",
        ),
    ],
)
def test_random_spec_counts_out_of_range_name_the_key(
    tmp_path: Path, text: str, args: list[str], message: str
) -> None:
    spec = tmp_path / "sweep.toml"
    spec.write_text(f'search = "random"\nlr = [0.001, 0.1]\n{text}')
    runs = tmp_path / "runs"
    result = CliRunner().invoke(
        cli, ["sweep", "--spec", str(spec), "--runs-dir", str(runs), *args]
    )
    assert result.exit_code == 2, result.output
    assert result.output.strip().endswith(message), result.output
    assert not runs.exists()


def test_a_grid_spec_refuses_a_number_of_trials(tmp_path: Path) -> None:
    spec = tmp_path / "grid.toml"
    spec.write_text("lr = [0.1, 0.01]\nepochs = 1\n")
    runs = tmp_path / "runs"
    base = ["sweep", "--spec", str(spec), "--runs-dir", str(runs)]
    given = CliRunner().invoke(cli, [*base, "--trials", "3"])
    assert given.exit_code == 2
    assert given.output == (
        f"error: --trials: only for random search; {spec} is a grid search "
        '(set search = "random" in it to draw trials)\n'
    )
    for key in ("trials = 5", "sample_seed = 1"):
        spec.write_text(f"lr = [0.1, 0.01]\nepochs = 1\n{key}\n")
        in_file = CliRunner().invoke(cli, base)
        assert in_file.exit_code == 2
        assert in_file.output == (
            f"error: {spec}: {key.split()[0]}: only for random search "
            '(search = "random"); a grid search trains every combination\n'
        )
    assert not runs.exists()


@pytest.mark.parametrize(
    "address", ["bogus", "tcp://host", "tcp://host:", "tcp://host:99999", "foo://h:1"]
)
def test_a_malformed_scheduler_is_refused_before_the_folder(
    tmp_path: Path, address: str
) -> None:
    runs = tmp_path / "runs"
    args = ["--hidden", "8", "--epochs", "1", "--runs-dir", str(runs)]
    result = CliRunner().invoke(cli, ["sweep", *args, "--scheduler", address])
    assert result.exit_code == 2
    assert result.output == (
        "error: --scheduler: expected a Dask scheduler address tcp://host:port, "
        f"got {address!r}\n"
    )
    assert not runs.exists()


@pytest.mark.parametrize(
    "address", ["tcp://127.0.0.1:8786", "tcp://[::1]:8786", "tls://host:1", "h:8786"]
)
def test_well_formed_scheduler_addresses_pass_the_check(address: str) -> None:
    check_scheduler(address)


@pytest.mark.parametrize(
    "args,named",
    [
        (["--dask-local", "1", "--workers", "2"], "--workers and --dask-local"),
        (
            ["--scheduler", "tcp://127.0.0.1:1", "--workers", "1"],
            "--workers and --scheduler",
        ),
        (
            ["--scheduler", "tcp://127.0.0.1:1", "--dask-local", "1"],
            "--scheduler and --dask-local",
        ),
    ],
)
def test_one_option_says_where_trials_run(
    tmp_path: Path, args: list[str], named: str
) -> None:
    runs = tmp_path / "runs"
    base = ["sweep", "--hidden", "8", "--epochs", "1", "--runs-dir", str(runs)]
    result = CliRunner().invoke(cli, [*base, *args])
    assert result.exit_code == 2
    assert result.output == (
        f"error: {named}: choose one (each says where the trials run)\n"
    )
    assert not runs.exists()


@pytest.mark.parametrize(
    "place", [["--dask-local", "1"], ["--scheduler", "tcp://127.0.0.1:8786"]]
)
def test_dask_missing_is_said_before_the_folder(
    tmp_path: Path, monkeypatch, place: list[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "distributed" else real(name, *a),
    )
    runs = tmp_path / "runs"
    args = ["--hidden", "8", "--epochs", "1", "--runs-dir", str(runs), *place]
    result = CliRunner().invoke(cli, ["sweep", *args])
    assert result.exit_code == 2
    assert result.output == (
        "error: --scheduler/--dask-local need Dask, which is not installed; "
        "install it with pip install 'mlp-backend[cluster]'\n"
    )
    assert not runs.exists()


@pytest.mark.parametrize(
    "args,named", [(["--lr", "0.1"], "--lr"), (["--repeats", "1"], "--repeats")]
)
def test_trial_options_beside_a_spec_are_refused(
    tmp_path: Path, args: list[str], named: str
) -> None:
    """Even a --repeats equal to the default, which the file's own repeats
    key would otherwise silently override."""
    spec = tmp_path / "sweep.toml"
    spec.write_text("hidden = [4]\nrepeats = 3\n")
    runs = tmp_path / "runs"
    call = ["sweep", "--spec", str(spec), "--runs-dir", str(runs), *args]
    result = CliRunner().invoke(cli, call)
    assert result.exit_code == 2
    assert result.output == (
        f"error: --spec: the file sets the trials; put {named} in it (as keys) "
        "instead of on the command line\n"
    )
    assert not runs.exists()


def test_a_sweep_stopped_on_request_says_how_to_go_on(
    small_magic: Path, tmp_path: Path, monkeypatch
) -> None:
    import mlp_backend.job

    def sweep_stop_request(self) -> bool:
        # As the monitor's x writes it: the sweep folder's stop.request.
        for path in self.also:
            path.touch()
        return True

    monkeypatch.setattr(mlp_backend.job.StopFlag, "__call__", sweep_stop_request)
    runs = tmp_path / "runs"
    args = ["--data", str(small_magic), "--runs-dir", str(runs), "--name", "s"]
    args += ["--hidden", "4,8", "--epochs", "2", "--workers", "1"]
    result = CliRunner().invoke(cli, ["-q", "sweep", *args])
    assert result.exit_code == 0, result.output
    states = {r["state"] for r in SweepFolder(runs / "s").results().values()}
    assert states == {"interrupted"}, result.output
    assert result.output.endswith(
        "sweep stopped on request; continue it with: mlp-backend sweep --resume "
        f"{runs / 's'}\n"
    ), result.output


def test_the_sweep_line_counts_trials_not_begun_and_a_late_ctrl_c_is_no_interrupt(
    small_magic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweep interrupted before any trial ended printed 'sweep PATH: ' and
    nothing more; a Ctrl-C that came once every trial had finished said the
    sweep was interrupted and exited 130."""
    import mlp_backend.sweep.driver as driver
    from mlp_backend import job

    path, results = run_sweep(options(small_magic, tmp_path, lr="0.1,0.05,0.01"))
    assert len(results) == 6
    for ended, line, code in (
        (results[:2], f"sweep {path}: 2 finished, 4 not begun", 130),
        (results, f"sweep {path}: 6 finished", 0),
    ):
        monkeypatch.setattr(
            driver, "run_sweep", lambda options, ended=ended: (path, ended)
        )
        job._INTERRUPT.set()
        try:
            args = ["--resume", str(path), "--workers", "1"]
            result = CliRunner().invoke(sweep, args)
        finally:
            job._INTERRUPT.clear()
        assert result.exit_code == code, result.output
        assert result.output.splitlines()[0] == line
        assert ("--resume" in result.output) == (code == 130)
