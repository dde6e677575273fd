"""A registry of residual-block scores. Convention: **low score = remove first**.

Built-in criteria (``names()`` lists them):

At initialization, data-dependent (loss: sparse categorical cross-entropy from logits by default;
batch norm in training mode, as in the SNIP and GraSP papers; no state of the model is updated):

* ``snip``: per weight ``|w * dL/dw|`` (Lee et al. 2019); block score = **sum** over the block's
  trainable weights (its "connection sensitivity mass").
* ``grasp``: per weight ``S = -w * (H g)`` with ``g = dL/dw`` and ``H`` the Hessian (Wang et al. 2020),
  ``H g`` by double back-propagation on a twin of the model whose batch norm keeps second
  derivatives (see :class:`ExactBatchNormalization`).
  GraSP removes the weights with the *largest* ``S``; a block's score is therefore
  ``sum(w * H g) = -sum(S)``, which is sign-aware: to first order, zeroing the whole block changes
  the squared gradient norm by ``-2 * sum(w * H g)``, so the block with the lowest score is the one
  whose removal hurts gradient flow least (or helps it most).

The sum is the default aggregation because removing a block removes all its weights at once, and
the first-order (Taylor) effect of zeroing a set of weights is the sum of the per-weight terms.
``aggregate="mean"`` (mean per weight, removing the bias toward blocks with many weights) is
available for ``snip``, ``grasp`` and ``synflow``: ``score(..., aggregate="mean")``.

At initialization, data-free:

* ``synflow``: ``w * dR/dw`` with ``R`` the sum of the outputs of the network with ``|w|`` on an
  all-ones input (Tanaka et al. 2020), computed in float64 on a copy, batch norm in inference mode;
  block score = sum.
* ``random``: uniform numbers from ``numpy.random.default_rng(seed)``, in graph order.

After training (they accept the same call, data given):

* ``l1``: sum of ``|w|`` of the branch's trainable weights. Biased toward early stages: wider
  later blocks have more weights, so early blocks score lowest (rejected by Jordao et al.; kept as a
  baseline, see the tests).
* ``hrank``: mean matrix rank of the branch output's feature maps (per example and channel).
* ``expectabs``: mean absolute value of the branch output.
* ``pls``: label information in the branch output: per-block PLS projections of its pooled channels,
  then the mean VIP of the block's projections in one PLS over all blocks (our reading of Jordao et
  al. 2020, see :func:`pls`).
* ``kl``: mean ``KL(p || q)`` between the softmax of the network's output ``p`` and the output ``q``
  with the block's branch removed (``from_logits=False`` if the outputs are already probabilities).
* ``cka``: ``1 - linear CKA`` between the network's representation with and without the block
  (the input of the output layer by default, ``layer=`` to choose one): similar representations
  mean an unimportant block, so it scores low.

Register your own with :func:`register`; a criterion is called as
``fn(model, blocks, data, *, loss, seed, **options)`` where ``blocks`` are the removable
:class:`~keras_lottery.blocks.graph.Block` objects, ``data`` a list of ``(x, y)`` batches (or
``None`` when none was given) and ``loss`` a ``loss(y_true, y_pred)`` callable, and must return
``{block.name: float}`` for every block.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from keras_lottery.blocks.graph import find_blocks, is_functional

_REGISTRY = {}


# --------------------------------------------------------------------------------------------------
# Registry


def register(name, fn=None, *, overwrite=False):
    """Register ``fn`` as criterion ``name``; usable as ``@register("name")`` too. Returns ``fn``.

    Raises ``ValueError`` if ``name`` is taken (unless ``overwrite``), ``TypeError`` if ``fn`` is not callable.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"A criterion name must be a non-empty str, got {name!r}.")

    def decorator(func):
        if not callable(func):
            raise TypeError(f"Criterion {name!r} must be callable, got {type(func).__name__!r}.")
        if name in _REGISTRY and not overwrite:
            raise ValueError(f"Criterion {name!r} is already registered; pass overwrite=True to replace it.")
        _REGISTRY[name] = func
        return func

    return decorator if fn is None else decorator(fn)


def unregister(name):
    """Remove criterion ``name`` from the registry."""
    get(name)
    del _REGISTRY[name]


def get(name):
    """The criterion function registered as ``name``."""
    if name not in _REGISTRY:
        raise ValueError(f"Unknown block criterion {name!r}; registered: {names()}.")
    return _REGISTRY[name]


def names():
    """Sorted names of the registered criteria."""
    return sorted(_REGISTRY)


# --------------------------------------------------------------------------------------------------
# Public entry points


def _as_batches(data):
    """``data`` as a list of ``(x, y)`` batches: from a ``tf.data.Dataset``/iterable of batches or one tuple."""
    if data is None:
        return None
    if isinstance(data, tuple) and len(data) in (2, 3) and not isinstance(data[0], tuple):
        return [(data[0], data[1])]
    if isinstance(data, (str, bytes, np.ndarray)) or not hasattr(data, "__iter__"):
        raise TypeError(f"data must be a tf.data.Dataset of (x, y) batches, an iterable of (x, y) batches or one "
                        f"(x, y) tuple; got {type(data).__name__!r}.")
    batches = []
    for item in data:
        if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
            raise TypeError(f"Each batch of data must be an (x, y) pair, got {type(item).__name__!r}"
                            f"{' of length ' + str(len(item)) if isinstance(item, (tuple, list)) else ''}.")
        batches.append((item[0], item[1]))
    if not batches:
        raise ValueError("data holds no batch (an empty dataset? check .take(n)).")
    return batches


def _as_loss(loss):
    if loss is None:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    elif isinstance(loss, str):
        loss = keras.losses.get(loss)
    if isinstance(loss, keras.losses.Loss):
        # Loss.__call__ divides by the replica count inside a tf.distribute scope (it expects to be
        # summed over replicas); scoring sees whole batches once, so reduce the per-example values here.
        per_example = loss.call
        return lambda y_true, y_pred: keras.ops.mean(per_example(y_true, y_pred))
    if callable(loss):
        return loss
    raise TypeError(f"loss must be None, a Keras loss name or a callable loss(y_true, y_pred), got {loss!r}.")


def score(model, data=None, criterion="grasp", seed=0, loss=None, blocks=None, **options):
    """Score the removable residual blocks of ``model``; low score = remove first.

    Args:
        model: a functional ``keras.Model`` (not modified: no weight or batch-norm statistic changes).
        data: a ``tf.data.Dataset`` of ``(x, y)`` batches (bound it with ``.take(n)``), an iterable of
            batches, or one ``(x, y)`` tuple. Required by every criterion except ``synflow``,
            ``random`` and ``l1``.
        criterion: a registered name (see :func:`names`) or a callable with the criterion signature.
        seed: seed for criteria that draw random numbers.
        loss: ``None`` (sparse categorical cross-entropy from logits), a Keras loss name or callable.
        blocks: the blocks to score (default: every removable block of :func:`find_blocks`).
        **options: passed to the criterion (e.g. ``aggregate="mean"``, ``layer="pool"``).

    Returns:
        ``{block name: float}`` in graph order, one entry per removable block.
    """
    if not isinstance(model, keras.Model) or not is_functional(model):
        raise TypeError(f"score needs a functional keras.Model, got {type(model).__name__!r}.")
    fn = criterion if callable(criterion) else get(criterion)
    found = find_blocks(model, warn=False)
    if blocks is None:
        blocks = found.removable
    else:
        from keras_lottery.blocks.rewrite import resolve_blocks

        blocks = resolve_blocks(model, blocks, found)
    if not blocks:
        raise ValueError(f"Nothing to score: {found.message}")
    result = fn(model, list(blocks), _as_batches(data), loss=_as_loss(loss), seed=seed, **options)
    expected = [b.name for b in blocks]
    if not isinstance(result, dict) or set(result) != set(expected):
        got = sorted(result) if isinstance(result, dict) else type(result).__name__
        raise ValueError(f"Criterion {getattr(fn, '__name__', fn)!r} must return a dict with one score per block "
                         f"{expected}; got {got}.")
    out = {}
    for name in expected:
        value = float(result[name])
        if not math.isfinite(value):
            raise ValueError(f"Criterion {getattr(fn, '__name__', fn)!r} gave block {name!r} the non-finite "
                             f"score {value}.")
        out[name] = value
    return out


def lowest(scores, k):
    """The ``k`` block names with the lowest scores (remove first), lowest first.

    Ties are broken by the order of ``scores`` (graph order for :func:`score`'s output), so the result
    is deterministic.
    """
    if not isinstance(scores, dict):
        raise TypeError(f"scores must be a dict block name -> float, got {type(scores).__name__!r}.")
    if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= len(scores):
        raise ValueError(f"k must be an int between 0 and the number of scored blocks ({len(scores)}), got {k!r}.")
    values = {}
    for name, value in scores.items():
        value = float(value)
        if math.isnan(value):
            raise ValueError(f"Score of block {name!r} is NaN; cannot rank it.")
        values[name] = value
    ranked = sorted(enumerate(values.items()), key=lambda item: (item[1][1], item[0]))
    return [name for _, (name, _) in ranked[:k]]


# --------------------------------------------------------------------------------------------------
# Helpers shared by criteria


def _require_data(data, name):
    if data is None:
        raise ValueError(f"Criterion {name!r} needs data: a tf.data.Dataset of (x, y) batches or an (x, y) tuple.")
    return data


def _block_variable_indices(model, blocks, variables):
    """``{block name: [indices into variables]}`` for the weights of each block's branch layers."""
    position = {id(v): i for i, v in enumerate(variables)}
    result = {}
    for block in blocks:
        indices = []
        for layer_name in block.branch_layers:
            for w in model.get_layer(layer_name).weights:
                i = position.get(id(w))
                if i is not None and i not in indices:
                    indices.append(i)
        result[block.name] = indices
    return result


def _aggregate(per_weight, model, blocks, variables, aggregate):
    """Reduce per-weight saliencies (arrays aligned with ``variables``) to one float per block."""
    if aggregate not in ("sum", "mean"):
        raise ValueError(f"aggregate must be 'sum' or 'mean', got {aggregate!r}.")
    indices = _block_variable_indices(model, blocks, variables)
    out = {}
    for block in blocks:
        arrays = [np.asarray(per_weight[i], dtype=np.float64) for i in indices[block.name]]
        total = float(sum(a.sum() for a in arrays))
        count = sum(a.size for a in arrays)
        out[block.name] = total / max(count, 1) if aggregate == "mean" else total
    return out


def gradients(model, batches, loss, training=True, offset=None):
    """Loss gradients w.r.t. ``model.trainable_variables``, averaged over batches, as float32 arrays.

    TensorFlow-specific (``tf.GradientTape`` in a ``tf.function``, traced once per batch shape). The
    model runs through ``stateless_call``, so neither weights nor batch-norm statistics change. With
    ``offset`` (arrays aligned with the trainable variables) the gradient is taken at
    ``weights + offset``.
    """
    import tensorflow as tf

    variables = model.trainable_variables
    values = [tf.convert_to_tensor(v.value) for v in variables]
    if offset is not None:
        values = [v + tf.cast(o, v.dtype) for v, o in zip(values, offset)]
    frozen = [tf.convert_to_tensor(v.value) for v in model.non_trainable_variables]

    @tf.function(reduce_retracing=True)  # one graph for all batches: eager back-propagation is op-by-op
    def batch_gradient(values, x, y):
        with tf.GradientTape() as tape:
            tape.watch(values)
            outputs, _ = model.stateless_call(values, frozen, x, training=training)
            value = loss(y, outputs)
        return _dense(tape.gradient(value, values), values)

    return _batch_average(lambda x, y: batch_gradient(values, x, y), values, batches)


def _dense(grads, values):
    """``grads`` with a zero tensor wherever a variable got no gradient (``None``)."""
    import tensorflow as tf

    return [tf.zeros_like(v) if g is None else g for v, g in zip(values, grads)]


def _batch_average(per_batch, values, batches):
    """Mean over ``batches`` of ``per_batch(x, y)`` (tensors aligned with ``values``), as NumPy arrays."""
    import tensorflow as tf

    total = [tf.zeros_like(v) for v in values]
    for x, y in batches:
        total = [t + g for t, g in zip(total, per_batch(x, y))]
    return [(t / len(batches)).numpy() for t in total]


class ExactBatchNormalization(keras.layers.BatchNormalization):
    """Batch norm whose training-mode moments are plain ``mean`` / ``mean((x - mean)^2)``.

    TensorFlow's ``tf.nn.moments`` (behind Keras batch norm) stops the gradient through the batch
    mean inside the variance: first derivatives stay exact, second derivatives do not. Scoring that
    needs Hessian-vector products runs on a twin of the model with this layer instead (same weights).
    Inference mode is the parent's.
    """

    def call(self, inputs, training=None, mask=None):
        if not training:
            return super().call(inputs, training=training, mask=mask)
        x = keras.ops.cast(inputs, self.compute_dtype)
        rank = len(x.shape)
        axis = self.axis % rank
        axes = [i for i in range(rank) if i != axis]
        mean = keras.ops.mean(x, axis=axes, keepdims=True)
        variance = keras.ops.mean(keras.ops.square(x - mean), axis=axes, keepdims=True)
        out = (x - mean) * keras.ops.rsqrt(variance + self.epsilon)
        shape = [1] * rank
        shape[axis] = x.shape[axis]
        if self.scale:
            out = out * keras.ops.reshape(keras.ops.cast(self.gamma, out.dtype), shape)
        if self.center:
            out = out + keras.ops.reshape(keras.ops.cast(self.beta, out.dtype), shape)
        return out


def twin(model, dtype=None, exact_batch_norm=False):
    """A copy of functional ``model`` (same graph, layer names and weights), optionally in ``dtype``
    and with :class:`ExactBatchNormalization` in place of ``BatchNormalization``."""
    from keras_lottery.blocks.rewrite import copy_weights

    config = model.get_config()
    for layer_config in config["layers"]:
        if dtype is not None and "dtype" in layer_config.get("config", {}):
            layer_config["config"]["dtype"] = dtype
        if exact_batch_norm and layer_config["class_name"] == "BatchNormalization":
            layer_config.update(class_name="ExactBatchNormalization", module=None,
                                registered_name="ExactBatchNormalization")
    copy = keras.Model.from_config(config, custom_objects={"ExactBatchNormalization": ExactBatchNormalization})
    copy_weights(model, copy)
    return copy


def hessian_vector_product(model, batches, loss, vector, training=True):
    """``H @ vector`` for the Hessian ``H`` of the batch-averaged loss w.r.t. ``model.trainable_variables``.

    Double back-propagation with ``tf.GradientTape`` through ``stateless_call`` (no state changes), one
    ``tf.function`` graph for all batches of a shape.
    Call it on ``twin(model, exact_batch_norm=True)`` for models with batch norm (see
    :class:`ExactBatchNormalization`); :func:`grasp` does.
    """
    import tensorflow as tf

    values = [tf.convert_to_tensor(v.value) for v in model.trainable_variables]
    frozen = [tf.convert_to_tensor(v.value) for v in model.non_trainable_variables]
    vector = [tf.convert_to_tensor(v, dtype=t.dtype) for v, t in zip(vector, values)]

    @tf.function(reduce_retracing=True)
    def batch_product(values, vector, x, y):
        with tf.GradientTape() as outer:
            outer.watch(values)
            with tf.GradientTape() as inner:
                inner.watch(values)
                outputs, _ = model.stateless_call(values, frozen, x, training=training)
                value = loss(y, outputs)
            first = inner.gradient(value, values)
            dot = tf.add_n([tf.reduce_sum(g * v) for g, v in zip(first, vector) if g is not None])
        return _dense(outer.gradient(dot, values), values)

    return _batch_average(lambda x, y: batch_product(values, vector, x, y), values, batches)


# --------------------------------------------------------------------------------------------------
# At initialization


@register("snip")
def snip(model, blocks, data, *, loss, seed, aggregate="sum", training=True):
    """SNIP: sum (or mean) over the block's weights of ``|w * dL/dw|``."""
    batches = _require_data(data, "snip")
    variables = model.trainable_variables
    grads = gradients(model, batches, loss, training=training)
    saliency = [np.abs(np.asarray(v.numpy(), np.float64) * g) for v, g in zip(variables, grads)]
    return _aggregate(saliency, model, blocks, variables, aggregate)


@register("grasp")
def grasp(model, blocks, data, *, loss, seed, aggregate="sum", training=True):
    """GraSP, sign-aware: sum (or mean) over the block's weights of ``w * (H g)`` (= minus GraSP's score)."""
    batches = _require_data(data, "grasp")
    exact = twin(model, exact_batch_norm=True)
    variables = exact.trainable_variables
    g = gradients(exact, batches, loss, training=training)
    hg = hessian_vector_product(exact, batches, loss, g, training=training)
    saliency = [np.asarray(v.numpy(), np.float64) * h for v, h in zip(variables, hg)]
    return _aggregate(saliency, exact, blocks, variables, aggregate)


@register("synflow")
def synflow(model, blocks, data, *, loss, seed, aggregate="sum"):
    """SynFlow: ``|w| * dR/d|w|`` with ``R = sum(f_|w|(1))``, in float64, batch norm in inference mode."""
    import tensorflow as tf

    linear = twin(model, dtype="float64")
    for v in linear.weights:
        v.assign(keras.ops.abs(v.value))
    variables = linear.trainable_variables
    values = [tf.convert_to_tensor(v.value) for v in variables]
    frozen = [tf.convert_to_tensor(v.value) for v in linear.non_trainable_variables]
    ones = [tf.ones((1,) + tuple(t.shape[1:]), tf.float64) for t in linear.inputs]
    with tf.GradientTape() as tape:
        tape.watch(values)
        outputs, _ = linear.stateless_call(values, frozen, ones if len(ones) > 1 else ones[0], training=False)
        total = tf.add_n([tf.reduce_sum(o) for o in tf.nest.flatten(outputs)])
    grads = tape.gradient(total, values)
    if not np.isfinite(float(total)):
        raise FloatingPointError(f"SynFlow overflowed float64 on {model.name!r} (R = {float(total)}).")
    saliency = [np.zeros(v.shape) if g is None else (v * g).numpy() for v, g in zip(values, grads)]
    return _aggregate(saliency, linear, blocks, variables, aggregate)


@register("random")
def random_scores(model, blocks, data, *, loss, seed):
    """Uniform random scores from ``numpy.random.default_rng(seed)``, drawn in graph order."""
    rng = np.random.default_rng(seed)
    return {block.name: float(value) for block, value in zip(blocks, rng.random(len(blocks)))}


# --------------------------------------------------------------------------------------------------
# After training


@register("l1")
def l1(model, blocks, data, *, loss, seed):
    """Sum of ``|w|`` over the trainable weights of the block's branch layers."""
    out = {}
    for block in blocks:
        total = 0.0
        for layer_name in block.branch_layers:
            for w in model.get_layer(layer_name).trainable_weights:
                total += float(np.abs(np.asarray(w.numpy(), np.float64)).sum())
        out[block.name] = total
    return out


def _inputs(model):
    """The model's inputs in the structure a call expects (a single tensor for one input)."""
    return model.inputs[0] if len(model.inputs) == 1 else model.inputs


def branch_outputs(model, blocks, batches):
    """Yield, per batch, ``{block name: branch output array}`` (inference mode)."""
    tensors = []
    for block in blocks:
        layer = model.get_layer(block.branch_output)
        try:
            tensors.append(layer.output)
        except (AttributeError, ValueError) as error:
            raise ValueError(f"Block {block.name!r}: the output of {layer.name!r} is ambiguous (a shared layer); "
                             f"activation criteria need single-call branch outputs.") from error
    probe = keras.Model(_inputs(model), tensors)
    for x, _ in batches:
        outputs = probe(x, training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        yield {block.name: keras.ops.convert_to_numpy(o) for block, o in zip(blocks, outputs)}


@register("expectabs")
def expectabs(model, blocks, data, *, loss, seed):
    """Mean absolute activation of the block's branch output over ``data``."""
    batches = _require_data(data, "expectabs")
    sums, counts = {b.name: 0.0 for b in blocks}, {b.name: 0 for b in blocks}
    for outputs in branch_outputs(model, blocks, batches):
        for name, a in outputs.items():
            sums[name] += float(np.abs(a.astype(np.float64)).sum())
            counts[name] += a.size
    return {name: sums[name] / counts[name] for name in sums}


@register("hrank")
def hrank(model, blocks, data, *, loss, seed, tolerance=None):
    """Mean rank of the branch output's feature maps (one ``H x W`` matrix per example and channel)."""
    batches = _require_data(data, "hrank")
    sums, counts = {b.name: 0.0 for b in blocks}, {b.name: 0 for b in blocks}
    channels_first = keras.config.image_data_format() == "channels_first"
    for outputs in branch_outputs(model, blocks, batches):
        for name, a in outputs.items():
            if a.ndim != 4:
                raise ValueError(f"hrank needs 2D feature maps (batch, H, W, C); block {name!r} outputs shape "
                                 f"{a.shape}.")
            maps = a if channels_first else np.transpose(a, (0, 3, 1, 2))
            ranks = np.linalg.matrix_rank(maps.astype(np.float64), tol=tolerance)
            sums[name] += float(ranks.sum())
            counts[name] += ranks.size
    return {name: sums[name] / counts[name] for name in sums}


def _pooled(a, pooling):
    """Per-example channel features of a branch output: global max/avg over the spatial axes."""
    if a.ndim == 2:
        return a
    channels_first = keras.config.image_data_format() == "channels_first"
    spatial = tuple(range(2, a.ndim)) if channels_first else tuple(range(1, a.ndim - 1))
    return a.max(axis=spatial) if pooling == "max" else a.mean(axis=spatial)


def _responses(labels):
    """Labels as a response matrix: one-hot columns for integer labels, as given for one-hot/probabilities."""
    y = np.concatenate([np.asarray(keras.ops.convert_to_numpy(b)) for b in labels])
    if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
        y = y.reshape(-1)
        if not np.issubdtype(y.dtype, np.integer) and not np.all(y == np.round(y)):
            raise ValueError("pls needs class labels: integers, or one-hot rows.")
        return (y[:, None] == np.unique(y)[None, :]).astype(np.float64)
    return y.reshape(y.shape[0], -1).astype(np.float64)


@register("pls")
def pls(model, blocks, data, *, loss, seed, components=2, pooling="max"):
    """Discriminative power of the block's branch output for the labels, by PLS + VIP (Jordao et al. 2020).

    Our reading of their layer criterion: each block's branch output is pooled to one feature per
    channel (global ``pooling``: ``"max"`` or ``"avg"``) and projected on ``components`` PLS
    components against the one-hot labels; a second PLS on all blocks' projections together gives
    every projected feature a VIP score, and a block scores the mean VIP of its features. A block whose
    output carries no label information (e.g. constant) scores 0.
    """
    from keras_lottery.blocks import pls as pls_math

    if pooling not in ("max", "avg"):
        raise ValueError(f"pooling must be 'max' or 'avg', got {pooling!r}.")
    batches = _require_data(data, "pls")
    y = _responses([labels for _, labels in batches])
    if y.shape[0] < 2 or y.shape[1] < 2:
        raise ValueError(f"pls needs at least 2 examples of at least 2 classes; data has {y.shape[0]} examples "
                         f"and {y.shape[1]} class(es).")
    features = {b.name: [] for b in blocks}
    for outputs in branch_outputs(model, blocks, batches):
        for name, a in outputs.items():
            features[name].append(_pooled(a.astype(np.float64), pooling))
    latent, owner = [], []
    for block in blocks:
        scores = pls_math.fit(np.concatenate(features[block.name]), y, components).scores
        latent.append(scores)
        owner += [block.name] * scores.shape[1]
    importance = pls_math.vip(np.concatenate(latent, axis=1), y, components) if owner else np.zeros(0)
    out = {}
    for block in blocks:
        mine = [v for name, v in zip(owner, importance) if name == block.name]
        out[block.name] = float(np.mean(mine)) if mine else 0.0
    return out


def _zeroable(layer):
    """Whether zeroing ``layer``'s weights makes its output exactly zero."""
    cls = type(layer).__name__
    if cls == "BatchNormalization":
        return layer.scale
    activation = getattr(layer, "activation", None)
    linear = activation is None or getattr(activation, "__name__", "") in ("linear", "relu")
    return cls in ("Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "Dense", "SeparableConv2D") and linear


class _Ablation:
    """Outputs of the layers ``names`` with one block's branch forced to zero (inference mode).

    When the branch's last layer is zeroable (batch norm with scale, or a linear/ReLU convolution or
    dense layer), its weights are replaced by zeros through ``stateless_call``; otherwise the block is
    removed with :func:`~keras_lottery.blocks.rewrite.remove` (same function, slower).
    """

    def __init__(self, model, names):
        self.model, self.names = model, list(names)
        self.probe = keras.Model(_inputs(model), [model.get_layer(n).output for n in self.names])

    def reference(self, x):
        return self._listed(self.probe(x, training=False))

    def _listed(self, outputs):
        return [keras.ops.convert_to_numpy(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]

    def __call__(self, block, x):
        layer = self.model.get_layer(block.branch_output)
        if _zeroable(layer):
            if type(layer).__name__ == "BatchNormalization":
                zero = {id(layer.gamma)} | ({id(layer.beta)} if layer.center else set())
            else:
                zero = {id(w) for w in layer.weights}
            trainable = [keras.ops.zeros_like(v.value) if id(v) in zero else v.value
                         for v in self.probe.trainable_variables]
            frozen = [keras.ops.zeros_like(v.value) if id(v) in zero else v.value
                      for v in self.probe.non_trainable_variables]
            outputs, _ = self.probe.stateless_call(trainable, frozen, x, training=False)
            return self._listed(outputs)
        from keras_lottery.blocks.rewrite import remove

        ticket = remove(self.model, [block])
        probe = keras.Model(_inputs(ticket), [ticket.get_layer(n).output for n in self.names])
        return self._listed(probe(x, training=False))


def _output_layer_names(model):
    from keras_lottery.blocks.graph import FunctionalGraph

    graph = FunctionalGraph(model)
    return graph, [key[0] for key in graph.output_keys]


def _representation_name(model, layer):
    """``layer`` or the name of the layer feeding the model's (first) output layer."""
    if layer is not None:
        model.get_layer(layer)
        return layer
    graph, outputs = _output_layer_names(model)
    inputs = graph.node_inputs[(outputs[0], 0)]
    if not inputs:
        raise ValueError(f"{model.name!r}: its output layer {outputs[0]!r} has no input; pass layer=.")
    return inputs[0][0]


@register("kl")
def kl_divergence(model, blocks, data, *, loss, seed, from_logits=True):
    """Mean ``KL(p || q)``: network output ``p`` vs output ``q`` with the block's branch removed."""
    batches = _require_data(data, "kl")
    ablation = _Ablation(model, _output_layer_names(model)[1][:1])
    sums = {b.name: 0.0 for b in blocks}
    count = 0

    def probabilities(z):
        z = np.asarray(z, np.float64)
        if not from_logits:
            return np.clip(z, 1e-12, 1.0)
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return np.clip(e / e.sum(axis=-1, keepdims=True), 1e-12, 1.0)

    for x, _ in batches:
        p = probabilities(ablation.reference(x)[0])
        for block in blocks:
            q = probabilities(ablation(block, x)[0])
            sums[block.name] += float((p * (np.log(p) - np.log(q))).sum())
        count += p.shape[0]
    return {name: value / count for name, value in sums.items()}


def linear_cka(a, b):
    """Linear centered kernel alignment of two ``(examples, features)`` matrices (Kornblith et al. 2019)."""
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    cross = np.linalg.norm(b.T @ a) ** 2
    norm = np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b)
    return float(cross / norm) if norm > 0 else 0.0


@register("cka")
def cka(model, blocks, data, *, loss, seed, layer=None):
    """``1 - linear CKA`` of the representation (input of the output layer, or ``layer``) with and without the block."""
    batches = _require_data(data, "cka")
    ablation = _Ablation(model, [_representation_name(model, layer)])
    reference, ablated = [], {b.name: [] for b in blocks}
    for x, _ in batches:
        reference.append(ablation.reference(x)[0])
        for block in blocks:
            ablated[block.name].append(ablation(block, x)[0])
    if sum(len(r) for r in reference) < 2:
        raise ValueError("cka needs at least two examples in data.")
    ref = np.concatenate(reference)
    return {name: 1.0 - linear_cka(ref, np.concatenate(parts)) for name, parts in ablated.items()}
