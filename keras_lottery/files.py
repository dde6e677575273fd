"""Files that readers never see half-written: atomic replacement, JSON, CSV and Markdown tables.

Every file the library writes into a run directory or an export goes through :func:`atomic`: the
content is written to a temporary name in the same directory and renamed over the target, so a
``kill -9`` at any instant leaves either the old file or the new one, never a torn one. Temporary
names contain ``.tmp.`` (``metrics.tmp.json``, ``mask.tmp.npz``) and keep the extension, because
some writers (``np.savez``, ``keras.Model.save``) insist on it.
"""

import contextlib
import csv
import errno
import json
import os
import shutil
import zipfile

import numpy as np

__all__ = ["DamagedFileError", "WriteError", "atomic", "copy_file", "guard", "json_default", "markdown_table", "read_json", "table_columns", "temporary_name", "write_csv",
           "write_json", "write_markdown", "write_text"]


REDO = ("Delete it and run the same command again to recompute it (every other file is kept), or start a new run "
        "with another --run_name.")


class DamagedFileError(ValueError):
    """A file exists but cannot be read (torn, truncated, edited); the message names it and what to do."""

    def __init__(self, path, reason, advice=REDO):
        self.path = os.fspath(path)
        super().__init__(f"{self.path} is damaged ({reason}). {advice}")


# What to do when a write fails, by errno; anything else gets the generic advice.
_WRITE_ADVICE = {
    errno.ENOSPC: "Free space on that file system (or give another --run_root / --base_dir)",
    errno.EDQUOT: "Free space within your disk quota (or give another --run_root / --base_dir)",
    errno.EACCES: "Make its directory writable (or give another --run_root / --base_dir)",
    errno.EPERM: "Make its directory writable (or give another --run_root / --base_dir)",
    errno.EROFS: "The file system is read-only: give another --run_root / --base_dir",
}


_WRITE_ERRNOS = set(_WRITE_ADVICE) | {errno.EIO, errno.EFBIG}


class WriteError(OSError):
    """A file could not be written (a full disk, a quota, permissions): the message is one line naming
    the file, the reason and what to do. The file's previous version, if any, is intact (the write
    was atomic), so the same command run again resumes from the last complete checkpoint.

    Attributes:
      path: the file that could not be written.
      cause: the ``OSError`` the system raised.
    """

    def __init__(self, path, cause):
        self.path, self.cause = os.fspath(path), cause
        reason = cause.strerror or str(cause) or type(cause).__name__
        advice = _WRITE_ADVICE.get(cause.errno, "Fix the cause")
        self.message = (f"Cannot write {self.path}: {reason}. {advice}, then run the same command again: it resumes "
                        "from the last complete checkpoint (nothing already written is lost).")
        super().__init__(cause.errno, self.message, self.path)

    def __str__(self):
        return self.message


@contextlib.contextmanager
def guard(path, advice=REDO):
    """Turns a failure to read the existing file ``path`` inside the block into a ``DamagedFileError``.

    A missing file, and errors that are already ``DamagedFileError``, pass through unchanged.
    """
    try:
        yield
    except DamagedFileError:
        raise
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as error:
        if isinstance(error, FileNotFoundError) or not os.path.isfile(path):
            raise
        text = str(error).strip().splitlines()
        raise DamagedFileError(path, f"{type(error).__name__}: {text[0][:160] if text else 'unreadable'}",
                               advice) from error


def temporary_name(path):
    """The temporary sibling of ``path`` that :func:`atomic` writes first (``a/b.json`` -> ``a/b.tmp.json``)."""
    root, ext = os.path.splitext(os.fspath(path))
    return f"{root}.tmp{ext}"


@contextlib.contextmanager
def atomic(path):
    """Yields a temporary path to write; on success it replaces ``path`` in one rename.

    If the body raises, the temporary file is removed and ``path`` is left as it was. An ``OSError``
    of the write itself (a full disk, a quota, permissions, a read-only file system) becomes a
    :class:`WriteError` naming ``path`` and what to do; a missing file read inside the body stays a
    ``FileNotFoundError``.
    """
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(error, OSError) and not isinstance(error, (WriteError, FileNotFoundError)) \
                and error.errno in _WRITE_ERRNOS:
            raise WriteError(path, error) from error
        raise


def json_default(value):
    """JSON form of NumPy scalars and arrays (``json.dump(..., default=json_default)``)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "__fspath__"):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def write_json(path, obj, sort_keys=True):
    """Writes ``obj`` as indented JSON to ``path`` atomically (flushed to disk before the rename)."""
    with atomic(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=sort_keys, default=json_default)
        f.flush()
        os.fsync(f.fileno())


def read_json(path, default=None, advice=REDO):
    """The JSON content of ``path``, or ``default`` when the file does not exist.

    Raises ``DamagedFileError`` (with ``advice``) when the file exists but is not valid JSON.
    """
    if not os.path.exists(path):
        return default
    with guard(path, advice), open(path) as f:
        return json.load(f)


def write_text(path, text):
    """Writes ``text`` to ``path`` atomically."""
    with atomic(path) as tmp, open(tmp, "w") as f:
        f.write(text)


def copy_file(source, target):
    """Copies ``source`` to ``target`` atomically."""
    with atomic(target) as tmp:
        shutil.copyfile(source, tmp)


def table_columns(rows, columns=None):
    """``columns`` that some row has (in the given order), or every key of ``rows`` in first-seen order."""
    if columns is not None:
        return [c for c in columns if any(c in row for row in rows)]
    keys = []
    for row in rows:
        keys += [key for key in row if key not in keys]
    return keys


def write_csv(path, rows, columns=None):
    """Writes ``rows`` (dicts) as CSV atomically; columns as in :func:`table_columns`, other keys ignored."""
    columns = table_columns(rows, columns)
    with atomic(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _markdown_cell(value):
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 0.01 and value else f"{value:.4g}"
    return "" if value is None else str(value)


def markdown_table(rows, columns=None):
    """``rows`` (dicts) as a Markdown table; booleans read yes/no, floats 4 significant digits."""
    columns = table_columns(rows, columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_markdown_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_markdown(path, rows, columns=None):
    """Writes :func:`markdown_table` of ``rows`` to ``path`` atomically."""
    write_text(path, markdown_table(rows, columns))
