"""The shipped weights in metalstm_np/pretrained/: every file has its training log and the command(s)
that made it in provenance/, and loads as the optimizer its command names."""
from pathlib import Path

import pytest

from metalstm_np.serialization import load_phi

ROOT = Path(__file__).resolve().parents[1]
PRETRAINED = ROOT / "metalstm_np" / "pretrained"
PROVENANCE = ROOT / "provenance"
WEIGHTS = sorted(PRETRAINED.rglob("*.npz"))


def test_the_shipped_weights_are_found():
    names = {p.relative_to(PRETRAINED).as_posix() for p in WEIGHTS}
    assert {"l2l_quadratic.npz", "l2l_mnist.npz", "l2l1_mnist.npz", "fewshot_metalstm_5shot.npz",
            "general_mnist.npz"} <= names


@pytest.mark.parametrize("path", WEIGHTS, ids=lambda p: p.relative_to(PRETRAINED).as_posix())
def test_every_weights_file_has_its_log_and_command(path):
    stem = PROVENANCE / path.relative_to(PRETRAINED).with_suffix("")
    log, command = Path(f"{stem}.log.txt"), Path(f"{stem}.command.txt")
    assert log.is_file() and command.is_file(), f"{path.name}: no {log.name} or {command.name}"
    commands = [line for line in command.read_text().splitlines() if line and not line.startswith("#")]
    assert commands and all(line.startswith("metalstm ") for line in commands), commands
    assert log.read_text().splitlines(), f"{log} is empty"
    optimizer, _, _ = load_phi(path)
    named = commands[-1].split("--optimizer ")[1].split()[0] if "--optimizer " in commands[-1] else None
    assert named in (None, optimizer.name), (named, optimizer.name)
