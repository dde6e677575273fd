"""Where image-classification arrays come from: local files, Debian's packages, TFDS, or noise.

Every source returns an ``Arrays`` bundle of NumPy arrays (images in NHWC as uint8, or in the stored
float dtype for ``.npz`` files; labels as int64). ``find(name, data_dir)`` tries the sources in order and, when none has the data,
raises ``DatasetNotFoundError`` listing every place it looked and how to provide the data.
"""

import dataclasses
import gzip
import os
import re
import socket
import struct

import numpy as np

# Debian ships some datasets as packages, unpacked under this root (dataset-fashion-mnist, ...).
DEBIAN_ROOT = "/usr/share/datasets"
DEBIAN_PACKAGES = {"fashion_mnist": "fashion-mnist"}
# TFDS downloads from here; probing it first turns a minutes-long retry loop into a quick error.
TFDS_DOWNLOAD_HOST = ("storage.googleapis.com", 443)

_SYNTHETIC = re.compile(r"^synthetic(?::(?P<shape>\d+(?:x\d+)*))?(?::(?P<classes>\d+))?(?::(?P<size>\d+))?$")


class DatasetNotFoundError(FileNotFoundError):
    """No source could provide the dataset; the message lists every place tried."""


@dataclasses.dataclass
class Arrays:
    """A dataset held in memory: train and test images and labels, and where they came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    @property
    def input_shape(self):
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def classes(self):
        return int(max(self.y_train.max(), self.y_test.max())) + 1


# ---------------------------------------------------------------------------------------------
# IDX and NumPy files in a directory


def read_idx(path):
    """Reads one IDX file (optionally gzipped), as distributed for MNIST and Fashion-MNIST."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (magic {data[:4].hex()}).")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find_file(directory, stem):
    for suffix in ("", ".gz"):
        for candidate in (f"{stem}{suffix}", f"{stem.replace('-idx', '.idx')}{suffix}"):
            path = os.path.join(directory, candidate)
            if os.path.isfile(path):
                return path
    return None


def from_idx_dir(directory):
    """Loads ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` from ``directory``, or None."""
    stems = {
        "x_train": "train-images-idx3-ubyte",
        "y_train": "train-labels-idx1-ubyte",
        "x_test": "t10k-images-idx3-ubyte",
        "y_test": "t10k-labels-idx1-ubyte",
    }
    paths = {key: _find_file(directory, stem) for key, stem in stems.items()}
    if not all(paths.values()):
        return None
    arrays = {key: read_idx(path) for key, path in paths.items()}
    for key in ("x_train", "x_test"):
        if arrays[key].ndim == 3:  # IDX images are (N, H, W): add the channel axis.
            arrays[key] = arrays[key][..., None]
    for key in ("y_train", "y_test"):
        arrays[key] = arrays[key].astype(np.int64)
    return Arrays(**arrays, source=f"IDX files in {directory}")


def from_npz_dir(directory, name):
    """Loads ``<name>.npz`` or ``data.npz`` holding x_train, y_train, x_test, y_test, or None."""
    for filename in (f"{name}.npz", "data.npz"):
        path = os.path.join(directory, filename)
        if os.path.isfile(path):
            with np.load(path) as npz:
                missing = {"x_train", "y_train", "x_test", "y_test"} - set(npz.files)
                if missing:
                    raise ValueError(f"{path} lacks arrays {sorted(missing)}; it has {sorted(npz.files)}.")
                x_train, x_test = npz["x_train"], npz["x_test"]
                if x_train.ndim == 3:
                    x_train, x_test = x_train[..., None], x_test[..., None]
                return Arrays(x_train, npz["y_train"].astype(np.int64).ravel(), x_test,
                              npz["y_test"].astype(np.int64).ravel(), source=f"NumPy file {path}")
    return None


# ---------------------------------------------------------------------------------------------
# TFDS


def _tfds_reachable(timeout=3.0):
    try:
        socket.create_connection(TFDS_DOWNLOAD_HOST, timeout=timeout).close()
        return True
    except OSError:
        return False


def _tfds_builder(name, data_dir=None, download=True):
    """``(builder, None)`` for a prepared TFDS dataset (downloaded here if needed and possible), or
    ``(None, reason)``. Downloads only when the TFDS servers answer, so an offline machine fails in seconds."""
    try:  # imported here, not at the top: tensorflow_datasets takes seconds to import and most runs never need it
        import tensorflow_datasets as tfds
    except ImportError as error:  # pragma: no cover - a dependency of the package
        return None, f"tensorflow_datasets is not importable ({error})"
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # unknown name, bad config
        return None, f"TFDS has no dataset {name!r} ({type(error).__name__}: {str(error).splitlines()[0]})"
    location = builder.data_dir
    if not builder.info.splits or not _is_prepared(builder):
        if not download:
            return None, f"TFDS data not prepared in {location} and downloads are off"
        if not _tfds_reachable():
            return None, f"TFDS data not prepared in {location}, and its download servers cannot be reached"
        try:
            builder.download_and_prepare()
        except Exception as error:
            return None, f"TFDS download into {location} failed ({type(error).__name__}: {error})"
    return builder, None


def _tfds_split(builder, split, batched=False):
    import tensorflow_datasets as tfds  # loaded already by _tfds_builder

    if not batched:
        images, labels = tfds.as_numpy(builder.as_dataset(split=split, as_supervised=True, batch_size=-1))
        return images, labels.astype(np.int64)
    # in batches: also works where the split's size is not recorded (TFDS's mock data, some community sets)
    parts = list(tfds.as_numpy(builder.as_dataset(split=split, as_supervised=True).batch(1024)))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]).astype(np.int64)


def from_tfds(name, data_dir=None, download=True):
    """Loads a TFDS image-classification dataset (``image``/``label`` features) into memory.

    Returns ``(arrays, None)`` on success, or ``(None, reason)`` saying why TFDS could not serve it.
    Downloads only when the TFDS servers answer, so an offline machine fails in seconds.
    """
    builder, reason = _tfds_builder(name, data_dir, download)
    if builder is None:
        return None, reason
    location = builder.data_dir
    splits = builder.info.splits
    test_split = "test" if "test" in splits else None
    if "train" not in splits or test_split is None:
        return None, f"TFDS dataset {name!r} has splits {sorted(splits)}; need 'train' and 'test'"
    x_train, y_train = _tfds_split(builder, "train")
    x_test, y_test = _tfds_split(builder, test_split)
    return Arrays(x_train, y_train, x_test, y_test, source=f"TFDS {name} in {location}"), None


def _is_prepared(builder):
    return os.path.isfile(os.path.join(builder.data_dir, "dataset_info.json"))


# ---------------------------------------------------------------------------------------------
# Synthetic


def parse_synthetic(name):
    """Parses ``synthetic[:HxWxC[:classes[:train_size]]]``; returns None for other names."""
    match = _SYNTHETIC.match(name)
    if not match:
        return None
    shape = tuple(int(d) for d in match.group("shape").split("x")) if match.group("shape") else (28, 28, 1)
    classes = int(match.group("classes") or 10)
    size = int(match.group("size") or 2048)
    if min(shape) < 1 or classes < 2 or size < 1:
        return None  # zero-sized images, fewer than two classes or no examples: not a usable spec
    return shape, classes, size


def synthetic(input_shape=(28, 28, 1), classes=10, train_size=2048, test_size=None, seed=0):
    """A learnable synthetic dataset: one random prototype image per class plus Gaussian noise.

    Images are float32 in [0, 1]; the test set (``train_size // 4`` by default) is drawn the same way.
    """
    if classes < 2:
        raise ValueError(f"synthetic data needs at least 2 classes, got {classes}.")
    rng = np.random.default_rng(seed)
    # Faint prototypes under strong noise: learnable, but not in a single step.
    prototypes = (0.5 + 0.08 * rng.standard_normal(size=(classes, *input_shape))).astype(np.float32)
    test_size = test_size or max(train_size // 4, classes)

    def draw(n):
        labels = rng.integers(0, classes, size=n)
        noise = rng.normal(0.0, 0.35, size=(n, *input_shape)).astype(np.float32)
        return np.clip(prototypes[labels] + noise, 0.0, 1.0), labels.astype(np.int64)

    x_train, y_train = draw(train_size)
    x_test, y_test = draw(test_size)
    return Arrays(x_train, y_train, x_test, y_test, source=f"synthetic {input_shape}, {classes} classes")


# ---------------------------------------------------------------------------------------------
# The search


def find(name, data_dir=None, download=True):
    """Finds ``name`` in: ``data_dir`` (IDX or .npz files), Debian's dataset packages, TFDS.

    ``synthetic[:HxWxC[:classes[:train_size]]]`` builds synthetic data instead. With ``data_dir``,
    only that directory is searched (no fallback elsewhere). Raises ``DatasetNotFoundError`` (one
    line) listing every place tried and how to provide the data.
    """
    spec = parse_synthetic(name)
    if spec is not None:
        shape, classes, size = spec
        return synthetic(shape, classes, size)
    tried = []
    if data_dir:
        for candidate in (data_dir, os.path.join(data_dir, name), os.path.join(data_dir, name.replace("_", "-"))):
            if os.path.isdir(candidate):
                found = from_idx_dir(candidate) or from_npz_dir(candidate, name)
                if found:
                    return found
            tried.append(f"{candidate}: no IDX (*-idx3-ubyte[.gz]) or {name}.npz files")
    if data_dir:  # the user said where the data is: look nowhere else
        found, reason = from_tfds(name, data_dir=data_dir, download=False) if os.path.isdir(os.path.join(data_dir, name)) \
            else (None, None)
        if found:
            return found
        raise DatasetNotFoundError(f"Dataset {name!r} is not in --data_dir={data_dir!r}. Tried: "
                                   + "; ".join(tried + ([reason] if reason else []))
                                   + ". Put IDX files (train-images-idx3-ubyte.gz, ...), a .npz with x_train, y_train, "
                                   "x_test, y_test, or a prepared TFDS directory there, or leave --data_dir empty.")
    if name in DEBIAN_PACKAGES:
        debian_dir = os.path.join(DEBIAN_ROOT, DEBIAN_PACKAGES[name])
        found = from_idx_dir(debian_dir) if os.path.isdir(debian_dir) else None
        if found:
            return found
        tried.append(f"{debian_dir}: missing (apt-get install dataset-{DEBIAN_PACKAGES[name]})")
    found, reason = from_tfds(name, download=download)
    if found:
        return found
    tried.append(reason)
    hint = (
        "Provide the data in one of these ways: run with internet access so TFDS can download it; "
        "copy a prepared TFDS directory and pass --data_dir; or put IDX files "
        "(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-...) or a .npz with "
        "x_train, y_train, x_test, y_test into a directory and pass --data_dir"
    )
    if name in DEBIAN_PACKAGES:
        hint += f"; or apt-get install dataset-{DEBIAN_PACKAGES[name]}"
    raise DatasetNotFoundError(f"Dataset {name!r} was not found. Tried: " + "; ".join(tried) + f". {hint}.")


# ---------------------------------------------------------------------------------------------
# A test set alone (distribution shift: CIFAR-10.1, CIFAR-10-C, ...)


def _test_split_from_dir(directory):
    """``(x_test, y_test, source)`` from t10k IDX files or a .npz with x_test and y_test, or None."""
    images, labels = _find_file(directory, "t10k-images-idx3-ubyte"), _find_file(directory, "t10k-labels-idx1-ubyte")
    if images and labels:
        x = read_idx(images)
        return (x[..., None] if x.ndim == 3 else x), read_idx(labels).astype(np.int64), f"IDX files in {directory}"
    for name in sorted(os.listdir(directory)):
        if name.endswith(".npz"):
            path = os.path.join(directory, name)
            with np.load(path) as npz:
                if {"x_test", "y_test"} <= set(npz.files):
                    x = npz["x_test"]
                    return (x[..., None] if x.ndim == 3 else x), npz["y_test"].astype(np.int64).ravel(), \
                        f"NumPy file {path}"
    return None


def find_test_set(spec, data_dir=None, download=True):
    """A test set on its own: ``(x_test, y_test, source)``.

    ``spec`` is a directory (t10k IDX files, or a .npz holding x_test and y_test) or a TFDS name
    whose ``test`` split is used (``cifar10_1``, ``cifar10_corrupted/fog_3``; from ``data_dir``, or
    downloaded when TFDS's servers answer). Raises ``DatasetNotFoundError`` (one line) saying what
    was tried.
    """
    if os.path.isdir(spec):
        found = _test_split_from_dir(spec)
        if found:
            return found
        raise DatasetNotFoundError(f"Test set directory {spec!r} holds no t10k-images-idx3-ubyte[.gz] and "
                                   "t10k-labels-idx1-ubyte[.gz], and no .npz with x_test and y_test.")
    builder, reason = _tfds_builder(spec, data_dir=data_dir, download=download)
    if builder is not None:
        try:
            x, y = _tfds_split(builder, "test", batched=True)
            return x, y, f"TFDS {spec} (test split) in {builder.data_dir}"
        except Exception as error:  # no test split, or features other than image/label
            reason = f"TFDS dataset {spec!r} has no usable test split ({type(error).__name__}: " \
                     f"{str(error).splitlines()[0][:160] if str(error) else ''})"
    raise DatasetNotFoundError(f"Test set {spec!r} was not found: {reason}. Give a directory of t10k IDX files or a "
                               ".npz with x_test and y_test, or a prepared TFDS directory with --data_dir.")
