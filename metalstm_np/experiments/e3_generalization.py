r"""E3 — generalization to other architectures (Andrychowicz et al. 2016, Fig. 5).

The E2 optimizer, unchanged, on an MLP with 40 hidden units, with two hidden layers of 20, and with
ReLU instead of sigmoid; the baselines are retuned for each. The paper reports that the first two
work and ReLU does not.
"""
from .common import SETTINGS, compare, curves_table, evaluation_experiment, save_figure
from .e2_mnist import LEARNED

KEYS = ("mnist_40", "mnist_2layers", "mnist_relu")


def requests(ctx):
    """What run() evaluates, so that run_all can evaluate every experiment's runs in one pool."""
    return [(SETTINGS[key], ctx.methods(SETTINGS[key], LEARNED)) for key in KEYS]


def run(ctx):
    ctx.evaluate(requests(ctx))                                    # all three settings in parallel
    results, panels = {}, []
    for key in KEYS:
        curves, results[f"E3_{key}"] = compare(ctx, SETTINGS[key], LEARNED)
        panels.append((curves, SETTINGS[key].title))
    save_figure(ctx.out / "e3_generalization.png", panels)
    return results


def table(results):
    """This experiment's tables in the README (Markdown), from results.json; "" without its block."""
    return curves_table(results, tuple(f"E3_{key}" for key in KEYS))


jobs, collect = evaluation_experiment(requests, run)     # what run_all calls
