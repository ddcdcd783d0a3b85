r"""Meta-training: gradient descent on φ through unrolled optimization.

For trajectory i = 0, 1, ...:
    draw a fresh task from the family (new θ^0, new minibatch order, new quadratic);
    state = init(φ, θ^0);
    for each piece of `unroll` steps of the `horizon` (truncated BPTT, state carried over):
        g = ∂ meta-loss / ∂φ of the piece                       (unroll.meta_value_and_grad)
        g ← g · min(1, clip / ||g||)                            global gradient-norm clipping
        φ ← Adam(φ, g)                                          (optimizers.adam, on the flat φ)
Every `validate_every` trajectories (and before the first) φ is scored on fixed meta-validation
tasks and the best φ so far is kept: early stopping on a validation set, as in Andrychowicz et al.
2016 (sec. 3) and Ravi & Larochelle 2017. The score is, with `validate_on`,
    "meta-loss":  the meta-loss over the whole horizon, no truncation (the default), or
    "final":      the training loss at the end of the horizon, L_{T+1} = f_{T+1}(θ_T), the quantity
                  the baselines' learning rates are tuned on (tuning.py), so that the learned
                  optimizer is selected by the same criterion as its opponents.
Make `trajectories` a multiple of `validate_every`, or the last ones are never validated.

The meta-loss weighs the steps of the horizon with `weights`: "uniform" (w_t = 1/T, the mean; the
paper's w_t = 1 up to scale) or "linear" (w_t = 2t / (T(T + 1)), t = 1..T: the same total, shifted
towards the end of the horizon, so that the optimizer is pushed to keep making progress late
rather than to win early; see `horizon_weights`).

Everything random is a function of (seed, trajectory index): trajectory i's task is drawn from
numpy.random.default_rng([seed, 1, i]) and validation task j from default_rng([seed, 2, j]). The
"RNG state" is therefore the trajectory counter, and a run resumed from its checkpoint replays
exactly what an uninterrupted run would have done: the same φ, bit for bit (on the same machine,
BLAS build and thread count; floating-point sums are not associative).

A checkpoint (written atomically after every trajectory) holds φ, the Adam state, the best φ and
its validation score, the trajectory counter, the history of meta-losses and validation scores, and
the config. A NaN or inf in a meta-loss or meta-gradient stops the run with a `Diverged` naming the
trajectory and piece; the checkpoint on disk is then still the last good one.
"""
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy
from autograd.misc.flatten import flatten

from .optimizers import adam
from .serialization import load_phi, save_phi
from .unroll import KINDS, meta_loss, meta_value_and_grad, unroll

__all__ = ["TrainConfig", "VALIDATE_ON", "WEIGHTS", "Diverged", "horizon_weights", "piece_weights",
           "meta_train", "validation_score", "draw_validation_tasks", "load_checkpoint"]


VALIDATE_ON = ("meta-loss", "final")      # what early stopping scores on the validation tasks
WEIGHTS = ("uniform", "linear")           # how the meta-loss weighs the steps of the horizon


@dataclass(frozen=True)
class TrainConfig:
    trajectories: int = 1000      # number of fresh tasks to meta-train on
    horizon: int = 100            # optimization steps per trajectory
    unroll: int = 20              # truncation: steps per meta-gradient (horizon is a multiple)
    meta_lr: float = 1e-3         # Adam's learning rate on φ
    clip: float = 1.0             # global gradient-norm clipping threshold
    meta_loss: str = "sum"        # "sum" (Andrychowicz), "log" (of the loss) or "heldout" (Ravi)
    validate_every: int = 25      # trajectories between meta-validations (K)
    validation_tasks: int = 8     # fixed meta-validation tasks
    seed: int = 0                 # all randomness derives from it
    validate_on: str = "meta-loss"  # early-stopping score: "meta-loss" or "final" (see above)
    weights: str = "uniform"      # the meta-loss's weights over the horizon (see above)

    def __post_init__(self):
        for name in ("trajectories", "horizon", "unroll", "validate_every", "validation_tasks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.horizon % self.unroll:
            raise ValueError(f"horizon {self.horizon} is not a multiple of unroll {self.unroll}")
        if not (self.meta_lr > 0 and self.clip > 0):
            raise ValueError(f"meta_lr ({self.meta_lr}) and clip ({self.clip}) must be positive")
        if self.meta_loss not in KINDS:
            raise ValueError(f"unknown meta-loss {self.meta_loss!r}; expected one of {KINDS}")
        if self.validate_on not in VALIDATE_ON:
            raise ValueError(f"unknown validation score {self.validate_on!r}; expected one of {VALIDATE_ON}")
        if self.weights not in WEIGHTS:
            raise ValueError(f"unknown meta-loss weights {self.weights!r}; expected one of {WEIGHTS}")
        if self.meta_loss == "heldout" and self.weights != "uniform":
            raise ValueError(f"the held-out meta-loss is one loss at θ_T: it has no weights over "
                             f"steps to be {self.weights!r}")
        if self.meta_loss == "heldout" and self.horizon != self.unroll:
            raise ValueError(f"the held-out meta-loss is taken at θ_T once per trajectory: horizon "
                             f"({self.horizon}) must equal unroll ({self.unroll})")


class Diverged(RuntimeError):
    """A non-finite meta-loss or meta-gradient; the last good checkpoint is kept."""


def horizon_weights(config):
    r"""The meta-loss weights w_1..w_T over the horizon T, or None for "uniform" (w_t = 1/T, which
    `meta_loss` uses by default). "linear": w_t = 2t / (T(T + 1)), which also sums to 1."""
    if config.weights == "uniform":
        return None
    t = numpy.arange(1, config.horizon + 1)
    return 2.0 * t / (config.horizon * (config.horizon + 1))


def piece_weights(config, t0):
    r"""The weights of the piece of `config.unroll` steps that starts at step t0: the horizon's
    weights times horizon / unroll, so that uniform weights give every piece its own mean (1/unroll
    per step, `meta_loss`'s default); None for "uniform"."""
    w = horizon_weights(config)
    return None if w is None else w[t0:t0 + config.unroll] * (config.horizon / config.unroll)


def validation_score(optimizer, phi, tasks, config):
    """Mean over `tasks` of the meta-loss over the whole horizon (no truncation, no gradient), or
    with config.validate_on == "final" of the training loss after the last step, L_{T+1}."""
    if config.validate_on == "final":
        return float(numpy.mean([unroll(optimizer, phi, task, optimizer.init(phi, task.theta0),
                                        config.horizon)[0][-1] for task in tasks]))
    return float(numpy.mean([meta_loss(optimizer, phi, task, steps=config.horizon, kind=config.meta_loss,
                                       weights=horizon_weights(config))[0] for task in tasks]))


def draw_validation_tasks(family, seed, count):
    """The first `count` meta-validation tasks of a run with `seed`: task j from default_rng([seed, 2, j])
    (more tasks extend the list; the first ones stay the same)."""
    return [family.sample(numpy.random.default_rng([seed, 2, j])) for j in range(count)]


def _checkpoint_arrays(phi_adam, best, history, config, trajectory, family):
    arrays = {f"adam/{k}": numpy.asarray(v) for k, v in phi_adam.items()}
    arrays.update({f"best/{k}": numpy.asarray(v) for k, v in best.items() if k != "phi"})
    arrays["best_phi"] = best["phi"]
    arrays.update({f"history/{k}": numpy.asarray(v, dtype=float) for k, v in history.items()})
    arrays["trajectory"] = numpy.asarray(trajectory)
    arrays["train_config"] = numpy.array(json.dumps(asdict(config)))
    arrays["family"] = numpy.array(repr(family))
    return arrays


def load_checkpoint(path):
    """(optimizer, φ, state dict) from a checkpoint written by meta_train."""
    optimizer, phi, extra = load_phi(path)
    state = {"adam": {k[5:]: extra[k] for k in extra if k.startswith("adam/")},
             "best": {k[5:]: extra[k] for k in extra if k.startswith("best/")},
             "history": {k[8:]: list(extra[k]) for k in extra if k.startswith("history/")},
             "trajectory": int(extra["trajectory"]),
             "config": TrainConfig(**json.loads(str(extra["train_config"]))),
             "family": str(extra["family"]) if "family" in extra else None}
    state["best"]["phi"] = extra["best_phi"]
    state["adam"]["t"] = int(state["adam"]["t"])
    return optimizer, phi, state


def meta_train(optimizer, family, validation_family, config, checkpoint, resume=False,
               callback=None, phi=None, best_path=None, frozen=(), score=validation_score):
    r"""Meta-train `optimizer` on tasks of `family`; returns (best φ, history).

    checkpoint: path of the .npz checkpoint (written after every trajectory; also a weights file
    holding the current φ). resume: continue from it, which gives the same result, bit for bit, as a
    run that never stopped (`config.trajectories` may be raised to train on). callback(info) is called after every trajectory with a dict of
    trajectory, meta_loss, validation (or None), best_validation, seconds. phi: the initial φ
    (default: optimizer.init_phi(default_rng([seed, 0]))). best_path: where to write the best φ
    as a weights file, every time it improves. frozen: top-level keys of φ that stay as they are
    (their meta-gradient is zeroed, so Adam leaves them exactly unchanged): e.g. ("z_f", "z_i") to
    learn only θ^0 with gradient_descent_lstm. score(optimizer, φ, tasks, config): the validation
    score, lower is better (default: `validation_score`, the meta-loss).
    """
    checkpoint = Path(checkpoint)
    validation_tasks = draw_validation_tasks(validation_family, config.seed, config.validation_tasks)
    if resume:
        optimizer_saved, phi, saved = load_checkpoint(checkpoint)
        if optimizer_saved.name != optimizer.name or optimizer_saved.config != optimizer.config:
            raise ValueError(f"{checkpoint}: checkpoint is for {optimizer_saved.name} "
                             f"{optimizer_saved.config}, not {optimizer.name} {optimizer.config}")
        if saved["family"] is not None and saved["family"] != repr(family):
            raise ValueError(f"{checkpoint}: checkpoint was trained on {saved['family']}, not {family!r}")
        if replace(saved["config"], trajectories=config.trajectories) != config:  # may extend a run
            raise ValueError(f"{checkpoint}: checkpoint was made with {saved['config']}, not {config}")
        flat_phi, unflatten = flatten(phi)
        adam_state, best, history, start = saved["adam"], saved["best"], saved["history"], saved["trajectory"]
    else:
        if phi is None:
            phi = optimizer.init_phi(numpy.random.default_rng([config.seed, 0]))
        flat_phi, unflatten = flatten(phi)
        adam_state = adam.init(None, flat_phi)
        history = {"meta_loss": [], "validation_trajectory": [], "validation": []}
        value = score(optimizer, phi, validation_tasks, config)
        best = {"phi": flat_phi, "validation": value, "trajectory": 0}
        if best_path:
            save_phi(best_path, optimizer, phi)
        history["validation_trajectory"].append(0)
        history["validation"].append(value)
        start = 0
    adam_phi = {**adam.init_phi(), "lr": config.meta_lr}

    for i in range(start, config.trajectories):
        t_start = time.perf_counter()
        task = family.sample(numpy.random.default_rng([config.seed, 1, i]))
        state, piece_losses = None, []
        for piece in range(config.horizon // config.unroll):
            phi = unflatten(adam.params(adam_state))
            value, grad_phi, state = meta_value_and_grad(
                optimizer, phi, task, state, steps=config.unroll, t0=piece * config.unroll,
                kind=config.meta_loss, weights=piece_weights(config, piece * config.unroll))
            g, _ = flatten({k: (v if k not in frozen else 0.0 * v) for k, v in grad_phi.items()})
            if not (numpy.isfinite(value) and numpy.all(numpy.isfinite(g))):
                raise Diverged(f"non-finite meta-{'loss' if not numpy.isfinite(value) else 'gradient'} "
                               f"at trajectory {i}, piece {piece} (meta-loss {value}); "
                               f"{checkpoint} holds the last good state")
            norm = numpy.sqrt(numpy.dot(g, g))
            g = g * min(1.0, config.clip / norm) if norm > 0 else g
            adam_state = adam.update(adam_phi, adam_state, g, value)
            piece_losses.append(float(value))
        history["meta_loss"].append(float(numpy.mean(piece_losses)))
        validation = None
        if (i + 1) % config.validate_every == 0:    # not also at the end: a run extended later
            # must validate where an uninterrupted one does
            flat = adam.params(adam_state)
            validation = score(optimizer, unflatten(flat), validation_tasks, config)
            history["validation_trajectory"].append(i + 1)
            history["validation"].append(validation)
            if validation < best["validation"]:
                best = {"phi": flat, "validation": validation, "trajectory": i + 1}
                if best_path:
                    save_phi(best_path, optimizer, unflatten(flat))
        save_phi(checkpoint, optimizer, unflatten(adam.params(adam_state)),
                 extra=_checkpoint_arrays(adam_state, best, history, config, i + 1, family))
        if callback:
            callback({"trajectory": i + 1, "meta_loss": history["meta_loss"][-1],
                      "validation": validation, "best_validation": float(best["validation"]),
                      "seconds": time.perf_counter() - t_start})
    return unflatten(best["phi"]), history
