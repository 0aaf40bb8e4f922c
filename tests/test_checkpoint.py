"""Resuming from a checkpoint equals never having stopped.

The trainer's per-epoch member states, written to ``checkpoint.log`` and read
back, must let a new trainer go on to exactly the figures and weights of an
uninterrupted run: the oracle behind ``sweep --resume`` after ``kill -9``.
"""

from __future__ import annotations

import dataclasses
import json
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from mlp_backend.backend import Backend
from mlp_backend.checkpoint import (
    COMPACT_AFTER,
    HEADER,
    MAGIC,
    CheckpointLog,
    encode,
    last_record,
    load_checkpoint,
)
from mlp_backend.errors import RunError
from mlp_backend.job import Recorder
from mlp_backend.runs import RunFolder
from mlp_backend.train import Member, MemberState, TrainConfig, Trainer
from tests.test_sweep_fused import VARYING, synthetic

MEMBERS = [
    Member(hidden=(6, 4), lr=0.05, momentum=0.9, weight_decay=0.01, seed=3),
    Member(hidden=(9, 7), lr=0.02, momentum=0.5, weight_decay=0.0, seed=3),
    Member(hidden=(5, 8), lr=0.01, momentum=0.8, weight_decay=0.0, seed=5),
]


def config(optimizer: str) -> TrainConfig:
    # Patience 3 on accuracy: early stopping state must survive the resume.
    return TrainConfig(
        activation="tanh",
        optimizer=optimizer,
        batch_size=16,
        epochs=8,
        patience=3,
        monitor="val_accuracy",
        schedule="cosine",
    )


def checkpoints(backend: Backend, optimizer: str, members: int) -> list[MemberState]:
    """Every state the trainer hands to its checkpoint callback, in order."""
    states: list[MemberState] = []
    Trainer(
        backend,
        config(optimizer),
        MEMBERS[:members],
        synthetic(backend),
        checkpoint=lambda j, s: states.append(s),
    ).run()
    return states


@pytest.mark.parametrize("optimizer", ["sgd", "nesterov", "adam"])
def test_resumed_members_equal_uninterrupted(
    backend32: Backend, optimizer: str, tmp_path: Path
) -> None:
    data = synthetic(backend32)
    whole = Trainer(backend32, config(optimizer), MEMBERS, data).run()

    # A run that writes its run folders and is "killed" after epoch 2: its
    # checkpoints stop there, its metrics lines go on (the resume cuts them).
    folders = {j: RunFolder(tmp_path / f"member{j}") for j in range(3)}
    for folder in folders.values():
        folder.path.mkdir()
    recorder = Recorder(folders, 8, backend32)
    saved: dict[int, Path] = {}

    def checkpoint(j: int, state: MemberState) -> None:
        if state.epoch == 2:
            saved[j] = folders[j].path / "checkpoint.log"
            recorder.checkpoint(j, state)

    Trainer(
        backend32, config(optimizer), MEMBERS, data, [recorder], checkpoint=checkpoint
    ).run()
    assert sorted(saved) == [0, 1, 2]
    states = [load_checkpoint(saved[j]) for j in range(3)]
    assert all(s.epoch == 2 and len(s.history) == 2 for s in states)

    resumed = Trainer(backend32, config(optimizer), MEMBERS, data, resume=states).run()
    for a, r in zip(whole, resumed, strict=True):
        assert (r.state, r.epochs_run, r.best_epoch) == (
            a.state,
            a.epochs_run,
            a.best_epoch,
        )
        assert r.best_value == a.best_value
        for ra, rr in zip(a.history, r.history, strict=True):
            assert {k: v for k, v in rr.items() if k not in VARYING} == {
                k: v for k, v in ra.items() if k not in VARYING
            }
        for pa, pr in zip(a.params, r.params, strict=True):
            # float32 bit for bit: the same operations on the same numbers.
            np.testing.assert_array_equal(pr, pa)


def test_checkpoints_keep_to_their_share_of_the_time(backend: Backend) -> None:
    """A checkpoint of 20 ms with a share of 2% is next due a second later:
    the run's few-millisecond epochs after the first get none."""
    every = [s.epoch for s in checkpoints(backend, "sgd", 1)]
    assert len(every) > 2 and every == list(range(1, len(every) + 1))
    spaced: list[int] = []

    def slow(j: int, state: MemberState) -> None:
        time.sleep(0.02)
        spaced.append(state.epoch)

    Trainer(
        backend,
        config("sgd"),
        MEMBERS[:1],
        synthetic(backend),
        checkpoint=slow,
        checkpoint_share=0.02,
    ).run()
    assert spaced == [1]


def test_checkpoints_name_their_stack_and_follow_its_changes(
    backend: Backend, tmp_path: Path
) -> None:
    """With checkpoints kept to a tiny share, the first epoch gets one and so
    does the epoch after which a member leaves: the survivors' stack."""
    states: list[MemberState] = []
    results = Trainer(
        backend,
        config("sgd"),
        MEMBERS,
        synthetic(backend),
        checkpoint=lambda j, s: states.append(s),
        pruner=lambda epoch, monitored: [0] if epoch == 3 else [],
        checkpoint_share=1e-9,
        names=["a", "b", "c"],
    ).run()
    assert results[0].state == "pruned" and results[0].epochs_run == 3
    names = {"a": 0, "b": 1, "c": 2}
    ends = {r.epochs_run for r in results if r.epochs_run < 8}
    assert {s.epoch for s in states} == {1, *ends}
    for state in states:
        training = [n for n, j in names.items() if results[j].epochs_run > state.epoch]
        assert state.stack == tuple(training)
    assert [s.stack for s in states if s.epoch == 3] == [("b", "c")] * 2
    # The stack goes to disk and back; a log written without one reads as ().
    three = next(s for s in states if s.epoch == 3)
    path = tmp_path / "checkpoint.log"
    CheckpointLog(path).write(three)
    (tmp_path / "metrics.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in three.history)
    )
    assert load_checkpoint(path).stack == ("b", "c")
    body, values, _ = last_record(encode(three))
    meta = json.loads(body)
    del meta["stack"]
    body = json.dumps(meta).encode()
    crc = zlib.crc32(values, zlib.crc32(body))
    path.write_bytes(HEADER.pack(MAGIC, len(body), len(values), crc) + body + values)
    assert load_checkpoint(path).stack == ()


def test_resume_needs_one_epoch_for_all_members(backend: Backend) -> None:
    states = checkpoints(backend, "sgd", 2)
    mixed = [states[0], states[-1]]
    assert mixed[0].epoch != mixed[1].epoch
    with pytest.raises(ValueError, match="one epoch"):
        Trainer(backend, config("sgd"), MEMBERS[:2], synthetic(backend), resume=mixed)


def test_a_torn_checkpoint_is_a_clear_error(backend: Backend, tmp_path: Path) -> None:
    states = checkpoints(backend, "adam", 1)
    path = tmp_path / "checkpoint.log"
    CheckpointLog(path).write(states[0])
    # The epoch records live in metrics.jsonl beside it.
    with pytest.raises(RunError, match="metrics.jsonl: not found"):
        load_checkpoint(path)
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1, "val_loss": 0.5}\n')
    assert load_checkpoint(path).history == [{"epoch": 1, "val_loss": 0.5}]
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1, "val_lo')
    with pytest.raises(RunError, match="fewer than 1 whole records"):
        load_checkpoint(path)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(RunError, match="not a readable checkpoint"):
        load_checkpoint(path)
    with pytest.raises(RunError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.log")


def test_the_log_keeps_the_last_whole_record(backend: Backend, tmp_path: Path) -> None:
    states = checkpoints(backend, "adam", 1)
    assert len(states) >= 3
    lines = "".join(f'{{"epoch": {s.epoch}}}\n' for s in states)
    (tmp_path / "metrics.jsonl").write_text(lines)
    path = tmp_path / "checkpoint.log"
    log = CheckpointLog(path)
    for state in states[:3]:
        log.write(state)
    assert path.stat().st_size == sum(len(encode(s)) for s in states[:3])
    assert load_checkpoint(path).epoch == states[2].epoch
    # The training time so far rises with the epochs and is read back whole.
    assert 0 < states[0].seconds < states[1].seconds < states[2].seconds
    assert load_checkpoint(path).seconds == states[2].seconds

    # A kill in the middle of the third record leaves the second one.
    whole = path.read_bytes()
    path.write_bytes(whole[: -len(encode(states[2])) // 2])
    assert load_checkpoint(path).epoch == states[1].epoch
    # A flipped byte fails the record's CRC.
    bad = bytearray(whole)
    bad[-1] ^= 0xFF
    path.write_bytes(bytes(bad))
    assert load_checkpoint(path).epoch == states[1].epoch

    # A new writer (a resumed run) replaces the torn log instead of appending.
    CheckpointLog(path).write(states[0])
    assert path.read_bytes() == encode(states[0])


def test_the_log_is_compacted(backend: Backend, tmp_path: Path) -> None:
    states = checkpoints(backend, "sgd", 1)
    path = tmp_path / "checkpoint.log"
    log = CheckpointLog(path)
    size = len(encode(states[0]))
    for _ in range(3 * COMPACT_AFTER + 1):
        log.write(states[0])
        assert HEADER.size < path.stat().st_size <= COMPACT_AFTER * size
    # 3 * COMPACT_AFTER + 1 writes: the last one started a fresh log.
    assert path.stat().st_size == size


@pytest.mark.parametrize(
    "change, message",
    [
        ({"epoch": -3}, "incomplete"),
        ({"best_epoch": 9}, "incomplete"),
        ({"shuffle": {"bit_generator": "PCG64", "state": 7}}, "incomplete"),
        ({"moments": []}, "not those of adam"),
    ],
)
def test_an_impossible_checkpoint_is_a_clear_error(
    backend: Backend, tmp_path: Path, change: dict, message: str
) -> None:
    states = checkpoints(backend, "adam", 1)
    good = states[1]
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n')
    path = tmp_path / "checkpoint.log"
    sizes = (5, *MEMBERS[0].hidden, 1)
    CheckpointLog(path).write(good)
    assert load_checkpoint(path, sizes, "adam").epoch == 2
    with pytest.raises(RunError, match="does not fit the network"):
        load_checkpoint(path, (5, 6, 5, 1), "adam")
    CheckpointLog(path).write(dataclasses.replace(good, **change))
    with pytest.raises(RunError, match=message):
        load_checkpoint(path, sizes, "adam")
