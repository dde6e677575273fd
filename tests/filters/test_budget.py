"""Budget matching: what a layer ticket saves, and the global ranking under per-group minimums."""

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.filters import describe, find_groups, layer_ticket_budget, select


def test_layer_ticket_budget_counts_the_removed_blocks():
    dense = kl.models.resnet_cifar(8 + 6, input_shape=(8, 8, 3), classes=4, width=4)
    ticket = kl.blocks.remove(dense, ["stage1_block2_add"])
    assert layer_ticket_budget(dense, ticket, "filters") == 2 * 4  # the branch's two 4-filter convolutions
    assert layer_ticket_budget(dense, ticket, "params") == kl.metrics.params(dense) - kl.metrics.params(ticket)
    assert layer_ticket_budget(dense, ticket, "flops") == kl.metrics.flops(dense) - kl.metrics.flops(ticket)
    with pytest.raises(ValueError, match="match must be one of filters, params, flops"):
        layer_ticket_budget(dense, ticket, "layers")


def test_select_ranks_globally_and_keeps_a_minimum(tiny_graph):
    groups = find_groups(tiny_graph).prunable
    scores = {g.name: np.arange(g.size, dtype=float) + (0.5 if g.name == "c3" else 0) for g in groups}
    chosen = select(groups, scores, amount=3, match="filters")
    # c1 has 2 filters per channel: its channel 0 (score 0) counts 2
    assert chosen == {"c1": [0], "c4": [0]}  # then c4's channel 0 (c3's scores are all higher)
    assert describe(chosen) == "c1:1 c4:1"
    by_name = {g.name: g for g in groups}
    everything = select(groups, scores, amount=sum((g.size - 2) * g.filters_per_channel for g in groups),
                        match="filters", min_channels=2)
    assert all(by_name[n].size - len(v) == 2 for n, v in everything.items())  # no group below its minimum
    with pytest.raises(ValueError, match="Cannot remove"):
        select(groups, scores, amount=10 ** 6, match="filters", min_fraction=0.5)


def test_channel_multiple_keeps_a_multiple_of_channels_in_every_group():
    dense = kl.models.resnet_cifar(8 + 6, input_shape=(8, 8, 3), classes=4, width=12)
    groups = find_groups(dense).prunable
    rng = np.random.default_rng(0)
    scores = {g.name: rng.normal(size=g.size) for g in groups}
    amount = 0.3 * sum(g.flops_per_channel * g.size for g in groups)
    chosen = select(groups, scores, amount=amount, match="flops", min_fraction=0.25, channel_multiple=4)
    by_name = {g.name: g for g in groups}
    assert chosen and all((by_name[n].size - len(v)) % 4 == 0 for n, v in chosen.items())
    for name, removed in chosen.items():  # a group loses its lowest-scored channels
        kept = np.setdiff1d(np.arange(by_name[name].size), removed)
        assert scores[name][removed].max() <= scores[name][kept].min()
    assert sum(len(v) * by_name[n].flops_per_channel for n, v in chosen.items()) >= amount
    slim = kl.filters.remove_filters(dense, chosen)
    assert all(layer.filters % 4 == 0 for layer in slim.layers if isinstance(layer, keras.layers.Conv2D))
    assert select(groups, scores, amount, "flops", min_fraction=0.25, channel_multiple=1) == \
        select(groups, scores, amount, "flops", min_fraction=0.25)  # 1: single channels, as before


def test_channel_multiple_with_a_size_that_is_not_a_multiple_removes_the_remainder_first(tiny_graph):
    groups = find_groups(tiny_graph).prunable
    scores = {g.name: np.arange(g.size, dtype=float)[::-1] for g in groups}
    by_name = {g.name: g for g in groups}
    name = next(g.name for g in groups if g.size % 3)
    chosen = select(groups, {name: scores[name]}, amount=1, match="filters", channel_multiple=3)
    assert len(chosen[name]) == by_name[name].size % 3  # the lowest channels, so that a multiple of 3 stays
    assert chosen[name] == sorted(range(by_name[name].size)[-(by_name[name].size % 3):])
    for bad in (0, 2.0, True, -4):
        with pytest.raises(ValueError, match="channel_multiple must be a positive integer"):
            select(groups, scores, amount=1, channel_multiple=bad)
