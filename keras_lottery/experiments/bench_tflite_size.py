r"""TFMOT's "Pruning in Keras" figures on Keras 3: accuracy and gzipped TFLite size, dense vs pruned.

LeNet-300-100 on IDX files (default: Fashion-MNIST in /usr/share/datasets/fashion-mnist), trained,
pruned to --sparsity while fine-tuning, stripped and converted; one row per seed, then mean and
standard deviation. ``keras_lottery.benchmarks.tflite_size`` describes the measurement. Usage::

    keras-lottery bench_tflite_size --seeds=0,1,2
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from absl import app, flags  # noqa: E402

from keras_lottery.benchmarks import tflite_size  # noqa: E402
from keras_lottery.data import sources  # noqa: E402

DATA = flags.DEFINE_string("data_dir", "/usr/share/datasets/fashion-mnist", "Directory of IDX (.gz) files.")
SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds, one row each.")
SPARSITY = flags.DEFINE_float("sparsity", 0.8, "Final sparsity of the pruned model.")


def main(argv):
    del argv
    arrays = sources.from_idx_dir(DATA.value)
    if arrays is None:
        raise SystemExit(f"No IDX train/t10k files in {DATA.value!r}.")
    rows = [tflite_size.measure(arrays, int(seed), sparsity=SPARSITY.value) for seed in SEEDS.value]
    print(tflite_size.table(rows))


if __name__ == "__main__":
    app.run(main)
