r"""Saving and loading φ, and the registry that turns a saved optimizer back into an Optimizer.

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

from .l2l import l2l
from .meta_lstm import gradient_descent_lstm, meta_lstm
from .optimizers import HAND_DESIGNED
from .rnnprop import rnnprop

__all__ = ["OPTIMIZERS", "make_optimizer", "save_phi", "load_phi", "WeightsError",
           "atomic_write", "flatten_tree", "unflatten_tree"]

OPTIMIZERS = {**{name: (lambda opt=opt: opt) for name, opt in HAND_DESIGNED.items()},
              "l2l": l2l, "metalstm": meta_lstm, "gd_lstm": gradient_descent_lstm, "rnnprop": rnnprop}


class WeightsError(ValueError):
    """A weights file that is missing, malformed, or made for another optimizer."""


def make_optimizer(name, **config):
    """The Optimizer registered under `name`, built with `config` (learned optimizers only)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[name](**config)


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
    except BaseException:
        os.unlink(tmp)
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


def load_phi(path, expect=None):
    """(optimizer, φ, extra arrays) from a file written by save_phi.

    Checks that the file exists, is a weights file, names a known optimizer (`expect`, if given,
    must be that name) and that φ has exactly the arrays and shapes that optimizer's config makes.
    Every problem raises WeightsError with the path and what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    if not zipfile.is_zipfile(path):
        raise WeightsError(f"{path}: not an .npz weights file (not a zip archive)")
    try:
        with numpy.load(path, allow_pickle=False) as npz:
            contents = {k: npz[k] for k in npz.files}
    except Exception as e:  # zipfile.BadZipFile, ValueError, OSError, EOFError ...
        raise WeightsError(f"{path}: not a readable .npz weights file ({type(e).__name__}: {e})") from None
    if "__optimizer__" not in contents or "__config__" not in contents:
        raise WeightsError(f"{path}: not a metalstm weights file (no __optimizer__/__config__ entries)")
    name = str(contents.pop("__optimizer__"))
    if expect is not None and name != expect:
        raise WeightsError(f"{path}: holds weights for optimizer {name!r}, not {expect!r}")
    try:
        config = json.loads(str(contents.pop("__config__")))
        optimizer = make_optimizer(name, **config)
    except (ValueError, TypeError) as e:
        raise WeightsError(f"{path}: cannot rebuild optimizer {name!r} from its config: {e}") from None
    phi = {k[len("phi/"):]: v for k, v in contents.items() if k.startswith("phi/")}
    expected = _expected_shapes(optimizer)
    got = {k: v.shape for k, v in phi.items()}
    if got != expected:
        missing = sorted(set(expected) - set(got))
        unexpected = sorted(set(got) - set(expected))
        wrong = sorted(k for k in set(got) & set(expected) if got[k] != expected[k])
        raise WeightsError(f"{path}: weights do not fit optimizer {name!r} with config {config}: "
                           f"missing {missing}, unexpected {unexpected}, wrong shape "
                           + ", ".join(f"{k} {got[k]} (expected {expected[k]})" for k in wrong))
    extra = {k: v for k, v in contents.items() if not k.startswith("phi/")}
    return optimizer, unflatten_tree(phi), extra
