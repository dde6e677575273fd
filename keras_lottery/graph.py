"""The functional graph of a Keras model, read from its call nodes.

The graph is written in the format of a plain functional model's ``get_config()``
(:func:`keras_lottery.compat.graph_config` builds it from the model's own nodes, so subclasses whose
``get_config()`` returns constructor arguments, such as KerasHub backbones and task models, read the
same way). Each layer's ``inbound_nodes`` name the producing layer, its node index and its tensor index
(``keras_history``); :meth:`FunctionalGraph.tensor` returns the live symbolic tensor. A node is
a layer call or, in Keras 3, an *operation* call: ``x + y``, ``0.1 * h`` or ``keras.ops.add(x, y)`` on
symbolic tensors make operation nodes (``keras.Operation`` objects that are not layers), listed in the
config like layers. :meth:`FunctionalGraph.operation` returns either kind. The
cost model (:mod:`keras_lottery.metrics`), block discovery and removal (:mod:`keras_lottery.blocks`)
all work on this one graph.
"""

from __future__ import annotations

import copy
import inspect

import keras

from keras_lottery import compat

__all__ = ["FunctionalGraph", "functional_view", "is_functional", "is_subclassed", "output_histories"]


def is_functional(model):
    """True for a model built as a functional graph (``keras.Input`` and layer calls), whatever its class.

    Plain functional models and their subclasses (KerasHub backbones and task models, a user's
    ``keras.Model`` subclass that calls ``super().__init__(inputs, outputs)``) are; ``keras.Sequential``
    models (a list of layers) and subclassed models with their own ``call`` are not.
    """
    return compat.is_functional_class(model) and bool(getattr(model, "inputs", None))


def is_subclassed(model):
    """True for a ``keras.Model`` with a ``call()`` of its own: neither functional (:func:`is_functional`) nor
    ``keras.Sequential``, so its layers' calls are not recorded as a graph."""
    return isinstance(model, keras.Model) and not is_functional(model) and not isinstance(model, keras.Sequential)


def functional_view(model, what="this function"):
    """``model`` as a model with symbolic inputs and outputs, so that its graph can be read and exported.

    A functional model is returned as is; a ``keras.Sequential`` as a functional model of the same
    layers. A subclassed model with its own ``call()`` is called once on ``keras.Input`` tensors of the
    shapes it was built with (batch dimension free; one per ``call()`` argument, named like it, or a list
    or dict of them where the argument was one) and returned as a functional model holding it as
    its one layer, named like it: its variables are the model's own, so exporting or counting the view
    is exporting or counting the model. ``what`` names the caller in errors.

    Raises:
        ValueError: a subclassed model never built or called (its input shapes are unknown), or one whose
            ``call()`` cannot run on symbolic tensors (``keras.Input``).
    """
    if isinstance(model, keras.Sequential):
        return keras.Model(model.inputs, model.outputs, name=model.name)
    if not is_subclassed(model):
        return model
    cls = type(model).__name__
    shapes = compat.build_shapes(model)
    if not model.built:
        raise ValueError(f"{what} needs {model.name!r}'s input shape: it is a subclassed {cls} that was never called "
                         "or built; call it on a batch (model(x)) or model.build(input_shape) first.")
    if not shapes:  # Keras records them only when the call() could run on symbolic tensors
        raise ValueError(f"{what} needs {model.name!r} ({cls}) to run on symbolic inputs (keras.Input), and Keras "
                         "recorded no input shapes when it was built: its call() needs concrete values (float() or "
                         ".numpy() of a tensor, Python branches on values); write it with keras.ops instead.")
    names = _call_argument_names(model, len(shapes)) or [key.removesuffix("_shape") for key in shapes]
    inputs = [_symbolic(structure, name, model.input_dtype, what, model)
              for name, structure in zip(names, shapes.values())]
    try:
        outputs = model(*inputs)
    except Exception as error:  # a call() that needs concrete values (Python control flow on tensors, .numpy())
        raise ValueError(f"{what} could not call {model.name!r} ({cls}) on symbolic inputs of shapes "
                         f"{[tuple(t.shape) for t in keras.tree.flatten(inputs)]} ({type(error).__name__}: {error}); "
                         "it needs a call() that runs on keras.Input tensors (keras.ops, no concrete values).") from error
    return keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs, name=model.name)


def _is_shape(value):
    return isinstance(value, (tuple, list)) and all(d is None or isinstance(d, int) for d in value)


def _symbolic(structure, name, dtype, what, model):
    """``keras.Input`` tensors in the structure of one argument's build shapes (a shape, or a list, tuple or dict
    of them), batch dimension free; ``name`` names the tensor, ``name_<i>`` or the key those of a list or dict."""
    if _is_shape(structure) and len(structure) > 0:
        return keras.Input(shape=tuple(structure[1:]), dtype=dtype, name=name)
    if isinstance(structure, dict):
        return {key: _symbolic(value, str(key), dtype, what, model) for key, value in structure.items()}
    if isinstance(structure, (tuple, list)) and structure:
        return type(structure)(_symbolic(value, f"{name}_{i}", dtype, what, model) for i, value in enumerate(structure))
    raise ValueError(f"{what} cannot read the input shapes {model.name!r} ({type(model).__name__}) was built with "
                     f"({structure!r}); wrap it in a functional model yourself: "
                     "inputs = keras.Input(...); keras.Model(inputs, model(inputs)).")


def _call_argument_names(model, count):
    """The names of the first ``count`` positional arguments of ``model.call``, or None if it has fewer."""
    parameters = [p for p in inspect.signature(model.call).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return [p.name for p in parameters[:count]] if len(parameters) >= count else None


class FunctionalGraph:
    """The node-level graph of a functional model, read from its nodes (:func:`compat.graph_config`).

    Nodes are ``(layer_name, node_index)`` pairs; tensors are ``(layer_name, node_index,
    tensor_index)`` triples, as in ``keras_history``. ``order`` is a topological order of nodes.
    """

    def __init__(self, model, config=None):
        if not is_functional(model):
            raise TypeError(
                f"Expected a functional keras.Model (built with keras.Input and layer calls), got "
                f"{type(model).__name__!r}; Sequential and subclassed models have no call graph that can be read or "
                "rewritten.")
        self.model = model
        read, self.nodes = compat.graph_config(model)  # nodes: (name, index) -> the live keras Node
        self.config = copy.deepcopy(config) if config is not None else read
        self.layer_configs = {lc["name"]: lc for lc in self.config["layers"]}
        self.class_names = {lc["name"]: lc["class_name"] for lc in self.config["layers"]}
        self.node_inputs = {}  # node -> list of input tensor keys (in call order)
        self.consumers = {}  # tensor -> list of consuming nodes
        self.shapes = {}  # tensor -> shape tuple (batch dim included as None)
        for lc in self.config["layers"]:
            nodes = lc.get("inbound_nodes") or []
            if not nodes:  # InputLayer: one node, no inputs
                self.node_inputs[(lc["name"], 0)] = []
            for i, node in enumerate(nodes):
                inputs = []
                for kt in compat.iter_keras_tensors(node):
                    key = compat.history_key(kt)
                    inputs.append(key)
                    self.shapes[key] = compat.tensor_shape(kt)
                    self.consumers.setdefault(key, []).append((lc["name"], i))
                self.node_inputs[(lc["name"], i)] = inputs
        # Layers and operations by name: ``get_layer`` knows only layers, not ``x + y`` nodes.
        self.operations = {op.name: op for op in model.operations}
        self.output_keys = [tuple(o) for o in output_histories(self.config["output_layers"])]
        self.produced = {}  # node -> tensors of it that are consumed or are model outputs
        for key in list(self.consumers) + self.output_keys:
            self.produced.setdefault(key[:2], set()).add(key)
        self.input_keys = [tuple(o) for o in output_histories(self.config["input_layers"])]
        for key, tensor in zip(self.output_keys, _flatten(model.outputs)):
            self.shapes.setdefault(key, tuple(tensor.shape))
        self.order = self._topological_order()
        self.position = {node: i for i, node in enumerate(self.order)}
        self._ancestors = {}

    def _topological_order(self):
        order, state = [], {}
        for start in self.node_inputs:
            if start in state:
                continue
            stack = [(start, False)]
            while stack:
                node, done = stack.pop()
                if done:
                    state[node] = 2
                    order.append(node)
                    continue
                if state.get(node):
                    continue
                state[node] = 1
                stack.append((node, True))
                for t in self.node_inputs[node]:
                    parent = t[:2]
                    if not state.get(parent):
                        stack.append((parent, False))
        return order

    def tensor(self, key):
        """The live symbolic tensor ``key`` = ``(layer, node index, tensor index)`` of the model's graph."""
        node = self.nodes.get(key[:2])
        if node is None:
            raise ValueError(f"{self.model.name!r} has no node {key[:2]} in its graph.")
        return keras.tree.flatten(node.outputs)[key[2]]

    def call_arguments(self, node):
        """``(args, kwargs)`` of the call that made ``node``, with the live symbolic tensors."""
        arguments = self.nodes[node].arguments
        return arguments.args, arguments.kwargs

    def producer(self, tensor):
        """The node producing ``tensor``."""
        return tensor[:2]

    def ancestors(self, node):
        """All nodes ``node`` depends on, ``node`` included."""
        if node not in self._ancestors:
            result = {node}
            for t in self.node_inputs[node]:
                result |= self.ancestors(t[:2])
            self._ancestors[node] = frozenset(result)
        return self._ancestors[node]

    def output_tensors(self, node):
        """The tensors of ``node`` that are consumed or are model outputs (at least tensor 0)."""
        return sorted(self.produced.get(node, ())) or [node + (0,)]

    def operation(self, name):
        """The layer or operation (``x + y``, ``keras.ops.add``) named ``name`` in this model's graph."""
        if name not in self.operations:
            raise ValueError(f"{self.model.name!r} has no layer or operation named {name!r}.")
        return self.operations[name]

    layer = operation  # former name: nodes were assumed to be layers

    def is_layer(self, name):
        """Whether node ``name`` is a ``keras.layers.Layer`` (False for an operation such as ``x + y``)."""
        return isinstance(self.operation(name), keras.layers.Layer)

    def submodels(self):
        """The functional models called as nodes of this graph, each once, in topological order."""
        seen, out = set(), []
        for node in self.order:
            op = self.operations.get(node[0])
            if op is not None and id(op) not in seen and is_functional(op):
                seen.add(id(op))
                out.append(op)
        return out


def _flatten(obj):
    if isinstance(obj, (list, tuple)):
        return [x for item in obj for x in _flatten(item)]
    if isinstance(obj, dict):
        return [x for item in obj.values() for x in _flatten(item)]
    return [obj]


def output_histories(obj):
    """``(layer, node, tensor)`` triples of a config's ``input_layers`` / ``output_layers`` (a triple or nested lists)."""
    if isinstance(obj, (list, tuple)) and len(obj) == 3 and isinstance(obj[0], str):
        return [(obj[0], int(obj[1]), int(obj[2]))]
    if isinstance(obj, dict):
        return [h for v in obj.values() for h in output_histories(v)]
    return [h for item in obj for h in output_histories(item)]
