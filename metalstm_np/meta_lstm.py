r"""The meta-learner LSTM of Ravi & Larochelle 2017, whose cell state is the learner's parameters.

"Optimization as a model for few-shot learning", sec. 3.1. Gradient descent,
θ_t = θ_{t−1} − α_t ∇_t (eq. 1), is the LSTM cell update c_t = f_t ⊙ c_{t−1} + i_t ⊙ c̃_t (eq. 2) read
with c_t = θ_t, c̃_t = −∇_t, f_t = 1 and i_t = α_t. In our names:

    θ_t = z^f ⊙ θ_{t−1} + z^i ⊙ (−∇_t)                                       (eq. 2)
    z^i_t = σ(W^I · [x_t, θ_{t−1}, z^i_{t−1}] + b^I)                            (eq. 3)
    z^f_t = σ(W^F · [x_t, θ_{t−1}, z^f_{t−1}] + b^F)                            (eq. 4)

Following the paper's sec. 3.3 the gates do not read (∇_t, L_t) directly: x_t is the hidden state of
a first, ordinary LSTM layer (20 units) fed the preprocessed gradient and loss,
[log_and_sign(∇_t), log_and_sign(L_t)] (4 features per coordinate). Every coordinate shares
W^I, W^F (vectors of length 20 + 2) and the scalars b^I, b^F.

The previous gate z_{t−1} is fed back AFTER the sigmoid, as the paper's equations say; the
paper's code (twitter/meta-learning-lstm) feeds back the pre-activation W·[...] + b instead. Both
start from 0. Initialisation as in the paper's code: every weight U(−0.01, 0.01), b^F ~ U(4, 5) and
b^I ~ U(−5, −4), so the optimizer starts close to gradient descent (z^f ≈ 0.99) with a small step
(z^i ≈ 0.01).

With learned θ^0 (`learn_theta0=True`), φ holds c_0, the learner's initial parameters, and
init(φ, θ^0) ignores the θ^0 it is given.

`init_phi_with_step` starts the meta-LSTM as gradient descent with step η (b^I = logit η) instead
of the paper's z^i ≈ 0.01 (`--eta` of `metalstm train` and `metalstm fewshot train`).

`gradient_descent_lstm` is the same cell with the gates fixed by hand: z^f = 1, z^i = η is exactly
gradient descent, and z^f = 1 − ηλ is gradient descent with weight decay λ. Both optimizers update θ
with the same function, `cell_state_update`.
"""
import autograd.numpy as np

from .lstm import lstm_cell, lstm_zero_state, sigmoid
from .optimizers import Optimizer, params, register
from .preprocess import log_and_sign

__all__ = ["cell_state_update", "meta_lstm", "init_phi_with_step", "gradient_descent_lstm"]


def cell_state_update(theta, grad, z_f, z_i):
    r"""θ_t = z^f ⊙ θ_{t−1} + z^i ⊙ (−∇_t)   (Ravi & Larochelle 2017, eq. 2, with c_t = θ_t, c̃_t = −∇_t)."""
    return z_f * theta + z_i * (-grad)                                                 # eq. 2


def _check_theta0(phi, theta0):
    if "c_0" in phi and np.shape(phi["c_0"]) != np.shape(theta0):
        raise ValueError(f"learned θ^0 has shape {np.shape(phi['c_0'])} but the learner has "
                         f"{np.shape(theta0)} parameters")


@register("metalstm")
def meta_lstm(hidden=20, p=10.0, learn_theta0=False, n_params=None, theta0_init=None,
              dtype="float64"):
    r"""The Ravi & Larochelle (2017) meta-learner as an Optimizer.

    φ = {"lstm1": first-layer LSTM, "W_F", "b_F", "W_I", "b_I"} (+ "c_0" with learned θ^0).
    hidden: first-layer size (20 in the paper); p: preprocessing exponent. With learn_theta0,
    n_params is the learner's size, and theta0_init(rng) -> (n_params,) draws the initial c_0
    (default: N(0, 0.01²)). dtype: of the LSTM's weights and states (θ and c_0 stay float64).
    """
    if learn_theta0 and not n_params:
        raise ValueError("learn_theta0=True needs n_params, the learner's number of parameters")

    def init_phi(rng):
        u = lambda *shape: rng.uniform(-0.01, 0.01, size=shape).astype(dtype)
        lstm1 = {name: u(4 + hidden, hidden) for name in ("W", "W_i", "W_f", "W_o")}
        lstm1.update({name: u(hidden) for name in ("b", "b_i", "b_f", "b_o")})
        phi = {"lstm1": lstm1,
               "W_F": u(hidden + 2), "b_F": np.array(rng.uniform(4.0, 5.0), dtype),
               "W_I": u(hidden + 2), "b_I": np.array(rng.uniform(-5.0, -4.0), dtype)}
        if learn_theta0:
            phi["c_0"] = theta0_init(rng) if theta0_init else 0.01 * rng.standard_normal(n_params)
        return phi

    def init(phi, theta0):
        _check_theta0(phi, theta0)
        theta = phi.get("c_0", theta0)
        n = theta.shape[0]
        h, c = lstm_zero_state(n, hidden, dtype)
        return {"theta": theta, "h": h, "c": c, "z_f": np.zeros(n, dtype), "z_i": np.zeros(n, dtype)}

    def update(phi, state, grad, loss):
        r"""x_t = LSTM([log_and_sign(∇_t), log_and_sign(L_t)]); z^f, z^i by eq. 4 and 3; θ_t by eq. 2."""
        theta, n = state["theta"], state["theta"].shape[0]
        loss_features = np.ones((n, 1)) * log_and_sign(loss, p)[None, :]               # (n, 2)
        inputs = np.concatenate([log_and_sign(grad, p), loss_features], axis=1)        # (n, 4)
        h, c = lstm_cell(phi["lstm1"], inputs.astype(dtype), state["h"], state["c"])  # (n, H)
        column = lambda v: v[:, None].astype(dtype)
        z_f = sigmoid(np.concatenate([h, column(theta), column(state["z_f"])], axis=1) @ phi["W_F"]
                      + phi["b_F"])                                                   # eq. 4; (n,)
        z_i = sigmoid(np.concatenate([h, column(theta), column(state["z_i"])], axis=1) @ phi["W_I"]
                      + phi["b_I"])                                                   # eq. 3; (n,)
        # θ is float64 whatever the LSTM's dtype: cast the gates explicitly so that autograd casts
        # their gradients back and the LSTM's backward pass stays in dtype.
        theta_t = cell_state_update(theta, grad, z_f.astype(theta.dtype), z_i.astype(theta.dtype))
        return {"theta": theta_t, "h": h, "c": c, "z_f": z_f, "z_i": z_i}

    return Optimizer(name="metalstm", init_phi=init_phi, init=init, update=update, params=params,
                     config={"hidden": hidden, "p": p, "learn_theta0": learn_theta0,
                             "n_params": n_params, "dtype": dtype}, learned=True)


def init_phi_with_step(optimizer, rng, eta):
    r"""φ = optimizer.init_phi(rng) of a meta_lstm, with b^I = logit(η) instead of U(−5, −4).

    With the paper's initialisation z^i ≈ σ(−4.5) ≈ 0.01: over T ≤ 12 steps from θ^0 ~ N(0, 0.01²)
    the untrained meta-LSTM barely moves θ (chance accuracy), and Adam at 10^-3 on φ needs thousands
    of episodes to raise b^I. With b^I = logit(η) it starts as gradient descent with step ≈ η (the
    weights W^I are U(−0.01, 0.01), so W^I·[x, θ, z^i] is small) and z^f ≈ 0.99 as in the paper.
    Pass the result to meta_train(..., phi=...) (`metalstm train` and `metalstm fewshot train` --eta).
    """
    phi = optimizer.init_phi(rng)
    if "b_I" not in phi:
        raise ValueError(f"optimizer {optimizer.name!r} has no input-gate bias b_I; expected a meta_lstm")
    if not 0.0 < eta < 1.0:
        raise ValueError(f"step η = {eta!r} must be in (0, 1), a value of the gate z^i")
    return {**phi, "b_I": np.array(np.log(eta / (1.0 - eta)), dtype=np.asarray(phi["b_I"]).dtype)}


@register("gd_lstm")
def gradient_descent_lstm(z_f=1.0, z_i=0.1, learn_theta0=False, n_params=None):
    r"""The meta-LSTM's cell with its gates fixed by hand: θ_t = z^f ⊙ θ_{t−1} + z^i ⊙ (−∇_t).

    φ = {"z_f", "z_i"} (numbers, or arrays of one value per coordinate), the hand-set hyperparameters;
    with learn_theta0, φ also holds c_0 = θ^0. z^f = 1, z^i = η is gradient descent with step η.
    """
    if learn_theta0 and not n_params:
        raise ValueError("learn_theta0=True needs n_params, the learner's number of parameters")

    def init_phi(rng=None):
        phi = {"z_f": z_f, "z_i": z_i}
        if learn_theta0:
            if rng is None:
                raise ValueError("learn_theta0=True: init_phi needs an rng to draw c_0")
            phi["c_0"] = 0.01 * rng.standard_normal(n_params)
        return phi

    def init(phi, theta0):
        _check_theta0(phi, theta0)
        return {"theta": phi.get("c_0", theta0)}

    def update(phi, state, grad, loss):
        return {"theta": cell_state_update(state["theta"], grad, phi["z_f"], phi["z_i"])}

    return Optimizer(name="gd_lstm", init_phi=init_phi, init=init, update=update, params=params,
                     config={"learn_theta0": learn_theta0, "n_params": n_params},
                     learned=learn_theta0)
