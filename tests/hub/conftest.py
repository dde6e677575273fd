"""Tiny KerasHub models built from constructor arguments (no preset, nothing downloaded), with a batch each."""

import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")

_TEXT = dict(vocabulary_size=40, num_layers=2, hidden_dim=16, intermediate_dim=32)


def _text_batch(batch=4, length=8, segments=False):
    rng = np.random.default_rng(0)
    x = {"token_ids": rng.integers(1, 40, (batch, length)).astype("int32"),
         "padding_mask": np.ones((batch, length), "int32")}
    if segments:  # BERT's third input
        x["segment_ids"] = np.zeros((batch, length), "int32")
    classes = 3 if segments else 40
    return x, rng.integers(0, classes, batch if segments else (batch, length))


def _image_batch(batch=4):
    rng = np.random.default_rng(0)
    return rng.uniform(size=(batch, 16, 16, 3)).astype("float32"), rng.integers(0, 3, batch)


def _resnet():
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 64],
        stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block", image_shape=(16, 16, 3))


BUILDERS = {
    "gpt2_backbone": lambda: keras_hub.models.GPT2Backbone(num_heads=2, max_sequence_length=16, **_TEXT),
    "gpt2_causal_lm": lambda: keras_hub.models.GPT2CausalLM(
        backbone=keras_hub.models.GPT2Backbone(num_heads=2, max_sequence_length=16, **_TEXT), preprocessor=None),
    "bert_backbone": lambda: keras_hub.models.BertBackbone(num_heads=2, max_sequence_length=16, **_TEXT),
    "bert_classifier": lambda: keras_hub.models.BertTextClassifier(
        backbone=keras_hub.models.BertBackbone(num_heads=2, max_sequence_length=16, **_TEXT), num_classes=3,
        preprocessor=None),
    "gemma_backbone": lambda: keras_hub.models.GemmaBackbone(num_query_heads=2, num_key_value_heads=1, head_dim=8,
                                                             **_TEXT),
    "llama_backbone": lambda: keras_hub.models.LlamaBackbone(num_query_heads=2, num_key_value_heads=1, **_TEXT),
    "vit_backbone": lambda: keras_hub.models.ViTBackbone(image_shape=(16, 16, 3), patch_size=4, num_layers=2,
                                                         num_heads=2, hidden_dim=16, mlp_dim=32),
    "resnet_backbone": _resnet,
    "image_classifier": lambda: keras_hub.models.ImageClassifier(backbone=_resnet(), num_classes=3),
}
TEXT = {"gpt2_backbone", "gpt2_causal_lm", "bert_backbone", "bert_classifier", "gemma_backbone", "llama_backbone"}


@pytest.fixture(params=sorted(BUILDERS))
def hub_model(request):
    """``(name, model, inputs, targets)`` for each tiny KerasHub model."""
    name = request.param
    x, y = _text_batch(segments=name.startswith("bert")) if name in TEXT else _image_batch()
    return name, BUILDERS[name](), x, y


@pytest.fixture
def causal_lm():
    return BUILDERS["gpt2_causal_lm"](), *_text_batch()


@pytest.fixture
def image_classifier():
    return BUILDERS["image_classifier"](), *_image_batch()
