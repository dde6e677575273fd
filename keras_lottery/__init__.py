"""keras-lottery: lottery tickets for Keras 3.

Weight tickets by iterative magnitude pruning with rewinding (Frankle et al.) and layer tickets at
initialization (Jordao et al.). TensorFlow-model-optimization is never imported here: it switches
``tf.keras`` to legacy Keras for the whole process, so only the adapters that need it import it.
docs/design.md describes the layout.

``keras_lottery.sparsity`` is the ``tfmot.sparsity.keras`` API on Keras 3 (docs/migrating_from_tfmot.md);
the density report is ``sparsity_report(model)``. Each thing has one name: the package keeps no former
names (docs/design.md).
"""

from keras_lottery import (blocks, callbacks, compat, data, distribute, export, files, filters, layers, lottery, masking,
                           masks, metrics, models, pruning, robustness, runs, schedules, sparsity, training)
from keras_lottery.masking import MaskedLayer, apply_mask, copy_weights, mask, strip, zero_optimizer_state
from keras_lottery.masking import sparsity as sparsity_report
from keras_lottery.masks import Mask
from keras_lottery.pruning import GlobalMagnitude, LayerwiseMagnitude, RandomPruning, prune
from keras_lottery.version import __version__

__all__ = ["GlobalMagnitude", "LayerwiseMagnitude", "Mask", "MaskedLayer", "RandomPruning", "__version__", "apply_mask",
           "blocks", "callbacks", "compat", "copy_weights", "data", "distribute", "export", "files", "filters", "layers",
           "lottery", "mask", "masking", "masks", "metrics", "models", "prune", "pruning", "robustness", "runs", "schedules",
           "sparsity", "sparsity_report", "strip", "training", "zero_optimizer_state"]
