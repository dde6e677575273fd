"""A weight ticket and a layer ticket leave as SavedModels that TF Serving-like processes run."""

import json
import os
import platform
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_lottery as kl
from keras_lottery import export


def test_weight_ticket_served_without_keras_matches_keras(weight_export):
    served = weight_export["served"]
    assert sorted(served.outputs) == ["logits", "probabilities"]
    assert weight_export["diffs"]["logits"] <= 1e-5
    assert weight_export["diffs"]["probabilities"] <= 1e-5
    assert served.outputs["logits"].shape == (5, 4)


def test_weight_ticket_zeros_are_exactly_where_the_mask_put_them(weight_export):
    variables, mask = weight_export["served"].variables, weight_export["mask"]
    for path, alive in mask.items():
        kernel = variables[path + ":0"]
        assert kernel.shape == alive.shape
        assert np.all(kernel[~alive] == 0.0), path
        assert np.all(kernel[alive] != 0.0), path
    assert 0.15 < mask.density < 0.5  # the hidden kernels really are pruned
    # Every served variable is exactly the stripped ticket's: strip(mask(model)) after pruning.
    import keras_lottery as kl

    stripped = kl.strip(weight_export["masked"])
    expected = {f"{l.name}/{w.name}:0": w.numpy() for l in stripped.layers for w in l.weights}
    assert sorted(variables) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(variables[name], value)


def test_export_does_not_mutate_the_masked_model(weight_export):
    from keras_lottery.masks import Mask

    masked = weight_export["masked"]
    for before, after in zip(weight_export["before"], masked.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert Mask.from_model(masked) == weight_export["mask"]


def test_weight_ticket_card(weight_export):
    result, mask = weight_export["result"], weight_export["mask"]
    with open(result.card_path) as f:
        card = json.load(f)
    assert card == json.loads(json.dumps(result.card))
    assert card["ticket"] == "weight"
    assert card["version"] == result.version == 1
    assert card["signature"]["inputs"] == {"images": {"dtype": "float32", "shape": [None, 6, 6, 1]}}
    assert sorted(card["signature"]["outputs"]) == ["logits", "probabilities"]
    expected = mask.report()
    assert card["density"]["global"] == pytest.approx(expected["global"])
    assert card["density"]["layers"] == {k: pytest.approx(v) for k, v in expected["layers"].items()}
    assert card["accuracy"] == {"test": 0.75}
    assert card["hparams"] == {"levels": 3, "rewind": "500it"}
    assert card["run_dir"] == "runs/imp_lenet"
    assert card["flops"]["ticket"] == card["flops"]["dense"] == kl.metrics.flops(weight_export["dense"])
    assert card["params"]["ticket"] == card["params"]["dense"]
    assert card["params"]["ticket_nonzero_prunable"] == mask.alive
    assert card["versions"] == {"keras_lottery": kl.__version__, "keras": keras.__version__,
                                "tensorflow": tf.__version__, "python": platform.python_version()}
    assert card["blocks_removed"] == [] and card["layers_removed"] == []


def test_sparsity_shrinks_the_download_not_the_disk_size(weight_export):
    size = weight_export["result"].card["size"]
    ticket, dense = size["ticket"], size["dense"]
    # Same tensors on disk (zeros are still float32) ...
    assert abs(ticket["bytes"] - dense["bytes"]) < 0.01 * dense["bytes"]
    # ... but ~80% zeros compress away.
    assert ticket["gzip_bytes"] < 0.5 * dense["gzip_bytes"]
    assert size["gzip_ratio"] == pytest.approx(ticket["gzip_bytes"] / dense["gzip_bytes"])
    # The card's size is the SavedModel's, measured without the card itself.
    assert export.measure(weight_export["result"].path, exclude=(export.CARD_FILENAME,)) == ticket


def test_layer_ticket_served_without_keras_matches_keras(layer_export):
    assert layer_export["diffs"]["logits"] <= 1e-5
    assert layer_export["diffs"]["probabilities"] <= 1e-5
    assert layer_export["served"].outputs["probabilities"].shape == (3, 4)


def test_layer_ticket_has_fewer_layers_and_flops(layer_export):
    from keras_lottery import metrics

    card, dense, ticket = layer_export["result"].card, layer_export["dense"], layer_export["ticket"]
    assert card["ticket"] == "layer"
    assert card["blocks_removed"] == [layer_export["removed"]]
    assert card["architecture"]["layers"] == len(ticket.layers) < len(dense.layers)
    assert card["dense_model"]["layers"] == len(dense.layers)
    assert card["flops"]["ticket"] == metrics.flops(ticket) < card["flops"]["dense"] == metrics.flops(dense)
    assert card["params"]["ticket"] < card["params"]["dense"]
    assert card["size"]["ticket"]["bytes"] < card["size"]["dense"]["bytes"]
    removed = set(card["layers_removed"])
    assert removed and not removed & {layer.name for layer in ticket.layers}
    # Fewer variables in the served model too: the removed branch's kernels are gone.
    served_kernels = {n for n in layer_export["served"].variables if n.endswith("kernel:0")}
    dense_kernels = {f"{l.name}/kernel:0" for l in dense.layers if hasattr(l, "kernel")}
    assert served_kernels < dense_kernels


def test_saved_model_cli_reads_the_signature(weight_export):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    proc = subprocess.run([cli, "show", "--all", "--dir", weight_export["result"].path],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "signature_def['serving_default']" in out
    assert "inputs['images'] tensor_info" in out
    assert "outputs['logits'] tensor_info" in out and "outputs['probabilities'] tensor_info" in out
    assert "shape: (-1, 6, 6, 1)" in out
    assert "Method name is: tensorflow/serving/predict" in out


def test_tf_serving_layout(weight_export):
    path = weight_export["result"].path
    assert os.path.dirname(path) == os.fspath(weight_export["base"])
    assert os.path.basename(path) == "1"
    assert {"saved_model.pb", "variables", export.CARD_FILENAME} <= set(os.listdir(path))
    # No temporary directory is left beside the version.
    assert os.listdir(weight_export["base"]) == ["1"]


def test_verification_catches_a_different_model(weight_export):
    served, x = weight_export["served"], weight_export["x"]
    assert export.compare(served, weight_export["masked"], x) == weight_export["diffs"]
    # The unpruned weights compute something else, and the comparison says so.
    with pytest.raises(export.VerificationError, match="differs from the Keras model"):
        export.compare(served, weight_export["dense"], x)
    # A single output off by more than atol is caught too.
    nudged = dict(served.outputs, probabilities=served.outputs["probabilities"] + 2e-5)
    with pytest.raises(export.VerificationError, match="probabilities"):
        export.compare(nudged, weight_export["masked"], x)


@pytest.mark.parametrize("module", ["keras", "keras_lottery", "tf_keras"])
def test_the_serving_process_cannot_import_keras_or_this_library(tmp_path, module):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = export.keras_free_env(str(tmp_path / "blocked"))
    # Even from the checkout's root, where keras_lottery would otherwise be importable.
    proc = subprocess.run([sys.executable, "-P", "-c", f"import {module}"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert f"{module} must not be imported" in proc.stderr


def test_a_model_with_two_inputs(tmp_path):
    import keras
    import tensorflow as tf

    a = keras.Input(shape=(3,), name="pixels")
    b = keras.Input(shape=(2,), name="meta")
    joined = keras.layers.Concatenate(name="join")([keras.layers.Dense(4, name="fa")(a), b])
    model = keras.Model([a, b], keras.layers.Dense(2, name="predictions")(joined), name="two_inputs")
    result = export.for_serving(model, tmp_path / "two")
    assert sorted(result.card["signature"]["inputs"]) == ["meta", "pixels"]
    x = {"pixels": np.ones((2, 3), np.float32), "meta": np.arange(4, dtype=np.float32).reshape(2, 2)}
    body = json.dumps(export.request_body(x))
    inputs = export.request_inputs(body, result.card["signature"]["inputs"])
    served = tf.saved_model.load(result.path).signatures["serving_default"](**{k: tf.constant(v) for k, v in inputs.items()})
    assert export.compare({k: v.numpy() for k, v in served.items()}, model, x)["logits"] <= 1e-6
