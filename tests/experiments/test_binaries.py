import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.callbacks import RewindPoint
from tests.helpers import REPO




@pytest.fixture
def stability_binary(tmp_path, dataset_name):
    """Runs the stability binary on the synthetic data (T = 8 it, k = 0 and 3 it, 3 points) with extra flags."""

    def run(*extra):
        command = [sys.executable, "-m", "experiments.stability", f"--dataset={dataset_name}", "--batch_size=32",
                   "--validation_size=64", "--optimizer=adam", "--lr=0.002", "--steps=8it", "--ks=0,3it",
                   "--points=3", "--emissions=false", f"--run_root={tmp_path}", *extra]
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=REPO)
        return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)

    return run


def _instability(errors):
    return max(errors) - (errors[0] + errors[-1]) / 2


@pytest.mark.slow  # the stability binary end to end
def test_stability_binary_writes_instability_against_k_and_its_plot(tmp_path, stability_binary):
    result = stability_binary("--run_name=s")
    assert result.returncode == 0, result.stderr[-2000:]
    run = tmp_path / "stability" / "s"
    rows = list(csv.DictReader(open(run / "results.csv")))
    assert [int(r["k"]) for r in rows] == [0, 3]
    for row in rows:
        k = int(row["k"])
        curves = json.loads((run / f"k_{k}" / "stability.json").read_text())
        assert curves["alphas"] == pytest.approx(np.linspace(0.0, 1.0, 3).tolist()) and curves["start_step"] == k
        assert float(row["train_instability"]) == pytest.approx(_instability(curves["train_error"]))
        assert float(row["test_instability"]) == pytest.approx(_instability(curves["test_error"]))
        assert float(row["test_error_end"]) == pytest.approx((curves["test_error"][0] + curves["test_error"][-1]) / 2)
        assert RewindPoint.load(run / "rewind_points" / f"k_{k}.npz").step == k
        assert f"k = {k:6d}: instability train {float(row['train_instability']):.4f}" in result.stdout
    assert (run / "instability_vs_k.png").stat().st_size > 1000
    assert f"Wrote {run / 'results.csv'}" in result.stdout


@pytest.mark.slow  # two IMP-style masks, then the stability binary: about 1 minute
def test_stability_binary_applies_one_mask_per_k(tmp_path, stability_binary, build):
    paths = {}
    for k, density in (("0", 0.5), ("3it", 0.2)):
        model = kl.mask(build(0))
        kl.prune(model, kl.LayerwiseMagnitude(density=density))
        paths[k] = str(tmp_path / f"mask_{density}.npz")
        kl.Mask.from_model(model).save(paths[k])
    per_k = ",".join(f"{k}={p}" for k, p in paths.items())
    result = stability_binary("--run_name=per_k", f"--mask={per_k}")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = list(csv.DictReader(open(tmp_path / "stability" / "per_k" / "results.csv")))
    assert [(int(r["k"]), round(float(r["density"]), 2)) for r in rows] == [(0, 0.5), (3, 0.2)]

    missing = stability_binary("--run_name=missing", f"--mask=0={paths['0']}")
    assert missing.returncode != 0 and "give one per k" in missing.stderr
    malformed = stability_binary("--run_name=bad", f"--mask=0={paths['0']},3it")
    assert malformed.returncode != 0 and "is not k=path" in malformed.stderr
    late = stability_binary("--run_name=late", "--ks=0,8it")
    assert late.returncode != 0 and "every k must come before T = 8" in late.stderr
    other = kl.mask(kl.models.lenet_300_100((4, 4, 1), classes=4, seed=0))
    kl.Mask.from_model(other).save(tmp_path / "other.npz")
    foreign = stability_binary("--run_name=foreign", f"--mask={tmp_path / 'other.npz'}")
    assert foreign.returncode != 0 and "error: Mask for 'fc1/kernel' has shape (16, 300)" in foreign.stderr
    for name in ("missing", "bad", "late", "foreign"):  # refused before anything was written
        assert not (tmp_path / "stability" / name).exists(), name
