"""``python -m experiments.train`` from a clone: the same as ``keras-lottery train`` (keras_lottery/experiments/train.py)."""

from keras_lottery.experiments import launch, train

main = train.main  # what tests/experiments/bad_input_driver.py calls

if __name__ == "__main__":
    launch("train")
