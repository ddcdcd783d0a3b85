r"""Saving and loading φ; a saved optimizer is rebuilt by its registry name (optimizers.make_optimizer).

A weights file is an .npz holding φ's arrays under their paths in the nested dict ("lstm1/W_f"),
plus two strings: "__optimizer__", the registry name, and "__config__", the JSON of the
optimizer's config (the architecture φ was made for). Files are written atomically: to a temporary
file in the same folder, then renamed over the target, so an interrupted write never leaves a
half-written file behind.
"""
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy

from .optimizers import make_optimizer, optimizer_names

__all__ = ["save_phi", "load_phi", "check_config", "WeightsError",
           "atomic_write", "flatten_tree", "unflatten_tree"]

class WeightsError(ValueError):
    """A weights file that is missing, malformed, or made for another optimizer."""


def flatten_tree(tree, prefix=""):
    """{"a": {"b": x}} -> {"a/b": x}."""
    flat = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_tree(value, path + "/"))
        else:
            flat[path] = value
    return flat


def unflatten_tree(flat):
    """{"a/b": x} -> {"a": {"b": x}}."""
    tree = {}
    for path, value in flat.items():
        *parents, leaf = path.split("/")
        node = tree
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def atomic_write(path, write):
    """Call write(file object) on a temporary file next to `path`, then rename it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)                      # mkstemp's 0600 would make shipped files private
        os.replace(tmp, path)
    except BaseException:           # Ctrl-C may come after the rename: then tmp is gone already
        Path(tmp).unlink(missing_ok=True)
        raise


def save_phi(path, optimizer, phi, extra=None):
    """Write φ of `optimizer` to `path` (.npz); `extra` maps names to more arrays to keep beside it."""
    arrays = {f"phi/{k}": numpy.asarray(v) for k, v in flatten_tree(phi).items()}
    arrays["__optimizer__"] = numpy.array(optimizer.name)
    arrays["__config__"] = numpy.array(json.dumps(optimizer.config))
    arrays.update(extra or {})
    atomic_write(path, lambda f: numpy.savez(f, **arrays))


def _expected_shapes(optimizer):
    phi = optimizer.init_phi(numpy.random.default_rng(0))
    return {k: numpy.shape(v) for k, v in flatten_tree(phi).items()}


MAX_ARRAY_BYTES = 2**30        # a weights file's arrays, all together, at most (the largest shipped: ~1 MB)
MAX_SIZE = 100_000             # a layer size in a config at most
MAX_PARAMS = 10_000_000        # a learned θ^0's size at most

# config fields -> what they must be (checked before the optimizer is built)
_SIZES = ("hidden", "dense")
_COUNTS = ("n_params",)
_REALS = ("p", "output_scale", "step", "eps", "z_f", "z_i")       # finite, and positive (z_f: ≥ 0)
_FRACTIONS = ("beta1", "beta2")
_FLAGS = ("learn_theta0", "bounded")


def check_config(name, config):
    """Raise ValueError naming the field if `config` (a weights file's __config__) is not one that
    optimizer `name` can be built from with sane sizes; called before anything is allocated."""
    if not isinstance(config, dict):
        raise ValueError(f"the config is {type(config).__name__}, not a JSON object")

    def integer(key, value, top):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
            raise ValueError(f"config {key} = {value!r}: expected a whole number from 1 to {top:,}")

    for key, value in config.items():
        if key in _SIZES:
            for size in (value if isinstance(value, list) else [value]):
                integer(key, size, MAX_SIZE)
            if isinstance(value, list) and not value:
                raise ValueError(f"config {key} = []: expected at least one size")
        elif key in _COUNTS:
            if value is not None:
                integer(key, value, MAX_PARAMS)
        elif key in _REALS or key in _FRACTIONS:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not numpy.isfinite(value):
                raise ValueError(f"config {key} = {value!r}: expected a finite number")
            if key in _FRACTIONS and not 0 <= value < 1:
                raise ValueError(f"config {key} = {value!r}: expected a number in [0, 1)")
            if key in _REALS and not (value >= 0 if key == "z_f" else value > 0):
                raise ValueError(f"config {key} = {value!r}: expected a positive number")
        elif key in _FLAGS:
            if not isinstance(value, bool):
                raise ValueError(f"config {key} = {value!r}: expected true or false")
        elif key == "dtype":
            if value not in ("float32", "float64"):
                raise ValueError(f"config dtype = {value!r}: expected 'float32' or 'float64'")


def _headers(archive, path):
    """{member name without .npy: (shape, dtype)} read from the .npy headers of the archive, without
    reading (or decompressing) any array."""
    out = {}
    for info in archive.infolist():
        if not info.filename.endswith(".npy"):
            raise WeightsError(f"{path}: not a weights file (holds {info.filename!r}, not an array)")
        with archive.open(info) as f:
            version = numpy.lib.format.read_magic(f)
            read_header = {(1, 0): numpy.lib.format.read_array_header_1_0,
                           (2, 0): numpy.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                raise WeightsError(f"{path}: {info.filename} has an .npy version {version} we do not read")
            shape, fortran, dtype = read_header(f)
        out[info.filename[:-4]] = (shape, dtype)
    return out


def load_phi(path, expect=None):
    """(optimizer, φ, extra arrays) from a file written by save_phi.

    Checks that the file exists and can be read, is a weights file, names a known optimizer
    (`expect`, if given, must be that name) with a sane config, and that φ has exactly the arrays
    and shapes that optimizer's config makes, in a float dtype, all finite (a hand-designed
    optimizer's hyperparameters also non-negative). The shapes and dtypes are read from the
    arrays' headers first, so a small file that claims huge arrays is refused before anything is
    allocated. Every problem raises WeightsError with the path and what is wrong.
    """
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path}: no such weights file")
    if not path.is_file():
        raise WeightsError(f"{path}: not a file")
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise WeightsError(f"{path}: cannot be read ({e.strerror or e})") from None
    if not zipfile.is_zipfile(path):
        raise WeightsError(f"{path}: not an .npz weights file (not a zip archive)")
    try:
        with zipfile.ZipFile(path) as archive:
            headers = _headers(archive, path)
    except WeightsError:
        raise
    except Exception as e:  # zipfile.BadZipFile, ValueError, OSError, EOFError ...
        raise WeightsError(f"{path}: not a readable .npz weights file ({type(e).__name__}: {e})") from None
    if "__optimizer__" not in headers or "__config__" not in headers:
        raise WeightsError(f"{path}: not a metalstm weights file (no __optimizer__/__config__ entries)")
    total = 0
    for key, (shape, dtype) in headers.items():
        if dtype.hasobject:
            raise WeightsError(f"{path}: {key} holds Python objects; weights files hold only arrays")
        total += int(numpy.prod(shape, dtype=float)) * dtype.itemsize
    if total > MAX_ARRAY_BYTES:
        raise WeightsError(f"{path}: its arrays claim {total / 2**30:.3g} GB, more than a weights file "
                           f"holds (at most {MAX_ARRAY_BYTES / 2**30:.0f} GB); not loading it")
    for key in ("__optimizer__", "__config__"):
        if headers[key][1].kind != "U" or headers[key][0] != ():
            raise WeightsError(f"{path}: {key} is not a string")
    try:
        with numpy.load(path, allow_pickle=False) as npz:
            name = str(npz["__optimizer__"])
            config_text = str(npz["__config__"])
            if name not in optimizer_names():
                raise WeightsError(f"{path}: names an unknown optimizer {name!r}; expected one of "
                                   f"{optimizer_names()}")
            if expect is not None and name != expect:
                raise WeightsError(f"{path}: holds weights for optimizer {name!r}, not {expect!r}")
            try:
                config = json.loads(config_text)
                check_config(name, config)
                optimizer = make_optimizer(name, **config)
                expected = _expected_shapes(optimizer)
            except (ValueError, TypeError) as e:
                raise WeightsError(f"{path}: cannot rebuild optimizer {name!r} from its config: {e}") from None
            got = {k[len("phi/"):]: headers[k][0] for k in headers if k.startswith("phi/")}
            if got != expected:
                missing = sorted(set(expected) - set(got))
                unexpected = sorted(set(got) - set(expected))
                wrong = sorted(k for k in set(got) & set(expected) if got[k] != expected[k])
                raise WeightsError(f"{path}: weights do not fit optimizer {name!r} with config {config}: "
                                   f"missing {missing}, unexpected {unexpected}, wrong shape "
                                   + ", ".join(f"{k} {got[k]} (expected {expected[k]})" for k in wrong))
            for key in got:
                if headers["phi/" + key][1].kind != "f":
                    raise WeightsError(f"{path}: phi/{key} has dtype {headers['phi/' + key][1]}, not a float dtype")
            contents = {k: npz[k] for k in npz.files if k not in ("__optimizer__", "__config__")}
    except WeightsError:
        raise
    except Exception as e:
        raise WeightsError(f"{path}: not a readable .npz weights file ({type(e).__name__}: {e})") from None
    phi = {k[len("phi/"):]: v for k, v in contents.items() if k.startswith("phi/")}
    for key, value in phi.items():
        if not numpy.all(numpy.isfinite(value)):
            raise WeightsError(f"{path}: phi/{key} holds non-finite values (NaN or inf)")
        if not optimizer.learned and numpy.any(value < 0):
            raise WeightsError(f"{path}: phi/{key} = {value}: a hyperparameter of {name!r} must not be negative")
        if not optimizer.learned and key == "lr" and not numpy.all(value > 0):
            raise WeightsError(f"{path}: phi/lr = {value}: the learning rate of {name!r} must be positive")
    extra = {k: v for k, v in contents.items() if not k.startswith("phi/")}
    return optimizer, unflatten_tree(phi), extra
