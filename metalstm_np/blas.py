r"""The same numbers on every Linux x86-64 machine with AVX2: which kernels run, on how many threads.

NumPy's OpenBLAS picks its matrix-product kernels for the CPU it finds when it is loaded
(DYNAMIC_ARCH), and NumPy picks the widest SIMD code for its own loops (exp, log, tanh: AVX-512
where the CPU has it, else AVX2). Kernels for different CPUs, or one BLAS thread and two, add a
product's terms in different orders, and the AVX-512 and AVX2 loops can differ in the last bit;
a chaotic run turns that bit into whole percents. benchmarks/bench_blas.py runs one such run
(E6's 2 × 20 sigmoid MLP under RMSprop at lr 0.1, 100 steps, 20 tasks) under each choice, on the
same tasks with the same code, and prints its mean loss for each (bench_blas.out.txt).

So `import metalstm_np` sets, before NumPy is loaded and unless they are set already:
OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and MKL_NUM_THREADS to 1 (the products here are small, and
one thread per process is also the fastest: benchmarks/bench_pool.py; a caller's OMP_NUM_THREADS
stands for both libraries, see pinned_environment); and on a Linux x86-64 CPU
with AVX2 and FMA, OPENBLAS_CORETYPE to Haswell (OpenBLAS's AVX2 kernels) and, for NumPy ≥ 2.4,
NPY_DISABLE_CPU_FEATURES to NumPy's AVX-512 levels (NUMPY_AVX512), so that NumPy's loops run their
AVX2 code. They take effect where NumPy is imported after metalstm_np — the `metalstm` command,
`python -m metalstm_np...`, the tests (conftest.py), and the worker processes of the local pool,
which inherit them — but not in a program that imported NumPy first (its own NumPy keeps what it
loaded), nor on Dask workers, which load NumPy before any job arrives (start them with these
variables set: README, "Scaling up").

Left to the machine: the C library's exp (scipy's expit calls it), and BLAS other than OpenBLAS
(MKL, Accelerate), which ignore OPENBLAS_CORETYPE. in_use() reports what actually runs, and
results.json records it.
"""
import ctypes
import os
import platform
from importlib import metadata

__all__ = ["THREAD_VARS", "CORETYPE", "NUMPY_AVX512", "cpu_flags", "numpy_version", "pinned_environment", "pin",
           "in_use"]

THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
CORETYPE = "Haswell"                 # OpenBLAS's AVX2 + FMA kernels
NUMPY_AVX512 = "X86_V4 AVX512_ICL AVX512_SPR"      # NumPy ≥ 2.4's AVX-512 dispatch levels, disabled
_NEEDS = {"avx2", "fma"}             # what CORETYPE's kernels (and NumPy's AVX2 loops) need of the CPU


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


def numpy_version():
    """(major, minor) of the installed NumPy, read without importing it; (0, 0) if unknown."""
    try:
        return tuple(int(part) for part in metadata.version("numpy").split(".")[:2])
    except (metadata.PackageNotFoundError, ValueError):
        return (0, 0)


def pinned_environment(environ, machine, flags, numpy=(2, 4)):
    """{variable: value} that pin() adds to `environ`: each thread count that is not set, unless
    OMP_NUM_THREADS is (OpenBLAS and MKL each read their own variable first and OMP_NUM_THREADS
    after it, so a caller's OMP_NUM_THREADS is a choice for both, and a caller's MKL_NUM_THREADS
    alone leaves OpenBLAS pinned); on an x86-64 `machine` whose `flags` include AVX2 and FMA,
    OPENBLAS_CORETYPE, and for `numpy` (major, minor) ≥ (2, 4) NPY_DISABLE_CPU_FEATURES, each
    unless it is set."""
    out = {}
    if "OMP_NUM_THREADS" not in environ:
        out.update({v: "1" for v in THREAD_VARS if v not in environ})
    if machine == "x86_64" and _NEEDS <= flags:
        if "OPENBLAS_CORETYPE" not in environ:
            out["OPENBLAS_CORETYPE"] = CORETYPE
        if "NPY_DISABLE_CPU_FEATURES" not in environ and numpy >= (2, 4):
            out["NPY_DISABLE_CPU_FEATURES"] = NUMPY_AVX512
    return out


def pin(environ=os.environ):
    """Add pinned_environment() for this machine and NumPy to `environ`; returns what it added.
    An OPENBLAS_CORETYPE of ours inherited by a machine whose CPU lacks AVX2 or FMA (a job sent on
    with its environment) is removed first: OpenBLAS picks its own kernels there."""
    flags = cpu_flags()
    if environ.get("OPENBLAS_CORETYPE") == CORETYPE and flags and not _NEEDS <= flags:
        del environ["OPENBLAS_CORETYPE"]
    added = pinned_environment(environ, platform.machine(), flags, numpy_version())
    environ.update(added)
    return added


def _openblas():
    """(core name, threads) of the OpenBLAS this process's NumPy loaded, or (None, None)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            paths = dict.fromkeys(line.split()[-1] for line in f if "openblas" in line.split()[-1].lower())
    except OSError:
        return None, None
    for path in sorted(paths, key=lambda p: "numpy" not in p):     # NumPy's (not SciPy's) first
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas_", "64_"), ("scipy_openblas_", ""), ("openblas_", "")):
            core, threads = (getattr(lib, f"{prefix}get_{what}{suffix}", None) for what in ("corename", "num_threads"))
            if core is not None and threads is not None:
                core.restype = ctypes.c_char_p
                return core().decode(), int(threads())
    return None, None


def in_use():
    """What this process runs: {"openblas_core", "openblas_threads", "numpy_simd"} (the widest of
    NumPy's dispatch levels enabled here, e.g. "X86_V3" for AVX2); None for what cannot be read
    (another BLAS, another OS, another NumPy). Loads NumPy if it is not loaded yet."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
        enabled = [level for level in __cpu_dispatch__ if __cpu_features__.get(level)]
    except ImportError:
        enabled = []
    core, threads = _openblas()
    return {"openblas_core": core, "openblas_threads": threads, "numpy_simd": enabled[-1] if enabled else None}
