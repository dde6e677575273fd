"""Wall time of one pruning turn that changes no mask (``sparsity.wrapper.prune_layers`` on the three
layers of LeNet-300-100 at their installed 80% sparsity: the compiled check alone), with the check
compiled by XLA and as a plain graph; median and 10th / 90th percentiles over 300 calls.

    python docs/results/bench_masks/diagnostics/turn_cost.py
"""

import time

import numpy as np

from keras_lottery import models as zoo
from keras_lottery.sparsity import ConstantSparsity, prune_low_magnitude, wrapper

model = prune_low_magnitude(zoo.get("lenet_300_100", (28, 28, 1), 10, seed=0),
                            pruning_schedule=ConstantSparsity(0.8, begin_step=0, frequency=100))
model(np.zeros((1, 28, 28, 1), "float32"))
turn = [(layer, 0.8) for layer in wrapper.pruning_wrappers(model)]
wrapper.prune_layers(turn)  # installs the masks: later turns change nothing
for xla in (True, False, True):
    wrapper.XLA_CHECK = xla
    changed = wrapper.prune_layers(turn)  # compiles the check
    seconds = []
    for _ in range(300):
        start = time.perf_counter()
        wrapper.prune_layers(turn)
        seconds.append(time.perf_counter() - start)
    ms = np.array(seconds) * 1e3
    print(f"XLA_CHECK={xla}: changed {changed}; median {np.median(ms):.2f} ms "
          f"(p10 {np.percentile(ms, 10):.2f}, p90 {np.percentile(ms, 90):.2f})")
