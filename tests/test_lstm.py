r"""Tests for metalstm_np.lstm: the coordinatewise LSTM cell and its σ and tanh primitives.

The cell is checked against an independent plain-numpy reference (scipy's expit, numpy's tanh, one
fused weight matrix), row by row for the coordinatewise sharing, and by autograd's check_grads.
"""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import elementwise_grad, grad
from autograd.test_util import check_grads
from scipy.special import expit

from conftest import ravel_tree, reference_lstm_cell as reference_cell
from metalstm_np.lstm import init_lstm, lstm_cell, lstm_zero_state, sigmoid, tanh

n, D, H = 5, 3, 4


def random_cell(seed, scale=0.8):
    """φ with O(1) weights and biases (no saturated gate), and an O(1) input and state."""
    rng = np.random.default_rng(seed)
    params = init_lstm(rng, D, H, scale=scale)
    params = {k: v + (0.3 * rng.standard_normal(v.shape) if k.startswith("b") else 0.0)
              for k, v in params.items()}
    x, h, c = (rng.standard_normal((n, k)) for k in (D, H, H))
    return params, x, h, c


# ------------------------------------------------------------------------------------- init


def test_init_shapes_range_and_forget_bias():
    s = 0.25
    params = init_lstm(np.random.default_rng(0), D, H, scale=s, forget_bias=1.5)
    for name in ("W", "W_i", "W_f", "W_o"):
        assert params[name].shape == (D + H, H)
        assert params[name].dtype == np.float64
        assert np.all(np.abs(params[name]) <= s)
    np.testing.assert_array_equal(params["b_f"], np.full(H, 1.5))
    for name in ("b", "b_i", "b_o"):
        np.testing.assert_array_equal(params[name], np.zeros(H))
    # The default scale is 1 / sqrt(D + H).
    default = init_lstm(np.random.default_rng(0), D, H)
    assert np.max(np.abs(default["W"])) <= 1.0 / np.sqrt(D + H)
    assert np.max(np.abs(default["W"])) > 0.5 / np.sqrt(D + H)


def test_init_is_a_function_of_the_seed_and_dtype():
    a = init_lstm(np.random.default_rng(7), D, H)
    b = init_lstm(np.random.default_rng(7), D, H)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    f32 = init_lstm(np.random.default_rng(7), D, H, dtype="float32")
    assert all(v.dtype == np.float32 for v in f32.values())
    np.testing.assert_array_equal(f32["W"], a["W"].astype(np.float32))


def test_zero_state():
    h, c = lstm_zero_state(6, H)
    assert h.shape == c.shape == (6, H)
    np.testing.assert_array_equal(h, 0.0)
    np.testing.assert_array_equal(c, 0.0)
    assert lstm_zero_state(2, 3, "float32")[0].dtype == np.float32


# ------------------------------------------------------------------------------------- values


def test_cell_matches_independent_reference():
    params, x, h, c = random_cell(0)
    h_new, c_new = lstm_cell(params, x, h, c)
    h_ref, c_ref = reference_cell(params, x, h, c)
    assert h_new.shape == c_new.shape == (n, H)
    np.testing.assert_allclose(h_new, h_ref, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(c_new, c_ref, rtol=1e-13, atol=1e-15)


def test_cell_is_coordinatewise():
    """Row k of the output depends on row k of (x, h, c) only, with one set of weights for all rows."""
    params, x, h, c = random_cell(1)
    h_all, c_all = lstm_cell(params, x, h, c)
    for k in range(n):
        h_k, c_k = lstm_cell(params, x[k:k + 1], h[k:k + 1], c[k:k + 1])
        np.testing.assert_allclose(h_k[0], h_all[k], rtol=1e-14, atol=1e-16)
        np.testing.assert_allclose(c_k[0], c_all[k], rtol=1e-14, atol=1e-16)


def test_open_forget_gate_closed_input_gate_keeps_the_cell():
    """z^f = 1 and z^i = 0 (saturated by huge biases) gives c^t = c^{t−1} exactly."""
    params, x, h, c = random_cell(2)
    params = dict(params, W_f=np.zeros_like(params["W_f"]), W_i=np.zeros_like(params["W_i"]),
                  b_f=np.full(H, 800.0), b_i=np.full(H, -800.0))
    h_new, c_new = lstm_cell(params, x, h, c)
    np.testing.assert_array_equal(c_new, c)
    np.testing.assert_allclose(h_new, expit(np.hstack([x, h]) @ params["W_o"] + params["b_o"]) * np.tanh(c),
                               rtol=1e-14)


def test_float32_cell_runs_in_float32():
    params, x, h, c = random_cell(3)
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    h32, c32 = lstm_cell(p32, x.astype(np.float32), h.astype(np.float32), c.astype(np.float32))
    assert h32.dtype == c32.dtype == np.float32
    h64, c64 = lstm_cell(params, x, h, c)
    np.testing.assert_allclose(h32, h64, rtol=0, atol=1e-5)
    np.testing.assert_allclose(c32, c64, rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------- tanh


def test_tanh_values_are_numpy_tanh():
    x = np.linspace(-30.0, 30.0, 241)
    np.testing.assert_array_equal(tanh(x), np.tanh(x))


def test_tanh_derivative_is_one_minus_tanh_squared():
    r"""1 − tanh² loses relative accuracy where tanh ≈ ±1 (an absolute error of about one ulp of 1,
    by design: see the module docstring), hence atol."""
    x = np.linspace(-6.0, 6.0, 97)
    np.testing.assert_allclose(elementwise_grad(tanh)(x), 1.0 / np.cosh(x) ** 2, rtol=1e-13, atol=4e-16)
    np.testing.assert_allclose(elementwise_grad(elementwise_grad(tanh))(x),
                               -2.0 * np.tanh(x) / np.cosh(x) ** 2, rtol=1e-12, atol=1e-15)
    assert grad(tanh)(0.0) == 1.0


@pytest.mark.parametrize("x", [np.array([-2.0, -0.3, 0.0, 0.4, 1.7]), np.array(0.8)])
def test_tanh_check_grads(x):
    check_grads(tanh, modes=["rev"], order=2)(x)
    check_grads(lambda y: anp.sum(tanh(y) ** 2), modes=["rev"], order=2)(x)


# ------------------------------------------------------------------------------------- sigmoid


@pytest.mark.parametrize("dtype, atol", [("float64", 2.3e-16), ("float32", 1.2e-7)])
def test_sigmoid_is_expit_to_within_one_rounding_of_one(dtype, atol):
    r"""σ = (1 + tanh(x/2)) / 2 is scipy's expit up to rounding: within one ulp of 1 absolutely,
    and relatively too wherever σ is not tiny; it keeps the input's dtype."""
    x = np.linspace(-40.0, 40.0, 8001).astype(dtype)
    s, e = sigmoid(x), expit(x)
    assert s.dtype == np.dtype(dtype)
    np.testing.assert_allclose(s, e, rtol=0, atol=atol)
    not_tiny = e > 1e-3
    np.testing.assert_allclose(s[not_tiny], e[not_tiny], rtol=float(np.finfo(dtype).eps) * 300)
    assert np.all((s >= 0) & (s <= 1)) and sigmoid(np.float64(0.0)) == 0.5


def test_sigmoid_derivative_is_sigma_times_one_minus_sigma():
    r"""Against σ'(x) = σ(x) σ(−x) = 1 / (4 cosh²(x/2)); 1 − σ loses relative accuracy where σ ≈ 1
    (an absolute error of about one ulp of 1, as for tanh), hence atol."""
    x = np.linspace(-8.0, 8.0, 97)
    np.testing.assert_allclose(elementwise_grad(sigmoid)(x), 0.25 / np.cosh(0.5 * x) ** 2, rtol=1e-13, atol=3e-16)
    assert grad(sigmoid)(0.0) == 0.25


@pytest.mark.parametrize("x", [np.array([-2.0, -0.3, 0.0, 0.4, 1.7]), np.array(0.8)])
def test_sigmoid_check_grads(x):
    check_grads(sigmoid, modes=["rev"], order=2)(x)
    check_grads(lambda y: anp.sum(sigmoid(y) ** 2), modes=["rev"], order=2)(x)


# ------------------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("order", [1, 2])
def test_cell_check_grads_wrt_params_x_h_c(order):
    r"""(h^t, c^t) as one vector (autograd does not trace a plain tuple output), checked with
    respect to all four arguments together and then one at a time."""
    params, x, h, c = random_cell(4)
    cell = lambda args: ravel_tree(lstm_cell(*args))
    check_grads(cell, modes=["rev"], order=order)((params, x, h, c))
    check_grads(lambda p: cell((p, x, h, c)), modes=["rev"], order=order)(params)
    check_grads(lambda x_: cell((params, x_, h, c)), modes=["rev"], order=order)(x)
    check_grads(lambda h_: cell((params, x, h_, c)), modes=["rev"], order=order)(h)
    check_grads(lambda c_: cell((params, x, h, c_)), modes=["rev"], order=order)(c)


def test_cell_derivative_wrt_c_is_forget_gate_plus_tanh_path():
    r"""∂c^t/∂c^{t−1} = z^f, elementwise (a hand derivative, independent of check_grads)."""
    params, x, h, c = random_cell(5)
    z_f = expit(np.hstack([x, h]) @ params["W_f"] + params["b_f"])
    np.testing.assert_allclose(elementwise_grad(lambda c_: lstm_cell(params, x, h, c_)[1])(c), z_f,
                               rtol=1e-14)
