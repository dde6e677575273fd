"""The custom-training-loop recipe of docs/masks.md (GradientTape + optimizer.apply, gradual pruning,
rewinding) runs exactly as written, and does what it says."""

import os
import re

import numpy as np

import keras_lottery as kl
from tests.helpers import REPO, dead_entries


def _recipe():
    doc = open(os.path.join(REPO, "docs", "masks.md")).read()
    section = doc[doc.index("### A custom training loop"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_custom_loop_recipe_runs_as_written():
    namespace = {}
    exec(compile(_recipe(), "docs/masks.md", "exec"), namespace)
    masked, optimizer, point, gradual = (namespace[k] for k in ("masked", "optimizer", "point", "gradual"))
    assert point.step == 5 and int(point.optimizer[0]) == 5
    assert [turn for turn, _, _ in gradual.history] == [20, 30, 40]  # the turn at 10 targets sparsity 0
    report = kl.Mask.from_model(masked).report()["layers"]
    assert {path: r["alive"] for path, r in report.items()} == {
        path: round(0.2 * r["total"]) for path, r in report.items()}  # layerwise, final sparsity 0.8
    assert int(optimizer.iterations) == 25  # rewound to 5, then 20 more steps
    assert all(values.size and not np.any(values) for values in dead_entries(masked).values())
    # The survivors were rewound to theta_5 and trained on from there: not theta_5 any more, not zero.
    mask = kl.Mask.from_model(masked)
    kernel = masked.get_layer("fc1").layer.kernel
    theta_5 = next(w for v, w in zip(masked.weights, point.weights) if v is kernel)
    alive = mask["fc1/kernel"]
    assert np.all(np.asarray(kernel)[alive] != 0) and not np.allclose(np.asarray(kernel)[alive], theta_5[alive])
