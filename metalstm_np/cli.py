r"""The `metalstm` command (also `python -m metalstm_np`).

    metalstm demo       SGD and gradient descent written as an LSTM, side by side on an MNIST MLP
    metalstm evaluate   one optimizer on fresh tasks: per-step mean losses and the final loss
    metalstm train      meta-train a learned optimizer (checkpoints, --resume, early stopping)
    metalstm fewshot train   meta-train for few-shot learning on rotated MNIST (Ravi & Larochelle)
    metalstm fewshot evaluate   E5 alone: every few-shot method's accuracy, the gate figure
    metalstm tune       tune the baselines' learning rates for every experiment's task family
    metalstm figures    regenerate every figure and figures/results.json from the shipped weights

Every user error (bad flag, bad value, missing or malformed weights file, weights that do not fit
the optimizer) prints one line `metalstm: error: ...` and exits with status 2; no traceback.
A run that seems stuck can be asked where it is: `kill -USR1 PID` (the command or one of its
workers) prints the stack of each of that process's threads to stderr, and the run goes on.
"""
import argparse
import contextlib
import json
import os
import shlex
import signal
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy

from .data import IDXError
from .evaluation import EVAL_SEED, TUNE_SEED, run_on_tasks
from .l2l import PREPROCESS
from .learners import ACTIVATIONS, MLP, Mixture, PlusSquare, Quadratic, RandomlyScaled
from .meta_lstm import init_phi_with_step
from .meta_train import (VALIDATE_ON, WEIGHTS, Diverged, TrainConfig, check_resume, load_checkpoint,
                         meta_train)
from .pool import PoolError, check_scheduler_address, executor, print_stacks_on_sigusr1, run_jobs
from .rnnprop import INPUTS as RNNPROP_INPUTS
from .optimizers import MAX_LIST, make_optimizer, optimizer_names
from .serialization import WeightsError, atomic_write_text, load_phi, save_phi
from .unroll import ALIASES, KINDS

__all__ = ["main"]


class UsageError(Exception):
    """A user error; main() prints it as one line and exits with status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _checked(convert, ok, what):
    """An argparse type: convert(text), accepted if ok(value), else an error naming `what` and the text."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


def _count(top, what="a positive integer"):
    """An argparse type: a whole number from 1 to `top` (so that no count can ask for unbounded
    time or memory before anything is checked)."""
    return _checked(int, lambda v: 1 <= v <= top, f"{what} from 1 to {top:,}")


_steps = _count(100_000)                  # optimization steps, horizons, unrolls
_many = _count(10_000_000)                # trajectories
_tasks = _count(100_000)                  # runs, validation tasks, tasks per update
_workers = _count(64)
_width = _count(4_096)                    # layer sizes
_depth = _count(64)                       # layers
_seed = _checked(int, lambda v: v >= 0, "a non-negative integer seed")
_positive_float = _checked(float, lambda v: bool(numpy.isfinite(v)) and v > 0, "a positive number")
_nonnegative_float = _checked(float, lambda v: bool(numpy.isfinite(v)) and v >= 0, "a number ≥ 0")
_gate = _checked(float, lambda v: 0 < v < 1, "a gate value strictly between 0 and 1")


def _name_max(folder):
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _check_path_names(text, flag):
    """Path(text), refused if empty, with a component too long for the file system, or under a file."""
    if str(text) == "":
        raise UsageError(f"{flag} '': expected a path")
    path = Path(text)
    too_long = f"{flag} {str(path)[:60]}...: the path is longer than the file system allows"
    if len(os.fsencode(path.absolute())) >= 4096:
        raise UsageError(too_long)
    for part in path.parts:
        if len(part.encode()) > _name_max(path.anchor or "."):
            raise UsageError(f"{flag} {path}: the name {part[:20]}... is longer than the file system allows")
    try:
        for parent in path.parents:
            if parent.exists() and not parent.is_dir():
                raise UsageError(f"{flag} {path}: {parent} is a file, not a folder")
    except OSError:
        raise UsageError(too_long) from None
    return path


def _writable_folder(text, flag="--out"):
    """The output folder `text`, created if need be and checked to be writable before any work."""
    path = _check_path_names(text, flag)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path}: exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise UsageError(f"{flag} {path}: cannot write there ({e.strerror or e})") from None
    return path


def _writable_file(text, flag="--out"):
    """The output file `text`: not a folder, a device or under a file, its folder writable."""
    path = _check_path_names(text, flag)
    if path.exists() and not path.is_file():
        raise UsageError(f"{flag} {path}: exists and is not a regular file")
    _writable_folder(path.parent if str(path.parent) else ".", flag=f"{flag} {path}: its folder")
    return path


MLP_FLAGS = {"hidden": 20, "layers": 1, "activation": "sigmoid", "batch": 128}   # and their defaults


def add_task_arguments(parser):
    """--task and the MLP's flags, shared by every subcommand that samples tasks."""
    parser.add_argument("--task", choices=["quadratic", "mlp"], default="mlp",
                        help="10-d random quadratics, or an MLP on MNIST (default)")
    parser.add_argument("--hidden", type=_width, default=None, help="MLP units per hidden layer (20)")
    parser.add_argument("--layers", type=_depth, default=None, help="MLP hidden layers (1)")
    parser.add_argument("--activation", choices=sorted(ACTIVATIONS), default=None, help="MLP activation (sigmoid)")
    parser.add_argument("--batch", type=_tasks, default=None, help="MLP minibatch size (128)")


def family_from_args(args, split="train"):
    """The task family the flags describe; MLP minibatches come from `split`. The MLP's flags are
    refused on the quadratics, which they would not change."""
    given = {name: getattr(args, name) for name in MLP_FLAGS if getattr(args, name) is not None}
    count = getattr(args, "quadratics", None)
    if args.task == "quadratic":
        if given:
            raise UsageError(f"--{next(iter(given))} is a flag of --task mlp; the quadratics do not use it")
        return Quadratic(count=count or 1)
    if count is not None:
        raise UsageError(f"--quadratics {count} is a flag of --task quadratic; the MLP does not use it")
    size = {**MLP_FLAGS, **given}
    n_params = 784 * size["hidden"] + (size["layers"] - 1) * size["hidden"] ** 2 + 10 * size["hidden"]   # weights
    if n_params > 10_000_000:          # a learned optimizer keeps ~80 floats per parameter: ~3 GB
        raise UsageError(f"an MLP of {size['layers']} × {size['hidden']} units has about {n_params:,} "
                         f"parameters: a learned optimizer's state alone would need about "
                         f"{n_params * 320 / 2**30:.0f} GB (at most 10,000,000 parameters are accepted)")
    return MLP(hidden=(size["hidden"],) * size["layers"], activation=size["activation"], batch=size["batch"],
               split=split)


def optimizer_from_args(args):
    """(optimizer, φ) from --optimizer, --lr and --weights."""
    if args.weights:
        optimizer, phi, _ = load_phi(args.weights, expect=args.optimizer)
    elif make_optimizer(args.optimizer).learned:
        raise UsageError(f"--optimizer {args.optimizer} is learned: give its weights with --weights FILE.npz")
    else:
        optimizer = make_optimizer(args.optimizer)
        phi = optimizer.init_phi(numpy.random.default_rng(0))
    if args.lr is not None:
        key = "z_i" if "z_i" in phi else "lr"
        if key not in phi:
            raise UsageError(f"--lr does not apply to --optimizer {args.optimizer}")
        phi[key] = args.lr
    return optimizer, phi


def _finite_or_none(x):
    return float(x) if numpy.isfinite(x) else None


def cmd_evaluate(args):
    if args.seed in (0, TUNE_SEED):
        raise UsageError(f"--seed {args.seed} draws the training or tuning tasks; use another")
    optimizer, phi = optimizer_from_args(args)
    family = family_from_args(args)
    if "c_0" in phi:                       # a learned θ^0 fits one learner only
        n = family.n_params
        if numpy.shape(phi["c_0"]) != (n,):
            raise UsageError(f"--weights {args.weights}: its learned θ^0 has {numpy.size(phi['c_0'])} "
                             f"parameters; this learner has {n}")
    with numpy.errstate(all="ignore"), _bar(args.runs, "evaluating", "task") as bar:
        losses, _, _ = run_on_tasks(optimizer, phi, family, args.steps, args.runs, args.seed, progress=bar.update)
    final = losses[:, -1]
    with numpy.errstate(all="ignore"):
        mean_per_step, final_mean, final_std = losses.mean(axis=0), final.mean(), final.std()
    bad = ~numpy.isfinite(losses)
    diverged = int(numpy.argmax(bad.any(axis=0))) if bad.any() else None   # the first step with a non-finite loss
    result = {"optimizer": args.optimizer, "task": args.task, "steps": args.steps, "runs": args.runs,
              "seed": args.seed, "phi_hyperparameters": {} if optimizer.learned else {
                  k: float(v) for k, v in phi.items() if numpy.ndim(v) == 0},
              "mean_loss_per_step": [_finite_or_none(v) for v in mean_per_step],
              "final_loss_mean": _finite_or_none(final_mean), "final_loss_std": _finite_or_none(final_std),
              "diverged_at_step": diverged,
              "diverged_runs": int(bad.any(axis=1).sum())}
    if args.json:
        print(json.dumps(result, allow_nan=False))        # strict JSON: null, never NaN or Infinity
        return
    print(f"{args.optimizer} on {args.task}: {args.runs} runs of {args.steps} steps, seed {args.seed}")
    print(" step  mean loss")
    for t, value in enumerate(result["mean_loss_per_step"]):
        print(f"{t:5d}  {'diverged' if value is None else f'{value:.6g}'}")
    if diverged is not None:
        print(f"final loss: diverged ({result['diverged_runs']} of {args.runs} runs; the first non-finite loss "
              f"at step {diverged})")
    else:
        print(f"final loss: {final_mean:.6g} ± {final_std:.3g} (mean ± std over runs)")


def cmd_demo(args):
    """SGD and the LSTM with z^f = 1, z^i = η, on the same MNIST MLP task: the same losses, bit for bit."""
    sgd = make_optimizer("sgd")
    gd_lstm = make_optimizer("gd_lstm", z_f=1.0, z_i=args.lr)
    phi_sgd = {"lr": args.lr, "weight_decay": 0.0}
    family = MLP(split="train")
    with numpy.errstate(all="ignore"):
        runs = [run_on_tasks(opt, phi, family, args.steps, 1, args.seed)[0][0]
                for opt, phi in ((sgd, phi_sgd), (gd_lstm, gd_lstm.init_phi()))]
    if not (numpy.all(numpy.isfinite(runs[0])) and numpy.all(numpy.isfinite(runs[1]))):
        raise UsageError(f"--lr {args.lr}: gradient descent diverged (a non-finite loss); try a smaller --lr")
    print(f"MNIST MLP 784-20-10 (sigmoid), batch 128, η = {args.lr}, seed {args.seed}")
    print(" step          SGD   LSTM (z^f=1, z^i=η)   difference")
    for t, (a, b) in enumerate(zip(*runs)):
        if t % max(1, args.steps // 20) == 0 or t == args.steps:
            print(f"{t:5d}  {a:11.8f}  {b:20.8f}   {a - b:10.3g}")
    diff = numpy.max(numpy.abs(runs[0] - runs[1]))
    print(f"largest difference over {args.steps} steps: {diff:g}"
          + (" (identical: the LSTM with these gates is SGD)" if diff == 0 else ""))


def _sizes(text):
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 20,20, got {text!r}") from None
    if not sizes or min(sizes) < 1 or max(sizes) > 4096 or len(sizes) > 16:
        raise argparse.ArgumentTypeError(f"expected up to 16 sizes from 1 to 4,096 like 20,20, got {text!r}")
    return sizes


def _fractions(text):
    """An argparse type: comma-separated numbers in [0, 1), like 0.5,0.99 (as many as a config's list may hold)."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if not values or len(values) > MAX_LIST or not all(0 <= v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected up to {MAX_LIST} numbers in [0, 1) like 0.5,0.99, got {text!r}")
    return values


def _train_config(args, **overrides):
    """The TrainConfig from the flags; `overrides` set the fields a subcommand has no flag for."""
    names = ("trajectories", "horizon", "unroll", "meta_lr", "clip", "meta_loss", "validate_every",
             "validation_tasks", "seed", "validate_on", "weights", "tasks_per_update",
             "validation_horizon", "imitation", "imitation_lr", "average")
    return TrainConfig(**{name: overrides[name] if name in overrides else getattr(args, name)
                          for name in names})


def run_training(args, optimizer, family, validation, config, **meta_train_options):
    """meta_train into --out with a progress bar and a log; refuses to overwrite a checkpoint."""
    if config.seed in (EVAL_SEED, TUNE_SEED):
        raise UsageError(f"--seed {config.seed} draws the evaluation or tuning tasks; train with another")
    out = _writable_folder(args.out)
    checkpoint = out / "checkpoint.npz"
    if checkpoint.exists() and not args.resume:
        raise UsageError(f"{checkpoint} exists: add --resume to continue it, or choose another --out")
    if args.resume and not checkpoint.exists():
        raise UsageError(f"--resume: no checkpoint at {checkpoint}")
    for name in ("checkpoint.npz", "best.npz", "log.txt", "command.txt", ".lock"):
        if (out / name).exists() and not (out / name).is_file():
            raise UsageError(f"--out {out}: {out / name} is a folder; this run writes a file there")
    if args.resume:
        try:                                      # before the bar; a starting φ given must be the run's
            done = check_resume(checkpoint, optimizer, family, config, meta_train_options.get("phi"),
                                meta_train_options.get("frozen", ()), validation)[1]["trajectory"]
        except ValueError as e:
            raise UsageError(f"--resume: {e}") from None
        if config.trajectories < done:
            raise UsageError(f"--trajectories {config.trajectories} is fewer than the {done} the checkpoint "
                             f"in {out} has already done; give at least {done}")
    with _lock(out):
        _train_into(args, out, checkpoint, optimizer, family, validation, config, done if args.resume else 0,
                    **meta_train_options)


@contextlib.contextmanager
def _lock(out):
    """out/.lock, created atomically and holding this PID, while a run writes into `out`: a second
    run into the same folder is refused; a lock left by a process that no longer exists is taken over."""
    lock = out / ".lock"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid > 0 and _process_exists(pid):
                raise UsageError(f"--out {out}: another run (PID {pid}) is writing into it; wait for it "
                                 f"or choose another --out") from None
            lock.unlink(missing_ok=True)                    # stale: its process is gone
    else:
        raise UsageError(f"--out {out}: could not take its lock file {lock}")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()}\n")
        yield
    finally:
        lock.unlink(missing_ok=True)


def _process_exists(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:                 # it exists, owned by another user
        pass
    return True


def _train_into(args, out, checkpoint, optimizer, family, validation, config, done, **meta_train_options):
    with open(out / "command.txt", "a") as f:
        f.write("metalstm " + " ".join(shlex.quote(a) for a in args.argv) + "\n")
    bar = _bar(config.trajectories, "meta-training", "traj")
    log = open(out / "log.txt", "a")
    started = {}

    def report(info):
        if not started:
            started.update(at=time.perf_counter() - info["seconds"], trajectory=bar.n)
        bar.n = info["trajectory"]
        per_hour = 3600 * (info["trajectory"] - started["trajectory"]) / (time.perf_counter() - started["at"])
        bar.set_postfix(traj_per_h=f"{per_hour:.0f}", meta_loss=f"{info['meta_loss']:.4g}",
                        best_val=f"{info['best_validation']:.4g}")
        bar.refresh()
        kind = "imitation-loss" if info["imitation"] else "meta-loss"
        line = (f"trajectory {info['trajectory']:6d}  {kind} {info['meta_loss']:.6g}  "
                f"seconds {info['seconds']:.2f}")
        if info["validation"] is not None:
            line += f"  validation {info['validation']:.6g}  best {info['best_validation']:.6g}"
        log.write(line + "\n")
        log.flush()

    try:
        bar.update(done)                          # trajectories a resumed run has already done
        with _pool(args, default=1) as pool:      # W = 1 too: BLAS on one thread, as with W = 2
            _, history = meta_train(optimizer, family, validation, config, checkpoint, resume=args.resume,
                                    callback=report, best_path=out / "best.npz", pool=pool,
                                    **meta_train_options)
    except (Diverged, PoolError) as e:
        raise UsageError(str(e)) from None
    finally:
        bar.close()
        log.close()
    scores = history["validation"]
    worst = max(scores[1:], default=scores[0])
    if worst > EXPLODED * max(abs(scores[0]), 1.0):
        raise UsageError(f"the meta-training exploded: a validation score reached {worst:.3g}, against "
                         f"{scores[0]:.3g} before training (try a smaller --meta-lr); {out / 'best.npz'} "
                         f"holds the best φ, from trajectory {_best_trajectory(checkpoint)}")
    print(f"best φ: {out / 'best.npz'}; checkpoint: {checkpoint}; log: {out / 'log.txt'}")


# where the re-checks on other evaluation seeds are kept: `figures --only e1,e2,e3,e4,e6 --eval-seed 3000
# --out figures/seed3000` and `fewshot evaluate --eval-seed 4000 --out figures/fewshot_seed4000`
RECHECK = ("seed3000/results.json", "fewshot_seed4000/fewshot_results.json")
EXPLODED = 1000.0     # a validation score this many times the untrained φ's (or 1) is reported


def _best_trajectory(checkpoint):
    return int(load_checkpoint(checkpoint)[2]["best"]["trajectory"])


def _optimizer_to_train(args):
    """The optimizer `metalstm train` meta-trains, from the flags; flags of another optimizer are refused."""
    own = {"l2l": {"preprocess": "log_sign", "output_scale": None},
           "rnnprop": {"step": None, "inputs": "moments", "unbounded": False, "nominal": 0.0,
                       "hypergradient": 0.0, "timescales": ()}}
    for name, flags in own.items():
        for flag, default in flags.items():
            if args.optimizer != name and getattr(args, flag) != default:
                raise UsageError(f"--{flag.replace('_', '-')} is an option of --optimizer {name}, "
                                 f"not of --optimizer {args.optimizer}")
    if args.optimizer == "l2l":
        return make_optimizer("l2l", hidden=args.lstm_hidden, p=args.p, dtype=args.dtype,
                              output_scale=0.1 if args.output_scale is None else args.output_scale,
                              preprocess=args.preprocess)
    if args.hypergradient and getattr(args, "imitation", 0):
        raise UsageError(f"--hypergradient {args.hypergradient} adapts α from the optimizer's own last step; "
                         f"--imitation {args.imitation} feeds it the gradients at Adam's iterates, where "
                         f"that step was not taken: give one of the two")
    if args.optimizer == "rnnprop":
        return make_optimizer("rnnprop", hidden=args.lstm_hidden, p=args.p, dtype=args.dtype,
                              step=0.1 if args.step is None else args.step, inputs=args.inputs,
                              bounded=not args.unbounded, nominal=args.nominal,
                              hypergradient=args.hypergradient, timescales=args.timescales)
    if len(args.lstm_hidden) != 1:
        raise UsageError(f"--optimizer metalstm has one LSTM layer before the gates: --lstm-hidden "
                         f"takes one size, got {','.join(map(str, args.lstm_hidden))}")
    return make_optimizer("metalstm", hidden=args.lstm_hidden[0], p=args.p, dtype=args.dtype)


def _training_family(args):
    """The family meta-training draws from: the flags' tasks, with the remedies of Lv et al. 2017 if
    asked for (--random-scaling R, --plus-square DIM); validation always uses the plain tasks."""
    family = family_from_args(args, split="train")
    if args.random_scaling is not None:
        family = RandomlyScaled(family, r=args.random_scaling)
    if args.plus_square is not None:
        family = PlusSquare(family, dim=args.plus_square)
    return family


def _validation_family(args):
    """The family of the meta-validation tasks: the flags' tasks on the validation split, or with
    --validation-families a Mixture of the MLPs it names (the --batch of the flags)."""
    if not args.validation_families:
        return family_from_args(args, split="validation")
    if args.task == "quadratic":
        raise UsageError(f"--validation-families {','.join(map(_mlp_spec_text, args.validation_families))} "
                         f"names MLPs; --task quadratic validates on quadratics")
    if len(args.validation_families) == 1:
        raise UsageError(f"--validation-families {_mlp_spec_text(args.validation_families[0])}: name at least "
                         f"two MLPs to mix (for one, use --hidden, --layers and --activation)")
    batch = args.batch if args.batch is not None else MLP_FLAGS["batch"]
    return Mixture(tuple(MLP((hidden,) * layers, activation, batch=batch, split="validation")
                         for hidden, layers, activation in args.validation_families))


def _mlp_specs(text):
    """--validation-families: comma-separated MLPs HIDDEN[xLAYERS]:ACTIVATION, e.g. 20:sigmoid,20x2:relu."""
    specs = []
    for item in text.split(","):
        size, _, activation = item.strip().partition(":")
        hidden, _, layers = size.partition("x")
        try:
            spec = (int(hidden), int(layers or 1), activation)
        except ValueError:
            spec = None
        if (spec is None or not 1 <= spec[0] <= 10_000 or not 1 <= spec[1] <= 10
                or activation not in ACTIVATIONS or len(specs) >= MAX_LIST):
            raise argparse.ArgumentTypeError(
                f"expected up to {MAX_LIST} MLPs HIDDEN[xLAYERS]:ACTIVATION (hidden 1-10000, layers 1-10, "
                f"activation one of {', '.join(sorted(ACTIVATIONS))}) like 20:sigmoid,20x2:relu; "
                f"{item.strip()!r} in {text!r} is not one")
        specs.append(spec)
    return tuple(specs)


def _mlp_spec_text(spec):
    hidden, layers, activation = spec
    return f"{hidden}{f'x{layers}' if layers > 1 else ''}:{activation}"


def cmd_train(args):
    optimizer = _optimizer_to_train(args)
    if args.imitation_lr is None:
        args.imitation_lr = TrainConfig().imitation_lr
    elif not args.imitation:
        raise UsageError(f"--imitation-lr {args.imitation_lr} is the rate of the Adam that --imitation "
                         f"imitates; give --imitation P > 0 too")
    phi = None
    if args.eta is not None:
        if args.optimizer != "metalstm":
            raise UsageError(f"--eta {args.eta} sets the meta-LSTM's initial input gate z^i; "
                             f"--optimizer {args.optimizer} has no such gate")
        phi = init_phi_with_step(optimizer, numpy.random.default_rng([args.seed, 0]), args.eta)
    if args.init_from:
        if args.eta is not None:
            raise UsageError(f"--init-from {args.init_from} gives the initial φ: drop --eta {args.eta}")
        saved, phi, _ = load_phi(args.init_from, expect=optimizer.name)
        if saved.config != optimizer.config:
            raise UsageError(f"--init-from {args.init_from}: its optimizer is {saved.name} {saved.config}, "
                             f"the flags describe {optimizer.name} {optimizer.config}")
    run_training(args, optimizer, _training_family(args), _validation_family(args), _train_config(args), phi=phi)


def cmd_fewshot_train(args):
    """Ravi & Larochelle's setting: T steps on the support set, meta-loss on the query set at θ^T,
    learned θ^0, early stopping on meta-validation accuracy."""
    from . import fewshot, fewshot_baselines
    if len(args.lstm_hidden) != 1:
        raise UsageError(f"--lstm-hidden takes one size (the meta-LSTM's first layer), got "
                         f"{','.join(map(str, args.lstm_hidden))}")
    steps = args.steps or (12 if args.shots == 1 else 8)
    benchmark = fewshot.BENCHMARKS[args.benchmark]
    family = fewshot.Episodes(n_way=args.ways, k_shot=args.shots, split="train", **benchmark)
    validation = fewshot.Episodes(n_way=args.ways, k_shot=args.shots, split="validation", **benchmark)
    config = _train_config(args, horizon=steps, unroll=steps, meta_loss="heldout", validate_on="meta-loss",
                           weights="uniform", validation_horizon=None, imitation=0.0,
                           imitation_lr=TrainConfig().imitation_lr, average=TrainConfig().average)
    learn = not args.fixed_theta0
    init_rng = numpy.random.default_rng([args.seed, 0])
    if args.optimizer == "metalstm":
        optimizer = make_optimizer("metalstm", hidden=args.lstm_hidden[0], p=args.p, dtype=args.dtype,
                                   learn_theta0=learn, n_params=family.n_params if learn else None)
        phi = init_phi_with_step(optimizer, init_rng, args.eta) if args.eta else None
        frozen = ()
    else:                        # gradient descent as an LSTM: only θ^0 is learned (first-order MAML)
        if not learn:
            raise UsageError("--optimizer gd_lstm learns nothing but θ^0: drop --fixed-theta0")
        optimizer = make_optimizer("gd_lstm", z_f=1.0, z_i=args.eta or 0.1, learn_theta0=True,
                                   n_params=family.n_params)
        phi, frozen = optimizer.init_phi(init_rng), ("z_f", "z_i")
    if args.theta0_from:
        if not learn:
            raise UsageError(f"--theta0-from {args.theta0_from} sets the learned θ^0: drop --fixed-theta0")
        phi = phi if phi is not None else optimizer.init_phi(init_rng)    # what meta_train would draw
        phi = {**phi, "c_0": theta0_from(args.theta0_from, phi["c_0"])}
    if args.freeze_theta0:
        if args.optimizer != "metalstm" or not args.theta0_from:
            raise UsageError("--freeze-theta0 keeps the θ^0 of --theta0-from and trains only the "
                             "meta-LSTM: it needs --theta0-from and --optimizer metalstm")
        frozen = ("c_0",)
    run_training(args, optimizer, family, validation, config, phi=phi, frozen=frozen,
                 score=fewshot_baselines.validation_error)


def cmd_fewshot_pretrain(args):
    """Baseline-finetune's θ^0 as a weights file: the hidden layers pre-trained as E5 pre-trains them
    (experiments.e5_fewshot, PRETRAIN_SEED, FULL.pretrain_steps Adam steps on the benchmark's
    meta-train classes: 64 for rot22.5, 16 for rot90) and a zero output layer, as the learned θ^0
    of gradient descent with step --eta (gd_lstm): score it with `fewshot_validation`, or start a
    meta-LSTM there with --theta0-from."""
    from . import fewshot
    from .experiments import e5_fewshot
    out = _check_path_names(args.out, "--out")
    if out.exists():
        raise UsageError(f"--out {out} exists; not overwriting it")
    _writable_file(args.out)
    learner = fewshot.Episodes(n_way=args.ways)
    features = e5_fewshot._features(e5_fewshot.FULL.pretrain_steps, args.benchmark)
    n_out = learner.n_params - len(features)
    optimizer = make_optimizer("gd_lstm", z_f=1.0, z_i=args.eta, learn_theta0=True, n_params=learner.n_params)
    phi = {"z_f": 1.0, "z_i": args.eta, "c_0": numpy.concatenate([features, numpy.zeros(n_out)])}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_phi(out, optimizer, phi)
    print(f"{out}: θ^0 = pre-trained hidden layers ({len(features)} parameters) + zero output layer "
          f"({n_out}), gradient descent with step {args.eta}")
    return 0


def theta0_from(path, like):
    """The learned θ^0 (c_0) of the weights file `path`, in the dtype of `like`, which it must match
    in shape (the same learner)."""
    _, phi, _ = load_phi(path)
    if "c_0" not in phi:
        raise UsageError(f"--theta0-from {path}: its optimizer has no learned θ^0 (no c_0 in φ)")
    if phi["c_0"].shape != like.shape:
        raise UsageError(f"--theta0-from {path}: its θ^0 has {phi['c_0'].shape[0]} parameters, "
                         f"this learner {like.shape[0]}")
    return numpy.asarray(phi["c_0"]).astype(like.dtype)


def cmd_fewshot_evaluate(args):
    """E5 alone (experiments/e5_fewshot.py): the accuracy table, the gate figure and
    DIR/fewshot_results.json; a learned method whose weights file is absent is reported missing."""
    from .experiments import e5_fewshot
    from .experiments.common import PRETRAINED, Context, versions
    weights = Path(args.weights) if args.weights else PRETRAINED
    if not weights.is_dir():
        raise UsageError(f"--weights {weights}: no such folder")
    out = _writable_folder(args.out if args.out is not None else ("figures/quick" if args.quick else "figures"))
    start = time.perf_counter()
    ctx = Context(out=out, quick=args.quick, weights=weights)
    if args.eval_seed in (0, TUNE_SEED, e5_fewshot.PRETRAIN_SEED):
        raise UsageError(f"--eval-seed {args.eval_seed} draws the training, tuning or pre-training episodes; "
                         f"use another")
    protocol = replace(e5_fewshot.QUICK if args.quick else e5_fewshot.FULL, benchmark=args.benchmark,
                       eval_seed=args.eval_seed)
    with _pool(args, default=2) as pool, _bar(None, "E5 runs", "run") as bar:
        results = {"quick": args.quick, **e5_fewshot.run(ctx, protocol, pool=pool, progress=bar)}
    results.update(seconds={"e5": round(time.perf_counter() - start, 1)}, versions={"e5": versions()})
    atomic_write_text(out / "fewshot_results.json", json.dumps(results, indent=1, sort_keys=True) + "\n")
    print(e5_fewshot.table(results))
    figure = results[e5_fewshot.KEY]["figure"]
    print(f"{out / 'fewshot_results.json'}" + (f" and {out / figure}" if figure else " (no gate figure: "
          "no meta-LSTM weights)") + f" ({results['seconds']['e5']:.0f} s)")


def _all_settings():
    """Every setting whose baselines `metalstm tune` tunes: E1–E4's and E6's (one per family and horizon)."""
    from .experiments import e6_general
    from .experiments.common import SETTINGS
    return {**SETTINGS, **e6_general.TUNED_SETTINGS}


def _tune_job(job):
    from .experiments.common import TUNE_SEED
    from .tuning import tune_lr
    key, name = job
    setting = _all_settings()[key]
    return tune_lr(make_optimizer(name), setting.family, setting.tune_steps, setting.tune_runs, TUNE_SEED,
                   grid=setting.tune_grid)


def cmd_tune(args):
    from .experiments.common import BASELINES, TUNE_SEED
    SETTINGS = _all_settings()
    keys = args.settings or list(SETTINGS)
    keys = [k for key in keys for k in ([s for s in SETTINGS if s.startswith("e6/")] if key == "e6" else [key])]
    unknown = [k for k in keys if k not in SETTINGS]
    if unknown:
        raise UsageError(f"unknown setting(s) {unknown}; expected some of {list(SETTINGS)}")
    out = _writable_file(args.out)                        # before the tuning, not after it
    try:
        tuned = json.loads(out.read_text()) if out.is_file() else {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"--out {out}: exists and is not a readable JSON file to merge into ({e})") from None
    if not isinstance(tuned, dict):
        raise UsageError(f"--out {out}: holds {type(tuned).__name__}, not the JSON object of a tuned file")
    jobs = [(key, name) for key in keys for name in BASELINES]
    with _pool(args, default=2) as pool, _bar(len(jobs), "tuning", "rate") as bar:
        found = dict(zip(jobs, run_jobs(pool, _tune_job, jobs, progress=bar.update)))
    for key in keys:
        setting = SETTINGS[key]
        tuned[key] = {"lr": {name: found[key, name][0] for name in BASELINES},
                      "scores": {name: {f"{lr:.6g}": score for lr, score in found[key, name][1].items()}
                                 for name in BASELINES},
                      "steps": setting.tune_steps, "runs": setting.tune_runs, "seed": TUNE_SEED}
        print(f"{key:14s} " + "  ".join(f"{name} {found[key, name][0]:.3g}" for name in BASELINES))
    atomic_write_text(out, json.dumps(tuned, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out}")


def _readme_inputs(args, out, earlier):
    r"""What `figures --readme` reads besides this run's results, checked before the run: with
    --only, the results it merges into (`earlier`, OUT/results.json's) must hold the other
    experiments' blocks (the README's findings and tables need them all); and the re-checks
    (--recheck, or those of RECHECK in OUT), returned as (their files, their blocks together)."""
    from .experiments import EXPERIMENTS, read_results
    from .experiments.common import blocks, experiment_of
    if args.only:
        held = {experiment_of(key) for key in blocks(earlier)}
        missing = [key for key in EXPERIMENTS if key not in args.only and key not in held]
        if missing:
            raise UsageError(f"--readme with --only {','.join(args.only)}: {out / 'results.json'} holds no results of "
                             f"{','.join(missing)}, which the README's findings and tables need; run them too")
    files = [Path(f) for f in args.recheck] if args.recheck else [f for f in (out / r for r in RECHECK) if f.is_file()]
    again = {}
    for f in files:
        try:
            results = read_results(f)
        except ValueError as e:
            raise UsageError(f"--recheck {e}") from None
        if results["quick"]:
            raise UsageError(f"--recheck {f}: holds --quick results, which do not go into the README")
        again.update(results)
    return files, again


def cmd_figures(args):
    from .experiments import (BLOCKS, EXPERIMENTS, earlier_results, markers, results_table, run_all, run_name,
                              update_readme)
    only = args.only or list(EXPERIMENTS)
    unknown = [k for k in only if k not in EXPERIMENTS]
    if unknown:
        raise UsageError(f"unknown experiment(s) {unknown}; expected some of {list(EXPERIMENTS)}")
    if args.recheck and not args.readme:
        raise UsageError("--recheck RESULTS.json ...: the re-checks go into the README's findings, so only with --readme")
    if args.readme:
        if args.quick:
            raise UsageError("--quick numbers (3 runs, 20 steps) do not go into the README: drop --readme")
        try:
            text = Path(args.readme).read_text() if Path(args.readme).is_file() else ""
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"--readme {args.readme}: cannot be read as text ({e})") from None
        for name in BLOCKS:
            start, end = (text.find(marker) for marker in markers(name))
            if start < 0 or end < start:
                raise UsageError(f"{args.readme}: no {' ... '.join(markers(name))} markers, in that order")
    if args.eval_seed != EVAL_SEED:
        if "e5" in only:
            raise UsageError(f"--eval-seed {args.eval_seed} re-checks E1–E4 and E6 on other tasks; E5 has its "
                             f"own episodes: add --only with some of e1,e2,e3,e4,e6")
        if args.readme:
            raise UsageError(f"--eval-seed {args.eval_seed}: the README's numbers are on seed {EVAL_SEED}; drop --readme")
        if args.eval_seed in (0, TUNE_SEED):
            raise UsageError(f"--eval-seed {args.eval_seed} draws the training or tuning tasks; use another")
    out = _writable_folder(args.out if args.out is not None else ("figures/quick" if args.quick else "figures"))
    earlier = earlier_results(out, args.only, args.quick, args.eval_seed)      # before the run, not after it
    if args.readme:
        files, again = _readme_inputs(args, out, earlier)
    with _pool(args, default=2) as pool, _bar(None, "figures", "run") as bar:
        run_all(out, quick=args.quick, only=args.only, tuned=args.tuned, weights=args.weights,
                eval_seed=args.eval_seed, pool=pool, progress=bar)
    # the tables and findings from results.json as written (keys sorted), not from the dicts in the
    # order the jobs finished in: the README is then a function of that file alone
    results = json.loads((out / "results.json").read_text())
    print(results_table(results))
    print(f"figures and results.json in {out}/ ({results['seconds'][run_name(args.only)]:.0f} s)")
    if args.readme:
        update_readme(args.readme, results, again or None)
        print(f"updated the findings and the results tables in {args.readme}"
              + (f" (re-check: {', '.join(map(str, files))})" if files else ""))


def add_training_arguments(parser, defaults, what="tasks"):
    """The meta-training flags shared by `train` and `fewshot train`; `defaults` is a TrainConfig,
    `what` the name of a task in the help ("episodes" for few-shot)."""
    parser.add_argument("--p", type=_positive_float, default=10.0, help="preprocessing exponent p (10)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--trajectories", type=_many, default=defaults.trajectories)
    parser.add_argument("--meta-lr", type=_positive_float, default=defaults.meta_lr)
    parser.add_argument("--clip", type=_positive_float, default=defaults.clip)
    parser.add_argument("--validate-every", type=_many, default=defaults.validate_every)
    parser.add_argument("--validation-tasks", type=_tasks, default=defaults.validation_tasks)
    parser.add_argument("--seed", type=_seed, default=defaults.seed)
    parser.add_argument("--out", required=True, help="folder for checkpoint.npz, best.npz, log.txt")
    parser.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    parser.add_argument("--tasks-per-update", type=_tasks, default=defaults.tasks_per_update,
                        help=f"B: {what} whose meta-gradients each meta-update averages "
                             f"({defaults.tasks_per_update}); --trajectories and --validate-every "
                             "count them and must be multiples of B")
    add_pool_arguments(parser, 1, "the B unrolls of a meta-update and the validation; the result is the "
                                  "same, bit for bit, for any number")


def _benchmark_argument(parser):
    from .experiments.e5_fewshot import FULL
    from .fewshot import BENCHMARKS
    parser.add_argument("--benchmark", choices=list(BENCHMARKS), default=FULL.benchmark,
                        help=f"the episodes' classes: each digit turned by multiples of 90° (rot90: 16 "
                             f"meta-train classes) or of 22.5° (rot22.5: 64); default {FULL.benchmark}, E5's")


def add_pool_arguments(parser, default, what="the runs"):
    """--workers W (a local pool) or --scheduler ADDRESS (a Dask cluster): what runs `what`."""
    parser.add_argument("--workers", type=_workers, default=None,
                        help=f"local processes that run {what} ({default})")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="run them on the workers of this running Dask scheduler instead, e.g. "
                             "tcp://10.0.0.1:8786 (pip install \".[cluster]\"; README, Scaling up)")


def _pool(args, default):
    """The executor of the flags: a local pool of --workers (default `default`), or --scheduler's."""
    if args.scheduler is not None and args.workers is not None:
        raise UsageError(f"--workers {args.workers} sizes the local pool; with --scheduler {args.scheduler} "
                         f"the cluster's workers run the jobs: drop --workers")
    return executor(default if args.workers is None else args.workers, args.scheduler)


class _CtrlC:
    r"""The SIGINT handler of a command: it raises KeyboardInterrupt, as Python's own does, and
    remembers that it did. Python runs it between two bytecodes of the main thread, whatever that
    thread is doing, and a KeyboardInterrupt raised inside a __del__ method or a weakref callback is
    printed as "Exception ignored in ..." and dropped, so the run would go on as if Ctrl-C had not
    been pressed. Every long command updates a progress bar as each job or meta-update ends, and
    the bars raise it again (`_bar`). A command started with SIGINT ignored (in the background, by a
    shell without job control) leaves it ignored, as that shell asked."""

    def __init__(self):
        self.pressed = False

    def __call__(self, signum, frame):
        self.pressed = True
        raise KeyboardInterrupt

    def check(self):
        if self.pressed:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def handling(self):
        """Handle SIGINT while the block runs, unless it is ignored (a job started with `&` by a
        shell without job control) or this is not the main thread; then restore the handler."""
        self.pressed = False
        if threading.current_thread() is not threading.main_thread() or \
                signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            yield
            return
        signal.signal(signal.SIGINT, self)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)


CTRL_C = _CtrlC()


def _bar(total, desc, unit):
    """A progress bar on stderr (stdout stays for results), which raises KeyboardInterrupt as it
    moves on if Ctrl-C was pressed and its KeyboardInterrupt dropped (`_CtrlC`)."""
    from tqdm import tqdm

    class Bar(tqdm):
        def update(self, n=1):
            CTRL_C.check()
            return super().update(n)

        def refresh(self, *args, **kwargs):
            CTRL_C.check()
            return super().refresh(*args, **kwargs)

    return Bar(total=total, desc=desc, unit=unit, dynamic_ncols=True, file=sys.stderr)


def build_parser():
    parser = _Parser(prog="metalstm", description="Gradient descent as an LSTM: learned optimizers.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = sub.add_parser("demo", help="SGD vs the LSTM with z^f = 1, z^i = η on an MNIST MLP")
    demo.add_argument("--lr", type=_positive_float, default=0.5)
    demo.add_argument("--steps", type=_steps, default=100)
    demo.add_argument("--seed", type=_seed, default=0)
    demo.set_defaults(run=cmd_demo)

    ev = sub.add_parser("evaluate", help="run one optimizer on fresh tasks and print its losses")
    add_task_arguments(ev)
    ev.add_argument("--optimizer", choices=optimizer_names(), required=True)
    ev.add_argument("--lr", type=_positive_float, default=None,
                    help="learning rate of a hand-designed optimizer (z^i for gd_lstm)")
    ev.add_argument("--weights", default=None, help="FILE.npz with φ of a learned optimizer")
    ev.add_argument("--steps", type=_steps, default=100)
    ev.add_argument("--runs", type=_tasks, default=10)
    ev.add_argument("--seed", type=_seed, default=EVAL_SEED,
                    help=f"evaluation tasks (default {EVAL_SEED}, which no training run uses)")
    ev.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    ev.set_defaults(run=cmd_evaluate)

    tr = sub.add_parser("train", help="meta-train a learned optimizer")
    add_task_arguments(tr)
    tr.add_argument("--optimizer", choices=["l2l", "metalstm", "rnnprop"], default="l2l")
    tr.add_argument("--lstm-hidden", type=_sizes, default=(20, 20),
                    help="LSTM layer sizes, e.g. 20,20 (l2l) or 20 (metalstm: its first layer)")
    tr.add_argument("--output-scale", type=_positive_float, default=None, help="l2l output scale (0.1)")
    tr.add_argument("--preprocess", choices=sorted(PREPROCESS), default="log_sign",
                    help="l2l: what the LSTM sees of the gradient: log_sign (the paper's, default) or "
                         "raw (the official code's on the quadratics)")
    tr.add_argument("--step", type=_positive_float, default=None, help="rnnprop: the bound α of its step (0.1)")
    tr.add_argument("--inputs", choices=RNNPROP_INPUTS, default="moments",
                    help="rnnprop: Adam's moment ratios (default) or log/sign (the ablation)")
    tr.add_argument("--unbounded", action="store_true", help="rnnprop: α · output instead of α tanh(output)")
    tr.add_argument("--nominal", type=_nonnegative_float, default=0.0, metavar="LR",
                    help="rnnprop: add Adam's step at rate LR to the learned one (Harrison et al. 2022; "
                         "default 0, none)")
    tr.add_argument("--hypergradient", type=_checked(float, lambda v: 0 <= v < 1, "a number in [0, 1)"),
                    default=0.0, metavar="BETA",
                    help="rnnprop: adapt the bound α online, α_t = α_{t-1} (1 + BETA cos(grad_t, d_{t-1})) "
                         "(Baydin et al. 2018; default 0, a fixed α)")
    tr.add_argument("--timescales", type=_fractions, default=(), metavar="B1,B2,...",
                    help="rnnprop: also feed the momenta at these β, each over √v̂ (Wichrowska et al. 2017, "
                         "Metz et al. 2019; default none)")
    tr.add_argument("--random-scaling", type=_checked(float, lambda v: 0 < v <= 20, "a number in (0, 20]"),
                    default=None, metavar="R",
                    help="meta-train on f(c ⊙ θ), log c ~ U(−R, R) per coordinate and task (Lv et al. 2017)")
    tr.add_argument("--plus-square", type=_count(1_000_000), default=None, metavar="DIM",
                    help="meta-train on the task plus a random convex square of DIM more coordinates "
                         "(Lv et al. 2017)")
    tr.add_argument("--quadratics", type=_count(100_000), default=None, metavar="K",
                    help="--task quadratic: K independent quadratics side by side in each training and "
                         "validation task (1): a batch of K tasks at a small part of their cost")
    tr.add_argument("--eta", type=_gate, default=None,
                    help="metalstm: start with z^i ≈ η (b^I = logit η) instead of the paper's z^i ≈ 0.01")
    add_training_arguments(tr, TrainConfig())
    tr.add_argument("--horizon", type=_steps, default=TrainConfig().horizon)
    tr.add_argument("--unroll", type=_steps, default=TrainConfig().unroll)
    tr.add_argument("--meta-loss", choices=KINDS + tuple(ALIASES), default=TrainConfig().meta_loss,
                    help="mean: the (weighted) mean loss over the horizon (alias: sum); log: the mean "
                         "log-loss; heldout: the held-out loss at θ_T")
    tr.add_argument("--init-from", default=None, metavar="FILE.npz",
                    help="start from the φ of this weights file (the same optimizer and config), "
                         "e.g. to continue a trained optimizer with another unroll or meta-loss")
    tr.add_argument("--validation-families", type=_mlp_specs, default=(), metavar="H[xL]:ACT,...",
                    help="meta-validate on a mixture of these MLPs (each task's MLP drawn at random; "
                         "the flags' batch), e.g. 20:sigmoid,20:relu,20:tanh,20x2:sigmoid: early "
                         "stopping then keeps the φ that does best across architectures it is not "
                         "trained on (default: the training MLP)")
    tr.add_argument("--validate-on", choices=VALIDATE_ON, default=TrainConfig().validate_on,
                    help="early-stopping score: the meta-loss over the horizon (default), or the "
                         "final training loss, the baselines' tuning score")
    tr.add_argument("--validation-horizon", type=_steps, default=None, metavar="T",
                    help="steps of the validation runs (default: --horizon); longer, to choose φ for "
                         "the next horizon of a curriculum (Chen et al. 2020)")
    tr.add_argument("--meta-loss-weights", dest="weights", choices=WEIGHTS, default=TrainConfig().weights,
                    help="weights of the steps in the meta-loss: uniform (the mean, default), "
                         "linear (w_t ∝ t: the same total, shifted to the end of the horizon) or "
                         "piece_ends (the loss at the end of each --unroll piece only, as in RNNprop's code up to one step)")
    tr.add_argument("--imitation", type=_checked(float, lambda v: 0 <= v <= 1, "a share in [0, 1]"),
                    default=TrainConfig().imitation, metavar="P",
                    help="train a share P of the meta-updates to imitate Adam's steps instead "
                         "(Chen et al. 2020's off-policy imitation; default 0, none)")
    tr.add_argument("--imitation-lr", type=_positive_float, default=None, metavar="LR",
                    help=f"the learning rate of the Adam that --imitation imitates ({TrainConfig().imitation_lr})")
    tr.add_argument("--average", type=_checked(float, lambda v: 0 <= v < 1, "a decay in [0, 1)"),
                    default=TrainConfig().average, metavar="BETA",
                    help="validate and keep the moving average of φ over the meta-updates, with decay "
                         "BETA, instead of φ (Polyak & Juditsky 1992; default 0, φ itself)")
    tr.set_defaults(run=cmd_train)

    fs = sub.add_parser("fewshot", help="few-shot learning on rotated MNIST (Ravi & Larochelle 2017)")
    fs_sub = fs.add_subparsers(dest="fewshot_command", required=True, parser_class=_Parser)
    ft = fs_sub.add_parser("train", help="meta-train the meta-LSTM (or learned θ^0 with fixed gates)")
    ft.add_argument("--optimizer", choices=["metalstm", "gd_lstm"], default="metalstm")
    _benchmark_argument(ft)
    ft.add_argument("--ways", type=_width, default=5)
    ft.add_argument("--shots", type=_tasks, default=1)
    ft.add_argument("--steps", type=_steps, default=None,
                    help="T, updates on the support set (default 12 for 1-shot, 8 otherwise)")
    ft.add_argument("--fixed-theta0", action="store_true", help="do not learn θ^0 (metalstm only)")
    ft.add_argument("--eta", type=_positive_float, default=None,
                    help="metalstm: start with z^i ≈ η (b^I = logit η); gd_lstm: the fixed z^i")
    ft.add_argument("--lstm-hidden", type=_sizes, default=(20,), help="first-layer LSTM size (20)")
    ft.add_argument("--theta0-from", default=None, metavar="FILE.npz",
                    help="start the learned θ^0 from this weights file's (e.g. a fixed-gate model's)")
    ft.add_argument("--freeze-theta0", action="store_true",
                    help="keep the θ^0 of --theta0-from fixed: learn only the update rule")
    add_training_arguments(ft, TrainConfig(clip=0.25, validate_every=100, validation_tasks=50,
                                           trajectories=3000), what="episodes")
    ft.set_defaults(run=cmd_fewshot_train)
    fp = fs_sub.add_parser("pretrain", help="Baseline-finetune's pre-trained θ^0 as a weights file (for --theta0-from)")
    fp.add_argument("--ways", type=_width, default=5)
    _benchmark_argument(fp)
    fp.add_argument("--eta", type=_gate, default=0.3, help="the step of its fixed gates z^i (0.3)")
    fp.add_argument("--out", required=True, help="FILE.npz to write")
    fp.set_defaults(run=cmd_fewshot_pretrain)
    fe = fs_sub.add_parser("evaluate", help="E5: every few-shot method on meta-test episodes, gate figure")
    fe.add_argument("--quick", action="store_true", help="20 episodes, short tuning: a smoke test")
    fe.add_argument("--out", default=None, help="output folder (figures/, or figures/quick/ with --quick)")
    fe.add_argument("--weights", default=None, help="folder of the weights files (default: the shipped ones)")
    _benchmark_argument(fe)
    fe.add_argument("--eval-seed", type=_seed, default=EVAL_SEED,
                    help=f"the meta-test episodes (default {EVAL_SEED}); another seed re-checks a claim")
    add_pool_arguments(fe, 2)
    fe.set_defaults(run=cmd_fewshot_evaluate)

    tu = sub.add_parser("tune", help="tune the baselines' learning rates (written to a JSON file)")
    tu.add_argument("--settings", type=lambda text: text.split(","), default=None,
                    help="comma-separated setting keys (default: all; e6: all of E6's)")
    tu.add_argument("--out", required=True, metavar="FILE.json",
                    help="where to write the learning rates (merged into the file if it exists); "
                         "`metalstm figures --tuned FILE.json` reads them")
    add_pool_arguments(tu, 2)
    tu.set_defaults(run=cmd_tune)

    fi = sub.add_parser("figures", help="regenerate the figures and results.json from the shipped weights")
    fi.add_argument("--quick", action="store_true", help="3 runs, at most 20 steps: a smoke test")
    fi.add_argument("--out", default=None, help="output folder (figures/, or figures/quick/ with --quick)")
    fi.add_argument("--only", type=lambda text: text.split(","), default=None,
                    help="e.g. e1,e2: run these alone; their results replace theirs in OUT/results.json, "
                         "and the other experiments' stay")
    add_pool_arguments(fi, 2)
    fi.add_argument("--tuned", default=None, help="tuned learning rates (default: the shipped ones)")
    fi.add_argument("--weights", default=None, help="folder of the learned optimizers' weights "
                                                    "(default: the shipped ones)")
    fi.add_argument("--readme", default=None, help="README.md whose results table to regenerate")
    fi.add_argument("--recheck", default=None, nargs="+", metavar="RESULTS.json",
                    help="with --readme: the results of re-checks on other evaluation seeds, which the "
                         f"findings report (default: OUT/{' and OUT/'.join(RECHECK)}, those that exist)")
    fi.add_argument("--eval-seed", type=_seed, default=EVAL_SEED,
                    help=f"evaluation tasks of E1–E4 and E6 (default {EVAL_SEED}); another seed re-checks "
                         "their numbers on other tasks")
    fi.set_defaults(run=cmd_figures)
    return parser


PATH_FLAGS = ("weights", "init_from", "theta0_from", "tuned", "readme", "recheck", "out")


def main(argv=None):
    print_stacks_on_sigusr1()
    with CTRL_C.handling():
        return _main(argv)


def _main(argv):
    try:
        args = build_parser().parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)     # the command, for command.txt
        for name in PATH_FLAGS:
            if getattr(args, name, None) == "":
                raise UsageError(f"--{name.replace('_', '-')} '': expected a path")
        if getattr(args, "scheduler", None) is not None:     # a typo said before any work is done
            check_scheduler_address(args.scheduler)
        args.run(args)
    except (UsageError, WeightsError, IDXError, PoolError, ValueError, FileNotFoundError) as e:
        print(f"metalstm: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("metalstm: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:                  # e.g. `metalstm evaluate ... | head`: the reader is gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return 0


if __name__ == "__main__":
    sys.exit(main())
