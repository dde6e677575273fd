"""mask / strip / MaskedLayer / copy_weights and saving."""

import json

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.masking import MaskedLayer
from tests.helpers import dead_entries


def _types(model):
    return {layer.name: type(layer).__name__ for layer in model.layers}


def test_mask_wraps_prunable_layers_and_leaves_original_alone(conv_model):
    before = [w.copy() for w in conv_model.get_weights()]
    masked = kl.mask(conv_model)
    assert masked is not conv_model
    assert _types(conv_model)["conv"] == "Conv2D"  # original untouched
    assert all(np.array_equal(a, b) for a, b in zip(before, conv_model.get_weights()))
    types = _types(masked)
    for name in ("conv", "dw", "sep", "deconv", "predictions"):
        assert types[name] == "MaskedLayer"
    for name in ("bn", "pool", "drop"):
        assert types[name] == _types(conv_model)[name]
    assert list(kl.Mask.from_model(masked)) == [
        "conv/kernel", "dw/kernel", "sep/depthwise_kernel", "sep/pointwise_kernel", "deconv/kernel",
        "predictions/kernel"]
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(masked(x), conv_model(x), rtol=1e-6, atol=1e-6)
    # Pruning the masked model does not touch the original.
    kl.prune(masked, kl.GlobalMagnitude(0.5))
    assert all(np.array_equal(a, b) for a, b in zip(before, conv_model.get_weights()))


def test_more_layer_types_and_sequential():
    model = keras.Sequential([
        keras.Input((6,), dtype="int32"),
        keras.layers.Embedding(20, 4, name="embed"),
        keras.layers.Conv1D(3, 2, name="c1"),
        keras.layers.Reshape((5, 3, 1), name="reshape"),
        keras.layers.Conv2D(2, 1, name="c2"),
        keras.layers.Flatten(name="flat"),
        keras.layers.Dense(2, name="out"),
    ], name="seq")
    masked = kl.mask(model)
    assert isinstance(masked, keras.Sequential)
    assert list(kl.Mask.from_model(masked)) == ["embed/embeddings", "c1/kernel", "c2/kernel", "out/kernel"]
    x = np.random.default_rng(0).integers(0, 20, (3, 6))
    np.testing.assert_allclose(masked(x), model(x), rtol=1e-6, atol=1e-6)
    c3 = keras.Sequential([keras.Input((3, 3, 3, 1)), keras.layers.Conv3D(2, 2, name="c3")])
    assert list(kl.Mask.from_model(kl.mask(c3))) == ["c3/kernel"]


def test_nested_model_is_masked_recursively(mlp):
    inputs = keras.Input((16,))
    outputs = keras.layers.Dense(3, name="head")(mlp(inputs))
    outer = keras.Model(inputs, outputs)
    masked = kl.mask(outer)
    assert set(kl.Mask.from_model(masked)) == {"fc1/kernel", "fc2/kernel", "predictions/kernel", "head/kernel"}
    x = np.ones((2, 16), "float32")
    np.testing.assert_allclose(masked(x), outer(x), rtol=1e-6, atol=1e-6)


def test_subclassed_model_is_masked_in_place_with_its_class():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.fc = keras.layers.Dense(2, name="fc")

        def call(self, x):
            return self.fc(x)

    net = Net()
    with pytest.raises(ValueError, match="cannot be rebuilt from its config.*copy=False"):
        kl.mask(net)  # its config cannot rebuild it: one sentence, no traceback from Keras
    with pytest.raises(ValueError, match="not built yet.*call the model"):
        kl.mask(net, copy=False)
    x = np.ones((3, 4), "float32")
    net(x)
    masked = kl.mask(net, copy=False)
    assert masked is net and type(masked) is Net and masked.fc.__class__ is keras.layers.Dense
    assert list(kl.Mask.from_model(masked)) == ["net/fc/kernel"]  # its Keras path
    kl.prune(masked, kl.LayerwiseMagnitude(0.5))
    assert np.count_nonzero(net.fc.kernel.numpy()) == 4
    stripped = kl.strip(masked, copy=False)
    assert stripped is net and not kl.masking.masked_layers(net)
    with pytest.raises(TypeError, match="keras.Model"):
        kl.mask(keras.layers.Dense(3))


def test_masked_layer_rejects_unprunable_layer():
    with pytest.raises(ValueError, match="BatchNormalization.*Accepted: .*Dense.*get_prunable_weights"):
        MaskedLayer(keras.layers.BatchNormalization())


def test_custom_layer_protocol_and_wrapper_in_subclassed_model():
    class Scale(keras.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(name="scale", shape=(input_shape[-1],), initializer="ones")
            self.b = self.add_weight(name="shift", shape=(input_shape[-1],), initializer="zeros")

        def call(self, x):
            return x * self.w + self.b

        def get_prunable_weights(self):
            return [self.w]

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.scale = MaskedLayer(Scale(name="scale_layer"))
            self.fc = MaskedLayer(keras.layers.Dense(2, name="fc"))

        def call(self, x):
            return self.fc(self.scale(x))

    net = Net()
    x = np.arange(8, dtype="float32").reshape(2, 4) + 1
    net(x)
    assert list(kl.Mask.from_model(net)) == ["scale_layer/scale", "fc/kernel"]
    kl.apply_mask(net, {"scale_layer/scale": np.array([1, 0, 1, 0], bool)})
    scale = net.scale.layer.w.numpy()
    np.testing.assert_array_equal(scale, [1, 0, 1, 0])
    expected = (x * [1, 0, 1, 0]) @ net.fc.layer.kernel.numpy() + net.fc.layer.bias.numpy()
    np.testing.assert_allclose(net(x), expected, rtol=1e-5)


def test_mask_forward_masks_weights_written_behind_the_masks_back(mlp, mlp_data):
    masked = kl.mask(mlp, mask_forward=True)
    assert masked.get_layer("fc1").mask_forward
    kl.prune(masked, kl.LayerwiseMagnitude(0.5))
    expected = kl.strip(masked)(mlp_data[0])
    # Write non-zero values at dead positions behind the mask's back: the forward pass ignores them.
    kernel = masked.get_layer("fc1").layer.kernel
    kernel.assign(kernel.numpy() + 1.0)
    reference = kl.strip(masked)  # strip multiplies by the mask too
    np.testing.assert_allclose(masked(mlp_data[0]), reference(mlp_data[0]), rtol=1e-5, atol=1e-5)
    assert not np.allclose(masked(mlp_data[0]), expected)  # the live weights did change


def test_default_forward_reads_stored_weights_and_apply_mask_repairs_a_write(mlp, mlp_data):
    masked = kl.mask(mlp)
    mask = kl.prune(masked, kl.LayerwiseMagnitude(0.5))
    kernel = masked.get_layer("fc1").layer.kernel
    kernel.assign(kernel.numpy() + 1.0)  # a write behind the library's back
    assert not np.allclose(masked(mlp_data[0]), kl.strip(masked)(mlp_data[0]), atol=1e-5)
    kl.apply_mask(masked, kl.Mask.from_model(masked))  # the documented repair
    assert np.all(kernel.numpy()[~mask["fc1/kernel"]] == 0)
    np.testing.assert_allclose(masked(mlp_data[0]), kl.strip(masked)(mlp_data[0]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mask_forward", [False, True])
def test_gradient_of_dead_entries_is_exactly_zero(mlp, mlp_data, mask_forward):
    masked = kl.mask(mlp, mask_forward=mask_forward)
    mask = kl.prune(masked, kl.GlobalMagnitude(0.7))
    import tensorflow as tf

    x, y = mlp_data
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with tf.GradientTape() as tape:
        loss = loss_fn(y, masked(x, training=True))
    variables = {p: v for layer in kl.masking.masked_layers(masked) for p, v in layer.prunable_variables().items()}
    grads = tape.gradient(loss, list(variables.values()))
    for (path, _), grad in zip(variables.items(), grads):
        grad = keras.ops.convert_to_numpy(grad)
        assert np.all(grad[~mask[path]] == 0)
        assert np.count_nonzero(grad[mask[path]]) > 0


def test_embedding_gradient_stays_sparse_and_masked():
    import tensorflow as tf

    inputs = keras.Input((3,), dtype="int32")
    x = keras.layers.Embedding(10, 4, name="embed")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="predictions")(keras.layers.Flatten()(x)))
    masked = kl.mask(model)
    keep = np.arange(40).reshape(10, 4) % 3 != 0
    kl.apply_mask(masked, {"embed/embeddings": keep})
    table = masked.get_layer("embed").layer.embeddings
    ids = np.array([[1, 2, 2], [5, 1, 0]], "int32")
    with tf.GradientTape() as tape:
        loss = keras.ops.sum(masked(ids) ** 2)
    grad = tape.gradient(loss, table)
    assert isinstance(grad, tf.IndexedSlices)  # the lookup's gradient is not densified
    dense = keras.ops.convert_to_numpy(tf.convert_to_tensor(grad))
    looked_up = np.isin(np.arange(10), ids)[:, None] & np.ones((10, 4), bool)
    assert np.all(dense[~keep] == 0) and np.all(dense[keep & looked_up] != 0)


def test_strip_bakes_zeros_and_saves_without_custom_objects(conv_model, tmp_path):
    masked = kl.mask(conv_model)
    mask = kl.prune(masked, kl.GlobalMagnitude(0.6))
    stripped = kl.strip(masked)
    assert "MaskedLayer" not in set(_types(stripped).values())
    assert "keras_lottery" not in json.dumps(stripped.get_config())
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(stripped(x), masked(x), rtol=1e-5, atol=1e-5)
    assert kl.sparsity_report(stripped, print_fn=None)["global"]["alive"] == mask.alive
    stripped.save(tmp_path / "stripped.keras")
    loaded = keras.models.load_model(tmp_path / "stripped.keras", custom_objects={})
    np.testing.assert_allclose(loaded(x), masked(x), rtol=1e-5, atol=1e-5)
    # strip leaves the masked model masked
    assert _types(masked)["conv"] == "MaskedLayer"


def test_masked_model_saves_and_loads_with_keras_format(mlp, mlp_data, tmp_path):
    masked = kl.mask(mlp)
    mask = kl.prune(masked, kl.GlobalMagnitude(0.7))
    masked.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert kl.Mask.from_model(loaded) == mask
    np.testing.assert_allclose(loaded(mlp_data[0]), masked(mlp_data[0]), rtol=1e-6)
    loaded.compile(keras.optimizers.SGD(0.1, momentum=0.9), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    loaded.fit(*mlp_data, epochs=2, verbose=0)  # the re-installed constraint still holds zeros
    assert all(np.all(v == 0) for v in dead_entries(loaded).values())


def test_copy_weights_keeps_masks(mlp):
    masked = kl.mask(mlp)
    mask = kl.prune(masked, kl.GlobalMagnitude(0.5))
    other = keras.models.clone_model(mlp)  # same architecture, different values
    kl.copy_weights(other, masked)
    assert kl.Mask.from_model(masked) == mask
    assert all(np.all(v == 0) for v in dead_entries(masked).values())
    live = mask["fc1/kernel"]
    np.testing.assert_array_equal(masked.get_layer("fc1").layer.kernel.numpy()[live],
                                  other.get_layer("fc1").kernel.numpy()[live])
    # mask() of a masked model keeps its masks
    assert kl.Mask.from_model(kl.mask(masked)) == mask
    wrong = keras.Sequential([keras.Input((16,)), keras.layers.Dense(5, name="fc1")])
    with pytest.raises(ValueError, match="'fc1' weight shapes differ"):
        kl.copy_weights(wrong, masked)


def test_wrapped_layer_losses_and_state_updates_pass_through():
    class Counting(keras.layers.Layer):
        def build(self, input_shape):
            self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1], 2))
            self.calls = self.add_weight(name="calls", shape=(), initializer="zeros", trainable=False)

        def call(self, x):
            self.calls.assign(self.calls + 1.0)
            self.add_loss(keras.ops.sum(self.kernel) * 0.0 + 3.0)
            return x @ self.kernel

        def get_prunable_weights(self):
            return [self.kernel]

    layer = MaskedLayer(Counting(name="counting"))
    x = np.ones((1, 3), "float32")
    layer(x)
    layer(x)
    assert float(layer.layer.calls.numpy()) == 2.0
    assert [float(v) for v in layer.losses] == [3.0]
    dense = MaskedLayer(keras.layers.Dense(2, activity_regularizer="l2", name="reg"))  # l2: 0.01 * sum(out ** 2)
    out = keras.ops.convert_to_numpy(dense(x))
    assert len(dense.losses) == 1
    assert float(dense.losses[0]) == pytest.approx(0.01 * float(np.sum(out.astype(np.float64) ** 2)), rel=1e-5)
