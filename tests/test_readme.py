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


def test_readme_keras_hub_example_runs(tmp_path, monkeypatch):
    import keras
    import numpy as np

    import keras_lottery as kl

    readme = open(os.path.join(REPO, "README.md")).read()
    section = readme[readme.index("### Any Keras model"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    code = code.replace('"saved_models/', f'"{tmp_path}/')
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 512, (8, 16)).astype("int32")
    namespace = {"kl": kl, "keras": keras, "next_tokens": np.roll(tokens, -1, axis=1),
                 "tokens": {"token_ids": tokens, "padding_mask": np.ones_like(tokens)},
                 "prompt": {"token_ids": tokens[:1], "padding_mask": np.ones_like(tokens[:1])}}
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), namespace)
    lm = namespace["lm"]
    assert type(lm).__name__ == "GPT2CausalLM"
    assert abs(kl.Mask.from_model(lm).density - 0.5) < 0.01
    assert os.path.isdir(tmp_path / "gpt2_ticket" / "1")
