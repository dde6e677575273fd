"""Which weights ``keras_lottery.mask`` covers in each model family (docs/masks.md, "Model families").

Builds tiny KerasHub models from constructor arguments (nothing is downloaded), masks each, and prints a
Markdown table: the model's class after masking, the weights masked, the trainable weights of rank >= 2
left dense (and which), and whether the masked model's output equals the model's.

    .venv/bin/python scripts/mask_coverage_table.py
"""

import os
import sys
import warnings

import keras
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "hub"))
import conftest  # noqa: E402  (the test matrix's builders: one definition of the tiny models)

import keras_lottery as kl  # noqa: E402


def row(name):
    model = conftest.BUILDERS[name]()
    x, _ = (conftest._text_batch(segments=name.startswith("bert")) if name in conftest.TEXT
            else conftest._image_batch())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        masked = kl.mask(model)
    masked_vars = [v for layer in kl.masking.masked_layers(masked) for _, v, _ in layer.masked_weights()]
    dense = kl.layers.unmasked_weights(masked, masked_vars)
    same = np.allclose(keras.tree.flatten(masked(x))[0], keras.tree.flatten(model(x))[0], atol=1e-5)
    return (f"| {type(model).__name__} | {type(masked).__name__} | {len(masked_vars)} | "
            f"{len(dense)}{' (' + ', '.join(dense) + ')' if dense else ''} | {'yes' if same else 'NO'} |")


def main():
    print("| model | class after `kl.mask` | weights masked | rank >= 2 weights left dense | same output |")
    print("|---|---|---|---|---|")
    for name in sorted(conftest.BUILDERS):
        print(row(name))


if __name__ == "__main__":
    main()
