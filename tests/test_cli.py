"""The `metalstm` command: evaluate for every optimizer on both tasks, same seed same numbers, and
every user error as one line and exit status 2, never a traceback."""
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from autograd.misc.flatten import flatten
import pytest

from metalstm_np.cli import main
from metalstm_np.meta_train import load_checkpoint
from metalstm_np.optimizers import make_optimizer
from metalstm_np.serialization import load_phi, save_phi

SMALL_MLP = ["--task", "mlp", "--hidden", "5", "--steps", "3", "--runs", "2"]


def run_json(capsys, *argv):
    assert main(["evaluate", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def error_of(capsys, *argv):
    """Run the CLI; assert it failed with one error line; return that line."""
    code = main(list(argv))
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("metalstm: error: "), captured.err
    return lines[0]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A weights file for each learned optimizer (untrained φ, but real files)."""
    folder = tmp_path_factory.mktemp("weights")
    files = {}
    for name, config in [("l2l", {"hidden": [4, 4]}), ("metalstm", {"hidden": 4})]:
        opt = make_optimizer(name, **config)
        files[name] = folder / f"{name}.npz"
        save_phi(files[name], opt, opt.init_phi(np.random.default_rng(0)))
    return files


@pytest.mark.parametrize("task", [["--task", "quadratic", "--steps", "4", "--runs", "3"], SMALL_MLP])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nag", "rmsprop", "adam", "gd_lstm", "l2l", "metalstm"])
def test_evaluate_every_optimizer_on_both_tasks(capsys, weights, task, optimizer):
    extra = ["--weights", str(weights[optimizer])] if optimizer in weights else ["--lr", "0.01"]
    out = run_json(capsys, *task, "--optimizer", optimizer, *extra)
    steps = int(task[task.index("--steps") + 1])
    assert len(out["mean_loss_per_step"]) == steps + 1
    assert np.isfinite(out["final_loss_mean"]) and out["final_loss_std"] >= 0
    assert out["final_loss_mean"] == pytest.approx(out["mean_loss_per_step"][-1])


def test_same_seed_same_numbers_other_seed_other_numbers(capsys):
    argv = ["--task", "quadratic", "--optimizer", "adam", "--lr", "0.1", "--steps", "5", "--runs", "3"]
    a = run_json(capsys, *argv, "--seed", "7")
    b = run_json(capsys, *argv, "--seed", "7")
    c = run_json(capsys, *argv, "--seed", "8")
    assert a["mean_loss_per_step"] == b["mean_loss_per_step"]
    assert a["mean_loss_per_step"] != c["mean_loss_per_step"]


def test_lr_is_used(capsys):
    argv = ["--task", "quadratic", "--optimizer", "sgd", "--steps", "5", "--runs", "2"]
    slow = run_json(capsys, *argv, "--lr", "0.0001")
    fast = run_json(capsys, *argv, "--lr", "0.01")
    assert slow["phi_hyperparameters"]["lr"] == 0.0001
    assert fast["final_loss_mean"] < slow["final_loss_mean"]


def test_human_readable_output(capsys):
    assert main(["evaluate", "--task", "quadratic", "--optimizer", "nag", "--steps", "3", "--runs", "2"]) == 0
    out = capsys.readouterr().out
    assert "final loss:" in out and "mean ± std over runs" in out
    assert len([line for line in out.splitlines() if line.strip()[:1].isdigit()]) == 4


def test_demo_shows_identical_losses(capsys):
    assert main(["demo", "--steps", "12"]) == 0
    assert "largest difference over 12 steps: 0 (identical" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "--optimizer", "adamw"], "invalid choice: 'adamw'"),
    (["evaluate", "--optimizer", "sgd", "--steps", "0"], "expected a positive integer from 1 to 100,000, got '0'"),
    (["evaluate", "--optimizer", "sgd", "--lr", "-1"], "expected a positive number, got '-1'"),
    (["evaluate", "--optimizer", "sgd", "--lr", "nan"], "expected a positive number, got 'nan'"),
    (["evaluate", "--optimizer", "sgd", "--task", "cifar"], "invalid choice: 'cifar'"),
    (["evaluate", "--optimizer", "sgd", "--activation", "gelu"], "invalid choice: 'gelu'"),
    (["evaluate", "--optimizer", "l2l"], "give its weights with --weights"),
    (["evaluate", "--optimizer", "l2l", "--weights", "/no/such/file.npz"], "/no/such/file.npz: no such weights file"),
    (["evaluate", "--optimizer", "adam", "--bogus"], "unrecognized arguments: --bogus"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_flags_give_one_clear_line(capsys, argv, message):
    assert message in error_of(capsys, *argv)


def test_malformed_and_mismatched_weights(capsys, weights, tmp_path):
    text = tmp_path / "text.npz"
    text.write_text("not weights")
    assert "not an .npz weights file" in error_of(capsys, "evaluate", "--optimizer", "l2l", "--weights", str(text))
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.zeros(3))
    assert "not a metalstm weights file" in error_of(capsys, "evaluate", "--optimizer", "l2l", "--weights", str(plain))
    line = error_of(capsys, "evaluate", "--optimizer", "l2l", "--weights", str(weights["metalstm"]))
    assert "holds weights for optimizer 'metalstm', not 'l2l'" in line
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(weights["l2l"].read_bytes()[:200])
    assert "truncated.npz" in error_of(capsys, "evaluate", "--optimizer", "l2l", "--weights", str(truncated))


def test_python_m_entry_point_prints_no_traceback():
    done = subprocess.run([sys.executable, "-m", "metalstm_np", "evaluate", "--optimizer", "l2l",
                           "--weights", "missing.npz"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == "metalstm: error: missing.npz: no such weights file"


def test_train_writes_log_checkpoint_and_refuses_to_overwrite(capsys, tmp_path):
    argv = ["train", "--task", "quadratic", "--lstm-hidden", "4", "--dtype", "float64", "--trajectories", "2",
            "--horizon", "4", "--unroll", "2", "--validate-every", "1", "--validation-tasks", "2",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    assert "meta-training: 100%" in capsys.readouterr().err           # the progress bar
    log = (tmp_path / "log.txt").read_text().splitlines()
    assert [line.split()[1] for line in log] == ["1", "2"] and all("validation" in line for line in log)
    assert (tmp_path / "command.txt").read_text().startswith("metalstm ")
    assert "exists: add --resume" in error_of(capsys, *argv)
    assert main(argv + ["--resume"]) == 0                          # already complete: nothing to do
    assert len((tmp_path / "log.txt").read_text().splitlines()) == 2


def test_train_with_imitation_marks_the_imitating_updates_in_the_log(tmp_path, capsys):
    """--imitation 1: every meta-update imitates Adam, and each log line says `imitation-loss`."""
    argv = ["train", "--task", "quadratic", "--lstm-hidden", "4", "--trajectories", "2", "--horizon", "4",
            "--unroll", "2", "--validate-every", "1", "--validation-tasks", "1", "--imitation", "1",
            "--imitation-lr", "0.05", "--out", str(tmp_path)]
    assert main(argv) == 0
    log = (tmp_path / "log.txt").read_text().splitlines()
    assert [line.split()[2] for line in log] == ["imitation-loss", "imitation-loss"]
    assert "--imitation 1 --imitation-lr 0.05" in (tmp_path / "command.txt").read_text()


def test_train_with_average_validates_the_moving_average_and_records_it(tmp_path, capsys):
    """--average 0.5: the checkpoint's config and φ̄ say so; φ and the meta-losses are those of the
    run without it, the validation after the second meta-update (of φ̄ = (φ_1 + 2 φ_2) / 3) is not."""
    argv = ["train", "--task", "quadratic", "--lstm-hidden", "4", "--trajectories", "2", "--horizon", "4",
            "--unroll", "2", "--validate-every", "1", "--validation-tasks", "1"]
    assert main(argv + ["--average", "0.5", "--out", str(tmp_path / "averaged")]) == 0
    assert main(argv + ["--out", str(tmp_path / "plain")]) == 0
    _, phi, averaged = load_checkpoint(tmp_path / "averaged" / "checkpoint.npz")
    _, phi_plain, plain = load_checkpoint(tmp_path / "plain" / "checkpoint.npz")
    assert averaged["config"].average == 0.5 and plain["config"].average == 0.0
    assert "--average 0.5" in (tmp_path / "averaged" / "command.txt").read_text()
    np.testing.assert_array_equal(flatten(phi)[0], flatten(phi_plain)[0])
    assert averaged["history"]["meta_loss"] == plain["history"]["meta_loss"]
    assert averaged["history"]["validation"][:2] == plain["history"]["validation"][:2]
    assert averaged["history"]["validation"][2] != plain["history"]["validation"][2]
    assert averaged["average"].shape == flatten(phi)[0].shape and plain["average"] is None


def test_train_validate_on_final_and_weights_are_saved_in_the_checkpoint(tmp_path, capsys):
    argv = ["train", "--task", "quadratic", "--lstm-hidden", "4", "--trajectories", "1", "--horizon", "2",
            "--unroll", "2", "--validate-every", "1", "--validation-tasks", "1", "--validate-on", "final",
            "--meta-loss-weights", "linear", "--out", str(tmp_path)]
    assert main(argv) == 0
    config = load_checkpoint(tmp_path / "checkpoint.npz")[2]["config"]
    assert (config.validate_on, config.weights) == ("final", "linear")
    capsys.readouterr()
    line = error_of(capsys, *argv[:-1], str(tmp_path / "b"), "--meta-loss", "heldout")
    assert "held-out meta-loss" in line and "'linear'" in line


def test_train_init_from_starts_from_that_phi_and_checks_it_fits(capsys, tmp_path):
    base = ["train", "--task", "quadratic", "--lstm-hidden", "4", "--trajectories", "1", "--horizon", "2",
            "--unroll", "2", "--validate-every", "1", "--validation-tasks", "1"]
    assert main(base + ["--out", str(tmp_path / "a")]) == 0
    first = tmp_path / "a" / "checkpoint.npz"
    # continuing from a's φ: the first validation (before any training) scores exactly a's φ
    assert main(base + ["--init-from", str(first), "--out", str(tmp_path / "b")]) == 0
    from metalstm_np.learners import Quadratic
    from metalstm_np.meta_train import TrainConfig, draw_validation_tasks, validation_score
    optimizer_a, phi_a, _ = load_phi(first)
    _, _, state_b = load_checkpoint(tmp_path / "b" / "checkpoint.npz")
    tasks = draw_validation_tasks(Quadratic(), 0, 1)
    assert state_b["history"]["validation"][0] == validation_score(optimizer_a, phi_a, tasks,
                                                                   TrainConfig(horizon=2, unroll=2))
    capsys.readouterr()
    assert "the flags describe l2l" in error_of(capsys, *base, "--lstm-hidden", "5", "--init-from", str(first),
                                                "--out", str(tmp_path / "c"))
    assert "holds weights for optimizer 'l2l', not 'metalstm'" in error_of(
        capsys, *base, "--optimizer", "metalstm", "--init-from", str(first), "--out", str(tmp_path / "d"))
    assert not (tmp_path / "c" / "checkpoint.npz").exists()


def test_train_eta_starts_the_meta_lstm_with_that_input_gate(tmp_path):
    argv = ["train", "--task", "quadratic", "--optimizer", "metalstm", "--lstm-hidden", "4", "--eta", "0.25",
            "--trajectories", "1", "--horizon", "2", "--unroll", "2", "--validate-every", "1",
            "--validation-tasks", "1", "--meta-lr", "1e-3", "--out", str(tmp_path)]
    assert main(argv) == 0
    _, phi, _ = load_phi(tmp_path / "checkpoint.npz")
    # one Adam step (one piece) of size at most ~meta-lr away from b^I = logit(0.25) = −1.0986
    assert abs(float(phi["b_I"]) - np.log(0.25 / 0.75)) <= 1.01e-3


def test_fewshot_train_runs_and_checks_its_flags(capsys, tmp_path):
    base = ["fewshot", "train", "--trajectories", "2", "--validate-every", "1", "--validation-tasks", "2",
            "--lstm-hidden", "4", "--dtype", "float64"]
    assert main(base + ["--eta", "0.3", "--steps", "3", "--out", str(tmp_path / "a")]) == 0
    assert len((tmp_path / "a" / "log.txt").read_text().splitlines()) == 2
    assert main(base + ["--optimizer", "gd_lstm", "--eta", "0.3", "--out", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    line = error_of(capsys, *base, "--optimizer", "gd_lstm", "--fixed-theta0", "--out", str(tmp_path / "c"))
    assert "learns nothing but θ^0" in line
    assert "must be in (0, 1)" in error_of(capsys, *base, "--eta", "2", "--out", str(tmp_path / "d"))


def test_fewshot_train_theta0_from_starts_the_learned_theta0_there(capsys, tmp_path):
    base = ["fewshot", "train", "--benchmark", "rot90", "--trajectories", "1", "--validate-every", "1",
            "--validation-tasks", "1", "--lstm-hidden", "4", "--dtype", "float64", "--steps", "2", "--meta-lr", "1e-3"]
    assert main(base + ["--optimizer", "gd_lstm", "--eta", "0.3", "--out", str(tmp_path / "gd")]) == 0
    source = tmp_path / "gd" / "checkpoint.npz"
    assert main(base + ["--eta", "0.3", "--theta0-from", str(source), "--out", str(tmp_path / "m")]) == 0
    _, c0, _ = load_phi(source)
    _, phi, _ = load_phi(tmp_path / "m" / "checkpoint.npz")
    # one Adam step of size at most ~meta-lr from the source's θ^0 (a fresh draw is ~0.01 away)
    assert np.max(np.abs(phi["c_0"] - c0["c_0"])) <= 1.01e-3
    assert np.max(np.abs(c0["c_0"] - load_phi(tmp_path / "gd" / "best.npz")[1]["c_0"])) > 0   # it moved
    assert main(base + ["--eta", "0.3", "--theta0-from", str(source), "--freeze-theta0",
                        "--out", str(tmp_path / "f")]) == 0
    _, frozen, _ = load_phi(tmp_path / "f" / "checkpoint.npz")
    np.testing.assert_array_equal(frozen["c_0"], c0["c_0"])                  # θ^0 exactly as given
    assert frozen["b_I"] != np.log(0.3 / 0.7)                                # the rest did train
    capsys.readouterr()
    assert "needs --theta0-from" in error_of(capsys, *base, "--freeze-theta0", "--out", str(tmp_path / "g"))
    assert "drop --fixed-theta0" in error_of(capsys, *base, "--fixed-theta0", "--theta0-from", str(source),
                                              "--out", str(tmp_path / "x"))
    assert "this learner" in error_of(capsys, *base, "--ways", "3", "--theta0-from", str(source),
                                      "--out", str(tmp_path / "y"))
    no_c0 = tmp_path / "m2"
    assert main(base + ["--fixed-theta0", "--out", str(no_c0)]) == 0
    capsys.readouterr()
    assert "no learned θ^0" in error_of(capsys, *base, "--theta0-from", str(no_c0 / "best.npz"),
                                        "--out", str(tmp_path / "z"))


@pytest.mark.parametrize("extra, message", [
    (["--seed", "1000"], "--seed 1000 draws the evaluation or tuning tasks"),
    (["--seed", "-3"], "expected a non-negative integer seed, got '-3'"),
    (["--trajectories", "5", "--validate-every", "2"], "trajectories (5) is not a multiple of validate_every (2)"),
    (["--optimizer", "metalstm", "--lstm-hidden", "20,20"], "--lstm-hidden takes one size, got 20,20"),
    (["--horizon", "10", "--unroll", "3"], "horizon 10 is not a multiple of unroll 3"),
    (["--meta-loss", "heldout"], "horizon (100) must equal unroll (20)"),
    (["--eta", "0.5"], "--eta 0.5 sets the meta-LSTM's initial input gate z^i; --optimizer l2l has no such gate"),
    (["--optimizer", "metalstm", "--lstm-hidden", "4", "--eta", "1"],
     "expected a gate value strictly between 0 and 1, got '1'"),
])
def test_train_rejects_bad_settings_before_training(capsys, tmp_path, extra, message):
    line = error_of(capsys, "train", "--task", "quadratic", "--out", str(tmp_path / "run"), *extra)
    assert message in line
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


def test_figures_refuses_quick_numbers_in_the_readme_and_a_readme_without_markers(capsys, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    assert "do not go into the README" in error_of(capsys, "figures", "--quick", "--readme", str(readme))
    assert "no <!-- findings:start -->" in error_of(capsys, "figures", "--readme", str(readme), "--out", str(tmp_path))
    assert readme.read_text() == "no markers here\n"


def test_fewshot_pretrain_writes_baseline_finetunes_theta0_as_a_weights_file(capsys, tmp_path):
    from metalstm_np.experiments import e5_fewshot
    path = tmp_path / "bf.npz"
    assert main(["fewshot", "pretrain", "--benchmark", "rot90", "--eta", "0.01", "--out", str(path)]) == 0
    optimizer, phi, _ = load_phi(path, expect="gd_lstm")
    features = e5_fewshot._features(e5_fewshot.FULL.pretrain_steps, "rot90")
    n = len(features)
    assert optimizer.config["learn_theta0"] and phi["c_0"].shape == (n + 32 * 5 + 5,)
    np.testing.assert_array_equal(phi["c_0"][:n], features)
    assert not np.any(phi["c_0"][n:]) and float(phi["z_i"]) == 0.01 and float(phi["z_f"]) == 1.0
    capsys.readouterr()
    assert "not overwriting" in error_of(capsys, "fewshot", "pretrain", "--out", str(path))


def _without_seconds(log):
    return [" ".join(word for k, word in enumerate(line.split()) if k < 1 or line.split()[k - 1] != "seconds")
            for line in log.splitlines()]


@pytest.mark.parametrize("command", [
    ["train", "--task", "quadratic", "--lstm-hidden", "4", "--horizon", "4", "--unroll", "2"],
    ["fewshot", "train", "--lstm-hidden", "4", "--steps", "2"]])
def test_both_train_commands_take_batches_and_give_the_same_run_with_two_workers(capsys, tmp_path, command):
    """--tasks-per-update 2 with --workers 1 and 2: the same checkpoint bit for bit and the same log
    but for its timings; the progress bar shows trajectories per hour."""
    argv = [*command, "--dtype", "float64", "--trajectories", "4", "--validate-every", "2",
            "--validation-tasks", "3", "--tasks-per-update", "2"]
    for workers in (1, 2):
        assert main(argv + ["--workers", str(workers), "--out", str(tmp_path / str(workers))]) == 0
        assert "traj_per_h=" in capsys.readouterr().err
    one, two = (load_checkpoint(tmp_path / w / "checkpoint.npz") for w in "12")
    from autograd.misc.flatten import flatten
    np.testing.assert_array_equal(flatten(one[1])[0], flatten(two[1])[0])
    for key in ("m", "v"):
        np.testing.assert_array_equal(one[2]["adam"][key], two[2]["adam"][key])
    np.testing.assert_array_equal(one[2]["best"]["phi"], two[2]["best"]["phi"])
    assert one[2]["history"] == two[2]["history"] and one[2]["config"].tasks_per_update == 2
    logs = [_without_seconds((tmp_path / w / "log.txt").read_text()) for w in "12"]
    assert logs[0] == logs[1] and [line.split()[1] for line in logs[0]] == ["2", "4"]
    assert "not a multiple of tasks_per_update" in error_of(
        capsys, *argv, "--tasks-per-update", "3", "--out", str(tmp_path / "bad"))


def test_a_lost_worker_is_one_line(capsys, tmp_path, monkeypatch):
    from metalstm_np import cli
    from metalstm_np.pool import WorkerLost

    def lost(*args, **kwargs):
        raise WorkerLost("a worker process died (killed, or out of memory) during trajectory 4..5; "
                         "c.npz holds the last good state (trajectory 4)")

    monkeypatch.setattr(cli, "meta_train", lost)
    assert main(["train", "--task", "quadratic", "--trajectories", "2", "--validate-every", "1",
                 "--workers", "2", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err            # the progress bar, then the error
    assert err.strip().splitlines()[-1].startswith("metalstm: error: a worker process died")
    assert "during trajectory 4..5" in err and "Traceback" not in err


# `metalstm` as a terminal runs it, with Python's SIGINT handler: a shell that starts a job in the
# background (`... &`, as a CI runner may) starts it with SIGINT ignored, which its children inherit
# and keep (Python then installs no handler), and Ctrl-C could not reach the run at all.
AS_IN_A_TERMINAL = [sys.executable, "-c", "import runpy, signal; "
                    "signal.signal(signal.SIGINT, signal.default_int_handler); "
                    "runpy.run_module('metalstm_np', run_name='__main__')"]


def _fail_with_the_stacks(run, what):
    """Fail with the stderr of a stuck run (started in its own session) after SIGUSR1 has made each
    of its processes print its threads' stacks there; then kill the whole group."""
    import os
    import signal
    os.killpg(run.pid, signal.SIGUSR1)
    time.sleep(2.0)
    os.killpg(run.pid, signal.SIGKILL)
    _, err = run.communicate(timeout=30)
    pytest.fail(f"{what}; its stderr, with the stacks:\n{err[-6000:]}")


def test_sigusr1_prints_the_stacks_and_the_run_goes_on(tmp_path):
    """kill -USR1 of `metalstm train`: each thread's stack on stderr, and the run ends normally."""
    import signal
    argv = [sys.executable, "-m", "metalstm_np", "train", "--task", "quadratic", "--lstm-hidden", "4",
            "--trajectories", "60", "--horizon", "4", "--unroll", "2", "--validate-every", "2",
            "--validation-tasks", "2", "--out", str(tmp_path)]        # a few seconds: still running
    run = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "log.txt"
    deadline = time.monotonic() + 120
    while not log.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    run.send_signal(signal.SIGUSR1)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 0, err[-400:]
    assert "Current thread" in err and 'File "' in err


def test_ctrl_c_stops_the_run_and_its_workers(tmp_path):
    """SIGINT to the whole process group (what Ctrl-C sends) while two workers train: exit status
    130, one line, no traceback, no process of the group left; the checkpoint resumes."""
    import os
    import signal
    argv = [*AS_IN_A_TERMINAL, "train", "--task", "quadratic", "--lstm-hidden", "4",
            "--trajectories", "4000", "--horizon", "4", "--unroll", "2", "--validate-every", "2",
            "--validation-tasks", "2", "--tasks-per-update", "2", "--workers", "2", "--out", str(tmp_path)]
    run = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    log = tmp_path / "log.txt"
    deadline = time.monotonic() + 120
    while not (log.exists() and len(log.read_text().splitlines()) >= 3) and time.monotonic() < deadline:
        time.sleep(0.1)
    if time.monotonic() >= deadline:
        _fail_with_the_stacks(run, "the run wrote fewer than 3 log lines in 120 s")
    os.killpg(run.pid, signal.SIGINT)
    try:
        _, err = run.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        _fail_with_the_stacks(run, "the run did not exit within 60 s of SIGINT")
    assert run.returncode == 130, err[-3000:]
    assert err.strip().splitlines()[-1] == "metalstm: interrupted" and "Traceback" not in err
    deadline = time.monotonic() + 20         # the exited resource tracker takes a moment to be reaped
    while time.monotonic() < deadline:
        try:
            os.killpg(run.pid, 0)
        except ProcessLookupError:
            break                            # nothing of the group is left
        time.sleep(0.2)
    else:
        pytest.fail(f"processes of the group {run.pid} still exist 20 s after the run ended")
    done = load_checkpoint(tmp_path / "checkpoint.npz")[2]["trajectory"]
    assert done >= 6 and done % 2 == 0


def test_figures_eval_seed_rechecks_on_other_tasks(capsys, tmp_path):
    """--eval-seed S: E1 on tasks drawn with S (recorded in results.json), not the usual ones; refused
    with E5 (its own episodes), with --readme, and for the training and tuning seeds."""
    runs = {}
    for seed in ("1000", "3000"):
        assert main(["figures", "--quick", "--only", "e1", "--eval-seed", seed, "--out", str(tmp_path / seed)]) == 0
        runs[seed] = json.loads((tmp_path / seed / "results.json").read_text())["E1_quadratic"]
    assert runs["3000"]["eval_seed"] == 3000 and runs["1000"]["eval_seed"] == 1000
    assert runs["3000"]["methods"]["adam"] != runs["1000"]["methods"]["adam"]
    capsys.readouterr()
    assert "E5 has its own episodes" in error_of(capsys, "figures", "--quick", "--eval-seed", "3000")
    assert "training or tuning" in error_of(capsys, "figures", "--quick", "--only", "e1", "--eval-seed", "2000")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")   # the dropped one
def test_a_ctrl_c_dropped_in_a_finalizer_is_raised_by_the_next_progress_bar_update():
    """Python drops a KeyboardInterrupt raised while a __del__ method runs ("Exception ignored");
    while a command handles SIGINT, the next update of its progress bar raises it again. The handler
    is the default one again afterwards."""
    import os
    import signal
    from metalstm_np.cli import CTRL_C, _bar

    class SignalledWhileFinalized:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)                          # the handler runs here, and its exception is dropped

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)   # as in a terminal
    try:
        with CTRL_C.handling():
            bar = _bar(3, "test", "job")
            bar.update()
            SignalledWhileFinalized()                # finalized at once: nothing holds it
            with pytest.raises(KeyboardInterrupt):
                bar.update()
            CTRL_C.pressed = False
            bar.close()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        signal.signal(signal.SIGINT, signal.SIG_IGN)     # started in the background: left ignored
        with CTRL_C.handling():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


# ------------------------------------------------------- figures: --only merges, --recheck, whole files

SHIPPED_RESULTS = Path(__file__).resolve().parents[1] / "figures" / "results.json"
MARKERS = "<!-- findings:start -->\n<!-- findings:end -->\n<!-- results:start -->\n<!-- results:end -->\n"


@pytest.fixture
def stub_experiments(monkeypatch):
    """Every experiment replaced by one that runs nothing: its one block, E1_stub ..., holds the
    run's eval seed and the stamp (stamp[0], which a test may change between runs), and its table
    is "E1_stub STAMP"."""
    from types import SimpleNamespace
    from metalstm_np import experiments
    stamp = ["first"]

    def stub(name):
        return SimpleNamespace(jobs=lambda ctx: {},
                               collect=lambda ctx, done: {name: {"eval_seed": ctx.eval_seed, "stamp": stamp[0]}},
                               table=lambda results: f"{name} {results[name]['stamp']}\n" if name in results else "")
    for key in list(experiments.EXPERIMENTS):
        monkeypatch.setitem(experiments.EXPERIMENTS, key, stub(f"{key.upper()}_stub"))
    return stamp


def test_figures_only_replaces_its_experiments_results_and_keeps_the_others(capsys, tmp_path):
    """--only e1 into a folder whose results.json holds every experiment: E1's block is this run's,
    the others' stay as they were, and each run's seconds and versions name the experiments it made
    (e1 dropped from the earlier runs' names; a file written before merges has one number of seconds)."""
    earlier = json.loads(SHIPPED_RESULTS.read_text())
    earlier["quick"] = True                               # as a --quick run's, so that E1 runs --quick
    (tmp_path / "results.json").write_text(json.dumps(earlier))
    assert main(["figures", "--quick", "--only", "e1", "--workers", "1", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["E1_quadratic"]["runs"] == 3 and earlier["E1_quadratic"]["runs"] == 100
    assert ({k: v for k, v in results.items() if k not in ("E1_quadratic", "seconds", "versions")}
            == {k: v for k, v in earlier.items() if k not in ("E1_quadratic", "seconds", "versions")})
    earlier_runs = earlier["seconds"] if isinstance(earlier["seconds"], dict) else {"e1,e2,e3,e4,e5,e6": earlier["seconds"]}
    without_e1 = {",".join(e for e in run.split(",") if e != "e1"): s for run, s in earlier_runs.items()}
    assert results["seconds"] == {**{run: s for run, s in without_e1.items() if run}, "e1": results["seconds"]["e1"]}
    assert results["seconds"]["e1"] > 0
    earlier_versions = {",".join(e for e in run.split(",") if e != "e1") for run in earlier.get("versions", {})}
    assert set(results["versions"]) == {run for run in earlier_versions if run} | {"e1"}
    assert results["versions"]["e1"]["numpy"] == np.__version__
    assert set(results["versions"]["e1"]) == {"python", "numpy", "scipy", "autograd", "matplotlib", "metalstm_np", "blas"}


def test_figures_only_with_readme_regenerates_it_from_every_experiments_results(capsys, tmp_path, stub_experiments):
    """--only e2 --readme: the README's tables come from E2's new block and the others' kept ones;
    a folder whose results.json lacks some other experiment is refused before the run."""
    readme, out = tmp_path / "README.md", tmp_path / "out"
    readme.write_text(MARKERS)
    assert main(["figures", "--workers", "1", "--out", str(out)]) == 0
    stub_experiments[0] = "second"
    assert main(["figures", "--only", "e2", "--readme", str(readme), "--workers", "1", "--out", str(out)]) == 0
    text = readme.read_text()
    assert "E1_stub first" in text and "E2_stub second" in text and "E6_stub first" in text
    assert "made these results in 2 runs: E1, E3, E4, E5, E6 in a run of " in text and "; E2 in a run of " in text
    empty = tmp_path / "empty"
    capsys.readouterr()
    line = error_of(capsys, "figures", "--only", "e2", "--readme", str(readme), "--workers", "1", "--out", str(empty))
    assert "holds no results of e1,e3,e4,e5,e6" in line and not (empty / "results.json").exists()
    assert readme.read_text() == text


@pytest.mark.parametrize("content, flags, message", [
    ('{"quick": fal', [], "not a readable results file"),
    ("[1, 2]", [], "holds a JSON list, not the object of a results file"),
    ('{"quick": false, "notes": {}}', [], "its 'notes' entry is not one it writes"),
    ('{"E1_stub": {}}', [], "its 'quick' entry is missing"),
    ('{"quick": false, "E1_stub": {"eval_seed": 1000}}', ["--quick"], "holds full results and these are --quick"),
    ('{"quick": true, "E1_stub": {"eval_seed": 1000}}', [], "holds --quick results and these are full"),
    ('{"quick": false, "E1_stub": {"eval_seed": 1000}}', ["--eval-seed", "3000"],
     "its E1_stub is on evaluation seed 1000 and these results on 3000"),
])
def test_figures_only_refuses_a_results_json_it_cannot_merge_into(capsys, tmp_path, stub_experiments, content,
                                                                   flags, message):
    path = tmp_path / "results.json"
    path.write_text(content)
    line = error_of(capsys, "figures", "--only", "e2", *flags, "--workers", "1", "--out", str(tmp_path))
    assert message in line and str(path) in line
    assert path.read_text() == content


def test_figures_without_only_writes_a_new_results_json_over_any_file(capsys, tmp_path, stub_experiments):
    (tmp_path / "results.json").write_text('{"quick": fal')
    assert main(["figures", "--workers", "1", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results["seconds"]) == list(results["versions"]) == ["e1,e2,e3,e4,e5,e6"]
    assert results["quick"] is False and len(results) == 3 + 6


def test_figures_reads_and_checks_the_rechecks_before_the_run(capsys, tmp_path, stub_experiments):
    readme = tmp_path / "README.md"
    readme.write_text(MARKERS)
    line = error_of(capsys, "figures", "--recheck", str(tmp_path / "a.json"), "--out", str(tmp_path / "a"))
    assert "only with --readme" in line and not (tmp_path / "a" / "results.json").exists()
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "quick.json").write_text('{"quick": true}')
    for name, message in (("bad.json", "not a readable results file"), ("quick.json", "holds --quick results"),
                          ("missing.json", "No such file")):
        out = tmp_path / f"out_{name}"
        line = error_of(capsys, "figures", "--readme", str(readme), "--recheck", str(tmp_path / name),
                        "--workers", "1", "--out", str(out))
        assert f"--recheck {tmp_path / name}" in line and message in line
        assert not (out / "results.json").exists()                  # refused before the run
    assert readme.read_text() == MARKERS


@pytest.mark.parametrize("command, written, before", [
    (["figures", "--workers", "1", "--out", "{tmp}"], "results.json", "old\n"),
    (["figures", "--workers", "1", "--out", "{tmp}", "--readme", "{tmp}/README.md"], "README.md", MARKERS),
    (["tune", "--settings", "quadratic", "--workers", "1", "--out", "{tmp}/tuned.json"], "tuned.json", "{}\n"),
    (["fewshot", "evaluate", "--quick", "--workers", "1", "--out", "{tmp}"], "fewshot_results.json", "old\n"),
])
def test_an_interrupted_write_leaves_the_file_that_was_there_whole(capsys, tmp_path, monkeypatch, stub_experiments,
                                                                    command, written, before):
    """Ctrl-C while a command writes its output, just before the rename that would put the new
    file in place: the file that was there is whole, and no temporary file is left behind."""
    import os
    from metalstm_np.experiments import e5_fewshot
    monkeypatch.setattr("metalstm_np.cli.run_jobs", lambda pool, fn, jobs, progress=None: [(0.1, {0.1: 1.0})] * len(jobs))
    monkeypatch.setattr(e5_fewshot, "run", lambda ctx, protocol, pool=None, progress=None: {"E5_fewshot": {"figure": None}})
    monkeypatch.setattr(e5_fewshot, "table", lambda results: "")
    (tmp_path / written).write_text(before)
    replace = os.replace

    def interrupted(src, dst):
        if Path(dst).name == written:
            raise KeyboardInterrupt
        replace(src, dst)
    monkeypatch.setattr(os, "replace", interrupted)
    assert main([word.format(tmp=tmp_path) for word in command]) == 130
    assert (tmp_path / written).read_text() == before
    assert not list(tmp_path.glob("*.tmp"))
