"""Layers holding layers, positional call arguments, weight paths and collapse (issue 27)."""

import warnings

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery import collapse, sparsity


class Block(keras.layers.Layer):
    """A residual block of two Dense layers and an attention, held as attributes (a user's layer of layers)."""

    def __init__(self, width=8, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        self.attention = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="attention")
        self.inner = keras.layers.Dense(2 * width, activation="relu", name="inner")
        self.outer = keras.layers.Dense(width, name="outer")

    def build(self, input_shape):
        self.attention.build(input_shape, input_shape)
        self.inner.build(input_shape)
        self.outer.build((*input_shape[:-1], 2 * self.width))

    def call(self, x):
        return x + self.outer(self.inner(x + self.attention(x, x)))

    def get_config(self):
        return {**super().get_config(), "width": self.width}


def _block_model():
    inputs = keras.Input((4, 8))
    x = Block(name="block_0")(inputs)
    x = Block(name="block_1")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(keras.layers.Flatten()(x)))


def test_kernels_inside_a_users_layer_of_layers_are_masked_and_stay_zero():
    model = _block_model()
    masked = kl.mask(model, unmasked="error")  # nothing of rank >= 2 is left dense
    paths = list(kl.Mask.from_model(masked))
    assert "block_0/attention/query/kernel" in paths and "block_1/outer/kernel" in paths and len(paths) == 13
    kl.prune(masked, kl.GlobalMagnitude(0.5))
    x = np.random.default_rng(0).normal(size=(16, 4, 8)).astype("float32")
    masked.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    masked.fit(x, np.zeros((16, 3)), epochs=2, verbose=0)
    for layer in kl.masking.masked_layers(masked):
        for path, variable, mask in layer.masked_weights():
            assert not np.any(variable.numpy()[mask.numpy() == 0]), path
    np.testing.assert_allclose(kl.strip(masked)(x), masked(x), atol=1e-5)


def test_two_kernels_with_one_name_are_refused_not_pruned_twice():
    class TwoKernels(keras.layers.Layer):
        def build(self, input_shape):
            self.a = keras.layers.Dense(8, name="a")
            self.b = keras.layers.Dense(8, name="b")
            self.a.build(input_shape)
            self.b.build(input_shape)

        def call(self, x):
            return self.b(self.a(x))

        def get_prunable_weights(self):
            return [self.a.kernel, self.b.kernel]

    layer = TwoKernels(name="two")
    layer(np.ones((1, 8), "float32"))
    paths = [p for p, _ in kl.layers.prunable_items(layer)]
    assert paths == ["two/a/kernel", "two/b/kernel"]  # each kernel named by its own path
    wrapper = kl.MaskedLayer(layer)
    wrapper(np.ones((1, 8), "float32"))
    rule = kl.LayerwiseMagnitude(0.5)
    kl.apply_mask(wrapper, rule({p: v.numpy() for p, v in wrapper.prunable_variables().items()},
                                kl.Mask.from_model(wrapper)))
    assert [float(np.mean(layer.a.kernel.numpy() == 0)), float(np.mean(layer.b.kernel.numpy() == 0))] == [0.5, 0.5]


def test_a_wrapped_attention_takes_its_positional_arguments():
    query, value = np.ones((2, 3, 4), "float32"), np.ones((2, 5, 4), "float32")
    for wrapper in (kl.MaskedLayer(keras.layers.MultiHeadAttention(2, 4)),
                    sparsity.prune_low_magnitude(keras.layers.MultiHeadAttention(2, 4))):
        assert wrapper(query, value).shape == (2, 3, 4)
        assert wrapper(query, value, return_attention_scores=True)[1].shape == (2, 2, 3, 5)


def test_prune_low_magnitude_wraps_the_models_own_layers():
    inputs = keras.Input((8,))
    dense = keras.layers.Dense(4, name="fc")
    model = keras.Model(inputs, dense(inputs))
    kernel = dense.kernel
    pruned = sparsity.prune_low_magnitude(model)
    assert pruned.get_layer("fc").layer is dense and pruned.get_layer("fc").layer.kernel is kernel


@pytest.mark.parametrize("keep_units", [False, True])
def test_collapse_is_a_matter_of_paths(keep_units):
    model = keras.applications.MobileNetV2(alpha=0.35, weights=None, input_shape=(32, 32, 3), classes=10)
    masked = kl.mask(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kl.prune(masked, kl.GlobalMagnitude(0.5, keep_units=keep_units))
    found = [str(w.message) for w in caught if issubclass(w.category, collapse.CollapseWarning)]
    if keep_units:  # the default: every channel keeps a weight, the output depends on the input
        assert not found and collapse.dead_layer(masked) is None
    else:  # the plain global threshold keeps 1 weight of 3,024 in three depthwise kernels
        assert len(found) == 1 and "block_14_depthwise" in found[0]


def test_a_cut_path_is_named_where_it_is_cut():
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(5, name="fc1")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="fc2")(keras.layers.Dense(4, name="fc_mid")(hidden)))
    masked = kl.mask(model)
    kl.apply_mask(masked, {"fc_mid/kernel": np.zeros((5, 4), bool)})
    assert collapse.dead_layer(masked) == "fc_mid"
    assert collapse.dead_layer(model) is None  # the dense model, and the weights are back after the check


def test_a_model_never_called_on_inputs_is_not_checked():
    model = keras.Sequential([keras.layers.Dense(4, name="fc")])
    model.build((None, 3))  # built, but without symbolic inputs
    masked = kl.mask(model)
    kl.apply_mask(masked, {"fc/kernel": np.zeros((3, 4), bool)})
    assert collapse.dead_layer(masked) is None


def test_an_untied_output_projection_is_masked_in_reverse_mode():
    class TinyLM(keras.Model):
        def __init__(self):
            super().__init__()
            self.embed = keras.layers.ReversibleEmbedding(12, 4, tie_weights=False, name="embed")

        def call(self, tokens):
            return self.embed(self.embed(tokens), reverse=True)

    model = TinyLM()
    tokens = np.array([[1, 2, 3]], "int32")
    model(tokens)
    masked = kl.mask(model, copy=False)
    paths = sorted(kl.Mask.from_model(masked))  # the variables' Keras paths
    assert [p.split("/", 1)[1] for p in paths] == ["embed/embeddings", "embed/reverse_embeddings"]
    kl.apply_mask(masked, {paths[1]: np.zeros((4, 12), bool)})
    assert not np.any(keras.ops.convert_to_numpy(masked(tokens)))
