"""Bad input, class by class, through `main()` (and a few through the installed command): each gives
exit status 2 and one `metalstm: error:` line that names the bad value or file, never a traceback,
and nothing the user had is lost. A property test feeds random bytes and random, well-formed but
wrong .npz files to the weights and checkpoint loaders: only the library's own errors come out."""
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metalstm_np import data
from metalstm_np.cli import main
from metalstm_np.meta_train import load_checkpoint
from metalstm_np.optimizers import make_optimizer
from metalstm_np.serialization import WeightsError, load_phi, save_phi

TINY_TRAIN = ["train", "--task", "quadratic", "--lstm-hidden", "4", "--trajectories", "2", "--horizon", "2",
              "--unroll", "2", "--validate-every", "1", "--validation-tasks", "1"]


def one_error_line(capsys, *argv):
    """Run main(argv): exit status 2, the last line of stderr the error, no traceback; that line."""
    code = main(list(argv))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("metalstm: error: "), err
    return line


# ------------------------------------------------------------------------------------ output paths

@pytest.fixture
def paths(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    return {"existing file": (str(a_file), "is not a folder"),
            "under a file": (str(a_file / "sub"), "is a file, not a folder"),
            "/dev/null": ("/dev/null", "is not a folder"),
            "too long": (str(tmp_path / ("n" * 300)), "longer than the file system allows"),
            "read-only": ("/proc/metalstm_out", "cannot write there"),
            "empty": ("", "expected a path")}


FOLDER_COMMANDS = {"train": TINY_TRAIN,
                   "fewshot train": ["fewshot", "train", "--trajectories", "1", "--validate-every", "1"],
                   "fewshot evaluate": ["fewshot", "evaluate", "--quick"],
                   "figures": ["figures", "--quick", "--only", "e1"]}


@pytest.mark.parametrize("case", ["existing file", "under a file", "/dev/null", "too long", "read-only", "empty"])
@pytest.mark.parametrize("command", list(FOLDER_COMMANDS))
def test_a_bad_output_folder_is_refused_before_any_work(capsys, paths, command, case):
    out, message = paths[case]
    line = one_error_line(capsys, *FOLDER_COMMANDS[command], "--out", out)
    assert message in line and (out in line or case == "too long")


@pytest.mark.parametrize("case", ["existing folder", "under a file", "/dev/null", "read-only", "empty"])
@pytest.mark.parametrize("command", [["tune", "--settings", "quadratic"], ["fewshot", "pretrain"]])
def test_a_bad_output_file_is_refused_before_any_work(capsys, paths, tmp_path, command, case):
    own = {"existing folder": (str(tmp_path), "exists and is not a regular file"),
           "/dev/null": ("/dev/null", "exists and is not a regular file"),
           "read-only": ("/proc/metalstm_out.json", "cannot write there")}
    out, message = own[case] if case in own else paths[case]
    if command[0] == "fewshot" and case in ("existing folder", "/dev/null"):
        message = "exists; not overwriting it"
    line = one_error_line(capsys, *command, "--out", out)
    assert message in line


def test_tune_writes_only_where_it_is_told(capsys):
    line = one_error_line(capsys, "tune", "--settings", "quadratic")
    assert "--out" in line and "required" in line


# ------------------------------------------------------------------------------------ weights files

def weights_file(path, phi, name="sgd", config=None):
    arrays = {f"phi/{k}": np.asarray(v) for k, v in phi.items()}
    arrays["__optimizer__"] = np.array(name)
    arrays["__config__"] = np.array(json.dumps(config or {}))
    np.savez(path, **arrays)
    return path


def l2l_phi(config):
    opt = make_optimizer("l2l", **config)
    from metalstm_np.serialization import flatten_tree
    return flatten_tree(opt.init_phi(np.random.default_rng(0)))


@pytest.mark.parametrize("phi, message", [
    ({"lr": np.array("fast"), "weight_decay": 0.0}, "not a float dtype"),
    ({"lr": np.array(0.1 + 1j), "weight_decay": 0.0}, "not a float dtype"),
    ({"lr": np.array(3), "weight_decay": 0.0}, "not a float dtype"),
    ({"lr": np.nan, "weight_decay": 0.0}, "non-finite"),
    ({"lr": -0.5, "weight_decay": 0.0}, "must not be negative"),
])
def test_hand_designed_weights_with_bad_values(capsys, tmp_path, phi, message):
    path = weights_file(tmp_path / "w.npz", phi)
    line = one_error_line(capsys, "evaluate", "--optimizer", "sgd", "--weights", str(path), "--task", "quadratic")
    assert message in line and str(path) in line


@pytest.mark.parametrize("config, message", [
    ({"hidden": [-4]}, "hidden = -4"), ({"hidden": [0]}, "hidden = 0"), ({"hidden": [10**9]}, "hidden = 1000000000"),
    ({"hidden": [2.5]}, "hidden = 2.5"), ({"dtype": "float16"}, "dtype = 'float16'"), ({"p": float("nan")}, "p = nan"),
    ({"colour": "red"}, "colour"),
])
def test_a_weights_config_is_checked_before_the_optimizer_is_built(capsys, tmp_path, config, message):
    path = weights_file(tmp_path / "w.npz", l2l_phi({"hidden": [4]}), name="l2l", config={"hidden": [4], **config})
    line = one_error_line(capsys, "evaluate", "--optimizer", "l2l", "--weights", str(path), "--task", "quadratic")
    assert message in line


def test_non_finite_learned_weights_are_refused(capsys, tmp_path):
    phi = l2l_phi({"hidden": [4]})
    phi["w_out"] = phi["w_out"].copy()
    phi["w_out"][1] = np.inf
    path = weights_file(tmp_path / "w.npz", phi, name="l2l", config={"hidden": [4]})
    assert "phi/w_out holds non-finite" in one_error_line(capsys, "evaluate", "--optimizer", "l2l", "--weights",
                                                           str(path), "--task", "quadratic")


def test_a_small_file_claiming_huge_arrays_is_refused_without_allocating(capsys, tmp_path):
    """The .npy header of phi/w_out claims 4 GB of float64; the file is a few hundred bytes."""
    path = tmp_path / "huge.npz"
    small = io.BytesIO()
    np.savez(small, __optimizer__=np.array("l2l"), __config__=np.array(json.dumps({"hidden": [4]})))
    with zipfile.ZipFile(small) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                      "shape": (2**29,)})
        dst.writestr("phi/w_out.npy", header.getvalue() + b"\0" * 64)
    assert path.stat().st_size < 10_000
    line = one_error_line(capsys, "evaluate", "--optimizer", "l2l", "--weights", str(path), "--task", "quadratic")
    assert "claim 4 GB" in line


def test_an_unreadable_or_not_a_file_weights_path_says_so(capsys, tmp_path):
    assert "not a file" in one_error_line(capsys, "evaluate", "--optimizer", "l2l", "--weights", str(tmp_path))
    garbage = tmp_path / "g.npz"
    garbage.write_bytes(b"PK\x03\x04" + b"\xff" * 100)
    assert "not an .npz weights file" in one_error_line(capsys, "evaluate", "--optimizer", "l2l",
                                                         "--weights", str(garbage))


ADAM = {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}


@pytest.mark.parametrize("name, phi, message", [
    ("adam", {**ADAM, "beta2": 7.0}, "phi/beta2 = 7.0: beta2 of 'adam' must be in [0, 1)"),
    ("adam", {**ADAM, "beta1": 1.0}, "phi/beta1 = 1.0: beta1 of 'adam' must be in [0, 1)"),
    ("adam", {**ADAM, "eps": 0.0}, "phi/eps = 0.0: eps of 'adam' must be positive"),
    ("momentum", {"lr": 0.1, "momentum": 1.5}, "phi/momentum = 1.5: momentum of 'momentum' must be in [0, 1)"),
    ("nag", {"lr": 0.1, "momentum": 1.0}, "phi/momentum = 1.0"),
    ("rmsprop", {"lr": 0.01, "decay": 3.0, "eps": 1e-8}, "phi/decay = 3.0: decay of 'rmsprop' must be in [0, 1)"),
])
def test_hand_designed_hyperparameters_out_of_their_range_are_refused(tmp_path, name, phi, message):
    path = weights_file(tmp_path / "w.npz", phi, name=name)
    with pytest.raises(WeightsError, match=re.escape(message)) as error:
        load_phi(path)
    assert str(path) in str(error.value)


# ------------------------------------------------------------------------------------ configs, φ to save

@pytest.mark.parametrize("name, config, message", [
    ("l2l", {"hidden": (0,)}, "config hidden = 0: expected a whole number"),
    ("l2l", {"hidden": (-3,)}, "config hidden = -3: expected a whole number"),
    ("l2l", {"hidden": 4}, "config hidden = 4: expected a list of layer sizes"),
    ("l2l", {"p": float("nan")}, "config p = nan"),
    ("l2l", {"p": -1}, "config p = -1: expected a positive number"),
    ("l2l", {"output_scale": -1}, "config output_scale = -1: expected a positive number"),
    ("l2l", {"dtype": "float16"}, "config dtype = 'float16'"),
    ("l2l", {"dtype": "int32"}, "config dtype = 'int32'"),
    ("metalstm", {"hidden": 0}, "config hidden = 0: expected a whole number"),
    ("metalstm", {"hidden": [20]}, "config hidden = [20]: expected one layer size"),
    ("gd_lstm", {"z_i": -1}, "config z_i = -1: expected a positive number"),
    ("gd_lstm", {"z_i": float("nan")}, "config z_i = nan"),
    ("rnnprop", {"step": float("inf")}, "config step = inf: expected a finite number"),
    ("rnnprop", {"eps": -1}, "config eps = -1: expected a positive number"),
    ("rnnprop", {"nominal": float("inf")}, "config nominal = inf"),
])
def test_make_optimizer_checks_its_config_naming_the_key_and_value(name, config, message):
    from metalstm_np.l2l import l2l
    from metalstm_np.meta_lstm import gradient_descent_lstm, meta_lstm
    from metalstm_np.rnnprop import rnnprop
    with pytest.raises(ValueError, match=re.escape(message)):
        make_optimizer(name, **config)
    factory = {"l2l": l2l, "metalstm": meta_lstm, "gd_lstm": gradient_descent_lstm, "rnnprop": rnnprop}[name]
    with pytest.raises(ValueError, match=re.escape(message)):     # the factory itself, called directly
        factory(**config)


def test_make_optimizer_still_takes_numpy_numbers_and_per_coordinate_gates():
    assert make_optimizer("l2l", hidden=(np.int64(4),), p=np.float32(5.0)).config["hidden"] == [4]
    assert make_optimizer("gd_lstm", z_f=np.ones(3), z_i=np.full(3, 0.1)).init_phi()["z_i"].shape == (3,)
    with pytest.raises(ValueError, match=re.escape("config z_i = array([ 0.1, -1. ])")):
        make_optimizer("gd_lstm", z_i=np.array([0.1, -1.0]))


@pytest.mark.parametrize("name, change, message", [
    ("l2l", lambda phi: {**phi, "w_out": np.full_like(phi["w_out"], np.inf)}, "phi/w_out holds non-finite"),
    ("l2l", lambda phi: {k: v for k, v in phi.items() if k != "b_out"}, "missing ['b_out']"),
    ("sgd", lambda phi: {**phi, "momentum": 0.9}, "unexpected ['momentum']"),
    ("sgd", lambda phi: {**phi, "lr": np.array([0.1, 0.2])}, "wrong shape lr (2,) (expected ())"),
    ("sgd", lambda phi: {**phi, "lr": 1}, "phi/lr has dtype int64, not a float dtype"),
    ("adam", lambda phi: {**phi, "beta2": 7.0}, "phi/beta2 = 7.0: beta2 of 'adam' must be in [0, 1)"),
    ("sgd", lambda phi: {**phi, "lr": -0.1}, "must not be negative"),
])
def test_save_phi_refuses_a_phi_that_load_phi_would_refuse(tmp_path, name, change, message):
    from metalstm_np.serialization import flatten_tree, unflatten_tree
    opt = make_optimizer(name, **({"hidden": [4]} if name == "l2l" else {}))
    phi = unflatten_tree(change(flatten_tree(opt.init_phi(np.random.default_rng(0)))))
    path = tmp_path / "w.npz"
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        save_phi(path, opt, phi)
    assert str(path) in str(error.value) and not path.exists()


# ------------------------------------------------------------------------------------ library arguments

def test_tune_lr_refuses_an_optimizer_without_lr_and_a_learned_one():
    from metalstm_np.learners import Quadratic
    from metalstm_np.tuning import tune_lr
    message = "gd_lstm: no \"lr\" hyperparameter to tune (its φ has ['z_f', 'z_i'])"
    with pytest.raises(ValueError, match=re.escape(message)):
        tune_lr(make_optimizer("gd_lstm"), Quadratic(), 5, 2, 2000, grid=[0.001, 0.01])
    with pytest.raises(ValueError, match="l2l: a learned optimizer"):
        tune_lr(make_optimizer("l2l", hidden=[4]), Quadratic(), 5, 2, 2000, grid=[0.001, 0.01])


@pytest.mark.parametrize("options, message", [
    (dict(steps=0), "steps = 0: expected a whole number ≥ 1"),
    (dict(steps=2.5), "steps = 2.5"),
    (dict(runs=0), "runs = 0: expected a whole number ≥ 1"),
    (dict(grid=[]), "grid = []: expected at least one learning rate"),
    (dict(grid=[-1, 0.01]), "grid holds -1: a learning rate must be a positive finite number"),
    (dict(grid=[0.01, float("nan")]), "grid holds nan"),
    (dict(grid=[0.01, float("inf")]), "grid holds inf"),
    (dict(lo=2, hi=0), "lo = 2, hi = 0"),
    (dict(lo=-2.5), "lo = -2.5: expected a whole number"),
])
def test_tune_lr_refuses_bad_arguments_naming_them(options, message):
    from metalstm_np.learners import Quadratic
    from metalstm_np.tuning import tune_lr
    arguments = {"steps": 5, "runs": 2, **options}
    with pytest.raises(ValueError, match=re.escape(message)):
        tune_lr(make_optimizer("sgd"), Quadratic(), seed=2000, **arguments)


@pytest.mark.parametrize("steps, runs, message", [(-3, 2, "steps = -3"), (2, 0, "runs = 0"), (2.5, 2, "steps = 2.5"),
                                                  (2, True, "runs = True")])
def test_run_on_tasks_refuses_no_steps_or_no_runs(steps, runs, message):
    from metalstm_np.evaluation import run_on_tasks
    from metalstm_np.learners import Quadratic
    sgd = make_optimizer("sgd")
    with pytest.raises(ValueError, match=re.escape(message)):
        run_on_tasks(sgd, sgd.init_phi(), Quadratic(), steps, runs, 7)
    assert run_on_tasks(sgd, sgd.init_phi(), Quadratic(), 0, 1, 7)[0].shape == (1, 1)    # L_1 at θ^0 only


@pytest.mark.parametrize("options, message", [
    (dict(horizon="10", unroll=10), "horizon must be a whole number, got '10'"),
    (dict(meta_lr="0.1"), "meta_lr must be a finite number, got '0.1'"),
    (dict(horizon=2.5), "horizon must be a whole number, got 2.5"),
    (dict(validation_tasks=2.5), "validation_tasks must be a whole number, got 2.5"),
    (dict(validation_horizon=2.0), "validation_horizon must be a whole number, got 2.0"),
    (dict(seed=-1), "seed must be at least 0, got -1"),
    (dict(seed=1.5), "seed must be a whole number, got 1.5"),
    (dict(seed=True), "seed must be a whole number, got True"),
    (dict(meta_lr=float("inf")), "meta_lr must be a finite number, got inf"),
    (dict(imitation_lr=float("inf")), "imitation_lr must be a finite number, got inf"),
    (dict(clip=float("nan")), "clip must be a finite number, got nan"),
    (dict(meta_loss=["mean"]), "meta_loss must be a name (a string), got ['mean']"),
])
def test_train_config_names_a_field_of_the_wrong_kind(options, message):
    from metalstm_np.meta_train import TrainConfig
    with pytest.raises(ValueError, match=re.escape(message)):
        TrainConfig(**options)


def test_train_config_takes_numpy_numbers():
    from metalstm_np.meta_train import TrainConfig
    config = TrainConfig(trajectories=np.int64(50), horizon=np.int32(100), meta_lr=np.float32(1e-3), clip=1, seed=3)
    assert config.trajectories == 50


@pytest.mark.parametrize("options, message", [(dict(batch=2.5), "batch (2.5) must be a positive integer"),
                                              (dict(hidden=20), "hidden (20) must be a tuple of positive integer"),
                                              (dict(hidden=(20.5,)), "hidden ((20.5,))")])
def test_an_mlp_names_a_field_of_the_wrong_kind(options, message):
    from metalstm_np.learners import MLP
    with pytest.raises(ValueError, match=re.escape(message)):
        MLP(**options)


@pytest.mark.parametrize("seed", ["0", "2000"])
def test_evaluate_refuses_the_training_and_tuning_seeds(capsys, seed):
    line = one_error_line(capsys, "evaluate", "--optimizer", "sgd", "--task", "quadratic", "--seed", seed)
    assert f"--seed {seed} draws the training or tuning tasks" in line


# ------------------------------------------------------------------------------------ tuned files

@pytest.mark.parametrize("content, message", [
    ("not json", "not a readable tuned-rates JSON file"),
    ("[1, 2]", "holds list"),
    (json.dumps({"quadratic": {"lr": {"sgd": 0.1, "nag": 0.1, "rmsprop": 0.1}}}), "the learning rate of adam is None"),
    (json.dumps({"quadratic": {"lr": {"sgd": -1, "nag": 0.1, "rmsprop": 0.1, "adam": 1}}}), "of sgd is -1"),
    (json.dumps({"mnist": {"lr": {"sgd": 1, "nag": 0.1, "rmsprop": 0.1, "adam": 1}}}),
     "no tuned learning rates for setting 'quadratic'"),
])
def test_a_tuned_file_is_checked_and_named(capsys, tmp_path, content, message):
    path = tmp_path / "tuned.json"
    path.write_text(content)
    line = one_error_line(capsys, "figures", "--quick", "--only", "e1", "--tuned", str(path),
                          "--out", str(tmp_path / "f"))
    assert message in line and str(path) in line


# ------------------------------------------------------------------------------------ checkpoints

@pytest.fixture
def checkpoint(tmp_path, capsys):
    assert main(TINY_TRAIN + ["--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    return tmp_path / "run" / "checkpoint.npz"


def rewrite(path, change):
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    change(arrays)
    np.savez(path, **arrays)


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop("trajectory"), "no 'trajectory'"),
    (lambda a: a.update(train_config=np.array(json.dumps({**json.loads(str(a["train_config"])), "speed": 1}))),
     "not a valid TrainConfig"),
    (lambda a: a.update({"adam/m": a["adam/m"][:-3]}), "adam/m has shape"),
    (lambda a: a.update({"adam/t": np.array("three")}), "adam/t has dtype"),
    (lambda a: a.update(trajectory=np.array(7)), "does not match its history"),
])
def test_a_damaged_checkpoint_is_refused_on_resume(capsys, checkpoint, change, message):
    rewrite(checkpoint, change)
    line = one_error_line(capsys, *TINY_TRAIN, "--out", str(checkpoint.parent), "--resume")
    assert message in line and str(checkpoint) in line


def test_resume_with_fewer_trajectories_or_from_another_phi_is_an_error(capsys, checkpoint):
    out = str(checkpoint.parent)
    assert "fewer than the 2" in one_error_line(capsys, *TINY_TRAIN[:5], "--trajectories", "1",
                                                 *TINY_TRAIN[7:], "--out", out, "--resume")
    line = one_error_line(capsys, *TINY_TRAIN, "--out", out, "--resume", "--init-from", str(checkpoint))
    assert "--resume:" in line and "started from another φ" in line


def test_a_second_run_into_the_same_folder_is_refused_while_the_first_holds_the_lock(capsys, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".lock").write_text(f"{sleeper.pid}\n")
        line = one_error_line(capsys, *TINY_TRAIN, "--out", str(out))
        assert f"another run (PID {sleeper.pid})" in line
    finally:
        sleeper.kill()
        sleeper.wait()
    assert main(TINY_TRAIN + ["--out", str(out)]) == 0             # stale now: taken over, released
    assert not (out / ".lock").exists()


# ------------------------------------------------------------------------------------ sizes, flags

def test_a_learner_too_big_for_memory_is_refused_with_the_estimate(capsys):
    line = one_error_line(capsys, "evaluate", "--optimizer", "sgd", "--hidden", "4000", "--layers", "10")
    assert "147,176,000 parameters" in line and "GB" in line
    assert "from 1 to 4,096" in one_error_line(capsys, "evaluate", "--optimizer", "sgd", "--hidden", "10000000")


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "--optimizer", "sgd", "--task", "quadratic", "--hidden", "5"], "--hidden is a flag of --task mlp"),
    (["evaluate", "--optimizer", "sgd", "--task", "quadratic", "--batch", "5"], "--batch is a flag of --task mlp"),
    (TINY_TRAIN + ["--optimizer", "metalstm", "--output-scale", "2"], "--output-scale is an option of --optimizer l2l"),
    (TINY_TRAIN + ["--optimizer", "metalstm", "--preprocess", "raw"], "--preprocess is an option of --optimizer l2l"),
    (TINY_TRAIN + ["--step", "0.2"], "--step is an option of --optimizer rnnprop"),
    (TINY_TRAIN + ["--nominal", "0.01"], "--nominal is an option of --optimizer rnnprop"),
    (TINY_TRAIN + ["--optimizer", "rnnprop", "--nominal", "-1"], "--nominal: expected a number ≥ 0, got '-1'"),
    (TINY_TRAIN + ["--hypergradient", "0.02"], "--hypergradient is an option of --optimizer rnnprop"),
    (TINY_TRAIN + ["--optimizer", "rnnprop", "--hypergradient", "1"],
     "--hypergradient: expected a number in [0, 1), got '1'"),
    (TINY_TRAIN + ["--optimizer", "rnnprop", "--hypergradient", "0.1", "--imitation", "0.5"],
     "--hypergradient 0.1 adapts α from the optimizer's own last step"),
    (TINY_TRAIN + ["--optimizer", "rnnprop", "--inputs", "log_sign", "--nominal", "0.01"], "keeps no moments"),
    (TINY_TRAIN + ["--timescales", "0.5"], "--timescales is an option of --optimizer rnnprop"),
    (TINY_TRAIN + ["--optimizer", "rnnprop", "--timescales", "0.5,1"],
     "--timescales: expected up to 16 numbers in [0, 1) like 0.5,0.99, got '0.5,1'"),
    (TINY_TRAIN + ["--optimizer", "rnnprop", "--timescales", "0.5,x"], "got '0.5,x'"),
    (TINY_TRAIN + ["--optimizer", "rnnprop", "--inputs", "log_sign", "--timescales", "0.5"], "keeps no moments"),
    (TINY_TRAIN + ["--imitation", "2"], "--imitation: expected a share in [0, 1], got '2'"),
    (TINY_TRAIN + ["--average", "1"], "--average: expected a decay in [0, 1), got '1'"),
    (TINY_TRAIN + ["--average", "-0.5"], "--average: expected a decay in [0, 1), got '-0.5'"),
    (TINY_TRAIN + ["--imitation", "0.3", "--imitation-lr", "0"], "--imitation-lr: expected a positive number, got '0'"),
    (TINY_TRAIN + ["--imitation-lr", "0.1"], "--imitation-lr 0.1 is the rate of the Adam that --imitation imitates"),
    (TINY_TRAIN + ["--imitation-lr", "0.03"], "--imitation-lr 0.03 is the rate of the Adam that --imitation imitates"),
    (TINY_TRAIN + ["--imitation", "0", "--imitation-lr", "0.1"], "give --imitation P > 0 too"),
    (["train", "--task", "mlp", "--quadratics", "8"], "--quadratics 8 is a flag of --task quadratic"),
    (TINY_TRAIN + ["--quadratics", "0"], "--quadratics: expected a positive integer from 1 to 100,000, got '0'"),
])
def test_flags_that_do_not_apply_are_refused(capsys, tmp_path, argv, message):
    assert message in one_error_line(capsys, *argv, *(["--out", str(tmp_path / "o")] if argv[0] == "train" else []))


# ------------------------------------------------------------------------------------ silent wrong answers

def test_a_diverged_evaluation_says_diverged_and_its_json_stays_strict(capsys):
    argv = ["evaluate", "--optimizer", "sgd", "--lr", "5", "--task", "quadratic", "--steps", "200", "--runs", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "final loss: diverged (2 of 2 runs; the first non-finite loss at step" in out and "nan" not in out
    assert main(argv + ["--json"]) == 0
    text = capsys.readouterr().out
    result = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in --json output"))
    assert result["final_loss_mean"] is None and result["diverged_at_step"] > 0


def test_an_exploding_meta_loss_is_reported(capsys, tmp_path):
    line = one_error_line(capsys, *TINY_TRAIN[:5], "--trajectories", "20", "--horizon", "2", "--unroll", "2",
                          "--validate-every", "10", "--validation-tasks", "2", "--meta-lr", "1e15",
                          "--out", str(tmp_path / "x"))
    assert "exploded" in line and "--meta-lr" in line and "from trajectory 0" in line


def test_a_divergence_before_the_first_checkpoint_does_not_claim_one():
    from metalstm_np import Quadratic, l2l
    from metalstm_np.learners import Task
    from metalstm_np.meta_train import Diverged, TrainConfig, meta_train

    class NaNFamily:
        def sample(self, rng):
            task = Quadratic(3).sample(rng)
            return Task(task.theta0, lambda theta, t: task.loss(theta, t) * np.nan, task.heldout_loss)

    config = TrainConfig(trajectories=2, horizon=2, unroll=2, validate_every=1, validation_tasks=1)
    with pytest.raises(Diverged, match="trajectory 0, piece 0 .*; no checkpoint had been written yet"):
        meta_train(l2l(hidden=(4,)), NaNFamily(), Quadratic(3), config, "/nonexistent/c.npz")


# ------------------------------------------------------------------------------------ vendored data

@pytest.mark.parametrize("damage, message", [("alter", "is not the recorded"), ("remove", "is missing")])
def test_an_altered_or_missing_mnist_file_is_named_and_refused(tmp_path, monkeypatch, damage, message):
    for name in data.MNIST_SHA256:
        shutil.copy(data.DATA_DIR / name, tmp_path / name)
    victim = tmp_path / "t10k-labels.idx1-ubyte.gz"
    if damage == "alter":
        raw = bytearray(victim.read_bytes())
        raw[-20] ^= 0xFF
        victim.write_bytes(bytes(raw))
    else:
        victim.unlink()
    monkeypatch.setattr(data, "DATA_DIR", tmp_path)
    monkeypatch.setattr(data, "_MNIST_CACHE", {})
    with pytest.raises(data.IDXError, match=message) as error:
        data.load_mnist("test")
    assert str(victim) in str(error.value)


# ------------------------------------------------------------------------------------ the installed command

@pytest.mark.parametrize("argv, message", [
    (["evaluate", "--optimizer", "sgd", "--hidden", "4000", "--layers", "10"], "parameters"),
    (["tune", "--settings", "quadratic", "--out", "/dev/null"], "not a regular file"),
])
def test_the_installed_command_prints_one_line(argv, message):
    command = shutil.which("metalstm") or pytest.skip("the metalstm command is not installed")
    done = subprocess.run([command, *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and message in done.stderr, done.stderr


# ------------------------------------------------------------------------------------ property tests

LIBRARY_ERRORS = (WeightsError, ValueError)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400))
def test_random_bytes_give_only_the_librarys_errors(tmp_path, raw):
    path = tmp_path / "random.npz"
    path.write_bytes(raw)
    for loader in (load_phi, load_checkpoint):
        with pytest.raises(LIBRARY_ERRORS):
            loader(path)


ARRAYS = st.one_of(
    st.builds(np.zeros, st.tuples(st.integers(0, 3), st.integers(1, 3)), dtype=st.sampled_from(["f8", "f4", "i4", "c8"])),
    st.builds(np.array, st.text(max_size=5)),
    st.builds(np.array, st.floats(allow_nan=True, allow_infinity=True)),
)
KEYS = st.sampled_from(["phi/lr", "phi/weight_decay", "phi/lstm1/W", "phi/w_out", "phi/b_out", "adam/m", "adam/t",
                        "trajectory", "train_config", "best_phi", "history/meta_loss"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(KEYS, ARRAYS, max_size=6), st.sampled_from(["sgd", "l2l", "adam", "nope"]),
       st.sampled_from([{}, {"hidden": [4]}, {"hidden": "x"}, {"dtype": 3}, []]))
def test_well_formed_but_wrong_npz_files_give_only_the_librarys_errors(tmp_path, arrays, name, config):
    path = tmp_path / "wrong.npz"
    np.savez(path, __optimizer__=np.array(name), __config__=np.array(json.dumps(config)), **arrays)
    for loader in (load_phi, load_checkpoint):
        try:
            loader(path)
        except LIBRARY_ERRORS:
            pass


def test_quadratics_side_by_side_train_and_resume_only_with_the_same_count(capsys, tmp_path):
    """`train --quadratics 3` trains on tasks of three quadratics (its checkpoint says so);
    resuming it with another count would change the tasks, and is refused with both named."""
    out = str(tmp_path / "q3")
    assert main([*TINY_TRAIN, "--quadratics", "3", "--out", out]) == 0
    _, _, saved = load_checkpoint(tmp_path / "q3" / "checkpoint.npz")
    assert saved["family"] == "Quadratic(dim=10, count=3)"
    line = one_error_line(capsys, *TINY_TRAIN[:6], "4", *TINY_TRAIN[7:], "--quadratics", "2", "--out", out, "--resume")
    assert "Quadratic(dim=10, count=3)" in line and "Quadratic(dim=10, count=2)" in line


TINY_MLP_TRAIN = ["train", "--task", "mlp", "--hidden", "2", "--lstm-hidden", "4", "--trajectories", "1",
                  "--horizon", "2", "--unroll", "2", "--validate-every", "1", "--validation-tasks", "2"]


def test_validation_families_make_a_mixture_of_mlps_on_the_validation_split(tmp_path):
    out = tmp_path / "mixed"
    assert main([*TINY_MLP_TRAIN, "--batch", "16", "--validation-families", "2:sigmoid,3x2:relu",
                 "--out", str(out)]) == 0
    assert load_checkpoint(out / "checkpoint.npz")[2]["validation_family"] == (
        "Mixture(families=(MLP(hidden=(2,), activation='sigmoid', batch=16, split='validation'), "
        "MLP(hidden=(3, 3), activation='relu', batch=16, split='validation')))")


@pytest.mark.parametrize("argv, value, message", [
    (TINY_MLP_TRAIN, "20:swish", "'20:swish' in '20:swish' is not one"),
    (TINY_MLP_TRAIN, "20:relu,x2:relu", "'x2:relu' in '20:relu,x2:relu' is not one"),
    (TINY_MLP_TRAIN, "20:relu,0:tanh", "'0:tanh' in '20:relu,0:tanh' is not one"),
    (TINY_MLP_TRAIN, "20x2:relu", "--validation-families 20x2:relu: name at least two MLPs"),
    (TINY_TRAIN, "20:relu,20:tanh", "--task quadratic validates on quadratics"),
])
def test_bad_validation_families_are_named(capsys, tmp_path, argv, value, message):
    line = one_error_line(capsys, *argv, "--validation-families", value, "--out", str(tmp_path / "x"))
    assert message in line


@pytest.mark.parametrize("timescales, message", [
    ([0.5, 2], "timescales = [0.5, 2]: 2 is not a number in [0, 1)"),
    (["slow"], "timescales = ['slow']: 'slow' is not a number in [0, 1)"),
    (0.9, "timescales = 0.9: expected a list"),
])
def test_a_weights_files_timescales_are_checked(capsys, tmp_path, timescales, message):
    from metalstm_np.serialization import flatten_tree
    phi = flatten_tree(make_optimizer("rnnprop", hidden=[4]).init_phi(np.random.default_rng(0)))
    path = weights_file(tmp_path / "w.npz", phi, name="rnnprop", config={"hidden": [4], "timescales": timescales})
    line = one_error_line(capsys, "evaluate", "--optimizer", "rnnprop", "--weights", str(path), "--task", "quadratic")
    assert message in line
