"""The corruption cache (generated once, keyed by images and seed, damage reported), the metrics
(mean corruption accuracy, mCE), and shifted test sets (TFDS's mock data, local files, clear errors)."""

import gzip
import os
import struct
from unittest import mock

import numpy as np
import pytest

from keras_lottery import data, files
from keras_lottery.data import sources
from keras_lottery.robustness import shift, suite

IMAGES = np.random.default_rng(0).integers(0, 256, (6, 28, 28, 1)).astype(np.uint8)


def test_generated_once_and_read_back(tmp_path):
    first = suite.CorruptionSuite(str(tmp_path), IMAGES, seed=0, log=None)
    assert first.generate(["fog", "pixelate"]) > 0
    stamp = os.stat(first.path("fog")).st_mtime_ns
    again = suite.CorruptionSuite(str(tmp_path), IMAGES, seed=0, log=None)
    assert again.generate(["fog", "pixelate"]) == 0.0
    np.testing.assert_array_equal(again.get("fog"), first.get("fog"))
    assert os.stat(first.path("fog")).st_mtime_ns == stamp and again.get("fog").shape == (5, *IMAGES.shape)
    assert suite.CorruptionSuite(str(tmp_path), IMAGES, seed=1).directory != first.directory
    assert suite.CorruptionSuite(str(tmp_path), IMAGES[:5], seed=0).directory != first.directory
    with open(first.path("pixelate"), "r+b") as f:
        f.truncate(100)
    with pytest.raises(files.DamagedFileError, match="pixelate.npy is damaged"):
        again.get("pixelate")


def test_mean_corruption_accuracy_and_mce():
    dense = {"fog": [0.9, 0.8, 0.7, 0.6, 0.5], "contrast": [0.8] * 5, "speckle_noise": [0.0] * 5}
    ticket = {"fog": [0.95, 0.9, 0.85, 0.8, 0.75], "contrast": [0.6] * 5, "speckle_noise": [1.0] * 5}
    assert suite.mean_corruption_accuracy(dense) == pytest.approx(0.75)  # the extra speckle noise left out
    assert suite.mce(dense, dense) == pytest.approx(100.0)
    errors = suite.corruption_errors(ticket, dense)
    assert errors["fog"] == pytest.approx(50.0) and errors["contrast"] == pytest.approx(200.0)
    assert suite.mce(ticket, dense) == pytest.approx(125.0)


def test_tfds_shifted_sets_with_mock_data(tmp_path):
    import tensorflow_datasets as tfds  # a main dependency, imported here only because it is slow to import
    with tfds.testing.mock_data(num_examples=10), mock.patch.object(sources, "_tfds_reachable", return_value=True):
        for name in ("cifar10_1", "cifar10_corrupted/fog_3"):
            images, labels, source = shift.load(name, (32, 32, 3), 10, data_dir=str(tmp_path))
            assert images.shape == (10, 32, 32, 3) and labels.dtype == np.int64 and name in source
        with pytest.raises(ValueError, match="has images of shape \\(32, 32, 3\\); the models take \\(28, 28, 1\\)"):
            shift.load("cifar10_1", (28, 28, 1), 10, data_dir=str(tmp_path))


def test_unavailable_shifted_set_is_one_clear_line(tmp_path):
    with pytest.raises(data.DatasetNotFoundError) as error:
        shift.load("cifar10_1", (32, 32, 3), 10, data_dir=str(tmp_path))
    message = str(error.value)
    assert "\n" not in message and "Test set 'cifar10_1' was not found" in message and "cannot be reached" in message
    with pytest.raises(data.DatasetNotFoundError, match="holds no t10k-images"):
        shift.load(str(tmp_path), (28, 28, 1), 10)


def _idx(path, array):
    header = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_local_idx_and_npz_test_sets(tmp_path):
    idx_dir, npz_dir = tmp_path / "idx", tmp_path / "npz"
    idx_dir.mkdir(), npz_dir.mkdir()
    labels = np.arange(6) % 3
    _idx(str(idx_dir / "t10k-images-idx3-ubyte.gz"), IMAGES[..., 0])
    _idx(str(idx_dir / "t10k-labels-idx1-ubyte.gz"), labels)
    images, got, _ = shift.load(str(idx_dir), (28, 28, 1), 10)
    np.testing.assert_array_equal(images, IMAGES)
    np.testing.assert_array_equal(got, labels)
    np.savez(npz_dir / "shifted.npz", x_test=IMAGES[..., 0], y_test=labels + 8)
    with pytest.raises(ValueError, match="has labels 8..10; the models know 10 classes"):
        shift.load(str(npz_dir), (28, 28, 1), 10)
