"""``python -m experiments.layer_lottery`` from a clone: the same as ``keras-lottery layer_lottery`` (keras_lottery/experiments/layer_lottery.py)."""

from keras_lottery.experiments import launch, layer_lottery

main = layer_lottery.main  # what tests/experiments/bad_input_driver.py calls

if __name__ == "__main__":
    launch("layer_lottery")
