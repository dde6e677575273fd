"""Channel-dependency groups of a functional Keras model: which output channels must be removed together.

A *group* is one set of channels shared by several tensors of the graph. It starts at the layers that
create channels (its **sources**: ``Conv1D/2D/3D``, ``Dense`` and the pointwise half of
``SeparableConv``), flows through layers that keep each channel separate (its **members**: batch norm
and depthwise convolutions, which own per-channel weights, and weightless ones: activations, pooling,
padding, dropout, global pooling, a ``Reshape`` that keeps the last axis) and ends in the layers that
read the channels (its **sinks**: the next convolution's or dense layer's kernel rows). Rules:

* every input of an ``Add`` / ``Subtract`` / ``Multiply`` / ``Average`` / ``Maximum`` / ``Minimum``
  (layer or ``x + y`` operation node) shares one channel set, so a whole residual stage, stem and
  shortcut projections included, is **one** group (and an SE block's ``x * s`` ties its gate to ``x``);
* a depthwise convolution (depth multiplier 1) ties its input and output channels;
* ``Concatenate`` on the channel axis places each input's group at an offset of the output;
* ``Flatten`` before ``Dense``: channel ``c`` of an ``H x W x C`` map owns rows ``s * C + c`` of the
  kernel, for every spatial position ``s``.

Channels are the last axis (``channels_last``). A group is **not prunable** (listed, with the reason)
when it touches a model input or output, a layer called more than once, or any layer or operation
these rules do not cover (its channels then keep their meaning only if left whole). Nested
functional models are treated as such unknown layers.

:func:`find_groups` returns the groups with their layers, size, the weight slices each channel owns
(:class:`WeightSlice`) and what removing one channel frees (parameters exactly; FLOPs to first order,
with no other channel removed). :mod:`keras_lottery.filters.removal` cuts those slices.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from keras_lottery import metrics
from keras_lottery.inline import has_nested_models, inlined
from keras_lottery.graph import FunctionalGraph, is_functional

__all__ = ["ChannelGroup", "GroupList", "WeightSlice", "check_model", "find_groups"]

_SOURCES = {"Conv1D", "Conv2D", "Conv3D", "Dense"}
_SEPARABLE = {"SeparableConv1D", "SeparableConv2D"}
_DEPTHWISE = {"DepthwiseConv1D", "DepthwiseConv2D"}
_MERGES = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}
_PASS = {  # weightless layers that keep each channel apart (channels_last checked separately)
    "ReLU", "LeakyReLU", "ELU", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
    "GaussianDropout", "GaussianNoise", "AlphaDropout", "Identity", "ActivityRegularization",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalMaxPooling1D",
    "GlobalMaxPooling2D", "GlobalMaxPooling3D", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
    "Cropping1D", "Cropping2D", "Cropping3D", "UpSampling1D", "UpSampling2D", "UpSampling3D", "StochasticDepth",
}
_CROSS_CHANNEL_ACTIVATIONS = {"softmax", "log_softmax"}  # mix channels: not element-wise
_ELEMENTWISE_OPS = metrics.ELEMENTWISE_OPS - {"Softmax", "LogSoftmax"}


@dataclasses.dataclass(frozen=True)
class WeightSlice:
    """Where one weight of one layer holds a group's channels.

    Channel ``c`` of the group owns the indices ``s * stride + offset + c`` (``s < repeat``) along ``axis``
    of ``layer.weights[weight]``: ``offset`` places the group inside a ``Concatenate``, ``repeat`` and
    ``stride`` spread it over the rows a ``Flatten`` makes (``repeat == 1`` otherwise).

    Attributes:
        layer: the layer's name.
        weight: index into ``layer.weights``.
        name: the weight's name (``"kernel"``, ``"gamma"``, ...), for reading.
        axis: the axis of that weight indexed by the channel.
        role: ``"source"`` (the channel's own filter and bias), ``"member"`` (per-channel weights of
            batch norm or a depthwise convolution) or ``"sink"`` (a consumer's kernel rows).
        offset, repeat, stride: see above.
    """

    layer: str
    weight: int
    name: str
    axis: int
    role: str
    offset: int = 0
    repeat: int = 1
    stride: int = 0

    def indices(self, channels):
        """The indices along ``axis`` owned by ``channels`` (an int or a sequence), as a sorted int array."""
        channels = np.atleast_1d(np.asarray(channels, dtype=np.int64))
        spread = np.arange(self.repeat, dtype=np.int64)[:, None] * self.stride
        return np.sort((spread + self.offset + channels[None, :]).reshape(-1))


@dataclasses.dataclass(frozen=True)
class ChannelGroup:
    """Channels that must be removed together (see the module docstring).

    Attributes:
        name: the first source layer's name, in graph order (``"stem_conv"``, ``"block_1_expand"``).
        size: number of channels.
        sources: layers whose filters create the channels (each removed channel removes one filter
            of each: ``filters_per_channel``).
        members: layers keeping the channels apart on the way (batch norm, depthwise, activations,
            pooling, ``Add`` ...), in graph order.
        sinks: layers reading the channels through their kernels.
        slices: every :class:`WeightSlice` a channel owns (sources, members, sinks).
        prunable: whether channels may be removed; ``reason`` says why not.
        params_per_channel: parameters freed by removing one channel alone (every owned slice once,
            batch-norm statistics included): exact.
        flops_per_channel: FLOPs of one example freed by removing one channel alone (first order:
            each layer's FLOPs divided by its channel count on that side).
        config_edits: ``(layer, key)`` pairs of the configuration holding the size (``filters``,
            ``units``, a ``Reshape``'s ``target_shape``).
    """

    name: str
    size: int
    sources: tuple
    members: tuple
    sinks: tuple
    slices: tuple
    prunable: bool
    reason: str
    params_per_channel: int
    flops_per_channel: float
    config_edits: tuple

    @property
    def filters_per_channel(self):
        """Filters (source-layer output channels) removed with each channel of the group."""
        return len(self.sources)


class GroupList(list):
    """The :class:`ChannelGroup` list of :func:`find_groups`, in graph order, with a ``message``."""

    def __init__(self, groups=(), message=""):
        super().__init__(groups)
        self.message = message

    @property
    def prunable(self):
        """The groups whose channels may be removed."""
        return [g for g in self if g.prunable]

    def by_name(self):
        """``{group name: group}``."""
        return {g.name: g for g in self}

    def summary(self):
        """A fixed-width table: group, size, prunable, filters/params/FLOPs per channel, layers, reason."""
        rows = [f"{'group':<30} {'size':>5} {'prunable':>8} {'filt/ch':>7} {'params/ch':>10} {'FLOPs/ch':>12} "
                f"{'layers':>6}  reason"]
        for g in self:
            rows.append(f"{g.name:<30} {g.size:>5} {str(g.prunable):>8} {g.filters_per_channel:>7} "
                        f"{g.params_per_channel:>10,d} {g.flops_per_channel:>12,.0f} "
                        f"{len(g.sources) + len(g.members) + len(g.sinks):>6}  {g.reason}")
        rows.append(self.message)
        return "\n".join(rows)


def check_model(model, what):
    """Raise ``TypeError`` (one line) unless ``model`` is a functional ``keras.Model``."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"{what} expects a functional keras.Model, got {type(model).__name__!r}.")
    if isinstance(model, keras.Sequential) or not is_functional(model):
        kind = "Sequential" if isinstance(model, keras.Sequential) else f"subclassed {type(model).__name__}"
        raise TypeError(f"{what} needs a functional model (keras.Input and layer calls); {model.name!r} is a "
                        f"{kind} model. Rebuild it with keras.Input and layer calls (for a Sequential model: "
                        f"keras.Model(model.inputs, model.outputs)).")


@dataclasses.dataclass
class _Space:
    """One channel set while the graph is walked (merged by union-find)."""

    size: int
    order: int
    sources: list = dataclasses.field(default_factory=list)
    members: list = dataclasses.field(default_factory=list)
    sinks: list = dataclasses.field(default_factory=list)
    slices: list = dataclasses.field(default_factory=list)
    reasons: list = dataclasses.field(default_factory=list)
    flops: float = 0.0
    edits: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class _Layout:
    """The channel axis of a tensor: ``segments`` of ``(space id, size)``, each repeated ``repeat`` times."""

    segments: tuple
    repeat: int = 1

    @property
    def total(self):
        return sum(size for _, size in self.segments)


class _Walker:
    """Walks the graph once in topological order, building channel spaces and their weight slices."""

    def __init__(self, model):
        self.graph = FunctionalGraph(model)
        self.flops = metrics.NodeFlops(self.graph)
        self.parent, self.spaces, self.layouts = {}, {}, {}
        self.calls = {}
        for node in self.graph.node_inputs:
            self.calls[node[0]] = self.calls.get(node[0], 0) + 1

    # -- union-find ------------------------------------------------------------------------------------
    def new(self, size, reason=""):
        sid = len(self.parent)
        self.parent[sid] = sid
        self.spaces[sid] = _Space(size=int(size), order=sid, reasons=[reason] if reason else [])
        return sid

    def find(self, sid):
        while self.parent[sid] != sid:
            self.parent[sid] = self.parent[self.parent[sid]]
            sid = self.parent[sid]
        return sid

    def union(self, a, b):
        a, b = self.find(a), self.find(b)
        if a == b:
            return a
        keep, gone = (a, b) if self.spaces[a].order < self.spaces[b].order else (b, a)
        k, g = self.spaces[keep], self.spaces.pop(gone)
        for field in ("sources", "members", "sinks", "slices", "reasons", "edits"):
            getattr(k, field).extend(getattr(g, field))
        k.flops += g.flops
        self.parent[gone] = keep
        return keep

    def freeze(self, layout, reason):
        for sid, _ in layout.segments:
            self.spaces[self.find(sid)].reasons.append(reason)

    # -- per node --------------------------------------------------------------------------------------
    def walk(self):
        graph = self.graph
        for node in graph.order:
            inputs = [self.layouts[t] for t in graph.node_inputs[node] if t in self.layouts]
            outputs = graph.output_tensors(node)
            if not graph.node_inputs[node]:  # an input layer
                for t in outputs:
                    self.layouts[t] = _Layout(((self.new(self._channels(t), "a model input"), self._channels(t)),))
                continue
            layout = self._node(node, inputs, outputs)
            for t in outputs:
                self.layouts[t] = layout
        for t in graph.output_keys:
            self.freeze(self.layouts[t], "a model output")
        return self

    def _channels(self, tensor):
        shape = self.graph.shapes.get(tensor)
        return int(shape[-1]) if shape and shape[-1] is not None else 1

    def _node(self, node, inputs, outputs):
        graph = self.graph
        op = graph.operation(node[0])
        out_channels = self._channels(outputs[0])
        name, cls = node[0], type(op).__name__
        if len(outputs) != 1 or len(inputs) != len(graph.node_inputs[node]):
            return self._unknown(node, inputs, out_channels, f"{name} ({cls}) has several outputs")
        if self.calls[name] > 1:
            return self._unknown(node, inputs, out_channels, f"{name} is called more than once (a shared layer)")
        if not isinstance(op, keras.layers.Layer):
            return self._operation(node, op, inputs, out_channels)
        if getattr(op, "data_format", "channels_last") != "channels_last":
            return self._unknown(node, inputs, out_channels, f"{name} is channels_first")
        if isinstance(op, keras.Model):
            return self._unknown(node, inputs, out_channels, f"{name} is a nested model")
        if cls in _SOURCES and getattr(op, "groups", 1) == 1 and len(inputs) == 1:
            return self._source(node, op, inputs[0], out_channels, sink_weights=("kernel",))
        if cls in _SEPARABLE and op.depth_multiplier == 1 and len(inputs) == 1:
            return self._source(node, op, inputs[0], out_channels, sink_weights=("depthwise_kernel",
                                                                                 "pointwise_kernel"))
        if cls in _DEPTHWISE and op.depth_multiplier == 1 and len(inputs) == 1:
            return self._member(node, op, inputs[0], {"kernel": -2, "bias": 0})
        if cls == "BatchNormalization" and len(inputs) == 1 and self._last_axis(op.axis, outputs[0]):
            return self._member(node, op, inputs[0], {w.name: 0 for w in op.weights})
        if len(inputs) == 1 and (cls in _PASS or self._elementwise_layer(op, cls)):
            return self._member(node, op, inputs[0], {})
        if (cls == "Reshape" and len(inputs) == 1 and inputs[0].repeat == 1 and len(inputs[0].segments) == 1
                and out_channels == inputs[0].total):
            self.spaces[self.find(inputs[0].segments[0][0])].edits.append((name, "target_shape"))
            return self._member(node, op, inputs[0], {})
        if cls == "Flatten" and len(inputs) == 1:
            shape = graph.shapes.get(graph.node_inputs[node][0])
            spatial = int(np.prod([d for d in shape[1:-1]])) if shape and len(shape) > 2 else 1
            self._member(node, op, inputs[0], {})
            return _Layout(inputs[0].segments, inputs[0].repeat * spatial)
        if cls in _MERGES and len(inputs) >= 2:
            return self._merge(node, inputs, out_channels)
        if cls == "Concatenate" and self._last_axis(op.axis, outputs[0]) and all(i.repeat == 1 for i in inputs):
            self._member(node, op, _Layout(tuple(s for i in inputs for s in i.segments)), {})
            return _Layout(tuple(s for i in inputs for s in i.segments))
        return self._unknown(node, inputs, out_channels, f"{name} ({cls}) is not covered by the channel rules")

    def _last_axis(self, axis, tensor):
        rank = len(self.graph.shapes.get(tensor) or ())
        axes = axis if isinstance(axis, (list, tuple)) else [axis]
        return len(axes) == 1 and rank and axes[0] % rank == rank - 1

    @staticmethod
    def _elementwise_layer(op, cls):
        if cls != "Activation" and cls != "Rescaling":
            return False
        if cls == "Rescaling":  # only a scalar scale and offset keep channels interchangeable
            return np.ndim(op.scale) == 0 and np.ndim(op.offset) == 0
        name = getattr(op.activation, "__name__", str(op.activation))
        return name not in _CROSS_CHANNEL_ACTIVATIONS

    def _operation(self, node, op, inputs, out_channels):
        cls = type(op).__name__
        if cls in _ELEMENTWISE_OPS:
            if len(inputs) == 1:
                return self._member(node, op, inputs[0], {})
            return self._merge(node, inputs, out_channels)
        return self._unknown(node, inputs, out_channels, f"{node[0]} ({cls}) is not covered by the channel rules")

    def _unknown(self, node, inputs, out_channels, reason):
        for layout in inputs:
            self.freeze(layout, f"read by {reason}")
        return _Layout(((self.new(out_channels, f"made by {reason}"), out_channels),))

    def _per_channel_flops(self, node, layout, flops=None):
        """Each channel of ``layout`` is charged its share of the node's FLOPs (``flops``, default all of them)."""
        if layout.total:
            for sid, _ in layout.segments:
                self.spaces[self.find(sid)].flops += (self.flops(node) if flops is None else flops) / layout.total

    def _slices(self, op, layout, weight_axes, role):
        """Register the slices of ``op``'s weights named in ``weight_axes`` for each segment of ``layout``."""
        offset = 0
        for sid, size in layout.segments:
            space = self.spaces[self.find(sid)]
            for index, w in enumerate(op.weights):
                if w.name in weight_axes:
                    axis = weight_axes[w.name] % len(w.shape)
                    space.slices.append(WeightSlice(op.name, index, w.name, axis, role, offset, layout.repeat,
                                                    layout.total))
            offset += size

    def _source(self, node, op, layout, out_channels, sink_weights):
        kernel_rank = {w.name: len(w.shape) for w in op.weights}
        self._slices(op, layout, {n: kernel_rank[n] - 2 for n in sink_weights}, "sink")
        for sid, _ in layout.segments:
            self.spaces[self.find(sid)].sinks.append(op.name)
        out_shape = self.graph.shapes.get(self.graph.output_tensors(node)[0]) or ()
        bias = int(np.prod([d or 1 for d in out_shape[1:]])) if getattr(op, "use_bias", False) else 0
        self._per_channel_flops(node, layout, self.flops(node) - bias)  # an input channel leaves the bias adds
        sid = self.new(out_channels)
        space = self.spaces[sid]
        space.sources.append(op.name)
        out_weight = "pointwise_kernel" if "pointwise_kernel" in kernel_rank else "kernel"
        self._slices(op, _Layout(((sid, out_channels),)), {out_weight: -1, "bias": -1}, "source")
        space.flops += self.flops(node) / max(out_channels, 1)
        space.edits.append((op.name, "units" if type(op).__name__ == "Dense" else "filters"))
        activation = getattr(getattr(op, "activation", None), "__name__", "")
        if activation in _CROSS_CHANNEL_ACTIVATIONS:
            space.reasons.append(f"{op.name} ends in a {activation} across its channels")
        return _Layout(((sid, out_channels),))

    def _member(self, node, op, layout, weight_axes):
        if weight_axes:
            self._slices(op, layout, weight_axes, "member")
        for sid, _ in layout.segments:
            self.spaces[self.find(sid)].members.append(op.name)
        self._per_channel_flops(node, layout)
        return layout

    def _merge(self, node, inputs, out_channels):
        first = inputs[0]
        shapes = {(tuple(size for _, size in i.segments), i.repeat) for i in inputs}
        if len(shapes) != 1:  # broadcast or mismatched concatenations: channel sets cannot be tied
            return self._unknown(node, inputs, out_channels, f"{node[0]} merges tensors whose channels differ")
        segments = []
        for k, (sid, size) in enumerate(first.segments):
            for other in inputs[1:]:
                sid = self.union(sid, other.segments[k][0])
            segments.append((self.find(sid), size))
        layout = _Layout(tuple(segments), first.repeat)
        self._member(node, self.graph.operation(node[0]), layout, {})
        return layout

    def _params_per_channel(self, slices):
        """Weights one channel owns, each counted once (a layer both reading and writing it shares a corner)."""
        per_weight = {}
        for s in slices:
            axes = per_weight.setdefault((s.layer, s.weight), {})
            axes[s.axis] = axes.get(s.axis, 0) + s.repeat
        return sum(_entries_freed(tuple(self.graph.operation(layer).weights[index].shape), axes)
                   for (layer, index), axes in per_weight.items())

    # -- result ----------------------------------------------------------------------------------------
    def groups(self):
        out = []
        for sid in sorted(self.spaces, key=lambda s: self.spaces[s].order):
            space = self.spaces[sid]
            if not space.sources:
                continue  # model inputs and outputs of unknown layers: nothing creates channels to remove
            reasons = list(dict.fromkeys(space.reasons))
            if space.size < 2:
                reasons.append("a single channel")
            slices = tuple(dict.fromkeys(space.slices))
            params = self._params_per_channel(slices)
            out.append(ChannelGroup(
                name=space.sources[0], size=space.size, sources=tuple(dict.fromkeys(space.sources)),
                members=tuple(dict.fromkeys(space.members)), sinks=tuple(dict.fromkeys(space.sinks)),
                slices=slices, prunable=not reasons, reason="; ".join(reasons), params_per_channel=params,
                flops_per_channel=float(space.flops), config_edits=tuple(dict.fromkeys(space.edits))))
        return out


def _entries_freed(shape, removed_per_axis):
    """Entries of an array of ``shape`` that lie in a removed index of at least one axis."""
    kept = 1
    for axis, d in enumerate(shape):
        kept *= int(d) - removed_per_axis.get(axis, 0)
    return int(np.prod(shape)) - kept


def find_groups(model):
    """The channel-dependency groups of functional ``model`` (see the module docstring), in graph order.

    A model with nested functional models (a KerasHub task model's backbone) is read as one graph,
    :func:`keras_lottery.inline.inlined`: the groups name the nested models' layers.

    Returns a :class:`GroupList` whose ``message`` says how many groups and channels can be removed.
    Raises ``TypeError`` (one line, before any work) for a Sequential or subclassed model. The model is
    not modified.
    """
    check_model(model, "find_groups")
    if has_nested_models(model):  # a task model's backbone: one graph, the same layer names
        model = inlined(model)
    groups = _Walker(model).walk().groups()
    prunable = [g for g in groups if g.prunable]
    message = (f"{model.name!r}: {len(groups)} channel groups, {len(prunable)} prunable "
               f"({sum(g.size for g in prunable)} channels).")
    return GroupList(groups, message)
