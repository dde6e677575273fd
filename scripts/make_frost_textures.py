"""Writes keras_lottery/robustness/frost_textures.npz from the frost photographs of CIFAR-10-C.

    python scripts/make_frost_textures.py DIR   # DIR holds frost1.png ... frost5.jpg

The photographs are those Hendrycks & Dietterich's generator for CIFAR-10-C reads (the
hendrycks/robustness repository, ImageNet-C/create_c/, Apache-2.0). Like that generator, each is
shrunk to a fifth of its size and only the first five are used; what is stored is the shrunk RGB
texture as uint8, so the package does not ship the megabytes of the originals.

The generator shrinks with OpenCV's ``cv2.resize(frost, (0, 0), fx=0.2, fy=0.2)``, whose default
linear interpolation maps output pixel ``d`` to input coordinate ``(d + 0.5) * 5 - 0.5 = 5 d + 2``: a
whole pixel, so the shrink is plain decimation, ``image[2::5, 2::5]``, without any smoothing (its
output size, ``round(size * 0.2)``, is the decimation's for every size). OpenCV reads the PNGs'
colour without their alpha channel, as Pillow's ``convert("RGB")`` does here.
"""

import os
import sys

import numpy as np
from PIL import Image

NAMES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")
TARGET = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "keras_lottery", "robustness",
                      "frost_textures.npz")


def shrink(image):
    """``image`` (H, W, ...) shrunk to a fifth as ``cv2.resize(image, (0, 0), fx=0.2, fy=0.2)`` does."""
    image = np.asarray(image)
    if image.ndim < 2 or min(image.shape[:2]) < 3:
        raise ValueError(f"A frost photograph must be an image of at least 3x3 pixels, got shape {image.shape}.")
    return image[2::5, 2::5]


def main(directory, target=TARGET):
    """Reads the five photographs from ``directory`` and writes the shrunk textures to ``target``."""
    textures = {}
    for index, name in enumerate(NAMES):
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            raise SystemExit(f"error: {path} not found (DIR must hold {', '.join(NAMES)}).")
        with Image.open(path) as image:
            textures[f"frost{index + 1}"] = np.ascontiguousarray(shrink(np.asarray(image.convert("RGB"), np.uint8)))
    np.savez_compressed(target, **textures)
    print({key: value.shape for key, value in textures.items()}, os.path.getsize(target), "bytes")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python scripts/make_frost_textures.py DIR   (DIR holds frost1.png ... frost5.jpg)")
    main(sys.argv[1])
