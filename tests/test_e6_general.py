"""E6 on a tiny scale: every (family, horizon) cell is produced, against the baselines tuned for that
cell, with numbers that agree with each other, the table and the figure."""
import json

import numpy as np
import pytest

from metalstm_np.experiments import e6_general, run_all
from metalstm_np.experiments.common import BASELINES
from metalstm_np.rnnprop import rnnprop
from metalstm_np.serialization import save_phi


@pytest.fixture(scope="module")
def quick_e6(tmp_path_factory):
    folder = tmp_path_factory.mktemp("e6")
    opt = rnnprop(hidden=(4,), dense=3)
    save_phi(folder / "general_mnist.npz", opt, opt.init_phi(np.random.default_rng(0)))
    for seed, filename in enumerate(e6_general.ABLATION.values(), start=1):    # untrained variants
        save_phi(folder / filename, opt, opt.init_phi(np.random.default_rng(seed)))
    rates = {"sgd": 1.0, "nag": 0.3, "rmsprop": 0.01, "adam": 0.02}
    tuned = {key: {"lr": {name: lr * (1 + i / 10) for name, lr in rates.items()}}
             for i, key in enumerate(e6_general.TUNED_SETTINGS)}
    (folder / "tuned.json").write_text(json.dumps(tuned))
    results = run_all(folder / "out", quick=True, workers=2, only=["e6"], tuned=folder / "tuned.json",
                      weights=folder)
    return folder, tuned, results


def test_every_cell_is_scored_against_the_rates_tuned_for_it(quick_e6):
    folder, tuned, results = quick_e6
    block = results[e6_general.KEY]
    assert list(block["cells"]) == [f"{f}@{h}" for f, (_, _, hs) in e6_general.FAMILIES.items() for h in hs]
    assert block["learned"] == ["RNNprop"]
    for name, cell in block["cells"].items():
        f, h = name.split("@")
        assert cell["tuned_lr"] == tuned[e6_general.tuned_key(f, int(h))]["lr"]
        assert cell["step"] == 20 and cell["runs"] == 3                 # --quick: ≤ 20 steps, 3 runs
        best = min(BASELINES, key=lambda b: cell["loss_mean"][b])
        assert cell["best_baseline"] == best
        learned = cell["learned"]["RNNprop"]
        assert learned["ratio"] == pytest.approx(cell["loss_mean"]["RNNprop"] / cell["loss_mean"][best])
        assert learned["paired_difference"]["mean"] == pytest.approx(
            cell["loss_mean"]["RNNprop"] - cell["loss_mean"][best], rel=1e-9, abs=1e-12)
        assert 0 <= learned["paired_difference"]["wins"] <= 3


def test_the_table_has_a_row_per_cell_and_the_figure_is_written(quick_e6):
    folder, _, results = quick_e6
    table, ablation = e6_general.table(results).split("\n\n")
    assert len(table.strip().splitlines()) == 2 + len(results[e6_general.KEY]["cells"])
    assert len(ablation.strip().splitlines()) == 2 + len(e6_general.ABLATION) + 1     # + the best baseline
    png = (folder / "out" / "e6_general.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_the_ablation_runs_on_the_first_tasks_of_the_cells():
    assert e6_general.RUNS == 40 and e6_general.ABLATION_RUNS == 20
    assert all(s.runs == e6_general.ABLATION_RUNS for s in e6_general.ABLATION_SETTINGS.values())
    assert all(s.runs == e6_general.RUNS for s in (*e6_general.TUNED_SETTINGS.values(),
                                                    *e6_general.LEARNED_SETTINGS.values()))


def test_fewer_runs_are_the_first_tasks_of_the_same_draw():
    # what run() relies on when it slices a cell's best baseline to the ablation's tasks
    two = e6_general.tuned_baseline_losses("mnist", 100, "nag", 1000, runs=2)
    three = e6_general.tuned_baseline_losses("mnist", 100, "nag", 1000, runs=3)
    assert two.shape == (2, 101) and np.array_equal(two, three[:2])


def test_the_tuning_grid_is_quarter_decades_from_1e_4_to_10():
    grid = e6_general.GRID
    assert len(grid) == 21 and grid[0] == pytest.approx(1e-4) and grid[-1] == pytest.approx(10.0)
    np.testing.assert_allclose(np.diff(np.log10(grid)), 0.25, rtol=1e-12)
    assert all(s.tune_grid == grid and s.tune_steps == s.steps for s in e6_general.TUNED_SETTINGS.values())


def test_the_ablation_compares_every_variant_with_all_remedies_on_the_same_tasks(quick_e6):
    _, _, results = quick_e6
    block = results[e6_general.KEY]
    assert block["ablation_variants"] == list(e6_general.ABLATION)
    assert list(block["ablation"]) == [f"{f}@{h}" for f, h in e6_general.ABLATION_CELLS]
    for name, variants in block["ablation"].items():
        first = variants["all remedies"]
        assert first["minus_all_remedies"]["mean"] == 0.0 and first["minus_all_remedies"]["wins"] == 0
        cell = block["cells"][name]
        best = block["ablation_best_baseline"][name]
        assert best["name"] == cell["best_baseline"] and best["runs"] == 3          # --quick: 3 tasks
        assert best["loss_mean"] == pytest.approx(cell["loss_mean"][cell["best_baseline"]])   # the same 3
        best = best["loss_mean"]
        for v, a in variants.items():
            assert a["minus_all_remedies"]["mean"] == pytest.approx(a["loss_mean"] - first["loss_mean"], abs=1e-12)
            assert a["minus_best_baseline"]["mean"] == pytest.approx(a["loss_mean"] - best, abs=1e-12)
    assert "| no convex square |" in e6_general.table(results)
