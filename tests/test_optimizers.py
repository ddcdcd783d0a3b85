r"""Tests for metalstm_np.optimizers: the interface, and each hand-designed optimizer against its
textbook formula, written here independently as a plain loop on a quadratic whose W and y we know
(so the reference computes ∇f(θ) = 2 Wᵀ(Wθ − y) by hand, not with autograd).
"""
import autograd.numpy as anp
import numpy as np
import pytest

from metalstm_np.learners import Task
from metalstm_np.optimizers import HAND_DESIGNED, Optimizer, adam, momentum, nag, params, rmsprop, sgd
from metalstm_np.unroll import unroll

STEPS = 8
RTOL = 1e-12


def known_quadratic(seed=0, dim=6):
    r"""f(θ) = ||Wθ − y||² with W scaled so that the largest Hessian eigenvalue 2σ_max(W)² is 1."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((dim, dim))
    W /= np.sqrt(2.0) * np.linalg.norm(W, 2)
    y = rng.standard_normal(dim)
    theta0 = rng.standard_normal(dim)

    def f(theta):
        r = anp.dot(W, theta) - y
        return anp.dot(r, r)

    task = Task(theta0=theta0, loss=lambda theta, t: f(theta), heldout_loss=f)
    grad = lambda theta: 2.0 * W.T @ (W @ theta - y)
    value = lambda theta: float(np.sum((W @ theta - y) ** 2))
    return task, grad, value


def run(optimizer, phi, task, steps=STEPS):
    """θ_0, ..., θ_T and the losses of an unroll driven step by step (no autograd anywhere)."""
    state = optimizer.init(phi, task.theta0)
    thetas = [optimizer.params(state)]
    losses = []
    for t in range(steps):
        losses_k, state = unroll(optimizer, phi, task, state, 1, t0=t)
        losses.append(losses_k[0])
        thetas.append(optimizer.params(state))
    return np.array(thetas), np.array(losses)


def check_against(optimizer, phi, reference_thetas, task, value):
    thetas, losses = run(optimizer, phi, task)
    assert thetas.shape == reference_thetas.shape == (STEPS + 1, task.theta0.size)
    assert not np.allclose(thetas[-1], thetas[0])                  # it moved
    np.testing.assert_allclose(thetas, reference_thetas, rtol=RTOL, atol=0)
    np.testing.assert_allclose(losses, [value(th) for th in reference_thetas[:-1]], rtol=RTOL)


# -------------------------------------------------------------------------------- interface


@pytest.mark.parametrize("name", ["sgd", "momentum", "nag", "rmsprop", "adam"])
def test_registry_and_interface(name):
    opt = HAND_DESIGNED[name]
    assert isinstance(opt, Optimizer) and opt.name == name and not opt.learned
    phi = opt.init_phi(np.random.default_rng(0))
    assert all(isinstance(v, float) for v in phi.values())
    assert opt.init_phi() is not opt.init_phi()                    # a fresh dict each time
    theta0 = np.arange(4.0)
    state = opt.init(phi, theta0)
    np.testing.assert_array_equal(opt.params(state), theta0)
    np.testing.assert_array_equal(params(state), theta0)
    # nothing is mutated in place
    before = {k: np.copy(v) for k, v in state.items()}
    new = opt.update(phi, state, np.ones(4), 1.0)
    for k, v in before.items():
        np.testing.assert_array_equal(state[k], v)
    assert new["theta"].shape == (4,)
    np.testing.assert_array_equal(theta0, np.arange(4.0))


def test_default_hyperparameters():
    assert sgd.init_phi() == {"lr": 0.1, "weight_decay": 0.0}
    assert momentum.init_phi() == {"lr": 0.1, "momentum": 0.9}
    assert nag.init_phi() == {"lr": 0.1, "momentum": 0.9}
    assert rmsprop.init_phi() == {"lr": 0.01, "decay": 0.9, "eps": 1e-8}
    assert adam.init_phi() == {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}


# -------------------------------------------------------------------------------- textbook formulas


@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_sgd(lam):
    task, grad, value = known_quadratic(0)
    eta = 0.4
    theta, ref = task.theta0.copy(), [task.theta0.copy()]
    for _ in range(STEPS):
        theta = theta - eta * (grad(theta) + lam * theta)        # θ ← θ − η(∇f(θ) + λθ)
        ref.append(theta)
    check_against(sgd, {"lr": eta, "weight_decay": lam}, np.array(ref), task, value)


def test_momentum_heavy_ball():
    task, grad, value = known_quadratic(1)
    eta, mu = 0.3, 0.7
    theta, v, ref = task.theta0.copy(), np.zeros_like(task.theta0), [task.theta0.copy()]
    for _ in range(STEPS):
        v = mu * v - eta * grad(theta)                           # v ← μv − η∇f(θ)
        theta = theta + v                                        # θ ← θ + v
        ref.append(theta)
    check_against(momentum, {"lr": eta, "momentum": mu}, np.array(ref), task, value)


def test_nag_sutskever_form():
    r"""v_{t+1} = μ v_t − η ∇f(ϑ_t + μ v_t),  ϑ_{t+1} = ϑ_t + v_{t+1}  (Sutskever et al. 2013);
    the optimizer's θ is the look-ahead point ϑ_t + μ v_t, where the gradient is taken."""
    task, grad, value = known_quadratic(2)
    eta, mu = 0.3, 0.8
    vartheta, v = task.theta0.copy(), np.zeros_like(task.theta0)
    lookahead = [vartheta + mu * v]
    for _ in range(STEPS):
        v = mu * v - eta * grad(vartheta + mu * v)
        vartheta = vartheta + v
        lookahead.append(vartheta + mu * v)
    check_against(nag, {"lr": eta, "momentum": mu}, np.array(lookahead), task, value)


def test_nag_differs_from_heavy_ball():
    task, _, _ = known_quadratic(2)
    phi = {"lr": 0.3, "momentum": 0.8}
    a, _ = run(nag, phi, task)
    b, _ = run(momentum, phi, task)
    np.testing.assert_array_equal(a[0], b[0])
    # first step: NAG's look-ahead θ_1 = θ_0 − (1 + μ)η∇_1, heavy ball's θ_1 = θ_0 − η∇_1
    np.testing.assert_allclose(a[1] - a[0], (1 + 0.8) * (b[1] - b[0]), rtol=1e-12)
    assert np.max(np.abs(a[1:] - b[1:])) > 1e-3


def test_rmsprop():
    task, grad, value = known_quadratic(3)
    eta, rho, eps = 0.05, 0.85, 1e-6
    theta, s, ref = task.theta0.copy(), np.zeros_like(task.theta0), [task.theta0.copy()]
    for _ in range(STEPS):
        g = grad(theta)
        s = rho * s + (1 - rho) * g * g
        theta = theta - eta * g / (np.sqrt(s) + eps)
        ref.append(theta)
    check_against(rmsprop, {"lr": eta, "decay": rho, "eps": eps}, np.array(ref), task, value)


def test_adam_with_bias_correction():
    task, grad, value = known_quadratic(4)
    eta, b1, b2, eps = 0.05, 0.8, 0.95, 1e-7
    theta, m, v, ref = task.theta0.copy(), np.zeros(6), np.zeros(6), [task.theta0.copy()]
    for t in range(1, STEPS + 1):
        g = grad(theta)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        theta = theta - eta * m_hat / (np.sqrt(v_hat) + eps)
        ref.append(theta)
    check_against(adam, {"lr": eta, "beta1": b1, "beta2": b2, "eps": eps}, np.array(ref), task, value)


def test_adam_first_step_is_lr_times_sign():
    r"""With bias correction, m̂_1 = ∇_1 and v̂_1 = ∇_1², so the first step is −η ∇/(|∇| + ε) ≈ −η sgn ∇."""
    phi = {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
    g = np.array([3.0, -0.5, 2e-3])
    state = adam.update(phi, adam.init(phi, np.zeros(3)), g, 0.0)
    np.testing.assert_allclose(state["theta"], -0.01 * g / (np.abs(g) + 1e-8), rtol=1e-12)
    assert state["t"] == 1


def test_every_optimizer_is_made_by_its_registry_name_and_keeps_theta0():
    """make_optimizer(name, **config) for every registered name; a hand-designed one takes no config
    and is the module's instance; params(init(φ, θ^0)) == θ^0 (no learned θ^0 here)."""
    from metalstm_np.optimizers import make_optimizer, optimizer_names
    assert set(optimizer_names()) >= {"sgd", "momentum", "nag", "rmsprop", "adam", "l2l", "metalstm", "gd_lstm",
                                      "rnnprop"}
    theta0 = np.linspace(-1.0, 1.0, 7)
    for name in optimizer_names():
        opt = make_optimizer(name)
        assert opt.name == name
        phi = opt.init_phi(np.random.default_rng(0))
        np.testing.assert_array_equal(opt.params(opt.init(phi, theta0)), theta0)
    assert make_optimizer("sgd") is sgd
    with pytest.raises(ValueError, match="sgd has no architecture config"):
        make_optimizer("sgd", hidden=3)
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        make_optimizer("lbfgs")
