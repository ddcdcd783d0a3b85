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

from .optimizers import MAX_PARAMS, MAX_SIZE, check_config, make_optimizer, optimizer_names  # noqa: F401

__all__ = ["save_phi", "load_phi", "check_config", "WeightsError",
           "atomic_write", "atomic_write_text", "flatten_tree", "unflatten_tree"]

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


def atomic_write_text(path, text):
    """Write `text` (UTF-8) to `path` as atomic_write does: whole, or not at all."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def save_phi(path, optimizer, phi, extra=None):
    """Write φ of `optimizer` to `path` (.npz); `extra` maps names to more arrays to keep beside it.

    A φ that load_phi would refuse (arrays that do not fit the optimizer rebuilt from its name and
    config, not in a float dtype, not finite, or a hand-designed hyperparameter out of its range)
    raises ValueError naming the path and the array, and nothing is written.
    """
    flat = {k: numpy.asarray(v) for k, v in flatten_tree(phi).items()}
    try:
        rebuilt = make_optimizer(optimizer.name, **optimizer.config)
        _check_fit(rebuilt, {k: v.shape for k, v in flat.items()}, {k: v.dtype for k, v in flat.items()})
        _check_values(rebuilt, flat)
    except ValueError as e:
        raise ValueError(f"{path}: not saving φ of {optimizer.name!r}: {e}") from None
    arrays = {f"phi/{k}": v for k, v in flat.items()}
    arrays["__optimizer__"] = numpy.array(optimizer.name)
    arrays["__config__"] = numpy.array(json.dumps(optimizer.config))
    arrays.update(extra or {})
    atomic_write(path, lambda f: numpy.savez(f, **arrays))


def _expected_shapes(optimizer):
    phi = optimizer.init_phi(numpy.random.default_rng(0))
    return {k: numpy.shape(v) for k, v in flatten_tree(phi).items()}


MAX_ARRAY_BYTES = 2**30        # a weights file's arrays, all together, at most (the largest shipped: ~1 MB)

# a hand-designed optimizer's hyperparameters (φ) -> their range; any other one must be ≥ 0
_PHI_FRACTIONS = ("beta1", "beta2", "decay", "momentum")    # in [0, 1)
_PHI_POSITIVE = ("lr", "eps")                               # > 0


def _check_fit(optimizer, shapes, dtypes):
    """Raise ValueError unless arrays of these shapes and dtypes ({path in φ: ...}) are exactly the
    arrays of `optimizer`'s φ, each in a float dtype."""
    expected = _expected_shapes(optimizer)
    if shapes != expected:
        missing = sorted(set(expected) - set(shapes))
        unexpected = sorted(set(shapes) - set(expected))
        wrong = sorted(k for k in set(shapes) & set(expected) if shapes[k] != expected[k])
        raise ValueError(f"weights do not fit optimizer {optimizer.name!r} with config {optimizer.config}: "
                         f"missing {missing}, unexpected {unexpected}, wrong shape "
                         + ", ".join(f"{k} {shapes[k]} (expected {expected[k]})" for k in wrong))
    for key, dtype in dtypes.items():
        if dtype.kind != "f":
            raise ValueError(f"phi/{key} has dtype {dtype}, not a float dtype")


def _check_values(optimizer, phi):
    """Raise ValueError naming the array if φ ({path: array}) holds a non-finite value or, for a
    hand-designed optimizer, a hyperparameter out of its range."""
    name = optimizer.name
    for key, value in phi.items():
        if not numpy.all(numpy.isfinite(value)):
            raise ValueError(f"phi/{key} holds non-finite values (NaN or inf)")
        if optimizer.learned:
            continue
        if numpy.any(value < 0):
            raise ValueError(f"phi/{key} = {value}: a hyperparameter of {name!r} must not be negative")
        if key in _PHI_POSITIVE and not numpy.all(value > 0):
            what = "the learning rate" if key == "lr" else key
            raise ValueError(f"phi/{key} = {value}: {what} of {name!r} must be positive")
        if key in _PHI_FRACTIONS and not numpy.all(value < 1):
            raise ValueError(f"phi/{key} = {value}: {key} of {name!r} must be in [0, 1)")


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
    optimizer's hyperparameters also non-negative; lr and eps positive; beta1, beta2, decay and
    momentum below 1). The shapes and dtypes are read from the arrays' headers first, so a small
    file that claims huge arrays is refused before anything is allocated. Every problem raises
    WeightsError with the path and what is wrong.
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
            except (ValueError, TypeError) as e:
                raise WeightsError(f"{path}: cannot rebuild optimizer {name!r} from its config: {e}") from None
            try:
                _check_fit(optimizer, {k[len("phi/"):]: headers[k][0] for k in headers if k.startswith("phi/")},
                           {k[len("phi/"):]: headers[k][1] for k in headers if k.startswith("phi/")})
            except ValueError as e:
                raise WeightsError(f"{path}: {e}") from None
            contents = {k: npz[k] for k in npz.files if k not in ("__optimizer__", "__config__")}
    except WeightsError:
        raise
    except Exception as e:
        raise WeightsError(f"{path}: not a readable .npz weights file ({type(e).__name__}: {e})") from None
    phi = {k[len("phi/"):]: v for k, v in contents.items() if k.startswith("phi/")}
    try:
        _check_values(optimizer, phi)
    except ValueError as e:
        raise WeightsError(f"{path}: {e}") from None
    extra = {k: v for k, v in contents.items() if not k.startswith("phi/")}
    return optimizer, unflatten_tree(phi), extra
