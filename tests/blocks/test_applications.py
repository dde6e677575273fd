"""Every keras.applications family with residual blocks: counts, exact removal, FLOPs, scoring.

Each application is built once for this module (weights=None, the smallest input it accepts, 10
classes); the expected counts are the ones stated in docs/blocks.md. NASNetMobile (771 layers) and
Xception (71-pixel minimum input) are the heaviest and marked slow, as is GraSP through MobileNetV3.
"""

import warnings

import keras
import numpy as np
import pytest

import keras_lottery as kl

A = keras.applications
_NO_PREPROCESSING = {"include_preprocessing": False}

# name: (builder, side, extra arguments, blocks, removable)
APPLICATIONS = {
    "ResNet50": (A.ResNet50, 32, {}, 16, 12),
    "ResNet50V2": (A.ResNet50V2, 32, {}, 16, 9),
    "MobileNetV2": (A.MobileNetV2, 32, {"alpha": 0.35}, 10, 10),
    "MobileNetV3Small": (A.MobileNetV3Small, 32, _NO_PREPROCESSING, 6, 6),
    "MobileNetV3Large": (A.MobileNetV3Large, 32, _NO_PREPROCESSING, 10, 10),
    "EfficientNetB0": (A.EfficientNetB0, 32, {}, 9, 9),
    "EfficientNetV2B0": (A.EfficientNetV2B0, 32, _NO_PREPROCESSING, 15, 15),
    "ConvNeXtTiny": (A.ConvNeXtTiny, 32, _NO_PREPROCESSING, 18, 18),
    "Xception": (A.Xception, 71, {}, 12, 8),
    "NASNetMobile": (A.NASNetMobile, 32, {}, 80, 12),
    "DenseNet121": (A.DenseNet121, 32, {}, 0, 0),
    "VGG16": (A.VGG16, 32, {}, 0, 0),
}
_SLOW = {"Xception", "NASNetMobile"}
_RESIDUAL = [pytest.param(n, marks=pytest.mark.slow) if n in _SLOW else n for n, v in APPLICATIONS.items() if v[3]]


@pytest.fixture(scope="module", params=[pytest.param(n, marks=pytest.mark.slow) if n in _SLOW else n
                                        for n in APPLICATIONS])
def app(request):
    """``(name, model, blocks, images)`` for one application, built once per module."""
    name = request.param
    builder, side, extra, _, _ = APPLICATIONS[name]
    keras.utils.set_random_seed(3)
    model = builder(weights=None, input_shape=(side, side, 3), classes=10, classifier_activation=None, **extra)
    for layer in model.layers:  # ConvNeXt starts its LayerScale at 1e-6: branches that barely count
        if type(layer).__name__ == "LayerScale":
            for w in layer.weights:
                w.assign(np.full(w.shape, 0.5, w.dtype))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kl.blocks.NoResidualBlocksWarning)
        blocks = kl.blocks.find_blocks(model)
    images = np.random.default_rng(4).uniform(0, 1, size=(2, side, side, 3)).astype("float32")
    return name, model, blocks, images


@pytest.fixture(scope="module")
def ticket(app):
    """The application without every other removable block (the first, third, ...)."""
    name, model, blocks, _ = app
    chosen = blocks.removable[::2]
    return (kl.blocks.remove(model, chosen) if chosen else None), [b.name for b in chosen]


def test_block_counts(app):
    name, model, blocks, _ = app
    _, _, _, expected, removable = APPLICATIONS[name]
    assert (len(blocks), len(blocks.removable)) == (expected, removable), blocks.message
    assert len(set(blocks.names())) == len(blocks)
    for block in blocks.removable:
        assert block.branch_layers and block.flops > 0 and block.reason == ""
    for block in blocks:
        if not block.removable:
            assert block.reason
    if not expected:
        assert "no residual block" in blocks.message


def test_removal_computes_the_original_with_those_branches_zero(app, ticket, zeroed_branch_copy):
    name, model, blocks, x = app
    new, removed = ticket
    if new is None:
        with pytest.raises(ValueError, match="no residual block"):
            kl.blocks.remove(model, ["anything"])
        return
    reference = zeroed_branch_copy(model, removed)
    expected = keras.ops.convert_to_numpy(reference(x, training=False))
    # untrained depthwise networks (Glorot-initialized depthwise kernels) output logits of 1e-11 or so:
    # compare relative to the output's scale
    scale = float(np.abs(expected).max())
    assert scale > 0
    np.testing.assert_allclose(new(x, training=False), expected, rtol=1e-4, atol=1e-5 * scale)
    # the removed branches did change the function: the comparison is not trivially true. Not for
    # Xception: its untrained middle-flow branches (three Glorot-initialized separable convolutions)
    # move the logits by 1e-4 of their scale, below what float32 separates from rounding.
    if name != "Xception":
        original = keras.ops.convert_to_numpy(model(x, training=False))
        assert np.abs(original - expected).max() > 1e-3 * scale
    assert len(kl.blocks.find_blocks(new, warn=False)) == len(blocks) - len(removed)


def test_costs(app, ticket):
    name, model, blocks, _ = app
    report = kl.metrics.layer_flops(model)
    assert report["uncounted"] == [], report["uncounted"]  # operation nodes (x + y, x * 0.5) have a rule
    assert kl.metrics.flops(model) == sum(report["layers"].values()) > 0
    new, removed = ticket
    if new is None:
        return
    gone = [b for b in blocks if b.name in removed]
    assert kl.metrics.flops(new) == kl.metrics.flops(model) - sum(b.flops for b in gone)
    assert kl.metrics.params(new) == kl.metrics.params(model) - sum(b.params for b in gone)
    assert kl.metrics.memory(new).activations < kl.metrics.memory(model).activations


def test_scoring(app):
    # L1 here: every removable block's weights are found through operation nodes and paths. GraSP's
    # double back-propagation is checked on MobileNetV3Small below and on the hand-written graphs
    # (tests/blocks/test_criteria.py); SynFlow is degenerate on ReLU6 networks (docs/blocks.md).
    name, model, blocks, x = app
    if not blocks.removable:
        with pytest.raises(ValueError, match="Nothing to score"):
            kl.blocks.score(model, criterion="l1")
        return
    scores = kl.blocks.score(model, criterion="l1")
    assert list(scores) == [b.name for b in blocks.removable]
    layers = {layer.name: layer for layer in model.layers}
    for block in blocks.removable:  # the branch's layers (operation nodes have no weights)
        weights = [w for n in block.branch_layers if n in layers for w in layers[n].trainable_weights]
        assert scores[block.name] == pytest.approx(sum(float(np.abs(w.numpy()).sum()) for w in weights))
        assert scores[block.name] > 0


@pytest.mark.slow  # GraSP's double back-propagation through MobileNetV3's graph: minutes on 2 busy cores
def test_grasp_on_mobilenetv3_hard_sigmoid_graph():
    keras.utils.set_random_seed(5)
    model = A.MobileNetV3Small(weights=None, input_shape=(32, 32, 3), classes=10, include_preprocessing=False,
                               classifier_activation=None)
    x = np.random.default_rng(6).uniform(size=(2, 32, 32, 3)).astype("float32")
    scores = kl.blocks.score(model, (x, np.array([1, 2])), criterion="grasp")
    assert len(scores) == 6 and all(np.isfinite(v) for v in scores.values()) and len(set(scores.values())) == 6
