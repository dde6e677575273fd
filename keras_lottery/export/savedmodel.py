"""``for_serving``: a ticket as a plain SavedModel in TF Serving's ``base_dir/<version>/`` layout."""

import dataclasses
import json
import os
import re
import shutil
import tempfile

import warnings

import keras
import numpy as np
import tensorflow as tf

from keras_lottery import attached, compat, graph, layers, masking, metrics
from keras_lottery.blocks import find_blocks, resize
from keras_lottery.export import card as card_lib
from keras_lottery.export import sizes as sizes_lib

__all__ = ["ExportResult", "SIGNATURE_KEY", "deployable", "existing_versions", "for_serving", "input_names",
           "next_version"]

SIGNATURE_KEY = "serving_default"
_OUTPUT_MODES = ("logits", "probabilities")
_VERSION_DIR = re.compile(r"^\d+$")


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """Where an export went: ``path`` (= ``base_dir/<version>``), ``version``, and the model ``card`` dict."""

    path: str
    version: int
    card: dict

    @property
    def card_path(self):
        """The model card file beside the SavedModel."""
        return os.path.join(self.path, card_lib.CARD_FILENAME)


# -- versions ---------------------------------------------------------------------------------------
def existing_versions(base_dir):
    """Sorted integer versions already under ``base_dir`` (directories named by digits only)."""
    base_dir = os.fspath(base_dir)
    if not os.path.isdir(base_dir):
        return []
    return sorted(int(n) for n in os.listdir(base_dir)
                  if _VERSION_DIR.match(n) and os.path.isdir(os.path.join(base_dir, n)))


def next_version(base_dir):
    """The version ``for_serving`` takes when none is given: one more than the highest, or 1."""
    versions = existing_versions(base_dir)
    return versions[-1] + 1 if versions else 1


def _check_target(base_dir, version):
    base_dir = os.fspath(base_dir)
    if os.path.exists(base_dir) and not os.path.isdir(base_dir):
        raise NotADirectoryError(f"base_dir {base_dir!r} exists and is not a directory; pass a directory "
                                 "(it will hold one sub-directory per version).")
    if version is None:
        return next_version(base_dir)
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
        raise ValueError(f"version must be a positive integer (TF Serving reads base_dir/<integer>/) or None for "
                         f"the next free one; got {version!r}.")
    version = int(version)
    if os.path.exists(os.path.join(base_dir, str(version))):
        raise FileExistsError(f"Version {version} already exists at {os.path.join(base_dir, str(version))!r}; an "
                              f"export never overwrites a version. Pass version=None to take the next free one "
                              f"({next_version(base_dir)}).")
    return version


# -- the model ----------------------------------------------------------------------------------------
def _check_model(model, what="model"):
    """``model`` with symbolic inputs and outputs: itself, or a built subclassed model's functional view
    (:func:`keras_lottery.graph.functional_view`); raises for anything that cannot be exported."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"{what} must be a keras.Model, got {type(model).__name__}.")
    if not model.built:
        raise ValueError(f"{what} {model.name!r} is not built, so its input signature is unknown. Build it "
                         "(define it with keras.Input, or call model.build(input_shape)) before exporting.")
    if graph.is_subclassed(model):
        return graph.functional_view(model, f"exporting {what}")
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        raise ValueError(f"{what} {model.name!r} ({type(model).__name__}) has no symbolic inputs/outputs; export "
                         "accepts functional and Sequential models, KerasHub backbones and tasks, and built "
                         "subclassed models.")
    return model


def output_names(model):
    """The signature's names of ``model``'s outputs when it has several: the keys of a dict output, else the
    output layers' names (``model.output_names``)."""
    if isinstance(model.output, dict):
        return sorted(model.output)
    names = list(getattr(model, "output_names", None) or [f"output_{i}" for i in range(len(model.outputs))])
    if len(set(names)) != len(names):
        names = [f"{name}_{i}" for i, name in enumerate(names)]
    return names


def flat_outputs(model, y):
    """``{name: tensor}`` of a several-output model's result ``y`` (dict or list), named by :func:`output_names`."""
    if isinstance(y, dict):
        return {name: y[name] for name in output_names(model)}
    return dict(zip(output_names(model), keras.tree.flatten(y)))


def input_names(model):
    """The signature's input names: the names of ``model``'s ``keras.Input`` tensors (e.g. ``images``)."""
    names = [t.name for t in model.inputs]
    for name in names:
        if not re.match(r"^[A-Za-z][A-Za-z0-9_.\-]*$", name):
            raise ValueError(f"Input name {name!r} of model {model.name!r} is not usable as a signature key; "
                             "name the keras.Input with letters, digits and underscores (e.g. name='images').")
    if len(set(names)) != len(names):
        raise ValueError(f"Model {model.name!r} has duplicate input names {names}.")
    return names


def _library_layers(model):
    return sorted({type(l).__name__ for l in layers.walk(model) if type(l).__module__.startswith("keras_lottery.")})


def is_masked(model):
    """Whether ``model`` contains keras_lottery layers (``MaskedLayer`` wrappers) or masks attached to its
    layers in place, which ``deployable`` strips."""
    return bool(_library_layers(model)) or bool(attached.attached_holders(model))


def deployable(model):
    """A plain-Keras version of ``model``: masks and wrappers stripped, zeros baked into the kernels.

    A model with no keras_lottery layers is returned as is (export never changes it). The input
    model is never modified.
    """
    if not is_masked(model):
        return model
    stripped = masking.strip(model)
    if is_masked(stripped):
        raise ValueError(f"Stripping {model.name!r} left keras_lottery layers {_library_layers(stripped)}; "
                         "export accepts models whose only keras_lottery layers are MaskedLayer wrappers.")
    return stripped


def _output_mode(model, outputs):
    if len(model.outputs) > 1:
        return "named"  # one signature output per model output, under its name
    if outputs is not None:
        if outputs not in _OUTPUT_MODES:
            raise ValueError(f"outputs must be one of {_OUTPUT_MODES} (what the model's output is) or None to "
                             f"detect it; got {outputs!r}.")
        return outputs
    last = model.layers[-1] if model.layers else None
    activation = getattr(last, "activation", None)
    if isinstance(last, keras.layers.Softmax) or getattr(activation, "__name__", "") == "softmax":
        return "probabilities"
    return "logits"


def _flops(model):
    """The model's FLOPs, or None where the cost model cannot read its graph (the card then says null)."""
    try:
        return int(metrics.flops(model))
    except (ValueError, TypeError, KeyError, NotImplementedError):
        return None


def _params(model):
    return int(metrics.params(model))


# -- writing -------------------------------------------------------------------------------------------
def _write_savedmodel(model, path, mode):
    """Writes ``model`` as a SavedModel at ``path`` with one ``serving_default`` signature."""
    names = input_names(model)
    # any batch size: a Sequential built by calling it on data keeps that batch's size in its inputs
    input_shapes = [(None, *t.shape[1:]) for t in model.inputs]
    specs = [tf.TensorSpec(shape=shape, dtype=t.dtype, name=n) for t, n, shape in zip(model.inputs, names, input_shapes)]

    def serve(*args):
        y = compat.call_with_inputs(model, args, training=False)
        if mode == "named":
            return flat_outputs(model, y)
        if mode == "logits":
            return {"logits": y, "probabilities": tf.nn.softmax(y, axis=-1)}
        return {"probabilities": y}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name=SIGNATURE_KEY, fn=serve, input_signature=specs)
    archive.write_out(path, verbose=False)
    def described(tensor, shape=None):
        return {"dtype": str(tensor.dtype), "shape": [None if d is None else int(d) for d in shape or tensor.shape]}

    if mode == "named":
        described_outputs = {name: described(t) for name, t in flat_outputs(model, model.output).items()}
    else:
        keys = ["logits", "probabilities"] if mode == "logits" else ["probabilities"]
        described_outputs = {key: {**described(model.outputs[0]), "dtype": "float32"} for key in keys}
    return {
        "name": SIGNATURE_KEY,
        "method": "tensorflow/serving/predict",
        "inputs": {n: described(t, shape) for t, n, shape in zip(model.inputs, names, input_shapes)},
        "outputs": described_outputs,
    }


def _describe(model, mode, measure_size):
    info = {"architecture": card_lib.architecture(model), "flops": _flops(model), "params": _params(model),
            "density": masking.density_report(model), "sizes": None}
    if measure_size:
        with tempfile.TemporaryDirectory(prefix="kl_dense_export_") as tmp:
            _write_savedmodel(model, os.path.join(tmp, "1"), mode)
            info["sizes"] = sizes_lib.measure(os.path.join(tmp, "1"))
    return info


def _blocks_removed(dense, ticket):
    """Names of ``dense``'s residual blocks whose branch layers are all absent from ``ticket`` (not for a
    resized backbone, whose renumbered layers names cannot pair: see :func:`_resized`)."""
    present = {layer.name for layer in layers.walk(ticket)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = find_blocks(dense, warn=False)
    return [b.name for b in found if b.branch_layers and not any(n in present for n in b.branch_layers)]


def _resized(dense, ticket):
    """Whether ``ticket``'s resizable backbone has fewer layers than ``dense``'s (``blocks.remove`` on a
    KerasHub model): its layers were renumbered, so layer names do not say which were removed."""
    dense_backbone, ticket_backbone = resize.resizable_backbone(dense), resize.resizable_backbone(ticket)
    if dense_backbone is None or ticket_backbone is None:
        return False
    return ticket_backbone.get_config()["num_layers"] < dense_backbone.get_config()["num_layers"]


def for_serving(model, base_dir, version=None, *, dense_model=None, accuracy=None, hparams=None, run_dir=None,
                blocks_removed=None, require_sparse=False, outputs=None, measure_dense=True):
    """Exports a ticket as a SavedModel that TF Serving loads without keras_lottery.

    The model is stripped of masks and wrappers (zeros baked in), then written to
    ``base_dir/<version>/`` with one signature, ``serving_default``, whose input keys are the
    model's ``keras.Input`` names (``images`` for the zoo) and whose outputs are ``logits`` and
    ``probabilities`` (or only ``probabilities`` for a model ending in softmax). A model card,
    ``model_card.json``, is written beside ``saved_model.pb``. The version directory appears only
    once complete (written under a hidden temporary name, then renamed).

    Args:
        model: a built ``keras.Model``, masked (``keras_lottery.mask``) or plain (a layer ticket from
            ``keras_lottery.blocks.remove``, or any dense model): functional, Sequential, or subclassed
            (exported through its functional view, whose input keys are its ``call()`` argument
            names: ``x`` for ``call(self, x)``).
            It must have at least one prunable weight (a kernel or embedding): a model with
            nothing a mask could cover is not a ticket, and is refused.
        base_dir: the model's base path for TF Serving (``saved_models/<name>``); created if missing.
        version: a positive integer, or None for the next free one (1 in an empty ``base_dir``).
            An existing version is never overwritten.
        dense_model: the unpruned model to compare with (FLOPs, parameters, sizes, layers and
            blocks removed). Optional; the card says ``null`` where it is missing.
        accuracy: known test accuracy, a number in [0, 1] or ``{split: number}``.
        hparams: the run's hyper-parameters (a JSON-serializable dict or a dataclass).
        run_dir: the run directory the ticket came from (recorded as given).
        blocks_removed: names of the residual blocks removed from ``dense_model``. When None and
            ``dense_model`` is given: the ``removed_blocks`` that ``keras_lottery.blocks.remove`` records
            on the model it returns, else inferred from the layer names missing in ``model``
            (``keras_lottery.blocks.find_blocks``); for a KerasHub backbone resized to fewer layers,
            whose kept layers are renumbered, names cannot tell and the card says ``null``.
        require_sparse: refuse (``ValueError``) a model none of whose prunable weights is zero,
            i.e. demand a weight ticket.
        outputs: ``"logits"`` or ``"probabilities"``, what the model's output is; None detects
            it (a final softmax means probabilities).
        measure_dense: export ``dense_model`` to a temporary directory to measure its sizes.

    Returns:
        ``ExportResult(path, version, card)``.

    Raises:
        TypeError / ValueError: bad model or arguments (not built, no prunable weights, several
            outputs, not sparse with ``require_sparse``, bad version ...), before anything is written.
        FileExistsError: ``base_dir/<version>`` already exists.
    """
    model = _check_model(model)
    if dense_model is not None:
        dense_model = _check_model(dense_model, "dense_model")
    input_names(model)
    version = _check_target(base_dir, version)
    card_lib.check_accuracy(accuracy)
    card_lib.check_jsonable("hparams", hparams)
    if blocks_removed is not None and (isinstance(blocks_removed, str) or
                                       not all(isinstance(b, str) for b in blocks_removed)):
        raise TypeError(f"blocks_removed must be a list of block names, got {blocks_removed!r}.")
    mode = _output_mode(model, outputs)

    ticket = deployable(model)
    density = masking.density_report(ticket)
    if not density["layers"]:
        kinds = sorted({type(l).__name__ for l in layers.walk(ticket)})
        raise ValueError(f"Model {model.name!r} has no prunable weights (its layers are {kinds}); export accepts "
                         f"tickets of models with at least one prunable layer ({layers.SUPPORTED}, or a layer "
                         "defining get_prunable_weights()).")
    if require_sparse and density["global"]["alive"] == density["global"]["total"]:
        raise ValueError(f"require_sparse=True but no prunable weight of {model.name!r} is zero (global density "
                         "1.0); pass a pruned model (keras_lottery.mask + keras_lottery.prune) or require_sparse=False.")

    dense, resized = None, False
    if dense_model is not None:
        dense_plain = deployable(dense_model)
        dense = _describe(dense_plain, _output_mode(dense_plain, outputs), measure_dense)
        resized = _resized(dense_plain, ticket)
        if blocks_removed is None:  # kl.blocks.remove's record, else inferred from the layer names if they can tell
            recorded = getattr(model, "removed_blocks", None)
            if recorded is not None:
                blocks_removed = list(recorded)
            elif not resized:
                blocks_removed = _blocks_removed(dense_plain, ticket)
    kind = []
    if density["global"]["density"] < 1.0:
        kind.append("weight")
    if blocks_removed or (dense and (resized or dense["architecture"]["layers"] > len(ticket.layers))):
        kind.append("layer")
    ticket_kind = "+".join(kind) if kind else "dense"

    base_dir = os.fspath(base_dir)
    os.makedirs(base_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".export-{version}-", dir=base_dir)
    try:
        staging = os.path.join(tmp, "model")
        signature = _write_savedmodel(ticket, staging, mode)
        measured = sizes_lib.measure(staging)
        card = card_lib.model_card(
            ticket=ticket, signature=signature, version=version, density=density, sizes=measured,
            flops=_flops(ticket), params=_params(ticket), dense=dense, blocks_removed=blocks_removed,
            layers_renumbered=resized,
            accuracy=accuracy, hparams=hparams, run_dir=run_dir, ticket_kind=ticket_kind)
        with open(os.path.join(staging, card_lib.CARD_FILENAME), "w") as f:
            json.dump(card, f, indent=2)
        final = os.path.join(base_dir, str(version))
        if os.path.exists(final):
            raise FileExistsError(f"Version {version} appeared at {final!r} while exporting; nothing was overwritten.")
        os.rename(staging, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ExportResult(path=final, version=version, card=card)
