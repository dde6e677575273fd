import keras
import numpy as np
import pytest

import keras_lottery as kl


def _tiny():
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(4, 3, padding="valid", name="conv")(inputs)  # 4x4x4, bias
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(3, name="dense")(x)
    return keras.Model(inputs, outputs)


def test_flops_params_memory_by_hand():
    model = _tiny()
    conv = 2 * (4 * 4) * (3 * 3 * 2 * 4) + 4 * 4 * 4
    bn, relu, gap, dense = 2 * 64, 64, 64, 2 * 4 * 3 + 3
    assert kl.metrics.layer_flops(model)["layers"] == {
        model.layers[0].name: 0, "conv": conv, "bn": bn, "relu": relu, "gap": gap, "dense": dense}
    assert kl.metrics.flops(model) == conv + bn + relu + gap + dense
    assert kl.metrics.macs(model) == (4 * 4) * (3 * 3 * 2 * 4) + 4 * 3
    assert kl.metrics.params(model) == model.count_params() == (3 * 3 * 2 * 4 + 4) + 4 * 4 + (4 * 3 + 3)
    assert kl.metrics.params(model, trainable_only=True) == model.count_params() - 8
    estimate = kl.metrics.memory(model, batch_size=5)
    assert estimate.parameters == 4 * model.count_params()
    assert estimate.activations == 4 * 5 * (72 + 64 * 3 + 4 + 3)
    assert estimate.total == estimate.parameters + estimate.activations
    with pytest.raises(ValueError, match="positive int, got 0"):
        kl.metrics.memory(model, 0)


@pytest.mark.parametrize("make", [
    lambda activation: keras.layers.Conv2D(4, 3, activation=activation),
    lambda activation: keras.layers.SeparableConv2D(4, 3, activation=activation),
    lambda activation: keras.layers.Dense(4, activation=activation),
    lambda activation: keras.layers.EinsumDense("abcd,de->abce", (6, 6, 4), bias_axes="e", activation=activation),
], ids=["conv", "separable", "dense", "einsum_dense"])
def test_a_layer_s_own_activation_counts_as_a_separate_activation_layer(make):
    def model(fused):
        inputs = keras.Input((6, 6, 2))
        x = make("relu" if fused else None)(inputs)
        return keras.Model(inputs, x if fused else keras.layers.ReLU()(x))

    fused, separate = model(True), model(False)
    assert kl.metrics.flops(fused) == kl.metrics.flops(separate)
    assert kl.metrics.macs(fused) == kl.metrics.macs(separate)


def test_sequential_and_uncounted_layers():
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2, name="d"),
                              keras.layers.Lambda(lambda t: t * 2, name="double"),
                              keras.layers.Lambda(keras.ops.erfinv, name="erfinv")])
    report = kl.metrics.layer_flops(model)
    assert report["layers"]["d"] == 2 * 5 * 2 + 2
    # a layer without a rule is counted from its traced ops; an op without a rule is named
    assert report["layers"]["double"] == 2 and report["uncounted"] == ["erfinv (Lambda: Erfinv)"]
    assert kl.metrics.memory(model, 1).activations == 4 * (5 + 2 + 2 + 2)


def test_ticket_flops_drop_by_block_flops(resnet14):
    blocks = kl.blocks.find_blocks(resnet14)
    names = ["stage1_block1_add", "stage3_block2_add"]
    ticket = kl.blocks.remove(resnet14, names)
    assert kl.metrics.flops(ticket) == kl.metrics.flops(resnet14) - sum(b.flops for b in blocks if b.name in names)
    # memory: 4 bytes per freed weight, and 8 examples of each removed layer's float32 output
    removed = [b for b in blocks if b.name in names]
    freed_weights = sum(b.params for b in removed)
    freed_outputs = sum(int(np.prod(resnet14.get_layer(layer).output.shape[1:]))
                        for b in removed for layer in (*b.branch_layers, b.add_layer))
    dense, sparse = kl.metrics.memory(resnet14, 8), kl.metrics.memory(ticket, 8)
    assert sparse.parameters == dense.parameters - 4 * freed_weights
    assert sparse.activations == dense.activations - 4 * 8 * freed_outputs


def test_operation_nodes_are_counted(op_model):
    report = kl.metrics.layer_flops(op_model)
    layers = report["layers"]
    assert report["uncounted"] == []
    dense8 = 2 * 8 * 8 + 8
    # x + f(x), 0.1 * h, h + 3.0, * (1 / 6), h * gate, keras.ops.add: one FLOP per output element
    for name in ("add", "multiply", "add_1", "add_2", "multiply_1", "multiply_2", "add_3", "layer_add"):
        assert layers[name] == 8, name
    # the branches' first Dense has activation="relu": one more FLOP per output, as a ReLU layer counts
    assert layers["plain_fc1"] == dense8 + 8 and layers["plain_fc2"] == dense8 and layers["gated_relu6"] == 8
    expected = (2 * 6 * 8 + 8) + 8 * dense8 + 4 * 8 + 8 * 8 + 8 + (2 * 8 * 3 + 3)
    assert kl.metrics.flops(op_model) == sum(layers.values()) == expected
    assert kl.metrics.macs(op_model) == 6 * 8 + 8 * 64 + 8 * 3
    # every operation output is an activation too: 6 inputs, stem, 8 Dense + relu6 + 8 operations, logits
    assert kl.metrics.memory(op_model).activations == 4 * (6 + 8 + 8 * 8 + 8 + 8 * 8 + 3)


def test_attention_flops_by_hand(encoder_model):
    # 5 tokens of width 8, 2 heads of width 4: q, k, v and output projections, scores and weighted sum
    macs = 3 * (5 * 8 * 2 * 4) + 5 * 5 * 2 * (4 + 4) + 5 * 2 * 4 * 8
    bias = 5 * 2 * 4 + 5 * 2 * (4 + 4) + 5 * 8
    softmax = 2 * 5 * 5
    assert kl.metrics.layer_flops(encoder_model)["layers"]["b1_attn"] == 2 * macs + bias + softmax


def test_macs_count_every_contraction(encoder_model):
    # per block: attention (4 projections, scores, weighted sum) and the two-layer MLP; then the classifier
    attention = 4 * (5 * 8 * 2 * 4) + 5 * 5 * 2 * (4 + 4)
    mlp = 5 * 8 * 16 + 5 * 16 * 8
    assert kl.metrics.macs(encoder_model) == 2 * (attention + mlp) + 8 * 3
    # a layer without a rule: its traced matmul, not its element-wise work
    inputs = keras.Input((4, 6))
    x = keras.layers.EinsumDense("btd,de->bte", output_shape=(4, 5), name="proj")(inputs)
    outputs = keras.layers.Lambda(lambda t: keras.ops.softmax(keras.ops.matmul(t, keras.ops.transpose(t, (0, 2, 1)))),
                                  name="self_similarity")(x)
    assert kl.metrics.macs(keras.Model(inputs, outputs)) == 4 * 6 * 5 + 4 * 4 * 5


def test_nested_models_are_counted_once_each(nested_model):
    inner = kl.metrics.flops(nested_model.get_layer("encoder"))
    layers = kl.metrics.layer_flops(nested_model)["layers"]
    assert layers["encoder"] == inner > 0
    assert kl.metrics.macs(nested_model) > kl.metrics.macs(nested_model.get_layer("encoder")) > 0
    assert kl.metrics.params(nested_model) == nested_model.count_params()
