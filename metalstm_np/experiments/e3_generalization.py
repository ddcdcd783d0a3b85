r"""E3 — generalization to other architectures (Andrychowicz et al. 2016, Fig. 5).

The E2 optimizer, unchanged, on an MLP with 40 hidden units, with two hidden layers of 20, and with
ReLU instead of sigmoid; the baselines are retuned for each. The paper reports that the first two
work and ReLU does not.
"""
import matplotlib.pyplot as plt

from .common import SETTINGS, compare, plot_curves
from .e2_mnist import LEARNED

KEYS = ("mnist_40", "mnist_2layers", "mnist_relu")


def run(ctx):
    fig, axes = plt.subplots(1, len(KEYS), figsize=(15, 4))
    results = {}
    ctx.evaluate([(SETTINGS[key], ctx.methods(SETTINGS[key], LEARNED)) for key in KEYS])   # in parallel
    for ax, key in zip(axes, KEYS):
        setting = SETTINGS[key]
        curves, results[f"E3_{key}"] = compare(ctx, setting, LEARNED)
        plot_curves(ax, curves, setting.title)
    fig.tight_layout()
    fig.savefig(ctx.out / "e3_generalization.png", dpi=120)
    plt.close(fig)
    return results
