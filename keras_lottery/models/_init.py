"""Seeded initializers, so that one integer fixes a model's whole initialization."""

import itertools

import keras

# Batch-norm running statistics follow PyTorch's default (0.1 new, i.e. Keras momentum 0.9), as in the
# papers' reference code: with Keras' 0.99 the statistics lag for hundreds of steps, which makes
# short runs and the early levels of IMP evaluate with stale statistics.
BN_MOMENTUM = 0.9


class InitializerFactory:
    """Hands out initializers whose seeds derive from one model seed.

    Keras 3 initializers built with the same integer seed return the same values on every call,
    so each layer gets its own seed: ``seed * 10_000 + index``. With ``seed=None`` the initializers
    are unseeded and follow Keras' global random state (``keras.utils.set_random_seed``).
    """

    def __init__(self, seed):
        self._seed = seed
        self._counter = itertools.count()

    def _next_seed(self):
        if self._seed is None:
            return None
        return int(self._seed) * 10_000 + next(self._counter)

    def __call__(self, name, **config):
        """Returns a fresh instance of the Keras initializer called ``name`` (``config``: its other arguments)."""
        return keras.initializers.get({"class_name": name, "config": {**config, "seed": self._next_seed()}})
