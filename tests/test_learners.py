r"""Tests for metalstm_np.learners: the random quadratics and the MNIST MLPs on a flat θ."""
import numpy as np
import pytest
from autograd import grad, hessian
from autograd.test_util import check_grads
from scipy.special import expit, log_softmax as scipy_log_softmax, logsumexp

from conftest import mlp_task
from metalstm_np.data import load_mnist
from metalstm_np.learners import MLP, Mixture, Quadratic, Task, log_softmax, mlp_shapes, unflatten

# ------------------------------------------------------------------------------- quadratic


def test_quadratic_is_a_quadratic():
    r"""f(θ) = f(0) + ∇f(0)·θ + ½ θᵀHθ exactly (to rounding) at far-away points, with one
    constant, symmetric, positive semi-definite Hessian H = 2WᵀW: f is ||Wθ − y||² for some W, y."""
    task = Quadratic(dim=8).sample(np.random.default_rng(0))
    f = task.heldout_loss
    rng = np.random.default_rng(1)
    H0 = hessian(f)(np.zeros(8))
    for _ in range(3):
        theta = 10.0 * rng.standard_normal(8)
        np.testing.assert_allclose(hessian(f)(theta), H0, rtol=1e-12, atol=1e-12)
        taylor = f(np.zeros(8)) + grad(f)(np.zeros(8)) @ theta + 0.5 * theta @ H0 @ theta
        np.testing.assert_allclose(f(theta), taylor, rtol=1e-12)
    np.testing.assert_array_equal(H0, H0.T)
    assert np.linalg.eigvalsh(H0).min() > -1e-10
    # Taylor at 0: ||Wθ − y||² = θᵀWᵀWθ − 2θᵀWᵀy + ||y||², and f is a sum of squares
    assert f(np.zeros(8)) > 0 and f(task.theta0) > 0


def test_quadratic_statistics_of_W_y_and_theta0():
    r"""W, y ~ N(0, 1) and θ^0 ~ N(0, 0.01²): ||W||_F² = trace(H)/2 ≈ dim², f(0) = ||y||² ≈ dim
    (both well within 5 standard deviations for this seed)."""
    dim = 30
    task = Quadratic(dim=dim).sample(np.random.default_rng(2))
    H = hessian(task.heldout_loss)(np.zeros(dim))
    assert abs(np.trace(H) / 2 / dim**2 - 1) < 5 * np.sqrt(2 / dim**2)
    assert abs(task.heldout_loss(np.zeros(dim)) / dim - 1) < 5 * np.sqrt(2 / dim)
    assert task.theta0.shape == (dim,) and 0.007 < np.std(task.theta0) < 0.013


def test_quadratic_loss_does_not_depend_on_t_and_heldout_is_loss():
    task = Quadratic(dim=5).sample(np.random.default_rng(3))
    theta = np.random.default_rng(4).standard_normal(5)
    assert task.loss(theta, 1) == task.loss(theta, 99) == task.heldout_loss(theta)


def test_sampling_is_a_function_of_the_seed():
    a = Quadratic(dim=6).sample(np.random.default_rng(5))
    b = Quadratic(dim=6).sample(np.random.default_rng(5))
    c = Quadratic(dim=6).sample(np.random.default_rng(6))
    theta = np.arange(6.0)
    np.testing.assert_array_equal(a.theta0, b.theta0)
    assert a.loss(theta, 1) == b.loss(theta, 1) != c.loss(theta, 1)
    assert isinstance(a, Task)


def _quadratics_side_by_side(count, dim, seed):
    """A task of `count` quadratics side by side, and the `count` single quadratics it is made of
    (rebuilt from the same draws: W, then y, then θ^0)."""
    task = Quadratic(dim=dim, count=count).sample(np.random.default_rng(seed))
    rng = np.random.default_rng(seed)
    W, y = rng.standard_normal((count, dim, dim)), rng.standard_normal((count, dim))
    theta0 = 0.01 * rng.standard_normal(count * dim)
    singles = [Task(theta0=theta0[k * dim:(k + 1) * dim],
                    loss=lambda theta, t, k=k: np.sum((W[k] @ theta - y[k]) ** 2),
                    heldout_loss=lambda theta, k=k: np.sum((W[k] @ theta - y[k]) ** 2)) for k in range(count)]
    return task, singles


def test_quadratics_side_by_side_are_their_sum():
    r"""Quadratic(count=K): f(θ) = Σ_k ||W_k θ_k − y_k||² with the draws in order, θ^0 the K
    θ^0_k; its gradient is the K gradients side by side, its Hessian block diagonal."""
    task, singles = _quadratics_side_by_side(4, 3, seed=7)
    theta = np.random.default_rng(8).standard_normal(12)
    parts = np.split(theta, 4)
    np.testing.assert_allclose(task.loss(theta, 5), sum(s.loss(p, 5) for s, p in zip(singles, parts)), rtol=1e-13)
    np.testing.assert_allclose(grad(task.loss)(theta, 0), np.concatenate(
        [grad(s.loss)(p, 0) for s, p in zip(singles, parts)]), rtol=1e-12, atol=1e-12)
    H = hessian(task.heldout_loss)(theta)
    for a in range(4):
        for b in range(4):
            block = H[3 * a:3 * a + 3, 3 * b:3 * b + 3]
            if a == b:
                np.testing.assert_allclose(block, hessian(singles[a].loss)(parts[a], 0), rtol=1e-12)
            else:
                assert not block.any()
    np.testing.assert_array_equal(task.theta0, np.concatenate([s.theta0 for s in singles]))
    assert Quadratic(dim=3, count=4).n_params == 12 and Quadratic().n_params == 10
    # a checkpoint names its family by repr: one quadratic keeps the name it had before `count`
    assert repr(Quadratic()) == "Quadratic(dim=10)" and repr(Quadratic(count=128)) == "Quadratic(dim=10, count=128)"


def test_one_quadratic_draws_the_task_it_always_drew():
    """count = 1 (E1's evaluation tasks): W, then y, then θ^0 from the generator, and
    f = ||Wθ − y||² with them, bit for bit (the side-by-side form is checked against single
    quadratics above)."""
    rng = np.random.default_rng(9)
    W, y, theta0 = rng.standard_normal((5, 5)), rng.standard_normal(5), 0.01 * rng.standard_normal(5)
    task = Quadratic(dim=5).sample(np.random.default_rng(9))
    np.testing.assert_array_equal(task.theta0, theta0)
    for theta in (np.arange(5.0), np.random.default_rng(10).standard_normal(5)):
        r = W @ theta - y
        assert task.loss(theta, 0) == task.heldout_loss(theta) == np.dot(r, r)


def test_uniform_quadratics_are_the_official_codes():
    r"""entries = "uniform": W and y uniform on [0, 1) (the official code's problems.quadratic),
    drawn in the same order as the paper's Gaussian ones, θ^0 still N(0, 0.01²)."""
    rng = np.random.default_rng(11)
    W, y, theta0 = rng.random((2, 4, 4)), rng.random((2, 4)), 0.01 * rng.standard_normal(8)
    task = Quadratic(dim=4, count=2, entries="uniform").sample(np.random.default_rng(11))
    np.testing.assert_array_equal(task.theta0, theta0)
    theta = np.random.default_rng(12).standard_normal(8)
    r = np.einsum("kij,kj->ki", W, theta.reshape(2, 4)) - y
    np.testing.assert_allclose(task.loss(theta, 3), np.sum(r * r), rtol=1e-14)
    one = Quadratic(dim=4, entries="uniform").sample(np.random.default_rng(13))    # count = 1
    rng = np.random.default_rng(13)
    W1, y1 = rng.random((1, 4, 4))[0], rng.random((1, 4))[0]
    assert one.loss(theta[:4], 0) == np.dot(W1 @ theta[:4] - y1, W1 @ theta[:4] - y1)
    assert repr(Quadratic(entries="uniform")) == "Quadratic(dim=10, entries='uniform')"
    assert repr(Quadratic(count=3, entries="uniform")) == "Quadratic(dim=10, count=3, entries='uniform')"
    with pytest.raises(ValueError, match="'gaussian'"):
        Quadratic(entries="gaussian")


@pytest.mark.parametrize("bad", [dict(count=0), dict(count=2.5), dict(count=2.0), dict(count=True), dict(dim=0),
                                 dict(dim=10.0)])
def test_quadratic_refuses_a_bad_size(bad):
    with pytest.raises(ValueError, match="must be positive integers"):
        Quadratic(**bad)


# ------------------------------------------------------------------------------- MLP: structure


def test_n_params():
    assert MLP(hidden=(20,)).n_params == 15910                    # 784·20 + 20 + 20·10 + 10
    assert MLP(hidden=(3,)).n_params == 784 * 3 + 3 + 3 * 10 + 10
    assert MLP(hidden=(4, 5)).n_params == 784 * 4 + 4 + 4 * 5 + 5 + 5 * 10 + 10


def test_shapes_and_unflatten_order():
    shapes = mlp_shapes(3, (2,), 4)
    assert shapes == [((3, 2), (2,)), ((2, 4), (4,))]
    layers = unflatten(np.arange(3 * 2 + 2 + 2 * 4 + 4.0), shapes)    # layer by layer, W then b
    np.testing.assert_array_equal(layers[0][0], [[0, 1], [2, 3], [4, 5]])
    np.testing.assert_array_equal(layers[0][1], [6, 7])
    np.testing.assert_array_equal(layers[1][0], [[8, 9, 10, 11], [12, 13, 14, 15]])
    np.testing.assert_array_equal(layers[1][1], [16, 17, 18, 19])


def test_bad_activation_split_batch_hidden_raise_value_error_naming_the_value():
    with pytest.raises(ValueError, match="'softplus'"):
        MLP(activation="softplus")
    with pytest.raises(ValueError, match="'dev'"):
        MLP(split="dev")
    with pytest.raises(ValueError, match=r"\(0\)"):
        MLP(batch=0)
    with pytest.raises(ValueError, match=r"\(4, 0\)"):
        MLP(hidden=(4, 0))


# ------------------------------------------------------------------------------- MLP: values


def reference_loss(theta, X, labels, hidden, activation):
    r"""Mean softmax cross-entropy of the MLP, written independently with scipy and a loop."""
    act = {"sigmoid": expit, "tanh": np.tanh, "relu": lambda a: np.maximum(a, 0.0)}[activation]
    sizes, start, a = [784, *hidden, 10], 0, X
    for k, (m, n) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = theta[start:start + m * n].reshape(m, n)
        b = theta[start + m * n:start + m * n + n]
        start += m * n + n
        a = a @ W + b
        if k < len(sizes) - 2:
            a = act(a)
    assert start == theta.size
    return float(np.mean(logsumexp(a, axis=1) - a[np.arange(len(labels)), labels]))


def test_log_softmax_is_scipys_without_overflow_and_its_gradient_is_exact():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((6, 5)) * 3
    np.testing.assert_allclose(log_softmax(a), scipy_log_softmax(a, axis=1), rtol=1e-14, atol=1e-15)
    huge = np.array([[1000.0, 0.0, -1000.0], [-800.0, -800.0, -800.0]])        # exp would overflow
    np.testing.assert_allclose(log_softmax(huge), scipy_log_softmax(huge, axis=1), rtol=1e-15, atol=0)
    # the shift by the row maximum is a constant to autograd; the gradient must not care
    w = rng.standard_normal((6, 5))
    g = grad(lambda x: np.sum(w * log_softmax(x)))(a)
    softmax = np.exp(scipy_log_softmax(a, axis=1))
    np.testing.assert_allclose(g, w - softmax * w.sum(axis=1, keepdims=True), rtol=1e-12, atol=1e-14)
    check_grads(log_softmax, modes=["rev"], order=2)(a)


def test_loss_at_zero_is_log_10():
    task = mlp_task((3,), 0)
    zero = np.zeros(MLP(hidden=(3,)).n_params)
    for t in (1, 2, 50):
        np.testing.assert_allclose(task.loss(zero, t), np.log(10.0), rtol=1e-12)
    np.testing.assert_allclose(task.heldout_loss(zero), np.log(10.0), rtol=1e-12)


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh"])
def test_loss_on_matches_independent_reference(activation):
    r"""The MLP's loss on given images (mlp_logits, unflatten, softmax cross-entropy) against the
    reference above, on the 10,000 validation images (training images 50,000–59,999)."""
    X, labels = load_mnist("train")
    mlp = MLP(hidden=(3,), activation=activation)
    theta = 0.3 * np.random.default_rng(8).standard_normal(mlp.n_params)
    np.testing.assert_allclose(mlp.loss_on(theta, X[50_000:], labels[50_000:]),
                               reference_loss(theta, X[50_000:], labels[50_000:], (3,), activation),
                               rtol=1e-10)


def test_accuracy_at_zero_is_frequency_of_class_0():
    """All-zero logits: argmax picks class 0 for every image."""
    X, labels = load_mnist("test")
    mlp = MLP(hidden=(3,))
    assert mlp.accuracy_on(np.zeros(mlp.n_params), X, labels) == np.mean(labels == 0)


def test_minibatches_are_a_pure_function_of_task_and_t():
    task = mlp_task((3,), 0)
    theta = task.theta0 + 0.5 * np.random.default_rng(9).standard_normal(task.theta0.size)
    losses = [task.loss(theta, t) for t in range(1, 6)]
    assert [task.loss(theta, t) for t in range(1, 6)] == losses          # same t, same minibatch
    assert len(set(losses)) == 5                                        # different t, different ones
    assert task.heldout_loss(theta) == task.heldout_loss(theta)
    assert task.heldout_loss(theta) not in losses
    # the same seed gives the same task; another seed another minibatch order and θ^0
    again = MLP(hidden=(3,)).sample(np.random.default_rng(0))
    other = MLP(hidden=(3,)).sample(np.random.default_rng(1))
    np.testing.assert_array_equal(again.theta0, task.theta0)
    assert again.loss(theta, 3) == losses[2] != other.loss(theta, 3)
    assert np.any(other.theta0 != task.theta0)
    assert 0.008 < np.std(task.theta0) < 0.012                           # θ^0 ~ N(0, 0.01²)


@pytest.mark.parametrize("activation,order", [("sigmoid", 2), ("tanh", 1), ("relu", 1)])
def test_mlp_gradient_check(activation, order):
    task = mlp_task((3,), 0, activation, 16)
    theta = 0.3 * np.random.default_rng(10).standard_normal(task.theta0.size)
    check_grads(lambda th: task.loss(th, 4), modes=["rev"], order=order)(theta)
    check_grads(task.heldout_loss, modes=["rev"], order=1)(theta)


def test_mlp_gradient_against_central_differences_on_each_layer():
    r"""∂L/∂θ along directions confined to W_1, b_1, W_2, b_2 in turn, against (L(θ+εd) − L(θ−εd))/2ε."""
    task = mlp_task((3,), 0, "sigmoid", 16)
    theta = 0.3 * np.random.default_rng(11).standard_normal(task.theta0.size)
    g = grad(task.loss)(theta, 2)
    rng, eps = np.random.default_rng(12), 1e-6
    bounds = np.cumsum([0, 784 * 3, 3, 30, 10])
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        d = np.zeros_like(theta)
        d[lo:hi] = rng.standard_normal(hi - lo)
        fd = (task.loss(theta + eps * d, 2) - task.loss(theta - eps * d, 2)) / (2 * eps)
        np.testing.assert_allclose(g @ d, fd, rtol=1e-6)


@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_heldout_images_are_never_in_a_training_minibatch(activation):
    r"""The held-out loss is on "data the optimizer never sees" (module docstring). With
    split="validation" (10,000 images) and batch = 10,000 − 1,000, a minibatch that avoids the
    1,000 held-out images must be exactly all the others, at every step t:

        L_t = (10,000 · L_all − 1,000 · L_heldout) / 9,000,

    L_all being the loss on the whole split, computed here independently. (This also checks the
    "validation" split is training images 50,000–59,999, and task.loss against the reference.)"""
    X, labels = load_mnist("train")
    X, labels = X[50_000:], labels[50_000:]
    mlp = MLP(hidden=(3,), activation=activation, batch=9_000, split="validation")
    task = mlp.sample(np.random.default_rng(13))
    theta = 0.3 * np.random.default_rng(14).standard_normal(mlp.n_params)
    L_all = reference_loss(theta, X, labels, (3,), activation)
    expected = (10_000 * L_all - 1_000 * task.heldout_loss(theta)) / 9_000
    for t in (1, 2, 3):
        np.testing.assert_allclose(task.loss(theta, t), expected, rtol=1e-9, err_msg=f"t = {t}")


def test_a_mixture_draws_the_family_then_the_task_with_the_same_generator():
    families = (Quadratic(3), Quadratic(4), Quadratic(5))
    mixture = Mixture(families)
    seen = set()
    for seed in range(12):
        rng = np.random.default_rng(seed)
        k = int(rng.integers(3))
        expected = families[k].sample(rng)
        task = mixture.sample(np.random.default_rng(seed))
        np.testing.assert_array_equal(task.theta0, expected.theta0)
        assert task.loss(task.theta0, 1) == expected.loss(expected.theta0, 1)
        seen.add(k)
    assert seen == {0, 1, 2}
    with pytest.raises(ValueError, match="at least two families"):
        Mixture((Quadratic(3),))
    with pytest.raises(ValueError, match="'relu' is not a task family"):
        Mixture((Quadratic(3), "relu"))
