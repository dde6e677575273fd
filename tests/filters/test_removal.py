"""remove_filters: a physically smaller model computing what the original computes with the removed
channels zeroed at their source (tiny graph, zoo, keras.applications), and its one-line errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_lottery as kl
from keras_lottery.filters import find_groups, remove_filters, zero_filters, zeroed_weights


def _random_selection(model, seed=0, fraction=3):
    rng = np.random.default_rng(seed)
    return {g.name: rng.choice(g.size, max(1, g.size // fraction), replace=False)
            for g in find_groups(model).prunable}


def _assert_exact(model, x, selection=None, atol=1e-5):
    selection = selection if selection is not None else _random_selection(model)
    before = [w.copy() for w in model.get_weights()]
    slim = remove_filters(model, selection, name="slim")
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # original untouched
    assert kl.metrics.params(slim) < kl.metrics.params(model)
    full = keras.ops.convert_to_numpy(model(x, training=False))
    model.set_weights(zeroed_weights(model, selection))  # the removed channels zeroed at their source
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    got = keras.ops.convert_to_numpy(slim(x, training=False))
    scale = float(np.abs(expected).max()) or 1.0  # keras.applications' logits at initialization are ~1e-10
    np.testing.assert_allclose(got, expected, atol=atol * scale, rtol=0)
    assert not np.allclose(full, expected, atol=atol * scale)  # the zeroing is not a no-op
    return slim


def test_tiny_graph_is_exact(tiny_graph, images8):
    slim = _assert_exact(tiny_graph, images8[0], {"c1": [1, 4], "c3": [0], "c4": [2, 4], "c5": [6], "fc1": [0]})
    assert slim.get_layer("c2").kernel.shape == (1, 1, 4, 4)
    assert slim.get_layer("c5").kernel.shape == (3, 3, 6, 6)  # 4 - 1 + 5 - 2 concatenated input channels
    assert slim.get_layer("fc1").kernel.shape == (4 * 6, 7)  # Flatten: 4 positions x 6 channels
    assert slim.get_layer("dw").kernel.shape == (3, 3, 4, 1)


@pytest.mark.parametrize("name, shape", [("resnet20", (16, 16, 3)), ("conv6", (16, 16, 3))])
def test_zoo_is_exact(name, shape):
    model = kl.models.get(name, shape, 10, seed=1)
    x = np.random.default_rng(2).normal(size=(2,) + shape).astype("float32")
    _assert_exact(model, x)


@pytest.mark.parametrize("builder, extra", [
    (keras.applications.ResNet50, {}), (keras.applications.MobileNetV2, {"alpha": 0.35}),
    (keras.applications.EfficientNetB0, {})], ids=["ResNet50", "MobileNetV2", "EfficientNetB0"])
def test_applications_are_exact(builder, extra):
    keras.utils.set_random_seed(5)
    model = builder(weights=None, input_shape=(32, 32, 3), classes=10, classifier_activation=None, **extra)
    x = np.random.default_rng(2).uniform(0, 255, size=(2, 32, 32, 3)).astype("float32")
    _assert_exact(model, x, atol=1e-4)


def test_bad_selections_fail_before_any_work(tiny_graph):
    with pytest.raises(ValueError, match="no channel group named 'nope'; prunable groups: c1, c3"):
        remove_filters(tiny_graph, {"nope": [0]})
    with pytest.raises(ValueError, match="group 'out' .* cannot be pruned: a model output"):
        remove_filters(tiny_graph, {"out": [0]})
    with pytest.raises(ValueError, match="has 4 channels .*got index 4"):
        remove_filters(tiny_graph, {"c3": [4]})
    with pytest.raises(ValueError, match="listed twice"):
        remove_filters(tiny_graph, {"c3": [1, 1]})
    with pytest.raises(ValueError, match="all 4 channels of group 'c3'"):
        remove_filters(tiny_graph, {"c3": [0, 1, 2, 3]})
    with pytest.raises(TypeError, match="selection must be a dict"):
        remove_filters(tiny_graph, ["c3"])
    with pytest.raises(TypeError, match="Sequential model"):
        remove_filters(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]), {})


def test_zero_filters_is_a_zeroed_copy(tiny_graph, images8):
    twin = zero_filters(tiny_graph, {"c3": [1]})
    assert np.all(twin.get_layer("c3").kernel.numpy()[..., 1] == 0) and np.any(tiny_graph.get_layer("c3").kernel.numpy()[..., 1])
    slim = remove_filters(tiny_graph, {"c3": [1]})
    np.testing.assert_allclose(twin(images8[0], training=False), slim(images8[0], training=False), atol=1e-5)


def test_empty_selection_rebuilds_the_same_function(tiny_graph, images8):
    slim = remove_filters(tiny_graph, {})
    np.testing.assert_allclose(slim(images8[0], training=False), tiny_graph(images8[0], training=False), atol=1e-6)


def test_slim_model_exports_for_serving(tiny_graph, images8, tmp_path):
    slim = remove_filters(tiny_graph, {"c1": [0, 1]})
    result = kl.export.for_serving(slim, str(tmp_path / "serving"), dense_model=tiny_graph, measure_dense=False)
    served = tf.saved_model.load(result.path).signatures["serving_default"]
    logits = served(x=tf.constant(images8[0]))["logits"].numpy()
    np.testing.assert_allclose(logits, slim.predict(images8[0], verbose=0), atol=1e-5)
    assert result.card["params"]["ticket"] < result.card["params"]["dense"]
