"""Which trained models a robustness evaluation compares: read from run directories or given as files.

* a layer-lottery run directory (``experiments.layer_lottery``): each replicate's dense model
  (``replicate_<r>/dense/model.keras``) and every ticket (``ticket_<criterion>_p<p>_r<r>.keras``);
  the dense model of the same replicate is each ticket's reference;
* IMP run directories (``experiments.imp``), one per replicate: level 0 (dense, the reference) and
  the chosen levels' tickets with the controls trained there (``level_N/model.keras``,
  ``level_N/reinit/``, ``level_N/random/``);
* ``.keras`` files: one replicate, the first file is the reference.

Only finished runs (``complete.json``) are read. All runs must record the same dataset settings,
which the evaluation then uses (the same normalization the models were trained with).
"""

import dataclasses
import os

from keras_lottery import files, runs

KINDS = ("layer_lottery", "imp", "files")


@dataclasses.dataclass(frozen=True)
class Entry:
    """One model to evaluate.

    Attributes:
      id: a unique, file-safe name (``r0_grasp_p1``, ``imp1_level4_reinit``, ``file0_model``).
      group: what it is, shared across replicates (``dense``, ``grasp_p1``, ``level4_ticket``).
      replicate: which replicate (the reference of a row is the dense model of its replicate).
      path: the ``.keras`` file.
      reference: True for the dense model of its replicate.
      density: the fraction of weights kept (IMP), else None.
    """

    id: str
    group: str
    replicate: int
    path: str
    reference: bool = False
    density: float = None


@dataclasses.dataclass
class Inventory:
    """The models of an evaluation: ``kind`` (one of ``KINDS``), the entries, the recorded dataset settings."""

    kind: str
    entries: list
    dataset: dict = None

    def reference(self, replicate):
        """The reference (dense) entry of ``replicate``."""
        return next(e for e in self.entries if e.replicate == replicate and e.reference)


def _kind_of(path):
    record = files.read_json(os.path.join(path, runs.HPARAMS))
    if isinstance(record, dict) and "lottery" in record:
        return "layer_lottery", record
    if isinstance(record, dict) and "pruning" in record:
        return "imp", record
    return None, record


def _need(path):
    if not os.path.isfile(path):
        raise ValueError(f"{path} is missing: the run finished without saving this model.")
    return path


def _layer_lottery(path, replicates):
    entries = []
    tickets = [runs.parse_ticket_file(name, with_unit=True) for name in runs.ticket_files(path)]
    for r in range(replicates):
        dense = runs.model_file(os.path.join(runs.replicate_dir(path, r), runs.DENSE))
        entries.append(Entry(f"r{r}_dense", "dense", r, _need(dense), True))
        for criterion, p, _, unit in sorted(t for t in tickets if t[2] == r):
            group = f"{criterion}_p{p}" + ("" if unit == "layers" else f"_{unit}")  # filter tickets: "grasp_p1_filters"
            entries.append(Entry(f"r{r}_{group}", group, r, runs.ticket_file(path, r, criterion, p, unit)))
    return entries


def _density(directory):
    report = files.read_json(os.path.join(directory, runs.SPARSITY))
    return float(report["global"]["density"]) if isinstance(report, dict) and "global" in report else 1.0


def _imp(path, replicate, levels):
    present = runs.levels(path)
    wanted = present if not levels else sorted(set(levels) | {0})
    missing = [level for level in wanted if level not in present]
    if missing:
        raise ValueError(f"{path} has no level(s) {', '.join(map(str, missing))}; it has levels "
                         f"{', '.join(map(str, present))}.")
    entries = []
    for level in wanted:
        for kind in ("ticket", "reinit", "random"):
            directory = runs.level_dir(path, level, kind)
            if kind != "ticket" and not os.path.isdir(directory):
                continue
            if not runs.training_finished(directory):
                raise ValueError(f"{directory} has not finished training (no {runs.METRICS}).")
            group = "dense" if level == 0 else f"level{level}_{kind}"
            entries.append(Entry(f"imp{replicate}_{group}", group, replicate, _need(runs.model_file(directory)),
                                 level == 0, _density(directory)))
    return entries


def find(paths, levels=()):
    """The ``Inventory`` of ``paths``: one layer-lottery run directory, IMP run directories (one per
    replicate; ``levels`` chooses their levels besides the dense level 0, all by default), or
    ``.keras`` files. Raises ValueError (one line) for anything else, an unfinished run, runs of
    mixed kinds or on different datasets, and missing levels or models."""
    if not paths:
        raise ValueError("Name the models to evaluate: a layer-lottery run directory, IMP run directories or "
                         ".keras files.")
    kinds, records = [], []
    for path in paths:
        if os.path.isfile(path) and path.endswith(".keras"):
            kinds.append("files")
            records.append(None)
            continue
        if not os.path.isdir(path):
            raise ValueError(f"{path} is neither a run directory nor a .keras file.")
        kind, record = _kind_of(path)
        if kind is None:
            what = "no hparams.json" if record is None else "its hparams.json has neither a 'lottery' nor a 'pruning' group"
            raise ValueError(f"{path} is not a layer-lottery or IMP run directory ({what}).")
        if not runs.is_complete(path):
            raise ValueError(f"{path} has not finished (no {runs.COMPLETE}): run its command again to finish it.")
        kinds.append(kind)
        records.append(record)
    if len(set(kinds)) > 1:
        raise ValueError(f"Give models of one kind (a layer-lottery run, IMP runs or .keras files), got "
                         f"{', '.join(sorted(set(kinds)))}.")
    kind = kinds[0]
    datasets = [r["dataset"] for r in records if r]
    if any(d != datasets[0] for d in datasets[1:]):
        raise ValueError("The runs were trained on different data settings; evaluate each dataset separately.")
    if kind == "layer_lottery":
        if len(paths) > 1:
            raise ValueError("Give one layer-lottery run directory (its replicates are the replicates).")
        entries = _layer_lottery(paths[0], int(records[0]["lottery"].get("replicates", 1)))
    elif kind == "imp":
        entries = [e for i, path in enumerate(paths) for e in _imp(path, i, levels)]
    else:
        entries = [Entry(f"file{i}_{_stem(p)}", _stem(p), 0, p, i == 0) for i, p in enumerate(paths)]
    if levels and kind != "imp":
        raise ValueError("--levels chooses IMP levels; these are not IMP runs.")
    return Inventory(kind, entries, datasets[0] if datasets else None)


# Data settings that choose what is evaluated, not how the models were trained: the command's own.
EVALUATION_ONLY = ("test_subset",)


def dataset_flags(inventory, flag_values):
    """``{flag: value}`` of the runs' recorded data settings that the command does not set itself
    (``flag_values``: absl's FLAGS), so the evaluation normalizes images as the training did."""
    return {name: value for name, value in (inventory.dataset or {}).items()
            if name in flag_values and not flag_values[name].present and name not in EVALUATION_ONLY}


def check_dataset(inventory, dataset_hparams):
    """Raises ValueError when the command's data settings differ from those the runs recorded."""
    recorded = inventory.dataset or {}
    given = dataclasses.asdict(dataset_hparams)
    diffs = [f"--{k}: the runs have {recorded[k]!r}, the command {given[k]!r}" for k in sorted(recorded)
             if k in given and k not in EVALUATION_ONLY and recorded[k] != given[k]]
    if diffs:
        raise ValueError("The models were trained with other data settings (" + "; ".join(diffs) + "); leave those "
                         "flags out to use the runs' own.")


def _stem(path):
    return os.path.splitext(os.path.basename(path))[0]
