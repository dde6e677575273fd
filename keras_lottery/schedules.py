"""When and how much to prune: one-shot, iterative rounds, gradual (in-training) schedules.

- ``one_shot(model, density, rule="global")``: prune a masked model once to a target density.
- ``iterative_densities(rate, rounds)``: the densities of IMP rounds, ``(1 - rate)^n``.
- ``PolynomialDecay`` (Zhu & Gupta 2017) and ``ConstantSparsity``: gradual schedules for the
  ``keras_lottery.callbacks.GradualPruning`` callback. Calling one with a step returns
  ``(should_prune, target_sparsity)`` exactly as TFMOT's schedules of the same name do.
- ``as_schedule(obj)``: accepts these, TFMOT ``ConstantSparsity`` / ``PolynomialDecay`` objects
  (converted from their config: the same formula, in float64 where TFMOT uses float32), any other TFMOT
  ``PruningSchedule`` (evaluated eagerly), or a plain callable ``step -> (bool, float)``.
  TFMOT is imported only when such an object is given.
"""

import math

import tensorflow as tf

from keras_lottery.masking import read_mask
from keras_lottery.pruning import GlobalMagnitude, LayerwiseMagnitude, check_density, check_rate, prune

__all__ = ["ConstantSparsity", "PolynomialDecay", "as_schedule", "iterative_densities", "one_shot"]


def iterative_densities(rate, rounds):
    """``[(1 - rate)^1, ..., (1 - rate)^rounds]``: density after each IMP round (rate 0.2: 0.8, 0.64, ...)."""
    rate = check_rate(rate)
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
        raise ValueError(f"rounds must be a non-negative integer; got {rounds!r}.")
    return [(1.0 - rate) ** n for n in range(1, rounds + 1)]


def one_shot(model, density, rule="global", exclude=()):
    """Prunes the masked ``model`` once so that ``density`` of its masked weights stay alive.

    ``rule="global"``: one magnitude threshold over the candidates, the target counted over the whole
    mask. ``rule="layerwise"``: every candidate tensor pruned to ``density`` itself. Returns the mask.

    Raises:
        ValueError: density outside (0, 1], above the current density (pruning never revives
            weights), for ``rule="global"`` more sparsity than the non-excluded weights can give (the layerwise
            rule leaves excluded tensors alone and may end above the target), or an unknown rule.
    """
    density = check_density(density)
    current = read_mask(model)
    if density > current.density + 1e-12:
        raise ValueError(f"one_shot: target density {density} is above the current density "
                         f"{current.density:.6f}; pruning cannot revive weights.")
    if rule == "global":
        return prune(model, GlobalMagnitude(density=density, exclude=exclude))
    if rule == "layerwise":
        return prune(model, LayerwiseMagnitude(density=density, exclude=exclude))
    raise ValueError(f"one_shot rule must be 'global' or 'layerwise'; got {rule!r}.")


def _in_range(step, begin_step, end_step, frequency):
    return step >= begin_step and (end_step == -1 or step <= end_step) and (step - begin_step) % frequency == 0


def _check_schedule_args(begin_step, end_step, frequency):
    if not isinstance(begin_step, int) or begin_step < 0:
        raise ValueError(f"begin_step must be an integer >= 0; got {begin_step!r}.")
    if not isinstance(end_step, int) or (end_step != -1 and end_step < begin_step):
        raise ValueError(f"end_step must be -1 or an integer >= begin_step ({begin_step}); got {end_step!r}.")
    if not isinstance(frequency, int) or frequency < 1:
        raise ValueError(f"frequency must be an integer >= 1; got {frequency!r}.")


def _check_sparsity(value, name):
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1); got {value!r}.")
    return float(value)


class ConstantSparsity:
    """Prune to ``target_sparsity`` every ``frequency`` steps from ``begin_step`` to ``end_step`` (-1: forever)."""

    def __init__(self, target_sparsity, begin_step, end_step=-1, frequency=100):
        self.target_sparsity = _check_sparsity(target_sparsity, "target_sparsity")
        _check_schedule_args(begin_step, end_step, frequency)
        self.begin_step, self.end_step, self.frequency = begin_step, end_step, frequency

    def __call__(self, step):
        return _in_range(int(step), self.begin_step, self.end_step, self.frequency), self.target_sparsity

    def get_config(self):
        return dict(target_sparsity=self.target_sparsity, begin_step=self.begin_step, end_step=self.end_step,
                    frequency=self.frequency)


class PolynomialDecay:
    """Zhu & Gupta: ``s_t = s_f + (s_i - s_f) (1 - (t - t0) / (t1 - t0))^power`` between ``begin_step`` and ``end_step``.

    Prunes every ``frequency`` steps in that range (and at ``end_step``'s last turn); ``power=3`` as in
    the paper. The same numbers as ``tfmot.sparsity.keras.PolynomialDecay``.
    """

    def __init__(self, initial_sparsity, final_sparsity, begin_step, end_step, power=3, frequency=100):
        self.initial_sparsity = _check_sparsity(initial_sparsity, "initial_sparsity")
        self.final_sparsity = _check_sparsity(final_sparsity, "final_sparsity")
        _check_schedule_args(begin_step, end_step, frequency)
        if end_step <= begin_step:
            raise ValueError(f"PolynomialDecay needs end_step > begin_step; got {begin_step}, {end_step}.")
        self.begin_step, self.end_step, self.power, self.frequency = begin_step, end_step, power, frequency

    def sparsity(self, step):
        """The target sparsity at ``step`` (whether or not it is a pruning step)."""
        p = min(1.0, max(0.0, (int(step) - self.begin_step) / (self.end_step - self.begin_step)))
        return self.final_sparsity + (self.initial_sparsity - self.final_sparsity) * math.pow(1.0 - p, self.power)

    def __call__(self, step):
        return _in_range(int(step), self.begin_step, self.end_step, self.frequency), self.sparsity(step)

    def get_config(self):
        return dict(initial_sparsity=self.initial_sparsity, final_sparsity=self.final_sparsity,
                    begin_step=self.begin_step, end_step=self.end_step, power=self.power, frequency=self.frequency)


class _EagerTFMOTSchedule:
    """Any other TFMOT PruningSchedule, called eagerly with the step."""

    def __init__(self, schedule):
        self.schedule = schedule

    def __call__(self, step):
        should, sparsity = self.schedule(tf.constant(int(step), dtype=tf.int64))
        return bool(should), float(sparsity)


def as_schedule(obj):
    """A ``step -> (should_prune, sparsity)`` callable from a keras_lottery or TFMOT schedule."""
    if isinstance(obj, (ConstantSparsity, PolynomialDecay)):
        return obj
    if type(obj).__module__.startswith("tensorflow_model_optimization"):
        import tensorflow_model_optimization as tfmot  # only here: it switches tf.keras to legacy Keras

        sparsity = tfmot.sparsity.keras
        if isinstance(obj, sparsity.ConstantSparsity):
            return ConstantSparsity(**obj.get_config()["config"])
        if isinstance(obj, sparsity.PolynomialDecay):
            return PolynomialDecay(**obj.get_config()["config"])
        if isinstance(obj, sparsity.PruningSchedule):
            return _EagerTFMOTSchedule(obj)
    if callable(obj):
        return obj
    raise TypeError(f"Expected a pruning schedule (keras_lottery.schedules.PolynomialDecay / ConstantSparsity, a "
                    f"TFMOT PruningSchedule, or a callable step -> (should_prune, sparsity)); got {obj!r}.")
