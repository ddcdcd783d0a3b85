r"""Few-shot learning on rotated MNIST digits (Ravi & Larochelle 2017): episodes, baselines, gates.

Ravi & Larochelle used Mini-ImageNet and a CNN learner; neither can be had here, so this is a
stand-in built the way Omniglot is usually augmented: MNIST digits and their rotations, an MLP.

Classes. A class is a (digit, rotation) pair, the image turned by k·90° (k = 0, 1, 2, 3, numpy's
`rot90`, counter-clockwise): 40 classes, in three disjoint splits

    "train"       digits 0–3, 16 classes, from the 60,000 MNIST training images
    "validation"  digits 4–5,  8 classes, from the 60,000 MNIST training images
    "test"        digits 6–9, 16 classes, from the 10,000 MNIST test images only.

Episodes. An N-way K-shot episode draws N of its split's classes and, per class, K support and
`query` (15) query images; the order of the N draws is the label assignment, so labels are shuffled
per episode. No source image appears twice in an episode (classes of the same digit draw their
images jointly, without replacement). The learner is a small MLP on the 784 pixels with N outputs,
θ^0 ~ N(0, 0.01²), and an episode is a learners.Task:

    loss(θ, t)       = cross-entropy on the whole support set (the same for every t)
    heldout_loss(θ)  = cross-entropy on the query set             (Ravi & Larochelle's meta-loss)

so meta_train.meta_train trains any optimizer on `Episodes(...)` with meta_loss="heldout", and
meta_lstm(learn_theta0=True, n_params=family.n_params) learns θ^0 as well. The episode drawn from
a generator is a function of the generator only: same seed, same episode.

Methods scored by query accuracy after T steps on the support set (`accuracies`), one function for
every optimizer: hand-designed fine-tuning from the episode's random θ^0 or from pre-trained hidden
layers (`pretrain_classifier`, `pretrained_theta0`: the paper's "Baseline-finetune"), the
meta-LSTM with and without learned θ^0, and the fixed-gate LSTM z^f = 1, z^i = η with learned θ^0
(first-order MAML). `nearest_neighbour` needs no learner. `gate_trace` records the meta-LSTM's
z^f and z^i per layer's weights and biases (the paper's figure of the gate values);
`accuracies_and_gates` scores and traces in the same runs.
meta_lstm.init_phi_with_step starts the meta-LSTM as gradient descent with a useful step η.

Default learner: one hidden layer of 32 ReLU units, 784 -> 32 -> N; 25,285 parameters at N = 5.
"""
import functools
from dataclasses import dataclass

import numpy
from autograd import value_and_grad

from .data import load_mnist
from .evaluation import Score, task_rng
from .learners import (ACTIVATIONS, SPLITS, Task, mlp_logits, mlp_shapes, n_params,
                       softmax_cross_entropy)
from .optimizers import adam
from .unroll import unroll

__all__ = ["DIGITS", "IMAGES", "CLASSES", "QUERY", "rotate", "Episodes", "EpisodeTask",
           "sample_episodes", "nearest_neighbour", "accuracies", "finetune", "tune_finetune_lr",
           "pretrain_classifier", "pretrained_theta0", "mean_ci95",
           "query_accuracy", "validation_error", "layer_parts", "gate_trace", "traced_run", "accuracies_and_gates",
           "pool_gate_traces"]

DIGITS = {"train": (0, 1, 2, 3), "validation": (4, 5), "test": (6, 7, 8, 9)}
IMAGES = {"train": "train", "validation": "train", "test": "test"}    # which MNIST file
CLASSES = {split: tuple((d, k) for d in digits for k in range(4)) for split, digits in DIGITS.items()}
QUERY = 15                     # query images per class (Ravi & Larochelle 2017)


def rotate(images, k):
    """Images (B, 784) turned by k·90° counter-clockwise, each as numpy.rot90 of its 28 x 28 view."""
    return numpy.rot90(numpy.reshape(images, (-1, 28, 28)), k, axes=(1, 2)).reshape(-1, 784)


@functools.lru_cache(maxsize=None)
def _pools(mnist_split):
    """(images (N, 784), {digit: indices of its images}) of the MNIST file `mnist_split`."""
    images, labels = load_mnist(mnist_split)
    return images, {d: numpy.flatnonzero(labels == d) for d in range(10)}


def _draw(rng, classes, counts, mnist_split):
    r"""For classes[j], counts[j] distinct images of its digit turned by its rotation: (X, index) per
    class, index into load_mnist(mnist_split). Images are drawn per digit, jointly and without
    replacement, for the classes of that digit in the order given."""
    images, pools = _pools(mnist_split)
    out = [None] * len(classes)
    for d in sorted({d for d, _ in classes}):
        mine = [j for j, (dj, _) in enumerate(classes) if dj == d]
        chosen = rng.choice(pools[d], size=sum(counts[j] for j in mine), replace=False)
        start = 0
        for j in mine:
            index = chosen[start:start + counts[j]]
            out[j] = (rotate(images[index], classes[j][1]), index)
            start += counts[j]
    return out


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class EpisodeTask(Task):
    r"""One N-way K-shot episode: a Task (loss = support cross-entropy, heldout_loss = query
    cross-entropy) that also keeps its images, so that it can be scored by accuracy."""

    support_x: numpy.ndarray   # (N·K, 784) support images, label-major: K of label 0, then label 1 ...
    support_y: numpy.ndarray   # (N·K,) labels 0..N−1
    query_x: numpy.ndarray     # (N·Q, 784) query images, label-major
    query_y: numpy.ndarray     # (N·Q,)
    classes: numpy.ndarray     # (N, 2): row j = (digit, rotation k) of the class labelled j
    support_index: numpy.ndarray   # (N·K,) index of each support image in load_mnist(IMAGES[split])
    query_index: numpy.ndarray     # (N·Q,)
    shapes: tuple              # the learner MLP's [(W shape, b shape), ...]
    activation: str            # its hidden activation

    def logits(self, theta, X):
        """The learner's logits on images X (B, 784): (B, N)."""
        return mlp_logits(theta, X, self.shapes, self.activation)

    def accuracy(self, theta, on="query"):
        """Fraction of the query (or support, on="support") images that θ classifies correctly."""
        X, y = (self.query_x, self.query_y) if on == "query" else (self.support_x, self.support_y)
        return float(numpy.mean(numpy.argmax(self.logits(theta, X), axis=1) == y))


@dataclass(frozen=True)
class Episodes:
    r"""N-way K-shot episodes of one split; `sample(rng) -> EpisodeTask`. See the module docstring."""

    n_way: int = 5             # N: classes per episode (2 .. the split's number of classes)
    k_shot: int = 1            # K: support images per class
    query: int = QUERY         # query images per class
    split: str = "train"       # "train" (digits 0–3), "validation" (4–5) or "test" (6–9)
    hidden: tuple = (32,)      # the learner's hidden layer sizes
    activation: str = "relu"   # its hidden activation

    def __post_init__(self):
        if self.split not in SPLITS:
            raise ValueError(f"unknown split {self.split!r}; expected one of {SPLITS}")
        _positive_int("n_way", self.n_way)
        _positive_int("k_shot", self.k_shot)
        _positive_int("query", self.query)
        if not 2 <= self.n_way <= len(CLASSES[self.split]):
            raise ValueError(f"n_way {self.n_way!r} is out of range: split {self.split!r} has "
                             f"{len(CLASSES[self.split])} classes and an episode needs at least 2")
        for h in self.hidden:
            _positive_int("hidden size", h)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; expected one of {sorted(ACTIVATIONS)}")

    @property
    def shapes(self):
        return mlp_shapes(784, tuple(self.hidden), self.n_way)

    @property
    def n_params(self):
        return n_params(self.shapes)

    def sample(self, rng):
        N, K, Q = self.n_way, self.k_shot, self.query
        all_classes = CLASSES[self.split]
        chosen = rng.choice(len(all_classes), size=N, replace=False)     # label j <- class chosen[j]
        classes = [all_classes[c] for c in chosen]
        drawn = _draw(rng, classes, [K + Q] * N, IMAGES[self.split])
        theta0 = 0.01 * rng.standard_normal(self.n_params)
        support_x = numpy.concatenate([X[:K] for X, _ in drawn])             # (N·K, 784)
        query_x = numpy.concatenate([X[K:] for X, _ in drawn])               # (N·Q, 784)
        support_y, query_y = numpy.repeat(numpy.arange(N), K), numpy.repeat(numpy.arange(N), Q)
        support_onehot, query_onehot = numpy.eye(N)[support_y], numpy.eye(N)[query_y]
        shapes, activation = self.shapes, self.activation

        def loss(theta, t):
            return softmax_cross_entropy(mlp_logits(theta, support_x, shapes, activation), support_onehot)

        def heldout_loss(theta):
            return softmax_cross_entropy(mlp_logits(theta, query_x, shapes, activation), query_onehot)

        return EpisodeTask(theta0=theta0, loss=loss, heldout_loss=heldout_loss,
                           support_x=support_x, support_y=support_y, query_x=query_x, query_y=query_y,
                           classes=numpy.array(classes),
                           support_index=numpy.concatenate([i[:K] for _, i in drawn]),
                           query_index=numpy.concatenate([i[K:] for _, i in drawn]),
                           shapes=shapes, activation=activation)


def sample_episodes(family, count, seed):
    """[family.sample(task_rng(seed, r)) for r < count]: the same episodes for any count."""
    return [family.sample(task_rng(seed, r)) for r in range(count)]


# --------------------------------------------------------------------------------------- methods

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
                        images="train"):
    r"""Train an MLP 784 -> hidden -> len(classes) as an ordinary classifier of `classes` (e.g.
    CLASSES["train"], 16 classes) with Adam, and return its hidden layers' parameters: the flat
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
    rotations = numpy.array([k for _, k in classes])
    eye = numpy.eye(len(classes))

    def batch_loss(theta, X, y):
        return softmax_cross_entropy(mlp_logits(theta, X, shapes, activation), eye[y])

    state = adam.init(None, 0.01 * rng.standard_normal(sum(sizes)))
    phi = {**adam.init_phi(), "lr": lr}
    for _ in range(steps):
        y = rng.integers(len(classes), size=batch)                                     # (B,)
        index = numpy.array([pools[d][rng.integers(len(pools[d]))] for d in digits[y]])
        X = numpy.empty((batch, 784))
        for k in range(4):
            mask = rotations[y] == k
            X[mask] = rotate(source[index[mask]], k)
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


# ------------------------------------------------------------------------------------ gate trace

def layer_parts(shapes):
    r"""[(name, slice of θ)] for each layer's weights and biases: "W1", "b1", "W2", "b2", ...
    in learners.unflatten's order."""
    parts, start = [], 0
    for layer, (w_shape, b_shape) in enumerate(shapes, start=1):
        n_w, n_b = w_shape[0] * w_shape[1], b_shape[0]
        parts += [(f"W{layer}", slice(start, start + n_w)),
                  (f"b{layer}", slice(start + n_w, start + n_w + n_b))]
        start += n_w + n_b
    return parts


def gate_trace(optimizer, phi, task, steps, shapes=None):
    r"""The meta-LSTM's gates z^f_t, z^i_t at each update t = 1..T on `task`, per part of θ.

    Returns {"parts": ["W1", "b1", ...], "z_f_mean", "z_f_std", "z_i_mean", "z_i_std": (T, parts)
    arrays, mean and standard deviation over the part's coordinates}. shapes: the learner's layer
    shapes (default: task.shapes, which episodes have; for a learners.MLP task pass MLP(...).shapes).
    Only for an optimizer whose state holds "z_f" and "z_i" (meta_lstm). The run is unroll's.
    """
    return traced_run(optimizer, phi, task, steps, shapes)[0]


def traced_run(optimizer, phi, task, steps, shapes=None):
    r"""(gate_trace(...), the final state) of one unroll from init(φ, task.theta0): the gates are
    recorded along the run (unroll's observe), so the run scores and traces at once."""
    shapes = task.shapes if shapes is None else shapes
    parts = layer_parts(shapes)
    state = optimizer.init(phi, task.theta0)
    if not {"z_f", "z_i"} <= set(state):
        raise ValueError(f"optimizer {optimizer.name!r} has no gates in its state; "
                         "gate_trace needs a meta_lstm")
    if parts[-1][1].stop != len(optimizer.params(state)):
        raise ValueError(f"layer shapes with {parts[-1][1].stop} parameters do not fit θ with "
                         f"{len(optimizer.params(state))}")
    gates = {"z_f": [], "z_i": []}

    def record(k, state):
        for name in gates:
            gates[name].append(numpy.asarray(state[name], dtype=float))

    _, state = unroll(optimizer, phi, task, state, steps, observe=record)
    out = {"parts": [name for name, _ in parts]}
    for name, values in gates.items():
        z = numpy.array(values).reshape(steps, -1)                                   # (T, n)
        out[f"{name}_mean"] = numpy.stack([z[:, s].mean(axis=1) for _, s in parts], axis=1)
        out[f"{name}_std"] = numpy.stack([z[:, s].std(axis=1) for _, s in parts], axis=1)
    return out, state


def accuracies_and_gates(optimizer, phi, episodes, steps, gate_episodes):
    r"""(accuracies(optimizer, φ, episodes, steps), the pooled gate trace of the first
    `gate_episodes` episodes), from one run per episode: the same numbers as accuracies and
    pool_gate_traces of gate_trace, without running the traced episodes twice."""
    if not 0 < gate_episodes <= len(episodes):
        raise ValueError(f"gate_episodes = {gate_episodes!r}: expected 1 to {len(episodes)} (the episodes)")
    accs, traces = [], []
    for i, ep in enumerate(episodes):
        if i < gate_episodes:
            trace, state = traced_run(optimizer, phi, ep, steps)
            traces.append(trace)
        else:
            _, state = unroll(optimizer, phi, ep, optimizer.init(phi, ep.theta0), steps)
        accs.append(ep.accuracy(optimizer.params(state)))
    return numpy.array(accs), pool_gate_traces(traces)


def pool_gate_traces(traces):
    r"""gate_trace results of several episodes (same learner shapes) pooled into one: mean and
    standard deviation over the coordinates of all episodes together,
    mean = avg_e mean_e,  std² = avg_e (std_e² + mean_e²) − mean²."""
    out = {"parts": traces[0]["parts"]}
    for name in ("z_f", "z_i"):
        means = numpy.array([tr[f"{name}_mean"] for tr in traces])                  # (E, T, parts)
        stds = numpy.array([tr[f"{name}_std"] for tr in traces])
        mean = means.mean(axis=0)
        out[f"{name}_mean"] = mean
        out[f"{name}_std"] = numpy.sqrt(numpy.maximum((stds**2 + means**2).mean(axis=0) - mean**2, 0.0))
    return out
