r"""What every experiment shares: the seeds, the shipped weights, the tuned baselines, the runs, the plots.

Protocol (the same for every method, learned or hand-designed): the same evaluation tasks (drawn
with EVAL_SEED), the same number of steps, the same minibatches. Baselines use the learning rate
that `metalstm tune` chose on tuning tasks drawn with TUNE_SEED, which are disjoint from the
evaluation tasks. The learned optimizers use the φ shipped in metalstm_np/pretrained/.
"""
import json
import math
import platform
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy

from .. import blas
from ..evaluation import EVAL_SEED, TUNE_SEED, run_on_tasks
from ..learners import MLP, Quadratic, mnist_split
from ..pool import BLAS_THREAD_VARS, process_pool, run_jobs  # noqa: F401  (re-exported)
from ..optimizers import make_optimizer
from ..serialization import atomic_write, load_phi

__all__ = ["EVAL_SEED", "TUNE_SEED", "BASELINES", "SETTINGS", "Setting", "Context", "Job", "run_job",
           "run_named", "evaluation_experiment", "curves_table", "plus_minus", "paired_cells", "process_pool", "pretrained_path",
           "load_tuned", "number", "summarize", "plot_curves", "compare", "save_figure", "save_png",
           "RUN_WIDE", "experiment_of", "blocks", "runs", "versions"]

BASELINES = ("sgd", "nag", "rmsprop", "adam")
EXPECTED = {"l2l_quadratic.npz": "l2l", "l2l_mnist.npz": "l2l", "l2l1_mnist.npz": "l2l",
            "general_mnist.npz": "rnnprop"}    # shipped weights file -> the optimizer it must hold
PRETRAINED = Path(str(resources.files("metalstm_np") / "pretrained"))


@dataclass(frozen=True)
class Setting:
    """One task family with its evaluation protocol."""

    key: str               # name in results.json and tuned.json
    title: str             # for figures
    family: object         # Quadratic or MLP (evaluation minibatches from the training images)
    steps: int             # evaluation horizon
    runs: int              # fresh tasks
    tune_steps: int        # horizon the baselines are tuned for (the training horizon)
    tune_runs: int
    tune_grid: tuple = None  # learning rates to try (None: tuning.tune_lr's widening half-decades)


SETTINGS = {s.key: s for s in [
    Setting("quadratic", "10-d quadratics", Quadratic(), steps=100, runs=100, tune_steps=100, tune_runs=20),
    Setting("mnist", "MNIST, 1 × 20 sigmoid", MLP((20,), "sigmoid"), steps=200, runs=20,
            tune_steps=100, tune_runs=5),
    Setting("mnist_40", "MNIST, 1 × 40 sigmoid", MLP((40,), "sigmoid"), steps=200, runs=20,
            tune_steps=100, tune_runs=5),
    Setting("mnist_2layers", "MNIST, 2 × 20 sigmoid", MLP((20, 20), "sigmoid"), steps=200, runs=20,
            tune_steps=100, tune_runs=5),
    Setting("mnist_relu", "MNIST, 1 × 20 ReLU", MLP((20,), "relu"), steps=200, runs=20,
            tune_steps=100, tune_runs=5),
]}


def pretrained_path(name):
    """Path of a shipped file in metalstm_np/pretrained/."""
    return PRETRAINED / name


class TunedRates(dict):
    """{setting key: {baseline: learning rate}} from a tuned file, which it names when a setting the
    experiments need is missing from it."""

    def __init__(self, rates, path):
        super().__init__(rates)
        self.path = path

    def __missing__(self, key):
        raise ValueError(f"{self.path}: no tuned learning rates for setting {key!r}; run "
                         f"`metalstm tune --settings {key} --out {self.path}`")


def load_tuned(path=None):
    """{setting key: {optimizer: learning rate}} as written by `metalstm tune`, checked: a JSON object
    of settings, each with a positive, finite learning rate for every baseline; every problem is a
    ValueError (FileNotFoundError for a missing file) that names the file."""
    path = Path(path) if path else pretrained_path("tuned.json")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no tuned learning rates; run `metalstm tune` first")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ValueError(f"{path}: not a readable tuned-rates JSON file ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: holds {type(data).__name__}, not an object of settings")
    rates = {}
    for key, value in data.items():
        lr = value.get("lr") if isinstance(value, dict) else None
        if not isinstance(lr, dict):
            raise ValueError(f"{path}: setting {key!r} has no \"lr\" object of learning rates")
        for name in BASELINES:
            rate = lr.get(name)
            if (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0
                    or not math.isfinite(float(rate) if abs(rate) < 1e308 else math.inf)):
                raise ValueError(f"{path}: setting {key!r}: the learning rate of {name} is {rate!r}, "
                                 f"not a positive finite number")
        rates[key] = lr
    return TunedRates(rates, path)


# results.json: the experiments' blocks, "quick" (true for --quick runs), and the run-wide entries,
# each {run: value}, a run named by the experiments whose blocks in the file it made ("e2,e3")
RUN_WIDE = ("seconds", "versions")     # wall-clock seconds of the run; `versions()` it ran with


def experiment_of(key):
    """The experiment whose block in results.json `key` is: every block's key starts with its
    experiment's name, capitalized ("E3_mnist_40" is e3's)."""
    return key.split("_", 1)[0].lower()


def blocks(results):
    """{key: block} of the experiments' blocks in results.json, without "quick" and RUN_WIDE."""
    return {key: value for key, value in results.items() if key != "quick" and key not in RUN_WIDE}


def runs(results, entry):
    r"""results[entry], a RUN_WIDE entry, as {run: value}. A file written before runs were merged
    holds one number of seconds for all its blocks, and no versions."""
    value = results.get(entry)
    if value is None or isinstance(value, dict):
        return value or {}
    return {",".join(sorted({experiment_of(key) for key in blocks(results)})): value}


def versions():
    """The versions of Python, of the packages that compute and draw the results, and of metalstm_np,
    and what this process's NumPy runs on (blas.in_use(): OpenBLAS's kernels and threads, NumPy's
    SIMD level), which a local pool's workers share: they inherit its environment."""
    from .. import __version__
    return {"python": platform.python_version(), "metalstm_np": __version__,
            **{name: metadata.version(name) for name in ("numpy", "scipy", "autograd", "matplotlib")},
            "blas": blas.in_use()}


class Job(NamedTuple):
    """One run of an experiment: fn(*args), fn a top-level function so that a worker can run it.
    cost: its size (learner coordinates × steps × runs, an LSTM's ~50× a hand-designed update's),
    so that the longest jobs start first."""

    fn: Callable
    args: tuple
    cost: float


def run_job(job):
    """The result of a Job."""
    return job.fn(*job.args)


def run_named(jobs, pool=None, workers=1, progress=None):
    r"""{name: Job} -> {name: result}, the longest jobs first, in `pool` (an Executor) if given,
    else in a pool of `workers` processes (here, if 1); progress() is called as each job finishes."""
    names = sorted(jobs, key=lambda name: -jobs[name].cost)
    if pool is None and workers > 1 and len(names) > 1:
        with process_pool(workers) as pool:
            return run_named(jobs, pool, progress=progress)
    return dict(zip(names, run_jobs(pool, run_job, [jobs[name] for name in names], progress=progress)))


def evaluation_experiment(requests, run):
    r"""(jobs, collect) of an experiment whose runs are evaluations of methods on settings:
    requests(ctx) lists them, [(setting, [(label, name, config, φ)])], and run(ctx) makes the results
    from ctx.evaluate (which finds them cached, or runs what is missing here and now)."""
    def jobs(ctx):
        return ctx.jobs(requests(ctx))

    def collect(ctx, done):
        ctx.store(requests(ctx), done)
        return run(ctx)
    return jobs, collect


def _evaluation(family, name, config, phi, steps, runs, seed):
    """One (setting, method) evaluation."""
    optimizer = make_optimizer(name, **config)
    with numpy.errstate(all="ignore"):
        losses, thetas, tasks = run_on_tasks(optimizer, phi, family, steps, runs, seed)
    out = {"losses": losses}
    if isinstance(family, MLP):    # test-set loss and accuracy of θ_T, on the 10,000 test images
        X, y = mnist_split("test")
        out["test_loss"] = numpy.array([float(family.loss_on(th, X, y)) for th in thetas])
        out["test_accuracy"] = numpy.array([family.accuracy_on(th, X, y) for th in thetas])
    return out


@dataclass
class Context:
    """Where results go, how big the runs are, and a cache so no (setting, method) runs twice."""

    out: Path
    quick: bool = False
    tuned: dict = field(default_factory=dict)
    workers: int = 2
    weights: Path = PRETRAINED    # folder of the learned optimizers' .npz files
    cache: dict = field(default_factory=dict)
    eval_seed: int = EVAL_SEED    # the evaluation tasks of E1–E4 and E6 (another one re-checks a claim)

    def protocol(self, setting):
        """(steps, runs) for a setting: the full protocol, or a short one with --quick."""
        if self.quick:
            return min(setting.steps, 20), 3
        return setting.steps, setting.runs

    def methods(self, setting, learned):
        """[(label, optimizer name, config, φ)]: the four tuned baselines plus `learned`
        ({label: weights file name in pretrained/})."""
        methods = []
        for name in BASELINES:
            opt = make_optimizer(name)
            methods.append((name, name, {}, {**opt.init_phi(), "lr": self.tuned[setting.key][name]}))
        for label, filename in learned.items():
            optimizer, phi, _ = load_phi(Path(self.weights) / filename, expect=EXPECTED.get(filename))
            methods.append((label, optimizer.name, optimizer.config, phi))
        return methods

    def jobs(self, requests):
        """requests: [(setting, [(label, name, config, φ)])] -> {"setting key: label": Job}, the
        runs not cached yet."""
        jobs = {}
        for setting, methods in requests:
            n = setting.family.n_params
            steps, runs = self.protocol(setting)
            for label, name, config, phi in methods:
                if _name(setting, label) not in self.cache:
                    jobs[_name(setting, label)] = Job(_evaluation, (setting.family, name, config, phi, steps,
                                                                    runs, self.eval_seed),
                                                      cost=n * steps * runs * (50 if config else 1))
        return jobs

    def store(self, requests, done):
        """Keep the runs of `requests` among the finished jobs {name: result}, so none runs twice."""
        names = {_name(setting, label) for setting, methods in requests for label, *_ in methods}
        self.cache.update({name: result for name, result in done.items() if name in names})

    def evaluate(self, requests):
        """requests: [(setting, [(label, name, config, φ)])] -> {(setting key, label): result}.
        Runs what is not cached yet, in a pool of self.workers processes, longest jobs first."""
        self.cache.update(run_named(self.jobs(requests), workers=self.workers))
        return {(s.key, m[0]): self.cache[_name(s, m[0])] for s, methods in requests for m in methods}


def _name(setting, label):
    return f"{setting.key}: {label}"


def number(x, spec):
    """x formatted with `spec`, or "diverged" for a run without a finite number (None, NaN, inf)."""
    return "diverged" if x is None or x != x or abs(x) == float("inf") else format(x, spec)


def _fmt(mean, std=None):
    text = number(mean, ".4g")
    return text if std is None or text == "diverged" else f"{text} ± {number(std, '.2g')}"


def plus_minus(d):
    """'+0.0123 ± 0.0045': a paired difference {mean, se} as the tables and findings print it."""
    return f"{number(d['mean'], '+.4f')} ± {number(d['se'], '.4f')}"


def paired_cells(d, runs):
    """The table cells of a paired difference: 'mean ± se | wins of runs |'."""
    return f"{plus_minus(d)} | {d['wins']} of {runs} |"


def curves_table(results, keys, extra_rows=()):
    r"""Two Markdown tables of the `compare` blocks results[key] for the keys present: every method's
    loss (mean ± std over tasks) at each reported step with its tuned lr and test metrics; then each
    learned optimizer against the best tuned baseline, with extra_rows ([str]) appended. "" if none."""
    keys = [k for k in keys if k in results and "methods" in results[k]]
    if not keys:
        return ""
    steps = sorted({int(k.split("@")[1]) for e in keys for s in results[e]["methods"].values()
                    for k in s if k.startswith("loss_mean@")})
    rows = ["| experiment | method | tuned lr | " + " | ".join(f"loss @{t}" for t in steps)
            + " | test loss | test accuracy |", "| --- " * (5 + len(steps)) + "|"]
    for key in keys:
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
    for key in keys:
        block = results[key]
        for method, at in block["ratio_to_best_baseline"].items():
            for step, r in at.items():
                rows.append(f"| {key} | {method} | {step[1:]} | {r['best_baseline']} | {number(r['ratio'], '.3f')} | "
                            + paired_cells(r["paired_difference"], block["runs"]))
    return "\n".join(rows + list(extra_rows)) + "\n"


def summarize(result, at_steps):
    """Mean and std over runs of the training loss at each step in at_steps (and test metrics)."""
    losses = result["losses"]
    summary = {}
    for t in at_steps:
        if t < losses.shape[1]:
            final = losses[:, t]
            ok = numpy.isfinite(final)
            summary[f"loss_mean@{t}"] = float(final.mean()) if ok.all() else float("inf")
            summary[f"loss_std@{t}"] = float(final.std()) if ok.all() else float("nan")
    for key in ("test_loss", "test_accuracy"):
        if key in result:
            summary[f"{key}_mean"] = float(numpy.mean(result[key]))
            summary[f"{key}_std"] = float(numpy.std(result[key]))
    return summary


def paired_difference(losses_a, losses_b, t):
    r"""A against B at step t on the same tasks (every method runs on the same EVAL_SEED tasks: the
    same θ^0 and minibatch order), per task d_r = L^A_r − L^B_r: {"mean": mean d, "se": its standard
    error std(d, ddof=1)/√runs, "wins": the number of tasks where A is lower}. Pairing removes the
    spread between tasks, which dominates the std of either method's loss."""
    d = numpy.asarray(losses_a)[:, t] - numpy.asarray(losses_b)[:, t]
    wins = int(numpy.sum(d < 0))
    if not numpy.all(numpy.isfinite(d)):                 # a diverged run: no mean difference
        return {"mean": float("nan"), "se": float("nan"), "wins": wins}
    se = float(d.std(ddof=1) / numpy.sqrt(len(d))) if len(d) > 1 else float("nan")
    return {"mean": float(d.mean()), "se": se, "wins": wins}


def plot_curves(ax, curves, title, log=True):
    """Mean loss per step with a band of ± one standard error over runs; curves: {label: (runs, T+1)}."""
    for label, losses in curves.items():
        with numpy.errstate(all="ignore"):
            mean = losses.mean(axis=0)
            sem = losses.std(axis=0, ddof=1) / numpy.sqrt(losses.shape[0])
        steps = numpy.arange(losses.shape[1])
        learned = label not in BASELINES
        line, = ax.plot(steps, mean, label=label, lw=2.2 if learned else 1.3,
                        ls="-" if learned else "--")
        ax.fill_between(steps, numpy.maximum(mean - sem, 1e-12), mean + sem, color=line.get_color(),
                        alpha=0.2, lw=0)
    if log:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel("step t")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)


def compare(ctx, setting, learned, at_steps=(100, 200)):
    """Evaluate the tuned baselines and the `learned` optimizers ({label: weights file}) on `setting`.

    Returns (curves {label: losses (runs, T+1)}, results dict for results.json): per method the
    summary at `at_steps`, and per learned optimizer its ratio to the best tuned baseline's mean
    loss at each step (below 1: the learned optimizer is better) with the paired difference on the
    same tasks (`paired_difference`, learned − best).
    """
    methods = ctx.methods(setting, learned)
    evaluated = ctx.evaluate([(setting, methods)])
    curves = {label: evaluated[(setting.key, label)]["losses"] for label, *_ in methods}
    steps, runs = ctx.protocol(setting)
    at_steps = [t for t in at_steps if t <= steps] or [steps]
    summaries = {label: summarize(evaluated[(setting.key, label)], at_steps) for label, *_ in methods}
    results = {"steps": steps, "runs": runs, "eval_seed": ctx.eval_seed, "tune_seed": TUNE_SEED,
               "tuned_lr": dict(ctx.tuned[setting.key]), "methods": summaries, "ratio_to_best_baseline": {}}
    for label in learned:
        for t in at_steps:
            best = min(BASELINES, key=lambda b: summaries[b][f"loss_mean@{t}"])
            results["ratio_to_best_baseline"].setdefault(label, {})[f"@{t}"] = {
                "best_baseline": best,
                "ratio": summaries[label][f"loss_mean@{t}"] / summaries[best][f"loss_mean@{t}"],
                "paired_difference": paired_difference(curves[label], curves[best], t)}
    return curves, results


def save_figure(path, panels):
    """One row of loss-curve panels, [(curves, title)], saved as a PNG at `path`."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (curves, title) in zip(axes[0], panels):
        plot_curves(ax, curves, title)
    fig.tight_layout()
    save_png(fig, path, dpi=120)


def save_png(fig, path, dpi):
    """Save the matplotlib figure `fig` as a PNG at `path`, atomically (serialization.atomic_write),
    and close it."""
    import matplotlib.pyplot as plt
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi))
    plt.close(fig)
