"""``python -m experiments.bench_tflite_size`` from a clone: the same as ``keras-lottery bench_tflite_size`` (keras_lottery/experiments/bench_tflite_size.py)."""

from keras_lottery.experiments import launch, bench_tflite_size

main = bench_tflite_size.main  # what tests/experiments/bad_input_driver.py calls

if __name__ == "__main__":
    launch("bench_tflite_size")
