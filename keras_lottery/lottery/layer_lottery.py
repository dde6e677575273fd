"""Layer tickets end to end (Jordao et al.): score blocks, remove the weakest, train, compare.

Algorithm 2 (``algorithm="init"``, the paper's contribution): score the residual blocks at
initialization theta_0, remove the p lowest, and train the ticket from theta_0 with the same recipe
as the dense network; no dense training is needed to find the ticket (the dense model is trained
only to compare against).

Algorithm 1 (``algorithm="trained"``): train the dense network, score its blocks, remove the p
lowest, rewind the surviving weights to their values at epoch i (``rewind_epoch``), and train the
rest of the schedule (steps i..T) with learning-rate rewinding: the schedule is replayed from step i
with a fresh optimizer whose iteration count is set to i.

Filter tickets (``unit="layers,filters"``, Algorithm 2 only): for each criterion and p, the channels
of theta_0 are scored with the same criterion (:func:`keras_lottery.filters.score`) and the lowest
are removed until the filter ticket saves what the p-block layer ticket saves (``match``: filters,
parameters or FLOPs; :func:`keras_lottery.filters.matched_ticket`); it trains from theta_0 with the
same recipe, and its rows carry ``unit="filters"`` (the paper's comparison of layers and filters).

A ticket *wins* when ``accuracy(ticket) + xi >= accuracy(dense)``.

Layout of a run directory (the names come from :mod:`keras_lottery.runs`)::

    replicate_<r>/dense/           training.fit directory of the dense model (metrics.json, ...)
    replicate_<r>/dense_to_rewind/ Algorithm 1 only: the dense training up to epoch i
    replicate_<r>/scores_<criterion>.json          (filters_scores_<criterion>.json: channel scores)
    replicate_<r>/<criterion>_p<p>/ training.fit directory of the ticket (<criterion>_p<p>_filters/)
    ticket_<criterion>_p<p>_r<r>.keras   the trained slim ticket (..._r<r>_filters.keras)
    table.csv, table.json, table.md      one row per (unit, criterion, p, replicate) and the means
    accuracy_diff_vs_p.png               with filter tickets: accuracy difference against p, per unit and criterion
    units.csv, units.json, units.md      with both units: layers minus filters, paired by replicate
"""

import csv
import dataclasses
import os
import statistics


from keras_lottery import files, filters, models, runs, training
from keras_lottery import metrics as cost
from keras_lottery.blocks.criteria import lowest, score
from keras_lottery.blocks.discovery import find_blocks
from keras_lottery.blocks.rewrite import remove
from keras_lottery.lottery import plots
from keras_lottery.lottery.unit_comparison import UNIT_COLUMNS, unit_differences
from keras_lottery.lottery.hparams import ALGORITHMS, LayerLotteryHparams

__all__ = ["ALGORITHMS", "LayerLotteryHparams", "TABLE_COLUMNS", "check", "check_model", "markdown_table",
           "rewind_step", "run", "table_paths", "write_table"]

TABLE_COLUMNS = ["replicate", "unit", "criterion", "p", "accuracy_diff_pp", "accuracy_diff_sd_pp", "ticket_accuracy",
                 "dense_accuracy",
                 "flops_down_pct", "params_down_pct", "memory_down_pct", "epoch_time_s", "dense_epoch_time_s",
                 "speedup", "energy_kwh", "energy_down_pct", "emissions_kg", "emissions_down_pct", "winning",
                 "winning_replicates", "removed"]


def check_model(model_hparams, input_shape, classes, lottery):
    """Builds the model once to check that it has enough removable blocks; returns the block list."""
    model = models.get(model_hparams.model, input_shape, classes, seed=model_hparams.model_seed)
    found = find_blocks(model, warn=False)
    if not found.removable:
        raise ValueError(f"--model={model_hparams.model} has no removable residual blocks: {found.message}")
    lottery.validate(removable=len(found.removable))
    if "filters" in lottery.units and not filters.find_groups(model).prunable:
        raise ValueError(f"--unit=filters: --model={model_hparams.model} has no prunable channel group.")
    return found


def rewind_step(training_hparams, lottery, steps_per_epoch):
    """The step of ``lottery.rewind_epoch``; raises ValueError unless it comes before the end of training."""
    total = training.total_steps(training_hparams, steps_per_epoch)
    step = lottery.rewind_epoch * steps_per_epoch
    if step >= total:
        raise ValueError(f"--rewind_epoch={lottery.rewind_epoch} is not before the end of training ({total} steps).")
    return step


def check(hparams, datasets):
    """Everything :func:`run` needs that flags alone cannot tell, checked before anything is written.

    Checks the schedule (``training.check``), builds the model (:func:`check_model`: enough removable
    blocks for ``--blocks``) and checks the rewind epoch against the training schedule (:func:`rewind_step`). Raises ValueError; returns
    the model's ``BlockList``. Fits ``keras_lottery.experiments.common.start(..., check=check)``.
    """
    training.check(hparams, datasets)  # the schedule, and the model builds for this input
    found = check_model(hparams["model"], datasets.input_shape, datasets.classes, hparams["lottery"])
    rewind_step(hparams["training"], hparams["lottery"], datasets.steps_per_epoch)
    return found


def _read_or_compute_scores(path, compute):
    cached = files.read_json(path)
    if cached is not None:
        return cached
    scores = compute()
    files.write_json(path, scores)
    return scores


def _epoch_time(metrics_dict, history_path):
    """Median training time of a chunk (an epoch by default), leaving out the first, which includes
    tracing the training function, whenever there are others."""
    with open(history_path) as f:
        times = [float(row["train_time_s"]) for row in csv.DictReader(f)]
    times = times[1:] if len(times) > 1 else times
    return statistics.median(times) if times else metrics_dict.get("train_time_s", 0.0)


def _new_emissions(emissions_factory):
    return emissions_factory() if emissions_factory else None


def run(run_dir, datasets, hparams, *, emissions_factory=None, log=print):
    """Runs the experiment into ``run_dir`` (resumable: finished trainings are not redone).

    Args:
      run_dir: a prepared ``keras_lottery.runs.RunDirectory`` (``RunDirectory.prepare``).
      datasets: ``keras_lottery.data.Datasets``; replicate r trains on the data order of seed
        ``hparams["training"].data_seed + r`` (``datasets.with_data_seed``), whatever seed
        ``datasets`` was loaded with.
      hparams: ``{"model": ModelHparams, "training": TrainingHparams, "lottery": LayerLotteryHparams, ...}``;
        the model and training recipe is shared by the dense model and every ticket.
      emissions_factory: a function returning a fresh ``Emissions`` callback, or None.
      log: where progress lines go.

    Returns:
      The table rows (list of dicts), also written as CSV, JSON and Markdown (:func:`write_table`);
      the completion marker (``runs.COMPLETE``) is written after them.
    """
    model_hparams, training_hparams, lottery = hparams["model"], hparams["training"], hparams["lottery"]
    directory = run_dir.path
    spe = datasets.steps_per_epoch
    total = training.total_steps(training_hparams, spe)
    start_at = rewind_step(training_hparams, lottery, spe)
    batch = datasets.hparams.batch_size
    rows = []
    for r in range(lottery.replicates):
        seeds = dataclasses.replace(training_hparams, data_seed=training_hparams.data_seed + r)
        model_seed = model_hparams.model_seed + r
        replicate_data = datasets.with_data_seed(seeds.data_seed)
        rdir = runs.replicate_dir(directory, r)
        os.makedirs(rdir, exist_ok=True)

        def build():
            return models.get(model_hparams.model, datasets.input_shape, datasets.classes, seed=model_seed)

        theta_0 = build()
        log(f"[replicate {r}] dense {model_hparams.model}: training {total} steps")
        if lottery.algorithm == "init" or start_at == 0:
            start_model, start_step = theta_0, 0
            dense_start = build()
        else:  # train to epoch i once; its saved model is theta_i, with the optimizer state at i
            to_rewind = os.path.join(rdir, runs.DENSE_TO_REWIND)
            training.fit(build(), replicate_data, seeds, to_rewind, end_step=start_at)
            start_model, start_step = training.load_final_model(to_rewind), start_at
            dense_start = training.load_final_model(to_rewind)
        dense_dir = os.path.join(rdir, runs.DENSE)
        dense, dense_metrics = training.fit(dense_start, replicate_data, seeds, dense_dir, start_step=start_step,
                                            compile_model=not start_step, emissions=_new_emissions(emissions_factory))
        dense_epoch = _epoch_time(dense_metrics, os.path.join(dense_dir, runs.HISTORY))
        dense_cost = _costs(theta_0, batch)
        score_data = list(replicate_data.train(0).take(lottery.score_batches))
        scored_model = theta_0 if lottery.algorithm == "init" else dense
        for criterion in lottery.criteria:
            scores = _read_or_compute_scores(
                runs.scores_file(directory, r, criterion),
                lambda: score(scored_model, score_data, criterion=criterion, seed=model_seed))
            if "filters" in lottery.units:
                channel_scores = _read_or_compute_scores(
                    runs.scores_file(directory, r, criterion, unit="filters"),
                    lambda: {name: values.tolist() for name, values in filters.score(
                        theta_0, score_data, criterion=criterion, seed=model_seed).items()})
            for p in lottery.block_counts:
                removed = lowest(scores, p)
                ticket = remove(start_model, removed, name=f"{theta_0.name}_ticket_p{p}")
                tickets = {}
                if "layers" in lottery.units:
                    log(f"[replicate {r}] {criterion} p={p}: removing {', '.join(removed)}")
                    tickets["layers"] = (ticket, " ".join(removed))
                if "filters" in lottery.units:  # the same savings as the p-block ticket, in channels
                    slim, selection = filters.matched_ticket(
                        theta_0, ticket, channel_scores, match=lottery.match,
                        min_fraction=lottery.min_channel_fraction, channel_multiple=lottery.channel_multiple,
                        name=f"{theta_0.name}_filters_p{p}")
                    log(f"[replicate {r}] {criterion} p={p}, filters matched on {lottery.match}: removing "
                        f"{filters.describe(selection)}")
                    tickets["filters"] = (slim, filters.describe(selection))
                for unit, (model, removed_text) in tickets.items():
                    tdir = runs.ticket_training_dir(directory, r, criterion, p, unit)
                    if start_step:
                        training.compile_for_classification(model, seeds, spe)
                        model.optimizer.build(model.trainable_variables)
                        model.optimizer.iterations.assign(start_step)  # learning-rate rewinding
                    _, ticket_metrics = training.fit(model, replicate_data, seeds, tdir, start_step=start_step,
                                                     compile_model=not start_step,
                                                     emissions=_new_emissions(emissions_factory))
                    target = runs.ticket_file(directory, r, criterion, p, unit)
                    if not os.path.exists(target):
                        files.copy_file(os.path.join(tdir, runs.FINAL_MODEL), target)
                    epoch_time = _epoch_time(ticket_metrics, os.path.join(tdir, runs.HISTORY))
                    rows.append(_row(r, criterion, p, removed_text, dense_metrics, ticket_metrics, dense_cost,
                                     _costs(model, batch), dense_epoch, epoch_time, lottery.xi, unit))
    rows += _means(rows, lottery.xi)
    write_table(directory, rows)
    if set(lottery.units) == {"layers", "filters"}:
        write_unit_comparison(directory, unit_differences(rows))
    if "filters" in lottery.units:
        plots.accuracy_diff_vs_p(rows, os.path.join(directory, runs.UNITS_PLOT),
                                 title=f"{model_hparams.model}: tickets at initialization against dense")
    runs.mark_complete(directory, "layer_lottery", tickets=len(lottery.criteria) * len(lottery.block_counts)
                       * lottery.replicates * len(lottery.units))
    return rows


def _costs(model, batch_size):
    return {"flops": cost.flops(model), "params": cost.params(model),
            "memory": cost.memory(model, batch_size=batch_size).total}


def _down(dense, ticket):
    return round(100.0 * (1.0 - ticket / dense), 2) if dense else 0.0


def _row(r, criterion, p, removed, dense_m, ticket_m, dense_c, ticket_c, dense_epoch, epoch, xi, unit="layers"):
    diff = ticket_m["test_accuracy"] - dense_m["test_accuracy"]
    row = {
        "replicate": r, "unit": unit, "criterion": criterion, "p": p, "removed": removed,
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
        groups.setdefault((row.get("unit", "layers"), row["criterion"], row["p"]), []).append(row)
    means = []
    for (unit, criterion, p), group in groups.items():
        if len(group) < 2:
            continue
        mean = {"replicate": "mean", "unit": unit, "criterion": criterion, "p": p, "removed": ""}
        for key, value in group[0].items():
            if key not in mean and isinstance(value, (int, float)) and not isinstance(value, bool):
                mean[key] = statistics.fmean(g[key] for g in group)
        mean["accuracy_diff_sd_pp"] = round(statistics.stdev(g["accuracy_diff_pp"] for g in group), 2)
        mean["winning"] = bool(mean["ticket_accuracy"] + xi >= mean["dense_accuracy"])
        mean["winning_replicates"] = f"{sum(g['winning'] for g in group)}/{len(group)}"
        means.append(mean)
    return means


def table_paths(directory, names=runs.TABLES):
    """``{"csv": path, "json": path, "md": path}``: the table files of a run directory (``runs.TABLES``,
    or ``names``)."""
    return {os.path.splitext(name)[1][1:]: os.path.join(directory, name) for name in names}


def _write_csv_json_md(paths, rows, columns):
    files.write_csv(paths["csv"], rows, columns)
    files.write_json(paths["json"], rows)
    files.write_markdown(paths["md"], rows, columns)


def write_table(directory, rows):
    """Writes ``table.csv``, ``table.json`` and ``table.md`` (columns in ``TABLE_COLUMNS`` order)."""
    _write_csv_json_md(table_paths(directory), rows, TABLE_COLUMNS)


def write_unit_comparison(directory, rows):
    """Writes ``units.csv``, ``units.json`` and ``units.md``: :func:`unit_differences`' rows."""
    _write_csv_json_md(table_paths(directory, runs.UNIT_TABLES), rows, UNIT_COLUMNS)


def markdown_table(rows, columns=None):
    """The rows as a Markdown table (``TABLE_COLUMNS`` that some row has, unless ``columns`` is given)."""
    return files.markdown_table(rows, columns or TABLE_COLUMNS)
