r"""Tests for metalstm_np.data: the IDX reader on files written here, and the vendored MNIST."""

import gzip
import hashlib
import re
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from metalstm_np.data import DATA_DIR, IDXError, load_mnist, mnist_path, read_idx

# IDX dtype code -> big-endian numpy dtype, written out independently of data._DTYPES.
CODES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def idx_bytes(array, code):
    r"""0x00 0x00 code d, then the d sizes as big-endian uint32, then the big-endian data."""
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=CODES[code]).tobytes()


def write(path, payload):
    r"""Write ``payload`` to ``path``, gzip-compressed if the name ends in .gz."""
    path = Path(path)
    path.write_bytes(gzip.compress(payload) if path.name.endswith(".gz") else payload)
    return path


# ---------------------------------------------------------------- round trips


def test_hand_written_uint8_bytes(tmp_path):
    path = write(tmp_path / "three.idx1-ubyte", b"\x00\x00\x08\x01\x00\x00\x00\x03\x01\x02\xff")
    got = read_idx(path)
    assert got.dtype == np.uint8
    assert got.shape == (3,)
    assert got.tolist() == [1, 2, 255]


def test_hand_written_int16_is_big_endian(tmp_path):
    # 0x0102 = 258, 0xFFFE = -2 as big-endian int16; shape (1, 2)
    payload = b"\x00\x00\x0b\x02\x00\x00\x00\x01\x00\x00\x00\x02\x01\x02\xff\xfe"
    got = read_idx(write(tmp_path / "pair.idx2-short.gz", payload))
    assert got.dtype == np.int16
    assert got.dtype.isnative
    assert got.tolist() == [[258, -2]]


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4)])
@pytest.mark.parametrize("code", sorted(CODES))
def test_round_trip_fixed(tmp_path, suffix, shape, code):
    rng = np.random.default_rng(0)
    array = rng.integers(-100, 100, size=shape).astype(CODES[code]) if code != 0x08 \
        else rng.integers(0, 256, size=shape).astype(np.uint8)
    path = write(tmp_path / f"a.idx{suffix}", idx_bytes(array, code))
    got = read_idx(path)
    assert got.shape == shape
    assert got.dtype == np.dtype(CODES[code]).newbyteorder("=")
    assert got.flags.writeable
    np.testing.assert_array_equal(got, array)


@settings(max_examples=60, deadline=None)
@given(
    code=st.sampled_from([0x08, 0x0C, 0x0E]),
    shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6),
    gz=st.booleans(),
    data=st.data(),
)
def test_round_trip_hypothesis(code, shape, gz, data):
    array = data.draw(hnp.arrays(np.dtype(CODES[code]), shape, elements={"allow_nan": False}
                                 if code == 0x0E else None))
    with tempfile.TemporaryDirectory() as d:
        path = write(Path(d) / ("x.idx.gz" if gz else "x.idx"), idx_bytes(array, code))
        got = read_idx(path)
    assert got.shape == shape
    np.testing.assert_array_equal(got, array)


# ---------------------------------------------------------------- malformed files

GOOD = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4), 0x08)  # 4 + 8 header + 12 data bytes


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("payload, problem", [
    (GOOD[:-1], r"truncated: header says 3x4 = 12 data bytes, file has 11"),
    (GOOD[:6], r"truncated: header declares 2 dimensions and needs 12 bytes, file has 6"),
    (GOOD[:3], r"truncated"),
    (GOOD + b"\x00\x00", r"trailing bytes: header says 3x4 = 12 data bytes, file has 14 \(2 extra\)"),
    (b"\x12\x34" + GOOD[2:], r"not an IDX file: magic 0x12340802"),
    (b"\x00\x01" + GOOD[2:], r"not an IDX file: magic 0x00010802"),
    (b"\x00\x00\x0a" + GOOD[3:], r"unknown dtype code 0x0A"),
    (b"\x00\x00\x08\x00", r"bad number of dimensions: 0"),
    (b"", r"empty file"),
])
def test_malformed_raises(tmp_path, suffix, payload, problem):
    name = f"bad-file.idx{suffix}"
    path = write(tmp_path / name, payload)
    with pytest.raises(IDXError, match=re.escape(name) + r": " + problem):
        read_idx(path)


def test_int32_truncation_counts_bytes(tmp_path):
    payload = idx_bytes(np.arange(6, dtype=np.int32).reshape(2, 3), 0x0C)[:-3]
    with pytest.raises(IDXError, match=r"w\.idx: truncated: header says 2x3 x 4 = 24 data bytes, file has 21"):
        read_idx(write(tmp_path / "w.idx", payload))


@pytest.mark.parametrize("payload", [GOOD, b"not gzip at all", gzip.compress(GOOD)[:-10], b"\x1f\x8b" + b"\x00" * 20])
def test_non_gzip_in_gz_raises(tmp_path, payload):
    path = tmp_path / "fake.idx.gz"
    path.write_bytes(payload)  # raw bytes, not (or not fully) gzip
    with pytest.raises(IDXError, match=r"fake\.idx\.gz: not valid gzip"):
        read_idx(path)


def test_idx_error_is_value_error():
    assert issubclass(IDXError, ValueError)


# ---------------------------------------------------------------- vendored MNIST

MD5 = {  # of the UNCOMPRESSED files, from _data/mnist/README.md
    "train-images.idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels.idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images.idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels.idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


@pytest.mark.parametrize("name", sorted(MD5))
def test_vendored_md5_matches_readme(name):
    path = mnist_path(name + ".gz")
    assert path.parent == DATA_DIR
    assert hashlib.md5(gzip.decompress(path.read_bytes())).hexdigest() == MD5[name]
    assert MD5[name] in (DATA_DIR / "README.md").read_text()


def test_readme_carries_licence():
    text = (DATA_DIR / "README.md").read_text()
    for needle in ["CC BY-SA 3.0", "LeCun", "Cortes", "Burges"]:
        assert needle in text


def test_mnist_train():
    images, labels = load_mnist("train")
    assert images.shape == (60000, 784)
    assert images.dtype == np.float64
    assert labels.shape == (60000,)
    assert labels.dtype == np.int64
    assert images.min() == 0.0 and images.max() == 1.0
    assert np.bincount(labels, minlength=10).tolist() == [5923, 6742, 5958, 6131, 5842,
                                                          5421, 5918, 6265, 5851, 5949]
    assert labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert round(images.mean() * 255, 3) == 33.318


def test_mnist_test():
    images, labels = load_mnist("test")
    assert images.shape == (10000, 784)
    assert labels.shape == (10000,)
    assert images.min() == 0.0 and images.max() == 1.0
    assert labels.min() == 0 and labels.max() == 9


def test_mnist_pixels_are_raw_over_255():
    images, _ = load_mnist("test")
    raw = read_idx(mnist_path("t10k-images.idx3-ubyte.gz"))  # (10000, 28, 28) uint8
    np.testing.assert_array_equal(images[3], raw[3].ravel() / 255.0)


def test_mnist_cache_returns_same_read_only_arrays():
    first = load_mnist("train")
    second = load_mnist("train")
    assert second[0] is first[0] and second[1] is first[1]
    assert not first[0].flags.writeable and not first[1].flags.writeable
    with pytest.raises(ValueError):
        first[1][0] = 7
    assert first[1][0] == 5


@pytest.mark.parametrize("bad", ["validation", "TRAIN", ""])
def test_load_mnist_unknown_split(bad):
    with pytest.raises(ValueError, match=re.escape(repr(bad)) + r".*'test', 'train'"):
        load_mnist(bad)
