"""The shell commands that serve an export with TF Serving's docker image and query it over REST.

``docs/serving.md`` shows these exact commands; a test checks the document against them.
"""

import os
import re
import shlex

__all__ = ["DOCKER_IMAGE", "curl_command", "docker_command"]

DOCKER_IMAGE = "tensorflow/serving"
REST_PORT = 8501
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def _check_name(model_name):
    if not isinstance(model_name, str) or not _NAME.match(model_name):
        raise ValueError(f"model_name must be letters, digits, '_', '.', '-' (it becomes a URL path part); "
                         f"got {model_name!r}.")


def docker_command(base_dir, model_name, port=REST_PORT):
    """``docker run`` serving every version under ``base_dir`` as ``model_name`` on REST ``port``.

    A relative ``base_dir`` is written relative to ``$PWD`` (docker bind mounts need absolute paths).
    """
    _check_name(model_name)
    base_dir = os.fspath(base_dir).rstrip("/")
    source = base_dir if os.path.isabs(base_dir) else f"$PWD/{base_dir}"
    quoted = f'"{source}"' if source.startswith("$PWD") else shlex.quote(source)
    return (f"docker run --rm -p {int(port)}:8501 "
            f"--mount type=bind,source={quoted},target=/models/{model_name} "
            f"-e MODEL_NAME={model_name} -t {DOCKER_IMAGE}")


def curl_command(model_name, request_file, host="localhost", port=REST_PORT):
    """``curl`` posting the JSON body in ``request_file`` to ``model_name``'s REST predict endpoint."""
    _check_name(model_name)
    return (f"curl -X POST -H 'Content-Type: application/json' -d @{shlex.quote(os.fspath(request_file))} "
            f"http://{host}:{int(port)}/v1/models/{model_name}:predict")
