"""Bad exports fail before anything is written, naming what was wrong and what is accepted."""

import os
import re

import numpy as np
import pytest

from keras_lottery import export


def _entries(path):
    return sorted(os.listdir(path)) if os.path.isdir(path) else None


def test_unbuilt_model_is_refused(tmp_path):
    import keras

    model = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="is not built"):
        export.for_serving(model, tmp_path / "m")
    assert _entries(tmp_path / "m") is None


def test_model_without_prunable_weights_is_refused(tmp_path):
    import keras

    inputs = keras.Input(shape=(4,), name="features")
    outputs = keras.layers.Softmax(name="probabilities")(keras.layers.Rescaling(2.0)(inputs))
    model = keras.Model(inputs, outputs, name="no_weights")
    with pytest.raises(ValueError, match=r"no prunable weights .*get_prunable_weights") as error:
        export.for_serving(model, tmp_path / "m")
    assert {"Dense", "Conv2D", "Embedding"} <= set(re.findall(r"\w+", str(error.value)))  # the supported layers
    assert _entries(tmp_path / "m") is None


def test_require_sparse_refuses_a_dense_model(tmp_path, tiny_dense):
    with pytest.raises(ValueError, match="require_sparse=True but no prunable weight"):
        export.for_serving(tiny_dense, tmp_path / "m", require_sparse=True)
    assert _entries(tmp_path / "m") is None


def test_existing_version_is_never_overwritten(tmp_path, tiny_dense):
    base = tmp_path / "tiny"
    first = export.for_serving(tiny_dense, base)
    second = export.for_serving(tiny_dense, base)
    assert (first.version, second.version) == (1, 2)
    assert export.existing_versions(base) == [1, 2] and export.next_version(base) == 3
    stamp = os.path.getmtime(os.path.join(first.path, "saved_model.pb"))
    with pytest.raises(FileExistsError, match=r"Version 1 already exists .* next free one \(3\)"):
        export.for_serving(tiny_dense, base, version=1)
    assert os.path.getmtime(os.path.join(first.path, "saved_model.pb")) == stamp
    assert _entries(base) == ["1", "2"]
    # A chosen free version is used as given.
    assert export.for_serving(tiny_dense, base, version=7).path == os.path.join(base, "7")


@pytest.mark.parametrize("version", [0, -1, "1", 1.0, True])
def test_bad_versions(tmp_path, tiny_dense, version):
    with pytest.raises(ValueError, match="version must be a positive integer"):
        export.for_serving(tiny_dense, tmp_path / "m", version=version)


def test_bad_arguments(tmp_path, tiny_dense):
    with pytest.raises(TypeError, match="must be a keras.Model, got str"):
        export.for_serving("model.keras", tmp_path / "m")
    with pytest.raises(ValueError, match=r"accuracy must be a number in \[0, 1\]"):
        export.for_serving(tiny_dense, tmp_path / "m", accuracy=75)
    with pytest.raises(TypeError, match="hparams must be JSON-serializable"):
        export.for_serving(tiny_dense, tmp_path / "m", hparams={"optimizer": object()})
    with pytest.raises(ValueError, match="outputs must be one of"):
        export.for_serving(tiny_dense, tmp_path / "m", outputs="scores")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is not a directory"):
        export.for_serving(tiny_dense, tmp_path / "file")
    assert _entries(tmp_path / "m") is None


def test_softmax_model_exports_probabilities_only(tmp_path):
    import keras

    inputs = keras.Input(shape=(3,), name="features")
    outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(inputs)
    model = keras.Model(inputs, outputs)
    result = export.for_serving(model, tmp_path / "soft")
    assert sorted(result.card["signature"]["outputs"]) == ["probabilities"]
    assert result.card["signature"]["inputs"] == {"features": {"dtype": "float32", "shape": [None, 3]}}
    assert result.card["ticket"] == "dense"
    import tensorflow as tf

    x = np.ones((2, 3), np.float32)
    served = tf.saved_model.load(result.path).signatures["serving_default"](features=tf.constant(x))
    assert sorted(served) == ["probabilities"]
    assert export.compare({k: v.numpy() for k, v in served.items()}, model, x)["probabilities"] <= 1e-6
