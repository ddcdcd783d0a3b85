r"""The experiments, one module each; `run_all` runs them and writes figures/results.json.

    e1_quadratic       Andrychowicz et al. Fig. 2: quadratics
    e2_mnist           Andrychowicz et al. Fig. 4: MNIST, 20 sigmoid units
    e3_generalization  Andrychowicz et al. Fig. 5: 40 units, 2 layers, ReLU
    e4_one_layer       one LSTM layer against two
    e5_fewshot         Ravi & Larochelle: few-shot episodes on rotated MNIST, and the gate figure
    e6_general         beyond both papers: RNNprop, trained on E2's family, on other families and horizons

Every number in the README's results table comes from results.json (see `results_table`). Beside
the experiments' blocks it holds "quick" (true for a --quick run) and, for each run whose blocks
it holds, the seconds the run took and the versions it ran with (common.RUN_WIDE): a run of some
experiments (`only`) replaces their blocks in the results.json already there and keeps the others.
"""
import contextlib
import json
import math
import time
from pathlib import Path

from . import e1_quadratic, e2_mnist, e3_generalization, e4_one_layer, e5_fewshot, e6_general, findings
from ..evaluation import EVAL_SEED
from ..serialization import atomic_write_text
from .common import RUN_WIDE, Context, blocks, experiment_of, load_tuned, process_pool, run_named, runs, versions

__all__ = ["EXPERIMENTS", "BLOCKS", "run_all", "run_name", "read_results", "earlier_results", "merge", "results_table", "markers",
           "update_readme"]

EXPERIMENTS = {"e1": e1_quadratic, "e2": e2_mnist, "e3": e3_generalization, "e4": e4_one_layer,
               "e5": e5_fewshot, "e6": e6_general}


def run_all(out, quick=False, workers=2, only=None, tuned=None, weights=None, eval_seed=EVAL_SEED, pool=None,
            progress=None):
    """Run the experiments (all, or the keys in `only`), write out/results.json; returns what it wrote.

    With `only`, their blocks go into the out/results.json already there, if any (`merge`): it must
    be one that this code wrote (`read_results`), with the same "quick" and, in every block kept,
    the same evaluation seed; each is checked, and a ValueError names the file, before any run.
    tuned: the tuned learning rates (default: the shipped ones); weights: folder of the learned
    optimizers' weights (default: the shipped ones, metalstm_np/pretrained/); eval_seed: the
    evaluation tasks of E1–E4 and E6 (another seed re-checks their claims on other tasks); pool:
    the Executor that runs the jobs (default: a process pool of `workers`); progress: a progress
    bar (tqdm), reset to the number of jobs and updated as each one finishes.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    run = run_name(only)
    made = run.split(",")
    earlier = earlier_results(out, only, quick, eval_seed)
    ctx = Context(out=out, quick=quick, tuned=load_tuned(tuned), workers=workers, eval_seed=eval_seed)
    if weights:
        ctx.weights = Path(weights)
    selected = [EXPERIMENTS[key] for key in made]
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
    results.update(seconds={run: round(time.perf_counter() - start, 1)}, versions={run: versions()})
    results = merge(earlier, strict(results), made)
    atomic_write_text(out / "results.json", json.dumps(results, indent=1, sort_keys=True, allow_nan=False) + "\n")
    return results


def run_name(only=None):
    """The name of a run of the experiments `only` (None: all) in results.json: "e1,e2"."""
    return ",".join(key for key in EXPERIMENTS if not only or key in only)


def read_results(path):
    r"""The results file at `path` (results.json, or `fewshot evaluate`'s fewshot_results.json),
    checked to be one this code writes: a JSON object with "quick" true or false, the RUN_WIDE
    entries and known experiments' blocks. Anything else is a ValueError naming the file."""
    path = Path(path)
    try:
        results = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ValueError(f"{path}: not a readable results file ({e})") from None

    def fits(key, value):
        if key == "quick":
            return isinstance(value, bool)
        if key in RUN_WIDE:              # or one number of seconds, in a file written before merges
            return isinstance(value, dict) or key == "seconds" and isinstance(value, (int, float))
        return experiment_of(key) in EXPERIMENTS and isinstance(value, dict)

    if not isinstance(results, dict):
        raise ValueError(f"{path}: holds a JSON {type(results).__name__}, not the object of a results file")
    wrong = [key for key, value in results.items() if not fits(key, value)] + ["quick"] * ("quick" not in results)
    if wrong:
        raise ValueError(f"{path}: not a results file of `metalstm figures` (its {wrong[0]!r} entry is "
                         f"{'missing' if wrong[0] not in results else 'not one it writes'})")
    return results


def earlier_results(out, only, quick, eval_seed):
    r"""The results that a run of the experiments `only` (None: all, and then none) into the folder
    `out` merges into: out/results.json's, if there is one (`read_results`), else {"quick": quick}.
    A ValueError names the file unless the blocks the run leaves have its "quick" and its evaluation seed."""
    path = Path(out) / "results.json"
    if not only or not path.exists():
        return {"quick": quick}
    earlier, made = read_results(path), run_name(only).split(",")
    kinds = {True: "--quick", False: "full"}
    if earlier["quick"] != quick:
        raise ValueError(f"{path}: holds {kinds[earlier['quick']]} results and these are {kinds[quick]}: they do "
                         f"not go into one file (write them into another folder)")
    for key, block in blocks(earlier).items():
        if experiment_of(key) not in made and block.get("eval_seed", eval_seed) != eval_seed:
            raise ValueError(f"{path}: its {key} is on evaluation seed {block['eval_seed']} and these results "
                             f"on {eval_seed}: they do not go into one file (write them into another folder)")
    return earlier


def merge(earlier, new, made):
    r"""The results `earlier` with the blocks of the experiments `made` (keys of EXPERIMENTS)
    replaced by the blocks of `new`, one run's results; each earlier run in the RUN_WIDE entries
    is named anew by the experiments whose blocks it still made, and dropped with none."""
    merged = {key: block for key, block in blocks(earlier).items() if experiment_of(key) not in made}
    merged.update({key: value for key, value in new.items() if key not in RUN_WIDE})
    for entry in RUN_WIDE:
        kept = {",".join(e for e in run.split(",") if e not in made): value
                for run, value in runs(earlier, entry).items()}
        merged[entry] = {**{run: value for run, value in kept.items() if run}, **new[entry]}
    return merged


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
    atomic_write_text(readme, text)
