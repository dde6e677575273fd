import sys, time
import numpy as np, keras, tensorflow as tf
from keras_lottery.benchmarks import masks as bm
from keras_lottery import models as zoo
from keras_lottery.masking import mask
from keras_lottery.pruning import prune, LayerwiseMagnitude
from keras_lottery.sparsity import prune_low_magnitude
from keras_lottery.sparsity.wrapper import PruneLowMagnitude
name = "lenet_300_100"; steps, rounds = 200, int(sys.argv[1])
ds = bm._fit_data(name, 100, "dataset")["x"].repeat()
input_shape = (28, 28, 1)
dense = zoo.get(name, input_shape, 10, seed=0)
masked = mask(dense); prune(masked, LayerwiseMagnitude(density=0.5))
def api(count):
    m = prune_low_magnitude(dense, sparsity_m_by_n=(2, 4)); m.build((None,) + input_shape)
    for w in m.layers:
        if isinstance(w, PruneLowMagnitude):
            w.prune_to(0.5)
            if not count:
                w.call = (lambda w: (lambda inputs, training=None, **kw: super(PruneLowMagnitude, w).call(inputs, training=training, **kw)))(w)
    return m
variants = {"dense": zoo.get(name, input_shape, 10, seed=0), "masked": masked, "api_counter": api(True), "api_nocounter": api(False)}
fns = {}
for label, m in variants.items():
    m.compile(keras.optimizers.Adam(1.2e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    m.make_train_function(); f = m.train_function; it = iter(ds)
    f(it)
    fns[label] = (f, it)
times = {k: [] for k in fns}
for r in range(rounds):
    order = list(fns) if r % 2 == 0 else list(reversed(fns))
    for label in order:
        f, it = fns[label]
        t = time.perf_counter()
        for _ in range(steps): f(it)
        times[label].append(time.perf_counter() - t)
base = np.array(times["dense"])
print(" | ".join(f"{k} {np.median(np.array(v)/base):.3f} ({np.median(v)/steps*1e3:.2f} ms)" for k, v in times.items()))
