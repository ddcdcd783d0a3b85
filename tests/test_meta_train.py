"""Meta-training: it learns, it resumes bit for bit, it stops cleanly on NaN, it checkpoints atomically."""
import json
from contextlib import nullcontext
from dataclasses import dataclass, replace

import numpy as np
import pytest
from autograd.misc.flatten import flatten

from metalstm_np import Quadratic, l2l, meta_lstm
from metalstm_np.learners import Task
from metalstm_np.meta_train import (Diverged, TrainConfig, _averaged, _Piece, _run_piece, draw_validation_tasks,
                                    imitates, load_checkpoint, meta_train, piece_weights, validation_score)
from metalstm_np.optimizers import adam
from metalstm_np.serialization import load_phi
from metalstm_np.unroll import imitation_loss, meta_loss, teacher_trajectory

TINY = TrainConfig(trajectories=6, horizon=6, unroll=3, validate_every=2, validation_tasks=2,
                   meta_lr=0.01, seed=3)


def tiny_l2l():
    return l2l(hidden=(4,))


def assert_same_checkpoint(a, b):
    _, phi_a, state_a = load_checkpoint(a)
    _, phi_b, state_b = load_checkpoint(b)
    np.testing.assert_array_equal(flatten(phi_a)[0], flatten(phi_b)[0])
    for key in ("theta", "m", "v"):
        np.testing.assert_array_equal(state_a["adam"][key], state_b["adam"][key])
    assert state_a["adam"]["t"] == state_b["adam"]["t"]
    np.testing.assert_array_equal(state_a["best"]["phi"], state_b["best"]["phi"])
    assert state_a["history"] == state_b["history"]
    assert state_a["trajectory"] == state_b["trajectory"]
    if state_a["average"] is None or state_b["average"] is None:
        assert state_a["average"] is state_b["average"] is None
    else:
        np.testing.assert_array_equal(state_a["average"], state_b["average"])


def test_resume_after_stop_is_bit_for_bit(tmp_path):
    meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), TINY, tmp_path / "straight.npz")
    from dataclasses import replace
    meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), replace(TINY, trajectories=4), tmp_path / "split.npz")
    assert load_checkpoint(tmp_path / "split.npz")[2]["trajectory"] == 4
    meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), TINY, tmp_path / "split.npz", resume=True)
    assert_same_checkpoint(tmp_path / "straight.npz", tmp_path / "split.npz")


def test_resume_after_interrupt_is_bit_for_bit(tmp_path):
    """A run killed after its 4th trajectory (here: KeyboardInterrupt from the callback) loses
    nothing it had saved and, resumed, ends where an uninterrupted run ends."""
    meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), TINY, tmp_path / "straight.npz")

    def interrupt(info):
        if info["trajectory"] == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), TINY, tmp_path / "cut.npz", callback=interrupt)
    assert load_checkpoint(tmp_path / "cut.npz")[2]["trajectory"] == 4
    meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), TINY, tmp_path / "cut.npz", resume=True)
    assert_same_checkpoint(tmp_path / "straight.npz", tmp_path / "cut.npz")
    assert not list(tmp_path.glob("*.tmp"))          # atomic writes leave no temporary files


def test_resume_refuses_another_config(tmp_path):
    from dataclasses import replace
    meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), replace(TINY, trajectories=2), tmp_path / "c.npz")
    with pytest.raises(ValueError, match="made with"):
        meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), replace(TINY, meta_lr=0.5), tmp_path / "c.npz",
                   resume=True)
    with pytest.raises(ValueError, match="checkpoint is for"):
        meta_train(l2l(hidden=(5,)), Quadratic(3), Quadratic(3), TINY, tmp_path / "c.npz", resume=True)


def test_resume_refuses_other_frozen_arrays_or_another_starting_phi(tmp_path):
    """The checkpoint names the frozen keys and the φ the run started from: resuming with others
    would not continue the same run, and is refused; with the same ones it continues."""
    short, path = replace(TINY, trajectories=2), tmp_path / "c.npz"
    start = tiny_l2l().init_phi(np.random.default_rng(11))
    meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), short, path, phi=start, frozen=("b_out",))
    with pytest.raises(ValueError, match=r"keeps \['b_out'\] frozen, not none"):
        meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), TINY, path, resume=True)
    other = tiny_l2l().init_phi(np.random.default_rng(12))
    with pytest.raises(ValueError, match="started from another φ"):
        meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), TINY, path, resume=True, phi=other, frozen=("b_out",))
    meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), TINY, path, resume=True, phi=start, frozen=("b_out",))
    meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), TINY, tmp_path / "straight.npz", phi=start,
               frozen=("b_out",))
    assert_same_checkpoint(tmp_path / "straight.npz", path)
    np.testing.assert_array_equal(load_phi(path)[1]["b_out"], start["b_out"])


def test_resume_writes_the_best_phi_again(tmp_path):
    """A best.npz lost (or left newer than the checkpoint by an interrupt) is put back from the
    checkpoint's best φ when the run resumes."""
    short = replace(TINY, trajectories=4)
    meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), short, tmp_path / "c.npz", best_path=tmp_path / "best.npz")
    best = flatten(load_phi(tmp_path / "best.npz")[1])[0]
    (tmp_path / "best.npz").unlink()
    meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), short, tmp_path / "c.npz", resume=True,
               best_path=tmp_path / "best.npz")
    np.testing.assert_array_equal(flatten(load_phi(tmp_path / "best.npz")[1])[0], best)
    np.testing.assert_array_equal(load_checkpoint(tmp_path / "c.npz")[2]["best"]["phi"], best)


class PoisonedFamily:
    """Quadratics, except that the task of trajectory `bad` has a NaN loss."""

    def __init__(self, bad):
        self.bad, self.sampled = bad, 0

    def sample(self, rng):
        task = Quadratic(3).sample(rng)
        self.sampled += 1
        if self.sampled - 1 == self.bad:
            return Task(task.theta0, lambda theta, t: task.loss(theta, t) * np.nan, task.heldout_loss)
        return task


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    with pytest.raises(Diverged, match="trajectory 3, piece 0"):
        meta_train(tiny_l2l(), PoisonedFamily(bad=3), Quadratic(3), TINY, tmp_path / "c.npz")
    optimizer, phi, state = load_checkpoint(tmp_path / "c.npz")
    assert state["trajectory"] == 3
    assert np.all(np.isfinite(flatten(phi)[0]))


def test_meta_training_lowers_the_meta_loss_on_quadratics(tmp_path):
    """A short run must improve the validation meta-loss of the untrained optimizer by a margin."""
    config = TrainConfig(trajectories=40, horizon=20, unroll=10, validate_every=20, validation_tasks=6,
                         meta_lr=0.01, seed=1)
    best, history = meta_train(l2l(hidden=(8,)), Quadratic(), Quadratic(), config, tmp_path / "c.npz",
                               best_path=tmp_path / "best.npz")
    assert history["validation_trajectory"] == [0, 20, 40]
    assert min(history["validation"][1:]) < 0.8 * history["validation"][0]
    optimizer, phi, _ = load_phi(tmp_path / "best.npz")
    np.testing.assert_array_equal(flatten(phi)[0], flatten(best)[0])
    assert min(history["validation"]) == pytest.approx(
        validation_score(optimizer, phi, [Quadratic().sample(np.random.default_rng([1, 2, j]))
                                          for j in range(6)], config))


def test_validate_on_final_scores_the_training_loss_after_the_last_step():
    """validate_on="final": the mean over validation tasks of L_{T+1} = f_{T+1}(θ_T), the number
    the baselines are tuned on (the last column of evaluation.run_on_tasks), not the meta-loss."""
    from dataclasses import replace
    from metalstm_np.evaluation import run_on_tasks
    from metalstm_np import sgd
    optimizer, phi, config = sgd, {"lr": 0.05, "weight_decay": 0.0}, replace(TINY, horizon=6, unroll=6)
    tasks = [Quadratic(3).sample(np.random.default_rng([7, r])) for r in range(3)]
    losses, _, _ = run_on_tasks(optimizer, phi, Quadratic(3), 6, 3, 7)    # the same three tasks
    final = validation_score(optimizer, phi, tasks, replace(config, validate_on="final"))
    assert final == np.mean(losses[:, -1])
    assert validation_score(optimizer, phi, tasks, config) == pytest.approx(np.mean(losses[:, 1:]))


def test_meta_lstm_with_learned_theta0_trains_c0(tmp_path):
    """With the held-out meta-loss and learned θ^0, meta-training moves c_0."""
    opt = meta_lstm(hidden=4, learn_theta0=True, n_params=3)
    config = TrainConfig(trajectories=3, horizon=4, unroll=4, meta_loss="heldout", validate_every=3,
                         validation_tasks=1, meta_lr=0.01)
    phi0 = opt.init_phi(np.random.default_rng([config.seed, 0]))
    meta_train(opt, Quadratic(3), Quadratic(3), config, tmp_path / "c.npz")
    _, phi, _ = load_checkpoint(tmp_path / "c.npz")
    assert np.max(np.abs(phi["c_0"] - phi0["c_0"])) > 1e-3


@pytest.mark.parametrize("bad", [dict(horizon=10, unroll=3), dict(trajectories=0), dict(meta_lr=-1.0),
                                 dict(meta_loss="median"), dict(validate_on="last")])
def test_bad_config_names_the_value(bad):
    with pytest.raises(ValueError, match=str(list(bad.values())[-1])):
        TrainConfig(**bad)


def test_frozen_keys_stay_exactly_fixed_while_theta0_learns(tmp_path):
    """Gradient descent as an LSTM with learned θ^0 (first-order MAML): the hand-set gates must not
    be trained, c_0 must."""
    from metalstm_np.meta_lstm import gradient_descent_lstm
    opt = gradient_descent_lstm(z_f=1.0, z_i=0.05, learn_theta0=True, n_params=3)
    config = TrainConfig(trajectories=4, horizon=4, unroll=4, meta_loss="heldout", validate_every=2,
                         validation_tasks=1, meta_lr=0.01)
    phi0 = opt.init_phi(np.random.default_rng([config.seed, 0]))
    meta_train(opt, Quadratic(3), Quadratic(3), config, tmp_path / "c.npz", frozen=("z_f", "z_i"))
    _, phi, _ = load_checkpoint(tmp_path / "c.npz")
    assert float(phi["z_f"]) == 1.0 and float(phi["z_i"]) == 0.05
    assert np.max(np.abs(phi["c_0"] - phi0["c_0"])) > 1e-3
    meta_train(opt, Quadratic(3), Quadratic(3), config, tmp_path / "free.npz")
    assert float(load_checkpoint(tmp_path / "free.npz")[1]["z_i"]) != 0.05     # not frozen: trained


def test_custom_validation_score_picks_the_best(tmp_path):
    """The score's summary is called on the per-task values of the fixed validation tasks; the best
    φ is the one with the lowest score."""
    from metalstm_np.evaluation import Score
    calls = []

    def summary(values):
        calls.append(len(values))
        return [5.0, 3.0, 4.0, 1.0][len(calls) - 1]

    score = Score(per_task=lambda optimizer, phi, task, config: 0.0, summary=summary)
    config = TrainConfig(trajectories=6, horizon=3, unroll=3, validate_every=2, validation_tasks=2)
    best, history = meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), config, tmp_path / "c.npz", score=score)
    assert calls == [2, 2, 2, 2] and history["validation"] == [5.0, 3.0, 4.0, 1.0]
    _, phi_final, state = load_checkpoint(tmp_path / "c.npz")
    assert state["best"]["trajectory"] == 6
    np.testing.assert_array_equal(flatten(best)[0], flatten(phi_final)[0])


def test_resume_refuses_another_task_family(tmp_path):
    from dataclasses import replace
    meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), replace(TINY, trajectories=2), tmp_path / "c.npz")
    with pytest.raises(ValueError, match=r"trained on Quadratic\(dim=3\), not Quadratic\(dim=4\)"):
        meta_train(tiny_l2l(), Quadratic(4), Quadratic(4), TINY, tmp_path / "c.npz", resume=True)


def test_resume_refuses_another_validation_family(tmp_path):
    """The best φ kept so far was scored on the validation family: resuming with another would
    compare scores of two different sets of tasks."""
    from metalstm_np.learners import Mixture
    mixture = Mixture((Quadratic(3), Quadratic(4)))
    meta_train(tiny_l2l(), Quadratic(3), mixture, replace(TINY, trajectories=2), tmp_path / "c.npz")
    assert load_checkpoint(tmp_path / "c.npz")[2]["validation_family"] == repr(mixture)
    with pytest.raises(ValueError, match=r"validated on Mixture\(families=\(Quadratic\(dim=3\), Quadratic\(dim=4\)\)\), "
                                         r"not Quadratic\(dim=3\)"):
        meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), TINY, tmp_path / "c.npz", resume=True)
    meta_train(tiny_l2l(), Quadratic(3), mixture, TINY, tmp_path / "c.npz", resume=True)
    assert load_checkpoint(tmp_path / "c.npz")[2]["trajectory"] == TINY.trajectories


def test_heldout_meta_loss_needs_one_piece_per_trajectory():
    with pytest.raises(ValueError, match=r"horizon \(6\) must equal unroll \(3\)"):
        TrainConfig(horizon=6, unroll=3, meta_loss="heldout")


def test_linear_weights_sum_to_one_grow_with_t_and_cut_into_pieces():
    """w_t = 2t / (T(T + 1)): positive, increasing, summing to 1 like the uniform 1/T; the pieces of
    a truncated unroll carry the horizon's weights times horizon / unroll (uniform: 1/unroll each)."""
    from metalstm_np.meta_train import horizon_weights, piece_weights
    config = TrainConfig(horizon=100, unroll=20, weights="linear")
    w = horizon_weights(config)
    assert w.shape == (100,) and np.all(np.diff(w) > 0) and w[0] > 0
    assert np.sum(w) == pytest.approx(1.0, abs=1e-12)
    assert w[-1] == pytest.approx(100 * w[0])
    pieces = np.concatenate([piece_weights(config, t0) for t0 in range(0, 100, 20)])
    np.testing.assert_allclose(pieces, w * 5, rtol=1e-15)
    uniform = TrainConfig(horizon=100, unroll=20)
    assert horizon_weights(uniform) is None and piece_weights(uniform, 40) is None


def test_piece_end_weights_weigh_the_last_iterate_of_each_piece():
    r"""piece_ends (RNNprop's code, up to one step): in each piece of `unroll` steps only its last iterate counts, with
    weight 1 in the piece (so one piece's meta-loss is f(θ) at its end) and 1/P over the horizon of P
    pieces; the meta-loss of a piece is then exactly the loss at its last step."""
    from metalstm_np.meta_train import horizon_weights, piece_weights
    from metalstm_np.unroll import meta_loss, unroll
    from metalstm_np import sgd
    config = TrainConfig(horizon=60, unroll=20, weights="piece_ends")
    w = horizon_weights(config)
    expected = np.zeros(60)
    expected[[19, 39, 59]] = 1 / 3
    np.testing.assert_array_equal(w, expected)
    for t0 in (0, 20, 40):
        np.testing.assert_array_equal(piece_weights(config, t0), np.eye(20)[19])
    np.testing.assert_array_equal(horizon_weights(config, 40), np.eye(40)[19] / 2 + np.eye(40)[39] / 2)
    with pytest.raises(ValueError, match="50 steps is not a whole number of pieces of 20"):
        horizon_weights(config, 50)
    phi = {"lr": 0.05, "weight_decay": 0.0}
    task = Quadratic(3).sample(np.random.default_rng(4))
    losses, _ = unroll(sgd, phi, task, sgd.init(phi, task.theta0), 20)
    assert meta_loss(sgd, phi, task, steps=20, weights=piece_weights(config, 0))[0] == losses[20]
    for bad in (10, 50):
        with pytest.raises(ValueError, match=f"validation_horizon {bad} is not a multiple of unroll \\(20\\)"):
            TrainConfig(horizon=60, unroll=20, weights="piece_ends", validation_horizon=bad)
    TrainConfig(horizon=60, unroll=20, weights="piece_ends", validation_horizon=50, validate_on="final")


def test_linear_weights_enter_the_meta_loss_of_training_and_of_validation(tmp_path):
    """The first trajectory's meta-loss is Σ_t w_t L_t with the linear weights on that trajectory's task
    (not the mean), and the validation score (validate_on="meta-loss") is the same sum over the
    losses run_on_tasks records."""
    from dataclasses import replace
    from metalstm_np.evaluation import run_on_tasks
    from metalstm_np.meta_train import horizon_weights
    from metalstm_np.unroll import meta_loss
    from metalstm_np import sgd
    phi = {"lr": 0.05, "weight_decay": 0.0}
    config = replace(TINY, horizon=6, unroll=6, weights="linear", trajectories=1, validate_every=1)
    w = horizon_weights(config)
    tasks = [Quadratic(3).sample(np.random.default_rng([7, r])) for r in range(3)]
    losses, _, _ = run_on_tasks(sgd, phi, Quadratic(3), 6, 3, 7)            # the same three tasks
    assert validation_score(sgd, phi, tasks, config) == pytest.approx(np.mean(losses[:, 1:] @ w), rel=1e-12)
    assert validation_score(sgd, phi, tasks, config) != pytest.approx(np.mean(losses[:, 1:]), rel=1e-3)

    opt = l2l(hidden=(4,), dtype="float64")
    phi0 = opt.init_phi(np.random.default_rng([config.seed, 0]))
    _, history = meta_train(opt, Quadratic(3), Quadratic(3), config, tmp_path / "c.npz")
    task = Quadratic(3).sample(np.random.default_rng([config.seed, 1, 0]))
    weighted = meta_loss(opt, phi0, task, steps=6, weights=w)[0]
    assert history["meta_loss"][0] == pytest.approx(weighted, rel=1e-12)
    assert history["meta_loss"][0] != pytest.approx(meta_loss(opt, phi0, task, steps=6)[0], rel=1e-6)


@pytest.mark.parametrize("bad, message", [(dict(weights="quadratic"), "quadratic"),
                                          (dict(meta_loss="heldout", horizon=4, unroll=4, weights="linear"),
                                           "linear")])
def test_bad_weights_name_the_value(bad, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**bad)


# ------------------------------------------------------------------ a batch of tasks per update

def reference_runs(tmp_path, change=None, pool=None):
    """Three tiny runs (l2l on quadratics; l2l in float32 on an MNIST MLP with truncation, linear
    weights and validate_on="final"; the meta-LSTM with learned θ^0 on few-shot episodes), their
    configs changed by `change` (the fields to replace) and run in `pool`; returns their
    checkpoints' φ, Adam state, best φ and histories."""
    from metalstm_np import fewshot, fewshot_baselines
    from metalstm_np.learners import MLP
    runs = {"q": (l2l(hidden=(4,)), Quadratic(3), Quadratic(3), TINY, {}),
            "m": (l2l(hidden=(4,), dtype="float32"), MLP((5,), batch=16), MLP((5,), batch=16, split="validation"),
                  TrainConfig(trajectories=2, horizon=4, unroll=2, validate_every=1, validation_tasks=1,
                              meta_lr=0.01, seed=3, validate_on="final", weights="linear"), {})}
    episodes = fewshot.Episodes(hidden=(8,), query=3)
    runs["f"] = (meta_lstm(hidden=4, learn_theta0=True, n_params=episodes.n_params), episodes,
                 fewshot.Episodes(hidden=(8,), query=3, split="validation"),
                 TrainConfig(trajectories=2, horizon=3, unroll=3, meta_loss="heldout", validate_every=1,
                             validation_tasks=2, meta_lr=0.01, seed=3, clip=0.25),
                 {"score": fewshot_baselines.validation_error})
    out = {}
    for key, (optimizer, family, validation, config, options) in runs.items():
        config = replace(config, **(change or {}))
        meta_train(optimizer, family, validation, config, tmp_path / f"{key}.npz", pool=pool, **options)
        _, phi, state = load_checkpoint(tmp_path / f"{key}.npz")
        out.update({f"{key}/phi": flatten(phi)[0], f"{key}/m": state["adam"]["m"], f"{key}/v": state["adam"]["v"],
                    f"{key}/best_phi": state["best"]["phi"],
                    f"{key}/meta_loss": np.array(state["history"]["meta_loss"]),
                    f"{key}/validation": np.array(state["history"]["validation"])})
    return out


def test_one_task_per_update_gives_the_phi_trained_before_batching(tmp_path):
    """tests/data/meta_train_before_batching.npz holds what `reference_runs` gave at commit 2fa7ee9,
    before meta-updates took batches of tasks: B = 1 (the default) must give the same arrays.

    The file was written on one CPU; OpenBLAS and numpy choose their vector kernels by CPU, so on
    another one a sum can round differently in its last bits, and training carries that on (seen on
    two other CPUs: the float64 runs' arrays up to 1e-13 apart in relative terms, the float32 run's
    ("m/", φ in float32) up to 1e-5, about 80 float32 ulps). So the arrays of a run whose φ is
    float64 must agree to a relative 1e-10, and those of the float32 run to 1e-4; both are far below
    what a change of the algorithm moves them (B = 2 gives another φ:
    test_a_batch_averages_the_meta_gradients_of_its_tasks)."""
    import pathlib
    expected = np.load(pathlib.Path(__file__).parent / "data" / "meta_train_before_batching.npz")
    got = reference_runs(tmp_path)
    assert sorted(got) == sorted(expected.files)
    for key in expected.files:
        assert got[key].dtype == expected[key].dtype, key
        run = key.split("/")[0]
        rtol = 1e-4 if expected[f"{run}/phi"].dtype == np.float32 else 1e-10
        np.testing.assert_allclose(got[key], expected[key], rtol=rtol, atol=0, err_msg=key)


def test_a_batch_averages_the_meta_gradients_of_its_tasks(tmp_path):
    """With B = 2 (and no clipping) the one meta-update of a one-piece run is Adam's first step on the
    mean g of the two trajectories' meta-gradients, −lr · g / (|g| + eps) per coordinate: φ_1 − φ_0
    follows from the two gradients alone, and differs from what B = 1 gives."""
    from metalstm_np.unroll import meta_value_and_grad
    config = replace(TINY, horizon=3, unroll=3, trajectories=2, validate_every=2, tasks_per_update=2, clip=1e9)
    opt = tiny_l2l()
    phi0 = opt.init_phi(np.random.default_rng([config.seed, 0]))
    grads, values = [], []
    for i in range(2):
        task = Quadratic(3).sample(np.random.default_rng([config.seed, 1, i]))
        value, grad, _ = meta_value_and_grad(opt, phi0, task, steps=3)
        grads.append(flatten(grad)[0])
        values.append(float(value))
    _, history = meta_train(opt, Quadratic(3), Quadratic(3), config, tmp_path / "c.npz")
    assert history["meta_loss"] == values                   # one entry per trajectory
    g = (grads[0] + grads[1]) / 2
    step = flatten(load_checkpoint(tmp_path / "c.npz")[1])[0] - flatten(phi0)[0]
    np.testing.assert_allclose(step, -config.meta_lr * g / (np.abs(g) + 1e-8), rtol=1e-6, atol=1e-12)
    one = replace(config, tasks_per_update=1)
    meta_train(opt, Quadratic(3), Quadratic(3), one, tmp_path / "one.npz")
    assert not np.array_equal(flatten(load_checkpoint(tmp_path / "one.npz")[1])[0], step + flatten(phi0)[0])


def test_two_workers_give_the_same_checkpoints_as_one_bit_for_bit(tmp_path):
    """B = 2, the unrolls and the validation in a pool of two worker processes, against the same runs
    here: the same φ, Adam state, best φ and histories."""
    from metalstm_np.pool import process_pool
    batched = {"tasks_per_update": 2, "trajectories": 4, "validate_every": 2}
    here = reference_runs(tmp_path / "here", batched)
    with process_pool(2) as pool:
        there = reference_runs(tmp_path / "pool", batched, pool=pool)
    for key in here:
        np.testing.assert_array_equal(here[key], there[key], err_msg=key)
    assert len(here["q/meta_loss"]) == 4 and len(here["q/validation"]) == 3


def test_resume_with_two_workers_after_an_interrupt_is_bit_for_bit(tmp_path):
    """A run with two workers, interrupted after its second meta-update and resumed with two workers
    again (and one resumed here, W = 1), ends where a run that never stopped ends."""
    from metalstm_np.pool import process_pool
    config = replace(TINY, trajectories=8, tasks_per_update=2, validate_every=2)
    meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), config, tmp_path / "straight.npz")

    def interrupt(info):
        if info["trajectory"] == 4:
            raise KeyboardInterrupt

    for name, resume_workers in (("two", 2), ("one", 1)):
        with pytest.raises(KeyboardInterrupt), process_pool(2) as pool:
            meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), config, tmp_path / f"{name}.npz",
                       callback=interrupt, pool=pool)
        assert load_checkpoint(tmp_path / f"{name}.npz")[2]["trajectory"] == 4
        with (process_pool(resume_workers) if resume_workers > 1 else nullcontext()) as pool:
            meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), config, tmp_path / f"{name}.npz",
                       resume=True, pool=pool)
        assert_same_checkpoint(tmp_path / "straight.npz", tmp_path / f"{name}.npz")


def test_the_checkpoint_records_b_and_resuming_with_another_b_is_refused(tmp_path):
    config = replace(TINY, trajectories=4, tasks_per_update=2, validate_every=2)
    meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), config, tmp_path / "c.npz")
    assert load_checkpoint(tmp_path / "c.npz")[2]["config"].tasks_per_update == 2
    with pytest.raises(ValueError, match="made with 2 tasks per update, not 1"):
        meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), replace(config, tasks_per_update=1, trajectories=6),
                   tmp_path / "c.npz", resume=True)


@pytest.mark.parametrize("bad, message", [(dict(tasks_per_update=0), "tasks_per_update must be at least 1"),
                                          (dict(tasks_per_update=4, trajectories=6), r"trajectories \(6\)"),
                                          (dict(tasks_per_update=4, validate_every=2), r"validate_every \(2\)")])
def test_trajectories_and_validation_come_in_whole_batches(bad, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{"trajectories": 8, "validate_every": 4, **bad})


@dataclass(frozen=True)
class KilledAt:
    """Quadratics, except that sampling the training task of trajectory `at` in a worker process
    kills that process (SIGKILL, as the out-of-memory killer would)."""

    at: int

    def sample(self, rng):
        import multiprocessing
        import os
        import signal
        task = Quadratic(3).sample(rng)
        if multiprocessing.parent_process() is not None and self._index(rng) == self.at:
            os.kill(os.getpid(), signal.SIGKILL)
        return task

    def _index(self, rng):
        words = rng.bit_generator.seed_seq.entropy
        return words[2] if isinstance(words, list) and len(words) == 3 and words[1] == 1 else None


def test_a_killed_worker_stops_the_run_with_one_clear_error_and_keeps_the_checkpoint(tmp_path):
    import multiprocessing
    from metalstm_np.pool import WorkerLost, process_pool
    config = replace(TINY, trajectories=8, tasks_per_update=2, validate_every=2)
    before = set(multiprocessing.active_children())          # other tests' processes, if any
    with pytest.raises(WorkerLost, match=r"during trajectory 4\.\.5; .*c\.npz holds the last good state "
                                         r"\(trajectory 4\)"):
        with process_pool(2) as pool:
            meta_train(tiny_l2l(), KilledAt(5), Quadratic(3), config, tmp_path / "c.npz", pool=pool)
    assert load_checkpoint(tmp_path / "c.npz")[2]["trajectory"] == 4
    assert set(multiprocessing.active_children()) - before == set()     # no worker left behind


def test_validation_horizon_scores_longer_runs_than_training(tmp_path):
    """validation_horizon = 12 with horizon 6 (a curriculum's next horizon): the first validation is
    the mean of L_13 over the validation tasks, not L_7; the held-out meta-loss refuses it."""
    from metalstm_np.unroll import unroll
    config = replace(TINY, validation_horizon=12, validate_on="final")
    tasks = draw_validation_tasks(Quadratic(3), config.seed, config.validation_tasks)
    _, history = meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), replace(config, trajectories=2),
                            tmp_path / "c.npz")
    opt = tiny_l2l()
    phi0 = opt.init_phi(np.random.default_rng([config.seed, 0]))
    expected = np.mean([float(unroll(opt, phi0, t, opt.init(phi0, t.theta0), 12)[0][-1]) for t in tasks])
    assert history["validation"][0] == expected
    with pytest.raises(ValueError, match="validation_horizon 8 does not apply"):
        TrainConfig(horizon=4, unroll=4, meta_loss="heldout", validation_horizon=8)


# ------------------------------------------------------------------------------ imitation (Chen et al. 2020)

def test_which_meta_updates_imitate_is_a_function_of_seed_and_trajectory():
    share = replace(TINY, trajectories=4000, validate_every=4, tasks_per_update=4, imitation=0.3)
    chosen = [imitates(share, first) for first in range(0, 4000, 4)]
    assert chosen == [np.random.default_rng([3, 3, first]).random() < 0.3 for first in range(0, 4000, 4)]
    assert 0.25 < np.mean(chosen) < 0.35
    assert chosen != [imitates(replace(share, seed=4), first) for first in range(0, 4000, 4)]
    assert not any(imitates(replace(share, imitation=0.0), first) for first in range(0, 400, 4))
    assert all(imitates(replace(share, imitation=1.0), first) for first in range(0, 400, 4))


def test_an_imitating_meta_update_trains_on_the_imitation_loss_of_adams_steps(tmp_path):
    r"""imitation = 1, one piece per trajectory: the first trajectory's recorded loss is the imitation
    loss of the initial φ along Adam's trajectory at imitation_lr on the same task, and the log says so."""
    config = replace(TINY, trajectories=2, horizon=3, unroll=3, validate_every=1, imitation=1.0, imitation_lr=0.05)
    opt, family, infos = tiny_l2l(), Quadratic(3), []
    meta_train(opt, family, family, config, tmp_path / "c.npz", callback=infos.append)
    phi0 = opt.init_phi(np.random.default_rng([config.seed, 0]))
    task = family.sample(np.random.default_rng([config.seed, 1, 0]))
    thetas = teacher_trajectory(adam, {**adam.init_phi(), "lr": 0.05}, task, 3)
    expected = imitation_loss(opt, phi0, task, thetas)[0]
    history = load_checkpoint(tmp_path / "c.npz")[2]["history"]["meta_loss"]
    np.testing.assert_allclose(history[0], expected, rtol=1e-12)
    assert history[0] != meta_loss(opt, phi0, task, steps=3)[0]
    assert [info["imitation"] for info in infos] == [True, True]


def test_a_run_that_imitates_resumes_bit_for_bit(tmp_path):
    config = replace(TINY, imitation=0.5)
    assert len({imitates(config, first) for first in range(config.trajectories)}) == 2   # both kinds occur
    meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), config, tmp_path / "straight.npz")
    meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), replace(config, trajectories=4), tmp_path / "split.npz")
    meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), config, tmp_path / "split.npz", resume=True)
    assert_same_checkpoint(tmp_path / "straight.npz", tmp_path / "split.npz")
    plain = tmp_path / "plain.npz"
    meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), TINY, plain)
    assert load_checkpoint(plain)[2]["history"] != load_checkpoint(tmp_path / "straight.npz")[2]["history"]


@pytest.mark.parametrize("fields, message", [
    ({"imitation": 1.5}, r"imitation is the share of meta-updates that imitate Adam, in \[0, 1\]; got 1.5"),
    ({"imitation": -0.1}, r"in \[0, 1\]; got -0.1"),
    ({"imitation": 0.3, "imitation_lr": 0.0}, "imitation_lr must be positive, got 0.0"),
    ({"imitation": 0.3, "meta_loss": "heldout", "horizon": 3, "unroll": 3}, "the held-out meta-loss has none"),
])
def test_train_config_refuses_bad_imitation(fields, message):
    with pytest.raises(ValueError, match=message):
        replace(TINY, **fields)


def test_the_pieces_of_an_imitating_trajectory_follow_the_teacher_from_where_the_last_ended():
    r"""Two pieces of 3 steps, linear weights: each piece's loss is imitation_loss on its rows
    θ^A_{t0}..θ^A_{t0+3} of Adam's trajectory with its part of the horizon's weights, the second
    from the first's final state, which ends at the teacher's θ^A_6."""
    config = replace(TINY, horizon=6, unroll=3, weights="linear", imitation=1.0, imitation_lr=0.05)
    opt, family = tiny_l2l(), Quadratic(3)
    phi = opt.init_phi(np.random.default_rng(1))
    task = family.sample(np.random.default_rng([config.seed, 1, 0]))
    thetas = teacher_trajectory(adam, {**adam.init_phi(), "lr": 0.05}, task, 6)
    value0, _, state0 = _run_piece(_Piece(opt, family, config, 0, 0, phi, None, (), True))
    value1, _, state1 = _run_piece(_Piece(opt, family, config, 0, 1, phi, state0, (), True))
    expected0, end0 = imitation_loss(opt, phi, task, thetas[:4], weights=piece_weights(config, 0))
    expected1, _ = imitation_loss(opt, phi, task, thetas[3:], end0, t0=3, weights=piece_weights(config, 3))
    np.testing.assert_allclose([value0, value1], [expected0, expected1], rtol=1e-12)
    np.testing.assert_array_equal(state0["theta"], thetas[3])
    np.testing.assert_array_equal(state1["theta"], thetas[6])
    assert value1 != imitation_loss(opt, phi, task, thetas[3:], t0=3, weights=piece_weights(config, 3))[0]


# ------------------------------------------------------------------------------ the moving average of φ

def test_the_averaged_phi_is_the_bias_corrected_weighted_sum_of_the_iterates():
    r"""_averaged's update from φ̄_0 = 0 (as meta_train starts it), applied for u = 1..6, gives
    (1 − β) Σ_k β^{u−k} φ_k / (1 − β^u) at every u, and φ_1 itself, bit for bit, at u = 1 (weights
    that move near 0 included, where a start at φ_0 would leave a rounding trace of it)."""
    config, beta = replace(TINY, average=0.8), 0.8
    phis = np.random.default_rng(0).normal(size=(6, 5))
    phis[0, :2] = 1e-10, 1e-20
    average = np.zeros(5)
    for u in range(1, 7):
        average = _averaged(average, phis[u - 1], config, u)
        if u == 1:
            np.testing.assert_array_equal(average, phis[0])
        weights = (1 - beta) * beta ** np.arange(u - 1, -1, -1) / (1 - beta ** u)
        np.testing.assert_allclose(average, weights @ phis[:u], rtol=1e-13, atol=1e-15)


def test_averaging_validates_the_average_and_leaves_the_path_of_phi_bit_for_bit(tmp_path):
    r"""average = β: the meta-losses and the checkpoint's φ are those of the run without averaging,
    bit for bit; the checkpoint's φ̄ is the moving average of that run's φ after each meta-update,
    and each validation score, the best φ, best.npz and the φ returned are those of φ̄ at the time."""
    config = replace(TINY, trajectories=8, validate_every=2, tasks_per_update=2, average=0.7)
    opt, family = tiny_l2l(), Quadratic(3)
    path_of_phi = []                                      # φ after each meta-update, without averaging

    def record(info):
        path_of_phi.append(flatten(load_phi(tmp_path / "plain.npz")[1])[0])

    meta_train(opt, family, family, replace(config, average=0.0), tmp_path / "plain.npz", callback=record)
    returned, _ = meta_train(opt, family, family, config, tmp_path / "averaged.npz", best_path=tmp_path / "best.npz")
    _, phi_plain, plain = load_checkpoint(tmp_path / "plain.npz")
    _, phi_averaged, averaged = load_checkpoint(tmp_path / "averaged.npz")
    np.testing.assert_array_equal(flatten(phi_averaged)[0], flatten(phi_plain)[0])
    assert averaged["history"]["meta_loss"] == plain["history"]["meta_loss"]
    assert plain["average"] is None

    u = np.arange(1, 5)
    weights = [(1 - 0.7) * 0.7 ** (k - 1 - np.arange(k)) / (1 - 0.7 ** k) for k in u]
    averages = [w @ np.array(path_of_phi[:k]) for w, k in zip(weights, u)]
    np.testing.assert_allclose(averaged["average"], averages[-1], rtol=1e-12)
    unflatten = flatten(phi_plain)[1]
    tasks = draw_validation_tasks(family, config.seed, config.validation_tasks)
    expected = [validation_score(opt, unflatten(a), tasks, config) for a in averages]
    np.testing.assert_allclose(averaged["history"]["validation"][1:], expected, rtol=1e-10)
    assert averaged["history"]["validation"][1] == plain["history"]["validation"][1]     # φ̄_1 = φ_1
    assert all(a != b for a, b in zip(averaged["history"]["validation"][2:], plain["history"]["validation"][2:]))
    best = int(np.argmin(averaged["history"]["validation"]))
    assert best > 0                                       # the best is an average, not the initial φ
    np.testing.assert_allclose(averaged["best"]["phi"], averages[best - 1], rtol=1e-12)
    np.testing.assert_array_equal(flatten(load_phi(tmp_path / "best.npz")[1])[0], averaged["best"]["phi"])
    np.testing.assert_array_equal(flatten(returned)[0], averaged["best"]["phi"])


def test_a_run_that_averages_resumes_bit_for_bit(tmp_path):
    config = replace(TINY, trajectories=8, tasks_per_update=2, average=0.9)
    meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), config, tmp_path / "straight.npz")
    meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), replace(config, trajectories=4), tmp_path / "split.npz")
    meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), config, tmp_path / "split.npz", resume=True)
    assert_same_checkpoint(tmp_path / "straight.npz", tmp_path / "split.npz")
    with pytest.raises(ValueError, match="made with"):
        meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), replace(config, average=0.5), tmp_path / "split.npz",
                   resume=True)


def test_a_checkpoint_of_an_averaging_run_without_its_average_is_refused(tmp_path):
    meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), replace(TINY, trajectories=2, average=0.9), tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz") as saved:
        arrays = {k: saved[k] for k in saved.files if k != "average"}
    np.savez(tmp_path / "cut.npz", **arrays)
    with pytest.raises(ValueError, match=r"cut.npz: not a complete checkpoint \(no 'average'\)"):
        load_checkpoint(tmp_path / "cut.npz")
    arrays["average"] = np.full_like(arrays["best_phi"], np.nan)
    np.savez(tmp_path / "nan.npz", **arrays)
    with pytest.raises(ValueError, match="nan.npz: average, the moving average of φ, holds non-finite values"):
        load_checkpoint(tmp_path / "nan.npz")


def test_a_checkpoint_written_before_averaging_existed_loads_as_a_run_without_it(tmp_path):
    """No 'average' array and no 'average' in its train_config: average 0, and it resumes."""
    meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), replace(TINY, trajectories=2), tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz") as saved:
        arrays = {k: saved[k] for k in saved.files}
    config = json.loads(str(arrays["train_config"]))
    del config["average"]
    arrays["train_config"] = np.array(json.dumps(config))
    np.savez(tmp_path / "old.npz", **arrays)
    state = load_checkpoint(tmp_path / "old.npz")[2]
    assert state["config"].average == 0.0 and state["average"] is None
    meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), TINY, tmp_path / "old.npz", resume=True)
    meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), TINY, tmp_path / "straight.npz")
    assert_same_checkpoint(tmp_path / "straight.npz", tmp_path / "old.npz")


@pytest.mark.parametrize("beta", [1.0, -0.1, 1.5])
def test_train_config_refuses_an_average_outside_zero_to_one(beta):
    with pytest.raises(ValueError, match=rf"average is the decay β of the moving average of φ, in \[0, 1\); got {beta}"):
        replace(TINY, average=beta)
