"""``GradualPruning``: prune a masked model during training on a schedule (Zhu & Gupta 2017)."""

import keras

from keras_lottery.masking import read_mask
from keras_lottery.pruning import GlobalMagnitude, LayerwiseMagnitude, prune
from keras_lottery.schedules import as_schedule

__all__ = ["GradualPruning"]


class GradualPruning(keras.callbacks.Callback):
    """Prunes the masked model being fit whenever ``schedule(step)`` says so.

    At the start of each training batch whose optimizer step ``t`` is a pruning turn, the model is
    pruned to the schedule's sparsity ``s_t``: each candidate tensor to density ``1 - s_t``
    (``scope="layerwise"``, as in Zhu & Gupta and TFMOT) or the whole mask to ``1 - s_t`` with one
    global magnitude threshold (``scope="global"``). Weights already pruned stay pruned; tensors
    already sparser than the target are left alone. Pruning happens between steps, outside the
    compiled train function, so it adds nothing to the cost of the other steps.

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
        self._step = None
        self.history = []  # (step, target sparsity, density after pruning)

    def on_train_begin(self, logs=None):
        read_mask(self.model)  # fails early, with a clear message, on a model without masks
        self._step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_train_batch_begin(self, batch, logs=None):
        should_prune, sparsity = self.schedule(self._step)
        if should_prune:
            self._prune(float(sparsity))
        self._step += 1

    def _prune(self, sparsity):
        density = 1.0 - sparsity
        if density >= 1.0:
            return
        rule = (GlobalMagnitude(density=density, exclude=self.exclude) if self.scope == "global"
                else LayerwiseMagnitude(density=density, exclude=self.exclude))
        mask = prune(self.model, rule)
        self.history.append((self._step, sparsity, mask.density))
