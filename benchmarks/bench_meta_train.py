r"""Meta-training throughput with one and with two worker processes, and backward against forward.

Part 1. `meta_train.meta_train` on the MNIST stage-1 configuration (`l2l()` with two LSTM layers of
20 in float32; the 1 × 20 sigmoid MLP, minibatches of 128; horizon 100, unroll 20) with B = 2 tasks
per meta-update, once in `pool.process_pool(1)` and once in `pool.process_pool(2)` (W = 1, 2),
timed in this one run. It reports the seconds of each meta-update (a piece of every task of the
batch: callback seconds / pieces), meta-updates per second, trajectories per hour (from the wall
clock of the training loop; the validation score is replaced by one that costs nothing, and
the first meta-update, in which each worker loads MNIST, is left out of both), the peak resident memory of the largest worker
(getrusage of the finished children, so the W = 2 row is the largest worker of both runs), and
checks that the two runs end with the same φ, bit for bit. Target: W = 2 at least 1.8 times the
trajectories per hour of W = 1; each worker under 2 GB.

Part 2. One 20-step meta-gradient (`unroll.meta_value_and_grad`) against its forward unroll
(`unroll.meta_loss`) on the same learner and optimizer, here in this process, best of `--repeats`.
Target: at most 2.5 times.

BLAS runs on one thread in this process too (set before numpy is imported, unless the caller set
one of the thread variables), as in the workers.

    PYTHONPATH=. python benchmarks/bench_meta_train.py --json bench_meta_train.json   # ~4 minutes
"""
import os

THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
if not any(v in os.environ for v in THREAD_VARS):
    os.environ.update({v: "1" for v in THREAD_VARS})

import argparse  # noqa: E402  (after the thread setting on purpose)
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy
from autograd.misc.flatten import flatten

from metalstm_np.evaluation import Score
from metalstm_np.l2l import l2l
from metalstm_np.learners import MLP
from metalstm_np.meta_train import TrainConfig, load_checkpoint, meta_train
from metalstm_np.pool import process_pool
from metalstm_np.unroll import meta_loss, meta_value_and_grad

TARGET_SPEEDUP = 1.8
TARGET_BYTES = 2 * 2**30
TARGET_RATIO = 2.5


def _no_validation(optimizer, phi, task, config):
    """A validation score that costs nothing, so that the timings are of meta-training alone."""
    return 0.0


def throughput(workers, config, folder):
    """(per-update seconds list, trajectories per hour, final flat φ) of one run with W workers."""
    updates = []
    with process_pool(workers) as pool:
        loop_start = {}

        def record(info):
            if info["trajectory"] > config.tasks_per_update:     # not the first: MNIST loads then
                loop_start.setdefault("t", time.perf_counter() - info["seconds"])
                updates.append(info["seconds"] / (config.horizon // config.unroll))
            loop_start["end"] = time.perf_counter()

        meta_train(l2l(dtype="float32"), MLP(), MLP(split="validation"), config,
                   Path(folder) / f"w{workers}.npz", callback=record, pool=pool,
                   score=Score(_no_validation))
    hours = (loop_start["end"] - loop_start["t"]) / 3600
    return updates, (config.trajectories - config.tasks_per_update) / hours, flatten(load_checkpoint(Path(folder) / f"w{workers}.npz")[1])[0]


def backward_ratio(repeats):
    optimizer, family = l2l(dtype="float32"), MLP()
    phi = optimizer.init_phi(numpy.random.default_rng(1))
    task = family.sample(numpy.random.default_rng(0))
    forward, gradient = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        meta_loss(optimizer, phi, task, steps=20)
        forward.append(time.perf_counter() - start)
        start = time.perf_counter()
        meta_value_and_grad(optimizer, phi, task, steps=20)
        gradient.append(time.perf_counter() - start)
    return min(forward), min(gradient)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trajectories", type=int, default=8, help="per run, a multiple of 2 (8)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    config = TrainConfig(trajectories=args.trajectories, horizon=100, unroll=20, tasks_per_update=2,
                         validate_every=args.trajectories, validation_tasks=1, seed=5)
    out = {"config": {"tasks_per_update": 2, "trajectories": args.trajectories, "horizon": 100, "unroll": 20,
                      "optimizer": "l2l 2x20 float32", "learner": "MLP 1x20 sigmoid, batch 128"}, "runs": {}}
    print(f"Part 1: meta-training, B = 2, {args.trajectories} trajectories of 100 steps per run, unroll 20")
    print(" W  s/meta-update (median)  meta-updates/s  trajectories/h  largest worker RSS")
    phis = {}
    with tempfile.TemporaryDirectory() as folder:
        for workers in (1, 2):
            updates, per_hour, phis[workers] = throughput(workers, config, folder)
            rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024     # bytes (Linux: KiB)
            median = float(numpy.median(updates))
            out["runs"][workers] = {"seconds_per_update_median": median, "updates_per_second": 1 / median,
                                    "trajectories_per_hour": per_hour, "largest_worker_rss_bytes": rss}
            print(f"{workers:2d}  {median:22.3f}  {1 / median:14.3f}  {per_hour:14.0f}  {rss / 2**20:14.0f} MiB")
    speedup = out["runs"][2]["trajectories_per_hour"] / out["runs"][1]["trajectories_per_hour"]
    same = bool(numpy.array_equal(phis[1], phis[2]))
    rss_ok = out["runs"][2]["largest_worker_rss_bytes"] < TARGET_BYTES
    out.update(speedup=speedup, same_phi=same)
    print(f"W = 2 / W = 1 trajectories per hour: {speedup:.2f} (target ≥ {TARGET_SPEEDUP}: "
          f"{'met' if speedup >= TARGET_SPEEDUP else 'missed'}); each worker under 2 GB: "
          f"{'met' if rss_ok else 'missed'}; the same φ with W = 1 and 2: {same}")

    fwd, grad = backward_ratio(args.repeats)
    out["backward"] = {"forward_seconds": fwd, "gradient_seconds": grad, "ratio": grad / fwd}
    print(f"\nPart 2: one 20-step unroll, best of {args.repeats}: forward {fwd:.3f} s, meta-gradient "
          f"{grad:.3f} s, ratio {grad / fwd:.2f} (target ≤ {TARGET_RATIO}: "
          f"{'met' if grad / fwd <= TARGET_RATIO else 'missed'})")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
