"""experiments/validation_baselines.py: its scores are the meta-losses and per-step losses of one run;
experiments/fewshot_validation.py: it scores on the episodes meta-training validated on."""
from pathlib import Path

import numpy as np
import pytest

from metalstm_np.experiments import fewshot_validation
from metalstm_np.experiments.common import PRETRAINED
from metalstm_np.experiments.validation_baselines import scores
from metalstm_np.learners import Quadratic
from metalstm_np.meta_train import TrainConfig
from metalstm_np.optimizers import make_optimizer
from metalstm_np.serialization import load_phi
from metalstm_np.unroll import unroll


def test_scores_agree_with_the_unrolled_losses():
    tasks = [Quadratic().sample(np.random.default_rng([5, j])) for j in range(3)]
    sgd = make_optimizer("sgd")
    phi = {**sgd.init_phi(), "lr": 0.01}
    s = scores(sgd, phi, tasks, TrainConfig(horizon=10, unroll=5), at_steps=(4, 10))
    losses = np.array([[float(L) for L in unroll(sgd, phi, t, sgd.init(phi, t.theta0), 10)[0]] for t in tasks])
    # meta-loss over the horizon: the iterates after each update, θ_1 .. θ_10 = losses[:, 1:11]
    np.testing.assert_allclose(s["mean"], losses[:, 1:].mean(), rtol=1e-12)
    np.testing.assert_allclose(s["log"], np.log(losses[:, 1:]).mean(), rtol=1e-12)
    assert (s["loss@4"], s["loss@10"]) == (losses[:, 4].mean(), losses[:, 10].mean())
    assert s["loss@10"] < s["loss@4"] < losses[:, 0].mean()


def test_fewshot_validation_recomputes_the_shipped_models_early_stopping_score(capsys):
    r"""On the 50 episodes meta-training validated on, the shipped (best) φ of the fixed-gate 5-shot
    model scores exactly the best validation error its training log recorded."""
    weights = PRETRAINED / "fewshot_gd_5shot.npz"
    last = (Path(__file__).resolve().parents[1] / "provenance" / "fewshot_gd_5shot.log.txt").read_text().splitlines()[-1].split()
    fewshot_validation.main(["--shots", "5", "--episodes", "50", str(weights)])
    printed = capsys.readouterr().out.split("validation error ")[1].split()[0]
    assert float(printed) == pytest.approx(float(last[last.index("best") + 1]), abs=5e-5)


def test_validation_baselines_scores_the_quadratic_setting_and_checks_its_flags(capsys):
    from metalstm_np.experiments import validation_baselines
    validation_baselines.main(["--setting", "quadratic", "--tasks", "2"])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "quadratic: meta-validation tasks 0 .. 1, seed 0"
    assert [line.split()[0] for line in out[2:]] == ["sgd", "nag", "rmsprop", "adam"]
    # task 0 alone and task 1 alone (--skip 1) average to the scores of tasks 0 and 1 (printed to 4 decimals)
    singles = []
    for skip in ("0", "1"):
        validation_baselines.main(["--setting", "quadratic", "--tasks", "1", "--skip", skip])
        singles.append(capsys.readouterr().out.splitlines())
    assert singles[1][0] == "quadratic: meta-validation tasks 1 .. 1, seed 0"
    numbers = [np.array([[float(x) for x in line.split()[-4:]] for line in lines[2:]]) for lines in (out, *singles)]
    assert not np.allclose(numbers[1], numbers[2])
    np.testing.assert_allclose((numbers[1] + numbers[2]) / 2, numbers[0], atol=1.01e-4)
    with pytest.raises(SystemExit):
        validation_baselines.main(["--tasks", "0"])
    assert "--tasks must be at least 1, got 0" in capsys.readouterr().err


def test_the_shipped_e1_optimizer_scores_the_best_validation_score_of_its_log():
    r"""E1's shipped φ, on the 20 validation tasks of 128 quadratics its training run early-stopped
    on (seed 0), scores the best validation score its log recorded (printed to six digits): the
    weights are that run's best.npz, `--quadratics 128` validated on those tasks, and
    validation_baselines' quadratic_x128 setting draws them."""
    from metalstm_np.experiments.validation_baselines import VALIDATION_FAMILIES
    from metalstm_np.meta_train import draw_validation_tasks, validation_score

    optimizer, phi, _ = load_phi(PRETRAINED / "l2l_quadratic.npz")
    log = (Path(__file__).resolve().parents[1] / "provenance" / "l2l_quadratic.log.txt").read_text().splitlines()
    best = min(float(w[w.index("validation") + 1]) for w in (line.split() for line in log) if "validation" in w)
    config = TrainConfig(validate_on="final", validation_tasks=20)
    tasks = draw_validation_tasks(VALIDATION_FAMILIES["quadratic_x128"], 0, 20)     # as `metalstm train --quadratics 128`
    assert validation_score(optimizer, phi, tasks, config) == pytest.approx(best, rel=1e-5)


def test_official_quadratics_compares_on_the_same_tasks():
    r"""experiments/official_quadratics.py: each row is the mean loss per quadratic at the last step
    on the same evaluation tasks; the tuned rows use a learning rate of the quarter-decade grid, and
    the paper's and the official code's quadratics give different numbers."""
    from metalstm_np.evaluation import EVAL_SEED, run_on_tasks
    from metalstm_np.experiments import official_quadratics
    from metalstm_np.tuning import quarter_decades
    rows = {kind: official_quadratics.compare(kind, steps=5, runs=1, tune_runs=1) for kind in ("normal", "uniform")}
    assert [m for m, _, _ in rows["uniform"]] == ["adam at the official default lr", "sgd, tuned", "nag, tuned",
                                                    "rmsprop, tuned", "adam, tuned",
                                                    "LSTM (l2l), E1's optimizer"]
    adam = make_optimizer("adam")
    losses, _, _ = run_on_tasks(adam, {**adam.init_phi(), "lr": 1e-3}, Quadratic(count=128, entries="uniform"),
                                5, 1, EVAL_SEED)
    assert rows["uniform"][0][1:] == (1e-3, losses[0, 5] / 128)
    lstm, phi, _ = load_phi(PRETRAINED / "l2l_quadratic.npz")
    losses, _, _ = run_on_tasks(lstm, phi, Quadratic(count=128, entries="uniform"), 5, 1, EVAL_SEED)
    assert rows["uniform"][-1][1:] == (None, losses[0, 5] / 128)
    assert all(lr in quarter_decades() for _, lr, _ in rows["uniform"][1:5])
    assert all(np.isfinite(L) and L > 0 for kind in rows for _, _, L in rows[kind])
    assert rows["normal"][0][2] != rows["uniform"][0][2]


def tiny_rnnprop_weights(tmp_path):
    """The path of a weights file of a small RNNprop with random φ."""
    from metalstm_np.rnnprop import rnnprop
    from metalstm_np.serialization import save_phi
    opt = rnnprop(hidden=(4,), dense=3)
    save_phi(tmp_path / "tiny.npz", opt, opt.init_phi(np.random.default_rng(0)))
    return str(tmp_path / "tiny.npz")


def test_set_scores_a_weights_file_again_with_a_config_entry_replaced(tmp_path, capsys):
    from metalstm_np.experiments import validation_baselines
    weights = tiny_rnnprop_weights(tmp_path)

    def rows(*flags):
        validation_baselines.main(["--setting", "quadratic", "--tasks", "1", weights, *flags])
        return {line.rsplit(maxsplit=4)[0]: [float(x) for x in line.split()[-4:]]
                for line in capsys.readouterr().out.splitlines()[2:]}
    same = rows("--set", "step=0.1")                                   # its own α: the same numbers
    assert same[weights] == same[f"{weights} step=0.1"]
    other = rows("--set", "step=0.05")
    assert other[weights] == same[weights] and other[f"{weights} step=0.05"] != same[weights]
    for flag, says in (("size=3", "--set size: not in"), ("step=x", "--set step=x: VALUE must be a JSON value"),
                       ("step", "--set step: expected KEY=VALUE")):
        with pytest.raises(SystemExit):
            validation_baselines.main(["--setting", "quadratic", "--tasks", "1", weights, "--set", flag])
        assert says in capsys.readouterr().err


def test_sweep_scores_each_value_as_set_would_and_losses_only_leaves_out_the_scores(tmp_path, capsys):
    from metalstm_np.experiments import validation_baselines
    weights = tiny_rnnprop_weights(tmp_path)

    def lines(*flags):
        validation_baselines.main(["--setting", "quadratic", "--tasks", "1", weights, *flags])
        return capsys.readouterr().out.splitlines()[2:]
    full = {line.rsplit(maxsplit=4)[0]: line.split()[-4:] for line in lines("--set", "step=0.05")}
    swept = lines("--sweep", "step=0.05,0.2", "--losses-only", "--no-baselines")
    assert [line.rsplit(maxsplit=4)[0] for line in swept] == [weights, f"{weights} step=0.05", f"{weights} step=0.2"]
    rows = {line.rsplit(maxsplit=4)[0]: line.split()[-4:] for line in swept}
    assert rows[weights] == ["-", "-", *full[weights][2:]]                     # the same losses, no scores
    assert rows[f"{weights} step=0.05"] == ["-", "-", *full[f"{weights} step=0.05"][2:]]
    assert rows[f"{weights} step=0.2"][2:] != rows[f"{weights} step=0.05"][2:]
    both = [line.rsplit(maxsplit=4)[0] for line in lines("--set", "eps=1e-6", "--sweep", "step=0.05,0.2",
                                                         "--losses-only", "--no-baselines")]
    assert both == [weights, f"{weights} eps=1e-06", f"{weights} eps=1e-06 step=0.05", f"{weights} eps=1e-06 step=0.2"]
    for flags, says in ((["--sweep", "step"], "--sweep step: expected KEY=V1,V2,..."),
                        (["--sweep", "step="], "--sweep step=: no values"),
                        (["--sweep", "step=0.1,x"], "must be JSON values separated by commas"),
                        (["--sweep", "size=1,2"], "--sweep size: not in"),
                        (["--set", "size=1", "--sweep", "dense=1,2"], "--set size: not in"),
                        (["--set", "step=0.1", "--sweep", "step=0.2"], "step is also given by --set"),
                        (["--sweep", "hypergradient=0.5,1"], "hypergradient=1: config hypergradient = 1")):
        with pytest.raises(SystemExit):
            validation_baselines.main(["--setting", "quadratic", "--tasks", "1", weights, *flags])
        err = capsys.readouterr()
        assert says in err.err and err.out == ""                     # refused before anything was scored
    with pytest.raises(SystemExit):
        validation_baselines.main(["--setting", "quadratic", "--no-baselines"])
    assert "nothing to score" in capsys.readouterr().err
