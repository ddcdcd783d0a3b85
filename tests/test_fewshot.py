r"""Tests for metalstm_np.fewshot, fewshot_baselines and gates (Ravi & Larochelle 2017, rotated MNIST):

* the 40 (digit, rotation) classes and their three disjoint splits, and which images each draws from;
* an episode's sizes, labels (0..N−1, each K resp. Q times, shuffled per episode), images (the
  right digit, turned by numpy.rot90, no image twice), losses, and its determinism;
* the methods: nearest neighbour, fine-tuning, Baseline-finetune's θ^0, the fixed-gate LSTM with
  learned θ^0 as SGD from c_0 bit for bit, the 95% interval, validation error, the gate trace.
"""
from dataclasses import replace

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.special import log_softmax

from conftest import mlp_task, trajectory
from metalstm_np.data import load_mnist
from metalstm_np.fewshot import BENCHMARKS, CLASSES, DIGITS, IMAGES, Episodes, classes, rotate, sample_episodes, twins
from metalstm_np.fewshot_baselines import (accuracies, finetune, mean_ci95, nearest_neighbour,
                                           pretrain_classifier, pretrained_theta0, tune_finetune_lr,
                                           validation_error)
from metalstm_np.gates import accuracies_and_gates, gate_trace, layer_parts, pool_gate_traces
from metalstm_np.learners import MLP
from metalstm_np.meta_lstm import gradient_descent_lstm, init_phi_with_step, meta_lstm
from metalstm_np.meta_train import TrainConfig, load_checkpoint, meta_train
from metalstm_np.optimizers import adam, sgd
from metalstm_np.unroll import unroll

SMALL = dict(hidden=(8,))       # a small learner keeps every test fast


def episode(seed=0, **kwargs):
    return Episodes(**{**SMALL, **kwargs}).sample(np.random.default_rng(seed))


# ---------------------------------------------------------------------------------- classes, splits

def test_classes_are_40_digit_rotation_pairs_in_three_disjoint_splits():
    assert DIGITS == {"train": (0, 1, 2, 3), "validation": (4, 5), "test": (6, 7, 8, 9)}
    assert {split: len(c) for split, c in CLASSES.items()} == {"train": 16, "validation": 8, "test": 16}
    every = [c for split in CLASSES for c in CLASSES[split]]
    assert sorted(every) == [(d, k) for d in range(10) for k in range(4)]
    for split, classes in CLASSES.items():
        assert {d for d, _ in classes} == set(DIGITS[split])
    assert IMAGES == {"train": "train", "validation": "train", "test": "test"}


@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_episode_images_are_of_their_class_from_their_split(split):
    """Each image is the source image of the class's digit, from the split's MNIST file, turned by
    the class's rotation with numpy.rot90 on its 28 x 28 view; no source image appears twice."""
    images, labels = load_mnist(IMAGES[split])
    for seed in range(3):
        ep = episode(seed, n_way=8, k_shot=2, query=3, split=split)
        assert {int(d) for d in ep.classes[:, 0]} <= set(DIGITS[split])
        index = np.concatenate([ep.support_index, ep.query_index])
        assert len(set(index.tolist())) == len(index)
        for X, y, idx in ((ep.support_x, ep.support_y, ep.support_index),
                          (ep.query_x, ep.query_y, ep.query_index)):
            digit, k = ep.classes[y, 0], ep.classes[y, 1]
            np.testing.assert_array_equal(labels[idx], digit)
            for i in range(len(y)):
                expected = np.rot90(images[idx[i]].reshape(28, 28), k[i]).ravel()
                np.testing.assert_array_equal(X[i], expected)


def test_rotate_turns_a_known_image_counter_clockwise():
    image = np.zeros((28, 28))
    image[0, 27] = 1.0                         # top-right corner
    image[5, 27] = 0.5
    corners = {0: (0, 27), 1: (0, 0), 2: (27, 0), 3: (27, 27)}
    for k, (r, c) in corners.items():
        turned = rotate(image.ravel()[None], k).reshape(28, 28)
        assert turned[r, c] == 1.0 and turned.sum() == 1.5
    assert rotate(image.ravel()[None], 1).reshape(28, 28)[0, 5] == 0.5     # (i, j) -> (27 − j, i)
    stack = np.random.default_rng(0).random((3, 784))
    np.testing.assert_array_equal(rotate(stack, 4), stack)
    np.testing.assert_array_equal(rotate(stack, 3)[2], np.rot90(stack[2].reshape(28, 28), 3).ravel())


# ----------------------------------------------------------------------------------------- episodes

@pytest.mark.parametrize("n_way,k_shot", [(5, 1), (5, 5), (3, 2)])
def test_episode_sizes_and_labels(n_way, k_shot):
    family = Episodes(n_way=n_way, k_shot=k_shot, **SMALL)
    ep = family.sample(np.random.default_rng(1))
    assert ep.support_x.shape == (n_way * k_shot, 784) and ep.query_x.shape == (n_way * 15, 784)
    np.testing.assert_array_equal(ep.support_y, np.repeat(np.arange(n_way), k_shot))
    np.testing.assert_array_equal(ep.query_y, np.repeat(np.arange(n_way), 15))
    np.testing.assert_array_equal(np.bincount(ep.query_y), [15] * n_way)
    assert len({tuple(c) for c in ep.classes}) == n_way
    assert ep.theta0.shape == (family.n_params,) == (784 * 8 + 8 + 8 * n_way + n_way,)
    assert 0.008 < ep.theta0.std() < 0.012                       # θ^0 ~ N(0, 0.01²)
    assert ep.support_x.min() >= 0.0 and ep.support_x.max() <= 1.0


def test_labels_are_shuffled_per_episode():
    """The class labelled 0 varies between episodes, and the labels do not follow the class order."""
    classes = [episode(seed).classes for seed in range(20)]
    assert len({tuple(c[0]) for c in classes}) > 5
    assert sum(np.all(np.diff(c[:, 0] * 4 + c[:, 1]) > 0) for c in classes) < 5


def test_same_seed_same_episode_different_seed_different():
    a, b, c = episode(3, k_shot=2), episode(3, k_shot=2), episode(4, k_shot=2)
    for name in ("theta0", "support_x", "query_x", "classes", "support_index", "query_index"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.loss(a.theta0, 1) == b.loss(b.theta0, 1)
    assert not np.array_equal(a.support_index, c.support_index)
    assert not np.array_equal(a.theta0, c.theta0)
    family = Episodes(**SMALL)
    first = sample_episodes(family, 3, seed=9)
    np.testing.assert_array_equal(sample_episodes(family, 5, seed=9)[2].query_x, first[2].query_x)


def test_losses_are_cross_entropy_on_support_and_query():
    """An independent reading: ReLU MLP in plain numpy, scipy's log_softmax."""
    ep = episode(2, k_shot=3)
    theta = np.random.default_rng(0).standard_normal(len(ep.theta0)) * 0.1
    W1, b1 = theta[:784 * 8].reshape(784, 8), theta[784 * 8:784 * 8 + 8]
    W2, b2 = theta[784 * 8 + 8:784 * 8 + 8 + 40].reshape(8, 5), theta[-5:]

    def reference(X, y):
        logits = np.maximum(X @ W1 + b1, 0) @ W2 + b2
        return -np.mean(log_softmax(logits, axis=1)[np.arange(len(y)), y]), np.mean(logits.argmax(1) == y)

    support, query = reference(ep.support_x, ep.support_y), reference(ep.query_x, ep.query_y)
    for t in (1, 7):
        assert ep.loss(theta, t) == pytest.approx(support[0], rel=1e-12)
    assert ep.heldout_loss(theta) == pytest.approx(query[0], rel=1e-12)
    assert ep.accuracy(theta) == query[1] and ep.accuracy(theta, on="support") == support[1]


@pytest.mark.parametrize("bad,value", [(dict(n_way=1), "1"), (dict(n_way=17), "17"),
                                       (dict(n_way=9, split="validation"), "9"), (dict(k_shot=0), "0"),
                                       (dict(k_shot=2.5), "2.5"), (dict(query=-3), "-3"),
                                       (dict(split="val"), "'val'"), (dict(hidden=(0,)), "0"),
                                       (dict(activation="softplus"), "softplus")])
def test_bad_values_raise_naming_the_value(bad, value):
    with pytest.raises(ValueError, match=value):
        Episodes(**bad)


def test_more_shots_than_a_digit_has_images_is_refused_at_once():
    """Test digit 6 has 958 images; four classes of it (rot90) can meet in a 5-way episode, each
    with K + 15 images: K = 224 fits (956), K = 225 (960) is refused naming the numbers, before
    an episode that needs them is drawn."""
    Episodes(split="test", k_shot=224)
    with pytest.raises(ValueError, match="k_shot 225 \\+ query 15 images for each of up to 4 classes of one "
                                         "digit is more than the 958 images of the rarest digit of split 'test'"):
        Episodes(split="test", k_shot=225)


# ------------------------------------------------------------------------------------------ methods

def test_nearest_neighbour():
    ep = episode(5, k_shot=2)
    same = replace(ep, query_x=ep.support_x, query_y=ep.support_y)
    np.testing.assert_array_equal(nearest_neighbour([same]), [1.0])
    eps = [episode(s, k_shot=2) for s in range(3)]
    reference = [np.mean(e.support_y[cdist(e.query_x, e.support_x).argmin(1)] == e.query_y) for e in eps]
    np.testing.assert_allclose(nearest_neighbour(eps), reference, rtol=0, atol=1e-15)


def test_mean_ci95_by_hand():
    mean, half = mean_ci95([0.2, 0.4, 0.6, 0.8])
    assert mean == pytest.approx(0.5, abs=1e-15)
    # sample variance ((0.3² + 0.1² + 0.1² + 0.3²) / 3), n = 4
    assert half == pytest.approx(1.96 * np.sqrt(0.2 / 3) / 2, rel=1e-12)
    assert mean_ci95([0.7])[0] == 0.7 and np.isnan(mean_ci95([0.7])[1])
    with pytest.raises(ValueError):
        mean_ci95([])


def test_fine_tuning_lowers_the_support_loss():
    ep = episode(6, k_shot=5)
    losses, state = unroll(adam, {**adam.init_phi(), "lr": 0.01}, ep, adam.init(None, ep.theta0), 8)
    assert losses[-1] < 0.7 * losses[0] and np.all(np.diff(losses) < 0)
    assert ep.accuracy(adam.params(state), on="support") > ep.accuracy(ep.theta0, on="support") + 0.3
    eps = [ep, episode(7)]
    acc = finetune(adam, 0.01, eps, 8)
    np.testing.assert_array_equal(acc, [ep.accuracy(adam.params(state)),
                                        accuracies(adam, {**adam.init_phi(), "lr": 0.01}, eps[1:], 8)[0]])
    best, scores = tune_finetune_lr(sgd, eps, 4, lrs=[1e-6, 0.3])
    assert best == 0.3 and scores[0.3] == np.mean(finetune(sgd, 0.3, eps, 4)) > scores[1e-6]


def test_gradient_descent_lstm_with_learned_theta0_is_sgd_from_c0_bit_for_bit():
    """The fixed-gate ablation (first-order MAML's inner loop) on an episode."""
    ep = episode(8, k_shot=2)
    gd = gradient_descent_lstm(z_f=1.0, z_i=0.3, learn_theta0=True, n_params=len(ep.theta0))
    phi = gd.init_phi(np.random.default_rng(1))
    thetas, losses, _ = trajectory(gd, phi, ep, 6)
    np.testing.assert_array_equal(thetas[0], phi["c_0"])
    sgd_start = sgd.init(None, phi["c_0"])
    sgd_thetas, sgd_losses, _ = trajectory(sgd, {"lr": 0.3, "weight_decay": 0.0}, ep, 6, state=sgd_start)
    assert np.any(thetas[-1] != thetas[0])
    np.testing.assert_array_equal(thetas, sgd_thetas)
    np.testing.assert_array_equal(losses, sgd_losses)
    np.testing.assert_array_equal(accuracies(gd, phi, [ep], 6),
                                  accuracies(sgd, {"lr": 0.3, "weight_decay": 0.0}, [ep], 6,
                                             theta0=lambda e: phi["c_0"]))


def test_baseline_finetune_starts_from_pretrained_hidden_layers():
    features = pretrain_classifier(np.random.default_rng(0), CLASSES["train"], 5, hidden=(8,), batch=8)
    again = pretrain_classifier(np.random.default_rng(0), CLASSES["train"], 5, hidden=(8,), batch=8)
    np.testing.assert_array_equal(features, again)
    assert features.shape == (784 * 8 + 8,)
    ep = episode(9)
    theta0 = pretrained_theta0(features, ep)
    np.testing.assert_array_equal(theta0[:len(features)], features)
    np.testing.assert_array_equal(theta0[len(features):], ep.theta0[len(features):])
    assert finetune(sgd, 0.1, [ep], 0, features=features)[0] == ep.accuracy(theta0)
    with pytest.raises(ValueError, match="do not fit"):
        pretrained_theta0(features[:-1], ep)


def test_validation_error_is_one_minus_mean_accuracy():
    eps = [episode(s) for s in range(2)]
    opt = gradient_descent_lstm(z_f=1.0, z_i=0.3)
    config = TrainConfig(horizon=5, unroll=5, meta_loss="heldout")
    expected = 1.0 - np.mean(accuracies(opt, opt.init_phi(), eps, 5))
    assert validation_error(opt, opt.init_phi(), eps, config) == expected


def test_meta_training_on_episodes_moves_c0(tmp_path):
    family = Episodes(**SMALL)
    opt = meta_lstm(hidden=4, learn_theta0=True, n_params=family.n_params)
    config = TrainConfig(trajectories=2, horizon=3, unroll=3, meta_loss="heldout", validate_every=2,
                         validation_tasks=1, meta_lr=0.01)
    phi0 = opt.init_phi(np.random.default_rng([config.seed, 0]))
    meta_train(opt, family, replace(family, split="validation"), config, tmp_path / "c.npz")
    _, phi, state = load_checkpoint(tmp_path / "c.npz")
    assert np.max(np.abs(phi["c_0"] - phi0["c_0"])) > 1e-3
    assert np.all(np.isfinite(state["history"]["meta_loss"]))


# --------------------------------------------------------------------------------------- gate trace

def test_gate_trace_per_layer_weights_and_biases():
    ep = episode(10, k_shot=2)
    opt = meta_lstm(hidden=4, learn_theta0=True, n_params=len(ep.theta0))
    phi = opt.init_phi(np.random.default_rng(2))
    trace = gate_trace(opt, phi, ep, 3)
    assert trace["parts"] == ["W1", "b1", "W2", "b2"]
    assert [s.stop - s.start for _, s in layer_parts(ep.shapes)] == [784 * 8, 8, 40, 5]
    for name in ("z_f", "z_i"):
        assert trace[f"{name}_mean"].shape == trace[f"{name}_std"].shape == (3, 4)
        assert np.all((trace[f"{name}_mean"] > 0) & (trace[f"{name}_mean"] < 1))
        assert np.all(trace[f"{name}_std"] >= 0)
    assert np.all(trace["z_f_mean"] > 0.9) and np.all(trace["z_i_mean"] < 0.1)    # the paper's init
    # the gates of update 2 on the biases of layer 1, read from the state directly
    state = opt.init(phi, ep.theta0)
    for t in range(2):
        _, state = unroll(opt, phi, ep, state, 1, t0=t)
    z_f = np.asarray(state["z_f"], float)[784 * 8:784 * 8 + 8]
    assert trace["z_f_mean"][1, 1] == pytest.approx(z_f.mean(), rel=1e-12)
    assert trace["z_f_std"][1, 1] == pytest.approx(z_f.std(), rel=1e-9)
    other = gate_trace(opt, phi, episode(11, k_shot=2), 3)
    pooled = pool_gate_traces([trace, other])
    np.testing.assert_allclose(pooled["z_i_mean"], (trace["z_i_mean"] + other["z_i_mean"]) / 2, rtol=1e-12)
    assert pooled["z_i_std"][2, 0] >= min(trace["z_i_std"][2, 0], other["z_i_std"][2, 0])
    with pytest.raises(ValueError, match="gd_lstm"):
        gate_trace(gradient_descent_lstm(), {"z_f": 1.0, "z_i": 0.1}, ep, 2)


def test_accuracies_and_gates_are_accuracies_and_the_pooled_gate_traces_exactly():
    r"""Scoring and tracing in one run gives the same numbers as doing them apart."""
    eps = [episode(20 + i, k_shot=1) for i in range(3)]
    opt = meta_lstm(hidden=4, learn_theta0=True, n_params=len(eps[0].theta0))
    phi = init_phi_with_step(opt, np.random.default_rng(5), 0.5)
    accs, trace = accuracies_and_gates(opt, phi, eps, 4, gate_episodes=2)
    np.testing.assert_array_equal(accs, accuracies(opt, phi, eps, 4))
    apart = pool_gate_traces([gate_trace(opt, phi, ep, 4) for ep in eps[:2]])
    assert trace["parts"] == apart["parts"]
    for key in ("z_f_mean", "z_f_std", "z_i_mean", "z_i_std"):
        np.testing.assert_array_equal(trace[key], apart[key])
    for bad in (0, 4):
        with pytest.raises(ValueError, match=f"gate_episodes = {bad}"):
            accuracies_and_gates(opt, phi, eps, 4, gate_episodes=bad)


def test_unroll_observe_sees_every_updated_state():
    ep = episode(23, k_shot=1)
    opt = meta_lstm(hidden=4)
    phi = opt.init_phi(np.random.default_rng(6))
    seen = []
    _, final = unroll(opt, phi, ep, opt.init(phi, ep.theta0), 3, observe=lambda k, st: seen.append((k, st)))
    assert [k for k, _ in seen] == [1, 2, 3] and seen[-1][1] is final
    state = opt.init(phi, ep.theta0)
    for k in range(2):
        _, state = unroll(opt, phi, ep, state, 1, t0=k)
    np.testing.assert_array_equal(seen[1][1]["theta"], state["theta"])


def test_gate_trace_on_the_mnist_mlp_task_takes_its_shapes():
    task = mlp_task(hidden=(3,), seed=0)
    opt = meta_lstm(hidden=4)
    phi = opt.init_phi(np.random.default_rng(3))
    trace = gate_trace(opt, phi, task, 2, shapes=MLP(hidden=(3,)).shapes)
    assert trace["z_i_mean"].shape == (2, 4)
    with pytest.raises(ValueError, match="do not fit"):
        gate_trace(opt, phi, task, 2, shapes=MLP(hidden=(4,)).shapes)


def test_init_phi_with_step_starts_the_meta_lstm_near_sgd():
    ep = episode(12, k_shot=2)
    opt = meta_lstm(hidden=4, dtype="float32")
    phi = init_phi_with_step(opt, np.random.default_rng(4), 0.3)
    plain = opt.init_phi(np.random.default_rng(4))
    assert phi["b_I"].dtype == np.float32 and phi["b_I"] == np.float32(np.log(0.3 / 0.7))
    assert all(np.array_equal(phi[k], plain[k]) for k in ("W_I", "W_F", "b_F"))
    trace = gate_trace(opt, phi, ep, 3)
    np.testing.assert_allclose(trace["z_i_mean"], 0.3, atol=0.01)
    for bad, value in (((gradient_descent_lstm(), np.random.default_rng(0), 0.3), "gd_lstm"),
                       ((opt, np.random.default_rng(0), 1.5), "1.5")):
        with pytest.raises(ValueError, match=value):
            init_phi_with_step(*bad)


# ------------------------------------------------------------------- the 22.5-degree benchmark

def test_the_rot22_5_benchmark_has_64_meta_train_classes_and_rot90_is_unchanged():
    assert {split: len(classes(split, 16)) for split in DIGITS} == {"train": 64, "validation": 32, "test": 64}
    assert {split: classes(split) for split in DIGITS} == CLASSES == {split: classes(split, 4) for split in DIGITS}
    assert BENCHMARKS == {"rot90": {"rotations": 4, "separate_twins": False},
                          "rot22.5": {"rotations": 16, "separate_twins": True}}
    old = Episodes(n_way=5, k_shot=1, split="test")       # the defaults are the rot90 benchmark's
    assert old == Episodes(n_way=5, k_shot=1, split="test", **BENCHMARKS["rot90"])


def test_rotations_by_22_5_degrees_turn_the_same_way_and_multiples_of_90_are_exact():
    stack = np.random.default_rng(1).random((2, 784))
    for k in range(4):                             # k·90° = (4k)·22.5°: numpy's rot90, bit for bit
        np.testing.assert_array_equal(rotate(stack, 4 * k, 16), rotate(stack, k))
    from scipy.ndimage import rotate as turn       # the interpolated path at 90° agrees with rot90
    np.testing.assert_allclose(turn(stack.reshape(2, 28, 28), 90.0, axes=(2, 1), reshape=False, order=1)
                               .reshape(2, 784), rotate(stack, 1), atol=1e-12)
    image = np.zeros((28, 28))
    image[4:14, 13:15] = 1.0                       # a bar from the centre upwards
    turned = rotate(image.ravel()[None], 2, 16).reshape(28, 28)        # 45° counter-clockwise
    rows, cols = np.nonzero(turned > 0.5)
    assert rows.mean() < 13.5 and cols.mean() < 13.5                   # now up and to the left
    assert abs(turned.sum() - image.sum()) < 0.1 * image.sum()         # bilinear: mass about kept


def test_twins_are_the_pictures_that_turn_into_each_other_and_no_rot22_5_episode_holds_two():
    assert twins((6, 0), (9, 8), 16) and twins((9, 3), (6, 11), 16) and twins((8, 1), (8, 9), 16)
    assert twins((0, 15), (0, 7), 16) and twins((1, 2), (1, 0), 4)
    assert not twins((6, 0), (9, 7), 16) and not twins((7, 0), (7, 8), 16) and not twins((6, 0), (6, 8), 16)
    family = Episodes(n_way=5, k_shot=1, split="test", **BENCHMARKS["rot22.5"])
    for r in range(40):
        chosen = [tuple(c) for c in family.sample(np.random.default_rng([4, r])).classes]
        assert len(set(chosen)) == 5
        assert not any(twins(a, b, 16) for i, a in enumerate(chosen) for b in chosen[i + 1:]), chosen
    images, _ = load_mnist("test")
    ep = family.sample(np.random.default_rng(5))
    for j, (d, k) in enumerate(ep.classes):          # query images are label-major, 15 per class
        np.testing.assert_array_equal(ep.query_x[15 * j], rotate(images[ep.query_index[15 * j]][None], k, 16)[0])
