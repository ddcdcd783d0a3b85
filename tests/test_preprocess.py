r"""Tests for metalstm_np.preprocess.log_and_sign (Andrychowicz et al. 2016, appendix A):

    x -> (log|x| / p, sgn x)   if |x| >= e^{-p},     (-1, e^p x)   otherwise.
"""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import elementwise_grad
from autograd.test_util import check_grads

from metalstm_np.preprocess import log_and_sign


def test_hand_picked_values_p10():
    p = 10.0
    got = log_and_sign(np.array([1.0, -1.0, np.e, -np.exp(-3.0), 1e-6, -1e-6, 0.0]), p)
    assert got.shape == (7, 2)
    np.testing.assert_array_equal(got[0], [0.0, 1.0])                 # log 1 = 0
    np.testing.assert_array_equal(got[1], [0.0, -1.0])
    np.testing.assert_allclose(got[2], [0.1, 1.0], rtol=1e-15, atol=0)
    np.testing.assert_allclose(got[3], [-0.3, -1.0], rtol=1e-15, atol=0)
    # 1e-6 < e^{-10} ≈ 4.54e-5: the small branch
    np.testing.assert_array_equal(got[4], [-1.0, np.exp(10.0) * 1e-6])
    np.testing.assert_array_equal(got[5], [-1.0, -np.exp(10.0) * 1e-6])
    np.testing.assert_array_equal(got[6], [-1.0, 0.0])
    np.testing.assert_allclose(got[4, 1], 0.022026465794806718, rtol=1e-15)


def test_hand_picked_values_other_p():
    p = 5.0
    got = log_and_sign(np.array([1e3, -1e-3]), p)
    np.testing.assert_allclose(got[0], [np.log(1e3) / 5.0, 1.0], rtol=1e-15)
    np.testing.assert_allclose(got[1], [-1.0, -np.exp(5.0) * 1e-3], rtol=1e-15)   # 1e-3 < e^{-5}


def test_scalar_and_nd_shapes():
    assert log_and_sign(2.0).shape == (2,)
    x = np.random.default_rng(0).standard_normal((3, 4))
    got = log_and_sign(x)
    assert got.shape == (3, 4, 2)
    np.testing.assert_allclose(got[..., 0], np.log(np.abs(x)) / 10.0, rtol=1e-14)
    np.testing.assert_array_equal(got[..., 1], np.sign(x))


@pytest.mark.parametrize("p", [5.0, 10.0])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_continuous_at_threshold(p, sign):
    r"""Both features agree on the two sides of |x| = e^{-p}, to within a few ulps."""
    at = sign * np.exp(-p)                              # |x| = e^{-p}: the log branch
    below = sign * np.nextafter(np.exp(-p), 0.0)        # one ulp smaller: the linear branch
    f_at, f_below = log_and_sign(np.array([at, below]), p)
    np.testing.assert_allclose(f_at, [-1.0, sign], rtol=0, atol=1e-15)
    np.testing.assert_allclose(f_below, [-1.0, sign], rtol=0, atol=1e-15)
    assert f_below[0] == -1.0                           # the linear branch is exactly -1
    # a little further on either side, the features move continuously
    near = sign * np.exp(-p) * np.array([1.0 + 1e-9, 1.0 - 1e-9])
    np.testing.assert_allclose(log_and_sign(near, p), [[-1.0, sign], [-1.0, sign]], rtol=0, atol=1e-8)


def test_monotone_in_magnitude_across_threshold():
    p = 10.0
    x = np.exp(-p) * np.geomspace(1e-3, 1e3, 61)
    mag, sgn = log_and_sign(x, p).T
    assert np.all(np.diff(mag) >= 0) and np.all(np.diff(sgn) >= 0)
    np.testing.assert_array_equal(mag[x < np.exp(-p)], -1.0)
    np.testing.assert_array_equal(sgn[x >= np.exp(-p)], 1.0)


def test_derivative_finite_everywhere_including_zero():
    p = 10.0
    d_mag = elementwise_grad(lambda x: log_and_sign(x, p)[..., 0])
    d_sgn = elementwise_grad(lambda x: log_and_sign(x, p)[..., 1])
    x = np.array([0.0, 1e-12, -3e-7, 1.0001 * np.exp(-p), -1.0001 * np.exp(-p), 1e-3, -2.5, 1e8])
    g_mag, g_sgn = d_mag(x), d_sgn(x)
    assert np.all(np.isfinite(g_mag)) and np.all(np.isfinite(g_sgn))
    # small branch: d/dx(-1) = 0 and d/dx(e^p x) = e^p, at 0 too
    np.testing.assert_array_equal(g_mag[:3], 0.0)
    np.testing.assert_allclose(g_sgn[:3], np.exp(p), rtol=1e-15)
    # log branch: d/dx(log|x| / p) = 1 / (p x), d/dx sgn x = 0
    big = x[3:]
    np.testing.assert_allclose(g_mag[3:], 1.0 / (p * big), rtol=1e-14)
    np.testing.assert_array_equal(g_sgn[3:], 0.0)


def test_derivative_at_the_threshold_is_finite_and_between_the_one_sided_ones():
    r"""At |x| = e^{-p} the magnitude feature has a kink: slope 0 from below, e^p / p from above.
    (autograd's np.maximum splits the tie, giving the average.) The sign feature has slope e^p
    from below and 0 from above."""
    p = 10.0
    x = np.array([np.exp(-p), -np.exp(-p)])
    g_mag = elementwise_grad(lambda y: log_and_sign(y, p)[..., 0])(x)
    g_sgn = elementwise_grad(lambda y: log_and_sign(y, p)[..., 1])(x)
    assert np.all(np.isfinite(g_mag)) and np.all(np.isfinite(g_sgn))
    assert 0.0 <= g_mag[0] <= np.exp(p) / p and -np.exp(p) / p <= g_mag[1] <= 0.0
    assert np.all((0.0 <= g_sgn) & (g_sgn <= np.exp(p)))


def test_second_derivative_finite_at_zero():
    p = 10.0
    dd = elementwise_grad(elementwise_grad(lambda x: anp.sum(log_and_sign(x, p))))
    x = np.array([0.0, 1e-9, 2.0])
    got = dd(x)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, [0.0, 0.0, -1.0 / (p * 4.0)], rtol=1e-14, atol=0)


@pytest.mark.parametrize("x", [
    np.array([0.0, 2e-5, -1e-5]),                 # small branch (and 0), below e^{-10} ≈ 4.5e-5
    np.array([3e-4, -0.2, 1.3, -40.0]),           # log branch, well above the threshold
])
def test_check_grads_on_both_sides_of_threshold(x):
    check_grads(lambda y: log_and_sign(y, 10.0), modes=["rev"], order=2)(x)
