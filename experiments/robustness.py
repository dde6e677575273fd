"""``python -m experiments.robustness`` from a clone: the same as ``keras-lottery robustness`` (keras_lottery/experiments/robustness.py)."""

from keras_lottery.experiments import launch, robustness

main = robustness.main  # what tests/experiments/bad_input_driver.py calls

if __name__ == "__main__":
    launch("robustness")
