"""Data: TFDS datasets by name, local IDX/NumPy files, Debian's Fashion-MNIST, synthetic data.

``load(DatasetHparams(...), data_seed)`` returns ``Datasets`` with seeded, resumable training
streams and deterministic validation and test pipelines.
"""

from keras_lottery.data.pipeline import Datasets, DatasetHparams, load
from keras_lottery.data.sources import Arrays, DatasetNotFoundError, find, find_test_set, read_idx, synthetic

__all__ = ["Arrays", "DatasetHparams", "DatasetNotFoundError", "Datasets", "find", "find_test_set", "load", "read_idx", "synthetic"]
