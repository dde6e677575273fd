"""Filter tickets: channel groups, filter scores at initialization, removal and budget matching.

    groups = kl.filters.find_groups(model)                      # GroupList of ChannelGroup, .summary()
    scores = kl.filters.score(model, data, criterion="snip")    # {group name: per-channel scores}
    selection = kl.filters.select(groups, scores, amount=256, match="filters")
    ticket = kl.filters.remove_filters(model, selection)         # a physically smaller functional model

See docs/filter_tickets.md.
"""

from keras_lottery.filters.budget import MATCHES, describe, layer_ticket_budget, matched_ticket, select
from keras_lottery.filters.groups import ChannelGroup, GroupList, WeightSlice, find_groups
from keras_lottery.filters.removal import check_selection, remove_filters, zero_filters, zeroed_weights
from keras_lottery.filters.scoring import CRITERIA, channel_scores, score, weight_saliency

__all__ = ["CRITERIA", "MATCHES", "ChannelGroup", "GroupList", "WeightSlice", "channel_scores", "check_selection",
           "describe", "find_groups", "layer_ticket_budget", "matched_ticket", "remove_filters", "score", "select", "weight_saliency",
           "zero_filters", "zeroed_weights"]
