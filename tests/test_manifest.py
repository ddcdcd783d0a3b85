"""metalstm_np/pretrained/MANIFEST.json: one entry per shipped file, with its SHA-256, and the same as
provenance/manifest.py makes from the training logs and commands in provenance/."""
import hashlib
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRETRAINED = ROOT / "metalstm_np" / "pretrained"


def _generator():
    spec = importlib.util.spec_from_file_location("manifest", ROOT / "provenance" / "manifest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_manifest_names_every_shipped_file_and_only_those_with_their_sha256():
    manifest = json.loads((PRETRAINED / "MANIFEST.json").read_text())
    shipped = {p.relative_to(PRETRAINED).as_posix() for p in PRETRAINED.rglob("*") if p.is_file()} - {"MANIFEST.json"}
    assert set(manifest) == shipped
    for name, entry in manifest.items():
        assert entry["sha256"] == hashlib.sha256((PRETRAINED / name).read_bytes()).hexdigest(), name
        assert entry["purpose"] and entry["commands"], name
        assert all(c.startswith("metalstm ") for c in entry["commands"]), name


def test_the_manifest_is_what_the_provenance_folder_makes():
    assert json.loads((PRETRAINED / "MANIFEST.json").read_text()) == _generator().manifest()


def test_every_weights_file_has_its_log_and_command_in_provenance():
    for path in PRETRAINED.rglob("*.npz"):
        stem = ROOT / "provenance" / path.relative_to(PRETRAINED).with_suffix("")
        assert Path(f"{stem}.log.txt").is_file() and Path(f"{stem}.command.txt").is_file(), path
