"""docs/migrating_from_tfmot.md: every snippet runs. The ``tfmot`` blocks, in order, are one program on
TFMOT / tf_keras; the ``keras3`` blocks, in order, another on Keras 3 (each in a fresh interpreter)."""

import os
import re
import subprocess
import sys

import pytest

from tests.helpers import REPO, child_env

DOC = os.path.join(REPO, "docs", "migrating_from_tfmot.md")
BLOCK = re.compile(r"^```python (tfmot|keras3)\n(.*?)^```", re.S | re.M)


def _program(kind):
    with open(DOC) as f:
        blocks = [code for label, code in BLOCK.findall(f.read()) if label == kind]
    return blocks, "\n".join(blocks) + "\nprint('SNIPPETS OK')\n"


def test_every_fenced_python_block_is_labelled():
    with open(DOC) as f:
        text = f.read()
    assert text.count("```python") == len(BLOCK.findall(text))
    assert len(_program("tfmot")[0]) >= 8 and len(_program("keras3")[0]) >= 9


@pytest.mark.parametrize("kind", ["keras3", "tfmot"])
def test_snippets_run(kind, tmp_path):
    _, program = _program(kind)
    path = os.path.join(tmp_path, f"{kind}.py")
    with open(path, "w") as f:
        f.write(program)
    proc = subprocess.run([sys.executable, "-W", "ignore", path], cwd=tmp_path, env=child_env(), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0 and "SNIPPETS OK" in proc.stdout, proc.stderr[-5000:]
