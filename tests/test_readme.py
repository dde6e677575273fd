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
