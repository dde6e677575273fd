"""The pruning callbacks: ``UpdatePruningStep`` (required to train a pruned model) and ``PruningSummaries``."""

import os

import keras
import numpy as np
import tensorflow as tf  # tf.summary: TensorBoard event files

from keras_lottery import compat
from keras_lottery.masking import zero_dead_weights, zero_optimizer_state
from keras_lottery.sparsity.wrapper import prune_layers, pruning_wrappers

__all__ = ["PruningSummaries", "UpdatePruningStep"]


def _value(variable):
    return keras.ops.convert_to_numpy(variable.value)


class UpdatePruningStep(keras.callbacks.Callback):
    """Updates the masks of every ``PruneLowMagnitude`` layer on its schedule. Pass it to ``fit``.

    Each layer's ``pruning_step`` reads -1 until this callback's ``on_train_begin`` sets it to 0 (TFMOT's
    values; training a wrapper before that raises ``ValueError``), then counts its training calls inside
    the compiled step (a restored model keeps its count). On a model without pruning wrappers it does
    nothing. Before each call of the compiled train function (each batch, or
    each group of ``steps_per_execution`` batches), it reads the step counter the layers keep
    inside the compiled step and, for every pruning turn reached since the last call, recomputes the
    masks that turn asks for, then zeroes the optimizer state of newly dead weights. With
    ``steps_per_execution=1`` masks change before exactly the same steps as in TFMOT; with ``N > 1``
    a turn that falls inside a group of ``N`` steps is applied before the next group (never early,
    at most ``N - 1`` steps late). A model whose layers are built by its first training step (a
    subclassed model never called before ``fit``) gets the turns of that step before the second.
    The counter is read (a host sync) only when a turn could be due, once the callback has seen that
    the layers count at most ``steps_per_execution`` steps per call; a loop that calls the model more
    often with ``training=True`` is read at every call.
    ``on_epoch_end`` re-multiplies the weights by their masks (a no-op
    unless weights were set from outside), as TFMOT's callback does.

    In a custom training loop call ``set_model(model)``, ``on_train_begin()`` once,
    ``on_train_batch_begin(batch)`` before each step and ``on_epoch_end(epoch)`` after each epoch,
    and give the model its optimizer (``model.optimizer = optimizer``) so its state is zeroed too.

    Attributes:
        history: ``[(step, layer name, density after the update)]`` for every mask update.
    """

    def __init__(self):
        super().__init__()
        self.history = []
        self._wrappers = []
        self._ready = False
        self._steps = []  # per wrapper: its pruning_step (training steps completed) at the last call
        self._done = []  # per wrapper: the last step whose turn was handled
        self._clock = 0  # the first wrapper's pruning_step at the last call
        self._baseline = None  # (optimizer iterations, first counter) until counting is checked
        self._calls, self._verified = 0, False
        self._next_turn = 1  # the first step not known to be no wrapper's turn (steps before it are handled or no turn)
        self._spe = 1  # the model's steps_per_execution, read at train begin
        self._begun = False  # whether on_train_begin ran

    def on_train_begin(self, logs=None):
        self._begun = True
        self._wrappers = pruning_wrappers(self.model)
        if not self._wrappers:
            return  # a model without pruning wrappers: nothing to do, as in TFMOT
        newly = [wrapper for wrapper in self._wrappers if not wrapper.set_up_by_callback]
        for wrapper in newly:  # TFMOT's -1 (never set up) becomes 0; training calls may count now
            wrapper.set_up_by_callback = True
            if wrapper.built and int(_value(wrapper.pruning_step)) < 0:
                wrapper.pruning_step.assign(0)
        if newly and getattr(self.model, "train_function", None) is not None:
            # a fit without this callback failed while tracing its step: trace a new one (else the optimizer
            # would create its variables in a second trace of the same tf.function)
            self.model.make_train_function(force=True)
        self._ready = False
        self._spe = compat.steps_per_execution(self.model)
        if all(w.built for w in self._wrappers):
            self._setup(fresh=False)

    def _setup(self, fresh):
        """Reads the counters. ``fresh``: the layers were built by the first step (unbuilt at train begin),
        so no turn has been handled yet: those of the steps already run are applied now."""
        self._synced_model()
        self._steps = [int(_value(w.pruning_step)) for w in self._wrappers]
        self._done = [0] * len(self._wrappers) if fresh else list(self._steps)
        self._clock = self._steps[0]
        self._calls = 0  # calls since the counter was last read
        self._verified = False  # whether the layers count at most steps_per_execution steps per call
        self._next_turn = min(self._done) + 1
        # one wrapper per distinct schedule: wrappers that share one have their turns at the same steps
        self._schedule_owners = list({(id(w.pruning_schedule), w.sparsity_m_by_n): w for w in self._wrappers}.values())
        optimizer = getattr(self.model, "optimizer", None)
        self._baseline = None if optimizer is None else (int(_value(optimizer.iterations)), self._clock)
        self._ready = True

    def _check_counting(self, now):
        """Once the optimizer has stepped, the layers must have counted: else they never see training=True."""
        iterations = int(_value(self.model.optimizer.iterations))
        if iterations == self._baseline[0]:
            return
        counted = now != self._baseline[1]
        self._baseline = None  # checked
        if not counted:
            raise ValueError(
                f"UpdatePruningStep: the optimizer stepped but the pruned layers of {self.model.name!r} were never "
                "called with training=True. A subclassed model must accept `training=None` in call() and pass it "
                "on (Keras 3 calls it without otherwise); in a custom loop call model(x, training=True).")

    def on_train_batch_begin(self, batch, logs=None):
        if not self._begun:
            self.on_train_begin()
        if not self._wrappers:
            return
        if not self._ready:
            if not all(w.built for w in self._wrappers):
                return  # built by the first step of a model that was never called
            self._setup(fresh=True)
        # Reading a counter is a host sync. Once the counting is checked, the counter is read only when
        # a turn could be due: since the last read, each call followed at most steps_per_execution steps.
        self._calls += 1
        bound = self._clock + self._calls * self._spe
        if self._verified and not self._turn_possible(bound + 1):
            return
        # Every wrapper counts the same training steps, so the first one's counter tells how many steps
        # ran since the last read (several when steps_per_execution > 1).
        self._synced_model()
        now = int(_value(self._wrappers[0].pruning_step))
        if self._baseline is not None:
            self._check_counting(now)
        elif now > self._clock:  # a model that counts more than once per step is read at every call
            self._verified = now <= bound
        elapsed, self._clock, self._calls = now - self._clock, now, 0
        due = []  # (wrapper, (step, sparsity)) of the latest turn each wrapper reached
        for i, wrapper in enumerate(self._wrappers):
            self._steps[i] += elapsed
            last, upcoming = self._done[i], self._steps[i] + 1  # upcoming: the number of the step about to run
            turn = next(((step, sparsity) for step in range(upcoming, last, -1)
                         for should, sparsity in [wrapper.turn(step)] if should), None)  # the latest turn wins
            if turn is not None and wrapper.masked_weights():  # a no-op wrapper (Dropout) has no mask to update
                due.append((wrapper, turn))
            self._done[i] = upcoming
        if due:  # one call checks every due layer (a turn that changes no mask costs one compiled reduction)
            changed = prune_layers([(wrapper, sparsity) for wrapper, (_, sparsity) in due])
            optimizer = getattr(self.model, "optimizer", None)
            for (wrapper, (step, _)), layer_changed in zip(due, changed):
                if layer_changed:  # no mask changed: no weight died, the optimizer state stays
                    zero_optimizer_state(wrapper, optimizer)
                self.history.append((step, wrapper.name, wrapper.last_density))
        self._next_turn = max(self._next_turn, min(self._done) + 1)  # turns up to min(done) are handled

    def _synced_model(self):
        """``self.model``. On JAX this property copies the trainer's state into the variables (and has the
        trainer read them back before its next step); so it comes before any mid-epoch read or write."""
        return self.model

    _LOOKAHEAD = 1024  # steps the schedules are evaluated ahead, so that most batches only compare integers

    def _turn_possible(self, upcoming):
        """Whether any wrapper has a pruning turn at a step after those already looked at, up to ``upcoming``."""
        if upcoming < self._next_turn:
            return False
        step = self._next_turn
        while step <= upcoming + self._LOOKAHEAD:  # find the next turn, looking ahead of the batch
            if any(wrapper.turn(step)[0] for wrapper in self._schedule_owners):
                break
            step += 1
        self._next_turn = step
        return step <= upcoming

    def on_epoch_end(self, epoch=None, logs=None, batch=None):
        """Re-zeroes dead weights. ``batch`` is accepted for TFMOT's spelling, ``on_epoch_end(batch=-1)``."""
        zero_dead_weights(self._wrappers)  # one compiled call for every layer


class PruningSummaries(keras.callbacks.TensorBoard):
    """TensorBoard callback that also logs, at each epoch's start, every pruned weight's sparsity and threshold.

    Scalars ``<weight path>/sparsity`` and ``<weight path>/threshold`` go to ``<log_dir>/metrics``,
    at the optimizer's iteration count. Other arguments are those of ``keras.callbacks.TensorBoard``.
    """

    def __init__(self, log_dir, update_freq="epoch", **kwargs):
        if not isinstance(log_dir, (str, os.PathLike)) or not str(log_dir):
            raise ValueError(f"PruningSummaries needs a non-empty log_dir; got {log_dir!r}.")
        super().__init__(log_dir=str(log_dir), update_freq=update_freq, **kwargs)
        self._pruning_writer = None

    def pruning_logs(self):
        """``{"<path>/sparsity": ..., "<path>/threshold": ...}`` for every pruned weight of the model."""
        logs = {}
        for wrapper in pruning_wrappers(self.model):
            thresholds = wrapper.thresholds()
            for path, mask in wrapper.mask_variables().items():
                logs[f"{path}/sparsity"] = float(1.0 - np.mean(_value(mask)))
                logs[f"{path}/threshold"] = float(_value(thresholds[path]))
        return logs

    def on_epoch_begin(self, epoch, logs=None):
        if logs is not None:
            super().on_epoch_begin(epoch, logs)
        if self._pruning_writer is None:
            self._pruning_writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "metrics"))
        optimizer = getattr(self.model, "optimizer", None)
        step = int(_value(optimizer.iterations)) if optimizer is not None else epoch
        with self._pruning_writer.as_default():
            for name, value in self.pruning_logs().items():
                tf.summary.scalar(name, value, step=step)
        self._pruning_writer.flush()

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        if self._pruning_writer is not None:
            self._pruning_writer.close()
            self._pruning_writer = None
