"""Layers: the one walk over a model's layers, and the one definition of "prunable".

* :func:`walk` visits every layer of a model once, depth first, entering nested models and (with
  ``unwrap=True``) the layer inside a ``keras.layers.Wrapper``. Every part of the library that looks
  for layers (masks, density reports, export, batch-norm recomputation, weight copies) uses it.
* The prunable registry says which weights a lottery-ticket mask covers, and the path naming each
  one (``"<layer name>/<name inside the layer>"``). Built-in:

  - the kernels of ``Dense``, ``EinsumDense``, ``Conv1D/2D/3D`` (grouped ones included),
    ``Conv1D/2D/3DTranspose``, the depthwise kernel of ``DepthwiseConv1D/2D`` (a variable named
    ``kernel`` in Keras 3), both kernels of ``SeparableConv1D/2D`` and the ``embeddings`` of
    ``Embedding`` (with the untied ``reverse_embeddings`` of a ``ReversibleEmbedding``):
    ``"fc/kernel"``, ``"sep/pointwise_kernel"``;
  - ``MultiHeadAttention``: the kernels of its query, key, value and output projections
    (``"mha/query/kernel"``, ``"mha/key/kernel"``, ``"mha/value/kernel"``,
    ``"mha/attention_output/kernel"``);
  - recurrent layers (``SimpleRNN``, ``LSTM``, ``GRU``, ``ConvLSTM1D/2D/3D``, ``RNN`` over those
    cells or a ``StackedRNNCells``) and their cells: ``kernel`` and ``recurrent_kernel``, held by
    the cell (``"lstm/kernel"``, ``"lstm/recurrent_kernel"``; stacked cells add the cell's name);
  - ``Bidirectional``: its two layers' weights under their names (``"bi/forward_lstm/kernel"``,
    ``"bi/backward_lstm/kernel"``); ``TimeDistributed``: the wrapped layer's (``"td/kernel"``).

  - a layer holding layers (KerasHub's ``TransformerEncoder`` / ``TransformerDecoder``, a user's block):
    the prunable weights of its sublayers at any depth, named by the chain of sublayer names
    (``"transformer_layer_0/self_attention/query/kernel"``, the variable's Keras path).

  Biases and normalization layers are never masked. A custom layer chooses its own by defining
  ``get_prunable_weights(self) -> list of its variables`` (called once it is built), the same
  protocol as TFMOT's ``PrunableLayer``; their paths are ``"<layer name>/<the variable's path inside
  the layer>"``, and two weights that would share a path are refused.
* :func:`unmasked_weights` names what a mask leaves out: every trainable weight of rank >= 2 that is
  not prunable, so that ``keras_lottery.mask`` can warn about (or refuse) a partial mask.
"""

import keras

from keras_lottery import compat

__all__ = ["CONV_RNN", "SUPPORTED", "by_name", "copy_by_layer_name", "is_prunable", "paired_in_order", "prunable_items",
           "prunable_variables", "prunable_weight_names", "unmasked_weights", "walk", "weight_path"]

_CELL_KERNELS = ("kernel", "recurrent_kernel")

# Layers whose prunable weights are their own variables of these names. The groups are disjoint, so
# the order of the classes does not matter.
_BUILTIN = (
    (keras.layers.SeparableConv1D, ("depthwise_kernel", "pointwise_kernel")),
    (keras.layers.SeparableConv2D, ("depthwise_kernel", "pointwise_kernel")),
    (keras.layers.DepthwiseConv1D, ("kernel", "depthwise_kernel")),  # Keras 3 names it "kernel"
    (keras.layers.DepthwiseConv2D, ("kernel", "depthwise_kernel")),
    (keras.layers.Conv1D, ("kernel",)),
    (keras.layers.Conv2D, ("kernel",)),
    (keras.layers.Conv3D, ("kernel",)),
    (keras.layers.Conv1DTranspose, ("kernel",)),
    (keras.layers.Conv2DTranspose, ("kernel",)),
    (keras.layers.Conv3DTranspose, ("kernel",)),
    (keras.layers.Dense, ("kernel",)),
    (keras.layers.EinsumDense, ("kernel",)),
    # reverse_embeddings: the untied output projection of a ReversibleEmbedding (KerasHub's Llama, Gemma)
    (keras.layers.Embedding, ("embeddings", "reverse_embeddings")),
    (keras.layers.SimpleRNNCell, _CELL_KERNELS),
    (keras.layers.LSTMCell, _CELL_KERNELS),
    (keras.layers.GRUCell, _CELL_KERNELS),
)
# Recurrent layers whose cell class Keras does not export: the cell's kernels are prunable.
_CONV_RNN = (keras.layers.ConvLSTM1D, keras.layers.ConvLSTM2D, keras.layers.ConvLSTM3D)
CONV_RNN = _CONV_RNN

SUPPORTED = ", ".join([cls.__name__ for cls, _ in _BUILTIN] + [cls.__name__ for cls in _CONV_RNN]
                      + ["MultiHeadAttention", "SimpleRNN/LSTM/GRU/RNN", "Bidirectional", "TimeDistributed"])


def walk(model, unwrap=False):
    """Yields every layer of ``model`` once, depth first, in layer order; ``model`` itself is not yielded.

    Nested models are yielded and then entered. With ``unwrap=True`` the layer inside a
    ``keras.layers.Wrapper`` (``wrapper.layer``) is yielded right after its wrapper.
    """
    seen = {id(model)}

    def visit(layer):
        children = list(getattr(layer, "layers", None) or ())
        if unwrap and isinstance(layer, keras.layers.Wrapper):
            children.insert(0, layer.layer)
        for child in children:
            if id(child) in seen:
                continue
            seen.add(id(child))
            yield child
            yield from visit(child)

    yield from visit(model)


def by_name(model):
    """``{name: layer}`` over ``model`` and its nested models (the outermost layer of a name wins)."""
    out, level = {}, [model]
    while level:  # breadth first: a model's own layers before those of the models nested in it
        children = [child for layer in level for child in getattr(layer, "layers", None) or ()]
        for child in children:
            out.setdefault(child.name, child)
        level = [child for child in children if isinstance(child, keras.Model)]
    return out


def prunable_weight_names(layer):
    """Names of the variables of ``layer`` itself that are prunable (empty for composite, other and custom layers)."""
    for cls, names in _BUILTIN:
        if isinstance(layer, cls):
            return names
    return ()


def _parts(layer):
    """``[(prefix, sublayer)]``: where a composite layer keeps its prunable weights, or None for other layers."""
    if isinstance(layer, keras.layers.MultiHeadAttention):
        return [(f"{d.name}/", d) for d in (layer.query_dense, layer.key_dense, layer.value_dense, layer.output_dense)]
    if isinstance(layer, keras.layers.Bidirectional):
        return [(f"{layer.forward_layer.name}/", layer.forward_layer),
                (f"{layer.backward_layer.name}/", layer.backward_layer)]
    if isinstance(layer, keras.layers.TimeDistributed):
        return [("", layer.layer)]
    if isinstance(layer, keras.layers.StackedRNNCells):
        return [(f"{cell.name}/", cell) for cell in layer.cells]
    if isinstance(layer, keras.layers.RNN) and not isinstance(layer, _CONV_RNN):
        return [("", layer.cell)]
    return None


def _builtin_composite(layer):
    return isinstance(layer, (keras.layers.MultiHeadAttention, *_CONV_RNN)) or _parts(layer) is not None


def is_prunable(layer):
    """Whether ``layer`` has prunable weights: a built-in prunable type (composite ones when a part
    is prunable), ``get_prunable_weights()``, or a built layer holding prunable layers at any depth
    (a transformer block, a user's layer of layers). Built-in types are recognised unbuilt.

    Models are never prunable layers themselves (their layers are).
    """
    if isinstance(layer, keras.Model):
        return False
    if callable(getattr(layer, "get_prunable_weights", None)) or prunable_weight_names(layer):
        return True
    if isinstance(layer, (keras.layers.MultiHeadAttention, *_CONV_RNN)):
        return True  # their kernels exist once they are built
    parts = _parts(layer)
    if parts is not None:
        return any(is_prunable(part) for _, part in parts)
    return bool(isinstance(layer, keras.layers.Layer) and layer.built and _relative_items(layer))


def _relative_to(layer, variable):
    """The name of ``variable`` inside ``layer``: its path after ``layer``'s own name (the variable's name
    when the path does not pass through it)."""
    marker = f"{layer.name}/"
    path = variable.path
    if f"/{marker}" in path:  # the innermost scope of that name (a wrapper takes its layer's name)
        return path.rsplit(f"/{marker}", 1)[1]
    if path.startswith(marker):
        return path[len(marker):]
    return variable.name


def _relative_items(layer):
    custom = getattr(layer, "get_prunable_weights", None)
    if callable(custom):
        return [(_relative_to(layer, v), v) for v in custom()]
    if isinstance(layer, _CONV_RNN):
        return [(v.name, v) for v in layer.cell.weights if v.name in _CELL_KERNELS]
    parts = _parts(layer)
    if parts is not None:
        return [(prefix + name, v) for prefix, part in parts for name, v in _relative_items(part)]
    names = prunable_weight_names(layer)
    if names:
        return [(v.name, v) for v in layer.weights if v.name in names]
    # A layer holding layers (a transformer block, a user's composite layer): the prunable weights of
    # its sublayers at any depth, each once (a sublayer shared by two attributes is visited once).
    out, seen = [], set()
    for child in compat.sublayers(layer):
        if isinstance(child, keras.Model) or not (prunable_weight_names(child) or _builtin_composite(child)
                                                   or callable(getattr(child, "get_prunable_weights", None))
                                                   or compat.sublayers(child)):
            continue
        for name, v in _relative_items(child):
            if id(v) not in seen:
                seen.add(id(v))
                out.append((f"{child.name}/{name}", v))
    return out


def prunable_items(layer):
    """``[(weight path, variable)]`` for the prunable weights of a built ``layer``, in the layer's order.

    The path names the weight in masks and reports: ``"<layer name>/<name inside the layer>"`` (module
    doc); inside a layer of layers, the chain of sublayer names (``"block/attention/query/kernel"``), as
    in the variables' Keras paths.

    Raises:
        ValueError: two weights would get one path (a ``get_prunable_weights()`` returning variables of
            the same name from different sublayers, without their own path); the message names them.
    """
    items = [(f"{layer.name}/{name}", variable) for name, variable in _relative_items(layer)]
    paths = [path for path, _ in items]
    duplicated = sorted({path for path in paths if paths.count(path) > 1})
    if duplicated:
        raise ValueError(
            f"Layer {layer.name!r} ({type(layer).__name__}) has several prunable weights named {duplicated}: each "
            "must have its own path. Give the variables distinct names, or let the library find the weights of "
            "the sublayers (remove get_prunable_weights()).")
    return items


def prunable_variables(layer):
    """The prunable variables of a built ``layer``, in the layer's weight order (``get_prunable_weights`` first)."""
    return [variable for _, variable in prunable_items(layer)]


def weight_path(layer, variable):
    """The path naming ``variable`` (a prunable weight of ``layer``) in masks and reports."""
    for path, candidate in prunable_items(layer):
        if candidate is variable:
            return path
    return f"{layer.name}/{variable.name}"


def unmasked_weights(model, masked):
    """Paths of the trainable weights of rank >= 2 of ``model`` that are not among ``masked`` (variables).

    These are the weights a lottery-ticket mask of ``model`` leaves dense: the kernels of layers the
    registry does not know (a custom layer without ``get_prunable_weights``, a position embedding
    added with ``add_weight``). Biases (variables named ``bias``, which ``MultiHeadAttention`` and
    ``GRU`` keep as matrices) are never masked by design and are not listed.
    """
    covered = {id(v) for v in masked}
    return [v.path for v in model.trainable_weights
            if len(v.shape) >= 2 and id(v) not in covered and "bias" not in v.name]


def copy_by_layer_name(source, target, removed=()):
    """Copy each weighted layer of ``target`` (nested models entered) from its namesake in ``source``.

    For a plain rebuild of a functional subclass (a KerasHub ``ResNetBackbone``), whose variables'
    paths differ from the rebuild's while its layer names do not. A layer that the rebuild renamed (a
    layer whose constructor changes the name it is given, so that its config does not rebuild it under
    its own name: KerasHub MobileNet's depthwise block appends ``"_0"``) is copied from the source layer
    of the same class left without a namesake, in layer order; ``removed`` names the source layers that
    the rebuild left out on purpose (removed blocks), which are no candidates.
    """
    src, scoped = by_name(source), _by_path(source)
    renamed = _renamed(source, target, set(removed))
    for path, layer in _with_paths(target):
        if isinstance(layer, keras.Model) or not layer.weights:
            continue
        # the namesake in the same nested model first: CLIP's two towers each have an "embedding"
        origin = scoped.get((path, layer.name)) or src.get(layer.name) or renamed.get(id(layer))
        if origin is None:
            raise ValueError(f"Layer {layer.name!r} of the rebuilt {target.name!r} has no namesake in {source.name!r}.")
        values = origin.get_weights()
        if [v.shape for v in values] != [tuple(w.shape) for w in layer.weights]:
            raise ValueError(f"Layer {layer.name!r}: weight shapes differ between {source.name!r} and the rebuild.")
        layer.set_weights(values)
    return target


def _with_paths(model):
    """``(path, layer)`` for every layer of :func:`walk`, ``path`` the names of the nested models holding it."""
    seen = {id(model)}

    def visit(layer, path):
        for child in getattr(layer, "layers", None) or ():
            if id(child) not in seen:
                seen.add(id(child))
                yield path, child
                yield from visit(child, (*path, child.name))

    yield from visit(model, ())


def _by_path(model):
    """``{(path, name): layer}`` over ``model`` and its nested models (see :func:`_with_paths`)."""
    return {(path, layer.name): layer for path, layer in _with_paths(model)}


def _renamed(source, target, removed):
    """``{id(target layer): source layer}`` pairing, in layer order, the weighted layers of ``target`` without
    a namesake in ``source`` with those of ``source`` without one in ``target`` (and not ``removed``), when
    both lists have the same length and classes; ``{}`` otherwise (the caller names the first unmatched)."""
    def weighted(model):
        return [layer for layer in walk(model) if not isinstance(layer, keras.Model) and layer.weights]

    src_names = {layer.name for layer in walk(source)}
    dst_names = {layer.name for layer in walk(target)}
    extra = [layer for layer in weighted(target) if layer.name not in src_names]
    missing = [layer for layer in weighted(source) if layer.name not in dst_names and layer.name not in removed]
    pairs = paired_in_order(extra, missing) if extra else None
    return {id(a): b for a, b in pairs or ()}


def paired_in_order(layers, counterparts):
    """``[(layer, counterpart)]`` zipping two lists of layers position by position, or ``None`` when the
    lists differ in length or in the class at some position (they are then not the same layers)."""
    layers, counterparts = list(layers), list(counterparts)
    if len(layers) != len(counterparts) or any(type(a) is not type(b) for a, b in zip(layers, counterparts)):
        return None
    return list(zip(layers, counterparts))
