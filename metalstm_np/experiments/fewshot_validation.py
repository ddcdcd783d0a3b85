r"""Few-shot weights scored on more meta-validation episodes than training used:
`python -m metalstm_np.experiments.fewshot_validation --shots K [--episodes 200] FILE.npz ...`

`metalstm fewshot train` keeps the φ with the lowest error on 50 meta-validation episodes (digits
4–5; episode j drawn from default_rng([0, 2, j])). Choosing the best of many checkpoints on 50
episodes favours a lucky one; this prints each file's error 1 − accuracy
(fewshot_baselines.validation_error) on the first `--episodes` of the same sequence, the 50
included, so the choice can be checked without looking at the meta-test episodes.
"""
import argparse

from .. import fewshot, fewshot_baselines
from ..meta_train import TrainConfig, draw_validation_tasks
from ..serialization import load_phi
from .e5_fewshot import FULL


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, required=True)
    parser.add_argument("--steps", type=int, default=None, help="T (default 12 for 1-shot, 8 otherwise)")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0, help="the training run's seed (0)")
    parser.add_argument("--benchmark", choices=list(fewshot.BENCHMARKS), default=FULL.benchmark,
                        help=f"the episodes' classes (default {FULL.benchmark}, E5's)")
    parser.add_argument("weights", nargs="+")
    args = parser.parse_args(argv)
    steps = args.steps or (12 if args.shots == 1 else 8)
    family = fewshot.Episodes(k_shot=args.shots, split="validation", **fewshot.BENCHMARKS[args.benchmark])
    tasks = draw_validation_tasks(family, args.seed, args.episodes)
    for path in args.weights:
        optimizer, phi, _ = load_phi(path)
        error = fewshot_baselines.validation_error(optimizer, phi, tasks, TrainConfig(horizon=steps, unroll=steps))
        print(f"{path}  {args.shots}-shot, T = {steps}: validation error {error:.4f} on {args.episodes} "
              f"{args.benchmark} episodes")


if __name__ == "__main__":
    main()
