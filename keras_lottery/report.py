"""Short tables for a terminal: the few columns a person reads first, within 100 columns.

The experiments write every column to their files (``table.csv|json|md``, ``results.csv``,
``summary.*``); what they print is one of these: one line per ticket (replicates folded into
``mean ± standard deviation``), aligned plain text, no Markdown. A column that would make a line
wider than ``width`` is left out, and :func:`text_table` says how many were.
"""

import statistics

__all__ = ["imp_table", "layer_lottery_table", "mean_spread", "robustness_table", "summary_cell", "text_table"]

WIDTH = 100


def mean_spread(values, digits=2, sign=False, scale=1.0, unit="", spread=True):
    """``"m ± sd"`` of the numbers in ``values`` (``None`` skipped), ``"m"`` for one (or with
    ``spread=False``), ``""`` for none."""
    values = [scale * float(v) for v in values if v is not None and v != ""]
    if not values:
        return ""
    spec = f"{'+' if sign else ''}.{digits}f"
    text = format(statistics.fmean(values), spec) + unit
    if spread and len(values) > 1:
        text += " ± " + format(statistics.stdev(values), f".{digits}f")
    return text


def text_table(rows, columns, width=WIDTH):
    """``rows`` as aligned text; ``columns`` is ``[(header, row -> str), ...]``, in reading order.

    Columns are kept from the left while the lines fit in ``width`` characters; a last line says how
    many were left out (the files have them). Returns the text (no trailing newline).
    """
    cells = [[header] + [str(cell(row)) for row in rows] for header, cell in columns]
    widths = [max(len(text) for text in column) for column in cells]
    kept, used = 0, 0
    for w in widths:
        if kept and used + 2 + w > width:
            break
        used += (2 if kept else 0) + w
        kept += 1
    lines = ["  ".join(column[i].ljust(widths[c]) for c, column in enumerate(cells[:kept])).rstrip()
             for i in range(len(rows) + 1)]
    lines.insert(1, "  ".join("-" * widths[c] for c in range(kept)))
    if kept < len(columns):
        lines.append(f"({len(columns) - kept} more column(s) in the table files)")
    return "\n".join(lines)


def _groups(rows, key):
    groups = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return groups


def layer_lottery_table(rows, width=WIDTH):
    """Layer (and filter) tickets: one line per unit, criterion and p over the replicates.

    Ticket, accuracy difference against dense (points, mean ± SD), ticket accuracy (mean ± SD), and
    the means of FLOPs saved, measured speed-up and CO2 saved (when tracked), and wins (replicates
    where ticket + xi >= dense).
    The per-replicate and mean rows (``replicate == "mean"``) are in ``table.*``.
    """
    replicates = [row for row in rows if row.get("replicate") != "mean"]
    groups = _groups(replicates, lambda r: (r.get("unit", "layers"), r["criterion"], r["p"]))
    summary = []
    for (unit, criterion, p), members in groups.items():
        def values(key, members=members):
            return [m.get(key) for m in members]
        line = {"ticket": f"{criterion} p={p}" + (" filters" if unit == "filters" else ""),
                "diff": mean_spread(values("accuracy_diff_pp"), sign=True),
                "acc": mean_spread(values("ticket_accuracy"), scale=100),
                "flops": mean_spread(values("flops_down_pct"), digits=1, unit="%", spread=False),
                "speedup": mean_spread(values("speedup"), unit="x", spread=False),
                "co2": mean_spread(values("emissions_down_pct"), digits=1, unit="%", spread=False),
                "wins": f"{sum(bool(m.get('winning')) for m in members)}/{len(members)}"}
        summary.append(line)
    columns = [("ticket", lambda r: r["ticket"]), ("Δ acc (pp)", lambda r: r["diff"]), ("acc %", lambda r: r["acc"]),
               ("FLOPs saved", lambda r: r["flops"]), ("speed-up", lambda r: r["speedup"])]
    if any(line["co2"] for line in summary):
        columns.append(("CO2 saved", lambda r: r["co2"]))
    columns.append(("wins", lambda r: r["wins"]))
    return text_table(summary, columns, width)


def _percent(value, digits=2):
    return "" if value is None or value == "" else f"{100 * float(value):.{digits}f}"


def imp_table(rows, width=WIDTH):
    """IMP: one line per trained network (level, kind, density, test and best validation accuracy,
    training time, CO2 when tracked); ``results.csv`` has every column."""
    columns = [("level", lambda r: r.get("level", "")), ("kind", lambda r: r.get("kind", "")),
               ("density %", lambda r: _percent(r.get("density"))),
               ("test acc %", lambda r: _percent(r.get("test_accuracy"))),
               ("best val acc %", lambda r: _percent(r.get("best_val_accuracy"))),
               ("train s", lambda r: "" if r.get("train_time_s") is None else f"{float(r['train_time_s']):.1f}")]
    if any(r.get("emissions_emissions_kg") is not None for r in rows):
        columns.append(("CO2 g", lambda r: "" if r.get("emissions_emissions_kg") is None
                        else f"{1000 * float(r['emissions_emissions_kg']):.3g}"))
    return text_table(rows, columns, width)


def summary_cell(row, key, points=False):
    """``row[key]`` with its ``row[key + "_std"]`` as ``"m ± sd"``: a fraction shown in percent, or with
    ``points`` a difference already in points, signed; ``""`` when ``row`` has no ``key``."""
    mean, spread = row.get(key), row.get(f"{key}_std")
    if mean is None:
        return ""
    scale, spec = (1.0, "+.2f") if points else (100.0, ".2f")
    text = format(scale * float(mean), spec)
    return text + (f" ± {scale * float(spread):.2f}" if spread is not None else "")


def robustness_table(summary, width=WIDTH):
    """Robustness: one line per group (dense, each ticket or level), mean ± SD over replicates: clean
    accuracy, its difference against dense, the mean corruption accuracy and its difference, mCE;
    ``summary.md`` has every corruption, the shifted test set and the attacks."""
    columns = [("group", lambda r: r["group"]), ("n", lambda r: r.get("n", "")),
               ("density", lambda r: "" if r.get("density") is None else f"{float(r['density']):.3f}"),
               ("clean %", lambda r: summary_cell(r, "clean")),
               ("Δ clean", lambda r: summary_cell(r, "d_clean", True)),
               ("corrupt %", lambda r: summary_cell(r, "mean_corruption")),
               ("Δ corrupt", lambda r: summary_cell(r, "d_mean_corruption", True)),
               ("mCE %", lambda r: "" if r.get("mce") is None else f"{float(r['mce']):.1f}")]
    return text_table(summary, columns, width)
