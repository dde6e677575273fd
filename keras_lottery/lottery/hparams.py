"""The lottery experiments' hyper-parameters, as dataclasses that become absl flags.

* ``PruningHparams``: how iterative magnitude pruning runs (weight tickets).
* ``LayerLotteryHparams``: what a layer-lottery experiment scores, removes and compares (layer tickets).
* ``StabilityHparams``: the rewind steps, data seeds and masks of the stability analysis.
"""

import dataclasses
import os
import re
import typing

from keras_lottery import pruning
from keras_lottery.blocks.criteria import names as criterion_names
from keras_lottery.filters.budget import MATCHES
from keras_lottery.filters.scoring import CRITERIA as filter_criteria
from keras_lottery.runs import UNITS
from keras_lottery.training import durations

RULES = ("global", "layerwise")
MODES = ("weights", "lr", "finetune")
CONTROLS = ("reinit", "random")
ALGORITHMS = ("init", "trained")


# --mask's per-k form: "<duration>=<path>", items separated by a comma that starts the next "<duration>=".
_PER_K = re.compile(r"^\s*(\d+(?:\.\d+)?(?:it|ep)?)\s*=(.*)$", re.S)
_NEXT_K = re.compile(r",(?=\s*\d+(?:\.\d+)?(?:it|ep)?\s*=)")


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

    def control_runs(self):
        """The (level, control) trainings this run asks for."""
        return {(level, kind) for level in self.control_level_list() for kind in self.control_list}

    # Fields a recorded run may be continued with (keras_lottery.runs.check_record): levels are sequential
    # and controls are trained per level after the ticket, so more levels, or controls at more levels,
    # only add trainings to the finished ones. {field: grew(old fields, new fields)}.
    GROWABLE: typing.ClassVar[dict] = {
        "levels": lambda old, new: int(new["levels"]) >= int(old["levels"]),
        "controls": lambda old, new: _more_control_runs(old, new),
        "control_levels": lambda old, new: _more_control_runs(old, new),
    }

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
        if _split(self.control_levels) and not self.control_list:
            raise ValueError(f"--control_levels={self.control_levels!r} picks levels for --controls, which are empty: "
                             "it would be ignored.")
        try:
            levels = self.control_level_list()
        except ValueError:
            raise ValueError(f"--control_levels must be comma-separated integers, "
                             f"got {self.control_levels!r}.") from None
        bad = [level for level in levels if not 1 <= level <= self.levels]
        if bad:
            raise ValueError(f"--control_levels must lie in 1..{self.levels} (--levels), got {bad}.")
        durations.to_steps(self.rewind, steps_per_epoch=1, total_steps=1)


@dataclasses.dataclass(frozen=True)
class LayerLotteryHparams:
    """What a layer-lottery experiment scores, removes and compares.

    Attributes:
      criterion: comma-separated block criteria (grasp, snip, synflow, random, l1, hrank,
        expectabs, pls, kl, cka).
      blocks: comma-separated numbers p of blocks to remove, one ticket each ("1,2,3,4").
      algorithm: init (score at theta_0, Algorithm 2) or trained (score the trained net, Algorithm 1).
      rewind_epoch: for algorithm=trained, the epoch i the surviving weights are rewound to.
      xi: tolerance of the winning test, accuracy(ticket) + xi >= accuracy(dense), as a fraction.
      score_batches: training batches the data-dependent criteria see.
      replicates: independent repetitions; replicate r adds r to the model and data seeds.
      unit: comma-separated units a ticket removes: layers (residual blocks) and/or filters (channels,
        budget-matched to the p-block layer ticket of the same criterion; needs --algorithm=init).
      match: what a filter ticket matches in the p-block layer ticket: filters, params or flops.
      min_channel_fraction: a filter ticket keeps at least this fraction of each channel group (and
        at least one channel).
      channel_multiple: a filter ticket keeps a multiple of this many channels in each group (8 or 16
        suit vectorised convolution kernels; 1: any count).
    """

    criterion: str = "grasp"
    blocks: str = "1,2,3"
    algorithm: str = "init"
    rewind_epoch: int = 0
    xi: float = 0.0
    score_batches: int = 4
    replicates: int = 1
    unit: str = "layers"
    match: str = "filters"
    min_channel_fraction: float = 0.1
    channel_multiple: int = 1

    @property
    def units(self):
        return _split(self.unit)

    @property
    def criteria(self):
        return [c.strip() for c in self.criterion.split(",") if c.strip()]

    @property
    def block_counts(self):
        return [int(p) for p in self.blocks.split(",") if p.strip()]

    def validate(self, removable=None):
        """Raises ValueError naming the first setting that cannot work (``removable``: blocks available)."""
        unknown = [c for c in self.criteria if c not in criterion_names()]
        if not self.criteria or unknown:
            raise ValueError(f"--criterion: unknown {unknown or self.criterion!r}; "
                             f"accepted: {', '.join(criterion_names())}.")
        try:
            counts = self.block_counts
        except ValueError:
            raise ValueError(f"--blocks must be comma-separated integers, got {self.blocks!r}.") from None
        if not counts or min(counts) < 1:
            raise ValueError(f"--blocks must list numbers of blocks >= 1, got {self.blocks!r}.")
        if removable is not None and max(counts) > removable:
            raise ValueError(f"--blocks asks to remove {max(counts)} blocks but the model has only {removable} "
                             "removable residual blocks.")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"--algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}.")
        if self.rewind_epoch < 0 or (self.algorithm == "init" and self.rewind_epoch):
            raise ValueError("--rewind_epoch must be >= 0, and is only meaningful with --algorithm=trained.")
        if self.xi < 0 or self.score_batches < 1 or self.replicates < 1:
            raise ValueError("--xi must be >= 0, --score_batches and --replicates >= 1.")
        unknown = [u for u in self.units if u not in UNITS]
        if not self.units or unknown:
            raise ValueError(f"--unit takes {', '.join(UNITS)} (comma-separated), got {self.unit!r}.")
        if "filters" in self.units:
            bad = [c for c in self.criteria if c not in filter_criteria]
            if bad:
                raise ValueError(f"--unit=filters scores channels with {', '.join(filter_criteria)}; --criterion has "
                                 f"{', '.join(bad)}.")
            if self.algorithm != "init":
                raise ValueError("--unit=filters compares tickets at initialization: it needs --algorithm=init.")
            if self.match not in MATCHES:
                raise ValueError(f"--match must be one of {', '.join(MATCHES)}, got {self.match!r}.")
            if not 0.0 <= self.min_channel_fraction < 1.0:
                raise ValueError(f"--min_channel_fraction must be in [0, 1), got {self.min_channel_fraction}.")
            if self.channel_multiple < 1:
                raise ValueError(f"--channel_multiple must be >= 1, got {self.channel_multiple}.")


@dataclasses.dataclass(frozen=True)
class StabilityHparams:
    """What the stability analysis measures.

    Attributes:
      ks: comma-separated rewind steps k ("0,100it,1ep,0.05").
      data_seeds: the two data-order seeds of the copies, "1,2".
      points: points on the linear path between the copies (30 in the paper).
      mask: a mask.npz (an IMP level's) to apply at every k, or one mask per k as "k=path,k=path" (every k
        of --ks, e.g. the same level of IMP runs rewound to each k); empty for the dense network.
      train_limit: training examples evaluated along the path (0 for all).
    """

    ks: str = "0,100it,500it"
    data_seeds: str = "1,2"
    points: int = 30
    mask: str = ""
    train_limit: int = 10000

    @property
    def seeds(self):
        """``data_seeds`` as a tuple of two integers."""
        return tuple(int(s) for s in _split(self.data_seeds))

    def validate(self):
        """Raises ValueError naming the first field that cannot work."""
        durations.to_step_list(self.ks, steps_per_epoch=1, total_steps=1)
        if not _split(self.ks):
            raise ValueError("--ks needs at least one rewind step.")
        seeds = _split(self.data_seeds)
        if len(seeds) != 2 or not all(s.lstrip("-").isdigit() for s in seeds):
            raise ValueError(f"--data_seeds takes two integers, got {self.data_seeds!r}.")
        if self.points < 2:
            raise ValueError(f"--points must be >= 2, got {self.points}.")
        for k, path in self.mask_paths().items():
            if not os.path.exists(path):
                tail = path.rsplit(",", 1)[-1].strip() if "," in path else None
                if k is not None and tail and "=" not in tail:  # "0=a.npz,3it": a k without its path
                    raise ValueError(f"--mask: {tail!r} is not k=path (per-k masks are \"k=path,k=path\").")
                raise ValueError(f"--mask: {path!r}{'' if k is None else f' (for k = {k})'} does not exist.")
            if not os.path.isfile(path):
                raise ValueError(f"--mask: {path!r} is a directory; name its mask.npz.")
        if self.train_limit < 0:
            raise ValueError(f"--train_limit must be >= 0, got {self.train_limit}.")

    def mask_paths(self):
        """``{None: path}`` for one mask at every k, ``{k as written: path}`` per k, ``{}`` for none.

        The per-k form is recognised by its start (a duration and ``=``, as in ``100it=...``) unless the
        whole value is an existing file; items are split only at a comma that starts the next ``k=``, so
        paths may contain ``=`` and ``,`` (as the run directories' own names do).
        """
        if not self.mask:
            return {}
        if os.path.exists(self.mask) or not _PER_K.match(self.mask):
            return {None: self.mask}
        pairs = {}
        for item in _NEXT_K.split(self.mask):
            match = _PER_K.match(item)
            k, path = (match.group(1), match.group(2).strip()) if match else (item.strip(), "")
            if not path:
                raise ValueError(f"--mask: {item.strip()!r} is not k=path (per-k masks are \"k=path,k=path\").")
            if k in pairs:
                raise ValueError(f"--mask names k = {k} twice.")
            pairs[k] = path
        return pairs


def _more_control_runs(old, new):
    """Whether the recorded IMP settings ``new`` ask for every control training ``old`` did (dicts of fields)."""
    return PruningHparams(**new).control_runs() >= PruningHparams(**old).control_runs()
