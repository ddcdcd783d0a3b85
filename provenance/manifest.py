r"""Writes metalstm_np/pretrained/MANIFEST.json: one entry per shipped file, made from this folder.

For each weights file that `metalstm figures` reads, and for tuned.json: its SHA-256, what it is
for, and, from `NAME.command.txt` and `NAME.log.txt` here, the command(s) that made it (comment
lines left out; tuned.json has a command file and no log), the trajectories it was trained on (the log's last trajectory) and its training
time (the sum of the log's per-update seconds, validations included). A run started from another
file (`--init-from`, `--theta0-from`) names it, with the trajectories and training time of that
earlier stage if it is not shipped itself. tests/test_manifest.py checks the manifest against
the shipped files and against this script's output.

    python provenance/manifest.py          # from the repository's root
"""
import hashlib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRETRAINED = ROOT / "metalstm_np" / "pretrained"
PROVENANCE = ROOT / "provenance"

PURPOSE = {
    "tuned.json": "the baselines' tuned learning rates (SGD, NAG, RMSprop, Adam) for every setting of E1-E4 "
                  "and E6, with every grid score",
    "l2l_quadratic.npz": "E1: the two-layer LSTM optimizer (Andrychowicz et al.) on 10-d quadratics, raw gradient, "
                         "128 quadratics per task",
    "l2l_mnist.npz": "E2, E3, E4: the two-layer LSTM optimizer for the 1 x 20 sigmoid MNIST MLP (stage 2)",
    "l2l1_mnist.npz": "E4: the same with one LSTM layer (stage 2)",
    "general_mnist.npz": "E6: RNNprop (Lv et al.) meta-trained on E2's family",
    "general_mnist_ablation/full.npz": "E6 ablation: E6's recipe for 200 trajectories",
    "general_mnist_ablation/no_moments.npz": "E6 ablation: without the moment inputs (log/sign instead)",
    "general_mnist_ablation/unbounded.npz": "E6 ablation: without the bounded step",
    "general_mnist_ablation/no_scaling.npz": "E6 ablation: without random scaling",
    "general_mnist_ablation/no_square.npz": "E6 ablation: without the random convex square",
    "fewshot_metalstm_1shot.npz": "E5: the meta-LSTM with learned θ^0, 5-way 1-shot, benchmark rot22.5",
    "fewshot_metalstm_5shot.npz": "E5: the meta-LSTM with learned θ^0, 5-way 5-shot, benchmark rot22.5",
    "fewshot_metalstm_fixed_theta0_1shot.npz": "E5: the meta-LSTM from random θ^0, 1-shot, benchmark rot22.5",
    "fewshot_metalstm_fixed_theta0_5shot.npz": "E5: the meta-LSTM from random θ^0, 5-shot, benchmark rot22.5",
    "fewshot_gd_1shot.npz": "E5: learned θ^0 with fixed gates (first-order MAML), 1-shot, benchmark rot22.5",
    "fewshot_gd_5shot.npz": "E5: learned θ^0 with fixed gates (first-order MAML), 5-shot, benchmark rot22.5",
    "metalstm_mnist.npz": "E5's gate figure: the meta-LSTM trained as an optimizer of the MNIST MLP",
}
# a start file a command names by its run folder (runs/NAME/best.npz): the shipped file it is
STARTS_FROM = {"fewshot_metalstm_5shot.npz": "metalstm_np/pretrained/fewshot_gd_5shot.npz"}


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def commands(path):
    return [line for line in Path(path).read_text().splitlines() if line.strip() and not line.startswith("#")]


def log_summary(path):
    """(the last trajectory, the sum of the seconds column) of a training log."""
    last, seconds = 0, 0.0
    for line in Path(path).read_text().splitlines():
        words = line.split()
        last = int(words[words.index("trajectory") + 1])
        seconds += float(words[words.index("seconds") + 1])
    return last, round(seconds, 1)


def entry(name):
    path = PRETRAINED / name
    out = {"sha256": sha256(path), "purpose": PURPOSE[name]}
    if name == "tuned.json":
        return {**out, "commands": commands(PROVENANCE / "tuned.command.txt")}
    stem = PROVENANCE / name[:-len(".npz")]
    out["commands"] = commands(f"{stem}.command.txt")
    out["trajectories"], out["training_seconds"] = log_summary(f"{stem}.log.txt")
    starts = [m.group(2) for line in out["commands"]
              for m in re.finditer(r"--(init-from|theta0-from) (\S+)", line)]
    if starts:
        out["starts_from"] = STARTS_FROM.get(name) or _moved(starts[-1])
        stage = PROVENANCE / "not_shipped" / Path(out["starts_from"]).name
        if stage.is_file():                       # an earlier stage that is not shipped: its own summary
            runs = log_summary(stage.with_name(stage.stem + ".log.txt"))
            out["starts_from_trajectories"], out["starts_from_training_seconds"] = runs
    return out


def _moved(path):
    """A file a command named in metalstm_np/pretrained/ that now lives in provenance/not_shipped/."""
    moved = PROVENANCE / "not_shipped" / Path(path).name
    return moved.relative_to(ROOT).as_posix() if not (ROOT / path).is_file() and moved.is_file() else path


def manifest():
    names = sorted([p.relative_to(PRETRAINED).as_posix() for p in PRETRAINED.rglob("*.npz")] + ["tuned.json"])
    unknown = [n for n in names if n not in PURPOSE]
    if unknown:
        raise SystemExit(f"no purpose written for {unknown}: add it to PURPOSE in {Path(__file__).name}")
    return {name: entry(name) for name in names}


def main():
    text = json.dumps(manifest(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    (PRETRAINED / "MANIFEST.json").write_text(text)
    print(f"wrote {PRETRAINED.relative_to(ROOT) / 'MANIFEST.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
