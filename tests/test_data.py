"""Tests of the data layer: strict loading, locating MAGIC, labels, splits, scaling.

The shared failure cases (B12, B14, B15, B17) are read from the shared folder, the
full MAGIC file from ``MLP_BACKEND_DATA``; tests that need them skip without them.
Downloads are tested against a local HTTP server, never the network.
"""

from __future__ import annotations

import functools
import http.server
import os
import random
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mlp_backend.data import (
    DATA_ENV,
    MAGIC_CLASSES,
    MAGIC_FEATURES,
    Encoding,
    Features,
    Standardizer,
    Table,
    encode_labels,
    load_magic,
    load_table,
    locate_magic,
    stratified_split,
)
from mlp_backend.errors import DataError, MLPBackendWarning, UsageError

SHARED = Path(
    os.environ.get(
        "MLP_BACKEND_SHARED", Path(__file__).resolve().parents[1].parent / "shared"
    )
)
CASES = SHARED / "cases"

# Five MAGIC rows (3 g, 2 h), the raw material of the hand-made files below.
ROWS = [
    "28.7967,16.0021,2.6449,0.3918,0.1982,27.7004,22.011,-8.2027,40.092,81.8828,g",
    "31.6036,11.7235,2.5185,0.5303,0.3773,26.2722,23.8238,-9.9574,6.3609,205.261,g",
    "162.052,136.031,4.0612,0.0374,0.0187,116.741,-64.858,-45.216,76.96,256.788,g",
    "93.7035,37.9432,3.1454,0.168,0.1011,53.2566,89.0566,11.8175,14.1224,231.9028,h",
    "102.0005,22.0017,3.3161,0.1064,0.0724,-54.0862,43.0553,-15.0647,88.4636,274.9392,h",
]
HEADER = ",".join([*MAGIC_FEATURES, "class"])


def case(name: str) -> Path:
    path = CASES / name
    if not path.is_file():
        pytest.skip(f"shared case file {path} not found (set MLP_BACKEND_SHARED)")
    return path


@pytest.fixture
def magic_file() -> Path:
    # Resolved now: a relative MLP_BACKEND_DATA must survive tests that chdir.
    path = Path(os.environ.get(DATA_ENV, SHARED / "data" / "magic04.data")).resolve()
    if not path.is_file():
        pytest.skip(f"MAGIC data not found at {path} (set {DATA_ENV})")
    return path


def write(tmp_path: Path, text: str | bytes, name: str = "t.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return path


# ---- MAGIC and the shared failure cases ---------------------------------------


def test_full_magic_loads_with_official_counts(magic_file: Path) -> None:
    table = load_magic(magic_file, full=True)
    assert table.X.shape == (19_020, 10)
    assert table.X.dtype == np.float64
    assert np.isfinite(table.X).all()
    assert table.feature_names == MAGIC_FEATURES
    assert table.named
    assert int((table.labels == "g").sum()) == 12_332
    assert int((table.labels == "h").sum()) == 6_688

    # The generic reader sees the same numbers, with placeholder names.
    generic = load_table(magic_file, allowed_labels=["g", "h"])
    np.testing.assert_array_equal(generic.X, table.X)
    np.testing.assert_array_equal(generic.labels, table.labels)
    assert generic.feature_names[0] == "col1" and not generic.named


def test_full_check_rejects_a_subset() -> None:
    with pytest.raises(DataError, match="19020"):
        load_magic(case("B17_five_rows.csv"), full=True)


@pytest.mark.parametrize("loader", [load_magic, load_table])
def test_b12_short_row_is_an_error_naming_file_line_and_counts(loader) -> None:
    with pytest.raises(DataError) as info:
        loader(case("B12_short_row.csv"))
    message = str(info.value)
    assert "B12_short_row.csv" in message
    assert "line 3:" in message
    assert "expected 11 fields, found 10" in message


@pytest.mark.parametrize("label", [0, 5, 10])
def test_a_long_row_beside_a_short_one_is_still_an_error(
    tmp_path: Path, label: int
) -> None:
    """Row 2 has a field too many and row 4 one too few: the file's total of
    fields is right, but each row is counted on its own, wherever the label is."""
    rows = []
    for row in ROWS:
        fields = row.split(",")
        fields.insert(label, fields.pop())
        rows.append(",".join(fields))
    assert list(load_table(write(tmp_path, "\n".join(rows)), label=label).labels) == [
        "g",
        "g",
        "g",
        "h",
        "h",
    ]
    rows[1] += ",1.5"
    rows[3] = rows[3].rsplit(",", 1)[0] if label < 10 else rows[3].split(",", 1)[1]
    with pytest.raises(DataError, match="line 2: expected 11 fields, found 12"):
        load_table(write(tmp_path, "\n".join(rows)), label=label)


def test_b12_row_is_neither_dropped_nor_padded(tmp_path: Path) -> None:
    lines = case("B12_short_row.csv").read_text().splitlines()
    # Without the short row the other four load; with it there is no table at all.
    assert load_magic(write(tmp_path, "\n".join(lines[:2] + lines[3:]))).X.shape == (
        4,
        10,
    )
    with pytest.raises(DataError):
        load_table(case("B12_short_row.csv"), header=False)


@pytest.mark.parametrize("loader", [load_magic, load_table])
def test_b14_unknown_label_names_line_value_and_allowed(loader) -> None:
    kwargs = {} if loader is load_magic else {"allowed_labels": ["g", "h"]}
    with pytest.raises(DataError) as info:
        loader(case("B14_unknown_label.csv"), **kwargs)
    message = str(info.value)
    assert "B14_unknown_label.csv" in message
    assert "line 4" in message and "column 11" in message
    assert "'x'" in message
    assert "'g', 'h'" in message


def test_b14_whitespace_and_carriage_return_around_labels(tmp_path: Path) -> None:
    text = "".join(
        f"{row[:-1]} {row[-1]} \r\n" if i % 2 else f"{row[:-1]}\t{row[-1]}\r\r\n"
        for i, row in enumerate(ROWS)
    )
    table = load_magic(write(tmp_path, text))
    assert list(table.labels) == ["g", "g", "g", "h", "h"]


def test_b15_constant_column_standardises_to_zero_with_warning() -> None:
    table = load_magic(case("B15_constant_column.csv"))
    with pytest.warns(MLPBackendWarning, match="fConc1") as record:
        scaler = Standardizer.fit(table.X, table.feature_names)
    assert len(record) == 1
    Z = scaler.transform(table.X)
    assert np.isfinite(Z).all()
    assert np.all(Z[:, 4] == 0.0)
    assert scaler.scale[4] == 1.0
    others = np.delete(Z, 4, axis=1)
    np.testing.assert_allclose(others.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(others.std(axis=0), 1.0, rtol=1e-12)


def test_b17_five_rows_load_and_split_with_nonempty_train() -> None:
    table = load_magic(case("B17_five_rows.csv"))
    assert table.X.shape == (5, 10)
    y, _ = encode_labels(table.labels, classes=MAGIC_CLASSES)
    split = stratified_split(y)
    assert split.train.size >= 1
    assert sorted(np.concatenate([split.train, split.val, split.test])) == list(
        range(5)
    )


# ---- the generic reader ---------------------------------------------------------


def test_crlf_bom_and_trailing_blank_lines(tmp_path: Path) -> None:
    text = "\ufeff" + "\r\n".join(ROWS) + "\r\n\r\n  \n\n"
    table = load_table(write(tmp_path, text))
    assert table.X.shape == (5, 10)
    assert table.X[0, 0] == 28.7967
    assert list(table.labels) == ["g", "g", "g", "h", "h"]


def test_blank_line_inside_the_data_is_an_error(tmp_path: Path) -> None:
    text = "\n".join([ROWS[0], "", *ROWS[1:]])
    with pytest.raises(DataError, match=r"line 2: is blank; expected 11 fields"):
        load_table(write(tmp_path, text))


def test_header_is_detected_and_names_the_features(tmp_path: Path) -> None:
    table = load_table(write(tmp_path, "\n".join([HEADER, *ROWS])))
    assert table.X.shape == (5, 10)
    assert table.feature_names == MAGIC_FEATURES
    assert table.named


def test_headerless_first_row_is_data(tmp_path: Path) -> None:
    table = load_table(write(tmp_path, "\n".join(ROWS)))
    assert table.X.shape == (5, 10)
    assert not table.named


def test_first_line_mixing_names_and_numbers_is_reported_as_data(
    tmp_path: Path,
) -> None:
    text = "\n".join(["a,1,2,3,4,5,6,7,8,9,class", *ROWS])
    with pytest.raises(DataError, match=r"line 1, column 1: found 'a'; expected a"):
        load_table(write(tmp_path, text))


def test_header_errors_are_counted_as_line_one(tmp_path: Path) -> None:
    path = write(tmp_path, "\n".join([HEADER, ROWS[0], ROWS[1][:-2], *ROWS[2:]]))
    with pytest.raises(DataError, match=r"line 3: expected 11 fields, found 10"):
        load_table(path)
    with pytest.raises(DataError, match="no data rows"):
        load_table(write(tmp_path, HEADER + "\n", "h.csv"))
    dup = HEADER.replace("fWidth", "fLength")
    with pytest.raises(DataError, match="'fLength' appears twice"):
        load_table(write(tmp_path, "\n".join([dup, *ROWS]), "d.csv"))


def test_label_by_name_and_by_index(tmp_path: Path) -> None:
    # Put the class first, then pick it by name, by index 0 and by index -11.
    moved = [",".join([r.split(",")[-1], *r.split(",")[:-1]]) for r in ROWS]
    header = ",".join(["class", *MAGIC_FEATURES])
    path = write(tmp_path, "\n".join([header, *moved]))
    by_name = load_table(path, label="class")
    by_index = load_table(path, label=0)
    by_negative = load_table(path, label=-11, header=True)
    for table in (by_name, by_index, by_negative):
        assert table.feature_names == MAGIC_FEATURES
        assert list(table.labels) == ["g", "g", "g", "h", "h"]
        assert table.X[4, 9] == 274.9392

    # A middle column as label: fSize becomes the target of a regression.
    numeric = [r.rsplit(",", 1)[0] for r in ROWS]
    path = write(tmp_path, "\n".join([",".join(MAGIC_FEATURES), *numeric]), "r.csv")
    reg = load_table(path, label="fSize", task="regression")
    assert reg.labels.dtype == np.float64
    np.testing.assert_array_equal(reg.labels[:2], [2.6449, 2.5185])
    assert reg.feature_names == [f for f in MAGIC_FEATURES if f != "fSize"]
    assert reg.X[0, 2] == 0.3918


def test_label_name_for_a_file_without_a_header_says_line_1_is_data(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "\n".join(ROWS), "bare.csv")
    with pytest.raises(DataError) as caught:
        load_table(path, label="class")
    message = str(caught.value)
    assert "bare.csv, line 1: no column named 'class'" in message
    assert "line 1 is data (28.7967, 16.0021," in message
    assert "column index (0 to 10, or -1 for the last)" in message
    assert "the header names" not in message


@pytest.mark.parametrize("quote", ['"', "'"])
def test_a_quoted_label_is_an_error_not_a_class(tmp_path: Path, quote: str) -> None:
    label = f"{quote}yes{quote}"
    rows = ["a,b,kind", "1.0,2.0,no", f"2.0,1.0,{label}", "3.0,1.5,no"]
    path = write(tmp_path, "\n".join(rows))
    with pytest.raises(DataError) as caught:
        load_table(path)
    assert str(caught.value) == (
        f"{path}, line 3, column 3 (kind): found {label!r}; "
        "quoted fields are not supported; remove the quotes"
    )
    # A quote inside a label is a character like any other.
    inner = write(tmp_path, "\n".join([*rows[:2], "2.0,1.0,it's", rows[3]]), "i.csv")
    assert sorted(set(load_table(inner).labels)) == ["it's", "no"]


def test_label_argument_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "\n".join([HEADER, *ROWS]))
    with pytest.raises(DataError, match="no column named 'target'"):
        load_table(path, label="target")
    with pytest.raises(DataError, match="out of range for 11 fields"):
        load_table(path, label=11)
    with pytest.raises(UsageError, match="needs a header"):
        load_table(path, label="class", header=False)
    with pytest.raises(UsageError, match="task"):
        load_table(path, task="ranking")
    with pytest.raises(UsageError, match="delimiter"):
        load_table(path, delimiter=";")
    with pytest.raises(UsageError, match="label"):
        load_table(path, label=True)


def test_no_label_column_reads_every_column_as_a_feature(tmp_path: Path) -> None:
    rows = [r.rsplit(",", 1)[0] for r in ROWS]
    table = load_table(write(tmp_path, "\n".join(rows)), label=None)
    assert table.X.shape == (5, 10) and table.labels is None


@pytest.mark.parametrize("delimiter", [None, " ", "\t"])
def test_whitespace_delimited(tmp_path: Path, delimiter: str | None) -> None:
    text = "\n".join(
        ("  " if i % 2 else "") + r.replace(",", " \t " if i % 2 else " ") + "  "
        for i, r in enumerate(ROWS)
    )
    table = load_table(
        write(tmp_path, "x1 x2 x3 x4 x5 x6 x7 x8 x9 x10 y\n" + text),
        delimiter=delimiter,
    )
    assert table.X.shape == (5, 10)
    assert table.feature_names[-1] == "x10"
    assert table.X[2, 0] == 162.052


def test_regression_targets(tmp_path: Path) -> None:
    path = write(tmp_path, "a b target\n1 2 0.5\n3 4 -1e3\n5 6 7\n")
    table = load_table(path, task="regression")
    np.testing.assert_array_equal(table.labels, [0.5, -1000.0, 7.0])
    assert table.labels.dtype == np.float64
    bad = write(tmp_path, "1,2,0.5\n3,4,high\n", "bad.csv")
    with pytest.raises(DataError, match=r"line 2, column 3: found 'high'; expected"):
        load_table(bad, task="regression")
    with pytest.raises(DataError, match=r"line 1, column 3: the target is missing"):
        load_table(write(tmp_path, "1,2,\n", "e.csv"), task="regression")


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("1,2x,3,g", r"line 3, column 2 \(fWidth\): found '2x'; expected a number"),
        ("1,,3,g", r"line 3, column 2 \(fWidth\): the value is missing"),
        ("1, ,3,g", r"line 3, column 2 \(fWidth\): the value is missing"),
        ("1,2,nan,g", r"line 3, column 3 \(fSize\): found 'nan'; expected a finite"),
        ("1,2,1e999,g", r"line 3, column 3 \(fSize\): found '1e999'; expected a"),
        ("1,2,3,", r"line 3, column 4 \(class\): the label is missing"),
    ],
)
def test_bad_values_name_line_and_column(
    tmp_path: Path, row: str, expected: str
) -> None:
    path = write(tmp_path, f"fLength,fWidth,fSize,class\n4,5,6,h\n{row}\n")
    with pytest.raises(DataError, match=expected):
        load_table(path)


def test_non_utf8_bytes_name_the_line(tmp_path: Path) -> None:
    data = ("\n".join(ROWS[:3]) + "\n").encode() + b"1,2,\xff\xfe,g\n"
    with pytest.raises(DataError, match=r"line 4: not UTF-8"):
        load_table(write(tmp_path, data))


@pytest.mark.parametrize("text", ["", "\n\n", "  \r\n"])
def test_empty_files(tmp_path: Path, text: str) -> None:
    with pytest.raises(DataError, match="is empty"):
        load_table(write(tmp_path, text))


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        load_table(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="is a directory"):
        load_magic(tmp_path)


def test_features_a_model_expects(tmp_path: Path) -> None:
    named = write(tmp_path, "\n".join([HEADER, *ROWS]))
    plain = write(tmp_path, "\n".join(ROWS), "p.csv")
    load_table(named, features=Features(MAGIC_FEATURES))
    load_table(plain, features=Features(MAGIC_FEATURES))
    load_table(named, features=Features([f"col{j}" for j in range(1, 11)], False))
    load_magic(plain, features=Features(MAGIC_FEATURES))
    with pytest.raises(DataError, match="has 10 feature columns, the model expects 9"):
        load_table(plain, features=Features(MAGIC_FEATURES[:9]))
    renamed = ["fLength", "fWidth", "size", *MAGIC_FEATURES[3:]]
    with pytest.raises(DataError, match="column 3 is named 'fSize'.*expects 'size'"):
        load_table(named, features=Features(renamed))
    with pytest.raises(DataError, match="column 3 is named 'fSize'.*expects 'size'"):
        load_magic(plain, features=Features(renamed))
    with pytest.raises(DataError, match="different order"):
        load_table(named, features=Features(MAGIC_FEATURES[::-1]))


@pytest.mark.parametrize(
    "row",
    [
        "abc" + ROWS[0][ROWS[0].index(",") :],  # a feature that is no number
        ROWS[0][:-1] + "q",  # a label outside the allowed ones
        ROWS[0] + ",1.5",  # a field too many
    ],
)
def test_features_are_checked_before_any_row(tmp_path: Path, row: str) -> None:
    """A header for another model is the error, not a row it makes unreadable."""
    header = ",".join([*(f"f{j}" for j in range(10)), "class"])
    path = write(tmp_path, "\n".join([header, row, *ROWS]))
    with pytest.raises(DataError) as info:
        load_table(path, allowed_labels=["g", "h"], features=Features(MAGIC_FEATURES))
    assert str(info.value) == (
        f"{path}: column 1 is named 'f0', the model expects 'fLength' (model "
        f"features: {', '.join(MAGIC_FEATURES)})"
    )
    extra = write(tmp_path, "\n".join(["id," + HEADER, "1," + row]), "id.csv")
    with pytest.raises(DataError) as info:
        load_table(extra, features=Features(MAGIC_FEATURES))
    assert str(info.value) == (
        f"{extra}: has 11 feature columns, the model expects 10 "
        f"({', '.join(MAGIC_FEATURES)}); 'id' is not among them"
    )


def test_allowed_labels_are_listed_sorted(tmp_path: Path) -> None:
    path = write(tmp_path, "\n".join([HEADER, ROWS[0][:-1] + "q"]))
    with pytest.raises(DataError, match=r"found 'q'; allowed labels are 'g', 'h'$"):
        load_table(path, allowed_labels=["h", "g"])


# ---- locating and downloading MAGIC ---------------------------------------------


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(DATA_ENV, raising=False)
    return tmp_path


def test_locate_precedence_flag_env_default(workdir: Path, monkeypatch) -> None:
    (workdir / "data").mkdir()
    default = write(workdir / "data", ROWS[0], "magic04.data")
    from_env = write(workdir, ROWS[0], "env.data")
    from_flag = write(workdir, ROWS[0], "flag.data")
    assert locate_magic().resolve() == default.resolve()
    monkeypatch.setenv(DATA_ENV, str(from_env))
    assert locate_magic() == from_env
    assert locate_magic(str(from_flag)) == from_flag
    assert locate_magic(from_flag, download=False) == from_flag


def test_locate_explicit_missing_path_names_its_origin(workdir: Path, monkeypatch):
    with pytest.raises(DataError, match=r"nothere\.data \(from --data\) does not"):
        locate_magic("nothere.data")
    monkeypatch.setenv(DATA_ENV, str(workdir / "gone.data"))
    with pytest.raises(DataError, match=rf"gone\.data \(from {DATA_ENV}\) does not"):
        locate_magic()
    with pytest.raises(DataError, match="is a directory"):
        locate_magic(workdir)


def _assert_where_to_put(message: str) -> None:
    assert "data/magic04.data" in message.replace(os.sep, "/")
    assert DATA_ENV in message and "--data" in message


def test_locate_without_network_says_where_to_put_the_file(workdir: Path) -> None:
    # Port 9 (discard) on the loopback refuses at once: a network failure, offline.
    url = "http://127.0.0.1:9/magic+gamma+telescope.zip"
    with pytest.raises(DataError) as info:
        locate_magic(url=url)
    _assert_where_to_put(str(info.value))
    assert "failed" in str(info.value) and url in str(info.value)
    assert not (workdir / "data" / "magic04.data").exists()
    with pytest.raises(DataError, match="switched off") as info:
        locate_magic(download=False)
    _assert_where_to_put(str(info.value))


@pytest.fixture
def http_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple]:
    """A loopback HTTP server for a folder: (folder, base URL)."""
    for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    served = tmp_path / "served"
    served.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            """Keep the test output clean."""

    handler = functools.partial(Quiet, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_download_verifies_and_keeps_the_file(
    magic_file: Path, http_dir: tuple, workdir: Path
) -> None:
    served, base = http_dir
    _zip(served / "m.zip", {"magic04.data": magic_file.read_bytes(), "x.names": b"."})
    path = locate_magic(url=f"{base}/m.zip")
    assert path == workdir / "data" / "magic04.data"
    assert path.read_bytes() == magic_file.read_bytes()
    assert [p.name for p in (workdir / "data").iterdir()] == ["magic04.data"]
    # The next call finds it without downloading.
    assert locate_magic(url="http://127.0.0.1:9/none.zip") == path


def test_download_with_wrong_checksum_is_not_kept(http_dir: tuple, workdir) -> None:
    served, base = http_dir
    _zip(served / "m.zip", {"magic04.data": "\n".join(ROWS).encode()})
    with pytest.raises(DataError, match="sha256"):
        locate_magic(url=f"{base}/m.zip")
    assert not (workdir / "data" / "magic04.data").exists()
    with pytest.raises(DataError, match="failed"):
        locate_magic(url=f"{base}/missing.zip")
    (served / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="failed"):
        locate_magic(url=f"{base}/bad.zip")
    # Nothing is left behind, not even the data folder the attempts made.
    assert not (workdir / "data").exists()


# ---- labels, splits, scaling ----------------------------------------------------


def test_encode_labels_orders() -> None:
    labels = np.array(["h", "g", "g", "h", "g"])
    y, enc = encode_labels(labels)
    assert enc == Encoding(classes=["g", "h"])
    assert y.dtype == np.int64 and list(y) == [1, 0, 0, 1, 0]
    y, enc = encode_labels(labels, positive="g")
    assert enc.classes == ["h", "g"] and list(y) == [0, 1, 1, 0, 1]
    y, enc = encode_labels(labels, classes=MAGIC_CLASSES)
    assert enc.classes == ["h", "g"] and list(y) == [0, 1, 1, 0, 1]
    y, enc = encode_labels(np.array(["b", "c", "a"]))
    assert enc.classes == ["a", "b", "c"] and list(y) == [1, 2, 0]


def test_encode_labels_errors() -> None:
    with pytest.raises(DataError, match="'x'.*allowed labels 'h', 'g'"):
        encode_labels(np.array(["g", "x"]), classes=MAGIC_CLASSES)
    with pytest.raises(DataError, match="at least two"):
        encode_labels(np.array(["g", "g"]))
    with pytest.raises(
        UsageError, match="^--positive: 'q' must be one of exactly two classes"
    ):
        encode_labels(np.array(["g", "h"]), positive="q")
    with pytest.raises(UsageError, match="^--positive: 'h' contradicts"):
        encode_labels(np.array(["g", "h"]), positive="h", classes=MAGIC_CLASSES)
    with pytest.raises(UsageError, match="distinct"):
        encode_labels(np.array(["g"]), classes=["g", "g"])


def test_split_is_stratified_disjoint_and_complete() -> None:
    y = np.repeat(np.arange(3, dtype=np.int64), [700, 250, 50])
    np.random.default_rng(1).shuffle(y)
    split = stratified_split(y, (0.6, 0.2, 0.2), seed=3)
    together = np.concatenate([split.train, split.val, split.test])
    assert np.array_equal(np.sort(together), np.arange(1000))
    for part, share in ((split.train, 0.6), (split.val, 0.2), (split.test, 0.2)):
        assert part.dtype == np.int64
        counts = np.bincount(y[part], minlength=3)
        assert np.all(np.abs(counts - share * np.array([700, 250, 50])) <= 1)


def test_split_is_deterministic_per_seed() -> None:
    y = np.arange(200) % 2
    a, b = stratified_split(y, seed=7), stratified_split(y, seed=7)
    c = stratified_split(y, seed=8)
    for part in ("train", "val", "test"):
        assert np.array_equal(getattr(a, part), getattr(b, part))
    assert not np.array_equal(a.val, c.val)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7])
def test_tiny_splits(n: int) -> None:
    y = np.arange(n) % 2
    split = stratified_split(y)
    assert split.train.size >= 1
    assert split.train.size + split.val.size + split.test.size == n
    for c in range(2):
        if (y == c).sum() >= 3:
            assert all(np.any(y[p] == c) for p in (split.train, split.val, split.test))


def test_regression_split_is_a_plain_shuffle() -> None:
    y = np.linspace(0.0, 1.0, 100)
    split = stratified_split(y, seed=0)
    assert (split.train.size, split.val.size, split.test.size) == (70, 15, 15)
    assert not np.array_equal(split.train, np.arange(70))


@pytest.mark.parametrize(
    "fractions", [(0.7, 0.3), (0.7, 0.3, 0.0), (0.5, 0.5, 0.5), (1.2, -0.1, -0.1)]
)
def test_split_fractions_are_validated(fractions) -> None:
    with pytest.raises(UsageError, match="fractions"):
        stratified_split(np.arange(10) % 2, fractions)


def test_standardizer_matches_scikit_learn() -> None:
    from sklearn.preprocessing import StandardScaler

    X = np.random.default_rng(0).normal(3.0, [1.0, 10.0, 0.01], size=(500, 3))
    ours = Standardizer.fit(X, ["a", "b", "c"])
    theirs = StandardScaler().fit(X)
    np.testing.assert_allclose(ours.mean, theirs.mean_, rtol=1e-12)
    np.testing.assert_allclose(ours.scale, theirs.scale_, rtol=1e-12)
    np.testing.assert_allclose(ours.transform(X), theirs.transform(X), atol=1e-12)
    with pytest.raises(DataError, match=r"\(rows, 3\)"):
        ours.transform(X[:, :2])


def test_standardizer_extreme_and_bad_inputs() -> None:
    X = np.array([[1e308, 0.0], [-1e308, 1.0]])
    scaler = Standardizer.fit(X, ["big", "small"])
    np.testing.assert_allclose(scaler.transform(X), [[1.0, -1.0], [-1.0, 1.0]])
    with pytest.raises(DataError, match="non-finite"):
        Standardizer.fit(np.array([[np.nan, 1.0], [2.0, 3.0]]), ["a", "b"])
    with pytest.raises(UsageError, match="names"):
        Standardizer.fit(X, ["one"])


# ---- fuzzing: a clean load or a DataError, nothing else --------------------------

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _load_all_ways(data: bytes) -> list[Table]:
    """Load with each reader setting; only DataError may escape."""
    tables = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.csv"
        path.write_bytes(data)
        for load in (
            lambda: load_magic(path),
            lambda: load_table(path),
            lambda: load_table(path, header=False, allowed_labels=["g", "h"]),
            lambda: load_table(path, task="regression"),
            lambda: load_table(path, delimiter=" ", label=None),
        ):
            try:
                tables.append(load())
            except DataError as exc:
                assert str(exc)
    event(f"{len(tables)} of 5 readers loaded a table")
    for table in tables:
        assert np.isfinite(table.X).all() and table.X.ndim == 2
        if table.labels is not None:
            assert table.labels.shape == (table.X.shape[0],)
        assert len(table.feature_names) == table.X.shape[1]
    return tables


@FUZZ
@given(st.binary(max_size=600))
def test_fuzz_random_bytes(data: bytes) -> None:
    _load_all_ways(data)


@FUZZ
@given(st.text(alphabet="0123456789.,-+eE gh\t\r\nx_naif", max_size=400))
def test_fuzz_table_like_text(text: str) -> None:
    _load_all_ways(text.encode())


_MUTATIONS = [
    "drop_field",
    "add_field",
    "empty_field",
    "replace_field",
    "replace_label",
    "blank_line",
    "bad_byte",
    "crlf",
    "spaces",
    "truncate",
    "header",
]


@FUZZ
@given(
    n_rows=st.integers(1, 6),
    mutations=st.lists(
        st.tuples(
            st.sampled_from(_MUTATIONS),
            st.integers(0, 10_000),
            st.text(alphabet="0123456789.-eghx \r\t,\x00é", max_size=6),
        ),
        max_size=4,
    ),
)
def test_fuzz_near_valid_rows(n_rows: int, mutations: list) -> None:
    rows = [r.split(",") for r in (ROWS * 2)[:n_rows]]
    for kind, where, text in mutations:
        rng = random.Random(where)
        row = rows[rng.randrange(len(rows))] if rows else []
        j = rng.randrange(11)
        if kind == "drop_field" and row:
            row.pop(min(j, len(row) - 1))
        elif kind == "add_field" and row:
            row.insert(j, text)
        elif kind == "empty_field" and row:
            row[min(j, len(row) - 1)] = ""
        elif kind == "replace_field" and row:
            row[min(j, len(row) - 1)] = text
        elif kind == "replace_label" and row:
            row[-1] = text
        elif kind == "blank_line":
            rows.insert(rng.randrange(len(rows) + 1), [""])
        elif kind == "header":
            rows.insert(0, HEADER.split(","))
    text = "\n".join(",".join(r) for r in rows) + "\n"
    data = text.encode()
    for kind, where, _ in mutations:
        rng = random.Random(where)
        if kind == "bad_byte" and data:
            at = rng.randrange(len(data))
            data = data[:at] + b"\xc3\x28" + data[at:]
        elif kind == "crlf":
            data = data.replace(b"\n", b"\r\n")
        elif kind == "spaces":
            data = data.replace(b",", b" , ")
        elif kind == "truncate" and data:
            data = data[: rng.randrange(len(data))]
    tables = _load_all_ways(data)
    if not mutations:
        assert len(tables) >= 3 and tables[0].X.shape == (n_rows, 10)
