"""The lottery experiments: weight tickets (IMP with rewinding, its controls, stability) and layer tickets.

* ``PruningHparams``: levels, rule, rate, rewind step, restart mode, controls (absl flags too).
* ``imp.run(directory, build_model, datasets, training_hparams, pruning_hparams)``: resumable IMP;
  ``imp.results(directory)`` reads the per-level records back; ``imp.run_experiment(run_dir, datasets,
  hparams)`` is the imp binary's whole experiment (IMP, results.csv, the plot).
* ``stability.instability(model, datasets, training_hparams, start_step=k, ...)``: linear mode
  connectivity of two copies trained from theta_k with different data orders; ``StabilityHparams`` and
  ``stability.run(run_dir, datasets, hparams)``: instability against k, the stability binary's experiment.
* ``plots``: accuracy against density, instability against k.
* ``LayerLotteryHparams``: block criteria, numbers of blocks removed, algorithm, replicates (absl flags too).
* ``layer_lottery.run(run_dir, datasets, hparams)``: resumable layer tickets (Jordao et al.): score the
  residual blocks, remove the weakest, train, and compare with the dense model in a table.
"""

from keras_lottery.lottery import imp, layer_lottery, plots, stability
from keras_lottery.lottery.hparams import (ALGORITHMS, CONTROLS, MODES, RULES, LayerLotteryHparams, PruningHparams,
                                          StabilityHparams)
from keras_lottery.lottery.stability import StabilityResult, instability

__all__ = ["ALGORITHMS", "CONTROLS", "LayerLotteryHparams", "MODES", "PruningHparams", "RULES", "StabilityHparams",
           "StabilityResult", "imp", "instability", "layer_lottery", "plots", "stability"]
