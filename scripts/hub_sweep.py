"""Sweeps keras_lottery's main operations over tiny KerasHub architectures that the tests may not cover.

Each model is built from constructor arguments (no preset, nothing downloaded), two or three transformer
layers wide of 16, and every operation is tried on it; one line per model x operation is printed:
``ok`` or ``FAIL`` with a one-line error. Operations:

* ``forward``: the dense model on a batch of 2 (sequences of 8 tokens, or 32x32 images).
* ``mask``: ``kl.mask``, ``kl.prune(masked, kl.GlobalMagnitude(0.5))``, one training step (``fit`` for a
  task model, a gradient step on the mean output for a backbone); finite outputs, class kept.
* ``strip``: ``kl.strip`` of the pruned model: its class, the masked model's outputs.
* ``tfmot``: ``kl.sparsity.prune_low_magnitude`` at 50%, one step, ``strip_pruning``: class, finite.
* ``blocks``: ``kl.blocks.find_blocks`` finds one removable block per transformer layer.
* ``remove``: ``kl.blocks.remove`` of the first block: same class, one layer fewer, finite outputs.
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
import traceback
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")  # one line per operation: Keras' structure and retracing warnings are noise here

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_hub  # noqa: E402

import keras_lottery as kl  # noqa: E402
from keras_lottery.blocks.discovery import operations  # noqa: E402

BATCH, LENGTH, VOCAB, IMAGE = 2, 8, 40, 32
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
    return {**backbones, **_tasks(backbones)}


def batch(kind):
    """``(x, y)`` for a kind of input: ``y`` is the next tokens of a causal LM, else classes (or None)."""
    rng = np.random.default_rng(0)
    if kind.startswith("image"):
        return rng.uniform(size=(BATCH, IMAGE, IMAGE, 3)).astype("float32"), rng.integers(0, 3, BATCH)
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


class Sweep:
    """The operations on one model; each method raises on failure. ``state`` carries the pruned model."""

    def __init__(self, name, build, kind):
        self.name, self.build, self.kind = name, build, kind
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
        layers = backbone_of(self.model).num_layers * (2 if self.kind == "seq2seq" else 1)  # encoder and decoder
        check(len(found) == layers and found.removable, f"{len(found)} blocks ({len(found.removable)} removable) "
                                                        f"for {layers} layers: {found.names()}")

    def remove(self):
        first = kl.blocks.find_blocks(self.model, warn=False).removable[0]
        slim = kl.blocks.remove(self.model, [first])
        self._slim(slim)
        layer = operations(self.model, first, [first.add_layer])[0]
        if first.kind in ("layer", "sublayer") and len(layer._inbound_nodes) <= 1:
            # the plain skip (not for a shared layer, ALBERT's: patching its call would skip every call of it)
            np.testing.assert_allclose(finite(slim, self.x), skipped(self.model, first, self.x), atol=1e-4)

    def depth(self):
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

    def _slim(self, slim):
        if self.name in PLAIN_AFTER_REMOVAL:  # a plain graph: one block fewer
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


def run(name, build, kind, operations, verbose=False):
    """Prints one line per operation on model ``name``; returns the number of failures."""
    try:
        sweep = Sweep(name, build, kind)
    except Exception as error:  # noqa: BLE001 - reported, the sweep goes on
        print(f"{name:22s} {'build':8s} FAIL {one_line(error)}", flush=True)
        return 1
    failures = 0
    for operation in operations:
        start = time.time()
        try:
            getattr(sweep, operation)()
            print(f"{name:22s} {operation:8s} ok   ({time.time() - start:.1f}s)", flush=True)
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
    failures = sum(run(name, *available[name], operations, args.verbose) for name in names)
    print(f"{failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
