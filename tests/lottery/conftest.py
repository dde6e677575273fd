"""Fixtures for the lottery tests: LeNet on 8x8 synthetic data, a few steps per level.

Test modules get everything from here as fixtures (none imports another test module). The
immutable helpers are session-scoped, so module-scoped fixtures (a shared IMP run) can use them.
"""

import pytest

from keras_lottery import data, lottery, models, training

# The same data, model and settings as the binary gets from BINARY_FLAGS, so runs compare across both.
DATASET = "synthetic:8x8x1:4:256"
BINARY_FLAGS = ("--dataset=" + DATASET, "--batch_size=32", "--validation_size=64", "--optimizer=adam", "--lr=0.002",
                "--steps=12it", "--levels=2", "--rate=0.5", "--rule=layerwise", "--layer_rates=predictions=0.25",
                "--rewind=4it", "--controls=reinit,random", "--emissions=false", "--plot=false")


def _load_datasets():
    hparams = data.DatasetHparams(dataset=DATASET, batch_size=32, validation_size=64)
    return data.load(hparams, data_seed=0)  # 192 training examples: 6 steps per epoch


def _build_model(seed):
    return models.lenet_300_100((8, 8, 1), classes=4, seed=seed)


def _pruning(**overrides):
    base = dict(levels=2, rate=0.5, rule="layerwise", layer_rates="predictions=0.25", rewind="4it",
                controls="reinit,random")
    base.update(overrides)
    return lottery.PruningHparams(**base)


@pytest.fixture(scope="session")
def dataset_name():
    """The synthetic dataset's name (``--dataset``): 4 classes of 8x8x1 images, 256 examples."""
    return DATASET


@pytest.fixture(scope="session")
def binary_flags():
    """``experiments.imp`` flags for the run the ``pruning_hparams()`` defaults describe (no plot, no emissions)."""
    return list(BINARY_FLAGS)


@pytest.fixture(scope="session")
def make_datasets():
    """A function loading the synthetic ``Datasets`` (data seed 0, 6 steps per epoch)."""
    return _load_datasets


@pytest.fixture
def datasets(make_datasets):
    return make_datasets()


@pytest.fixture(scope="session")
def adam():
    """Adam at lr 2e-3 for T = 12 iterations (two epochs)."""
    return training.TrainingHparams(optimizer="adam", lr=2e-3, steps="12it")


@pytest.fixture(scope="session")
def build():
    """``seed -> LeNet-300-100`` for 8x8x1 inputs and 4 classes (plain, unmasked; no batch normalization)."""
    return _build_model


@pytest.fixture(scope="session")
def pruning_hparams():
    """``**overrides -> PruningHparams``: 2 layerwise levels, rate 0.5 (predictions 0.25), k = 4 it, both controls."""
    return _pruning
