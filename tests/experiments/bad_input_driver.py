"""Runs one experiment binary's ``main`` on many command lines in one interpreter (TensorFlow imported once).

    python tests/experiments/bad_input_driver.py experiments.train cases.json

``cases.json`` is a list of ``{"name", "argv", "before": [[op, *args], ...], "watch": [dir, ...]}``; each
case's ``before`` operations run first (``truncate path size``, ``write path text``, ``mkdir path``,
``remove path``, ``copy source target``, ``stale_lock path``: a lock file of a dead process on this host),
then the flags are parsed afresh and ``main`` runs. The last stdout line is a JSON object, per case name:
``exit`` (the ``SystemExit`` code: None or 0 for success, else the message), ``stdout``, ``flags_error``
(absl's parsing error), ``traceback`` (any other exception: a bug) and ``changed`` (files under the
watched directories created or modified by the case).
"""

import contextlib
import importlib
import io
import json
import os
import shutil
import socket
import sys
import traceback

from absl import flags


def _snapshot(roots):
    seen = {}
    for root in roots:
        for folder, _, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                with contextlib.suppress(FileNotFoundError):
                    stat = os.stat(path)
                    seen[path] = (stat.st_size, stat.st_mtime_ns)
    return seen


def _before(operation):
    op, *args = operation
    if op == "truncate":
        with open(args[0], "r+b") as f:
            f.truncate(int(args[1]))
    elif op == "write":
        os.makedirs(os.path.dirname(args[0]), exist_ok=True)
        with open(args[0], "w") as f:
            f.write(args[1])
    elif op == "mkdir":
        os.makedirs(args[0], exist_ok=True)
    elif op == "remove":
        os.remove(args[0])
    elif op == "copy":
        shutil.copyfile(args[0], args[1])
    elif op == "stale_lock":  # a pid that cannot be alive (above the kernel's pid_max)
        os.makedirs(os.path.dirname(args[0]), exist_ok=True)
        with open(args[0], "w") as f:
            json.dump({"pid": 2**22 + 1, "host": socket.gethostname(), "started": "earlier", "command": "killed"}, f)
    else:
        raise ValueError(f"unknown operation {op!r}")


def main(module_name, cases_file):
    module = importlib.import_module(module_name)
    with open(cases_file) as f:
        cases = json.load(f)
    results = {}
    for case in cases:
        for operation in case.get("before", []):
            _before(operation)
        watch = case.get("watch", [])
        before = _snapshot(watch)
        out = io.StringIO()
        result = {"exit": None, "flags_error": None, "traceback": None}
        flags.FLAGS.unparse_flags()
        try:
            argv = flags.FLAGS([module_name, *case["argv"]])
            with contextlib.redirect_stdout(out):
                module.main(argv)
        except flags.Error as error:
            result["flags_error"] = str(error)
        except SystemExit as error:
            result["exit"] = error.code
        except BaseException:  # noqa: BLE001 - a traceback is what the test reports as a bug
            result["traceback"] = traceback.format_exc()[-3000:]
        after = _snapshot(watch)
        result["stdout"] = out.getvalue()[-4000:]
        result["changed"] = sorted(path for path, stamp in after.items() if before.get(path) != stamp)
        results[case["name"]] = result
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
