r"""The unroll and the meta-losses, differentiated with autograd.

An unroll runs an optimizer on a task for T steps from a state, t = t0+1, ..., t0+T:

    L_t, ∇_t = f_t(θ_{t−1}), ∇f_t(θ_{t−1})          the learner, at the current parameters
    state_t  = update(φ, state_{t−1}, ∇_t, L_t)     the optimizer

and returns the losses and the final state. Three meta-losses (functions of φ, minimised by
meta-training):

    Σ_t w_t f(θ_t)      over the unroll (Andrychowicz et al. 2016, eq. 3, with w_t = 1; our
                        default is w_t = 1/T, the mean)
    Σ_t w_t log f(θ_t)  the same on a log scale (as in Wichrowska et al. 2017): a step from
                        f = 0.3 to 0.27 counts as much as one from 2.3 to 2.07, so the late steps
                        of a trajectory are not drowned by the early ones (f must stay positive)
    f_heldout(θ_T)      on held-out data at θ_T      (Ravi & Larochelle 2017, Algorithm 1, line 12)

Dropping second derivatives. Both papers treat the optimizer's input ∇_t as a constant,
∂∇_t/∂φ = 0, so that the meta-gradient needs no Hessian of the learner. Here ∇_t is computed on the
unboxed θ (autograd's `getval`), out of autograd's sight. The loss L_t = f(θ_{t−1}) keeps its first
derivative: it is returned as L_t + ∇_t·(θ − getval(θ)), whose value is L_t and whose derivative with
respect to θ is ∇_t, exactly; this saves a second pass through the learner. So only the Hessian
term is dropped. (Ravi & Larochelle 2017, Fig. 2, also stop the gradient through the loss they
feed the meta-LSTM; here the loss input keeps its first derivative, as the meta-loss does.)
With `second_order=True` ∇_t and L_t are computed on the boxed θ instead, and autograd
differentiates through the learner's gradient too.

Truncated backpropagation through time: an unroll returns its final state, so a long trajectory is
unrolled in pieces with the state carried over (and cut from the graph with `stop_gradient`).
"""
from autograd import value_and_grad
from autograd.tracer import getval
import autograd.numpy as np

__all__ = ["KINDS", "ALIASES", "unroll", "loss_and_grad", "stop_gradient", "meta_loss", "meta_value_and_grad"]

KINDS = ("mean", "log", "heldout")     # the meta-losses
ALIASES = {"sum": "mean"}              # an older name of the (weighted) mean, still accepted


def stop_gradient(tree):
    """The same dicts/lists/tuples of arrays with every autograd box removed."""
    if isinstance(tree, dict):
        return {k: stop_gradient(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(stop_gradient(v) for v in tree)
    return getval(tree)


def loss_and_grad(task, theta, t, second_order=False):
    r"""(L_t, ∇_t) at θ; see the module docstring for what is and is not differentiated."""
    if second_order:
        return value_and_grad(task.loss)(theta, t)
    theta_value = getval(theta)
    loss, grad = value_and_grad(task.loss)(theta_value, t)
    if theta is not theta_value:                     # θ depends on φ: keep ∂L/∂θ = ∇, drop ∂∇/∂θ
        loss = loss + np.dot(grad, theta - theta_value)
    return loss, grad


def unroll(optimizer, phi, task, state, steps, t0=0, second_order=False, observe=None):
    r"""Run `steps` updates from `state`, whose θ is θ_{t0}; returns (losses, state).

    losses[k] = L_{t0+k+1} = f_{t0+k+1}(θ_{t0+k}) for k = 0, ..., steps: the loss at every iterate,
    the final one included (steps + 1 values); the state is the one after the last update.
    observe(k, state), if given, is called with the state after update k = 1, ..., steps (to record
    what the optimizer does, e.g. its gates, without running it twice).
    """
    losses = []
    for k in range(steps + 1):
        t = t0 + k + 1
        loss, grad = loss_and_grad(task, optimizer.params(state), t, second_order)
        losses.append(loss)
        if k < steps:
            state = optimizer.update(phi, state, grad, loss)
            if observe is not None:
                observe(k + 1, state)
    return losses, state


def meta_loss(optimizer, phi, task, state=None, steps=20, t0=0, kind="mean", weights=None,
              second_order=False):
    r"""The meta-loss of one unroll and the final state; `state=None` starts from init(φ, θ^0).

    kind="mean":    Σ_{t=1}^{T} w_t f(θ_t) over the iterates after each update (Andrychowicz et al.
                    2016, eq. 3); the paper's w_t = 1, our default w_t = 1/T (the mean, the same
                    direction, with a scale that does not grow with T);
    kind="log":     Σ_{t=1}^{T} w_t log f(θ_t), the same weights;
    kind="heldout": f_heldout(θ_T)  (Ravi & Larochelle 2017).
    """
    kind = ALIASES.get(kind, kind)
    if kind not in KINDS:
        raise ValueError(f"unknown meta-loss kind {kind!r}; expected one of {KINDS}")
    w = np.full(steps, 1.0 / steps) if weights is None else weights
    if len(w) != steps:
        raise ValueError(f"{len(w)} meta-loss weights for an unroll of {steps} steps")
    if state is None:
        state = optimizer.init(phi, task.theta0)
    losses, state = unroll(optimizer, phi, task, state, steps, t0, second_order)
    if kind == "heldout":
        return task.heldout_loss(optimizer.params(state)), state                # Ravi & Larochelle
    if kind == "log":
        return sum(w_t * np.log(L) for w_t, L in zip(w, losses[1:])), state
    return sum(w_t * L for w_t, L in zip(w, losses[1:])), state                    # Andrychowicz, eq. 3


def meta_value_and_grad(optimizer, phi, task, state=None, steps=20, t0=0, kind="mean",
                        weights=None, second_order=False):
    r"""(meta-loss, ∂meta-loss/∂φ, final state with boxes removed) for one unroll piece."""
    final = {}

    def objective(phi):
        value, state_T = meta_loss(optimizer, phi, task, state, steps, t0, kind, weights, second_order)
        final["state"] = stop_gradient(state_T)
        return value

    value, grad = value_and_grad(objective)(phi)
    return value, grad, final["state"]
