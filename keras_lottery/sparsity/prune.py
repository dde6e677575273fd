"""``prune_low_magnitude``, ``strip_pruning``, ``prune_scope`` / ``strip_scope`` and ``check_m_by_n``."""

import contextlib

import keras

from keras_lottery import attached, compat, graph, layers
from keras_lottery.masking import MaskedLayer, masked_layers, strip
from keras_lottery.sparsity import schedules, structured
from keras_lottery.sparsity.wrapper import (PrunableLayer, PruneLowMagnitude, check_wrappable, pruning_wrappers,
                                            reset_stripping, set_stripping, stripping)

__all__ = ["check_m_by_n", "prune_low_magnitude", "prune_scope", "strip_pruning", "strip_scope"]


def prune_low_magnitude(to_prune, pruning_schedule=None, block_size=(1, 1), block_pooling_type="AVG",
                        pruning_policy=None, sparsity_m_by_n=None, **kwargs):
    """Wraps a layer, a list of layers, or every prunable layer of a model, in ``PruneLowMagnitude``.

    * a layer: returns ``PruneLowMagnitude(layer, ...)`` wrapping that very layer object (``kwargs`` go
      to the wrapper); the layer must have prunable weights (``keras_lottery.layers``, a layer holding
      such layers, or ``get_prunable_weights()``), or be one of TFMOT's no-op layers (``Dropout``,
      pooling, ``BatchNormalization``, ...: ``wrapper.NO_OP_LAYERS``), wrapped with nothing to prune;
    * a list: as in TFMOT, every layer wrapped (no-op layers too), wrappers and ``InputLayer`` unchanged;
    * a plain Sequential or functional model (nested models included): a new model, not compiled, with
      the same graph (``Input`` names included) whose prunable layers are wrapped; as in TFMOT the
      wrappers hold the model's own layer objects (``wrapper.layer is original``), so the two models
      share weights. Layers already wrapped keep their masks and step; layers with nothing to prune
      stay unwrapped (TFMOT gives them no-op wrappers).
    * any other model (a KerasHub backbone or task model such as ``GPT2CausalLM``, a ``keras.Model``
      subclass): pruned in place and returned, with its class and methods (``generate()`` keeps
      working): every layer owning prunable weights, at any depth, gets a ``PruneLowMagnitude`` attached
      to it (:mod:`keras_lottery.attached`); weights are named by their Keras variable path.

    With ``pruning_policy``, only layers it allows are pruned.

    Inside ``strip_scope()`` it returns ``to_prune`` unchanged (see ``strip_pruning`` for subclassed
    models). Train the result with the ``UpdatePruningStep`` callback.

    Args:
        to_prune: a layer, a list of layers, or a Sequential / functional ``keras.Model``.
        pruning_schedule: a ``PruningSchedule``; default ``ConstantSparsity(0.5, begin_step=0)``.
        block_size: ``(rows, columns)`` pruned together (module ``structured``); default single weights.
        block_pooling_type: ``"AVG"`` or ``"MAX"``.
        pruning_policy: an object with ``allow_pruning(layer) -> bool`` (and optionally
            ``ensure_model_supports_pruning(model)``), for models.
        sparsity_m_by_n: ``(m, n)``: ``m`` zeros in every ``n`` input weights (e.g. ``(2, 4)``).

    Raises:
        ValueError: an argument is malformed; a layer cannot be wrapped (:func:`wrapper.check_wrappable`: not
            prunable, already wrapped, a subclass of a built-in layer without ``get_prunable_weights()``).
    """
    if stripping():
        return to_prune
    params = dict(pruning_schedule=pruning_schedule if pruning_schedule is not None
                  else schedules.ConstantSparsity(0.5, 0),
                  block_size=structured.check_block_size(block_size), block_pooling_type=block_pooling_type,
                  sparsity_m_by_n=None if sparsity_m_by_n is None else structured.check_m_by_n_arg(sparsity_m_by_n))
    if block_pooling_type not in ("AVG", "MAX"):
        raise ValueError(f"block_pooling_type must be 'AVG' or 'MAX'; got {block_pooling_type!r}.")
    if isinstance(to_prune, (list, tuple)):
        return [_wrap_listed(layer, params) for layer in to_prune]
    if isinstance(to_prune, keras.Model):
        if pruning_policy is not None and callable(getattr(pruning_policy, "ensure_model_supports_pruning", None)):
            pruning_policy.ensure_model_supports_pruning(to_prune)
        if not compat.is_graph_model(to_prune):
            return _prune_in_place(to_prune, params, pruning_policy)
        return _prune_model(to_prune, params, pruning_policy)
    if isinstance(to_prune, keras.layers.Layer):
        check_wrappable(to_prune)
        return PruneLowMagnitude(to_prune, **params, **kwargs)
    raise ValueError("prune_low_magnitude takes a keras layer, a list of layers, or a Sequential / functional model; "
                     f"got {type(to_prune).__name__}.")


def _wrap_listed(layer, params):
    """A layer of a list, as TFMOT: wrappers and ``InputLayer`` as they are, every other layer wrapped (no-op
    layers too); a layer that cannot be wrapped raises."""
    if isinstance(layer, (PruneLowMagnitude, keras.layers.InputLayer)):
        return layer
    check_wrappable(layer)
    return PruneLowMagnitude(layer, **params)


def _wants(layer, policy):
    if isinstance(layer, MaskedLayer) or isinstance(layer, keras.Model):
        return False
    if not layers.is_prunable(layer):
        return False
    check_wrappable(layer)  # a subclass of a built-in layer without get_prunable_weights() raises, as in TFMOT
    return policy is None or bool(policy.allow_pruning(layer))


def _prune_model(model, params, policy):
    def clone_function(layer):  # the model's own layer objects, as TFMOT
        if graph.is_subclassed(layer):  # TFMOT refuses it; its layers are pruned in place, as a model of its own
            return _prune_in_place(layer, params, policy)
        if _wants(layer, policy):
            return PruneLowMagnitude(layer, **params)
        return layer

    return compat.clone_graph(model, clone_function)


def _prune_in_place(model, params, policy):
    allowed = set()
    for layer in attached.owners(model):
        if policy is None or bool(policy.allow_pruning(layer)):
            allowed.add(id(layer))
    if not allowed:
        return model
    make = lambda layer: PruneLowMagnitude(layer, **params)  # noqa: E731
    attached.attach(model, make, only=allowed)
    return model


@contextlib.contextmanager
def prune_scope():
    """A ``keras.saving.CustomObjectScope`` with this module's objects, for loading pruned models.

    Not needed for ``.keras`` files (the classes are registered); kept for TFMOT code that uses it.
    """
    objects = {"PruneLowMagnitude": PruneLowMagnitude, "ConstantSparsity": schedules.ConstantSparsity,
               "PolynomialDecay": schedules.PolynomialDecay, "PrunableLayer": PrunableLayer}
    with keras.saving.CustomObjectScope(objects):
        yield


@contextlib.contextmanager
def strip_scope():
    """Inside it, ``prune_low_magnitude`` returns what it is given, unwrapped.

    A subclassed model that calls ``prune_low_magnitude`` in ``__init__`` is built without pruning
    wrappers in this scope: ``strip_pruning`` uses it, and so does loading a stripped subclassed
    model (``with strip_scope(): keras.models.load_model(path)``).
    """
    token = set_stripping(True)
    try:
        yield
    finally:
        reset_stripping(token)


def strip_pruning(model):
    """A copy of ``model`` without pruning wrappers, the masks baked into the weights (dead weights exactly 0).

    Sequential and functional models (nested ones included) are rebuilt with the same graph and layer
    names (``Input`` layers included), not compiled, as in TFMOT; the result saves and loads with no
    custom objects. A model pruned in place (a KerasHub model, a
    subclassed model given to ``prune_low_magnitude``) comes back as a copy of its own class from its
    config (``keras_lottery.strip``). A subclassed model that wraps its own layers is rebuilt from its
    config inside ``strip_scope()`` (so its ``__init__`` creates plain layers), built with its build
    config, and given the masked weights layer by layer in order; load such a model inside
    ``strip_scope()``. ``model`` is not modified.

    Raises:
        ValueError: not a ``keras.Model``, or (subclassed) a model whose rebuilt copy has other layers.
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"strip_pruning takes a keras.Model; got {type(model).__name__}.")
    if compat.is_graph_model(model):
        return strip(model, keep_compiled=False)
    holders = attached.attached_holders(model)
    if holders and len(holders) == len(masked_layers(model)):  # pruned in place, no wrapper of its own
        return strip(model)
    return _strip_subclassed(model)


def _leaves(model):
    """Weight-carrying layers in walk order, wrappers replaced by the layer they wrap."""
    return [layer for layer in layers.walk(model, unwrap=True)
            if not isinstance(layer, (keras.Model, MaskedLayer)) and layer.weights]


def _strip_subclassed(model):
    if not model.built:
        raise ValueError(f"strip_pruning: build {model.name!r} (call it on data) first.")
    with strip_scope():
        new = type(model).from_config(model.get_config())
        new.build_from_config(model.get_build_config())
    masks = {id(v): keras.ops.convert_to_numpy(m.value) for w in masked_layers(model) for _, v, m in w.masked_weights()}
    source, target = _leaves(model), _leaves(new)
    if [type(x) for x in source] != [type(x) for x in target]:
        raise ValueError(f"strip_pruning: the rebuilt {type(model).__name__} has layers {[type(x).__name__ for x in target]}, "
                         f"the model {[type(x).__name__ for x in source]}; does its __init__ depend on more than its config?")
    for src, dst in zip(source, target):
        values = [keras.ops.convert_to_numpy(v.value) * masks[id(v)] if id(v) in masks
                  else keras.ops.convert_to_numpy(v.value) for v in src.weights]
        dst.set_weights(values)
    return new


def check_m_by_n(model, m_by_n=(2, 4)):
    """``{weight path: whether it is M:N sparse}`` for every prunable weight of rank >= 2 of ``model``.

    Reads the stored weights (for a pruned model, the dead ones are 0), so it works on pruned,
    stripped and loaded models alike. ``all(check_m_by_n(model).values())`` is the whole-model check.
    """
    m_by_n = structured.check_m_by_n_arg(m_by_n)
    out = {}
    for layer in layers.walk(model, unwrap=True):
        if isinstance(layer, (keras.Model, MaskedLayer)) or not layers.is_prunable(layer) or not layer.built:
            continue
        for variable in layers.prunable_variables(layer):
            if len(variable.shape) >= 2:
                out[layers.weight_path(layer, variable)] = structured.is_m_by_n(
                    keras.ops.convert_to_numpy(variable.value), m_by_n)
    return out
