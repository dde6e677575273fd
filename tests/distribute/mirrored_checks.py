"""Checks under ``MirroredStrategy`` on a CPU split into 2 logical devices; prints one JSON line.

Run as a fresh process (``python tests/distribute/mirrored_checks.py``): the CPU must be split before
TensorFlow initializes. The test in ``test_mirrored.py`` reads the JSON and asserts on it.
"""

import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from keras_lottery import distribute  # noqa: E402

distribute.split_cpu(2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_lottery import blocks, lottery, masking, models, training  # noqa: E402
from keras_lottery.callbacks.rewind import RewindPoint  # noqa: E402
from keras_lottery.masking import apply_mask  # noqa: E402
from keras_lottery.masks import Mask  # noqa: E402
from tests.helpers import dead_entries, tiny_datasets, tiny_lenet  # noqa: E402


def dead_max(model, mask, strategy):
    """The largest magnitude, on any replica, of ``model``'s masked weights at the positions ``mask`` removes."""
    return float(max(np.abs(values).max() for values in dead_entries(model, mask, strategy).values()))


def main():
    out = {}
    root = tempfile.mkdtemp(prefix="kl-mirrored-")
    mirrored = distribute.make_strategy("mirrored")
    default = distribute.make_strategy("default")
    out["replicas"] = mirrored.num_replicas_in_sync
    datasets = tiny_datasets()
    th = training.TrainingHparams(optimizer="adam", lr=2e-3, steps="8it")
    ph = {name: lottery.PruningHparams(levels=1, rate=0.5, rule="layerwise", layer_rates="predictions=0.25", rewind="2it",
                                       controls=controls)
          for name, controls in (("default", ""), ("mirrored", "reinit,random"))}

    build = tiny_lenet

    # One IMP level with both controls, on one device and on two replicas.
    for name, strategy in (("default", default), ("mirrored", mirrored)):
        with distribute.execution(strategy):
            lottery.imp.run(os.path.join(root, name), build, datasets, th, ph[name], log=None)
    one, two = (Mask.load(os.path.join(root, name, "level_1", "mask.npz")) for name in ("default", "mirrored"))
    out["imp"] = {"differ": sum(int(np.count_nonzero(one[path] != two[path])) for path in one),
                  "size": int(sum(one[path].size for path in one)), "density": [one.density, two.density],
                  "kinds": [(row["level"], row["kind"]) for row in lottery.imp.results(os.path.join(root, "mirrored"))]}
    with mirrored.scope():
        ticket = keras.saving.load_model(os.path.join(root, "mirrored", "level_1", "model.keras"))
        level_mask = Mask.load(os.path.join(root, "mirrored", "level_1", "mask.npz"))
        out["imp_dead_max"] = dead_max(ticket, level_mask, mirrored)
    accuracy = {name: next(row["test_accuracy"] for row in lottery.imp.results(os.path.join(root, name))
                           if (row["level"], row["kind"]) == (1, "ticket")) for name in ("default", "mirrored")}
    out["imp_accuracy"] = accuracy

    # Mixed precision on two replicas (loss scaling, float16 compute), and with XLA on one device:
    # masked weights stay exactly 0, and the test loss is that of float32 training on one device.
    out["mixed"] = {}
    for name, strategy, mixed, jit in (("float32", default, False, None), ("mirrored", mirrored, True, None),
                                       ("default_xla", default, True, True)):
        with distribute.execution(strategy, mixed_precision=mixed, jit_compile=jit):
            model = masking.mask(build(0))
            apply_mask(model, level_mask)
            trained, metrics = training.fit(model, datasets, th, os.path.join(root, "mixed_" + name), end_step=4,
                                            eval_every=4, verbose=0)
            out["mixed"][name] = {"optimizer": type(trained.optimizer).__name__, "jit": trained.jit_compile,
                                  "compute_dtype": trained.layers[-1].compute_dtype,
                                  "variable_dtype": trained.layers[-1].variable_dtype,
                                  "dead_max": dead_max(trained, level_mask, strategy),
                                  "test_loss": float(metrics["test_loss"])}
    out["policy_after"] = keras.config.dtype_policy().name
    try:
        with distribute.execution(mirrored, jit_compile=True):
            pass
        out["jit_mirrored_error"] = ""
    except ValueError as error:
        out["jit_mirrored_error"] = str(error)

    # The stability analysis from a rewind point, inside the strategy's scope.
    with distribute.execution(mirrored):
        start = masking.mask(build(0))
        apply_mask(start, level_mask)
        RewindPoint.load(os.path.join(root, "mirrored", "rewind.npz")).restore_weights(start)
        apply_mask(start, level_mask)
        result = lottery.instability(start, datasets, th, start_step=2, data_seeds=(1, 1), points=3, train_limit=64,
                                     directory=os.path.join(root, "stability"))
        out["stability_same_seed"] = [result.train_instability, result.test_instability]

    # Block scoring and removal in the scope give what they give on one device.
    batches = list(datasets.train(0).take(2))
    scored = {}
    for name, strategy in (("default", default), ("mirrored", mirrored)):
        with distribute.execution(strategy):
            net = models.get("resnet8", (8, 8, 1), 4, seed=0)
            scores = {c: blocks.score(net, batches, criterion=c, seed=0) for c in ("grasp", "l1")}
            ticket = blocks.remove(net, blocks.lowest(scores["grasp"], 1))
            scored[name] = (scores, np.asarray(ticket(batches[0][0], training=False)), len(ticket.layers) < len(net.layers))
    out["blocks"] = {"relative_diff": {c: max(abs(scored["default"][0][c][b] - scored["mirrored"][0][c][b])
                                              for b in scored["default"][0][c])
                                          / max(abs(v) for v in scored["default"][0][c].values())
                                          for c in ("grasp", "l1")},
                     "same_removed": blocks.lowest(scored["default"][0]["grasp"], 1)
                     == blocks.lowest(scored["mirrored"][0]["grasp"], 1),
                     "outputs_max_diff": float(np.abs(scored["default"][1] - scored["mirrored"][1]).max()),
                     "smaller": scored["mirrored"][2]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
