r"""Learners on a flat parameter vector θ, and the task families that sample them.

A Task is one learning problem:

    theta0           θ^0, shape (n,)
    loss(θ, t)       L_t: the training loss at step t (for the MLP, on the t-th minibatch)
    heldout_loss(θ)  the loss on data the optimizer never sees (Ravi & Larochelle's meta-loss)

A family samples fresh tasks: `family.sample(rng) -> Task` draws a new θ^0 and, for the MLP, a new
minibatch order (for the quadratic, a new W and y). Sampling is the only random thing; a task's
minibatch for step t is a pure function of the task and t, so an interrupted unroll can be resumed
at any step and replays the same minibatches.

The learner's parameters are flattened once: θ is one vector, and `unflatten` cuts it back into
weight matrices with the coordinates in a fixed order (layer by layer, W then b).
"""
import functools
import numbers
from dataclasses import dataclass
from typing import Callable

import autograd.numpy as np
import numpy
from autograd.scipy.special import expit
from autograd.tracer import getval

from .data import load_mnist

__all__ = ["Task", "Quadratic", "MLP", "RandomlyScaled", "PlusSquare", "Mixture", "ACTIVATIONS", "mlp_shapes", "n_params",
           "unflatten", "layout", "log_softmax"]


@dataclass(frozen=True)
class Task:
    """One learning problem on a flat θ; see the module docstring."""

    theta0: numpy.ndarray      # (n,) initial parameters θ^0
    loss: Callable             # (θ, t) -> L_t on the step-t training minibatch
    heldout_loss: Callable     # θ -> loss on held-out data


@dataclass(frozen=True)
class Quadratic:
    r"""Random quadratics f(θ) = ||Wθ − y||², W and y standard normal (Andrychowicz et al. 2016, sec. 3.1).

    θ^0 ~ N(0, 0.01²) as in the paper's code. The loss does not depend on t, and held-out loss = loss.

    `count` = K > 1 puts K independent quadratics side by side in one θ of K · dim coordinates,
    f(θ) = Σ_k ||W_k θ_k − y_k||²: each coordinate's gradient is the one it has in its own
    quadratic, so a coordinatewise optimizer runs exactly as on K separate tasks, at a small part of
    their cost (benchmarks/bench_quadratics.py), and the meta-gradient of one such task is the sum
    of theirs: K times a batch of K tasks' mean. This is the official code's batch of 128
    quadratics, summed where it averages, so that the gradients keep the scale of one quadratic.
    For meta-training.

    `entries` = "uniform" draws W and y uniform on [0, 1) instead: the official code's quadratics
    (its problems.quadratic uses TensorFlow's default uniform initializer), which are not the paper's.
    experiments/official_quadratics.py uses them to compare with the numbers reported for that code.
    """

    dim: int = 10
    count: int = 1
    entries: str = "normal"

    def __post_init__(self):
        if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1
                   for v in (self.dim, self.count)):
            raise ValueError(f"a quadratic's dim ({self.dim!r}) and count ({self.count!r}) must be positive integers")
        if self.entries not in ("normal", "uniform"):
            raise ValueError(f"a quadratic's entries must be 'normal' or 'uniform', got {self.entries!r}")

    def __repr__(self):          # count and entries only where they are not the defaults: older
        #                          checkpoints name the family without them
        return (f"Quadratic(dim={self.dim}" + (f", count={self.count}" if self.count != 1 else "")
                + (f", entries={self.entries!r}" if self.entries != "normal" else "") + ")")

    @property
    def n_params(self):
        return self.dim * self.count

    def sample(self, rng):
        draw = rng.standard_normal if self.entries == "normal" else rng.random
        W = draw((self.count, self.dim, self.dim))      # (K, dim, dim)
        y = draw((self.count, self.dim))                 # (K, dim)
        theta0 = 0.01 * rng.standard_normal(self.count * self.dim)

        def f(theta):
            r = np.einsum("kij,kj->ki", W, np.reshape(theta, (self.count, self.dim))) - y
            return np.sum(r * r)

        if self.count == 1:          # the same draws; one quadratic's f as it always was, bit for bit
            W1, y1 = W[0], y[0]

            def f(theta):
                r = W1 @ theta - y1
                return np.dot(r, r)

        return Task(theta0=theta0, loss=lambda theta, t: f(theta), heldout_loss=f)


ACTIVATIONS = {"sigmoid": expit, "relu": lambda a: np.maximum(a, 0.0), "tanh": np.tanh}


def mlp_shapes(n_in, hidden, n_out):
    """[(W shape, b shape), ...] for layers n_in -> hidden[0] -> ... -> n_out."""
    sizes = [n_in, *hidden, n_out]
    return [((a, b), (b,)) for a, b in zip(sizes[:-1], sizes[1:])]


def n_params(shapes):
    """Number of coordinates of θ for layers of these (W shape, b shape)."""
    return sum(w[0] * w[1] + b[0] for w, b in shapes)


@functools.lru_cache(maxsize=None)
def _layout(shapes):
    parts, start = [], 0
    for layer, (w_shape, b_shape) in enumerate(shapes, start=1):
        for name, shape in ((f"W{layer}", w_shape), (f"b{layer}", b_shape)):
            size = int(numpy.prod(shape))
            parts.append((name, slice(start, start + size), tuple(shape)))
            start += size
    return tuple(parts)


def layout(shapes):
    """θ's layout, computed once per learner: [(name, slice of θ, shape)] for each layer's weights
    and biases, "W1", "b1", "W2", ... in θ's order (layer by layer, W then b)."""
    return _layout(tuple((tuple(w), tuple(b)) for w, b in shapes))


def unflatten(theta, shapes):
    """Cut the flat θ into [(W, b), ...] following `shapes` (`layout`).

    One np.split rather than a slice per array: autograd's gradient of a split is one
    concatenation, where every slice's gradient scatters into a full-size array of zeros
    (np.add.at), a noticeable part of the time of a small learner's gradient. Same numbers."""
    parts = layout(shapes)
    pieces = np.split(theta, [part.stop for _, part, _ in parts[:-1]])
    return [(np.reshape(pieces[2 * k], parts[2 * k][2]), pieces[2 * k + 1]) for k in range(len(parts) // 2)]


def mlp_logits(theta, X, shapes, activation):
    """Logits of the MLP with parameters θ on inputs X of shape (B, n_in); shape (B, n_out)."""
    act = ACTIVATIONS[activation]
    layers = unflatten(theta, shapes)
    a = X
    for W, b in layers[:-1]:
        a = act(a @ W + b)
    W, b = layers[-1]
    return a @ W + b


def log_softmax(logits):
    r"""log softmax over axis 1: a − m − log Σ_j exp(a_j − m), with m the row maximum.

    m only keeps exp from overflowing; the result does not depend on it, so it is taken as a
    constant (getval) and autograd differentiates just the rest, whose gradient is exact. (scipy's
    logsumexp, which autograd wraps, spends more time checking its arguments than computing on a
    few-shot learner's small batches.)"""
    shifted = logits - numpy.max(getval(logits), axis=1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))


def softmax_cross_entropy(logits, onehot):
    r"""Mean over the batch of −log softmax(logits)_y; onehot has shape (B, classes)."""
    return -np.sum(onehot * log_softmax(logits)) / logits.shape[0]


SPLITS = ("train", "validation", "test")
HELDOUT = 1000      # images of a task's split kept for its held-out loss


def mnist_split(split):
    """(images (N, 784) in [0, 1], labels (N,)) for "train" (training images 0–49,999),
    "validation" (training images 50,000–59,999) or "test" (the 10,000 test images)."""
    if split not in SPLITS:
        raise ValueError(f"unknown MNIST split {split!r}; expected one of {SPLITS}")
    if split == "test":
        return load_mnist("test")
    X, y = load_mnist("train")
    part = slice(0, 50_000) if split == "train" else slice(50_000, 60_000)
    return X[part], y[part]


@dataclass(frozen=True)
class MLP:
    r"""MLP classifiers on MNIST: 784 -> hidden -> 10, softmax cross-entropy.

    Each task draws θ^0 ~ N(0, 0.01²) (weights and biases, as in the paper's code) and its own
    minibatch order: the step-t minibatch is `batch` images of `split` drawn without replacement
    by a generator seeded with (task seed, t). The held-out loss is on 1,000 images of the same
    split that the task sets aside and never puts in a training minibatch. One hidden layer of 20 sigmoid units has 15,910 parameters.
    """

    hidden: tuple = (20,)
    activation: str = "sigmoid"
    batch: int = 128
    split: str = "train"

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; expected one of {sorted(ACTIVATIONS)}")
        whole = lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1
        if not whole(self.batch):
            raise ValueError(f"an MLP's batch ({self.batch!r}) must be a positive integer")
        if not isinstance(self.hidden, (tuple, list)) or not all(whole(h) for h in self.hidden):
            raise ValueError(f"an MLP's hidden ({self.hidden!r}) must be a tuple of positive integer layer sizes, "
                             f"like (20,)")
        n_images = len(mnist_split(self.split)[1])    # also validates the split name
        if self.batch > n_images - HELDOUT:
            raise ValueError(f"batch {self.batch} is larger than the {n_images - HELDOUT} images of split "
                             f"{self.split!r} left after the {HELDOUT} held-out ones")

    @property
    def shapes(self):
        return mlp_shapes(784, tuple(self.hidden), 10)

    @property
    def n_params(self):
        return n_params(self.shapes)

    def loss_on(self, theta, X, labels):
        """Mean cross-entropy of θ on images X with integer labels."""
        return softmax_cross_entropy(mlp_logits(theta, X, self.shapes, self.activation),
                                     numpy.eye(10)[labels])

    def accuracy_on(self, theta, X, labels):
        """Fraction of images X classified correctly by θ."""
        return float(numpy.mean(numpy.argmax(mlp_logits(theta, X, self.shapes, self.activation), 1) == labels))

    def sample(self, rng):
        X, labels = mnist_split(self.split)
        onehot = numpy.eye(10)[labels]                                   # (N, 10)
        task_seed = int(rng.integers(2**63))
        theta0 = 0.01 * rng.standard_normal(self.n_params)
        # 1,000 held-out images are set aside once per task and never appear in a training minibatch
        order = numpy.random.default_rng([task_seed, 2**32]).permutation(len(X))
        heldout, train = order[:HELDOUT], order[HELDOUT:]

        def loss(theta, t):
            idx = train[numpy.random.default_rng([task_seed, t]).choice(len(train), self.batch, replace=False)]
            logits = mlp_logits(theta, X[idx], self.shapes, self.activation)
            return softmax_cross_entropy(logits, onehot[idx])

        def heldout_loss(theta):
            return softmax_cross_entropy(mlp_logits(theta, X[heldout], self.shapes, self.activation),
                                         onehot[heldout])

        return Task(theta0=theta0, loss=loss, heldout_loss=heldout_loss)


@dataclass(frozen=True)
class RandomlyScaled:
    r"""Tasks of `family` with every coordinate rescaled at random: f̃(θ) = f(c ⊙ θ), θ̃^0 = θ^0 / c,
    log c_k ~ U(−r, r) drawn per task (Lv, Jiang & Li 2017, "random scaling"). The same
    learner seen in other units: an optimizer meta-trained on such tasks cannot rely on the scale
    of the gradients it was trained on. For meta-training only; evaluation uses the plain family."""

    family: object
    r: float = 3.0                 # the authors' code: 3 on MNIST, 1 on the convex square

    def __post_init__(self):
        if not (numpy.isfinite(self.r) and self.r > 0):
            raise ValueError(f"random scaling range r must be positive, got {self.r!r}")

    def sample(self, rng):
        task = self.family.sample(rng)
        c = numpy.exp(rng.uniform(-self.r, self.r, size=task.theta0.shape))
        return Task(theta0=task.theta0 / c, loss=lambda theta, t: task.loss(c * theta, t),
                    heldout_loss=lambda theta: task.heldout_loss(c * theta))


@dataclass(frozen=True)
class Mixture:
    r"""Tasks from several families: each task's family is drawn uniformly at random, then the task
    from it with the same generator. For meta-validation on other architectures than the one
    meta-training sees (`metalstm train --validation-families`): early stopping then keeps the φ
    that does best across them, while meta-training still sees only its own family."""

    families: tuple

    def __post_init__(self):
        if not isinstance(self.families, tuple) or len(self.families) < 2:
            raise ValueError(f"a mixture takes a tuple of at least two families, got {self.families!r}")
        for family in self.families:
            if not callable(getattr(family, "sample", None)):
                raise ValueError(f"{family!r} is not a task family (it has no sample(rng))")

    def sample(self, rng):
        return self.families[int(rng.integers(len(self.families)))].sample(rng)


@dataclass(frozen=True)
class PlusSquare:
    r"""Tasks of `family` combined with a random convex function of `dim` more coordinates
    (Lv, Jiang & Li 2017): θ = [θ_f, x], f̃(θ) = f(θ_f) + mean_k min((c_k x_k − a_k)², 10),
    a_k ~ U(−1, 1), log c_k ~ U(−r, r), x^0 = 0 (the authors' `Square`, randomly scaled with r = 1).
    Its coordinates keep asking the optimizer for plain, well-conditioned descent, which the
    learner's own loss may stop asking for late in a trajectory. For meta-training only."""

    family: object
    dim: int = 20
    r: float = 1.0

    def __post_init__(self):
        if int(self.dim) != self.dim or self.dim < 1:
            raise ValueError(f"the square's dimension must be a positive integer, got {self.dim!r}")
        if not (numpy.isfinite(self.r) and self.r > 0):
            raise ValueError(f"the square's scaling range r must be positive, got {self.r!r}")

    def sample(self, rng):
        task = self.family.sample(rng)
        a = rng.uniform(-1.0, 1.0, size=self.dim)
        c = numpy.exp(rng.uniform(-self.r, self.r, size=self.dim))
        n = task.theta0.shape[0]

        def square(x):
            return np.mean(np.minimum((c * x - a) ** 2, 10.0))

        return Task(theta0=numpy.concatenate([task.theta0, numpy.zeros(self.dim)]),
                    loss=lambda theta, t: task.loss(theta[:n], t) + square(theta[n:]),
                    heldout_loss=lambda theta: task.heldout_loss(theta[:n]) + square(theta[n:]))
