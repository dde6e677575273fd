"""``keras_lottery.sparsity``: the ``tfmot.sparsity.keras`` API on Keras 3, on this library's masks.

Name for name with TFMOT: ``prune_low_magnitude``, ``strip_pruning``, ``prune_scope``,
``UpdatePruningStep``, ``PruningSummaries``, ``PruningSchedule``, ``ConstantSparsity``,
``PolynomialDecay``, ``PrunableLayer``, ``PruningPolicy``, ``PruneForLatencyOnXNNPack``; plus
``strip_scope`` (subclassed models), ``check_m_by_n`` and the wrapper class ``PruneLowMagnitude``.
docs/migrating_from_tfmot.md shows both side by side.

Modules: ``schedules`` (schedules), ``structured`` (magnitude / block / M:N mask arithmetic, NumPy),
``wrapper`` (``PruneLowMagnitude``, ``PrunableLayer``), ``prune`` (the entry points), ``callbacks``,
``policy``.
The density report is ``keras_lottery.sparsity_report(model)`` (``keras_lottery.masking.sparsity``).
"""

from keras_lottery.sparsity import callbacks, policy, prune, schedules, structured, wrapper
from keras_lottery.sparsity.callbacks import PruningSummaries, UpdatePruningStep
from keras_lottery.sparsity.policy import PruneForLatencyOnXNNPack, PruningPolicy
from keras_lottery.sparsity.prune import check_m_by_n, prune_low_magnitude, prune_scope, strip_pruning, strip_scope
from keras_lottery.sparsity.schedules import ConstantSparsity, PolynomialDecay, PruningSchedule
from keras_lottery.sparsity.wrapper import PrunableLayer, PruneLowMagnitude

__all__ = ["ConstantSparsity", "PolynomialDecay", "PrunableLayer", "PruneForLatencyOnXNNPack", "PruneLowMagnitude",
           "PruningPolicy", "PruningSchedule", "PruningSummaries", "UpdatePruningStep", "callbacks", "check_m_by_n",
           "policy", "prune", "prune_low_magnitude", "prune_scope", "schedules", "strip_pruning", "strip_scope",
           "structured", "wrapper"]
