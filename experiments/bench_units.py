"""``python -m experiments.bench_units`` from a clone: the same as ``keras-lottery bench_units`` (keras_lottery/experiments/bench_units.py)."""

from keras_lottery.experiments import launch, bench_units

main = bench_units.main  # what tests/experiments/bad_input_driver.py calls

if __name__ == "__main__":
    launch("bench_units")
