"""Masks on models: the ``MaskedLayer`` wrapper, ``mask`` / ``strip`` / ``copy_weights``, and the
model side of the ``Mask`` data type (``read_mask``, ``apply_mask``, ``sparsity``).

``keras_lottery.masks`` holds the data (a ``Mask`` is a mapping of weight paths to boolean arrays);
this module is the only one that reads masks from models or installs them. Which weights are
prunable is decided in one place, :mod:`keras_lottery.layers`; optimizer-slot lookup is in
:mod:`keras_lottery.compat`.

How masked weights stay exactly zero, at almost no cost per step:

1. **Stored weights.** Whenever a mask is installed (``apply_mask``, ``prune``, ``copy_weights``,
   ``mask`` of an already masked model, the rewind callback) the stored weights *and the
   optimizer's per-weight state* (momentum, Adam moments, EMA, gradient accumulators: every
   optimizer variable created for the weight, found by the ``<weight path>_<name>`` naming of
   ``Optimizer.add_variable_from_reference``) are multiplied by the mask.
2. **Gradients.** ``MaskedLayer.call`` runs the wrapped layer inside a ``keras.StatelessScope``
   that maps each prunable variable to itself through a custom-gradient identity whose gradient is
   ``upstream * mask``. The gradient of a dead entry is therefore exactly 0 (so gradient clipping by
   global norm, Adam's moments and similar statistics only ever see the live weights), and with
   zero value, zero gradient and zero state every Keras optimizer update keeps it at exactly 0:
   momentum (plain or Nesterov), Adam/AdamW/RMSprop/Adagrad/Lion, decoupled weight decay (a multiple
   of the weight), L2 regularizers (gradient 2 l w), gradient clipping, loss scaling. The forward
   pass reads the stored weights, whose dead entries are exactly 0 by 1 and 2, so it computes the
   subnetwork. Per step this costs one multiply of each prunable gradient by its mask, between
   the backward pass and the optimizer update (measured in docs/masks.md).
3. **Optional forward multiply** (``mask_forward=True``): the forward pass uses
   ``variable * mask`` instead, so dead entries are 0 in the forward pass even when someone writes
   the stored variables behind the library's back (``variable.assign``, ``model.set_weights``). It
   costs one more multiply per prunable weight per step, on the critical path (measured in
   docs/masks.md). Without it, call ``apply_mask(model, Mask.from_model(model))`` (or
   ``MaskedLayer.zero_dead_weights``) after such a write.
4. **Optional per-step re-zeroing** (``reapply_after_step=True``): the prunable variable also gets a
   Keras ``constraint`` (composed with the layer's own) that multiplies it by the mask after every
   optimizer step. Use it with custom optimizers that move weights whose gradient and state are
   zero, or when optimizer state is restored from before a pruning step without calling
   ``apply_mask``/``zero_optimizer_state`` afterwards. It costs one more pass over the weights per
   step.

No train step is overridden: users compile and fit as usual, with any optimizer, ``jit_compile``,
mixed precision or a ``tf.distribute`` strategy. Restoring optimizer variables saved before a
pruning step (rewinding) brings back momentum at dead positions: call
``zero_optimizer_state(model)`` (or ``apply_mask(model, mask)``) after such a restore.

Prunable weights are those of :mod:`keras_lottery.layers` (built-in kernels and embeddings, the
kernels of attention, recurrent and wrapped layers, or a custom layer's ``get_prunable_weights()``);
``mask`` names in a warning (or an error) every trainable weight of rank >= 2 it leaves unmasked.
"""

import inspect
import warnings

import keras
import numpy as np
import tensorflow as tf  # the custom-gradient identity; TensorFlow is the backend this library runs on

from keras_lottery import attached, compat, compiled, graph, layers
from keras_lottery.layers import SUPPORTED, prunable_weight_names
from keras_lottery.masks import Mask, format_report, keyed_for

__all__ = ["MaskedLayer", "apply_mask", "copy_weights", "density_report", "is_prunable", "mask", "mask_variables",
           "masked_layers", "nonzero_mask",
           "ones_mask", "optimizer_slots", "prunable_weight_names", "read_mask", "sparsity", "strip",
           "zero_dead_weights", "zero_optimizer_state"]

# Optimizer slots are found through a Keras naming convention; compat owns it. Re-exported under the name
# this module has always had.
optimizer_slots = compat.optimizer_slots


def is_prunable(layer):
    """Whether ``MaskedLayer`` can wrap ``layer`` (a prunable layer of :mod:`keras_lottery.layers`, not yet wrapped)."""
    return not isinstance(layer, MaskedLayer) and layers.is_prunable(layer)


def _masked_gradient(value, mask_value):
    """``value`` unchanged in the forward pass; its gradient multiplied by ``mask_value``.

    On TensorFlow, sparse gradients (``IndexedSlices``, e.g. from an ``Embedding`` lookup) stay sparse:
    only the gathered rows of the mask are multiplied. Other backends use ``keras.ops.custom_gradient``.
    """
    if keras.backend.backend() != "tensorflow":
        return _masked_gradient_any_backend(value, mask_value)

    @tf.custom_gradient
    def identity(x):
        def grad(upstream):
            if isinstance(upstream, tf.IndexedSlices):
                rows = tf.gather(tf.cast(mask_value, upstream.values.dtype), upstream.indices)
                return tf.IndexedSlices(upstream.values * rows, upstream.indices, upstream.dense_shape)
            return upstream * tf.cast(mask_value, upstream.dtype)

        return tf.identity(x), grad

    # A read first: a MirroredVariable called eagerly outside its replica context passes itself as the value,
    # and a custom gradient that sees a variable needs a `variables` argument.
    return identity(tf.convert_to_tensor(value))


def _masked_gradient_any_backend(value, mask_value):
    mask_value = keras.ops.stop_gradient(mask_value)

    @keras.ops.custom_gradient
    def identity(x):
        def grad(*args, upstream=None):
            upstream = args[0] if upstream is None else upstream  # JAX passes it by keyword
            return keras.ops.multiply(upstream, keras.ops.cast(mask_value, upstream.dtype))

        return keras.ops.copy(x), grad

    return identity(value)


class MaskConstraint(keras.constraints.Constraint):
    """Multiplies a weight by its mask after each optimizer step (after ``inner``, if any)."""

    def __init__(self, mask_variable, inner=None):
        self.mask_variable = mask_variable
        self.inner = inner

    def __call__(self, w):
        if self.inner is not None:
            w = self.inner(w)
        return keras.ops.multiply(w, keras.ops.cast(self.mask_variable, w.dtype))

    def get_config(self):
        # Installed on variables only, never serialized: the wrapper re-installs it when built.
        return {}


@keras.saving.register_keras_serializable(package="keras_lottery")
class MaskedLayer(keras.layers.Wrapper):
    """Wraps a prunable layer and gives each prunable weight a non-trainable mask (1 = alive).

    Use it directly when building a model (``MaskedLayer(keras.layers.Dense(10))``) or let
    ``keras_lottery.mask(model)`` wrap every prunable layer of a functional or Sequential model.
    The wrapper takes the wrapped layer's name, so ``model.get_layer("fc1")`` finds it and weight
    paths read ``"fc1/kernel"``. Masks start all ones. See the module docstring for how masked
    entries are kept exactly zero.

    Args:
        layer: a layer with built-in prunable weights or a ``get_prunable_weights()`` method.
        mask_forward: also multiply each prunable weight by its mask in the forward pass, so weights
            written behind the library's back are masked too (costs one multiply per weight per
            step; see module doc).
        reapply_after_step: also re-zero dead weights after every optimizer step (see module doc).
        **kwargs: base layer arguments (``name`` defaults to ``layer.name``).
    """

    # Gives each prunable weight's value with its gradient multiplied by the mask (module doc, 2).
    # experiments/bench_masks times a copy without it, to measure what that multiply costs.
    mask_gradient = staticmethod(_masked_gradient)

    def __init__(self, layer, mask_forward=False, reapply_after_step=False, **kwargs):
        # an unbuilt layer of layers is accepted: its prunable weights are known once it is built
        composite = isinstance(layer, keras.layers.Layer) and not layer.built and bool(compat.sublayers(layer))
        if not isinstance(layer, keras.layers.Layer) or not (is_prunable(layer) or composite
                                                             or self.accepts_without_weights(layer)):
            raise ValueError(
                f"MaskedLayer cannot wrap {layer!r} ({type(layer).__name__}). Accepted: {SUPPORTED}, or any "
                "layer defining get_prunable_weights() that returns the variables to mask.")
        kwargs.setdefault("name", layer.name)
        kwargs.setdefault("dtype", layer.dtype_policy)
        kwargs["autocast"] = False  # read raw float32 variables; the wrapped layer autocasts itself
        super().__init__(layer, **kwargs)
        self.supports_masking = getattr(layer, "supports_masking", False)
        self._passes_training = "training" in inspect.signature(layer.call).parameters
        self.mask_forward = bool(mask_forward)
        self.reapply_after_step = bool(reapply_after_step)
        self._prunable = []  # list of (path, variable, mask variable)
        self._paths = None  # {id(variable): path} for masks attached in place (keras_lottery.attached)

    def accepts_without_weights(self, layer):
        """Whether this wrapper may hold ``layer`` although it has no prunable weights (then it masks
        nothing). ``MaskedLayer``: never; ``keras_lottery.sparsity.PruneLowMagnitude``: TFMOT's no-op layers."""
        return False

    def get_config(self):
        return {**super().get_config(), "mask_forward": self.mask_forward,
                "reapply_after_step": self.reapply_after_step}

    # -- building --------------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        if not self.layer.built:
            self._build_from_call(args, kwargs)
        return super().__call__(*args, **kwargs)

    def _build_from_call(self, args, kwargs):
        """Builds a wrapped layer whose ``build`` takes several shapes (``MultiHeadAttention(query, value)``).

        Keras names them after the call's arguments (``query`` -> ``query_shape``); a layer built from
        one shape is left to ``build(input_shape)``.
        """
        try:
            bound = inspect.signature(self.layer.call).bind_partial(*args, **kwargs).arguments
        except TypeError:
            return  # the call itself will report the bad arguments
        params = inspect.signature(self.layer.build).parameters
        shapes = {f"{name}_shape": tuple(value.shape) for name, value in bound.items()
                  if f"{name}_shape" in params and hasattr(value, "shape")}
        if len(shapes) > 1:
            self.layer.build(**shapes)

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        items = layers.prunable_items(self.layer)
        if self._paths is not None:  # attached in place: each weight named by its unique path in the model
            items = [(self._paths[id(variable)], variable) for _, variable in items]
        if not items and not self.accepts_without_weights(self.layer):
            raise ValueError(f"Layer {self.layer.name!r} ({type(self.layer).__name__}) has no prunable weights.")
        self._prunable = []
        for path, variable in items:
            if not variable.trainable:
                raise ValueError(f"Prunable weight {variable.path!r} must be trainable.")
            # "kernel_mask" for a Dense; "query_kernel_mask" for a MultiHeadAttention's query kernel
            name = (path.split("/", 1)[1] if self._paths is None else variable.name).replace("/", "_") + "_mask"
            mask_var = self.add_weight(name=name, shape=variable.shape, dtype=variable.dtype,
                                       initializer="ones", trainable=False, autocast=False)
            if self.reapply_after_step:
                variable.constraint = MaskConstraint(mask_var, inner=variable.constraint)
            self._prunable.append((path, variable, mask_var))
        self.built = True

    def get_build_config(self):
        config = dict(super().get_build_config() or {})
        inner = self.layer.get_build_config()
        if inner:  # how the wrapped layer was built (several input shapes for MultiHeadAttention)
            config["layer"] = inner
        return config or None

    def build_from_config(self, config):
        config = dict(config or {})
        inner = config.pop("layer", None)
        if inner and not self.layer.built:
            self.layer.build_from_config(inner)
        self.build(config.get("input_shape"))

    # -- forward ---------------------------------------------------------------------------------
    def call(self, inputs, *args, training=None, **kwargs):
        if self._passes_training:
            kwargs["training"] = training
        return self.run_masked(self.layer, (inputs, *args), kwargs, sink=self)

    def run_masked(self, function, args, kwargs, sink):
        """``function(*args, **kwargs)`` with each masked weight read through its mask (module doc, 2 and 3).

        ``function`` is the wrapped layer (a wrapper in a graph) or its original ``call`` (masks attached
        in place, :func:`keras_lottery.masking.mask` of a model that is not a plain graph); variable updates
        the wrapped layer makes (batch-norm statistics, seed generators) and the losses it adds are passed
        on, the losses to ``sink``.
        """
        if self.mask_forward:
            mapping = [(v, keras.ops.multiply(v.value, keras.ops.cast(m.value, v.dtype))) for _, v, m in self._prunable]
        else:  # dead stored entries are exactly 0 already (module doc): only the gradient needs the mask
            mapping = [(v, self.mask_gradient(v.value, m.value)) for _, v, m in self._prunable]
        if keras.backend.backend() != "tensorflow":
            # JAX trains statelessly: the enclosing scope holds every variable's value, and a nested
            # scope does not look there, so the wrapped layer's other variables are mapped too.
            masked = {id(v) for _, v, _ in self._prunable}
            mapping += [(v, v.value) for v in self.layer.variables if id(v) not in masked]
        with keras.StatelessScope(state_mapping=mapping, collect_losses=True, initialize_variables=False) as scope:
            outputs = function(*args, **kwargs)
        # The scope holds back variable updates and losses made by the wrapped layer: pass them on.
        for variable in self.layer.non_trainable_variables:
            value = scope.get_current_value(variable)
            if value is not None:
                variable.assign(value)
        for loss in scope.losses:
            sink.add_loss(loss)
        return outputs

    def run_attached(self, call, args, kwargs):
        """Runs the original ``call`` of the layer this holder is attached to (keras_lottery.attached)."""
        return self.run_masked(call, args, kwargs, sink=self.layer)

    def compute_mask(self, inputs, mask=None):
        return self.layer.compute_mask(inputs, mask)

    # -- mask access -----------------------------------------------------------------------------
    def masked_weights(self):
        """``[(path, the wrapped layer's variable, its mask variable)]`` for each masked weight, in order."""
        return list(self._prunable)

    def weight_paths(self):
        """The weight paths of this layer's masked weights, in order."""
        return [p for p, _, _ in self._prunable]

    def prunable_variables(self):
        """``{path: the wrapped layer's variable}`` for each masked weight."""
        return {p: v for p, v, _ in self._prunable}

    def mask_variables(self):
        """``{path: mask variable}`` for each masked weight."""
        return {p: m for p, _, m in self._prunable}

    def set_mask(self, path, array):
        """Installs a boolean mask for ``path`` and zeroes the dead entries of the weight."""
        for p, variable, mask_var in self._prunable:
            if p == path:
                array = np.asarray(array)
                if tuple(array.shape) != tuple(variable.shape):
                    raise ValueError(f"Mask for {path!r} has shape {array.shape}; the weight has shape "
                                     f"{tuple(variable.shape)}.")
                values = array.astype(bool).astype(mask_var.dtype)
                mask_var.assign(values)
                variable.assign(keras.ops.convert_to_numpy(variable.value) * values)
                return
        raise KeyError(f"{self.name!r} has no masked weight {path!r}; it has {self.weight_paths()}.")

    def zero_dead_weights(self):
        """Multiplies each masked weight by its mask (after setting weights from outside). Eager: for repeated
        calls on the same layers, :func:`zero_dead_weights` compiles them into one call."""
        _multiply_by_masks([(variable, mask_var) for _, variable, mask_var in self._prunable])


def _multiply_by_masks(pairs):
    """Assigns ``variable * mask`` to each variable of ``pairs`` ``[(variable, mask variable)]``."""
    for variable, mask_var in pairs:
        variable.assign(variable.value * keras.ops.cast(mask_var.value, variable.dtype))


def zero_dead_weights(masked):
    """Multiplies every masked weight of the ``MaskedLayer``s ``masked`` by its mask.

    On TensorFlow one compiled call does every weight, traced on the second call for these layers (the
    first runs eagerly) and reused after (``UpdatePruningStep`` calls it at each epoch's end); other
    backends call each layer's :meth:`MaskedLayer.zero_dead_weights`.
    """
    if keras.backend.backend() != "tensorflow":
        for layer in masked:
            layer.zero_dead_weights()
        return
    pairs = [(variable, mask_var) for layer in masked for _, variable, mask_var in layer.masked_weights()]

    def make():
        return tf.function(lambda: _multiply_by_masks(pairs))

    if pairs:
        compiled.for_variables("zero_dead_weights", [v for pair in pairs for v in pair], make,
                               first=lambda: _multiply_by_masks(pairs))()


def zero_optimizer_state(model, optimizer=None):
    """Multiplies the optimizer state of every masked weight by its mask; returns how many slots.

    ``optimizer`` defaults to ``model.optimizer`` (nothing happens if there is none or it is not
    built yet: fresh state is zero). Called by ``apply_mask``; call it yourself after restoring
    optimizer variables saved before a pruning step.
    """
    optimizer = optimizer if optimizer is not None else getattr(model, "optimizer", None)
    count = 0
    for layer in masked_layers(model):
        for _, variable, mask_var in layer.masked_weights():
            slots = compat.optimizer_slots(optimizer, variable)
            if not slots:
                continue
            values = keras.ops.convert_to_numpy(mask_var.value)
            for slot in slots:
                slot.assign(keras.ops.convert_to_numpy(slot.value) * values.astype(slot.dtype))
                count += 1
    return count


def masked_layers(model):
    """All ``MaskedLayer``s of ``model`` at any depth, wrappers in its graph and masks attached to its own layers
    (:mod:`keras_lottery.attached`), in layer order; ``model`` itself if it is one."""
    if isinstance(model, MaskedLayer):
        return [model]
    return attached.mask_layers(model, MaskedLayer)


def mask_variables(model):
    """Every mask variable of ``model`` (non-trainable; rewinding and interpolation leave them alone)."""
    return [m for layer in masked_layers(model) for m in layer.mask_variables().values()]


def _check_model(model, what):
    if not isinstance(model, keras.Model):
        raise TypeError(f"{what}() takes a keras.Model, got {type(model).__name__}.")


def _first_line(error):
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def copy_model(model, what="copy"):
    """A new model of ``model``'s class, from its config, with its weights (masks attached to it are not copied).

    Raises:
        ValueError: the class cannot be rebuilt from its config (the message says why and what to do).
    """
    try:
        new = _from_config(model)
        if not new.built and model.built:
            new.build_from_config(model.get_build_config())
    except Exception as error:  # a third-party class's config code can fail in any way: one sentence instead
        raise ValueError(f"{what}: {model.name!r} ({type(model).__name__}) cannot be rebuilt from its config "
                         f"({_first_line(error)}); pass copy=False to work on the model itself.") from None
    source, target = model.weights, new.weights
    if [tuple(v.shape) for v in source] != [tuple(v.shape) for v in target]:
        raise ValueError(f"{what}: the {type(model).__name__} rebuilt from the config of {model.name!r} has other "
                         "weights; pass copy=False to work on the model itself.")
    for src, dst in zip(source, target):
        dst.assign(src.value)
    if model.built and not new.built:
        # Keras' build_from_config of a subclassed model runs its call on symbolic inputs, which creates
        # every variable (checked above) but leaves ``built`` False: export and the cost model need it
        new.built = True
    return new


_UNMASKED = ("warn", "error", "ignore")


def mask(model, mask_forward=False, reapply_after_step=False, unmasked="warn", copy=True, from_zeros=False):
    """A model of the same class as ``model`` in which every prunable weight, at any depth, has a mask.

    * A plain Sequential or functional model (nested models included) is rebuilt with every prunable
      layer wrapped in ``MaskedLayer``: the same layer names, graph and weight values; ``model`` is not
      modified.
    * Any other model (a KerasHub backbone or task model, a ``keras.Model`` subclass) keeps its class and
      methods: a copy rebuilt from its config (``copy=True``) or the model itself (``copy=False``) gets
      masks attached in place to every layer that owns prunable weights, inside transformer blocks and
      user layers of layers included (:mod:`keras_lottery.attached`). Weights are named by their Keras
      variable path.

    Masks start all ones; with ``from_zeros=True`` they start as the non-zero entries of the weights (a
    ticket saved or stripped earlier). Layers that are already masked keep their masks.

    ``mask_forward=True`` adds the forward-pass multiply and ``reapply_after_step=True`` the
    per-step re-zeroing constraint (see the module doc); both cost time per step and are off by
    default.

    ``unmasked`` says what to do when a trainable weight of rank >= 2 stays without a mask (a custom
    layer's own kernel, a position embedding made with ``add_weight``): ``"warn"`` (default) names every
    such weight in a ``UserWarning``, ``"error"`` raises ``ValueError`` naming them, ``"ignore"``
    says nothing. Give such a layer a ``get_prunable_weights()`` method to have it masked.

    Raises:
        TypeError: ``model`` is not a ``keras.Model``.
        ValueError: an unknown ``unmasked``; unmasked weights with ``unmasked="error"``; a model whose class
            cannot be rebuilt from its config (with ``copy=True``) or whose layers are not built yet.
    """
    _check_model(model, "mask")
    if unmasked not in _UNMASKED:
        raise ValueError(f"mask(unmasked=...) must be one of {_UNMASKED}; got {unmasked!r}.")
    if compat.is_graph_model(model):
        new = _mask_graph(model, mask_forward, reapply_after_step)
    else:
        if model.built:  # a model marked built without weights: say so before a copy fails on them
            attached.check_owners_built(model)
        new = copy_model(model, "mask") if copy else model
        attached.attach(new, lambda layer: MaskedLayer(layer, mask_forward=mask_forward,
                                                       reapply_after_step=reapply_after_step))
        if new is not model and masked_layers(model):
            apply_mask(new, read_mask(model))
    if from_zeros:
        apply_mask(new, Mask({path: keras.ops.convert_to_numpy(variable.value) != 0
                              for layer in masked_layers(new) for path, variable in layer.prunable_variables().items()}))
    left = layers.unmasked_weights(new, [v for layer in masked_layers(new) for _, v, _ in layer.masked_weights()])
    if left and unmasked != "ignore":
        message = (f"mask({model.name!r}) leaves {len(left)} trainable weight(s) of rank >= 2 unmasked (dense): "
                   f"{left}. Their layers are not in the prunable registry (keras_lottery.layers); give such a layer a "
                   "get_prunable_weights() method to mask it, or pass unmasked='ignore'.")
        if unmasked == "error":
            raise ValueError(message)
        warnings.warn(message, UserWarning, stacklevel=2)
    return new


def _mask_graph(model, mask_forward, reapply_after_step):
    def clone_function(layer):
        if isinstance(layer, MaskedLayer):
            return clone_layer(layer)
        if graph.is_subclassed(layer):  # a model with its own call(): masks attached to its layers, as mask() does
            clone = copy_model(layer, "mask")
            attached.attach(clone, lambda inner: MaskedLayer(inner, mask_forward=mask_forward,
                                                               reapply_after_step=reapply_after_step))
            return clone
        if is_prunable(layer):
            return MaskedLayer(clone_layer(layer), mask_forward=mask_forward, reapply_after_step=reapply_after_step)
        return clone_layer(layer)

    new = keras.models.clone_model(model, clone_function=clone_function, recursive=True)
    copy_weights(model, new)
    if masked_layers(model):
        apply_mask(new, read_mask(model))
    return new


def _from_config(layer):
    """``layer``'s class rebuilt from its config, under ``layer``'s name: Keras' default config of a
    subclassed model leaves the name out, and a rebuild under a new name pairs with nothing."""
    config = layer.get_config()
    if "name" not in config and isinstance(layer, keras.layers.Layer):
        try:
            return type(layer).from_config({**config, "name": layer.name})
        except TypeError:  # an __init__ without a name argument
            pass
    return type(layer).from_config(config)


def clone_layer(layer):
    """A new layer from ``layer``'s config (a graph model's layer, for a copy of the graph).

    Raises:
        ValueError: the layer cannot be rebuilt from its config; one sentence naming it and the reason.
    """
    try:
        clone = _from_config(layer)
        # Operations of a functional graph (a NotEqual from an Embedding's padding mask) are not layers.
        if (isinstance(layer, keras.layers.Layer) and not isinstance(layer, keras.Model) and layer.built
                and not clone.built):
            build_config = layer.get_build_config()
            if build_config:  # a layer of layers shows its prunable sublayers once built
                clone.build_from_config(build_config)
        return clone
    except Exception as error:  # third-party config code: one sentence instead of its traceback
        raise ValueError(f"Layer {layer.name!r} ({type(layer).__name__}) cannot be rebuilt from its config "
                         f"({_first_line(error)}), so its model cannot be copied as a graph. Build the model as a "
                         "keras.Model subclass (masked in place), or fix the layer's get_config().") from None


def strip(model, copy=True, keep_compiled=True):
    """A model of plain Keras layers with the masks baked in (dead weights exactly 0), of ``model``'s class.

    A plain Sequential or functional model is rebuilt without wrappers; saving and loading the result needs
    no custom objects. Any other model with attached masks (:func:`mask`) comes back as a copy of its class
    rebuilt from its config (``copy=True``) or, with ``copy=False``, as the model itself with the masks
    removed. ``model`` is not modified unless ``copy=False``. A model without masks is returned as an
    equivalent copy.

    Raises:
        TypeError: ``model`` is not a ``keras.Model``, or a subclassed model holds ``MaskedLayer`` wrappers
            in its own attributes (use ``keras_lottery.sparsity.strip_pruning``, which rebuilds it).
        ValueError: the class cannot be rebuilt from its config (with ``copy=True``).
    """
    _check_model(model, "strip")
    if compat.is_graph_model(model):
        return _strip_graph(model, keep_compiled)
    wrappers = [layer for layer in masked_layers(model) if attached.holder_of(layer.layer) is not layer]
    if wrappers:
        raise TypeError(f"strip() cannot remove the MaskedLayer wrappers {[w.name for w in wrappers][:5]} that the "
                        f"{type(model).__name__} {model.name!r} creates itself; use "
                        "keras_lottery.sparsity.strip_pruning(model), which rebuilds it without them.")
    zero_dead_weights(masked_layers(model))
    if not copy:
        attached.detach(model)
        return model
    return copy_model(model, "strip")


def _strip_graph(model, keep_compiled=True):
    def clone_function(layer):
        return clone_layer(layer.layer if isinstance(layer, MaskedLayer) else layer)

    new = compat.clone_graph(model, clone_function, keep_compiled=keep_compiled)
    for src, target, whole in _counterparts(model, new, "strip"):
        if whole:
            _copy_in_order(src, target, "strip")
        elif isinstance(src, MaskedLayer):
            masks = {id(v): keras.ops.convert_to_numpy(m.value) for _, v, m in src.masked_weights()}
            values = [keras.ops.convert_to_numpy(v.value) * masks[id(v)] if id(v) in masks
                      else keras.ops.convert_to_numpy(v.value) for v in src.layer.weights]
            target.set_weights(values)
        else:
            target.set_weights(src.get_weights())
    return new


def _counterparts(source, target, what):
    """``(source layer, target layer, whole)`` for each weighted layer of the graph model ``target`` (nested
    graph models entered), paired with its namesake in ``source``; a nested subclassed model comes
    whole (``whole=True``), with the source model of its name: its rebuild from config renamed its
    sublayers, so they pair by position (:func:`_copy_in_order`)."""
    src_layers, inside = layers.by_name(source), set()
    for name, tgt in layers.by_name(target).items():
        if id(tgt) in inside or (not graph.is_subclassed(tgt) and (isinstance(tgt, keras.Model) or not tgt.weights)):
            continue
        if name not in src_layers:
            raise ValueError(f"{what}: layer {name!r} of {target.name!r} has no namesake in {source.name!r}.")
        whole = graph.is_subclassed(tgt)
        if whole:
            inside.update(id(layer) for layer in layers.walk(tgt))
        yield src_layers[name], tgt, whole


def _copy_in_order(source, target, what):
    """Copies a nested subclassed model's weights into its rebuild, variable by variable in order (the same
    class from the same config: the same variables, mask variables aside). The source's masks are baked into
    the values; the target's are kept, its dead weights zeroed."""
    masks = {id(v): m for layer in masked_layers(source) for _, v, m in layer.masked_weights()}
    skip_source, skip_target = {id(m) for m in masks.values()}, {id(m) for m in mask_variables(target)}

    def baked(variable):
        value = keras.ops.convert_to_numpy(variable.value)
        return value * keras.ops.convert_to_numpy(masks[id(variable)].value) if id(variable) in masks else value

    values = [baked(v) for v in source.weights if id(v) not in skip_source]
    variables = [v for v in target.weights if id(v) not in skip_target]
    if [tuple(v.shape) for v in values] != [tuple(v.shape) for v in variables]:
        raise ValueError(f"{what}: the {type(target).__name__} {target.name!r} rebuilt from its config has other "
                         f"weights than {source.name!r}, so they cannot be copied in order.")
    for variable, value in zip(variables, values):
        variable.assign(value.astype(variable.dtype))
    zero_dead_weights(masked_layers(target))


def copy_weights(source, target):
    """Copies weights from ``source`` into ``target`` by layer name, keeping ``target``'s masks.

    A subclassed model nested in the graph pairs with its namesake, and its sublayers (which Keras
    numbers anew in each instance) by position.

    ``source`` may be masked or plain (e.g. the dense model, or a checkpointed masked model of the
    same architecture); masks are never copied. After the copy every dead weight of ``target`` is
    exactly 0. Returns ``target``.

    Raises:
        ValueError: when a layer of ``target`` with weights has no namesake in ``source``, or the
            shapes differ.
    """
    if not (compat.is_graph_model(source) and compat.is_graph_model(target)):
        return _copy_weights_by_path(source, target)
    for src, tgt, whole in _counterparts(source, target, "copy_weights"):
        if whole:
            _copy_in_order(src, tgt, "copy_weights")
            continue
        name = tgt.name
        src_inner = src.layer if isinstance(src, MaskedLayer) else src
        tgt_inner = tgt.layer if isinstance(tgt, MaskedLayer) else tgt
        values = [keras.ops.convert_to_numpy(v.value) for v in src_inner.weights]
        shapes = [tuple(v.shape) for v in tgt_inner.weights]
        if [tuple(v.shape) for v in values] != shapes:
            raise ValueError(f"copy_weights: layer {name!r} weight shapes differ: source "
                             f"{[tuple(v.shape) for v in values]}, target {shapes}.")
        tgt_inner.set_weights(values)
        if isinstance(tgt, MaskedLayer):
            tgt.zero_dead_weights()
    zero_optimizer_state(target)
    return target


def _copy_weights_by_path(source, target):
    """``copy_weights`` for models that are not plain graphs: weights matched by their Keras variable path."""
    by_path = {v.path: v for v in source.weights}
    masks = {id(m) for m in mask_variables(target)}
    for variable in target.weights:
        if id(variable) in masks:
            continue
        src = by_path.get(variable.path)
        if src is None:
            raise ValueError(f"copy_weights: weight {variable.path!r} of {target.name!r} has no namesake in "
                             f"{source.name!r}.")
        if tuple(src.shape) != tuple(variable.shape):
            raise ValueError(f"copy_weights: weight {variable.path!r} has shape {tuple(src.shape)} in the source and "
                             f"{tuple(variable.shape)} in the target.")
        variable.assign(src.value)
    zero_dead_weights(masked_layers(target))
    zero_optimizer_state(target)
    return target


# -- the model side of Mask ---------------------------------------------------------------------------
def read_mask(model):
    """The ``Mask`` installed in ``model`` (a model or layer containing ``MaskedLayer``s)."""
    found = masked_layers(model)
    if not found:
        raise ValueError(f"Model {getattr(model, 'name', model)!r} has no MaskedLayer; "
                         "create one with keras_lottery.mask(model) or wrap layers in MaskedLayer.")
    out = Mask()
    for layer in found:
        for path, mask_var in layer.mask_variables().items():
            out[path] = keras.ops.convert_to_numpy(mask_var.value) != 0
    return out


def ones_mask(model):
    """An all-alive ``Mask`` with the paths and shapes of ``model``'s masked weights."""
    return Mask({path: np.ones_like(array) for path, array in read_mask(model).items()})


def attach_saved_mask(model, mask):
    """Installs ``mask``, saved with ``model``, in ``model`` loaded from a ``.keras`` file: the masks attached in
    place (a subclassed or KerasHub model's layers, at any depth) are not in the file, so plain holders are
    attached again to every layer owning prunable weights that has none; graph wrappers came back with the
    file. Returns the model."""
    attached.attach(model, MaskedLayer)
    return apply_mask(model, mask)


def apply_mask(model, mask, optimizer=None):
    """Installs ``mask`` in the masked ``model``: sets the masks, zeroes dead weights and their optimizer state.

    The optimizer state (momentum, Adam moments, ...) of dead entries is zeroed in ``optimizer``
    (default: ``model.optimizer``, if compiled), so no update can move them away from 0.

    ``mask`` may cover a subset of the model's weight paths (the others keep their masks); a path
    the model does not have, or a shape that differs, raises ``ValueError``. A mask of another instance
    of the model (every weight, in order, its paths differing only in Keras' automatic layer numbering,
    as a subclassed model's sublayers are named anew in each instance) is installed weight by weight.
    Returns the model.
    """
    by_path = {path: layer for layer in masked_layers(model) for path in layer.weight_paths()}
    mask = keyed_for(mask, [(path, tuple(variable.shape)) for layer in masked_layers(model)
                            for path, variable in layer.mask_variables().items()])
    unknown = [p for p in mask if p not in by_path]
    if unknown:
        raise ValueError(f"Mask has weight paths the model does not have: {unknown}. "
                         f"Model paths: {list(by_path)}.")
    for path, array in mask.items():
        by_path[path].set_mask(path, array)
    zero_optimizer_state(model, optimizer)
    return model


def nonzero_mask(model):
    """A ``Mask`` of the non-zero entries of the prunable weights of a plain (unmasked) ``model``."""
    out = Mask()
    if not compat.is_graph_model(model):  # named as masks attached to it would name them
        for path, variable in attached.prunable_paths(model):
            out[path] = keras.ops.convert_to_numpy(variable.value) != 0
        return out
    for layer in layers.walk(model):
        if isinstance(layer, keras.Model) or not layers.is_prunable(layer):
            continue
        for path, variable in layers.prunable_items(layer):
            out[path] = keras.ops.convert_to_numpy(variable.value) != 0
    return out


def density_report(model):
    """The density report (``Mask.report()`` format) of a masked or plain model.

    For a model with ``MaskedLayer``s: its installed masks. For a plain model (the result of ``strip``,
    a deployed ticket): the non-zero entries of its prunable weights (:mod:`keras_lottery.layers`).
    The same weights and counts either way, so a stripped ticket reports the density of its mask.
    """
    return (read_mask(model) if masked_layers(model) else nonzero_mask(model)).report()


def sparsity(model_or_mask, print_fn=print):
    """Prints a table of total / alive / density per weight and overall; returns the report dict.

    Accepts a ``Mask``, a masked model (its installed masks) or a plain model such as the result
    of ``strip`` (then "alive" means non-zero, over the prunable weights). ``print_fn=None``
    prints nothing.
    """
    if isinstance(model_or_mask, Mask):
        report, title = model_or_mask.report(), "mask"
    else:
        name = getattr(model_or_mask, "name", type(model_or_mask).__name__)
        masked = bool(masked_layers(model_or_mask))
        report = density_report(model_or_mask)
        title = f"{name} (masks)" if masked else f"{name} (non-zero prunable weights)"
    if print_fn is not None:
        print_fn(format_report(report, title=f"Sparsity of {title}"))
    return report


# ``Mask`` is pure data (keras_lottery.masks); its model-side constructors, under the names existing
# code uses, are these functions. This module is imported with the package, so they are always there.
def _from_model(cls, model):
    """The mask installed in ``model`` (same as ``keras_lottery.masking.read_mask``)."""
    return read_mask(model)


def _ones_like(cls, model):
    """An all-alive mask shaped like ``model``'s masked weights (same as ``masking.ones_mask``)."""
    return ones_mask(model)


def _apply_to(self, model):
    """Installs this mask in ``model`` and zeroes the dead weights (same as ``masking.apply_mask``)."""
    return apply_mask(model, self)


Mask.from_model = classmethod(_from_model)
Mask.ones_like = classmethod(_ones_like)
Mask.apply_to = _apply_to
