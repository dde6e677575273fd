"""Throughput of the robustness evaluation: generating the corruption suite, classifying it, and PGD.

``corruption_times(images, names)`` generates every corruption at severities 1..5 once (no cache)
and returns the seconds per corruption. ``classify_rate(model, images, normalization)`` returns
corrupted images classified per second the way the robustness experiment classifies them (the best
of ``repeat`` passes after a warm-up). ``pgd_rate(model, pixels, labels, normalization)`` runs a PGD
attack (after one warm-up batch that traces the compiled function) and returns adversarial images
per second, counting each image once per attack (``steps`` gradient steps each).
"""

import time

import numpy as np

from keras_lottery.robustness import attacks, corruptions


def corruption_times(images, names, seed=0):
    """``{corruption: seconds}`` to generate its five severities for ``images`` (uint8 NHWC)."""
    out = {}
    for name in names:
        start = time.perf_counter()
        for severity in corruptions.SEVERITIES:
            corruptions.corrupt(images, name, severity, seed)
        out[name] = time.perf_counter() - start
    return out


def images_per_second(times, images):
    """``{corruption: images per second}`` from :func:`corruption_times` (5 severities of ``images`` each)."""
    return {name: 5 * images / seconds for name, seconds in times.items()}


def classify_rate(model, images, normalization, repeat=2):
    """Corrupted uint8 ``images`` classified per second by ``Attacker.classify`` (the experiment's path),
    the best of ``repeat`` timed passes after a warm-up pass that traces the compiled function."""
    attacker = attacks.Attacker(model, normalization)
    classify = attacker.classify
    classify(images[:256])
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        classify(images)
        best = min(best, time.perf_counter() - start)
    return len(images) / best


def pgd_rate(model, pixels, labels, normalization, epsilon=0.05, steps=10, batch_size=256, repeat=2):
    """PGD-``steps`` adversarial images per second on ``pixels`` (the best of ``repeat`` timed passes)."""
    attacker = attacks.Attacker(model, normalization)
    settings = attacks.AttackSettings(kind="pgd", steps=steps)
    labels = np.asarray(labels, np.int64)
    attacker.perturb(pixels[:batch_size], labels[:batch_size], epsilon, settings, batch_size=batch_size)  # trace
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        attacker.perturb(pixels, labels, epsilon, settings, batch_size=batch_size)
        best = min(best, time.perf_counter() - start)
    return len(pixels) / best
