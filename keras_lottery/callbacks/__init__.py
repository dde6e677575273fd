"""Keras callbacks for lottery workflows, to drop into ``model.fit``.

Each callback lives in a module of its own in this package and is re-exported here.
"""
from keras_lottery.callbacks.pruning import GradualPruning  # noqa: E402,F401
from keras_lottery.callbacks.sparsity_logger import SparsityLogger  # noqa: E402,F401

from keras_lottery.training.divergence import DivergenceError, StopOnDivergence  # noqa: E402,F401  (lives with fit)
from keras_lottery.callbacks.emissions import Emissions  # noqa: E402
from keras_lottery.callbacks.rewind import RewindCheckpoint, RewindPoint  # noqa: E402,F401
