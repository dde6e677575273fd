"""FLOPs of KerasHub transformer layers (counted from their traced ops) and of depth-pruned backbones."""

import keras
import pytest

import keras_lottery as kl
from tests.hub.conftest import BUILDERS, keras_hub


def _dominant(t, d, ff, heads):
    """Hand count of a transformer layer on ``t`` positions: q, k, v and output projections with biases,
    attention scores and weighted sum, one FLOP per score for the softmax, and the two-layer MLP."""
    projections = 2 * 4 * t * d * d + 4 * t * d
    attention = 2 * 2 * t * t * d + heads * t * t
    mlp = 2 * 2 * t * d * ff + t * ff + t * d
    return projections + attention + mlp


def _extras(t, d, ff, heads):
    """Bound of the element-wise work the hand count leaves out: two layer norms (at most 10 FLOPs per
    element each: mean, centring, square, variance, epsilon, rsqrt, scale, shift), two residual adds, the
    score scaling and masking (3 per score), the MLP activation (at most 10 per element: GELU)."""
    return 2 * 10 * t * d + 2 * t * d + 3 * heads * t * t + 10 * t * ff


def test_transformer_encoder_by_hand():
    t, d, ff, heads = 8, 8, 16, 2
    inputs = keras.Input((t, d))
    outputs = keras_hub.layers.TransformerEncoder(intermediate_dim=ff, num_heads=heads, name="encoder")(inputs)
    report = kl.metrics.layer_flops(keras.Model(inputs, outputs))
    assert report["uncounted"] == []
    dominant = _dominant(t, d, ff, heads)
    assert dominant < report["layers"]["encoder"] <= dominant + _extras(t, d, ff, heads)


def test_gpt2_layers_by_hand():
    d, ff, heads = 8, 16, 2
    model = keras_hub.models.GPT2Backbone(vocabulary_size=50, num_layers=2, num_heads=heads, hidden_dim=d,
                                          intermediate_dim=ff, max_sequence_length=8)
    report = kl.metrics.layer_flops(model)
    assert report["uncounted"] == []
    first, second = report["layers"]["transformer_layer_0"], report["layers"]["transformer_layer_1"]
    # the sequence dimension is None: counted as one position, as every None dimension is
    dominant = _dominant(1, d, ff, heads)
    assert first == second and dominant < first <= dominant + _extras(1, d, ff, heads)


def test_transformer_macs_by_hand():
    # q, k, v and output projections, attention scores and weighted sum, the two-layer MLP: nothing else
    t, d, ff = 8, 8, 16
    inputs = keras.Input((t, d))
    outputs = keras_hub.layers.TransformerEncoder(intermediate_dim=ff, num_heads=2)(inputs)
    assert kl.metrics.macs(keras.Model(inputs, outputs)) == 4 * t * d * d + 2 * t * t * d + 2 * t * d * ff


def test_depth_pruning_removes_the_layers_macs():
    model = BUILDERS["gpt2_backbone"]()
    layer_macs = kl.metrics.macs(model) - kl.metrics.macs(kl.blocks.remove(model, ["transformer_layer_1"]))
    d, ff = model.hidden_dim, model.get_layer("transformer_layer_1").intermediate_dim
    assert layer_macs == 4 * d * d + 2 * d + 2 * d * ff  # one position: the sequence dimension is None


@pytest.mark.parametrize("name, removed", [("gpt2_backbone", ["transformer_layer_1"]),
                                           ("gpt2_causal_lm", ["gpt2_backbone/transformer_layer_0"])])
def test_depth_pruning_removes_the_layers_flops(name, removed):
    model = BUILDERS[name]()
    blocks = [b for b in kl.blocks.find_blocks(model, warn=False) if b.name in removed]
    assert len(blocks) == len(removed) and all(b.flops > 0 for b in blocks)
    backbone = model if name == "gpt2_backbone" else model.get_layer("gpt2_backbone")
    per_layer = kl.metrics.layer_flops(backbone)["layers"]
    assert [b.flops for b in blocks] == [per_layer[n.split("/")[-1]] for n in removed]
    slim = kl.blocks.remove(model, removed)
    assert kl.metrics.flops(model) - kl.metrics.flops(slim) == sum(b.flops for b in blocks)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_nothing_uncounted(name):
    model = BUILDERS[name]()
    report = kl.metrics.layer_flops(model)
    flops = sum(report["layers"].values())
    assert report["uncounted"] == [] and flops > 0
    # multiply-adds are most of a transformer's work, never more than half its FLOPs
    assert 0.25 * flops < 2 * kl.metrics.macs(model) < flops


def test_vit_blocks_flops_are_what_removing_them_saves():
    model = BUILDERS["vit_backbone"]()
    block = kl.blocks.find_blocks(model).removable[0]
    assert block.flops > 0
    assert kl.metrics.flops(model) - kl.metrics.flops(kl.blocks.remove(model, [block.name])) == block.flops
