r"""Meta-training: gradient descent on φ through unrolled optimization.

For meta-update u = 0, 1, ..., with B = `tasks_per_update` (the papers' minibatch of functions):
    draw B fresh tasks from the family, trajectories i = uB, ..., uB + B − 1 (new θ^0, new
    minibatch order, new quadratic); state_i = init(φ, θ^0_i);
    for each piece of `unroll` steps of the `horizon` (truncated BPTT, each task's state carried over):
        g = (1/B) Σ_i ∂ meta-loss_i / ∂φ of the piece             (unroll.meta_value_and_grad)
        g ← g · min(1, clip / ||g||)                            global gradient-norm clipping
        φ ← Adam(φ, g)                                          (optimizers.adam, on the flat φ)
The B unrolls of a piece are independent: with a `pool` (pool.py) they run in worker processes,
and the parent sums their meta-gradients in task order, so the result is the same, bit for bit,
with any number of workers. B = 1 is one task per meta-update.

Every `validate_every` trajectories (and before the first) φ is scored on fixed meta-validation
tasks and the best φ so far is kept: early stopping on a validation set, as in Andrychowicz et al.
2016 (sec. 3) and Ravi & Larochelle 2017. The score is, with `validate_on`,
    "meta-loss":  the meta-loss over the whole horizon, no truncation (the default), or
    "final":      the training loss at the end of the horizon, L_{T+1} = f_{T+1}(θ_T), the quantity
                  the baselines' learning rates are tuned on (tuning.py), so that the learned
                  optimizer is selected by the same criterion as its opponents.
With `validation_horizon` the validation runs are longer (or shorter) than the training horizon:
the unroll-length curriculum of Chen et al. 2020 ("Training stronger baselines for learning to
optimize") trains on one horizon and chooses φ on the next, longer one, then trains on that.
`trajectories` and `validate_every` count tasks and are multiples of B, and `trajectories` is a
multiple of `validate_every` (TrainConfig refuses other values: the last trajectories would never
be validated).

The meta-loss weighs the steps of the horizon with `weights`: "uniform" (w_t = 1/T, the mean; the
paper's w_t = 1 up to scale) or "linear" (w_t = 2t / (T(T + 1)), t = 1..T: the same total, shifted
towards the end of the horizon, so that the optimizer is pushed to keep making progress late
rather than to win early) or "piece_ends" (weight only on the last iterate of each truncated piece
of `unroll` steps, equal among the pieces: the meta-loss of Lv et al.'s RNNprop code up to one
step, since there each piece's loss is f before the piece's last update and here after it; see
`horizon_weights`).

With `imitation` = p > 0, a share p of the meta-updates is off-policy imitation learning (Chen et
al. 2020): their B tasks are trained on the imitation loss of unroll.py instead of the meta-loss,
with Adam at `imitation_lr` on the same tasks from the same θ^0 as the teacher (the optimizer
proposes its steps along Adam's trajectory, piece after piece); the others are trained as above.
Chen et al. draw the choice per trajectory; here it is per meta-update (all B tasks, `imitates`),
so that no meta-gradient averages two losses of different kinds. The meta-loss history then holds
the imitation losses of those trajectories (which they are is `imitates` of the update's first
trajectory; the log marks them).

With `average` = β > 0, what is validated and kept as the best φ is not φ itself but the
exponential moving average of φ over the meta-updates,
    φ̄_u = (1 − β) Σ_{k=1..u} β^{u−k} φ_k / (1 − β^u)        (φ_k: φ after meta-update k),
kept by `_averaged`. The division makes the weights sum to 1, as Adam's bias correction does; φ_0
gets none. It is a variant of the iterate averaging of Polyak & Juditsky 1992 and of Izmailov et
al. 2018 ("Averaging weights leads to wider optima and better generalization"), which weigh the
(late) iterates equally: the mean of a noisy path lies nearer the middle of the valley than its
last point. Meta-training itself is unchanged: φ follows the same path, bit for bit, with any β.

Everything random is a function of (seed, trajectory index), whatever B: trajectory i's task is
drawn from numpy.random.default_rng([seed, 1, i]) and validation task j from default_rng([seed, 2, j]);
only whether a meta-update imitates depends on B too: the one that starts at trajectory i does if
default_rng([seed, 3, i]) says so (a run is resumed with its own B). The
"RNG state" is therefore the trajectory counter, and a run resumed from its checkpoint replays
exactly what an uninterrupted run would have done: the same φ, bit for bit (on the same machine,
BLAS build and thread count; floating-point sums are not associative).

A checkpoint (written atomically after every meta-update) holds φ, the Adam state, the best φ and
its validation score, the trajectory counter, the history of meta-losses (one per trajectory) and
validation scores, φ̄ with `average`, the config (B included: a run is resumed with the B it
was made with), the frozen keys of φ and a SHA-256 digest of the φ the run started from: resuming
with other frozen keys, or with another starting φ given, is refused (`check_resume`), and the best
φ's weights file is rewritten from the checkpoint (a lost or newer best.npz is put back). A NaN or inf in a meta-loss or meta-gradient stops the run with a `Diverged`
naming the trajectory and piece, and a worker process that dies stops it with a `WorkerLost`
(pool.py); the checkpoint on disk is then still the last good one.

The code reads in the same order. `meta_train` is the loop over meta-updates, with a checkpoint
after each; `_start` gives the state it begins from (a `_Run`: Adam's state on φ, the best φ, the
histories, the trajectory counter), fresh from the config and seed or the checkpoint's, checked by
`check_resume`; `_meta_update` is one meta-update (its pieces through `run_jobs`, `_task_mean`,
`_clipped`, the Adam step); `_validate_and_keep_best` scores φ and keeps the best. φ is always
scored by `_validate` with an `evaluation.Score`: `validation_score`, whose per-task value
(`_task_validation_score`) is the one place `validate_on` is read, unless meta_train is given
another (`score=`, e.g. few-shot accuracy).
"""
import functools
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy
from autograd.misc.flatten import flatten

from .evaluation import Score
from .optimizers import Optimizer, adam
from .pool import WorkerLost, run_jobs
from .serialization import load_phi, save_phi
from .unroll import ALIASES, KINDS, meta_loss, meta_value_and_grad, teacher_trajectory, unroll

__all__ = ["TrainConfig", "VALIDATE_ON", "WEIGHTS", "Diverged", "WorkerLost", "horizon_weights", "piece_weights",
           "meta_train", "check_resume", "start_digest", "validation_score", "draw_validation_tasks",
           "load_checkpoint", "imitates"]


VALIDATE_ON = ("meta-loss", "final")      # what early stopping scores on the validation tasks
WEIGHTS = ("uniform", "linear", "piece_ends")   # how the meta-loss weighs the steps of the horizon


@dataclass(frozen=True)
class TrainConfig:
    trajectories: int = 1000      # number of fresh tasks to meta-train on
    horizon: int = 100            # optimization steps per trajectory
    unroll: int = 20              # truncation: steps per meta-gradient (horizon is a multiple)
    meta_lr: float = 1e-3         # Adam's learning rate on φ
    clip: float = 1.0             # global gradient-norm clipping threshold
    meta_loss: str = "mean"       # "mean" (Andrychowicz; "sum" is an alias), "log" (of the loss) or "heldout" (Ravi)
    validate_every: int = 25      # trajectories between meta-validations (K)
    validation_tasks: int = 8     # fixed meta-validation tasks
    seed: int = 0                 # all randomness derives from it
    validate_on: str = "meta-loss"  # early-stopping score: "meta-loss" or "final" (see above)
    weights: str = "uniform"      # the meta-loss's weights over the horizon (see above)
    tasks_per_update: int = 1     # B: tasks whose meta-gradients each meta-update averages
    validation_horizon: Optional[int] = None   # steps of the validation runs (None: the horizon)
    imitation: float = 0.0        # the share of meta-updates that imitate Adam (Chen et al. 2020; see above)
    imitation_lr: float = 0.03    # the learning rate of the Adam they imitate
    average: float = 0.0          # β of the moving average of φ that is validated (see above); 0: φ itself

    def __post_init__(self):
        for name in ("meta_loss", "validate_on", "weights"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a name (a string), got {getattr(self, name)!r}")
        object.__setattr__(self, "meta_loss", ALIASES.get(self.meta_loss, self.meta_loss))
        for name in ("trajectories", "horizon", "unroll", "validate_every", "validation_tasks",
                     "tasks_per_update", "seed", "validation_horizon"):
            value = getattr(self, name)
            if value is None and name == "validation_horizon":
                continue
            if isinstance(value, (bool, numpy.bool_)) or not isinstance(value, (int, numpy.integer)):
                raise ValueError(f"{name} must be a whole number, got {value!r}")
            if value < (0 if name == "seed" else 1):
                raise ValueError(f"{name} must be at least {0 if name == 'seed' else 1}, got {value}")
        for name in ("meta_lr", "clip", "imitation", "imitation_lr", "average"):
            value = getattr(self, name)
            whole, real = isinstance(value, (int, numpy.integer)), isinstance(value, (float, numpy.floating))
            if isinstance(value, (bool, numpy.bool_)) or not (whole or real and numpy.isfinite(value)):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if self.horizon % self.unroll:
            raise ValueError(f"horizon {self.horizon} is not a multiple of unroll {self.unroll}")
        for name in ("trajectories", "validate_every"):
            if getattr(self, name) % self.tasks_per_update:
                raise ValueError(f"{name} ({getattr(self, name)}) is not a multiple of tasks_per_update "
                                 f"({self.tasks_per_update}): meta-updates take whole batches of tasks")
        if not (self.meta_lr > 0 and self.clip > 0):
            raise ValueError(f"meta_lr ({self.meta_lr}) and clip ({self.clip}) must be positive")
        if self.meta_loss not in KINDS:
            raise ValueError(f"unknown meta-loss {self.meta_loss!r}; expected one of {KINDS}")
        if self.validate_on not in VALIDATE_ON:
            raise ValueError(f"unknown validation score {self.validate_on!r}; expected one of {VALIDATE_ON}")
        if self.weights not in WEIGHTS:
            raise ValueError(f"unknown meta-loss weights {self.weights!r}; expected one of {WEIGHTS}")
        if self.meta_loss == "heldout" and self.validation_horizon not in (None, self.horizon):
            raise ValueError(f"the held-out meta-loss is taken at θ_T of the training horizon: "
                             f"validation_horizon {self.validation_horizon} does not apply")
        if self.meta_loss == "heldout" and self.weights != "uniform":
            raise ValueError(f"the held-out meta-loss is one loss at θ_T: it has no weights over "
                             f"steps to be {self.weights!r}")
        if (self.weights == "piece_ends" and self.validate_on == "meta-loss"
                and (self.validation_horizon or self.horizon) % self.unroll):
            raise ValueError(f"validation_horizon {self.validation_horizon} is not a multiple of unroll "
                             f"({self.unroll}): the piece_ends meta-loss would not weigh its last steps")
        if self.meta_loss == "heldout" and self.horizon != self.unroll:
            raise ValueError(f"the held-out meta-loss is taken at θ_T once per trajectory: horizon "
                             f"({self.horizon}) must equal unroll ({self.unroll})")
        if not 0 <= self.imitation <= 1:
            raise ValueError(f"imitation is the share of meta-updates that imitate Adam, in [0, 1]; "
                             f"got {self.imitation!r}")
        if not self.imitation_lr > 0:
            raise ValueError(f"imitation_lr must be positive, got {self.imitation_lr!r}")
        if self.imitation and self.meta_loss == "heldout":
            raise ValueError("imitation replaces the meta-loss over the steps of an unroll; the held-out "
                             "meta-loss has none")
        if not 0 <= self.average < 1:
            raise ValueError(f"average is the decay β of the moving average of φ, in [0, 1); got {self.average!r}")
        if self.trajectories % self.validate_every:
            raise ValueError(f"trajectories ({self.trajectories}) is not a multiple of validate_every "
                             f"({self.validate_every}): the last trajectories would never be validated")


class Diverged(RuntimeError):
    """A non-finite meta-loss or meta-gradient; the last good checkpoint is kept."""


def horizon_weights(config, horizon=None):
    r"""The meta-loss weights w_1..w_T over the horizon T (default config.horizon), or None for
    "uniform" (w_t = 1/T, which `meta_loss` uses by default). "linear": w_t = 2t / (T(T + 1)),
    which also sums to 1. "piece_ends": w_t = 1/P where t is a multiple of config.unroll (the last
    iterate of each of the P pieces of T), 0 elsewhere."""
    if config.weights == "uniform":
        return None
    T = config.horizon if horizon is None else horizon
    t = numpy.arange(1, T + 1)
    if config.weights == "piece_ends":
        if T % config.unroll:
            raise ValueError(f"a horizon of {T} steps is not a whole number of pieces of {config.unroll} steps")
        ends = t % config.unroll == 0
        return ends / ends.sum()
    return 2.0 * t / (T * (T + 1))


def piece_weights(config, t0):
    r"""The weights of the piece of `config.unroll` steps that starts at step t0: the horizon's
    weights times horizon / unroll, so that uniform weights give every piece its own mean (1/unroll
    per step, `meta_loss`'s default); None for "uniform"."""
    w = horizon_weights(config)
    return None if w is None else w[t0:t0 + config.unroll] * (config.horizon / config.unroll)


def _task_validation_score(optimizer, phi, task, config):
    """One validation task's score: its meta-loss over the whole validation horizon T (no
    truncation, no gradient), or with config.validate_on == "final" its training loss after the
    last step, L_{T+1}. T is config.validation_horizon, or the training horizon if that is None."""
    T = config.horizon if config.validation_horizon is None else config.validation_horizon
    if config.validate_on == "final":
        return float(unroll(optimizer, phi, task, optimizer.init(phi, task.theta0), T)[0][-1])
    return float(meta_loss(optimizer, phi, task, steps=T, kind=config.meta_loss,
                           weights=horizon_weights(config, T))[0])


# The default validation score: the mean over the tasks of _task_validation_score.
validation_score = Score(_task_validation_score)


def draw_validation_tasks(family, seed, count):
    """The first `count` meta-validation tasks of a run with `seed`: task j from default_rng([seed, 2, j])
    (more tasks extend the list; the first ones stay the same)."""
    return [family.sample(numpy.random.default_rng([seed, 2, j])) for j in range(count)]


def _checkpoint_arrays(run, config, family, validation_family):
    """The checkpoint's arrays besides φ: the run's state (a _Run), its config and its two families."""
    arrays = {"start_digest": numpy.array(run.start_digest), "frozen": numpy.array(json.dumps(sorted(run.frozen)))}
    arrays.update({f"adam/{k}": numpy.asarray(v) for k, v in run.adam.items()})
    arrays.update({f"best/{k}": numpy.asarray(v) for k, v in run.best.items() if k != "phi"})
    arrays["best_phi"] = run.best["phi"]
    arrays.update({f"history/{k}": numpy.asarray(v, dtype=float) for k, v in run.history.items()})
    arrays["trajectory"] = numpy.asarray(run.trajectory)
    if run.average is not None:
        arrays["average"] = run.average
    arrays["train_config"] = numpy.array(json.dumps(asdict(config)))
    arrays["family"] = numpy.array(repr(family))
    arrays["validation_family"] = numpy.array(repr(validation_family))
    return arrays


def load_checkpoint(path):
    """(optimizer, φ, state dict) from a checkpoint written by meta_train; every key, shape and type
    is checked, and a problem raises ValueError naming the file and the key."""
    optimizer, phi, extra = load_phi(path)
    n = flatten(phi)[0].shape[0]

    def need(key, shape=None, kind=None):
        if key not in extra:
            raise ValueError(f"{path}: not a complete checkpoint (no {key!r})")
        value = extra[key]
        if shape is not None and value.shape != shape:
            raise ValueError(f"{path}: {key} has shape {value.shape}, expected {shape}")
        if kind is not None and value.dtype.kind not in kind:
            raise ValueError(f"{path}: {key} has dtype {value.dtype}, expected {'a number' if kind != 'U' else 'text'}")
        return value

    for key in ("adam/theta", "adam/m", "adam/v", "best_phi"):
        if not numpy.all(numpy.isfinite(need(key, (n,), "f"))):
            raise ValueError(f"{path}: {key} holds non-finite values")
    if numpy.any(extra["adam/v"] < 0):
        raise ValueError(f"{path}: adam/v, Adam's second moments, holds negative values")
    for key in ("adam/t", "trajectory", "best/trajectory"):
        value = need(key, (), "iu")
        if value < 0:
            raise ValueError(f"{path}: {key} = {value}, a negative count")
    if not numpy.isfinite(need("best/validation", (), "f")):
        raise ValueError(f"{path}: best/validation = {extra['best/validation']}, not a finite score")
    for key in ("history/meta_loss", "history/validation_trajectory", "history/validation"):
        if need(key, kind="f").ndim != 1:
            raise ValueError(f"{path}: {key} is not a list")
    try:
        config = TrainConfig(**json.loads(str(need("train_config", (), "U"))))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: its train_config is not a valid TrainConfig ({e})") from None
    if config.average and not numpy.all(numpy.isfinite(need("average", (n,), "f"))):
        raise ValueError(f"{path}: average, the moving average of φ, holds non-finite values")
    state = {"adam": {k[5:]: extra[k] for k in extra if k.startswith("adam/")},
             "best": {k[5:]: extra[k] for k in extra if k.startswith("best/")},
             "history": {k[8:]: list(extra[k]) for k in extra if k.startswith("history/")},
             "trajectory": int(extra["trajectory"]),
             "average": extra["average"] if config.average else None,
             "config": config,
             "family": str(extra["family"]) if "family" in extra else None,
             "validation_family": str(extra["validation_family"]) if "validation_family" in extra else None,
             # None in a checkpoint from before they were kept: not checked on resume
             "start_digest": str(need("start_digest", (), "U")) if "start_digest" in extra else None,
             "frozen": None}
    if "frozen" in extra:
        try:
            frozen = json.loads(str(need("frozen", (), "U")))
        except json.JSONDecodeError:
            frozen = None
        if not (isinstance(frozen, list) and all(isinstance(k, str) for k in frozen)):
            raise ValueError(f"{path}: frozen = {extra['frozen']}, not a list of names of φ's arrays")
        state["frozen"] = frozen
    if state["trajectory"] > config.trajectories or len(state["history"]["meta_loss"]) != state["trajectory"]:
        raise ValueError(f"{path}: its counter ({state['trajectory']} trajectories) does not match its "
                         f"history ({len(state['history']['meta_loss'])} meta-losses)")
    state["best"]["phi"] = extra["best_phi"]
    state["adam"]["t"] = int(state["adam"]["t"])
    return optimizer, phi, state


@dataclass(frozen=True)
class _Piece:
    """One unroll piece of one task of a meta-update: a plain description a worker can run."""

    optimizer: Optimizer
    family: object
    config: TrainConfig
    index: int                  # the trajectory: its task is family.sample(default_rng([seed, 1, index]))
    piece: int                  # steps piece·unroll + 1 ... (piece + 1)·unroll of its horizon
    phi: dict
    state: object               # the optimizer state the piece starts from; None: init(φ, θ^0)
    frozen: tuple
    imitate: bool = False       # the imitation loss (config.imitation) instead of the meta-loss


@dataclass(frozen=True)
class _Validation:
    """One meta-validation task's score under φ."""

    optimizer: Optimizer
    family: object
    config: TrainConfig
    index: int                  # task j = family.sample(default_rng([seed, 2, j]))
    phi: dict
    per_task: object            # Score.per_task


@functools.lru_cache(maxsize=64)
def _task(family, seed, stream, index):
    """The task drawn from default_rng([seed, stream, index]) (stream 1: training, 2: validation),
    kept for the next pieces of its trajectory, which a worker may run too."""
    return family.sample(numpy.random.default_rng([seed, stream, index]))


def imitates(config, first):
    """Whether the meta-update that starts at trajectory `first` trains on the imitation loss: with
    probability config.imitation, drawn from default_rng([seed, 3, first])."""
    return bool(config.imitation) and numpy.random.default_rng([config.seed, 3, first]).random() < config.imitation


@functools.lru_cache(maxsize=32)
def _teacher(family, config, index):
    """The iterates θ^A_0..θ^A_horizon of Adam at config.imitation_lr on trajectory `index`'s task
    (the teacher of the imitation loss), kept for the next pieces of the trajectory (for up to 32
    tasks per worker and meta-update; beyond that a piece recomputes them: slower, the same result)."""
    hyper = {**adam.init_phi(), "lr": config.imitation_lr}
    return teacher_trajectory(adam, hyper, _task(family, config.seed, 1, index), config.horizon)


def _run_piece(job):
    """(meta-loss, flat meta-gradient with the frozen keys zeroed, final state) of one piece. Overflow
    warnings are silenced: a non-finite result is reported by meta_train as a Diverged."""
    config, t0 = job.config, job.piece * job.config.unroll
    task = _task(job.family, config.seed, 1, job.index)
    teachers = _teacher(job.family, config, job.index)[t0:t0 + config.unroll + 1] if job.imitate else None
    with numpy.errstate(all="ignore"):
        value, grad_phi, state = meta_value_and_grad(
            job.optimizer, job.phi, task, job.state, steps=config.unroll, t0=t0, kind=config.meta_loss,
            weights=piece_weights(config, t0), teachers=teachers)
    g, _ = flatten({k: (v if k not in job.frozen else 0.0 * v) for k, v in grad_phi.items()})
    return value, g, state


def _run_validation(job):
    with numpy.errstate(all="ignore"):
        return job.per_task(job.optimizer, job.phi, _task(job.family, job.config.seed, 2, job.index),
                            job.config)


def _validate(pool, score, optimizer, family, config, phi):
    """φ's validation score: score.per_task on each of the fixed validation tasks (run_jobs), and
    score.summary of the values in task order. It is what score(optimizer, φ, draw_validation_tasks(
    family, config.seed, config.validation_tasks), config) computes here, with the tasks drawn where
    they are scored; the one way meta_train scores φ, with `validation_score` or the score it is given."""
    jobs = [_Validation(optimizer, family, config, j, phi, score.per_task)
            for j in range(config.validation_tasks)]
    return score.summary(run_jobs(pool, _run_validation, jobs))


def start_digest(phi):
    """The SHA-256 digest (hex) of φ's values, flat, in order: how a checkpoint names the φ its run
    started from."""
    return hashlib.sha256(numpy.ascontiguousarray(flatten(phi)[0], dtype=float).tobytes()).hexdigest()


def check_resume(checkpoint, optimizer, family, config, phi=None, frozen=(), validation_family=None):
    """(φ, state) of the checkpoint that meta_train(..., resume=True) would continue, after checking
    that it was made for this optimizer, task family and config (`config.trajectories` may be
    larger: a run may be extended), with these frozen keys, and, if given, from the starting φ `phi`
    and validated on `validation_family`; a ValueError names what differs."""
    start = phi
    optimizer_saved, phi, saved = load_checkpoint(checkpoint)
    if optimizer_saved.name != optimizer.name or optimizer_saved.config != optimizer.config:
        raise ValueError(f"{checkpoint}: checkpoint is for {optimizer_saved.name} "
                         f"{optimizer_saved.config}, not {optimizer.name} {optimizer.config}")
    if saved["family"] is not None and saved["family"] != repr(family):
        raise ValueError(f"{checkpoint}: checkpoint was trained on {saved['family']}, not {family!r}")
    if (validation_family is not None and saved["validation_family"] is not None
            and saved["validation_family"] != repr(validation_family)):
        raise ValueError(f"{checkpoint}: checkpoint was validated on {saved['validation_family']}, not "
                         f"{validation_family!r}: resuming so would keep the best φ of two scores")
    if saved["config"].tasks_per_update != config.tasks_per_update:
        raise ValueError(f"{checkpoint}: checkpoint was made with {saved['config'].tasks_per_update} "
                         f"tasks per update, not {config.tasks_per_update}: resuming with another "
                         f"number would not continue the same run")
    # field by field, not by replace(): the saved config with this run's trajectories (it may extend
    # the run) need not be a valid TrainConfig (another validate_every), and the error is this one
    if {**asdict(saved["config"]), "trajectories": config.trajectories} != asdict(config):
        raise ValueError(f"{checkpoint}: checkpoint was made with {saved['config']}, not {config}")
    if saved["frozen"] is not None and saved["frozen"] != sorted(frozen):
        raise ValueError(f"{checkpoint}: checkpoint's run keeps {saved['frozen'] or 'no arrays of φ'} frozen, "
                         f"not {sorted(frozen) or 'none'}: resuming so would not continue the same run")
    if start is not None and saved["start_digest"] is not None and start_digest(start) != saved["start_digest"]:
        raise ValueError(f"{checkpoint}: checkpoint's run started from another φ than the one given to "
                         f"resume it (its SHA-256 {saved['start_digest'][:12]}..., this one "
                         f"{start_digest(start)[:12]}...): resuming so would not continue the same run")
    return phi, saved


# ------------------------------------------------------------------------------------- the run

@dataclass
class _Run:
    """What a run carries from one meta-update to the next: its checkpoint's state besides φ."""

    adam: dict              # Adam's state on the flat φ: theta (φ itself), m, v, t
    best: Optional[dict]    # the best φ so far (flat), its validation score and trajectory
    history: dict           # meta_loss (one per trajectory), validation_trajectory, validation
    trajectory: int         # trajectories done
    average: Optional[numpy.ndarray] = None   # φ̄, the moving average of φ (flat), with config.average
    start_digest: str = ""  # start_digest of the φ the run started from ("" unknown: an old checkpoint)
    frozen: tuple = ()      # the keys of φ kept as they are


def _averaged(average, flat_phi, config, u):
    """φ̄_u from φ̄_{u−1} and φ_u (flat_phi) after meta-update u = 1, 2, ...: the moving average of
    φ with decay β = config.average, written as an update so that only φ̄ is kept:
        φ̄_u = φ̄_{u−1} + (1 − β) / (1 − β^u) · (φ_u − φ̄_{u−1}),
    which is (1 − β) Σ_{k=1..u} β^{u−k} φ_k / (1 − β^u) (the first step's weight is 1: from φ̄_0 = 0,
    φ̄_1 = φ_1 exactly)."""
    beta = config.average
    return average + (1.0 - beta) / (1.0 - beta ** u) * (flat_phi - average)


def _start(optimizer, family, config, checkpoint, resume, phi, validate, best_path, frozen, validation_family):
    """(the run's state before its next meta-update, the map from flat φ back to φ). resume: the
    checkpoint's state, checked by `check_resume` (its best φ written to best_path again). Otherwise
    a fresh one: φ as given or optimizer.init_phi(default_rng([seed, 0])), Adam's initial state on
    it, no meta-losses yet, and φ's validation score (`validate`): the first best φ, at trajectory 0."""
    if resume:
        phi, saved = check_resume(checkpoint, optimizer, family, config, phi, frozen, validation_family)
        unflatten = flatten(phi)[1]
        if best_path:
            save_phi(best_path, optimizer, unflatten(saved["best"]["phi"]))
        return (_Run(saved["adam"], saved["best"], saved["history"], saved["trajectory"], saved["average"],
                     saved["start_digest"] or "", tuple(sorted(frozen))), unflatten)
    if phi is None:
        phi = optimizer.init_phi(numpy.random.default_rng([config.seed, 0]))
    flat_phi, unflatten = flatten(phi)
    run = _Run(adam=adam.init(None, flat_phi), best=None, trajectory=0,
               history={"meta_loss": [], "validation_trajectory": [], "validation": []},
               average=numpy.zeros_like(flat_phi) if config.average else None,   # φ̄_1 = φ_1 exactly
               start_digest=start_digest(phi), frozen=tuple(sorted(frozen)))
    _validate_and_keep_best(run, phi, flat_phi, validate, optimizer, best_path)
    return run, unflatten


def _meta_update(adam_state, indices, optimizer, family, config, unflatten, frozen, pool, kept):
    """One meta-update on the trajectories `indices` (B fresh tasks), piece by piece of truncated
    BPTT: the B unrolls of the piece from where their previous pieces ended (run_jobs), the mean of
    their meta-gradients, clipped, and one Adam step on φ. Returns (Adam's state, each trajectory's
    meta-loss: the mean of its pieces'). `kept` ends the message of a Diverged or WorkerLost."""
    adam_phi = {**adam.init_phi(), "lr": config.meta_lr}
    states, piece_losses = [None] * len(indices), [[] for _ in indices]
    imitate = imitates(config, indices[0])
    for piece in range(config.horizon // config.unroll):
        phi = unflatten(adam.params(adam_state))
        jobs = [_Piece(optimizer, family, config, i, piece, phi, state, tuple(frozen), imitate)
                for i, state in zip(indices, states)]
        try:
            results = run_jobs(pool, _run_piece, jobs)
        except WorkerLost as e:
            raise WorkerLost(f"{e} during trajectory {indices[0]}"
                             + (f"..{indices[-1]}" if len(indices) > 1 else "") + f"; {kept}") from None
        value, g = _task_mean(results, indices, piece, kept)
        with numpy.errstate(all="ignore"):
            adam_state = adam.update(adam_phi, adam_state, _clipped(g, config.clip), value)
        states = [state for _, _, state in results]
        for losses, (task_value, _, _) in zip(piece_losses, results):
            losses.append(float(task_value))
    return adam_state, [float(numpy.mean(losses)) for losses in piece_losses]


def _task_mean(results, indices, piece, kept):
    """(mean meta-loss, mean meta-gradient) of one piece's results, summed in task order (the same
    sum, bit for bit, however many workers computed them); a non-finite one raises Diverged."""
    for i, (value, g, _) in zip(indices, results):
        if not (numpy.isfinite(value) and numpy.all(numpy.isfinite(g))):
            raise Diverged(f"non-finite meta-{'loss' if not numpy.isfinite(value) else 'gradient'} "
                           f"at trajectory {i}, piece {piece} (meta-loss {value}); {kept}")
    value, g = results[0][0], results[0][1]
    for other_value, other_g, _ in results[1:]:
        value, g = value + other_value, g + other_g
    return value / len(results), g / len(results)


def _clipped(g, clip):
    """g · min(1, clip / ||g||): global gradient-norm clipping (g = 0 stays as it is)."""
    norm = numpy.sqrt(numpy.dot(g, g))
    return g * min(1.0, clip / norm) if norm > 0 else g


def _validate_and_keep_best(run, phi, flat_phi, validate, optimizer, best_path):
    """Score φ (flat: flat_phi) after run.trajectory trajectories with `validate`, add the score to
    the history, and keep φ as the best (also as the weights file best_path) if it scores lower than
    the best so far, as the first score does. Returns the score."""
    value = validate(phi)
    run.history["validation_trajectory"].append(run.trajectory)
    run.history["validation"].append(value)
    if run.best is None or value < run.best["validation"]:
        run.best = {"phi": flat_phi, "validation": value, "trajectory": run.trajectory}
        if best_path:
            save_phi(best_path, optimizer, phi)
    return value


def meta_train(optimizer, family, validation_family, config, checkpoint, resume=False,
               callback=None, phi=None, best_path=None, frozen=(), score=validation_score, pool=None):
    r"""Meta-train `optimizer` on tasks of `family`; returns (best φ, history). With config.average
    the best φ is the best moving average φ̄, and the checkpoint's φ is still φ itself.

    checkpoint: path of the .npz checkpoint (written after every meta-update; also a weights file
    holding the current φ). resume: continue from it, which gives the same result, bit for bit, as a
    run that never stopped (`config.trajectories` may be raised to train on); `frozen` must be the
    run's, and `phi`, if given, the φ it started from (`check_resume`). callback(info) is
    called after every meta-update with a dict of trajectory (done so far), meta_loss (the mean of
    the update's tasks), validation (or None), best_validation, seconds (of the update), imitation
    (whether its meta_loss is the imitation loss, `imitates`). phi: the
    initial φ (default: optimizer.init_phi(default_rng([seed, 0]))). best_path: where to write the
    best φ as a weights file, every time it improves. frozen: top-level keys of φ that stay as they
    are (their meta-gradient is zeroed, so Adam leaves them exactly unchanged): e.g. ("z_f", "z_i")
    to learn only θ^0 with gradient_descent_lstm. score: the validation score, lower is better, an
    evaluation.Score (default: `validation_score`). pool: a concurrent.futures.Executor (see pool.py)
    that runs the unrolls of a meta-update's tasks and the validation tasks; None runs them here.
    The result does not depend on it.
    """
    checkpoint = Path(checkpoint)
    validate = functools.partial(_validate, pool, score, optimizer, validation_family, config)
    run, unflatten = _start(optimizer, family, config, checkpoint, resume, phi, validate, best_path, frozen,
                            validation_family)
    B = config.tasks_per_update
    for first in range(run.trajectory, config.trajectories, B):    # one meta-update: first..first+B-1
        t_start = time.perf_counter()
        kept = (f"{checkpoint} holds the last good state (trajectory {first})" if first > 0
                else "no checkpoint had been written yet")
        run.adam, losses = _meta_update(run.adam, range(first, first + B), optimizer, family, config,
                                        unflatten, frozen, pool, kept)
        run.history["meta_loss"] += losses
        run.trajectory = first + B
        if config.average:
            run.average = _averaged(run.average, adam.params(run.adam), config, run.trajectory // B)
        validation = None
        if run.trajectory % config.validate_every == 0:    # not also at the end: a run extended later
            # must validate where an uninterrupted one does
            flat = adam.params(run.adam) if run.average is None else run.average
            try:
                validation = _validate_and_keep_best(run, unflatten(flat), flat, validate, optimizer,
                                                     best_path)
            except WorkerLost as e:
                raise WorkerLost(f"{e} while validating after trajectory {run.trajectory}; {kept}") from None
        save_phi(checkpoint, optimizer, unflatten(adam.params(run.adam)),
                 extra=_checkpoint_arrays(run, config, family, validation_family))
        if callback:
            callback({"trajectory": run.trajectory, "meta_loss": float(numpy.mean(losses)),
                      "validation": validation, "best_validation": float(run.best["validation"]),
                      "seconds": time.perf_counter() - t_start, "imitation": imitates(config, first)})
    return unflatten(run.best["phi"]), run.history
