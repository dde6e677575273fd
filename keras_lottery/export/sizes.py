"""How big an exported SavedModel is on disk and as a compressed download.

Weight sparsity does not shrink a SavedModel on disk: a pruned kernel is still a dense float32
tensor, zeros included. It shrinks the *download*: runs of zeros compress, random float32 values
hardly do. ``measure`` reports both, so a model card can show the difference against the dense model.
"""

import gzip
import io
import os
import tarfile

__all__ = ["directory_bytes", "gzip_bytes", "measure"]


def _files(path):
    """Every regular file under ``path``, as sorted relative paths (a stable archive order)."""
    found = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            if os.path.isfile(full) and not os.path.islink(full):
                found.append(os.path.relpath(full, path))
    return found


def _check_dir(path):
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"Expected a SavedModel directory, got {path!r}, which is not a directory.")
    return path


def directory_bytes(path, exclude=()):
    """Total size in bytes of the regular files under directory ``path`` (relative paths in ``exclude`` skipped)."""
    path = _check_dir(path)
    return int(sum(os.path.getsize(os.path.join(path, f)) for f in _files(path) if f not in exclude))


def gzip_bytes(path, exclude=(), compresslevel=9):
    """Size in bytes of ``path`` as a gzip-compressed tar archive (what a user would download).

    The archive is built in memory with sorted names and zeroed timestamps and owners, so the
    number depends only on the file contents.
    """
    path = _check_dir(path)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for rel in _files(path):
            if rel in exclude:
                continue
            info = tarfile.TarInfo(rel)
            info.size = os.path.getsize(os.path.join(path, rel))
            info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode = 0, 0, 0, "", "", 0o644
            with open(os.path.join(path, rel), "rb") as f:
                tar.addfile(info, f)
    return len(gzip.compress(raw.getvalue(), compresslevel=compresslevel, mtime=0))


def measure(path, exclude=()):
    """``{"bytes": size on disk, "gzip_bytes": size as a .tar.gz}`` of the directory ``path``."""
    return {"bytes": directory_bytes(path, exclude), "gzip_bytes": gzip_bytes(path, exclude)}
