"""Fixtures for the lottery tests: LeNet on 8x8 synthetic data, a few steps per level."""

import pytest

from keras_lottery import data, lottery, models, training


# The same data, model and settings as the binary gets from BINARY_FLAGS, so runs compare across both.
DATASET = "synthetic:8x8x1:4:256"
BINARY_FLAGS = ["--dataset=" + DATASET, "--batch_size=32", "--validation_size=64", "--optimizer=adam", "--lr=0.002",
                "--steps=12it", "--levels=2", "--rate=0.5", "--rule=layerwise", "--layer_rates=predictions=0.25",
                "--rewind=4it", "--controls=reinit,random", "--emissions=false", "--plot=false"]


def load_datasets():
    hparams = data.DatasetHparams(dataset=DATASET, batch_size=32, validation_size=64)
    return data.load(hparams, data_seed=0)  # 192 training examples: 6 steps per epoch


def adam_hparams():
    return training.TrainingHparams(optimizer="adam", lr=2e-3, steps="12it")


@pytest.fixture
def datasets():
    return load_datasets()


@pytest.fixture
def adam():
    return adam_hparams()


def build_model(seed):
    return models.lenet_300_100((8, 8, 1), classes=4, seed=seed)


@pytest.fixture
def build():
    return build_model


def pruning(**overrides):
    base = dict(levels=2, rate=0.5, rule="layerwise", layer_rates="predictions=0.25", rewind="4it",
                controls="reinit,random")
    base.update(overrides)
    return lottery.PruningHparams(**base)
