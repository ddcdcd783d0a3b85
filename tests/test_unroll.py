r"""Tests for metalstm_np.unroll: the unroll, the two meta-losses and their meta-gradients.

* unroll returns T + 1 losses, the loss at every iterate, and can be cut into pieces exactly;
* the meta-gradient with second derivatives (second_order=True) matches central differences;
* without them (second_order=False) it equals the full one when ∇ does not depend on θ (a linear
  loss) and differs measurably from it on a quadratic;
* meta_value_and_grad hands back a state free of autograd boxes.
"""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from autograd.misc import flatten
from autograd.tracer import Box

from conftest import assert_trees_equal, has_box, leaves, linear_task, mlp_task
from metalstm_np.l2l import l2l
from metalstm_np.learners import Quadratic, Task
from metalstm_np.meta_lstm import meta_lstm
from metalstm_np.optimizers import adam, sgd
from metalstm_np.rnnprop import rnnprop
from metalstm_np.unroll import (imitation_loss, loss_and_grad, meta_loss, meta_value_and_grad, stop_gradient,
                                 teacher_trajectory, unroll)

N = 7
STEPS = 3
QUADRATIC = Quadratic(dim=N).sample(np.random.default_rng(0))

LEARNED = {
    "l2l": lambda: l2l(hidden=(6, 5)),
    "metalstm": lambda: meta_lstm(hidden=6),
    "metalstm_theta0": lambda: meta_lstm(hidden=6, learn_theta0=True, n_params=N),
}


def phi_of(name, seed=1):
    opt = LEARNED[name]()
    return opt, opt.init_phi(np.random.default_rng(seed))


# ------------------------------------------------------------------------------ unroll


def test_unroll_returns_the_loss_at_every_iterate():
    phi = {"lr": 0.01, "weight_decay": 0.0}
    losses, state = unroll(sgd, phi, QUADRATIC, sgd.init(phi, QUADRATIC.theta0), 6)
    assert len(losses) == 7
    theta = QUADRATIC.theta0
    for k in range(7):
        assert losses[k] == QUADRATIC.loss(theta, k + 1)
        if k < 6:
            theta = (1.0 - 0.0) * theta - 0.01 * grad(QUADRATIC.heldout_loss)(theta)
    np.testing.assert_array_equal(state["theta"], theta)
    assert len(unroll(sgd, phi, QUADRATIC, sgd.init(phi, QUADRATIC.theta0), 0)[0]) == 1


def test_unroll_feeds_step_t_loss_and_gradient():
    r"""L_t = f_t(θ_{t−1}) at t = t0 + 1, ..., t0 + T + 1, on the step-t minibatch."""
    seen = []
    task = Task(theta0=np.zeros(2), loss=lambda th, t: seen.append(t) or anp.sum(th) + t,
                heldout_loss=lambda th: 0.0)
    losses, _ = unroll(sgd, {"lr": 0.5, "weight_decay": 0.0}, task, {"theta": np.zeros(2)}, 3, t0=10)
    assert seen == [11, 12, 13, 14]
    # ∇ = (1, 1) everywhere, so θ_k = (−k/2, −k/2) and L_{11+k} = 11 + k − k
    np.testing.assert_array_equal(losses, [11.0, 11.0, 11.0, 11.0])


@pytest.mark.parametrize("name", ["l2l", "adam"])
def test_long_unroll_equals_pieces_with_state_carried(name):
    r"""100 steps at once = 5 pieces of 20 (t0 = 0, 20, ..., 80) with the state carried over,
    exactly, on an MLP task; each piece's last loss is the next piece's first. (l2l with LSTM
    layers of 8 rather than 20: the property does not depend on the width, and 200 steps of the
    paper's (20, 20) on 3,985 coordinates take 6–20 s on a busy 2-core machine.)"""
    task = mlp_task(hidden=(5,), seed=3)
    opt = l2l(hidden=(8, 8)) if name == "l2l" else adam
    phi = opt.init_phi(np.random.default_rng(4))
    if name == "adam":
        phi["lr"] = 0.01
    whole_losses, whole_state = unroll(opt, phi, task, opt.init(phi, task.theta0), 100)
    assert len(whole_losses) == 101
    state, pieces = opt.init(phi, task.theta0), []
    for t0 in range(0, 100, 20):
        losses, state = unroll(opt, phi, task, state, 20, t0=t0)
        assert len(losses) == 21
        if pieces:
            assert pieces[-1][-1] == losses[0]
        pieces.append(losses)
    np.testing.assert_array_equal(whole_losses, np.concatenate([p[:-1] for p in pieces] + [pieces[-1][-1:]]))
    assert_trees_equal(whole_state, state)
    assert np.max(np.abs(whole_state["theta"] - task.theta0)) > 1e-3       # it moved
    if name == "adam":
        assert whole_losses[-1] < whole_losses[0] - 0.3                     # and trained


def test_loss_and_grad_first_and_second_order_agree_on_values():
    theta = np.random.default_rng(5).standard_normal(N)
    L1, g1 = loss_and_grad(QUADRATIC, theta, 1)
    L2, g2 = loss_and_grad(QUADRATIC, theta, 1, second_order=True)
    assert L1 == L2 == QUADRATIC.loss(theta, 1)
    np.testing.assert_array_equal(g1, g2)


def test_stop_gradient_keeps_structure_and_values():
    tree = {"a": [np.arange(3.0), np.ones(2)], "b": (np.zeros(1),), "c": 2.0}
    out = stop_gradient(tree)
    assert type(out["a"]) is list and type(out["b"]) is tuple
    assert_trees_equal(out, tree)


# ------------------------------------------------------------------------------ meta-losses


@pytest.mark.parametrize("second_order", [False, True])
def test_meta_loss_sum_log_and_heldout_values(second_order):
    r"""On a task whose held-out loss is not its training loss (unlike the quadratic's)."""
    task = linear_task(np.random.default_rng(6), N)
    opt, phi = phi_of("metalstm")
    losses, state = unroll(opt, phi, task, opt.init(phi, task.theta0), 5)
    value, final = meta_loss(opt, phi, task, steps=5, kind="mean", second_order=second_order)
    np.testing.assert_allclose(value, np.mean(losses[1:]), rtol=1e-15)        # w_t = 1/T by default
    w = np.array([1.0, 0.0, 2.0, 0.0, 3.0])
    value_w, _ = meta_loss(opt, phi, task, steps=5, kind="mean", weights=w, second_order=second_order)
    np.testing.assert_allclose(value_w, losses[1] + 2 * losses[3] + 3 * losses[5], rtol=1e-15)
    value_log, _ = meta_loss(opt, phi, task, steps=5, kind="log", weights=w, second_order=second_order)
    np.testing.assert_allclose(value_log, np.log(losses[1]) + 2 * np.log(losses[3]) + 3 * np.log(losses[5]),
                               rtol=1e-15)
    value_h, _ = meta_loss(opt, phi, task, steps=5, kind="heldout", second_order=second_order)
    assert value_h == task.heldout_loss(state["theta"])
    assert abs(value_h - task.loss(state["theta"], 6)) > 0.1
    assert_trees_equal(final, state)


def test_sum_is_the_old_name_of_the_mean_meta_loss():
    opt, phi = phi_of("l2l")
    assert meta_loss(opt, phi, QUADRATIC, steps=3, kind="sum")[0] == meta_loss(opt, phi, QUADRATIC, steps=3)[0]
    from metalstm_np.meta_train import TrainConfig
    assert TrainConfig(meta_loss="sum") == TrainConfig(meta_loss="mean") == TrainConfig()


def test_meta_loss_rejects_unknown_kind_and_bad_weights():
    opt, phi = phi_of("l2l")
    with pytest.raises(ValueError, match="'median'"):
        meta_loss(opt, phi, QUADRATIC, steps=2, kind="median")
    with pytest.raises(ValueError, match="'median'"):
        meta_value_and_grad(opt, phi, QUADRATIC, steps=2, kind="median")
    with pytest.raises(ValueError, match="3 meta-loss weights.*2 steps"):
        meta_loss(opt, phi, QUADRATIC, steps=2, weights=[1.0, 1.0, 1.0])


@pytest.mark.parametrize("second_order", [False, True])
@pytest.mark.parametrize("name", ["l2l", "metalstm"])
def test_meta_value_and_grad_returns_a_state_without_boxes(name, second_order):
    opt, phi = phi_of(name)
    value, g, state = meta_value_and_grad(opt, phi, QUADRATIC, steps=STEPS, second_order=second_order)
    assert not has_box(state) and not has_box(g) and not isinstance(value, Box)
    assert all(isinstance(leaf, (np.ndarray, float, int)) for leaf in leaves(state))
    plain_value, plain_state = meta_loss(opt, phi, QUADRATIC, steps=STEPS)
    assert value == plain_value
    assert_trees_equal(state, plain_state)
    # the next piece starts from it (truncated BPTT) and is the same as the second half of one unroll
    value2, _, state2 = meta_value_and_grad(opt, phi, QUADRATIC, state=state, steps=STEPS, t0=STEPS)
    _, whole = meta_loss(opt, phi, QUADRATIC, steps=2 * STEPS)
    assert_trees_equal(state2, whole)


# ------------------------------------------------------------------------------ meta-gradients


def directions(phi, seed):
    r"""A few random directions in flattened φ: three over all of φ, and one per top-level entry
    (lstm1, W_F, c_0, ...), so that a wrong derivative in one part of φ cannot hide behind a
    larger one elsewhere."""
    x, unflatten = flatten(phi)
    rng = np.random.default_rng(seed)
    dirs = [rng.standard_normal(x.size) for _ in range(3)]
    for key in sorted(phi):
        only_key = {k: flatten(v)[0] * 0.0 + (k == key) for k, v in phi.items()}   # 1 on key, 0 elsewhere
        mask, _ = flatten({k: only_key[k] for k in phi})
        assert mask.size == x.size
        dirs.append(mask * rng.standard_normal(x.size))
    return x, unflatten, dirs


@pytest.mark.parametrize("kind", ["mean", "sum", "log", "heldout"])
@pytest.mark.parametrize("name", ["l2l", "metalstm", "metalstm_theta0"])
def test_second_order_meta_gradient_matches_central_differences(name, kind):
    opt, phi = phi_of(name)
    _, g, _ = meta_value_and_grad(opt, phi, QUADRATIC, steps=STEPS, kind=kind, second_order=True)
    g_flat, _ = flatten(g)
    x, unflatten, dirs = directions(phi, seed=2)
    L = lambda v: meta_loss(opt, unflatten(v), QUADRATIC, steps=STEPS, kind=kind)[0]
    eps = 1e-6
    for d in dirs:
        fd = (L(x + eps * d) - L(x - eps * d)) / (2 * eps)
        np.testing.assert_allclose(g_flat @ d, fd, rtol=1e-5, atol=1e-9)
    assert np.linalg.norm(g_flat) > 1e-3


@pytest.mark.parametrize("kind", ["mean", "sum", "log", "heldout"])
@pytest.mark.parametrize("name", ["l2l", "metalstm", "metalstm_theta0"])
def test_first_order_equals_full_meta_gradient_when_gradient_is_constant(name, kind):
    r"""On L_t(θ) = a·θ + 3 + 0.1 t the Hessian is 0, so dropping ∂∇/∂θ drops nothing."""
    task = linear_task(np.random.default_rng(3), N)
    opt, phi = phi_of(name)
    v1, g1, s1 = meta_value_and_grad(opt, phi, task, steps=STEPS, kind=kind, second_order=False)
    v2, g2, s2 = meta_value_and_grad(opt, phi, task, steps=STEPS, kind=kind, second_order=True)
    assert v1 == v2
    assert_trees_equal(s1, s2)
    f1, f2 = flatten(g1)[0], flatten(g2)[0]
    assert np.linalg.norm(f2) > 1e-3
    np.testing.assert_allclose(f1, f2, rtol=1e-10, atol=1e-12 * np.max(np.abs(f2)))


@pytest.mark.parametrize("kind", ["mean", "sum", "log", "heldout"])
@pytest.mark.parametrize("name", ["l2l", "metalstm", "metalstm_theta0"])
def test_first_order_differs_from_full_meta_gradient_on_the_quadratic(name, kind):
    r"""On the quadratic ∂∇/∂θ = 2WᵀW ≠ 0: the dropped term is measurable (> 1e-3 relative).
    For l2l the output scale is 1 rather than the paper's 0.1: with 0.1 the freshly initialised
    optimizer barely moves θ in 3 steps, and the dropped term is only ~3e-4 of the gradient."""
    opt, phi = phi_of(name)
    if name == "l2l":
        opt = l2l(hidden=(6, 5), output_scale=1.0)
    _, g1, _ = meta_value_and_grad(opt, phi, QUADRATIC, steps=STEPS, kind=kind, second_order=False)
    _, g2, _ = meta_value_and_grad(opt, phi, QUADRATIC, steps=STEPS, kind=kind, second_order=True)
    f1, f2 = flatten(g1)[0], flatten(g2)[0]
    assert np.linalg.norm(f1 - f2) / np.linalg.norm(f2) > 1e-3


# ------------------------------------------------------------------------------ imitation (Chen et al. 2020)

def test_the_teacher_imitating_itself_has_imitation_loss_zero_exactly():
    r"""Adam as the 'student', with the teacher's own hyperparameters, fed the gradients at the
    teacher's iterates: its steps are the teacher's, bit for bit, so the loss is 0.0, and it ends at
    the teacher's last iterate; with another rate the loss is not 0."""
    task = mlp_task(seed=4)
    hyper = {**adam.init_phi(), "lr": 0.03}
    thetas = teacher_trajectory(adam, hyper, task, 6)
    assert thetas.shape == (7, task.theta0.size) and np.all(np.any(np.diff(thetas, axis=0) != 0, axis=1))
    np.testing.assert_array_equal(thetas[0], task.theta0)
    np.testing.assert_array_equal(thetas[-1], unroll(adam, hyper, task, adam.init(hyper, task.theta0), 6)[1]["theta"])
    value, state = imitation_loss(adam, hyper, task, thetas)
    assert value == 0.0
    np.testing.assert_array_equal(state["theta"], thetas[-1])
    assert state["t"] == 6
    assert imitation_loss(adam, {**hyper, "lr": 0.01}, task, thetas)[0] > 0.01


def test_imitation_loss_is_the_relative_squared_error_of_the_steps_along_the_teachers_trajectory():
    r"""Against the formula written out with one-step unrolls of the optimizer from each of the
    teacher's iterates (its own state carried): Σ_t w_t ½ mean((Δθ_t − Δθ^A_t)²) / mean((Δθ^A)²),
    with uniform and with given weights; and two pieces, the state carried, make the whole."""
    task = mlp_task(seed=5)
    opt = rnnprop(hidden=(4,), dense=3, dtype="float64")
    phi = opt.init_phi(np.random.default_rng(6))
    thetas = teacher_trajectory(adam, {**adam.init_phi(), "lr": 0.03}, task, 5)
    state, errors = opt.init(phi, task.theta0), []
    for k in range(5):
        _, state = unroll(opt, phi, task, {**state, "theta": thetas[k]}, 1, t0=k)
        errors.append(0.5 * np.mean((state["theta"] - thetas[k + 1]) ** 2))  # (Δθ_t − Δθ^A_t) = θ_t − θ^A_t
    scale = np.mean(np.diff(thetas, axis=0) ** 2)
    for w in (None, np.array([0.1, 0.1, 0.2, 0.3, 0.3])):
        value, end = imitation_loss(opt, phi, task, thetas, weights=w)
        np.testing.assert_allclose(value, np.dot(np.full(5, 0.2) if w is None else w, errors) / scale, rtol=1e-10)
        np.testing.assert_array_equal(end["theta"], thetas[-1])
    first, middle = imitation_loss(opt, phi, task, thetas[:3])
    second, _ = imitation_loss(opt, phi, task, thetas[2:], middle, t0=2)
    parts = (np.mean(errors[:2]) / np.mean(np.diff(thetas[:3], axis=0) ** 2),
             np.mean(errors[2:]) / np.mean(np.diff(thetas[2:], axis=0) ** 2))
    np.testing.assert_allclose([first, second], parts, rtol=1e-10)


@pytest.mark.parametrize("name", ["l2l", "rnnprop"])
def test_imitation_meta_gradient_matches_central_differences(name):
    r"""Along the teacher's iterates the gradients do not depend on φ, so nothing is dropped: the
    meta-gradient matches central differences of imitation_loss in φ, on the quadratic too."""
    opt = l2l(hidden=(6, 5), output_scale=1.0) if name == "l2l" else rnnprop(hidden=(4, 3), dense=5, dtype="float64")
    phi = opt.init_phi(np.random.default_rng(8))
    thetas = QUADRATIC.theta0 + np.cumsum(np.random.default_rng(9).normal(scale=0.1, size=(STEPS + 1, N)), axis=0)
    thetas[0] = QUADRATIC.theta0
    value, g, state = meta_value_and_grad(opt, phi, QUADRATIC, steps=STEPS, teachers=thetas)
    assert not has_box(state) and value == imitation_loss(opt, phi, QUADRATIC, thetas)[0]
    g_flat, _ = flatten(g)
    x, unflatten, dirs = directions(phi, seed=10)
    L = lambda v: imitation_loss(opt, unflatten(v), QUADRATIC, thetas)[0]
    eps = 1e-6
    for d in dirs:
        fd = (L(x + eps * d) - L(x - eps * d)) / (2 * eps)
        np.testing.assert_allclose(g_flat @ d, fd, rtol=1e-5, atol=1e-9)
    assert np.linalg.norm(g_flat) > 1e-3


def test_imitation_refuses_no_step_to_imitate_and_a_wrong_count():
    task = linear_task(np.random.default_rng(7), N)
    opt, phi = phi_of("l2l")
    with pytest.raises(ValueError, match=r"the teacher's steps are all zero over steps 4..6"):
        imitation_loss(opt, phi, task, np.zeros((4, N)), t0=3)
    with pytest.raises(ValueError, match=r"3 teacher iterates for an unroll of 3 steps \(expected 4\)"):
        meta_value_and_grad(opt, phi, task, steps=3, teachers=np.ones((3, N)))
    with pytest.raises(ValueError, match="2 meta-loss weights for an unroll of 3 steps"):
        imitation_loss(opt, phi, task, np.ones((4, N)), weights=np.ones(2))
