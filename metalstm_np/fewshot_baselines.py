r"""Few-shot baselines and scoring on the rotated-MNIST episodes of fewshot (Ravi & Larochelle 2017).

Methods scored by query accuracy after T steps on the support set (`accuracies`), one function for
every optimizer: hand-designed fine-tuning from the episode's random θ^0 or from pre-trained hidden
layers (`pretrain_classifier`, `pretrained_theta0`: the paper's "Baseline-finetune"), the
meta-LSTM with and without learned θ^0, and the fixed-gate LSTM z^f = 1, z^i = η with learned θ^0
(first-order MAML). `nearest_neighbour` needs no learner.
meta_lstm.init_phi_with_step starts the meta-LSTM as gradient descent with a useful step η.

`mean_ci95` summarises per-episode accuracies as a mean and its 95% confidence interval;
`validation_error` (1 − mean query accuracy at θ^T) is a meta_train score for early stopping on
meta-validation accuracy.
"""
import functools

import numpy
from autograd import value_and_grad

from .evaluation import Score
from .fewshot import _pools, _positive_int, rotate
from .learners import mlp_logits, mlp_shapes, n_params, softmax_cross_entropy
from .optimizers import adam
from .unroll import unroll

__all__ = ["nearest_neighbour", "accuracies", "finetune", "tune_finetune_lr", "pretrain_classifier",
           "pretrained_theta0", "mean_ci95", "query_accuracy", "validation_error"]


def nearest_neighbour(episodes):
    r"""Per-episode query accuracy of 1-nearest-neighbour on pixels: each query image takes the label
    of the support image closest in Euclidean distance (ties: the first in support order)."""
    out = []
    for ep in episodes:
        d2 = (numpy.sum(ep.query_x**2, 1)[:, None] - 2.0 * ep.query_x @ ep.support_x.T
              + numpy.sum(ep.support_x**2, 1)[None, :])                      # (N·Q, N·K)
        out.append(float(numpy.mean(ep.support_y[numpy.argmin(d2, axis=1)] == ep.query_y)))
    return numpy.array(out)


def accuracies(optimizer, phi, episodes, steps, theta0=None):
    r"""Per-episode query accuracy at θ^T, after T = `steps` updates of `optimizer` with φ on the
    support loss, started from init(φ, θ^0) (unroll.unroll: exactly the run meta-training sees).

    θ^0 is the episode's own random draw, or theta0(episode) if given; an optimizer with learned θ^0
    (φ holds c_0) ignores it. This one function scores every method but nearest neighbour.
    """
    out = []
    for ep in episodes:
        start = ep.theta0 if theta0 is None else theta0(ep)
        _, state = unroll(optimizer, phi, ep, optimizer.init(phi, start), steps)
        out.append(ep.accuracy(optimizer.params(state)))
    return numpy.array(out)


def finetune(optimizer, lr, episodes, steps, features=None):
    r"""Fine-tuning with a hand-designed optimizer (default hyperparameters, learning rate `lr`) for
    T steps: from the episode's random θ^0, or, given pre-trained `features` (pretrain_classifier),
    from those hidden layers and the episode's own fresh output layer (Baseline-finetune)."""
    phi = {**optimizer.init_phi(), "lr": lr}
    start = None if features is None else functools.partial(pretrained_theta0, features)
    with numpy.errstate(all="ignore"):      # a diverging learning rate scores, it does not warn
        return accuracies(optimizer, phi, episodes, steps, theta0=start)


def tune_finetune_lr(optimizer, episodes, steps, lrs=None, features=None):
    r"""(best lr, {lr: mean query accuracy}) of `finetune` on `episodes` (draw them from the
    validation split); lrs default to half-decades 10^-4 .. 10^0.5; ties go to the smaller lr."""
    lrs = [10.0 ** (k / 2) for k in range(-8, 2)] if lrs is None else lrs
    scores = {lr: float(numpy.mean(finetune(optimizer, lr, episodes, steps, features))) for lr in lrs}
    return max(sorted(scores), key=lambda lr: scores[lr]), scores


def pretrain_classifier(rng, classes, steps, hidden=(32,), activation="relu", batch=64, lr=1e-3,
                        images="train", rotations=4):
    r"""Train an MLP 784 -> hidden -> len(classes) as an ordinary classifier of `classes` (e.g.
    CLASSES["train"], 16 classes; a class's k counts turns by 360°/rotations) with Adam, and
    return its hidden layers' parameters: the flat
    θ of every layer but the output one, in learners.unflatten's order.

    θ^0 ~ N(0, 0.01²); each of the `steps` minibatches is `batch` images, each of a uniformly drawn
    class and a uniformly drawn image of its digit (from load_mnist(images)), turned by its rotation.
    """
    _positive_int("steps", steps)
    _positive_int("batch", batch)
    shapes = mlp_shapes(784, tuple(hidden), len(classes))
    sizes = [n_params([layer]) for layer in shapes]
    n_hidden = sum(sizes[:-1])
    source, pools = _pools(images)
    digits = numpy.array([d for d, _ in classes])
    turns = numpy.array([k for _, k in classes])
    eye = numpy.eye(len(classes))

    def batch_loss(theta, X, y):
        return softmax_cross_entropy(mlp_logits(theta, X, shapes, activation), eye[y])

    state = adam.init(None, 0.01 * rng.standard_normal(sum(sizes)))
    phi = {**adam.init_phi(), "lr": lr}
    for _ in range(steps):
        y = rng.integers(len(classes), size=batch)                                     # (B,)
        index = numpy.array([pools[d][rng.integers(len(pools[d]))] for d in digits[y]])
        X = numpy.empty((batch, 784))
        for k in range(rotations):
            mask = turns[y] == k
            if mask.any():
                X[mask] = rotate(source[index[mask]], k, rotations)
        loss, grad = value_and_grad(batch_loss)(adam.params(state), X, y)
        state = adam.update(phi, state, grad, loss)
    return adam.params(state)[:n_hidden]


def pretrained_theta0(features, episode):
    r"""θ^0 for Baseline-finetune: the pre-trained hidden layers followed by the episode's own
    output layer (its fresh N(0, 0.01²) draw, the same as every random-θ^0 method starts from)."""
    n_out = n_params(episode.shapes[-1:])
    if len(features) + n_out != len(episode.theta0):
        raise ValueError(f"{len(features)} pre-trained hidden parameters do not fit the episode's learner "
                         f"with {len(episode.theta0)} parameters ({n_out} in its output layer)")
    return numpy.concatenate([features, episode.theta0[len(episode.theta0) - n_out:]])


def mean_ci95(accs):
    r"""(mean, half-width of its 95% confidence interval) = (mean, 1.96 · s / √n), s the sample
    standard deviation (ddof = 1); the half-width is nan for a single value."""
    accs = numpy.asarray(accs, dtype=float)
    if accs.ndim != 1 or len(accs) == 0:
        raise ValueError(f"expected a non-empty list of accuracies, got shape {accs.shape}")
    if len(accs) == 1:
        return float(accs[0]), float("nan")
    return float(accs.mean()), float(1.96 * accs.std(ddof=1) / numpy.sqrt(len(accs)))


def query_accuracy(optimizer, phi, episode, config):
    r"""The query accuracy of one episode at θ^T, T = config.horizon (`accuracies` of one episode)."""
    return float(accuracies(optimizer, phi, [episode], config.horizon)[0])


def _one_minus_mean(accuracies):
    return 1.0 - float(numpy.mean(accuracies))


# 1 − mean query accuracy at θ^T over the tasks: lower is better, a meta_train score for early
# stopping on meta-validation accuracy; called like meta_train.validation_score.
validation_error = Score(query_accuracy, _one_minus_mean)
