import csv
import os
import subprocess
import sys

from tests.lottery.conftest import DATASET

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _stability(tmp_path, *extra):
    """Runs the stability binary on the synthetic data (T = 8 it, k = 0 and 3 it, 3 points)."""
    command = [sys.executable, "-m", "experiments.stability", f"--dataset={DATASET}", "--batch_size=32",
               "--validation_size=64", "--optimizer=adam", "--lr=0.002", "--steps=8it", "--ks=0,3it", "--points=3",
               "--emissions=false", f"--run_root={tmp_path}", *extra]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=REPO)
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)


def test_stability_binary_writes_instability_against_k_and_its_plot(tmp_path):
    result = _stability(tmp_path, "--run_name=s")
    assert result.returncode == 0, result.stderr[-2000:]
    run = tmp_path / "stability" / "s"
    rows = list(csv.DictReader(open(run / "results.csv")))
    assert [int(r["k"]) for r in rows] == [0, 3]
    assert all(float(r["train_instability"]) >= 0 for r in rows)
    assert (run / "instability_vs_k.png").stat().st_size > 1000
    assert (run / "rewind_points" / "k_3.npz").exists() and (run / "k_3" / "stability.json").exists()


def test_stability_binary_applies_one_mask_per_k(tmp_path):
    import keras_lottery as kl
    from tests.lottery.conftest import build_model

    paths = {}
    for k, density in (("0", 0.5), ("3it", 0.2)):
        model = kl.mask(build_model(0))
        kl.prune(model, kl.LayerwiseMagnitude(density=density))
        paths[k] = str(tmp_path / f"mask_{density}.npz")
        kl.Mask.from_model(model).save(paths[k])
    per_k = ",".join(f"{k}={p}" for k, p in paths.items())
    result = _stability(tmp_path, "--run_name=per_k", f"--mask={per_k}")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = list(csv.DictReader(open(tmp_path / "stability" / "per_k" / "results.csv")))
    assert [(int(r["k"]), round(float(r["density"]), 2)) for r in rows] == [(0, 0.5), (3, 0.2)]

    missing = _stability(tmp_path, "--run_name=missing", f"--mask=0={paths['0']}")
    assert missing.returncode != 0 and "give one per k" in missing.stderr
    malformed = _stability(tmp_path, "--run_name=bad", f"--mask=0={paths['0']},3it")
    assert malformed.returncode != 0 and "is not k=path" in malformed.stderr
    assert not (tmp_path / "stability" / "missing" / "rewind_points").exists()  # refused before any training
