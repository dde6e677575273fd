"""Shared test set-up: quiet TensorFlow, one CPU thread pool, and small shared fixtures.

Area-specific fixtures live in each test folder's own conftest.py.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts from a known global seed and a clear Keras session (no name clashes)."""
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)
