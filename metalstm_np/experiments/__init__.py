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

from . import e1_quadratic, e2_mnist, e3_generalization, e4_one_layer, e5_fewshot, e6_general, findings
from ..evaluation import EVAL_SEED
from .common import Context, load_tuned, process_pool, run_named

__all__ = ["EXPERIMENTS", "BLOCKS", "run_all", "results_table", "markers", "update_readme"]

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


def results_table(results):
    """The README's results tables (Markdown), generated from results.json: each experiment's own."""
    return "\n".join(table for table in (module.table(results) for module in EXPERIMENTS.values()) if table)


BLOCKS = ("findings", "results")       # the README's generated parts, <!-- NAME:start --> ... <!-- NAME:end -->


def markers(name):
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def update_readme(readme, results, recheck=None):
    """Replace the text between each pair of markers in `readme` with what is generated from the
    results: the findings (with `recheck`, the results of another evaluation seed) and the tables."""
    readme = Path(readme)
    text = readme.read_text()
    generated = {"findings": findings.findings(results, recheck), "results": results_table(results)}
    for name in BLOCKS:
        start, end = markers(name)
        if start not in text or end not in text or text.index(end) < text.index(start):
            raise ValueError(f"{readme}: no {start} ... {end} markers, in that order, to put the {name} between")
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = head + start + "\n" + generated[name] + end + tail
    readme.write_text(text)
