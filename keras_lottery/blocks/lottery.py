"""Layer tickets end to end (Jordao et al.): score blocks, remove the weakest, train, compare.

Algorithm 2 (``algorithm="init"``, the paper's contribution): score the residual blocks at
initialization theta_0, remove the p lowest, and train the ticket from theta_0 with the same recipe
as the dense network; no dense training is needed to find the ticket (the dense model is trained
only to compare against).

Algorithm 1 (``algorithm="trained"``): train the dense network, score its blocks, remove the p
lowest, rewind the surviving weights to their values at epoch i (``rewind_epoch``), and train the
rest of the schedule (steps i..T) with learning-rate rewinding: the schedule is replayed from step i
with a fresh optimizer whose iteration count is set to i.

A ticket *wins* when ``accuracy(ticket) + xi >= accuracy(dense)``.

Layout of a run directory::

    replicate_<r>/dense/           training.fit directory of the dense model (metrics.json, ...)
    replicate_<r>/scores_<criterion>.json
    replicate_<r>/<criterion>_p<p>/ training.fit directory of the ticket
    ticket_<criterion>_p<p>_r<r>.keras   the trained slim ticket
    table.csv, table.json, table.md      one row per (criterion, p, replicate) and the means
"""

import csv
import dataclasses
import os
import shutil
import statistics

import keras

from keras_lottery import metrics as cost
from keras_lottery import models, runs, training
from keras_lottery.blocks.criteria import lowest, names as criterion_names, score
from keras_lottery.blocks.discovery import find_blocks
from keras_lottery.blocks.rewrite import remove
from keras_lottery.training.loop import FINAL_MODEL

ALGORITHMS = ("init", "trained")


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
    """

    criterion: str = "grasp"
    blocks: str = "1,2,3"
    algorithm: str = "init"
    rewind_epoch: int = 0
    xi: float = 0.0
    score_batches: int = 4
    replicates: int = 1

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
            raise ValueError(f"--criterion: unknown {unknown or self.criterion!r}; accepted: {', '.join(criterion_names())}.")
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


def check_model(model_hparams, input_shape, classes, lottery):
    """Builds the model once to check that it has enough removable blocks; returns the block list."""
    model = models.get(model_hparams.model, input_shape, classes, seed=model_hparams.model_seed)
    found = find_blocks(model, warn=False)
    if not found.removable:
        raise ValueError(f"--model={model_hparams.model} has no removable residual blocks: {found.message}")
    lottery.validate(removable=len(found.removable))
    return found


def _copy_if_new(source, target):
    if not os.path.exists(target):
        shutil.copyfile(source, f"{target}.tmp")
        os.replace(f"{target}.tmp", target)


def _read_or_compute_scores(path, compute):
    cached = runs.read_json(path)
    if cached is not None:
        return cached
    scores = compute()
    runs.write_json_atomic(path, scores)
    return scores


def _epoch_time(metrics_dict, history_path):
    """Median training time of a chunk (an epoch by default), leaving out the first, which includes
    tracing the training function, whenever there are others."""
    with open(history_path) as f:
        times = [float(row["train_time_s"]) for row in csv.DictReader(f)]
    times = times[1:] if len(times) > 1 else times
    return statistics.median(times) if times else metrics_dict.get("train_time_s", 0.0)


def run(directory, datasets, model_hparams, training_hparams, lottery, *, emissions_factory=None, log=print):
    """Runs the experiment into ``directory`` (resumable: finished trainings are not redone).

    Args:
      directory: the run directory (created by the caller with ``runs.RunDirectory.prepare``).
      datasets: ``keras_lottery.data.Datasets`` (its data seed is replicate 0's).
      model_hparams, training_hparams: the recipe shared by the dense model and every ticket.
      lottery: ``LayerLotteryHparams``.
      emissions_factory: a function returning a fresh ``Emissions`` callback, or None.
      log: where progress lines go.

    Returns:
      The table rows (list of dicts), also written as CSV, JSON and Markdown.
    """
    spe = datasets.steps_per_epoch
    total = training.total_steps(training_hparams, spe)
    rewind_step = lottery.rewind_epoch * spe
    if rewind_step >= total:
        raise ValueError(f"--rewind_epoch={lottery.rewind_epoch} is not before the end of training ({total} steps).")
    batch = datasets.hparams.batch_size
    rows = []
    for r in range(lottery.replicates):
        seeds = dataclasses.replace(training_hparams, data_seed=training_hparams.data_seed + r)
        model_seed = model_hparams.model_seed + r
        replicate_data = datasets.with_data_seed(seeds.data_seed)
        rdir = os.path.join(directory, f"replicate_{r}")
        os.makedirs(rdir, exist_ok=True)

        def build():
            return models.get(model_hparams.model, datasets.input_shape, datasets.classes, seed=model_seed)

        def emissions():
            return emissions_factory() if emissions_factory else None

        theta_0 = build()
        log(f"[replicate {r}] dense {model_hparams.model}: training {total} steps")
        if lottery.algorithm == "init" or rewind_step == 0:
            start_model, start_step = theta_0, 0
            dense_start = build()
        else:  # train to epoch i once; its saved model is theta_i, with the optimizer state at i
            training.fit(build(), replicate_data, seeds, os.path.join(rdir, "dense_to_rewind"), end_step=rewind_step)
            saved = os.path.join(rdir, "dense_to_rewind", FINAL_MODEL)
            start_model, start_step = keras.saving.load_model(saved), rewind_step
            dense_start = keras.saving.load_model(saved)
        dense, dense_metrics = training.fit(dense_start, replicate_data, seeds, os.path.join(rdir, "dense"),
                                            start_step=start_step, compile_model=not start_step,
                                            emissions=emissions())
        dense_epoch = _epoch_time(dense_metrics, os.path.join(rdir, "dense", "history.csv"))
        dense_cost = _costs(theta_0, batch)
        score_data = list(replicate_data.train(0).take(lottery.score_batches))
        scored_model = theta_0 if lottery.algorithm == "init" else dense
        for criterion in lottery.criteria:
            scores = _read_or_compute_scores(
                os.path.join(rdir, f"scores_{criterion}.json"),
                lambda: score(scored_model, score_data, criterion=criterion, seed=model_seed))
            for p in lottery.block_counts:
                removed = lowest(scores, p)
                ticket = remove(start_model, removed, name=f"{theta_0.name}_ticket_p{p}")
                tdir = os.path.join(rdir, f"{criterion}_p{p}")
                log(f"[replicate {r}] {criterion} p={p}: removing {', '.join(removed)}")
                if start_step:
                    training.compile_for_classification(ticket, seeds, spe)
                    ticket.optimizer.build(ticket.trainable_variables)
                    ticket.optimizer.iterations.assign(start_step)  # learning-rate rewinding
                trained, ticket_metrics = training.fit(ticket, replicate_data, seeds, tdir, start_step=start_step,
                                                       compile_model=not start_step, emissions=emissions())
                _copy_if_new(os.path.join(tdir, "model.keras"),
                             os.path.join(directory, f"ticket_{criterion}_p{p}_r{r}.keras"))
                ticket_cost = _costs(ticket, batch)
                epoch_time = _epoch_time(ticket_metrics, os.path.join(tdir, "history.csv"))
                rows.append(_row(r, criterion, p, removed, dense_metrics, ticket_metrics, dense_cost, ticket_cost,
                                 dense_epoch, epoch_time, lottery.xi))
    rows += _means(rows, lottery.xi)
    write_table(directory, rows)
    return rows


def _costs(model, batch_size):
    return {"flops": cost.flops(model), "params": cost.params(model),
            "memory": cost.memory(model, batch_size=batch_size).total}


def _down(dense, ticket):
    return round(100.0 * (1.0 - ticket / dense), 2) if dense else 0.0


def _row(r, criterion, p, removed, dense_m, ticket_m, dense_c, ticket_c, dense_epoch, epoch, xi):
    diff = ticket_m["test_accuracy"] - dense_m["test_accuracy"]
    row = {
        "replicate": r, "criterion": criterion, "p": p, "removed": " ".join(removed),
        "dense_accuracy": round(dense_m["test_accuracy"], 4), "ticket_accuracy": round(ticket_m["test_accuracy"], 4),
        "accuracy_diff_pp": round(100 * diff, 2),
        "flops": ticket_c["flops"], "flops_down_pct": _down(dense_c["flops"], ticket_c["flops"]),
        "params": ticket_c["params"], "params_down_pct": _down(dense_c["params"], ticket_c["params"]),
        "memory_bytes": ticket_c["memory"], "memory_down_pct": _down(dense_c["memory"], ticket_c["memory"]),
        "epoch_time_s": round(epoch, 3), "dense_epoch_time_s": round(dense_epoch, 3),
        "speedup": round(dense_epoch / epoch, 3) if epoch else None,
        "winning": bool(ticket_m["test_accuracy"] + xi >= dense_m["test_accuracy"]),
    }
    for key in ("energy_kwh", "emissions_kg"):
        if f"emissions_{key}" in ticket_m and f"emissions_{key}" in dense_m:
            row[key] = ticket_m[f"emissions_{key}"]
            row[f"{key.split('_')[0]}_down_pct"] = _down(dense_m[f"emissions_{key}"], ticket_m[f"emissions_{key}"])
    return row


def _means(rows, xi):
    """One row per (criterion, p) averaging the replicates, when there are several."""
    groups = {}
    for row in rows:
        groups.setdefault((row["criterion"], row["p"]), []).append(row)
    means = []
    for (criterion, p), group in groups.items():
        if len(group) < 2:
            continue
        mean = {"replicate": "mean", "criterion": criterion, "p": p, "removed": ""}
        for key, value in group[0].items():
            if key not in mean and isinstance(value, (int, float)) and not isinstance(value, bool):
                mean[key] = statistics.fmean(g[key] for g in group)
        mean["winning"] = bool(mean["ticket_accuracy"] + xi >= mean["dense_accuracy"])
        mean["winning_replicates"] = f"{sum(g['winning'] for g in group)}/{len(group)}"
        means.append(mean)
    return means


TABLE_COLUMNS = ["replicate", "criterion", "p", "accuracy_diff_pp", "ticket_accuracy", "dense_accuracy",
                 "flops_down_pct", "params_down_pct", "memory_down_pct", "epoch_time_s", "dense_epoch_time_s",
                 "speedup", "energy_kwh", "energy_down_pct", "emissions_kg", "emissions_down_pct", "winning",
                 "winning_replicates", "removed"]


def write_table(directory, rows):
    """Writes ``table.csv``, ``table.json`` and ``table.md`` (columns in ``TABLE_COLUMNS`` order)."""
    columns = [c for c in TABLE_COLUMNS if any(c in row for row in rows)]
    with open(os.path.join(directory, "table.csv.tmp"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(os.path.join(directory, "table.csv.tmp"), os.path.join(directory, "table.csv"))
    runs.write_json_atomic(os.path.join(directory, "table.json"), rows)
    with open(os.path.join(directory, "table.md.tmp"), "w") as f:
        f.write(markdown_table(rows, columns))
    os.replace(os.path.join(directory, "table.md.tmp"), os.path.join(directory, "table.md"))


def markdown_table(rows, columns=None):
    """The rows as a Markdown table."""
    columns = columns or [c for c in TABLE_COLUMNS if any(c in row for row in rows)]

    def cell(value):
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 0.01 and value else f"{value:.4g}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


__all__ = ["ALGORITHMS", "LayerLotteryHparams", "TABLE_COLUMNS", "check_model", "markdown_table", "run",
           "write_table"]
