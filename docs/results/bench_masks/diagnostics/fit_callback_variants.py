"""LeNet-300-100 under ``fit``: the plain mask with a no-op batch callback against the sparsity API with
``UpdatePruningStep``, each as a ratio to dense (median over interleaved rounds of 100 steps).

    python fit_callback_variants.py ROUNDS turns   # the API with turns every 100 steps, one turn, and 2:4
    python fit_callback_variants.py ROUNDS parts   # 2:4 with the whole callback, without on_epoch_end,
                                                   # and with a no-op batch hook
"""

import sys

import keras
import numpy as np

from keras_lottery import models as zoo
from keras_lottery.benchmarks import masks as bm
from keras_lottery.masking import mask
from keras_lottery.pruning import LayerwiseMagnitude, prune
from keras_lottery.sparsity import ConstantSparsity, UpdatePruningStep, prune_low_magnitude


class Noop(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        pass


class NoEpochEnd(UpdatePruningStep):
    def on_epoch_end(self, epoch, logs=None):
        pass


class NoBatch(UpdatePruningStep):
    def on_train_batch_begin(self, batch, logs=None):
        pass


def variants(which, dense):
    """``{label: (model, callbacks)}`` of the chosen set (``dense`` and the plain mask in both)."""
    masked = mask(dense)
    prune(masked, LayerwiseMagnitude(density=0.2))
    chosen = {"dense": (zoo.get(NAME, INPUT_SHAPE, 10, seed=0), []), "masked_noopcb": (masked, [Noop()])}
    if which == "turns":
        chosen.update({
            "api_turns": (prune_low_magnitude(dense, pruning_schedule=ConstantSparsity(0.8, 0, frequency=100)),
                          [UpdatePruningStep()]),
            "api_one_turn": (prune_low_magnitude(dense, pruning_schedule=ConstantSparsity(0.8, 0, end_step=1)),
                             [UpdatePruningStep()])})
    chosen["mbn"] = (prune_low_magnitude(dense, sparsity_m_by_n=(2, 4)), [UpdatePruningStep()])
    if which == "parts":
        chosen.update({"mbn_no_epoch_end": (prune_low_magnitude(dense, sparsity_m_by_n=(2, 4)), [NoEpochEnd()]),
                       "mbn_noop_batch": (prune_low_magnitude(dense, sparsity_m_by_n=(2, 4)), [NoBatch()])})
    return chosen


NAME, INPUT_SHAPE, STEPS = "lenet_300_100", (28, 28, 1), 100

if __name__ == "__main__":
    rounds, which = int(sys.argv[1]), sys.argv[2]
    if which not in ("turns", "parts"):
        raise SystemExit(f"the second argument is 'turns' or 'parts'; got {which!r}")
    fit_data = bm._fit_data(NAME, STEPS, "dataset")
    runs = {}
    for label, (model, callbacks) in variants(which, zoo.get(NAME, INPUT_SHAPE, 10, seed=0)).items():
        model.compile(keras.optimizers.Adam(1.2e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        timer = bm._epoch_timer(keras.callbacks.Callback)  # the mask benchmark's epoch timer
        runs[label] = (model, callbacks + [timer], timer)
    for r in range(rounds + 1):  # round 0 traces and is dropped
        for label in (list(runs) if r % 2 == 0 else list(reversed(runs))):
            model, callbacks, _ = runs[label]
            model.fit(**fit_data, epochs=1, verbose=0, shuffle=False, callbacks=callbacks)
    base = np.array(runs["dense"][2].times[1:])
    print(" | ".join(f"{label} {np.median(np.array(t.times[1:]) / base):.3f}" for label, (_, _, t) in runs.items()))
