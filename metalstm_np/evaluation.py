r"""Running one optimizer on fresh tasks: the numbers every table and figure is made of."""
import numbers
from dataclasses import dataclass
from typing import Callable

import numpy

from .unroll import unroll

__all__ = ["run_on_tasks", "task_rng", "Score", "mean", "EVAL_SEED", "TUNE_SEED"]

EVAL_SEED = 1000     # the tasks every reported number is measured on
TUNE_SEED = 2000     # the tasks the baselines' learning rates are tuned on (disjoint from EVAL_SEED's)


def task_rng(seed, r):
    """The generator that draws task r of an evaluation with `seed`: the same task for any number
    of runs. numpy pads seed lists with zeros, so [s, 1] and meta-training's [s, 1, 0] are the same
    stream: evaluate with a seed no training run uses (the experiments use 1000, training 0)."""
    return numpy.random.default_rng([seed, r])


def run_on_tasks(optimizer, phi, family, steps, runs, seed, progress=None):
    r"""Run `optimizer` with φ for `steps` steps on `runs` fresh tasks of `family`; progress(), if
    given, is called after each task.

    Returns (losses, thetas, tasks): losses[r, t] = L_{t+1} = f_{t+1}(θ_t) on task r, for t = 0..steps (the
    training loss at every iterate, on that step's minibatch); thetas[r] = θ_steps; tasks[r] is
    the task itself (for held-out or test-set metrics). steps ≥ 0 (0: the loss at θ^0 only), runs ≥ 1.
    """
    for name, value, least in (("steps", steps, 0), ("runs", runs, 1)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
            raise ValueError(f"{name} = {value!r}: expected a whole number ≥ {least}")
    losses, thetas, tasks = [], [], []
    for r in range(runs):
        task = family.sample(task_rng(seed, r))
        trajectory, state = unroll(optimizer, phi, task, optimizer.init(phi, task.theta0), steps)
        losses.append([float(L) for L in trajectory])
        thetas.append(optimizer.params(state))
        tasks.append(task)
        if progress is not None:
            progress()
    return numpy.array(losses), thetas, tasks


def mean(values):
    """The mean of per-task values, as a float."""
    return float(numpy.mean(values))


@dataclass(frozen=True)
class Score:
    r"""A score of φ on a set of tasks, lower is better: `summary` of the per-task values
    [per_task(optimizer, φ, task, config) for task in tasks]. Split in two so that the per-task
    values can be computed in worker processes (per_task must then be a top-level function) and
    summarised here, in task order: the same number, bit for bit, however many workers there are."""

    per_task: Callable              # (optimizer, φ, task, config) -> float
    summary: Callable = mean        # [float] -> float

    def __call__(self, optimizer, phi, tasks, config):
        return self.summary([self.per_task(optimizer, phi, task, config) for task in tasks])
