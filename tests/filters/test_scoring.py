"""Filter scores: the per-channel sum over every weight a channel owns, for each criterion."""

import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.filters import find_groups, score, weight_saliency


def _owned_sum(model, saliency_of, group_channel):
    """Sum of a per-weight array over what channel 2 of group c3 owns, written out by hand."""
    c = group_channel
    c3, c5 = model.get_layer("c3"), model.get_layer("c5")
    return (saliency_of(c3, 0)[..., c].sum() + saliency_of(c3, 1)[c]  # c3's filter and bias
            + saliency_of(c5, 0)[:, :, c, :].sum())  # c5's kernel rows (offset 0 in the concatenation)


def test_l1_sums_every_owned_weight(tiny_graph):
    scores = score(tiny_graph, criterion="l1")
    expected = _owned_sum(tiny_graph, lambda layer, i: np.abs(layer.weights[i].numpy()), 2)
    assert scores["c3"][2] == pytest.approx(expected, rel=1e-6)
    assert set(scores) == {g.name for g in find_groups(tiny_graph).prunable}
    # a group tied through Add and a depthwise convolution owns batch-norm and depthwise weights too
    c1 = np.abs(tiny_graph.get_layer("c1").kernel.numpy()[..., 0]).sum() + abs(tiny_graph.get_layer("c1").bias.numpy()[0])
    assert scores["c1"][0] > c1 + np.abs(tiny_graph.get_layer("dw").kernel.numpy()[:, :, 0]).sum()


def test_snip_is_the_owned_sum_of_weight_saliencies(tiny_graph, images8):
    saliency = weight_saliency(tiny_graph, "snip", [images8])
    scores = score(tiny_graph, images8, criterion="snip")
    expected = _owned_sum(tiny_graph, lambda layer, i: saliency[(layer.name, i)], 2)
    assert scores["c3"][2] == pytest.approx(expected, rel=1e-6)
    assert all(np.all(v >= 0) for v in scores.values())


def test_grasp_is_sign_aware_and_synflow_data_free(tiny_graph, images8):
    grasp = score(tiny_graph, images8, criterion="grasp")
    assert all(np.all(np.isfinite(v)) for v in grasp.values())
    assert any(np.any(v < 0) for v in grasp.values()) and any(np.any(v > 0) for v in grasp.values())
    synflow = score(tiny_graph, criterion="synflow")
    assert all(np.all(v >= 0) for v in synflow.values())


def test_random_is_seeded_and_bad_calls_fail(tiny_graph):
    a, b = score(tiny_graph, criterion="random", seed=3), score(tiny_graph, criterion="random", seed=3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="needs data"):
        score(tiny_graph, criterion="snip")
    with pytest.raises(ValueError, match="Unknown filter criterion 'hrank'"):
        score(tiny_graph, criterion="hrank")
