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

and one that is not a loss of the learner but of the optimizer's steps, the imitation loss of Chen
et al. 2020 ("Training stronger baselines for learning to optimize", off-policy imitation):

    Σ_t w_t ½ mean_i (Δθ_{t,i} − Δθ^A_{t,i})² / mean_{t,i} (Δθ^A_{t,i})²     (`imitation_loss`)

on the trajectory θ^A_0 = θ^0, θ^A_1, ... of a hand-designed teacher (Adam) on the same task and
minibatches (`teacher_trajectory`), Δθ^A_t = θ^A_t − θ^A_{t−1}: off-policy, the optimizer is fed
the gradients at the teacher's iterates, and Δθ_t is the step it proposes from θ^A_{t−1}, after
which it goes on from θ^A_t, not from where its own step led (its other state, the moments and the
LSTM's h and c, is its own). ∇ then does not depend on φ, so nothing is dropped from this
meta-gradient. Chen et al. take ½ mean (Δθ_t − Δθ^A_t)²; dividing by the teacher's mean squared
step over the piece (ours) makes it a relative error, free of the learner's scale and of order 1
(½ for a zero step, with uniform weights), where the undivided one is of the order of a squared
step, far below the meta-loss it is mixed with. Being per piece, the division makes the loss of a
trajectory depend on the unroll length; with piece_ends weights only the last step of each piece
is imitated.

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
import numpy

__all__ = ["KINDS", "ALIASES", "unroll", "loss_and_grad", "stop_gradient", "meta_loss", "meta_value_and_grad",
           "teacher_trajectory", "imitation_loss"]

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


def teacher_trajectory(teacher, hyper, task, steps):
    r"""θ^A_0 = θ^0, θ^A_1, ..., θ^A_steps (an array (steps + 1, n)): the iterates of the hand-designed
    optimizer `teacher` with hyperparameters `hyper` (its φ, e.g. {"lr": 0.03, ...}) on `task`, on
    the minibatches t = 1..steps."""
    thetas = [task.theta0]
    unroll(teacher, hyper, task, teacher.init(hyper, task.theta0), steps,
           observe=lambda k, state: thetas.append(teacher.params(state)))
    return numpy.stack(thetas)


def imitation_loss(optimizer, phi, task, thetas, state=None, t0=0, weights=None):
    r"""The imitation loss of the T = len(thetas) − 1 steps t0+1..t0+T of a teacher's trajectory,
    thetas[k] = θ^A_{t0+k} (from `teacher_trajectory`), and the optimizer's state after them (its θ
    the teacher's θ^A_{t0+T}); `state=None` starts from init(φ, θ^A_{t0}). The loss is
    Σ_t w_t ½ mean((Δθ_t − Δθ^A_t)²) / mean((Δθ^A)²), Δθ_t the optimizer's step from θ^A_{t−1} fed
    the gradient there (Chen et al. 2020, divided by the teacher's mean squared step as the module
    docstring says), w_t = 1/T by default."""
    steps = len(thetas) - 1
    w = np.full(steps, 1.0 / steps) if weights is None else weights
    if len(w) != steps:
        raise ValueError(f"{len(w)} meta-loss weights for an unroll of {steps} steps")
    scale = float(numpy.mean(numpy.square(numpy.diff(thetas, axis=0))))    # mean (Δθ^A_t)² over the piece
    if not scale > 0:
        raise ValueError(f"the teacher's steps are all zero over steps {t0 + 1}..{t0 + steps}: "
                         f"there is no step to imitate")
    state = optimizer.init(phi, thetas[0]) if state is None else state
    total = 0.0
    for k in range(steps):
        state = {**state, "theta": thetas[k]}      # at the teacher's iterate θ^A_{t−1} (params: state["theta"])
        loss, grad = loss_and_grad(task, thetas[k], t0 + k + 1)
        state = optimizer.update(phi, state, grad, loss)
        # Δθ_t − Δθ^A_t = (θ_t − θ^A_{t−1}) − (θ^A_t − θ^A_{t−1}) = θ_t − θ^A_t
        total = total + w[k] * 0.5 * np.mean((optimizer.params(state) - thetas[k + 1]) ** 2) / scale
    return total, {**state, "theta": thetas[-1]}


def meta_value_and_grad(optimizer, phi, task, state=None, steps=20, t0=0, kind="mean",
                        weights=None, second_order=False, teachers=None):
    r"""(meta-loss, ∂meta-loss/∂φ, final state with boxes removed) for one unroll piece; with
    `teachers` (θ^A_{t0}..θ^A_{t0+steps} of a teacher, `teacher_trajectory`), the imitation loss of
    the piece instead."""
    if teachers is not None and len(teachers) != steps + 1:
        raise ValueError(f"{len(teachers)} teacher iterates for an unroll of {steps} steps (expected {steps + 1})")
    final = {}

    def objective(phi):
        if teachers is not None:
            value, state_T = imitation_loss(optimizer, phi, task, teachers, state, t0, weights)
        else:
            value, state_T = meta_loss(optimizer, phi, task, state, steps, t0, kind, weights, second_order)
        final["state"] = stop_gradient(state_T)
        return value

    value, grad = value_and_grad(objective)(phi)
    return value, grad, final["state"]
