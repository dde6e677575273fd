"""Regressions from scripts/hub_sweep.py: KerasHub architectures outside BUILDERS that broke depth pruning or
FLOPs counting, each for a general reason (a keyword call, a rename on rebuild, two stacks sized by one
``num_layers``, ops without a FLOPs rule)."""

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery import op_flops, tracing
from keras_lottery.blocks import rewrite
from keras_lottery.blocks.discovery import operations
from tests.hub.conftest import SWEEP_BUILDERS, sweep_batch


def _build(name):
    build, kind = SWEEP_BUILDERS[name]
    return build(), sweep_batch(kind)


def _first(outputs):
    return np.asarray(keras.tree.flatten(outputs)[0])


def _plain_rewrite(model, names):
    """The graph of ``model`` rebuilt with ``y = x`` at the blocks ``names``, the weights copied by layer name."""
    blocks = [b for b in kl.blocks.find_blocks(model, warn=False) if b.name in names]
    plain = keras.Model.from_config(rewrite.removed_config(model, blocks))
    return kl.layers.copy_by_layer_name(model, plain)


def test_layers_called_by_keyword_are_blocks():
    # Falcon calls layer(inputs=x, decoder_padding_mask=m): sorted keywords put the mask first
    model, x = _build("falcon_backbone")
    blocks = kl.blocks.find_blocks(model, warn=False)
    assert blocks.names(removable_only=True) == ["transformer_layer_0", "transformer_layer_1"]
    assert blocks[1].input_tensor[0] == "transformer_layer_0"  # the residual stream, not the padding mask
    slim = kl.blocks.remove(model, ["transformer_layer_0"])
    assert type(slim) is type(model) and slim.num_layers == 1
    np.testing.assert_allclose(_first(slim(x)), _first(_plain_rewrite(model, ["transformer_layer_0"])(x)),
                               atol=1e-5)
    scores = kl.blocks.score(model, (x, None), criterion="block_influence")
    assert set(scores) == set(blocks.names()) and all(0 < v <= 2 for v in scores.values())


def test_a_users_layer_called_by_keyword_is_a_block():
    class Residual(keras.layers.Layer):
        def build(self, shape):
            self.dense = keras.layers.Dense(shape[-1])

        def call(self, inputs, attention_mask=None):  # "attention_mask" sorts before "inputs"
            return inputs + self.dense(inputs) * keras.ops.expand_dims(attention_mask, -1)

    x, mask = keras.Input((4, 8)), keras.Input((4,))
    h = keras.layers.Dense(8, name="stem")(x)
    y = keras.layers.Dense(3, name="head")(Residual(name="res")(inputs=h, attention_mask=mask))
    model = keras.Model([x, mask], y)
    assert kl.blocks.find_blocks(model, warn=False).names(removable_only=True) == ["res"]
    assert tracing.first_input(model.get_layer("res"), (), {"attention_mask": mask, "inputs": h}) is h


def test_a_backbone_called_by_keyword_is_probed():
    # Gemma3CausalLM calls backbone(inputs=...): the activations of its blocks are read through that call
    model, x = _build("gemma3_causal_lm")
    y = np.roll(x["token_ids"], -1, axis=1)
    scores = kl.blocks.score(model, (x, y), criterion="block_influence")
    assert len(scores) == 2 and all(np.isfinite(list(scores.values())))
    slim, removed = kl.blocks.depth.prune(model, (x, y), 1, criterion="angular")
    assert type(slim) is type(model) and slim.backbone.num_layers == 1 and len(removed) == 1


def test_a_backbone_renamed_by_its_rebuild_is_resized():
    # DINOV2 built with name=None names its layers "encoder", ...; its rebuild "dinov2_backbone_encoder", ...
    model, x = _build("dinov2_backbone")
    blocks = kl.blocks.find_blocks(model, warn=False)
    slim = kl.blocks.remove(model, [blocks[0].name])
    assert type(slim) is type(model) and slim.num_layers == 1
    assert slim.count_params() == model.count_params() - blocks[0].params
    # the kept layer and every other weight are the dense model's
    kept = operations(model, blocks[1], [blocks[1].add_layer])[0]
    slim_block = kl.blocks.find_blocks(slim, warn=False)[0]
    renumbered = operations(slim, slim_block, [slim_block.add_layer])[0]
    assert len(kept.weights) == len(renumbered.weights) > 0
    for a, b in zip(kept.weights, renumbered.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    np.testing.assert_array_equal(
        model.get_layer("embeddings").get_weights()[0], slim.get_layer(f"{slim.name}_embeddings").get_weights()[0])
    assert np.all(np.isfinite(_first(slim(x))))


def test_encoder_decoder_backbone_is_not_resized():
    # BART's num_layers sizes both stacks: removing an encoder layer must keep both decoder layers
    model, x = _build("bart_backbone")
    names = kl.blocks.find_blocks(model, warn=False).names(removable_only=True)
    assert len(names) == 4
    slim = kl.blocks.remove(model, ["transformer_encoder_layer_1"])
    kept = kl.blocks.find_blocks(slim, warn=False).names()
    assert kept == [n for n in names if n != "transformer_encoder_layer_1"]
    np.testing.assert_allclose(_first(slim(x)), _first(_plain_rewrite(model, ["transformer_encoder_layer_1"])(x)),
                               atol=1e-5)


@pytest.mark.parametrize("name", ["mixtral_backbone", "fnet_backbone"])
def test_moe_router_and_fourier_mixing_are_counted(name):
    model, _ = _build(name)
    report = kl.metrics.layer_flops(model)
    assert report["uncounted"] == [] and sum(report["layers"].values()) > 0


def test_fft_flops():
    # 5 N log2 N per transform: 3 transforms of 8 x 16 = 128 points
    assert op_flops._fft_flops((3, 8, 16), 2) == 3 * 5 * 128 * 7
    assert op_flops._fft_flops((4, 1), 1) == 0
