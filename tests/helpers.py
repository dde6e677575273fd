"""Helpers shared by the tests of several folders: ``from tests.helpers import ...``.

``tests`` has no ``__init__.py``: it is a namespace package, importable because ``tests/conftest.py``
puts the repository root first on ``sys.path`` (the scripts that tests run in a fresh interpreter get
it through ``PYTHONPATH``, see :func:`child_env`). Folder-specific fixtures stay in each folder's
``conftest.py``; test modules import nothing from other test modules, only from here.

Importing this module imports Keras and TensorFlow but creates no device: a script that splits the
CPU into logical devices can import it after the split.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np

from keras_lottery import data, masking, models

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# -- fresh interpreters ----------------------------------------------------------------------------


def child_env(**extra):
    """The environment of a fresh interpreter: this checkout importable, TensorFlow quiet, no GPU,
    Keras 3 (no ``TF_USE_LEGACY_KERAS``, which importing TFMOT sets) and no inherited ``TF_CONFIG``;
    then ``extra`` (values turned into strings)."""
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_USE_LEGACY_KERAS", None)
    env.pop("TF_CONFIG", None)
    env.update({key: str(value) for key, value in extra.items()})
    return env


def run_json(args, timeout=600, **env):
    """Runs ``python *args`` at the repo root in a fresh interpreter (environment :func:`child_env`
    plus ``env``); asserts it succeeded and returns the JSON printed on its last stdout line."""
    proc = subprocess.run([sys.executable, *args], cwd=REPO, env=child_env(**env), capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"python {' '.join(args)[:200]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_python(code, timeout=120, **env):
    """:func:`run_json` of the source ``code`` (``python -c code``)."""
    return run_json(["-c", code], timeout=timeout, **env)


def run_script(path, timeout=600, **env):
    """:func:`run_json` of the Python file ``path``."""
    return run_json([path], timeout=timeout, **env)


# -- masked weights -----------------------------------------------------------------------------


def dead_entries(model, mask=None, strategy=None):
    """``{path: values of the masked weight at the positions mask removes}``.

    ``mask`` defaults to the model's own masks; with a ``tf.distribute`` ``strategy``, every
    replica's copy of each weight is read (the values of all replicas, concatenated).
    """
    mask = masking.read_mask(model) if mask is None else mask
    out = {}
    for layer in masking.masked_layers(model):
        for path, variable in layer.prunable_variables().items():
            copies = strategy.experimental_local_results(variable.value) if strategy is not None else [variable.value]
            out[path] = np.concatenate([np.asarray(keras.ops.convert_to_numpy(c))[~mask[path]].ravel() for c in copies])
    return out


# -- the tiny synthetic task: 8x8x1 images of 4 classes, LeNet-300-100 ---------------------------------

TINY_SHAPE, TINY_CLASSES = (8, 8, 1), 4


def tiny_dataset(train_size=256):
    """The dataset name of the tiny task (``synthetic:8x8x1:4:<train_size>``), for hparams and flags."""
    return f"synthetic:8x8x1:{TINY_CLASSES}:{train_size}"


def tiny_arrays(train_size=256):
    """The tiny task's arrays (``test`` holds ``train_size // 4`` examples)."""
    return data.find(tiny_dataset(train_size))


def tiny_data_hparams(train_size=256, **changes):
    """Batches of 32, 64 validation examples carved from the training split."""
    return data.DatasetHparams(**{"dataset": tiny_dataset(train_size), "batch_size": 32, "validation_size": 64,
                                  **changes})


def tiny_datasets(train_size=256, data_seed=0, **changes):
    """``data.load(tiny_data_hparams(...))``: with 256 examples, 192 train (6 steps an epoch) and 64 test."""
    return data.load(tiny_data_hparams(train_size, **changes), data_seed=data_seed)


def tiny_flags(train_size=256):
    """The binaries' flags for the tiny task (energy tracking off)."""
    return [f"--dataset={tiny_dataset(train_size)}", "--batch_size=32", "--validation_size=64", "--emissions=false"]


def tiny_lenet(seed=0):
    """LeNet-300-100 for the tiny task."""
    return models.lenet_300_100(TINY_SHAPE, classes=TINY_CLASSES, seed=seed)


# -- training ------------------------------------------------------------------------------------


class CrashAfter(keras.callbacks.Callback):
    """Raises ``error`` at the end of the ``batches``-th training batch it sees, as a process killed
    mid-epoch would stop (``KeyboardInterrupt`` by default: Keras lets it through)."""

    def __init__(self, batches, error=KeyboardInterrupt):
        super().__init__()
        self.batches, self.error, self.seen = int(batches), error, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.batches:
            raise self.error


class ResidualDense(keras.layers.Layer):
    """A residual layer ``x + Dense(relu(x))``: a block inside the containers below."""

    def build(self, shape):
        self.dense = keras.layers.Dense(shape[-1])

    def call(self, x):
        return x + self.dense(keras.ops.relu(x))


class ResidualStack(keras.layers.Layer):
    """A user's container layer: applies its ``residuals`` list (``depth`` :class:`ResidualDense`) in a loop,
    then tanh."""

    def __init__(self, depth, **kwargs):
        super().__init__(**kwargs)
        self.depth = depth
        self.residuals = [ResidualDense(name=f"res_{i}") for i in range(depth)]

    def call(self, x):
        for layer in self.residuals:
            x = layer(x)
        return keras.ops.tanh(x)

    def get_config(self):
        return {**super().get_config(), "depth": self.depth}
