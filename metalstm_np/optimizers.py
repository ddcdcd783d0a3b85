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
hand-designed ones, whose hyperparameters are φ, take no config. The learned optimizers' modules
(l2l, meta_lstm, rnnprop) register theirs when imported. A weights file stores the name and the
config (serialization.py), and a pickled Optimizer is the pair too.

Hand-designed optimizers in this module take φ = a dict of their hyperparameters, all floats.
"""
from dataclasses import dataclass, field
from typing import Callable

import autograd.numpy as np

__all__ = ["Optimizer", "REGISTRY", "register", "make_optimizer", "optimizer_names", "params", "sgd", "momentum",
           "nag", "rmsprop", "adam", "HAND_DESIGNED"]


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


def register(name):
    """Decorator: register `factory(**config) -> Optimizer` under `name` (as on the command line)."""
    def add(factory):
        REGISTRY[name] = factory
        return factory
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
