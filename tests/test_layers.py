"""keras_lottery.layers: the one layer walk and the one prunable registry, and the density report
that uses them for masked and plain models alike."""

import keras
import numpy as np

import keras_lottery as kl
from keras_lottery import layers


def _nested():
    inner_in = keras.Input((4,))
    inner = keras.Model(inner_in, keras.layers.Dense(4, name="inner_fc")(inner_in), name="inner")
    x = keras.Input((4,))
    h = keras.layers.Dense(4, name="fc")(x)
    h = inner(h)
    h = keras.layers.BatchNormalization(name="bn")(h)
    return keras.Model(x, keras.layers.Dense(2, name="out")(h), name="outer")


def test_walk_visits_nested_models_and_wrapped_layers_once():
    model = _nested()
    names = [layer.name for layer in layers.walk(model)]
    assert names == ["input_layer" if names[0] == "input_layer" else names[0], "fc", "inner", names[3], "inner_fc",
                     "bn", "out"]
    assert len(names) == len(set(names))
    masked = kl.mask(model)
    plain = [type(layer).__name__ for layer in layers.walk(masked)]
    unwrapped = [type(layer).__name__ for layer in layers.walk(masked, unwrap=True)]
    assert plain.count("MaskedLayer") == 3 and "Dense" not in plain
    assert unwrapped.count("Dense") == 3  # each right after its wrapper
    assert unwrapped[unwrapped.index("MaskedLayer") + 1] == "Dense"


def test_by_name_prefers_the_outermost_layer():
    model = _nested()
    found = layers.by_name(model)
    assert found["fc"] is model.get_layer("fc") and found["inner_fc"] is model.get_layer("inner").get_layer("inner_fc")


def test_registry():
    sep = keras.layers.SeparableConv2D(2, 3)
    sep.build((None, 8, 8, 3))
    assert [v.name for v in layers.prunable_variables(sep)] == ["depthwise_kernel", "pointwise_kernel"]
    assert layers.is_prunable(keras.layers.Embedding(10, 3))
    assert not layers.is_prunable(keras.layers.BatchNormalization())
    assert not layers.is_prunable(_nested())

    class Custom(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1], 2), name="w")
            self.b = self.add_weight(shape=(2,), name="b")

        def call(self, x):
            return x @ self.w + self.b

        def get_prunable_weights(self):
            return [self.w]

    custom = Custom()
    custom.build((None, 3))
    assert layers.is_prunable(custom) and layers.prunable_variables(custom) == [custom.w]


def test_density_report_is_the_same_for_a_masked_model_and_its_stripped_copy():
    model = kl.mask(_nested())
    kl.prune(model, kl.GlobalMagnitude(0.5))
    masked = kl.masking.density_report(model)
    stripped = kl.masking.density_report(kl.strip(model))
    assert masked == stripped
    assert set(masked["layers"]) == {"fc/kernel", "inner_fc/kernel", "out/kernel"}
    assert masked["global"]["alive"] == masked["global"]["total"] - int(np.ceil(0.5 * masked["global"]["total"]))
    assert kl.export.density_report(kl.strip(model)) == masked


def test_paired_in_order_pairs_position_by_position_only_when_the_classes_agree():
    dense, conv, norm = keras.layers.Dense(2), keras.layers.Conv2D(2, 1), keras.layers.LayerNormalization()
    other_dense, other_conv = keras.layers.Dense(2), keras.layers.Conv2D(2, 1)
    assert layers.paired_in_order([dense, conv], [other_dense, other_conv]) == [(dense, other_dense), (conv, other_conv)]
    assert layers.paired_in_order([dense, conv], [other_conv, other_dense]) is None  # a class differs at a position
    assert layers.paired_in_order([dense, conv, norm], [other_dense, other_conv]) is None  # lengths differ
    assert layers.paired_in_order([], []) == []
