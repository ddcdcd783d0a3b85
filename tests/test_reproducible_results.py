"""The shipped numbers are reproduced to the last bit where they were made alike (blas.py): an x86-64
CPU with AVX2 and FMA, OpenBLAS's Haswell kernels on one thread, NumPy's AVX2 loops, and the NumPy
release results.json records."""
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy
import pytest

from metalstm_np import blas

FIGURES = Path(__file__).resolve().parents[1] / "figures"
PINNED = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE",
          "NPY_DISABLE_CPU_FEATURES")
AS_PINNED = {"openblas_core": "Haswell", "openblas_threads": 1, "numpy_simd": "X86_V3"}

# The most chaotic cell of E6: 2 × 20 sigmoid, RMSprop at its tuned lr, 40 tasks, 100 steps. Its mean
# loss moves by whole percents from one BLAS kernel, thread count or SIMD level to another
# (benchmarks/bench_blas.out.txt), so matching the shipped one to the last bit checks that the pin
# is in force where the figures are made, and that nothing else in the code path has changed.
CELL = """
import json, sys
import metalstm_np
from metalstm_np import blas
from metalstm_np.experiments.e6_general import tuned_baseline_losses
losses = tuned_baseline_losses("mnist_2layers", 100, "rmsprop", int(sys.argv[1]))
print(json.dumps([float(losses[:, 100].mean()), blas.in_use()]))
"""


@pytest.mark.skipif(platform.machine() != "x86_64" or not {"avx2", "fma"} <= blas.cpu_flags(),
                    reason="the shipped numbers were made on x86-64 with AVX2 and FMA")
@pytest.mark.parametrize("results", ["results.json", "seed3000/results.json"])
def test_the_most_chaotic_shipped_e6_number_is_reproduced_to_the_last_bit(results):
    results = json.loads((FIGURES / results).read_text())
    made_with = next(v for run, v in results["versions"].items() if "e6" in run.split(","))
    if made_with["numpy"] != numpy.__version__:
        pytest.skip(f"results.json's E6 was made with numpy {made_with['numpy']}, this is {numpy.__version__}")
    assert made_with["blas"] == AS_PINNED
    block = results["E6_general"]
    shipped = block["cells"]["mnist_2layers@100"]["loss_mean"]["rmsprop"]
    environment = {k: v for k, v in os.environ.items() if k not in PINNED}
    out = subprocess.run([sys.executable, "-c", CELL, str(block["eval_seed"])], env=environment, check=True,
                         capture_output=True, text=True).stdout
    loss, ran_with = json.loads(out)
    assert ran_with == AS_PINNED
    assert loss == shipped
