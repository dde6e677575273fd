"""Slim KerasHub models that keep their class: a backbone rebuilt with fewer transformer layers.

A KerasHub backbone whose config has ``num_layers`` and which keeps its layers in
``transformer_layers`` (GPT-2, BERT, Gemma, Llama, ...) is rebuilt from its own config with
``num_layers - p``; its kept transformer layers' weights go, in order, to the new layers (renumbered:
the new backbone's ``transformer_layer_0..``), every other layer's weights by name. A task model
(``GPT2CausalLM``, ``BertTextClassifier``) holding such a backbone is rebuilt around the new backbone
with ``type(task).from_config``, its head weights copied by layer name. So the slim model is of the
same class, ``generate()`` and its cache work, and it saves to ``.keras`` like the original.
"""

from __future__ import annotations

import keras

__all__ = ["resizable_backbone", "remove_layers"]


def resizable_backbone(model):
    """The backbone of ``model`` (itself, or its ``backbone``) that can be rebuilt with fewer layers, or None."""
    for candidate in (model, getattr(model, "backbone", None)):
        if (isinstance(candidate, keras.Model) and isinstance(getattr(candidate, "transformer_layers", None), list)
                and "num_layers" in _config(candidate)):
            return candidate
    return None


def _config(model):
    try:
        config = model.get_config()
    except (NotImplementedError, TypeError, AttributeError):
        return {}
    return config if isinstance(config, dict) else {}


def covers(model, blocks):
    """Whether every block is a residual layer of ``model``'s resizable backbone (so :func:`remove_layers` applies)."""
    backbone = resizable_backbone(model)
    if backbone is None or not blocks:
        return False
    path = () if backbone is model else (backbone.name,)
    names = {layer.name for layer in backbone.transformer_layers}
    return all(b.kind == "layer" and b.path == path and b.add_layer in names for b in blocks)


def remove_layers(model, blocks):
    """A model of ``model``'s class without the transformer layers of ``blocks`` (see the module docstring)."""
    backbone = resizable_backbone(model)
    removed = {b.add_layer for b in blocks}
    kept = [layer for layer in backbone.transformer_layers if layer.name not in removed]
    if not kept:
        raise ValueError(f"Removing {sorted(removed)} would leave {backbone.name!r} with no transformer layer; "
                         f"keep at least one.")
    config = backbone.get_config()
    config["num_layers"] = len(kept)
    slim_backbone = type(backbone).from_config(config)
    if len(slim_backbone.transformer_layers) != len(kept):
        raise ValueError(f"{type(backbone).__name__}(num_layers={len(kept)}) built "
                         f"{len(slim_backbone.transformer_layers)} transformer layers; it cannot be resized.")
    pairs = list(zip(kept, slim_backbone.transformer_layers))
    transformer = {id(layer) for layer in backbone.transformer_layers}
    slim_by_name = {layer.name: layer for layer in slim_backbone.layers}
    for layer in backbone.layers:
        if id(layer) not in transformer and layer.weights:
            pairs.append((layer, _namesake(slim_by_name, layer, slim_backbone)))
    _copy(pairs)
    if backbone is model:
        return slim_backbone
    config = model.get_config()
    config["backbone"] = slim_backbone  # Task.from_config deserializes only a dict
    slim = type(model).from_config(config)
    in_backbone = {id(w) for w in backbone.weights}  # e.g. GPT-2's head is the backbone's token embedding
    slim_by_name = {layer.name: layer for layer in slim.layers}
    _copy([(layer, _namesake(slim_by_name, layer, slim)) for layer in model.layers
           if layer is not backbone and layer.weights and not all(id(w) in in_backbone for w in layer.weights)])
    return slim


def _namesake(by_name, layer, target):
    if layer.name not in by_name:
        raise ValueError(f"The resized {target.name!r} has no layer {layer.name!r}; it cannot carry the weights.")
    return by_name[layer.name]


def _copy(pairs):
    for source, target in pairs:
        values = source.get_weights()
        shapes = [tuple(w.shape) for w in target.weights]
        if [tuple(v.shape) for v in values] != shapes:
            raise ValueError(f"Layer {source.name!r}: weight shapes {[tuple(v.shape) for v in values]} do not fit "
                             f"{target.name!r}'s {shapes} in the resized model.")
        target.set_weights(values)
