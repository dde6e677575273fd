"""Figures of a robustness evaluation (matplotlib, Agg backend): accuracy against corruption severity
per corruption family, and accuracy against the attack budget epsilon. Each line is a group (dense,
a ticket, an IMP level or control), averaged over replicates."""

import numpy as np

from keras_lottery.robustness import corruptions

__all__ = ["accuracy_vs_epsilon", "accuracy_vs_severity"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, axes, path):
    axes[0][0].set_ylabel("accuracy (%)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _groups(inventory):
    out = {}
    for entry in inventory.entries:
        out.setdefault(entry.group, []).append(entry.id)
    return out


def accuracy_vs_severity(inventory, results, path):
    """One panel per corruption family: accuracy (mean over the family's corruptions and replicates)
    at severity 0 (clean) and at each evaluated severity."""
    plt = _pyplot()
    families = [f for f, members in corruptions.FAMILIES.items()
                if any(m in results[inventory.entries[0].id]["corruptions"] for m in members)]
    if not families:
        return
    fig, axes = plt.subplots(1, len(families), figsize=(4 * len(families), 3.6), sharey=True, squeeze=False)
    for ax, family in zip(axes[0], families):
        for group, ids in _groups(inventory).items():
            curves = []
            for model_id in ids:
                per = results[model_id]["corruptions"]
                members = [np.asarray(per[m]) for m in corruptions.FAMILIES[family] if m in per]
                curves.append(np.concatenate([[results[model_id]["clean"]], np.mean(members, axis=0)]))
            ax.plot(range(len(curves[0])), 100 * np.mean(curves, axis=0), marker="o", label=group)
        ax.set_title(family)
        ax.set_xlabel("severity (0 = clean)")
    _save(plt, fig, axes, path)


def accuracy_vs_epsilon(inventory, results, path):
    """One panel per attack: accuracy (mean over replicates) against epsilon."""
    plt = _pyplot()
    labels = list(results[inventory.entries[0].id]["attacks"])
    if not labels:
        return
    fig, axes = plt.subplots(1, len(labels), figsize=(4.5 * len(labels), 3.6), sharey=True, squeeze=False)
    for ax, label in zip(axes[0], labels):
        for group, ids in _groups(inventory).items():
            epsilons = list(results[ids[0]]["attacks"][label])
            values = [[results[i]["attacks"][label][e] for e in epsilons] for i in ids]
            ax.plot([float(e) for e in epsilons], 100 * np.mean(values, axis=0), marker="o", label=group)
        ax.set_title(label.upper())
        ax.set_xlabel("epsilon (L-inf, pixels in [0, 1])")
    _save(plt, fig, axes, path)
