"""The README's Python example runs as written (on small synthetic data, one epoch)."""

import os
import re

from tests.helpers import REPO


def test_readme_python_example_runs(tmp_path, monkeypatch):
    readme = open(os.path.join(REPO, "README.md")).read()
    section = readme[readme.index("## Using it from Python"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    replacements = {'dataset="fashion_mnist"': 'dataset="synthetic:28x28x1:10:600", validation_size=88',
                    "epochs=10": "epochs=1",
                    # GraSP is tested in tests/blocks; here it would only add a minute of scoring
                    'criterion="grasp"': 'criterion="random"', '"saved_models/': f'"{tmp_path}/'}
    for old, new in replacements.items():
        assert old in code, f"README example changed: {old!r} not found"
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert len(namespace["ticket"].layers) < len(namespace["model"].layers)
    assert os.path.isdir(tmp_path / "resnet20_ticket" / "1")


def _run_readme_section(heading, namespace, tmp_path, monkeypatch):
    """Runs the first Python block after ``heading`` in the README, in ``tmp_path``, with ``namespace``'s
    names defined (the data the snippet leaves to the reader); returns the namespace."""
    readme = open(os.path.join(REPO, "README.md")).read()
    section = readme[readme.index(heading):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    code = code.replace('"saved_models/', f'"{tmp_path}/')
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace


def test_readme_keras_hub_example_runs(tmp_path, monkeypatch):
    import keras
    import numpy as np

    import keras_lottery as kl

    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 512, (8, 16)).astype("int32")
    namespace = _run_readme_section("### Any Keras model", {
        "kl": kl, "keras": keras, "next_tokens": np.roll(tokens, -1, axis=1),
        "tokens": {"token_ids": tokens, "padding_mask": np.ones_like(tokens)},
        "prompt": {"token_ids": tokens[:1], "padding_mask": np.ones_like(tokens[:1])}}, tmp_path, monkeypatch)
    lm = namespace["lm"]
    assert type(lm).__name__ == "GPT2CausalLM"
    assert abs(kl.Mask.from_model(lm).density - 0.5) < 0.01
    assert os.path.isdir(tmp_path / "gpt2_ticket" / "1")


def test_readme_depth_pruning_example_runs(tmp_path, monkeypatch):
    import keras
    import keras_hub
    import numpy as np
    import tensorflow as tf

    import keras_lottery as kl

    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 64, (4, 16)).astype("int32")
    x = {"token_ids": tokens, "padding_mask": np.ones_like(tokens)}
    backbone = keras_hub.models.GPT2Backbone(vocabulary_size=64, num_layers=4, num_heads=2, hidden_dim=16,
                                             intermediate_dim=32, max_sequence_length=32)
    namespace = {"kl": kl, "keras": keras, "tokens": x, "next_tokens": np.roll(tokens, -1, axis=1),
                 "lm": keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None),
                 "train_batches": tf.data.Dataset.from_tensor_slices((x, np.roll(tokens, -1, axis=1))).batch(2),
                 "prompt": {"token_ids": tokens[:1], "padding_mask": np.ones_like(tokens[:1])}}
    _run_readme_section("### Depth pruning", namespace, tmp_path, monkeypatch)
    slim = namespace["slim"]
    assert type(slim).__name__ == "GPT2CausalLM" and slim.backbone.num_layers == 2
    assert len(namespace["removed"]) == 2
    assert os.path.isdir(tmp_path / "gpt2_slim" / "1")
