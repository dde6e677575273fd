"""Weight tickets: iterative magnitude pruning with rewinding, its controls, and stability analysis.

* ``PruningHparams``: levels, rule, rate, rewind step, restart mode, controls (absl flags too).
* ``imp.run(directory, build_model, datasets, training_hparams, pruning_hparams)``: resumable IMP;
  ``imp.results(directory)`` reads the per-level records back.
* ``stability.instability(model, datasets, training_hparams, start_step=k, ...)``: linear mode
  connectivity of two copies trained from theta_k with different data orders.
* ``plots``: accuracy against density, instability against k.
"""

from keras_lottery.lottery import imp, plots, stability
from keras_lottery.lottery.hparams import CONTROLS, MODES, RULES, PruningHparams
from keras_lottery.lottery.stability import StabilityResult, instability

__all__ = ["CONTROLS", "MODES", "PruningHparams", "RULES", "StabilityResult", "imp", "instability", "plots",
           "stability"]
