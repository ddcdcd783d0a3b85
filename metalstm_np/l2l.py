r"""The coordinatewise LSTM optimizer of Andrychowicz et al. 2016.

"Learning to learn by gradient descent by gradient descent", sec. 2 and 3.1:

    θ_t = θ_{t−1} + g_t,    [g_t; h_t] = m(∇_t, h_{t−1}, φ)        (eq. 1 and 2)

(the paper's θ_{t+1} = θ_t + g_t with ∇_t taken at θ_t; we shift t by one so that, as everywhere
in this package, ∇_t is the gradient at θ_{t−1}).

m is two LSTM layers of 20 units, shared by every coordinate (each coordinate keeps its own
hidden states), fed the preprocessed gradient (preprocess.log_and_sign, p = 10) and followed by a
linear output; g_t is that output times a fixed output scale (0.1 on MNIST in the paper).

Where the official code (google-deepmind/learning-to-learn) differs from the paper: its default
preprocessing is a clamped log/sign with p = 5 and its output scale is 0.01 (`scale` in
`CoordinateWiseDeepLSTM`); it initialises the LSTMs with Sonnet's defaults and feeds the raw
gradient on the quadratics (with output scale 1). We follow the paper by default — p = 10, scale
0.1, log/sign — and offer the official code's raw input as `preprocess="raw"`.
"""

from .lstm import init_lstm_stack, lstm_stack, lstm_stack_zero_state
from .optimizers import Optimizer, params, register
from .preprocess import log_and_sign

__all__ = ["l2l", "PREPROCESS"]


PREPROCESS = {"log_sign": 2, "raw": 1}    # the LSTM's input: name -> features per coordinate


@register("l2l")
def l2l(hidden=(20, 20), p=10.0, output_scale=0.1, dtype="float64", preprocess="log_sign"):
    r"""The Andrychowicz et al. (2016) optimizer as an Optimizer; φ = {"lstm1", "lstm2", "w_out", "b_out"}.

    hidden: LSTM layer sizes (the paper: two layers of 20); p: preprocessing exponent;
    output_scale: the fixed factor on the linear output; dtype: of φ and the LSTM states
    ("float32" trains about twice as fast; θ itself stays float64); preprocess: what the first
    LSTM layer sees of ∇_t, "log_sign" ((log|∇|/p, sgn ∇), appendix A) or "raw" (∇ itself, one
    feature: what the official code feeds it on the quadratics).
    """
    hidden = tuple(int(H) for H in hidden)
    if preprocess not in PREPROCESS:
        raise ValueError(f"unknown preprocessing {preprocess!r}; expected one of {sorted(PREPROCESS)}")

    def features(grad):
        if preprocess == "raw":
            return grad[:, None]                                    # (n, 1)
        return log_and_sign(grad, p)                                # (n, 2)

    def init_phi(rng):
        return init_lstm_stack(rng, PREPROCESS[preprocess], hidden, dtype)

    def init(phi, theta0):
        h, c = lstm_stack_zero_state(theta0.shape[0], hidden, dtype)
        return {"theta": theta0, "h": h, "c": c}

    def update(phi, state, grad, loss):
        r"""θ_t = θ_{t−1} + g_t,  g_t = scale · (w_out · h_t^{(L)} + b_out)   (eq. 1; h^{(L)}: top layer)."""
        x = features(grad).astype(dtype)                            # (n, D)
        out, hs, cs = lstm_stack(phi, x, state["h"], state["c"])    # w_out · h_t^{(L)} + b_out, (n,)
        g = output_scale * out                                      # eq. 1
        # θ is float64 whatever the LSTM's dtype; casting g explicitly (rather than letting numpy
        # promote it) makes autograd cast the gradient back, so the backward pass stays in dtype.
        theta = state["theta"]
        return {"theta": theta + g.astype(theta.dtype), "h": hs, "c": cs}

    return Optimizer(name="l2l", init_phi=init_phi, init=init, update=update, params=params,
                     config={"hidden": list(hidden), "p": p, "output_scale": output_scale,
                             "dtype": dtype, "preprocess": preprocess},
                     learned=True)
