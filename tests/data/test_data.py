import gzip
import os
import struct
import time

import numpy as np
import pytest

from keras_lottery import data
from keras_lottery.data import sources


def _write_idx(path, array):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _idx_dir(directory, n_train=120, n_test=40, seed=0):
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    arrays = {"train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 6, 6)),
              "train-labels-idx1-ubyte.gz": rng.integers(0, 3, n_train),
              "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 6, 6)),
              "t10k-labels-idx1-ubyte.gz": rng.integers(0, 3, n_test)}
    for name, array in arrays.items():
        _write_idx(os.path.join(directory, name), array)
    return arrays


def test_idx_files_in_a_directory_are_read_exactly(tmp_path):
    written = _idx_dir(tmp_path)
    arrays = data.find("anything", data_dir=str(tmp_path))
    np.testing.assert_array_equal(arrays.x_train[..., 0], written["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(arrays.y_test, written["t10k-labels-idx1-ubyte.gz"])
    assert arrays.input_shape == (6, 6, 1) and "IDX" in arrays.source


def test_npz_in_a_directory_is_read_exactly(tmp_path):
    rng = np.random.default_rng(1)
    written = {"x_train": rng.random((50, 4, 4, 3)), "y_train": rng.integers(0, 5, 50),
               "x_test": rng.random((10, 4, 4, 3)), "y_test": np.array([6] + [0] * 9)}  # label 6 only in test
    np.savez(tmp_path / "mydata.npz", **written)
    arrays = data.find("mydata", data_dir=str(tmp_path))
    for name, array in written.items():
        np.testing.assert_array_equal(getattr(arrays, name), array)
    assert arrays.x_train.dtype == written["x_train"].dtype and arrays.y_train.dtype == np.int64
    assert arrays.classes == 7 and arrays.input_shape == (4, 4, 3) and "mydata.npz" in arrays.source


def test_debian_fashion_mnist_is_found_automatically(tmp_path, monkeypatch):
    _idx_dir(tmp_path / "fashion-mnist")
    monkeypatch.setattr(sources, "DEBIAN_ROOT", str(tmp_path))
    arrays = data.find("fashion_mnist", download=False)
    assert str(tmp_path / "fashion-mnist") in arrays.source


def test_missing_dataset_lists_every_place_tried_quickly(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "DEBIAN_ROOT", str(tmp_path / "nothing"))
    monkeypatch.setattr(sources, "_tfds_reachable", lambda timeout=3.0: False)  # as offline, on any machine
    start = time.perf_counter()
    with pytest.raises(data.DatasetNotFoundError) as error:
        data.find("fashion_mnist")
    message = str(error.value)
    assert "\n" not in message  # one line: the binaries print it as their error
    assert str(tmp_path / "nothing" / "fashion-mnist") in message
    assert "TFDS" in message and "cannot be reached" in message
    assert "apt-get install dataset-fashion-mnist" in message and "--data_dir" in message
    assert time.perf_counter() - start < 30


def test_data_dir_without_the_data_is_an_error_not_a_fallback(tmp_path, monkeypatch):
    _idx_dir(tmp_path / "debian" / "fashion-mnist")  # the data exists elsewhere, but --data_dir says where to look
    monkeypatch.setattr(sources, "DEBIAN_ROOT", str(tmp_path / "debian"))
    (tmp_path / "mine").mkdir()
    with pytest.raises(data.DatasetNotFoundError, match=r"is not in --data_dir=.*mine.*no IDX") as error:
        data.find("fashion_mnist", data_dir=str(tmp_path / "mine"))
    assert "debian" not in str(error.value)


def test_unknown_tfds_name_is_reported():
    with pytest.raises(data.DatasetNotFoundError, match="TFDS has no dataset 'no_such_dataset_xyz'"):
        data.find("no_such_dataset_xyz", download=False)


def test_synthetic_names_give_the_requested_shape():
    arrays = data.find("synthetic:12x10x3:5:200")
    assert arrays.x_train.shape == (200, 12, 10, 3) and arrays.classes == 5


def _labels(stream, n):
    return np.concatenate([y.numpy() for _, y in stream.take(n)])


def test_data_order_is_a_function_of_the_data_seed_and_resumes_at_any_step(tiny_arrays):
    hp = data.DatasetHparams(batch_size=32, validation_size=64)
    a, b, other = (data.Datasets(tiny_arrays, hp, data_seed=s) for s in (1, 1, 2))
    spe = a.steps_per_epoch
    full = [x.numpy() for x, _ in a.train(0).take(2 * spe + 2)]
    np.testing.assert_array_equal(_labels(a.train(0), spe), _labels(b.train(0), spe))
    assert not np.array_equal(_labels(a.train(0), spe), _labels(other.train(0), spe))
    for k in (3, spe, spe + 1, 2 * spe + 1):  # mid-epoch, epoch boundary, next epochs
        np.testing.assert_array_equal(next(iter(a.train(k)))[0].numpy(), full[k])
    # each epoch visits every training example once, in a different order
    epoch0, epoch1 = _labels(a.train(0), spe), _labels(a.train(spe), spe)
    assert sorted(epoch0) == sorted(epoch1) and not np.array_equal(epoch0, epoch1)


def test_validation_split_is_deterministic_and_independent_of_the_seeds(tiny_arrays):
    hp = data.DatasetHparams(batch_size=32, validation_size=64)
    a, b = data.Datasets(tiny_arrays, hp, data_seed=1), data.Datasets(tiny_arrays, hp, data_seed=9)
    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert a.train_size == 256 and len(a.x_val) == 64
    train_rows = {row.tobytes() for row in a.x_train}
    assert not any(row.tobytes() in train_rows for row in a.x_val)


def test_augmentation_is_seeded_and_changes_images(tiny_arrays):
    plain = data.Datasets(tiny_arrays, data.DatasetHparams(batch_size=32, validation_size=64), data_seed=1)
    hp = data.DatasetHparams(batch_size=32, validation_size=64, augment=True)
    a, b = data.Datasets(tiny_arrays, hp, data_seed=1), data.Datasets(tiny_arrays, hp, data_seed=1)
    xa, xb, xp = (next(iter(d.train(2)))[0].numpy() for d in (a, b, plain))
    np.testing.assert_array_equal(xa, xb)
    assert xa.shape == xp.shape and not np.array_equal(xa, xp)


def _window_offsets(image, original, pad=4):
    """The offsets ``(i, j)`` at which ``image`` is a window of ``original`` zero-padded by ``pad`` pixels."""
    padded = np.pad(original, [(pad, pad), (pad, pad), (0, 0)])
    h, w = original.shape[:2]
    return [(i, j) for i in range(2 * pad + 1) for j in range(2 * pad + 1)
            if np.array_equal(padded[i:i + h, j:j + w], image)]


def test_augmentation_without_flips_crops_the_zero_padded_image(tiny_arrays):
    plain = data.Datasets(tiny_arrays, data.DatasetHparams(batch_size=32, validation_size=64), data_seed=1)
    hp = data.DatasetHparams(batch_size=32, validation_size=64, augment=True, flip=False)
    augmented = data.Datasets(tiny_arrays, hp, data_seed=1)
    xa, xp = (next(iter(d.train(2)))[0].numpy() for d in (augmented, plain))  # the same examples, in order
    offsets = [_window_offsets(image, original) for image, original in zip(xa, xp)]
    assert all(offsets), "an augmented image is no 8x8 window of its 4-pixel zero-padded original"
    assert len({found[0] for found in offsets}) > 1  # random crops, not one fixed window


def test_normalization_standardizes_the_training_split(tiny_arrays):
    d = data.Datasets(tiny_arrays, data.DatasetHparams(batch_size=32, validation_size=64), data_seed=0)
    x = np.concatenate([batch.numpy() for batch, _ in d.train_eval()])
    assert abs(x.mean()) < 1e-4 and abs(x.std() - 1) < 1e-3


def test_test_subset_keeps_the_first_test_examples(tiny_arrays):
    d = data.Datasets(tiny_arrays, data.DatasetHparams(batch_size=32, validation_size=64, test_subset=10))
    np.testing.assert_array_equal(d.y_test, tiny_arrays.y_test[:10])
    assert sum(len(y) for _, y in d.test()) == 10


@pytest.mark.parametrize("field,value,match", [("batch_size", 0, "batch_size"), ("validation_size", 1000, "leaves no"),
                                               ("batch_size", 10_000, "exceeds"), ("test_subset", -1, "test_subset")])
def test_bad_data_settings_are_refused(tiny_arrays, field, value, match):
    hp = data.DatasetHparams(**{"batch_size": 32, "validation_size": 64, field: value})
    with pytest.raises(ValueError, match=match):
        data.Datasets(tiny_arrays, hp)


def test_the_default_validation_size_fits_a_small_training_split():
    arrays = data.find("synthetic:8x8x1:4:256")
    datasets = data.Datasets(arrays, data.DatasetHparams(dataset="synthetic:8x8x1:4:256"))
    assert len(datasets.x_val) == 25 and datasets.train_size == 231  # a tenth, not the default 5000
    explicit = data.Datasets(arrays, data.DatasetHparams(dataset="synthetic:8x8x1:4:256", validation_size=64))
    assert len(explicit.x_val) == 64
    assert data.pipeline.validation_size_for(data.DatasetHparams(), 55000) == 5000  # real datasets: unchanged
