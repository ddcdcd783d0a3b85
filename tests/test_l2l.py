r"""Tests for metalstm_np.l2l, the coordinatewise LSTM optimizer of Andrychowicz et al. 2016:

    θ_{t+1} = θ_t + g_t,  g_t = scale · (w_out · h_t^{(2)} + b_out),  h^{(k)} from two LSTM layers
    fed log_and_sign(∇_t).

Checked against an independent plain-numpy reading of that, by check_grads, for a zero update
from a zeroed output layer, and for coordinatewise sharing.
"""
import numpy as np
import pytest
from autograd.test_util import check_grads

from conftest import (assert_permutation_equivariant, mlp_task, ravel_tree, reference_log_and_sign,
                      reference_lstm_cell, trajectory)
from metalstm_np.l2l import l2l
from metalstm_np.learners import Quadratic

HIDDEN = (4, 3)
N = 7


def gradient(rng, n):
    """Gradients with |∇_k| in [0.2, 2], far from the e^{-p} threshold and from 0."""
    return rng.uniform(0.2, 2.0, n) * rng.choice([-1.0, 1.0], n)


def lively_phi(opt, seed):
    r"""φ with O(1) weights (and b_out ≠ 0), so every derivative is of order one and
    check_grads' absolute tolerance (1e-6) is not vacuous."""
    rng = np.random.default_rng(seed)
    phi = opt.init_phi(rng)
    for k in ("lstm1", "lstm2"):
        phi[k] = {name: rng.uniform(-0.7, 0.7, v.shape) for name, v in phi[k].items()}
    phi["w_out"] = rng.uniform(-1.0, 1.0, phi["w_out"].shape)
    phi["b_out"] = np.array(0.3)
    return phi


def lively_state(opt, phi, seed, n=N):
    """The state after two updates with random gradients, so the LSTM states are not zero."""
    rng = np.random.default_rng(seed)
    state = opt.init(phi, rng.standard_normal(n))
    for _ in range(2):
        state = opt.update(phi, state, gradient(rng, n), 1.0)
    return state


def reference_update(phi, state, g, scale, p=10.0, preprocess="log_sign"):
    x = reference_log_and_sign(g, p) if preprocess == "log_sign" else g.reshape(-1, 1)   # (n, D)
    hs, cs = [], []
    for k, (h, c) in enumerate(zip(state["h"], state["c"])):
        h, c = reference_lstm_cell(phi[f"lstm{k + 1}"], x, h, c)
        hs.append(h)
        cs.append(c)
        x = h
    step = np.array([scale * (float(np.dot(row, phi["w_out"])) + float(phi["b_out"])) for row in x])
    return {"theta": state["theta"] + step, "h": hs, "c": cs}


# ------------------------------------------------------------------------------- structure


def test_init_phi_shapes_and_scales():
    opt = l2l()                                       # the paper: two layers of 20
    phi = opt.init_phi(np.random.default_rng(0))
    assert set(phi) == {"lstm1", "lstm2", "w_out", "b_out"}
    assert phi["lstm1"]["W"].shape == (2 + 20, 20)
    assert phi["lstm2"]["W_o"].shape == (20 + 20, 20)
    assert phi["w_out"].shape == (20,) and np.all(np.abs(phi["w_out"]) <= 0.1 / np.sqrt(20))
    np.testing.assert_array_equal(phi["b_out"], 0.0)
    np.testing.assert_array_equal(phi["lstm1"]["b_f"], 1.0)
    assert opt.learned and opt.config == {"hidden": [20, 20], "p": 10.0, "output_scale": 0.1,
                                          "dtype": "float64", "preprocess": "log_sign"}
    again = opt.init_phi(np.random.default_rng(0))
    np.testing.assert_array_equal(ravel_tree(phi), ravel_tree(again))


def test_init_state_is_zero():
    opt = l2l(hidden=HIDDEN)
    theta0 = np.arange(5.0)
    state = opt.init(opt.init_phi(np.random.default_rng(0)), theta0)
    np.testing.assert_array_equal(state["theta"], theta0)
    assert [h.shape for h in state["h"]] == [(5, 4), (5, 3)]
    assert [c.shape for c in state["c"]] == [(5, 4), (5, 3)]
    np.testing.assert_array_equal(ravel_tree(state["h"] + state["c"]), 0.0)


@pytest.mark.parametrize("p", [10.0, 5.0])
@pytest.mark.parametrize("grad_scale", [1.0, 1e-7, 3e-3])    # log branch, linear branch, either (p)
def test_update_matches_independent_reference(grad_scale, p):
    opt = l2l(hidden=HIDDEN, output_scale=0.3, p=p)
    phi = lively_phi(opt, 1)
    state = lively_state(opt, phi, 2)
    g = grad_scale * gradient(np.random.default_rng(3), N)
    got, ref = opt.update(phi, state, g, 1.0), reference_update(phi, state, g, 0.3, p)
    np.testing.assert_allclose(got["theta"], ref["theta"], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(ravel_tree(got["h"] + got["c"]), ravel_tree(ref["h"] + ref["c"]),
                               rtol=1e-13, atol=1e-15)


def test_raw_preprocessing_feeds_the_gradient_itself():
    """preprocess="raw" (the official code on the quadratics): one input feature, ∇ itself."""
    opt = l2l(hidden=HIDDEN, output_scale=1.0, preprocess="raw")
    assert opt.init_phi(np.random.default_rng(0))["lstm1"]["W"].shape == (1 + HIDDEN[0], HIDDEN[0])
    phi = lively_phi(opt, 21)
    state = lively_state(opt, phi, 22)
    g = 5.0 * gradient(np.random.default_rng(23), N)
    got, ref = opt.update(phi, state, g, 1.0), reference_update(phi, state, g, 1.0, preprocess="raw")
    np.testing.assert_allclose(got["theta"], ref["theta"], rtol=1e-13, atol=1e-15)
    check_grads(lambda phi_: ravel_tree(opt.update(phi_, state, g, 1.0)), modes=["rev"], order=1)(phi)
    with pytest.raises(ValueError, match="'sqrt'"):
        l2l(preprocess="sqrt")


def test_update_ignores_the_loss_and_is_linear_in_output_scale():
    phi = lively_phi(l2l(hidden=HIDDEN), 4)
    state = lively_state(l2l(hidden=HIDDEN), phi, 5)
    g = gradient(np.random.default_rng(6), N)
    a = l2l(hidden=HIDDEN, output_scale=0.1).update(phi, state, g, 1.0)
    b = l2l(hidden=HIDDEN, output_scale=0.1).update(phi, state, g, 123.0)
    np.testing.assert_array_equal(a["theta"], b["theta"])
    c = l2l(hidden=HIDDEN, output_scale=0.4).update(phi, state, g, 1.0)
    # θ_{t+1} − θ_t is recovered to within an ulp of |θ| (≈ 2e-16 here)
    np.testing.assert_allclose(c["theta"] - state["theta"], 4.0 * (a["theta"] - state["theta"]),
                               rtol=1e-14, atol=1e-15)


def test_float32_phi_keeps_theta_float64():
    opt32, opt64 = l2l(hidden=HIDDEN, dtype="float32"), l2l(hidden=HIDDEN)
    phi32 = opt32.init_phi(np.random.default_rng(7))
    assert all(leaf.dtype == np.float32 for leaf in [*phi32["lstm1"].values(), phi32["w_out"], phi32["b_out"]])
    phi64 = opt64.init_phi(np.random.default_rng(7))
    np.testing.assert_array_equal(phi32["w_out"], phi64["w_out"].astype(np.float32))
    task = Quadratic(dim=6).sample(np.random.default_rng(8))
    th32, _, state = trajectory(opt32, phi32, task, 3)
    th64, _, _ = trajectory(opt64, phi64, task, 3)
    assert th32.dtype == np.float64 and state["h"][0].dtype == np.float32
    np.testing.assert_allclose(th32, th64, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("order", [1, 2])
def test_check_grads_update_wrt_phi(order):
    opt = l2l(hidden=HIDDEN)
    phi = lively_phi(opt, 9)
    state = lively_state(opt, phi, 10)
    g = gradient(np.random.default_rng(11), N)
    check_grads(lambda phi_: ravel_tree(opt.update(phi_, state, g, 1.0)), modes=["rev"], order=order)(phi)


@pytest.mark.parametrize("order", [1, 2])
def test_check_grads_update_wrt_state_and_gradient(order):
    opt = l2l(hidden=HIDDEN)
    phi = lively_phi(opt, 12)
    state = lively_state(opt, phi, 13)
    g = gradient(np.random.default_rng(14), N)
    check_grads(lambda s: ravel_tree(opt.update(phi, s, g, 1.0)), modes=["rev"], order=order)(state)
    check_grads(lambda g_: ravel_tree(opt.update(phi, state, g_, 1.0)), modes=["rev"], order=order)(g)


# ------------------------------------------------------------------------------- coordinatewise


def test_zeroed_output_layer_gives_zero_update():
    r"""w_out = 0, b_out = 0: g_t = 0 for every t, so θ stays θ^0 exactly while the LSTM runs."""
    opt = l2l()
    phi = opt.init_phi(np.random.default_rng(15))
    phi["w_out"], phi["b_out"] = np.zeros_like(phi["w_out"]), np.zeros_like(phi["b_out"])
    for task in (Quadratic(dim=10).sample(np.random.default_rng(16)), mlp_task((3,), 0)):
        thetas, losses, state = trajectory(opt, phi, task, 5)
        np.testing.assert_array_equal(thetas, np.tile(task.theta0, (6, 1)))
        assert np.max(np.abs(state["h"][1])) > 1e-3                 # the LSTM did run
    np.testing.assert_array_equal(losses[1:], [task.loss(task.theta0, t) for t in range(2, 7)])


def test_one_phi_runs_on_learners_of_different_sizes():
    r"""The same φ on a 5- and a 13-dimensional quadratic; and coordinates are independent: the
    first 5 coordinates of a 13-dimensional update, fed the same ∇, are the 5-dimensional update."""
    opt = l2l(hidden=HIDDEN)
    phi = lively_phi(opt, 17)
    for dim in (5, 13):
        thetas, losses, state = trajectory(opt, phi, Quadratic(dim=dim).sample(np.random.default_rng(dim)), 4)
        assert thetas.shape == (5, dim) and np.all(np.isfinite(losses))
        assert state["h"][1].shape == (dim, 3)
        assert np.max(np.abs(thetas[-1] - thetas[0])) > 1e-2
    small = lively_state(opt, phi, 18, n=5)
    rest = lively_state(opt, phi, 19, n=8)
    big = {"theta": np.concatenate([small["theta"], rest["theta"]]),
           "h": [np.concatenate([a, b]) for a, b in zip(small["h"], rest["h"])],
           "c": [np.concatenate([a, b]) for a, b in zip(small["c"], rest["c"])]}
    g = gradient(np.random.default_rng(20), 13)
    got_small, got_big = opt.update(phi, small, g[:5], 1.0), opt.update(phi, big, g, 7.0)
    np.testing.assert_allclose(got_big["theta"][:5], got_small["theta"], rtol=1e-15, atol=1e-17)
    for a, b in zip(got_big["h"] + got_big["c"], got_small["h"] + got_small["c"]):
        np.testing.assert_allclose(a[:5], b, rtol=1e-15, atol=1e-17)


def test_permuting_coordinates_permutes_the_updates():
    opt = l2l(hidden=HIDDEN)
    assert_permutation_equivariant(opt, lively_phi(opt, 21), seed=22)


def test_quadratics_side_by_side_train_like_a_batch_of_tasks():
    r"""On Quadratic(count=K) the coordinatewise LSTM takes, block by block, the steps it takes on
    each of the K quadratics alone (raw gradients, output scale 1: E1's optimizer), and the
    meta-gradient of the task is the sum of theirs: one task of K quadratics is a batch of K."""
    from test_learners import _quadratics_side_by_side
    from metalstm_np.unroll import meta_value_and_grad

    opt = l2l(hidden=HIDDEN, preprocess="raw", output_scale=1.0, dtype="float64")
    phi = lively_phi(opt, 21)
    task, singles = _quadratics_side_by_side(3, 4, seed=22)
    thetas, losses, _ = trajectory(opt, phi, task, 6)
    alone = [trajectory(opt, phi, single, 6) for single in singles]
    np.testing.assert_allclose(thetas, np.concatenate([a[0] for a in alone], axis=1), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(losses, sum(a[1] for a in alone), rtol=1e-11)
    assert np.max(np.abs(thetas[-1] - thetas[0])) > 1e-2
    value, g, _ = meta_value_and_grad(opt, phi, task, steps=6)
    parts = [meta_value_and_grad(opt, phi, single, steps=6) for single in singles]
    np.testing.assert_allclose(value, sum(p[0] for p in parts), rtol=1e-11)
    np.testing.assert_allclose(ravel_tree(g), sum(ravel_tree(p[1]) for p in parts), rtol=1e-9, atol=1e-12)
