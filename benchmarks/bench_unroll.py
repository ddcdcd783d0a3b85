r"""Time and memory of a 20-step unroll and its meta-gradient, and of five ways to write the LSTM cell.

Part 1, the learned optimizers on MNIST. The learner is metalstm_np.learners.MLP(hidden=(20,),
activation="sigmoid", batch=128): n = 15,910 parameters. For each optimizer -- l2l() (Andrychowicz
et al. 2016: two coordinatewise LSTM layers of 20 units) and meta_lstm() (Ravi & Larochelle 2017),
each with dtype="float64" and dtype="float32" -- it measures

    forward      unroll.meta_loss(opt, φ, task, steps=20)              (no gradient)
    meta-grad    unroll.meta_value_and_grad(opt, φ, task, steps=20)    (meta-loss and ∂/∂φ)

and reports seconds (best and median of --repeats runs), microseconds per coordinate-step
(seconds / (n · T) · 1e6, T = 20), the ratio meta-grad / forward (best / best and median / median),
and peak memory. Both passes include the learner's own 21 minibatch gradients; a reference row with
hand-designed SGD (φ = its two hyperparameters) shows what that costs alone. Targets, printed and
never asserted: meta-gradient time ≤ 2.5 × forward (judged on the best-of-N ratio) and meta-gradient
peak memory < 2 GB (judged on the absolute peak, which includes the MNIST arrays).

Part 2 (--cell-variants, on by default), the cell alone: a self-contained two-layer coordinatewise
LSTM (H = 20 per layer) run for T = 20 steps over fixed random inputs x_t of shape (n, 2),
n = 15,910, with the scalar Σ_t Σ_k (h_t^{(2)} w)_k as output. Forward and gradient (with respect to
both layers' weights) for five ways of writing the same cell:

    (a) library      metalstm_np.lstm.lstm_cell: [x; h] concatenated, four matrix products,
                     σ = autograd.scipy.special.expit, tanh a primitive with tanh' = 1 − tanh²
    (b) np.tanh      as (a) with autograd's np.tanh (its derivative is 1 / cosh²)
    (c) fused        one (D + H, 4H) matrix, its product sliced into the four gates
    (d) 1/(1+e^-a)   as (a) with the composite sigmoid 1 / (1 + exp(−a))
    (e) no concat    x W_x + h W_h instead of [x; h] W

All five compute the same function from the same weights (the script checks the outputs and the
gradients against (a) and prints the largest difference).

How it is measured. Memory first: tracemalloc is started before anything is loaded (numpy reports
its array allocations to it), and every pass is run once from a tracemalloc.reset_peak(); "peak MB"
is the peak traced memory above what was already allocated at the reset, "abs MB" the peak
including it. That single traced run also warms the caches. Then tracemalloc is stopped (it slows
allocation down) and every pass is timed --repeats times with time.perf_counter, forward and
gradient interleaved. Memory that BLAS allocates for itself is not traced. Seeds are fixed.

Run from the repository root:

    PYTHONPATH=. python benchmarks/bench_unroll.py                    # full run, ~3 minutes on 2 cores
    PYTHONPATH=. python benchmarks/bench_unroll.py --quick            # one repeat each, ~1 minute
    PYTHONPATH=. python benchmarks/bench_unroll.py --no-cell-variants --json bench.json
"""
import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass
from typing import Callable

import autograd
import autograd.numpy as np
import numpy
from autograd import value_and_grad
from autograd.scipy.special import expit as sigmoid

from metalstm_np.l2l import l2l
from metalstm_np.learners import MLP
from metalstm_np.lstm import init_lstm, lstm_cell, lstm_zero_state, tanh
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
    """Seconds taken by one call of fn(), the result discarded."""
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


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


def measure_time(case, row, repeats):
    """`repeats` timed runs of each pass, interleaved; fills the time columns of `row`."""
    fwd, grad = [], []
    for _ in range(repeats):
        fwd.append(timed(case.forward))
        grad.append(timed(case.gradient))
    per_coordinate_step = 1e6 / (case.n * T)
    row.update(
        forward_seconds=fwd, gradient_seconds=grad,
        forward_best=min(fwd), forward_median=statistics.median(fwd),
        gradient_best=min(grad), gradient_median=statistics.median(grad),
        forward_us_per_coordinate_step=min(fwd) * per_coordinate_step,
        gradient_us_per_coordinate_step=min(grad) * per_coordinate_step,
        ratio_best=min(grad) / min(fwd),
        ratio_median=statistics.median(grad) / statistics.median(fwd))
    return row


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
# Part 2: five ways to write the cell, on a self-contained two-layer unroll
# ---------------------------------------------------------------------------------------------

def composite_sigmoid(a):
    r"""σ(a) = 1 / (1 + exp(−a)), three operations for autograd to differentiate."""
    return 1.0 / (1.0 + np.exp(-a))


def cell_np_tanh(params, x, h, c):
    r"""(b) The library's cell with autograd's np.tanh, whose rule is tanh'(a) = 1 / cosh²(a)."""
    xh = np.concatenate([x, h], axis=1)                    # (n, D + H)
    z = np.tanh(xh @ params["W"] + params["b"])            # (n, H)
    z_i = sigmoid(xh @ params["W_i"] + params["b_i"])      # (n, H)
    z_f = sigmoid(xh @ params["W_f"] + params["b_f"])      # (n, H)
    z_o = sigmoid(xh @ params["W_o"] + params["b_o"])      # (n, H)
    c = z_f * c + z_i * z
    h = z_o * np.tanh(c)
    return h, c


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


def cell_composite_sigmoid(params, x, h, c):
    r"""(d) The library's cell with σ(a) = 1 / (1 + exp(−a)) written out."""
    xh = np.concatenate([x, h], axis=1)                              # (n, D + H)
    z = tanh(xh @ params["W"] + params["b"])                         # (n, H)
    z_i = composite_sigmoid(xh @ params["W_i"] + params["b_i"])      # (n, H)
    z_f = composite_sigmoid(xh @ params["W_f"] + params["b_f"])      # (n, H)
    z_o = composite_sigmoid(xh @ params["W_o"] + params["b_o"])      # (n, H)
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
    """The five variants in float64 and float32, from the same weights and inputs."""
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
    threads = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                          "MKL_NUM_THREADS") if k in os.environ}
    return {"python": platform.python_version(), "numpy": numpy.__version__,
            "autograd": getattr(autograd, "__version__", "unknown"), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "thread_env": threads}


def yes_no(ok):
    return "met" if ok else "NOT met"


def print_optimizer_table(rows, repeats):
    print(f"Part 1: {T}-step unroll on the MNIST MLP (n = {rows[0]['n']:,}); "
          f"times best / median of {repeats}")
    header = (f"{'optimizer':<10} {'dtype':<8} {'forward s':>15} {'meta-grad s':>15} "
              f"{'µs/coord-step':>14} {'ratio':>11} {'peak MB':>13} {'abs MB':>6}")
    print(header)
    print(f"{'':<10} {'':<8} {'best / median':>15} {'best / median':>15} {'fwd / grad':>14} "
          f"{'best / med':>11} {'fwd / grad':>13} {'grad':>6}")
    print("-" * len(header))
    for r in rows:
        name = r["optimizer"] + (" (ref)" if r["reference"] else "")
        print(f"{name:<10} {r['dtype']:<8} "
              f"{r['forward_best']:>6.3f} / {r['forward_median']:<6.3f} "
              f"{r['gradient_best']:>6.3f} / {r['gradient_median']:<6.3f} "
              f"{r['forward_us_per_coordinate_step']:>5.2f} / {r['gradient_us_per_coordinate_step']:<6.2f} "
              f"{r['ratio_best']:>4.2f} / {r['ratio_median']:<4.2f} "
              f"{r['forward_peak_bytes'] / MB:>5.0f} / {r['gradient_peak_bytes'] / MB:<5.0f} "
              f"{r['gradient_peak_abs_bytes'] / MB:>6.0f}")
    print("(ref): hand-designed SGD, φ = {lr, weight_decay}: the learner's own cost in both passes.")
    print("peak MB: above the memory traced at the start of the pass; abs MB: including it "
          "(MNIST, φ, ...).")
    print()
    print(f"Targets: meta-gradient ≤ {TARGET_RATIO}× forward (best-of-{repeats} ratio); "
          f"meta-gradient peak < {TARGET_BYTES / 2**30:.0f} GB (absolute)")
    for r in rows:
        if r["reference"]:
            continue
        print(f"  {r['optimizer']:<9} {r['dtype']:<8} time: {yes_no(r['target_ratio_met']):<8} "
              f"({r['ratio_best']:.2f}×)   memory: {yes_no(r['target_memory_met']):<8} "
              f"({r['gradient_peak_abs_bytes'] / MB:.0f} MB)")
    print()


def print_cell_table(rows, repeats):
    print(f"Part 2: the cell alone, two layers of H = 20, {T} steps, n = {rows[0]['n']:,}; "
          f"times best / median of {repeats}")
    header = (f"{'variant':<15} {'dtype':<8} {'forward s':>15} {'gradient s':>15} "
              f"{'ratio':>11} {'peak MB':>13} {'vs (a)':>8}")
    print(header)
    print(f"{'':<15} {'':<8} {'best / median':>15} {'best / median':>15} {'best / med':>11} "
          f"{'fwd / grad':>13} {'max rel':>8}")
    print("-" * len(header))
    for r in rows:
        print(f"{r['variant']:<15} {r['dtype']:<8} "
              f"{r['forward_best']:>6.3f} / {r['forward_median']:<6.3f} "
              f"{r['gradient_best']:>6.3f} / {r['gradient_median']:<6.3f} "
              f"{r['ratio_best']:>4.2f} / {r['ratio_median']:<4.2f} "
              f"{r['forward_peak_bytes'] / MB:>5.0f} / {r['gradient_peak_bytes'] / MB:<5.0f} "
              f"{max(r['value_rel_diff_vs_a'], r['gradient_rel_diff_vs_a']):>8.1e}")
    print("vs (a): largest difference from (a) of the output and of the gradient, relative to "
          "(a)'s largest value.")
    for dtype in ("float64", "float32"):
        same = [r for r in rows if r["dtype"] == dtype]
        fastest = min(same, key=lambda r: r["gradient_best"])
        print(f"  fastest gradient in {dtype}: {fastest['variant']} ({fastest['gradient_best']:.3f} s)")
    print()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one timed repeat per pass")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed repeats per pass (default 3, or 1 with --quick)")
    parser.add_argument("--cell-variants", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the five ways of writing the cell (default: on)")
    parser.add_argument("--json", metavar="FILE", help="write every number to FILE")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    started = time.perf_counter()

    tracemalloc.start()      # before MNIST is loaded, so that the absolute peaks include it
    family = MLP(hidden=(20,), activation="sigmoid", batch=128)
    task = family.sample(numpy.random.default_rng(SEED_TASK))
    n = family.n_params
    env = environment()
    print(f"bench_unroll: python {env['python']}, numpy {env['numpy']}, autograd {env['autograd']}, "
          f"{env['cpu_count']} CPUs, thread env {env['thread_env'] or 'unset'}; repeats {repeats}")
    print()

    parts = [("optimizers", optimizer_cases(task, n))]
    if args.cell_variants:
        parts.append(("cell_variants", cell_cases(n)))
    results = {name: [measure_memory(case) for case in cases] for name, cases in parts}
    tracemalloc.stop()
    for name, cases in parts:
        for case, row in zip(cases, results[name]):
            measure_time(case, row, repeats)
    for r in results["optimizers"]:
        r["target_ratio_met"] = r["ratio_best"] <= TARGET_RATIO
        r["target_memory_met"] = r["gradient_peak_abs_bytes"] < TARGET_BYTES

    print_optimizer_table(results["optimizers"], repeats)
    if args.cell_variants:
        print_cell_table(results["cell_variants"], repeats)
    total = time.perf_counter() - started
    print(f"total {total:.0f} s")

    if args.json:
        report = {"config": {"steps": T, "n": n, "learner": "MLP(hidden=(20,), activation='sigmoid', "
                                                         "batch=128)",
                             "repeats": repeats, "seeds": {"task": SEED_TASK, "phi": SEED_PHI,
                                                           "cell": SEED_CELL},
                             "target_ratio": TARGET_RATIO, "target_bytes": TARGET_BYTES},
                  "environment": env, **results, "total_seconds": total}
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
