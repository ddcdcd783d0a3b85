r"""Gate traces of the meta-LSTM (Ravi & Larochelle 2017's figure of the gate values).

`gate_trace` records the meta-LSTM's z^f and z^i per layer's weights and biases (`layer_parts`)
along a run; `pool_gate_traces` pools the traces of several episodes, and `accuracies_and_gates`
scores (as fewshot_baselines.accuracies) and traces in the same runs.
"""
import numpy

from .learners import layout
from .unroll import unroll

__all__ = ["layer_parts", "gate_trace", "traced_run", "accuracies_and_gates", "pool_gate_traces"]


def layer_parts(shapes):
    r"""[(name, slice of θ)] for each layer's weights and biases: "W1", "b1", "W2", "b2", ...
    in learners.unflatten's order."""
    return [(name, part) for name, part, _ in layout(shapes)]


def gate_trace(optimizer, phi, task, steps, shapes=None):
    r"""The meta-LSTM's gates z^f_t, z^i_t at each update t = 1..T on `task`, per part of θ.

    Returns {"parts": ["W1", "b1", ...], "z_f_mean", "z_f_std", "z_i_mean", "z_i_std": (T, parts)
    arrays, mean and standard deviation over the part's coordinates}. shapes: the learner's layer
    shapes (default: task.shapes, which episodes have; for a learners.MLP task pass MLP(...).shapes).
    Only for an optimizer whose state holds "z_f" and "z_i" (meta_lstm). The run is unroll's.
    """
    return traced_run(optimizer, phi, task, steps, shapes)[0]


def traced_run(optimizer, phi, task, steps, shapes=None):
    r"""(gate_trace(...), the final state) of one unroll from init(φ, task.theta0): the gates are
    recorded along the run (unroll's observe), so the run scores and traces at once."""
    shapes = task.shapes if shapes is None else shapes
    parts = layer_parts(shapes)
    state = optimizer.init(phi, task.theta0)
    if not {"z_f", "z_i"} <= set(state):
        raise ValueError(f"optimizer {optimizer.name!r} has no gates in its state; "
                         "gate_trace needs a meta_lstm")
    if parts[-1][1].stop != len(optimizer.params(state)):
        raise ValueError(f"layer shapes with {parts[-1][1].stop} parameters do not fit θ with "
                         f"{len(optimizer.params(state))}")
    gates = {"z_f": [], "z_i": []}

    def record(k, state):
        for name in gates:
            gates[name].append(numpy.asarray(state[name], dtype=float))

    _, state = unroll(optimizer, phi, task, state, steps, observe=record)
    out = {"parts": [name for name, _ in parts]}
    for name, values in gates.items():
        z = numpy.array(values).reshape(steps, -1)                                   # (T, n)
        out[f"{name}_mean"] = numpy.stack([z[:, s].mean(axis=1) for _, s in parts], axis=1)
        out[f"{name}_std"] = numpy.stack([z[:, s].std(axis=1) for _, s in parts], axis=1)
    return out, state


def accuracies_and_gates(optimizer, phi, episodes, steps, gate_episodes):
    r"""(accuracies(optimizer, φ, episodes, steps), the pooled gate trace of the first
    `gate_episodes` episodes), from one run per episode: the same numbers as accuracies and
    pool_gate_traces of gate_trace, without running the traced episodes twice."""
    if not 0 < gate_episodes <= len(episodes):
        raise ValueError(f"gate_episodes = {gate_episodes!r}: expected 1 to {len(episodes)} (the episodes)")
    accs, traces = [], []
    for i, ep in enumerate(episodes):
        if i < gate_episodes:
            trace, state = traced_run(optimizer, phi, ep, steps)
            traces.append(trace)
        else:
            _, state = unroll(optimizer, phi, ep, optimizer.init(phi, ep.theta0), steps)
        accs.append(ep.accuracy(optimizer.params(state)))
    return numpy.array(accs), pool_gate_traces(traces)


def pool_gate_traces(traces):
    r"""gate_trace results of several episodes (same learner shapes) pooled into one: mean and
    standard deviation over the coordinates of all episodes together,
    mean = avg_e mean_e,  std² = avg_e (std_e² + mean_e²) − mean²."""
    out = {"parts": traces[0]["parts"]}
    for name in ("z_f", "z_i"):
        means = numpy.array([tr[f"{name}_mean"] for tr in traces])                  # (E, T, parts)
        stds = numpy.array([tr[f"{name}_std"] for tr in traces])
        mean = means.mean(axis=0)
        out[f"{name}_mean"] = mean
        out[f"{name}_std"] = numpy.sqrt(numpy.maximum((stds**2 + means**2).mean(axis=0) - mean**2, 0.0))
    return out
