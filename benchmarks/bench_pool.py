r"""Two processes on two cores: BLAS on its default threads against one thread per process.

`metalstm figures`, `metalstm tune` and `metalstm fewshot evaluate` run their jobs in a pool of
processes (`experiments.common.process_pool`). This script times the same two jobs -- each one
evaluation of the shipped E2 optimizer (metalstm_np/pretrained/l2l_mnist.npz, two LSTM layers of 20
units, float32) for 100 steps on 2 MNIST MLP tasks drawn with the evaluation seed -- in

    (a) fork   a plain ProcessPoolExecutor(2): the workers are forked and keep the BLAS threads of
               this process (OpenBLAS starts one per core unless told otherwise);
    (b) pinned process_pool(2): fresh ("spawn") workers with OPENBLAS_NUM_THREADS = 1 and the like,

round-robin, --repeats times, and prints each job's seconds (inside the worker) and the wall-clock
seconds of the pair. Run it with none of OPENBLAS_NUM_THREADS, OMP_NUM_THREADS, MKL_NUM_THREADS set
(otherwise (a) and (b) use the same thread count, and the script says so):

    PYTHONPATH=. python benchmarks/bench_pool.py            # ~1 minute
"""
import os

# Before NumPy loads (`import metalstm_np` would pin one thread, blas.py): this process keeps
# OpenBLAS's default of one thread per core, so that the forked workers of (a) do too.
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
PRESET = [v for v in THREAD_VARS if v in os.environ]
if not PRESET:
    os.environ["OPENBLAS_NUM_THREADS"] = str(len(os.sched_getaffinity(0)))

import argparse  # noqa: E402  (the imports below come after the thread setting on purpose)
import contextlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402

from metalstm_np.experiments.common import SETTINGS, pretrained_path, process_pool  # noqa: E402


@contextlib.contextmanager
def pinned_pool(workers):
    """process_pool(workers) with one BLAS thread per worker, as after `import metalstm_np` in a
    process whose caller set no thread variable."""
    saved = {v: os.environ.get(v) for v in THREAD_VARS}
    if not PRESET:
        os.environ.update({v: "1" for v in THREAD_VARS})
    try:
        with process_pool(workers) as pool:
            yield pool
    finally:
        for v, value in saved.items():
            if value is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = value


def job(seed):
    r"""One evaluation of the shipped E2 optimizer: 100 steps on 2 tasks; returns (seconds, BLAS env)."""
    from metalstm_np.evaluation import run_on_tasks
    from metalstm_np.serialization import load_phi
    optimizer, phi, _ = load_phi(pretrained_path("l2l_mnist.npz"))
    start = time.perf_counter()
    run_on_tasks(optimizer, phi, SETTINGS["mnist"].family, 100, 2, seed)
    return time.perf_counter() - start, os.environ.get("OPENBLAS_NUM_THREADS")


def timed(make_pool):
    with make_pool() as pool:
        pool.submit(len, ()).result()                 # start a worker before the clock starts
        start = time.perf_counter()
        jobs = list(pool.map(job, [1000, 1000]))
        return [s for s, _ in jobs], time.perf_counter() - start, jobs[0][1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", metavar="FILE", help="write every number to FILE")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    preset = PRESET
    print(f"bench_pool: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start; "
          + (f"{', '.join(f'{v}={os.environ[v]}' for v in preset)} set by the caller: (a) and (b) use "
             "the same threads" if preset else "no BLAS thread variable set"))
    cases = [("(a) fork", lambda: ProcessPoolExecutor(2)), ("(b) pinned", lambda: pinned_pool(2))]
    rows = {name: [] for name, _ in cases}
    for _ in range(args.repeats):
        for name, make_pool in cases:
            rows[name].append(timed(make_pool))
    print(f"{'pool':<11} {'OPENBLAS_NUM_THREADS':>20}  {'job seconds (each run)':<32} {'pair wall s (best)':>18}")
    for name, runs in rows.items():
        jobs = "  ".join(f"{a:.2f}/{b:.2f}" for (a, b), _, _ in runs)
        print(f"{name:<11} {str(runs[0][2]):>20}  {jobs:<32} {min(w for _, w, _ in runs):18.2f}")
    fork, pinned = (min(w for _, w, _ in rows[name]) for name, _ in cases)
    print(f"pinned / fork wall-clock: {pinned / fork:.2f}; load average {os.getloadavg()[0]:.1f} at the end")
    if args.json:
        report = {name: [{"job_seconds": jobs, "wall_seconds": wall, "OPENBLAS_NUM_THREADS": env}
                         for jobs, wall, env in runs] for name, runs in rows.items()}
        with open(args.json, "w") as f:
            json.dump({"preset": preset, "cases": report}, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
