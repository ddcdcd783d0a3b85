"""blas.py: importing metalstm_np pins the BLAS kernels and threads before NumPy loads, so that the
shipped numbers come out the same, to the last bit, on machines of the same kind."""
import json
import os
import platform
import subprocess
import sys

import pytest

from metalstm_np import blas

AVX2_FMA = {"avx2", "fma", "sse2"}
PINNED = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
          "OPENBLAS_CORETYPE": "Haswell", "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"}
KERNELS = {k: PINNED[k] for k in ("OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES")}


def test_on_an_x86_64_cpu_with_avx2_the_threads_and_the_kernels_are_pinned():
    assert blas.pinned_environment({}, "x86_64", AVX2_FMA) == PINNED
    assert blas.pinned_environment({"PATH": "/bin"}, "x86_64", AVX2_FMA) == PINNED


def test_a_variable_the_caller_set_is_left_alone():
    threads = {"OPENBLAS_NUM_THREADS": "2"}
    assert blas.pinned_environment(threads, "x86_64", AVX2_FMA) == {
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **KERNELS}
    assert blas.pinned_environment({"OMP_NUM_THREADS": "4"}, "x86_64", AVX2_FMA) == KERNELS


def test_a_thread_count_for_one_blas_library_leaves_the_other_pinned():
    # OpenBLAS reads OPENBLAS_NUM_THREADS, then OMP_NUM_THREADS; MKL reads MKL_NUM_THREADS, then
    # OMP_NUM_THREADS: a caller's MKL_NUM_THREADS says nothing about OpenBLAS
    mkl = blas.pinned_environment({"MKL_NUM_THREADS": "8"}, "aarch64", set())
    assert mkl == {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    both = {"MKL_NUM_THREADS": "8", "OPENBLAS_NUM_THREADS": "2"}
    assert blas.pinned_environment(both, "aarch64", set()) == {"OMP_NUM_THREADS": "1"}
    assert blas.pinned_environment({"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "8"}, "aarch64", set()) == {}
    kernels = {"OPENBLAS_CORETYPE": "SkylakeX", "NPY_DISABLE_CPU_FEATURES": ""}
    assert blas.pinned_environment(kernels, "x86_64", AVX2_FMA) == {v: "1" for v in blas.THREAD_VARS}
    assert blas.pinned_environment({"OPENBLAS_CORETYPE": "Zen"}, "x86_64", AVX2_FMA) == {
        **{v: "1" for v in blas.THREAD_VARS}, "NPY_DISABLE_CPU_FEATURES": blas.NUMPY_AVX512}


def test_numpy_s_loops_are_left_alone_where_the_names_of_its_levels_are_not_known():
    older = blas.pinned_environment({}, "x86_64", AVX2_FMA, numpy=(2, 3))
    assert older == {k: v for k, v in PINNED.items() if k != "NPY_DISABLE_CPU_FEATURES"}
    assert blas.pinned_environment({}, "x86_64", AVX2_FMA, numpy=(3, 0)) == PINNED
    import numpy
    assert blas.numpy_version() == tuple(int(part) for part in numpy.__version__.split(".")[:2])


def test_the_kernels_are_not_forced_on_a_cpu_that_cannot_run_them():
    threads_only = {v: "1" for v in blas.THREAD_VARS}
    assert blas.pinned_environment({}, "x86_64", {"sse2", "avx"}) == threads_only      # no AVX2
    assert blas.pinned_environment({}, "x86_64", {"avx2"}) == threads_only              # no FMA
    assert blas.pinned_environment({}, "aarch64", AVX2_FMA) == threads_only
    assert blas.pinned_environment({}, "arm64", set()) == threads_only


def test_cpu_flags_reads_the_first_flags_line(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 avx2 fma\n\n"
                       "processor\t: 1\nflags\t\t: fpu\n")
    assert blas.cpu_flags(cpuinfo) == {"fpu", "sse2", "avx2", "fma"}
    assert blas.cpu_flags(tmp_path / "missing") == set()
    (tmp_path / "empty").write_text("processor\t: 0\n")
    assert blas.cpu_flags(tmp_path / "empty") == set()


def test_pin_adds_to_the_environment_it_is_given_and_says_what_it_added():
    environ = {"OPENBLAS_NUM_THREADS": "3"}
    added = blas.pin(environ)
    assert environ == {"OPENBLAS_NUM_THREADS": "3", **added}
    assert set(added) <= {"OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES"}
    assert blas.pin(environ) == {}                   # a second time, nothing more


def _clean_environment():
    return {k: v for k, v in os.environ.items() if k not in PINNED}


def test_importing_metalstm_np_pins_blas_before_numpy_loads():
    code = "import json, metalstm_np.blas as b; print(json.dumps(b.in_use()))"
    got = json.loads(subprocess.run([sys.executable, "-c", code], env=_clean_environment(), check=True,
                                    capture_output=True, text=True).stdout)
    if got["openblas_core"] is None:
        pytest.skip("NumPy's BLAS here is not an OpenBLAS whose kernels can be read")
    assert got["openblas_threads"] == 1
    if platform.machine() == "x86_64" and {"avx2", "fma"} <= blas.cpu_flags():
        assert got["openblas_core"] == "Haswell"
        assert got["numpy_simd"] == "X86_V3" or blas.numpy_version() < (2, 4)      # AVX2


def test_a_callers_mkl_thread_count_leaves_openblas_on_one_thread():
    code = "import json, metalstm_np.blas as b; print(json.dumps(b.in_use()))"
    got = json.loads(subprocess.run([sys.executable, "-c", code], env={**_clean_environment(), "MKL_NUM_THREADS": "4"},
                                    check=True, capture_output=True, text=True).stdout)
    if got["openblas_core"] is None:
        pytest.skip("NumPy's BLAS here is not an OpenBLAS whose kernels can be read")
    assert got["openblas_threads"] == 1


def test_a_program_that_loaded_numpy_first_keeps_its_blas_and_in_use_reports_what_runs():
    code = ("import json, os, numpy, metalstm_np.blas as b; "
            "print(json.dumps([b.in_use(), os.environ.get('OPENBLAS_NUM_THREADS')]))")
    got, variable = json.loads(subprocess.run([sys.executable, "-c", code], env=_clean_environment(), check=True,
                                              capture_output=True, text=True).stdout)
    if got["openblas_core"] is None:
        pytest.skip("NumPy's BLAS here is not an OpenBLAS whose kernels can be read")
    assert variable == "1"                                   # set for the worker processes, too late here
    assert got["openblas_threads"] == min(len(os.sched_getaffinity(0)), 64)     # OpenBLAS's own default


def test_an_inherited_coretype_of_ours_is_dropped_on_a_cpu_without_avx2(monkeypatch):
    monkeypatch.setattr(blas, "cpu_flags", lambda: {"sse2", "avx"})
    environ = {"OPENBLAS_CORETYPE": "Haswell", "OMP_NUM_THREADS": "1"}
    blas.pin(environ)
    assert environ == {"OMP_NUM_THREADS": "1"}
    environ = {"OPENBLAS_CORETYPE": "Sandybridge", "OMP_NUM_THREADS": "1"}     # the caller's own: kept
    blas.pin(environ)
    assert environ == {"OPENBLAS_CORETYPE": "Sandybridge", "OMP_NUM_THREADS": "1"}
