r"""A learned optimizer built to generalize: RNNprop (Lv, Jiang & Li 2017), in the Optimizer interface.

"Learning gradient descent: better generalization and longer horizons" (ICML 2017) names two
reasons why the optimizer of Andrychowicz et al. 2016 fails past its training horizon and on other
learners, and a remedy for each, which are the options of `rnnprop` here:

1. Its input depends on the scale of the gradient, so a learner whose gradients are larger or
   smaller than the training ones (another activation, another depth) feeds it inputs it never
   saw. RNNprop feeds it Adam's scale-free ratios instead (`inputs="moments"`):

       m_t = β1 m_{t−1} + (1 − β1) ∇_t,      v_t = β2 v_{t−1} + (1 − β2) ∇_t²
       m̂_t = m_t / (1 − β1^t),              v̂_t = v_t / (1 − β2^t)
       x_t = (∇_t / (√v̂_t + ε),  m̂_t / (√v̂_t + ε))                                   (`moment_features`)

   with β1 = β2 = 0.95 as in the authors' code; `inputs="log_sign"` is the log/sign input of
   Andrychowicz et al. (appendix A), for the ablation.
2. Its step is unbounded, so one large output can throw θ far away on a long horizon. RNNprop
   bounds it (`bounded=True`):

       θ_t = θ_{t−1} − α tanh(w_out · h_t + b_out),   α = 0.1                          (`bounded_step`)

   `bounded=False` takes θ_t = θ_{t−1} − α (w_out · h_t + b_out) instead.

A third option is not RNNprop's: a nominal term (Harrison, Metz & Sohl-Dickstein 2022, "A closer
look at learned optimization: stability, robustness, and inductive biases"), a fixed step of a
hand-designed optimizer added to the learned one, so that where the learned step is small the
optimizer is that one, and meta-training learns a correction to it (`nominal=η`):

       θ_t = θ_{t−1} − η m̂_t / (√v̂_t + ε) − α tanh(w_out · h_t + b_out)

   Adam's step at rate η, which is η times the second input ratio of `moment_features` (so
   β1 = β2 = 0.95, not Adam's defaults); η = 0 (the default) is RNNprop.

A fourth option is not RNNprop's either: the bound α adapted online by hypergradient descent
(Baydin, Cornish, Martínez Rubio, Schmidt & Wood 2018, "Online learning rate adaptation with
hypergradient descent"), so that one φ can take shorter steps on a learner that needs them (another
activation, noisier gradients, a longer horizon) without being told which learner it is on
(`hypergradient=β`). With d_t = tanh(w_out · h_t + b_out) the step's direction (w_out · h_t + b_out
with `bounded=False`), θ_t = θ_{t−1} − α_t d_t, the derivative of the loss at θ_{t−1} with respect
to the α that made the previous step is −∇_t · d_{t−1}, and the paper's multiplicative rule, which
divides it by both norms, is

       α_t = α_{t−1} (1 + β cos(∇_t, d_{t−1})),   α_0 = α                               (`hypergradient_step`)

   the bound grows while the loss still falls along the last step (∇_t · d_{t−1} > 0) and shrinks
   when it rises. β = 0 (the default) is RNNprop's fixed α; 0 ≤ β < 1 keeps α_t positive, but
   nothing keeps it below a ceiling: over t steps it can grow by up to (1 + β)^t, so the step is
   bounded at each step and not over a long horizon.

A fifth option is not RNNprop's either: momentum at more time scales as more inputs (Wichrowska et
al. 2017, "Learned optimizers that scale and generalize"; Metz et al. 2019, "Understanding and
correcting pathologies in the training of learned optimizers", whose per-parameter MLP is fed the
momenta at decays 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999), so the LSTM sees the gradient averaged over
horizons longer than β1's without having to integrate it in its own state
(`timescales=(β_1, ..., β_K)`). Metz et al. normalize by the second moment over a whole tensor;
here each is divided by the coordinate's own √v̂_t, so the inputs stay scale-free as RNNprop's:

       m^(k)_t = β_k m^(k)_{t−1} + (1 − β_k) ∇_t,   x_t gains the columns m̂^(k)_t / (√v̂_t + ε)   (`timescale_features`)

   with m̂^(k)_t = m^(k)_t / (1 − β_k^t) and the same √v̂_t as the two ratios above; () (the
   default) is RNNprop's two inputs.

Between input and LSTM sits one dense layer of 20 ELU units, x ↦ elu(x W_in + b_in), as in the
authors' code; the LSTM is two layers of 20 units, shared by every coordinate (lstm.py).

Two more remedies are properties of the training tasks, not of the optimizer (learners.py):
`RandomlyScaled` (random scaling of the coordinates, θ ↦ f(c ⊙ θ)) and `PlusSquare`
(the training loss combined with a random convex function), both used while
meta-training only.
"""
import autograd.numpy as np

from .lstm import init_lstm_stack, lstm_stack, lstm_stack_zero_state
from .optimizers import Optimizer, params, register
from .preprocess import log_and_sign

__all__ = ["rnnprop", "moment_features", "timescale_features", "bounded_step", "hypergradient_step", "elu", "INPUTS"]

INPUTS = ("moments", "log_sign")


def elu(a):
    r"""elu(a) = a for a > 0, e^a − 1 otherwise (expm1 of min(a, 0), so the branch np.where discards
    is never inf and its derivative never NaN)."""
    return np.where(a > 0, a, np.expm1(np.minimum(a, 0.0)))


def moment_features(grad, m, v, t, beta1, beta2, eps):
    r"""(x_t (n, 2), m_t, v_t): Adam's moments after ∇_t at step t ≥ 1 and the ratios
    ∇_t / (√v̂_t + ε), m̂_t / (√v̂_t + ε)   (Lv, Jiang & Li 2017)."""
    m = beta1 * m + (1.0 - beta1) * grad
    v = beta2 * v + (1.0 - beta2) * grad * grad
    scale = np.sqrt(v / (1.0 - beta2 ** t)) + eps                    # √v̂_t + ε
    return np.stack([grad / scale, m / (1.0 - beta1 ** t) / scale], axis=-1), m, v


def timescale_features(grad, ms, v, t, betas, beta2, eps):
    r"""(columns (n, K), m^(k)_t (n, K)): the momenta m^(k)_t = β_k m^(k)_{t−1} + (1 − β_k) ∇_t after ∇_t
    at step t ≥ 1, v = v_t of `moment_features`, and their ratios m̂^(k)_t / (√v̂_t + ε)."""
    betas = np.asarray(betas, dtype=float)
    ms = betas * ms + (1.0 - betas) * grad[:, None]
    scale = np.sqrt(v / (1.0 - beta2 ** t)) + eps                    # √v̂_t + ε, as in moment_features
    return ms / (1.0 - betas ** t) / scale[:, None], ms


def bounded_step(a, step, bounded=True):
    r"""The step θ_{t−1} − θ_t from the output a: α tanh(a), or α a when not bounded (Lv, Jiang & Li 2017)."""
    return step * np.tanh(a) if bounded else step * a


def hypergradient_step(alpha, grad, direction, beta):
    r"""α_t = α_{t−1} (1 + β cos(∇_t, d_{t−1})) (Baydin et al. 2018, multiplicative rule); cos = 0 while
    d_{t−1} = 0 (the first step)."""
    squares = np.sum(grad * grad) * np.sum(direction * direction)
    safe = np.where(squares > 0, squares, 1.0)           # so neither branch's derivative is inf
    return alpha * (1.0 + beta * np.sum(grad * direction) / np.sqrt(safe))


@register("rnnprop")
def rnnprop(hidden=(20, 20), dense=20, step=0.1, beta1=0.95, beta2=0.95, eps=1e-8,
            inputs="moments", bounded=True, nominal=0.0, hypergradient=0.0, timescales=(), p=10.0,
            dtype="float32"):
    r"""RNNprop as an Optimizer; φ = {"w_in", "b_in", "lstm1", "lstm2", "w_out", "b_out"}.

    hidden: LSTM layer sizes; dense: units of the ELU input layer; step: α; beta1, beta2, eps:
    the moments of the input; inputs: "moments" (RNNprop) or "log_sign" (with exponent p);
    bounded: α tanh(output) (RNNprop) or α · output; nominal: the rate η of the nominal Adam step
    added to it (0: none, RNNprop; needs inputs="moments", whose moments it uses); hypergradient: β
    of the online adaptation of α (0: none, RNNprop's fixed α); timescales: the β_k of more momentum
    inputs (none, RNNprop's two; needs inputs="moments"); dtype: of φ and the LSTM states (θ stays
    float64). See the module docstring for the equations.
    """
    hidden = tuple(int(H) for H in hidden)
    if inputs not in INPUTS:
        raise ValueError(f"unknown inputs {inputs!r}; expected one of {INPUTS}")
    for name, value in (("beta1", beta1), ("beta2", beta2)):
        if not 0 <= value < 1:
            raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    if not step > 0:
        raise ValueError(f"step must be positive, got {step!r}")
    if not nominal >= 0:
        raise ValueError(f"nominal must be a rate ≥ 0, got {nominal!r}")
    if not 0 <= hypergradient < 1:
        raise ValueError(f"hypergradient must be a β in [0, 1), got {hypergradient!r}")
    timescales = tuple(float(b) for b in timescales)                # each in [0, 1): check_config
    if timescales and inputs != "moments":
        raise ValueError(f"timescales={list(timescales)} adds momenta divided by √v̂ to the moment inputs; "
                         f"inputs={inputs!r} keeps no moments")
    if nominal and inputs != "moments":
        raise ValueError(f"nominal={nominal!r} takes Adam's step from the moment inputs; "
                         f"inputs={inputs!r} keeps no moments")

    features = 2 + len(timescales)                          # columns of x_t

    def init_phi(rng):
        phi = {"w_in": (rng.uniform(-1, 1, size=(features, dense)) / np.sqrt(features)).astype(dtype),
               "b_in": np.zeros(dense, dtype)}
        return {**phi, **init_lstm_stack(rng, dense, hidden, dtype)}

    def init(phi, theta0):
        h, c = lstm_stack_zero_state(theta0.shape[0], hidden, dtype)
        zeros = np.zeros(theta0.shape[0])
        state = {"theta": theta0, "m": zeros, "v": zeros, "t": 0, "h": h, "c": c}
        if timescales:                                      # m^(k)_0 = 0
            state["ms"] = np.zeros((theta0.shape[0], len(timescales)))
        if hypergradient:                                   # α_0 and d_0 = 0
            state.update(alpha=float(step), direction=zeros)
        return state

    def update(phi, state, grad, loss):
        r"""θ_t = θ_{t−1} − α tanh(w_out · h_t + b_out) [− η m̂_t / (√v̂_t + ε)], h_t from the LSTM fed x_t,
        α replaced by α_t with `hypergradient=β` (module docstring)."""
        t = state["t"] + 1
        if inputs == "moments":
            ratios, m, v = moment_features(grad, state["m"], state["v"], t, beta1, beta2, eps)
        else:
            ratios, m, v = log_and_sign(grad, p), state["m"], state["v"]
        extra = {}
        if timescales:                                                  # m̂^(k)_t / (√v̂_t + ε)
            columns, extra["ms"] = timescale_features(grad, state["ms"], v, t, timescales, beta2, eps)
            ratios = np.concatenate([ratios, columns], axis=1)
        x = elu(ratios.astype(dtype) @ phi["w_in"] + phi["b_in"])        # (n, dense)
        a, hs, cs = lstm_stack(phi, x, state["h"], state["c"])          # w_out · h_t + b_out, (n,)
        new = {"m": m, "v": v, "t": t, "h": hs, "c": cs, **extra}
        if hypergradient:                                               # α_t, and d_t for the next one
            alpha = hypergradient_step(state["alpha"], grad, state["direction"], hypergradient)
            new["direction"] = bounded_step(a, 1.0, bounded).astype(state["theta"].dtype)
            theta = state["theta"] - alpha * new["direction"]
            new["alpha"] = alpha
        else:
            theta = state["theta"] - bounded_step(a, step, bounded).astype(state["theta"].dtype)
        if nominal:                                                     # η m̂_t / (√v̂_t + ε)
            theta = theta - nominal * ratios[:, 1]
        return {"theta": theta, **new}

    return Optimizer(name="rnnprop", init_phi=init_phi, init=init, update=update, params=params,
                     config={"hidden": list(hidden), "dense": dense, "step": step, "beta1": beta1,
                             "beta2": beta2, "eps": eps, "inputs": inputs, "bounded": bounded,
                             "nominal": nominal, "hypergradient": hypergradient,
                             "timescales": list(timescales), "p": p, "dtype": dtype},
                     learned=True)
