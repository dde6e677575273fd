"""Size measurement, and the serving document against the commands the library prints."""

import os
import shutil

import numpy as np
import pytest

from keras_lottery import export
from keras_lottery.export import sizes
from tests.helpers import REPO

ROOT = REPO


def test_sizes_count_every_file_and_zeros_compress(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "sparse" / "variables").mkdir(parents=True)
    (tmp_path / "dense" / "variables").mkdir(parents=True)
    values = rng.normal(size=50_000).astype(np.float32)
    sparse = values * (rng.random(values.shape) < 0.1)
    (tmp_path / "dense" / "variables" / "v").write_bytes(values.tobytes())
    (tmp_path / "sparse" / "variables" / "v").write_bytes(sparse.tobytes())
    (tmp_path / "dense" / "saved_model.pb").write_bytes(b"x" * 100)
    dense = export.measure(tmp_path / "dense")
    assert dense["bytes"] == 200_000 + 100
    assert export.measure(tmp_path / "sparse")["gzip_bytes"] < 0.3 * dense["gzip_bytes"]
    # The archive depends on the contents only: a copy with other mtimes and modes measures the same.
    shutil.copytree(tmp_path / "dense", tmp_path / "copy")
    for path in (tmp_path / "copy").rglob("*"):
        if path.is_file():
            os.utime(path, (1, 1))
            path.chmod(0o600)
    assert sizes.gzip_bytes(tmp_path / "copy") == sizes.gzip_bytes(tmp_path / "dense") == dense["gzip_bytes"]
    assert export.measure(tmp_path / "dense", exclude=("saved_model.pb",))["bytes"] == 200_000
    with pytest.raises(FileNotFoundError, match="not a directory"):
        export.measure(tmp_path / "missing")


def test_serving_doc_shows_the_commands_the_library_gives():
    with open(os.path.join(ROOT, "docs", "serving.md")) as f:
        doc = f.read()
    assert export.docker_command("saved_models/lenet_ticket", "lenet_ticket") in doc
    assert export.curl_command("lenet_ticket", "saved_models/lenet_ticket/request.json") in doc
    assert "python -m experiments.export" in doc
    with open(os.path.join(ROOT, "saved_models", "README.md")) as f:
        readme = f.read()
    assert export.docker_command("saved_models/lenet_ticket", "lenet_ticket") in readme
    assert export.curl_command("lenet_ticket", "saved_models/lenet_ticket/request.json") in readme


def test_commands_refuse_names_that_break_the_url():
    with pytest.raises(ValueError, match="model_name must be"):
        export.docker_command("saved_models/x", "my model")
