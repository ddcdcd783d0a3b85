r"""Tests for metalstm_np.rnnprop (Lv, Jiang & Li 2017) and the two task remedies of learners.py:
the moment inputs against a plain reading of their equations and for scale invariance, the bounded
step's bound, the nominal Adam term against Adam, the hypergradient bound against its rule, check_grads, a zero update from a zero output
layer, save/load, and the randomly scaled and square-combined tasks against the functions they are
defined as."""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad as autograd_grad
from autograd.test_util import check_grads
from conftest import mlp_task, ravel_tree, trajectory
from hypothesis import given, settings
from hypothesis import strategies as st

from metalstm_np.learners import PlusSquare, Quadratic, RandomlyScaled
from metalstm_np.optimizers import adam
from metalstm_np.rnnprop import (bounded_step, elu, hypergradient_step, moment_features, rnnprop,
                                 timescale_features)
from metalstm_np.serialization import load_phi, save_phi

N = 6


def lively(opt, seed):
    """φ with O(1) weights and the state after two updates, so no derivative is trivially zero."""
    rng = np.random.default_rng(seed)
    phi = opt.init_phi(rng)
    phi = {k: ({n: rng.uniform(-0.7, 0.7, v.shape) for n, v in p.items()} if isinstance(p, dict)
               else rng.uniform(-0.7, 0.7, np.shape(p))) for k, p in phi.items()}
    state = opt.init(phi, rng.standard_normal(N))
    for _ in range(2):
        state = opt.update(phi, state, rng.standard_normal(N), 1.0)
    return phi, state


def test_moment_features_follow_their_equations():
    rng = np.random.default_rng(0)
    grads = rng.standard_normal((4, N))
    m, v = np.zeros(N), np.zeros(N)
    ref_m, ref_v = np.zeros(N), np.zeros(N)
    for t, g in enumerate(grads, start=1):
        x, m, v = moment_features(g, m, v, t, 0.9, 0.8, 1e-8)
        ref_m, ref_v = 0.9 * ref_m + 0.1 * g, 0.8 * ref_v + 0.2 * g ** 2
        s = np.sqrt(ref_v / (1 - 0.8 ** t)) + 1e-8
        np.testing.assert_allclose(x[:, 0], g / s, rtol=1e-14)
        np.testing.assert_allclose(x[:, 1], ref_m / (1 - 0.9 ** t) / s, rtol=1e-14)
    x1, _, _ = moment_features(grads[0], np.zeros(N), np.zeros(N), 1, 0.95, 0.95, 0.0)
    np.testing.assert_allclose(x1, np.sign(grads[0])[:, None] * np.ones(2), rtol=1e-14)   # t = 1: ±1


def test_timescale_features_follow_their_equations():
    """m^(k)_t = β_k m^(k)_{t−1} + (1 − β_k) ∇_t, ratios m̂^(k)_t / (√v̂_t + ε); a β_k equal to β1 gives
    the second moment input exactly."""
    rng = np.random.default_rng(20)
    betas = (0.5, 0.9, 0.99)
    ms, m, v = np.zeros((N, 3)), np.zeros(N), np.zeros(N)
    ref = np.zeros((N, 3))
    for t, g in enumerate(rng.standard_normal((5, N)), start=1):
        x, m, v = moment_features(g, m, v, t, 0.9, 0.8, 1e-8)
        columns, ms = timescale_features(g, ms, v, t, betas, 0.8, 1e-8)
        s = np.sqrt(v / (1 - 0.8 ** t)) + 1e-8
        for k, b in enumerate(betas):
            ref[:, k] = b * ref[:, k] + (1 - b) * g
            np.testing.assert_allclose(columns[:, k], ref[:, k] / (1 - b ** t) / s, rtol=1e-13)
        np.testing.assert_array_equal(columns[:, 1], x[:, 1])                  # β_k = β1


def test_with_timescales_whose_weights_are_zero_it_is_rnnprop():
    """The new inputs enter through their own rows of W_in: zero rows give RNNprop's trajectory
    exactly; nonzero ones change it, so the columns are fed."""
    plain = rnnprop(hidden=(4,), dense=3, dtype="float64")
    more = rnnprop(hidden=(4,), dense=3, timescales=(0.5, 0.99), dtype="float64")
    phi = plain.init_phi(np.random.default_rng(21))
    wider = {**phi, "w_in": np.concatenate([phi["w_in"], np.zeros((2, 3))])}
    assert more.init_phi(np.random.default_rng(21))["w_in"].shape == (4, 3)
    task = Quadratic(N).sample(np.random.default_rng(22))
    a, _, _ = trajectory(plain, phi, task, 8)
    b, _, _ = trajectory(more, wider, task, 8)
    np.testing.assert_array_equal(a, b)
    wider["w_in"][2:] = 0.5
    c, _, _ = trajectory(more, wider, task, 8)
    assert not np.allclose(a, c)


def test_check_grads_with_timescales():
    opt = rnnprop(hidden=(4, 3), dense=5, timescales=(0.5, 0.99), hypergradient=0.2, dtype="float64")
    phi, state = lively(opt, 23)
    assert state["ms"].shape == (N, 2)
    g = np.random.default_rng(24).standard_normal(N)
    check_grads(lambda phi_: ravel_tree(opt.update(phi_, state, g, 1.0)), modes=["rev"], order=1)(phi)
    check_grads(lambda g_: ravel_tree(opt.update(phi, state, g_, 1.0)), modes=["rev"], order=1)(g)


def test_the_moment_inputs_and_so_the_trajectory_do_not_depend_on_the_scale_of_the_loss():
    """On λ f the moment inputs are those on f (up to ε), so RNNprop takes the same steps; the
    log/sign input sees log λ and does not."""
    task = Quadratic(N).sample(np.random.default_rng(1))
    scaled = type(task)(task.theta0, lambda theta, t: 1000.0 * task.loss(theta, t), task.heldout_loss)
    for inputs, same in (("moments", True), ("log_sign", False)):
        opt = rnnprop(hidden=(4,), dense=3, inputs=inputs, dtype="float64")
        phi = opt.init_phi(np.random.default_rng(2))
        a, _, _ = trajectory(opt, phi, task, 10)
        b, _, _ = trajectory(opt, phi, scaled, 10)
        assert np.allclose(a, b, rtol=0, atol=1e-9) == same


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=20), st.floats(1e-3, 10.0))
def test_the_bounded_step_never_exceeds_alpha(outputs, alpha):
    a = np.array(outputs)
    assert np.all(np.abs(bounded_step(a, alpha)) <= alpha)
    np.testing.assert_array_equal(bounded_step(a, alpha, bounded=False), alpha * a)


def test_elu_and_its_derivative_are_finite_far_out():
    a = np.array([-1e4, -1.0, 0.0, 2.0, 1e4])
    np.testing.assert_allclose(elu(a), [-1.0, np.expm1(-1.0), 0.0, 2.0, 1e4], rtol=1e-15)
    d = [autograd_grad(lambda x: elu(x))(float(x)) for x in a]
    assert np.all(np.isfinite(d)) and d[-1] == 1.0 and d[1] == pytest.approx(np.exp(-1.0))


@pytest.mark.parametrize("inputs, bounded, nominal, hypergradient", [
    ("moments", True, 0.0, 0.0), ("log_sign", False, 0.0, 0.0), ("moments", True, 0.03, 0.0),
    ("moments", True, 0.0, 0.3), ("log_sign", False, 0.0, 0.3)])
def test_check_grads_update_wrt_phi_and_gradient(inputs, bounded, nominal, hypergradient):
    opt = rnnprop(hidden=(4, 3), dense=5, inputs=inputs, bounded=bounded, nominal=nominal,
                  hypergradient=hypergradient, dtype="float64")
    phi, state = lively(opt, 3)
    g = np.random.default_rng(4).standard_normal(N)
    check_grads(lambda phi_: ravel_tree(opt.update(phi_, state, g, 1.0)), modes=["rev"], order=1)(phi)
    check_grads(lambda g_: ravel_tree(opt.update(phi, state, g_, 1.0)), modes=["rev"], order=1)(g)


@pytest.mark.parametrize("inputs, bounded", [("moments", True), ("log_sign", False)])
def test_check_grads_through_the_adapted_bound(inputs, bounded):
    """Two updates from the initial state, as a function of φ: the second one's α_2 depends on φ
    through d_1, the path by which the meta-gradient reaches φ through the hypergradient rule."""
    opt = rnnprop(hidden=(4, 3), dense=5, inputs=inputs, bounded=bounded, hypergradient=0.3, dtype="float64")
    phi, _ = lively(opt, 15)
    rng = np.random.default_rng(16)
    theta0, grads = rng.standard_normal(N), rng.standard_normal((2, N))

    def two_updates(phi_):
        state = opt.init(phi_, theta0)
        for g in grads:
            state = opt.update(phi_, state, g, 1.0)
        return anp.concatenate([state["theta"], anp.reshape(state["alpha"], 1)])   # autograd's numpy
    check_grads(two_updates, modes=["rev"], order=1)(phi)


def test_a_zero_output_layer_gives_a_zero_update_and_the_moments_still_move():
    opt = rnnprop(hidden=(4,), dense=3, dtype="float64")
    phi, state = lively(opt, 5)
    phi = {**phi, "w_out": np.zeros_like(phi["w_out"]), "b_out": np.zeros(())}
    g = np.random.default_rng(6).standard_normal(N)
    new = opt.update(phi, state, g, 1.0)
    np.testing.assert_array_equal(new["theta"], state["theta"])
    assert new["t"] == state["t"] + 1 and not np.array_equal(new["m"], state["m"])


def test_with_a_zero_output_layer_the_nominal_term_is_adam_exactly():
    """nominal=η and w_out = b_out = 0: the learned step is 0, and the trajectory on an MLP is Adam's
    at rate η with β1 = β2 = 0.95, to rounding (the inputs compute (1 − β2) ∇ ∇ as ((1 − β2) ∇) ∇, Adam
    as (1 − β2) ∇², 1e-16 apart); with the output layer on, the learned step is added."""
    opt = rnnprop(hidden=(4,), dense=3, nominal=0.03, eps=1e-8)
    phi = opt.init_phi(np.random.default_rng(8))
    silent = {**phi, "w_out": np.zeros_like(phi["w_out"]), "b_out": np.zeros((), phi["b_out"].dtype)}
    task = mlp_task()
    ours, _, _ = trajectory(opt, silent, task, 8)
    theirs, _, _ = trajectory(adam, {"lr": 0.03, "beta1": 0.95, "beta2": 0.95, "eps": 1e-8}, task, 8)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=0)
    learned, _, _ = trajectory(opt, phi, task, 8)
    assert not np.allclose(learned, theirs)


def test_the_nominal_step_is_adams():
    """With a zero output layer one update moves θ by −η m̂_t / (√v̂_t + ε), from its own m_t, v_t, t."""
    opt = rnnprop(hidden=(4,), dense=3, beta1=0.9, beta2=0.99, nominal=0.5, dtype="float64")
    phi, state = lively(opt, 10)
    phi = {**phi, "w_out": np.zeros_like(phi["w_out"]), "b_out": np.zeros(())}
    new = opt.update(phi, state, np.random.default_rng(11).standard_normal(N), 1.0)
    t, m, v = new["t"], new["m"], new["v"]
    step = 0.5 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.99**t)) + 1e-8)
    np.testing.assert_allclose(state["theta"] - new["theta"], step, rtol=1e-12)


def test_hypergradient_step_is_the_multiplicative_rule():
    """α_t = α_{t−1} (1 + β cos(∇_t, d_{t−1})), cos of the two vectors; no change while d = 0."""
    rng = np.random.default_rng(12)
    g, d = rng.standard_normal(N), rng.standard_normal(N)
    cosine = g @ d / (np.linalg.norm(g) * np.linalg.norm(d))
    assert hypergradient_step(0.1, g, d, 0.2) == pytest.approx(0.1 * (1 + 0.2 * cosine), rel=1e-14)
    assert hypergradient_step(0.1, g, g, 0.2) == pytest.approx(0.1 * 1.2, rel=1e-14)      # along the last step
    assert hypergradient_step(0.1, g, -g, 0.2) == pytest.approx(0.1 * 0.8, rel=1e-14)     # turned back
    assert hypergradient_step(0.1, g, np.zeros(N), 0.2) == 0.1
    assert np.isfinite(autograd_grad(lambda d_: hypergradient_step(0.1, g, d_, 0.2))(np.zeros(N))).all()


def test_with_hypergradient_the_first_step_is_rnnprops_and_later_ones_use_the_adapted_bound():
    """β > 0: α_1 = α (d_0 = 0), so the first update is RNNprop's; update t is RNNprop's with α
    replaced by α_t = α_{t−1} (1 + β cos(∇_t, d_{t−1})), d_{t−1} = tanh(output) of the previous one.
    Exactly in float64; in float32 RNNprop rounds α tanh(·) to float32 and this α_t · tanh(·) in
    float64, a relative 1e-7 apart."""
    adaptive = rnnprop(hidden=(4,), dense=3, step=0.1, hypergradient=0.4, dtype="float64")
    phi = adaptive.init_phi(np.random.default_rng(13))
    rng = np.random.default_rng(14)
    theta0, grads = rng.standard_normal(N), rng.standard_normal((3, N))
    state = adaptive.init(phi, theta0)
    fixed = rnnprop(hidden=(4,), dense=3, step=0.1, dtype="float64")
    plain = fixed.init(phi, theta0)
    alpha = 0.1
    for t, g in enumerate(grads, 1):
        new = adaptive.update(phi, state, g, 1.0)
        alpha = hypergradient_step(alpha, g, state["direction"], 0.4)
        assert new["alpha"] == alpha and (t > 1 or alpha == 0.1)
        same = rnnprop(hidden=(4,), dense=3, step=alpha, dtype="float64").update(phi, {**plain, **{
            k: state[k] for k in ("theta", "m", "v", "t", "h", "c")}}, g, 1.0)
        np.testing.assert_array_equal(new["theta"], same["theta"])
        np.testing.assert_allclose(new["direction"], (state["theta"] - new["theta"]) / alpha, rtol=1e-10)
        state = new
    assert state["alpha"] != 0.1


def test_saved_and_loaded_with_its_options(tmp_path):
    for opt in (rnnprop(hidden=(4,), inputs="log_sign", bounded=False, step=0.05), rnnprop(nominal=0.02),
                rnnprop(hypergradient=0.05), rnnprop(timescales=(0.5, 0.99))):
        phi = opt.init_phi(np.random.default_rng(7))
        save_phi(tmp_path / "w.npz", opt, phi)
        loaded, phi2, _ = load_phi(tmp_path / "w.npz", expect="rnnprop")
        assert loaded.config == opt.config and loaded.config["bounded"] is opt.config["bounded"]
        np.testing.assert_array_equal(ravel_tree(phi), ravel_tree(phi2))
        if opt.config["inputs"] == "log_sign":
            assert loaded.config["bounded"] is False
        if opt.config["hypergradient"]:
            assert loaded.config["hypergradient"] == 0.05
    assert loaded.config["timescales"] == [0.5, 0.99] and loaded.init_phi(np.random.default_rng(0))["w_in"].shape[0] == 4


@pytest.mark.parametrize("bad, message", [(dict(inputs="raw"), "'raw'"), (dict(beta1=1.0), "beta1"),
                                          (dict(step=0.0), "step"), (dict(nominal=-0.1), "-0.1"),
                                          (dict(nominal=0.01, inputs="log_sign"), "no moments"),
                                          (dict(hypergradient=1.0), r"hypergradient = 1.0: expected a number in \[0, 1\)"),
                                          (dict(hypergradient=-0.1), "-0.1"),
                                          (dict(timescales=(0.5, 1.0)), r"timescales = \(0.5, 1.0\): 1.0 is not"),
                                          (dict(timescales=0.5), "expected a list"),
                                          (dict(timescales=(0.5,), inputs="log_sign"), "no moments")])
def test_bad_options_name_the_value(bad, message):
    with pytest.raises(ValueError, match=message):
        rnnprop(**bad)


def test_random_scaling_is_the_same_function_in_other_units():
    """f̃(θ) = f(c ⊙ θ), θ̃^0 = θ^0 / c: the same loss at the start, ∇f̃ = c ⊙ ∇f(c ⊙ θ)."""
    inner = Quadratic(N)
    task = inner.sample(np.random.default_rng(8))
    scaled = RandomlyScaled(inner, r=2.0).sample(np.random.default_rng(8))
    c = task.theta0 / scaled.theta0
    assert np.all((np.exp(-2.0) <= c) & (c <= np.exp(2.0))) and np.std(np.log(c)) > 0.3
    assert scaled.loss(scaled.theta0, 1) == pytest.approx(task.loss(task.theta0, 1), rel=1e-12)
    theta = np.random.default_rng(9).standard_normal(N)
    np.testing.assert_allclose(autograd_grad(scaled.loss)(theta, 1), c * autograd_grad(task.loss)(c * theta, 1),
                               rtol=1e-12)
    with pytest.raises(ValueError, match="-1"):
        RandomlyScaled(inner, r=-1)


def test_plus_square_adds_a_clipped_random_square_on_more_coordinates():
    inner = Quadratic(N)
    task = inner.sample(np.random.default_rng(10))
    both = PlusSquare(inner, dim=4, r=0.5).sample(np.random.default_rng(10))
    assert both.theta0.shape == (N + 4,) and np.all(both.theta0[N:] == 0)
    np.testing.assert_array_equal(both.theta0[:N], task.theta0)
    rng = np.random.default_rng(10)
    inner.sample(rng)
    a, c = rng.uniform(-1, 1, 4), np.exp(rng.uniform(-0.5, 0.5, 4))
    x = np.array([0.1, 50.0, -0.3, 0.0])
    theta = np.concatenate([task.theta0, x])
    expected = task.loss(task.theta0, 1) + np.mean(np.minimum((c * x - a) ** 2, 10.0))
    assert both.loss(theta, 1) == pytest.approx(expected, rel=1e-13)
    assert autograd_grad(both.loss)(theta, 1)[N + 1] == 0.0            # clipped at 10: no gradient

