"""Fixtures for data, run-directory and training tests: tiny synthetic datasets and hyper-parameters."""

import pytest

from keras_lottery import data, training


@pytest.fixture(scope="session")
def tiny_arrays():
    return data.synthetic((8, 8, 1), classes=4, train_size=320, seed=0)


@pytest.fixture
def tiny_datasets(tiny_arrays):
    hparams = data.DatasetHparams(dataset="synthetic", batch_size=32, validation_size=64)
    return data.Datasets(tiny_arrays, hparams, data_seed=5)


@pytest.fixture
def tiny_training():
    return training.TrainingHparams(optimizer="sgd", lr=0.05, momentum=0.9, steps="3ep", milestones="2ep")
