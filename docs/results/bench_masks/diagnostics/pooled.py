"""Pools the per-process ratios of LeNet-300-100 mask benchmark tables (files in the folder above this
one): per variant the median and mean ± SD over all processes, and per process each API variant's
ratio minus the plain mask's (mean ± standard error, how often above).

    python docs/results/bench_masks/diagnostics/pooled.py [TABLE.md ...]

Without arguments: the three tables of the morning of 2026-12-02.
"""

import os
import re
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RUNS = ["2026-12-02_lenet_300_100_3processes.md", "2026-12-02_lenet_300_100_5processes.md",
        "2026-12-02_lenet_300_100_8processes_notfmot.md"]


def per_process(path):
    """``{variant: [ratio of each process]}`` from a table's last column."""
    ratios = {}
    for line in open(path):
        match = re.match(r"\| lenet_300_100 \|.*\| (\w+) \|.*to dense \(([\d., ]+)\) \|", line.strip())
        if match:
            ratios[match.group(1)] = [float(x) for x in match.group(2).split(",")]
    return ratios


pooled = {}
for name in sys.argv[1:] or RUNS:
    for variant, values in per_process(os.path.join(HERE, "..", name)).items():
        pooled.setdefault(variant, []).extend(values)
for variant, values in pooled.items():
    print(f"{variant}: {len(values)} processes, median {statistics.median(values):.3f}, "
          f"mean {statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}")
for first, second in [("sparsity_api", "masked"), ("m_by_n", "masked"), ("masked", "gradient_unmasked")]:
    if first not in pooled or second not in pooled:
        continue  # a table of a run that timed only some variants
    points = [100 * (a - b) for a, b in zip(pooled[first], pooled[second])]
    print(f"{first} - {second}: {statistics.fmean(points):+.2f} ± {statistics.stdev(points) / len(points) ** 0.5:.2f} "
          f"points (SE), above in {sum(p > 0 for p in points)}/{len(points)}")
