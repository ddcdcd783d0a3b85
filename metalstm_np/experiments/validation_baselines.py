r"""Optimizers scored on the meta-validation tasks:
`python -m metalstm_np.experiments.validation_baselines [--setting quadratic] [--tasks N] [FILE.npz ...]`.

Meta-training keeps the φ with the lowest meta-validation score: by default the meta-loss over a
100-step trajectory on fixed tasks of the validation split (meta_train.validation_score, seed 0, as
`metalstm train` uses; 8 tasks by default, --tasks N for the first N, --skip K to leave out the
first K, e.g. those a run was early-stopped on, which flatter it). This prints, for the four
tuned baselines of the setting (mnist by default) and for any learned optimizer's weights given on
the command line, that score with the mean loss (`mean`) and with the mean log-loss (`log`)
meta-loss, and the mean training loss at steps 100 and 200 on the same tasks (loss@100 is the
score of `metalstm train --validate-on final`). So the `best` column of a training log can be
read against the baselines, and two trained optimizers can be compared on the validation split
without looking at the evaluation tasks (seed 1000).

`--set KEY=VALUE` (repeatable) scores each weights file a second time with those entries of its
optimizer's config replaced, e.g. `--set step=0.07` for RNNprop's bound α: the same φ with another
fixed choice around it. `--sweep KEY=V1,V2,...` scores it once more for each value, with the --set
entries replaced too. `--losses-only` leaves out the two validation scores (they cost two more
trajectories per task), `--no-baselines` the baselines.
"""
import argparse
import json
from dataclasses import replace

import numpy

from ..learners import MLP, Quadratic
from ..meta_train import TrainConfig, draw_validation_tasks, validation_score
from ..optimizers import make_optimizer
from ..serialization import load_phi
from ..unroll import unroll
from .common import BASELINES, load_tuned


def scores(optimizer, phi, tasks, config, at_steps=(100, 200), meta_losses=("mean", "log")):
    """{"mean", "log": validation scores, "loss@t": mean training loss at step t} over `tasks`
    (only the validation scores named in `meta_losses`)."""
    out = {kind: validation_score(optimizer, phi, tasks, replace(config, meta_loss=kind)) for kind in meta_losses}
    losses = numpy.array([[float(L) for L in unroll(optimizer, phi, task, optimizer.init(phi, task.theta0),
                                                     max(at_steps))[0]] for task in tasks])
    out.update({f"loss@{t}": float(losses[:, t].mean()) for t in at_steps})
    return out


VALIDATION_FAMILIES = {"mnist": MLP(split="validation"), "quadratic": Quadratic(),   # as `metalstm train`
                       # as `metalstm train --task quadratic --quadratics 128` (E1): every number
                       # is a sum over a task's 128 quadratics, as in that run's log
                       "quadratic_x128": Quadratic(count=128),
                       # the other families, on the same validation images: to check a candidate's
                       # generalization without looking at the evaluation tasks
                       "mnist_40": MLP((40,), split="validation"),
                       "mnist_2layers": MLP((20, 20), split="validation"),
                       "mnist_relu": MLP((20,), "relu", split="validation"),
                       "mnist_tanh": MLP((20,), "tanh", split="validation")}
TUNED_KEY = {"mnist_tanh": "e6/mnist_tanh@100", "quadratic_x128": "quadratic"}   # default: the setting's own key


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m metalstm_np.experiments.validation_baselines")
    parser.add_argument("weights", nargs="*", help="weights files of learned optimizers")
    parser.add_argument("--setting", choices=sorted(VALIDATION_FAMILIES), default="mnist")
    parser.add_argument("--tasks", type=int, default=TrainConfig().validation_tasks,
                        help="the first N meta-validation tasks (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="the training run's seed (0)")
    parser.add_argument("--skip", type=int, default=0,
                        help="leave out the first K tasks (e.g. those a run early-stopped on) and "
                             "score tasks K .. K + N - 1 of the same validation stream")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="also score each weights file with this config entry replaced (a JSON value)")
    parser.add_argument("--sweep", metavar="KEY=V1,V2,...",
                        help="also score each weights file once for each of these values of a config entry")
    parser.add_argument("--losses-only", action="store_true",
                        help="only the losses at steps 100 and 200, not the two validation scores")
    parser.add_argument("--no-baselines", action="store_true", help="leave out the tuned baselines")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, eq, value = item.partition("=")
        if not (eq and key):
            parser.error(f"--set {item}: expected KEY=VALUE")
        try:
            overrides[key] = json.loads(value)
        except ValueError:
            parser.error(f"--set {item}: VALUE must be a JSON value (a number, true, \"text\" in quotes)")
    variants = [overrides] if overrides else []
    if args.sweep is not None:
        key, eq, values = args.sweep.partition("=")
        if not (eq and key):
            parser.error(f"--sweep {args.sweep}: expected KEY=V1,V2,...")
        if key in overrides:
            parser.error(f"--sweep {args.sweep}: {key} is also given by --set")
        try:
            values = json.loads(f"[{values}]")
        except ValueError:
            parser.error(f"--sweep {args.sweep}: V1,V2,... must be JSON values separated by commas "
                         f"(\"text\" in quotes)")
        if not values:
            parser.error(f"--sweep {args.sweep}: no values")
        variants += [{**overrides, key: value} for value in values]
    if args.tasks < 1:
        parser.error(f"--tasks must be at least 1, got {args.tasks}")
    if args.skip < 0:
        parser.error(f"--skip must be at least 0, got {args.skip}")
    if args.no_baselines and not args.weights:
        parser.error("--no-baselines and no weights files: nothing to score")
    learned = []                       # (label, optimizer, φ): every file and variant built before any scoring
    for path in args.weights:
        optimizer, phi, _ = load_phi(path)
        for flag, keys in (("--set", set(overrides)), ("--sweep", {key for v in variants for key in v} - set(overrides))):
            unknown = sorted(keys - set(optimizer.config))
            if unknown:
                parser.error(f"{flag} {', '.join(unknown)}: not in {path}'s config "
                             f"({', '.join(sorted(optimizer.config))})")
        learned.append((str(path), optimizer, phi))
        for variant in variants:
            label = f"{path} " + " ".join(f"{k}={json.dumps(v)}" for k, v in variant.items())
            try:
                learned.append((label, make_optimizer(optimizer.name, **{**optimizer.config, **variant}), phi))
            except (ValueError, TypeError) as e:
                parser.error(f"{label}: {e}")
    config = TrainConfig(seed=args.seed)
    tasks = draw_validation_tasks(VALIDATION_FAMILIES[args.setting], args.seed, args.skip + args.tasks)[args.skip:]
    tuned = load_tuned()[TUNED_KEY.get(args.setting, args.setting)]
    meta_losses = () if args.losses_only else ("mean", "log")
    rows = []
    for name in () if args.no_baselines else BASELINES:
        optimizer = make_optimizer(name)
        rows.append((f"{name} lr {tuned[name]:.3g}", scores(optimizer, {**optimizer.init_phi(), "lr": tuned[name]},
                                                          tasks, config, meta_losses=meta_losses)))
    rows += [(label, scores(optimizer, phi, tasks, config, meta_losses=meta_losses)) for label, optimizer, phi in learned]
    print(f"{args.setting}: meta-validation tasks {args.skip} .. {args.skip + args.tasks - 1}, seed {args.seed}")
    width = max([40] + [len(label) for label, _ in rows])
    print(f"{'optimizer':{width}s} {'mean':>8s} {'log':>8s} {'loss@100':>9s} {'loss@200':>9s}")
    for label, s in rows:
        meta = " ".join(f"{s[kind]:8.4f}" if kind in s else f"{'-':>8s}" for kind in ("mean", "log"))
        print(f"{label:{width}s} {meta} {s['loss@100']:9.4f} {s['loss@200']:9.4f}")


if __name__ == "__main__":
    main()
