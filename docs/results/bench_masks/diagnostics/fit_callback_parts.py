import sys, time
import numpy as np, keras
from keras_lottery.benchmarks import masks as bm
from keras_lottery import models as zoo
from keras_lottery.masking import mask
from keras_lottery.pruning import prune, LayerwiseMagnitude
from keras_lottery.sparsity import ConstantSparsity, UpdatePruningStep, prune_low_magnitude
name = "lenet_300_100"; steps, rounds = 100, int(sys.argv[1])
fit_data = bm._fit_data(name, steps, "dataset")
input_shape = (28, 28, 1)
dense = zoo.get(name, input_shape, 10, seed=0)
class Noop(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None): pass
class Timer(keras.callbacks.Callback):
    def __init__(self): super().__init__(); self.times=[]
    def on_epoch_begin(self, e, logs=None): self.t=time.perf_counter()
    def on_epoch_end(self, e, logs=None): self.times.append(time.perf_counter()-self.t)
masked = mask(dense); prune(masked, LayerwiseMagnitude(density=0.2))
class NoEpochEnd(UpdatePruningStep):
    def on_epoch_end(self, epoch, logs=None): pass
class NoBatch(UpdatePruningStep):
    def on_train_batch_begin(self, batch, logs=None): pass
variants = {"dense": (zoo.get(name, input_shape, 10, seed=0), []), "masked_noopcb": (masked, [Noop()]),
            "mbn": (prune_low_magnitude(dense, sparsity_m_by_n=(2, 4)), [UpdatePruningStep()]),
            "mbn_no_epoch_end": (prune_low_magnitude(dense, sparsity_m_by_n=(2, 4)), [NoEpochEnd()]),
            "mbn_noop_batch": (prune_low_magnitude(dense, sparsity_m_by_n=(2, 4)), [NoBatch()])}
runs = {}
for label, (m, cbs) in variants.items():
    m.compile(keras.optimizers.Adam(1.2e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    t = Timer(); runs[label] = (m, cbs + [t], t)
for r in range(rounds + 1):
    order = list(runs) if r % 2 == 0 else list(reversed(runs))
    for label in order:
        m, cbs, t = runs[label]
        m.fit(**fit_data, epochs=1, verbose=0, shuffle=False, callbacks=cbs)
base = np.array(runs["dense"][2].times[1:])
print(" | ".join(f"{label} {np.median(np.array(t.times[1:])/base):.3f}" for label, (_, _, t) in runs.items()))
