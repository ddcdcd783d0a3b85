"""blas.py: importing metalstm_np pins the BLAS kernels and threads before NumPy loads, so that the
shipped numbers come out the same, to the last bit, on any x86-64 machine with AVX2."""
import os
import platform
import subprocess
import sys

from metalstm_np import blas

AVX2 = {"avx2", "fma", "sse2"}
PINNED = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
          "OPENBLAS_CORETYPE": "Haswell"}


def test_on_an_x86_64_cpu_with_avx2_the_threads_and_the_kernels_are_pinned():
    assert blas.pinned_environment({}, "x86_64", AVX2) == PINNED
    assert blas.pinned_environment({"PATH": "/bin"}, "AMD64", AVX2) == PINNED


def test_a_variable_the_caller_set_is_left_alone():
    threads = {"OPENBLAS_NUM_THREADS": "2"}
    assert blas.pinned_environment(threads, "x86_64", AVX2) == {"OPENBLAS_CORETYPE": "Haswell"}
    assert blas.pinned_environment({"OMP_NUM_THREADS": "4"}, "x86_64", AVX2) == {"OPENBLAS_CORETYPE": "Haswell"}
    kernels = {"OPENBLAS_CORETYPE": "SkylakeX"}
    assert blas.pinned_environment(kernels, "x86_64", AVX2) == {v: "1" for v in blas.THREAD_VARS}


def test_the_kernels_are_not_forced_on_a_cpu_that_cannot_run_them():
    threads_only = {v: "1" for v in blas.THREAD_VARS}
    assert blas.pinned_environment({}, "x86_64", {"sse2", "avx"}) == threads_only      # no AVX2
    assert blas.pinned_environment({}, "x86_64", {"avx2"}) == threads_only              # no FMA
    assert blas.pinned_environment({}, "aarch64", AVX2) == threads_only
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
    assert set(added) <= {"OPENBLAS_CORETYPE"}
    assert blas.pin(environ) == {}                   # a second time, nothing more


def _clean_environment():
    return {k: v for k, v in os.environ.items() if k not in PINNED}


def test_importing_metalstm_np_pins_the_environment_before_numpy_loads():
    code = ("import sys, os, metalstm_np; "
            "print(int('numpy' in sys.modules), *[os.environ.get(v, '-') for v in sys.argv[1:]])")
    out = subprocess.run([sys.executable, "-c", code, *PINNED], env=_clean_environment(), check=True,
                         capture_output=True, text=True).stdout.split()
    expected_core = "Haswell" if (platform.machine() in ("x86_64", "AMD64")
                                  and {"avx2", "fma"} <= blas.cpu_flags()) else "-"
    assert out == ["1", "1", "1", "1", expected_core]
