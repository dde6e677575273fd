"""Distribution shift: a second test set of the same classes (CIFAR-10.1, CIFAR-10-C files, a local copy).

``load(spec, input_shape, classes)`` reads the test set through ``keras_lottery.data.find_test_set``
(a TFDS name, or a directory of t10k IDX files or a .npz) and checks that its images and labels fit
the models: the same image shape and labels within the dataset's classes. TFDS cannot download here
(no internet), so a TFDS name works only with a prepared TFDS directory (``data_dir``).
"""

import numpy as np

from keras_lottery import data


def load(spec, input_shape, classes, data_dir=None, download=True):
    """``(images, labels, source)`` of the shifted test set ``spec``.

    Raises ``DatasetNotFoundError`` when it cannot be had, ValueError when it does not fit the models.
    """
    images, labels, source = data.find_test_set(spec, data_dir=data_dir, download=download)
    if tuple(images.shape[1:]) != tuple(input_shape):
        raise ValueError(f"The shifted test set {spec!r} has images of shape {tuple(images.shape[1:])}; the models "
                         f"take {tuple(input_shape)}.")
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"The shifted test set {spec!r} has labels {int(labels.min())}..{int(labels.max())}; the "
                         f"models know {classes} classes.")
    return images, np.asarray(labels, np.int64), source
