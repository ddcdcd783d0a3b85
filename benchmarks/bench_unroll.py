r"""Time and memory of a 20-step unroll and its meta-gradient, and of six ways to write the cell.

Part 1, the learned optimizers on MNIST. The learner is metalstm_np.learners.MLP(hidden=(20,),
activation="sigmoid", batch=128): n = 15,910 parameters. For each optimizer -- l2l() (Andrychowicz
et al. 2016: two coordinatewise LSTM layers of 20 units) and meta_lstm() (Ravi & Larochelle 2017),
each with dtype="float64" and dtype="float32" -- it measures

    forward      unroll.meta_loss(opt, φ, task, steps=20)              (no gradient)
    meta-grad    unroll.meta_value_and_grad(opt, φ, task, steps=20)    (meta-loss and ∂/∂φ)

and reports seconds, microseconds per coordinate-step (seconds / (n · T) · 1e6, T = 20), the ratio
meta-grad / forward and peak memory. Both passes include the learner's own 21 minibatch gradients;
a reference row with hand-designed SGD (φ = its two hyperparameters) shows what they cost alone.
Targets, printed and never asserted: meta-gradient time ≤ 2.5 × forward (judged on the ratio of the
best wall-clock times; the CPU-time ratio is printed beside it) and meta-gradient peak memory
< 2 GB (judged on the absolute peak, which includes the MNIST arrays).

Part 2 (--cell-variants, on by default), the cell alone: a self-contained two-layer coordinatewise
LSTM (H = 20 per layer) run for T = 20 steps over fixed random inputs x_t of shape (n, 2),
n = 15,910, with the scalar Σ_t Σ_k (h_t^{(2)} w)_k as output. Forward and gradient (with respect to
both layers' weights) for six ways of writing the same cell:

    (a) library      metalstm_np.lstm.lstm_cell: [x; h] concatenated, four matrix products,
                     σ a primitive computed as (1 + tanh(a/2)) / 2 with σ' = σ(1 − σ),
                     tanh a primitive with tanh' = 1 − tanh²
    (b) np.tanh      as (a) with autograd's np.tanh (its derivative is 1 / cosh²)
    (c) fused        one (D + H, 4H) matrix, its product sliced into the four gates
    (d) 1/(1+e^-a)   as (a) with the composite sigmoid 1 / (1 + exp(−a))
    (e) no concat    x W_x + h W_h instead of [x; h] W
    (f) expit        as (a) with σ = autograd.scipy.special.expit (the library's σ until 2026-11-30)

All six compute the same function from the same weights (the script checks the outputs and the
gradients against (a) and prints the largest difference).

Part 3, σ alone: scipy's expit against the library's (1 + tanh(a/2)) / 2 on an (n, 20) array, in
float64 and float32, milliseconds per call and their largest difference.

How it is measured. Memory first: tracemalloc is started before anything is loaded (numpy reports
its array allocations to it), and every pass is run once from a tracemalloc.reset_peak(); "peak MB"
is the peak traced memory above what was already allocated at the reset, "abs MB" the peak
including it. That single traced run also warms the caches. Then tracemalloc is stopped (it slows
allocation down) and every pass is timed --repeats times, round-robin over the rows of a table (row
1 forward, row 1 gradient, row 2 forward, ..., then again) so that a change in the machine's load
falls on every row alike. The tables give the best and the median wall-clock time
(time.perf_counter) and the best CPU time of the process (time.process_time), which other jobs on
a shared machine disturb less, and the ratio of each. Memory that BLAS allocates for itself is not
traced. Seeds are fixed.

BLAS runs on one thread unless OPENBLAS_NUM_THREADS, OMP_NUM_THREADS or MKL_NUM_THREADS is set
(then all three are left alone). The products here are small ((n, 40) @ (40, 20) at most), and on
the shared 2-core machine, with another job running, a second BLAS thread made every pass of the
cell benchmark 2-3 times slower. To time the threaded BLAS, set e.g. OPENBLAS_NUM_THREADS=2.

Run from the repository root:

    PYTHONPATH=. python benchmarks/bench_unroll.py                    # full: 3 repeats, ~4 minutes
    PYTHONPATH=. python benchmarks/bench_unroll.py --quick            # 1 repeat, ~2 minutes
    PYTHONPATH=. python benchmarks/bench_unroll.py --no-cell-variants --json bench.json
"""
import os

# BLAS on one thread unless the caller chose: must happen before numpy is imported. See the docstring.
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
BLAS_THREADS_SET_HERE = not any(v in os.environ for v in THREAD_VARS)
if BLAS_THREADS_SET_HERE:
    os.environ.update({v: "1" for v in THREAD_VARS})

import argparse  # noqa: E402  (the imports below come after the thread setting on purpose)
import gc
import importlib.metadata
import json
import platform
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass
from typing import Callable

import autograd.numpy as np
import numpy
from autograd import value_and_grad
from autograd.scipy.special import expit

from metalstm_np.l2l import l2l
from metalstm_np.learners import MLP
from metalstm_np.lstm import init_lstm, lstm_cell, lstm_zero_state, sigmoid, tanh
from metalstm_np.meta_lstm import meta_lstm
from metalstm_np.optimizers import sgd
from metalstm_np.unroll import meta_loss, meta_value_and_grad

T = 20                     # unroll length
SEED_TASK = 0              # the MNIST task: θ^0 and the minibatch order
SEED_PHI = 1               # the optimizers' initial φ
SEED_CELL = 2              # the cell benchmark's weights and inputs
TARGET_RATIO = 2.5         # meta-gradient time / forward time, at most
TARGET_BYTES = 2 * 2**30   # meta-gradient peak memory, under
MB = 2**20


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------

def traced_peak(fn):
    """Run fn() once from a tracemalloc.reset_peak(); returns (result, bytes above the memory
    traced at the reset, absolute peak bytes)."""
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    result = fn()
    peak = tracemalloc.get_traced_memory()[1]
    return result, peak - before, peak


def timed(fn):
    """(wall-clock seconds, CPU seconds of this process) taken by one call of fn()."""
    gc.collect()
    start, start_cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - start_cpu


@dataclass
class Case:
    """One row of a table: a forward pass and its gradient, both closures without arguments."""

    label: dict                # what the row is: {"optimizer": ..., "dtype": ...} or {"variant": ...}
    forward: Callable          # () -> anything; timed, no gradient
    gradient: Callable         # () -> anything; timed, value and gradient
    n: int                     # coordinates, for µs per coordinate-step
    check: Callable = None     # (forward result, gradient result) -> dict of sanity numbers


def measure_memory(case):
    """The traced run of both passes (also the warm-up); fills the memory columns."""
    out_f, fwd_bytes, fwd_abs = traced_peak(case.forward)
    out_g, grad_bytes, grad_abs = traced_peak(case.gradient)
    row = dict(case.label, n=case.n, steps=T, forward_peak_bytes=fwd_bytes,
               forward_peak_abs_bytes=fwd_abs, gradient_peak_bytes=grad_bytes,
               gradient_peak_abs_bytes=grad_abs)
    if case.check is not None:
        row.update(case.check(out_f, out_g))
    return row


def measure_times(cases, rows, repeats):
    """`repeats` timed runs of each pass of each case, round-robin (case 1 forward, case 1 gradient,
    case 2 forward, ..., then again), so that a change in the machine's load falls on every case
    alike; fills the time columns of `rows`."""
    runs = [{"forward": [], "gradient": [], "forward_cpu": [], "gradient_cpu": []} for _ in cases]
    for _ in range(repeats):
        for case, run in zip(cases, runs):
            for name, fn in (("forward", case.forward), ("gradient", case.gradient)):
                wall, cpu = timed(fn)
                run[name].append(wall)
                run[name + "_cpu"].append(cpu)
    for case, run, row in zip(cases, runs, rows):
        fwd, grad = run["forward"], run["gradient"]
        per_coordinate_step = 1e6 / (case.n * T)
        row.update(
            forward_seconds=fwd, gradient_seconds=grad,
            forward_cpu_seconds=run["forward_cpu"], gradient_cpu_seconds=run["gradient_cpu"],
            forward_best=min(fwd), forward_median=statistics.median(fwd),
            gradient_best=min(grad), gradient_median=statistics.median(grad),
            forward_cpu_best=min(run["forward_cpu"]), gradient_cpu_best=min(run["gradient_cpu"]),
            forward_us_per_coordinate_step=min(fwd) * per_coordinate_step,
            gradient_us_per_coordinate_step=min(grad) * per_coordinate_step,
            ratio_best=min(grad) / min(fwd),
            ratio_median=statistics.median(grad) / statistics.median(fwd),
            ratio_cpu_best=min(run["gradient_cpu"]) / min(run["forward_cpu"]))


# ---------------------------------------------------------------------------------------------
# Part 1: the learned optimizers on the MNIST MLP
# ---------------------------------------------------------------------------------------------

def optimizer_cases(task, n):
    """l2l and meta_lstm in float64 and float32, and SGD as the learner-only reference."""
    optimizers = [(l2l(dtype=d), d) for d in ("float64", "float32")]
    optimizers += [(meta_lstm(dtype=d), d) for d in ("float64", "float32")]
    optimizers += [(sgd, "float64")]
    cases = []
    for opt, dtype in optimizers:
        phi = opt.init_phi(numpy.random.default_rng(SEED_PHI))

        def check(out_f, out_g):
            (value_f, _), (value_g, _, _) = out_f, out_g
            return {"meta_loss": float(value_f), "meta_loss_from_gradient_pass": float(value_g)}

        cases.append(Case(
            label={"optimizer": opt.name, "dtype": dtype, "reference": not opt.learned},
            forward=lambda opt=opt, phi=phi: meta_loss(opt, phi, task, steps=T),
            gradient=lambda opt=opt, phi=phi: meta_value_and_grad(opt, phi, task, steps=T),
            n=n, check=check))
    return cases


# ---------------------------------------------------------------------------------------------
# Part 2: six ways to write the cell, on a self-contained two-layer unroll
# ---------------------------------------------------------------------------------------------

def composite_sigmoid(a):
    r"""σ(a) = 1 / (1 + exp(−a)), three operations for autograd to differentiate."""
    return 1.0 / (1.0 + np.exp(-a))


def cell_with(sigma, tanh_):
    r"""The library's cell, lstm.lstm_cell, with its σ and tanh replaced (variants (b), (d), (f))."""
    def cell(params, x, h, c):
        xh = np.concatenate([x, h], axis=1)                    # (n, D + H)
        z = tanh_(xh @ params["W"] + params["b"])              # (n, H)
        z_i = sigma(xh @ params["W_i"] + params["b_i"])        # (n, H)
        z_f = sigma(xh @ params["W_f"] + params["b_f"])        # (n, H)
        z_o = sigma(xh @ params["W_o"] + params["b_o"])        # (n, H)
        c = z_f * c + z_i * z
        h = z_o * tanh_(c)
        return h, c
    return cell


cell_np_tanh = cell_with(sigmoid, np.tanh)      # (b) autograd's np.tanh, rule tanh'(a) = 1 / cosh²(a)
cell_composite_sigmoid = cell_with(composite_sigmoid, tanh)   # (d) σ(a) = 1 / (1 + exp(−a)) written out
cell_expit = cell_with(expit, tanh)             # (f) scipy's σ, autograd.scipy.special.expit


def cell_fused(params, x, h, c):
    r"""(c) [z, z^i, z^f, z^o] from one product [x; h] W_4 + b_4, W_4 = [W, W^i, W^f, W^o]: (D + H, 4H)."""
    H = h.shape[1]
    a = np.concatenate([x, h], axis=1) @ params["W_4"] + params["b_4"]   # (n, 4H)
    z = tanh(a[:, :H])                                                   # (n, H)
    z_i = sigmoid(a[:, H:2 * H])
    z_f = sigmoid(a[:, 2 * H:3 * H])
    z_o = sigmoid(a[:, 3 * H:])
    c = z_f * c + z_i * z
    h = z_o * tanh(c)
    return h, c


def cell_no_concat(params, x, h, c):
    r"""(e) W [x; h] written as x W_x + h W_h (W_x: the first D rows of W, W_h: the last H)."""
    z = tanh(x @ params["W_x"] + h @ params["W_h"] + params["b"])              # (n, H)
    z_i = sigmoid(x @ params["W_ix"] + h @ params["W_ih"] + params["b_i"])     # (n, H)
    z_f = sigmoid(x @ params["W_fx"] + h @ params["W_fh"] + params["b_f"])     # (n, H)
    z_o = sigmoid(x @ params["W_ox"] + h @ params["W_oh"] + params["b_o"])     # (n, H)
    c = z_f * c + z_i * z
    h = z_o * tanh(c)
    return h, c


GATES = ("", "_i", "_f", "_o")      # W, W_i, W_f, W_o and b, b_i, b_f, b_o


def to_fused(p):
    return {"W_4": numpy.concatenate([p["W" + g] for g in GATES], axis=1),
            "b_4": numpy.concatenate([p["b" + g] for g in GATES])}


def from_fused(p):
    W, b = numpy.split(p["W_4"], 4, axis=1), numpy.split(p["b_4"], 4)
    return {**{"W" + g: w for g, w in zip(GATES, W)}, **{"b" + g: v for g, v in zip(GATES, b)}}


def to_no_concat(p, D):
    out = {"b" + g: p["b" + g] for g in GATES}
    for g in GATES:
        out["W" + g + "x" if g else "W_x"] = p["W" + g][:D]
        out["W" + g + "h" if g else "W_h"] = p["W" + g][D:]
    return out


def from_no_concat(p):
    out = {"b" + g: p["b" + g] for g in GATES}
    for g in GATES:
        x_part, h_part = (p["W" + g + "x"], p["W" + g + "h"]) if g else (p["W_x"], p["W_h"])
        out["W" + g] = numpy.concatenate([x_part, h_part], axis=0)
    return out


# name, cell, φ in the library's layout -> this variant's layout (per layer, given D), and back
VARIANTS = [
    ("(a) library", lstm_cell, lambda p, D: p, lambda p: p),
    ("(b) np.tanh", cell_np_tanh, lambda p, D: p, lambda p: p),
    ("(c) fused", cell_fused, lambda p, D: to_fused(p), from_fused),
    ("(d) 1/(1+e^-a)", cell_composite_sigmoid, lambda p, D: p, lambda p: p),
    ("(e) no concat", cell_no_concat, to_no_concat, from_no_concat),
    ("(f) expit", cell_expit, lambda p, D: p, lambda p: p),
]


def cell_unroll(cell, layers, xs, w, hidden):
    r"""Σ_t Σ_k (h_t^{(2)} w)_k for a coordinatewise LSTM with one layer per entry of `layers`,
    run over the inputs xs[t] of shape (n, D) for t = 1, ..., T from zero states."""
    n, dtype = xs.shape[1], xs.dtype
    states = [lstm_zero_state(n, H, dtype) for H in hidden]
    total = 0.0
    for x in xs:                                           # x: (n, D)
        new_states = []
        for params, (h, c) in zip(layers, states):
            h, c = cell(params, x, h, c)                   # (n, H) each
            new_states.append((h, c))
            x = h
        states = new_states
        total = total + np.sum(x @ w)
    return total


def cell_cases(n, hidden=(20, 20), D=2):
    """The six variants in float64 and float32, from the same weights and inputs."""
    rng = numpy.random.default_rng(SEED_CELL)
    base, d = [], D
    for H in hidden:
        base.append(init_lstm(rng, d, H))
        d = H
    xs64 = rng.standard_normal((T, n, D))                  # (T, n, D)
    w64 = rng.uniform(-1.0, 1.0, hidden[-1]) / numpy.sqrt(hidden[-1])
    reference = {}                                         # dtype -> (value, gradient) of (a)
    cases = []
    for dtype in ("float64", "float32"):
        xs, w = xs64.astype(dtype), w64.astype(dtype)
        for name, cell, convert, convert_back in VARIANTS:
            dims = [D, *hidden[:-1]]
            layers = [{k: v.astype(dtype) for k, v in convert(p, dd).items()}
                      for p, dd in zip(base, dims)]
            loss = lambda layers, cell=cell, xs=xs, w=w: cell_unroll(cell, layers, xs, w, hidden)

            def check(out_f, out_g, dtype=dtype, name=name, convert_back=convert_back):
                value, grads = out_g
                flat = numpy.concatenate([numpy.ravel(g[k]) for g in map(convert_back, grads)
                                          for k in sorted(g)])
                if name.startswith("(a)"):
                    reference[dtype] = (float(value), flat)
                ref_value, ref_flat = reference[dtype]
                return {"value": float(value), "forward_value": float(out_f),
                        "value_rel_diff_vs_a": abs(float(value) - ref_value) / abs(ref_value),
                        "gradient_rel_diff_vs_a": float(numpy.max(numpy.abs(flat - ref_flat))
                                                        / numpy.max(numpy.abs(ref_flat)))}

            cases.append(Case(label={"variant": name, "dtype": dtype},
                              forward=lambda loss=loss, layers=layers: loss(layers),
                              gradient=lambda loss=loss, layers=layers: value_and_grad(loss)(layers),
                              n=n, check=check))
    return cases


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------

def environment():
    threads = {k: os.environ[k] for k in THREAD_VARS if k in os.environ}
    try:
        autograd_version = importlib.metadata.version("autograd")
    except importlib.metadata.PackageNotFoundError:
        autograd_version = "unknown"
    return {"python": platform.python_version(), "numpy": numpy.__version__,
            "autograd": autograd_version, "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "thread_env": threads,
            "thread_env_set_by_script": BLAS_THREADS_SET_HERE,
            "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None}


def yes_no(ok):
    return "met" if ok else "NOT met"


def print_table(rows, columns):
    """Print rows under two header lines; columns: [(title, subtitle, row -> str), ...]."""
    cells = [[fmt(r) for _, _, fmt in columns] for r in rows]
    widths = [max(len(title), len(sub), *(len(c[k]) for c in cells))
              for k, (title, sub, _) in enumerate(columns)]
    line = lambda items: "  ".join(f"{x:<{w}}" if k < 2 else f"{x:>{w}}"
                                   for k, (x, w) in enumerate(zip(items, widths))).rstrip()
    print(line([title for title, _, _ in columns]))
    print(line([sub for _, sub, _ in columns]))
    print("-" * len(line([title for title, _, _ in columns])))
    for c in cells:
        print(line(c))


def time_columns(gradient_title):
    """Columns shared by both tables: times, their ratio, peak memory."""
    return [
        ("forward s", "best / med / cpu",
         lambda r: f"{r['forward_best']:.3f} / {r['forward_median']:.3f} / "
                   f"{r['forward_cpu_best']:.3f}"),
        (gradient_title, "best / med / cpu",
         lambda r: f"{r['gradient_best']:.3f} / {r['gradient_median']:.3f} / "
                   f"{r['gradient_cpu_best']:.3f}"),
        ("ratio", "best / med / cpu",
         lambda r: f"{r['ratio_best']:.2f} / {r['ratio_median']:.2f} / {r['ratio_cpu_best']:.2f}"),
        ("peak MB", "fwd / grad",
         lambda r: f"{r['forward_peak_bytes'] / MB:.0f} / {r['gradient_peak_bytes'] / MB:.0f}"),
    ]


RATIO_NOTE = ("Times: best and median wall-clock, best CPU time of this process (less disturbed by "
              "other jobs).\nratio: gradient time / forward time, of each of the three.\n"
              "peak MB: traced peak above the memory already allocated when the pass started.")


def print_optimizer_table(rows, repeats):
    print(f"Part 1: {T}-step unroll on the MNIST MLP (n = {rows[0]['n']:,}), "
          f"wall-clock seconds over {repeats} run(s)")
    columns = [("optimizer", "", lambda r: r["optimizer"] + (" (ref)" if r["reference"] else "")),
               ("dtype", "", lambda r: r["dtype"])]
    columns += time_columns("meta-grad s")
    columns.insert(4, ("µs/coord-step", "fwd / grad",
                       lambda r: f"{r['forward_us_per_coordinate_step']:.2f} / "
                                 f"{r['gradient_us_per_coordinate_step']:.2f}"))
    columns.append(("abs MB", "grad", lambda r: f"{r['gradient_peak_abs_bytes'] / MB:.0f}"))
    print_table(rows, columns)
    print("µs/coord-step: best time / (n · T) · 1e6.")
    print(RATIO_NOTE)
    print("abs MB: the meta-gradient's traced peak including what was allocated before (MNIST, φ).")
    print("(ref): hand-designed SGD, φ = {lr, weight_decay}: the learner's own cost, which every "
          "row includes.")
    print()
    print(f"Targets: meta-gradient ≤ {TARGET_RATIO}× forward (best-of-{repeats} wall-clock ratio); "
          f"meta-gradient peak < {TARGET_BYTES / 2**30:.0f} GB (abs MB)")
    for r in rows:
        if r["reference"]:
            continue
        print(f"  {r['optimizer']:<9} {r['dtype']:<8} "
              f"time: {yes_no(r['target_ratio_met']):<8} ({r['ratio_best']:.2f}×; "
              f"on CPU time {r['ratio_cpu_best']:.2f}×)   "
              f"memory: {yes_no(r['target_memory_met']):<8} ({r['gradient_peak_abs_bytes'] / MB:.0f} MB)")
    print()


def print_cell_table(rows, repeats):
    print(f"Part 2: the cell alone, two layers of H = 20, T = {T} steps, n = {rows[0]['n']:,}, "
          f"wall-clock seconds over {repeats} run(s)")
    columns = [("variant", "", lambda r: r["variant"]), ("dtype", "", lambda r: r["dtype"])]
    columns += time_columns("gradient s")
    difference = lambda r: max(r["value_rel_diff_vs_a"], r["gradient_rel_diff_vs_a"])
    columns.append(("vs (a)", "max rel", lambda r: f"{difference(r):.1e}"))
    print_table(rows, columns)
    print(RATIO_NOTE)
    print("vs (a): largest difference from (a) of the output and of the gradient, relative to "
          "(a)'s largest.")
    for dtype in ("float64", "float32"):
        same = [r for r in rows if r["dtype"] == dtype]
        for what in ("gradient", "forward"):
            wall = min(same, key=lambda r: r[what + "_best"])
            cpu = min(same, key=lambda r: r[what + "_cpu_best"])
            print(f"  fastest {what:<8} in {dtype}: {wall['variant']} by wall-clock "
                  f"({wall[what + '_best']:.3f} s), {cpu['variant']} by CPU time "
                  f"({cpu[what + '_cpu_best']:.3f} s)")
    print()


def time_sigmoids(n, H=20, calls=50, repeats=3):
    r"""Part 3: σ alone on an (n, H) array of N(0, 2²) values, scipy's expit against the library's
    (1 + tanh(a/2)) / 2: best of `repeats` of `calls` calls, milliseconds per call."""
    a64 = numpy.random.default_rng(SEED_CELL).normal(0.0, 2.0, size=(n, H))
    rows = []
    for dtype in ("float64", "float32"):
        a = a64.astype(dtype)
        row = {"dtype": dtype}
        for name, fn in (("expit", expit), ("library", sigmoid)):
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                for _ in range(calls):
                    fn(a)
                best = min(best, time.perf_counter() - start)
            row[name + "_ms"] = 1e3 * best / calls
        row["max_abs_difference"] = float(numpy.max(numpy.abs(expit(a).astype(float) - sigmoid(a).astype(float))))
        rows.append(row)
    print(f"Part 3: σ alone on an ({n:,}, {H}) array, milliseconds per call (best of {repeats} × {calls} calls)")
    print(f"{'dtype':<8} {'expit':>8} {'library':>8} {'ratio':>6}  max |difference|")
    for r in rows:
        print(f"{r['dtype']:<8} {r['expit_ms']:8.3f} {r['library_ms']:8.3f} "
              f"{r['expit_ms'] / r['library_ms']:6.1f}  {r['max_abs_difference']:.1e}")
    print("library: σ(a) = (1 + tanh(a/2)) / 2 (metalstm_np.lstm.sigmoid); expit: scipy.special.expit")
    print()
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one timed repeat per pass")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed repeats per pass (default 3, or 1 with --quick)")
    parser.add_argument("--cell-variants", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the six ways of writing the cell (default: on)")
    parser.add_argument("--json", metavar="FILE", help="write every number to FILE")
    args = parser.parse_args(argv)
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    if repeats < 1:
        parser.error("--repeats must be at least 1")
    started = time.perf_counter()

    tracemalloc.start()      # before MNIST is loaded, so that the absolute peaks include it
    family = MLP(hidden=(20,), activation="sigmoid", batch=128)
    task = family.sample(numpy.random.default_rng(SEED_TASK))
    n = family.n_params
    env = environment()
    threads = ", ".join(f"{k}={v}" for k, v in env["thread_env"].items())
    load = env["load_average_at_start"]
    print(f"bench_unroll: python {env['python']}, numpy {env['numpy']}, autograd {env['autograd']}, "
          f"{env['cpu_count']} CPUs, load average {load[0]:.1f} at start; {threads}"
          f"{' (set by the script)' if env['thread_env_set_by_script'] else ''}; "
          f"repeats {repeats}")
    print()

    parts = [("optimizers", optimizer_cases(task, n))]
    if args.cell_variants:
        parts.append(("cell_variants", cell_cases(n)))
    phase = time.perf_counter()
    results = {name: [measure_memory(case) for case in cases] for name, cases in parts}
    tracemalloc.stop()
    memory_seconds, phase = time.perf_counter() - phase, time.perf_counter()
    for name, cases in parts:
        measure_times(cases, results[name], repeats)
    timing_seconds = time.perf_counter() - phase
    for r in results["optimizers"]:
        r["target_ratio_met"] = r["ratio_best"] <= TARGET_RATIO
        r["target_memory_met"] = r["gradient_peak_abs_bytes"] < TARGET_BYTES

    print_optimizer_table(results["optimizers"], repeats)
    if args.cell_variants:
        print_cell_table(results["cell_variants"], repeats)
    results["sigmoid"] = time_sigmoids(n, repeats=max(repeats, 3))
    total = time.perf_counter() - started
    print(f"total {total:.0f} s (traced memory runs {memory_seconds:.0f} s, timed runs "
          f"{timing_seconds:.0f} s); load average {os.getloadavg()[0]:.1f} at the end")

    if args.json:
        report = {"config": {"steps": T, "n": n, "learner": "MLP(hidden=(20,), activation='sigmoid', "
                                                         "batch=128)",
                             "repeats": repeats, "seeds": {"task": SEED_TASK, "phi": SEED_PHI,
                                                           "cell": SEED_CELL},
                             "target_ratio": TARGET_RATIO, "target_bytes": TARGET_BYTES},
                  "environment": env, **results, "total_seconds": total,
                  "memory_phase_seconds": memory_seconds, "timing_phase_seconds": timing_seconds}
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
