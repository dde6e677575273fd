"""Layers: the one walk over a model's layers, and the one definition of "prunable".

* :func:`walk` visits every layer of a model once, depth first, entering nested models and (with
  ``unwrap=True``) the layer inside a ``keras.layers.Wrapper``. Every part of the library that looks
  for layers (masks, density reports, export, batch-norm recomputation, weight copies) uses it.
* The prunable registry says which weights a lottery-ticket mask covers. Built-in: the kernels of
  ``Dense``, ``Conv1D/2D/3D``, ``Conv1D/2D/3DTranspose``, the depthwise kernel of
  ``DepthwiseConv1D/2D`` (a variable named ``kernel`` in Keras 3), both kernels of
  ``SeparableConv1D/2D`` and the ``embeddings`` of ``Embedding``. Biases and normalization layers
  are never masked. A custom layer opts in by defining ``get_prunable_weights(self) -> list of its
  variables`` (called once it is built), the same protocol as TFMOT's ``PrunableLayer``.
"""

import keras

__all__ = ["SUPPORTED", "by_name", "is_prunable", "prunable_variables", "prunable_weight_names", "walk",
           "weight_path"]

# The groups are disjoint, so the order of the classes does not matter.
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
    (keras.layers.Embedding, ("embeddings",)),
)

SUPPORTED = ", ".join(cls.__name__ for cls, _ in _BUILTIN)


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
    """Names of the built-in prunable weights of ``layer`` (empty tuple for other and custom layers)."""
    for cls, names in _BUILTIN:
        if isinstance(layer, cls):
            return names
    return ()


def is_prunable(layer):
    """Whether ``layer`` has prunable weights: a built-in prunable type, or ``get_prunable_weights()``.

    Models are never prunable layers themselves (their layers are).
    """
    if isinstance(layer, keras.Model):
        return False
    return callable(getattr(layer, "get_prunable_weights", None)) or bool(prunable_weight_names(layer))


def prunable_variables(layer):
    """The prunable variables of a built ``layer``, in the layer's weight order (``get_prunable_weights`` first)."""
    custom = getattr(layer, "get_prunable_weights", None)
    if callable(custom):
        return list(custom())
    names = prunable_weight_names(layer)
    return [v for v in layer.weights if v.name in names]


def weight_path(layer, variable):
    """The path naming ``variable`` of ``layer`` in masks and reports: ``"<layer name>/<weight name>"``."""
    return f"{layer.name}/{variable.name}"
