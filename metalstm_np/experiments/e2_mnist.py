r"""E2 — MNIST (Andrychowicz et al. 2016, Fig. 4).

The LSTM optimizer trained on an MLP with one hidden layer of 20 sigmoid units (minibatches of 128,
100-step horizon), evaluated on 20 fresh initialisations for 200 steps — twice the training horizon,
as in the paper — against the tuned baselines: training-minibatch loss per step, and test-set loss
and accuracy of θ_200.
"""
from .common import SETTINGS, compare, curves_table, evaluation_experiment, save_figure

LEARNED = {"LSTM (l2l)": "l2l_mnist.npz"}


def requests(ctx):
    """What run() evaluates, so that run_all can evaluate every experiment's runs in one pool."""
    return [(SETTINGS["mnist"], ctx.methods(SETTINGS["mnist"], LEARNED))]


def run(ctx):
    setting = SETTINGS["mnist"]
    curves, results = compare(ctx, setting, LEARNED)
    save_figure(ctx.out / "e2_mnist.png", [(curves, f"{setting.title}: {results['runs']} runs")])
    return {"E2_mnist": results}


def table(results):
    """This experiment's tables in the README (Markdown), from results.json; "" without its block."""
    return curves_table(results, ("E2_mnist",))


jobs, collect = evaluation_experiment(requests, run)     # what run_all calls
