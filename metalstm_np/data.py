r"""IDX reader and the vendored MNIST.

The IDX format (LeCun et al., http://yann.lecun.com/exdb/mnist/, "FILE FORMATS"):

    byte 0, 1     0x00 0x00
    byte 2        dtype code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                  0x0D float32, 0x0E float64 (multi-byte types big-endian)
    byte 3        d, the number of dimensions (d >= 1)
    bytes 4..4+4d the sizes n_1, ..., n_d, each a big-endian uint32
    then          exactly n_1 * ... * n_d * itemsize bytes of data, row-major (C order)

So the MNIST images start with the magic 0x00000803 (uint8, 3 dims: N x 28 x 28) and the labels
with 0x00000801 (uint8, 1 dim: N). Anything else in a file -- a wrong magic, an unknown dtype
code, d = 0, a short header, too few or too many data bytes, an empty file, a ".gz" that is not
gzip -- raises :class:`IDXError`, whose message starts with the file's path.

MNIST (LeCun, Cortes & Burges; CC BY-SA 3.0) ships as package data in ``_data/mnist/`` (see the
README there for the licence and the checksums), so :func:`load_mnist` works after a plain
``pip install``.
"""

import gzip
import hashlib
import zlib
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).parent / "_data" / "mnist"
"""Directory holding the four vendored MNIST IDX files (gzip-compressed)."""

_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
"""IDX dtype code (byte 2 of the magic) -> numpy dtype of the data as stored (big-endian)."""

_MNIST_FILES = {
    "train": ("train-images.idx3-ubyte.gz", "train-labels.idx1-ubyte.gz"),
    "test": ("t10k-images.idx3-ubyte.gz", "t10k-labels.idx1-ubyte.gz"),
}
"""split -> (images file, labels file) in DATA_DIR."""

MNIST_SHA256 = {
    "train-images.idx3-ubyte.gz": "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971",
    "train-labels.idx1-ubyte.gz": "1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203",
    "t10k-images.idx3-ubyte.gz": "1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be",
    "t10k-labels.idx1-ubyte.gz": "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b",
}
"""file in DATA_DIR -> SHA-256 of its (compressed) bytes, checked by load_mnist before it reads it."""

_MNIST_CACHE = {}
"""split -> (images, labels), filled by load_mnist; the arrays are read-only."""


class IDXError(ValueError):
    """A malformed IDX file; the message names the file and what is wrong with it."""


def _read_bytes(path):
    r"""All bytes of ``path``, gunzipped when the name ends in ``.gz``."""
    path = Path(path)
    if path.name.endswith(".gz"):
        try:
            with gzip.open(path, "rb") as f:
                return f.read()
        except (gzip.BadGzipFile, EOFError, zlib.error) as e:
            raise IDXError(f"{path}: not valid gzip data: {e}") from None
    return path.read_bytes()


def read_idx(path):
    r"""Read an IDX file into an array of shape (n_1, ..., n_d), native byte order.

    magic = 0x00 0x00 <dtype code> <d>;  then n_1 ... n_d as big-endian uint32;
    then n_1 · ... · n_d · itemsize bytes of data, no more, no less   (LeCun et al., IDX format)

    ``path`` is gunzipped first when its name ends in ``.gz``. Raises :class:`IDXError` for any
    file that breaks the format above.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) == 0:
        raise IDXError(f"{path}: empty file")
    if len(raw) < 4:
        raise IDXError(f"{path}: truncated: {len(raw)} bytes, shorter than the 4-byte magic")
    magic = int.from_bytes(raw[:4], "big")
    code, d = raw[2], raw[3]
    if raw[0] != 0 or raw[1] != 0:
        raise IDXError(
            f"{path}: not an IDX file: magic 0x{magic:08X}, expected 0x0000TTDD "
            f"(two zero bytes, dtype code TT, number of dimensions DD), "
            f"e.g. 0x00000801 or 0x00000803"
        )
    if code not in _DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _DTYPES)
        raise IDXError(f"{path}: unknown dtype code 0x{code:02X} in magic 0x{magic:08X}, "
                       f"expected one of {known}")
    if d == 0:
        raise IDXError(f"{path}: bad number of dimensions: 0 in magic 0x{magic:08X}, expected >= 1")
    header = 4 + 4 * d
    if len(raw) < header:
        raise IDXError(f"{path}: truncated: header declares {d} dimensions and needs {header} "
                       f"bytes, file has {len(raw)}")
    shape = tuple(int.from_bytes(raw[4 + 4 * k: 8 + 4 * k], "big") for k in range(d))
    dtype = _DTYPES[code]
    expected = int(np.prod(shape, dtype=object)) * dtype.itemsize  # Python ints: no overflow
    actual = len(raw) - header
    dims = "x".join(str(n) for n in shape)
    size = f"{dims} = {expected}" if dtype.itemsize == 1 else f"{dims} x {dtype.itemsize} = {expected}"
    if actual < expected:
        raise IDXError(f"{path}: truncated: header says {size} data bytes, file has {actual}")
    if actual > expected:
        raise IDXError(f"{path}: trailing bytes: header says {size} data bytes, file has {actual} "
                       f"({actual - expected} extra)")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))  # a writable copy in native byte order


def mnist_path(name):
    r"""Path of the vendored MNIST file ``name`` (e.g. ``"train-images.idx3-ubyte.gz"``)."""
    return DATA_DIR / name


def _check_sha256(path):
    """Refuse a vendored MNIST file that is missing, unreadable or not the recorded one (IDXError)."""
    if not path.is_file():
        raise IDXError(f"{path}: the vendored MNIST file is missing (or not a file); reinstall the package")
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as e:
        raise IDXError(f"{path}: cannot be read ({e.strerror or e})") from None
    if digest != MNIST_SHA256[path.name]:
        raise IDXError(f"{path}: SHA-256 {digest[:16]}... is not the recorded {MNIST_SHA256[path.name][:16]}...: "
                       f"the file is corrupted or altered; reinstall the package")


def load_mnist(split):
    r"""MNIST ``split`` ("train": 60000 examples, "test": 10000) as ``(images, labels)``.

    images[k] = pixels of image k, row-major, / 255   # (N, 784) float64 in [0, 1]
    labels[k] ∈ {0, ..., 9}                           # (N,) int64

    The result is cached: a second call returns the same arrays, which are read-only
    (``writeable = False``); copy them before changing them. Raises ``ValueError`` for an unknown
    split and :class:`IDXError` if a file is missing, unreadable or not the recorded one (its
    SHA-256, `MNIST_SHA256`), malformed, or if the files disagree with each other.
    """
    if split not in _MNIST_FILES:
        raise ValueError(f"unknown MNIST split {split!r}, expected one of {sorted(_MNIST_FILES)}")
    if split in _MNIST_CACHE:
        return _MNIST_CACHE[split]
    images_path, labels_path = (mnist_path(name) for name in _MNIST_FILES[split])
    for path in (images_path, labels_path):
        _check_sha256(path)
    pixels = read_idx(images_path)  # (N, 28, 28)
    digits = read_idx(labels_path)  # (N,)
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[1:] != (28, 28):
        raise IDXError(f"{images_path}: expected uint8 images of shape (N, 28, 28), "
                       f"got {pixels.dtype} {pixels.shape}")
    if digits.dtype != np.uint8 or digits.ndim != 1:
        raise IDXError(f"{labels_path}: expected uint8 labels of shape (N,), "
                       f"got {digits.dtype} {digits.shape}")
    if len(pixels) != len(digits):
        raise IDXError(f"{labels_path}: {len(digits)} labels for {len(pixels)} images "
                       f"in {images_path}")
    if digits.size and digits.max() > 9:
        raise IDXError(f"{labels_path}: label {int(digits.max())} outside 0..9")
    images = pixels.reshape(len(pixels), 28 * 28) / 255.0  # (N, 784)
    labels = digits.astype(np.int64)                       # (N,)
    images.flags.writeable = False
    labels.flags.writeable = False
    _MNIST_CACHE[split] = (images, labels)
    return images, labels
