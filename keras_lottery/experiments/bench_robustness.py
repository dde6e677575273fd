"""Throughput of the robustness evaluation on this machine: the corruption suite, classifying it, PGD.

    keras-lottery bench_robustness --images=2000 --classify_images=10000 --pgd_images=256

Generates every corruption that applies (severities 1..5) for the first --images Fashion-MNIST test
images (from /usr/share/datasets/fashion-mnist, not cached), classifies --classify_images corrupted
images with an untrained ResNet-20 the way the robustness experiment does, and times PGD-10 on it
for --pgd_images images (neither cost depends on the weights). Prints JSON: seconds and images per
second per corruption, the suite's total, and the model's rates.
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

from keras_lottery import data, models  # noqa: E402
from keras_lottery.benchmarks import robustness as bench  # noqa: E402
from keras_lottery.robustness import corruptions  # noqa: E402

IMAGES = flags.DEFINE_integer("images", 2000, "Test images corrupted (0: skip the corruption timing).")
NAMES = flags.DEFINE_list("corruptions", [], "Corruptions timed (empty: every one that applies).")
CLASSIFY = flags.DEFINE_integer("classify_images", 10000, "Corrupted images classified (0: skip).")
PGD_IMAGES = flags.DEFINE_integer("pgd_images", 256, "Images attacked with PGD (0: skip).")
STEPS = flags.DEFINE_integer("steps", 10, "PGD steps.")
MODEL = flags.DEFINE_string("model", "resnet20", "Zoo model classifying and attacked.")


def main(argv):
    del argv
    datasets = data.load(data.DatasetHparams(dataset="fashion_mnist"))
    out = {"source": datasets.source}
    if IMAGES.value:
        names = NAMES.value or corruptions.names(datasets.input_shape[-1])
        for name in names:
            corruptions.check(name, channels=datasets.input_shape[-1])
        times = bench.corruption_times(datasets.x_test[:IMAGES.value], names)
        total = sum(times.values())
        out.update(images=IMAGES.value, corruption_seconds=times,
                   corruption_images_per_second=bench.images_per_second(times, IMAGES.value),
                   total_seconds=total, suite_images_per_second=5 * len(names) * IMAGES.value / total)
    model = models.get(MODEL.value, datasets.input_shape, datasets.classes, seed=0) if CLASSIFY.value or \
        PGD_IMAGES.value else None
    out.update(model=MODEL.value)
    if CLASSIFY.value:
        images = corruptions.corrupt(datasets.x_test[:CLASSIFY.value], "gaussian_noise", 3)
        out.update(classify_images=CLASSIFY.value,
                   classify_images_per_second=bench.classify_rate(model, images, datasets.normalization))
    if PGD_IMAGES.value:
        scale = datasets.normalization[0]
        pixels = (datasets.x_test[:PGD_IMAGES.value] / scale).astype("float32")
        out.update(pgd_steps=STEPS.value, pgd_images=PGD_IMAGES.value,
                   pgd_images_per_second=bench.pgd_rate(model, pixels, datasets.y_test[:PGD_IMAGES.value],
                                                        datasets.normalization, steps=STEPS.value))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    app.run(main)
