"""One plain functional graph from a model with nested functional models (a KerasHub task model's backbone).

:func:`inlined` splices every nested model's graph into its caller's, so per-layer analyses that stop
at model boundaries (channel groups, :mod:`keras_lottery.filters`) see one graph. The layers keep
their names and weights; the result is a plain ``keras.Model`` (the classes' methods are lost).
"""

from __future__ import annotations

import copy

import keras

from keras_lottery import compat, layers
from keras_lottery.graph import is_functional, output_histories

__all__ = ["has_nested_models", "inlined"]


def has_nested_models(model):
    """Whether a functional ``model`` calls a functional model as one of its nodes."""
    return any(is_functional(op) for op in model.operations if op is not model)


def inlined(model):
    """A plain functional model with ``model``'s nested functional models spliced in, weights copied by layer name."""
    config = inline_config(compat.graph_config(model)[0], model.name)
    flat = keras.Model.from_config(config)
    return layers.copy_by_layer_name(model, flat)


def _is_graph(layer_config):
    inner = layer_config.get("config")
    return isinstance(inner, dict) and "layers" in inner and "output_layers" in inner


def inline_config(config, name):
    """``config`` (a graph config) with its nested graph configs spliced in (recursively)."""
    config = copy.deepcopy(config)
    names = {lc["name"] for lc in config["layers"]}
    layers, outputs_of = [], {}
    for lc in config["layers"]:
        if not _is_graph(lc):
            layers.append(lc)
            continue
        inner = inline_config(lc["config"], lc["name"])
        if len(lc["inbound_nodes"]) != 1:
            raise ValueError(f"Nested model {lc['name']!r} of {name!r} is called {len(lc['inbound_nodes'])} times; "
                             f"only a model called once can be inlined.")
        feeds = _feeds(lc, inner)
        for inner_lc in inner["layers"]:
            if inner_lc["name"] in feeds:  # the nested model's InputLayer: its tensor is the caller's
                continue
            if inner_lc["name"] in names:
                raise ValueError(f"Layer {inner_lc['name']!r} of nested model {lc['name']!r} has the name of a layer "
                                 f"of {name!r} (a shared layer?); the graphs cannot be inlined.")
            for node in inner_lc.get("inbound_nodes") or []:
                for kt in compat.iter_keras_tensors(node):
                    key = compat.history_key(kt)
                    if key[0] in feeds:
                        compat.set_history_key(kt, feeds[key[0]])
            layers.append(inner_lc)
        outputs_of[lc["name"]] = output_histories(inner["output_layers"])
    config["layers"] = layers

    def redirect(key):
        if key[0] in outputs_of:
            return outputs_of[key[0]][key[2]]
        return key

    for lc in layers:
        for node in lc.get("inbound_nodes") or []:
            for kt in compat.iter_keras_tensors(node):
                compat.set_history_key(kt, redirect(compat.history_key(kt)))
    config["output_layers"] = _map_spec(config["output_layers"], redirect)
    return config


def _feeds(layer_config, inner):
    """``{inner input layer name: caller's tensor key}`` for a nested model's one call."""
    node = layer_config["inbound_nodes"][0]
    args = node.get("args", [])
    if not args and "inputs" in node.get("kwargs", {}):  # called as model(inputs=x), as by Gemma 3's task model
        args = [node["kwargs"]["inputs"]]
    arg = args[0] if isinstance(args, (list, tuple)) and len(args) == 1 else args
    spec = inner["input_layers"]
    if isinstance(spec, dict) and isinstance(arg, dict) and set(spec) <= set(arg):
        pairs = [(output_histories(spec[k])[0], next(compat.iter_keras_tensors(arg[k]))) for k in spec]
    else:
        caller = list(compat.iter_keras_tensors(arg))
        inputs = output_histories(spec)
        if len(caller) != len(inputs):
            raise ValueError(f"Nested model {layer_config['name']!r} takes {len(inputs)} inputs, called with "
                             f"{len(caller)} tensors; it cannot be inlined.")
        pairs = list(zip(inputs, caller))
    return {inner_key[0]: compat.history_key(kt) for inner_key, kt in pairs}


def _map_spec(obj, mapping):
    if isinstance(obj, list) and len(obj) == 3 and isinstance(obj[0], str):
        return list(mapping((obj[0], int(obj[1]), int(obj[2]))))
    if isinstance(obj, dict):
        return {k: _map_spec(v, mapping) for k, v in obj.items()}
    return [_map_spec(v, mapping) for v in obj]
