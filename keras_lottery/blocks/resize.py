"""Slim KerasHub models that keep their class: a backbone rebuilt with fewer transformer layers.

A KerasHub backbone whose config has ``num_layers`` keeps its ``num_layers`` blocks in one list: its own
``transformer_layers`` (GPT-2, BERT, Gemma, Llama, ...; the blocks are nodes of its graph) or a list
of a container layer (ViT's ``vit_encoder.encoder_layers``; the blocks are applied inside the
container's call, see :mod:`keras_lottery.blocks.containers`). Such a backbone is rebuilt from its
own config with ``num_layers - p``; its kept blocks' weights go, in order, to the new list's layers
(renumbered: the new backbone's ``transformer_layer_0..``), every other weight by layer name (inside
the container too: ViT's final layer norm). A backbone whose ``num_layers`` sizes
several such lists (BART's and T5's encoder and decoder stacks) is not resized: removing one encoder layer
must not remove a decoder layer too; its graph is rewritten instead (a plain functional model). A task model (``GPT2CausalLM``, ``BertTextClassifier``,
``ViTImageClassifier``) holding such a backbone is rebuilt around the new backbone with
``type(task).from_config``, its head weights copied by layer name. So the slim model is of the same
class, ``generate()`` and its cache work, and it saves to ``.keras`` like the original.
"""

from __future__ import annotations

import keras

from keras_lottery import compat
from keras_lottery.blocks.containers import list_attribute
from keras_lottery.blocks.discovery import operations
from keras_lottery.layers import paired_in_order

__all__ = ["covers", "rebuild", "remove_layers", "resizable_backbone"]


def resizable_backbone(model):
    """The backbone of ``model`` (itself, or its ``backbone``) whose config has ``num_layers``, or None."""
    for candidate in (model, getattr(model, "backbone", None)):
        if isinstance(candidate, keras.Model) and "num_layers" in _config(candidate):
            return candidate
    return None


def _config(model):
    try:
        config = model.get_config()
    except (NotImplementedError, TypeError, AttributeError):
        return {}
    return config if isinstance(config, dict) else {}


def _locate(model, blocks):
    """``(backbone, container, attribute)``: the list ``getattr(owner, attribute)`` of ``num_layers`` layers
    holding every block, ``owner`` the backbone (``container == ""``) or its layer ``container``; or None."""
    backbone = resizable_backbone(model)
    if backbone is None or not blocks:
        return None
    path = () if backbone is model else (backbone.name,)
    owners = {b.container for b in blocks}
    if len(owners) != 1 or any(b.path != path or b.kind not in ("layer", "sublayer") for b in blocks):
        return None
    container = owners.pop()
    if "/" in container:  # a container nested in a container: no backbone list of num_layers (HGNetV2)
        return None
    owner = backbone.get_layer(container) if container else backbone
    members = [operations(model, b, [b.add_layer])[0] for b in blocks]
    attribute = list_attribute(owner, members)
    num_layers = _config(backbone)["num_layers"]
    if attribute is None or len(getattr(owner, attribute)) != num_layers or _other_stacks(owner, attribute, num_layers):
        return None
    return backbone, container, attribute


def _other_stacks(owner, attribute, num_layers):
    """Names of ``owner``'s other lists of ``num_layers`` layers (none shared with ``attribute``'s): then
    ``num_layers`` sizes them too (BART's and T5's encoder and decoder stacks), and changing it would remove
    layers the caller kept."""
    ids = {id(layer) for layer in getattr(owner, attribute)}
    return [name for name, value in compat.layer_lists(owner)
            if name != attribute and len(value) == num_layers and not ids & {id(v) for v in value}]


def covers(model, blocks):
    """Whether every block is a layer of the block list of ``model``'s resizable backbone (so
    :func:`remove_layers` applies)."""
    return _locate(model, blocks) is not None


def remove_layers(model, blocks):
    """A model of ``model``'s class without the layers of ``blocks`` (see the module docstring)."""
    return _rebuild(model, blocks, {b.add_layer for b in blocks})


def rebuild(model, blocks):
    """``model`` rebuilt as by :func:`remove_layers`, every layer kept (``blocks`` only locate the list)."""
    return _rebuild(model, blocks, set())


def _rebuild(model, blocks, removed):
    backbone, container, attribute = _locate(model, blocks)
    stack = list(getattr(backbone.get_layer(container) if container else backbone, attribute))
    kept = [layer for layer in stack if layer.name not in removed]
    if not kept:
        raise ValueError(f"Removing {sorted(removed)} would leave {backbone.name!r} with no transformer layer; "
                         f"keep at least one.")
    config = backbone.get_config()
    config["num_layers"] = len(kept)
    slim_backbone = type(backbone).from_config(config)
    renamed = _renamed(backbone, slim_backbone, [] if container else stack,
                       [] if container else getattr(slim_backbone, attribute, []))
    owner = slim_backbone.get_layer(renamed.get(container, container)) if container else slim_backbone
    slim_stack = getattr(owner, attribute, None)
    if not isinstance(slim_stack, list) or len(slim_stack) != len(kept):
        raise ValueError(f"{type(backbone).__name__}(num_layers={len(kept)}) built "
                         f"{len(slim_stack or ())} layers in {attribute!r}; it cannot be resized.")
    in_stack = {id(w) for layer in stack for w in layer.weights}
    pairs = [(layer.name, layer.weights, slim.weights) for layer, slim in zip(kept, slim_stack)]
    _copy(pairs + _by_name(backbone, slim_backbone, in_stack, renamed))
    if backbone is model:
        return slim_backbone
    config = model.get_config()
    config["backbone"] = slim_backbone  # Task.from_config deserializes only a dict
    slim = type(model).from_config(config)
    in_backbone = {id(w) for w in backbone.weights}  # e.g. GPT-2's head is the backbone's token embedding
    slim_by_name = {layer.name: layer for layer in slim.layers}
    _copy([(layer.name, layer.weights, _namesake(slim_by_name, layer, slim).weights) for layer in model.layers
           if layer is not backbone and layer.weights and not all(id(w) in in_backbone for w in layer.weights)])
    return slim


def _renamed(backbone, slim_backbone, stack, slim_stack):
    """``{layer name in backbone: name of its counterpart in slim_backbone}``, the layers outside the block
    lists ``stack`` and ``slim_stack`` paired in order (empty when they do not pair up, class by class).

    A rebuild from config may rename layers: a KerasHub backbone built with ``name=None`` may leave its
    layers unprefixed while its config has a name, so the rebuild prefixes them (DINOV2's ``encoder``
    becomes ``dinov2_backbone_encoder``)."""
    skip = {id(layer) for layer in list(stack) + list(slim_stack)}
    old = [layer for layer in backbone.layers if id(layer) not in skip]
    new = [layer for layer in slim_backbone.layers if id(layer) not in skip]
    return {a.name: b.name for a, b in paired_in_order(old, new) or ()}


def _by_name(source, target, skip, renamed=None):
    """``(name, source weights, target weights)`` for every weight under ``source`` outside ``skip`` (ids),
    layers matched by name with ``target``'s (after ``renamed``, :func:`_renamed`, at the top level); a
    layer holding skipped weights (the container) is entered."""
    pairs = []
    children = compat.sublayers(source)
    by_name = {layer.name: layer for layer in compat.sublayers(target)}
    in_children = {id(w) for child in children for w in child.weights}
    own = [w for w in source.weights if id(w) not in in_children]  # the layer's own add_weight variables
    if own:
        target_children = {id(w) for child in by_name.values() for w in child.weights}
        pairs.append((source.name, own, [w for w in target.weights if id(w) not in target_children]))
    for layer in children:
        if not layer.weights or all(id(w) in skip for w in layer.weights):
            continue
        match = _namesake(by_name, layer, target, (renamed or {}).get(layer.name, layer.name))
        if any(id(w) in skip for w in layer.weights):
            pairs += _by_name(layer, match, skip)
        else:
            pairs.append((layer.name, layer.weights, match.weights))
    return pairs


def _namesake(by_name, layer, target, name=None):
    name = name or layer.name
    if name not in by_name:
        raise ValueError(f"The resized {target.name!r} has no layer {name!r}; it cannot carry the weights.")
    return by_name[name]


def _copy(pairs):
    """Assign each ``(name, source weights, target weights)`` triple's values, after checking the shapes."""
    for name, sources, targets in pairs:
        shapes, target_shapes = [tuple(w.shape) for w in sources], [tuple(w.shape) for w in targets]
        if shapes != target_shapes:
            raise ValueError(f"Layer {name!r}: weight shapes {shapes} do not fit {target_shapes} in the resized model.")
        for source, target in zip(sources, targets):
            target.assign(source.value)
