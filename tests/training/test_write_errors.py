"""A full disk (or another OS write error) during training: one line naming the file and what to do,
nothing half-written, and the same call resumes from the last complete checkpoint once space is freed."""

import errno
import os

import numpy as np
import pytest

from keras_lottery import cli, files, training
from tests.helpers import tiny_datasets, tiny_lenet

HPARAMS = training.TrainingHparams(optimizer="adam", lr=0.002, steps="3ep")


def _fill_disk_at(monkeypatch, name):
    """Every atomic write of a file called ``name`` fails as on a full disk (ENOSPC at the rename)."""
    real_replace = os.replace

    def replace(source, target):
        if os.path.basename(os.fspath(target)) == name:
            raise OSError(errno.ENOSPC, "No space left on device", os.fspath(source))
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)


def test_a_full_disk_stops_training_with_one_line_and_it_resumes_after_space_is_freed(tmp_path, monkeypatch):
    datasets = tiny_datasets()
    spe = datasets.steps_per_epoch
    _, reference = training.fit(tiny_lenet(), datasets, HPARAMS, str(tmp_path / "reference"), verbose=0)

    directory = tmp_path / "full"
    _fill_disk_at(monkeypatch, f"ckpt-{2 * spe:09d}.keras")  # the second epoch's checkpoint
    with pytest.raises(files.WriteError) as error:
        training.fit(tiny_lenet(), datasets, HPARAMS, str(directory), verbose=0)
    line = cli.one_line(error.value)
    assert line == (f"error: Cannot write {directory}/ckpt-{2 * spe:09d}.keras: No space left on device. Free space on "
                    "that file system (or give another --run_root / --base_dir), then run the same command again: it "
                    "resumes from the last complete checkpoint (nothing already written is lost).")
    assert isinstance(error.value, OSError) and error.value.errno == errno.ENOSPC
    left = sorted(os.listdir(directory))
    assert left == [f"ckpt-{spe:09d}.keras", "state.json"]  # no temporary file, the last complete checkpoint kept
    assert training.read_state(str(directory))["step"] == spe

    monkeypatch.undo()  # space freed
    logged = []
    _, metrics = training.fit(tiny_lenet(), datasets, HPARAMS, str(directory), verbose=0, log=logged.append)
    assert logged and logged[0].startswith(f"Resuming {directory} at step {spe}")
    assert metrics["end_step"] == reference["end_step"] == 3 * spe
    np.testing.assert_allclose(metrics["test_loss"], reference["test_loss"], rtol=1e-4)


def test_other_os_errors_pass_through_and_permissions_get_their_advice(tmp_path):
    with pytest.raises(files.WriteError, match=r"Cannot write .*x.json: Permission denied. Make its directory writable"):
        with files.atomic(tmp_path / "x.json"):
            raise PermissionError(errno.EACCES, "Permission denied")
    with pytest.raises(FileNotFoundError):  # reading a missing file inside the block is not a write error
        with files.atomic(tmp_path / "y.json"):
            raise FileNotFoundError(errno.ENOENT, "No such file")
    assert os.listdir(tmp_path) == []
