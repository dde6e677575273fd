"""Former name of :mod:`keras_lottery.masking`, kept so existing imports work.

``keras_lottery.wrappers.MaskedLayer``, ``mask``, ``strip``, ``copy_weights``, ``masked_layers``,
``zero_optimizer_state``, ``optimizer_slots``, ``is_prunable`` and ``prunable_weight_names`` are the
objects of :mod:`keras_lottery.masking` (see docs/design.md). New code imports ``masking``.
"""

from keras_lottery.masking import (MaskedLayer, copy_weights, is_prunable, mask, masked_layers, optimizer_slots,
                                   prunable_weight_names, strip, zero_optimizer_state)

__all__ = ["MaskedLayer", "copy_weights", "is_prunable", "mask", "masked_layers", "optimizer_slots",
           "prunable_weight_names", "strip", "zero_optimizer_state"]
