r"""Step time of masked training against dense training and against TFMOT's prune_low_magnitude.

Times, in one process and on the same data, the dense Keras 3 model, an identical copy (the noise
floor), the masked model at --sparsity, the same with mask_forward=True, the TFMOT-style API (with a
turn every 100 steps, and 2:4), and on tf_keras the dense model and TFMOT's prune_low_magnitude
(--notfmot skips them); --compact adds the compact design alternative (LeNet-300-100 only);
--variants times only the variants it names (and their dense models). Prints a Markdown table of ms
per step and the median paired ratio of each variant to its framework's dense model (with
--processes > 1, also the mean over processes with its 95% confidence interval). The measurement is
``keras_lottery.benchmarks.masks.run`` (its docstring describes it). Usage::

    keras-lottery bench_masks --models=lenet_300_100 --processes=5
    keras-lottery bench_masks --models=resnet20
    keras-lottery bench_masks --models=lenet_300_100 --processes=5 --compact --notfmot
    keras-lottery bench_masks --models=lenet_300_100 --processes=24 --notfmot \
        --variants=dense_copy,masked,sparsity_api,m_by_n
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from absl import app, flags  # noqa: E402

from keras_lottery.benchmarks import masks  # noqa: E402

MODELS = flags.DEFINE_list("models", ["lenet_300_100", "resnet20"], "Models to benchmark.")
ROUNDS = flags.DEFINE_integer("rounds", None, "Timed rounds (default: 30 for LeNet-300-100, 8 for ResNet-20).")
STEPS = flags.DEFINE_integer("steps", None, "Training steps per round and model (default: 100 / 10).")
SPARSITY = flags.DEFINE_float("sparsity", 0.8, "Sparsity of the masked and TFMOT models.")
STEPS_PER_EXECUTION = flags.DEFINE_integer("steps_per_execution", 1, "Keras 3 steps_per_execution.")
JIT = flags.DEFINE_bool("jit_compile", False, "Compile the Keras 3 models with XLA.")
INPUT = flags.DEFINE_enum("input", "dataset", list(masks.INPUT_KINDS),
                          "dataset: fit on a cached, batched tf.data.Dataset (the step alone); numpy: "
                          "fit(x, y, batch_size) on in-memory arrays, as most users call it (adds Keras' "
                          "per-step input handling to every model's step).")
TFMOT = flags.DEFINE_bool("tfmot", True, "Also time TFMOT's prune_low_magnitude (tf_keras).")
COMPACT = flags.DEFINE_bool("compact", False, "Also time the compact design alternative (live weights only, "
                            "scattered into the kernel each step); LeNet-300-100 only.")
VARIANTS = flags.DEFINE_list("variants", None, "Variants to time (default: all): "
                             f"{', '.join(masks.KERAS3_VARIANTS + masks.TFMOT_VARIANTS)}. The dense model "
                             "each one is compared with is added; fewer variants make each round shorter.")
PROCESSES = flags.DEFINE_integer("processes", 1, "Repeat the whole measurement in this many fresh processes "
                                 "(the ratio then differs more between processes than between rounds).")


def main(argv):
    del argv
    try:
        masks.validate(MODELS.value, COMPACT.value, PROCESSES.value, INPUT.value, VARIANTS.value, TFMOT.value)
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    rows_by_process = masks.run(models=MODELS.value, rounds=ROUNDS.value, steps=STEPS.value, sparsity=SPARSITY.value,
                                steps_per_execution=STEPS_PER_EXECUTION.value, jit_compile=JIT.value,
                                input_kind=INPUT.value, tfmot=TFMOT.value, compact=COMPACT.value,
                                processes=PROCESSES.value, variants=VARIANTS.value)
    print("\n".join(masks.table(rows_by_process, INPUT.value, STEPS_PER_EXECUTION.value, JIT.value)))


if __name__ == "__main__":
    app.run(main)
