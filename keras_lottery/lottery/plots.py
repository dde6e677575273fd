"""Matplotlib figures of IMP, stability and layer-lottery results (written to files; the Agg backend, no display)."""

import statistics

__all__ = ["accuracy_diff_vs_p", "accuracy_vs_density", "instability_vs_k", "mean_accuracy_vs_density",
           "mean_instability_vs_k"]

_STYLE = {"ticket": ("C0", "o", "IMP ticket"), "reinit": ("C3", "s", "random re-init (same mask)"),
          "random": ("C2", "^", "random pruning (same densities)")}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def accuracy_vs_density(series, path, title=None, metric="test_accuracy"):
    """Plots ``metric`` against density (log axis, dense on the left) and saves ``path``.

    Args:
      series: ``{label: rows}`` where rows are ``imp.results`` records, or one list of rows. Each
        label gets one line per kind (ticket / reinit / random); the dense accuracy (level 0 of
        the first series) is drawn as a horizontal line.
      path: the image file to write.
      title: the figure title.
      metric: the record field on the y axis.
    """
    plt = _pyplot()
    if not isinstance(series, dict):
        series = {"": series}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    linestyles = ["-", "--", ":", "-."]
    dense = None
    for index, (label, rows) in enumerate(series.items()):
        for kind, (color, marker, name) in _STYLE.items():
            points = sorted(((r["density"], r[metric]) for r in rows if r["kind"] == kind and metric in r),
                            reverse=True)
            if kind != "ticket":
                points = [p for p in points if p[0] < 1.0]
            if not points:
                continue
            xs, ys = zip(*[(100 * d, 100 * a) for d, a in points])
            ax.plot(xs, ys, linestyle=linestyles[index % len(linestyles)], marker=marker, color=color,
                    label=f"{name}{', ' + label if label else ''}", markersize=4)
        level0 = [r for r in rows if r["kind"] == "ticket" and r["level"] == 0 and metric in r]
        if dense is None and level0:
            dense = 100 * level0[0][metric]
    if dense is not None:
        ax.axhline(dense, color="k", linewidth=0.8, label=f"dense ({dense:.2f}%)")
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("weights remaining (%)")
    ax.set_ylabel(metric.replace("_", " ") + " (%)")
    ax.grid(True, which="both", alpha=0.3)
    return _finish(plt, fig, ax, path, title)


def instability_vs_k(rows, path, title=None):
    """Plots train and test instability (percentage points) against the rewind step k; saves ``path``.

    ``rows`` are dicts with ``k``, ``train_instability`` and ``test_instability``.
    """
    plt = _pyplot()
    rows = sorted(rows, key=lambda r: r["k"])
    fig, ax = plt.subplots(figsize=(6, 4))
    ks = [r["k"] for r in rows]
    for key, color in (("train_instability", "C0"), ("test_instability", "C1")):
        ax.plot(ks, [100 * r[key] for r in rows], marker="o", color=color, label=key.replace("_", " "))
    ax.axhline(2.0, color="k", linewidth=0.8, linestyle=":", label="2% (stable below)")
    if ks and min(ks) >= 0 and max(ks) > 0:
        ax.set_xscale("symlog", linthresh=max(1, min([k for k in ks if k > 0] or [1])))
    ax.set_xlabel("rewind step k (iterations)")
    ax.set_ylabel("instability (pp of error)")
    ax.grid(True, alpha=0.3)
    return _finish(plt, fig, ax, path, title)


def accuracy_diff_vs_p(rows, path, title=None):
    """Plots each ticket's accuracy difference against dense (pp) over p, one line per (unit, criterion).

    ``rows`` are the layer-lottery table's per-replicate rows (``replicate``, ``unit``, ``criterion``,
    ``p``, ``accuracy_diff_pp``); each point is the mean over replicates, its bar the standard deviation
    (none for one replicate), and the replicates are drawn as dots. Saves ``path``.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    series = {}
    for row in rows:
        if row["replicate"] != "mean":
            series.setdefault((row.get("unit", "layers"), row["criterion"]), {}).setdefault(row["p"], []).append(
                row["accuracy_diff_pp"])
    for index, ((unit, criterion), by_p) in enumerate(sorted(series.items())):
        ps = sorted(by_p)
        offset = 0.04 * (index - (len(series) - 1) / 2)  # side by side, so the bars do not overlap
        means = [statistics.fmean(by_p[p]) for p in ps]
        spread = [statistics.stdev(by_p[p]) if len(by_p[p]) > 1 else 0.0 for p in ps]
        style = dict(color=f"C{index}", linestyle="-" if unit == "layers" else "--",
                     marker="o" if unit == "layers" else "s")
        ax.errorbar([p + offset for p in ps], means, yerr=spread, capsize=3, label=f"{criterion}, {unit}", **style)
        for p in ps:
            ax.scatter([p + offset] * len(by_p[p]), by_p[p], s=8, color=style["color"], alpha=0.4)
    ax.axhline(0.0, color="k", linewidth=0.8)
    ax.set_xticks(sorted({p for by_p in series.values() for p in by_p}))
    ax.set_xlabel("p (blocks removed; filter tickets matched to them)")
    ax.set_ylabel("test accuracy - dense (pp)")
    ax.grid(True, alpha=0.3)
    return _finish(plt, fig, ax, path, title)


def mean_instability_vs_k(rows, path, title=None):
    """Train and test instability (pp) against k, mean ± sd over replicates; saves ``path``.

    ``rows`` carry ``k`` and ``train_instability_mean`` / ``_sd`` and ``test_instability_mean`` / ``_sd``
    in percentage points (``keras_lottery.lottery.rewinding_study``'s ``dense_instability`` table).
    """
    plt = _pyplot()
    rows = [r for r in rows if r["test_instability_mean"] is not None]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, color in (("train", "C0"), ("test", "C1")):
        ax.errorbar([r["k"] for r in rows], [r[f"{key}_instability_mean"] for r in rows],
                    yerr=[r[f"{key}_instability_sd"] or 0.0 for r in rows], marker="o", capsize=3, color=color,
                    label=f"dense, {key} (mean ± sd over replicates)")
    ax.axhline(2.0, color="k", linewidth=0.8, linestyle=":", label="2% (stable below)")
    positive = [r["k"] for r in rows if r["k"] > 0]
    if positive:
        ax.set_xscale("symlog", linthresh=min(positive))
    ax.set_xlabel("rewind step k (iterations)")
    ax.set_ylabel("instability (pp of error)")
    ax.grid(True, alpha=0.3)
    return _finish(plt, fig, ax, path, title)


def mean_accuracy_vs_density(rows, path, title=None):
    """Test accuracy against density, one line per (k, kind), mean ± sd over replicates; saves ``path``.

    ``rows`` are per-replicate records with ``k``, ``kind``, ``level``, ``density`` and ``test_accuracy``
    (``keras_lottery.lottery.rewinding_study``'s ``per_replicate`` table).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups = {}
    for row in rows:
        groups.setdefault((row["k"], row["kind"]), {}).setdefault(row["level"], []).append(row)
    styles = {"ticket": "o", "random": "^", "reinit": "s"}
    for index, ((label, kind), by_level) in enumerate(sorted(groups.items())):
        levels = sorted(level for level in by_level if kind == "ticket" or level > 0)
        xs = [100 * statistics.fmean(r["density"] for r in by_level[lv]) for lv in levels]
        values = [[100 * r["test_accuracy"] for r in by_level[lv]] for lv in levels]
        ax.errorbar(xs, [statistics.fmean(v) for v in values],
                    yerr=[statistics.stdev(v) if len(v) > 1 else 0.0 for v in values], marker=styles[kind],
                    capsize=3, linestyle="-" if kind == "ticket" else "--", color=f"C{index}",
                    label=f"{kind}, k = {label}")
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("weights remaining (%)")
    ax.set_ylabel("test accuracy (%), mean ± sd over replicates")
    ax.grid(True, which="both", alpha=0.3)
    return _finish(plt, fig, ax, path, title)


def _finish(plt, fig, ax, path, title):
    """Title, legend and layout; saves ``path`` and closes the figure."""
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
