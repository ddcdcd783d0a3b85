r"""Meta-training on a 2-worker Dask LocalCluster against the local process pool of 2 workers.

One tiny run (`meta_train.meta_train`, l2l with two LSTM layers of 20 on 10-d quadratics, horizon
100, unroll 20, B = 2 tasks per meta-update, `--trajectories` of them), once in
`pool.process_pool(2)` and once on a `distributed.LocalCluster(n_workers=2, threads_per_worker=1)`
through `pool.executor(scheduler=...)`, timed in this one run. Reported: trajectories per hour of
each (wall clock of the training loop, the first meta-update left out: the workers start and import
the package there), the cluster's rate as a fraction of the local pool's, and whether the two runs
end with the same φ, bit for bit (they must). The jobs are small (one piece of a 10-d quadratic),
so this measures the executor's overhead per job, the worst case for the cluster.

    PYTHONPATH=. python benchmarks/bench_cluster.py > benchmarks/bench_cluster.out.txt    # ~2 minutes
"""
import argparse
import tempfile
import time
from pathlib import Path

import numpy
from autograd.misc.flatten import flatten

from metalstm_np.l2l import l2l
from metalstm_np.learners import Quadratic
from metalstm_np.meta_train import TrainConfig, load_checkpoint, meta_train
from metalstm_np.pool import executor


def throughput(pool, config, path):
    """(trajectories per hour after the first meta-update, final flat φ) of one run in `pool`."""
    first = {}

    def callback(info):
        if not first:
            first.update(at=time.perf_counter(), trajectory=info["trajectory"])

    meta_train(l2l(), Quadratic(), Quadratic(), config, path, pool=pool, callback=callback)
    seconds = time.perf_counter() - first["at"]
    return 3600 * (config.trajectories - first["trajectory"]) / seconds, flatten(load_checkpoint(path)[1])[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trajectories", type=int, default=80)
    args = parser.parse_args()
    import distributed
    config = TrainConfig(trajectories=args.trajectories, horizon=100, unroll=20, tasks_per_update=2,
                         validate_every=args.trajectories, validation_tasks=2, seed=5)
    folder = Path(tempfile.mkdtemp())
    with executor(workers=2) as pool:
        local, phi_local = throughput(pool, config, folder / "local.npz")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with executor(scheduler=cluster.scheduler_address) as pool:
            dask, phi_dask = throughput(pool, config, folder / "dask.npz")
    print(f"tiny run: l2l 2x20 on 10-d quadratics, horizon 100, unroll 20, B = 2, {args.trajectories} "
          f"trajectories (the first meta-update not timed)")
    print(f"local process pool, 2 workers : {local:8.0f} trajectories/h")
    print(f"Dask LocalCluster, 2 workers  : {dask:8.0f} trajectories/h ({dask / local:.2f}x the local pool)")
    print(f"same φ, bit for bit: {bool(numpy.array_equal(phi_local, phi_dask))}")


if __name__ == "__main__":
    main()
