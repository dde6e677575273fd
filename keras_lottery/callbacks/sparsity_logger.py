"""``SparsityLogger``: per-epoch density of a masked model, in the logs and optionally TensorBoard."""

import importlib.util
import json
import os

import keras
import tensorflow as tf

from keras_lottery.masking import read_mask

__all__ = ["SparsityLogger"]


class SparsityLogger(keras.callbacks.Callback):
    """Adds ``density`` (whole mask) and ``density/<weight path>`` to the epoch logs.

    With ``log_dir``, also appends them to ``<log_dir>/sparsity.jsonl`` (one JSON object per epoch,
    with its ``epoch`` and ``step``, the optimizer's iteration count) and, when the ``tensorboard`` package is installed, writes them as TensorBoard
    scalars (``tf.summary``) in ``log_dir``. The figures come from the installed masks; they are what
    ``kl.sparsity_report(model)`` reports.

    Args:
        log_dir: output directory, or ``None`` to only add the values to the logs.
        per_weight: also log each weight's density (default True).
    """

    def __init__(self, log_dir=None, per_weight=True):
        super().__init__()
        self.log_dir = None if log_dir is None else str(log_dir)
        self.per_weight = per_weight
        self._writer = None

    def _values(self):
        report = read_mask(self.model).report()
        values = {"density": report["global"]["density"]}
        if self.per_weight:
            values.update({f"density/{p}": r["density"] for p, r in report["layers"].items()})
        return values

    def on_epoch_end(self, epoch, logs=None):
        values = self._values()
        if logs is not None:
            logs.update(values)
        if self.log_dir is not None:
            os.makedirs(self.log_dir, exist_ok=True)
            with open(os.path.join(self.log_dir, "sparsity.jsonl"), "a") as f:
                step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
                f.write(json.dumps({"epoch": int(epoch), "step": step, **values}) + "\n")
            if importlib.util.find_spec("tensorboard") is None:
                return
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(self.log_dir)
            with self._writer.as_default():
                for name, value in values.items():
                    tf.summary.scalar(name, value, step=epoch)
            self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
