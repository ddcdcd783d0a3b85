"""The process pool: results in job order, optimizers that travel to workers, and workers that stop."""
import multiprocessing
import pickle
import time

import numpy as np
import pytest

from metalstm_np import l2l, sgd
from metalstm_np.pool import process_pool, run_jobs


def _square_after(job):
    value, delay = job
    time.sleep(delay)
    return value * value


def test_run_jobs_returns_results_in_job_order_in_a_pool_and_here():
    jobs = [(3, 0.3), (1, 0.0), (2, 0.1)]            # the first finishes last
    assert run_jobs(None, _square_after, jobs) == [9, 1, 4]
    with process_pool(2) as pool:
        assert run_jobs(pool, _square_after, jobs) == [9, 1, 4]


@pytest.mark.parametrize("optimizer", [sgd, l2l(hidden=(3,), dtype="float32")])
def test_an_optimizer_is_pickled_as_its_name_and_config_and_updates_the_same(optimizer):
    rebuilt = pickle.loads(pickle.dumps(optimizer))
    assert (rebuilt.name, rebuilt.config) == (optimizer.name, optimizer.config)
    phi = optimizer.init_phi(np.random.default_rng(0))
    theta, grad = np.linspace(-1, 1, 5), np.linspace(2, -2, 5)
    a = optimizer.update(phi, optimizer.init(phi, theta), grad, 1.0)
    b = rebuilt.update(phi, rebuilt.init(phi, theta), grad, 1.0)
    np.testing.assert_array_equal(optimizer.params(a), rebuilt.params(b))


def test_an_exception_in_the_block_ends_the_workers_at_once():
    """KeyboardInterrupt while long jobs are queued: the pool does not wait for them."""
    start = time.monotonic()
    before = set(multiprocessing.active_children())          # other tests' processes, if any
    with pytest.raises(KeyboardInterrupt), process_pool(2) as pool:
        futures = [pool.submit(_square_after, (1, 30)) for _ in range(4)]
        time.sleep(1.0)
        raise KeyboardInterrupt
    assert time.monotonic() - start < 15                     # not the 2 × 30 s the jobs would take
    # the executor's manager thread marks the killed workers' futures failed soon after, not at once
    # (under load it may take a moment); a job left running would take 30 s and time out here
    assert all(f.cancelled() or f.exception(timeout=10) is not None for f in futures)
    deadline = time.monotonic() + 10                         # a worker may still be exiting
    while set(multiprocessing.active_children()) - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert set(multiprocessing.active_children()) - before == set()


def test_workers_exit_when_their_parent_is_killed(tmp_path):
    """kill -9 of a process that holds a pool: its workers do not wait for work forever."""
    import os
    import signal
    import subprocess
    import sys
    script = tmp_path / "parent.py"
    script.write_text("import time\n"
                      "from metalstm_np.pool import process_pool\n"
                      "if __name__ == '__main__':\n"
                      "    with process_pool(2) as pool:\n"
                      "        pool.submit(time.sleep, 0).result()          # starts the workers\n"
                      "        print(*[p.pid for p in pool._processes.values()], flush=True)\n"
                      "        time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    workers = [int(pid) for pid in parent.stdout.readline().split()]
    assert len(workers) >= 1
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(timeout=10)
    deadline = time.monotonic() + 20
    alive = workers
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in workers if _alive(pid)]
        time.sleep(0.2)
    assert alive == [], f"workers {alive} outlived their parent"


def _alive(pid):
    import os
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:                   # a zombie is dead, only not yet reaped
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_a_ctrl_c_while_the_workers_start_does_not_kill_them():
    """Ctrl-C reaches the whole process group, workers included, and a worker takes about a second
    to import the package before its initializer ignores SIGINT. SIGINT sent to each worker every
    10 ms from the moment it exists must neither kill it nor stop its job."""
    import os
    import signal
    with process_pool(2) as pool:
        futures = [pool.submit(_square_after, (n, 0.5)) for n in (2, 3)]
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and not all(f.done() for f in futures):
            for process in list(pool._processes.values()):
                if process.pid is not None and process.exitcode is None:
                    os.kill(process.pid, signal.SIGINT)
            time.sleep(0.01)
        assert [f.result(timeout=30) for f in futures] == [4, 9]
