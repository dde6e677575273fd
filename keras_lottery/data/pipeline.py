"""Batched ``tf.data`` pipelines whose data order is a pure function of a seed and a step.

The training stream for epoch ``e`` visits the examples in the order of a permutation drawn from
``(data_seed, e)``, and augmentation draws from ``(data_seed, e, position)``: so step ``k`` of a run
always sees the same batch, a run resumed at step ``k`` continues exactly, and two runs that share a
model seed but not a data seed differ only in data order and augmentation noise (what the stability
analysis needs). Every epoch has ``steps_per_epoch = train_size // batch_size`` full batches.
"""

import copy
import dataclasses
import os

import numpy as np
import tensorflow as tf

from keras_lottery.data import sources

# The validation split is carved with this fixed seed, so it never depends on the run's seeds.
_SPLIT_SEED = 20260101


_DEFAULT_VALIDATION = 5000


@dataclasses.dataclass(frozen=True)
class DatasetHparams:
    """What data a run trains on and how it is fed.

    Attributes:
      dataset: a TFDS name (``cifar10``, ``mnist``, ``fashion_mnist``, ``svhn_cropped``, ...), or
        ``synthetic[:HxWxC[:classes[:train_size]]]``.
      data_dir: a directory holding IDX or ``.npz`` files, or a prepared TFDS directory.
      batch_size: examples per training step (the global batch under a distribution strategy).
      validation_size: examples carved from the training split, deterministically, for validation
        (the default 5000 becomes a tenth of a training split of at most 10,000 examples).
      train_subset: when set, train on only this many of the remaining training examples.
      test_subset: when set, evaluate the test split's first this many examples only (a smaller
        compute budget; the accuracy's standard error grows as 1 / sqrt(test_subset)).
      augment: random crop with 4-pixel zero padding, plus horizontal flip when ``flip`` is set.
      flip: horizontal flips as part of ``augment`` (off for digits and other oriented images).
      normalize: standardize each channel with the training split's mean and standard deviation.
    """

    dataset: str = "fashion_mnist"
    data_dir: str = ""
    batch_size: int = 128
    validation_size: int = _DEFAULT_VALIDATION
    train_subset: int = 0
    test_subset: int = 0
    augment: bool = False
    flip: bool = True
    normalize: bool = True

    def validate(self):
        """Raises ValueError naming the first field that cannot work."""
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}.")
        if self.validation_size < 0:
            raise ValueError(f"validation_size must be >= 0, got {self.validation_size}.")
        if self.train_subset < 0:
            raise ValueError(f"train_subset must be >= 0 (0 = all), got {self.train_subset}.")
        if self.test_subset < 0:
            raise ValueError(f"test_subset must be >= 0 (0 = all), got {self.test_subset}.")
        if self.dataset.startswith("synthetic") and sources.parse_synthetic(self.dataset) is None:
            raise ValueError(f"--dataset={self.dataset!r} is not a synthetic spec: write synthetic[:HxWxC[:classes"
                             "[:train_size]]], e.g. synthetic:28x28x1:10:2048.")
        if self.data_dir and not os.path.isdir(self.data_dir):
            raise ValueError(f"--data_dir={self.data_dir!r} is not a directory.")



def validation_size_for(hparams, train_split_size):
    """The validation examples carved from a training split of ``train_split_size``: ``hparams.validation_size``,
    except that the default (5000) becomes a tenth of a split of at most 10,000 examples (a small or
    synthetic dataset), so the default flags work on it."""
    if hparams.validation_size == _DEFAULT_VALIDATION and train_split_size <= 2 * _DEFAULT_VALIDATION:
        return train_split_size // 10
    return hparams.validation_size


class Datasets:
    """Train / validation / test pipelines over one dataset held in memory.

    Use ``load(hparams, data_seed)`` to build one. ``train(start_step)`` is an endless stream of
    batches (pass ``steps_per_epoch`` to ``fit``); the evaluation pipelines are finite and unshuffled.
    """

    def __init__(self, arrays, hparams, data_seed=0):
        hparams.validate()
        self.hparams = hparams
        self.data_seed = int(data_seed)
        self.source = arrays.source
        self.classes = arrays.classes
        self.input_shape = arrays.input_shape

        x, y = arrays.x_train, arrays.y_train
        validation_size = validation_size_for(hparams, len(x))
        if validation_size >= len(x):
            raise ValueError(f"validation_size={validation_size} leaves no training data "
                             f"(the training split has {len(x)} examples): pass --validation_size below {len(x)}, "
                             f"e.g. --validation_size={max(len(x) // 4, 1) if len(x) > 1 else 0}.")
        order = np.random.default_rng(_SPLIT_SEED).permutation(len(x))
        val_idx, train_idx = order[:validation_size], np.sort(order[validation_size:])
        if hparams.train_subset > len(train_idx):
            raise ValueError(f"train_subset={hparams.train_subset} exceeds the {len(train_idx)} training examples "
                             f"left after carving validation_size={validation_size} from {len(x)}.")
        if hparams.train_subset:
            train_idx = train_idx[: hparams.train_subset]
        self.x_train, self.y_train = x[train_idx], y[train_idx]
        self.x_val, self.y_val = x[np.sort(val_idx)], y[np.sort(val_idx)]
        self.x_test, self.y_test = arrays.x_test, arrays.y_test
        if hparams.test_subset:
            self.x_test, self.y_test = self.x_test[: hparams.test_subset], self.y_test[: hparams.test_subset]
        self.train_size = len(self.x_train)
        self.steps_per_epoch = self.train_size // hparams.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f"batch_size={hparams.batch_size} exceeds the {self.train_size} training examples.")

        scale = 255.0 if self.x_train.dtype == np.uint8 else 1.0
        if hparams.normalize:
            as_float = self.x_train.astype(np.float32) / scale
            axes = tuple(range(as_float.ndim - 1))
            self._mean = as_float.mean(axis=axes)
            self._std = as_float.std(axis=axes) + 1e-7
        else:
            self._mean, self._std = np.zeros(self.input_shape[-1]), np.ones(self.input_shape[-1])
        self._scale = scale
        self._train_x_tensor = None

    def with_data_seed(self, data_seed):
        """The same splits and preprocessing, with another data-order / augmentation seed."""
        if int(data_seed) == self.data_seed:
            return self
        clone = copy.copy(self)
        clone.data_seed = int(data_seed)
        return clone

    # -- preprocessing -------------------------------------------------------------------------

    @property
    def normalization(self):
        """``(scale, mean, std)``: a model's input is ``(images / scale - mean) / std`` per channel, where
        ``images / scale`` lies in [0, 1] (``scale`` is 255 for uint8 data); ``mean`` and ``std`` come
        from the training split (zeros and ones without ``normalize``)."""
        return float(self._scale), self._mean.astype(np.float32), self._std.astype(np.float32)

    def _preprocess(self, images):
        images = tf.cast(images, tf.float32) / self._scale
        return (images - self._mean.astype(np.float32)) / self._std.astype(np.float32)

    def _augment(self, image, seed):
        shape = self.input_shape
        crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        padded = tf.pad(image, [[4, 4], [4, 4], [0, 0]])
        image = tf.image.stateless_random_crop(padded, shape, seed=crop_seed)
        if self.hparams.flip:
            image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
        return image

    # -- pipelines -----------------------------------------------------------------------------

    def _epoch(self, epoch, offset_batches):
        """The batches of one epoch, starting at batch ``offset_batches``."""
        batch = self.hparams.batch_size
        n_used = self.steps_per_epoch * batch
        seed = tf.stack([tf.cast(self.data_seed, tf.int64), tf.cast(epoch, tf.int64)])
        order = tf.argsort(tf.random.stateless_uniform([self.train_size], seed=seed))[:n_used]
        positions = tf.range(offset_batches * batch, n_used, dtype=tf.int64)
        ds = tf.data.Dataset.from_tensor_slices(positions)
        x, y = self._train_tensors()

        if not self.hparams.augment:  # gather whole batches at once: much cheaper than per example
            def batch_of(batch_positions):
                indices = tf.gather(order, batch_positions)
                return self._preprocess(tf.gather(x, indices)), tf.gather(y, indices)

            return ds.batch(batch).map(batch_of, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

        def example(position):
            index = tf.gather(order, position)
            image = self._augment(self._preprocess(tf.gather(x, index)), tf.stack([seed[0] * 7919 + seed[1], position]))
            return image, tf.gather(y, index)

        return ds.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(batch)

    def _train_tensors(self):
        if self._train_x_tensor is None:
            self._train_x_tensor = (tf.constant(self.x_train), tf.constant(self.y_train))
        return self._train_x_tensor

    def train(self, start_step=0):
        """An endless stream of training batches, beginning at global step ``start_step``."""
        start_epoch, offset = divmod(int(start_step), self.steps_per_epoch)
        first = self._epoch(start_epoch, offset)
        rest = tf.data.Dataset.range(start_epoch + 1, np.iinfo(np.int64).max).flat_map(
            lambda epoch: self._epoch(epoch, 0))
        return first.concatenate(rest).prefetch(tf.data.AUTOTUNE)

    def _finite(self, x, y, batch_size=None):
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size or self.hparams.batch_size)
        return ds.map(lambda images, labels: (self._preprocess(images), labels),
                      num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    def validation(self, batch_size=None):
        """The validation split (carved from training data), unshuffled, unaugmented."""
        if len(self.x_val) == 0:
            raise ValueError("This dataset has validation_size=0: there is no validation split.")
        return self._finite(self.x_val, self.y_val, batch_size)

    def test(self, batch_size=None):
        """The test split, unshuffled, unaugmented."""
        return self._finite(self.x_test, self.y_test, batch_size)

    def train_eval(self, batch_size=None, limit=None):
        """The training split for evaluation (unshuffled, unaugmented), optionally its first ``limit``."""
        x, y = (self.x_train, self.y_train) if not limit else (self.x_train[:limit], self.y_train[:limit])
        return self._finite(x, y, batch_size)

    def describe(self):
        """A one-line summary: source, sizes, shape, classes."""
        return (f"{self.hparams.dataset} from {self.source}: {self.train_size} train / {len(self.x_val)} "
                f"validation / {len(self.x_test)} test, shape {self.input_shape}, {self.classes} classes")


def load(hparams, data_seed=0, download=True):
    """Finds the dataset ``hparams.dataset`` and returns its ``Datasets``.

    Raises ``DatasetNotFoundError`` (listing every place tried) when no source has it.
    """
    hparams.validate()
    arrays = sources.find(hparams.dataset, data_dir=hparams.data_dir or None, download=download)
    return Datasets(arrays, hparams, data_seed=data_seed)
