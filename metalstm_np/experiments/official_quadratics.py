r"""E1's numbers beside the official code's: `python -m metalstm_np.experiments.official_quadratics`.

The official code of Andrychowicz et al. (github.com/deepmind/learning-to-learn) differs from the
paper on the quadratics in two ways that change what "x times Adam" means:

- its problems.quadratic draws W and y uniform on [0, 1) (TensorFlow's default initializer), where
  the paper (sec. 3.1) and E1 draw them standard normal;
- its evaluate.py runs Adam at its default learning rate, 1e-3, untuned.

A user's run reported in its issue tracker (issue 31) gives a "Log Mean Final Error" (log10 of
the mean loss per quadratic at the end of 100 steps) of -0.70 for the trained LSTM against -0.06
for that Adam: 0.2x Adam. (evaluate.py resets only the trainable θ between its runs, so those
numbers are on one batch of 128 quadratics, and it records the loss before the last update.)
This script prints, for both kinds of quadratics, the mean loss per quadratic at step 100 (and its
log10, the official code's number) of Adam at 1e-3, of the four baselines tuned here (on E6's
quarter-decade grid from 1e-4 to 10, on 5 tasks of 128 quadratics drawn with TUNE_SEED: finer
than tuned.json's half-decades for E1, on the same kind of tasks as the evaluation), and of E1's
optimizer (the shipped one by default), which was trained on the paper's Gaussian quadratics
only. Tasks of 128 quadratics side by side, the official batch; the evaluation tasks are drawn
with EVAL_SEED. `metalstm figures` writes the same text to official_quadratics.txt beside E1's
figure.
"""
import argparse

import numpy

from ..evaluation import EVAL_SEED, TUNE_SEED, run_on_tasks
from ..learners import Quadratic
from ..optimizers import make_optimizer
from ..serialization import load_phi
from ..tuning import quarter_decades, tune_lr
from .common import BASELINES, pretrained_path

OFFICIAL_ADAM_LR = 1e-3       # evaluate.py's default --learning_rate
OFFICIAL_LSTM_LOG10 = -0.70   # the official LSTM's Log Mean Final Error on its quadratics (a user's run, its issue 31)
COUNT = 128                   # quadratics per task: the official batch


def per_quadratic_loss(optimizer, phi, family, steps, runs, seed):
    """Mean over the runs × COUNT quadratics of the loss at step `steps`."""
    with numpy.errstate(all="ignore"):
        losses, _, _ = run_on_tasks(optimizer, phi, family, steps, runs, seed)
    return float(losses[:, steps].mean() / family.count)


def compare(entries, steps=100, runs=10, tune_runs=5, eval_seed=EVAL_SEED, weights=None):
    """[(method, lr or None, mean loss per quadratic at `steps`)] on quadratics with these entries;
    weights: the E1 optimizer's file (default: the shipped one)."""
    family = Quadratic(count=COUNT, entries=entries)
    rows = []
    adam = make_optimizer("adam")
    rows.append(("adam at the official default lr", OFFICIAL_ADAM_LR,
                 per_quadratic_loss(adam, {**adam.init_phi(), "lr": OFFICIAL_ADAM_LR}, family, steps, runs,
                                    eval_seed)))
    for name in BASELINES:
        optimizer = make_optimizer(name)
        lr, _ = tune_lr(optimizer, family, steps, tune_runs, TUNE_SEED, grid=quarter_decades())
        rows.append((f"{name}, tuned", lr, per_quadratic_loss(optimizer, {**optimizer.init_phi(), "lr": lr},
                                                              family, steps, runs, eval_seed)))
    optimizer, phi, _ = load_phi(weights or pretrained_path("l2l_quadratic.npz"), expect="l2l")
    rows.append(("LSTM (l2l), E1's optimizer", None,
                 per_quadratic_loss(optimizer, phi, family, steps, runs, eval_seed)))
    return rows


def report(steps=100, runs=10, tune_runs=5, eval_seed=EVAL_SEED, weights=None):
    """The printed comparison, as text."""
    lines = [f"Mean loss per quadratic at step {steps}: {runs} tasks x {COUNT} quadratics (seed {eval_seed}); "
             f"baselines tuned on {tune_runs} x {COUNT} (seed {TUNE_SEED})"]
    for entries, title in (("normal", "the paper's quadratics (W, y standard normal; E1)"),
                           ("uniform", "the official code's quadratics (W, y uniform on [0, 1))")):
        rows = compare(entries, steps, runs, tune_runs, eval_seed, weights)
        best = min(rows[1:-1], key=lambda r: r[2])          # the four tuned baselines
        default, lstm = rows[0][2], rows[-1][2]
        lines += ["", title, f"{'method':40s} {'lr':>8s} {'loss':>9s} {'log10':>7s}"]
        lines += [f"{m:40s} {'' if lr is None else format(lr, '.3g'):>8s} {L:9.4f} {numpy.log10(L):7.2f}"
                  for m, lr, L in rows]
        lines.append(f"LSTM / adam at lr {OFFICIAL_ADAM_LR:g}: {lstm / default:.3f}; "
                     f"LSTM / best tuned ({best[0].split(',')[0]}): {lstm / best[2]:.3f}")
        if entries == "uniform":
            official = 10.0 ** OFFICIAL_LSTM_LOG10
            lines.append(f"the official LSTM's 10^{OFFICIAL_LSTM_LOG10:.2f} = {official:.3f}: "
                         f"{official / default:.3f}x adam at lr {OFFICIAL_ADAM_LR:g} here, "
                         f"{official / best[2]:.3f}x the best tuned baseline")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m metalstm_np.experiments.official_quadratics",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="evaluation tasks of 128 quadratics (10)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}")
    print(report(runs=args.runs))


if __name__ == "__main__":
    main()
