"""Layer tickets against filter tickets, paired by replicate: the comparison the layer-lottery paper
closes on ("layers win at initialization, filters hardly"), as numbers with their spread.

A layer ticket and the filter ticket matched to it share the criterion, p, the replicate's
initialization and data order, and the dense network they are compared with. Their difference
(layers minus filters, in accuracy points) is therefore paired: the dense network's own noise
cancels, and the spread left is that of the two tickets' trainings. :func:`unit_differences`
gives, per criterion and p and pooled over p, the mean, the sample SD, the standard error and how
often the layer ticket came out ahead.
"""

import math
import statistics

__all__ = ["UNIT_COLUMNS", "unit_differences"]

UNIT_COLUMNS = ["criterion", "p", "pairs", "layers_minus_filters_pp", "sd_pp", "se_pp", "layers_ahead",
                "layers_vs_dense_pp", "filters_vs_dense_pp"]


def _summary(criterion, p, pairs):
    diffs = [layers - filters for layers, filters in pairs]
    sd = statistics.stdev(diffs) if len(diffs) > 1 else None
    return {"criterion": criterion, "p": p, "pairs": len(diffs),
            "layers_minus_filters_pp": round(statistics.fmean(diffs), 2),
            "sd_pp": None if sd is None else round(sd, 2),
            "se_pp": None if sd is None else round(sd / math.sqrt(len(diffs)), 2),
            "layers_ahead": f"{sum(d > 0 for d in diffs)}/{len(diffs)}",
            "layers_vs_dense_pp": round(statistics.fmean(layers for layers, _ in pairs), 2),
            "filters_vs_dense_pp": round(statistics.fmean(filters for _, filters in pairs), 2)}


def unit_differences(rows):
    """Paired layer-minus-filter accuracy differences from the layer lottery's per-replicate rows.

    ``rows``: the rows of ``table.json`` (replicate means, with ``replicate == "mean"``, are skipped).
    Returns one row per (criterion, p) that has both units in some replicate, then one per criterion
    pooled over p (``p == "all"``), with the columns of :data:`UNIT_COLUMNS`. Raises ``ValueError`` when
    no replicate has both units.
    """
    by_key = {}
    for row in rows:
        if row.get("replicate") == "mean":
            continue
        key = (row["criterion"], row["p"], row["replicate"])
        by_key.setdefault(key, {})[row.get("unit", "layers")] = row["accuracy_diff_pp"]
    pairs = {}
    for (criterion, p, _), units in by_key.items():
        if "layers" in units and "filters" in units:
            pairs.setdefault((criterion, p), []).append((units["layers"], units["filters"]))
    if not pairs:
        raise ValueError("unit_differences needs rows of both units (layers and filters) for some replicate.")
    out = [_summary(criterion, p, group) for (criterion, p), group in pairs.items()]
    for criterion in dict.fromkeys(c for c, _ in pairs):
        pooled = [pair for (c, _), group in pairs.items() if c == criterion for pair in group]
        out.append(_summary(criterion, "all", pooled))
    return out
