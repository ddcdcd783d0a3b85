r"""The same numbers on every machine: which BLAS kernels run, and on how many threads.

NumPy's OpenBLAS picks its matrix-product kernels for the CPU it finds when it is loaded
(DYNAMIC_ARCH), and the kernels for different CPUs, or for one thread and two, add the products'
terms in different orders. The last bit of a product then differs, and a chaotic run turns that
into whole percents: the 2 × 20 sigmoid MLP under RMSprop at lr 0.1 for 100 steps (E6's tasks of
seed 1000) ends at a mean loss of 1.0408 with the Haswell kernels on one thread, 1.0117 with the
SkylakeX ones, 0.9924 with the Sandybridge ones, 0.9713 with SkylakeX's on two threads — on the
same tasks, with the same code.

So `import metalstm_np` sets, before NumPy is loaded and unless they are set already,
OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and MKL_NUM_THREADS to 1 (the products here are small: one
thread is also the fastest, benchmarks/bench_pool.py) and, on an x86-64 CPU with AVX2 and FMA,
OPENBLAS_CORETYPE to Haswell, the kernels every such CPU can run. Both take effect only where
NumPy is imported after metalstm_np (the `metalstm` command, and the worker processes every pool
starts); a program that imported NumPy first keeps the BLAS it loaded, and its own results may
differ from the shipped ones in the last digits. Set a variable yourself to choose otherwise.
"""
import os
import platform

__all__ = ["THREAD_VARS", "CORETYPE", "cpu_flags", "pinned_environment", "pin"]

THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
CORETYPE = "Haswell"                 # OpenBLAS's AVX2 + FMA kernels
_NEEDS = {"avx2", "fma"}             # what CORETYPE's kernels need of the CPU


def cpu_flags(path="/proc/cpuinfo"):
    """The CPU's feature flags (the first "flags" line of /proc/cpuinfo), or an empty set where
    there is no such file (macOS, Windows) or no such line."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def pinned_environment(environ, machine, flags):
    """{variable: value} that pin() adds to `environ`: the thread counts, unless any of them is
    set, and OPENBLAS_CORETYPE on an x86-64 `machine` whose `flags` include AVX2 and FMA, unless it
    is set."""
    out = {}
    if not any(v in environ for v in THREAD_VARS):
        out.update({v: "1" for v in THREAD_VARS})
    if "OPENBLAS_CORETYPE" not in environ and machine.lower() in ("x86_64", "amd64") and _NEEDS <= flags:
        out["OPENBLAS_CORETYPE"] = CORETYPE
    return out


def pin(environ=os.environ):
    """Add pinned_environment() for this machine to `environ`; returns what it added."""
    added = pinned_environment(environ, platform.machine(), cpu_flags())
    environ.update(added)
    return added
