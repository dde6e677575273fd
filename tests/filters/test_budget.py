"""Budget matching: what a layer ticket saves, and the global ranking under per-group minimums."""

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
