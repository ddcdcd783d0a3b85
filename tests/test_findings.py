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
