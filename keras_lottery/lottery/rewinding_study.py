"""Replicated rewinding studies: IMP at k = 0 against an early k, with stability and distances.

The question of Frankle et al. ("Stabilizing the Lottery Ticket Hypothesis", section 4-5): does IMP
find matching subnetworks when the weights are rewound to initialization (k = 0) or only to an early
step k, and is the difference stability to SGD noise? Each replicate (one model seed) is a set of
runs of the library's binaries:

* a dense ``stability`` run over several k (the dense network's instability against k);
* one ``imp`` run per k compared (same seeds, same levels; controls ``random`` and ``reinit``);
* optionally, a ``stability`` run with ``--mask`` of an IMP level at that run's own k (the
  subnetwork's instability).

:func:`summarize` reads finished (or partly finished) runs of several replicates and folds them
into tables of mean and sample standard deviation over the replicates, with differences paired by
replicate (ticket minus the dense network, ticket minus random pruning, early k minus k = 0);
:func:`write` saves them (CSV per table, one Markdown summary, two figures). The distances are the
L2 distances of :mod:`keras_lottery.lottery.distance`. ``scripts/rewinding_report.py`` runs this
on the directories of ``scripts/rewinding_resnet20.sh``.
"""

import csv
import dataclasses
import os
import statistics

from keras_lottery import files, runs, spread
from keras_lottery.lottery import distance, imp, plots
from keras_lottery.report import mean_spread

__all__ = ["Replicate", "summarize", "write"]


@dataclasses.dataclass
class Replicate:
    """The run directories of one replicate (empty or missing ones are skipped).

    Attributes:
      seed: the replicate's model seed (pairs the runs of one replicate).
      dense_stability: the dense ``stability`` run directory, or a list of them (one per k, say).
      imp: ``{k label: imp run directory}``, e.g. ``{"0": ..., "50": ...}``; the first is the
        reference the others are compared with.
      subnetwork_stability: ``{(k label, level): stability run directory with that level's mask}``.
    """

    seed: int
    dense_stability: str = ""
    imp: dict = dataclasses.field(default_factory=dict)
    subnetwork_stability: dict = dataclasses.field(default_factory=dict)


def _stats(values, scale=100.0, sign=False):
    """Mean and SD of ``values`` times ``scale``; ``sign`` marks paired differences, whose text also
    gives the 95% interval of the mean and the count above zero (``+0.41 ± 0.30 [-0.33, +1.15] 2/3``)."""
    values = [v for v in values if v is not None]
    cells = {"n": len(values), "mean": statistics.fmean(values) * scale if values else None,
             "sd": statistics.stdev(values) * scale if len(values) > 1 else None}
    cells["text"] = mean_spread(values, scale=scale, sign=sign)
    if sign and len(values) > 1:
        cells["text"] += " " + spread.interval_text(values, scale=scale)
    return cells


def _read_csv_rows(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as handle:
        return [{key: _number(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def _number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def _total_steps(replicates):
    for replicate in replicates:
        for directory in replicate.imp.values():
            record = files.read_json(os.path.join(directory, imp.RECORD))
            if record:
                return int(record["T"])
    return None


def _dense_instability(replicates, total):
    by_k = {}
    for replicate in replicates:
        directories = replicate.dense_stability
        for directory in [directories] if isinstance(directories, str) else directories:
            for row in _read_csv_rows(os.path.join(directory, runs.RESULTS)):
                by_k.setdefault(int(row["k"]), []).append(row)
    table = []
    for k, rows in sorted(by_k.items()):
        train, test = _stats([r["train_instability"] for r in rows]), _stats([r["test_instability"] for r in rows])
        table.append({"k": k, "k_percent_of_T": 100.0 * k / total if total else None, "replicates": len(rows),
                      "train_instability_pp": train["text"], "test_instability_pp": test["text"],
                      "test_error_end_pct": _stats([r["test_error_end"] for r in rows])["text"],
                      "train_instability_mean": train["mean"], "train_instability_sd": train["sd"],
                      "test_instability_mean": test["mean"], "test_instability_sd": test["sd"]})
    return table


def _imp_rows(replicates):
    """``{(k label, level, kind): {seed: record}}`` and ``{(k label, level, kind): {seed: distance row}}``."""
    accuracy, distances = {}, {}
    for replicate in replicates:
        for label, directory in replicate.imp.items():
            if not os.path.isdir(directory):
                continue
            for row in imp.results(directory):
                accuracy.setdefault((label, row["level"], row["kind"]), {})[replicate.seed] = row
            if runs.training_finished(runs.level_dir(directory, 0)):
                for row in distance.distances_to_dense(directory):
                    distances.setdefault((label, row["level"], row["kind"]), {})[replicate.seed] = row
    return accuracy, distances


def _paired(first, second, key="test_accuracy"):
    """``first[seed][key] - second[seed][key]`` for the seeds both have."""
    return [first[s][key] - second[s][key] for s in first if s in second]


def _imp_accuracy(accuracy, labels):
    """One row per (level, kind): accuracy per k label, and paired differences."""
    reference = labels[0]
    table = []
    levels = sorted({level for (_, level, _) in accuracy})
    for level in levels:
        for kind in imp.KINDS:
            cells = {label: accuracy.get((label, level, kind), {}) for label in labels}
            if not any(cells.values()):
                continue
            densities = [r["density"] for by_seed in cells.values() for r in by_seed.values()]
            row = {"level": level, "kind": kind, "density_pct": 100.0 * statistics.fmean(densities)}
            for label in labels:
                by_seed = cells[label]
                dense = accuracy.get((label, 0, "ticket"), {})
                row[f"k={label}: test accuracy %"] = _stats([r["test_accuracy"] for r in by_seed.values()])["text"]
                row[f"k={label}: minus dense (pp)"] = _stats(_paired(by_seed, dense), sign=True)["text"]
                if kind == "ticket":
                    random = accuracy.get((label, level, "random"), {})
                    row[f"k={label}: ticket minus random (pp)"] = _stats(_paired(by_seed, random), sign=True)["text"]
            for label in labels[1:]:
                row[f"k={label} minus k={reference} (pp)"] = _stats(_paired(cells[label], cells[reference]),
                                                                     sign=True)["text"]
            table.append(row)
    return table


def _distance_table(distances, accuracy, labels):
    table = []
    for (label, level, kind), by_seed in sorted(distances.items(), key=lambda item: (item[0][1], item[0][2], item[0][0])):
        if level == 0:
            continue
        densities = [r["density"] for r in accuracy.get((label, level, kind), {}).values()]
        table.append({"k": label, "level": level, "kind": kind,
                      "density_pct": 100.0 * statistics.fmean(densities) if densities else None,
                      "replicates": len(by_seed),
                      "relative_l2_to_dense": _stats([r["relative_l2_to_dense"] for r in by_seed.values()],
                                                     scale=1.0)["text"],
                      "l2_to_dense": _stats([r["l2_to_dense"] for r in by_seed.values()], scale=1.0)["text"]})
    table.sort(key=lambda r: (r["level"], imp.KINDS.index(r["kind"]), labels.index(r["k"])))
    return table


def _distance_differences(distances, accuracy, labels):
    """Per level and kind: each later k's relative L2 distance to dense minus the first k's, paired by seed."""
    table = []
    reference = labels[0] if labels else None
    cells = sorted({(level, kind) for (_, level, kind) in distances if level != 0},
                   key=lambda cell: (cell[0], imp.KINDS.index(cell[1])))
    for level, kind in cells:
        first = distances.get((reference, level, kind), {})
        densities = [r["density"] for r in accuracy.get((reference, level, kind), {}).values()]
        row = {"level": level, "kind": kind, "density_pct": 100.0 * statistics.fmean(densities) if densities else None}
        for label in labels[1:]:
            later = distances.get((label, level, kind), {})
            row[f"k={label} minus k={reference}"] = _stats(_paired(later, first, "relative_l2_to_dense"),
                                                           scale=1.0, sign=True)["text"]
        table.append(row)
    return table


def _subnetwork_instability(replicates):
    by_cell = {}
    for replicate in replicates:
        for (label, level), directory in replicate.subnetwork_stability.items():
            for row in _read_csv_rows(os.path.join(directory, runs.RESULTS)):
                by_cell.setdefault((label, int(level)), []).append(row)
    table = []
    for (label, level), rows in sorted(by_cell.items(), key=lambda item: (item[0][1], item[0][0])):
        table.append({"k": label, "level": level, "density_pct": 100.0 * statistics.fmean(r["density"] for r in rows),
                      "replicates": len(rows),
                      "train_instability_pp": _stats([r["train_instability"] for r in rows])["text"],
                      "test_instability_pp": _stats([r["test_instability"] for r in rows])["text"],
                      "test_error_end_pct": _stats([r["test_error_end"] for r in rows])["text"]})
    return table


def summarize(replicates, total_steps=None):
    """Folds the runs of ``replicates`` (a list of :class:`Replicate`) into tables.

    ``total_steps`` is T, for k as a percentage of T; by default it is read from the IMP runs.

    Returns ``{"T": T or None, "dense_instability": rows, "imp_accuracy": rows,
    "subnetwork_instability": rows, "distances": rows, "distance_differences": rows,
    "per_replicate": rows}``. Percentages and percentage points are ``"mean ± sd"`` over the
    replicates that have the cell (``n`` columns say how many); differences are paired by replicate
    seed and, with 2 or more replicates, also give the 95% Student-t interval of the mean and how
    many replicates are above zero. ``per_replicate`` keeps every IMP record
    with its distance, for plots and re-analysis.
    """
    labels = []
    for replicate in replicates:
        labels += [label for label in replicate.imp if label not in labels]
    total = total_steps or _total_steps(replicates)
    accuracy, distances = _imp_rows(replicates)
    per_replicate = []
    for (label, level, kind), by_seed in sorted(accuracy.items(), key=lambda item: (item[0][1], item[0][0])):
        for seed, row in sorted(by_seed.items()):
            extra = distances.get((label, level, kind), {}).get(seed, {})
            per_replicate.append({"k": label, "seed": seed, "level": level, "kind": kind, "density": row["density"],
                                  "test_accuracy": row["test_accuracy"],
                                  "relative_l2_to_dense": extra.get("relative_l2_to_dense")})
    return {"T": total, "dense_instability": _dense_instability(replicates, total),
            "imp_accuracy": _imp_accuracy(accuracy, labels) if labels else [],
            "subnetwork_instability": _subnetwork_instability(replicates),
            "distances": _distance_table(distances, accuracy, labels),
            "distance_differences": _distance_differences(distances, accuracy, labels) if len(labels) > 1 else [],
            "per_replicate": per_replicate}


def _markdown(rows):
    if not rows:
        return "(no finished runs yet)\n"
    return files.markdown_table(rows, [c for c in files.table_columns(rows) if not c.endswith(("_mean", "_sd"))])


def markdown(summary):
    """The tables of :func:`summarize` as one Markdown text."""
    total = summary["T"]
    parts = [f"T = {total} iterations.\n" if total else "",
             "### The dense network's instability against k (percentage points of error)\n",
             _markdown(summary["dense_instability"]),
             "\n### IMP: test accuracy per level, and paired differences (percentage points)\n",
             _markdown(summary["imp_accuracy"]),
             "\n### The IMP subnetworks' instability from their own k (percentage points of error)\n",
             _markdown(summary["subnetwork_instability"]),
             "\n### L2 distance of each trained network to the trained dense network (prunable weights)\n",
             _markdown(summary["distances"]),
             "\n### Relative L2 distance to dense: the early k minus k = 0, paired by replicate\n",
             _markdown(summary.get("distance_differences", []))]
    return "\n".join(part for part in parts if part)


def write(summary, directory, plot=True):
    """Writes the tables of :func:`summarize` to ``directory``.

    Files: ``dense_instability.csv``, ``imp_accuracy.csv``, ``subnetwork_instability.csv``,
    ``distances.csv``, ``distance_differences.csv``, ``per_replicate.csv``, ``summary.md``, and with ``plot``
    ``instability_vs_k.png`` and ``accuracy_vs_density.png``. Returns the Markdown text.
    """
    os.makedirs(directory, exist_ok=True)
    for name in ("dense_instability", "imp_accuracy", "subnetwork_instability", "distances", "distance_differences",
                 "per_replicate"):
        if summary[name]:
            files.write_csv(os.path.join(directory, f"{name}.csv"), summary[name])
    text = markdown(summary)
    files.write_text(os.path.join(directory, "summary.md"), text)
    if plot and summary["dense_instability"]:
        plots.mean_instability_vs_k(summary["dense_instability"], os.path.join(directory, "instability_vs_k.png"),
                                    title="Dense network: instability against k")
    if plot and summary["per_replicate"]:
        plots.mean_accuracy_vs_density(summary["per_replicate"], os.path.join(directory, "accuracy_vs_density.png"),
                                       title="IMP: rewinding to k = 0 against an early k")
    return text
