r"""The LSTM cell, hand-written in the seed's notation, applied coordinatewise.

For an input x^t of shape (n, D) and a state (h^{t-1}, c^{t-1}) of shape (n, H) each,

    z   = tanh(W   [x^t; h^{t-1}] + b)        cell input
    z^i = σ(W^i [x^t; h^{t-1}] + b^i)         input gate
    z^f = σ(W^f [x^t; h^{t-1}] + b^f)         forget gate
    z^o = σ(W^o [x^t; h^{t-1}] + b^o)         output gate
    c^t = z^f ⊙ c^{t-1} + z^i ⊙ z
    h^t = z^o ⊙ tanh(c^t)

"Coordinatewise" means one set of weights for all n rows: row k is the LSTM state of the learner's
k-th parameter, so the same cell runs on learners of any size (Andrychowicz et al. 2016, sec. 2.1).
The matrices act on the right (x @ W), so W has shape (D + H, H).

Four matrices, not one fused (D + H, 4H) matrix sliced into gates, and σ and tanh as autograd
primitives whose derivatives are written in terms of their outputs, σ' = σ(1 − σ) and
tanh' = 1 − tanh², rather than left to autograd: the forms that differentiated fastest
(benchmarks/README.md has the measurements). σ is computed as (1 + tanh(x/2)) / 2, the same
function as 1 / (1 + e^{−x}) to within one rounding of 1, because numpy's float32 tanh is
vectorised; far out in the tails (x < −37 in float64, x < −17 in float32) it rounds to exactly 0
where scipy's expit returns a tiny positive number.

The weights may be float32 (the learned optimizers' `dtype` option): the cell then runs in float32;
the gradient checks use float64.
"""
import autograd.numpy as np
import numpy
from autograd.extend import defvjp, primitive

__all__ = ["init_lstm", "lstm_cell", "lstm_zero_state", "sigmoid", "tanh",
           "init_lstm_stack", "lstm_stack_zero_state", "lstm_stack"]


@primitive
def tanh(x):
    """tanh, with its derivative written in terms of its output: tanh' = 1 − tanh²."""
    return numpy.tanh(x)


defvjp(tanh, lambda ans, x: lambda g: g * (1.0 - ans * ans))


@primitive
def sigmoid(x):
    """σ(x) = 1 / (1 + exp(−x)) = (1 + tanh(x / 2)) / 2, with its derivative σ' = σ(1 − σ)."""
    out = numpy.tanh(0.5 * x)
    out *= 0.5
    out += 0.5
    return out


defvjp(sigmoid, lambda ans, x: lambda g: g * ans * (1.0 - ans))


def init_lstm(rng, D, H, scale=None, forget_bias=1.0, dtype="float64"):
    r"""Weights W, W^i, W^f, W^o ~ U(-s, s) of shape (D + H, H), biases of shape (H,).

    s defaults to 1 / sqrt(D + H); the forget-gate bias b^f starts at `forget_bias` (1 is the usual
    choice: the cell starts by remembering), the other biases at 0.
    """
    s = 1.0 / numpy.sqrt(D + H) if scale is None else scale
    params = {name: rng.uniform(-s, s, size=(D + H, H)) for name in ("W", "W_i", "W_f", "W_o")}
    params.update(b=numpy.zeros(H), b_i=numpy.zeros(H), b_f=numpy.full(H, float(forget_bias)),
                  b_o=numpy.zeros(H))
    return {name: value.astype(dtype) for name, value in params.items()}


def lstm_zero_state(n, H, dtype="float64"):
    """(h^0, c^0) = (0, 0), each of shape (n, H)."""
    return numpy.zeros((n, H), dtype), numpy.zeros((n, H), dtype)


def lstm_cell(params, x, h, c):
    r"""One step of the LSTM cell; returns (h^t, c^t).

    z = tanh(W[x^t; h^{t-1}] + b), z^i, z^f, z^o = σ(W^{i,f,o}[x^t; h^{t-1}] + b^{i,f,o}),
    c^t = z^f ⊙ c^{t-1} + z^i ⊙ z,  h^t = z^o ⊙ tanh(c^t).
    (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000.)
    """
    xh = np.concatenate([x, h], axis=1)                    # (n, D + H)
    z = tanh(xh @ params["W"] + params["b"])               # (n, H)
    z_i = sigmoid(xh @ params["W_i"] + params["b_i"])      # (n, H)
    z_f = sigmoid(xh @ params["W_f"] + params["b_f"])      # (n, H)
    z_o = sigmoid(xh @ params["W_o"] + params["b_o"])      # (n, H)
    c = z_f * c + z_i * z
    h = z_o * tanh(c)
    return h, c


def init_lstm_stack(rng, D, hidden, dtype="float64"):
    r"""φ of LSTM layers of sizes `hidden` on inputs of D features, then a linear readout:
    {"lstm1", ..., "lstmL", "w_out" (H_L,) ~ U(−0.1, 0.1)/√H_L, "b_out" = 0}, drawn in that order."""
    phi = {}
    for k, H in enumerate(hidden, start=1):
        phi[f"lstm{k}"] = init_lstm(rng, D, H, dtype=dtype)
        D = H
    phi["w_out"] = (rng.uniform(-0.1, 0.1, size=D) / numpy.sqrt(D)).astype(dtype)
    phi["b_out"] = numpy.zeros((), dtype)
    return phi


def lstm_stack_zero_state(n, hidden, dtype="float64"):
    """([h^0 per layer], [c^0 per layer]), all zero, for n coordinates."""
    h, c = zip(*(lstm_zero_state(n, H, dtype) for H in hidden))
    return list(h), list(c)


def lstm_stack(phi, x, hs, cs):
    r"""The layers of `init_lstm_stack` on x (n, D): each layer's h^t feeds the next; returns
    (w_out · h^{(L)}_t + b_out of shape (n,), [h_t per layer], [c_t per layer])."""
    new_h, new_c = [], []
    for k, (h, c) in enumerate(zip(hs, cs), start=1):
        h, c = lstm_cell(phi[f"lstm{k}"], x, h, c)
        new_h.append(h)
        new_c.append(c)
        x = h                                                   # (n, H_k)
    return x @ phi["w_out"] + phi["b_out"], new_h, new_c
