r"""The README's findings, written from results.json: every number in them is read from the results.

`findings(results, recheck)` gives one paragraph per experiment in `results`; `recheck` holds the
same experiments' blocks on evaluation tasks drawn with another seed (`metalstm figures --eval-seed
S`, `metalstm fewshot evaluate --eval-seed S`), or is None. A claim that a learned optimizer is ahead is worded by what the paired
differences on the same tasks show (`verdict`): at least two standard errors below zero (ahead) or
above it (behind) on both seeds, on the first only, reversed on the second, or within noise.
"""
from .common import blocks, number, plus_minus, runs
from .e5_fewshot import METHODS

__all__ = ["verdict", "findings"]

NAMES = {"sgd": "SGD", "nag": "NAG", "rmsprop": "RMSprop", "adam": "Adam"}


def _ahead(d):
    return d["mean"] is not None and d["se"] is not None and d["mean"] + 2 * d["se"] < 0


def _behind(d):
    return d["mean"] is not None and d["se"] is not None and d["mean"] - 2 * d["se"] > 0


def verdict(d, again=None):
    r"""How a paired difference (learned − baseline, per task) reads: d on the evaluation seed,
    again (or None) the same difference on the re-check seed."""
    if d["mean"] is None:
        return "diverged"
    for side, holds, reverses in (("ahead", _ahead, _behind), ("behind", _behind, _ahead)):
        if holds(d):
            claim = f"{side} by two standard errors or more"
            if again is None:
                return f"{claim} (not re-checked on another seed)"
            if holds(again):
                return f"{claim} on both evaluation seeds"
            if again["mean"] is not None and reverses(again):
                return f"{claim} on the first evaluation seed, reversed on the re-check ({plus_minus(again)})"
            return f"{claim} on the first evaluation seed only (re-check: {plus_minus(again)})"
    return "within two standard errors (no result)"


def _get(tree, *keys):
    for key in keys:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _steps(results, key, label="LSTM (l2l)"):
    return [int(at[1:]) for at in results[key]["ratio_to_best_baseline"][label]]


def _against_best(results, recheck, key, step, label="LSTM (l2l)"):
    r = results[key]["ratio_to_best_baseline"][label][f"@{step}"]
    again = _get(recheck, key, "ratio_to_best_baseline", label, f"@{step}", "paired_difference")
    d = r["paired_difference"]
    return (f"at step {step} its loss is {number(r['ratio'], '.3f')}× tuned {NAMES[r['best_baseline']]}'s "
            f"(lower on {d['wins']} of {results[key]['runs']} tasks, paired difference {plus_minus(d)}): "
            f"{verdict(d, again)}")


def _loss_paragraphs(results, recheck):
    out = []
    if "E1_quadratic" in results:
        out.append("**E1, quadratics** (`figures/e1_quadratic.png`): the LSTM optimizer, "
                   + "; ".join(_against_best(results, recheck, "E1_quadratic", t) for t in _steps(results, "E1_quadratic")) + ".")
    if "E2_mnist" in results:
        out.append("**E2, MNIST, 1 × 20 sigmoid** (`figures/e2_mnist.png`): the LSTM optimizer, "
                   + "; ".join(_against_best(results, recheck, "E2_mnist", t) for t in _steps(results, "E2_mnist")) + ".")
    titles = {"E3_mnist_40": "40 hidden units", "E3_mnist_2layers": "two hidden layers", "E3_mnist_relu": "ReLU"}
    parts = [f"on {title}, " + "; ".join(_against_best(results, recheck, key, t) for t in _steps(results, key))
             for key, title in titles.items() if key in results]
    if parts:
        out.append("**E3, the E2 optimizer on other networks** (`figures/e3_generalization.png`): "
                   + ". ".join(p[0].upper() + p[1:] for p in parts) + ".")
    block = results.get("E4_one_layer")
    if block and "two_minus_one_layer" in block:
        parts = []
        for step, d in block["two_minus_one_layer"].items():
            again = _get(recheck, "E4_one_layer", "two_minus_one_layer", step)
            parts.append(f"at step {step[1:]} the two-layer optimizer's loss minus the one-layer one's is "
                         f"{plus_minus(d)}, lower on {d['wins']} of {block['runs']} tasks: {verdict(d, again)}")
        out.append("**E4, one LSTM layer against two** (`figures/e4_one_layer.png`): " + "; ".join(parts) + ".")
    return out


def _versus(block, setting, key):
    r"""How the meta-LSTM's accuracy compares with method `key`'s in one setting of an E5 block:
    (its accuracy text, "ahead" / "behind" / "overlap" by the 95% intervals)."""
    mine, o = block["settings"][setting]["methods"]["metalstm"], block["settings"][setting]["methods"][key]
    if mine["accuracy_mean"] - mine["accuracy_ci95"] > o["accuracy_mean"] + o["accuracy_ci95"]:
        how = "ahead"
    elif mine["accuracy_mean"] + mine["accuracy_ci95"] < o["accuracy_mean"] - o["accuracy_ci95"]:
        how = "behind"
    else:
        how = "overlap"
    return f"{100 * o['accuracy_mean']:.2f} ± {100 * o['accuracy_ci95']:.2f}", how


HOW = {"ahead": "ahead, the 95% intervals apart", "behind": "behind, the 95% intervals apart",
       "overlap": "the 95% intervals overlap"}


def _fewshot_paragraph(results, recheck):
    block = results.get("E5_fewshot")
    if not block or "settings" not in block:
        return []
    again = _get(recheck, "E5_fewshot")
    parts = []
    for key, s in block["settings"].items():
        m = s["methods"]
        if m["metalstm"]["status"] != "ok":
            parts.append(f"{s['title']}: the meta-LSTM's weights are missing")
            continue
        mine = m["metalstm"]
        others = [k for k, v in m.items() if k != "metalstm" and v["status"] == "ok"]
        best = max(others, key=lambda k: m[k]["accuracy_mean"])

        def against(method):
            accuracy, how = _versus(block, key, method)
            text = f"{accuracy} for {METHODS[method]} ({HOW[how]}"
            if again is not None and _get(again, "settings", key, "methods", method, "status") == "ok":
                text += f"; on the re-check episodes: {HOW[_versus(again, key, method)[1]]}"
            return text + ")"

        text = (f"{s['title']}: the meta-LSTM {100 * mine['accuracy_mean']:.2f} ± {100 * mine['accuracy_ci95']:.2f}% "
                f"against {against('baseline_finetune')}")
        if best != "baseline_finetune":
            text += f"; the best other method is {against(best)}"
        parts.append(text)
    gates = []
    for key, g in block.get("gates", {}).items():
        if g.get("status") == "ok":
            z = g["summary"]
            decay = 1 - min(part["min"] for part in z["z_f"]["parts"].values())
            gates.append(f"{g['title']}: mean z^f {z['z_f']['mean']:.4f} (a learned weight decay 1 − z^f of at "
                         f"most {100 * decay:.1f}% a step in any part's mean at any update), mean z^i "
                         f"{z['z_i']['mean']:.3f} (the step; its per-update means run from "
                         f"{z['z_i']['update_mean_min']:.2f} to {z['z_i']['update_mean_max']:.2f})")
    benchmark = block.get("benchmark", "rot90")
    classes = block.get("classes", {}).get("train", block["pretrain"]["classes"])
    text = (f"**E5, few-shot rotated MNIST** (a table in the form of Ravi & Larochelle's Table 1, on our {benchmark} benchmark, "
            f"{classes} "
            f"meta-train classes; query accuracy, mean ± 95% interval over "
            f"{next(iter(block['settings'].values()))['episodes']} meta-test episodes): " + "; ".join(parts) + ".")
    if gates:
        text += " Gates (`figures/e5_gates.png`): " + "; ".join(gates) + "."
    return [text]


def _general_paragraph(results, recheck):
    block = results.get("E6_general")
    if not block or not block.get("learned"):
        return []
    label = block["learned"][0]
    cells = block["cells"]
    lower, lower_again, both, first_only, not_ahead, behind = [], [], [], [], [], []
    for key, cell in cells.items():
        d = cell["learned"][label]["paired_difference"]
        again = _get(recheck, "E6_general", "cells", key, "learned", label, "paired_difference")
        name = f"{cell['title']} @{cell['step']}"
        if d["mean"] is not None and d["mean"] < 0:
            lower.append(name)
        if again is not None and again["mean"] is not None and again["mean"] < 0:
            lower_again.append(name)
        if _ahead(d):
            (both if again is not None and _ahead(again) else first_only).append(name)
        else:
            not_ahead.append(name)
        if _behind(d):
            behind.append(name + ("" if again is None else " (both seeds)" if _behind(again) else " (first seed only)"))
    # the title says what was tried, not that it worked: the counts below say where it holds
    text = (f"**E6, an optimizer trained to generalize** (`figures/e6_general.png`): RNNprop, meta-trained on E2's "
            f"family alone, against the four baselines tuned anew for every family and horizon, {block['runs']} "
            f"tasks per cell. It is lower in the mean in {len(lower)} of {len(cells)} cells on the first evaluation "
            f"seed" + (f" and in {len(lower_again)} on the re-check" if recheck and "E6_general" in recheck else "")
            + f"; ahead by two standard errors or more of the paired difference on both evaluation seeds in {len(both)}"
            + (f" ({', '.join(both)})" if both else "")
            + (f", on the first seed only in {len(first_only)} ({', '.join(first_only)})" if first_only else "")
            + (f"; not ahead in {len(not_ahead)} ({', '.join(not_ahead)})" if not_ahead else "")
            + (f"; behind by two standard errors or more in {len(behind)} ({', '.join(behind)})" if behind else "")
            + ".")
    ablation = block.get("ablation")
    if ablation:
        base = block["ablation_variants"][0]
        parts = []
        for variant in block["ablation_variants"][1:]:
            worse, better = [], []
            for key, row in ablation.items():
                d = row[variant]["minus_all_remedies"]
                again = _get(recheck, "E6_general", "ablation", key, variant, "minus_all_remedies")
                name = f"{cells[key]['title']} @{cells[key]['step']}"
                seeds = "" if again is None else (" (both seeds)" if (_behind(again) if _behind(d) else _ahead(again))
                                                  else " (first seed only)")
                if _behind(d):
                    worse.append(name + seeds)
                elif _ahead(d):
                    better.append(name + seeds)
            parts.append(f"{variant}: higher loss in {', '.join(worse) if worse else 'no cell'}"
                         + (f", lower in {', '.join(better)}" if better else ""))
        runs = {row["runs"] for row in block.get("ablation_best_baseline", {}).values()}
        tasks = f"the same {runs.pop()} tasks" if len(runs) == 1 else "the same tasks"
        # where the ablation's own full recipe stands against the best baseline, so that a remedy's
        # gain is not read as a gain over the baselines
        standing = {side: [f"{cells[key]['title']} @{cells[key]['step']}" for key, row in ablation.items()
                           if test(row[base]["minus_best_baseline"])] for side, test in (("ahead", _ahead), ("behind", _behind))}
        text += (f" Ablation (the recipe for fewer trajectories, each remedy removed in turn, against '{base}' on "
                 f"{tasks}; a cell counts at two standard errors): " + "; ".join(parts) + f". '{base}' itself, at "
                 f"those fewer trajectories, is ahead of the cell's best baseline on the first seed in "
                 f"{', '.join(standing['ahead']) if standing['ahead'] else 'no cell'} and behind it in "
                 f"{', '.join(standing['behind']) if standing['behind'] else 'no cell'}.")
    return [text]


def findings(results, recheck=None):
    r"""The findings (Markdown paragraphs) from results.json; see the module docstring."""
    paragraphs = (_loss_paragraphs(results, recheck) + _fewshot_paragraph(results, recheck)
                  + _general_paragraph(results, recheck))
    seeds = sorted({_get(recheck, key, "eval_seed") for key in blocks(results)
                    if isinstance(_get(recheck, key), dict) and _get(recheck, key, "eval_seed") is not None})
    if seeds:
        paragraphs.append(f"The claims were re-checked on evaluation tasks or episodes drawn with another seed "
                          f"({', '.join(map(str, seeds))}: `metalstm figures --eval-seed`, `metalstm fewshot "
                          f"evaluate --eval-seed`); a lead that holds on one seed only is not a result.")
    seconds = runs(results, "seconds")
    if len(seconds) == 1:
        paragraphs.append(f"`metalstm figures` made these results in {next(iter(seconds.values())):.0f} s.")
    elif seconds:
        paragraphs.append(f"`metalstm figures` made these results in {len(seconds)} runs: " + "; ".join(
            f"{run.upper().replace(',', ', ')} in a run of {s:.0f} s" for run, s in seconds.items()) + ".")
    return "\n\n".join(paragraphs) + "\n"
