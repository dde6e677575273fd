"""What a one-off ``prune_to`` on every layer of a model costs, with and without compiling each layer's
mask check (ResNet-20's 22 pruned layers, 80% sparsity, fresh process, seconds for the whole loop).

    python docs/results/bench_masks/diagnostics/prune_each_layer_once.py first     # the library: eager first
    python docs/results/bench_masks/diagnostics/prune_each_layer_once.py compile   # compile on first use
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_lottery import compiled, models as zoo  # noqa: E402
from keras_lottery.sparsity import ConstantSparsity, prune_low_magnitude  # noqa: E402
from keras_lottery.sparsity.wrapper import pruning_wrappers  # noqa: E402

if sys.argv[1] == "compile":  # every set of variables compiled the first time it is seen
    original = compiled.for_variables
    compiled.for_variables = lambda tag, variables, make, first=None: original(tag, variables, make)

model = prune_low_magnitude(zoo.get("resnet20", (32, 32, 3), 10, seed=0), pruning_schedule=ConstantSparsity(0.8, 0))
wrappers = pruning_wrappers(model)
for rounds in ("first pass", "second pass"):
    start = time.perf_counter()
    for wrapper in wrappers:
        wrapper.prune_to(0.8)
    print(f"{sys.argv[1]}: {len(wrappers)} layers, {rounds}: {time.perf_counter() - start:.2f} s")
