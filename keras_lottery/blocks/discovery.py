"""Residual-block discovery in functional Keras models (on :class:`keras_lottery.graph.FunctionalGraph`).

A *residual block* is an ``Add`` (the layer, or the operation node Keras 3 makes for ``x + y`` and
``keras.ops.add(x, y)``) with two tensor inputs where one input ``x`` (the shortcut) is an ancestor
of the other (the branch output ``f(x)``). It is *removable* when dropping the branch leaves
``y = x``: the branch output has x's shape, the branch reads nothing but tensors computed from x
(or x's own ancestors) and no layer outside the block consumes a tensor of the branch.
An ``Add`` whose two inputs share a nearest common ancestor ``x`` but neither contains the other
(a projection or down-sampling shortcut) is reported too, as not removable, with the reason.

Everything between ``x`` and the ``Add`` on the branch side belongs to the branch, operation nodes
included: a scaled residual ``x + gamma * f(x)`` (a ``0.1 * h`` node, ConvNeXt's ``LayerScale``,
stochastic depth) is one block whose branch ends with the scale, and a hard-sigmoid's ``x + 3.0``
inside a branch is an ordinary branch node (an ``Add`` with one tensor input is no join).
A *residual layer* is a block too (``kind="layer"``): one layer object whose call is ``x + f(x)``
inside (a transformer layer: KerasHub's ``TransformerEncoder``/``TransformerDecoder``,
``GemmaDecoderBlock``, Llama's decoder, the zoo ViT's block, a user's own), found by
:func:`keras_lottery.blocks.residual_layers.is_residual_layer`. It is named after the layer; removing
it leaves ``y = x``.

A *container* layer applies a list of residual sublayers one after the other inside its own call
(KerasHub's ``ViTEncoder``: its ``encoder_layers``, then a final layer norm), found by
:func:`keras_lottery.blocks.containers.stack`. Its sublayers are the blocks (``kind="sublayer"``),
named ``"<container>/<sublayer>"`` (``"vit_encoder/transformer_block_1"``); the container itself is
not one. A container's list may start with non-residual sublayers (not blocks), which are looked into
when they are containers themselves (HGNetV2: ``"encoder/encoder_stage_1/encoder_stage_1_block_1"``).

An ``Add`` whose "branch" only reads the shape of its other input (GPT-2's and BERT's token +
position embeddings: ``PositionEmbedding(tokens)`` depends on the sequence length, not on the token
values) is not a residual and not a block.

Functional models nested in the model are searched too (KerasHub backbones inside task models
included: the graph is read from the nodes, not from ``get_config()``); their blocks are named with
their path (``"gpt2_backbone/transformer_layer_1"``) and carry it in :attr:`Block.path`.
"""

from __future__ import annotations

import dataclasses
import warnings

import keras

from keras_lottery import compat, metrics, tracing
from keras_lottery.blocks import containers
from keras_lottery.blocks.residual_layers import is_residual_layer, untraceable
from keras_lottery.graph import FunctionalGraph, is_functional

# KerasHub layers whose output depends only on the shape of their input (position embeddings): an Add
# of one of them to its input is an embedding sum, not a residual. (The zoo ViT's PositionEmbedding
# adds its input to the embedding: not one of them.)
SHAPE_ONLY_LAYERS = frozenset({"PositionEmbedding", "SinePositionEncoding"})


class NoResidualBlocksWarning(UserWarning):
    """Emitted by :func:`find_blocks` when a model has no residual block (plain or subclassed)."""


@dataclasses.dataclass(frozen=True)
class Block:
    """One residual block ``y = shortcut(x) + branch(x)`` of a functional model.

    Attributes:
        name: the block's name: the ``Add`` layer's name (``"stage1_block2_add"``), followed by
            ``":<node>"`` only when that ``Add`` layer is shared and called more than once.
        add_layer: name of the ``Add`` layer joining shortcut and branch.
        branch_layers: names of the layers computing the branch, in topological order.
        shortcut_input: name of the layer producing the block input ``x``.
        removable: whether removing the branch leaves ``y = x`` (see ``reason`` when not).
        reason: why the block cannot be removed; ``""`` when it can.
        flops: FLOPs of one example through the branch and the ``Add`` (see :mod:`keras_lottery.metrics`).
        params: parameters held only by the branch layers (freed by removing the block).
        shortcut_layers: layers between ``x`` and the ``Add`` on the shortcut side; empty for an
            identity shortcut.
        branch_output: name of the layer whose output enters the ``Add`` from the branch.
        shape: the block output shape without the batch dimension.
        branch_nodes: ``(layer, node_index)`` pairs of the branch, as numbered in ``get_config()``.
        add_node: the ``Add`` layer's node index, as numbered in ``get_config()``.
        path: names of the nested models leading from the model given to :func:`find_blocks` to the
            one that holds the block (empty for a block of the model itself); every other name in the
            block (``add_layer``, ``branch_layers``, ...) is a node of that innermost model.
        kind: ``"add"`` for an ``Add`` joining a shortcut and a branch, ``"layer"`` for a residual layer
            (a transformer layer): then ``add_layer``, ``branch_layers`` and ``branch_output`` all name
            that layer and ``add_node`` is its node; ``"sublayer"`` for a residual layer applied inside
            a container layer's call: then they name the sublayer (not a node of the graph),
            ``container`` names the container and ``add_node`` is the container's node.
        input_tensor: ``(layer, node, tensor)`` of the block input ``x`` (the shortcut tensor), as
            numbered in the graph (:class:`keras_lottery.graph.FunctionalGraph`); empty for a sublayer,
            whose input is not a tensor of the graph.
        container: for ``kind="sublayer"``, the name of the container layer (a node of the model holding
            the block) whose call applies the block, followed, for a container nested in it, by the nested
            containers' names (``"encoder/encoder_stage_1"``: :func:`container_layer`); ``""`` otherwise.

    ``branch_layers``, ``add_layer`` and ``branch_output`` may name operation nodes (``x + y``,
    ``0.1 * h``) as well as layers: :func:`operations` returns the objects.
    """

    name: str
    add_layer: str
    branch_layers: tuple
    shortcut_input: str
    removable: bool
    reason: str
    flops: int
    params: int
    shortcut_layers: tuple = ()
    branch_output: str = ""
    shape: tuple = ()
    branch_nodes: tuple = ()
    add_node: int = 0
    path: tuple = ()
    kind: str = "add"
    input_tensor: tuple = ()
    container: str = ""


def holder(model, block):
    """The (possibly nested) model that holds ``block``: ``model`` itself when ``block.path`` is empty."""
    for name in block.path:
        model = model.get_layer(name)
    return model


def container_layer(model, block):
    """The container layer whose call applies the sublayer ``block``: ``block.container`` names a node of the
    model holding the block, then (``"/"``-separated) the containers nested in it (HGNetV2's
    ``"encoder/encoder_stage_1"``)."""
    names = block.container.split("/")
    layer = holder(model, block).get_layer(names[0])
    for name in names[1:]:
        layer = next(sub for sub in compat.sublayers(layer) if sub.name == name)
    return layer


def operations(model, block, names=None):
    """The layers and operation nodes named ``names`` (default: the branch's) in the model holding ``block``
    (for a sublayer block: among the container's sublayers)."""
    owner = holder(model, block)
    if block.container:
        by_name = {layer.name: layer for layer in compat.sublayers(container_layer(model, block))}
    else:
        by_name = {op.name: op for op in owner.operations}
    return [by_name[name] for name in (block.branch_layers if names is None else names)]


def branch_weights(model, block, trainable_only=False):
    """The variables of the branch's layers, each once, in branch order (operation nodes have none)."""
    out, seen = [], set()
    for op in operations(model, block):
        for w in getattr(op, "trainable_weights" if trainable_only else "weights", ()):
            if id(w) not in seen:
                seen.add(id(w))
                out.append(w)
    return out


class BlockList(list):
    """The list of :class:`Block` returned by :func:`find_blocks`, with a human-readable message.

    ``message`` says how many blocks were found and how many are removable, or why none were.
    """

    def __init__(self, blocks=(), message=""):
        super().__init__(blocks)
        self.message = message

    @property
    def removable(self):
        """The removable blocks, in graph order."""
        return [b for b in self if b.removable]

    def names(self, removable_only=False):
        """Block names in graph order (only removable ones when ``removable_only``)."""
        return [b.name for b in (self.removable if removable_only else self)]

    def summary(self):
        """A fixed-width table: name, removable, FLOPs, parameters, number of branch layers, reason."""
        rows = [f"{'block':<28} {'removable':>9} {'FLOPs':>12} {'params':>10} {'layers':>6}  reason"]
        for b in self:
            rows.append(f"{b.name:<28} {str(b.removable):>9} {b.flops:>12,d} {b.params:>10,d} "
                        f"{len(b.branch_layers):>6}  {b.reason}")
        rows.append(self.message)
        return "\n".join(rows)


def _branch_params(graph, branch_nodes):
    """Parameters of layers whose every node lies in the branch (what removal frees)."""
    nodes = set(branch_nodes)
    total, seen = 0, set()
    for layer_name in dict.fromkeys(n[0] for n in branch_nodes):
        layer_nodes = {n for n in graph.node_inputs if n[0] == layer_name}
        if not layer_nodes <= nodes:
            continue
        for w in getattr(graph.operation(layer_name), "weights", ()):
            if id(w) not in seen:
                seen.add(id(w))
                total += _size(w.shape)
    return total


def _size(shape):
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _block_name(graph, add_node):
    layer_name, index = add_node
    shared = sum(1 for n in graph.node_inputs if n[0] == layer_name) > 1
    return f"{layer_name}:{index}" if shared else layer_name


def _analyse_add(graph, add_node, node_flops):
    """Turn one ``Add`` node into a :class:`Block`, or None when it joins unrelated tensors."""
    inputs = list(dict.fromkeys(graph.node_inputs[add_node]))
    if any(_shape_only(graph, t[0]) for t in inputs):
        return None  # token (+ segment) + position embeddings: a sum of embeddings, not a residual
    if len(inputs) != 2:
        if len(inputs) < 2:
            return None
        reason = f"Add with {len(inputs)} inputs; only two-input residual joins can be removed"
        return _make_block(graph, add_node, None, inputs[0], inputs[1], (), (), False, reason, node_flops)
    t_a, t_b = inputs
    anc_a, anc_b = graph.ancestors(t_a[:2]), graph.ancestors(t_b[:2])
    if t_a[:2] in anc_b:
        shortcut, branch_out = t_a, t_b
    elif t_b[:2] in anc_a:
        shortcut, branch_out = t_b, t_a
    else:
        common = anc_a & anc_b
        if not common:
            return None  # adds two unrelated tensors: not a residual block
        x_node = max(common, key=graph.position.__getitem__)
        side_a = sorted(_between(graph, x_node, t_a), key=graph.position.__getitem__)
        side_b = sorted(_between(graph, x_node, t_b), key=graph.position.__getitem__)
        if len(side_a) > len(side_b):
            side_a, side_b, t_a, t_b = side_b, side_a, t_b, t_a
        x_tensor = _tensor_of(graph, x_node, side_a + side_b)
        via = ", ".join(n[0] for n in side_a)
        reason = (f"projection/down-sampling shortcut: the shortcut goes through {via} "
                  f"(shape {_fmt(graph.shapes.get(x_tensor))} -> {_fmt(graph.shapes.get(t_a))}), "
                  f"so removing the branch would not leave y = x")
        return _make_block(graph, add_node, x_tensor, t_a, t_b, tuple(side_b), tuple(side_a), False, reason,
                           node_flops)
    branch = sorted(_between(graph, shortcut[:2], branch_out), key=graph.position.__getitem__)
    reasons = []
    shape_x, shape_f = graph.shapes.get(shortcut), graph.shapes.get(branch_out)
    if shape_x != shape_f:
        reasons.append(f"branch output shape {_fmt(shape_f)} differs from the shortcut's {_fmt(shape_x)}")
    shortcut_anc = graph.ancestors(shortcut[:2])
    branch_set = set(branch)
    foreign = sorted({t[0] for n in branch for t in graph.node_inputs[n]
                      if t[:2] not in branch_set and t[:2] not in shortcut_anc})
    if foreign:
        reasons.append(f"the branch also reads {', '.join(foreign)}, which is not computed from the block input")
    leaks = sorted({c[0] for n in branch for t in graph.output_tensors(n)
                    for c in graph.consumers.get(t, []) if c not in branch_set and c != add_node}
                   | {t[0] for n in branch for t in graph.output_tensors(n) if t in graph.output_keys})
    if leaks:
        reasons.append(f"branch tensors are also used outside the block, by {', '.join(leaks)}")
    return _make_block(graph, add_node, shortcut, shortcut, branch_out, tuple(branch), (), not reasons,
                       "; ".join(reasons), node_flops)


def _shape_only(graph, name):
    """Whether node ``name`` is a KerasHub position embedding (its output depends on its input's shape only)."""
    op = graph.operations.get(name)
    return (op is not None and type(op).__name__ in SHAPE_ONLY_LAYERS
            and type(op).__module__.startswith("keras_hub."))


def _layer_block(graph, node, node_flops, opaque):
    """A residual layer's node as a :class:`Block` (``kind="layer"``), or None when it is not one (its name
    appended to ``opaque`` when it could not be traced)."""
    inputs = graph.node_inputs[node]
    outputs = graph.output_tensors(node)
    if not inputs or not outputs:
        return None
    args, kwargs = graph.call_arguments(node)
    shape = graph.shapes.get(outputs[0])
    layer = graph.operation(node[0])
    if shape is None or not is_residual_layer(layer, args, kwargs, shape):
        if shape is not None and untraceable(layer, args, kwargs):
            opaque.append(node[0])
        return None
    x = _input_key(graph, node, inputs, args, kwargs)
    reasons = []
    extra = sorted({t[2] for t in outputs if t[2] != 0})
    if extra:
        reasons.append(f"outputs {extra} of {node[0]} (besides the residual stream) are used")
    if graph.shapes.get(x) != shape:
        reasons.append(f"output shape {_fmt(shape)} differs from the input's {_fmt(graph.shapes.get(x))}")
    block = _make_block(graph, node, x, x, outputs[0], (node,), (), not reasons, "; ".join(reasons), node_flops)
    return dataclasses.replace(block, kind="layer", input_tensor=x, flops=int(node_flops(node)))


def _input_key(graph, node, inputs, args, kwargs):
    """The key of the tensor a layer node's ``call`` gets as first input (by position or keyword)."""
    first = tracing.first_input(graph.operation(node[0]), args, kwargs)
    return next((key for key in inputs if graph.tensor(key) is first), inputs[0])


def _container_blocks(graph, node):
    """The sublayers of a container layer's node as blocks (``kind="sublayer"``), or None when it is not one."""
    layer = graph.operation(node[0])
    if not containers.may_be_container(layer):
        return None
    args, kwargs = graph.call_arguments(node)
    stack = containers.stack(layer, args, kwargs)
    if stack is None:
        return None
    name = _block_name(graph, node)
    shared = name != node[0]
    reason = (f"its container {node[0]!r} is called more than once; a sublayer of a shared container cannot be "
              f"removed from one call only") if shared else ""
    blocks = []
    for inner, sublayer, call in _stack_members(stack, ()):
        x, y = tracing.first_input(sublayer, call.args, call.kwargs, tracing.is_array), keras.tree.flatten(call.output)[0]
        weights = {id(w): w for w in sublayer.weights}
        blocks.append(Block(
            name="/".join((name, *inner, sublayer.name)), add_layer=sublayer.name, branch_layers=(sublayer.name,),
            shortcut_input="", removable=not shared, reason=reason,
            flops=int(metrics.layer_forward_flops(sublayer, [tuple(x.shape)], [tuple(y.shape)], set())),
            params=sum(_size(w.shape) for w in weights.values()), branch_output=sublayer.name,
            shape=tuple(y.shape[1:]), add_node=node[1], kind="sublayer", container="/".join((node[0], *inner))))
    return blocks


def _stack_members(stack, inner):
    """``(names of the containers inside the node's container, sublayer, call)`` for each residual sublayer of
    ``stack`` and of the containers it holds, in call order."""
    members = [(inner, sublayer, call) for sublayer, call in zip(stack.layers, stack.calls)]
    nested = [m for sub, found in stack.inner for m in _stack_members(found, inner + (sub.name,))]
    return nested + members  # the inner containers come first in the list: before its residual sublayers


def _tensor_of(graph, node, consumers):
    """The output tensor of ``node`` read by one of ``consumers`` (tensor 0 by default)."""
    consumer_set = set(consumers)
    for t in graph.output_tensors(node):
        if any(c in consumer_set for c in graph.consumers.get(t, [])):
            return t
    return node + (0,)


def _between(graph, source_node, target_tensor):
    """Nodes that depend on ``source_node`` and that ``target_tensor`` depends on (source excluded)."""
    return [n for n in graph.ancestors(target_tensor[:2])
            if n != source_node and source_node in graph.ancestors(n)]


def _fmt(shape):
    return "?" if shape is None else "(" + ", ".join("None" if d is None else str(d) for d in shape[1:]) + ")"


def _make_block(graph, add_node, x_tensor, shortcut_tensor, branch_out, branch, shortcut_side, removable,
                reason, node_flops):
    flops = sum(node_flops(n) for n in branch) + node_flops(add_node)
    return Block(
        name=_block_name(graph, add_node),
        add_layer=add_node[0],
        branch_layers=tuple(dict.fromkeys(n[0] for n in branch)),
        shortcut_input=x_tensor[0] if x_tensor else "",
        removable=bool(removable),
        reason=reason,
        flops=int(flops),
        params=_branch_params(graph, branch),
        shortcut_layers=tuple(n[0] for n in shortcut_side),
        branch_output=branch_out[0],
        shape=tuple(graph.shapes.get(branch_out, ())[1:]),
        branch_nodes=tuple(branch),
        add_node=add_node[1],
        input_tensor=tuple(x_tensor) if x_tensor else (),
    )


def find_blocks(model, warn=True):
    """Find the residual blocks of a functional Keras model.

    Args:
        model: a functional ``keras.Model`` (``keras.Sequential`` and subclassed models are accepted
            and yield no block, since their graph has no residual join that can be read).
        warn: emit a :class:`NoResidualBlocksWarning` when no block is found.

    Returns:
        A :class:`BlockList` (a list of :class:`Block` in graph order) whose ``message`` says how many
        blocks were found and how many are removable, or why there are none. Projection and
        down-sampling blocks are listed with ``removable=False`` and the reason.

    The model is not modified.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"find_blocks expects a keras.Model, got {type(model).__name__!r}.")
    if isinstance(model, keras.Sequential):
        return _empty(f"{model.name!r} is a Sequential model, a plain chain of layers: it has no residual block "
                      f"and nothing can be removed.", warn)
    if not is_functional(model):
        message = (f"{model.name!r} is a {type(model).__name__} with no functional graph (a subclassed model with "
                   f"its own call(), or an unbuilt one): no residual block can be found or removed. "
                   f"Build it with the functional API (keras.Input + layer calls) to use keras_lottery.blocks.")
        return _empty(message, warn)
    opaque = []
    blocks = _find(model, (), opaque)
    # a layer whose call fails on its node's shapes may be residual inside: say so rather than stay silent
    unseen = (f" {len(opaque)} layer(s) could not be traced on their node's shapes (their symbolic inputs have "
              f"shapes their call rejects), so whether they are residual is unknown: {opaque[:6]}." if opaque else "")
    if not blocks:
        return _empty(f"{model.name!r} has no residual block: no Add (layer or x + y operation) joins a tensor "
                      f"with a branch computed from it and no layer is residual inside, in the model or any functional model nested in it (a "
                      f"plain network such as VGG); nothing can be removed.{unseen}", warn)
    n_removable = sum(b.removable for b in blocks)
    nested = sum(bool(b.path) for b in blocks)
    where = f" ({nested} inside nested models)" if nested else ""
    return BlockList(blocks, f"{model.name!r}: {len(blocks)} residual blocks{where}, {n_removable} removable.{unseen}")


def _find(model, path, opaque):
    """The blocks of functional ``model`` and of the functional models nested in it, in graph order; the layers
    that could not be traced on their node's shapes are appended to ``opaque``."""
    graph = FunctionalGraph(model)
    node_flops = metrics.NodeFlops(graph)
    nested = {id(sub): sub for sub in graph.submodels()}
    blocks, visited = [], set()
    for node in graph.order:
        op = graph.operations.get(node[0])
        if id(op) in nested and id(op) not in visited:
            visited.add(id(op))
            blocks += _find(op, path + (op.name,), opaque)
            continue
        if not graph.node_inputs[node]:
            continue
        if graph.class_names[node[0]] == "Add":
            found = [_analyse_add(graph, node, node_flops)]
        else:
            found = _container_blocks(graph, node)
            if found is None:
                found = [_layer_block(graph, node, node_flops, opaque)]
        for block in found:
            if block is not None:
                blocks.append(dataclasses.replace(block, path=path, name="/".join(path + (block.name,))))
    return blocks


def _empty(message, warn):
    if warn:
        warnings.warn(message, NoResidualBlocksWarning, stacklevel=3)
    return BlockList([], message)
