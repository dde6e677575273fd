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


# Architectures outside BUILDERS that broke the library once (scripts/hub_sweep.py found them), with their input kind.
_DECODER = dict(vocabulary_size=40, num_layers=2, hidden_dim=16, intermediate_dim=32)
SWEEP_BUILDERS = {
    # calls its decoder layers by keyword: layer(inputs=x, decoder_padding_mask=m)
    "falcon_backbone": (lambda: keras_hub.models.FalconBackbone(num_attention_heads=2, **_DECODER), "text"),
    # calls its backbone by keyword: backbone(inputs=...)
    "gemma3_causal_lm": (lambda: keras_hub.models.Gemma3CausalLM(backbone=keras_hub.models.Gemma3Backbone(
        image_size=None, num_query_heads=2, num_key_value_heads=1, head_dim=8, **_DECODER), preprocessor=None),
        "text"),
    # built with name=None: its layers are unprefixed, a rebuild from its config prefixes them
    "dinov2_backbone": (lambda: keras_hub.models.DINOV2Backbone(
        patch_size=4, num_layers=2, hidden_dim=16, num_heads=2, intermediate_dim=32, image_shape=(16, 16, 3),
        position_embedding_shape=(16, 16, 3)), "image"),
    # num_layers sizes the encoder and the decoder stacks
    "bart_backbone": (lambda: keras_hub.models.BartBackbone(num_heads=2, max_sequence_length=16, **_DECODER),
                      "seq2seq"),
    # a mixture of experts: the router's top-k
    "mixtral_backbone": (lambda: keras_hub.models.MixtralBackbone(
        num_query_heads=2, num_key_value_heads=1, num_experts=2, top_k=1, **_DECODER), "text"),
    # token mixing by a 2-D Fourier transform
    "fnet_backbone": (lambda: keras_hub.models.FNetBackbone(
        vocabulary_size=40, num_layers=2, hidden_dim=16, intermediate_dim=32, max_sequence_length=16), "segments"),
    # squeeze-and-excite layers made at ratio 0 and never called: unbuilt layers of a built model
    "efficientnet_backbone": (lambda: keras_hub.models.EfficientNetBackbone(
        stackwise_width_coefficients=[1.0], stackwise_depth_coefficients=[1.0], stackwise_kernel_sizes=[3],
        stackwise_num_repeats=[2], stackwise_input_filters=[8], stackwise_output_filters=[8],
        stackwise_expansion_ratios=[1], stackwise_squeeze_and_excite_ratios=[0.0], stackwise_strides=[1],
        stackwise_block_types=["fused"], input_shape=(16, 16, 3)), "image"),  # num_features: not in its config
    # its depthwise block appends "_0" to the name it is given: a rebuild from its config renames it
    "mobilenet_backbone": (lambda: keras_hub.models.MobileNetBackbone(
        stackwise_expansion=[[16, 24]], stackwise_num_blocks=[2], stackwise_num_filters=[[8, 8]],
        stackwise_kernel_size=[[3, 3]], stackwise_num_strides=[[2, 1]], stackwise_se_ratio=[[None, None]],
        stackwise_activation=[["relu", "relu"]], stackwise_padding=[[1, 1]], output_num_filters=16,
        depthwise_filters=8, depthwise_stride=1, depthwise_residual=True, last_layer_filter=16,
        squeeze_and_excite=0.5, image_shape=(16, 16, 3), input_num_filters=8), "image"),
    # two nested towers, each with a layer named "embedding"
    "clip_backbone": (lambda: keras_hub.models.CLIPBackbone(
        vision_encoder=keras_hub.models.CLIPVisionEncoder(patch_size=8, hidden_dim=16, num_layers=1, num_heads=2,
                                                          intermediate_dim=32, image_shape=(16, 16, 3)),
        text_encoder=keras_hub.models.CLIPTextEncoder(vocabulary_size=40, embedding_dim=16, hidden_dim=16,
                                                      num_layers=1, num_heads=2, intermediate_dim=32,
                                                      max_sequence_length=8), projection_dim=8), "image_text"),
    # its rotary embedding declares rank 1 and returns rank 2: its layers cannot be traced on their nodes
    "moonshine_backbone": (lambda: keras_hub.models.MoonshineBackbone(
        vocabulary_size=40, filter_dim=16, encoder_num_layers=1, decoder_num_layers=1, hidden_dim=16,
        intermediate_dim=32, encoder_num_heads=2, decoder_num_heads=2, max_position_embeddings=32), "audio"),
    # its HierarchicalTransformerEncoder's config does not rebuild it (keys its constructor does not take)
    "mit_backbone": (lambda: keras_hub.models.MiTBackbone(
        layerwise_depths=[2], num_layers=1, layerwise_num_heads=[1], layerwise_sr_ratios=[1], max_drop_path_rate=0.1,
        layerwise_patch_sizes=[3], layerwise_strides=[4], image_shape=(16, 16, 3), hidden_dims=[8]), "image"),
    # its residual blocks sit two containers deep (encoder -> stages -> blocks); a stage's first block is not one
    "hgnetv2_backbone": (lambda: keras_hub.models.HGNetV2Backbone(
        depths=[1, 2], embedding_size=8, hidden_sizes=[16, 16], stem_channels=[3, 8, 8], hidden_act="relu",
        use_learnable_affine_block=False, stackwise_stage_filters=[(8, 8, 16, 1, 2, 3), (16, 8, 16, 2, 2, 3)],
        apply_downsample=[False, True], use_lightweight_conv_block=[False, False], image_shape=(16, 16, 3)), "image"),
    # its blocks are applied inside each stage's call, and it has no num_layers; stage 0's second block shifts
    # its windows
    "swin_backbone": (lambda: keras_hub.models.SwinTransformerBackbone(
        image_shape=(16, 16, 3), embed_dim=8, depths=(2, 1), num_heads=(1, 1), window_size=4, patch_size=2), "image"),
}


def sweep_batch(kind, batch=2, length=8):
    """Inputs for a SWEEP_BUILDERS kind: ``text`` (token ids, padding mask), ``segments`` (token and segment
    ids), ``seq2seq`` (encoder and decoder token ids and padding masks), ``image`` (16x16 RGB), ``image_text``
    (CLIP: images and token ids) or ``audio`` (Moonshine: samples, token ids, masks)."""
    rng = np.random.default_rng(0)
    if kind == "image":
        return rng.uniform(size=(batch, 16, 16, 3)).astype("float32")
    tokens = rng.integers(1, 40, (batch, length)).astype("int32")
    ones = np.ones((batch, length), "int32")
    if kind == "image_text":
        return {"images": rng.uniform(size=(batch, 16, 16, 3)).astype("float32"), "token_ids": tokens}
    if kind == "audio":  # Moonshine: raw samples (1024 leave 1 frame after its convolutions), boolean masks
        return {"encoder_input_values": rng.normal(size=(batch, 1024, 1)).astype("float32"),
                "encoder_padding_mask": np.ones((batch, 1024), bool), "decoder_token_ids": tokens,
                "decoder_padding_mask": ones.astype(bool)}
    if kind == "segments":
        return {"token_ids": tokens, "segment_ids": np.zeros_like(tokens)}
    if kind == "seq2seq":
        return {"encoder_token_ids": tokens, "encoder_padding_mask": ones, "decoder_token_ids": tokens[:, ::-1].copy(),
                "decoder_padding_mask": ones}
    return {"token_ids": tokens, "padding_mask": ones}
