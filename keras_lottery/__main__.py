"""``python -m keras_lottery <experiment> [flags]``: the same as the ``keras-lottery`` command."""

from keras_lottery.experiments import main

if __name__ == "__main__":
    main()
