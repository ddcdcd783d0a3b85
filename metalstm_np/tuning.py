r"""Learning-rate tuning for the hand-designed baselines.

A baseline is only a fair opponent if its learning rate is tuned on the same task family. The grid is
log-spaced in half-decades, 1e-4 to 1 by default, and is widened by a half-decade at a time while
the best value sits on an edge. A learning rate is scored by the mean final training loss L_T over
`runs` tuning tasks; the tuning tasks are drawn with their own seed, disjoint from the evaluation
seeds, so the tuned value is not fitted to the tasks it is judged on. A run that diverges (a loss
that is NaN or inf) scores inf. The other hyperparameters stay at their usual defaults (momentum
0.9; Adam's β1 = 0.9, β2 = 0.999; RMSprop's decay 0.9).
"""
import numbers

import numpy

from .evaluation import run_on_tasks

__all__ = ["tune_lr", "quarter_decades"]


def _score(optimizer, lr, family, steps, runs, seed):
    with numpy.errstate(all="ignore"):
        losses, _, _ = run_on_tasks(optimizer, {**optimizer.init_phi(), "lr": lr}, family, steps, runs, seed)
    final = losses[:, -1]
    return float(final.mean()) if numpy.all(numpy.isfinite(final)) else float("inf")


def _whole(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_tunable(optimizer):
    """Raise ValueError unless `optimizer` is hand-designed with an "lr" hyperparameter."""
    if optimizer.learned:
        raise ValueError(f"{optimizer.name}: a learned optimizer (its φ is meta-trained) has no learning "
                         f"rate to tune; tune_lr tunes a hand-designed one's \"lr\"")
    phi = optimizer.init_phi()
    if "lr" not in phi:
        raise ValueError(f"{optimizer.name}: no \"lr\" hyperparameter to tune (its φ has {sorted(phi)})")


def quarter_decades(lo=1e-4, hi=10.0):
    """The grid 10^(k/4) from lo to hi (both powers of 10^(1/4)): 1e-4, 1.78e-4, ..., 10 by default."""
    return tuple(10.0 ** (k / 4) for k in range(round(4 * numpy.log10(lo)), round(4 * numpy.log10(hi)) + 1))


def tune_lr(optimizer, family, steps, runs, seed, lo=-8, hi=0, limits=(-14, 4), grid=None):
    r"""(best learning rate, {lr: score}) for a hand-designed optimizer with an "lr" hyperparameter.

    The grid is 10^(k/2) for k = lo..hi (default 1e-4 to 1); while the best k is lo or hi, the grid
    grows by one half-decade on that side, up to `limits`. With `grid` (e.g. quarter_decades()),
    exactly those learning rates are scored, and a best one on an edge of the grid is kept.
    """
    _check_tunable(optimizer)
    for name, value in (("steps", steps), ("runs", runs)):
        if not _whole(value) or value < 1:
            raise ValueError(f"{name} = {value!r}: expected a whole number ≥ 1")
    if grid is not None:
        grid = list(grid)
        if not grid:
            raise ValueError("grid = []: expected at least one learning rate")
        for lr in grid:
            if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not numpy.isfinite(lr) or lr <= 0:
                raise ValueError(f"grid holds {lr!r}: a learning rate must be a positive finite number")
        scores = {lr: _score(optimizer, lr, family, steps, runs, seed) for lr in grid}
        best = min(scores, key=lambda lr: (scores[lr], lr))
        if scores[best] == float("inf"):
            raise ValueError(f"{optimizer.name}: every learning rate of the grid diverged")
        return best, scores
    for name, value in (("lo", lo), ("hi", hi), ("limits[0]", limits[0]), ("limits[1]", limits[1])):
        if not _whole(value):
            raise ValueError(f"{name} = {value!r}: expected a whole number (an exponent k of 10^(k/2))")
    if not limits[0] <= lo <= hi <= limits[1]:
        raise ValueError(f"lo = {lo}, hi = {hi}, limits = {tuple(limits)}: "
                         f"expected limits[0] ≤ lo ≤ hi ≤ limits[1]")
    scores = {}
    k_lo, k_hi = lo, hi
    while True:
        for k in range(k_lo, k_hi + 1):
            if k not in scores:
                scores[k] = _score(optimizer, 10.0 ** (k / 2), family, steps, runs, seed)
        best = min(scores, key=lambda k: (scores[k], k))
        if best == k_lo and k_lo > limits[0]:
            k_lo -= 1
        elif best == k_hi and k_hi < limits[1]:
            k_hi += 1
        else:
            break
    if scores[best] == float("inf"):
        raise ValueError(f"{optimizer.name}: every learning rate from 10^{k_lo / 2:g} to 10^{k_hi / 2:g} diverged")
    return 10.0 ** (best / 2), {10.0 ** (k / 2): scores[k] for k in sorted(scores)}
