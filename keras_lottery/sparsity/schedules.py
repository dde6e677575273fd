"""Pruning schedules with the interface of ``tfmot.sparsity.keras``: ``PruningSchedule`` (subclass it),
``ConstantSparsity`` and ``PolynomialDecay``.

A schedule is called with the pruning step (1 during the first training step after
``prune_low_magnitude``, as in TFMOT) and returns ``(should_prune, sparsity)``, computed with TFMOT's
float32 formula, so a target sparsity turns into the same number of kept weights as in TFMOT. Given a
tensor or variable step (as TFMOT's schedules are called, inside ``tf.function`` too), the built-in
schedules return tensors of the Keras backend (a boolean and a float32 scalar), as TFMOT's do; given a
Python or NumPy integer (as the pruning callback calls them, many times between steps), a Python
``bool`` and a ``numpy.float32``, at no tensor cost. A subclass may return either; the pruning callback
converts them (:func:`evaluate`).

``get_config()`` has TFMOT's format, ``{"class_name": ..., "config": {...}}``, and
``deserialize(config)`` (or ``cls.from_config(config["config"])``) rebuilds the schedule. Subclasses
registered with ``keras.saving.register_keras_serializable`` are found by ``deserialize`` too.
"""

import abc

import keras
import numpy as np

__all__ = ["ConstantSparsity", "PolynomialDecay", "PruningSchedule", "deserialize", "evaluate"]


class PruningSchedule(abc.ABC):
    """When to prune and to what sparsity: ``schedule(step) -> (should_prune, sparsity)``.

    Subclasses implement ``__call__`` and ``get_config`` (``{"class_name": ..., "config": kwargs}``);
    ``from_config(kwargs)`` calls ``cls(**kwargs)``. The helpers ``_should_prune_in_step``,
    ``_validate_step`` and ``_validate_sparsity`` have TFMOT's names and meaning.
    """

    @staticmethod
    def _should_prune_in_step(step, begin_step, end_step, frequency):
        """True when ``begin_step <= step <= end_step`` (``end_step=-1``: no end) and
        ``(step - begin_step) % frequency == 0``: a ``bool`` for an integer step, a boolean tensor for a
        tensor step."""
        if _is_tensor(step):
            ops = keras.ops
            step = ops.cast(ops.convert_to_tensor(step), "int64")
            in_range = ops.greater_equal(step, begin_step)
            if end_step >= 0:
                in_range = ops.logical_and(in_range, ops.less_equal(step, end_step))
            return ops.logical_and(in_range, ops.equal(ops.mod(step - begin_step, frequency), 0))
        step = int(step)
        in_range = step >= begin_step and (end_step < 0 or step <= end_step)
        return bool(in_range and (step - begin_step) % frequency == 0)

    @staticmethod
    def _validate_step(begin_step, end_step, frequency, allow_negative_1):
        for name, value in (("begin_step", begin_step), ("end_step", end_step), ("frequency", frequency)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"{name} must be an integer; got {value!r}.")
        if begin_step < 0:
            raise ValueError(f"begin_step must be >= 0; got {begin_step}.")
        if end_step == -1 and not allow_negative_1:
            raise ValueError("end_step cannot be -1 for this schedule.")
        if end_step != -1 and (end_step < 0 or end_step < begin_step):
            raise ValueError(f"end_step must be -1 or >= begin_step ({begin_step}); got {end_step}.")
        if frequency <= 0:
            raise ValueError(f"frequency must be > 0; got {frequency}.")

    @staticmethod
    def _validate_sparsity(sparsity, name):
        if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float, np.floating)) \
                or not 0.0 <= sparsity < 1.0:
            raise ValueError(f"{name} must be a number in [0, 1); got {sparsity!r}.")

    @abc.abstractmethod
    def __call__(self, step):
        """``(should_prune, sparsity)`` at the pruning step ``step``."""

    @abc.abstractmethod
    def get_config(self):
        """``{"class_name": type name, "config": constructor arguments}``."""

    @classmethod
    def from_config(cls, config):
        """The schedule whose constructor arguments are ``config``."""
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config()["config"].items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(self.get_config()["config"].items()))))


class ConstantSparsity(PruningSchedule):
    """Prune to ``target_sparsity`` every ``frequency`` steps from ``begin_step`` to ``end_step`` (-1: no end)."""

    def __init__(self, target_sparsity, begin_step, end_step=-1, frequency=100):
        self._validate_step(begin_step, end_step, frequency, True)
        self._validate_sparsity(target_sparsity, "target_sparsity")
        self.target_sparsity = target_sparsity
        self.begin_step, self.end_step, self.frequency = int(begin_step), int(end_step), int(frequency)

    def __call__(self, step):
        should = self._should_prune_in_step(step, self.begin_step, self.end_step, self.frequency)
        if _is_tensor(step):
            return should, keras.ops.convert_to_tensor(np.float32(self.target_sparsity))
        return should, np.float32(self.target_sparsity)

    def get_config(self):
        return {"class_name": type(self).__name__,
                "config": {"target_sparsity": self.target_sparsity, "begin_step": self.begin_step,
                           "end_step": self.end_step, "frequency": self.frequency}}


class PolynomialDecay(PruningSchedule):
    """Zhu & Gupta (2017): ``s_f + (s_i - s_f) (1 - p)^power`` with ``p = (step - begin) / (end - begin)``
    clipped to [0, 1]; prunes every ``frequency`` steps from ``begin_step`` to ``end_step``.

    Computed in float32 in TFMOT's order of operations.
    """

    def __init__(self, initial_sparsity, final_sparsity, begin_step, end_step, power=3, frequency=100):
        self._validate_step(begin_step, end_step, frequency, False)
        self._validate_sparsity(initial_sparsity, "initial_sparsity")
        self._validate_sparsity(final_sparsity, "final_sparsity")
        self.initial_sparsity, self.final_sparsity, self.power = initial_sparsity, final_sparsity, power
        self.begin_step, self.end_step, self.frequency = int(begin_step), int(end_step), int(frequency)

    def sparsity(self, step):
        """The target sparsity at ``step``, whether or not ``step`` is a pruning turn (a float32 tensor for a
        tensor step)."""
        f32 = np.float32
        if _is_tensor(step):
            ops = keras.ops
            span = f32(self.end_step - self.begin_step)
            p = ops.divide(ops.cast(ops.cast(ops.convert_to_tensor(step), "int64") - self.begin_step, "float32"), span)
            p = ops.minimum(f32(1.0), ops.maximum(f32(0.0), p))
            return ops.add(ops.multiply(f32(self.initial_sparsity - self.final_sparsity),
                                        ops.power(ops.subtract(f32(1.0), p), f32(self.power))), f32(self.final_sparsity))
        span = f32(self.end_step - self.begin_step)
        p = np.minimum(f32(1.0), np.maximum(f32(0.0), f32(int(step) - self.begin_step) / span))
        return f32(f32(self.initial_sparsity - self.final_sparsity) * np.power(f32(1.0) - p, f32(self.power))
                   + f32(self.final_sparsity))

    def __call__(self, step):
        return self._should_prune_in_step(step, self.begin_step, self.end_step, self.frequency), self.sparsity(step)

    def get_config(self):
        return {"class_name": type(self).__name__,
                "config": {"initial_sparsity": self.initial_sparsity, "final_sparsity": self.final_sparsity,
                           "power": self.power, "begin_step": self.begin_step, "end_step": self.end_step,
                           "frequency": self.frequency}}


def _is_tensor(step):
    """Whether ``step`` is a tensor or variable (not a Python / NumPy integer)."""
    return not isinstance(step, (int, np.integer)) and not (isinstance(step, np.ndarray) and step.ndim == 0)


def deserialize(config, custom_objects=None):
    """The schedule described by ``config`` (the output of ``get_config()``).

    ``class_name`` is looked up in ``custom_objects``, then among this module's schedules, then in
    Keras' registry of serializable objects (``keras.saving.register_keras_serializable``).
    """
    if isinstance(config, PruningSchedule):
        return config
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"A pruning schedule config is {{'class_name': ..., 'config': {{...}}}}; got {config!r}.")
    name = config["class_name"]
    known = {"ConstantSparsity": ConstantSparsity, "PolynomialDecay": PolynomialDecay, **(custom_objects or {})}
    cls = known.get(name)
    if cls is None:  # registered as "package>Name"
        cls = next((obj for key, obj in keras.saving.get_custom_objects().items()
                    if key == name or key.endswith(">" + name)), None)
    if cls is None:
        raise ValueError(f"Unknown pruning schedule {name!r}: pass it in custom_objects (or prune_scope) or "
                         "register it with keras.saving.register_keras_serializable.")
    return cls.from_config(config.get("config", {}))


def evaluate(schedule, step):
    """``(bool, float)`` from ``schedule(step)``, whatever the schedule returns (Python values or tensors)."""
    should, sparsity = schedule(int(step))
    if type(should) is not bool:  # the built-in schedules return a bool; a subclass may return a tensor
        should = bool(np.asarray(should))
    return should, float(np.asarray(sparsity, dtype=np.float32))
