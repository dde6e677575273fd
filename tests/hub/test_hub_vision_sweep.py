"""Regressions from scripts/hub_sweep.py on KerasHub's vision, multimodal and audio families: layers a built
model never called, layers renamed by a rebuild from their config, same-named layers in two nested towers,
``keras.ops.floor`` nodes, layers that cannot be traced on their node's shapes, and blocks applied inside a
container without ``num_layers`` (Swin's stages: removed from the stage's list in a copy)."""

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.blocks.discovery import operations
from tests.hub.conftest import SWEEP_BUILDERS, sweep_batch


def _build(name):
    build, kind = SWEEP_BUILDERS[name]
    return build(), sweep_batch(kind)


def _first(outputs):
    return np.asarray(keras.tree.flatten(outputs)[0])


def _skipped(model, block, x):
    """``model(x)``'s first output with the residual layer of ``block`` returning its input."""
    layer = operations(model, block, [block.add_layer])[0]
    object.__setattr__(layer, "call", lambda inputs, *args, **kwargs: inputs)
    try:
        return _first(model(x))
    finally:
        object.__delattr__(layer, "call")


def test_layers_a_built_model_never_called_are_not_masked():
    # EfficientNet makes its squeeze-and-excite layers at ratio 0 too, and never calls them: no weights
    model, x = _build("efficientnet_backbone")
    unbuilt = [layer.name for layer in model.get_layer("block1a_")._flatten_layers(include_self=False)
               if not layer.built]
    assert model.built and unbuilt == ["block1a_se_reduce", "block1a_se_expand"]
    pruned = kl.sparsity.prune_low_magnitude(model, pruning_schedule=kl.sparsity.ConstantSparsity(0.5, 0))
    assert np.all(np.isfinite(_first(pruned(x))))
    masked = kl.mask(model)
    kl.prune(masked, kl.GlobalMagnitude(0.5))
    assert abs(kl.Mask.from_model(masked).density - 0.5) < 0.02


def test_a_layer_renamed_by_its_rebuild_keeps_its_weights():
    # MobileNet's depthwise block "block_0_0" is rebuilt as "block_0_0_0": its weights follow it
    model, x = _build("mobilenet_backbone")
    blocks = kl.blocks.find_blocks(model, warn=False)
    assert blocks.names(removable_only=True) == ["block_0_0", "block_1_1"]
    same = kl.blocks.remove(model, [])
    np.testing.assert_allclose(_first(same(x)), _first(model(x)), atol=1e-6)
    slim = kl.blocks.remove(model, ["block_1_1"])
    np.testing.assert_allclose(_first(slim(x)), _skipped(model, blocks[1], x), atol=1e-5)


def test_a_renamed_layer_is_not_paired_with_a_removed_one():
    a, b = keras.Input((4,)), keras.Input((4,))
    source = keras.Model([a, b], [keras.layers.Dense(3, name="one")(a), keras.layers.Dense(3, name="two")(b)])
    target = keras.Model([a, b], [keras.layers.Dense(3, name="one_0")(a), keras.layers.Dense(3, name="two")(b)])
    kl.layers.copy_by_layer_name(source, target)
    np.testing.assert_array_equal(target.get_layer("one_0").get_weights()[0], source.get_layer("one").get_weights()[0])
    with pytest.raises(ValueError, match="'one_0' of the rebuilt .* has no namesake"):
        kl.layers.copy_by_layer_name(source, target, removed={"one"})


def test_same_named_layers_of_two_nested_towers_keep_their_own_weights():
    # CLIP's vision and text encoders each have a layer named "embedding", of other shapes
    model, x = _build("clip_backbone")
    blocks = kl.blocks.find_blocks(model, warn=False)
    assert blocks.names() == ["clip_vision_encoder/encoder_block_0", "clip_text_encoder/encoder_block_0"]
    slim = kl.blocks.remove(model, [blocks[0]])
    assert len(kl.blocks.find_blocks(slim, warn=False)) == 1
    np.testing.assert_allclose(_first(slim(x)), _skipped(model, blocks[0], x), atol=1e-5)


def test_floor_operations_are_counted():
    x = keras.Input((4,))
    model = keras.Model(x, keras.layers.Dense(2)(keras.ops.floor(x) + keras.ops.ceil(x) + keras.ops.round(x)))
    report = kl.metrics.layer_flops(model)
    assert report["uncounted"] == []
    assert sum(v for k, v in report["layers"].items() if not k.startswith("dense")) == 3 * 4 + 2 * 4


def test_layers_that_cannot_be_traced_are_named():
    # KerasHub 0.32's Moonshine: its rotary embedding's symbolic output is rank 1, the real one rank 2
    model, x = _build("moonshine_backbone")
    assert np.all(np.isfinite(_first(model(x))))
    blocks = kl.blocks.find_blocks(model, warn=False)
    assert len(blocks) == 0 and "could not be traced on their node's shapes" in blocks.message
    assert "encoder_block_0" in blocks.message and "decoder_block_0" in blocks.message


def test_a_block_inside_a_swin_stage_is_removed_from_its_list(tmp_path):
    # Swin applies its blocks inside each stage's call and has no num_layers: the stage's list is shortened in
    # a copy of the backbone, of its class
    model, x = _build("swin_backbone")
    blocks = kl.blocks.find_blocks(model, warn=False)
    assert blocks.names(removable_only=True) == ["stage_0/blocks_0", "stage_0/blocks_1", "stage_1/blocks_0"]
    slim = kl.blocks.remove(model, ["stage_0/blocks_1"])
    assert type(slim) is type(model) and slim.removed_blocks == ("stage_0/blocks_1",)
    assert [layer.name for layer in slim.get_layer("stage_0").blocks] == ["blocks_0"]
    assert slim.count_params() == model.count_params() - blocks[1].params
    np.testing.assert_allclose(_first(slim(x)), _skipped(model, blocks[1], x), atol=1e-5)
    assert kl.blocks.find_blocks(slim, warn=False).names() == ["stage_0/blocks_0", "stage_1/blocks_0"]
    # a second removal from the slim model
    slimmer = kl.blocks.remove(slim, ["stage_1/blocks_0"])
    assert type(slimmer) is type(model) and len(slimmer.get_layer("stage_1").blocks) == 0
    # its config (depths=(2, 1)) would rebuild the original: saving with the config is refused in one line,
    # the weights save and the SavedModel export works
    with pytest.raises(ValueError, match="cannot be saved with its config"):
        slim.save(str(tmp_path / "slim.keras"))
    slim.save_weights(str(tmp_path / "slim.weights.h5"))
    result = kl.export.for_serving(slim, str(tmp_path / "serving"), dense_model=model, measure_dense=False)
    assert result.card["blocks_removed"] == ["stage_0/blocks_1"]


def test_blocks_two_containers_deep_are_found_and_removed():
    # HGNetV2: the encoder applies its stages, each stage its blocks; a stage's first block is not residual
    model, x = _build("hgnetv2_backbone")
    blocks = kl.blocks.find_blocks(model, warn=False)
    assert blocks.names() == ["encoder/encoder_stage_1/encoder_stage_1_block_1"]
    assert blocks[0].container == "encoder/encoder_stage_1"
    slim = kl.blocks.remove(model, blocks)
    assert type(slim) is type(model) and slim.count_params() == model.count_params() - blocks[0].params
    encoder = slim.layers[-1]  # the rebuild names it "hg_net_v2_backbone_encoder" (built with name=None)
    assert len(encoder.stages_list[1].blocks_list) == 1
    np.testing.assert_allclose(_first(slim(x)), _skipped(model, blocks[0], x), atol=1e-5)
    assert len(kl.blocks.find_blocks(slim, warn=False)) == 0


def test_a_layer_whose_config_does_not_rebuild_it_is_named():
    # KerasHub 0.32's MiT: HierarchicalTransformerEncoder.get_config has mlp and drop_prop
    model, _ = _build("mit_backbone")
    blocks = kl.blocks.find_blocks(model, warn=False)
    assert blocks.names(removable_only=True) == ["hierarchical_encoder_0_0", "hierarchical_encoder_0_1"]
    with pytest.raises(ValueError, match="could not be rebuilt without .*HierarchicalTransformerEncoder"):
        kl.blocks.remove(model, [blocks[0]])
