"""Remove residual blocks from a functional model: rewrite its graph config, rebuild, copy weights by name
(with :func:`keras_lottery.masking.copy_weights`, the one by-name weight copy of the package); or, for
the transformer layers of a KerasHub backbone (graph nodes, or the sublayers of a container layer such
as ViT's encoder), rebuild it with fewer layers (:mod:`.resize`)."""

from __future__ import annotations

import copy
import dataclasses

import keras

from keras_lottery import compat, layers
from keras_lottery.masking import copy_weights
from keras_lottery.blocks import resize, unlist
from keras_lottery.blocks.discovery import Block, find_blocks
from keras_lottery.graph import FunctionalGraph, is_functional


def resolve_blocks(model, blocks_or_names, found=None):
    """Turn a list of :class:`Block` objects and/or block names into the model's :class:`Block` objects.

    Raises ``ValueError`` for unknown names (listing the removable ones), for non-removable blocks
    (with the reason) and for duplicates; ``TypeError`` for items that are neither.
    """
    if isinstance(blocks_or_names, (str, Block)):
        blocks_or_names = [blocks_or_names]
    items = list(blocks_or_names)
    if not items:
        return []
    found = found if found is not None else find_blocks(model, warn=False)
    by_name = {b.name: b for b in found}
    resolved = []
    for item in items:
        if isinstance(item, Block):
            name = item.name
        elif isinstance(item, str):
            name = item
        else:
            raise TypeError(f"Blocks to remove must be Block objects or block names (str), got {item!r} "
                            f"of type {type(item).__name__}.")
        if name not in by_name:
            raise ValueError(f"{model.name!r} has no residual block named {name!r}. Removable blocks: "
                             f"{[b.name for b in found if b.removable] or 'none'}. {found.message}")
        block = by_name[name]
        if not block.removable:
            raise ValueError(f"Block {name!r} of {model.name!r} cannot be removed: {block.reason}.")
        if block in resolved:
            raise ValueError(f"Block {name!r} is listed twice.")
        resolved.append(block)
    return resolved


def _replace_histories(obj, mapping):
    for kt in compat.iter_keras_tensors(obj):
        compat.set_history_key(kt, mapping(compat.history_key(kt)))


def _rewrite_output_spec(obj, mapping):
    if isinstance(obj, list) and len(obj) == 3 and isinstance(obj[0], str):
        return list(mapping((obj[0], int(obj[1]), int(obj[2]))))
    if isinstance(obj, dict):
        return {k: _rewrite_output_spec(v, mapping) for k, v in obj.items()}
    return [_rewrite_output_spec(v, mapping) for v in obj]


def removed_config(model, blocks, graph=None):
    """The ``get_config()`` of ``model`` with the branches (and ``Add`` nodes) of ``blocks`` removed.

    Every consumer of a removed ``Add`` reads the block's shortcut tensor instead (following chains of
    consecutive removed blocks); layers and operations left with no call are dropped; node indices are
    renumbered. Blocks of nested models (``block.path``) are removed from the nested model's config,
    which replaces the nested model's entry, so the nesting is kept. A residual layer (``kind="layer"``)
    is dropped, its consumers reading its input.
    """
    graph = graph or FunctionalGraph(model)
    nested = {}
    for block in blocks:
        if block.path:
            nested.setdefault(block.path[0], []).append(dataclasses.replace(block, path=block.path[1:]))
    blocks = [b for b in blocks if not b.path]
    config = _removed_here(model, blocks, graph)
    for layer_config in config["layers"]:
        if layer_config["name"] in nested:
            inner = model.get_layer(layer_config["name"])
            layer_config["config"] = removed_config(inner, nested[layer_config["name"]])
            compat.mark_plain_functional(layer_config)  # a rebuilt subclass is a plain graph
            layer_config.pop("build_config", None)  # built from its (new) inputs when called
    return config


def _removed_here(model, blocks, graph):
    """``get_config()`` of ``model`` without ``blocks`` (all blocks of ``model`` itself, none nested)."""
    dropped, replacement = set(), {}
    for block in blocks:
        if block.kind == "sublayer":
            raise ValueError(f"Block {block.name!r} is applied inside the call of {block.container!r}, not as a node "
                             f"of the graph; the graph config cannot be rewritten without it.")
        add_node = (block.add_layer, block.add_node)
        if block.kind == "layer":  # a residual layer: its consumers read its input instead
            dropped.add(add_node)
            for t in graph.output_tensors(add_node):
                replacement[t] = tuple(block.input_tensor)
            continue
        branch = set(block.branch_nodes)
        dropped |= branch | {add_node}
        inputs = graph.node_inputs[add_node]
        shortcut = [t for t in inputs if t[:2] not in branch]
        if len(shortcut) != 1:
            raise ValueError(f"Block {block.name!r} does not have exactly one shortcut input into "
                             f"{block.add_layer!r} (got {shortcut}); it cannot be removed.")
        for t in graph.output_tensors(add_node):
            replacement[t] = shortcut[0]

    def resolve(key):
        seen = set()
        while key in replacement:
            if key in seen:
                raise RuntimeError(f"Cycle while resolving {key} through removed blocks.")
            seen.add(key)
            key = replacement[key]
        return key

    renumber = {}
    for layer_config in graph.config["layers"]:
        name = layer_config["name"]
        kept = [i for i in range(len(layer_config.get("inbound_nodes") or [])) if (name, i) not in dropped]
        renumber.update({(name, old): new for new, old in enumerate(kept)})

    def mapping(key):
        key = resolve(key)
        if key[:2] in dropped:
            raise RuntimeError(f"Tensor {key} of a removed branch is still used; the block analysis is wrong.")
        return (key[0], renumber.get(key[:2], key[1]), key[2])

    config = copy.deepcopy(graph.config)
    new_layers = []
    for layer_config in config["layers"]:
        name = layer_config["name"]
        nodes = layer_config.get("inbound_nodes") or []
        if nodes:
            nodes = [node for i, node in enumerate(nodes) if (name, i) not in dropped]
            if not nodes:
                continue
            for node in nodes:
                _replace_histories(node, mapping)
            layer_config["inbound_nodes"] = nodes
        new_layers.append(layer_config)
    config["layers"] = new_layers
    config["output_layers"] = _rewrite_output_spec(config["output_layers"], mapping)
    return config


def remove(model, blocks, name=None, custom_objects=None):
    """A new model without the branches of ``blocks``: ``y = x`` where each block was.

    When every block is a transformer layer of a KerasHub backbone (the model's own, or the one inside
    a task model: GPT-2, BERT, Gemma, Llama, ViT, ...), the result is of the model's class: the backbone
    rebuilt with ``num_layers - p`` layers carrying the kept layers' weights
    (:func:`keras_lottery.blocks.resize.remove_layers`), so a slim ``GPT2CausalLM`` still generates.
    Otherwise the graph is rewritten and rebuilt as a plain functional model (a subclass such as
    KerasHub's ``ResNetBackbone`` loses its class and methods; nested models stay nested). Blocks
    applied inside a container layer (``kind="sublayer"``) of any other model (Swin's stages, a user's
    layer looping over a list) are removed from the container's list in a copy of the model, of its class,
    verified to compute the model with them skipped (:func:`keras_lottery.blocks.unlist.remove_sublayers`;
    its module docstring says when the copy's config cannot save it); they are not removed in the same call
    as graph blocks.

    Args:
        model: a functional ``keras.Model`` (subclasses included); it is not modified.
        blocks: :class:`Block` objects and/or block names (``Block.name``: the ``Add`` node's name, after
            the path of the nested model holding it, as in ``"encoder/block1_add"``), all removable. An empty
            list rebuilds the same graph, computing exactly the same function (a KerasHub model whose
            removable blocks are all its backbone's transformer layers: the same class, all layers kept).
        name: name of the new model (default: the original's).
        custom_objects: passed to ``keras.Model.from_config`` for models with custom layers.

    Returns:
        An uncompiled ``keras.Model`` with the same inputs and outputs; every remaining layer carries the
        original weights (batch-norm statistics included) and keeps its name (except a resized
        backbone's transformer layers, renumbered). The removed ``Add`` layers disappear too; what
        followed them (e.g. the post-add ReLU) stays. The model's ``removed_blocks`` attribute is the
        tuple of the removed blocks' names (in memory only: a saved and reloaded model lacks it), which
        :func:`keras_lottery.export.for_serving` reads where names alone cannot tell (renumbered layers).
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"remove expects a keras.Model, got {type(model).__name__!r}.")
    if not is_functional(model):
        raise TypeError(f"remove needs a functional model; {model.name!r} is a {type(model).__name__} with no "
                        f"functional graph. Sequential and subclassed models cannot be rewritten: build it with "
                        "keras.Input and layer calls.")
    resolved = resolve_blocks(model, blocks)
    new_model = _removed(model, resolved, name, custom_objects)
    new_model.removed_blocks = tuple(b.name for b in resolved)
    return new_model


def _removed(model, resolved, name, custom_objects):
    """:func:`remove` once the blocks are resolved."""
    # Nothing to remove: a resizable backbone is still rebuilt by class (ViT's has no plain graph rebuild).
    located = resolved or find_blocks(model, warn=False).removable
    if resize.covers(model, located):
        new_model = resize.remove_layers(model, resolved) if resolved else resize.rebuild(model, located)
        if name is not None:
            new_model.name = name
        return new_model
    inside = [b for b in resolved if b.kind == "sublayer"]
    if inside:  # called inside a container layer's call: shorten the container's list in a copy
        if len(inside) != len(resolved):
            raise ValueError(f"{[b.name for b in inside]} of {model.name!r} are applied inside a container layer's "
                             f"call and {[b.name for b in resolved if b.kind != 'sublayer']} are not: remove the "
                             f"two kinds in two calls of remove.")
        new_model = unlist.remove_sublayers(model, resolved)
        if name is not None:
            new_model.name = name
        return new_model
    graph = FunctionalGraph(model)
    config = removed_config(model, resolved, graph)
    if name is not None:
        config["name"] = name
    try:
        new_model = keras.Model.from_config(config, custom_objects=custom_objects)
    except Exception as error:  # noqa: BLE001 - one line naming the model and Keras' reason
        raise ValueError(f"{model.name!r} could not be rebuilt without {[b.name for b in resolved]} from its graph: "
                         f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}") from error
    if compat.is_graph_model(model):
        copy_weights(model, new_model)
    else:  # the removed blocks' layers are no candidates for a layer the rebuild renamed
        removed = {op for b in resolved for op in (*b.branch_layers, b.add_layer)}
        layers.copy_by_layer_name(model, new_model, removed)
    return new_model

