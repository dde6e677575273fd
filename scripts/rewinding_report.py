"""Tables and figures of the rewinding study (scripts/rewinding_resnet20.sh) from its run directories.

    .venv/bin/python scripts/rewinding_report.py [--run_root=runs] [--seeds=0,1,2] [--early_k=50it]
        [--prefix=rewind_r20_fm12k] [--stability_levels=4,8] [--out=docs/results/rewinding_resnet20]

--prefix names the runs: <prefix>_dense_s<seed> (dense stability), <prefix>_imp_k<k>_s<seed> (IMP) and
<prefix>_imp_k<k>_s<seed>_level<level> (subnetwork stability), as scripts/rewinding_resnet20.sh
(rewind_r20_fm12k) and scripts/rewinding_regimes.sh (regime_<name>) write them.

Reads whatever has finished (a partly run study gives partial tables) and writes the files of
keras_lottery.lottery.rewinding_study.write into --out; prints the Markdown summary.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_lottery.lottery import rewinding_study  # noqa: E402


def replicates(run_root, seeds, early_k, prefix="rewind_r20_fm12k", stability_levels=(4, 8)):
    out = []
    for seed in seeds:
        name = f"{prefix}_imp_k{{k}}_s{seed}"
        ks = ("0", early_k)
        out.append(rewinding_study.Replicate(
            seed=seed,
            dense_stability=os.path.join(run_root, "stability", f"{prefix}_dense_s{seed}"),
            imp={k: os.path.join(run_root, "imp", name.format(k=k)) for k in ks},
            subnetwork_stability={(k, level): os.path.join(run_root, "stability", name.format(k=k) + f"_level{level}")
                                  for k in ks for level in stability_levels}))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run_root", default="runs")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--early_k", default="50it")
    parser.add_argument("--prefix", default="rewind_r20_fm12k")
    parser.add_argument("--stability_levels", default="4,8")
    parser.add_argument("--out", default="docs/results/rewinding_resnet20")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    levels = [int(level) for level in args.stability_levels.split(",") if level]
    summary = rewinding_study.summarize(replicates(args.run_root, seeds, args.early_k, args.prefix, levels))
    print(rewinding_study.write(summary, args.out))


if __name__ == "__main__":
    main()
