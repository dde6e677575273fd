"""``RewindCheckpoint``: capture theta_k and the optimizer state at step k, restore them later.

Rewinding (Frankle et al., "Stabilizing the Lottery Ticket Hypothesis") resets the surviving weights
of a pruned network to their values at an early step k of the dense run, and resumes training from
there: the learning-rate schedule and the data order continue from k. Everything needed for that is
a ``RewindPoint``: the model's weights at k, the optimizer's variables at k (iteration count and
slots: momentum, Adam moments, ...) and the data position k.
"""

import json
import os
import warnings

import keras
import numpy as np

from keras_lottery import compat, files
from keras_lottery.masking import mask_variables, masked_layers, zero_optimizer_state
from keras_lottery.training import durations

__all__ = ["RewindCheckpoint", "RewindPoint"]


class RewindPoint:
    """The state of a training run at step ``step``: weights, optimizer variables, data position.

    Attributes:
      step: the global step k (the data position; also the optimizer's iteration count at k).
      weights: ``model.get_weights()`` at k (mask variables included, ignored on restore).
      optimizer: the optimizer's own variables at k (``[iterations, slot, slot, ...]``), or just
        ``[iterations]`` when the optimizer had not taken a step yet (k = 0: a fresh optimizer).
    """

    def __init__(self, step, weights, optimizer):
        self.step = int(step)
        self.weights = [np.array(w, copy=True) for w in weights]
        self.optimizer = [np.array(v, copy=True) for v in optimizer]

    def __repr__(self):
        return f"RewindPoint(step={self.step}, {len(self.weights)} weights, {len(self.optimizer)} optimizer variables)"

    @classmethod
    def capture(cls, model, step=None, optimizer=None):
        """The current state of ``model`` and its optimizer as step ``step``.

        ``optimizer`` defaults to ``model.optimizer`` (give it in a custom training loop, where the
        optimizer is not attached to the model); ``step`` to the optimizer's iteration count (0
        without an optimizer).
        """
        optimizer = optimizer if optimizer is not None else getattr(model, "optimizer", None)
        state = compat.optimizer_state(optimizer) if optimizer is not None else [np.asarray(0, dtype=np.int64)]
        if step is None:
            step = int(state[0])
        return cls(step, model.get_weights(), state)

    # -- restoring ---------------------------------------------------------------------------------
    def restore(self, model, weights=True, optimizer=True):
        """Puts this state back into ``model``; masks are kept, dead weights stay exactly 0.

        Args:
          model: a model of the same architecture as the captured one (masked or not).
          weights: restore the weights (theta_k). Mask variables are never touched; each masked
            weight is multiplied by the model's current mask afterwards.
          optimizer: restore ``model.optimizer`` (True; the model must be compiled), or this
            optimizer object (a custom training loop's), or nothing (False): iteration count k, and
            the captured slots, or zeroed slots when the capture came before the first step.

        Returns the model.
        """
        if weights:
            self.restore_weights(model)
        if isinstance(optimizer, keras.optimizers.Optimizer):
            self.restore_optimizer(model, optimizer)
        elif optimizer:
            if getattr(model, "optimizer", None) is None:
                raise ValueError(f"RewindPoint.restore(optimizer=True) needs a compiled model; {model.name!r} has no "
                                 "optimizer. Compile it first, pass the optimizer, or pass optimizer=False.")
            self.restore_optimizer(model)
        return model

    def restore_weights(self, model):
        """Sets every non-mask weight of ``model`` to its captured value, then re-applies the masks."""
        variables = model.weights
        if len(variables) != len(self.weights):
            raise ValueError(f"RewindPoint holds {len(self.weights)} weights; model {model.name!r} has "
                             f"{len(variables)}. Restore into a model of the captured architecture.")
        skip = {id(m) for m in mask_variables(model)}
        for variable, value in zip(variables, self.weights):
            if tuple(variable.shape) != tuple(value.shape):
                raise ValueError(f"RewindPoint weight for {variable.path!r} has shape {value.shape}; the model's "
                                 f"is {tuple(variable.shape)}.")
            if id(variable) not in skip:
                variable.assign(value)
        for layer in masked_layers(model):
            layer.zero_dead_weights()
        return model

    def restore_optimizer(self, model, optimizer=None):
        """Sets the optimizer of ``model`` to the captured state; returns the optimizer.

        The iteration count becomes k (so a ``StepSchedule`` replays from k) and the slots take
        their captured values, or zeros when the capture came before the first step. The slots of
        weights that ``model``'s masks have since pruned are then zeroed, so dead weights stay 0.

        Args:
          model: the model whose trainable variables the optimizer updates.
          optimizer: the optimizer to set; ``model.optimizer`` by default (built if needed).
        """
        optimizer = optimizer if optimizer is not None else getattr(model, "optimizer", None)
        if optimizer is None:
            raise ValueError(f"Model {model.name!r} has no optimizer to restore; compile it first.")
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        self._assign_optimizer(optimizer)
        zero_optimizer_state(model, optimizer)
        return optimizer

    def _assign_optimizer(self, optimizer):
        own = optimizer.variables
        fixed_learning_rate = compat.learning_rate_variable(optimizer)
        if len(self.optimizer) == 1:  # captured before the first step: a fresh optimizer at iteration k
            for variable in own:
                if variable is optimizer.iterations or variable.path == optimizer.iterations.path:
                    variable.assign(self.step)
                elif variable is not fixed_learning_rate:
                    variable.assign(np.zeros(variable.shape, dtype=variable.dtype))
            return optimizer
        if len(own) != len(self.optimizer):
            raise ValueError(f"RewindPoint holds {len(self.optimizer)} optimizer variables; {optimizer.name!r} has "
                             f"{len(own)}. Use the same optimizer class and model as when capturing.")
        for variable, value in zip(own, self.optimizer):
            if tuple(variable.shape) != tuple(np.shape(value)):
                raise ValueError(f"Optimizer variable {variable.path!r} has shape {tuple(variable.shape)}; the "
                                 f"captured value {np.shape(value)}.")
            variable.assign(value)
        return optimizer

    # -- files -------------------------------------------------------------------------------------
    def save(self, path):
        """Writes the point to ``path`` (``.npz``) atomically; returns the path."""
        path = os.fspath(path)
        if not path.endswith(".npz"):
            path += ".npz"
        arrays = {f"w{i}": w for i, w in enumerate(self.weights)}
        arrays.update({f"o{i}": v for i, v in enumerate(self.optimizer)})
        arrays["__meta__"] = np.array(json.dumps({"step": self.step, "weights": len(self.weights),
                                                  "optimizer": len(self.optimizer)}))
        with files.atomic(path) as tmp:
            np.savez(tmp, **arrays)
        return path

    @classmethod
    def load(cls, path):
        """Reads a point written by ``save``."""
        point = None
        with files.guard(path), np.load(os.fspath(path), allow_pickle=False) as data:  # torn: DamagedFileError
            if "__meta__" in data.files:
                meta = json.loads(str(data["__meta__"]))
                point = cls(meta["step"], [data[f"w{i}"] for i in range(meta["weights"])],
                            [data[f"o{i}"] for i in range(meta["optimizer"])])
        if point is None:
            raise ValueError(f"{path!r} is not a rewind point written by RewindPoint.save.")
        return point


class RewindCheckpoint(keras.callbacks.Callback):
    """Captures the weights, optimizer state and data position at step k of ``model.fit``.

    ``at`` is "500it" (iterations), "2ep" (epochs), a fraction of training ("0.05") or 0 (the
    initialization: captured when training begins, before the first step). Steps are the
    optimizer's iteration count (``optimizer.iterations``), read once it could have reached k, so a
    resumed run (restored optimizer) captures at the same global step. After capture,
    ``point`` holds a ``RewindPoint``, also written to ``path`` when one is given;
    ``restore(model)`` puts it back::

        rewind = RewindCheckpoint(at="500it")
        masked.fit(train, epochs=..., callbacks=[rewind])
        kl.prune(masked, kl.GlobalMagnitude(0.2))
        rewind.restore(masked)          # survivors back to theta_k, masks kept, optimizer at k

    Args:
      at: the rewind step k.
      steps_per_epoch: for "ep" durations; read from ``fit``'s ``steps_per_epoch`` when omitted.
      total_steps: for fractions; ``epochs x steps_per_epoch`` of the ``fit`` call when omitted.
      path: where to save the point (``.npz``), or None to keep it in memory only.

    With ``compile(steps_per_execution=n)``, ``n > 1``, Keras calls batch callbacks only after every
    ``n`` optimizer steps, so the state at a step ``k`` between two calls is never visible to a
    callback. The capture then happens at the first call at or after ``k``: ``point.step`` is the
    step actually captured (weights, optimizer state and data position all agree on it), and a
    ``UserWarning`` says so. Choose ``n`` dividing ``k`` for an exact capture.
    """

    def __init__(self, at, steps_per_epoch=None, total_steps=None, path=None):
        super().__init__()
        durations.to_steps(at, steps_per_epoch or 1, total_steps or 1)  # fail now on a malformed value
        self.at = at
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = total_steps
        self.path = None if path is None else os.fspath(path)
        self.point = None
        self.step = None
        self._k = None
        self._bound = 0  # no less than the optimizer's iteration count

    def _resolve(self):
        params = self.params or {}
        spe = self.steps_per_epoch or params.get("steps")
        total = self.total_steps or ((params.get("epochs") or 0) * (spe or 0)) or None
        text = str(self.at)
        if "ep" in text and not spe:
            raise ValueError(f"RewindCheckpoint(at={self.at!r}) needs steps_per_epoch (fit was given none).")
        return durations.to_steps(text, spe or 1, total)

    @property
    def rewind_step(self):
        """k in iterations (known once training has begun)."""
        return self._k

    def on_train_begin(self, logs=None):
        self._k = self._resolve()
        self.step = self._bound = self._iterations()
        if self.point is None and self.step > self._k:
            raise ValueError(f"RewindCheckpoint(at={self.at!r}) = step {self._k}, but training begins at step "
                             f"{self.step}: that point has passed and cannot be captured.")
        if self.step == self._k:
            self._capture()

    def on_train_batch_end(self, batch, logs=None):
        if self._captured():
            return  # nothing more to read from the device
        # The count grows by at most steps_per_execution per call: read it (a host sync) only once
        # it could have reached k.
        self._bound += compat.steps_per_execution(self.model)
        if self._bound < self._k:
            return
        self.step = self._bound = self._iterations()
        if self.step >= self._k:
            self._capture()

    def _iterations(self):
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def _captured(self):
        return self.point is not None and self.point.step >= self._k

    def _capture(self):
        if self._captured():
            return
        self.point = RewindPoint.capture(self.model, step=self.step)
        if self.step != self._k:
            warnings.warn(
                f"RewindCheckpoint(at={self.at!r}) captured step {self.step}, not step {self._k}: with "
                f"steps_per_execution={compat.steps_per_execution(self.model)} Keras calls callbacks only every "
                f"{compat.steps_per_execution(self.model)} steps. The point's weights, optimizer state and data "
                "position are all those of the captured step; pick steps_per_execution dividing the rewind step "
                "for an exact capture.", UserWarning, stacklevel=2)
        if self.path:
            self.point.save(self.path)

    def restore(self, model, weights=True, optimizer=True):
        """Restores the captured point into ``model``; see ``RewindPoint.restore``."""
        if self.point is None:
            raise ValueError(f"RewindCheckpoint(at={self.at!r}) has captured nothing yet: fit must reach step "
                             f"{self._k if self._k is not None else self.at} first.")
        return self.point.restore(model, weights=weights, optimizer=optimizer)

    def get_config(self):
        return {"at": self.at, "steps_per_epoch": self.steps_per_epoch, "total_steps": self.total_steps,
                "path": self.path}
