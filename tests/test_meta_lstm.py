r"""Tests for metalstm_np.meta_lstm (Ravi & Larochelle 2017):

* with its gates fixed, z^f = 1 and z^i = η, the cell update θ_t = z^f ⊙ θ_{t−1} + z^i ⊙ (−∇_t) is
  gradient descent bit for bit, and z^f = 1 − ηλ is gradient descent with weight decay λ;
* the learned update matches an independent plain-numpy reading of eq. 2–4;
* check_grads on the update with respect to φ and to the state;
* coordinatewise sharing: one φ on learners of any size, equivariant under permutations.
"""
import numpy as np
import pytest
from autograd import grad, hessian
from autograd.test_util import check_grads
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit

from conftest import (assert_permutation_equivariant, mlp_task, ravel_tree, reference_log_and_sign,
                      reference_lstm_cell, trajectory)
from metalstm_np.learners import Quadratic
from metalstm_np.meta_lstm import cell_state_update, gradient_descent_lstm, meta_lstm
from metalstm_np.optimizers import sgd

STEPS = 12
QUADRATIC = Quadratic(dim=10).sample(np.random.default_rng(0))


def mlp():
    return mlp_task(hidden=(3,), seed=0)


def sgd_trajectory(task, eta, lam=0.0, steps=STEPS):
    return trajectory(sgd, {"lr": eta, "weight_decay": lam}, task, steps)


def assert_same_run(a, b):
    (th_a, l_a, _), (th_b, l_b, _) = a, b
    assert np.any(th_a[-1] != th_a[0])
    np.testing.assert_array_equal(th_a, th_b)
    np.testing.assert_array_equal(l_a, l_b)


# ------------------------------------------------------------------- fixed gates = gradient descent

ETA = st.floats(1e-4, 1.0)


@pytest.mark.parametrize("task", [QUADRATIC, None], ids=["quadratic", "mlp"])
@settings(max_examples=20, deadline=None)
@given(eta=ETA)
def test_fixed_gates_are_sgd_bit_for_bit(task, eta):
    task = task or mlp()
    gd = gradient_descent_lstm(z_f=1.0, z_i=eta)
    assert_same_run(trajectory(gd, gd.init_phi(), task, STEPS), sgd_trajectory(task, eta))


@pytest.mark.parametrize("task", [QUADRATIC, None], ids=["quadratic", "mlp"])
@settings(max_examples=20, deadline=None)
@given(eta=ETA)
def test_fixed_gate_arrays_are_sgd_bit_for_bit(task, eta):
    """z^f and z^i as arrays of one value per coordinate, all equal."""
    task = task or mlp()
    n = task.theta0.size
    gd = gradient_descent_lstm(z_f=np.ones(n), z_i=np.full(n, eta))
    assert_same_run(trajectory(gd, gd.init_phi(), task, STEPS), sgd_trajectory(task, eta))


@pytest.mark.parametrize("task", [QUADRATIC, None], ids=["quadratic", "mlp"])
@settings(max_examples=20, deadline=None)
@given(eta=ETA, lam=st.floats(0.0, 1.0), arrays=st.booleans())
def test_forget_gate_one_minus_eta_lambda_is_weight_decay_bit_for_bit(task, eta, lam, arrays):
    task = task or mlp()
    n = task.theta0.size
    z_f, z_i = 1.0 - eta * lam, eta
    if arrays:
        z_f, z_i = np.full(n, z_f), np.full(n, z_i)
    gd = gradient_descent_lstm(z_f=z_f, z_i=z_i)
    assert_same_run(trajectory(gd, gd.init_phi(), task, STEPS), sgd_trajectory(task, eta, lam))


def assert_close_to_textbook(thetas, reference):
    r"""rtol 1e-12, plus an absolute 1e-14 · max_k |θ_{t,k}| per step t: a coordinate that the step
    brings near 0 (θ − η∇ − ηλθ cancelling) is only known to a few ulps of the others."""
    assert thetas.shape == reference.shape
    for t, (row, ref) in enumerate(zip(thetas, reference)):
        np.testing.assert_allclose(row, ref, rtol=1e-12, atol=1e-14 * np.max(np.abs(ref)), err_msg=f"step {t}")


def textbook_weight_decay(task, eta, lam, steps=STEPS):
    r"""θ_t = θ_{t−1} − η(∇_t + λθ_{t−1}), ∇_t = ∇f_t(θ_{t−1})."""
    theta, thetas = task.theta0, [task.theta0]
    for t in range(1, steps + 1):
        theta = theta - eta * (grad(task.loss)(theta, t) + lam * theta)
        thetas.append(theta)
    return np.array(thetas)


@settings(max_examples=20, deadline=None)
@given(eta=ETA, lam=st.floats(0.0, 1.0))
def test_weight_decay_matches_textbook_form_mlp(eta, lam):
    r"""(When ηλ ≈ 1 the textbook form cancels θ against ηλθ: the absolute tolerance matters.)"""
    gd = gradient_descent_lstm(z_f=1.0 - eta * lam, z_i=eta)
    thetas, _, _ = trajectory(gd, gd.init_phi(), mlp(), STEPS)
    assert_close_to_textbook(thetas, textbook_weight_decay(mlp(), eta, lam))


@settings(max_examples=20, deadline=None)
@given(eta=st.floats(1e-4, 1.0 / 64), lam=st.floats(0.0, 1.0))
def test_weight_decay_matches_textbook_form_quadratic(eta, lam):
    r"""η ≤ 1/64 keeps gradient descent stable on this quadratic (largest Hessian eigenvalue < 64
    + λ), so rounding differences between the two forms are not amplified step after step."""
    assert np.linalg.eigvalsh(hessian(QUADRATIC.heldout_loss)(QUADRATIC.theta0)).max() < 64
    gd = gradient_descent_lstm(z_f=1.0 - eta * lam, z_i=eta)
    thetas, _, _ = trajectory(gd, gd.init_phi(), QUADRATIC, STEPS)
    assert_close_to_textbook(thetas, textbook_weight_decay(QUADRATIC, eta, lam))


def test_cell_state_update_is_eq2():
    theta, g = np.array([1.0, -2.0, 3.0]), np.array([0.5, 0.25, -1.0])
    z_f, z_i = np.array([1.0, 0.5, 0.0]), np.array([0.0, 2.0, 0.125])
    np.testing.assert_array_equal(cell_state_update(theta, g, z_f, z_i), [1.0, -1.5, 0.125])


def test_gradient_descent_lstm_learned_theta0():
    gd = gradient_descent_lstm(z_f=1.0, z_i=0.1, learn_theta0=True, n_params=10)
    assert gd.learned
    phi = gd.init_phi(np.random.default_rng(3))
    np.testing.assert_array_equal(phi["c_0"], 0.01 * np.random.default_rng(3).standard_normal(10))
    state = gd.init(phi, QUADRATIC.theta0)
    np.testing.assert_array_equal(state["theta"], phi["c_0"])
    with pytest.raises(ValueError, match="learn_theta0"):
        gradient_descent_lstm(learn_theta0=True)
    with pytest.raises(ValueError, match=r"\(10,\).*\(4,\)"):
        gd.init(phi, np.zeros(4))


# ------------------------------------------------------------------- the learned meta-LSTM

H = 5
N = 7


def lively_phi(opt, seed):
    r"""φ with O(1) weights and unsaturated gates (b^F = 0.5, b^I = −0.5), so every derivative
    is of order one and check_grads' absolute tolerance (1e-6) is not vacuous."""
    rng = np.random.default_rng(seed)
    phi = opt.init_phi(rng)
    phi["lstm1"] = {k: rng.uniform(-0.5, 0.5, v.shape) for k, v in phi["lstm1"].items()}
    phi["W_F"], phi["W_I"] = rng.uniform(-0.5, 0.5, H + 2), rng.uniform(-0.5, 0.5, H + 2)
    phi["b_F"], phi["b_I"] = np.array(0.5), np.array(-0.5)
    return phi


def lively_state(opt, phi, seed, n=N):
    """The state after two updates with random O(1) gradients, so h, c, z^f, z^i are not zero."""
    rng = np.random.default_rng(seed)
    state = opt.init(phi, rng.standard_normal(n))
    for _ in range(2):
        state = opt.update(phi, state, gradient(rng, n), 2.0 + rng.uniform())
    return state


def gradient(rng, n):
    """Gradients with |∇_k| in [0.2, 2], far from the e^{-p} threshold and from 0."""
    return rng.uniform(0.2, 2.0, n) * rng.choice([-1.0, 1.0], n)


def reference_update(phi, state, g, loss, p=10.0):
    r"""Eq. 2–4 read independently: x_t = LSTM([las(∇_t), las(L_t)]), then per coordinate k
    z^f_k = σ(W^F·[x_k, θ_k, z^f_{k,t−1}] + b^F), z^i likewise, θ_k ← z^f_k θ_k − z^i_k ∇_k."""
    n = g.size
    inputs = np.hstack([reference_log_and_sign(g, p), np.tile(reference_log_and_sign(loss, p), (n, 1))])
    h, c = reference_lstm_cell(phi["lstm1"], inputs, state["h"], state["c"])
    theta = np.array(state["theta"])
    z_f, z_i, new = np.empty(n), np.empty(n), np.empty(n)
    for k in range(n):
        z_f[k] = expit(h[k] @ phi["W_F"][:H] + theta[k] * phi["W_F"][H] + state["z_f"][k] * phi["W_F"][H + 1]
                       + phi["b_F"])
        z_i[k] = expit(h[k] @ phi["W_I"][:H] + theta[k] * phi["W_I"][H] + state["z_i"][k] * phi["W_I"][H + 1]
                       + phi["b_I"])
        new[k] = z_f[k] * theta[k] - z_i[k] * g[k]
    return {"theta": new, "h": h, "c": c, "z_f": z_f, "z_i": z_i}


def test_init_phi_as_in_the_papers_code():
    opt = meta_lstm(hidden=H)
    phi = opt.init_phi(np.random.default_rng(0))
    assert set(phi) == {"lstm1", "W_F", "b_F", "W_I", "b_I"}
    assert phi["lstm1"]["W"].shape == (4 + H, H) and phi["lstm1"]["b_f"].shape == (H,)
    assert phi["W_F"].shape == phi["W_I"].shape == (H + 2,)
    for w in [*phi["lstm1"].values(), phi["W_F"], phi["W_I"]]:
        assert np.all(np.abs(w) <= 0.01)
    assert 4.0 <= phi["b_F"] <= 5.0 and -5.0 <= phi["b_I"] <= -4.0
    assert opt.learned and opt.name == "metalstm"


def test_starts_close_to_gradient_descent():
    r"""At initialisation z^f ∈ σ([4, 5]) ± a little and z^i ∈ σ([−5, −4]) ± a little, and θ_1 is
    eq. 2 with those gates."""
    opt = meta_lstm(hidden=20)
    phi = opt.init_phi(np.random.default_rng(1))
    rng = np.random.default_rng(2)
    theta0, g = 0.01 * rng.standard_normal(N), gradient(rng, N)
    state = opt.update(phi, opt.init(phi, theta0), g, 3.0)
    slack = 0.01 * 22                                  # |W·[x, θ, z]| <= 0.01 · ||[x, θ, z]||_1 <= 0.22
    assert np.all((expit(4.0 - slack) <= state["z_f"]) & (state["z_f"] <= expit(5.0 + slack)))
    assert np.all((expit(-5.0 - slack) <= state["z_i"]) & (state["z_i"] <= expit(-4.0 + slack)))
    np.testing.assert_array_equal(state["theta"], state["z_f"] * theta0 - state["z_i"] * g)


@pytest.mark.parametrize("p", [10.0, 5.0])
@pytest.mark.parametrize("loss", [3.7, 2e-6, -0.4])
def test_update_matches_independent_reference(loss, p):
    opt = meta_lstm(hidden=H, p=p)
    phi = lively_phi(opt, 0)
    state = lively_state(opt, phi, 1)
    g = gradient(np.random.default_rng(2), N)
    g[0], g[1] = 1e-7, 3e-3                             # below e^{-10}; between e^{-10} and e^{-5}
    got = opt.update(phi, state, g, loss)
    ref = reference_update(phi, state, g, loss, p)
    for key in ("theta", "h", "c", "z_f", "z_i"):
        np.testing.assert_allclose(got[key], ref[key], rtol=1e-13, atol=1e-15, err_msg=key)


def test_learned_theta0():
    opt = meta_lstm(hidden=H, learn_theta0=True, n_params=N)
    phi = opt.init_phi(np.random.default_rng(4))
    np.testing.assert_array_equal(phi["c_0"].shape, (N,))
    assert 0.0 < np.std(phi["c_0"]) < 0.05
    state = opt.init(phi, np.zeros(N))
    np.testing.assert_array_equal(state["theta"], phi["c_0"])
    custom = meta_lstm(hidden=H, learn_theta0=True, n_params=N, theta0_init=lambda rng: np.arange(float(N)))
    np.testing.assert_array_equal(custom.init_phi(np.random.default_rng(0))["c_0"], np.arange(float(N)))
    with pytest.raises(ValueError, match=r"\(7,\).*\(3,\)"):
        opt.init(phi, np.zeros(3))
    with pytest.raises(ValueError, match="n_params"):
        meta_lstm(learn_theta0=True)


@pytest.mark.parametrize("learn_theta0", [False, True])
def test_check_grads_update_wrt_phi(learn_theta0):
    opt = meta_lstm(hidden=H, learn_theta0=learn_theta0, n_params=N)
    phi = lively_phi(opt, 5)
    state = lively_state(opt, phi, 6)
    g = gradient(np.random.default_rng(7), N)
    f = lambda phi_: ravel_tree(opt.update(phi_, state, g, 2.5))
    check_grads(f, modes=["rev"], order=2)(phi)
    if learn_theta0:      # c_0 enters through init: check init + two updates
        f0 = lambda phi_: ravel_tree(opt.update(phi_, opt.update(phi_, opt.init(phi_, np.zeros(N)), g, 2.5), -g, 2.0))
        check_grads(f0, modes=["rev"], order=1)(phi)


def test_check_grads_update_wrt_state_gradient_and_loss():
    opt = meta_lstm(hidden=H)
    phi = lively_phi(opt, 8)
    state = lively_state(opt, phi, 9)
    g = gradient(np.random.default_rng(10), N)
    check_grads(lambda s: ravel_tree(opt.update(phi, s, g, 2.5)), modes=["rev"], order=2)(state)
    check_grads(lambda g_: ravel_tree(opt.update(phi, state, g_, 2.5)), modes=["rev"], order=2)(g)
    check_grads(lambda L: ravel_tree(opt.update(phi, state, g, L)), modes=["rev"], order=2)(2.5)


# ------------------------------------------------------------------- coordinatewise sharing


def test_one_phi_runs_on_learners_of_different_sizes():
    r"""The same φ drives a 5- and a 13-dimensional learner; the first 5 coordinates of the
    13-dimensional update, fed the same θ, ∇ and L, are the 5-dimensional update."""
    opt = meta_lstm(hidden=H)
    phi = lively_phi(opt, 11)
    for dim in (5, 13):
        thetas, losses, state = trajectory(opt, phi, Quadratic(dim=dim).sample(np.random.default_rng(dim)), 4)
        assert thetas.shape == (5, dim) and np.all(np.isfinite(losses))
        assert state["h"].shape == (dim, H)
    rng = np.random.default_rng(12)
    small = lively_state(opt, phi, 13, n=5)
    big_extra = lively_state(opt, phi, 14, n=8)
    big = {k: np.concatenate([small[k], big_extra[k]]) for k in small}
    g = gradient(rng, 13)
    got_small = opt.update(phi, small, g[:5], 1.5)
    got_big = opt.update(phi, big, g, 1.5)
    for k in got_small:
        np.testing.assert_allclose(got_big[k][:5], got_small[k], rtol=1e-15, atol=1e-17, err_msg=k)


def test_permuting_coordinates_permutes_the_updates():
    opt = meta_lstm(hidden=H)
    assert_permutation_equivariant(opt, lively_phi(opt, 15), seed=16)
