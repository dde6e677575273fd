"""From a run directory to saved_models/<name>/<version>/: keras_lottery.export.export_run and
experiments/export.py."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from keras_lottery import export, files
from keras_lottery.export import from_run

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def imp_run(tmp_path, masked_lenet):
    """A small IMP run directory: hparams.json, level_0 (dense) and level_1 (masked, pruned) models."""
    dense, masked, mask = masked_lenet
    run = tmp_path / "runs" / "imp" / "lenet"
    (run / "level_0").mkdir(parents=True)
    (run / "level_1").mkdir()
    dense.save(run / "level_0" / "model.keras")
    masked.save(run / "level_1" / "model.keras")
    (run / "hparams.json").write_text(json.dumps({"model": {"name": "lenet_300_100"}, "pruning": {"rate": 0.8}}))
    (run / "level_1" / "metrics.json").write_text(json.dumps({"test_accuracy": 0.81, "test_loss": 0.5}))
    (run / "level_0" / "metrics.json").write_text(json.dumps({"test_accuracy": 0.8}))  # both levels finished
    return run, masked, mask


def test_export_an_imp_level(imp_run, tmp_path, capsys):
    run, masked, mask = imp_run
    base = tmp_path / "saved_models"
    result = export.export_run(str(run), level=1, base_dir=str(base))
    assert result.path == os.path.join(str(base), "lenet_level1", "1")
    card = result.card
    assert card["ticket"] == "weight"
    assert card["accuracy"] == {"test_accuracy": 0.81}
    assert card["hparams"] == {"model": {"name": "lenet_300_100"}, "pruning": {"rate": 0.8}}
    assert card["run_dir"] == os.path.normpath(str(run))
    assert card["density"]["global"]["alive"] == mask.alive
    assert card["size"]["dense"]["gzip_bytes"] > card["size"]["ticket"]["gzip_bytes"]
    # The sample request beside the versions matches the signature recorded in the card.
    with open(base / "lenet_level1" / "request.json") as f:
        inputs = export.request_inputs(f.read(), card["signature"]["inputs"])
    assert inputs["images"].shape == (1, 6, 6, 1)
    out = capsys.readouterr().out
    assert "Verified without Keras" in out
    assert export.docker_command(str(base / "lenet_level1"), "lenet_level1") in out
    # Exporting again takes the next version; TF Serving ignores request.json (not a number).
    again = export.export_run(str(run), level=1, base_dir=str(base), verify=False)
    assert again.version == 2 and export.existing_versions(base / "lenet_level1") == [1, 2]


def test_export_a_layer_lottery_ticket(tmp_path):
    import keras_lottery as kl
    from keras_lottery import blocks, metrics

    dense = kl.models.resnet_cifar(8, input_shape=(8, 8, 3), classes=3, width=4, seed=2)
    ticket = blocks.remove(dense, [blocks.find_blocks(dense, warn=False).removable[0].name])
    # The layout of keras_lottery.lottery.layer_lottery: slim tickets at the top, trainings per replicate.
    run = tmp_path / "runs" / "layer_lottery" / "resnet8"
    (run / "replicate_0" / "dense").mkdir(parents=True)
    (run / "replicate_0" / "grasp_p1").mkdir()
    ticket.save(run / "ticket_grasp_p1_r0.keras")
    dense.save(run / "replicate_0" / "dense" / "model.keras")
    (run / "replicate_0" / "grasp_p1" / "metrics.json").write_text(json.dumps({"test_accuracy": 0.5}))
    (run / "replicate_0" / "dense" / "metrics.json").write_text(json.dumps({"test_accuracy": 0.45}))
    (run / "metrics.json").write_text(json.dumps({"test_accuracy": 0.1}))
    result = export.export_run(str(run), base_dir=str(tmp_path / "sm"), verify=False)
    assert result.path == os.path.join(str(tmp_path / "sm"), "resnet8_ticket_grasp_p1_r0", "1")
    assert result.card["ticket"] == "layer"
    assert result.card["blocks_removed"] == ["stage1_block1_add"]
    assert result.card["accuracy"] == {"test_accuracy": 0.5}
    assert result.card["flops"]["ratio"] == pytest.approx(metrics.flops(ticket) / metrics.flops(dense))
    assert result.card["flops"]["ratio"] < 1


def test_missing_sources_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        from_run.sources(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="No IMP level directory"):
        from_run.sources(str(tmp_path), level=3)
    with pytest.raises(FileNotFoundError, match="holds 0 layer-lottery tickets"):
        from_run.sources(str(tmp_path))
    (tmp_path / "ticket_a_p1_r0.keras").write_text("")
    (tmp_path / "ticket_a_p2_r0.keras").write_text("")
    with pytest.raises(FileNotFoundError, match="holds 2 layer-lottery tickets .*--ticket=FILE"):
        from_run.sources(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="No layer-lottery ticket"):
        from_run.sources(str(tmp_path), ticket="ticket_b_p1_r0.keras")


def test_an_unfinished_level_is_refused_with_what_is_missing(tmp_path):
    (tmp_path / "level_0").mkdir()
    (tmp_path / "level_0" / "metrics.json").write_text("{}")
    (tmp_path / "level_1").mkdir()
    (tmp_path / "level_1" / "model.keras").write_text("")  # a model.keras alone does not make a finished level
    (tmp_path / "level_1" / "state.json").write_text(json.dumps({"step": 3, "end_step": 8, "checkpoint": "c",
                                                                 "history": []}))
    with pytest.raises(ValueError, match=r"Level 1 of .* has not finished training \(at step 3 of 8; no metrics.json\)"
                                         r": run the imp command again to finish it. Finished levels: 0\."):
        from_run.sources(str(tmp_path), level=1)
    with pytest.raises(files.DamagedFileError, match=r"level_0/model.keras is damaged \(missing, although"):
        from_run.sources(str(tmp_path), level=0)
    with pytest.raises(FileNotFoundError, match=r"No IMP level directory .*level_2.* \(finished levels: 0\)"):
        from_run.sources(str(tmp_path), level=2)
    with pytest.raises(ValueError, match="--level must be"):
        from_run.sources(str(tmp_path), level=-1)


def test_the_binary_reports_an_error_in_one_line(tmp_path):
    missing = tmp_path / "no_such_run"
    proc = subprocess.run([sys.executable, "-m", "experiments.export", f"--run_dir={missing}",
                           f"--base_dir={tmp_path / 'sm'}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1] == f"error: --run_dir {str(missing)!r} is not a directory."
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [proc.stderr.splitlines()[-1]]
    assert not (tmp_path / "sm").exists()
