"""Layer tickets of graphs with operation nodes (x + y, 0.1 * h) and nested models export and serve."""

import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery import export


@pytest.mark.parametrize("fixture, removed", [("op_model", ["add_1", "add_3"]), ("nested_model", ["encoder/add"])])
def test_ticket_of_operation_and_nested_graphs_exports_and_serves(request, tmp_path, fixture, removed):
    dense = request.getfixturevalue(fixture)
    ticket = kl.blocks.remove(dense, removed)
    result = export.for_serving(ticket, tmp_path / fixture, dense_model=dense)
    card = result.card
    assert card["ticket"] == "layer" and card["blocks_removed"] == removed
    assert card["flops"]["ticket"] == kl.metrics.flops(ticket)
    blocks = {b.name: b for b in kl.blocks.find_blocks(dense)}
    assert card["flops"]["dense"] - card["flops"]["ticket"] == sum(blocks[n].flops for n in removed)
    assert card["params"]["dense"] - card["params"]["ticket"] == sum(blocks[n].params for n in removed)
    x = np.random.default_rng(3).normal(size=(4, 6)).astype("float32")
    served, diffs = export.verify(result.path, ticket, x)  # a process without Keras runs the SavedModel
    assert diffs["logits"] <= 1e-5 and served.outputs["logits"].shape == (4, 3)


def test_a_sequential_built_by_calling_it_serves_any_batch_size(tmp_path):
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.layers.Dense(4, activation="relu"), keras.layers.Dense(3)])
    model(np.zeros((1, 5), "float32"))  # no keras.Input: its inputs keep this batch's size, and it has no `input`
    masked = kl.mask(model)
    kl.prune(masked, kl.GlobalMagnitude(0.5))
    result = export.for_serving(masked, tmp_path / "sequential", dense_model=model)
    (name, spec), = result.card["signature"]["inputs"].items()
    assert spec["shape"] == [None, 5]
    x = np.random.default_rng(0).normal(size=(6, 5)).astype("float32")
    served = tf.saved_model.load(result.path).signatures["serving_default"](**{name: tf.constant(x)})
    np.testing.assert_allclose(served["logits"], masked(x), rtol=1e-5, atol=1e-6)
