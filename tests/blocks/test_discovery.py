import keras
import pytest

import keras_lottery as kl
from keras_lottery.blocks import NoResidualBlocksWarning


def test_zoo_resnet_blocks(resnet14):
    blocks = kl.blocks.find_blocks(resnet14)
    assert blocks.names() == [f"stage{s}_block{b}_add" for s in (1, 2, 3) for b in (1, 2)]
    removable = {b.name for b in blocks if b.removable}
    assert removable == {"stage1_block1_add", "stage1_block2_add", "stage2_block2_add", "stage3_block2_add"}
    block = blocks[1]
    assert block.branch_layers == ("stage1_block2_conv1", "stage1_block2_bn1", "stage1_block2_relu1",
                                   "stage1_block2_conv2", "stage1_block2_bn2")
    assert block.shortcut_input == "stage1_block1_out" and block.shortcut_layers == ()
    assert block.branch_output == "stage1_block2_bn2" and block.reason == ""
    # two 3x3 convs 8->8 channels (no bias) + two batch norms (gamma, beta, mean, variance)
    assert block.params == 2 * (3 * 3 * 8 * 8) + 2 * 4 * 8
    # conv: 2 * 16*16 * 576 each; bn: 2 per element, relu: 1 per element; add: 1 per element
    elements = 16 * 16 * 8
    assert block.flops == 2 * (2 * 16 * 16 * 3 * 3 * 8 * 8) + 2 * 2 * elements + elements + elements
    projection = blocks[2]
    assert not projection.removable
    assert projection.shortcut_layers == ("stage2_block1_shortcut_conv", "stage2_block1_shortcut_bn")
    assert "projection" in projection.reason and "(16, 16, 8) -> (8, 8, 16)" in projection.reason
    assert "6 residual blocks, 4 removable" in blocks.message
    assert "stage2_block1_add" in blocks.summary()


def test_keras_applications_resnet50_bottleneck(resnet50):
    blocks = kl.blocks.find_blocks(resnet50)
    assert len(blocks) == 3 + 4 + 6 + 3
    assert [b.name for b in blocks if not b.removable] == [f"conv{s}_block1_add" for s in (2, 3, 4, 5)]
    b = next(b for b in blocks if b.name == "conv4_block3_add")
    assert b.removable and b.shortcut_input == "conv4_block2_out" and len(b.branch_layers) == 8
    assert b.branch_layers[-1] == "conv4_block3_3_bn"


def test_keras_applications_resnet50v2_preactivation(resnet50v2):
    blocks = kl.blocks.find_blocks(resnet50v2)
    by_name = {b.name: b for b in blocks}
    assert len(blocks) == 16 and len(blocks.removable) == 16 - 4 - 3
    # identity block: the pre-activation BN/ReLU belongs to the branch
    b = by_name["conv3_block2_out"]
    assert b.removable and b.branch_layers[:2] == ("conv3_block2_preact_bn", "conv3_block2_preact_relu")
    assert b.shortcut_input == "conv3_block1_out"
    # last block of a stage: stride-2 branch, 1x1 max-pooling shortcut
    down = by_name["conv2_block3_out"]
    assert not down.removable and len(down.shortcut_layers) == 1
    assert down.shortcut_layers[0].startswith("max_pooling2d") and "projection/down-sampling" in down.reason
    first = by_name["conv2_block1_out"]
    assert not first.removable and first.shortcut_layers == ("conv2_block1_0_conv",)


def test_keras_applications_mobilenetv2_every_block_removable(mobilenetv2):
    blocks = kl.blocks.find_blocks(mobilenetv2)
    assert len(blocks) == 10 and all(b.removable for b in blocks)
    by_name = {b.name: b for b in blocks}
    assert by_name["block_5_add"].shortcut_input == "block_4_add"  # chained inverted residuals
    assert by_name["block_2_add"].branch_layers[0] == "block_2_expand"
    assert "DepthwiseConv2D" not in str(kl.metrics.layer_flops(mobilenetv2)["uncounted"])


def test_plain_network_has_no_blocks():
    vgg = kl.models.vgg16(input_shape=(32, 32, 3), classes=10)
    with pytest.warns(NoResidualBlocksWarning, match="no residual block"):
        blocks = kl.blocks.find_blocks(vgg)
    assert blocks == [] and "plain network" in blocks.message


def test_subclassed_model_has_no_blocks():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(4, 3, padding="same")

        def call(self, x):
            return x + self.conv(x)

    net = Net()
    net(keras.ops.zeros((1, 8, 8, 4)))
    with pytest.warns(NoResidualBlocksWarning, match="subclassed"):
        blocks = kl.blocks.find_blocks(net)
    assert blocks == [] and "Net" in blocks.message
    with pytest.raises(TypeError, match="functional"):
        kl.blocks.remove(net, [])
    with pytest.raises(TypeError, match="keras.Model"):
        kl.blocks.find_blocks("resnet")


def _toy(leak=False, broadcast=False):
    inputs = keras.Input((8, 8, 4), name="x")
    y = keras.layers.Conv2D(1 if broadcast else 4, 3, padding="same", name="c1")(inputs)
    z = keras.layers.Conv2D(4, 3, padding="same", name="c2")(y)
    out = keras.layers.Add(name="add")([inputs, keras.layers.ReLU(name="r")(z) if not broadcast else y])
    outputs = [out, keras.layers.GlobalAveragePooling2D(name="aux")(y)] if leak else out
    return keras.Model(inputs, outputs)


def test_branch_used_outside_block_is_not_removable():
    blocks = kl.blocks.find_blocks(_toy(leak=True))
    assert len(blocks) == 1 and not blocks[0].removable
    assert "used outside the block, by aux" in blocks[0].reason


def test_branch_with_other_shape_is_not_removable():
    blocks = kl.blocks.find_blocks(_toy(broadcast=True))
    assert len(blocks) == 1 and not blocks[0].removable
    assert "(8, 8, 1) differs from the shortcut's (8, 8, 4)" in blocks[0].reason


def test_find_blocks_does_not_modify_model(resnet14):
    before = resnet14.get_config()
    kl.blocks.find_blocks(resnet14)
    assert resnet14.get_config() == before


def test_sequential_model_has_no_blocks():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4), keras.layers.Dense(2)])
    with pytest.warns(NoResidualBlocksWarning, match="Sequential model, a plain chain"):
        assert kl.blocks.find_blocks(model) == []
    assert kl.blocks.find_blocks(model, warn=False).message.startswith("'sequential")


def test_operation_nodes_are_residual_joins(op_model):
    blocks = kl.blocks.find_blocks(op_model)
    assert blocks.names() == ["add", "add_1", "add_3", "layer_add"] and len(blocks.removable) == 4
    by_name = {b.name: b for b in blocks}
    assert by_name["add"].branch_layers == ("plain_fc1", "plain_fc2") and by_name["add"].shortcut_input == "stem"
    # the scale belongs to the branch; the hard-sigmoid's x + 3.0 is a branch node, not a join
    assert by_name["add_1"].branch_layers[-1] == "multiply" and by_name["add_1"].branch_output == "multiply"
    assert by_name["add_3"].branch_layers == ("gated_fc1", "gated_fc2", "add_2", "gated_relu6", "multiply_1",
                                              "multiply_2")
    assert by_name["add_3"].shortcut_input == "add_1"
    # parameters: two Dense 8 -> 8 per branch; FLOPs: the operation nodes count one per element
    assert all(b.params == 2 * (8 * 8 + 8) for b in blocks)
    assert by_name["add_1"].flops == by_name["add"].flops + 8  # + 8 multiplies by 0.1


def test_blocks_of_nested_models_are_named_with_their_path(nested_model):
    blocks = kl.blocks.find_blocks(nested_model)
    assert blocks.names() == ["encoder/add", "encoder/enc2_add", "top_add"]
    assert [b.path for b in blocks] == [("encoder",), ("encoder",), ()]
    assert blocks[1].branch_layers == ("enc2_fc1", "enc2_fc2", "multiply") and blocks[1].shortcut_input == "add"
    assert blocks[2].shortcut_input == "encoder"
    assert "3 residual blocks (2 inside nested models), 3 removable" in blocks.message
    assert kl.blocks.discovery.holder(nested_model, blocks[0]) is nested_model.get_layer("encoder")
    assert [w.path for w in kl.blocks.discovery.branch_weights(nested_model, blocks[0])] == [
        "enc1_fc1/kernel", "enc1_fc1/bias", "enc1_fc2/kernel", "enc1_fc2/bias"]


def test_transformer_encoder_attention_and_mlp_residuals(encoder_model):
    blocks = kl.blocks.find_blocks(encoder_model)
    assert len(blocks) == 4 and len(blocks.removable) == 4
    attention, mlp = blocks[0], blocks[1]
    pre_norm = encoder_model.name == "pre_norm"
    assert attention.branch_layers == (("b1_ln1", "b1_attn") if pre_norm else ("b1_attn",))
    assert mlp.branch_layers[-2:] == ("b1_mlp_fc1", "b1_mlp_fc2")
    # post-norm: the next block reads the normalized sum
    assert blocks[2].shortcut_input == ("add_1" if pre_norm else "b1_ln2")


def test_zoo_vision_transformer():
    model = kl.models.get("vit_2", (28, 28, 1), 10, seed=0)
    blocks = kl.blocks.find_blocks(model)
    assert blocks.names() == ["block1_attn_add", "block1_mlp_add", "block2_attn_add", "block2_mlp_add"]
    assert all(b.removable for b in blocks)
    assert blocks[0].branch_layers == ("block1_ln1", "block1_attn")
    assert kl.metrics.layer_flops(model)["uncounted"] == []
