r"""Tests for experiments/e5_fewshot.py and `metalstm fewshot evaluate`, on untrained weights made
here and a tiny protocol (3 meta-test episodes):

* every method is scored (accuracy in [0, 1], positive 95% interval) or reported missing, the
  results reproduce from the episodes and seeds they name, and the table shows the same numbers;
* the gate figure is written and the gate summary is in (0, 1);
* learned θ^0 with fixed gates z^f = 1, z^i = η, started from the episode's own θ^0, is SGD
  fine-tuning with learning rate η: the same accuracy, exactly;
* a wrong weights file is an error, not a missing one; the CLI writes fewshot_results.json.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from metalstm_np.cli import main
from metalstm_np.evaluation import EVAL_SEED, TUNE_SEED
from metalstm_np.experiments import e5_fewshot
from metalstm_np.experiments.common import Context
from metalstm_np.experiments.e5_fewshot import (LEARNED, METHODS, SETTINGS, Protocol,
                                                load_learned, score_learned)
from metalstm_np.fewshot import Episodes, sample_episodes
from metalstm_np.fewshot_baselines import finetune, mean_ci95, nearest_neighbour
from metalstm_np.learners import MLP
from metalstm_np.meta_lstm import gradient_descent_lstm, init_phi_with_step, meta_lstm
from metalstm_np.optimizers import sgd
from metalstm_np.serialization import WeightsError, save_phi

TINY = Protocol(episodes=3, tune_episodes=2, pretrain_steps=3, gate_episodes=2, mnist_gate_steps=3,
                mnist_gate_runs=1, lrs=(0.01, 0.3))
N_PARAMS = Episodes(n_way=5).n_params          # 25,285: the same learner for 1-shot and 5-shot
PRESENT = {"1shot": set(LEARNED), "5shot": {"metalstm"}}      # the other two 5-shot files are missing


def save_weights(folder):
    """Untrained φ for every 1-shot method, the 5-shot meta-LSTM and the MNIST meta-LSTM."""
    rng = np.random.default_rng(0)
    with_theta0 = meta_lstm(hidden=4, learn_theta0=True, n_params=N_PARAMS)
    for k in (1, 5):       # start as gradient descent with step 0.1, so that the accuracies vary
        save_phi(folder / f"fewshot_metalstm_{k}shot.npz", with_theta0, init_phi_with_step(with_theta0, rng, 0.1))
    gd = gradient_descent_lstm(z_f=1.0, z_i=0.1, learn_theta0=True, n_params=N_PARAMS)
    save_phi(folder / "fewshot_gd_1shot.npz", gd, gd.init_phi(rng))
    plain = meta_lstm(hidden=4)
    save_phi(folder / "fewshot_metalstm_fixed_theta0_1shot.npz", plain, init_phi_with_step(plain, rng, 0.1))
    save_phi(folder / "metalstm_mnist.npz", plain, plain.init_phi(rng))


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    save_weights(folder)
    return folder


@pytest.fixture(scope="module")
def e5(weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    results = e5_fewshot.run(Context(out=out, quick=True, workers=1, weights=weights), protocol=TINY)
    return out, results["E5_fewshot"]


def test_every_method_is_scored_or_reported_missing(e5):
    _, block = e5
    assert list(block["settings"]) == ["1shot", "5shot"]
    for key, setting in block["settings"].items():
        assert (setting["k_shot"], setting["steps"]) == {"1shot": (1, 12), "5shot": (5, 8)}[key]
        assert setting["episodes"] == 3 and setting["tune_episodes"] == 2 and setting["n_way"] == 5
        assert list(setting["methods"]) == list(METHODS)
        for method, s in setting["methods"].items():
            if method in LEARNED and method not in PRESENT[key]:
                assert s == {"status": "missing", "weights": LEARNED[method][0].format(k=key[0])}
                continue
            assert s["status"] == "ok" and s["episodes"] == 3
            assert 0.0 <= s["accuracy_mean"] <= 1.0 and s["accuracy_ci95"] > 0
        assert set(setting["tuned_lr"]["baseline_finetune"]) == {"optimizer", "lr"}
        for name in ("sgd", "adam"):
            assert setting["tuned_lr"][name] in TINY.lrs
            assert setting["methods"][f"finetune_{name}"]["lr"] == setting["tuned_lr"][name]
            assert set(setting["tune_scores"][name]) == {"0.01", "0.3"}
    assert (block["eval_seed"], block["tune_seed"]) == (EVAL_SEED, TUNE_SEED)
    assert block["pretrain"]["steps"] == 3 and block["pretrain"]["seed"] == e5_fewshot.PRETRAIN_SEED
    gd = block["settings"]["1shot"]["methods"]["gd_learned_theta0"]
    assert (gd["fixed_z_f"], gd["fixed_z_i"]) == (1.0, 0.1)


def test_a_pool_of_two_gives_the_serial_results_exactly(e5, weights, tmp_path):
    out, block = e5
    e5_fewshot._features.cache_clear()      # the workers pre-train Baseline-finetune's features anew
    pooled = e5_fewshot.run(Context(out=tmp_path, quick=True, workers=2, weights=weights), protocol=TINY)
    assert json.dumps(pooled["E5_fewshot"], sort_keys=True) == json.dumps(block, sort_keys=True)
    assert (tmp_path / "e5_gates.png").read_bytes() == (out / "e5_gates.png").read_bytes()


def test_the_numbers_reproduce_from_the_stated_episodes_and_seeds(e5):
    """Nearest neighbour and SGD fine-tuning at the recorded learning rate, recomputed."""
    _, block = e5
    s = block["settings"]["5shot"]
    episodes = sample_episodes(Episodes(n_way=5, k_shot=5, split="test"), 3, EVAL_SEED)
    assert (s["methods"]["nearest_neighbour"]["accuracy_mean"],
            s["methods"]["nearest_neighbour"]["accuracy_ci95"]) == mean_ci95(nearest_neighbour(episodes))
    sgd_s = s["methods"]["finetune_sgd"]
    assert (sgd_s["accuracy_mean"], sgd_s["accuracy_ci95"]) == mean_ci95(finetune(sgd, sgd_s["lr"], episodes, 8))
    assert s["tune_scores"]["sgd"][f"{sgd_s['lr']:.6g}"] == max(s["tune_scores"]["sgd"].values())


def test_table_shows_the_numbers(e5):
    _, block = e5
    table = e5_fewshot.table({"E5_fewshot": block, "quick": True})
    assert table == e5_fewshot.table(block) and e5_fewshot.table({"E1_quadratic": {}}) == ""
    for setting in block["settings"].values():
        for method, s in setting["methods"].items():
            if s["status"] == "missing":
                assert f"missing ({s['weights']})" in table
            else:
                assert f"{100 * s['accuracy_mean']:.2f} ± {100 * s['accuracy_ci95']:.2f}" in table
            if "lr" in s:
                assert f"{s['lr']:.3g}" in table
    for key, g in block["gates"].items():
        assert f"{g['summary']['z_i']['update_mean_min']:.4g} – {g['summary']['z_i']['update_mean_max']:.4g}" in table
    assert "3 meta-test episodes" in table and f"seed {EVAL_SEED}" in table and f"seed {TUNE_SEED}" in table


def test_gate_figure_and_gate_summary(e5):
    out, block = e5
    assert block["figure"] == "e5_gates.png"
    png = (out / "e5_gates.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert list(block["gates"]) == ["1shot", "5shot", "mnist"]
    for key, steps in (("1shot", 12), ("5shot", 8), ("mnist", 3)):
        g = block["gates"][key]
        assert g["status"] == "ok" and g["parts"] == ["W1", "b1", "W2", "b2"] and g["steps"] == steps
        for name in ("z_f", "z_i"):
            mean = np.array(g[f"{name}_mean"])
            assert mean.shape == np.array(g[f"{name}_std"]).shape == (steps, 4)
            summary = g["summary"][name]
            assert summary["mean"] == pytest.approx(mean.mean(), rel=1e-12)
            assert (summary["update_mean_min"], summary["update_mean_max"]) == (mean.mean(1).min(), mean.mean(1).max())
            values = [summary["mean"], summary["update_mean_min"], summary["update_mean_max"]]
            assert all(0.0 < v < 1.0 for v in values)
    # the few-shot meta-LSTMs started at z^i ≈ 0.1 (b^I = logit 0.1); the MNIST one at the paper's init
    assert block["gates"]["1shot"]["summary"]["z_i"]["mean"] == pytest.approx(0.1, abs=0.01)
    assert block["gates"]["mnist"]["summary"]["z_f"]["mean"] > 0.98


def test_learned_theta0_with_fixed_gates_at_the_episodes_own_theta0_is_sgd_finetuning(tmp_path):
    r"""θ_t = 1 ⊙ θ_{t−1} + η ⊙ (−∇_t) from c_0 = θ^0 is SGD with learning rate η from θ^0: the
    same iterates, the same query accuracy, bit for bit."""
    setting, eta = SETTINGS["1shot"], 0.3
    episodes = sample_episodes(Episodes(n_way=5, k_shot=1, split="test"), 2, EVAL_SEED)
    gd = gradient_descent_lstm(z_f=1.0, z_i=eta, learn_theta0=True, n_params=N_PARAMS)
    for ep in episodes:
        save_phi(tmp_path / "fewshot_gd_1shot.npz", gd, {"z_f": 1.0, "z_i": eta, "c_0": ep.theta0})
        accs, info = score_learned(tmp_path, "gd_learned_theta0", setting, [ep])
        assert info["fixed_z_i"] == eta
        expected = finetune(sgd, eta, [ep], setting.steps)
        np.testing.assert_array_equal(accs, expected)
        assert expected[0] != ep.accuracy(ep.theta0)       # fine-tuning changed the answer


def test_a_wrong_weights_file_is_an_error_not_a_missing_one(tmp_path):
    plain = meta_lstm(hidden=4)
    save_phi(tmp_path / "fewshot_metalstm_1shot.npz", plain, plain.init_phi(np.random.default_rng(0)))
    with pytest.raises(WeightsError, match="with learned θ"):
        load_learned(tmp_path, "metalstm", SETTINGS["1shot"])
    small = meta_lstm(hidden=4, learn_theta0=True, n_params=10)
    save_phi(tmp_path / "fewshot_metalstm_5shot.npz", small, small.init_phi(np.random.default_rng(0)))
    with pytest.raises(WeightsError, match="25285"):
        load_learned(tmp_path, "metalstm", SETTINGS["5shot"])
    save_phi(tmp_path / "fewshot_gd_1shot.npz", plain, plain.init_phi(np.random.default_rng(0)))
    with pytest.raises(WeightsError, match="not 'gd_lstm'"):
        load_learned(tmp_path, "gd_learned_theta0", SETTINGS["1shot"])
    assert load_learned(tmp_path, "metalstm_fixed_theta0", SETTINGS["1shot"]) is None
    assert e5_fewshot.mnist_gates(tmp_path, 2, 1) is None
    assert MLP(**e5_fewshot.MNIST_LEARNER).n_params == 15910


def test_cli_fewshot_evaluate_without_weights(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(e5_fewshot, "QUICK", TINY)
    empty, out = tmp_path / "weights", tmp_path / "out"
    empty.mkdir()
    assert main(["fewshot", "evaluate", "--quick", "--out", str(out), "--weights", str(empty)]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "fewshot_results.json").read_text())
    block = results["E5_fewshot"]
    assert results["quick"] is True and block["figure"] is None and not (out / "e5_gates.png").exists()
    for setting in block["settings"].values():
        assert all(setting["methods"][m]["status"] == "missing" for m in LEARNED)
    assert all(g["status"] == "missing" for g in block["gates"].values())
    assert e5_fewshot.table(results) in printed
    assert main(["fewshot", "evaluate", "--quick", "--weights", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip() == f"metalstm: error: --weights {tmp_path / 'nowhere'}: no such folder"


def test_shipped_bf_frozen_variant_keeps_baseline_finetunes_theta0():
    r"""provenance/not_shipped/fewshot_bf_theta0_frozen/ (a control run): meta-LSTMs trained with --theta0-from (`fewshot
    pretrain`) and --freeze-theta0. Their θ^0 is Baseline-finetune's, the pre-trained hidden layers
    and a zero output layer, unchanged by training; `fewshot evaluate --weights` that folder loads
    them as the meta-LSTM and reports the other learned methods missing."""
    folder = Path(__file__).resolve().parents[1] / "provenance" / "not_shipped" / "fewshot_bf_theta0_frozen"
    features = e5_fewshot._features(e5_fewshot.FULL.pretrain_steps)
    for setting in SETTINGS.values():
        optimizer, phi, _ = e5_fewshot.load_learned(folder, "metalstm", setting)
        assert optimizer.name == "metalstm" and optimizer.config["learn_theta0"]
        np.testing.assert_allclose(phi["c_0"][:len(features)], features, rtol=1e-6, atol=1e-9)
        assert not np.any(phi["c_0"][len(features):])
        for key in ("gd_learned_theta0", "metalstm_fixed_theta0"):
            assert e5_fewshot.load_learned(folder, key, setting) is None


def test_e5_on_the_rot22_5_benchmark_draws_its_episodes_and_pre_trains_on_its_64_classes(weights, tmp_path):
    """The same protocol on the other benchmark: the results say which one, nearest neighbour scores
    exactly the episodes that fewshot draws for it, and Baseline-finetune's classifier has 64 classes."""
    from dataclasses import replace
    from metalstm_np.fewshot import BENCHMARKS
    protocol = replace(TINY, benchmark="rot22.5")
    block = e5_fewshot.run(Context(out=tmp_path, quick=True, workers=1, weights=weights), protocol)["E5_fewshot"]
    assert block["benchmark"] == "rot22.5" and block["pretrain"]["classes"] == 64
    assert block["classes"] == {"train": 64, "validation": 32, "test": 64}
    episodes = sample_episodes(Episodes(n_way=5, k_shot=1, split="test", **BENCHMARKS["rot22.5"]), 3, EVAL_SEED)
    mean, _ = mean_ci95(nearest_neighbour(episodes))
    assert block["settings"]["1shot"]["methods"]["nearest_neighbour"]["accuracy_mean"] == mean
    assert len(e5_fewshot._features(TINY.pretrain_steps, "rot22.5")) == 784 * 32 + 32


def test_another_eval_seed_scores_other_meta_test_episodes(weights, tmp_path, capsys):
    """--eval-seed S (a re-check): the meta-test episodes are drawn with S, recorded in the results;
    the seeds of training, tuning and pre-training are refused."""
    from dataclasses import replace
    block = e5_fewshot.run(Context(out=tmp_path, quick=True, workers=1, weights=weights),
                           replace(TINY, eval_seed=4000))["E5_fewshot"]
    assert block["eval_seed"] == 4000
    episodes = sample_episodes(Episodes(n_way=5, k_shot=5, split="test"), 3, 4000)
    assert block["settings"]["5shot"]["methods"]["nearest_neighbour"]["accuracy_mean"] == \
        mean_ci95(nearest_neighbour(episodes))[0]
    for seed in ("0", str(TUNE_SEED), str(e5_fewshot.PRETRAIN_SEED)):
        assert main(["fewshot", "evaluate", "--quick", "--eval-seed", seed, "--out", str(tmp_path / "x")]) == 2
        assert "draws the training, tuning or pre-training episodes" in capsys.readouterr().err
