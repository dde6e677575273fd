"""keras-lottery: lottery tickets for Keras 3.

Weight tickets by iterative magnitude pruning with rewinding (Frankle et al.) and layer tickets at
initialization (Jordao et al.). TensorFlow-model-optimization is never imported here: it switches
``tf.keras`` to legacy Keras for the whole process, so only the adapters that need it import it.
"""

from keras_lottery import models

__version__ = "0.1.0"

__all__ = ["models", "__version__"]
from keras_lottery import masks, pruning, schedules, wrappers  # noqa: E402
from keras_lottery.masks import Mask, apply_mask, sparsity  # noqa: E402
from keras_lottery.pruning import GlobalMagnitude, LayerwiseMagnitude, RandomPruning, prune  # noqa: E402
from keras_lottery.wrappers import MaskedLayer, copy_weights, mask, strip  # noqa: E402
__all__ += ["masks", "pruning", "schedules", "wrappers", "Mask", "apply_mask", "sparsity", "GlobalMagnitude"]
__all__ += ["LayerwiseMagnitude", "RandomPruning", "prune", "MaskedLayer", "copy_weights", "mask", "strip"]
from keras_lottery import callbacks  # noqa: E402,F401
from keras_lottery import blocks, metrics  # noqa: E402,F401
from keras_lottery import data, runs, training  # noqa: E402,F401
__all__ += ["data", "runs", "training"]
__all__ += ["blocks", "metrics"]
from keras_lottery import export  # noqa: E402,F401
__all__ += ["export"]
from keras_lottery import lottery  # noqa: E402,F401
__all__ += ["lottery"]
from keras_lottery.wrappers import zero_optimizer_state  # noqa: E402,F401
from keras_lottery import distribute  # noqa: E402,F401
__all__ += ["distribute"]
