"""Every `metalstm` command in the README's code blocks parses, and every training command among
them makes a valid TrainConfig: a recipe a reader copies does not fail on its flags."""
import re
import shlex
from pathlib import Path

import pytest

from metalstm_np.cli import _train_config, build_parser
from metalstm_np.meta_train import TrainConfig

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands():
    """The `metalstm ...` lines of the README's bash blocks, continuations joined, comments dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["metalstm"]:
                commands.append(words[1:])
    return commands


def test_the_readme_has_training_commands():
    subcommands = [words[:2] for words in readme_commands()]
    assert ["train", "--optimizer"] in subcommands and ["fewshot", "train"] in subcommands


@pytest.mark.parametrize("words", readme_commands(), ids=" ".join)
def test_readme_command_parses_and_makes_a_valid_config(words, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                   # --out folders are checked, not made, by parsing
    args = build_parser().parse_args(words)
    imitation_lr = TrainConfig().imitation_lr
    if words[0] == "train":
        _train_config(args, imitation_lr=imitation_lr if args.imitation_lr is None else args.imitation_lr)
    elif words[:2] == ["fewshot", "train"]:       # the overrides of cmd_fewshot_train
        steps = args.steps or 8
        _train_config(args, horizon=steps, unroll=steps, meta_loss="heldout", validate_on="meta-loss",
                      weights="uniform", validation_horizon=None, imitation=0.0,
                      imitation_lr=imitation_lr, average=TrainConfig().average)
