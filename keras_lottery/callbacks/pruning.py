"""``GradualPruning``: prune a masked model during training on a schedule (Zhu & Gupta 2017)."""

import keras

from keras_lottery import compat
from keras_lottery.masking import read_mask
from keras_lottery.pruning import GlobalMagnitude, LayerwiseMagnitude, prune
from keras_lottery.schedules import as_schedule

__all__ = ["GradualPruning"]


class GradualPruning(keras.callbacks.Callback):
    """Prunes the masked model being fit whenever ``schedule(step)`` says so.

    Steps are the optimizer's iteration count. Before each optimizer step ``t`` that is a pruning
    turn, the model is pruned to the schedule's sparsity ``s_t``: each candidate tensor to density
    ``1 - s_t`` (``scope="layerwise"``, as in Zhu & Gupta and TFMOT) or the whole mask to ``1 - s_t``
    with one global magnitude threshold (``scope="global"``). Weights already pruned stay pruned;
    tensors already sparser than the target are left alone. Pruning happens between steps, outside
    the compiled train function, so it adds nothing to the cost of the other steps.

    With ``compile(steps_per_execution=n)``, Keras calls the callback once before every ``n`` steps;
    a turn falling inside those ``n`` steps is then applied before them, up to ``n - 1`` steps early
    (the last turn of the group, so the final sparsity is always reached). ``history`` records the
    turn's step.

    In a custom training loop, call ``update(model, optimizer)`` before each optimizer step (see
    docs/masks.md).

    Args:
        schedule: ``keras_lottery.schedules.PolynomialDecay`` / ``ConstantSparsity``, a TFMOT
            ``PruningSchedule`` (TFMOT is imported only then), or a callable
            ``step -> (should_prune, sparsity)``.
        scope: ``"layerwise"`` or ``"global"``.
        exclude: layer names, weight paths, glob patterns or layer classes never pruned.
    """

    def __init__(self, schedule, scope="layerwise", exclude=()):
        super().__init__()
        if scope not in ("layerwise", "global"):
            raise ValueError(f"GradualPruning scope must be 'layerwise' or 'global'; got {scope!r}.")
        self.schedule = as_schedule(schedule)
        self.scope = scope
        self.exclude = exclude
        self._next = None  # the first step whose turn has not been looked at
        self.history = []  # (step, target sparsity, density after pruning)

    def on_train_begin(self, logs=None):
        read_mask(self.model)  # fails early, with a clear message, on a model without masks
        self._next = None

    def on_train_batch_begin(self, batch, logs=None):
        self.update(self.model, steps=compat.steps_per_execution(self.model))

    def update(self, model, optimizer=None, steps=1):
        """Prunes ``model`` if a pruning turn falls in the next ``steps`` optimizer steps.

        The step is ``optimizer.iterations`` (``optimizer`` defaults to ``model.optimizer``); the
        optimizer state of newly pruned weights is zeroed in that optimizer. Returns whether it pruned.
        """
        optimizer = optimizer if optimizer is not None else model.optimizer
        step = int(keras.ops.convert_to_numpy(optimizer.iterations))
        first = step if self._next is None or self._next > step + steps else max(self._next, step)
        turn = None
        for t in range(first, step + steps):  # usually one step: one schedule call
            should_prune, sparsity = self.schedule(t)
            if should_prune:
                turn = (t, float(sparsity))
        self._next = step + steps
        if turn is None:
            return False
        return self._prune(model, optimizer, *turn)

    def _prune(self, model, optimizer, step, sparsity):
        density = 1.0 - sparsity
        if density >= 1.0:
            return False
        rule = (GlobalMagnitude(density=density, exclude=self.exclude) if self.scope == "global"
                else LayerwiseMagnitude(density=density, exclude=self.exclude))
        mask = prune(model, rule, optimizer=optimizer)
        self.history.append((step, sparsity, mask.density))
        return True
