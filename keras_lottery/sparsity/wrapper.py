"""``PruneLowMagnitude``: the pruning wrapper of ``keras_lottery.sparsity``, and ``PrunableLayer``.

``PruneLowMagnitude`` is a :class:`keras_lottery.masking.MaskedLayer` (so masked weights, their
gradients and their optimizer state stay exactly zero under any optimizer) that also carries TFMOT's
pruning state: its schedule, block / M:N options, a ``pruning_step`` counter and one ``threshold``
per pruned weight. Its weights are saved with the model, so a model saved mid-pruning resumes its
schedule where it stopped.

When the masks change follows TFMOT: ``pruning_step`` reads -1 until ``UpdatePruningStep`` sets the
layer up (then 0), and every training call of the layer adds 1 (inside the compiled step, so
``steps_per_execution > 1`` counts every step). A training call of a layer no ``UpdatePruningStep``
has set up raises ``ValueError`` naming the callback, as TFMOT's does (here when the step is traced or
run eagerly, on the host: a check inside the compiled step would vanish under XLA). Before the training step numbered ``t`` (1 for
the first step), the callback calls :meth:`PruneLowMagnitude.update_masks`: if the schedule says
``should_prune`` at ``t``, the masks are recomputed from the current weights (dead weights are 0):
keep ``max(round(size x (1 - sparsity)), 1)`` of them, all those at or above the threshold. With
``sparsity_m_by_n`` the schedule is ignored and the M:N mask is computed once, at step 1, as in
TFMOT.
"""

import abc
import contextvars
import weakref

import keras
import numpy as np
import tensorflow as tf  # the compiled mask check on the TensorFlow backend

from keras_lottery import compat, compiled, layers
from keras_lottery.masking import MaskedLayer, masked_layers
from keras_lottery.sparsity import schedules, structured

__all__ = ["NO_OP_LAYERS", "PrunableLayer", "PruneLowMagnitude", "check_wrappable", "prune_layers", "pruning_wrappers",
           "stripping"]

# TFMOT's registry of layers with nothing to prune (``prune_registry._LAYERS_WEIGHTS_MAP``'s empty entries, as
# Keras 3 names them): ``PruneLowMagnitude`` wraps them as a no-op. Exact classes, as in TFMOT: a subclass may
# hold weights of its own.
NO_OP_LAYERS = tuple(getattr(keras.layers, name) for name in (
    "ELU", "LeakyReLU", "ReLU", "Softmax", "Cropping1D", "Cropping2D", "Cropping3D", "UpSampling1D", "UpSampling2D",
    "UpSampling3D", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Activation", "ActivityRegularization",
    "Dropout", "Flatten", "Lambda", "Masking", "Permute", "RepeatVector", "Reshape", "SpatialDropout1D",
    "SpatialDropout2D", "SpatialDropout3D", "Add", "Average", "Concatenate", "Dot", "Maximum", "Minimum", "Multiply",
    "Subtract", "AlphaDropout", "GaussianDropout", "GaussianNoise", "BatchNormalization", "LayerNormalization",
    "AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "GlobalAveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "MaxPooling1D",
    "MaxPooling2D", "MaxPooling3D", "Rescaling") if hasattr(keras.layers, name))


def _keras_base(layer):
    """The first Keras class in the MRO of ``layer``'s class (a user's subclass of ``Dense``: ``Dense``)."""
    return next(cls for cls in type(layer).__mro__ if cls.__module__.startswith("keras."))


def check_wrappable(layer):
    """Raises ``ValueError``, as TFMOT's ``PruneLowMagnitude`` does, for a layer ``prune_low_magnitude`` cannot wrap.

    Wrappable: a layer with ``get_prunable_weights()``; a built-in Keras layer with prunable weights
    (``keras_lottery.layers``) or in :data:`NO_OP_LAYERS`; a user's layer holding such layers. Refused: a
    subclass of a built-in layer without ``get_prunable_weights()`` (its weights may be used differently),
    a layer with nothing to prune that TFMOT does not list, and a pruning wrapper (its ``layer`` is wrapped
    again instead).
    """
    if not isinstance(layer, keras.layers.Layer) or isinstance(layer, keras.Model):
        raise ValueError(f"prune_low_magnitude wraps a keras layer; got {type(layer).__name__}.")
    if isinstance(layer, MaskedLayer):
        raise ValueError(f"Layer {layer.name!r} is already wrapped ({type(layer).__name__}); use it as it is, or wrap "
                         "its .layer to prune with other parameters.")
    if callable(getattr(layer, "get_prunable_weights", None)) or type(layer) in NO_OP_LAYERS:
        return
    base = _keras_base(layer)
    if base is not type(layer) and base is not keras.layers.Layer:
        raise ValueError(f"Layer {layer.name!r} ({type(layer).__name__}) subclasses {base.__name__}, whose weights it may "
                         "use differently: define get_prunable_weights() on it (keras_lottery.sparsity.PrunableLayer) "
                         "returning the variables to prune.")
    composite = not layer.built and bool(compat.sublayers(layer))
    if not (layers.is_prunable(layer) or composite):
        raise ValueError(f"Layer {layer.name!r} ({type(layer).__name__}) has no weights to prune and is not a layer "
                         "TFMOT wraps as a no-op: leave it unwrapped, or define get_prunable_weights() on it "
                         "(keras_lottery.sparsity.PrunableLayer).")

_STRIPPING = contextvars.ContextVar("keras_lottery_sparsity_stripping", default=False)


def stripping():
    """Whether code runs inside ``strip_scope()`` (then ``prune_low_magnitude`` returns layers unwrapped)."""
    return _STRIPPING.get()


def set_stripping(value):
    """Sets the ``strip_scope`` flag; returns the token that :func:`reset_stripping` takes."""
    return _STRIPPING.set(bool(value))


def reset_stripping(token):
    _STRIPPING.reset(token)


class PrunableLayer(abc.ABC):
    """Mix-in for a custom layer whose weights ``PruneLowMagnitude`` may prune.

    Implement ``get_prunable_weights()`` to return the layer's variables to prune (called once the
    layer is built). Any layer with such a method is prunable; inheriting this class documents it.
    """

    @abc.abstractmethod
    def get_prunable_weights(self):
        """The list of this layer's variables to prune."""


@keras.saving.register_keras_serializable(package="keras_lottery")
class PruneLowMagnitude(MaskedLayer):
    """Prunes the prunable weights of ``layer`` during training, by magnitude, on a schedule.

    Args:
        layer: a layer with prunable weights (``keras_lottery.layers``: Dense, convolutions, Embedding,
            ...) or a ``get_prunable_weights()`` method (``PrunableLayer``), or one of TFMOT's no-op layers
            (:data:`NO_OP_LAYERS`), wrapped with nothing to prune. The layer object itself is held
            (``wrapper.layer is layer``); its ``input_shape`` argument, if any, is carried to the wrapper.
        pruning_schedule: a ``PruningSchedule`` (``ConstantSparsity(0.5, 0)`` by default).
        block_size: ``(rows, columns)`` of the blocks pruned together (``(1, 1)``: single weights).
        block_pooling_type: ``"AVG"`` or ``"MAX"``: how a block's magnitude is scored.
        sparsity_m_by_n: ``(m, n)``, e.g. ``(2, 4)``: ``m`` zeros in every ``n`` consecutive input weights.
        **kwargs: passed to ``MaskedLayer`` (``mask_forward``, ``reapply_after_step``, ``name``, ...).
    """

    def __init__(self, layer, pruning_schedule=None, block_size=(1, 1), block_pooling_type="AVG",
                 sparsity_m_by_n=None, **kwargs):
        if pruning_schedule is None:
            pruning_schedule = schedules.ConstantSparsity(0.5, 0)
        if isinstance(pruning_schedule, dict):
            pruning_schedule = schedules.deserialize(pruning_schedule)
        if not callable(pruning_schedule) or not callable(getattr(pruning_schedule, "get_config", None)):
            raise ValueError(f"pruning_schedule must be a PruningSchedule (callable with get_config); "
                             f"got {pruning_schedule!r}.")
        self.pruning_schedule = pruning_schedule
        self.block_size = structured.check_block_size(block_size)
        if block_pooling_type not in ("AVG", "MAX"):
            raise ValueError(f"block_pooling_type must be 'AVG' or 'MAX'; got {block_pooling_type!r}.")
        self.block_pooling_type = block_pooling_type
        self.sparsity_m_by_n = None if sparsity_m_by_n is None else structured.check_m_by_n_arg(sparsity_m_by_n)
        if isinstance(layer, MaskedLayer):
            raise ValueError(f"Layer {layer.name!r} is already wrapped ({type(layer).__name__}); use it as it is, or "
                             "wrap its .layer to prune with other parameters.")
        super().__init__(layer, **kwargs)
        if compat.input_shape_arg(self) is None and compat.input_shape_arg(layer) is not None:
            # Sequential([PruneLowMagnitude(Dense(20, input_shape=(28,))), ...]) is built, as in TFMOT
            compat.set_input_shape_arg(self, compat.input_shape_arg(layer))
        self.set_up_by_callback = False  # set by UpdatePruningStep; training before that raises
        self.pruning_step = None
        self._thresholds = []
        self.last_density = None  # the fraction of entries the last prune_to kept
        self._counted_in = None  # weak reference to the graph in which the step was last counted

    def accepts_without_weights(self, layer):
        """TFMOT's no-op layers (:data:`NO_OP_LAYERS`: ``Dropout``, pooling, ``BatchNormalization``, ...) are
        wrapped with nothing to prune."""
        return type(layer) in NO_OP_LAYERS

    @property
    def pruning_vars(self):
        """``[(weight, mask, threshold)]`` variables per pruned weight, as TFMOT's ``pruning_vars`` (empty
        until built, and for a no-op layer)."""
        return [(variable, mask, threshold)
                for (_, variable, mask), threshold in zip(self.masked_weights(), self._thresholds)]

    def get_prunable_weights(self):
        """The variables this wrapper prunes (TFMOT adds this method to the wrapped layer object instead)."""
        return [variable for _, variable, _ in self.masked_weights()]

    def get_config(self):
        return {**super().get_config(), "pruning_schedule": self.pruning_schedule.get_config(),
                "block_size": list(self.block_size), "block_pooling_type": self.block_pooling_type,
                "sparsity_m_by_n": None if self.sparsity_m_by_n is None else list(self.sparsity_m_by_n)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = keras.layers.deserialize(config["layer"])
        config["pruning_schedule"] = schedules.deserialize(config["pruning_schedule"])
        return cls(**config)

    def build(self, input_shape=None):
        super().build(input_shape)
        structured_rule = self.sparsity_m_by_n is not None or self.block_size != (1, 1)
        for path, variable, _ in self.masked_weights():
            if structured_rule and len(variable.shape) < 2:
                raise ValueError(f"Block and M:N sparsity need weights of rank >= 2; {path!r} has shape "
                                 f"{tuple(variable.shape)}.")
        self._thresholds = [self.add_weight(name=f"{variable.name}_threshold", shape=(), dtype=variable.dtype,
                                            initializer="zeros", trainable=False, autocast=False)
                            for _, variable, _ in self.masked_weights()]
        # -1 until UpdatePruningStep sets the layer up (TFMOT's value); 0 when it did before the build
        start = 0 if self.set_up_by_callback else -1
        self.pruning_step = self.add_weight(name="pruning_step", shape=(), dtype="int64",
                                            initializer=keras.initializers.Constant(start), trainable=False,
                                            autocast=False, aggregation="only_first_replica")
        self.built = True

    def call(self, inputs, *args, training=None, **kwargs):
        if training is True:  # counted inside the compiled step: steps_per_execution > 1 counts every step
            self._require_callback()
            self._count_step()
        return super().call(inputs, *args, training=training, **kwargs)

    def run_attached(self, call, args, kwargs):
        # Attached in place (keras_lottery.attached): the layer's call may take no ``training`` argument
        # (Dense, EinsumDense); Keras' call context has the value the model was called with.
        if compat.call_context_training() is True:
            self._require_callback()
            self._count_step()
        return super().run_attached(call, args, kwargs)

    def _require_callback(self):
        if not self.set_up_by_callback:
            raise ValueError(f"Layer {self.name!r} is pruned but trained without UpdatePruningStep: pass "
                             "keras_lottery.sparsity.UpdatePruningStep() in fit's callbacks (in a custom loop, call its "
                             "set_model(model) and on_train_begin() before the first step).")

    def _count_step(self):
        """Adds 1 to ``pruning_step``, once per compiled step: a layer called twice in one step (a tied
        embedding used again as the output projection) counts that step once. On TensorFlow, with the
        variable's own ``assign_add``: one op in the compiled step, where Keras' ``Variable.assign_add``
        adds four (read, add, cast, assign) per layer."""
        if not tf.executing_eagerly():
            graph = tf.compat.v1.get_default_graph()
            if self._counted_in is not None and self._counted_in() is graph:
                return
            self._counted_in = weakref.ref(graph)
        raw = self.pruning_step.value
        if isinstance(raw, tf.Variable):  # TensorFlow backend, distributed variables included
            raw.assign_add(1, read_value=False)
        else:
            self.pruning_step.assign_add(1)

    def thresholds(self):
        """``{path: threshold variable}``: the magnitude below which the last update pruned (TFMOT's ``threshold``)."""
        return {path: t for (path, _, _), t in zip(self.masked_weights(), self._thresholds)}

    def new_masks(self, sparsity):
        """``{path: (mask, threshold)}`` the rule gives for the current weights at ``sparsity``."""
        return {path: self.new_masks_for(path, variable, sparsity) for path, variable, _ in self.masked_weights()}

    def new_masks_for(self, path, variable, sparsity):
        """``(mask, threshold)`` the rule gives for one weight (``path``, ``variable``) at ``sparsity``."""
        weights = keras.ops.convert_to_numpy(variable.value)
        if self.sparsity_m_by_n is not None:
            return structured.m_by_n_mask(weights, self.sparsity_m_by_n), np.float32(999.0)  # TFMOT's value
        return structured.block_mask(weights, sparsity, self.block_size, self.block_pooling_type)

    @property
    def unstructured(self):
        """Whether the rule prunes single weights (no M:N, blocks of 1 x 1)."""
        return self.sparsity_m_by_n is None and self.block_size == (1, 1)

    def turn(self, step):
        """``(should_prune, sparsity)`` at ``step``: the schedule's answer, or for M:N ``step == 1``."""
        if self.sparsity_m_by_n is not None:
            return int(step) == 1, 0.0
        return schedules.evaluate(self.pruning_schedule, step)

    def prune_to(self, sparsity):
        """Recomputes and installs the masks for ``sparsity`` from the current weights.

        Returns whether any mask changed. When none did, no weight lost a mask entry and the caller
        need not touch the optimizer state; otherwise it zeroes the state of newly dead weights
        (``UpdatePruningStep`` does). ``last_density`` is set to the fraction of entries kept.
        :func:`prune_layers` does the same for several layers at once.
        """
        return prune_layers([(self, sparsity)])[0]

    def _install_rule_mask(self, index, sparsity):
        """Computes the rule's mask and threshold for masked weight ``index`` and installs them; returns
        how many entries it keeps."""
        path, variable, _ = self._prunable[index]
        mask, threshold = self.new_masks_for(path, variable, sparsity)
        self.set_mask(path, mask)
        threshold_var = self._thresholds[index]
        threshold_var.assign(np.asarray(threshold, dtype=threshold_var.dtype))
        return int(np.count_nonzero(mask))

    def update_masks(self, step):
        """Recomputes the masks if ``step`` is a pruning turn (M:N: step 1); returns whether it was."""
        should, sparsity = self.turn(step)
        if should:
            self.prune_to(sparsity)
        return should


def prune_layers(turns):
    """``PruneLowMagnitude.prune_to`` for several layers: ``turns`` is ``[(layer, sparsity)]``; returns,
    per layer, whether any of its masks changed.

    A turn often cannot change a mask (a constant schedule's next turn, the usual case): that is so
    when the mask keeps exactly the target count, every kept weight is non-zero and every dead weight
    is zero, for then the largest magnitudes are the kept ones, with no tie at the threshold (their
    smallest magnitude). Every unstructured weight of the turn is checked by one compiled call, which
    also sets the thresholds of the unchanged ones; only the others are partitioned on the host
    (about 10 ms a turn on LeNet-300-100).
    """
    entries = []  # per masked weight: (its turn's index, layer, weight index, sparsity, size)
    for t, (layer, sparsity) in enumerate(turns):
        for i, (_, variable, _) in enumerate(layer.masked_weights()):
            entries.append((t, layer, i, sparsity, int(np.prod(variable.shape))))
    kept = [structured.kept_count(size, sparsity) for _, _, _, sparsity, size in entries]
    checked = [n for n, entry in enumerate(entries) if entry[1].unstructured]
    unchanged = dict(zip(checked, _check_unchanged([entries[n][1:3] for n in checked], [kept[n] for n in checked])))
    changed, kept_per_turn, size_per_turn = [False] * len(turns), [0] * len(turns), [0] * len(turns)
    for n, (t, layer, i, sparsity, size) in enumerate(entries):
        if not unchanged.get(n, False):
            kept[n] = layer._install_rule_mask(i, sparsity)
            changed[t] = True
        kept_per_turn[t] += kept[n]
        size_per_turn[t] += size
    for (layer, _), kept_count, size in zip(turns, kept_per_turn, size_per_turn):
        layer.last_density = kept_count / max(size, 1)
    return changed


def _check_unchanged(entries, kept):
    """Per entry of ``entries`` ``[(layer, weight index)]``, whether its mask is the rule's for ``kept``
    entries; sets the threshold of every unchanged weight. One compiled call."""
    if not entries:
        return []
    kept = np.asarray(kept, dtype="int32")
    triples = [(layer._prunable[i][1], layer._prunable[i][2], layer._thresholds[i]) for layer, i in entries]
    if keras.backend.backend() == "tensorflow":
        return [bool(flag) for flag in keras.ops.convert_to_numpy(_tensorflow_check(triples)(kept))]
    flags, smallest = (keras.ops.convert_to_numpy(x) for x in _compiled_unchanged_masks()(
        [v.value for v, _, _ in triples], [m.value for _, m, _ in triples], kept))
    for flag, value, (_, _, threshold_var) in zip(flags, smallest, triples):
        if flag:
            threshold_var.assign(np.asarray(value, dtype=threshold_var.dtype))
    return [bool(flag) for flag in flags]


def _unchanged_masks(weights, masks, kept):
    """Per weight: whether its mask keeps ``kept[i]`` entries, all non-zero, and every dead entry is
    zero; and its smallest kept magnitude (float32, exact for float16 and bfloat16 weights too)."""
    ops = keras.ops
    flags, smallest = [], []
    for i, (weight, mask) in enumerate(zip(weights, masks)):
        magnitude = ops.abs(weight)
        alive = ops.not_equal(mask, 0)
        count = ops.sum(ops.cast(alive, "int32"))
        smallest_kept = ops.min(ops.where(alive, magnitude, ops.full_like(magnitude, np.inf)))
        largest_dead = ops.max(ops.where(alive, ops.zeros_like(magnitude), magnitude))
        flags.append(ops.logical_and(ops.equal(count, kept[i]),
                                     ops.logical_and(ops.greater(smallest_kept, 0), ops.equal(largest_dead, 0))))
        smallest.append(ops.cast(smallest_kept, "float32"))
    return ops.stack(flags), ops.stack(smallest)


_COMPILED = {}


def _compiled_unchanged_masks():
    """:func:`_unchanged_masks` compiled for the JAX backend (``jax.jit``; eager on others but TensorFlow,
    which uses :func:`_tensorflow_check`): run eagerly, its handful of ops cost more in dispatch than in
    arithmetic."""
    backend = keras.backend.backend()
    if backend not in _COMPILED:
        if backend == "jax":
            import jax
            _COMPILED[backend] = jax.jit(_unchanged_masks)
        else:
            _COMPILED[backend] = _unchanged_masks
    return _COMPILED[backend]


# Whether the turn's mask check (TensorFlow backend) is compiled with XLA; set False to use the plain graph.
XLA_CHECK = True


def _tensorflow_check(triples):
    """A ``tf.function(kept) -> flags`` running :func:`_unchanged_masks` on ``triples`` ``[(weight, mask,
    threshold variable)]`` and setting the threshold of every unchanged weight (a turn of the same
    layers reuses it). Compiled with XLA (:data:`XLA_CHECK`), which fuses the passes over each weight
    (a turn of LeNet-300-100 takes about half the time it takes with the plain graph, docs/masks.md);
    where XLA fails (distributed variables, a device without XLA), the plain graph from then on. The
    first check of a set of layers runs eagerly (:func:`compiled.for_variables`): compiling pays off
    only for a set checked again, as at every turn of ``UpdatePruningStep``."""
    def check(kept):
        flags, smallest = _unchanged_masks([v.value for v, _, _ in triples], [m.value for _, m, _ in triples], kept)
        for i, (_, _, threshold_var) in enumerate(triples):
            threshold_var.assign(tf.where(flags[i], tf.cast(smallest[i], threshold_var.dtype), threshold_var.value))
        return flags

    def make():
        xla, plain = tf.function(check, jit_compile=True), tf.function(check)
        chosen = [xla if XLA_CHECK else plain]

        def run(kept):
            if chosen[0] is xla:
                try:
                    return xla(kept)
                except (tf.errors.OpError, ValueError, NotImplementedError):
                    chosen[0] = plain  # the check only reads weights and sets thresholds: running it again is safe
            return chosen[0](kept)
        return run

    # the first check of these layers runs eagerly: a one-off prune_to compiles nothing
    return compiled.for_variables(("unchanged_masks", XLA_CHECK), [v for triple in triples for v in triple], make,
                                  first=check)


def pruning_wrappers(model):
    """Every ``PruneLowMagnitude`` of ``model`` at any depth, in its graph or attached to its layers in place
    (``model`` itself if it is one)."""
    return [layer for layer in masked_layers(model) if isinstance(layer, PruneLowMagnitude)]
