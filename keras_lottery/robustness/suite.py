"""The corrupted test set of a dataset, generated once and cached on disk, and the corruption metrics.

Hendrycks & Dietterich evaluate every model on the same fixed corrupted files; ``CorruptionSuite``
does the same: the images of each corruption (all five severities) are generated with a fixed seed
the first time they are asked for, written atomically as ``<cache>/<key>/<corruption>.npy`` (uint8,
``(5, N, H, W, C)``), and read back afterwards. ``key`` names the test images (their count and a
hash of their bytes) and the seed, so another subset or seed never reads a stale file.

Metrics, from accuracies ``{corruption: [accuracy at severity 1..5]}``:

* mean corruption accuracy: the mean over the 15 corruptions of CIFAR-10-C and the 5 severities
  (the extra corruptions are reported, not averaged in, as in the paper);
* corruption error CE_c = sum_s E_{s,c}(model) / sum_s E_{s,c}(dense), and mCE, its mean over the 15
  corruptions (Hendrycks & Dietterich's definition, with the dense model as the baseline instead of
  AlexNet), in percent: below 100 is more robust than the dense model.
"""

import hashlib
import os
import time

import keras
import numpy as np

from keras_lottery import files
from keras_lottery.robustness import corruptions

GENERATOR_VERSION = 2  # bump when a corruption changes, so cached files are regenerated (2: glass, motion, frost)


def suite_key(images, seed):
    """The cache folder name of a test set: its size, a hash of its pixels, the seed and the generator version."""
    digest = hashlib.sha1(np.ascontiguousarray(images).tobytes()).hexdigest()[:12]
    return f"n{len(images)}_{digest}_seed{int(seed)}_v{GENERATOR_VERSION}"


def as_uint8(pixels):
    """Test images as uint8 (float images in [0, 1] are scaled by 255 and rounded)."""
    pixels = np.asarray(pixels)
    if pixels.dtype == np.uint8:
        return pixels
    return np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8)


class CorruptionSuite:
    """The corrupted versions of one test set, cached under ``cache_dir``.

    Args:
      cache_dir: the cache root (e.g. ``<run_root>/corruptions/<dataset>``).
      images: the clean test images, uint8 (N, H, W, C) (float images in [0, 1] are converted).
      seed: the generation seed (one per dataset; the default 0 is what every committed figure uses).
      log: where the progress bar and messages go (None: silent).
    """

    def __init__(self, cache_dir, images, seed=0, log=print):
        self.images = as_uint8(images)
        self.seed = int(seed)
        self.directory = os.path.join(cache_dir, suite_key(self.images, seed))
        self.log = log

    def path(self, name):
        """The cache file of corruption ``name``."""
        return os.path.join(self.directory, f"{name}.npy")

    def cached(self, name):
        """True when corruption ``name`` is already on disk."""
        return os.path.isfile(self.path(name))

    def get(self, name):
        """The images of corruption ``name`` at severities 1..5, uint8 ``(5, N, H, W, C)`` (generated once)."""
        path = self.path(name)
        if os.path.isfile(path):
            with files.guard(path):
                stack = np.load(path)
            if stack.shape != (5, *self.images.shape):
                raise files.DamagedFileError(path, f"shape {stack.shape}, expected {(5, *self.images.shape)}")
            return stack
        stack = np.stack([corruptions.corrupt(self.images, name, s, self.seed) for s in corruptions.SEVERITIES])
        os.makedirs(self.directory, exist_ok=True)
        with files.atomic(path) as tmp:
            np.save(tmp, stack)
        return stack

    def generate(self, names):
        """Generates (or finds) every corruption in ``names``, with a progress bar; returns the seconds spent."""
        missing = [n for n in names if not self.cached(n)]
        if not missing:
            return 0.0
        start = time.perf_counter()
        bar = keras.utils.Progbar(len(missing), unit_name="corruption") if self.log else None
        if self.log:
            self.log(f"Generating {len(missing)} corruption(s) x 5 severities of {len(self.images)} images into "
                     f"{self.directory}")
        for i, name in enumerate(missing):
            self.get(name)
            if bar is not None:
                bar.update(i + 1, finalize=i + 1 == len(missing))
        return time.perf_counter() - start


def accuracies(predict, suite, labels, names, severities=corruptions.SEVERITIES, progress=None):
    """``{corruption: [accuracy at each of severities]}`` with ``predict(uint8 images) -> labels``; only the
    severities asked for are classified. ``progress(done)`` is called after each (corruption, severity)."""
    labels = np.asarray(labels)
    for severity in severities:
        corruptions.check(corruptions.CORRUPTIONS[0], severity)
    out, done = {}, 0
    for name in names:
        stack = suite.get(name)
        out[name] = []
        for severity in severities:
            out[name].append(float((predict(stack[severity - 1]) == labels).mean()))
            done += 1
            if progress is not None:
                progress(done)
    return out


def mean_corruption_accuracy(per_corruption):
    """The mean accuracy over the 15 CIFAR-10-C corruptions present and their severities (None if none)."""
    values = [a for name, accs in per_corruption.items() if name in corruptions.CORRUPTIONS for a in accs]
    return float(np.mean(values)) if values else None


def corruption_errors(per_corruption, baseline):
    """``{corruption: CE in percent}``: the model's summed error over severities over the baseline's."""
    out = {}
    for name, accs in per_corruption.items():
        base = sum(1.0 - a for a in baseline[name])
        out[name] = 100.0 * sum(1.0 - a for a in accs) / base if base > 0 else float("nan")
    return out


def mce(per_corruption, baseline):
    """Mean corruption error (percent) over the 15 corruptions, relative to ``baseline`` (the dense model)."""
    errors = corruption_errors(per_corruption, baseline)
    values = [v for name, v in errors.items() if name in corruptions.CORRUPTIONS]
    return float(np.mean(values)) if values else None
