"""``python -m experiments.bench_blocks`` from a clone: the same as ``keras-lottery bench_blocks`` (keras_lottery/experiments/bench_blocks.py)."""

from keras_lottery.experiments import launch, bench_blocks

main = bench_blocks.main  # what tests/experiments/bad_input_driver.py calls

if __name__ == "__main__":
    launch("bench_blocks")
