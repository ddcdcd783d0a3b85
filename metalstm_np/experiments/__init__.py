r"""The experiments, one module each; `run_all` runs them and writes figures/results.json.

    e1_quadratic       Andrychowicz et al. Fig. 2: quadratics
    e2_mnist           Andrychowicz et al. Fig. 4: MNIST, 20 sigmoid units
    e3_generalization  Andrychowicz et al. Fig. 5: 40 units, 2 layers, ReLU
    e4_one_layer       one LSTM layer against two
    e5_fewshot         Ravi & Larochelle: few-shot episodes on rotated MNIST, and the gate figure
    e6_general         beyond both papers: RNNprop, trained on E2's family, on other families and horizons

Every number in the README's results table comes from results.json (see `results_table`).
"""
import contextlib
import json
import math
import time
from pathlib import Path

from . import e1_quadratic, e2_mnist, e3_generalization, e4_one_layer, e5_fewshot, e6_general
from ..evaluation import EVAL_SEED
from .common import Context, load_tuned, number, process_pool, run_named
from .e4_one_layer import LEARNED_BOTH

E4_TWO, E4_ONE = LEARNED_BOTH          # the labels of the two- and the one-layer optimizer

__all__ = ["EXPERIMENTS", "run_all", "results_table", "update_readme"]

EXPERIMENTS = {"e1": e1_quadratic, "e2": e2_mnist, "e3": e3_generalization, "e4": e4_one_layer,
               "e5": e5_fewshot, "e6": e6_general}


def run_all(out, quick=False, workers=2, only=None, tuned=None, weights=None, eval_seed=EVAL_SEED, pool=None,
            progress=None):
    """Run the experiments (all, or the keys in `only`), write out/results.json; returns the results.

    tuned: the tuned learning rates (default: the shipped ones); weights: folder of the learned
    optimizers' weights (default: the shipped ones, metalstm_np/pretrained/); eval_seed: the
    evaluation tasks of E1–E4 and E6 (another seed re-checks their claims on other tasks); pool:
    the Executor that runs the jobs (default: a process pool of `workers`); progress: a progress
    bar (tqdm), reset to the number of jobs and updated as each one finishes.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(out=out, quick=quick, tuned=load_tuned(tuned), workers=workers, eval_seed=eval_seed)
    if weights:
        ctx.weights = Path(weights)
    selected = [module for key, module in EXPERIMENTS.items() if not only or key in only]
    start = time.perf_counter()
    # Every experiment's runs go into one pool, so that both cores stay busy (a run that two
    # experiments share has one name, and runs once); then each experiment makes its results.
    jobs = {name: job for module in selected for name, job in module.jobs(ctx).items()}
    if progress is not None:
        progress.reset(total=len(jobs))
    with contextlib.nullcontext(pool) if pool is not None else process_pool(max(1, workers)) as pool:
        done = run_named(jobs, pool, progress=progress.update if progress is not None else None)
    results = {"quick": quick}
    for module in selected:
        results.update(module.collect(ctx, done))
    results["seconds"] = round(time.perf_counter() - start, 1)
    results = strict(results)
    (out / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True, allow_nan=False) + "\n")
    return results


def strict(tree):
    """The results with every NaN or infinity (a diverged run) as None, so results.json is strict
    JSON (null) and the table says "diverged"."""
    if isinstance(tree, dict):
        return {k: strict(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [strict(v) for v in tree]
    if isinstance(tree, float) and not math.isfinite(tree):
        return None
    return tree


def _fmt(mean, std=None):
    if mean is None or mean == float("inf"):
        return "diverged"
    return f"{mean:.4g}" if std is None else f"{mean:.4g} ± {std:.2g}"


def _paired(d, runs):
    return f"{number(d['mean'], '+.4f')} ± {number(d['se'], '.4f')} | {d['wins']} of {runs} |"


def results_table(results):
    """The README's results table (Markdown), generated from results.json."""
    experiments = sorted(k for k in results if k[:1] == "E" and "methods" in results[k])  # E1–E4
    steps = sorted({int(k.split("@")[1]) for e in experiments for s in results[e]["methods"].values()
                    for k in s if k.startswith("loss_mean@")})
    rows = ["| experiment | method | tuned lr | " + " | ".join(f"loss @{t}" for t in steps)
            + " | test loss | test accuracy |", "| --- " * (5 + len(steps)) + "|"]
    for key in experiments:
        block = results[key]
        for method, s in block["methods"].items():
            lr = block["tuned_lr"].get(method)
            cells = [key, method, f"{lr:.3g}" if lr else "learned"]
            for t in steps:
                cells.append(_fmt(s[f"loss_mean@{t}"], s[f"loss_std@{t}"]) if f"loss_mean@{t}" in s else "")
            cells.append(_fmt(s["test_loss_mean"], s["test_loss_std"]) if "test_loss_mean" in s else "")
            cells.append(_fmt(s["test_accuracy_mean"], s["test_accuracy_std"])
                         if "test_accuracy_mean" in s else "")
            rows.append("| " + " | ".join(cells) + " |")
    rows += ["", "| experiment | learned optimizer | step | best tuned baseline | loss ratio (learned / best) "
             "| paired difference (learned − best) ± s.e. | tasks where learned is lower |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for key in experiments:
        block = results[key]
        for method, at in block["ratio_to_best_baseline"].items():
            for step, r in at.items():
                rows.append(f"| {key} | {method} | {step[1:]} | {r['best_baseline']} | {number(r['ratio'], '.3f')} | "
                            + _paired(r["paired_difference"], block["runs"]))
        for step, d in block.get("two_minus_one_layer", {}).items():      # E4: the two learned ones
            ratio = block["methods"][E4_TWO][f"loss_mean{step}"] / block["methods"][E4_ONE][f"loss_mean{step}"]
            rows.append(f"| {key} | two layers, against one layer | {step[1:]} | (one layer) | {ratio:.3f} | "
                        + _paired(d, block["runs"]))
    extra = [table for table in (e5_fewshot.fewshot_table(results), e6_general.e6_table(results)) if table]
    return "\n".join(rows) + "\n" + "".join(f"\n{table}" for table in extra)


START, END = "<!-- results:start -->", "<!-- results:end -->"


def update_readme(readme, results):
    """Replace the text between the results markers in `readme` with the generated table."""
    readme = Path(readme)
    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme}: no {START} ... {END} markers to put the results table between")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(head + START + "\n" + results_table(results) + END + tail)
