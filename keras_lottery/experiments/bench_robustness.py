"""Throughput of the robustness evaluation on this machine: the corruption suite and PGD.

    keras-lottery bench_robustness --images=10000 --pgd_images=512

Generates every corruption that applies (severities 1..5) for the first --images Fashion-MNIST test
images (from /usr/share/datasets/fashion-mnist, not cached), and times PGD-10 on an untrained
ResNet-20 (the attack's cost does not depend on the weights) for --pgd_images images. Prints JSON.
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

from keras_lottery import data, models  # noqa: E402
from keras_lottery.benchmarks import robustness as bench  # noqa: E402
from keras_lottery.robustness import corruptions  # noqa: E402

IMAGES = flags.DEFINE_integer("images", 10000, "Test images corrupted (0: skip the corruption timing).")
PGD_IMAGES = flags.DEFINE_integer("pgd_images", 512, "Images attacked with PGD (0: skip).")
STEPS = flags.DEFINE_integer("steps", 10, "PGD steps.")
MODEL = flags.DEFINE_string("model", "resnet20", "Zoo model attacked.")


def main(argv):
    del argv
    datasets = data.load(data.DatasetHparams(dataset="fashion_mnist"))
    out = {"source": datasets.source}
    if IMAGES.value:
        times = bench.corruption_times(datasets.x_test[:IMAGES.value], corruptions.names(datasets.input_shape[-1]))
        out.update(images=IMAGES.value, corruption_seconds=times, total_seconds=sum(times.values()))
    if PGD_IMAGES.value:
        model = models.get(MODEL.value, datasets.input_shape, datasets.classes, seed=0)
        scale = datasets.normalization[0]
        pixels = (datasets.x_test[:PGD_IMAGES.value] / scale).astype("float32")
        out.update(model=MODEL.value, pgd_steps=STEPS.value, pgd_images=PGD_IMAGES.value,
                   pgd_images_per_second=bench.pgd_rate(model, pixels, datasets.y_test[:PGD_IMAGES.value],
                                                        datasets.normalization, steps=STEPS.value))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    app.run(main)
