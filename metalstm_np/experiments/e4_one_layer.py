r"""E4 — why the second LSTM layer: a one-layer LSTM optimizer trained exactly as the E2 one (same
task family, horizon, truncation, meta-learning rate and number of trajectories), against the
two-layer one and the tuned baselines on the E2 protocol.
"""
from .common import SETTINGS, compare, curves_table, evaluation_experiment, paired_cells, paired_difference, save_figure
from .e2_mnist import LEARNED

LEARNED_BOTH = {**LEARNED, "LSTM, one layer": "l2l1_mnist.npz"}


def requests(ctx):
    """What run() evaluates, so that run_all can evaluate every experiment's runs in one pool."""
    return [(SETTINGS["mnist"], ctx.methods(SETTINGS["mnist"], LEARNED_BOTH))]


def run(ctx):
    setting = SETTINGS["mnist"]
    curves, results = compare(ctx, setting, LEARNED_BOTH)
    two, one = LEARNED_BOTH                                 # labels: two layers (E2's), one layer
    results["two_minus_one_layer"] = {at: paired_difference(curves[two], curves[one], int(at[1:]))
                                      for at in results["ratio_to_best_baseline"][two]}
    save_figure(ctx.out / "e4_one_layer.png", [(curves, f"{setting.title}: one vs two LSTM layers")])
    return {"E4_one_layer": results}


def table(results):
    """E4's tables in the README (Markdown), with the two-layer optimizer against the one-layer one."""
    block = results.get("E4_one_layer")
    if not block:
        return ""
    two, one = LEARNED_BOTH
    rows = [f"| E4_one_layer | two layers, against one layer | {step[1:]} | (one layer) | "
            f"{block['methods'][two][f'loss_mean{step}'] / block['methods'][one][f'loss_mean{step}']:.3f} | "
            + paired_cells(d, block["runs"])
            for step, d in block.get("two_minus_one_layer", {}).items()]
    return curves_table(results, ("E4_one_layer",), rows)


jobs, collect = evaluation_experiment(requests, run)     # what run_all calls
