"""A Dask cluster as the pool: the same φ, checkpoint, log and results.json as the local process pool,
a lost worker retried or reported in one line, an unreachable scheduler reported in one line.

The cluster is a LocalCluster of two worker processes (one thread each), started once for the file.
Without Dask distributed (`pip install ".[cluster]"`) the cluster tests are skipped; the messages for
a missing package and a bad flag are tested either way."""
import json
import multiprocessing
import os
import signal
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from autograd.misc import flatten

from metalstm_np.cli import main
from metalstm_np.learners import Quadratic
from metalstm_np.meta_train import load_checkpoint, meta_train
from metalstm_np.pool import WorkerLost, executor, kernel_mismatches, process_pool
from metalstm_np.serialization import load_phi

sys.path.insert(0, str(Path(__file__).parent))
from test_meta_train import TINY, assert_same_checkpoint, tiny_l2l  # noqa: E402

TRAIN = ["train", "--task", "quadratic", "--lstm-hidden", "4", "--trajectories", "8", "--horizon", "6",
         "--unroll", "3", "--validate-every", "4", "--validation-tasks", "2", "--tasks-per-update", "2"]


@pytest.fixture(scope="module")
def scheduler():
    """The address of a running LocalCluster of 2 worker processes; a job whose worker dies is
    retried once on another worker (allowed-failures 1), then reported."""
    distributed = pytest.importorskip("distributed", reason="Dask distributed is not installed "
                                                            "(pip install \".[cluster]\")")
    import dask
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster:
            yield cluster.scheduler_address


def _log_lines(path):
    """The log's lines with the seconds column removed (the one thing that differs between runs)."""
    out = []
    for line in Path(path).read_text().splitlines():
        head, _, tail = line.partition("  seconds ")
        out.append(head + ("  " + tail.split("  ", 1)[1] if "  " in tail else ""))
    return out


def test_meta_training_on_the_cluster_is_bit_for_bit_the_local_pools(scheduler, tmp_path, capsys):
    assert main([*TRAIN, "--workers", "2", "--out", str(tmp_path / "local")]) == 0
    assert main([*TRAIN, "--scheduler", scheduler, "--out", str(tmp_path / "dask")]) == 0
    assert_same_checkpoint(tmp_path / "local" / "checkpoint.npz", tmp_path / "dask" / "checkpoint.npz")
    best = [load_phi(tmp_path / d / "best.npz") for d in ("local", "dask")]
    assert best[0][0].config == best[1][0].config
    np.testing.assert_array_equal(flatten(best[0][1])[0], flatten(best[1][1])[0])
    assert _log_lines(tmp_path / "local" / "log.txt") == _log_lines(tmp_path / "dask" / "log.txt")
    assert len(_log_lines(tmp_path / "dask" / "log.txt")) == 4          # B = 2: four meta-updates
    assert "warning" not in capsys.readouterr().err       # its workers inherited this process's pinned BLAS


def test_a_worker_with_other_kernels_is_named_in_a_warning():
    here = {"openblas_core": "Haswell", "openblas_threads": 1, "numpy_simd": "X86_V3"}
    workers = {"tcp://10.0.0.2:4000": dict(here), "tcp://10.0.0.3:4000": {**here, "numpy_simd": "X86_V4"},
               "tcp://10.0.0.4:4000": {**here, "openblas_core": None}}       # unreadable: not compared
    (line,) = kernel_mismatches(here, workers)
    assert "tcp://10.0.0.3:4000" in line and "numpy_simd X86_V4 (here X86_V3)" in line
    assert kernel_mismatches(here, {"w": {**here, "openblas_threads": 2}})[0].count("openblas_threads 2 (here 1)") == 1
    assert kernel_mismatches({**here, "openblas_core": None}, {"w": {**here, "openblas_core": "Zen"}}) == []


def test_figures_on_the_cluster_give_the_local_results(scheduler, tmp_path, capsys):
    assert main(["figures", "--quick", "--only", "e1", "--workers", "2", "--out", str(tmp_path / "local")]) == 0
    assert main(["figures", "--quick", "--only", "e1", "--scheduler", scheduler, "--out", str(tmp_path / "dask")]) == 0
    local, dask = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("local", "dask"))
    assert local.pop("seconds")["e1"] > 0 and dask.pop("seconds")["e1"] > 0     # {run: seconds}
    assert local == dask
    assert (tmp_path / "local" / "e1_quadratic.png").read_bytes() == (tmp_path / "dask" / "e1_quadratic.png").read_bytes()


@dataclass(frozen=True)
class KilledAt:
    """Quadratics, except that sampling the training task of trajectory `at` in a worker process
    kills that process (SIGKILL, as the out-of-memory killer would) — every time, or, with `once`
    (a file that the first kill creates), only the first time."""

    at: int
    once: str = ""

    def sample(self, rng):
        task = Quadratic(3).sample(rng)
        words = rng.bit_generator.seed_seq.entropy
        mine = isinstance(words, list) and len(words) == 3 and words[1] == 1 and words[2] == self.at
        if mine and multiprocessing.parent_process() is not None:
            if self.once and os.path.exists(self.once):
                return task
            if self.once:
                Path(self.once).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return task


def test_a_dask_worker_killed_once_is_replaced_and_the_run_is_unchanged(scheduler, tmp_path):
    config = replace(TINY, trajectories=8, tasks_per_update=2, validate_every=2)
    with process_pool(2) as pool:
        meta_train(tiny_l2l(), Quadratic(3), Quadratic(3), config, tmp_path / "straight.npz", pool=pool)
    with executor(scheduler=scheduler) as pool:
        meta_train(tiny_l2l(), KilledAt(5, once=str(tmp_path / "killed")), Quadratic(3), config,
                   tmp_path / "c.npz", pool=pool)
    assert (tmp_path / "killed").exists()                      # a worker did die, and the job ran again
    assert_same_checkpoint(tmp_path / "straight.npz", tmp_path / "c.npz")


def test_a_job_that_kills_every_dask_worker_stops_the_run_with_one_clear_error(scheduler, tmp_path):
    config = replace(TINY, trajectories=8, tasks_per_update=2, validate_every=2)
    with pytest.raises(WorkerLost, match=r"a Dask worker died .* during trajectory 4\.\.5; .*c\.npz holds "
                                         r"the last good state \(trajectory 4\)"):
        with executor(scheduler=scheduler) as pool:
            meta_train(tiny_l2l(), KilledAt(5), Quadratic(3), config, tmp_path / "c.npz", pool=pool)
    assert load_checkpoint(tmp_path / "c.npz")[2]["trajectory"] == 4


def test_an_unreachable_scheduler_is_one_line_after_the_stated_timeout(tmp_path, capsys, monkeypatch):
    pytest.importorskip("distributed", reason="Dask distributed is not installed")
    import time
    from metalstm_np import pool
    monkeypatch.setattr(pool, "CONNECT_TIMEOUT", 2.0)
    start = time.monotonic()
    code = main(["figures", "--quick", "--only", "e1", "--scheduler", "tcp://127.0.0.1:9",
                 "--out", str(tmp_path / "f")])
    assert code == 2 and time.monotonic() - start < 30
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("metalstm: error: --scheduler tcp://127.0.0.1:9: no Dask scheduler answered "
                              "within 2 s")
    assert "Traceback" not in "\n".join(err)


def test_without_dask_the_flag_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)        # import distributed -> ImportError
    assert main(["figures", "--quick", "--only", "e1", "--scheduler", "tcp://127.0.0.1:9",
                 "--out", str(tmp_path / "f")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        'metalstm: error: --scheduler tcp://127.0.0.1:9 needs Dask distributed: pip install ".[cluster]" '
        '(or pip install "dask[distributed]")')


@pytest.mark.parametrize("argv", [["figures", "--quick", "--only", "e1"], ["tune", "--settings", "quadratic"],
                                  ["fewshot", "evaluate", "--quick"], TRAIN])
def test_workers_and_scheduler_together_are_refused(argv, tmp_path, capsys):
    out = ["--out", str(tmp_path / ("t.json" if argv[0] == "tune" else "o"))]
    assert main([*argv, *out, "--workers", "2", "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "metalstm: error: --workers 2 sizes the local pool; with --scheduler tcp://127.0.0.1:9 the cluster's "
        "workers run the jobs: drop --workers")


@pytest.mark.parametrize("address, says", [
    ("", "'': not the address of a Dask scheduler"),
    ("notanaddress", "'notanaddress': not the address of a Dask scheduler"),
    ("tcp://", "'tcp://': not the address of a Dask scheduler"),
    ("tcp://127.0.0.1:abc", "'tcp://127.0.0.1:abc': not the address of a Dask scheduler"),
    ("http://127.0.0.1:8786", "http://127.0.0.1:8786: unknown protocol 'http' (not one of tcp, tls, ws, "
                              "wss, ucx;"),
    ("127.0.0.1:99999", "127.0.0.1:99999: port 99999 is not from 1 to 65535"),
])
def test_a_malformed_scheduler_address_is_refused_at_once_naming_it(address, says, tmp_path, capsys):
    import time
    start = time.monotonic()
    assert main([*TRAIN, "--scheduler", address, "--out", str(tmp_path / "o")]) == 2
    assert time.monotonic() - start < 5                          # not CONNECT_TIMEOUT, no Dask needed
    err = capsys.readouterr().err.strip().splitlines()
    opening = " " if says.endswith(";") else " ("
    assert err == [f"metalstm: error: --scheduler {says}{opening}expected protocol://host:port, "
                   f"e.g. tcp://10.0.0.1:8786)"]
    assert not (tmp_path / "o").exists()                         # refused before the run began


@pytest.mark.parametrize("address", ["tcp://10.0.0.1:8786", "10.0.0.1:8786", "tls://scheduler.example:8786",
                                     "tcp://[::1]:8786", "ws://host-1.example:1"])
def test_well_formed_scheduler_addresses_pass_the_check(address):
    from metalstm_np.pool import check_scheduler_address
    check_scheduler_address(address)
