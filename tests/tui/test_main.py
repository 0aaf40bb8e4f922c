"""``python -m tui`` and :func:`tui.check_runs_dir`, which every entry point uses."""

from __future__ import annotations

from pathlib import Path

import pytest

import tui.__main__ as entry
from tui import check_runs_dir


def test_check_runs_dir(tmp_path: Path) -> None:
    assert check_runs_dir(tmp_path) is None
    missing = check_runs_dir(tmp_path / "nowhere")
    assert missing is not None and "does not exist" in missing
    assert str(tmp_path / "nowhere") in missing
    file = tmp_path / "file"
    file.write_text("")
    not_folder = check_runs_dir(file)
    assert not_folder is not None and "not a folder" in not_folder


def test_missing_runs_dir_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[Path] = []
    monkeypatch.setattr(entry, "run_monitor", lambda path, **_: opened.append(path))
    with pytest.raises(SystemExit) as exit_info:
        entry.main([str(tmp_path / "nowhere")])
    assert exit_info.value.code == 2
    assert check_runs_dir(tmp_path / "nowhere") in capsys.readouterr().err
    # A nan or a tiny time never let the screen draw; inf never updates it.
    for bad in ("0", "-1", "nan", "1e-9", "inf"):
        with pytest.raises(SystemExit) as exit_info:
            entry.main([str(tmp_path), "--refresh", bad])
        assert exit_info.value.code == 2
        assert "--refresh: expected seconds from 0.05 to 3600" in (
            capsys.readouterr().err
        )
    # pytest's streams are no terminal, which the monitor needs to draw.
    with pytest.raises(SystemExit) as exit_info:
        entry.main([str(tmp_path), "--refresh", "0.5"])
    assert exit_info.value.code == 2
    assert "the monitor needs a terminal" in capsys.readouterr().err
    assert opened == []
    monkeypatch.setattr(entry, "check_terminal", lambda: None)
    entry.main([str(tmp_path), "--refresh", "0.5"])
    assert opened == [tmp_path]
