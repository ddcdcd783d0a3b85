r"""One interface for every optimizer, hand-designed or learned, and the hand-designed ones.

An optimizer is a triple of pure functions plus a way to make its meta-parameters φ:

    init_phi(rng)                  -> φ        learned: random initial weights;
                                               hand-designed: the default hyperparameters
    init(φ, θ^0)                   -> state
    update(φ, state, ∇_t, L_t)     -> state    ∇_t, L_t: gradient and loss at θ_{t-1}
    params(state)                  -> θ_t

Every state is a dict that holds the learner's parameters under "theta" (the point at which the
next gradient is taken), so `params` is the same function for all. Nothing ever mutates a state or
φ in place, so autograd can differentiate any unroll with respect to φ; and no loop ever branches
on an optimizer's name: the unroll (unroll.py), meta-training and the CLI see only this interface.
(google/learned_optimization calls our φ `theta`; we keep θ for the learner.)

Invariant: params(init(φ, θ^0)) == θ^0 — an optimizer starts where the learner's θ^0 is — unless
φ holds a learned θ^0 (the meta-LSTM's c_0), which then replaces it.

Every optimizer is made the same way, by its registry name: make_optimizer(name, **config) calls
the factory registered under that name (`register`), with the config of its architecture; the
hand-designed ones, whose hyperparameters are φ, take no config. A registered factory checks its
config first (`check_config`, which the weights loader runs too), however it is called, so a bad
size or rate is refused with its name and value before anything is built. The learned
optimizers' modules (l2l, meta_lstm, rnnprop) register theirs when imported. A weights file
stores the name and the config (serialization.py), and a pickled Optimizer is the pair too.

Hand-designed optimizers in this module take φ = a dict of their hyperparameters, all floats.
"""
import functools
import inspect
import numbers
from dataclasses import dataclass, field
from typing import Callable

import autograd.numpy as np
import numpy

__all__ = ["Optimizer", "REGISTRY", "register", "make_optimizer", "optimizer_names", "check_config", "params",
           "sgd", "momentum", "nag", "rmsprop", "adam", "HAND_DESIGNED"]


@dataclass(frozen=True)
class Optimizer:
    """The (init_phi, init, update, params) interface; see the module docstring."""

    name: str                     # registry name, as on the command line
    init_phi: Callable            # rng -> φ
    init: Callable                # (φ, θ^0) -> state
    update: Callable              # (φ, state, ∇_t, L_t) -> state
    params: Callable              # state -> θ
    config: dict = field(default_factory=dict)   # architecture settings a saved φ must match
    learned: bool = False         # True when φ is trained by meta-training

    def __reduce__(self):
        """Pickled as its registry name and config (the functions are closures), so that a worker
        process rebuilds the same optimizer: what meta-training's and the figures' pools need."""
        return _registered, (self.name, self.config)


def _registered(name, config):
    return make_optimizer(name, **config)


REGISTRY = {}        # registry name -> factory(**config) -> Optimizer
_DEFAULTS = {}       # registry name -> {config field: the factory's default}

MAX_SIZE = 100_000             # a layer size in a config at most
MAX_PARAMS = 10_000_000        # a learned θ^0's size at most

# config fields -> what they must be (checked before the optimizer is built)
_SIZES = ("hidden", "dense")       # one size, or a list of sizes where the factory's default is a list
_COUNTS = ("n_params",)
_REALS = ("p", "output_scale", "step", "eps", "z_f", "z_i", "nominal")   # finite, and positive (z_f, nominal: ≥ 0)
_NON_NEGATIVE = ("z_f", "nominal")
_PER_COORDINATE = ("z_f", "z_i")   # may also be arrays, one value per coordinate (gd_lstm)
_FRACTIONS = ("beta1", "beta2", "hypergradient")
_FRACTION_LISTS = ("timescales",)   # lists of numbers in [0, 1)
MAX_LIST = 16                      # entries of such a list
_FLAGS = ("learn_theta0", "bounded")


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, numpy.bool_))


def _finite(value):
    try:
        return bool(numpy.all(numpy.isfinite(numpy.asarray(value, dtype=float))))
    except OverflowError:                         # an int too large for a float
        return False


def check_config(name, config):
    """Raise ValueError naming the field if `config` (make_optimizer's keywords, or a weights file's
    __config__) is not one that optimizer `name` can be built from with sane sizes; called before
    anything is allocated."""
    if not isinstance(config, dict):
        raise ValueError(f"the config is {type(config).__name__}, not a JSON object")
    defaults = _DEFAULTS.get(name, {})

    def integer(key, value, top):
        if (not isinstance(value, numbers.Integral) or isinstance(value, (bool, numpy.bool_))
                or not 1 <= value <= top):
            raise ValueError(f"config {key} = {value!r}: expected a whole number from 1 to {top:,}")

    for key, value in config.items():
        if key in _SIZES:
            listed = isinstance(value, (list, tuple))
            if key in defaults and listed != isinstance(defaults[key], (list, tuple)):
                wanted = "one layer size, like 20" if listed else "a list of layer sizes, like [20, 20]"
                raise ValueError(f"config {key} = {value!r}: expected {wanted}")
            for size in (value if listed else [value]):
                integer(key, size, MAX_SIZE)
            if listed and not value:
                raise ValueError(f"config {key} = {value!r}: expected at least one size")
        elif key in _COUNTS:
            if value is not None:
                integer(key, value, MAX_PARAMS)
        elif key in _REALS or key in _FRACTIONS:
            array = key in _PER_COORDINATE and isinstance(value, numpy.ndarray)
            if not (array and value.dtype.kind in "iuf" or _is_real(value)) or not _finite(value):
                raise ValueError(f"config {key} = {value!r}: expected a finite number")
            if key in _FRACTIONS and not 0 <= value < 1:
                raise ValueError(f"config {key} = {value!r}: expected a number in [0, 1)")
            if key in _NON_NEGATIVE and not numpy.all(numpy.asarray(value) >= 0):
                raise ValueError(f"config {key} = {value!r}: expected a number ≥ 0")
            if key in _REALS and key not in _NON_NEGATIVE and not numpy.all(numpy.asarray(value) > 0):
                raise ValueError(f"config {key} = {value!r}: expected a positive number")
        elif key in _FRACTION_LISTS:
            if not isinstance(value, (list, tuple)) or len(value) > MAX_LIST:
                raise ValueError(f"config {key} = {value!r}: expected a list of up to {MAX_LIST} numbers in [0, 1)")
            for b in value:
                if not (_is_real(b) and _finite(b) and 0 <= b < 1):
                    raise ValueError(f"config {key} = {value!r}: {b!r} is not a number in [0, 1)")
        elif key in _FLAGS:
            if not isinstance(value, (bool, numpy.bool_)):
                raise ValueError(f"config {key} = {value!r}: expected true or false")
        elif key == "dtype":
            if not isinstance(value, str) or value not in ("float32", "float64"):
                raise ValueError(f"config dtype = {value!r}: expected 'float32' or 'float64'")


def register(name):
    """Decorator: register `factory(**config) -> Optimizer` under `name` (as on the command line).
    The factory it returns (and registers) runs check_config(name, config) first."""
    def add(factory):
        parameters = inspect.signature(factory).parameters
        _DEFAULTS[name] = {k: p.default for k, p in parameters.items() if p.default is not p.empty}

        @functools.wraps(factory)
        def checked(*args, **config):
            check_config(name, {**dict(zip(parameters, args)), **config})
            return factory(*args, **config)

        REGISTRY[name] = checked
        return checked
    return add


def _load_learned():
    from . import l2l, meta_lstm, rnnprop  # noqa: F401  (each module registers its optimizers)


def make_optimizer(name, **config):
    """The Optimizer registered under `name`, built with `config` (learned optimizers only)."""
    _load_learned()
    if name not in REGISTRY:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {sorted(REGISTRY)}")
    return REGISTRY[name](**config)


def optimizer_names():
    """Every registered name, sorted."""
    _load_learned()
    return sorted(REGISTRY)


def params(state):
    """θ: the point at which the learner's next gradient is taken."""
    return state["theta"]


def _hand_designed(name, defaults, init, update):
    """The optimizer, registered under `name` with a factory that takes no config."""
    opt = Optimizer(name=name, init_phi=lambda rng=None: dict(defaults), init=init, update=update, params=params)

    @register(name)
    def factory(**config):
        if config:
            raise ValueError(f"{name} has no architecture config (its hyperparameters are φ); got {config}")
        return opt
    return opt


def _sgd_update(phi, state, grad, loss):
    r"""θ_t = (1 − ηλ) θ_{t−1} − η ∇_t,  i.e. θ_{t−1} − η(∇_t + λθ_{t−1}) with weight decay λ."""
    eta, lam = phi["lr"], phi["weight_decay"]
    return {"theta": (1.0 - eta * lam) * state["theta"] - eta * grad}


sgd = _hand_designed("sgd", {"lr": 0.1, "weight_decay": 0.0},
                     init=lambda phi, theta0: {"theta": theta0}, update=_sgd_update)


def _momentum_update(phi, state, grad, loss):
    r"""Heavy ball (Polyak 1964): v_t = μ v_{t−1} − η ∇_t,  θ_t = θ_{t−1} + v_t."""
    v = phi["momentum"] * state["v"] - phi["lr"] * grad
    return {"theta": state["theta"] + v, "v": v}


def _momentum_init(phi, theta0):
    return {"theta": theta0, "v": np.zeros_like(theta0)}


momentum = _hand_designed("momentum", {"lr": 0.1, "momentum": 0.9},
                          init=_momentum_init, update=_momentum_update)


def _nag_update(phi, state, grad, loss):
    r"""Nesterov's accelerated gradient, written on the look-ahead point.

    Sutskever et al. (2013) write NAG as v_t = μ v_{t−1} − η ∇f(ϑ_{t−1} + μ v_{t−1}),
    ϑ_t = ϑ_{t−1} + v_t: the gradient is taken at the look-ahead point θ_{t−1} = ϑ_{t−1} + μ v_{t−1}.
    Keeping θ (the point where the gradient is taken) as the state gives
        v_t = μ v_{t−1} − η ∇_t,   θ_t = θ_{t−1} + μ v_t − η ∇_t.
    θ^0 = ϑ^0 since v^0 = 0. params(state) is therefore the look-ahead point ϑ_t + μ v_t: the
    losses and the final θ reported for NAG are taken there.
    """
    mu, eta = phi["momentum"], phi["lr"]
    v = mu * state["v"] - eta * grad
    return {"theta": state["theta"] + mu * v - eta * grad, "v": v}


nag = _hand_designed("nag", {"lr": 0.1, "momentum": 0.9}, init=_momentum_init, update=_nag_update)


def _rmsprop_update(phi, state, grad, loss):
    r"""RMSprop (Tieleman & Hinton 2012): s_t = ρ s_{t−1} + (1 − ρ) ∇_t²,  θ_t = θ_{t−1} − η ∇_t / (√s_t + ε)."""
    rho = phi["decay"]
    s = rho * state["s"] + (1.0 - rho) * grad**2
    return {"theta": state["theta"] - phi["lr"] * grad / (np.sqrt(s) + phi["eps"]), "s": s}


rmsprop = _hand_designed("rmsprop", {"lr": 0.01, "decay": 0.9, "eps": 1e-8},
                         init=lambda phi, theta0: {"theta": theta0, "s": np.zeros_like(theta0)},
                         update=_rmsprop_update)


def _adam_update(phi, state, grad, loss):
    r"""Adam (Kingma & Ba 2015, Algorithm 1):
    m_t = β1 m_{t−1} + (1 − β1) ∇_t,  v_t = β2 v_{t−1} + (1 − β2) ∇_t²,
    θ_t = θ_{t−1} − η m̂_t / (√v̂_t + ε),  m̂_t = m_t / (1 − β1^t),  v̂_t = v_t / (1 − β2^t).
    """
    b1, b2, t = phi["beta1"], phi["beta2"], state["t"] + 1
    m = b1 * state["m"] + (1.0 - b1) * grad
    v = b2 * state["v"] + (1.0 - b2) * grad**2
    m_hat, v_hat = m / (1.0 - b1**t), v / (1.0 - b2**t)
    theta = state["theta"] - phi["lr"] * m_hat / (np.sqrt(v_hat) + phi["eps"])
    return {"theta": theta, "m": m, "v": v, "t": t}


adam = _hand_designed("adam", {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
                      init=lambda phi, theta0: {"theta": theta0, "m": np.zeros_like(theta0),
                                                "v": np.zeros_like(theta0), "t": 0},
                      update=_adam_update)

HAND_DESIGNED = {opt.name: opt for opt in (sgd, momentum, nag, rmsprop, adam)}
