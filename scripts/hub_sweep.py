"""Sweeps keras_lottery's main operations over tiny KerasHub architectures that the tests may not cover.

Each model is built from constructor arguments (no preset, nothing downloaded), two or three transformer
layers wide of 16 or a few convolutional stages of 8 to 32 filters, and every operation is tried on it; one
line per model x operation is printed: ``ok``, ``skip`` (declared not applicable: a family without residual
blocks) or ``FAIL`` with a one-line error. Operations:

* ``forward``: the dense model on a batch of 2 (sequences of 8 tokens, 32x32 images, both for CLIP and
  SigLIP, log-mel frames (Whisper) or raw samples (Moonshine) with decoder tokens).
* ``mask``: ``kl.mask``, ``kl.prune(masked, kl.GlobalMagnitude(0.5))``, one training step (``fit`` for a
  task model, a gradient step on the mean output for a backbone); finite outputs, class kept.
* ``strip``: ``kl.strip`` of the pruned model: its class, the masked model's outputs.
* ``tfmot``: ``kl.sparsity.prune_low_magnitude`` at 50%, one step, ``strip_pruning``: class, finite.
* ``blocks``: ``kl.blocks.find_blocks`` finds one removable block per transformer layer (or, for the
  vision, multimodal and audio entries, the number their :class:`Expect` declares).
* ``remove``: ``kl.blocks.remove`` of the first block: same class, one layer fewer (a plain graph with one
  block fewer for the entries marked so), finite outputs equal to the original's with that block skipped
  (a residual layer returning its input, or an ``Add`` block's branch returning zeros).
* ``depth``: ``kl.blocks.depth.prune(model, (x, y), 1)`` (Block Influence): same class, one layer fewer.
* ``flops``: ``kl.metrics.layer_flops`` leaves nothing uncounted; ``kl.metrics.macs`` is positive.
* ``export``: ``kl.export.for_serving`` of the pruned model into a temporary directory.

  python scripts/hub_sweep.py                          # every model, every operation
  python scripts/hub_sweep.py --models mistral,opt --ops mask,remove
"""

import argparse
import inspect
import os
import sys
import tempfile
import time
import typing
import traceback
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")  # one line per operation: Keras' structure and retracing warnings are noise here

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_hub  # noqa: E402

import keras_lottery as kl  # noqa: E402
from keras_lottery.blocks.discovery import operations  # noqa: E402

BATCH, LENGTH, VOCAB, IMAGE, MELS, SAMPLES = 2, 8, 40, 32, 8, 2048
_DECODER = dict(vocabulary_size=VOCAB, num_layers=2, hidden_dim=16, intermediate_dim=32)
_ENCODER = dict(vocabulary_size=VOCAB, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32)
_VISION = dict(num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32)
M = keras_hub.models


# Removing a layer rewrites these graphs as plain functional models (documented, docs/depth_pruning.md):
# num_layers sizes both of BART's and T5's stacks, and ALBERT's layers share weights.
PLAIN_AFTER_REMOVAL = {"bart", "t5", "albert"}


def _backbones():
    """Model name -> (constructor of the tiny backbone, kind of input)."""
    return {
        "mistral": (lambda: M.MistralBackbone(num_query_heads=2, num_key_value_heads=1, sliding_window=4, **_DECODER),
                    "text"),
        "qwen2": (lambda: M.Qwen2Backbone(num_query_heads=2, num_key_value_heads=1, **_DECODER), "text"),
        "qwen3": (lambda: M.Qwen3Backbone(num_query_heads=2, num_key_value_heads=1, head_dim=8, **_DECODER), "text"),
        "phi3": (lambda: M.Phi3Backbone(num_query_heads=2, num_key_value_heads=1, max_sequence_length=16,
                                        pretraining_sequence_length=16, **_DECODER), "text"),
        "gemma3": (lambda: M.Gemma3Backbone(image_size=None, num_query_heads=2, num_key_value_heads=1, head_dim=8,
                                            **_DECODER), "text"),
        "falcon": (lambda: M.FalconBackbone(num_attention_heads=2, **_DECODER), "text"),
        "opt": (lambda: M.OPTBackbone(max_sequence_length=16, **_ENCODER), "text"),
        "gpt_neox": (lambda: M.GPTNeoXBackbone(max_sequence_length=16, **_ENCODER), "text"),
        "distil_bert": (lambda: M.DistilBertBackbone(max_sequence_length=16, **_ENCODER), "text"),
        "roberta": (lambda: M.RobertaBackbone(max_sequence_length=16, **_ENCODER), "text"),
        "electra": (lambda: M.ElectraBackbone(vocab_size=VOCAB, num_layers=2, num_heads=2, hidden_dim=16,
                                              embedding_dim=16, intermediate_dim=32, max_sequence_length=16),
                    "segments"),
        "mixtral": (lambda: M.MixtralBackbone(num_query_heads=2, num_key_value_heads=1, num_experts=2, top_k=1,
                                              sliding_window=4, **_DECODER), "text"),
        "qwen3_moe": (lambda: M.Qwen3MoeBackbone(num_query_heads=2, num_key_value_heads=1, head_dim=8, num_experts=2,
                                                 top_k=1, moe_intermediate_dim=8, **_DECODER), "text"),
        "llama3": (lambda: M.Llama3Backbone(num_query_heads=2, num_key_value_heads=1, **_DECODER), "text"),
        "bloom": (lambda: M.BloomBackbone(**_ENCODER), "text"),
        "deberta_v3": (lambda: M.DebertaV3Backbone(max_sequence_length=16, bucket_size=4, **_ENCODER), "text"),
        "xlm_roberta": (lambda: M.XLMRobertaBackbone(max_sequence_length=16, **_ENCODER), "text"),
        "albert": (lambda: M.AlbertBackbone(vocabulary_size=VOCAB, num_layers=2, num_heads=2, embedding_dim=8,
                                            hidden_dim=16, intermediate_dim=32, max_sequence_length=16), "segments"),
        "fnet": (lambda: M.FNetBackbone(vocabulary_size=VOCAB, num_layers=2, hidden_dim=16, intermediate_dim=32,
                                        max_sequence_length=16), "segments"),
        "bart": (lambda: M.BartBackbone(max_sequence_length=16, **_ENCODER), "seq2seq"),
        "t5": (lambda: M.T5Backbone(**_ENCODER), "seq2seq"),
        "deit": (lambda: M.DeiTBackbone(image_shape=(IMAGE, IMAGE, 3), patch_size=8, **_VISION), "image"),
        "dinov2": (lambda: M.DINOV2Backbone(patch_size=8, image_shape=(IMAGE, IMAGE, 3),
                                            position_embedding_shape=(IMAGE, IMAGE, 3), **_VISION), "image"),
    }


# Vision, multimodal and audio families: convolutional stages, hierarchical transformers, two-tower and
# encoder-decoder models. Each entry is (constructor, kind of input, Expect): how many removable blocks
# find_blocks must find and whether removal keeps the class; none of them has a resizable num_layers stack.
_CLIP = dict(patch_size=8, hidden_dim=16, num_layers=2, num_heads=2, intermediate_dim=32, image_shape=(IMAGE, IMAGE, 3))
_CLIP_TEXT = dict(vocabulary_size=VOCAB, embedding_dim=16, hidden_dim=16, num_layers=2, num_heads=2, intermediate_dim=32,
                  max_sequence_length=LENGTH)


class Expect(typing.NamedTuple):
    """What the sweep expects of a model outside the ``num_layers`` transformer rule: ``blocks`` removable
    blocks (0: a family without residual blocks, ``remove`` and ``depth`` are skipped) and whether removing
    one keeps the model's class (``plain``: one block fewer; ``same_class``: and of the model's class)."""

    blocks: int
    plain: bool = True
    same_class: bool = False  # removal shortens a container's list in a copy of the model (Swin's stages)


def _efficientnet():
    # stage 1 (fused MBConv, 8 -> 8, stride 1) has two residual blocks, stage 2 (MBConv, stride 2) one; the
    # default num_features: KerasHub 0.32 leaves it out of get_config, and a copy rebuilt from the config differs
    return M.EfficientNetBackbone(
        stackwise_width_coefficients=[1.0] * 2, stackwise_depth_coefficients=[1.0] * 2, stackwise_kernel_sizes=[3, 3],
        stackwise_num_repeats=[2, 2], stackwise_input_filters=[8, 8], stackwise_output_filters=[8, 16],
        stackwise_expansion_ratios=[1, 2], stackwise_squeeze_and_excite_ratios=[0.0, 0.25], stackwise_strides=[1, 2],
        stackwise_block_types=["fused", "unfused"], input_shape=(IMAGE, IMAGE, 3))


def _mobilenet():
    # MobileNetV3-style: the depthwise block and the second inverted residual of each stage are residual
    return M.MobileNetBackbone(
        stackwise_expansion=[[16, 24], [32, 32]], stackwise_num_blocks=[2, 2], stackwise_num_filters=[[8, 8], [16, 16]],
        stackwise_kernel_size=[[3, 3], [3, 3]], stackwise_num_strides=[[2, 1], [2, 1]],
        stackwise_se_ratio=[[None, None], [0.25, 0.25]],
        stackwise_activation=[["relu", "relu"], ["hard_swish", "hard_swish"]], stackwise_padding=[[1, 1], [1, 1]],
        output_num_filters=32, depthwise_filters=8, depthwise_stride=1, depthwise_residual=True, last_layer_filter=32,
        squeeze_and_excite=0.5, image_shape=(IMAGE, IMAGE, 3), input_num_filters=8)


def _vision_backbones():
    """Model name -> (constructor, kind of input, :class:`Expect`)."""
    image = (IMAGE, IMAGE, 3)
    return {
        "efficientnet": (_efficientnet, "image", Expect(3)),
        "mobilenet": (_mobilenet, "image", Expect(3)),
        "cspnet": (lambda: M.CSPNetBackbone(
            stem_filters=8, stem_kernel_size=3, stem_strides=1, stackwise_depth=[1, 2], stackwise_strides=[1, 2],
            stackwise_num_filters=[8, 16], block_type="bottleneck_block", stage_type="csp", bottle_ratio=[0.5],
            block_ratio=[1.0], expand_ratio=[2.0], image_shape=image), "image", Expect(3)),
        "densenet": (lambda: M.DenseNetBackbone(stackwise_num_repeats=[1, 1], growth_rate=4, image_shape=image), "image",
                     Expect(0)),  # concatenation, no Add
        "vgg": (lambda: M.VGGBackbone(stackwise_num_repeats=[1, 1], stackwise_num_filters=[4, 8], image_shape=image),
                "image", Expect(0)),
        # middle-flow blocks 2 and 3 have identity shortcuts; block 4's is a strided 1x1 conv
        "xception": (lambda: M.XceptionBackbone(stackwise_conv_filters=[[4, 8], [8, 8], [8, 8], [8, 16]],
                                                stackwise_pooling=[True, False, False, False], image_shape=image),
                     "image", Expect(2)),
        # stage 2's second HG block is residual (the first of a stage never is), two containers deep: encoder ->
        # stage -> blocks; removing it shortens the stage's list in a copy of the backbone
        "hgnetv2": (lambda: M.HGNetV2Backbone(
            depths=[1, 2], embedding_size=8, hidden_sizes=[16, 16], stem_channels=[3, 8, 8], hidden_act="relu",
            use_learnable_affine_block=False, stackwise_stage_filters=[(8, 8, 16, 1, 2, 3), (16, 8, 16, 2, 2, 3)],
            apply_downsample=[False, True], use_lightweight_conv_block=[False, False], image_shape=image), "image",
            Expect(1, same_class=True)),
        "mit": (lambda: M.MiTBackbone(
            layerwise_depths=[1, 2], num_layers=2, layerwise_num_heads=[1, 2], layerwise_sr_ratios=[2, 1],
            max_drop_path_rate=0.1, layerwise_patch_sizes=[7, 3], layerwise_strides=[4, 2], image_shape=image,
            hidden_dims=[8, 16]), "image", Expect(3)),
        "swin": (lambda: M.SwinTransformerBackbone(image_shape=image, embed_dim=8, depths=(2, 2), num_heads=(1, 2),
                                                   window_size=4, patch_size=4), "image", Expect(4, same_class=True)),
        "clip": (lambda: M.CLIPBackbone(vision_encoder=M.CLIPVisionEncoder(**_CLIP),
                                        text_encoder=M.CLIPTextEncoder(**_CLIP_TEXT), projection_dim=16),
                 "image_text", Expect(4)),
        "siglip": (lambda: M.SigLIPBackbone(vision_encoder=M.SigLIPVisionEncoder(**_CLIP),
                                            text_encoder=M.SigLIPTextEncoder(**_CLIP_TEXT)), "image_text", Expect(4)),
        "whisper": (lambda: M.WhisperBackbone(vocabulary_size=VOCAB, num_layers=2, num_heads=2, hidden_dim=16,
                                              intermediate_dim=32, num_mels=MELS, max_encoder_sequence_length=2 * LENGTH,
                                              max_decoder_sequence_length=2 * LENGTH), "whisper", Expect(4)),
        "moonshine": (lambda: M.MoonshineBackbone(
            vocabulary_size=VOCAB, filter_dim=16, encoder_num_layers=2, decoder_num_layers=2, hidden_dim=16,
            intermediate_dim=32, encoder_num_heads=2, decoder_num_heads=2, max_position_embeddings=64), "moonshine",
            Expect(4)),
    }


def _vision_tasks():
    """ImageClassifier task models around two of the CNNs (fresh backbones)."""
    return {
        "efficientnet_classifier": (lambda: M.EfficientNetImageClassifier(backbone=_efficientnet(), num_classes=3),
                                    "image_classes", Expect(3)),
        "mobilenet_classifier": (lambda: M.MobileNetImageClassifier(backbone=_mobilenet(), num_classes=3,
                                                                    num_features=16), "image_classes", Expect(3)),
    }


def _tasks(backbones):
    """Task model name -> (constructor, kind of input); the backbone inside is built fresh."""
    causal = {"mistral_causal_lm": ("mistral", M.MistralCausalLM), "phi3_causal_lm": ("phi3", M.Phi3CausalLM),
              "opt_causal_lm": ("opt", M.OPTCausalLM), "gpt_neox_causal_lm": ("gpt_neox", M.GPTNeoXCausalLM),
              "falcon_causal_lm": ("falcon", M.FalconCausalLM), "qwen3_causal_lm": ("qwen3", M.Qwen3CausalLM),
              "gemma3_causal_lm": ("gemma3", M.Gemma3CausalLM)}
    tasks = {name: (lambda b=b, cls=cls: cls(backbone=backbones[b][0](), preprocessor=None), "causal")
             for name, (b, cls) in causal.items()}
    tasks["roberta_classifier"] = (lambda: M.RobertaTextClassifier(backbone=backbones["roberta"][0](), num_classes=3,
                                                                   preprocessor=None), "classes")
    tasks["deit_classifier"] = (lambda: M.DeiTImageClassifier(backbone=backbones["deit"][0](), num_classes=3),
                                "image_classes")
    return tasks


def models():
    """Every sweep model: name -> (constructor, kind of input)."""
    backbones = _backbones()
    return {**backbones, **_tasks(backbones), **_vision_backbones(), **_vision_tasks()}


def batch(kind):
    """``(x, y)`` for a kind of input: ``y`` is the next tokens of a causal LM, else classes (or None)."""
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(BATCH, IMAGE, IMAGE, 3)).astype("float32")
    tokens = rng.integers(1, VOCAB, (BATCH, LENGTH)).astype("int32")
    if kind == "image_text":  # CLIP, SigLIP: both towers
        return {"images": images, "token_ids": tokens}, None
    if kind.startswith("image"):
        return images, rng.integers(0, 3, BATCH)
    if kind == "whisper":  # log-mel frames (the encoder halves them) and decoder tokens
        return {"encoder_features": rng.normal(size=(BATCH, 2 * LENGTH, MELS)).astype("float32"),
                "decoder_token_ids": tokens, "decoder_padding_mask": np.ones((BATCH, LENGTH), "int32")}, None
    if kind == "moonshine":  # raw audio samples and decoder tokens, boolean masks
        return {"encoder_input_values": rng.normal(size=(BATCH, SAMPLES, 1)).astype("float32"),
                "encoder_padding_mask": np.ones((BATCH, SAMPLES), bool), "decoder_token_ids": tokens,
                "decoder_padding_mask": np.ones((BATCH, LENGTH), bool)}, None
    if kind == "seq2seq":
        tokens = {side: rng.integers(1, VOCAB, (BATCH, LENGTH)).astype("int32") for side in ("encoder", "decoder")}
        return {**{f"{side}_token_ids": t for side, t in tokens.items()},
                **{f"{side}_padding_mask": np.ones((BATCH, LENGTH), "int32") for side in tokens}}, None
    x = {"token_ids": rng.integers(1, VOCAB, (BATCH, LENGTH)).astype("int32"),
         "padding_mask": np.ones((BATCH, LENGTH), "int32")}
    if kind == "segments":
        x["segment_ids"] = np.zeros((BATCH, LENGTH), "int32")
    if kind == "causal":
        return x, rng.integers(0, VOCAB, (BATCH, LENGTH))
    return x, rng.integers(0, 3, BATCH)


def backbone_of(model):
    return getattr(model, "backbone", model)


def is_task(kind):
    return kind in ("causal", "classes", "image_classes")


def finite(model, x):
    """``model(x)``'s first output as numpy, after checking that every output is finite."""
    outputs = [np.asarray(keras.ops.convert_to_numpy(t)) for t in keras.tree.flatten(model(x))]
    bad = [i for i, t in enumerate(outputs) if not np.all(np.isfinite(t))]
    if bad:
        raise AssertionError(f"non-finite output(s) {bad}")
    return outputs[0]


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def train_step(model, kind, x, y, callbacks=()):
    """One training step: ``fit`` for a task model, a gradient step on the mean output for a backbone."""
    import tensorflow as tf

    if is_task(kind):
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=list(callbacks))
        return
    for callback in callbacks:
        callback.set_model(model)
        callback.on_train_begin()
    with tf.GradientTape() as tape:
        loss = sum(keras.ops.mean(keras.ops.cast(t, "float32")) for t in keras.tree.flatten(model(x, training=True)))
    grads = tape.gradient(loss, model.trainable_variables)
    keras.optimizers.SGD(1e-3).apply_gradients(
        [(g, v) for g, v in zip(grads, model.trainable_variables) if g is not None])


def skipped(model, block, x):
    """``model(x)``'s first output with the layer of ``block`` (a transformer layer) computing ``y = x``: its
    ``call`` patched to return its first argument; what the slim model must compute."""
    layer = operations(model, block, [block.add_layer])[0]
    first = next(iter(inspect.signature(layer.call).parameters))

    original = layer.call

    def identity(*args, **kwargs):  # the layer's output structure (DeiT's layers also return attention scores)
        outputs = keras.tree.flatten(original(*args, **kwargs))
        return keras.tree.pack_sequence_as(original(*args, **kwargs), [args[0] if args else kwargs[first]] + outputs[1:])

    object.__setattr__(layer, "call", identity)
    try:
        return finite(model, x)
    finally:
        object.__delattr__(layer, "call")


def zero_branch(model, block, x):
    """``model(x)``'s first output with the branch of ``block`` (an ``Add`` block) computing zeros: its last
    layer's ``call`` patched, so that the ``Add`` passes the shortcut ``x`` on; what the slim model must
    compute."""
    layer = operations(model, block, [block.branch_output])[0]
    original = layer.call

    def zeros(*args, **kwargs):
        return keras.tree.map_structure(keras.ops.zeros_like, original(*args, **kwargs))

    object.__setattr__(layer, "call", zeros)
    try:
        return finite(model, x)
    finally:
        object.__delattr__(layer, "call")


class Sweep:
    """The operations on one model; each method raises on failure. ``state`` carries the pruned model."""

    def __init__(self, name, build, kind, expect=None):
        self.name, self.build, self.kind, self.expect = name, build, kind, expect
        self.model = build()
        self.x, self.y = batch(kind)
        self.masked = None

    def forward(self):
        finite(self.model, self.x)

    def mask(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            masked = kl.mask(self.model)
        check(type(masked) is type(self.model), f"class {type(masked).__name__}")
        kl.prune(masked, kl.GlobalMagnitude(0.5))
        density = kl.Mask.from_model(masked).density
        check(abs(density - 0.5) < 0.02, f"density {density:.3f}")
        train_step(masked, self.kind, self.x, self.y)
        finite(masked, self.x)
        self.masked = masked

    def strip(self):
        masked = self._masked()
        stripped = kl.strip(masked)
        check(type(stripped) is type(self.model), f"class {type(stripped).__name__}")
        np.testing.assert_allclose(finite(stripped, self.x), finite(masked, self.x), atol=1e-4)

    def tfmot(self):
        model = self.build()
        model.set_weights(self.model.get_weights())
        pruned = kl.sparsity.prune_low_magnitude(
            model, pruning_schedule=kl.sparsity.ConstantSparsity(0.5, 0, frequency=1))
        train_step(pruned, self.kind, self.x, self.y, [kl.sparsity.UpdatePruningStep()])
        stripped = kl.sparsity.strip_pruning(pruned)
        check(type(stripped) is type(self.model), f"class {type(stripped).__name__}")
        finite(stripped, self.x)

    def blocks(self):
        found = kl.blocks.find_blocks(self.model, warn=False)
        if self.expect is not None:  # declared by the entry
            check(len(found.removable) == self.expect.blocks, f"{len(found.removable)} removable blocks, expected "
                                                              f"{self.expect.blocks}: {found.names() or found.message}")
            return
        layers = backbone_of(self.model).num_layers * (2 if self.kind == "seq2seq" else 1)  # encoder and decoder
        check(len(found) == layers and found.removable, f"{len(found)} blocks ({len(found.removable)} removable) "
                                                        f"for {layers} layers: {found.names()}")

    def remove(self):
        if self._no_blocks():
            return "skip"
        found = kl.blocks.find_blocks(self.model, warn=False)
        check(found.removable, f"nothing to remove: {found.message}")
        first = found.removable[0]
        slim = kl.blocks.remove(self.model, [first])
        self._slim(slim)
        layer = operations(self.model, first, [first.add_layer])[0]
        if first.kind in ("layer", "sublayer") and len(layer._inbound_nodes) <= 1:
            # the plain skip (not for a shared layer, ALBERT's: patching its call would skip every call of it)
            np.testing.assert_allclose(finite(slim, self.x), skipped(self.model, first, self.x), atol=1e-4)
        elif first.kind == "add":
            np.testing.assert_allclose(finite(slim, self.x), zero_branch(self.model, first, self.x), atol=1e-4)

    def depth(self):
        if self._no_blocks():
            return "skip"
        scores = kl.blocks.score(self.model, (self.x, self.y), criterion="block_influence")
        removable = len(kl.blocks.find_blocks(self.model, warn=False).removable)
        check(len(scores) == removable and all(0 <= v <= 2 for v in scores.values()),
              f"block influence {scores}")
        slim, names = kl.blocks.depth.prune(self.model, (self.x, self.y), 1, criterion="block_influence")
        check(len(names) == 1, f"removed {names}")
        self._slim(slim)

    def flops(self):
        report = kl.metrics.layer_flops(self.model)
        check(report["uncounted"] == [], f"uncounted {report['uncounted']}")
        check(kl.metrics.macs(self.model) > 0, "no multiply-adds")

    def export(self):
        with tempfile.TemporaryDirectory() as tmp:
            kl.export.for_serving(self._masked(), os.path.join(tmp, "ticket"), measure_dense=False)

    def _masked(self):
        if self.masked is None:
            self.mask()
        return self.masked

    def _no_blocks(self):
        """Whether the entry declares a family without residual blocks (nothing to remove)."""
        return self.expect is not None and self.expect.blocks == 0

    def _slim(self, slim):
        if self.name in PLAIN_AFTER_REMOVAL or (self.expect and self.expect.plain):  # a plain graph: one block fewer
            if self.expect and self.expect.same_class:
                check(type(slim) is type(self.model), f"class {type(slim).__name__}, not {type(self.model).__name__}")
            before, after = (len(kl.blocks.find_blocks(m, warn=False)) for m in (self.model, slim))
        else:
            check(type(slim) is type(self.model), f"class {type(slim).__name__}, not {type(self.model).__name__}")
            before, after = backbone_of(self.model).num_layers, backbone_of(slim).num_layers
        check(after == before - 1, f"layers {before} -> {after}")
        finite(slim, self.x)


OPERATIONS = ["forward", "mask", "strip", "tfmot", "blocks", "remove", "depth", "flops", "export"]


def one_line(error):
    text = f"{type(error).__name__}: {error}".replace("\n", " ")
    return text if len(text) <= 220 else text[:217] + "..."


def run(name, entry, operations, verbose=False):
    """Prints one line per operation on model ``name`` (``entry``: constructor, kind of input and, for some,
    an :class:`Expect`); returns the number of failures."""
    try:
        sweep = Sweep(name, *entry)
    except Exception as error:  # noqa: BLE001 - reported, the sweep goes on
        print(f"{name:22s} {'build':8s} FAIL {one_line(error)}", flush=True)
        return 1
    failures = 0
    for operation in operations:
        start = time.time()
        try:
            status = getattr(sweep, operation)() or "ok  "  # "skip": declared as not applicable
            print(f"{name:22s} {operation:8s} {status} ({time.time() - start:.1f}s)", flush=True)
        except Exception as error:  # noqa: BLE001
            failures += 1
            print(f"{name:22s} {operation:8s} FAIL {one_line(error)}", flush=True)
            if verbose:
                traceback.print_exc()
    return failures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", help="comma-separated model names (default: all); --list shows them")
    parser.add_argument("--ops", help=f"comma-separated operations (default: all): {','.join(OPERATIONS)}")
    parser.add_argument("--list", action="store_true", help="list the model names and exit")
    parser.add_argument("--verbose", action="store_true", help="print the traceback of each failure")
    args = parser.parse_args(argv)
    available = models()
    if args.list:
        print("\n".join(available))
        return 0
    names = args.models.split(",") if args.models else list(available)
    operations = args.ops.split(",") if args.ops else OPERATIONS
    unknown = [n for n in names if n not in available] + [o for o in operations if o not in OPERATIONS]
    if unknown:
        parser.error(f"unknown model(s) or operation(s): {unknown}")
    keras.utils.set_random_seed(0)
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    failures = sum(run(name, available[name], operations, args.verbose) for name in names)
    print(f"{failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
