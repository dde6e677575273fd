"""keras-lottery: lottery tickets for Keras 3.

Weight tickets by iterative magnitude pruning with rewinding (Frankle et al.) and layer tickets at
initialization (Jordao et al.). TensorFlow-model-optimization is never imported here: it switches
``tf.keras`` to legacy Keras for the whole process, so only the adapters that need it import it.
"""

from keras_lottery import models

__version__ = "0.1.0"

__all__ = ["models", "__version__"]
