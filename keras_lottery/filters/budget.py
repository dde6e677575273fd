"""Budget matching: which channels a filter ticket removes to match a layer ticket's savings.

:func:`layer_ticket_budget` measures what a layer ticket frees: filters (output channels of the
convolution and dense layers it drops), parameters or FLOPs. :func:`select` then ranks every channel of
every prunable group together by score (low first, one global ranking as in the structured lottery
papers) and removes channels in that order until the amount is reached, skipping any group that
would keep fewer than ``max(min_channels, ceil(min_fraction * size))`` channels (no layer goes to
zero). The cost of a channel is its group's ``filters_per_channel``, ``params_per_channel`` or
``flops_per_channel``: counted with no other channel removed, so after removals in neighbouring
groups the true saving can differ slightly (the slim model's own counts are what tables report).
"""

from __future__ import annotations

import math

import numpy as np

from keras_lottery import metrics
from keras_lottery.filters.groups import find_groups
from keras_lottery.filters.removal import remove_filters

__all__ = ["MATCHES", "describe", "layer_ticket_budget", "matched_ticket", "select"]

MATCHES = ("filters", "params", "flops")
_COST = {"filters": "filters_per_channel", "params": "params_per_channel", "flops": "flops_per_channel"}


def _check_match(match):
    if match not in MATCHES:
        raise ValueError(f"match must be one of {', '.join(MATCHES)}, got {match!r}.")


def _filters(layer):
    return int(getattr(layer, "filters", None) or getattr(layer, "units", None) or 0)


def layer_ticket_budget(dense, ticket, match="filters"):
    """What the layer ``ticket`` of ``dense`` saves: filters, parameters or FLOPs (``match``).

    Filters are the output channels of the convolution and dense layers of ``dense`` that ``ticket``
    no longer has (layers are matched by name, as :func:`keras_lottery.blocks.remove` keeps them).
    """
    _check_match(match)
    if match == "params":
        return metrics.params(dense) - metrics.params(ticket)
    if match == "flops":
        return metrics.flops(dense) - metrics.flops(ticket)
    kept = {layer.name for layer in ticket.layers}
    return sum(_filters(layer) for layer in dense.layers if layer.name not in kept)


def _chunks(values, multiple):
    """A group's channels, lowest score first, cut into the pieces :func:`select` removes at once.

    Every piece has ``multiple`` channels, except a first one of ``size % multiple`` channels when the
    size is not a multiple: whatever is removed, the group keeps a multiple of ``multiple``.
    """
    order = np.argsort(values, kind="stable")  # equal scores: the lower channel index first
    first = len(values) % multiple
    bounds = ([first] if first else []) + list(range(first + multiple, len(values) + 1, multiple))
    return [order[start:end] for start, end in zip([0] + bounds[:-1], bounds)]


def select(groups, scores, amount, match="filters", min_channels=1, min_fraction=0.0, channel_multiple=1):
    """Channels to remove, lowest score first across all groups, until ``amount`` is reached.

    Args:
        groups: the :class:`~keras_lottery.filters.groups.ChannelGroup` objects (e.g. ``find_groups(m).prunable``).
        scores: ``{group name: per-channel scores}`` (:func:`keras_lottery.filters.score`); groups without
            scores are left whole.
        amount: filters, parameters or FLOPs to remove (``match``), e.g. :func:`layer_ticket_budget`.
        match: ``"filters"``, ``"params"`` or ``"flops"``.
        min_channels, min_fraction: every group keeps at least ``max(min_channels, ceil(min_fraction *
            size))`` channels.
        channel_multiple: every group keeps a multiple of this many channels (a group whose size is not
            a multiple first loses its ``size % channel_multiple`` lowest channels). Channels then go in
            pieces of that many (a group's lowest first), ranked across groups by their mean score. Hardware
            kernels vectorise channel counts that are multiples of 8 or 16 best; 1 removes single
            channels.

    Returns:
        ``{group name: sorted channel indices}`` (groups with none removed are left out), ready for
        :func:`~keras_lottery.filters.remove_filters`. Stops at the first piece that reaches
        ``amount`` (so it may exceed it by less than one piece's cost); raises ``ValueError`` if the
        whole model cannot free ``amount`` under the minimums.
    """
    _check_match(match)
    if min_channels < 1 or not 0.0 <= min_fraction < 1.0:
        raise ValueError(f"min_channels must be >= 1 and min_fraction in [0, 1); got {min_channels}, {min_fraction}.")
    if (isinstance(channel_multiple, bool) or not isinstance(channel_multiple, (int, np.integer))
            or channel_multiple < 1):
        raise ValueError(f"channel_multiple must be a positive integer; got {channel_multiple!r}.")
    by_name = {g.name: g for g in groups}
    unknown = sorted(set(scores) - set(by_name))
    if unknown:
        raise ValueError(f"scores name groups that are not given: {unknown[:5]}.")
    ranked = []
    for order, (name, values) in enumerate(scores.items()):
        values = np.asarray(values, np.float64)
        if values.shape != (by_name[name].size,) or np.isnan(values).any():
            raise ValueError(f"scores of group {name!r} must be {by_name[name].size} numbers (no NaN).")
        ranked += [(float(np.mean(values[piece])), order, i, name, piece)
                   for i, piece in enumerate(_chunks(values, int(channel_multiple)))]
    ranked.sort(key=lambda entry: entry[:3])
    floors = {n: max(min_channels, math.ceil(min_fraction * by_name[n].size)) for n in scores}
    left = {n: by_name[n].size for n in scores}
    chosen, total = {}, 0.0
    for _, _, _, name, piece in ranked:
        if total >= amount:
            break
        if left[name] - len(piece) < floors[name]:
            continue
        left[name] -= len(piece)
        chosen.setdefault(name, []).extend(int(c) for c in piece)
        total += len(piece) * getattr(by_name[name], _COST[match])
    if total < amount:
        pieces = f" (in pieces of {channel_multiple})" if channel_multiple > 1 else ""
        raise ValueError(f"Cannot remove {amount:,} {match} under the minimum of channels kept per group{pieces}: "
                         f"at most {total:,.0f}.")
    return {name: sorted(channels) for name, channels in chosen.items()}


def matched_ticket(model, layer_ticket, scores, match="filters", min_channels=1, min_fraction=0.0, name=None,
                   channel_multiple=1):
    """The filter ticket of ``model`` that saves what ``layer_ticket`` saves (``match``), channels chosen by ``scores``.

    Returns ``(ticket, selection)``: the slim model of :func:`~keras_lottery.filters.remove_filters` and
    the ``{group name: channel indices}`` removed (see :func:`layer_ticket_budget` and :func:`select`,
    which takes ``min_channels``, ``min_fraction`` and ``channel_multiple``).
    """
    groups = find_groups(model)
    amount = layer_ticket_budget(model, layer_ticket, match)
    selection = select(groups.prunable, scores, amount, match=match, min_channels=min_channels,
                       min_fraction=min_fraction, channel_multiple=channel_multiple)
    return remove_filters(model, selection, name=name), selection


def describe(selection):
    """A one-line summary of a selection: ``"group:count group:count ..."`` in the selection's order."""
    return " ".join(f"{name}:{len(channels)}" for name, channels in selection.items())
