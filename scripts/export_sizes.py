"""Measures what sparsity and block removal do to an exported SavedModel's size.

Untrained zoo models, pruned by global magnitude (``kl.prune``; the size of a float32 tensor
full of zeros does not depend on training), or with residual blocks removed, exported with
``keras_lottery.export.for_serving``; prints a Markdown table of the numbers in the model cards.

  python scripts/export_sizes.py
"""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

import keras_lottery as kl  # noqa: E402
from keras_lottery import blocks, export  # noqa: E402


def magnitude_ticket(dense, density):
    """``dense`` masked and pruned by global magnitude to ``density`` (output layer included)."""
    masked = kl.mask(dense)
    kl.prune(masked, kl.GlobalMagnitude(density=density))
    return masked


def main():
    keras.utils.set_random_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        lenet = kl.models.lenet_300_100(seed=0)
        for density in (0.2, 0.1, 0.02):
            result = export.for_serving(magnitude_ticket(lenet, density), os.path.join(tmp, f"lenet{density}"),
                                        dense_model=lenet)
            rows.append((f"LeNet-300-100, weight ticket, density {density}", result.card))
        resnet = kl.models.resnet_cifar(20, seed=0)
        removable = blocks.find_blocks(resnet, warn=False).removable
        ticket = blocks.remove(resnet, [b.name for b in removable[:3]])
        result = export.for_serving(ticket, os.path.join(tmp, "resnet"), dense_model=resnet)
        rows.append(("ResNet-20, layer ticket, 3 blocks removed", result.card))
    print("| model | density | FLOPs ticket / dense | SavedModel bytes ticket / dense | gzip bytes ticket / dense |")
    print("|---|---|---|---|---|")
    for label, card in rows:
        s, f = card["size"], card["flops"]
        print(f"| {label} | {card['density']['global']['density']:.3f} | {f['ticket']:,} / {f['dense']:,} | "
              f"{s['ticket']['bytes']:,} / {s['dense']['bytes']:,} | "
              f"{s['ticket']['gzip_bytes']:,} / {s['dense']['gzip_bytes']:,} ({s['gzip_ratio']:.2f}x) |")


if __name__ == "__main__":
    main()
