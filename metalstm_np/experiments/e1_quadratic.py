r"""E1 — quadratics (Andrychowicz et al. 2016, Fig. 2, left).

The LSTM optimizer trained on 10-d quadratics f(θ) = ||Wθ − y||², evaluated on 100 fresh functions
for 100 steps against SGD, NAG, RMSprop and Adam with tuned learning rates.
"""
from pathlib import Path

from ..serialization import atomic_write_text
from .common import SETTINGS, compare, curves_table, evaluation_experiment, save_figure

LEARNED = {"LSTM (l2l)": "l2l_quadratic.npz"}


def requests(ctx):
    """What run() evaluates, so that run_all can evaluate every experiment's runs in one pool."""
    return [(SETTINGS["quadratic"], ctx.methods(SETTINGS["quadratic"], LEARNED))]


def run(ctx):
    setting = SETTINGS["quadratic"]
    curves, results = compare(ctx, setting, LEARNED, at_steps=(100,))
    save_figure(ctx.out / "e1_quadratic.png", [(curves, f"{setting.title}: {results['runs']} functions")])
    if not ctx.quick:            # E1 beside the official code's quadratics and its untuned Adam (15 s)
        from . import official_quadratics     # here: `python -m` runs that module, which the package need not import
        atomic_write_text(ctx.out / "official_quadratics.txt", official_quadratics.report(
            eval_seed=ctx.eval_seed, weights=Path(ctx.weights) / LEARNED["LSTM (l2l)"]) + "\n")
    return {"E1_quadratic": results}


def table(results):
    """This experiment's tables in the README (Markdown), from results.json; "" without its block."""
    return curves_table(results, ("E1_quadratic",))


jobs, collect = evaluation_experiment(requests, run)     # what run_all calls
