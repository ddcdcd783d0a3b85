r"""What a batch of quadratics side by side costs: one meta-gradient of E1's optimizer on K quadratics.

`unroll.meta_value_and_grad` of one 20-step piece (E1's l2l: two LSTM layers of 20, raw gradient,
output scale 1, float64) on one task of `learners.Quadratic(count=K)` for K = 1, 8, 32, 128, 512,
here in this process, best of `--repeats`, all in this one run. It prints the seconds of a piece,
the quadratics per second it meta-trains on, and that rate against K = 1's. Target: K = 128 (E1's
recipe) at least 20 times the quadratics per second of K = 1, which is what makes a batch of 128
affordable where 128 separate tasks per meta-update would not be.

BLAS runs on one thread (set before numpy is imported, unless the caller set one of the thread
variables), as in meta-training's workers.

    PYTHONPATH=. python benchmarks/bench_quadratics.py --json bench_quadratics.json   # ~10 seconds
"""
import os

THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
if not any(v in os.environ for v in THREAD_VARS):
    os.environ.update({v: "1" for v in THREAD_VARS})

import argparse  # noqa: E402  (after the thread setting on purpose)
import json
import time

import numpy

from metalstm_np.l2l import l2l
from metalstm_np.learners import Quadratic
from metalstm_np.unroll import meta_value_and_grad

COUNTS = (1, 8, 32, 128, 512)
TARGET_K, TARGET_SPEEDUP = 128, 20.0
STEPS = 20


def piece_seconds(optimizer, phi, count, repeats):
    """Best-of-`repeats` seconds of one STEPS-step meta-gradient on a task of `count` quadratics."""
    task = Quadratic(count=count).sample(numpy.random.default_rng(count))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        meta_value_and_grad(optimizer, phi, task, steps=STEPS)
        best = min(best, time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the numbers here")
    args = parser.parse_args()
    optimizer = l2l(preprocess="raw", output_scale=1.0, dtype="float64")
    phi = optimizer.init_phi(numpy.random.default_rng(0))
    rates = {}
    print(f"{'K':>5}  {'seconds/piece':>13}  {'quadratics/s':>12}  {'vs K = 1':>8}")
    for count in COUNTS:
        seconds = piece_seconds(optimizer, phi, count, args.repeats)
        rates[count] = count / seconds
        print(f"{count:>5}  {seconds:>13.4f}  {rates[count]:>12.1f}  {rates[count] / rates[1]:>7.1f}x")
    speedup = rates[TARGET_K] / rates[1]
    verdict = "MET" if speedup >= TARGET_SPEEDUP else "MISSED"
    print(f"target: K = {TARGET_K} at least {TARGET_SPEEDUP:g}x the quadratics/s of K = 1: "
          f"{speedup:.1f}x, {verdict}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"steps": STEPS, "repeats": args.repeats, "quadratics_per_second": rates,
                       "speedup": speedup, "target": TARGET_SPEEDUP, "met": speedup >= TARGET_SPEEDUP}, f, indent=1)


if __name__ == "__main__":
    main()
