"""Layers without a rule in the cost model, counted from their traced TensorFlow ops (keras_lottery.op_flops)."""

import keras
import pytest

import keras_lottery as kl
from keras_lottery import op_flops
from tests.helpers import run_python


def _traced(layer, *shapes, **kwargs):
    """Traced FLOPs of ``layer`` called on tensors of ``shapes`` (batch dimension first), built first."""
    tensors = [keras.KerasTensor(s) for s in shapes]
    layer(*tensors, **kwargs)
    flops, unknown = op_flops.traced_flops(layer, tensors, kwargs)
    assert unknown == []
    return flops


def _table(layer, in_shapes):
    out = layer.compute_output_shape(in_shapes[0]) if len(in_shapes) == 1 else None
    return kl.metrics.layer_forward_flops(layer, in_shapes, [out] if out else [])


@pytest.mark.parametrize("make, shape", [
    (lambda: keras.layers.Dense(6), (None, 5)),
    (lambda: keras.layers.Dense(6, use_bias=False), (None, 7, 5)),
    (lambda: keras.layers.Conv2D(4, 3), (None, 8, 8, 3)),
    (lambda: keras.layers.Conv2D(4, 3, strides=2, padding="same", groups=2), (None, 8, 8, 2)),
    (lambda: keras.layers.DepthwiseConv2D(3, depth_multiplier=2), (None, 6, 6, 3)),
    (lambda: keras.layers.Conv2DTranspose(4, 3, strides=2), (None, 5, 5, 3)),
    (lambda: keras.layers.Conv1D(4, 3), (None, 9, 2)),
    (lambda: keras.layers.EinsumDense("abc,cd->abd", output_shape=(None, 4), bias_axes="d"), (None, 6, 5)),
    (lambda: keras.layers.EinsumDense("ab,bcd->acd", output_shape=(2, 3)), (None, 5)),
    (lambda: keras.layers.ReLU(), (None, 4, 3)),
    (lambda: keras.layers.Softmax(), (None, 4, 3)),
    (lambda: keras.layers.MaxPooling2D(2), (None, 6, 6, 3)),
    (lambda: keras.layers.GlobalAveragePooling2D(), (None, 6, 6, 3)),
])
def test_traced_count_equals_the_table_rule(make, shape):
    # the check that the op counter follows the module's conventions, on layers that have a rule
    layer = make()
    assert _traced(layer, shape) == _table(layer, [shape]) > 0


_CONTRACTING = [
    (lambda: keras.layers.Dense(6), [(None, 5)]),
    (lambda: keras.layers.Dense(6, use_bias=False), [(None, 7, 5)]),
    (lambda: keras.layers.Conv2D(4, 3, strides=2, padding="same", groups=2), [(None, 8, 8, 2)]),
    (lambda: keras.layers.DepthwiseConv2D(3, depth_multiplier=2), [(None, 6, 6, 3)]),
    (lambda: keras.layers.SeparableConv2D(4, 3), [(None, 6, 6, 3)]),
    (lambda: keras.layers.Conv2DTranspose(4, 3, strides=2), [(None, 5, 5, 3)]),
    (lambda: keras.layers.EinsumDense("abc,cd->abd", output_shape=(None, 4), bias_axes="d"), [(None, 6, 5)]),
    (lambda: keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, value_dim=3), [(None, 5, 8), (None, 7, 6)]),
]


@pytest.mark.parametrize("make, shapes", _CONTRACTING)
def test_traced_macs_equal_the_table_rule(make, shapes):
    # multiply-adds: the rule's count and the traced contractions' agree (biases and softmax are not counted)
    layer = make()
    tensors = [keras.KerasTensor(s) for s in shapes]
    out = layer(*tensors)
    assert op_flops.traced_macs(layer, tensors, {}) == kl.metrics.layer_forward_macs(
        layer, shapes, [tuple(out.shape)]) > 0


def test_traced_attention_is_the_table_plus_the_score_scaling():
    attention = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, value_dim=3)
    q, v = (None, 5, 8), (None, 7, 6)
    table = kl.metrics.layer_forward_flops(attention, [q, v], [(None, 5, 8)])
    # Keras multiplies the scores by 1 / sqrt(key_dim): one FLOP per score, which the rule does not count
    assert _traced(attention, q, v) == table + 2 * 5 * 7


def test_einsum_flops():
    assert op_flops.einsum_flops("ab,bc->ac", [(3, 4), (4, 5)]) == 2 * 3 * 4 * 5
    assert op_flops.einsum_flops("bthd,bshd->bhts", [(1, 5, 2, 4), (1, 7, 2, 4)]) == 2 * 5 * 2 * 4 * 7
    assert op_flops.einsum_flops("...ij,jk->...ik", [(2, 3, 4, 5), (5, 6)]) == 2 * 2 * 3 * 4 * 5 * 6
    assert op_flops.einsum_flops("...ij,...jk->...ik", [(3, 1, 4, 5), (2, 5, 6)]) == 2 * 3 * 2 * 4 * 5 * 6
    assert op_flops.einsum_flops("ij->ji", [(3, 4)]) == 0  # a transposition
    assert op_flops.einsum_flops("ij->i", [(3, 4)]) == 12  # a reduction: one per input element


class Swish(keras.layers.Layer):
    """A user's layer the cost model has no rule for: ``x @ w`` then ``x * sigmoid(x)``."""

    def build(self, shape):
        self.w = self.add_weight(shape=(shape[-1], 6))

    def call(self, x):
        h = keras.ops.matmul(x, self.w)
        return h * keras.ops.sigmoid(h)


def test_custom_layer_counted_in_a_model():
    inputs = keras.Input((4, 5))
    model = keras.Model(inputs, Swish(name="swish")(inputs))
    report = kl.metrics.layer_flops(model)
    assert report["layers"]["swish"] == 2 * 4 * 5 * 6 + 2 * 4 * 6  # matmul, then sigmoid and multiply
    assert report["uncounted"] == []


class AttentionPooling(keras.layers.Layer):
    """A user's pooling layer without ``pool_size``: a learned query weights the tokens."""

    def build(self, input_shape):
        self.query = self.add_weight(shape=(input_shape[-1],), name="query")

    def call(self, x):
        weights = keras.ops.softmax(keras.ops.einsum("btc,c->bt", x, self.query), axis=-1)
        return keras.ops.einsum("bt,btc->bc", weights, x)


def test_a_users_pooling_layer_is_traced_not_read_as_keras_pooling():
    inputs = keras.Input((4, 5))
    report = kl.metrics.layer_flops(keras.Model(inputs, AttentionPooling(name="pool")(inputs)))
    assert report["layers"]["pool"] == 2 * 4 * 5 + 4 + 2 * 4 * 5  # scores, softmax, weighted sum
    assert report["uncounted"] == []


def test_keyword_arguments_of_the_call_are_traced():
    inputs = keras.Input((5, 8))
    attention = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")
    block = keras.layers.Lambda(lambda t: attention(t, t, use_causal_mask=True), name="causal")
    model = keras.Model(inputs, block(inputs))
    plain = _traced(attention, (None, 5, 8), (None, 5, 8))
    causal = kl.metrics.layer_flops(model)["layers"]["causal"]
    assert causal > plain  # the causal mask is applied to the scores


def test_rules_for_norms_einsum_dense_and_masked_layers():
    inputs = keras.Input((6, 5))
    x = keras.layers.RMSNormalization(name="rms")(inputs)
    # output_shape=(None, 4) leaves the output's sequence dimension None: the rule reads the equation
    a = keras.layers.EinsumDense("abc,cd->abd", output_shape=(None, 4), bias_axes="d", name="ed")(x)
    b = kl.masking.MaskedLayer(keras.layers.Dense(3, name="fc"))(x)
    layers = kl.metrics.layer_flops(keras.Model(inputs, [a, b]))["layers"]
    assert layers["rms"] == 2 * 6 * 5  # two per element, as LayerNormalization
    assert layers["ed"] == 2 * 6 * 5 * 4 + 6 * 4
    assert layers["fc"] == 2 * 6 * 5 * 3 + 6 * 3  # the wrapped Dense, not the mask


def test_known_counts_do_not_trace(monkeypatch):
    monkeypatch.setattr(op_flops, "traced_flops", lambda *a: pytest.fail("traced a layer that has a rule"))
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Embedding(5, 2)(keras.layers.Flatten()(x))
    assert kl.metrics.layer_flops(keras.Model(inputs, x))["uncounted"] == []


CHILD = r"""
import json
import keras
import keras_lottery as kl

class Double(keras.layers.Layer):
    def call(self, x):
        return 2 * x

inputs = keras.Input((5,))
model = keras.Model(inputs, Double(name="double")(keras.layers.Dense(2, name="d")(inputs)))
print(json.dumps([keras.backend.backend(), kl.metrics.layer_flops(model)]))
"""


def test_other_backends_keep_zero_and_list_the_layer():
    backend, report = run_python(CHILD, timeout=300, KERAS_BACKEND="jax")
    assert backend == "jax"
    assert report == {"layers": {"input_layer": 0, "d": 22, "double": 0}, "uncounted": ["double (Double)"]}


class TwoDense(keras.Model):
    """A subclassed model called as a layer: it has no graph to read, so it is traced."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.a, self.b = keras.layers.Dense(4), keras.layers.Dense(2)

    def call(self, x):
        return self.b(self.a(x))


def test_subclassed_model_inside_a_functional_model_is_traced():
    inputs = keras.Input((5,))
    report = kl.metrics.layer_flops(keras.Model(inputs, TwoDense(name="sub")(inputs)))
    assert report["layers"]["sub"] == (2 * 5 * 4 + 4) + (2 * 4 * 2 + 2) and report["uncounted"] == []


def test_a_nested_tf_function_is_counted():
    import tensorflow as tf

    @tf.function
    def inner(x):
        return tf.nn.relu(x) * 2.0

    class Inner(keras.layers.Layer):
        def call(self, x):
            return inner(x)

    assert _traced(Inner(), (None, 5)) == 5 + 5  # relu and multiply, inside a PartitionedCall
