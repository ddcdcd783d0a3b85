"""`metalstm figures --quick` on the shipped weights: every figure and number is produced, and
results.json, the README table and the figures agree with each other."""
import json
import os

import numpy as np
import pytest

from metalstm_np.cli import main
from metalstm_np.experiments import results_table, update_readme
from metalstm_np.experiments.findings import findings
from metalstm_np.experiments.common import BASELINES, load_tuned


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    assert main(["figures", "--quick", "--out", str(out)]) == 0
    return out, json.loads((out / "results.json").read_text())


def test_every_experiment_writes_its_figure(quick):
    out, results = quick
    for name in ("e1_quadratic", "e2_mnist", "e3_generalization", "e4_one_layer", "e6_general"):
        png = (out / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert set(k for k in results if k.startswith("E")) == {
        "E1_quadratic", "E2_mnist", "E3_mnist_40", "E3_mnist_2layers", "E3_mnist_relu", "E4_one_layer",
        "E5_fewshot", "E6_general"}
    png = (out / "e5_gates.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_every_shipped_few_shot_model_is_scored(quick):
    _, results = quick
    block = results["E5_fewshot"]
    for setting in block["settings"].values():
        assert all(s["status"] == "ok" for s in setting["methods"].values()), setting["methods"]
    assert block["figure"] == "e5_gates.png"
    assert all(g["status"] == "ok" for g in block["gates"].values())


def test_results_use_the_tuned_learning_rates_and_the_same_protocol(quick):
    _, results = quick
    tuned = load_tuned()
    for key, block in results.items():
        if not key.startswith("E") or key in ("E5_fewshot", "E6_general"):     # their own tests
            continue
        setting = "quadratic" if key == "E1_quadratic" else key.replace("E3_", "").replace("E2_", "").replace(
            "E4_one_layer", "mnist")
        assert block["tuned_lr"] == tuned[setting]
        assert block["runs"] == 3 and block["steps"] == 20 and block["eval_seed"] != block["tune_seed"]
        for method, summary in block["methods"].items():
            assert np.isfinite(summary["loss_mean@20"]) or method in BASELINES


def test_ratios_and_table_come_from_the_same_numbers(quick, tmp_path):
    _, results = quick
    for key, block in results.items():
        if not key.startswith("E") or key in ("E5_fewshot", "E6_general"):     # their own tests
            continue
        for label, at in block["ratio_to_best_baseline"].items():
            r = at["@20"]
            means = {b: block["methods"][b]["loss_mean@20"] for b in BASELINES}
            assert r["best_baseline"] == min(means, key=means.get)
            assert r["ratio"] == pytest.approx(block["methods"][label]["loss_mean@20"] / means[r["best_baseline"]])
            d = r["paired_difference"]        # the mean of per-task differences is the difference of means
            assert d["mean"] == pytest.approx(block["methods"][label]["loss_mean@20"] - means[r["best_baseline"]])
            assert 0 <= d["wins"] <= block["runs"] and d["se"] >= 0
    e4 = results["E4_one_layer"]
    d = e4["two_minus_one_layer"]["@20"]
    assert d["mean"] == pytest.approx(e4["methods"]["LSTM (l2l)"]["loss_mean@20"]
                                      - e4["methods"]["LSTM, one layer"]["loss_mean@20"])
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- findings:start -->\nold\n<!-- findings:end -->\nmiddle\n"
                      "<!-- results:start -->\nold\n<!-- results:end -->\noutro\n")
    update_readme(readme, results)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old" not in text
    assert results_table(results) in text and findings(results) in text
    ratio = results["E2_mnist"]["ratio_to_best_baseline"]["LSTM (l2l)"]["@20"]["ratio"]
    assert f"{ratio:.3f}" in text
    d = results["E4_one_layer"]["two_minus_one_layer"]["@20"]
    assert f"| two layers, against one layer | 20 | (one layer) |" in text
    assert f"{d['mean']:+.4f} ± {d['se']:.4f} | {d['wins']} of 3 |" in text


def test_paired_difference_is_per_task():
    """A − B task by task at step t: mean, standard error of the mean (ddof 1), tasks where A is lower."""
    from metalstm_np.experiments.common import paired_difference
    a = np.array([[9.0, 1.0], [9.0, 2.0], [9.0, 6.0]])
    b = np.array([[0.0, 2.0], [0.0, 4.0], [0.0, 5.0]])
    d = paired_difference(a, b, 1)                     # differences -1, -2, +1
    assert d["mean"] == pytest.approx(-2 / 3) and d["wins"] == 2
    assert d["se"] == pytest.approx(np.std([-1, -2, 1], ddof=1) / np.sqrt(3))
    assert np.isnan(paired_difference(a, np.array([[0, np.inf]] * 3), 1)["mean"])


def test_process_pool_workers_run_blas_pinned_and_a_callers_choice_is_left_alone(monkeypatch):
    from metalstm_np import blas
    from metalstm_np.experiments.common import BLAS_THREAD_VARS, process_pool
    pinned = {v: os.environ.get(v) for v in (*BLAS_THREAD_VARS, "OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES")}
    assert [pinned[v] for v in BLAS_THREAD_VARS] == ["1", "1", "1"]          # by `import metalstm_np`
    with process_pool(2) as pool:
        assert {v: pool.submit(os.getenv, v).result() for v in pinned} == pinned
        if pinned["OPENBLAS_CORETYPE"]:                                    # on x86-64 with AVX2
            assert pool.submit(blas.in_use).result()["openblas_core"] in (None, pinned["OPENBLAS_CORETYPE"])
    for v in BLAS_THREAD_VARS:                                             # removed: topped up again
        monkeypatch.delenv(v, raising=False)
    with process_pool(1) as pool:
        assert [pool.submit(os.getenv, v).result() for v in BLAS_THREAD_VARS] == ["1", "1", "1"]
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.delenv("MKL_NUM_THREADS")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")               # the caller's choice is left alone
    with process_pool(1) as pool:
        assert pool.submit(os.getenv, "OPENBLAS_NUM_THREADS").result() == "2"
        assert pool.submit(os.getenv, "MKL_NUM_THREADS").result() == "1"           # another library's: pinned
        assert pool.submit(blas.in_use).result()["openblas_threads"] in (None, 2)
    assert os.environ["OPENBLAS_NUM_THREADS"] == "2"


def test_the_readmes_findings_and_tables_are_the_generated_ones():
    """README.md's generated blocks are what `metalstm figures --readme README.md` writes from the
    shipped figures/results.json and its re-checks on other seeds (figures/seed3000/results.json,
    figures/fewshot_seed4000/fewshot_results.json): no number in them is typed by hand."""
    import json
    from pathlib import Path
    from metalstm_np.experiments import BLOCKS, markers
    root = Path(__file__).resolve().parents[1]
    results = json.loads((root / "figures" / "results.json").read_text())
    from metalstm_np.cli import RECHECK
    recheck = {}
    for name in RECHECK:                 # what `metalstm figures --readme README.md` reads
        recheck.update(json.loads((root / "figures" / name).read_text()))
    text = (root / "README.md").read_text()
    blocks = {}
    for name in BLOCKS:
        start, end = markers(name)
        blocks[name] = text.split(start, 1)[1].split(end, 1)[0]
    assert blocks["findings"] == "\n" + findings(results, recheck)
    assert blocks["results"] == "\n" + results_table(results)


def test_merge_replaces_the_blocks_of_the_experiments_run_and_names_each_run_by_what_it_still_made():
    """A run of E3 into results written before merges (one number of seconds, no versions): all of
    E3's blocks are the new run's (one it no longer makes is gone), E1's and E5's stay, and the
    earlier run is named by them; once E1 and E5 are run again too, it is gone."""
    from metalstm_np.experiments import merge
    earlier = {"quick": False, "seconds": 500.0, "E1_quadratic": {"a": 1}, "E3_mnist_40": {"a": 1},
               "E3_old": {"a": 1}, "E5_fewshot": {"a": 1}}
    new = {"quick": False, "E3_mnist_40": {"a": 2}, "E3_mnist_relu": {"a": 2}, "seconds": {"e3": 9.0},
           "versions": {"e3": {"numpy": "2"}}}
    once = merge(earlier, new, ["e3"])
    assert once == {"quick": False, "E1_quadratic": {"a": 1}, "E5_fewshot": {"a": 1}, "E3_mnist_40": {"a": 2},
                    "E3_mnist_relu": {"a": 2}, "seconds": {"e1,e5": 500.0, "e3": 9.0},
                    "versions": {"e3": {"numpy": "2"}}}
    twice = merge(once, {"quick": False, "E1_quadratic": {"a": 3}, "E5_fewshot": {"a": 3}, "seconds": {"e1,e5": 7.0},
                         "versions": {"e1,e5": {"numpy": "3"}}}, ["e1", "e5"])
    assert twice["seconds"] == {"e3": 9.0, "e1,e5": 7.0}
    assert twice["versions"] == {"e3": {"numpy": "2"}, "e1,e5": {"numpy": "3"}}
    assert twice["E1_quadratic"] == twice["E5_fewshot"] == {"a": 3} and twice["E3_mnist_40"] == {"a": 2}


def test_a_figure_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """Ctrl-C just before the rename that puts a new PNG in place: the one that was there is whole."""
    from metalstm_np.experiments.common import save_figure
    path = tmp_path / "e1_quadratic.png"
    save_figure(path, [({"sgd": np.ones((2, 3))}, "first")])
    before = path.read_bytes()
    assert before[:8] == b"\x89PNG\r\n\x1a\n"

    def interrupted(src, dst):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_figure(path, [({"sgd": 2 * np.ones((2, 3))}, "second")])
    assert path.read_bytes() == before and os.listdir(tmp_path) == [path.name]
