"""How a paired difference is worded in the README's findings: a lead or a loss counts on both
evaluation seeds, or is said to hold on the first only, or to reverse on the re-check."""
import pytest

from metalstm_np.experiments.e6_general import ordered_cells
from metalstm_np.experiments.findings import verdict


def d(mean, se=0.01):
    return {"mean": mean, "se": se}


@pytest.mark.parametrize("first, again, words", [
    (d(-0.05), None, "ahead by two standard errors or more (not re-checked on another seed)"),
    (d(-0.05), d(-0.03), "ahead by two standard errors or more on both evaluation seeds"),
    (d(-0.05), d(-0.01), "ahead by two standard errors or more on the first evaluation seed only (re-check: "),
    (d(-0.05), d(+0.03), "ahead by two standard errors or more on the first evaluation seed, reversed on the re-check ("),
    (d(+0.05), None, "behind by two standard errors or more (not re-checked on another seed)"),
    (d(+0.05), d(+0.03), "behind by two standard errors or more on both evaluation seeds"),
    (d(+0.05), d(+0.01), "behind by two standard errors or more on the first evaluation seed only (re-check: "),
    (d(+0.05), d(-0.03), "behind by two standard errors or more on the first evaluation seed, reversed on the re-check ("),
    (d(+0.05), d(None, None), "behind by two standard errors or more on the first evaluation seed only (re-check: "),
    (d(-0.01), d(-0.05), "within two standard errors (no result)"),
    (d(None, None), None, "diverged"),
])
def test_verdict(first, again, words):
    assert verdict(first, again).startswith(words)


def test_exactly_two_standard_errors_is_not_a_result():
    assert verdict(d(-0.02, 0.01)) == verdict(d(+0.02, 0.01)) == "within two standard errors (no result)"


def test_e6_cells_are_ordered_by_family_then_step():
    cells = {key: {"title": key.split("@")[0], "step": int(key.split("@")[1])}
             for key in sorted(["b@100", "b@1000", "b@200", "a@200", "a@100"])}
    cells = {"b@100": cells.pop("b@100"), **cells}     # b first: the families keep their first order
    assert [(c["title"], c["step"]) for c in ordered_cells({"cells": cells})] == [
        ("b", 100), ("b", 200), ("b", 1000), ("a", 100), ("a", 200)]


@pytest.mark.parametrize("seconds, sentence", [
    (547.7, "`metalstm figures` made these results in 548 s."),        # a file written before merges
    ({"e1,e2,e3,e4,e5,e6": 547.7}, "`metalstm figures` made these results in 548 s."),
    ({"e1": 3.1, "e2,e3": 547.7},
     "`metalstm figures` made these results in 2 runs: E1 in a run of 3 s; E2, E3 in a run of 548 s."),
])
def test_the_findings_say_how_long_each_run_took(seconds, sentence):
    """results.json's seconds, one number (written before merges) or one per run; its versions ignored."""
    from metalstm_np.experiments.findings import findings
    assert findings({"quick": False, "seconds": seconds, "versions": {"e1": {"numpy": "2"}}}).strip() == sentence


def test_e6_paragraph_counts_each_cell_once_and_says_where_the_ablations_full_recipe_stands():
    """E6's finding: lower in the mean counted on each seed; a cell ahead on both seeds, on the first
    only, or not ahead (here lower in the mean but within noise); and the ablation's own full recipe
    against the best baseline, so a remedy's gain is not read as a gain over the baselines."""
    from metalstm_np.experiments.findings import findings

    def block(differences, ablation=None):
        cells = {f"{name}@100": {"title": name, "step": 100, "learned": {"R": {"paired_difference": diff}}}
                 for name, diff in differences.items()}
        out = {"learned": ["R"], "cells": cells, "runs": 40}
        if ablation:
            out.update(ablation_variants=["all", "minus x"], ablation=ablation,
                       ablation_best_baseline={key: {"runs": 20} for key in ablation})
        return {"E6_general": out}

    first = block({"a": d(-0.05), "b": d(-0.05), "c": d(-0.01)},
                  {"a@100": {"all": {"minus_best_baseline": d(+0.05)},
                             "minus x": {"minus_all_remedies": d(+0.05), "minus_best_baseline": d(+0.1)}},
                   "c@100": {"all": {"minus_best_baseline": d(-0.01)},
                             "minus x": {"minus_all_remedies": d(-0.01), "minus_best_baseline": d(0.0)}}})
    again = block({"a": d(-0.05), "b": d(+0.01), "c": d(+0.01)},
                  {"a@100": {"all": {"minus_best_baseline": d(+0.05)},
                             "minus x": {"minus_all_remedies": d(+0.05), "minus_best_baseline": d(+0.1)}},
                   "c@100": {"all": {"minus_best_baseline": d(0.0)},
                             "minus x": {"minus_all_remedies": d(0.0), "minus_best_baseline": d(0.0)}}})
    text = findings({"quick": False, **first}, again)
    assert "lower in the mean in 3 of 3 cells on the first evaluation seed and in 1 on the re-check" in text
    assert "on both evaluation seeds in 1 (a @100), on the first seed only in 1 (b @100); not ahead in 1 (c @100)" in text
    assert "minus x: higher loss in a @100 (both seeds)" in text
    assert "'all' itself, at those fewer trajectories, is ahead of the cell's best baseline on the first seed in no " \
           "cell and behind it in a @100." in text
    assert "on the re-check" not in findings({"quick": False, **first})      # nothing re-checked, nothing claimed
