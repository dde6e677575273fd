import csv
import os
import subprocess
import sys

from tests.lottery.conftest import DATASET

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_stability_binary_writes_instability_against_k_and_its_plot(tmp_path):
    command = [sys.executable, "-m", "experiments.stability", f"--dataset={DATASET}", "--batch_size=32",
               "--validation_size=64", "--optimizer=adam", "--lr=0.002", "--steps=8it", "--ks=0,3it", "--points=3",
               "--emissions=false", f"--run_root={tmp_path}", "--run_name=s"]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=REPO)
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    run = tmp_path / "stability" / "s"
    rows = list(csv.DictReader(open(run / "results.csv")))
    assert [int(r["k"]) for r in rows] == [0, 3]
    assert all(float(r["train_instability"]) >= 0 for r in rows)
    assert (run / "instability_vs_k.png").stat().st_size > 1000
    assert (run / "rewind_points" / "k_3.npz").exists() and (run / "k_3" / "stability.json").exists()
