"""Layer collapse: does a pruned network still connect its input to its output?

Counting the weights a mask keeps per tensor says nothing about paths: one weight kept in a depthwise
kernel of 16 channels cuts 15 of them, and a network whose every path is cut gives the same output
for every input. The check is SynFlow's forward pass (Tanaka et al., 2020): every weight replaced by
its absolute value (dead weights stay 0), biases and batch-norm shifts and means set to 0, variances to
1, and an all-ones input sent through in inference mode. Every activation is then the sum, over the
paths reaching it, of products of absolute weights: it is 0 exactly when no path reaches it, whatever
the scale of the weights (an untrained network whose activations vanish in float32 is not mistaken for
a cut one). The first layer (in graph order) whose output is all zeros while one of its inputs is not is
where the signal dies. The model's variables are restored afterwards.

A path can also die in the activations: a unit whose kept weights leave it always negative before a
ReLU. So when every path survives, the model itself runs on two random inputs; if its output is the same
for both and some layer outputs all zeros from inputs that are not, that layer is named.

It needs symbolic float inputs (images, features); a model taking token ids or masks, or one never
called on inputs, is not checked (:func:`dead_layer` returns None).
"""

import warnings

import keras
import numpy as np

from keras_lottery import compat

__all__ = ["CollapseWarning", "dead_layer", "warn_if_collapsed"]


class CollapseWarning(UserWarning):
    """A pruned network whose output no longer depends on its input."""


_ZEROED = ("bias", "beta", "moving_mean")  # shifts: a unit with no path must read 0
_ONES = ("moving_variance",)


def _synflow_value(variable):
    """The value ``variable`` takes during the check, or None to leave it (integer counters, seeds)."""
    if not str(variable.dtype).startswith(("float", "bfloat")):
        return None
    value = keras.ops.convert_to_numpy(variable.value)
    if variable.name in _ZEROED:
        return np.zeros_like(value)
    if variable.name in _ONES:
        return np.ones_like(value)
    return np.abs(value)


def _ones_inputs(model):
    """An all-ones batch of 1 for each of ``model``'s inputs, or None when an input is not float."""
    values = []
    for tensor in model.inputs:
        if not str(tensor.dtype).startswith(("float", "bfloat")):
            return None
        values.append(np.ones([1] + [8 if d is None else int(d) for d in tensor.shape[1:]], str(tensor.dtype)))
    return values


def _zero(value):
    return not np.any(keras.ops.convert_to_numpy(value))


def _call(model, values):
    return compat.call_with_inputs(model, values, training=False)


def _has_symbolic_inputs(model):
    """Whether ``model`` was built on symbolic inputs (a Sequential built by ``build()`` alone has none)."""
    try:
        return bool(model.inputs) and model.input is not None
    except (AttributeError, ValueError):
        return False


def dead_layer(model):
    """The name of the layer where ``model``'s signal dies, ``model``'s own name if that layer cannot be
    named, or None when a path still connects input and output (or the model's inputs are not float)."""
    if not _has_symbolic_inputs(model):  # an unbuilt subclassed model, a Sequential never called
        return None
    values = _ones_inputs(model)
    if values is None:
        return None
    saved = [(v, keras.ops.convert_to_numpy(v.value)) for v in model.variables]
    try:
        for variable, _ in saved:
            value = _synflow_value(variable)
            if value is not None:
                variable.assign(value)
        cut = _where_it_dies(model, values)
    finally:
        for variable, value in saved:
            variable.assign(value)
    if cut is not None:
        return cut
    rng = np.random.default_rng(0)
    pair = [rng.uniform(0.0, 1.0, size=(2, *v.shape[1:])).astype(v.dtype) for v in values]
    outputs = [keras.ops.convert_to_numpy(y) for y in keras.tree.flatten(_call(model, pair))]
    if all(np.array_equal(y[0], y[1]) for y in outputs):
        return _where_it_dies(model, pair, require_dead_output=False)
    return None


def _where_it_dies(model, values, require_dead_output=True):
    """The first layer whose output is all zeros from inputs that are not; with ``require_dead_output``, only
    when the model's output is all zeros (else None)."""
    if require_dead_output and not all(_zero(y) for y in keras.tree.flatten(_call(model, values))):
        return None
    if not compat.is_graph_model(model):
        return model.name if require_dead_output else None
    candidates = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    try:
        probe = keras.Model(model.inputs, [layer.output for layer in candidates])
        per_layer = probe(values, training=False)
    except (AttributeError, ValueError):  # a layer used at several places has no single output to probe
        return model.name
    alive = {id(t) for t in model.inputs}
    for layer, value in zip(candidates, per_layer):
        dead = all(_zero(v) for v in keras.tree.flatten(value))
        if dead and any(id(t) in alive for t in keras.tree.flatten(layer.input)):
            return layer.name
        if not dead:
            alive.update(id(t) for t in keras.tree.flatten(layer.output))
    return model.name if require_dead_output else None


def warn_if_collapsed(model, what="prune"):
    """Warns (``CollapseWarning``) naming the layer where ``model``'s signal dies; returns that name or None."""
    name = dead_layer(model)
    if name is not None:
        warnings.warn(f"{what}: {model.name!r} no longer connects its input to its output (its output is the "
                      f"same for every input): the signal dies at {name!r}. Prune less there (exclude it, or use "
                      "GlobalMagnitude's default keep_units=True).", CollapseWarning, stacklevel=3)
    return name
