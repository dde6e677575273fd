"""Export tickets for TF Serving: SavedModel, model card, sizes, REST requests, verification.

``for_serving(model, base_dir)`` writes ``base_dir/<version>/`` (``saved_model.pb``,
``variables/``, ``model_card.json``) with one ``serving_default`` signature, ``images`` ->
``logits`` and ``probabilities`` for the zoo models. The SavedModel holds only standard
TensorFlow ops and variables: TF Serving, or ``tf.saved_model.load`` in a process without Keras,
runs it. ``export_run(run_dir, level=N)`` (or ``ticket=...``) exports a ticket straight from a run
directory (``keras-lottery export``; :mod:`keras_lottery.export.from_run`). See ``docs/serving.md``
for the serving commands.
"""

from keras_lottery.export.card import CARD_FILENAME, architecture, density_report
from keras_lottery.export.rest import input_specs, request_body, request_inputs
from keras_lottery.export.savedmodel import (SIGNATURE_KEY, ExportResult, deployable, existing_versions,
                                             for_serving, next_version)
from keras_lottery.export.serving import docker_command, curl_command
from keras_lottery.export.sizes import measure
from keras_lottery.export.verification import (VerificationError, compare, keras_free_env, run_saved_model,
                                              verify)
from keras_lottery.export.from_run import export_run  # last: it uses the modules above

__all__ = [
    "CARD_FILENAME", "ExportResult", "SIGNATURE_KEY", "VerificationError", "architecture", "compare", "curl_command",
    "deployable", "density_report", "docker_command", "existing_versions", "export_run", "keras_free_env", "for_serving",
    "input_specs", "measure", "next_version", "request_body", "request_inputs", "run_saved_model", "verify",
]
