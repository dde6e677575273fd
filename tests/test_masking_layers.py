"""Masks on every layer type with a kernel: attention, EinsumDense, recurrent layers, wrappers, grouped
convolutions. For each tiny model: the expected weight paths, the same function as the plain model, exact
zeros after training with Adam past a pruning step, strip, ``.keras`` save/load and a SavedModel export."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_lottery as kl
from keras_lottery import layers, masking
from tests.helpers import dead_entries


def _seq(body):
    x = keras.Input((5, 6), name="seq")
    return keras.Model(x, keras.layers.Dense(3, name="out")(body(x)))


def _mha():
    def body(x):
        h = keras.layers.MultiHeadAttention(2, 3, name="mha")(x, x)
        return keras.layers.GlobalAveragePooling1D(name="pool")(h)
    return _seq(body)


def _cross_mha():  # query and value of different lengths and widths: build needs both shapes
    q, v = keras.Input((4, 6), name="q"), keras.Input((7, 5), name="v")
    h = keras.layers.MultiHeadAttention(2, 3, name="mha")(q, v)
    return keras.Model([q, v], keras.layers.Dense(3, name="out")(keras.layers.Flatten(name="flat")(h)))


def _einsum():
    def body(x):
        h = keras.layers.EinsumDense("abc,cd->abd", output_shape=(5, 4), bias_axes="d", name="ein")(x)
        return keras.layers.Flatten(name="flat")(h)
    return _seq(body)


def _rnn(cls, **kwargs):
    return lambda: _seq(lambda x: cls(4, name="rnn", **kwargs)(x))


def _bidirectional():
    return _seq(lambda x: keras.layers.Bidirectional(keras.layers.LSTM(3), name="bi")(x))


def _time_distributed():
    def body(x):
        h = keras.layers.TimeDistributed(keras.layers.Dense(4), name="td")(x)
        return keras.layers.Flatten(name="flat")(h)
    return _seq(body)


def _grouped_conv():
    x = keras.Input((6, 6, 4), name="images")
    h = keras.layers.Conv2D(6, 3, groups=2, name="gconv")(x)
    h = keras.layers.GlobalAveragePooling2D(name="pool")(h)
    return keras.Model(x, keras.layers.Dense(3, name="out")(h))


CASES = {
    "mha": (_mha, ["mha/query/kernel", "mha/key/kernel", "mha/value/kernel", "mha/attention_output/kernel"]),
    "cross_mha": (_cross_mha, ["mha/query/kernel", "mha/key/kernel", "mha/value/kernel",
                               "mha/attention_output/kernel"]),
    "einsum": (_einsum, ["ein/kernel"]),
    "simple_rnn": (_rnn(keras.layers.SimpleRNN), ["rnn/kernel", "rnn/recurrent_kernel"]),
    "lstm": (_rnn(keras.layers.LSTM), ["rnn/kernel", "rnn/recurrent_kernel"]),
    "gru": (_rnn(keras.layers.GRU), ["rnn/kernel", "rnn/recurrent_kernel"]),
    "gru_v1_bias": (_rnn(keras.layers.GRU, reset_after=False), ["rnn/kernel", "rnn/recurrent_kernel"]),
    "bidirectional": (_bidirectional, ["bi/forward_lstm/kernel", "bi/forward_lstm/recurrent_kernel",
                                       "bi/backward_lstm/kernel", "bi/backward_lstm/recurrent_kernel"]),
    "time_distributed": (_time_distributed, ["td/kernel"]),
    "grouped_conv": (_grouped_conv, ["gconv/kernel"]),
}


def _data(model, n=48, seed=0):
    rng = np.random.default_rng(seed)
    xs = [rng.normal(size=(n, *t.shape[1:])).astype("float32") for t in model.inputs]
    return (xs if len(xs) > 1 else xs[0]), rng.integers(0, 3, size=n)


def _predict(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_kernel_is_masked_and_stays_exactly_zero(case, tmp_path):
    build, expected = CASES[case]
    keras.utils.set_random_seed(0)
    model = build()
    x, y = _data(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # nothing is left unmasked
        masked = kl.mask(model)
    mask = masking.read_mask(masked)
    assert list(mask) == expected + ["out/kernel"]
    np.testing.assert_allclose(_predict(masked, x), _predict(model, x), atol=1e-5)

    masked.compile(keras.optimizers.Adam(0.02), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    masked.fit(x, y, batch_size=16, epochs=1, verbose=0)  # Adam moments are non-zero everywhere now
    kl.prune(masked, kl.GlobalMagnitude(0.6))
    before = {p: np.array(v) for layer in masking.masked_layers(masked) for p, v in layer.prunable_variables().items()}
    masked.fit(x, y, batch_size=16, epochs=2, verbose=0)
    mask = masking.read_mask(masked)
    assert all(0 < mask[p].mean() < 1 for p in expected)
    for path, values in dead_entries(masked).items():
        assert values.size and not np.any(values), f"{case}: {path} has non-zero dead weights"
    for layer in masking.masked_layers(masked):  # the survivors did train
        for p, v in layer.prunable_variables().items():
            assert not np.allclose(np.asarray(v)[mask[p]], before[p][mask[p]]), p

    reference = _predict(masked, x)
    stripped = kl.strip(masked)
    np.testing.assert_allclose(_predict(stripped, x), reference, atol=1e-5)
    assert masking.density_report(stripped) == mask.report()

    masked.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(_predict(loaded, x), reference, atol=1e-5)
    assert masking.read_mask(loaded) == mask

    if case == "cross_mha":
        return  # export serves single-input models only
    result = kl.export.for_serving(masked, tmp_path / "export", measure_dense=False)
    served = tf.saved_model.load(result.path).signatures["serving_default"]
    name = model.inputs[0].name
    out = served(**{name: tf.constant(x)})["logits"].numpy()
    np.testing.assert_allclose(out, reference, atol=1e-5)
    assert result.card["density"] == mask.report() if "density" in result.card else True


def test_layers_built_directly_in_masked_layer():
    """MaskedLayer around an unbuilt MultiHeadAttention (built from two inputs) and an LSTM."""
    q, v = keras.Input((4, 6)), keras.Input((7, 5))
    h = kl.MaskedLayer(keras.layers.MultiHeadAttention(2, 3, name="att"))(q, v)
    h = kl.MaskedLayer(keras.layers.LSTM(3, name="lstm"))(h)
    model = keras.Model([q, v], h)
    assert list(masking.read_mask(model)) == ["att/query/kernel", "att/key/kernel", "att/value/kernel",
                                              "att/attention_output/kernel", "lstm/kernel", "lstm/recurrent_kernel"]
    mask_var_names = [m.name for layer in masking.masked_layers(model) for m in layer.mask_variables().values()]
    assert len(set(mask_var_names)) == len(mask_var_names)  # one mask variable name per weight


class _PositionEmbedding(keras.layers.Layer):
    """A custom layer with a rank-2 weight and no get_prunable_weights: the registry cannot know it."""

    def build(self, shape):
        self.table = self.add_weight(shape=tuple(shape[1:]), name="table")

    def call(self, x):
        return x + self.table


def _with_position_embedding():
    x = keras.Input((5, 6))
    h = _PositionEmbedding(name="pos")(x)
    return keras.Model(x, keras.layers.Dense(3, name="out")(keras.layers.Flatten()(h)))


def test_unmasked_rank_2_weights_are_named_in_a_warning_or_an_error():
    model = _with_position_embedding()
    with pytest.warns(UserWarning, match=r"leaves 1 trainable weight.*'pos/table'.*get_prunable_weights"):
        masked = kl.mask(model)
    assert list(masking.read_mask(masked)) == ["out/kernel"]
    with pytest.raises(ValueError, match=r"unmasked \(dense\): \['pos/table'\]"):
        kl.mask(model, unmasked="error")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        kl.mask(model, unmasked="ignore")
    with pytest.raises(ValueError, match="must be one of"):
        kl.mask(model, unmasked="loud")


def test_biases_and_normalization_are_not_reported_as_unmasked():
    """MultiHeadAttention's and GRU's biases are matrices; biases are never masked, so no warning."""
    x = keras.Input((5, 6))
    h = keras.layers.MultiHeadAttention(2, 3)(x, x)
    h = keras.layers.LayerNormalization()(h)
    h = keras.layers.GRU(3)(h)
    model = keras.Model(x, keras.layers.Dense(2)(h))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        kl.mask(model)


def test_registry_paths_for_stacked_cells_and_conv_lstm():
    stacked = keras.layers.RNN(keras.layers.StackedRNNCells([keras.layers.LSTMCell(3, name="c1"),
                                                             keras.layers.GRUCell(2, name="c2")]), name="st")
    stacked.build((None, 5, 4))
    assert [p for p, _ in layers.prunable_items(stacked)] == ["st/c1/kernel", "st/c1/recurrent_kernel",
                                                             "st/c2/kernel", "st/c2/recurrent_kernel"]
    conv_lstm = keras.layers.ConvLSTM1D(2, 3, name="cl")
    conv_lstm.build((None, 4, 6, 3))
    assert [p for p, _ in layers.prunable_items(conv_lstm)] == ["cl/kernel", "cl/recurrent_kernel"]
    assert layers.is_prunable(keras.layers.MultiHeadAttention(2, 3))
    assert layers.is_prunable(keras.layers.TimeDistributed(keras.layers.Dense(2)))
    assert not layers.is_prunable(keras.layers.TimeDistributed(keras.layers.Dropout(0.1)))


def test_padding_masks_reach_a_wrapped_recurrent_layer():
    """Embedding(mask_zero=True) -> masked LSTM: padded steps are skipped exactly as in the plain model."""
    x = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(10, 4, mask_zero=True, name="embed")(x)
    h = keras.layers.LSTM(3, name="lstm")(h)
    model = keras.Model(x, keras.layers.Dense(2, name="out")(h))
    masked = kl.mask(model)
    tokens = np.array([[3, 4, 5, 0, 0, 0], [1, 2, 0, 0, 0, 0]], "int32")
    np.testing.assert_allclose(_predict(masked, tokens), _predict(model, tokens), atol=1e-6)
    unpadded = np.array([[3, 4, 5]], "int32")  # the padding is skipped, not read as token 0
    np.testing.assert_allclose(_predict(masked, tokens)[0], _predict(masked, unpadded)[0], atol=1e-6)
