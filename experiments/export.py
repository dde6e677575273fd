"""``python -m experiments.export`` from a clone: the same as ``keras-lottery export`` (keras_lottery/experiments/export.py)."""

from keras_lottery.experiments import launch, export

main = export.main  # what tests/experiments/bad_input_driver.py calls

if __name__ == "__main__":
    launch("export")
