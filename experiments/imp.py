"""``python -m experiments.imp`` from a clone: the same as ``keras-lottery imp`` (keras_lottery/experiments/imp.py)."""

from keras_lottery.experiments import launch, imp

main = imp.main  # what tests/experiments/bad_input_driver.py calls

if __name__ == "__main__":
    launch("imp")
