"""Time spent inside ``UpdatePruningStep``'s hooks per epoch of 100 steps of LeNet-300-100 under ``fit``
(12 epochs, the first includes tracing).

    python docs/results/bench_masks/diagnostics/callback_time_in_fit.py [api|mbn]

``api``: ``ConstantSparsity(0.8, 0, frequency=100)`` (a turn every epoch); ``mbn``: 2:4 (one turn).
"""

import sys
import time

import keras

from keras_lottery import models as zoo
from keras_lottery.benchmarks import masks as bm
from keras_lottery.sparsity import ConstantSparsity, UpdatePruningStep, prune_low_magnitude


class Timed(UpdatePruningStep):
    def __init__(self):
        super().__init__()
        self.batch_seconds = self.epoch_end_seconds = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        start = time.perf_counter()
        super().on_train_batch_begin(batch, logs)
        self.batch_seconds += time.perf_counter() - start

    def on_epoch_end(self, epoch, logs=None):
        start = time.perf_counter()
        super().on_epoch_end(epoch, logs)
        self.epoch_end_seconds += time.perf_counter() - start


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "mbn"
    if which not in ("api", "mbn"):
        raise SystemExit(f"the argument is 'api' or 'mbn'; got {which!r}")
    options = ({"sparsity_m_by_n": (2, 4)} if which == "mbn"
               else {"pruning_schedule": ConstantSparsity(0.8, begin_step=0, frequency=100)})
    fit_data = bm._fit_data("lenet_300_100", 100, "dataset")
    model = prune_low_magnitude(zoo.get("lenet_300_100", (28, 28, 1), 10, seed=0), **options)
    model.compile(keras.optimizers.Adam(1.2e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    callback, timer = Timed(), bm._epoch_timer(keras.callbacks.Callback)
    for epoch in range(12):
        callback.batch_seconds = callback.epoch_end_seconds = 0.0
        model.fit(**fit_data, epochs=1, verbose=0, callbacks=[callback, timer])
        print(f"epoch {timer.times[-1] * 1e3:.1f} ms; batch hooks {callback.batch_seconds * 1e3:.2f} ms; "
              f"epoch_end {callback.epoch_end_seconds * 1e3:.2f} ms")
