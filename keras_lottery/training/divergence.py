"""Stop a training that diverged: a non-finite loss, or non-finite weights, ends ``fit`` at once.

Keras' ``TerminateOnNaN`` stops quietly and lets the caller carry on as if training had finished
(an experiment would record it, prune its NaN weights, export it). :class:`StopOnDivergence` raises
:class:`DivergenceError` instead, whose message is one line naming the step, what is not finite and
the likely cause (the learning rate), so nothing after ``fit`` runs on the diverged model.
``keras_lottery.training.fit`` adds it first among its callbacks: the weights are checked before each
checkpoint is saved, so a run directory never holds a non-finite checkpoint.
"""

import math
import os

import keras
import numpy as np

__all__ = ["DivergenceError", "StopOnDivergence"]


class DivergenceError(RuntimeError):
    """Training diverged: the loss or a weight became NaN or infinite.

    Attributes:
      step: the optimizer's iteration count when it was seen (the number of steps applied).
      what: what was not finite (``"the loss (nan)"``, ``"weight dense/kernel"``).
      learning_rate: the learning rate at that step, when the optimizer has one.
      directory: the training directory, when known (its last checkpoint is from before the divergence).
    """

    def __init__(self, step, what, learning_rate=None, directory=None):
        self.step, self.what, self.learning_rate, self.directory = step, what, learning_rate, directory
        where = f" in {os.fspath(directory)}" if directory else ""
        rate = f" ({learning_rate:.3g} at this step)" if learning_rate is not None else ""
        super().__init__(
            f"Training diverged at step {step}{where}: {what} is not finite. The learning rate{rate} is the likely "
            "cause: lower it (--lr), add warm-up (--warmup) or clip gradients (--clipnorm). Nothing was recorded as "
            "finished; the run keeps its checkpoints from before the divergence.")


class StopOnDivergence(keras.callbacks.Callback):
    """Raises :class:`DivergenceError` at the first non-finite loss or weight.

    The loss Keras reports is checked at every batch end (a value ``fit`` has already brought to the
    host for its progress bar); the weights at every epoch end (each chunk of ``training.fit``), before
    the callbacks after this one run, so put it first to keep a checkpointing callback from saving
    a diverged model. Use it in any ``model.fit``::

        model.fit(train, epochs=10, callbacks=[kl.callbacks.StopOnDivergence(), ...])

    Args:
      check_weights: also check every weight of the model at each epoch end.
      directory: the training directory, named in the error message (optional).
    """

    def __init__(self, check_weights=True, directory=None):
        super().__init__()
        self.check_weights = check_weights
        self.directory = directory

    def _fail(self, what):
        optimizer = getattr(self.model, "optimizer", None)
        step, rate = None, None
        if optimizer is not None:
            step = int(keras.ops.convert_to_numpy(optimizer.iterations))
            try:
                rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
            except (TypeError, ValueError, AttributeError):
                rate = None
        raise DivergenceError(step, what, rate, self.directory)

    def _check_logs(self, logs, keys):
        for key in keys:
            value = (logs or {}).get(key)
            if value is None:
                continue
            value = float(np.asarray(keras.ops.convert_to_numpy(value)).mean())
            if not math.isfinite(value):
                self._fail(f"the {'loss' if key == 'loss' else key} ({value})")

    def on_train_batch_end(self, batch, logs=None):
        self._check_logs(logs, ("loss",))

    def on_epoch_end(self, epoch, logs=None):
        self._check_logs(logs, ("loss",))
        if self.check_weights:
            for variable in self.model.weights:
                value = np.asarray(keras.ops.convert_to_numpy(variable.value))
                if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
                    self._fail(f"weight {variable.path}")
