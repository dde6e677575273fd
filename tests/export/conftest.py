"""Export fixtures: one weight ticket and one layer ticket, exported and served once per session.

Exports and fresh serving processes cost seconds each on a shared 2-core machine, so the expensive
steps are session-scoped and the tests read their results. Test modules take the small tickets
below as fixtures; they never import one another.
"""

import numpy as np
import pytest


def _masked_lenet():
    """A tiny LeNet and its weight ticket: masked, then 80% of the hidden kernels pruned by magnitude.

    Returns ``(dense, masked, mask)``; ``mask`` is the ``Mask`` installed in ``masked``.
    """
    import keras_lottery as kl
    from keras_lottery.masks import Mask

    dense = kl.models.lenet_300_100(input_shape=(6, 6, 1), classes=4, seed=3)
    masked = kl.mask(dense)
    kl.prune(masked, kl.GlobalMagnitude(rate=0.8, exclude=["predictions"]))
    return dense, masked, Mask.from_model(masked)


def _layer_ticket():
    """A tiny ResNet-14 and the same network with one removable residual block removed."""
    import keras_lottery as kl
    from keras_lottery import blocks

    dense = kl.models.resnet_cifar(14, input_shape=(8, 8, 3), classes=4, width=4, seed=5)
    removable = blocks.find_blocks(dense, warn=False).removable
    ticket = blocks.remove(dense, [removable[0].name])
    return dense, ticket, removable[0].name


@pytest.fixture
def masked_lenet():
    """A fresh ``(dense, masked, mask)``: a tiny LeNet and its 80%-pruned weight ticket."""
    return _masked_lenet()


@pytest.fixture(scope="session")
def weight_export(tmp_path_factory):
    """The masked LeNet exported with its dense model, plus what a Keras-free process served."""
    import keras

    from keras_lottery import export

    keras.utils.set_random_seed(11)
    dense, masked, mask = _masked_lenet()
    before = [w.copy() for w in masked.get_weights()]
    base = tmp_path_factory.mktemp("weight") / "lenet_ticket"
    result = export.for_serving(masked, base, dense_model=dense, accuracy={"test": 0.75},
                                hparams={"levels": 3, "rewind": "500it"}, run_dir="runs/imp_lenet",
                                require_sparse=True)
    x = np.random.default_rng(0).normal(size=(5, 6, 6, 1)).astype("float32")
    served, diffs = export.verify(result.path, masked, x)
    return dict(dense=dense, masked=masked, mask=mask, before=before, result=result, base=base, x=x,
                served=served, diffs=diffs)


@pytest.fixture(scope="session")
def layer_export(tmp_path_factory):
    """The ResNet layer ticket exported with its dense model, plus what a Keras-free process served."""
    import keras

    from keras_lottery import export

    keras.utils.set_random_seed(12)
    dense, ticket, removed = _layer_ticket()
    base = tmp_path_factory.mktemp("layer") / "resnet_ticket"
    result = export.for_serving(ticket, base, dense_model=dense)
    x = np.random.default_rng(1).normal(size=(3, 8, 8, 3)).astype("float32")
    served, diffs = export.verify(result.path, ticket, x)
    return dict(dense=dense, ticket=ticket, removed=removed, result=result, base=base, x=x,
                served=served, diffs=diffs)


@pytest.fixture
def tiny_dense():
    """A two-Dense-layer functional model (fast to export)."""
    import keras

    inputs = keras.Input(shape=(3,), name="features")
    hidden = keras.layers.Dense(4, activation="relu", name="hidden")(inputs)
    outputs = keras.layers.Dense(2, name="predictions")(hidden)
    return keras.Model(inputs, outputs, name="tiny")
