"""LeNet-300-100 under ``fit``: the plain mask with a no-op batch callback against the sparsity API with
``UpdatePruningStep``, each as a ratio to dense (median over interleaved rounds of 100 steps).

    python fit_callback_variants.py ROUNDS turns   # the API with turns every 100 steps, one turn, and 2:4
    python fit_callback_variants.py ROUNDS parts   # 2:4 with the whole callback, without on_epoch_end,
                                                   # and with a no-op batch hook
    python fit_callback_variants.py ROUNDS before  # the API (turns every 100 steps) and 2:4, each with the
                                                   # step counter and callback of commit b2a05b9 and of now
    python fit_callback_variants.py ROUNDS split   # the plain mask with and without a no-op callback, the
                                                   # API pruned once and trained without its callback, and
                                                   # the API with it

Run from the repository root (``before`` reads the old callback with ``git show``).
"""

import subprocess
import sys
import types

import keras
import numpy as np

from keras_lottery import models as zoo
from keras_lottery.benchmarks import masks as bm
from keras_lottery.masking import mask
from keras_lottery.pruning import LayerwiseMagnitude, prune
from keras_lottery.sparsity import ConstantSparsity, UpdatePruningStep, prune_low_magnitude
from keras_lottery.sparsity.wrapper import pruning_wrappers

BEFORE = "b2a05b9"  # the last commit with Keras' assign_add as the counter and a per-step schedule scan


class Noop(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        pass


class NoEpochEnd(UpdatePruningStep):
    def on_epoch_end(self, epoch, logs=None):
        pass


class NoBatch(UpdatePruningStep):
    def on_train_batch_begin(self, batch, logs=None):
        pass


def callback_at(commit):
    """``UpdatePruningStep`` as it was at ``commit`` (its module executed from ``git show``)."""
    path = "keras_lottery/sparsity/callbacks.py"
    source = subprocess.run(["git", "show", f"{commit}:{path}"], capture_output=True, text=True, check=True).stdout
    module = types.ModuleType(f"callbacks_at_{commit}")
    exec(compile(source, f"{commit}:{path}", "exec"), module.__dict__)
    return module.UpdatePruningStep


def with_keras_counter(model):
    """``model`` with each wrapper counting steps by Keras' ``Variable.assign_add``, as before (read, add,
    cast and assign in the compiled step, where the wrapper now uses one ``tf.Variable.assign_add``)."""
    for wrapper in pruning_wrappers(model):
        wrapper._count_step = lambda w=wrapper: w.pruning_step.assign_add(1)
    return model


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
    if which == "split":
        once = prune_low_magnitude(dense, pruning_schedule=ConstantSparsity(0.8, 0, frequency=100))
        for wrapper in pruning_wrappers(once):
            wrapper.prune_to(0.8)  # the masks the first turn would install; no turn after
        chosen.update({"masked": (masked, []), "api_no_callback": (once, []),
                       "api": (prune_low_magnitude(dense, pruning_schedule=ConstantSparsity(0.8, 0, frequency=100)),
                               [UpdatePruningStep()])})
        return chosen
    if which == "before":
        old = callback_at(BEFORE)

        def api():
            return prune_low_magnitude(dense, pruning_schedule=ConstantSparsity(0.8, 0, frequency=100))

        def mbn():
            return prune_low_magnitude(dense, sparsity_m_by_n=(2, 4))

        chosen.update({"api_before": (with_keras_counter(api()), [old()]), "api_now": (api(), [UpdatePruningStep()]),
                       "mbn_before": (with_keras_counter(mbn()), [old()]), "mbn_now": (mbn(), [UpdatePruningStep()])})
        return chosen
    chosen["mbn"] = (prune_low_magnitude(dense, sparsity_m_by_n=(2, 4)), [UpdatePruningStep()])
    if which == "parts":
        chosen.update({"mbn_no_epoch_end": (prune_low_magnitude(dense, sparsity_m_by_n=(2, 4)), [NoEpochEnd()]),
                       "mbn_noop_batch": (prune_low_magnitude(dense, sparsity_m_by_n=(2, 4)), [NoBatch()])})
    return chosen


NAME, INPUT_SHAPE, STEPS = "lenet_300_100", (28, 28, 1), 100

if __name__ == "__main__":
    rounds, which = int(sys.argv[1]), sys.argv[2]
    if which not in ("turns", "parts", "before", "split"):
        raise SystemExit(f"the second argument is 'turns', 'parts', 'before' or 'split'; got {which!r}")
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
