"""The robustness experiment: evaluate every model of an ``Inventory`` and compare it with its dense model.

For each model (``inventory.Entry``): clean accuracy, accuracy under each corruption and severity
(``suite.CorruptionSuite``: the same cached images for every model), on the shifted test set, and
under each attack at each epsilon (``attacks``), plus the gradient-masking check. Each model's
results are written to ``models/<id>.json`` as soon as they are complete, so a killed run resumes
at the next model. Then:

* ``table.csv|json|md``: one row per model: the accuracies, the mean corruption accuracy, mCE
  relative to the dense model of the same replicate, and each figure's difference against that dense
  model (``d_...``, percentage points);
* ``summary.csv|json|md``: per group (dense, each ticket or level and control), the mean and sample
  standard deviation over replicates of every figure and difference, and for each difference its 95%
  interval (Student t over replicates) and the number of replicates above dense;
* ``accuracy_vs_severity.png`` (per corruption family) and ``accuracy_vs_epsilon.png``;
* ``complete.json`` last.
"""

import os
import statistics
import time

import keras
import numpy as np

from keras_lottery import files, runs, spread
from keras_lottery.report import summary_cell
from keras_lottery.robustness import attacks, corruptions, plots, shift, suite
from keras_lottery.robustness import inventory as inventory_module

__all__ = ["check", "evaluate_model", "markdown_summary", "run", "summary_rows", "table_rows"]


def check(hparams, datasets, inventory):
    """What flags alone cannot tell, before anything is written: the corruptions apply to these images,
    and the shifted test set can be had and fits. Returns ``(corruption names, shifted or None)``."""
    rob = hparams["robustness"]
    inventory_module.check_dataset(inventory, hparams["dataset"])
    channels = datasets.input_shape[-1]
    if rob.attack_subset > len(datasets.x_test):
        raise ValueError(f"--attack_subset={rob.attack_subset} is more than the {len(datasets.x_test)} test images "
                         f"evaluated (--test_subset).")
    names = rob.corruption_names(channels)
    for name in names:
        corruptions.check(name, channels=channels)
    shifted = None
    if rob.shifted:
        shifted = shift.load(rob.shifted, datasets.input_shape, datasets.classes,
                             data_dir=datasets.hparams.data_dir or None)
    return names, shifted


def _pixels(images, scale):
    return np.asarray(images, np.float32) / scale


def evaluate_model(model, datasets, rob, names, corrupted, shifted, log=print):
    """The robustness figures of one Keras ``model`` (logits) as a dict of plain numbers."""
    scale, _, _ = datasets.normalization
    n = len(datasets.x_test)  # --test_subset (DatasetHparams) already kept the first N
    x, y = datasets.x_test[:n], datasets.y_test[:n]
    attacker = attacks.Attacker(model, datasets.normalization)
    out = {"clean": float((attacker.predict(_pixels(x, scale)) == y).mean()), "test_images": int(len(x))}
    start = time.perf_counter()
    sets = len(names) * len(rob.severity_list)
    bar = keras.utils.Progbar(sets, unit_name="set") if log is not None and sets else None
    if bar is not None:
        log(f"  classifying {sets} corrupted sets of {len(y)} images")
    out["corruptions"] = suite.accuracies(attacker.classify, corrupted, y, names, rob.severity_list,
                                          progress=bar.update if bar is not None else None)
    out["corruption_seconds"] = time.perf_counter() - start
    if shifted is not None:
        images, labels, _ = shifted
        out["shifted"] = float((attacker.predict(_pixels(images, 255.0 if images.dtype == np.uint8 else 1.0))
                                == labels).mean())
    m = rob.attack_subset or n
    pixels, labels = _pixels(x[:m], scale), y[:m]
    out["attacks"], out["attack_images"] = {}, int(m)
    for settings in rob.attack_settings():
        start = time.perf_counter()
        curve = {e: float(attacker.robust(pixels, labels, e, settings).mean()) for e in rob.epsilon_list}
        out["attacks"][settings.label] = {f"{e:g}": a for e, a in curve.items()}
        out[f"{settings.label}_seconds"] = time.perf_counter() - start
    curves = {label: {float(e): a for e, a in c.items()} for label, c in out["attacks"].items()}
    pgd = next((c for label, c in curves.items() if label.startswith("pgd")), None)
    out["masking"] = attacks.gradient_masking(model, pixels, labels, datasets.normalization, curves.get("fgsm"), pgd)
    return out


def run(run_dir, datasets, hparams, inventory, checked, cache_dir, log=print):
    """Evaluates every model of ``inventory`` into the prepared ``run_dir`` (resumable) and writes the
    tables, plots and completion marker. ``checked`` is what :func:`check` returned; ``cache_dir``
    holds the corrupted images. Returns ``(rows, summary)``."""
    rob = hparams["robustness"]
    names, shifted = checked
    n = len(datasets.x_test)  # --test_subset (DatasetHparams) already kept the first N
    corrupted = suite.CorruptionSuite(cache_dir, datasets.x_test[:n], seed=rob.seed, log=log)
    seconds = corrupted.generate(names)
    if seconds:
        log(f"Generated the corruptions in {seconds:.1f} s.")
    results = {}
    for index, entry in enumerate(inventory.entries):
        path = runs.model_result_file(run_dir.path, entry.id)
        found = files.read_json(path)
        if found is None:
            log(f"[{index + 1}/{len(inventory.entries)}] {entry.id}: {entry.path}")
            with files.guard(entry.path):
                model = keras.saving.load_model(entry.path)
            found = evaluate_model(model, datasets, rob, names, corrupted, shifted, log)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            files.write_json(path, found)
            keras.backend.clear_session()
        for warning in found["masking"]:
            log(f"  gradient masking? {entry.id}: {warning}")
        results[entry.id] = found
    rows = table_rows(inventory, results)
    summary = summary_rows(rows)
    for name in runs.TABLES:
        _write(run_dir.file(name), rows)
    for name in runs.SUMMARY_TABLES[:2]:
        _write(run_dir.file(name), summary)
    files.write_text(run_dir.file(runs.SUMMARY_TABLES[2]), markdown_summary(summary))
    plots.accuracy_vs_severity(inventory, results, run_dir.file(runs.SEVERITY_PLOT))
    plots.accuracy_vs_epsilon(inventory, results, run_dir.file(runs.EPSILON_PLOT))
    run_dir.mark_complete(models=len(rows))
    return rows, summary


def _write(path, rows):
    ext = os.path.splitext(path)[1]
    if ext == ".csv":
        files.write_csv(path, rows)
    elif ext == ".json":
        files.write_json(path, rows, sort_keys=False)
    else:
        files.write_markdown(path, rows)


def _figures(result):
    """The flat figures of one model's results: clean, mean corruption, per corruption, shifted, attacks."""
    out = {"clean": result["clean"], "mean_corruption": suite.mean_corruption_accuracy(result["corruptions"])}
    for name, accs in result["corruptions"].items():
        out[name] = float(np.mean(accs))
    if "shifted" in result:
        out["shifted"] = result["shifted"]
    for label, curve in result["attacks"].items():
        for epsilon, accuracy in curve.items():
            out[f"{label}@{epsilon}"] = accuracy
    return out


def table_rows(inventory, results):
    """One row per model: its figures (accuracies in [0, 1]), mCE against the dense model of its
    replicate (percent), and ``d_<figure>``: the difference against that dense model in points."""
    rows = []
    for entry in inventory.entries:
        figures = _figures(results[entry.id])
        reference = inventory.reference(entry.replicate)
        dense = _figures(results[reference.id])
        row = {"group": entry.group, "replicate": entry.replicate, "model": entry.id, "density": entry.density,
               "reference": entry.reference}
        row.update({k: round(v, 6) if v is not None else None for k, v in figures.items()})
        row["mce"] = suite.mce(results[entry.id]["corruptions"], results[reference.id]["corruptions"])
        for key, value in figures.items():
            if value is not None and dense.get(key) is not None:
                row[f"d_{key}"] = round(100.0 * (value - dense[key]), 3)
        row["masking"] = "; ".join(results[entry.id]["masking"])
        rows.append(row)
    return rows


def summary_rows(rows):
    """Per group, in order of appearance: ``n`` replicates, and ``<figure>`` / ``<figure>_std`` (mean and
    sample standard deviation over replicates) for every number of the table. For each paired
    difference against dense (``d_<figure>``, points) also ``d_<figure>_ci95`` (half-width of the
    95% Student-t interval of the mean, with 2 or more replicates) and ``d_<figure>_above`` (the
    replicates where the model is above its dense model)."""
    groups = list(dict.fromkeys(r["group"] for r in rows))
    out = []
    for group in groups:
        members = [r for r in rows if r["group"] == group]
        summary = {"group": group, "n": len(members), "reference": all(r.get("reference") for r in members)}
        for key in members[0]:
            values = [r[key] for r in members if isinstance(r.get(key), (int, float)) and r.get(key) is not None]
            if key in ("replicate", "reference") or not values or len(values) != len(members):
                continue
            summary[key] = round(statistics.fmean(values), 6)
            if key != "density":
                summary[f"{key}_std"] = round(statistics.stdev(values), 6) if len(values) > 1 else None
            if key.startswith("d_"):
                summary[f"{key}_ci95"] = round(spread.mean_interval(values)[1], 6) if len(values) > 1 else None
                summary[f"{key}_above"] = spread.replicates_above(values)
        out.append(summary)
    return out


def _paired_cell(summary, key):
    """``+1.21 [-0.23, +2.65] 3/3``: mean difference, its 95% interval, replicates above dense."""
    mean, half, above = summary.get(key), summary.get(f"{key}_ci95"), summary.get(f"{key}_above")
    if mean is None:
        return ""
    text = f"{mean:+.2f}"
    if half is not None:
        text += f" [{mean - half:+.2f}, {mean + half:+.2f}]"
    return text + ("" if above is None else f" {above}/{summary['n']}")


def _paired_table(summary, keys):
    """Each ticket's paired differences against dense with their 95% interval (the dense rows are the
    reference and are left out)."""
    rows = [row for row in summary if not row.get("reference")]
    if not rows:
        return ""
    head = ["group", "n"] + [f"Δ {k.replace('_', ' ')}" for k in keys]
    lines = ["", "Paired differences against dense (points): mean [95% interval of the mean, Student t over "
             "replicates] and the replicates where the model is above its dense model:", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        lines.append("| " + " | ".join([row["group"], str(row["n"])] + [_paired_cell(row, f"d_{k}") for k in keys])
                     + " |")
    return "\n".join(lines) + "\n"


def markdown_summary(summary):
    """The paper-style tables: per group, mean ± standard deviation over replicates. First the
    accuracies (%) and differences against dense (points), then the paired differences with their 95%
    interval and sign count, then each corruption's difference."""
    first = summary[0]
    attack_keys = [k for k in first if "@" in k and not k.startswith("d_") and not k.endswith("_std")
                   and float(k.split("@")[1]) > 0]  # at epsilon 0 an attack is the clean accuracy
    names = [k for k in first if k in corruptions.CORRUPTIONS + corruptions.EXTRA]
    head = ["group", "n", "density", "clean %", "Δ clean", "mean corruption %", "Δ mean corruption", "mCE %"]
    head += ["Δ shifted"] if "shifted" in first else []
    head += [f"Δ {k}" for k in attack_keys]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in summary:
        cells = [row["group"], str(row["n"]), "" if row.get("density") is None else f"{row['density']:.3f}",
                 summary_cell(row, "clean"), summary_cell(row, "d_clean", True),
                 summary_cell(row, "mean_corruption"), summary_cell(row, "d_mean_corruption", True),
                 "" if row.get("mce") is None else f"{row['mce']:.1f}" + (
                     f" ± {row['mce_std']:.1f}" if row.get("mce_std") is not None else "")]
        cells += [summary_cell(row, "d_shifted", True)] if "shifted" in first else []
        cells += [summary_cell(row, f"d_{k}", True) for k in attack_keys]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    text += _paired_table(summary, ["clean", "mean_corruption"] + (["shifted"] if "shifted" in first else [])
                          + attack_keys)
    if names:
        head = ["group"] + names
        lines = ["", "Difference against dense per corruption (points, mean over the severities):", "",
                 "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in summary:
            lines.append("| " + " | ".join([row["group"]] + [summary_cell(row, f"d_{n}", True) for n in names]) + " |")
        text += "\n".join(lines) + "\n"
    return text
