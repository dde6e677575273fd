"""TF Serving REST requests: build the JSON body for a batch, and read one back into tensors.

TF Serving's predict API (``POST /v1/models/<name>:predict``) takes ``{"instances": [...]}`` (row
format: one entry per example; a bare value when the signature has one input, an object keyed by
input name otherwise) or ``{"inputs": ...}`` (columnar format). ``request_body`` writes the row
format; ``request_inputs`` turns either format into the arrays the signature receives, checking
names, shapes and dtypes, so a test can prove that the body a user sends reaches the model intact.
Neither function imports TensorFlow or Keras.
"""

import json

import numpy as np

__all__ = ["request_body", "request_inputs", "input_specs"]

_DTYPES = {"float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16",
           "uint32", "uint64", "bool"}


def _as_batch(name, value):
    array = np.asarray(value)
    if array.ndim == 0:
        raise ValueError(f"Input {name!r} must be a batch (first axis = examples); got a scalar.")
    if array.dtype.kind not in "biuf":
        raise ValueError(f"Input {name!r} must be numeric or boolean; got dtype {array.dtype}.")
    return array


def request_body(inputs, signature_name="serving_default"):
    """The JSON-ready body of a TF Serving REST predict request for a batch of ``inputs``.

    Args:
        inputs: one array whose first axis indexes examples (for a single-input signature), or a
            dict ``{input name: array}`` whose arrays share their first dimension.
        signature_name: the SignatureDef to call (``serving_default`` unless told otherwise).

    Returns:
        ``{"signature_name": ..., "instances": [...]}``; ``json.dumps`` it to send it.
    """
    if not isinstance(signature_name, str) or not signature_name:
        raise ValueError(f"signature_name must be a non-empty string, got {signature_name!r}.")
    if isinstance(inputs, dict):
        if not inputs:
            raise ValueError("inputs is an empty dict; expected {input name: array}.")
        arrays = {str(k): _as_batch(k, v) for k, v in inputs.items()}
        sizes = {k: a.shape[0] for k, a in arrays.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"All inputs must hold the same number of examples; got {sizes}.")
        n = next(iter(sizes.values()))
        instances = [{k: a[i].tolist() for k, a in arrays.items()} for i in range(n)]
    else:
        instances = _as_batch("inputs", inputs).tolist()
    return {"signature_name": signature_name, "instances": instances}


def input_specs(signature):
    """``{name: (shape tuple with None for free axes, numpy dtype name)}`` for a signature's inputs.

    Accepts a concrete function from ``tf.saved_model.load(...).signatures[...]`` (anything with
    ``structured_input_signature``), a mapping of names to TensorSpec-like objects (``.shape``,
    ``.dtype``), or a model card's ``signature["inputs"]`` mapping (``{"shape": [...], "dtype": "float32"}``).
    """
    if hasattr(signature, "structured_input_signature"):
        signature = signature.structured_input_signature[1]
    if not isinstance(signature, dict) or not signature:
        raise TypeError("Expected a serving signature (concrete function), a {name: TensorSpec} dict or a "
                        f"model card's signature inputs; got {type(signature).__name__}: {signature!r}.")
    specs = {}
    for name, spec in signature.items():
        if isinstance(spec, dict):
            shape, dtype = spec.get("shape"), spec.get("dtype")
        else:
            shape = getattr(spec, "shape", None)
            dtype = getattr(getattr(spec, "dtype", None), "name", getattr(spec, "dtype", None))
            shape = None if shape is None else list(shape)
        if shape is None or dtype not in _DTYPES:
            raise TypeError(f"Input {name!r}: expected a shape and one of the dtypes {sorted(_DTYPES)}, "
                            f"got shape={shape!r}, dtype={dtype!r}.")
        specs[name] = (tuple(None if d is None else int(d) for d in shape), dtype)
    return specs


def _check_shape(name, array, shape):
    ok = array.ndim == len(shape) and all(d is None or d == a for d, a in zip(shape, array.shape))
    if not ok:
        expected = "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"
        raise ValueError(f"Input {name!r} has shape {array.shape}; the signature accepts {expected}.")


def request_inputs(body, signature):
    """The arrays a serving signature receives for a REST predict request ``body``.

    Args:
        body: the request as a JSON string/bytes or an already-parsed dict, in row format
            (``"instances"``) or columnar format (``"inputs"``).
        signature: the serving signature, in any form ``input_specs`` accepts.

    Returns:
        ``{input name: np.ndarray}`` with the signature's dtypes and checked shapes, ready to pass
        as keyword arguments to the loaded signature.
    """
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8")
    if isinstance(body, str):
        body = json.loads(body)
    if not isinstance(body, dict):
        raise ValueError(f"A REST request body is a JSON object; got {type(body).__name__}.")
    specs = input_specs(signature)
    names = list(specs)
    keys = {"instances", "inputs"} & set(body)
    if len(keys) != 1:
        raise ValueError(f"A REST predict body has exactly one of 'instances' (row format) or 'inputs' "
                         f"(columnar format); got keys {sorted(body)}.")
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows:
            raise ValueError("'instances' must be a non-empty list with one entry per example.")
        if all(isinstance(r, dict) for r in rows):
            columns = {}
            for i, row in enumerate(rows):
                if set(row) != set(names):
                    raise ValueError(f"Instance {i} has keys {sorted(row)}; the signature's inputs are {sorted(names)}.")
                for k in names:
                    columns.setdefault(k, []).append(row[k])
        elif len(names) == 1:
            columns = {names[0]: rows}
        else:
            raise ValueError(f"The signature has several inputs {names}; each instance must be an object keyed by them.")
    else:
        columns = body["inputs"]
        if not isinstance(columns, dict):
            if len(names) != 1:
                raise ValueError(f"The signature has several inputs {names}; 'inputs' must be an object keyed by them.")
            columns = {names[0]: columns}
        if set(columns) != set(names):
            raise ValueError(f"'inputs' has keys {sorted(columns)}; the signature's inputs are {sorted(names)}.")
    out = {}
    for name in names:
        shape, dtype = specs[name]
        try:
            array = np.asarray(columns[name], dtype=dtype)
        except (TypeError, ValueError) as err:
            raise ValueError(f"Input {name!r} is not a regular {dtype} array of shape {shape}: {err}") from None
        _check_shape(name, array, shape)
        out[name] = array
    return out
