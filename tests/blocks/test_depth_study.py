"""The depth-pruning study (keras_lottery.blocks.depth_study, experiments/depth_pruning.py) on a tiny corpus."""

import dataclasses
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_lottery import runs
from keras_lottery.blocks import depth_study
from tests.helpers import REPO, child_env

pytest.importorskip("keras_hub")


@pytest.fixture
def tiny_corpus(tmp_path):
    """12 small Python files (sorted: m0, m1, m10, m11, m2, ..., m9) and one in site-packages (ignored)."""
    root = tmp_path / "corpus"
    (root / "site-packages").mkdir(parents=True)
    (root / "site-packages" / "ignored.py").write_text("IGNORED = True\n" * 50)
    rng = np.random.default_rng(0)
    for i in range(12):
        lines = [f"def f{j}(x):\n    return x * {rng.integers(10)} + {i}\n" for j in range(25)]
        (root / f"m{i}.py").write_text("\n".join(lines))
    return root


def _tiny(root, **changes):
    settings = dict(layers=3, hidden_dim=16, num_heads=2, intermediate_dim=32, sequence_length=16,
                    batch_size=4, train_steps=4, calibration_batches=1, heal_steps=2, eval_windows=8, speed_batch=2,
                    speed_prompt=4, speed_repeats=1, corpus_root=str(root))
    settings.update({k: v for k, v in changes.items() if k in settings or k == "lora_rank"})
    return depth_study.DepthStudyHparams(**settings)


def _tiny_cells(**changes):
    return depth_study.DepthStudyCells(**{**dict(seeds="0", removed="1,2", criteria="sleb,last,random",
                                                 init_criteria="snip,random", init_removed="1"), **changes})


def test_split_by_sorted_file_index(tiny_corpus):
    root, paths = depth_study.source_files(str(tiny_corpus))
    assert paths == sorted(f"m{i}.py" for i in range(12))  # site-packages left out
    text = depth_study.corpus(str(tiny_corpus))
    held = [paths[i] for i in range(12) if i % 10 == 0]
    assert held == ["m0.py", "m8.py"]
    expected = b"\n".join((tiny_corpus / p).read_bytes() for p in held)
    assert text["heldout"].tobytes() == expected
    assert text["record"]["heldout_files"] == 2 and text["record"]["train_files"] == 10
    assert text["train"].tobytes().startswith((tiny_corpus / "m1.py").read_bytes())


def test_default_corpus_is_the_stdlib():
    root, paths = depth_study.source_files()
    assert "os.py" in paths and "json/__init__.py" in paths
    assert not any("site-packages" in p for p in paths)


def test_evaluate_is_cross_entropy_and_accuracy():
    y = np.array([[0, 3, 0, 5], [1, 0, 0, 2]])
    x = {"token_ids": y, "padding_mask": np.ones_like(y)}

    def uniform(inputs, training=False):  # every byte equally likely: perplexity 256; argmax is token 0
        return np.zeros(inputs["token_ids"].shape + (256,), np.float32)

    result = depth_study.evaluate(uniform, x, y, batch_size=1)
    assert result["perplexity"] == pytest.approx(256.0) and result["loss"] == pytest.approx(math.log(256))
    assert result["accuracy"] == pytest.approx(np.mean(y == 0))

    def peaked(inputs, training=False):  # puts log(3) more on each token's own next byte
        logits = np.zeros(inputs["token_ids"].shape + (256,), np.float32)
        np.put_along_axis(logits, y[: len(logits)][..., None], math.log(3.0), -1)
        return logits

    result = depth_study.evaluate(peaked, x, y, batch_size=2)
    assert result["accuracy"] == 1.0 and result["perplexity"] == pytest.approx(258 / 3, rel=1e-6)


@pytest.mark.parametrize("change, message", [
    (dict(removed="3"), "--removed values must be from 1 to layers - 1 = 2"),
    (dict(criteria="block_influence,shortgpt"), "--criteria has unknown entries \\['shortgpt'\\]"),
    (dict(init_criteria="sleb"), "--init_criteria has unknown entries"),
    (dict(parts="after,plot"), "--parts has unknown entries"),
    (dict(seeds="0,x"), "--seeds must be comma-separated integers"),
    (dict(speed_prompt=16), "--speed_prompt \\(16\\) must be shorter"),
    (dict(hidden_dim=15), "multiple of --num_heads"),
    (dict(corpus_root="/nonexistent/folder"), "is not a folder"),
])
def test_bad_settings_are_one_line_errors(tiny_corpus, change, message):
    with pytest.raises(ValueError, match=message):
        h = _tiny(tiny_corpus, **change).validate()
        cell_fields = {f.name for f in dataclasses.fields(depth_study.DepthStudyCells)}
        _tiny_cells(**{k: v for k, v in change.items() if k in cell_fields}).validate(h.layers)


def test_missing_keras_hub_is_a_one_line_error_before_anything_is_loaded(tiny_corpus, monkeypatch):
    monkeypatch.setitem(sys.modules, "keras_hub", None)  # what an environment without keras-hub gives
    with pytest.raises(ValueError, match=r"keras-hub is not installed: pip install 'keras-lottery\[hub\]'"):
        depth_study.load_data(_tiny(tiny_corpus))


def _cells(directory):
    return sorted(os.listdir(os.path.join(directory, depth_study.CELLS)))


@pytest.mark.slow  # trains 1 dense and 2 slim tiny GPT-2s, heals 7 slim ones: about a minute on 2 CPU cores
def test_study_end_to_end_resumes_and_summarizes(tiny_corpus, tmp_path):
    import keras

    from keras_lottery.blocks import depth

    h = _tiny(tiny_corpus)
    directory = str(tmp_path / "study")
    lines = []
    cells = _tiny_cells()
    summary = depth_study.run(h, cells, directory, log=lines.append)
    expected = ([f"after_s0_none_p0_{s}.json" for s in ("healed", "pruned")]
                + [f"after_s0_{c}_p{p}_{s}.json" for c in ("sleb", "last", "random") for p in (1, 2)
                   for s in ("healed", "pruned")]
                + ["init_s0_random_p1.json", "init_s0_snip_p1.json"] + [f"speed_s0_p{p}.json" for p in (0, 1, 2)])
    assert _cells(directory) == sorted(expected)
    cell = {name: json.load(open(os.path.join(directory, "cells", name))) for name in expected}
    dense = json.load(open(os.path.join(directory, "seed_0", "dense.json")))

    # p = 0 is the dense model; the healed dense model moved.
    assert cell["after_s0_none_p0_pruned.json"]["perplexity"] == pytest.approx(dense["perplexity"], rel=1e-6)
    assert cell["after_s0_none_p0_healed.json"]["perplexity"] != dense["perplexity"]
    per_layer = (dense["params"] - cell["after_s0_last_p2_pruned.json"]["params"]) / 2
    for name, c in cell.items():
        if c["part"] == "after" or c["part"] == "init":
            assert 1.0 < c["perplexity"] < 256 * 4 and c["perplexity"] == pytest.approx(math.exp(c["loss"]))
            assert 0.0 <= c["accuracy"] <= 1.0
        assert c["layers"] == 3 - c["p"] and c["params"] == dense["params"] - c["p"] * per_layer
    assert sorted(cell["after_s0_last_p2_pruned.json"]["removed"]) == ["gpt2_backbone/transformer_layer_1",
                                                                       "gpt2_backbone/transformer_layer_2"]
    assert cell["init_s0_snip_p1.json"]["same_init_as_dense"] and cell["init_s0_random_p1.json"]["same_init_as_dense"]
    assert all(cell[f"speed_s0_p{p}.json"]["tokens_per_s"] > 0 and cell[f"speed_s0_p{p}.json"]["new_tokens"] == 2 * 12
               for p in (0, 1, 2))

    # SLEB's prefixes are what select(k=1) gives on the stored dense model.
    keras.backend.clear_session()
    model = depth_study.build_model(h, 0)
    model.load_weights(os.path.join(directory, "seed_0", "dense.weights.h5"))
    data = depth_study.load_data(h)
    assert depth_study.evaluate(model, *data.eval)["perplexity"] == pytest.approx(dense["perplexity"], rel=1e-5)
    sleb = [cell[f"after_s0_sleb_p{p}_pruned.json"]["removed"] for p in (1, 2)]
    assert sleb[1][:1] == sleb[0] == depth.select(model, data.calibration, 1, criterion="sleb")

    # The summary: one seed per row, the dense model as the at-initialization reference.
    rows = {(r["criterion"], r["p"], r.get("stage")): r for r in summary["after"]}
    assert len(rows) == 2 + 3 * 2 * 2 and all(r["perplexity"]["n"] == 1 for r in rows.values())
    assert rows[("last", 2, "healed")]["perplexity"]["mean"] == cell["after_s0_last_p2_healed.json"]["perplexity"]
    assert rows[("last", 2, "pruned")]["relative_perplexity"]["mean"] == pytest.approx(
        cell["after_s0_last_p2_pruned.json"]["perplexity"] / dense["perplexity"])
    assert rows[("last", 2, "healed")]["relative_perplexity"]["mean"] == pytest.approx(  # against the healed dense
        cell["after_s0_last_p2_healed.json"]["perplexity"] / cell["after_s0_none_p0_healed.json"]["perplexity"])
    assert {(r["criterion"], r["p"]) for r in summary["init"]} == {("dense", 0), ("snip", 1), ("random", 1)}
    assert [r["p"] for r in summary["speed"]] == [0, 1, 2] and summary["speed"][0]["speedup"]["mean"] == 1.0

    # Resume: nothing is redone; a deleted cell is recomputed, alone, from the stored dense model.
    stamps = {n: os.stat(os.path.join(directory, "cells", n)).st_mtime_ns for n in expected}
    os.remove(os.path.join(directory, "cells", "after_s0_last_p1_pruned.json"))
    lines.clear()
    depth_study.run(h, cells, directory, log=lines.append)
    changed = [n for n in expected if os.stat(os.path.join(directory, "cells", n)).st_mtime_ns != stamps[n]]
    assert changed == ["after_s0_last_p1_pruned.json"]
    again = json.load(open(os.path.join(directory, "cells", "after_s0_last_p1_pruned.json")))
    assert again["perplexity"] == pytest.approx(cell["after_s0_last_p1_pruned.json"]["perplexity"], rel=1e-5)
    assert not any("training the dense model" in line for line in lines)

    # Another recipe in the same directory is refused before anything trains.
    with pytest.raises(runs.RunDirectoryMismatch, match="train_steps: directory has 4, command has 5"):
        depth_study.run(_tiny(tiny_corpus, train_steps=5), cells, directory)

    out = tmp_path / "results"
    depth_study.write_results(directory, str(out))
    table = (out / "results.md").read_text()
    assert "| 2 | last | 1 |" in table and "| 1 | snip | 2 |" in table
    assert json.loads((out / "results.json").read_text())["corpus"]["heldout_files"] == 2
    assert (out / "perplexity_vs_removed.png").stat().st_size > 10_000


def _binary(*flags):
    command = [sys.executable, "-m", "experiments.depth_pruning", *flags]
    return subprocess.run(command, cwd=REPO, env=child_env(), capture_output=True, text=True)


def test_binary_refuses_bad_flags_in_one_line_before_writing(tiny_corpus, tmp_path):
    result = _binary(f"--corpus_root={tiny_corpus}", "--layers=3", "--removed=1,3", f"--run_root={tmp_path / 'r'}")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == "error: --removed values must be from 1 to layers - 1 = 2, got [3]."
    assert not (tmp_path / "r").exists()
    result = _binary(f"--corpus_root={tmp_path / 'missing'}", f"--run_root={tmp_path / 'r'}")
    assert result.returncode == 1 and "is not a folder" in result.stderr.strip().splitlines()[-1]
    result = _binary(f"--corpus_root={tiny_corpus}", "--summarize_only", f"--run_root={tmp_path / 'r'}")
    assert result.returncode == 1 and "holds no study to summarize" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "r").exists()


def test_binary_runs_a_tiny_study_and_writes_its_results(tiny_corpus, tmp_path):
    flags = [f"--corpus_root={tiny_corpus}", "--seeds=0", "--parts=after,speed", "--layers=2", "--hidden_dim=16",
             "--num_heads=2", "--intermediate_dim=32", "--sequence_length=16", "--batch_size=4", "--train_steps=3",
             "--removed=1", "--criteria=last", "--calibration_batches=1", "--heal_steps=1", "--eval_windows=8",
             "--speed_batch=2", "--speed_prompt=4", "--speed_repeats=1", f"--run_root={tmp_path / 'r'}",
             "--run_name=tiny", f"--results_dir={tmp_path / 'results'}"]
    result = _binary(*flags)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "r" / "depth_pruning" / "tiny"
    assert sorted(os.listdir(run / "cells")) == ["after_s0_last_p1_healed.json", "after_s0_last_p1_pruned.json",
                                                 "after_s0_none_p0_healed.json", "after_s0_none_p0_pruned.json",
                                                 "speed_s0_p0.json", "speed_s0_p1.json"]
    assert json.loads((run / "hparams.json").read_text())["study"]["train_steps"] == 3
    pruned = json.loads((run / "cells" / "after_s0_last_p1_pruned.json").read_text())
    assert pruned["removed"] == ["gpt2_backbone/transformer_layer_1"] and pruned["layers"] == 1
    table = (tmp_path / "results" / "results.md").read_text()
    assert f"| 1 | last | 1 | {pruned['params']:,} | {pruned['perplexity']:.2f} ± 0.00 | 1." in table
    assert table in result.stdout and (tmp_path / "results" / "perplexity_vs_removed.png").exists()
    again = _binary(*flags)  # resumes: everything is done, nothing is trained
    assert again.returncode == 0 and "training the dense model" not in again.stdout and ".json: " not in again.stdout
    other = _binary(*[f for f in flags if not f.startswith("--train_steps")], "--train_steps=4")
    assert other.returncode == 1 and other.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "train_steps: directory has 3, command has 4" in other.stderr
