"""keras_lottery.files: atomic writes and the tables every experiment writes."""

import csv
import json
import os

import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery import files


def test_atomic_replaces_only_on_success_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with files.atomic(target) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["metrics.json"]
    with files.atomic(target) as tmp:
        assert tmp == str(tmp_path / "metrics.tmp.json")  # same directory, extension kept
        with open(tmp, "w") as f:
            f.write("new")
    assert target.read_text() == "new" and sorted(os.listdir(tmp_path)) == ["metrics.json"]


def test_npz_writers_keep_their_extension(tmp_path):
    target = tmp_path / "mask.npz"
    with files.atomic(target) as tmp:
        np.savez(tmp, a=np.arange(3))  # np.savez appends .npz unless the name ends with it
    with np.load(target) as data:
        np.testing.assert_array_equal(data["a"], np.arange(3))
    assert sorted(os.listdir(tmp_path)) == ["mask.npz"]


def test_json_round_trip_with_numpy_values(tmp_path):
    path = tmp_path / "a.json"
    files.write_json(path, {"b": np.float32(0.5), "a": np.arange(2), "c": np.int64(3)})
    assert files.read_json(path) == {"a": [0, 1], "b": 0.5, "c": 3}
    assert list(json.loads(path.read_text())) == ["a", "b", "c"]  # sorted keys by default
    assert files.read_json(tmp_path / "missing.json", default={}) == {}


def test_csv_columns_are_the_given_ones_or_every_key_in_first_seen_order(tmp_path):
    rows = [{"level": 0, "density": 1.0}, {"level": 1, "density": 0.8, "extra": "x"}]
    files.write_csv(tmp_path / "all.csv", rows)
    with open(tmp_path / "all.csv") as f:
        assert list(csv.reader(f)) == [["level", "density", "extra"], ["0", "1.0", ""], ["1", "0.8", "x"]]
    files.write_csv(tmp_path / "some.csv", rows, columns=["density", "missing", "level"])
    with open(tmp_path / "some.csv") as f:
        assert list(csv.reader(f)) == [["density", "level"], ["1.0", "0"], ["0.8", "1"]]


def test_markdown_cells():
    table = files.markdown_table([{"p": 1, "win": True, "acc": 0.912345, "tiny": 0.001234, "none": None}])
    assert table == "| p | win | acc | tiny | none |\n|---|---|---|---|---|\n| 1 | yes | 0.9123 | 0.00123 |  |\n"


def test_a_torn_file_is_named_with_what_to_do(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text('{"test_accuracy": 0.9')
    with pytest.raises(files.DamagedFileError, match=r"metrics.json is damaged \(JSONDecodeError: .*\)\. Delete it"):
        files.read_json(path)
    assert files.read_json(tmp_path / "absent.json", "default") == "default"  # missing is not damaged
    with pytest.raises(FileNotFoundError):
        with files.guard(tmp_path / "absent.npz"):
            open(tmp_path / "absent.npz")
    broken = tmp_path / "mask.npz"
    broken.write_bytes(b"PK\x03\x04 torn")
    with pytest.raises(files.DamagedFileError, match="mask.npz is damaged .*start a new run"):
        kl.Mask.load(broken)
