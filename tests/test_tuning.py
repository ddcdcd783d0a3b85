"""Learning-rate tuning: the grid, its widening at the edges, and divergence."""
from dataclasses import dataclass

import autograd.numpy as np
import pytest

from metalstm_np.learners import Task
from metalstm_np.optimizers import sgd
from metalstm_np.tuning import tune_lr


@dataclass(frozen=True)
class Bowl:
    """f(θ) = a ||θ − 1||² from θ^0 = 0; SGD contracts the error by |1 − 2aη| per step."""

    a: float

    def sample(self, rng):
        f = lambda theta: self.a * np.sum((theta - 1.0) ** 2)
        return Task(theta0=np.zeros(3), loss=lambda theta, t: f(theta), heldout_loss=f)


def test_grid_is_half_decades_from_1e_4_to_1_when_the_best_is_inside():
    # a = 1: the best η is 1/2 (one step to the minimum); on the grid, 10^-0.5 ≈ 0.316 (η = 1 oscillates)
    best, scores = tune_lr(sgd, Bowl(1.0), steps=10, runs=1, seed=0)
    assert list(scores) == pytest.approx([10 ** (k / 2) for k in range(-8, 1)])
    assert best == pytest.approx(10 ** -0.5)
    assert scores[best] == min(scores.values())


def test_grid_widens_while_the_best_is_on_an_edge():
    # a = 0.01: the best η is 50, far above the default grid's top
    best, scores = tune_lr(sgd, Bowl(0.01), steps=10, runs=1, seed=0)
    assert best == pytest.approx(10 ** 1.5)
    assert max(scores) == pytest.approx(100.0)          # widened exactly one past the best
    assert min(scores) == pytest.approx(1e-4)


def test_diverging_learning_rates_score_inf():
    _, scores = tune_lr(sgd, Bowl(1000.0), steps=200, runs=1, seed=0)
    assert scores[1.0] == float("inf")
    assert min(scores.values()) < 1e-6


def test_all_diverging_is_an_error_not_a_learning_rate():
    with pytest.raises(ValueError, match="sgd: every learning rate from"):
        tune_lr(sgd, Bowl(1e9), steps=50, runs=1, seed=0, lo=-2, hi=0, limits=(-2, 0))


def test_a_given_grid_is_scored_exactly_and_not_widened():
    """grid=: exactly those rates, each scored as the default grid scores it; a best rate on the
    edge of the grid is kept (no widening)."""
    from metalstm_np import sgd
    from metalstm_np.learners import Quadratic
    from metalstm_np.tuning import _score, quarter_decades
    grid = quarter_decades(1e-4, 1e-3)                         # all too small: the best is the top edge
    assert len(grid) == 5
    best, scores = tune_lr(sgd, Quadratic(), 20, 2, 5, grid=grid)
    assert list(scores) == list(grid) and best == grid[-1]
    assert scores[grid[2]] == _score(sgd, grid[2], Quadratic(), 20, 2, 5)
