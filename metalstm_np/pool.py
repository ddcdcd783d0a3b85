r"""Running independent jobs in parallel: the one module that knows which executor runs them.

Every parallel part of the package (meta-training's unrolls, the figures' evaluations, tuning,
few-shot evaluation) hands a list of jobs to `run_jobs(pool, fn, jobs)`, which returns their
results in the order of the jobs, whatever the order in which they finish. A job is a plain,
picklable description (no closures), and `fn` a top-level function, so that a worker process can
run it; with pool=None the jobs run here, one after another, through the same `fn`.

`executor(workers, scheduler)` opens the pool every command uses: a local process pool
(`process_pool`), or, given the address of a running Dask distributed scheduler, that cluster's
executor (`pip install ".[cluster]"`). Either is a `concurrent.futures.Executor`, and nothing
outside this module knows which one it has. Every job is a function of its description alone, so
the results are the same bit for bit whichever executor runs them.

A worker that dies (killed, out of memory) ends `run_jobs` with `WorkerLost`: at once for the local
pool, whose other workers are stopped, so no process is left behind (and workers whose parent dies
exit too); for Dask, once the scheduler has given up on the job (it retries a job whose worker died
on another worker, `distributed.scheduler.allowed-failures` times).
"""
import contextlib
import faulthandler
import multiprocessing
import multiprocessing.connection
import multiprocessing.context
import os
import re
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from . import blas

__all__ = ["BLAS_THREAD_VARS", "CONNECT_TIMEOUT", "PoolError", "SCHEDULER_PROTOCOLS", "WorkerLost",
           "check_scheduler_address", "executor", "kernel_mismatches", "print_stacks_on_sigusr1", "process_pool", "run_jobs"]

BLAS_THREAD_VARS = blas.THREAD_VARS


CONNECT_TIMEOUT = 10.0     # seconds to reach a Dask scheduler before giving up
SCHEDULER_PROTOCOLS = ("tcp", "tls", "ws", "wss", "ucx")     # Dask's network protocols

_ADDRESS = re.compile(r"(?:(?P<protocol>[A-Za-z0-9+.-]+)://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]+)"
                      r":(?P<port>[0-9]+)")


class PoolError(RuntimeError):
    """The pool cannot run the jobs: a worker died, or there is no scheduler to run them."""


class WorkerLost(PoolError):
    """A worker process of the pool died while it ran a job."""


def print_stacks_on_sigusr1():
    """`kill -USR1 PID` prints the stack of each thread of this process to its stderr (fd 2, even
    when sys.stderr is replaced); nothing where there is no SIGUSR1 (Windows) or no such file."""
    try:
        faulthandler.register(signal.SIGUSR1, file=sys.__stderr__, all_threads=True)
    except (AttributeError, OSError, ValueError):
        pass


class _SpawnProcess(multiprocessing.context.SpawnProcess):
    """A spawned process that starts with SIGINT blocked. A worker takes about a second to import
    the package before its initializer can ignore SIGINT, and a Ctrl-C then (it goes to the whole
    process group) would kill it with a traceback of its own, or leave the pool broken. A blocked
    signal is held, and the mask survives fork and exec, so the worker receives no SIGINT until
    `_worker_init` ignores it, which discards one that is held. Only the thread that starts the
    process blocks it, and only meanwhile: a Ctrl-C to the parent then goes to one of its other
    threads, or waits the few milliseconds until it is unblocked; none is lost. CPython's own
    resource tracker is started the same way (multiprocessing/resource_tracker.py)."""

    def start(self):
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            super().start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


class _SpawnContext(multiprocessing.context.SpawnContext):
    Process = _SpawnProcess


def _worker_init():
    """Worker initializer. Ctrl-C goes to the whole process group; the parent handles it (and stops
    the workers), so a worker ignores it and never prints a traceback of its own (it was blocked
    since the worker started: `_SpawnProcess`). A parent that dies without stopping them (kill -9)
    would leave them waiting for work forever, so each worker watches its parent and exits when it
    is gone. `kill -USR1` of a worker prints the stacks of its threads, as for the command."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    print_stacks_on_sigusr1()
    parent = multiprocessing.parent_process()
    if parent is not None:
        def exit_with_parent():
            multiprocessing.connection.wait([parent.sentinel])
            os._exit(1)
        threading.Thread(target=exit_with_parent, daemon=True).start()


def _workers(pool):
    """The worker processes of a ProcessPoolExecutor (none for another executor). There is no public
    API for them before Python 3.14; a broken pool forgets them, so callers take them beforehand."""
    return list((getattr(pool, "_processes", None) or {}).values())


def _end(processes, timeout=10.0):
    """Terminate `processes` and wait until each is known to have exited. The executor's own manager
    thread may reap a process at the same moment (join in two threads: one of them learns nothing),
    so a join is repeated until the process's exit code is known, or `timeout` seconds pass."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + timeout
    for process in processes:
        while process.exitcode is None and time.monotonic() < deadline:
            process.join(timeout=0.05)


def _stop_workers(pool):
    """Cancel what has not started and end every worker process now."""
    processes = _workers(pool)
    pool.shutdown(wait=False, cancel_futures=True)
    _end(processes + [p for p in _workers(pool) if p not in processes])     # and any started meanwhile


@contextlib.contextmanager
def process_pool(workers):
    r"""A ProcessPoolExecutor of `workers` processes whose BLAS runs on one thread each.

    The matrix products here are small ((n, 40) @ (40, 20) at most), and two processes on two cores,
    each with a second BLAS thread, ran about three times slower than with one thread each
    (benchmarks/bench_pool.py). BLAS fixes its thread count and kernels when it is loaded, and a
    forked child keeps its parent's, so the workers are started fresh ("spawn"), with the
    environment blas.pin() set up at `import metalstm_np` (one BLAS thread; OpenBLAS's Haswell
    kernels and NumPy's AVX2 loops where the CPU has AVX2), topped up here should the caller have removed any of it; a
    variable the caller set is left alone. If the block ends with an exception (Ctrl-C, a lost
    worker), the workers are terminated at once rather than left to finish the queued jobs.
    """
    blas.pin()
    pool = ProcessPoolExecutor(workers, mp_context=_SpawnContext(), initializer=_worker_init)
    try:
        yield pool
    except BaseException:
        _stop_workers(pool)
        raise
    pool.shutdown(wait=True)


def run_jobs(pool, fn, jobs, progress=None):
    """[fn(job) for job in jobs], in `pool` (an Executor) if given, else here; results in job order.
    progress(), if given, is called as each job finishes. A worker that died raises WorkerLost; a
    job's own exception is raised as soon as that job ends."""
    if pool is None:
        results = []
        for job in jobs:
            results.append(fn(job))
            if progress is not None:
                progress()
        return results
    futures = [pool.submit(fn, job) for job in jobs]
    processes = _workers(pool)
    try:
        for future in as_completed(futures):
            future.result()
            if progress is not None:
                progress()
        return [future.result() for future in futures]
    except BrokenProcessPool:
        _end(processes)                   # the pool ends the others too, but does not wait for them
        raise WorkerLost("a worker process died (killed, or out of memory)") from None
    except Exception as e:
        if type(e).__name__ != "KilledWorker":     # distributed.KilledWorker, without importing it
            raise
        for future in futures:
            future.cancel()
        raise WorkerLost(f"a Dask worker died (killed, or out of memory) each time it ran a job "
                         f"({e})") from None


def check_scheduler_address(scheduler):
    """Refuse, naming it, a `scheduler` that is not a Dask scheduler's address, protocol://host:port
    (one of SCHEDULER_PROTOCOLS; host:port alone means tcp) with a port from 1 to 65535: a typo is
    said at once, not after CONNECT_TIMEOUT seconds as a scheduler that did not answer."""
    example = "expected protocol://host:port, e.g. tcp://10.0.0.1:8786"
    match = _ADDRESS.fullmatch(scheduler) if isinstance(scheduler, str) else None
    if match is None:
        raise PoolError(f"--scheduler {scheduler!r}: not the address of a Dask scheduler ({example})")
    protocol, port = match["protocol"], int(match["port"])
    if protocol is not None and protocol not in SCHEDULER_PROTOCOLS:
        raise PoolError(f"--scheduler {scheduler}: unknown protocol {protocol!r} (not one of "
                        f"{', '.join(SCHEDULER_PROTOCOLS)}; {example})")
    if not 1 <= port <= 65535:
        raise PoolError(f"--scheduler {scheduler}: port {port} is not from 1 to 65535 ({example})")


@contextlib.contextmanager
def executor(workers=1, scheduler=None):
    """The pool a command runs its jobs in: `process_pool(workers)`, or with `scheduler` (the
    address of a running Dask distributed scheduler, e.g. tcp://10.0.0.1:8786) the executor of that
    cluster, whose workers the scheduler has (`workers` does not apply). A malformed address is a
    PoolError at once (`check_scheduler_address`), an unreachable scheduler one after CONNECT_TIMEOUT
    seconds, and so is a missing `distributed` package."""
    if scheduler is None:
        with process_pool(workers) as pool:
            yield pool
        return
    check_scheduler_address(scheduler)
    try:
        import distributed
    except ImportError:
        raise PoolError(f"--scheduler {scheduler} needs Dask distributed: pip install \".[cluster]\" "
                        f"(or pip install \"dask[distributed]\")") from None
    try:
        client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as e:
        raise PoolError(f"--scheduler {scheduler}: no Dask scheduler answered within "
                        f"{CONNECT_TIMEOUT:g} s ({type(e).__name__}: {e})") from None
    try:
        for line in kernel_mismatches(blas.in_use(), client.run(blas.in_use)):
            print(f"warning: --scheduler {scheduler}: {line}", file=sys.stderr)
        with client.get_executor(pure=False) as pool:
            yield pool
    finally:
        client.close()


def kernel_mismatches(here, workers):
    """Lines naming each worker whose BLAS kernels, BLAS threads or NumPy SIMD level (blas.in_use,
    {worker address: dict} in `workers`) differ from `here`'s: its jobs' numbers may then differ in
    their last bits from the local pool's (README, "Scaling up": start workers with blas.py's
    variables). A value that cannot be read (None) on either side is not compared."""
    lines = []
    for address, theirs in sorted(workers.items()):
        differ = [f"{key} {theirs.get(key)} (here {mine})" for key, mine in here.items()
                  if mine is not None and theirs.get(key) is not None and theirs.get(key) != mine]
        if differ:
            lines.append(f"worker {address} runs {', '.join(differ)}: its numbers may differ in the "
                         f"last bits from the local pool's")
    return lines
