"""``PruningHparams``: how iterative magnitude pruning runs, as a dataclass that becomes absl flags."""

import dataclasses

from keras_lottery import pruning
from keras_lottery.training import durations

RULES = ("global", "layerwise")
MODES = ("weights", "lr", "finetune")
CONTROLS = ("reinit", "random")


def _split(text):
    return [item.strip() for item in str(text).split(",") if item.strip()]


@dataclasses.dataclass(frozen=True)
class PruningHparams:
    """Iterative magnitude pruning (IMP) with rewinding, and its controls.

    Attributes:
      levels: pruning levels after the dense level 0 (level n has density about (1 - rate)^n).
      rate: fraction of the surviving weights pruned at each level, in [0, 1).
      rule: global (one magnitude threshold over all candidate tensors) or layerwise (each tensor
        loses the rate of its own surviving weights).
      layer_rates: per-layer rates for --rule=layerwise, "predictions=0.1" (layer names, weight
        paths or glob patterns); the other layers use --rate.
      exclude: comma-separated layers never pruned (names, weight paths or glob patterns).
      rewind: the rewind step k ("500it", "2ep", a fraction such as "0.01", or 0 for the
        initialization, as in the original LTH).
      mode: how each level restarts: weights (survivors back to theta_k, schedule and data from k),
        lr (keep the final weights, replay the learning-rate schedule from k), finetune (keep the
        final weights and the final learning rate).
      controls: comma-separated controls trained at each level: reinit (same mask, fresh init),
        random (random mask with the level's per-layer densities).
      control_levels: comma-separated levels that get the controls; empty for every level >= 1.
      control_seed: seeds the controls' fresh initializations and random masks.
    """

    levels: int = 10
    rate: float = 0.2
    rule: str = "global"
    layer_rates: str = ""
    exclude: str = ""
    rewind: str = "0"
    mode: str = "weights"
    controls: str = ""
    control_levels: str = ""
    control_seed: int = 1

    # -- parsed views ---------------------------------------------------------------------------
    @property
    def excluded(self):
        """``exclude`` as a list of selectors."""
        return _split(self.exclude)

    @property
    def layer_rate_map(self):
        """``layer_rates`` as ``{selector: rate}``."""
        out = {}
        for item in _split(self.layer_rates):
            name, sep, value = item.partition("=")
            if not sep or not name.strip():
                raise ValueError(f"--layer_rates items are name=rate, got {item!r} in {self.layer_rates!r}.")
            try:
                out[name.strip()] = float(value)
            except ValueError:
                raise ValueError(f"--layer_rates: rate of {name.strip()!r} must be a number, got {value!r}.") from None
        return out

    @property
    def control_list(self):
        """``controls`` as a list of names."""
        return _split(self.controls)

    def control_level_list(self):
        """The levels that get the controls."""
        if not _split(self.control_levels):
            return list(range(1, self.levels + 1))
        return sorted({int(item) for item in _split(self.control_levels)})

    def rule_object(self):
        """The ``keras_lottery.pruning`` rule for one level."""
        if self.rule == "global":
            return pruning.GlobalMagnitude(self.rate, exclude=self.excluded)
        return pruning.LayerwiseMagnitude(self.rate, layer_rates=self.layer_rate_map, exclude=self.excluded)

    def validate(self):
        """Raises ValueError naming the first field that cannot work (before any training)."""
        if self.levels < 0:
            raise ValueError(f"--levels must be >= 0, got {self.levels}.")
        if not 0.0 < self.rate < 1.0:
            raise ValueError(f"--rate must be in (0, 1) (the fraction of surviving weights pruned per level), "
                             f"got {self.rate}.")
        if self.rule not in RULES:
            raise ValueError(f"--rule must be one of {', '.join(RULES)}, got {self.rule!r}.")
        if self.mode not in MODES:
            raise ValueError(f"--mode must be one of {', '.join(MODES)}, got {self.mode!r}.")
        rates = self.layer_rate_map
        for name, value in rates.items():
            if not 0.0 <= value < 1.0:
                raise ValueError(f"--layer_rates: rate of {name!r} must be in [0, 1), got {value}.")
        if rates and self.rule != "layerwise":
            raise ValueError(f"--layer_rates={self.layer_rates!r} needs --rule=layerwise (got --rule={self.rule}).")
        unknown = [c for c in self.control_list if c not in CONTROLS]
        if unknown:
            raise ValueError(f"--controls accepts {', '.join(CONTROLS)} (comma-separated), got {unknown}.")
        try:
            levels = self.control_level_list()
        except ValueError:
            raise ValueError(f"--control_levels must be comma-separated integers, "
                             f"got {self.control_levels!r}.") from None
        bad = [level for level in levels if not 1 <= level <= self.levels]
        if bad:
            raise ValueError(f"--control_levels must lie in 1..{self.levels} (--levels), got {bad}.")
        durations.to_steps(self.rewind, steps_per_epoch=1, total_steps=1)
