r"""Few-shot learning on rotated MNIST digits (Ravi & Larochelle 2017): the episodes, a task family.

Ravi & Larochelle used Mini-ImageNet and a CNN learner; neither can be had here, so this is a
stand-in built the way Omniglot is usually augmented: MNIST digits and their rotations, an MLP.

Classes. A class is a (digit, rotation) pair, the digit's image turned counter-clockwise by k
times 360°/R, k = 0 .. R − 1, in three disjoint splits of the digits

    "train"       digits 0–3, from the 60,000 MNIST training images
    "validation"  digits 4–5, from the 60,000 MNIST training images
    "test"        digits 6–9, from the 10,000 MNIST test images only.

Two benchmarks (`BENCHMARKS`):

    "rot90"    R = 4 (numpy's `rot90`): 16 / 8 / 16 classes, the way Omniglot is usually augmented;
    "rot22.5"  R = 16, multiples of 22.5° (multiples of 90° exactly by `rot90`, the others by
               bilinear interpolation, scipy.ndimage.rotate, the corners filled with 0):
               64 / 32 / 64 classes, as many meta-train classes as Mini-ImageNet's 64.

Some classes are the same picture: a 6 turned by 180° is a 9, and a 0, a 1 or an 8 turned by 180°
is (nearly) itself. With `separate_twins` (on in "rot22.5") no episode holds two such classes, so
that no two labels of an episode are the same picture; "rot90" keeps its original episodes, where
they may meet (`twins` names the pairs). Classes of neighbouring rotations of one digit differ by
22.5° in "rot22.5", so two labels of an episode can be one digit at nearby angles.

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

Default learner: one hidden layer of 32 ReLU units, 784 -> 32 -> N; 25,285 parameters at N = 5.

The methods scored on these episodes (the baselines, query accuracy) are in fewshot_baselines,
the meta-LSTM's gate traces in gates.
"""
import functools
from dataclasses import dataclass

import numpy

from .data import load_mnist
from .evaluation import task_rng
from .learners import (ACTIVATIONS, SPLITS, Task, mlp_logits, mlp_shapes, n_params,
                       softmax_cross_entropy)

__all__ = ["DIGITS", "IMAGES", "CLASSES", "QUERY", "BENCHMARKS", "classes", "twins", "rotate", "Episodes",
           "EpisodeTask", "sample_episodes"]

DIGITS = {"train": (0, 1, 2, 3), "validation": (4, 5), "test": (6, 7, 8, 9)}
IMAGES = {"train": "train", "validation": "train", "test": "test"}    # which MNIST file
QUERY = 15                     # query images per class (Ravi & Larochelle 2017)
BENCHMARKS = {"rot90": {"rotations": 4, "separate_twins": False},
              "rot22.5": {"rotations": 16, "separate_twins": True}}
SYMMETRIC = (0, 1, 8)          # digits that look (nearly) the same turned by 180°
TURNED = {6: 9, 9: 6}          # digits that turn into each other by 180°


def classes(split, rotations=4):
    """The classes (digit, k) of a split, k = 0 .. rotations − 1."""
    return tuple((d, k) for d in DIGITS[split] for k in range(rotations))


CLASSES = {split: classes(split) for split in DIGITS}      # the "rot90" benchmark's


def twins(a, b, rotations):
    """Whether classes a = (digit, k) and b are the same picture: 180° apart and either the same
    digit of SYMMETRIC or a 6 and a 9."""
    (da, ka), (db, kb) = a, b
    if rotations % 2 or (ka - kb) % rotations != rotations // 2:
        return False
    return (da == db and da in SYMMETRIC) or TURNED.get(da) == db


def rotate(images, k, rotations=4):
    """Images (B, 784) turned counter-clockwise by k·360°/rotations: by numpy.rot90 of their 28 × 28
    view when that is a multiple of 90°, else by bilinear interpolation about the centre
    (scipy.ndimage.rotate, the same orientation, corners filled with 0)."""
    square = numpy.reshape(images, (-1, 28, 28))
    if (4 * k) % rotations == 0:
        return numpy.rot90(square, 4 * k // rotations, axes=(1, 2)).reshape(-1, 784)
    from scipy.ndimage import rotate as turn
    return turn(square, 360.0 * k / rotations, axes=(2, 1), reshape=False, order=1, mode="constant",
                cval=0.0).reshape(-1, 784)


@functools.lru_cache(maxsize=None)
def _pools(mnist_split):
    """(images (N, 784), {digit: indices of its images}) of the MNIST file `mnist_split`."""
    images, labels = load_mnist(mnist_split)
    return images, {d: numpy.flatnonzero(labels == d) for d in range(10)}


def _draw(rng, classes, counts, mnist_split, rotations=4):
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
            out[j] = (rotate(images[index], classes[j][1], rotations), index)
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
    rotations: int = 4         # R: rotations per digit, by 360°/R ("rot90": 4, "rot22.5": 16)
    separate_twins: bool = False   # no two classes that are the same picture in one episode

    def __post_init__(self):
        if self.split not in SPLITS:
            raise ValueError(f"unknown split {self.split!r}; expected one of {SPLITS}")
        _positive_int("n_way", self.n_way)
        _positive_int("k_shot", self.k_shot)
        _positive_int("query", self.query)
        _positive_int("rotations", self.rotations)
        if not 2 <= self.n_way <= len(self.classes):
            raise ValueError(f"n_way {self.n_way!r} is out of range: split {self.split!r} has "
                             f"{len(self.classes)} classes and an episode needs at least 2")
        for h in self.hidden:
            _positive_int("hidden size", h)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; expected one of {sorted(ACTIVATIONS)}")
        # up to min(N, R) classes of one digit share its images (drawn jointly, without replacement)
        fewest = min(len(_pools(IMAGES[self.split])[1][d]) for d in DIGITS[self.split])
        classes_of_a_digit = min(self.n_way, self.rotations)
        if classes_of_a_digit * (self.k_shot + self.query) > fewest:
            raise ValueError(f"k_shot {self.k_shot} + query {self.query} images for each of up to "
                             f"{classes_of_a_digit} classes of one digit is more than the {fewest} "
                             f"images of the rarest digit of split {self.split!r}")

    @property
    def classes(self):
        return classes(self.split, self.rotations)

    @property
    def shapes(self):
        return mlp_shapes(784, tuple(self.hidden), self.n_way)

    @property
    def n_params(self):
        return n_params(self.shapes)

    def sample(self, rng):
        N, K, Q = self.n_way, self.k_shot, self.query
        all_classes = self.classes
        if not self.separate_twins:
            chosen = rng.choice(len(all_classes), size=N, replace=False)     # label j <- class chosen[j]
        else:                              # one at a time, among those that are no chosen one's twin
            chosen = []
            for _ in range(N):
                allowed = [c for c in range(len(all_classes)) if c not in chosen and not any(
                    twins(all_classes[c], all_classes[o], self.rotations) for o in chosen)]
                chosen.append(allowed[rng.integers(len(allowed))])
        classes = [all_classes[c] for c in chosen]
        drawn = _draw(rng, classes, [K + Q] * N, IMAGES[self.split], self.rotations)
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
