r"""The tuned baselines scored the way meta-training scores φ: `python -m metalstm_np.experiments.validation_baselines`.

Meta-training keeps the φ with the lowest meta-validation score: the mean training loss over a
100-step trajectory on 8 fixed tasks of the MNIST validation split (meta_train.validation_score,
seed 0, as `metalstm train` uses). This prints the same score for the four tuned baselines, so the
`best` column of a training log can be read against them.
"""
import numpy

from ..learners import MLP
from ..meta_train import TrainConfig, validation_score
from ..serialization import make_optimizer
from .common import BASELINES, load_tuned


def main(seed=0):
    config = TrainConfig(seed=seed)
    tasks = [MLP(split="validation").sample(numpy.random.default_rng([seed, 2, j]))
             for j in range(config.validation_tasks)]
    tuned = load_tuned()["mnist"]
    for name in BASELINES:
        optimizer = make_optimizer(name)
        score = validation_score(optimizer, {**optimizer.init_phi(), "lr": tuned[name]}, tasks, config)
        print(f"{name:8s} lr {tuned[name]:.3g}  meta-validation score {score:.4f}")


if __name__ == "__main__":
    main()
