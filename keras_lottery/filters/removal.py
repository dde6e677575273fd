"""Remove channels (filters) from a functional model: a physically smaller model, weights sliced.

A *selection* is ``{group name: channel indices}`` (group names from
:func:`~keras_lottery.filters.groups.find_groups`). :func:`remove_filters` rewrites the configuration
(``filters`` / ``units`` of each source layer, a ``Reshape`` target that carries the channels), rebuilds
the model and copies every weight with the removed channels' slices cut out. :func:`zeroed_weights` gives
its masked twin: the same model with the removed channels forced to zero where they are made (filters,
biases, batch-norm scale and shift, depthwise kernels), which computes exactly the slim model's
function whenever every member of the group maps 0 to 0 (ReLU, swish, pooling, ``Add``; a sigmoid
gate multiplied by the zeroed channel also gives 0).
"""

from __future__ import annotations

import copy

import keras
import numpy as np

from keras_lottery import compat
from keras_lottery.inline import has_nested_models, inlined
from keras_lottery.filters.groups import check_model, find_groups

__all__ = ["check_selection", "remove_filters", "zero_filters", "zeroed_weights"]


def check_selection(model, selection, groups=None):
    """``selection`` as ``{group name: sorted int array}``, checked against ``model``'s groups.

    Raises ``TypeError`` for a selection that is not a mapping and ``ValueError`` (one line) for an
    unknown or non-prunable group, an index out of range or repeated, or every channel of a group.
    Groups with no index are dropped.
    """
    if not isinstance(selection, dict):
        raise TypeError(f"selection must be a dict {{group name: channel indices}}, got {type(selection).__name__!r}.")
    groups = groups if groups is not None else find_groups(model)
    by_name = groups.by_name()
    out = {}
    for name, channels in selection.items():
        if name not in by_name:
            names = [g.name for g in groups.prunable]
            shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
            raise ValueError(f"{model.name!r} has no channel group named {name!r}; prunable groups: {shown or 'none'}.")
        group = by_name[name]
        if not group.prunable:
            raise ValueError(f"Channel group {name!r} of {model.name!r} cannot be pruned: {group.reason}.")
        try:
            array = np.asarray(list(np.atleast_1d(channels)), dtype=np.int64)
        except (TypeError, ValueError):
            raise ValueError(f"Channels of group {name!r} must be integers, got {channels!r}.") from None
        if array.size == 0:
            continue
        if array.min() < 0 or array.max() >= group.size:
            raise ValueError(f"Group {name!r} has {group.size} channels (0..{group.size - 1}); got index "
                             f"{int(array.min() if array.min() < 0 else array.max())}.")
        if len(set(array.tolist())) != array.size:
            raise ValueError(f"Group {name!r}: a channel index is listed twice.")
        if array.size >= group.size:
            raise ValueError(f"Removing all {group.size} channels of group {name!r} would cut the network; keep at "
                             f"least one.")
        out[name] = np.sort(array)
    return out


def _cuts(groups, selection):
    """``{(layer, weight index): {axis: removed indices}}`` for the selected channels."""
    by_name = groups.by_name()
    cuts = {}
    for name, channels in selection.items():
        for s in by_name[name].slices:
            axes = cuts.setdefault((s.layer, s.weight), {})
            axes[s.axis] = np.union1d(axes.get(s.axis, np.zeros(0, np.int64)), s.indices(channels))
    return cuts


def _edit(layer_config, key, size):
    inner = layer_config["config"]
    if key == "target_shape":
        inner[key] = list(inner[key])[:-1] + [size]
    else:
        inner[key] = size


def remove_filters(model, selection, name=None, custom_objects=None):
    """A new functional model without the ``selection``'s channels (physically smaller; ``model`` untouched).

    A functional subclass (KerasHub's ``ResNetBackbone``) gives a plain functional model of the same
    layers; a model with nested functional models (an ``ImageClassifier``) one plain graph with the
    nested layers inlined (:func:`keras_lottery.inline.inlined`).

    Args:
        model: a functional ``keras.Model`` (Sequential and subclassed models: ``TypeError``).
        selection: ``{group name: channel indices}`` (see :func:`check_selection` for what is refused,
            before any work).
        name: the new model's name (default: the original's).
        custom_objects: passed to ``keras.Model.from_config``.

    Returns:
        An uncompiled model with the same layer names, inputs and outputs, each layer's weights
        (batch-norm statistics included) those of the original with the removed slices cut out.
    """
    check_model(model, "remove_filters")
    if has_nested_models(model):  # a task model's backbone: the slim model is one plain graph
        model = inlined(model)
    groups = find_groups(model)
    selection = check_selection(model, selection, groups)
    by_name = groups.by_name()
    config = copy.deepcopy(compat.graph_config(model)[0])  # a functional subclass (ResNetBackbone) as a plain graph
    layer_configs = {lc["name"]: lc for lc in config["layers"]}
    for group_name, channels in selection.items():
        group = by_name[group_name]
        for layer_name, key in group.config_edits:
            _edit(layer_configs[layer_name], key, group.size - len(channels))
    for lc in config["layers"]:
        lc.pop("build_config", None)  # shapes changed: each layer is built by its call on the new inputs
    if name is not None:
        config["name"] = name
    slim = keras.Model.from_config(config, custom_objects=custom_objects)
    cuts = _cuts(groups, selection)
    for layer in slim.layers:
        if not layer.weights:
            continue
        values = [keras.ops.convert_to_numpy(w.value) for w in model.get_layer(layer.name).weights]
        for index in range(len(values)):
            for axis, removed in cuts.get((layer.name, index), {}).items():
                values[index] = np.delete(values[index], removed, axis=axis)
        layer.set_weights(values)
    return slim


def zeroed_weights(model, selection, groups=None):
    """``model.get_weights()`` with the ``selection`` channels zero where they are made (``model`` untouched).

    The source filters and biases, and the members' per-channel trainable weights (batch-norm scale and
    shift, depthwise kernels and biases), of the selected channels are 0; batch-norm statistics and the
    consumers' kernel rows are kept. ``model.set_weights(zeroed_weights(model, selection))`` turns
    ``model`` into the masked twin of ``remove_filters(model, selection)``.
    """
    check_model(model, "zeroed_weights")
    _refuse_nested(model, "zeroed_weights")
    groups = groups if groups is not None else find_groups(model)
    selection = check_selection(model, selection, groups)
    position = {id(w): i for i, w in enumerate(model.weights)}
    values = model.get_weights()
    by_name = groups.by_name()
    for group_name, channels in selection.items():
        for s in by_name[group_name].slices:
            if s.role == "sink" or s.name in ("moving_mean", "moving_variance"):
                continue
            i = position[id(model.get_layer(s.layer).weights[s.weight])]
            index = [slice(None)] * values[i].ndim
            index[s.axis] = s.indices(channels)
            values[i][tuple(index)] = 0
    return values


def zero_filters(model, selection, custom_objects=None):
    """A copy of ``model`` (same architecture) with :func:`zeroed_weights`: the masked twin of the slim model.

    ``model`` is not modified. Used to check :func:`remove_filters` and to compare a masked and a slim
    filter ticket.
    """
    check_model(model, "zero_filters")
    _refuse_nested(model, "zero_filters")
    values = zeroed_weights(model, selection)
    twin = keras.Model.from_config(compat.graph_config(model)[0], custom_objects=custom_objects)
    twin.set_weights(values)
    return twin


def _refuse_nested(model, what):
    if has_nested_models(model):
        raise ValueError(f"{what} works on one graph; {model.name!r} nests functional models: pass "
                         f"keras_lottery.inline.inlined({model.name!r}) (a plain copy with them inlined).")
