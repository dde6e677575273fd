"""Robustness of tickets: common corruptions, distribution shift, adversarial examples.

* ``corruptions``: CIFAR-10-C's corruptions for small grayscale or RGB images, batched;
* ``suite``: the corrupted test set, generated once per test set and cached; mean corruption
  accuracy and mCE against the dense model;
* ``shift``: a second test set of the same classes (TFDS name or local files);
* ``attacks``: FGSM and PGD (L-infinity, pixel space), the gradient-masking check;
* ``inventory``: the models of layer-lottery runs, IMP runs or ``.keras`` files;
* ``evaluate``: the experiment ``experiments.robustness`` runs (tables, plots, resume);
* ``hparams``: its settings; ``plots``: its figures.
"""

from keras_lottery.robustness import attacks, corruptions, evaluate, inventory, plots, shift, suite
from keras_lottery.robustness.hparams import RobustnessHparams

__all__ = ["RobustnessHparams", "attacks", "corruptions", "evaluate", "inventory", "plots", "shift", "suite"]
