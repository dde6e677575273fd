"""Writes keras_lottery/robustness/frost_textures.npz from the frost photographs of CIFAR-10-C.

    python scripts/make_frost_textures.py DIR   # DIR holds frost1.png ... frost5.jpg

The photographs are those Hendrycks & Dietterich's generator for CIFAR-10-C reads (the
hendrycks/robustness repository, ImageNet-C/create_c/, Apache-2.0). Like that generator, each is
shrunk to a fifth of its size (bilinear) and only the first five are used; what is stored is the
shrunk RGB texture as uint8, so the package does not ship the megabytes of the originals.
"""

import os
import sys

import numpy as np
from PIL import Image

NAMES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")
TARGET = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "keras_lottery", "robustness",
                      "frost_textures.npz")


def main(directory):
    textures = {}
    for index, name in enumerate(NAMES):
        image = Image.open(os.path.join(directory, name)).convert("RGB")
        small = image.resize((int(image.width * 0.2), int(image.height * 0.2)), Image.BILINEAR)
        textures[f"frost{index + 1}"] = np.asarray(small, dtype=np.uint8)
    np.savez_compressed(TARGET, **textures)
    print({key: value.shape for key, value in textures.items()}, os.path.getsize(TARGET), "bytes")


if __name__ == "__main__":
    main(sys.argv[1])
