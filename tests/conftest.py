"""Shared test set-up and fixtures: quiet TensorFlow, no GPU, this checkout importable, a fresh Keras
state per test, and every fixture used by more than one test module (tiny models and data, the
lottery settings, the block-test models). Plain helper functions live in ``tests/helpers.py``
(``from tests.helpers import ...``); tests/distribute and tests/export keep the fixtures only they use
in their own conftest.py.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

# The repository root first: ``keras_lottery`` is this checkout's (not another editable install's), and
# ``tests.helpers`` is importable (``tests`` is a namespace package) however pytest is started.
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras_lottery as kl  # noqa: E402
from keras_lottery import data, lottery, models, training  # noqa: E402
from tests.helpers import tiny_arrays as _tiny_arrays, tiny_data_hparams  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts from a known global seed and a clear Keras session (no name clashes)."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(1234)
    yield


# -- masks and pruning: tiny models covering the prunable layer types --------------------------------
@pytest.fixture
def conv_model():
    """Functional model with Conv2D, DepthwiseConv2D, SeparableConv2D, Conv2DTranspose, BN and Dense."""
    inputs = keras.Input((8, 8, 3), name="x")
    y = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    y = keras.layers.BatchNormalization(name="bn")(y)
    y = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(y)
    y = keras.layers.SeparableConv2D(6, 3, padding="same", name="sep")(y)
    y = keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same", name="deconv")(y)
    y = keras.layers.GlobalAveragePooling2D(name="pool")(y)
    y = keras.layers.Dropout(0.1, name="drop")(y)
    outputs = keras.layers.Dense(5, name="predictions")(y)
    return keras.Model(inputs, outputs, name="conv_model")


@pytest.fixture
def mlp():
    """A small MLP (16 -> 32 -> 24 -> 4); output layer named ``predictions``."""
    inputs = keras.Input((16,), name="x")
    y = keras.layers.Dense(32, activation="relu", name="fc1")(inputs)
    y = keras.layers.Dense(24, activation="relu", name="fc2")(y)
    outputs = keras.layers.Dense(4, name="predictions")(y)
    return keras.Model(inputs, outputs, name="mlp")


@pytest.fixture
def mlp_data():
    rng = np.random.default_rng(1)
    return rng.normal(size=(32, 16)).astype("float32"), rng.integers(0, 4, 32)


# -- data, run directories, training: the tiny synthetic task -----------------------------------------
@pytest.fixture(scope="session")
def tiny_arrays():
    return _tiny_arrays(train_size=320)


@pytest.fixture
def tiny_datasets(tiny_arrays):
    return data.Datasets(tiny_arrays, tiny_data_hparams(train_size=320), data_seed=5)


@pytest.fixture
def tiny_training():
    return training.TrainingHparams(optimizer="sgd", lr=0.05, momentum=0.9, steps="3ep", milestones="2ep")


# -- lottery: LeNet on 8x8 synthetic data, a few steps per level (shared by callbacks and experiments) --
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


# -- blocks: session-scoped models (built once: TF start-up is slow on 2 cores) ------------------------
def _build(fn):
    keras.utils.set_random_seed(7)
    return fn()


@pytest.fixture(scope="session")
def resnet14():
    """Zoo CIFAR ResNet-14: 6 blocks, 4 removable (the first blocks of stages 2 and 3 project)."""
    return _build(lambda: kl.models.resnet_cifar(14, input_shape=(16, 16, 3), classes=10, width=8, seed=3))


@pytest.fixture(scope="session")
def resnet50():
    return _build(lambda: keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=10))


@pytest.fixture(scope="session")
def resnet50v2():
    return _build(lambda: keras.applications.ResNet50V2(weights=None, input_shape=(32, 32, 3), classes=10))


@pytest.fixture(scope="session")
def mobilenetv2():
    return _build(lambda: keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=10,
                                                         alpha=0.35))


@pytest.fixture(scope="session")
def images16():
    rng = np.random.default_rng(11)
    return rng.normal(size=(8, 16, 16, 3)).astype("float32"), rng.integers(0, 10, size=8)


@pytest.fixture(scope="session")
def images32():
    rng = np.random.default_rng(12)
    return rng.normal(size=(2, 32, 32, 3)).astype("float32")


@pytest.fixture(scope="session")
def zeroed_branch_copy():
    """``zeroed_branch_copy(model, block_names)``: see :func:`_zeroed_branch_copy`."""
    return _zeroed_branch_copy


def _zeroed_branch_copy(model, block_names):
    """A clone of ``model`` (same graph) whose listed branches output exactly zero.

    The last branch layer with weights gets zero weights (batch norm: gamma and beta; otherwise every
    weight); the weightless nodes after it (dropout, ``0.1 * h``, stochastic depth) keep zero at zero.
    Blocks of nested models are found through their path. Built with keras.models.clone_model,
    independently of keras_lottery.blocks.rewrite.
    """
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    blocks = {b.name: b for b in kl.blocks.find_blocks(model, warn=False)}
    for name in block_names:
        block = blocks[name]
        original, holder = model, clone
        for step in block.path:
            original, holder = original.get_layer(step), holder.get_layer(step)
        layers = {layer.name for layer in original.layers if layer.weights}
        last = next(n for n in reversed(block.branch_layers) if n in layers)
        layer = holder.get_layer(last)
        if isinstance(layer, keras.layers.BatchNormalization):
            targets = [layer.gamma, layer.beta]
        else:
            targets = list(layer.weights)
        for w in targets:
            w.assign(np.zeros(w.shape, w.dtype))
    return clone


# -- blocks: hand-written graphs with operation nodes, nesting, transformers ---------------------------
def _dense_branch(x, name, units=None):
    h = keras.layers.Dense(units or x.shape[-1], activation="relu", name=f"{name}_fc1")(x)
    return keras.layers.Dense(x.shape[-1], name=f"{name}_fc2")(h)


def _op_model():
    """Residuals written with Keras 3 operations, no Add layer anywhere.

    ``plain_add``: ``x + f(x)``; ``scaled``: ``x + 0.1 * f(x)``; ``ops_add``: ``keras.ops.add(x, f(x))``
    whose branch holds a hard-sigmoid gate ``relu6(h + 3) * (1 / 6)``; ``layer_add``: an Add layer.
    """
    inputs = keras.Input((6,), name="x")
    x = keras.layers.Dense(8, name="stem")(inputs)
    x = x + _dense_branch(x, "plain")
    x = x + 0.1 * _dense_branch(x, "scaled")
    h = _dense_branch(x, "gated")
    gate = keras.layers.ReLU(6.0, name="gated_relu6")(h + 3.0) * (1.0 / 6.0)
    x = keras.ops.add(x, h * gate)
    x = keras.layers.Add(name="layer_add")([x, _dense_branch(x, "last")])
    outputs = keras.layers.Dense(3, name="predictions")(x)
    return keras.Model(inputs, outputs, name="op_model")


@pytest.fixture
def op_model():
    """:func:`_op_model`: four residual blocks, three of them ``x + y`` operation nodes."""
    keras.utils.set_random_seed(21)
    return _op_model()


def _nested_model():
    """An outer model calling a functional sub-model ``encoder`` (two blocks, one scaled) then a block of its own."""
    inner_in = keras.Input((8,), name="encoder_in")
    y = inner_in + _dense_branch(inner_in, "enc1")
    y = keras.layers.Add(name="enc2_add")([y, 0.5 * _dense_branch(y, "enc2")])
    encoder = keras.Model(inner_in, y, name="encoder")
    inputs = keras.Input((6,), name="x")
    x = keras.layers.Dense(8, name="stem")(inputs)
    x = encoder(x)
    x = keras.layers.Add(name="top_add")([x, _dense_branch(x, "top")])
    outputs = keras.layers.Dense(3, name="predictions")(x)
    return keras.Model(inputs, outputs, name="nested")


@pytest.fixture
def nested_model():
    """:func:`_nested_model`: blocks ``encoder/add``, ``encoder/enc2_add`` and ``top_add``."""
    keras.utils.set_random_seed(22)
    return _nested_model()


def _encoder(norm_first, depth=2, tokens=5, dim=8):
    """A tiny transformer encoder: pre-norm (``x + Attn(LN(x))``) or post-norm (``LN(x + Attn(x))``)."""
    inputs = keras.Input((tokens, dim), name="tokens")
    x = inputs
    for b in range(1, depth + 1):
        h = keras.layers.LayerNormalization(name=f"b{b}_ln1")(x) if norm_first else x
        h = keras.layers.MultiHeadAttention(2, dim // 2, name=f"b{b}_attn")(h, h)
        x = x + h
        if not norm_first:
            x = keras.layers.LayerNormalization(name=f"b{b}_ln1")(x)
        h = keras.layers.LayerNormalization(name=f"b{b}_ln2")(x) if norm_first else x
        x = x + _dense_branch(h, f"b{b}_mlp", units=2 * dim)
        if not norm_first:
            x = keras.layers.LayerNormalization(name=f"b{b}_ln2")(x)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    outputs = keras.layers.Dense(3, name="predictions")(x)
    return keras.Model(inputs, outputs, name="pre_norm" if norm_first else "post_norm")


@pytest.fixture(params=[True, False], ids=["pre_norm", "post_norm"])
def encoder_model(request):
    """A two-block transformer encoder, pre-norm and post-norm: four blocks (attention and MLP residuals)."""
    keras.utils.set_random_seed(23)
    return _encoder(request.param)
