r"""One chaotic run under each OpenBLAS kernel, thread count and NumPy SIMD level: why metalstm_np pins them (blas.py).

The run is one cell of E6's table: the 2 × 20 sigmoid MLP trained by RMSprop at its tuned learning
rate (0.1) for 100 steps, on the 20 evaluation tasks of seed 1000. Each line of the output runs it
in a fresh process with OPENBLAS_CORETYPE, OPENBLAS_NUM_THREADS and NPY_DISABLE_CPU_FEATURES set
before NumPy loads (NumPy's AVX-512 loops on or off; the kernel OpenBLAS and the SIMD level NumPy
then report: a CPU that lacks a kernel's instructions gets another one) and prints the mean loss
at step 100, in full. Same tasks, same code: only the order in which the BLAS adds a product's
terms, or the last bit of NumPy's exp and log, differs, and 100 steps of a chaotic run magnify it.

Then the price of the pin: one evaluation of the shipped E6 optimizer (RNNprop, 2 tasks × 200
steps of the 1 × 20 sigmoid MLP) timed with NumPy's AVX-512 loops on and off (the same on a CPU
without AVX-512), best of --repeats, both in this one run.

    python benchmarks/bench_blas.py            # ~3 minutes; its last output is bench_blas.out.txt
"""
import json
import subprocess
import sys

from metalstm_np.blas import CORETYPE, NUMPY_AVX512, cpu_flags

CORES = ("Haswell", "SkylakeX", "SapphireRapids", "Zen", "Sandybridge", "Prescott")

RUN = """
import json
import metalstm_np
from metalstm_np import blas
from metalstm_np.experiments.e6_general import tuned_baseline_losses
losses = tuned_baseline_losses("mnist_2layers", 100, "rmsprop", 1000, runs=20)
print(json.dumps({"loss": float(losses[:, 100].mean()), **blas.in_use()}))
"""

TIMED = """
import json, time
import metalstm_np
from metalstm_np import blas
from metalstm_np.experiments import common, e6_general as e6
from metalstm_np.serialization import load_phi
optimizer, phi, _ = load_phi(common.pretrained_path("general_mnist.npz"))
start = time.perf_counter()
common._evaluation(e6.FAMILIES["mnist"][1], optimizer.name, optimizer.config, phi, 200, 2, 1000)
print(json.dumps({"seconds": time.perf_counter() - start, **blas.in_use()}))
"""


def _environment(core, threads, avx512):
    return {"OPENBLAS_CORETYPE": core, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "NPY_DISABLE_CPU_FEATURES": "" if avx512 else NUMPY_AVX512}


def _run(code, environment):
    out = subprocess.run([sys.executable, "-c", code], env=environment, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def run(core, threads, avx512):
    return _run(RUN, _environment(core, threads, avx512))


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    import platform
    from importlib import metadata
    print(f"bench_blas: numpy {metadata.version('numpy')}, {platform.machine()}, CPU flags with "
          f"{'AVX-512' if 'avx512f' in cpu_flags() else 'no AVX-512'}; E6, 2 × 20 sigmoid, RMSprop, 20 tasks of "
          f"seed 1000, mean loss at step 100")
    print(f"{'OPENBLAS_CORETYPE':<18} {'threads':>7} {'NumPy AVX-512':>13}  {'kernel run':<14} {'NumPy level':<12} "
          f"{'mean loss at step 100':>22}")
    seen = set()
    for core in CORES:
        for threads in (1, 2):
            for avx512 in (True, False):
                got = run(core, threads, avx512)
                seen.add(got["loss"])
                pinned = "   <- pinned (blas.py)" if (core, threads, avx512) == (CORETYPE, 1, False) else ""
                print(f"{core:<18} {threads:>7} {'on' if avx512 else 'off':>13}  {str(got['openblas_core']):<14} "
                      f"{str(got['numpy_simd']):<12} {got['loss']:>22.16f}{pinned}")
    print(f"{len(seen)} different results from the same tasks and code")
    print(f"one RNNprop evaluation (2 tasks x 200 steps), best of {args.repeats}, Haswell kernels, one thread:")
    best = {}
    for _ in range(args.repeats):
        for avx512 in (True, False):
            got = _run(TIMED, _environment(CORETYPE, 1, avx512))
            best[got["numpy_simd"]] = min(best.get(got["numpy_simd"], float("inf")), got["seconds"])
    for level, seconds in best.items():
        print(f"  NumPy level {level:<12} {seconds:6.2f} s")
    if len(best) == 2:
        (wide, a), (narrow, b) = best.items()
        print(f"  {narrow} / {wide}: {b / a:.2f}x the time")


if __name__ == "__main__":
    sys.exit(main())
