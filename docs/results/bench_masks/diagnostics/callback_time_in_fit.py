import time, numpy as np, keras
from keras_lottery import models as zoo
from keras_lottery.benchmarks import masks as bm
from keras_lottery.sparsity import ConstantSparsity, UpdatePruningStep, prune_low_magnitude
fit_data = bm._fit_data("lenet_300_100", 100, "dataset")
m = prune_low_magnitude(zoo.get("lenet_300_100", (28,28,1), 10, seed=0), sparsity_m_by_n=(2, 4))
m.compile(keras.optimizers.Adam(1.2e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
class Timed(UpdatePruningStep):
    def __init__(self): super().__init__(); self.tb = 0; self.te = 0
    def on_train_batch_begin(self, batch, logs=None):
        t = time.perf_counter(); super().on_train_batch_begin(batch, logs); self.tb += time.perf_counter() - t
    def on_epoch_end(self, epoch, logs=None):
        t = time.perf_counter(); super().on_epoch_end(epoch, logs); self.te += time.perf_counter() - t
cb = Timed()
class Timer(keras.callbacks.Callback):
    def on_epoch_begin(self, e, logs=None): self.t=time.perf_counter()
    def on_epoch_end(self, e, logs=None): self.dt = time.perf_counter()-self.t
tm = Timer()
for epoch in range(12):
    cb.tb = cb.te = 0
    m.fit(**fit_data, epochs=1, verbose=0, callbacks=[cb, tm])
    print(f"epoch {tm.dt*1e3:.1f} ms; batch hooks {cb.tb*1e3:.2f} ms; epoch_end {cb.te*1e3:.2f} ms")
