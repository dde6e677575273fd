"""Masks attached in place to the layers of any model, at any depth.

A plain Sequential or functional model is masked by rebuilding its graph with ``MaskedLayer``
wrappers (:func:`keras_lottery.masking.mask`). Every other model keeps its class, its methods and its
layer objects: KerasHub's backbones and task models (functional subclasses whose config holds
constructor arguments, so their graph cannot be rebuilt without losing ``generate()``), a user's
``keras.Model`` subclass. There, every layer that owns prunable weights, at any depth (the attention
projections and MLP kernels inside a ``TransformerDecoder``, the kernels of a user's layer of layers,
a layer with ``get_prunable_weights()``), gets a *holder*: a ``MaskedLayer`` that is not in the
model's graph. The layer's ``call`` is replaced, on that
instance only, by one that runs the original ``call`` inside the holder's masking scope: the gradient
of each masked weight is multiplied by its mask, exactly as in a wrapper, at the same cost. Nothing
else of the layer changes: its graph nodes, attributes, config and weights are the same objects.

Weights are named by their Keras variable path (``"transformer_layer_0/self_attention/query/kernel"``),
unique in a model; two variables sharing a path get ``"#2"``, ``"#3"`` appended in model order.

The holders are not tracked by the model: ``model.weights``, ``get_weights()``, the class's config
and a saved ``.keras`` file are those of the plain model, whose dead weights are exactly zero. A
``.keras`` file therefore loads as the plain class with the pruned weights (a stripped ticket); the
masks themselves are saved with ``Mask.save`` and installed again with ``kl.mask(loaded)`` and
``kl.apply_mask``, or read back from the zeros with ``kl.mask(loaded, from_zeros=True)``. Training
(``keras_lottery.training``) does this itself: each checkpoint and final model has its attached masks
beside it (``ckpt-<step>.mask.npz``, ``model.mask.npz``), installed again when it is loaded, so IMP and
resumed runs keep them. A mask of another instance of the same class, whose sublayers Keras numbered
anew (``dense_24`` here, ``dense_36`` there), is installed by position (:func:`keras_lottery.masks.keyed_like`).
"""

import functools

import keras

from keras_lottery import compat, layers

__all__ = ["attach", "attached_holders", "check_owners_built", "detach", "holder_of", "mask_layers", "owners", "prunable_paths"]

_HOLDER = "_keras_lottery_holder"  # the attribute of a replaced call that points at its holder


def holder_of(layer):
    """The holder attached to ``layer``, or None."""
    return getattr(layer.__dict__.get("call"), _HOLDER, None)


def _is_owner(layer):
    """Whether ``layer`` owns prunable weights itself (the leaves of the registry in keras_lottery.layers)."""
    return bool(callable(getattr(layer, "get_prunable_weights", None)) or layers.prunable_weight_names(layer)
                or isinstance(layer, layers.CONV_RNN))


def _deep(model):
    """Every layer beneath ``model`` at any depth, once, depth first in tracking order."""
    seen, out = {id(model)}, []

    def visit(layer):
        for child in compat.sublayers(layer):
            if id(child) in seen:
                continue
            seen.add(id(child))
            out.append(child)
            if not _is_owner(child):  # an owner's sublayers are its own business (get_prunable_weights)
                visit(child)

    visit(model)
    return out


def owners(model):
    """The layers of ``model`` (at any depth) that own prunable weights and are not inside a wrapper."""
    wrapped = set()
    for layer in _deep(model):
        if _is_mask_wrapper(layer):
            wrapped.update(id(x) for x in [layer.layer, *_deep(layer.layer)])
    return [layer for layer in _deep(model)
            if _is_owner(layer) and id(layer) not in wrapped and not isinstance(layer, keras.Model)
            and not _is_mask_wrapper(layer)]


def _is_mask_wrapper(layer):
    """A ``MaskedLayer`` in the graph (told by its interface: keras_lottery.masking imports this module)."""
    return isinstance(layer, keras.layers.Wrapper) and callable(getattr(layer, "run_masked", None))


def attached_holders(model):
    """The holders attached to the layers of ``model``, in model order."""
    found = [holder_of(layer) for layer in _deep(model)]
    return [holder for holder in found if holder is not None]


def mask_layers(model, wrapper_class):
    """The wrappers (instances of ``wrapper_class``) and attached holders of ``model``, in model order."""
    out = []
    for layer in _deep(model):
        if isinstance(layer, wrapper_class):
            out.append(layer)
        elif holder_of(layer) is not None:
            out.append(holder_of(layer))
    return out


def prunable_paths(model):
    """``[(path, variable)]`` for every prunable weight of ``model``'s owners, named as attached masks name them."""
    variables = [v for layer in owners(model) if layer.built for _, v in layers.prunable_items(layer)]
    paths = _unique_paths(variables)
    return [(paths[id(v)], v) for v in variables]


def _unique_paths(variables):
    """``{id(variable): path}``: Keras variable paths, with ``#n`` added to the second and later of a path."""
    counts, out = {}, {}
    for variable in variables:
        n = counts[variable.path] = counts.get(variable.path, 0) + 1
        out[id(variable)] = variable.path if n == 1 else f"{variable.path}#{n}"
    return out


def check_owners_built(model):
    """``owners(model)``, after checking that their weights exist: raises ``ValueError`` when ``model`` is not
    built and an owner is not either, or when ``model`` is marked built and no owner is (Keras'
    ``model.build(shape)`` on a subclassed model without a ``build()`` method creates no weights)."""
    found = owners(model)
    unbuilt = [layer.name for layer in found if not layer.built]
    if unbuilt and not model.built:
        raise ValueError(f"{model.name!r} has layers that are not built yet ({unbuilt[:5]}); call the model on a "
                         "batch (or build it) before masking it.")
    if found and len(unbuilt) == len(found):
        raise ValueError(f"{model.name!r} is marked built but none of its layers is ({unbuilt[:5]}), so it has no "
                         "weights to mask (model.build(shape) creates none for a subclassed model without a build() "
                         "method); call the model on a batch before masking it.")
    return found


def attach(model, make_holder, only=None):
    """Attaches a holder, made by ``make_holder(layer)``, to every owner of prunable weights in ``model``
    (with ``only``, a set of ``id(layer)``: to those owners).

    Owners that already have one keep it. Returns the holders of ``model`` (old and new), in model order.

    An unbuilt owner of a built model is skipped: the model's call never reached it, so it has no weights
    (EfficientNet's squeeze-and-excite layers at ratio 0 are made but never called).

    Raises:
        ValueError: ``model`` is not built and an owner is not built yet (call the model on a batch first).
    """
    found = [layer for layer in check_owners_built(model) if layer.built]
    paths = _unique_paths([v for layer in found for _, v in layers.prunable_items(layer)])
    for layer in found:
        if holder_of(layer) is not None or (only is not None and id(layer) not in only):
            continue
        holder = make_holder(layer)
        holder._paths = paths
        holder.build(None)
        _replace_call(layer, holder)
    return attached_holders(model)


def _replace_call(layer, holder):
    original = layer.call

    @functools.wraps(original)
    def call(*args, **kwargs):
        return holder.run_attached(original, args, kwargs)

    setattr(call, _HOLDER, holder)
    object.__setattr__(layer, "call", call)  # on this instance only; not tracked, not saved


def detach(model):
    """Removes every attached holder of ``model``: its layers get their own ``call`` back (weights unchanged)."""
    for layer in _deep(model):
        if holder_of(layer) is not None:
            object.__delattr__(layer, "call")
