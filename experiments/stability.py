"""``python -m experiments.stability`` from a clone: the same as ``keras-lottery stability`` (keras_lottery/experiments/stability.py)."""

from keras_lottery.experiments import launch, stability

main = stability.main  # what tests/experiments/bad_input_driver.py calls

if __name__ == "__main__":
    launch("stability")
