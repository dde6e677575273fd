"""The depth-pruning study: a small GPT-2 trained here, its layers removed by each criterion, measured.

    h = DepthStudyHparams(train_steps=400)                  # the recipe (recorded in the directory)
    run(h, DepthStudyCells(seeds="0,1,2"), "runs/depth_pruning/default")   # resumable: one JSON per cell
    write_results("runs/depth_pruning/default", "docs/results/depth_pruning")

The study (issue 28's "result users can trust"), all offline and built from constructor arguments:

* **Text.** The Python standard library's own ``*.py`` files (``sysconfig.get_paths()["stdlib"]``,
  ``site-packages``/``dist-packages`` excluded), sorted by relative path; the file at sorted index
  ``i`` is held out when ``i % 10 == 0``, the others train. Tokens are bytes (vocabulary 256), files
  joined by a newline. ``--corpus_root`` points at another folder of ``*.py`` files (the tests use a
  tiny one). The corpus's fingerprint is recorded in the run directory and checked on resume.
* **Model.** ``keras_hub.models.GPT2CausalLM`` around a ``GPT2Backbone`` built from arguments
  (``layers`` layers), trained from seed ``s`` (initialization and the order of the training windows)
  with AdamW, linear warm-up and cosine decay, on random windows of ``sequence_length + 1`` bytes.
* **After training** (``after`` cells): for each criterion and each ``p`` in ``removed``, select ``p``
  layers on calibration windows of the training text (:func:`keras_lottery.blocks.depth.select`), remove
  them (:func:`keras_lottery.blocks.remove`: a ``GPT2CausalLM`` with ``layers - p`` layers), measure
  held-out perplexity and next-token accuracy; then heal (:func:`keras_lottery.blocks.heal`,
  ``heal_steps`` steps on training windows, the same ones for every criterion and ``p`` of a seed) and
  measure again. ``p = 0`` is the dense model, and its "healed" row is the dense model fine-tuned the
  same way (the control: what the extra steps alone give).
* **Speed** (``speed`` cells): ``generate()`` tokens per second (greedy, batch ``speed_batch``, prompts of
  ``speed_prompt`` held-out bytes completed to ``sequence_length``; median of ``speed_repeats`` timed
  calls after one warm-up) of the model without its last ``p`` layers, and parameter counts. The
  speed depends on the number of layers, not on which ones.
* **At initialization** (``init`` cells): the untrained model of seed ``s`` (the same initial weights
  as the dense model of that seed) loses ``p`` layers by SNIP, GraSP or random scores on the
  calibration windows; the slim model is trained with the dense model's recipe and measured.

Every cell is a JSON file in ``<directory>/cells/``, written when the cell is done; a rerun skips the
cells that exist, and the trained dense model of each seed is kept (``seed_<s>/dense.weights.h5``).
SLEB is greedy, so its removal order for the largest ``p`` gives every smaller ``p`` as a prefix: the
study selects once per seed with the largest ``p`` and takes prefixes (the same names
``select(..., k=p, criterion="sleb")`` returns). The experiment binary is ``keras_lottery/experiments/depth_pruning.py`` (``keras-lottery depth_pruning``);
the results and their reading: docs/depth_pruning.md.
"""

from __future__ import annotations

import dataclasses
import gc
import glob
import hashlib
import json
import math
import os
import platform
import sys
import sysconfig
import time

import keras
import numpy as np
import tensorflow as tf

from keras_lottery import files, runs
from keras_lottery.blocks import depth
from keras_lottery.blocks.healing import heal
from keras_lottery.blocks.rewrite import remove

__all__ = ["AFTER_CRITERIA", "DepthStudyCells", "DepthStudyHparams", "INIT_CRITERIA", "PARTS", "build_model", "corpus",
           "evaluate", "generation_speed", "load_cells", "load_data", "run", "source_files", "summarize", "write_results"]

AFTER_CRITERIA = ("block_influence", "angular_window", "sleb", "last", "random")
INIT_CRITERIA = ("snip", "grasp", "random")
PARTS = ("after", "speed", "init")
CELLS = "cells"
CORPUS_RECORD = "corpus.json"
VOCABULARY = 256  # bytes


def _ints(text, name):
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--{name} must be comma-separated integers, got {text!r}.") from None
    if len(set(values)) != len(values):
        raise ValueError(f"--{name} repeats a value: {text!r}.")
    return values


def _names(text, name, allowed):
    values = [v.strip() for v in str(text).split(",") if v.strip()]
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise ValueError(f"--{name} has unknown entries {unknown}; choose among {', '.join(allowed)}.")
    if len(set(values)) != len(values):
        raise ValueError(f"--{name} repeats a value: {text!r}.")
    return values


@dataclasses.dataclass(frozen=True)
class DepthStudyHparams:
    """The recipe of the depth-pruning study: model, training, healing and measures (see the module
    docstring). A run directory holds one recipe; which cells to compute is :class:`DepthStudyCells`.

    Attributes:
      layers: Transformer layers of the full model.
      hidden_dim: Width of the model.
      num_heads: Attention heads.
      intermediate_dim: Width of the feed-forward layers.
      sequence_length: Tokens (bytes) per training and evaluation window; also the generation length.
      dropout: Dropout of the GPT-2 layers during training.
      batch_size: Windows per training, healing and calibration batch.
      train_steps: Training steps of the dense model (and of each slim model at initialization).
      learning_rate: Peak AdamW learning rate of training (linear warm-up over a tenth of the steps,
        cosine decay to a tenth).
      calibration_batches: Calibration batches (of batch_size training windows) for the criteria.
      heal_steps: Healing steps (AdamW, constant heal_learning_rate) of each slim model; 0: no healing.
      heal_learning_rate: Learning rate of healing.
      lora_rank: 0 heals every weight; a positive rank heals LoRA adapters only (KerasHub enable_lora).
      eval_windows: Held-out windows for perplexity and accuracy (evenly spaced over the held-out text).
      speed_batch: Prompts per generate() call when timing.
      speed_prompt: Prompt length in tokens when timing (the rest up to sequence_length is generated).
      speed_repeats: Timed generate() calls per model (the median is kept).
      corpus_root: A folder of *.py files to use instead of the Python standard library ('' = stdlib).
    """

    layers: int = 8
    hidden_dim: int = 128
    num_heads: int = 4
    intermediate_dim: int = 512
    sequence_length: int = 64
    dropout: float = 0.0
    batch_size: int = 32
    train_steps: int = 400
    learning_rate: float = 0.002
    calibration_batches: int = 2
    heal_steps: int = 40
    heal_learning_rate: float = 0.0005
    lora_rank: int = 0
    eval_windows: int = 256
    speed_batch: int = 4
    speed_prompt: int = 16
    speed_repeats: int = 3
    corpus_root: str = ""

    def validate(self):
        """Raises ``ValueError`` (one line, naming the flag) for settings the study cannot run."""
        for name in ("layers", "hidden_dim", "num_heads", "intermediate_dim", "sequence_length", "batch_size",
                     "train_steps", "calibration_batches", "eval_windows", "speed_batch", "speed_prompt",
                     "speed_repeats"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1, got {getattr(self, name)}.")
        if self.layers < 2:
            raise ValueError(f"--layers must be at least 2 (one to remove, one to keep), got {self.layers}.")
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"--hidden_dim ({self.hidden_dim}) must be a multiple of --num_heads ({self.num_heads}).")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"--dropout must be in [0, 1), got {self.dropout}.")
        if self.learning_rate <= 0 or self.heal_learning_rate <= 0:
            raise ValueError("--learning_rate and --heal_learning_rate must be positive.")
        if self.heal_steps < 0 or self.lora_rank < 0:
            raise ValueError("--heal_steps and --lora_rank must be 0 or more.")
        if self.speed_prompt >= self.sequence_length:
            raise ValueError(f"--speed_prompt ({self.speed_prompt}) must be shorter than --sequence_length "
                             f"({self.sequence_length}): generate() fills the rest.")
        if self.corpus_root and not os.path.isdir(self.corpus_root):
            raise ValueError(f"--corpus_root {self.corpus_root!r} is not a folder.")
        return self


@dataclasses.dataclass(frozen=True)
class DepthStudyCells:
    """Which cells of the study to compute. Not part of the run directory's record: a rerun with more
    seeds, criteria or numbers of removed layers adds cells to the same study (its dense models reused).

    Attributes:
      seeds: Training seeds, comma-separated (initialization and order of the training windows).
      parts: What to measure, comma-separated: after (criteria after training, before and after
        healing), speed (generate() tokens/s and parameters against removed layers), init (SNIP, GraSP
        or random at initialization, then training).
      removed: Numbers of removed layers to measure after training and for speed, comma-separated (each
        from 1 to layers - 1).
      criteria: After-training criteria, comma-separated: block_influence, angular_window, sleb, last,
        random.
      init_criteria: At-initialization criteria, comma-separated: snip, grasp, random.
      init_removed: Numbers of removed layers at initialization, comma-separated.
    """

    seeds: str = "0,1,2"
    parts: str = "after,speed,init"
    removed: str = "2,4"
    criteria: str = ",".join(AFTER_CRITERIA)
    init_criteria: str = ",".join(INIT_CRITERIA)
    init_removed: str = "4"

    @property
    def seed_list(self):
        return _ints(self.seeds, "seeds")

    @property
    def part_list(self):
        return _names(self.parts, "parts", PARTS)

    @property
    def removed_list(self):
        return sorted(_ints(self.removed, "removed"))

    @property
    def criteria_list(self):
        return _names(self.criteria, "criteria", AFTER_CRITERIA)

    @property
    def init_criteria_list(self):
        return _names(self.init_criteria, "init_criteria", INIT_CRITERIA)

    @property
    def init_removed_list(self):
        return sorted(_ints(self.init_removed, "init_removed"))

    def validate(self, layers):
        """Raises ``ValueError`` (one line, naming the flag) for cells a model of ``layers`` layers cannot have."""
        if not self.seed_list:
            raise ValueError("--seeds must name at least one seed.")
        if any(s < 0 for s in self.seed_list):
            raise ValueError(f"--seeds must be non-negative, got {self.seeds!r}.")
        if not self.part_list:
            raise ValueError(f"--parts must name at least one of {', '.join(PARTS)}.")
        checked = [("removed", self.removed_list)] if {"after", "speed"} & set(self.part_list) else []
        checked += [("init_removed", self.init_removed_list)] if "init" in self.part_list else []
        for name, values in checked:
            bad = [p for p in values if not 1 <= p <= layers - 1]
            if bad:
                raise ValueError(f"--{name} values must be from 1 to layers - 1 = {layers - 1}, got {bad}.")
        if "after" in self.part_list and not (self.removed_list and self.criteria_list):
            raise ValueError("--parts=after needs --removed and --criteria.")
        if "init" in self.part_list and not (self.init_removed_list and self.init_criteria_list):
            raise ValueError("--parts=init needs --init_removed and --init_criteria.")
        return self


# -- text -------------------------------------------------------------------------------------------
def source_files(root=""):
    """``(root, sorted relative paths)`` of the ``*.py`` files under ``root`` (default: the stdlib,
    without ``site-packages``/``dist-packages``)."""
    root = os.path.abspath(root or sysconfig.get_paths()["stdlib"])
    paths = []
    for path in glob.glob(os.path.join(root, "**", "*.py"), recursive=True):
        rel = os.path.relpath(path, root).replace(os.sep, "/")
        if {"site-packages", "dist-packages"} & set(rel.split("/")) or not os.path.isfile(path):
            continue
        paths.append(rel)
    return root, sorted(paths)


def corpus(root=""):
    """``{"train": uint8 array, "heldout": uint8 array, "record": {...}}``: the files' bytes joined by a
    newline; held out: sorted index ``% 10 == 0``. The record has the file counts, sizes, a fingerprint
    (SHA-256 of both texts) and, for the stdlib, the Python version."""
    root, paths = source_files(root)
    parts = {"train": [], "heldout": []}
    for i, rel in enumerate(paths):
        with open(os.path.join(root, rel), "rb") as f:
            parts["heldout" if i % 10 == 0 else "train"].append(f.read())
    if not parts["heldout"] or not parts["train"]:
        raise ValueError(f"{root} has {len(paths)} *.py files; the split needs at least 2 (index 0 is held out).")
    texts = {k: b"\n".join(v) for k, v in parts.items()}
    digest = hashlib.sha256(texts["train"] + b"\0heldout\0" + texts["heldout"]).hexdigest()[:16]
    record = {"root": "stdlib" if root == os.path.abspath(sysconfig.get_paths()["stdlib"]) else root,
              "files": len(paths), "train_files": len(parts["train"]), "heldout_files": len(parts["heldout"]),
              "train_bytes": len(texts["train"]), "heldout_bytes": len(texts["heldout"]), "sha256_16": digest,
              "python": platform.python_version(), "split": "held out: sorted index % 10 == 0"}
    return {"train": np.frombuffer(texts["train"], np.uint8), "heldout": np.frombuffer(texts["heldout"], np.uint8),
            "record": record}


def _windows(text, offsets, length):
    """``(x, y)``: GPT-2 inputs (token ids, padding mask) of ``length`` bytes from each offset, and the next bytes."""
    index = np.asarray(offsets)[:, None] + np.arange(length + 1)[None, :]
    tokens = text[index].astype("int32")
    x = {"token_ids": tokens[:, :-1], "padding_mask": np.ones((len(offsets), length), "int32")}
    return x, tokens[:, 1:]


def _random_offsets(text, count, length, rng):
    if len(text) < length + 2:
        raise ValueError(f"The text has {len(text)} bytes; windows of sequence_length + 1 = {length + 1} need more.")
    return rng.integers(0, len(text) - length - 1, size=count)


def _batches(x, y, batch_size):
    return [({k: v[i:i + batch_size] for k, v in x.items()}, y[i:i + batch_size]) for i in range(0, len(y), batch_size)]


class _Data:
    """The windows of one study: evaluation and calibration (fixed), training and healing (per seed)."""

    def __init__(self, h, text):
        self.h, self.text = h, text
        length = h.sequence_length
        if len(text["heldout"]) < length + 2:
            raise ValueError(f"The held-out text has {len(text['heldout'])} bytes; a window needs {length + 2}.")
        offsets = np.linspace(0, len(text["heldout"]) - length - 1, h.eval_windows).astype(np.int64)
        self.eval = _windows(text["heldout"], offsets, length)
        calibration = _random_offsets(text["train"], h.calibration_batches * h.batch_size, length,
                                      np.random.default_rng(10_000))
        self.calibration = _batches(*_windows(text["train"], calibration, length), h.batch_size)
        prompts = np.linspace(0, len(text["heldout"]) - length - 1, h.speed_batch + 2).astype(np.int64)[1:-1]
        self.prompts = _windows(text["heldout"], prompts, length)[0]

    def train(self, seed, steps):
        """``steps * batch_size`` training windows drawn with ``seed``."""
        rng = np.random.default_rng([seed, 1])
        return _windows(self.text["train"], _random_offsets(self.text["train"], steps * self.h.batch_size,
                                                            self.h.sequence_length, rng), self.h.sequence_length)

    def heal(self, seed):
        """The healing windows of ``seed`` (the same for every criterion and ``p``)."""
        rng = np.random.default_rng([seed, 2])
        return _windows(self.text["train"], _random_offsets(self.text["train"], self.h.heal_steps * self.h.batch_size,
                                                            self.h.sequence_length, rng), self.h.sequence_length)


# -- model, training, measures ----------------------------------------------------------------------
def build_model(h, seed):
    """An untrained ``GPT2CausalLM`` (no preprocessor) of ``h``'s size, initialized from ``seed``."""
    import keras_hub

    keras.utils.set_random_seed(int(seed))
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=VOCABULARY, num_layers=h.layers, num_heads=h.num_heads, hidden_dim=h.hidden_dim,
        intermediate_dim=h.intermediate_dim, dropout=h.dropout, max_sequence_length=h.sequence_length)
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)


def _weights_digest(model):
    """A float summarizing the weights (to check that two models start from the same initialization)."""
    return float(sum(np.sum(np.asarray(w, np.float64) * (i + 1)) for i, w in enumerate(model.get_weights())))


def train(model, h, x, y):
    """Trains ``model`` on the windows ``(x, y)`` in order, one pass (AdamW, warm-up then cosine decay)."""

    steps = max(len(y) // h.batch_size, 1)
    warmup = max(steps // 10, 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(steps - warmup, 1), alpha=0.1, warmup_target=h.learning_rate, warmup_steps=warmup)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=schedule, weight_decay=0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), weighted_metrics=[])
    history = model.fit(x, y, batch_size=h.batch_size, epochs=1, shuffle=False, verbose=0)
    return float(history.history["loss"][-1])


def evaluate(model, x, y, batch_size=64):
    """``{"loss", "perplexity", "accuracy"}`` of ``model`` on ``(x, y)``: mean next-token cross-entropy
    (nats), its exponential, and top-1 accuracy, over every token."""
    nll, correct, count = 0.0, 0, 0
    for xb, yb in _batches(x, y, batch_size):
        logits = np.asarray(model(xb, training=False), np.float64)
        logits -= logits.max(-1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        nll -= np.take_along_axis(log_probs, yb[..., None].astype(np.int64), -1).sum()
        correct += int((logits.argmax(-1) == yb).sum())
        count += yb.size
    loss = nll / count
    return {"loss": float(loss), "perplexity": float(math.exp(loss)), "accuracy": correct / count}


def generation_speed(model, prompts, prompt_length, repeats):
    """Greedy ``generate()`` tokens per second on ``prompts`` (each kept to its first ``prompt_length``
    tokens, completed to its full length): ``{"tokens_per_s", "seconds", "new_tokens"}`` (median time of
    ``repeats`` calls after one warm-up call)."""
    model.compile(sampler="greedy")
    mask = np.zeros_like(prompts["padding_mask"], dtype=bool)
    mask[:, :prompt_length] = True
    inputs = {"token_ids": np.where(mask, prompts["token_ids"], 0).astype("int32"), "padding_mask": mask}
    model.generate(inputs, stop_token_ids=None)  # traces the generate function
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = model.generate(inputs, stop_token_ids=None)
        times.append(time.perf_counter() - start)
    new = int(np.asarray(out["padding_mask"]).sum() - mask.sum())
    seconds = float(np.median(times))
    return {"tokens_per_s": new / seconds, "seconds": seconds, "new_tokens": new}


# -- the study ------------------------------------------------------------------------------------
def cell_name(part, seed, criterion=None, p=0, stage=None):
    """The file name of one cell: ``after_s0_sleb_p2_healed.json``, ``speed_s0_p2.json``, ``init_s0_snip_p4.json``."""
    if part == "speed":
        return f"speed_s{seed}_p{p}.json"
    if part == "init":
        return f"init_s{seed}_{criterion}_p{p}.json"
    return f"after_s{seed}_{criterion}_p{p}_{stage}.json"


class _Study:
    def __init__(self, h, cells, directory, log):
        self.h, self.c, self.dir, self.log = h, cells, directory, log
        self.cells = os.path.join(directory, CELLS)
        os.makedirs(self.cells, exist_ok=True)

    def path(self, name):
        return os.path.join(self.cells, name)

    def done(self, name):
        return os.path.exists(self.path(name))

    def write(self, name, record):
        files.write_json(self.path(name), record)
        self.log(f"  {name}: " + ", ".join(f"{k} {record[k]:.4g}" for k in ("perplexity", "accuracy", "tokens_per_s",
                                                                                "seconds") if k in record))

    def dense(self, seed, data):
        """The trained dense model of ``seed`` (trained once, then loaded), and its dense cell."""
        weights = os.path.join(self.dir, f"seed_{seed}", "dense.weights.h5")
        record_path = os.path.join(self.dir, f"seed_{seed}", "dense.json")
        model = build_model(self.h, seed)
        if os.path.exists(weights) and os.path.exists(record_path):
            with files.guard(weights):
                model.load_weights(weights)
            return model, files.read_json(record_path)
        self.log(f"seed {seed}: training the dense model ({self.h.layers} layers, {self.h.train_steps} steps)")
        init_digest = _weights_digest(model)
        start = time.perf_counter()
        final_loss = train(model, self.h, *data.train(seed, self.h.train_steps))
        record = {"seed": seed, "layers": self.h.layers, "params": model.count_params(),
                  "train_seconds": time.perf_counter() - start, "final_train_loss": final_loss,
                  "init_digest": init_digest, **evaluate(model, *data.eval)}
        os.makedirs(os.path.dirname(weights), exist_ok=True)
        tmp = weights[:-len(".weights.h5")] + ".tmp.weights.h5"
        model.save_weights(tmp)
        os.replace(tmp, weights)
        files.write_json(record_path, record)
        self.log(f"  dense: perplexity {record['perplexity']:.4g}, accuracy {record['accuracy']:.4g} "
                 f"({record['train_seconds']:.0f} s)")
        return model, record

    def after(self, seed, model, dense, data):
        """The after-training cells of ``seed``: pruned and healed, each criterion and ``p``."""


        h = self.h
        heal_data = None
        if h.heal_steps:
            heal_data = tf.data.Dataset.from_tensor_slices(data.heal(seed)).batch(h.batch_size)
        sleb_order = None
        jobs = [(0, "none")] + [(p, c) for p in self.c.removed_list for c in self.c.criteria_list]
        for p, criterion in jobs:
            stages = ["pruned"] + (["healed"] if h.heal_steps else [])
            names = {s: cell_name("after", seed, criterion, p, s) for s in stages}
            if all(self.done(n) for n in names.values()):
                continue
            start = time.perf_counter()
            if self.done(names["pruned"]):
                removed = files.read_json(self.path(names["pruned"]))["removed"]
                select_seconds = 0.0
            elif p == 0:
                removed, select_seconds = [], 0.0
            elif criterion == "sleb":
                if sleb_order is None:
                    sleb_order = depth.select(model, data.calibration, max(self.c.removed_list), criterion="sleb")
                removed, select_seconds = sleb_order[:p], time.perf_counter() - start
            else:
                removed = depth.select(model, data.calibration, p, criterion=criterion, seed=seed)
                select_seconds = time.perf_counter() - start
            slim = remove(model, removed) if removed else build_model(h, seed)
            if not removed:
                slim.set_weights(model.get_weights())
            base = {"part": "after", "seed": seed, "criterion": criterion, "p": p, "removed": list(removed),
                    "layers": slim.backbone.num_layers, "params": slim.count_params(),
                    "select_seconds": select_seconds}
            if not self.done(names["pruned"]):
                self.write(names["pruned"], {**base, "stage": "pruned", **evaluate(slim, *data.eval)})
            if h.heal_steps and not self.done(names["healed"]):
                start = time.perf_counter()
                history = heal(slim, heal_data, epochs=1, learning_rate=h.heal_learning_rate,
                               lora_rank=h.lora_rank or None)
                self.write(names["healed"], {**base, "stage": "healed", "heal_seconds": time.perf_counter() - start,
                                             "heal_final_loss": float(history.history["loss"][-1]),
                                             **evaluate(slim, *data.eval)})
            del slim
            gc.collect()

    def speed(self, seed, model, data):
        """The speed cells of ``seed``: the model without its last ``p`` layers, ``p`` = 0 and each removed."""

        for p in [0] + self.c.removed_list:
            name = cell_name("speed", seed, p=p)
            if self.done(name):
                continue
            removed = depth.select(model, None, p, criterion="last") if p else []
            slim = remove(model, removed) if removed else model
            record = {"part": "speed", "seed": seed, "p": p, "layers": slim.backbone.num_layers,
                      "params": slim.count_params(), "batch": self.h.speed_batch, "prompt": self.h.speed_prompt,
                      **generation_speed(slim, data.prompts, self.h.speed_prompt, self.h.speed_repeats)}
            self.write(name, record)
            del slim
            gc.collect()

    def init(self, seed, dense, data):
        """The at-initialization cells of ``seed``: criterion, remove ``p``, train the slim model."""

        h = self.h
        for p in self.c.init_removed_list:
            for criterion in self.c.init_criteria_list:
                name = cell_name("init", seed, criterion, p)
                if self.done(name):
                    continue
                self.log(f"seed {seed}: {criterion} at initialization, {p} layers removed, training")
                untrained = build_model(h, seed)
                init_digest = _weights_digest(untrained)
                start = time.perf_counter()
                removed = depth.select(untrained, data.calibration, p, criterion=criterion, seed=seed)
                select_seconds = time.perf_counter() - start
                slim = remove(untrained, removed)
                start = time.perf_counter()
                final_loss = train(slim, h, *data.train(seed, h.train_steps))
                self.write(name, {"part": "init", "seed": seed, "criterion": criterion, "p": p, "removed": removed,
                                  "layers": slim.backbone.num_layers, "params": slim.count_params(),
                                  "select_seconds": select_seconds, "train_seconds": time.perf_counter() - start,
                                  "final_train_loss": final_loss,
                                  "same_init_as_dense": init_digest == dense["init_digest"],
                                  **evaluate(slim, *data.eval)})
                del slim, untrained
                gc.collect()


def load_data(h):
    """Validates ``h`` and loads its corpus and windows (raises ``ValueError`` for bad settings, a text
    too short for them, or KerasHub missing): what :func:`run` needs, for a binary to check before it
    writes anything."""
    h.validate()
    _require_keras_hub()
    return _Data(h, corpus(h.corpus_root))


def _require_keras_hub():
    """The study's model is KerasHub's GPT-2, an optional dependency of the package: one line if it is missing."""
    try:
        import keras_hub  # noqa: F401
    except ImportError:
        raise ValueError("The depth-pruning study builds KerasHub's GPT-2, and keras-hub is not installed: "
                         "pip install 'keras-lottery[hub]' (or keras-hub).") from None


def run(h, cells, directory, log=print, data=None):
    """Runs (or resumes) the ``cells`` (:class:`DepthStudyCells`) of the study ``h`` in ``directory``;
    returns :func:`summarize` of every cell there.

    ``data``: :func:`load_data` of ``h`` (loaded here when None). Raises ``ValueError`` before any
    training when the settings are invalid, or the directory holds a study with other settings
    (``hparams.json``, as written by :class:`keras_lottery.runs.RunDirectory` with the group ``study``)
    or another corpus (``corpus.json``).
    """

    data = data or load_data(h)
    cells.validate(h.layers)
    record = data.text["record"]
    settings = {"study": h}
    runs.check_record(os.path.join(directory, runs.HPARAMS), runs.as_dict(settings), what="depth study",
                      defaults=runs.field_defaults(settings))
    recorded = files.read_json(os.path.join(directory, CORPUS_RECORD))
    if recorded is not None and recorded.get("sha256_16") != record["sha256_16"]:
        raise ValueError(f"{directory} was started on another corpus ({recorded.get('files')} files, sha256 "
                         f"{recorded.get('sha256_16')}; now {record['files']} files, sha256 {record['sha256_16']}): "
                         "use another --run_name.")
    os.makedirs(directory, exist_ok=True)
    if not os.path.exists(os.path.join(directory, runs.HPARAMS)):
        files.write_json(os.path.join(directory, runs.HPARAMS), runs.as_dict(settings))
    if recorded is None:
        files.write_json(os.path.join(directory, CORPUS_RECORD), record)
    study = _Study(h, cells, directory, log)
    log(f"corpus: {record['train_files']} training files ({record['train_bytes']} bytes), "
        f"{record['heldout_files']} held out ({record['heldout_bytes']} bytes), sha256 {record['sha256_16']}")

    for part in [p for p in PARTS if p in cells.part_list]:  # every seed of a part before the next part
        for seed in cells.seed_list:
            keras.backend.clear_session()
            model, dense = study.dense(seed, data)
            if part == "after":
                study.after(seed, model, dense, data)
            elif part == "speed":
                study.speed(seed, model, data)
            else:
                study.init(seed, dense, data)
            del model
            gc.collect()
    return summarize(directory)


# -- results --------------------------------------------------------------------------------------
def load_cells(directory):
    """Every cell of a study directory (the dense records included as ``after`` cells of ``p = 0``)."""
    cells = [files.read_json(path) for path in sorted(glob.glob(os.path.join(directory, CELLS, "*.json")))]
    for path in sorted(glob.glob(os.path.join(directory, "seed_*", "dense.json"))):
        cells.append({**files.read_json(path), "part": "dense"})
    return cells


def _stats(values):
    values = np.asarray(values, np.float64)
    return {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "min": float(values.min()), "max": float(values.max()), "n": int(len(values))}


def summarize(directory):
    """Mean, standard deviation (``ddof=1``), min, max and ``n`` over seeds of every measured quantity:
    ``{"after": [...], "speed": [...], "init": [...]}`` rows (see :func:`write_results`).

    Besides perplexity and accuracy, ``relative_perplexity`` is each cell's perplexity over the dense
    model's of the same seed (1.0 = as good as the dense model it came from; for a healed cell, over the
    healed dense model's: the dense model given the same extra steps), and ``speedup`` each slim
    model's tokens/s over the full model's of the same seed: ratios within a seed, so that a seed whose
    dense model trained worse does not widen the spread of what removing layers costs."""
    cells = load_cells(directory)
    groups = {}
    for cell in cells:
        part = cell["part"]
        if part == "after":
            key = ("after", cell["criterion"], cell["p"], cell["stage"])
        elif part == "init":
            key = ("init", cell["criterion"], cell["p"], None)
        elif part == "speed":
            key = ("speed", None, cell["p"], None)
        else:
            key = ("init", "dense", 0, None)  # the dense model: the at-initialization reference
        groups.setdefault(key, []).append(cell)
    out = {"after": [], "speed": [], "init": []}
    full_speed = {c["seed"]: c["tokens_per_s"] for c in cells if c["part"] == "speed" and c["p"] == 0}
    dense_ppl = {c["seed"]: c["perplexity"] for c in cells if c["part"] == "dense"}
    healed_dense_ppl = {c["seed"]: c["perplexity"] for c in cells
                        if c["part"] == "after" and c["p"] == 0 and c["stage"] == "healed"}
    for (part, criterion, p, stage), members in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][2],
                                                                                       str(kv[0][1]), str(kv[0][3]))):
        row = {"p": p, "layers": members[0]["layers"], "params": members[0]["params"],
               "seeds": sorted(c["seed"] for c in members)}
        if part == "speed":
            row["tokens_per_s"] = _stats([c["tokens_per_s"] for c in members])
            ratios = [c["tokens_per_s"] / full_speed[c["seed"]] for c in members if c["seed"] in full_speed]
            row["speedup"] = _stats(ratios) if ratios else None
        else:
            row.update(criterion=criterion, perplexity=_stats([c["perplexity"] for c in members]),
                       accuracy=_stats([c["accuracy"] for c in members]))
            reference = healed_dense_ppl if stage == "healed" else dense_ppl
            relative = [c["perplexity"] / reference[c["seed"]] for c in members if c["seed"] in reference]
            row["relative_perplexity"] = _stats(relative) if relative else None
            if stage:
                row["stage"] = stage
            choices = {}
            for c in members:
                if c.get("removed"):
                    key = ",".join(sorted(n.rsplit("_", 1)[-1] for n in c["removed"]))
                    choices[key] = choices.get(key, 0) + 1
            if choices:
                row["removed"] = dict(sorted(choices.items()))
        out[part].append(row)
    return out


def _pm(stats, digits=3, scale=1.0):
    if not stats:
        return ""
    return f"{stats['mean'] * scale:.{digits}f} ± {stats['sd'] * scale:.{digits}f}"


def _short(choices):
    """``{"6,7": 2, "5,7": 1}`` -> ``"6,7 (2); 5,7 (1)"``: the removed layer indices and how many seeds chose them."""
    return "; ".join(f"{k} ({n})" for k, n in sorted(choices.items(), key=lambda kv: (-kv[1], kv[0])))


def markdown(summary):
    """The study's tables as Markdown: after training (pruned and healed side by side), speed, at initialization."""
    lines = []
    after = summary["after"]
    if after:
        by = {(r["criterion"], r["p"], r.get("stage")): r for r in after}
        dense = by.get(("none", 0, "pruned"))
        lines += ["### After training: held-out perplexity and next-token accuracy (mean ± sd over seeds)", "",
                  "| removed | criterion | layers | params | perplexity | × dense | accuracy % | healed perplexity | "
                  "healed × healed dense | healed accuracy % | seeds | layers removed (seeds) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        keys = sorted({(r["p"], r["criterion"]) for r in after}, key=lambda k: (k[0], AFTER_CRITERIA.index(k[1])
                                                                                 if k[1] in AFTER_CRITERIA else -1))
        for p, criterion in keys:
            pruned, healed = by.get((criterion, p, "pruned")), by.get((criterion, p, "healed"))
            row = pruned or healed
            lines.append(f"| {p} | {'(dense)' if criterion == 'none' else criterion} | {row['layers']} | "
                         f"{row['params']:,} | {_pm(pruned and pruned['perplexity'], 2)} | "
                         f"{_pm(pruned and pruned['relative_perplexity'], 3)} | "
                         f"{_pm(pruned and pruned['accuracy'], 1, 100)} | {_pm(healed and healed['perplexity'], 2)} | "
                         f"{_pm(healed and healed['relative_perplexity'], 3)} | "
                         f"{_pm(healed and healed['accuracy'], 1, 100)} | {len(row['seeds'])} | "
                         f"{_short(row.get('removed', {}))} |")
        if dense:
            lines += ["", "× dense: perplexity over the dense model's of the same seed. The healed dense row "
                      "(removed 0) "
                      "is the dense model fine-tuned with the same healing steps (the control for healing); "
                      "× healed dense: a healed model's perplexity over that control's, same seed."]
        lines.append("")
    if summary["speed"]:
        lines += ["### Generation speed (greedy generate(), tokens/s, mean ± sd over seeds)", "",
                  "| removed | layers | params | tokens/s | speed-up vs full | seeds |", "|---|---|---|---|---|---|"]
        for r in summary["speed"]:
            lines.append(f"| {r['p']} | {r['layers']} | {r['params']:,} | {_pm(r['tokens_per_s'], 0)} | "
                         f"{_pm(r['speedup'], 2)} | {len(r['seeds'])} |")
        lines.append("")
    if summary["init"]:
        lines += ["### At initialization: remove, then train (held-out, mean ± sd over seeds)", "",
                  "| removed | criterion | layers | params | perplexity | × dense | accuracy % | seeds | "
                  "layers removed (seeds) |", "|---|---|---|---|---|---|---|---|---|"]
        for r in sorted(summary["init"], key=lambda r: (r["p"], r["criterion"])):
            lines.append(f"| {r['p']} | {'(dense, trained)' if r['criterion'] == 'dense' else r['criterion']} | "
                         f"{r['layers']} | {r['params']:,} | {_pm(r['perplexity'], 2)} | "
                         f"{_pm(r['relative_perplexity'], 3)} | {_pm(r['accuracy'], 1, 100)} | {len(r['seeds'])} | "
                         f"{_short(r.get('removed', {}))} |")
        lines.append("")
    return "\n".join(lines)


_Y = "relative_perplexity"


def plot(summary, path, corpus_name="the Python standard library"):
    """Held-out perplexity relative to the dense model of the same seed, against removed layers: after
    training (pruned, healed) and at initialization (mean ± sd over seeds).
    Returns the path, or None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    dense = [r for r in summary["after"] if r["criterion"] == "none"]
    for ax, stage in zip(axes[:2], ("pruned", "healed")):
        for i, criterion in enumerate(AFTER_CRITERIA):
            rows = sorted([r for r in summary["after"] if r.get("stage") == stage and r["criterion"] in
                           (criterion, "none")], key=lambda r: r["p"])
            if len(rows) <= len([r for r in rows if r["criterion"] == "none"]):
                continue
            ax.errorbar([r["p"] + 0.05 * (i - 2) for r in rows], [r[_Y]["mean"] for r in rows],
                        yerr=[r[_Y]["sd"] for r in rows], marker="o", capsize=3, label=criterion)
        ax.set_title(f"after training, {'no healing' if stage == 'pruned' else 'healed'}")
        ax.set_xlabel("layers removed")
        ax.set_ylabel("held-out perplexity / dense (same seed)" if stage == "pruned"
                      else "perplexity / healed dense (same seed)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[2]
    init = summary["init"]
    base = [r for r in init if r["criterion"] == "dense"]
    for i, criterion in enumerate(INIT_CRITERIA):
        rows = sorted(base + [r for r in init if r["criterion"] == criterion], key=lambda r: r["p"])
        if len(rows) > len(base):
            ax.errorbar([r["p"] + 0.05 * (i - 1) for r in rows], [r[_Y]["mean"] for r in rows],
                        yerr=[r[_Y]["sd"] for r in rows], marker="o", capsize=3, label=criterion)
    ax.set_title("at initialization, then trained")
    for ax in axes:
        ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("layers removed")
    ax.set_ylabel("held-out perplexity / dense (same seed)")
    ax.grid(alpha=0.3)
    if init:
        ax.legend(fontsize=8)
    fig.suptitle(f"GPT2CausalLM on {corpus_name} (bytes): perplexity relative to the dense model, mean ± sd over seeds"
                 + (f" ({len(dense[0]['seeds'])} seeds)" if dense else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_results(directory, out_dir=None):
    """Writes ``results.json`` (settings, corpus, summary, every cell), ``results.md`` and
    ``perplexity_vs_removed.png`` into ``out_dir`` (default: the study directory). Returns the summary."""
    out_dir = out_dir or directory
    os.makedirs(out_dir, exist_ok=True)
    summary = summarize(directory)
    hparams = files.read_json(os.path.join(directory, "hparams.json"))
    record = {"hparams": hparams, "corpus": files.read_json(os.path.join(directory, CORPUS_RECORD)),
              "summary": summary, "cells": load_cells(directory),
              "software": {"python": platform.python_version(), "platform": platform.platform()}}
    try:
        import keras_hub

        record["software"].update(keras=keras.__version__, keras_hub=keras_hub.__version__, tensorflow=tf.__version__)
    except ImportError:  # pragma: no cover
        pass
    files.write_json(os.path.join(out_dir, "results.json"), record)
    files.write_text(os.path.join(out_dir, "results.md"), markdown(summary))
    name = "the Python standard library" if (record["corpus"] or {}).get("root") == "stdlib" else "a *.py corpus"
    plot(summary, os.path.join(out_dir, "perplexity_vs_removed.png"), name)
    return summary


if __name__ == "__main__":  # pragma: no cover
    sys.exit("Run the binary: keras-lottery depth_pruning --help")
