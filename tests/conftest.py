r"""Helpers shared by the tests of the optimizers, the unroll and the learners.

Our own random draws use `np.random.default_rng(seed)`. autograd's `check_grads` is the one thing
that draws from numpy's global generator (its probe directions come from `vspace(x).randn()`, i.e.
`np.random.randn`); the autouse fixture below seeds that generator before every test, so that a
failing gradient check fails again on the next run with the same directions.
"""
import functools
import math

import metalstm_np  # noqa: F401  (first: it pins BLAS before NumPy loads, as in the `metalstm` command)
import autograd.numpy as anp
import numpy as np
import pytest
from autograd.tracer import Box
from scipy.special import expit

from metalstm_np.learners import MLP, Quadratic, Task


@pytest.fixture(autouse=True)
def _seed_check_grads_directions():
    state = np.random.get_state()
    np.random.seed(1234)
    yield
    np.random.set_state(state)


def leaves(tree):
    """Every array (or number) in a tree of dicts, lists and tuples, in a fixed order."""
    if isinstance(tree, dict):
        return [leaf for key in sorted(tree) for leaf in leaves(tree[key])]
    if isinstance(tree, (list, tuple)):
        return [leaf for item in tree for leaf in leaves(item)]
    return [tree]


def ravel_tree(tree):
    r"""All leaves of a tree, raveled and concatenated into one vector (differentiable).

    autograd traces a function's output only when it is an array (or an autograd container), not
    a plain dict or tuple of arrays, so the functions given to check_grads return this vector.
    """
    return anp.concatenate([anp.ravel(leaf) for leaf in leaves(tree)])


def has_box(tree):
    """True when some leaf of the tree is still an autograd Box (i.e. still on a tape)."""
    return any(isinstance(leaf, Box) for leaf in leaves(tree))


def assert_trees_equal(a, b):
    """Same structure and bit-for-bit equal leaves."""
    la, lb = leaves(a), leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(x, y)


def linear_task(rng, n, heldout="quadratic"):
    r"""A task whose gradient does not depend on θ: L_t(θ) = a·θ + 3 + 0.1 t, so ∇ = a everywhere.

    |a_k| is kept in [0.5, 1.5] (far from the e^{-p} preprocessing threshold) and the loss stays
    far from 0. The held-out loss is a smooth non-linear function, so the "heldout" meta-loss has
    a non-trivial meta-gradient.
    """
    a = rng.uniform(0.5, 1.5, n) * rng.choice([-1.0, 1.0], n)
    b = rng.standard_normal(n)
    theta0 = 0.1 * rng.standard_normal(n)
    return Task(theta0=theta0,
                loss=lambda theta, t: anp.dot(a, theta) + 3.0 + 0.1 * t,
                heldout_loss=lambda theta: anp.sum((theta - b) ** 2))


@functools.lru_cache(maxsize=None)
def mlp_task(hidden=(3,), seed=0, activation="sigmoid", batch=128):
    """One MLP task on MNIST, sampled once per session (loading MNIST takes ~1.5 s)."""
    return MLP(hidden=hidden, activation=activation, batch=batch).sample(np.random.default_rng(seed))


def trajectory(optimizer, phi, task, steps, state=None):
    r"""(θ_0, ..., θ_T) as a (T + 1, n) array, the T + 1 losses, and the final state, from
    `unroll` itself (losses[k] = f(θ_k)); the θ_k are read between one-step unrolls."""
    from metalstm_np.unroll import unroll

    state = optimizer.init(phi, task.theta0) if state is None else state
    thetas, losses = [optimizer.params(state)], []
    for t in range(steps):
        piece, state = unroll(optimizer, phi, task, state, 1, t0=t)
        losses.append(piece[0])
        thetas.append(optimizer.params(state))
    losses.append(piece[1])
    return np.array(thetas), np.array(losses), state


def permuted_task(task, perm):
    r"""The same problem with its coordinates permuted: θ' = θ[perm], f'(θ') = f(θ'[perm⁻¹]),
    so ∇f'(θ') = ∇f(θ)[perm]."""
    inverse = np.argsort(perm)
    return Task(theta0=task.theta0[perm],
                loss=lambda theta, t: task.loss(theta[inverse], t),
                heldout_loss=lambda theta: task.heldout_loss(theta[inverse]))


def assert_permutation_equivariant(opt, phi, seed, dim=9, steps=5):
    """Running `opt` on a quadratic with its coordinates permuted permutes every iterate and leaves
    the losses unchanged (the optimizer is coordinatewise)."""
    rng = np.random.default_rng(seed)
    task = Quadratic(dim=dim).sample(rng)
    perm = rng.permutation(dim)
    thetas, losses, _ = trajectory(opt, phi, task, steps)
    thetas_p, losses_p, _ = trajectory(opt, phi, permuted_task(task, perm), steps)
    assert np.max(np.abs(thetas[-1] - thetas[0])) > 1e-2          # the optimizer did move θ
    np.testing.assert_allclose(thetas_p, thetas[:, perm], rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(losses_p, losses, rtol=1e-13)


def reference_lstm_cell(params, x, h, c):
    r"""The LSTM cell written independently of lstm.py: one fused (D + H, 4H) matrix, scipy's
    expit and numpy's tanh; returns (h^t, c^t)."""
    H = h.shape[1]
    W = np.concatenate([params[k] for k in ("W", "W_i", "W_f", "W_o")], axis=1)   # (D + H, 4H)
    b = np.concatenate([params[k] for k in ("b", "b_i", "b_f", "b_o")])            # (4H,)
    a = np.hstack([x, h]) @ W + b                                                   # (n, 4H)
    z, z_i, z_f, z_o = np.tanh(a[:, :H]), expit(a[:, H:2 * H]), expit(a[:, 2 * H:3 * H]), expit(a[:, 3 * H:])
    c_new = z_f * c + z_i * z
    return z_o * np.tanh(c_new), c_new


def reference_log_and_sign(x, p=10.0):
    r"""Andrychowicz et al. (2016), appendix A, one number at a time with the math module."""
    out = []
    for v in np.ravel(x):
        v = float(v)
        out.append((math.log(abs(v)) / p, math.copysign(1.0, v)) if abs(v) >= math.exp(-p)
                   else (-1.0, math.exp(p) * v))
    return np.array(out).reshape(np.shape(x) + (2,))
