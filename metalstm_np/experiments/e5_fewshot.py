r"""E5 — few-shot learning on rotated MNIST (Ravi & Larochelle 2017, Table 1 and Fig. 3 (gates)).

Settings: 5-way 1-shot with T = 12 updates on the support set, 5-way 5-shot with T = 8 (the paper's
numbers of updates); the learner is fewshot.Episodes' default MLP, 784 -> 32 ReLU -> 5 (25,285
parameters). The episodes are those of one of fewshot.BENCHMARKS (`Protocol.benchmark`): each
digit turned by multiples of 90° ("rot90", 16 meta-train classes) or of 22.5° ("rot22.5", 64 like
Mini-ImageNet's, no two classes of an episode the same picture). Every method is scored by its
query accuracy on the same meta-test episodes (digits 6–9 from the MNIST test images, drawn with
EVAL_SEED), as mean and 95% interval:

    nearest_neighbour        1-nearest neighbour on pixels (no learner)
    finetune_sgd             T steps of SGD from the episode's random θ^0, learning rate tuned
    finetune_adam            the same with Adam
    baseline_finetune        the paper's Baseline-finetune: hidden layers pre-trained as a
                             classifier of the meta-train classes (PRETRAIN_SEED, a stated
                             number of Adam steps), a fresh output layer, then T steps of SGD or
                             Adam, whichever scores better on meta-validation, learning rate tuned
    gd_learned_theta0        learned θ^0 with fixed gates z^f, z^i (first-order MAML):
                             weights fewshot_gd_{K}shot.npz
    metalstm                 the meta-LSTM with learned θ^0: fewshot_metalstm_{K}shot.npz
    metalstm_fixed_theta0    the meta-LSTM from the episode's random θ^0:
                             fewshot_metalstm_fixed_theta0_{K}shot.npz (`--fixed-theta0`)

Learning rates are tuned per setting on meta-validation episodes (digits 4–5) drawn with
TUNE_SEED, over the half-decades 10^-4 .. 10^0.5 (fewshot_baselines.tune_finetune_lr). A learned
method whose weights file is not in ctx.weights is recorded as {"status": "missing"}, never scored.

Gates (figure e5_gates.png): z^f_t and z^i_t of the meta-LSTM at each update t, per layer's
weights and biases (mean ± standard deviation over coordinates and meta-test episodes), for 1-shot
and 5-shot, and for the meta-LSTM trained as an optimizer of the MNIST MLP (metalstm_mnist.npz,
784 -> 20 sigmoid -> 10) over 100 steps. The results hold the numbers the README quotes: the mean
gate over updates and parts, and the smallest and largest per-update mean.
"""
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy

from .. import fewshot, fewshot_baselines, gates
from ..evaluation import EVAL_SEED, TUNE_SEED, task_rng
from ..learners import MLP, mlp_shapes, n_params
from ..optimizers import adam, sgd
from ..serialization import WeightsError, load_phi
from .common import Job, run_named, save_png

__all__ = ["KEY", "N_WAY", "SETTINGS", "METHODS", "LEARNED", "MNIST_WEIGHTS", "PRETRAIN_SEED",
           "Protocol", "FULL", "QUICK", "load_learned", "score_learned", "jobs",
           "setting_block", "collect", "gate_summary", "mnist_gates", "plot_gates", "run",
           "table"]

KEY = "E5_fewshot"             # the block in results.json
N_WAY = 5
PRETRAIN_SEED = 3000           # Baseline-finetune's pre-training (no few-shot episode is drawn with it; 3000 is
                               # also E1–E4 and E6's re-check seed, which draws other tasks)
PRETRAIN_BATCH = 64
PRETRAIN_LR = 1e-3             # Adam's
FINETUNE = {"sgd": sgd, "adam": adam}
MNIST_WEIGHTS = "metalstm_mnist.npz"
MNIST_LEARNER = dict(hidden=(20,), activation="sigmoid")    # the E2 learner
MNIST_N_PARAMS = n_params(mlp_shapes(784, MNIST_LEARNER["hidden"], 10))


@dataclass(frozen=True)
class Setting:
    """One few-shot setting."""

    key: str                   # name in the results
    title: str
    k_shot: int                # K: support images per class
    steps: int                 # T: updates on the support set


SETTINGS = {s.key: s for s in [Setting("1shot", "5-way 1-shot", k_shot=1, steps=12),
                               Setting("5shot", "5-way 5-shot", k_shot=5, steps=8)]}

# key -> title, in table order
METHODS = {"nearest_neighbour": "nearest neighbour (pixels)",
           "finetune_sgd": "fine-tune, SGD",
           "finetune_adam": "fine-tune, Adam",
           "baseline_finetune": "Baseline-finetune",
           "gd_learned_theta0": "learned θ^0, fixed gates",
           "metalstm": "meta-LSTM",
           "metalstm_fixed_theta0": "meta-LSTM, random θ^0"}

# key -> (weights file, with {k} the number of shots; registry name; whether φ holds θ^0)
LEARNED = {"gd_learned_theta0": ("fewshot_gd_{k}shot.npz", "gd_lstm", True),
           "metalstm": ("fewshot_metalstm_{k}shot.npz", "metalstm", True),
           "metalstm_fixed_theta0": ("fewshot_metalstm_fixed_theta0_{k}shot.npz", "metalstm", False)}


@dataclass(frozen=True)
class Protocol:
    """How big the runs are."""

    episodes: int              # meta-test episodes per setting (EVAL_SEED)
    tune_episodes: int         # meta-validation episodes the learning rates are tuned on (TUNE_SEED)
    pretrain_steps: int        # Adam steps (batch 64) of Baseline-finetune's pre-training
    gate_episodes: int         # meta-test episodes (the first ones) the few-shot gates are pooled over
    mnist_gate_steps: int      # steps of the MNIST-MLP gate trace
    mnist_gate_runs: int       # MNIST-MLP tasks (EVAL_SEED) it is pooled over
    lrs: tuple = tuple(10.0 ** (k / 2) for k in range(-8, 2))   # the learning-rate grid
    benchmark: str = "rot90"   # fewshot.BENCHMARKS: the classes the episodes are made of
    eval_seed: int = EVAL_SEED  # the meta-test episodes' seed (another one re-checks a claim)


FULL = Protocol(episodes=600, tune_episodes=100, pretrain_steps=2000, gate_episodes=100,
                mnist_gate_steps=100, mnist_gate_runs=10, benchmark="rot22.5")
QUICK = Protocol(episodes=20, tune_episodes=10, pretrain_steps=100, gate_episodes=20,
                 mnist_gate_steps=20, mnist_gate_runs=2, benchmark="rot22.5")


def _episodes(setting, split, count, seed, benchmark):
    return fewshot.sample_episodes(fewshot.Episodes(n_way=N_WAY, k_shot=setting.k_shot, split=split,
                                                    **fewshot.BENCHMARKS[benchmark]), count, seed)


def _summary(accs):
    mean, ci95 = fewshot_baselines.mean_ci95(accs)
    return {"status": "ok", "accuracy_mean": mean, "accuracy_ci95": ci95, "episodes": len(accs)}


def load_learned(weights, key, setting):
    r"""(optimizer, φ, file name) of learned method `key` for `setting` from the folder `weights`,
    or None if its file is not there. A file for another optimizer, or whose θ^0 is not learned
    when it should be (or the other way round), or does not fit the episodes' learner, raises
    WeightsError: a wrong file is an error, not a missing one."""
    pattern, name, learn_theta0 = LEARNED[key]
    filename = pattern.format(k=setting.k_shot)
    path = Path(weights) / filename
    if not path.is_file():
        return None
    optimizer, phi, _ = load_phi(path, expect=name)
    if bool(optimizer.config.get("learn_theta0")) != learn_theta0:
        raise WeightsError(f"{path}: expected an optimizer {'with' if learn_theta0 else 'without'} "
                           f"learned θ^0 for {METHODS[key]!r}, got config {optimizer.config}")
    n_params = fewshot.Episodes(n_way=N_WAY, k_shot=setting.k_shot).n_params
    if "c_0" in phi and numpy.shape(phi["c_0"]) != (n_params,):
        raise WeightsError(f"{path}: learned θ^0 has shape {numpy.shape(phi['c_0'])}, but the "
                           f"{N_WAY}-way learner has {n_params} parameters")
    return optimizer, phi, filename


def score_learned(weights, key, setting, episodes, gate_episodes=0):
    r"""(per-episode query accuracies after T = setting.steps updates, info for the results) of
    learned method `key`, or (None, {"status": "missing", ...}) if its weights file is absent.
    With gate_episodes > 0 (for a meta-LSTM): (accs, info, the pooled gate trace of the first
    gate_episodes episodes, recorded in the same runs, or None if the weights are absent)."""
    loaded = load_learned(weights, key, setting)
    if loaded is None:
        missing = None, {"status": "missing", "weights": LEARNED[key][0].format(k=setting.k_shot)}
        return (*missing, None) if gate_episodes else missing
    optimizer, phi, filename = loaded
    with numpy.errstate(all="ignore"):       # a diverging learned optimizer scores, it does not warn
        if gate_episodes:
            accs, trace = gates.accuracies_and_gates(optimizer, phi, episodes, setting.steps, gate_episodes)
        else:
            accs = fewshot_baselines.accuracies(optimizer, phi, episodes, setting.steps)
    info = {"weights": filename, "optimizer": optimizer.name, "config": dict(optimizer.config)}
    if optimizer.name == "gd_lstm":          # the fixed gates, when they are one number each
        info.update({f"fixed_{g}": float(phi[g]) for g in ("z_f", "z_i") if numpy.size(phi[g]) == 1})
    return (accs, info, trace) if gate_episodes else (accs, info)


def _grid(scores):
    return {f"{lr:.6g}": score for lr, score in scores.items()}


@functools.lru_cache(maxsize=None)
def _features(pretrain_steps, benchmark="rot90"):
    r"""Baseline-finetune's pre-trained hidden layers, a classifier of the benchmark's meta-train
    classes (PRETRAIN_SEED; computed once per process)."""
    learner = fewshot.Episodes(**fewshot.BENCHMARKS[benchmark])
    return fewshot_baselines.pretrain_classifier(numpy.random.default_rng(PRETRAIN_SEED), learner.classes,
                                                 pretrain_steps, hidden=learner.hidden,
                                                 activation=learner.activation, batch=PRETRAIN_BATCH,
                                                 lr=PRETRAIN_LR, rotations=learner.rotations)


def _finetune_job(setting, protocol, name, pretrained):
    r"""Tune fine-tuning with optimizer `name` on the meta-validation episodes (TUNE_SEED), from
    random θ^0 or (pretrained) Baseline-finetune's, and score the best learning rate on the meta-test
    episodes (EVAL_SEED): {"lr", "scores": the grid, "accs": test accuracies}."""
    features = _features(protocol.pretrain_steps, protocol.benchmark) if pretrained else None
    validation = _episodes(setting, "validation", protocol.tune_episodes, TUNE_SEED, protocol.benchmark)
    lr, scores = fewshot_baselines.tune_finetune_lr(FINETUNE[name], validation, setting.steps,
                                                    lrs=list(protocol.lrs), features=features)
    test = _episodes(setting, "test", protocol.episodes, protocol.eval_seed, protocol.benchmark)
    return {"lr": lr, "scores": scores,
            "accs": fewshot_baselines.finetune(FINETUNE[name], lr, test, setting.steps, features)}


def _nearest_neighbour_job(setting, protocol):
    test = _episodes(setting, "test", protocol.episodes, protocol.eval_seed, protocol.benchmark)
    return {"accs": fewshot_baselines.nearest_neighbour(test)}


def _learned_job(weights, key, setting, protocol):
    r"""{"accs": meta-test accuracies (None if the weights are missing), "info"}; for the full
    meta-LSTM also "trace": its pooled gate trace on the first gate_episodes meta-test episodes,
    recorded in the same runs."""
    test = _episodes(setting, "test", protocol.episodes, protocol.eval_seed, protocol.benchmark)
    if key != "metalstm":
        return dict(zip(("accs", "info"), score_learned(weights, key, setting, test)))
    return dict(zip(("accs", "info", "trace"),
                    score_learned(weights, key, setting, test, gate_episodes=protocol.gate_episodes)))


def _mnist_gates_job(weights, protocol):
    return {"trace": mnist_gates(weights, protocol.mnist_gate_steps, protocol.mnist_gate_runs)}


def _protocol(ctx, protocol):
    return protocol or (QUICK if ctx.quick else FULL)


def jobs(ctx, protocol=None):
    r"""{name: Job}: E5 cut into independent runs, each returning a dict. The meta-test and
    meta-validation episodes are drawn again inside each run: the same seed gives the same
    episodes. Names: "e5/<setting>/<method>", fine-tuning's "e5/<setting>/finetune_<sgd|adam>" from
    random θ^0 and "e5/<setting>/pretrained_<sgd|adam>" from Baseline-finetune's, "e5/mnist_gates"."""
    protocol = _protocol(ctx, protocol)
    out = {}
    for s in SETTINGS.values():
        n = fewshot.Episodes(n_way=N_WAY, k_shot=s.k_shot).n_params * s.steps  # coordinate-steps of a run
        tuning = len(protocol.lrs) * protocol.tune_episodes + protocol.episodes
        out.update({f"e5/{s.key}/{key}": Job(_learned_job, (ctx.weights, key, s, protocol),
                                             cost=n * protocol.episodes * (50 if LEARNED[key][1] == "metalstm" else 1))
                    for key in LEARNED})
        out.update({f"e5/{s.key}/{'pretrained' if pretrained else 'finetune'}_{name}":
                    Job(_finetune_job, (s, protocol, name, pretrained), cost=n * tuning)
                    for pretrained in (True, False) for name in FINETUNE})
        out[f"e5/{s.key}/nearest_neighbour"] = Job(_nearest_neighbour_job, (s, protocol),
                                                   cost=protocol.episodes * n / s.steps)
    out["e5/mnist_gates"] = Job(_mnist_gates_job, (ctx.weights, protocol),
                                cost=protocol.mnist_gate_runs * protocol.mnist_gate_steps * MNIST_N_PARAMS * 50)
    return out


def setting_block(setting, protocol, done):
    r"""The results block of `setting` from the finished runs {name: result} (names as in `jobs`)."""
    run = {key[len(f"e5/{setting.key}/"):]: result for key, result in done.items()
           if key.startswith(f"e5/{setting.key}/")}
    methods, tuned, grids = {}, {}, {}
    methods["nearest_neighbour"] = _summary(run["nearest_neighbour"]["accs"])
    for name in FINETUNE:
        tuned[name], grids[name] = run[f"finetune_{name}"]["lr"], run[f"finetune_{name}"]["scores"]
        methods[f"finetune_{name}"] = {**_summary(run[f"finetune_{name}"]["accs"]), "optimizer": name,
                                       "lr": tuned[name]}
    # Baseline-finetune: SGD or Adam, whichever reaches the better validation score (a tie: Adam)
    tuning = {name: run[f"pretrained_{name}"] for name in FINETUNE}
    best = max(sorted(tuning), key=lambda name: tuning[name]["scores"][tuning[name]["lr"]])
    methods["baseline_finetune"] = {**_summary(tuning[best]["accs"]), "optimizer": best, "lr": tuning[best]["lr"]}
    tuned["baseline_finetune"] = {"optimizer": best, "lr": tuning[best]["lr"]}
    grids.update({f"baseline_finetune_{name}": result["scores"] for name, result in tuning.items()})
    for key in LEARNED:
        accs, info = run[key]["accs"], run[key]["info"]
        methods[key] = info if accs is None else {**_summary(accs), **info}
    return {"title": setting.title, "n_way": N_WAY, "k_shot": setting.k_shot, "steps": setting.steps,
            "episodes": protocol.episodes, "tune_episodes": protocol.tune_episodes,
            "tuned_lr": tuned, "tune_scores": {k: _grid(v) for k, v in grids.items()},
            "methods": {key: methods[key] for key in METHODS}}


# ------------------------------------------------------------------------------------------ gates

def gate_summary(trace):
    r"""The numbers the README quotes about a pooled gate trace, for z^f and for z^i: "mean" over
    updates and parts (each part weighs the same: a layer's biases count as much as its weights),
    "update_mean_min"/"update_mean_max": the smallest and largest per-update mean (the mean over
    parts at one update t), and per part its mean, min and max over updates."""
    out = {}
    for name in ("z_f", "z_i"):
        mean = numpy.asarray(trace[f"{name}_mean"])                                   # (T, parts)
        per_update = mean.mean(axis=1)                                                # (T,)
        out[name] = {"mean": float(mean.mean()), "update_mean_min": float(per_update.min()),
                     "update_mean_max": float(per_update.max()),
                     "parts": {part: {"mean": float(mean[:, j].mean()), "min": float(mean[:, j].min()),
                                      "max": float(mean[:, j].max())}
                               for j, part in enumerate(trace["parts"])}}
    return out


def _trace_block(trace, **info):
    return {"status": "ok", **info, "parts": list(trace["parts"]),
            **{k: numpy.asarray(trace[k]).tolist() for k in ("z_f_mean", "z_f_std", "z_i_mean", "z_i_std")},
            "summary": gate_summary(trace)}


def mnist_gates(weights, steps, runs):
    r"""The pooled gate trace of the meta-LSTM trained on the MNIST MLP (metalstm_mnist.npz in the
    folder `weights`) over `steps` steps on `runs` MLP tasks drawn with EVAL_SEED, or None if the
    file is absent."""
    path = Path(weights) / MNIST_WEIGHTS
    if not path.is_file():
        return None
    optimizer, phi, _ = load_phi(path, expect="metalstm")
    family = MLP(**MNIST_LEARNER)
    tasks = [family.sample(task_rng(EVAL_SEED, r)) for r in range(runs)]
    with numpy.errstate(all="ignore"):
        return gates.pool_gate_traces([gates.gate_trace(optimizer, phi, task, steps, shapes=family.shapes)
                                       for task in tasks])


def plot_gates(path, panels):
    r"""One row per trace, [(trace, title)]: z^f (left) and z^i (right) against the update t, one
    line per part of θ with a band of ± one standard deviation over coordinates (and episodes)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    fig, axes = plt.subplots(len(panels), 2, figsize=(11, 3.2 * len(panels)), squeeze=False)
    for row, (trace, title) in zip(axes, panels):
        for ax, name, symbol in zip(row, ("z_f", "z_i"), ("$z^f$", "$z^i$")):
            mean, std = numpy.asarray(trace[f"{name}_mean"]), numpy.asarray(trace[f"{name}_std"])
            t = numpy.arange(1, mean.shape[0] + 1)
            for j, part in enumerate(trace["parts"]):
                line, = ax.plot(t, mean[:, j], marker="." if len(t) <= 20 else None, label=part)
                ax.fill_between(t, mean[:, j] - std[:, j], mean[:, j] + std[:, j], color=line.get_color(),
                                alpha=0.15, lw=0)
            ax.set_title(f"{title}: {symbol}")
            ax.set_xlabel("update t")
            ax.set_ylabel(symbol)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.ticklabel_format(axis="y", useOffset=False)
            ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path, dpi=120)


# -------------------------------------------------------------------------------------------- run

def collect(ctx, done, protocol=None):
    r"""E5's results from the finished runs of `jobs`, {name: result}; draws e5_gates.png into
    ctx.out. Returns {"E5_fewshot": results}."""
    protocol = _protocol(ctx, protocol)
    learner = fewshot.Episodes(**fewshot.BENCHMARKS[protocol.benchmark])
    results = {"n_way": N_WAY, "eval_seed": protocol.eval_seed, "tune_seed": TUNE_SEED, "benchmark": protocol.benchmark,
               "classes": {split: len(fewshot.classes(split, learner.rotations)) for split in fewshot.DIGITS},
               "learner": {"hidden": list(learner.hidden), "activation": learner.activation,
                           "n_params": {s.key: fewshot.Episodes(n_way=N_WAY, k_shot=s.k_shot).n_params
                                        for s in SETTINGS.values()}},
               "lr_grid": list(protocol.lrs),
               "pretrain": {"seed": PRETRAIN_SEED, "steps": protocol.pretrain_steps, "batch": PRETRAIN_BATCH,
                            "lr": PRETRAIN_LR, "optimizer": "adam", "classes": len(learner.classes)},
               "settings": {s.key: setting_block(s, protocol, done) for s in SETTINGS.values()},
               "gates": {}}
    panels = []
    for setting in SETTINGS.values():
        trace = done[f"e5/{setting.key}/metalstm"]["trace"]
        weights = LEARNED["metalstm"][0].format(k=setting.k_shot)
        if trace is None:
            results["gates"][setting.key] = {"status": "missing", "weights": weights}
            continue
        results["gates"][setting.key] = _trace_block(trace, title=setting.title, weights=weights,
                                                     episodes=protocol.gate_episodes, steps=setting.steps)
        panels.append((trace, f"meta-LSTM, {setting.title}"))
    trace = done["e5/mnist_gates"]["trace"]
    if trace is None:
        results["gates"]["mnist"] = {"status": "missing", "weights": MNIST_WEIGHTS}
    else:
        title = "meta-LSTM as optimizer, MNIST MLP"
        results["gates"]["mnist"] = _trace_block(trace, title=title, weights=MNIST_WEIGHTS,
                                                 runs=protocol.mnist_gate_runs,
                                                 steps=protocol.mnist_gate_steps, learner="784-20-10 sigmoid")
        panels.append((trace, title))
    results["figure"] = None
    if panels:
        Path(ctx.out).mkdir(parents=True, exist_ok=True)
        plot_gates(Path(ctx.out) / "e5_gates.png", panels)
        results["figure"] = "e5_gates.png"
    return {KEY: results}


def run(ctx, protocol=None, pool=None, progress=None):
    r"""E5 on ctx.weights into ctx.out (e5_gates.png), in `pool` (an Executor), or a pool of
    ctx.workers processes (here, if 1); returns {"E5_fewshot": results}. protocol: default QUICK if
    ctx.quick, else FULL; progress: a progress bar (tqdm), reset to the number of runs."""
    runs = jobs(ctx, protocol)
    if progress is not None:
        progress.reset(total=len(runs))
    done = run_named(runs, pool, ctx.workers, progress=progress.update if progress is not None else None)
    return collect(ctx, done, protocol)


# ------------------------------------------------------------------------------------------ table

def _accuracy(s):
    return f"{100 * s['accuracy_mean']:.2f} ± {100 * s['accuracy_ci95']:.2f}"


def table(results):
    r"""The E5 tables (Markdown) from the results: `results` is results.json (with an "E5_fewshot"
    block; "" without one) or the block itself. Query accuracy in %, mean ± 95% interval half-width."""
    block = results.get(KEY, results)
    if "settings" not in block:
        return ""
    settings = list(block["settings"].values())
    rows = ["| method | " + " | ".join(f"{s['title']} (T = {s['steps']}): accuracy % | lr" for s in settings)
            + " |", "| --- " * (1 + 2 * len(settings)) + "|"]
    for key, title in METHODS.items():
        cells = [title]
        for s in settings:
            m = s["methods"][key]
            if m["status"] == "missing":
                cells += [f"missing ({m['weights']})", ""]
                continue
            if "lr" in m:
                how = f"{m['optimizer']} {m['lr']:.3g}" if key == "baseline_finetune" else f"{m['lr']:.3g}"
            elif "fixed_z_i" in m:
                how = f"fixed z^f = {m['fixed_z_f']:.3g}, z^i = {m['fixed_z_i']:.3g}"
            else:
                how = "learned" if "weights" in m else "—"
            cells += [_accuracy(m), how]
        rows.append("| " + " | ".join(cells) + " |")
    pre, first, learner = block["pretrain"], settings[0], block["learner"]
    grid = block["lr_grid"]
    rows += ["", f"Query accuracy in %: mean ± half-width of the 95% interval over {first['episodes']} "
                 f"meta-test episodes per setting (seed {block['eval_seed']}; digits 6–9, MNIST test images); "
                 f"learner 784-{'-'.join(map(str, learner['hidden']))}-{block['n_way']} {learner['activation']}. "
                 f"Learning rates tuned on {first['tune_episodes']} meta-validation episodes "
                 f"(seed {block['tune_seed']}) over {min(grid):.3g} … {max(grid):.3g}; Baseline-finetune's "
                 f"hidden layers pre-trained on the {pre['classes']} meta-train classes for {pre['steps']} "
                 f"Adam steps of {pre['batch']} images (seed {pre['seed']}).", ""]
    rows += ["| meta-LSTM gates | mean z^f | per-update mean z^f, min – max | mean z^i | "
             "per-update mean z^i, min – max |", "| --- | --- | --- | --- | --- |"]
    for key, g in block["gates"].items():
        if g["status"] != "ok":
            rows.append(f"| {key} | missing ({g['weights']}) | | | |")
            continue
        f, i = g["summary"]["z_f"], g["summary"]["z_i"]
        rows.append(f"| {g['title']} ({g['steps']} updates) | {f['mean']:.4g} | {f['update_mean_min']:.4g} – "
                    f"{f['update_mean_max']:.4g} | {i['mean']:.4g} | {i['update_mean_min']:.4g} – "
                    f"{i['update_mean_max']:.4g} |")
    return "\n".join(rows) + "\n"
