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


def test_sequential_and_uncounted_layers():
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2, name="d"),
                              keras.layers.Lambda(lambda t: t * 2, name="double")])
    report = kl.metrics.layer_flops(model)
    assert report["layers"]["d"] == 2 * 5 * 2 + 2 and report["uncounted"] == ["double (Lambda)"]
    assert kl.metrics.memory(model, 1).activations == 4 * (5 + 2 + 2)


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
