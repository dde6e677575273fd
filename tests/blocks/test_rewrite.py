import keras
import numpy as np
import pytest

import keras_lottery as kl


def _weights(model):
    return [w.numpy().copy() for w in model.weights]


def test_removing_nothing_computes_exactly_the_original(resnet14, images16):
    x, _ = images16
    copy = kl.blocks.remove(resnet14, [])
    assert copy is not resnet14 and [l.name for l in copy.layers] == [l.name for l in resnet14.layers]
    np.testing.assert_array_equal(copy(x, training=False), resnet14(x, training=False))


@pytest.mark.parametrize("names", [["stage1_block2_add"], ["stage1_block1_add", "stage1_block2_add", "stage3_block2_add"]])
def test_removal_equals_zeroed_branch(resnet14, images16, names, zeroed_branch_copy):
    x, _ = images16
    before = _weights(resnet14)
    config = resnet14.get_config()
    ticket = kl.blocks.remove(resnet14, names)
    reference = zeroed_branch_copy(resnet14, names)
    np.testing.assert_allclose(ticket(x, training=False), reference(x, training=False), rtol=0, atol=1e-6)
    # the original is untouched
    assert resnet14.get_config() == config
    assert all(np.array_equal(a, b) for a, b in zip(before, _weights(resnet14)))
    # same inputs and outputs, the branches and their Add are gone, the post-add ReLU stays
    assert [t.name for t in ticket.inputs] == [t.name for t in resnet14.inputs]
    assert ticket.outputs[0].shape == resnet14.outputs[0].shape
    layer_names = {l.name for l in ticket.layers}
    for name in names:
        stem = name[: -len("_add")]
        assert name not in layer_names and f"{stem}_conv1" not in layer_names and f"{stem}_out" in layer_names
    assert kl.metrics.params(ticket) == kl.metrics.params(resnet14) - sum(
        b.params for b in kl.blocks.find_blocks(resnet14) if b.name in names)


def test_chained_removal_in_mobilenetv2(mobilenetv2, images32, zeroed_branch_copy):
    # block_5's shortcut is block_4's Add: removing both makes block_6 read block_3_project_BN
    names = ["block_4_add", "block_5_add"]
    ticket = kl.blocks.remove(mobilenetv2, kl.blocks.find_blocks(mobilenetv2)[1:3])
    assert [b.name for b in kl.blocks.find_blocks(mobilenetv2)[1:3]] == names
    reference = zeroed_branch_copy(mobilenetv2, names)
    np.testing.assert_allclose(ticket(images32, training=False), reference(images32, training=False),
                               rtol=0, atol=1e-6)
    assert len(kl.blocks.find_blocks(ticket)) == 8


def test_removal_in_preactivation_resnet(resnet50v2, images32, zeroed_branch_copy):
    names = ["conv2_block2_out", "conv4_block5_out"]
    ticket = kl.blocks.remove(resnet50v2, names)
    reference = zeroed_branch_copy(resnet50v2, names)
    np.testing.assert_allclose(ticket(images32, training=False), reference(images32, training=False),
                               rtol=1e-6, atol=1e-6)
    flops = {b.name: b.flops for b in kl.blocks.find_blocks(resnet50v2)}
    assert kl.metrics.flops(ticket) == kl.metrics.flops(resnet50v2) - flops[names[0]] - flops[names[1]]


def test_ticket_trains_and_leaves_the_original_alone(resnet14, images16):
    x, y = images16
    before = _weights(resnet14)
    ticket = kl.blocks.remove(resnet14, ["stage2_block2_add"])
    start = _weights(ticket)
    ticket.compile(optimizer=keras.optimizers.SGD(0.05),
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    losses = [float(ticket.train_on_batch(x, y)) for _ in range(5)]  # one batch, five steps
    assert losses[-1] < losses[0], losses
    assert any(not np.array_equal(a, b) for a, b in zip(start, _weights(ticket)))
    assert all(np.array_equal(a, b) for a, b in zip(before, _weights(resnet14)))


def test_remove_errors(resnet14):
    with pytest.raises(ValueError, match="no residual block named 'nope'.*stage1_block1_add"):
        kl.blocks.remove(resnet14, ["nope"])
    with pytest.raises(ValueError, match="stage2_block1_add.*cannot be removed: projection"):
        kl.blocks.remove(resnet14, ["stage2_block1_add"])
    with pytest.raises(ValueError, match="listed twice"):
        kl.blocks.remove(resnet14, ["stage1_block1_add", "stage1_block1_add"])
    with pytest.raises(TypeError, match="Block objects or block names"):
        kl.blocks.remove(resnet14, [3])
    with pytest.raises(TypeError, match="keras.Model"):
        kl.blocks.remove(object(), [])


@pytest.mark.parametrize("names", [["add"], ["add_1", "add_3"], ["add", "add_1", "add_3", "layer_add"]])
def test_removal_of_operation_node_blocks(op_model, names, zeroed_branch_copy):
    x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    ticket = kl.blocks.remove(op_model, names)
    reference = zeroed_branch_copy(op_model, names)
    np.testing.assert_allclose(ticket(x), reference(x), rtol=1e-6, atol=1e-6)
    assert not np.allclose(ticket(x), op_model(x), atol=1e-6)
    branches = {"add": "plain", "add_1": "scaled", "add_3": "gated", "layer_add": "last"}
    kept = {op.name for op in ticket.operations}
    assert all(f"{branches[n]}_fc1" not in kept for n in names) and set(names).isdisjoint(kept)
    assert len(kl.blocks.find_blocks(ticket, warn=False)) == 4 - len(names)


@pytest.mark.parametrize("names", [["encoder/add"], ["encoder/enc2_add", "top_add"],
                                   ["encoder/add", "encoder/enc2_add"]])
def test_removal_inside_a_nested_model_keeps_the_nesting(nested_model, names, zeroed_branch_copy):
    x = np.random.default_rng(1).normal(size=(4, 6)).astype("float32")
    ticket = kl.blocks.remove(nested_model, names)
    np.testing.assert_allclose(ticket(x), zeroed_branch_copy(nested_model, names)(x), rtol=1e-6, atol=1e-6)
    encoder = ticket.get_layer("encoder")
    assert isinstance(encoder, keras.Model)  # still a sub-model
    inner = {l.name for l in encoder.layers}
    for name in names:
        stem = {"encoder/add": "enc1", "encoder/enc2_add": "enc2", "top_add": "top"}[name]
        assert f"{stem}_fc1" not in inner and f"{stem}_fc1" not in {l.name for l in ticket.layers}
    left = kl.blocks.find_blocks(ticket, warn=False).names()
    assert left == [n for n in ["encoder/add", "encoder/enc2_add", "top_add"] if n not in names]
    assert kl.metrics.params(ticket) == kl.metrics.params(nested_model) - sum(
        b.params for b in kl.blocks.find_blocks(nested_model) if b.name in names)


def test_removal_in_transformer_encoders(encoder_model, zeroed_branch_copy):
    x = np.random.default_rng(2).normal(size=(3, 5, 8)).astype("float32")
    names = ["add", "add_3"]  # the first attention and the last MLP
    ticket = kl.blocks.remove(encoder_model, names)
    np.testing.assert_allclose(ticket(x), zeroed_branch_copy(encoder_model, names)(x), rtol=1e-5, atol=1e-6)
    assert "b1_attn" not in {l.name for l in ticket.layers}
    flops = {b.name: b.flops for b in kl.blocks.find_blocks(encoder_model)}
    assert kl.metrics.flops(ticket) == kl.metrics.flops(encoder_model) - flops["add"] - flops["add_3"]
