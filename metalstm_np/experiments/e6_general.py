r"""E6 — an optimizer that generalizes (beyond both papers).

RNNprop (rnnprop.py: Adam-moment inputs, a bounded step; Lv, Jiang & Li 2017), meta-trained on the
E2 family only (1 × 20 sigmoid, minibatches of 128) with randomly scaled tasks combined with a
random convex square (learners.RandomlyScaled, PlusSquare), and then evaluated, unchanged, on MLP
families and horizons it never saw. Its opponents are the four baselines with the learning rate
tuned for each family and each horizon separately (quarter-decades from 1e-4 to 10, on TUNE_SEED
tasks), a stronger protocol than E1–E4's, which tune once, at the training horizon.

A cell of the table is one (family, horizon): the learned optimizer's mean training loss at that
step over RUNS evaluation tasks against the best tuned baseline's, and the paired difference on the
same tasks (common.paired_difference) with its standard error. RUNS is 40: the differences here
are mostly 0.01–0.05, which over 20 tasks are one to two of their standard errors, too close to
call. The ablation compares variants with each other, whose
differences are larger, on the first ABLATION_RUNS of the same tasks. The learned optimizer runs once per
family, for the family's longest horizon; the baselines once per (family, horizon), each with the
rate tuned for that horizon.
"""
from pathlib import Path

import numpy

from ..evaluation import TUNE_SEED, run_on_tasks
from ..learners import MLP
from ..optimizers import make_optimizer
from ..serialization import load_phi
from ..tuning import quarter_decades
from .common import (BASELINES, Setting, evaluation_experiment, load_tuned, number, paired_difference, plot_curves, plus_minus,
                     save_png, summarize)

KEY = "E6_general"
RUNS = 40                    # evaluation tasks per cell
ABLATION_RUNS = 20           # the ablation's, the first 20 of them
TUNE_RUNS = 5                # tuning tasks per learning rate
GRID = quarter_decades(1e-4, 10.0)
LEARNED = {"RNNprop": "general_mnist.npz"}
# The ablation: the same recipe for fewer trajectories, and each remedy removed in turn, on a few cells.
ABLATION = {"all remedies": "general_mnist_ablation/full.npz",
            "log/sign inputs (no moments)": "general_mnist_ablation/no_moments.npz",
            "unbounded step": "general_mnist_ablation/unbounded.npz",
            "no random scaling": "general_mnist_ablation/no_scaling.npz",
            "no convex square": "general_mnist_ablation/no_square.npz"}
ABLATION_CELLS = (("mnist", 100), ("mnist", 200), ("mnist_2layers", 100), ("mnist_relu", 100))

# family key -> (title, family, horizons)
FAMILIES = {
    "mnist": ("1 × 20 sigmoid (trained on)", MLP((20,), "sigmoid"), (100, 200, 1000)),
    "mnist_40": ("1 × 40 sigmoid", MLP((40,), "sigmoid"), (100, 200)),
    "mnist_2layers": ("2 × 20 sigmoid", MLP((20, 20), "sigmoid"), (100, 200)),
    "mnist_relu": ("1 × 20 ReLU", MLP((20,), "relu"), (100, 200)),
    "mnist_tanh": ("1 × 20 tanh", MLP((20,), "tanh"), (100, 200)),
    "mnist_batch32": ("1 × 20 sigmoid, batch 32", MLP((20,), "sigmoid", batch=32), (100, 200)),
}


def tuned_key(family, steps):
    """The key of a (family, horizon) in tuned.json: the baselines are tuned for each."""
    return f"e6/{family}@{steps}"


TUNED_SETTINGS = {tuned_key(f, h): Setting(tuned_key(f, h), title, family, steps=h, runs=RUNS, tune_steps=h,
                                           tune_runs=TUNE_RUNS, tune_grid=GRID)
                  for f, (title, family, horizons) in FAMILIES.items() for h in horizons}
ABLATION_SETTINGS = {f: Setting(f"e6_ablation/{f}", FAMILIES[f][0], FAMILIES[f][1],
                                 steps=max(h for g, h in ABLATION_CELLS if g == f), runs=ABLATION_RUNS,
                                 tune_steps=0, tune_runs=0)
                     for f in dict.fromkeys(f for f, _ in ABLATION_CELLS)}
LEARNED_SETTINGS = {f: Setting(f"e6/{f}", title, family, steps=max(horizons), runs=RUNS, tune_steps=max(horizons),
                               tune_runs=TUNE_RUNS)
                    for f, (title, family, horizons) in FAMILIES.items()}


def tuned_baseline_losses(family, steps, name, seed, runs=RUNS):
    """losses[r, t] of hand-designed optimizer `name` at its shipped rate tuned for the cell (family,
    steps), on the first `runs` of the cell's evaluation tasks drawn with `seed` (all RUNS of them:
    one baseline of the table, alone)."""
    key = tuned_key(family, steps)
    setting = TUNED_SETTINGS[key]
    phi = {**make_optimizer(name).init_phi(), "lr": load_tuned()[key][name]}
    with numpy.errstate(all="ignore"):
        return run_on_tasks(make_optimizer(name), phi, setting.family, setting.steps, runs, seed)[0]


def _learned_methods(ctx, learned=LEARNED):
    """[(label, name, config, φ)] of the learned optimizers whose weights files exist (for the
    ablation, all of them or none: each variant is compared with the first)."""
    if learned is ABLATION and not all((Path(ctx.weights) / f).is_file() for f in ABLATION.values()):
        return []
    methods = []
    for label, filename in learned.items():
        path = Path(ctx.weights) / filename
        if path.is_file():
            optimizer, phi, _ = load_phi(path, expect="rnnprop")
            methods.append((label, optimizer.name, optimizer.config, phi))
    return methods


def _baselines(ctx, setting):
    return [(name, name, {}, {**make_optimizer(name).init_phi(), "lr": ctx.tuned[setting.key][name]})
            for name in BASELINES]


def requests(ctx):
    """What run() evaluates: the learned optimizers once per family, the baselines per cell."""
    learned, ablation = _learned_methods(ctx), _learned_methods(ctx, ABLATION)
    out = [(setting, learned) for setting in LEARNED_SETTINGS.values()] if learned else []
    out += [(setting, ablation) for setting in ABLATION_SETTINGS.values()] if ablation else []
    return out + [(setting, _baselines(ctx, setting)) for setting in TUNED_SETTINGS.values()]


def run(ctx):
    evaluated = ctx.evaluate(requests(ctx))
    learned = [label for label, *_ in _learned_methods(ctx)]
    cells, panels = {}, []
    for f, (title, _, horizons) in FAMILIES.items():
        for h in horizons:
            setting = TUNED_SETTINGS[tuned_key(f, h)]
            steps, runs = ctx.protocol(setting)
            t = min(h, steps)
            curves = {b: evaluated[(setting.key, b)]["losses"] for b in BASELINES}
            curves.update({label: evaluated[(f"e6/{f}", label)]["losses"] for label in learned})
            summaries = {label: summarize({"losses": c}, [t]) for label, c in curves.items()}
            best = min(BASELINES, key=lambda b: summaries[b][f"loss_mean@{t}"])
            cell = {"family": f, "title": title, "step": t, "runs": runs, "best_baseline": best,
                    "tuned_lr": dict(ctx.tuned[setting.key]),
                    "loss_mean": {label: s[f"loss_mean@{t}"] for label, s in summaries.items()},
                    "loss_std": {label: s[f"loss_std@{t}"] for label, s in summaries.items()}}
            for label in learned:
                cell.setdefault("learned", {})[label] = {
                    "ratio": summaries[label][f"loss_mean@{t}"] / summaries[best][f"loss_mean@{t}"],
                    "paired_difference": paired_difference(curves[label], curves[best], t)}
            cells[f"{f}@{h}"] = cell
        longest = TUNED_SETTINGS[tuned_key(f, max(horizons))]
        panel = {b: evaluated[(longest.key, b)]["losses"] for b in BASELINES}
        panel.update({label: evaluated[(f"e6/{f}", label)]["losses"] for label in learned})
        panels.append((panel, f"{title}: rates tuned for {max(horizons)} steps"))
    _save(ctx.out / "e6_general.png", panels)
    variants = [label for label, *_ in _learned_methods(ctx, ABLATION)]
    ablation, ablation_best = {}, {}
    for f, h in ABLATION_CELLS if variants else ():
        cell = cells[f"{f}@{h}"]
        t = cell["step"]
        curves = {v: evaluated[(f"e6_ablation/{f}", v)]["losses"] for v in variants}
        runs = ctx.protocol(ABLATION_SETTINGS[f])[1]
        # the cell's best baseline on the ablation's tasks: the first `runs` of the cell's (the same draws)
        best = evaluated[(tuned_key(f, h), cell["best_baseline"])]["losses"][:runs]
        ablation_best[f"{f}@{h}"] = {"name": cell["best_baseline"], "runs": runs,
                                     "loss_mean": summarize({"losses": best}, [t])[f"loss_mean@{t}"]}
        ablation[f"{f}@{h}"] = {v: {"loss_mean": summarize({"losses": c}, [t])[f"loss_mean@{t}"],
                                    "minus_best_baseline": paired_difference(c, best, t),
                                    "minus_all_remedies": paired_difference(c, curves[variants[0]], t)}
                                for v, c in curves.items()}
    return {KEY: {"ablation": ablation, "ablation_variants": variants, "ablation_best_baseline": ablation_best,
                  "eval_seed": ctx.eval_seed,
                  "tune_seed": TUNE_SEED, "runs": RUNS, "tune_runs": TUNE_RUNS,
                  "lr_grid": [min(GRID), max(GRID), len(GRID)], "learned": learned, "cells": cells,
                  "figure": "e6_general.png"}}


def _save(path, panels):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    columns = 3
    rows = (len(panels) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(5.5 * columns, 4 * rows), squeeze=False)
    for ax, (curves, title) in zip(axes.flat, panels):
        plot_curves(ax, curves, title)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    save_png(fig, path, dpi=100)


def ordered_cells(block):
    """The cells by family, in the order the families first appear, then by step (results.json is
    written with sorted keys, which put "@1000" before "@200")."""
    cells = list(block["cells"].values())
    families = list(dict.fromkeys(cell["title"] for cell in cells))
    return sorted(cells, key=lambda cell: (families.index(cell["title"]), int(cell["step"])))


def table(results):
    """The E6 table (Markdown) from results.json, or "" without an E6 block."""
    block = results.get(KEY)
    if not block or not block["learned"]:
        return ""
    rows = ["| family | step | best tuned baseline (lr) | its loss | " + " | ".join(
        f"{label} loss | ratio | paired difference ± s.e. | tasks lower" for label in block["learned"]) + " |",
        "| --- " * (4 + 4 * len(block["learned"])) + "|"]
    for cell in ordered_cells(block):
        best = cell["best_baseline"]
        cells = [cell["title"], str(cell["step"]), f"{best} ({cell['tuned_lr'][best]:.3g})",
                 number(cell["loss_mean"][best], ".4g")]
        for label in block["learned"]:
            d = cell["learned"][label]["paired_difference"]
            cells += [number(cell["loss_mean"][label], ".4g"), number(cell["learned"][label]["ratio"], ".3f"),
                      plus_minus(d), f"{d['wins']} of {cell['runs']}"]
        rows.append("| " + " | ".join(cells) + " |")
    if block.get("ablation"):
        cells = list(block["ablation"])
        runs = block["ablation_best_baseline"][cells[0]]["runs"]
        rows += ["", f"| E6 ablation (same recipe, 200 trajectories; {runs} tasks) | " + " | ".join(
            f"{block['cells'][c]['title']}, step {block['cells'][c]['step']}: loss (− all remedies ± s.e.)"
            for c in cells) + " |", "| --- " * (1 + len(cells)) + "|"]
        for v in block["ablation_variants"]:
            entries = []
            for c in cells:
                a = block["ablation"][c][v]
                d = a["minus_all_remedies"]
                entries.append(number(a["loss_mean"], ".4g") + ("" if v == block["ablation_variants"][0] else
                               f" ({plus_minus(d)})"))
            rows.append(f"| {v} | " + " | ".join(entries) + " |")
        rows.append("| best tuned baseline | " + " | ".join(
            f"{number(block['ablation_best_baseline'][c]['loss_mean'], '.4g')} "
            f"({block['ablation_best_baseline'][c]['name']})" for c in cells) + " |")
    return "\n".join(rows) + "\n"


jobs, collect = evaluation_experiment(requests, run)     # what run_all calls
