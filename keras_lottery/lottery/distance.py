"""How far trained subnetworks end from the trained dense network (L2 distance of their weights).

Frankle et al. ("Stabilizing the Lottery Ticket Hypothesis") observe that IMP subnetworks that
match the dense network's accuracy also end closer to it. The distance is taken over the prunable
weights (the kernels the masks act on), as ``||m * w_sub - w_dense||_2``: a pruned weight of the
subnetwork is exactly 0, so it adds the dense network's value there. Biases and batch-normalization
variables are not included (they are never pruned). The relative distance divides by
``||w_dense||_2``.
"""

import math

import numpy as np

from keras_lottery import pruning, runs, training

__all__ = ["distances_to_dense", "weight_distance"]


def weight_distance(first, second):
    """``(distance, norm of second)``: L2 distance between two masked models' prunable weights.

    Both models must have the same prunable weights (the same architecture masked by
    ``keras_lottery.mask``); each weight enters with its masked value (dead weights are 0).

    Raises:
      ValueError: the models' prunable weights differ in names or shapes.
    """
    a, b = pruning.weights_of(first), pruning.weights_of(second)
    if list(a) != list(b):
        missing = sorted(set(a) ^ set(b))[:4]
        raise ValueError(f"The two models have different prunable weights (e.g. {', '.join(missing)}).")
    squared, norm = 0.0, 0.0
    for path, value in a.items():
        other = b[path]
        if value.shape != other.shape:
            raise ValueError(f"Prunable weight {path} has shape {value.shape} in one model and {other.shape} in the other.")
        squared += float(np.sum((value.astype(np.float64) - other.astype(np.float64)) ** 2))
        norm += float(np.sum(other.astype(np.float64) ** 2))
    return math.sqrt(squared), math.sqrt(norm)


def distances_to_dense(directory):
    """The L2 distance of every finished network of an IMP run to its trained dense network (level 0).

    Args:
      directory: an IMP run directory (``keras_lottery.lottery.imp``); its level 0 must be finished.

    Returns:
      One dict per finished network in level order (ticket, then controls), with ``level``,
      ``kind``, ``l2_to_dense`` and ``relative_l2_to_dense`` (divided by the dense weights' norm).
      Level 0 itself is included (distance 0).

    Raises:
      ValueError: level 0 has not finished.
    """
    dense_dir = runs.level_dir(directory, 0)
    if not runs.training_finished(dense_dir):
        raise ValueError(f"{directory} has no finished level 0 ({dense_dir}): there is no dense network to compare with.")
    dense = training.load_final_model(dense_dir)
    rows = []
    for level in runs.levels(directory):
        for kind in ("ticket", "reinit", "random"):
            path = runs.level_dir(directory, level, kind)
            if not runs.training_finished(path):
                continue
            distance, norm = weight_distance(training.load_final_model(path), dense)
            rows.append({"level": level, "kind": kind, "l2_to_dense": distance,
                         "relative_l2_to_dense": distance / norm if norm else float("nan")})
    return rows
