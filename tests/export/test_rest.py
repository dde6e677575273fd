"""The REST request body a user sends reaches the serving signature unchanged."""

import json

import numpy as np
import pytest

from keras_lottery import export


def test_request_round_trip_through_json_into_the_served_model(weight_export):
    import tensorflow as tf

    x = weight_export["x"]
    body = json.dumps(export.request_body(x))
    assert json.loads(body)["signature_name"] == "serving_default"
    # Against the loaded SavedModel's own signature ...
    signature = tf.saved_model.load(weight_export["result"].path).signatures["serving_default"]
    inputs = export.request_inputs(body, signature)
    assert list(inputs) == ["images"]
    assert inputs["images"].dtype == np.float32
    np.testing.assert_array_equal(inputs["images"], x)  # float32 -> JSON -> float32 is exact
    # ... and against the model card, which needs no TensorFlow.
    from_card = export.request_inputs(body, weight_export["result"].card["signature"]["inputs"])
    np.testing.assert_array_equal(from_card["images"], x)
    served = signature(**{k: tf.constant(v) for k, v in inputs.items()})
    np.testing.assert_array_equal(served["logits"].numpy(), weight_export["served"].outputs["logits"])


def test_named_and_columnar_requests():
    specs = {"images": {"shape": [None, 2, 2], "dtype": "float32"}}
    x = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
    named = json.dumps(export.request_body({"images": x}))
    assert json.loads(named)["instances"][0] == {"images": [[0.0, 1.0], [2.0, 3.0]]}
    np.testing.assert_array_equal(export.request_inputs(named, specs)["images"], x)
    columnar = json.dumps({"inputs": {"images": x.tolist()}})
    np.testing.assert_array_equal(export.request_inputs(columnar, specs)["images"], x)
    np.testing.assert_array_equal(export.request_inputs({"inputs": x.tolist()}, specs)["images"], x)


def test_several_inputs_need_named_instances():
    specs = {"a": {"shape": [None, 2], "dtype": "float32"}, "b": {"shape": [None], "dtype": "int64"}}
    body = export.request_body({"a": np.ones((3, 2)), "b": np.arange(3)})
    out = export.request_inputs(json.dumps(body), specs)
    assert out["b"].dtype == np.int64 and out["a"].shape == (3, 2)
    with pytest.raises(ValueError, match="several inputs"):
        export.request_inputs({"instances": [[1, 2]]}, specs)


@pytest.mark.parametrize("body, message", [
    ({"instances": [[1.0, 2.0, 3.0]]}, r"has shape \(1, 3\); the signature accepts \(None, 2, 2\)"),
    ({"instances": [{"pixels": [[0, 0], [0, 0]]}]}, r"keys \['pixels'\]; the signature's inputs are \['images'\]"),
    ({"instances": []}, "non-empty list"),
    ({"examples": []}, "exactly one of 'instances'"),
    ({"instances": [[[1, 2], [3]]]}, "not a regular float32 array"),
    ("[1, 2]", "JSON object"),
])
def test_bad_requests_are_refused_with_the_reason(body, message):
    specs = {"images": {"shape": [None, 2, 2], "dtype": "float32"}}
    with pytest.raises(ValueError, match=message):
        export.request_inputs(body, specs)


def test_request_body_refuses_unbatched_or_ragged_inputs():
    with pytest.raises(ValueError, match="must be a batch"):
        export.request_body(np.float32(1.0))
    with pytest.raises(ValueError, match="same number of examples"):
        export.request_body({"a": np.zeros((2, 1)), "b": np.zeros((3, 1))})
    with pytest.raises(TypeError, match="Expected a serving signature"):
        export.request_inputs({"instances": [1]}, "images")
