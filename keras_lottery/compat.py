"""Every reliance on Keras behaviour that is not public API, in one place.

Each function here reads or writes something Keras does not promise to keep: a private attribute,
a naming convention, a serialization format. ``tests/test_compat.py`` checks each one against the
installed Keras, so a release that changes any of them fails those tests by name instead of
breaking pruning, rewinding or graph surgery quietly. Nothing else in the package touches these
details.
"""

import keras
import numpy as np
from keras.src.backend.common import global_state  # private: the call-context store (call_context_training)
from keras.src.models import functional as _functional  # private: the node serializer of Functional.get_config
from keras.src.ops.function import make_node_key as _node_key  # private: the key of a node in Function._nodes

__all__ = ["KERAS_TENSOR", "build_shapes", "call_context_training", "call_with_inputs", "clone_graph", "graph_config", "history_key",
           "input_layer_names", "input_shape_arg", "is_functional_class", "is_graph_model", "iter_keras_tensors", "layer_lists",
           "learning_rate_variable", "mark_plain_functional", "optimizer_slots", "optimizer_state", "replace_call", "set_history_key",
           "set_input_shape_arg", "steps_per_execution", "sublayers", "tensor_shape"]

# How ``Functional.get_config()`` serializes a symbolic tensor inside a node's call arguments:
# ``{"class_name": "__keras_tensor__", "config": {"shape": ..., "dtype": ..., "keras_history":
# [layer name, node index, tensor index]}}``.
KERAS_TENSOR = "__keras_tensor__"


def iter_keras_tensors(obj):
    """Yields every serialized Keras tensor dict inside a node's nested call arguments (in order)."""
    if isinstance(obj, dict):
        if obj.get("class_name") == KERAS_TENSOR:
            yield obj
            return
        for value in obj.values():
            yield from iter_keras_tensors(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from iter_keras_tensors(value)


def history_key(serialized_tensor):
    """``(layer name, node index, tensor index)`` of a serialized Keras tensor."""
    layer, node, tensor = serialized_tensor["config"]["keras_history"]
    return (layer, int(node), int(tensor))


def tensor_shape(serialized_tensor):
    """The shape (batch dimension included) recorded in a serialized Keras tensor."""
    return tuple(serialized_tensor["config"]["shape"])


def set_history_key(serialized_tensor, key):
    """Points a serialized Keras tensor at ``key`` = ``(layer name, node index, tensor index)``."""
    serialized_tensor["config"]["keras_history"] = list(key)


def is_functional_class(model):
    """Whether ``model`` is an instance of Keras' (private) ``Functional`` class.

    Keras exports no name for it: ``keras.Model(inputs, outputs)`` returns an instance of
    ``Functional``, a ``keras.Model`` subclass. ``keras.Sequential`` is not one (it wraps a functional
    model of its own). The test is by class name in the MRO.
    """
    return isinstance(model, keras.Model) and any(c.__name__ == "Functional" for c in type(model).__mro__)


def is_graph_model(model):
    """Whether ``model`` is a plain Sequential or functional model: exactly ``keras.Sequential`` or
    ``Functional``, whose ``get_config()`` is its graph, so ``keras.models.clone_model`` rebuilds it.

    A subclass of either (KerasHub's backbones and task models, a user's ``keras.Model`` subclass built
    functionally) is not: its config holds constructor arguments, and a rebuild from the graph would
    lose its class and methods.
    """
    return type(model) is keras.Sequential or (is_functional_class(model) and type(model).__name__ == "Functional"
                                                and type(model).__module__.startswith("keras."))


def sublayers(layer):
    """The layers ``layer`` holds directly (attributes, lists and dicts of layers), in tracking order.

    Keras keeps them in ``Layer._flatten_layers`` (private); a model's are its ``layers``.
    """
    if isinstance(layer, keras.Model):
        return list(layer.layers)
    return list(layer._flatten_layers(include_self=False, recursive=False))


def layer_lists(layer):
    """``(attribute, list of layers)`` for each public attribute of ``layer`` holding a non-empty list of layers.

    Keras tracks a list set as a layer attribute as a ``TrackedList`` (a ``list`` subclass) kept in the
    instance ``__dict__``, in assignment order.
    """
    for name, value in vars(layer).items():
        if (not name.startswith("_") and isinstance(value, list) and value
                and all(isinstance(v, keras.layers.Layer) for v in value)):
            yield name, value


def replace_call(layer, function):
    """Makes ``layer(...)`` run ``function`` in place of ``layer.call``; returns a function undoing it.

    ``Layer.__call__`` looks ``self.call`` up at each call, so an instance attribute shadows the class's
    method (inside another layer's call, in a functional model's eager call and in a trace alike).
    """
    previous = layer.__dict__.get("call")
    object.__setattr__(layer, "call", function)  # past Layer.__setattr__'s tracking

    def restore():
        if previous is None:
            object.__delattr__(layer, "call")
        else:
            object.__setattr__(layer, "call", previous)

    return restore


def call_with_inputs(model, values, **kwargs):
    """Calls ``model`` on ``values`` (one per ``model.inputs``, in order), packed in the structure the model was
    built with (``model.input``): a dict keyed by input name (KerasHub text models), a list, or a single tensor."""
    if isinstance(model, keras.Sequential):  # one input; one built by build() or fit() has no ``input`` to read
        return model(values[0], **kwargs)
    by_id = {id(t): v for t, v in zip(model.inputs, values)}
    return model(keras.tree.map_structure(lambda t: by_id[id(t)], model.input), **kwargs)


def call_context_training():
    """The ``training`` value of the Keras layer call being traced or run (None outside a call, or unset).

    ``Layer.__call__`` resolves ``training`` (argument, outer call, default) and keeps it in a call
    context held in Keras' global state; a layer whose ``call`` takes no ``training`` argument (Dense,
    EinsumDense) can still read it there.
    """
    context = global_state.get_global_attribute("current_call_ctx")
    return None if context is None else getattr(context, "training", None)


def optimizer_slots(optimizer, variable):
    """The optimizer variables created for ``variable`` (momentum, moments, EMA, accumulators).

    Keras' ``Optimizer.add_variable_from_reference`` names them ``<variable path with _>_<slot name>``;
    they are found by that prefix and by having the variable's shape.
    """
    if optimizer is None:
        return []
    prefix = variable.path.replace("/", "_") + "_"
    return [v for v in optimizer.variables if v.name.startswith(prefix) and tuple(v.shape) == tuple(variable.shape)]


def learning_rate_variable(optimizer):
    """The variable holding a fixed learning rate (``optimizer._learning_rate``), or None for a schedule."""
    value = getattr(optimizer, "_learning_rate", None)
    return value if isinstance(value, keras.Variable) else None


def optimizer_state(optimizer):
    """The optimizer's own variables as NumPy arrays, in ``save_own_variables`` order (iterations first).

    ``save_own_variables`` fills a store keyed ``"0"``, ``"1"``, ...; the order is
    ``optimizer.variables``'.
    """
    store = {}
    optimizer.save_own_variables(store)
    return [np.asarray(store[str(i)]) for i in range(len(store))]


def steps_per_execution(model):
    """How many optimizer steps ``model.fit`` runs between two calls of a batch callback.

    ``compile(steps_per_execution=n)`` stores ``n`` on the model as ``steps_per_execution`` (an
    attribute Keras does not document); ``fit`` then calls ``on_train_batch_begin/end`` once per
    ``n`` steps. 1 for a model that was never compiled.
    """
    return max(1, int(getattr(model, "steps_per_execution", 1) or 1))


def input_shape_arg(layer):
    """The ``input_shape`` a layer was constructed with (``Dense(20, input_shape=(28,))``), or None.

    Keras 3 keeps it in ``Layer._input_shape_arg``; ``keras.Sequential`` reads it from its first layer to
    add an ``InputLayer``.
    """
    return getattr(layer, "_input_shape_arg", None)


def set_input_shape_arg(layer, shape):
    """Gives ``layer`` the ``input_shape`` of another (a wrapper carrying its wrapped layer's)."""
    layer._input_shape_arg = shape


def build_shapes(layer):
    """``{argument name: shape}`` a built layer or subclassed model was built with, or None if it never was.

    Keras 3 records them in ``Layer._build_shapes_dict`` on the first call (``x_shape`` for an argument
    ``x``, batch dimension included) or on ``build(input_shape)`` (``input_shape``); ``Model.export``
    reads the same attribute to give a subclassed model its input signature.
    """
    shapes = getattr(layer, "_build_shapes_dict", None)
    return dict(shapes) if shapes else None


def input_layer_names(model):
    """The names of the ``InputLayer`` of each of ``model.inputs``, in order (a Keras tensor's producer is
    in its private ``_keras_history``)."""
    return [tensor._keras_history.operation.name for tensor in keras.tree.flatten(model.inputs)]


def clone_graph(model, clone_function, keep_compiled=False):
    """``keras.models.clone_model(model, clone_function=...)`` of a plain Sequential / functional model, at
    every depth, as tf_keras did it: nested graph models are cloned the same way; the clone's ``Input``
    layers keep their names (Keras 3 names them after the input tensors, ``keras_tensor_N``); and, unless
    ``keep_compiled``, the clone is not compiled (Keras 3 compiles it from the model's compile config when
    the model is compiled, with a new optimizer; TFMOT's callers compile what they get)."""
    def function(layer):
        if isinstance(layer, keras.Model) and is_graph_model(layer):
            return clone_graph(layer, clone_function, keep_compiled)
        return clone_function(layer)

    input_tensors = None
    if type(model) is not keras.Sequential:
        inputs = model.input
        names = iter(input_layer_names(model))
        input_tensors = keras.tree.map_structure(
            lambda x: keras.Input(batch_shape=x.shape, dtype=x.dtype, sparse=getattr(x, "sparse", False),
                                  name=next(names)), inputs)
    compiled = model.compiled
    if not keep_compiled:
        model.compiled = False  # Keras 3's clone_model compiles the clone of a compiled model
    try:
        return keras.models.clone_model(model, input_tensors=input_tensors, clone_function=function)
    finally:
        model.compiled = compiled


def graph_config(model):
    """``(config, nodes)``: the functional graph of any ``Functional`` instance, read from its nodes.

    ``config`` has the format of ``Functional.get_config()`` for a plain functional model (layers with
    ``inbound_nodes`` of serialized Keras tensors, ``input_layers``, ``output_layers``) and is built the
    same way (from ``model._nodes``, each operation's ``_inbound_nodes`` and Keras' ``serialize_node``),
    but also for a subclass whose own ``get_config()`` returns constructor arguments (KerasHub
    backbones and task models). Such a subclass nested in the graph is written as a plain
    ``"Functional"`` entry holding its own graph config, so ``keras.Model.from_config(config)`` rebuilds
    the graph as plain functional models (same layer names; the subclasses' methods are lost).
    ``nodes`` maps ``(operation name, node index as serialized tensors number it)`` to the live ``keras`` Node,
    whose ``arguments`` and ``outputs`` are the symbolic tensors of the call.
    """
    if not is_functional_class(model):
        raise TypeError(f"{model.name!r} is a {type(model).__name__}, not a functional model; its graph cannot be read.")
    own = model._nodes
    reindex, nodes = {}, {}
    for operation in model.operations:
        kept = 1 if is_functional_class(operation) else 0  # a functional model's first node is its own creation
        position = 0  # the node's place in the serialized inbound_nodes, as serialized tensors number it
        for index in range(len(operation._inbound_nodes)):
            key = _node_key(operation, index)
            if key in own:
                reindex[key] = kept
                nodes[(operation.name, position)] = operation._inbound_nodes[index]
                kept += 1
                position += 1
    layer_configs = []
    for operation in model.operations:
        inbound = []
        for index, node in enumerate(operation._inbound_nodes):
            if _node_key(operation, index) in own:
                data = _functional.serialize_node(node, own_nodes=own)
                if data is not None:
                    inbound.append(data)
        layer_configs.append({**_serialize_operation(operation), "name": operation.name, "inbound_nodes": inbound})

    def tensor_config(tensor):
        operation, node_index, tensor_index = tensor._keras_history
        return [operation.name, reindex[_node_key(operation, node_index)], tensor_index]

    config = {"name": model.name, "trainable": model.trainable, "layers": layer_configs,
              "input_layers": keras.tree.map_structure(tensor_config, model._inputs_struct),
              "output_layers": keras.tree.map_structure(tensor_config, model._outputs_struct)}
    return config, nodes


def _serialize_operation(operation):
    """A layer's serialized config; a functional subclass (KerasHub backbone) as a plain Functional graph."""
    if is_functional_class(operation) and not is_graph_model(operation):
        inner, _ = graph_config(operation)
        return mark_plain_functional({"config": inner})
    try:
        return keras.saving.serialize_keras_object(operation)
    except Exception as error:  # noqa: BLE001 - e.g. keras-hub 0.32's LlamaTransformerDecoder.get_config fails
        # The graph is still read; only a rebuild from this config (keras.Model.from_config) needs the entry,
        # and fails naming the layer and this error.
        return {"module": type(operation).__module__, "class_name": type(operation).__name__,
                "registered_name": None, "config": {"unserializable": f"{type(error).__name__}: {error}"}}


def mark_plain_functional(layer_config):
    """Make a serialized nested-model entry deserialize as Keras' plain ``Functional`` class (in place; returned)."""
    layer_config.update(module="keras.src.models.functional", class_name="Functional", registered_name="Functional")
    return layer_config
