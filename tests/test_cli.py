"""The command line's promises that cut across commands: the ones that do not train never import
Lightning (about 10 s here) and answer in the time their own work takes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import fresh_store

ROOT = Path(__file__).parents[1]
# Runs each command in turn in one process, saying after each whether Lightning is imported by then:
# the first command that imports it is the one named. (One process, not one per command: each start
# imports MLflow, Optuna and torch again, seconds apiece.)
PROBE = """
import json, sys
from harness import cli
for name, argv in json.loads(sys.argv[1]):
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    imported = 'lightning' if any(m.split('.')[0] == 'lightning' for m in sys.modules) else 'none'
    print('after', name, imported, code, file=sys.stderr)
"""
COMMANDS = {
    "help": ["--help"],
    "describe": ["describe", "--preset", "cifar_convnet4", "--steps", "1"],
    "dry-run": ["sweep", str(ROOT / "ablations" / "relu_speed_cpu.yaml"), "--dry-run", "--calibrate-steps", "1"],
    "report": ["report", "--out", "reports"],
    "export": ["export", "relu_speed_cpu"],
    "import": ["import", str(ROOT / "reports" / "relu_speed_cpu" / "runs.zip")],
}


def test_commands_that_do_not_train_do_not_import_lightning(tmp_path, real_cifar):
    import json

    from harness import cli

    uri = fresh_store(tmp_path / "mlflow.db")  # holding a committed sweep, for report and export to read
    assert cli.main(["import", str(ROOT / "reports" / "relu_speed_cpu" / "runs.zip"), "--tracking-uri", uri]) == 0
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri, HARNESS_DATA_DIR=str(real_cifar.parent))
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(list(COMMANDS.items()))], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    after = [line.split()[1:] for line in done.stderr.splitlines() if line.startswith("after ")]
    assert after == [[name, "none", "0"] for name in COMMANDS], done.stderr[-2000:]


def test_help_shows_every_flag_a_user_may_pass_and_no_other():
    import argparse

    from harness import cli

    top = cli.parser()
    commands = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction)).choices
    hidden = [f"{name} {'/'.join(a.option_strings)}" for name, p in commands.items() for a in p._actions
              if a.help == argparse.SUPPRESS]
    assert hidden == []
    assert "--worker-index" not in commands["sweep"].format_help() and "--added-seeds" not in commands["sweep"].format_help()


def test_exit_codes_bad_input_2_with_one_line_a_signal_130_and_a_crash_its_traceback(capsys):
    import signal
    import time

    from harness import cli
    from harness.errors import ConfigError, DataError, InputError, RunsFileError, StoreError

    def raising(err):
        def command():
            raise err
        return command

    for err, line in ((ConfigError("model.lrn: expected true or false"), "harness: config error: model.lrn: expected"),
                      (StoreError("--storage x: not a database"), "harness: store error: --storage x"),
                      (DataError("/d/cifar.zip", "no such file"), "harness: data error: /d/cifar.zip: no such file"),
                      (RunsFileError("f.zip: truncated"), "harness: runs file error: f.zip: truncated")):
        assert isinstance(err, InputError)
        assert cli.guarded(raising(err)) == 2
        err_text = capsys.readouterr().err
        assert err_text.startswith(line) and len(err_text.strip().splitlines()) == 1
    # out of room: one line, exit 1 (a failure of the machine, not the input); any other OSError is a crash
    import errno
    assert cli.guarded(raising(OSError(errno.ENOSPC, "No space left on device", "/full/x.png"))) == 1
    err_text = capsys.readouterr().err
    assert err_text.startswith("harness: out of room: /full/x.png: No space left on device") and err_text.count("\n") == 1
    with pytest.raises(PermissionError):
        cli.guarded(raising(PermissionError(errno.EACCES, "Permission denied", "/x")))
    with pytest.raises(ZeroDivisionError):  # a crash: its traceback, exit 1, never "interrupted"
        cli.guarded(raising(ZeroDivisionError("a bug")))
    with pytest.raises(SystemExit) as stopped:  # exit(1) without a signal (as Lightning exits) stays 1
        cli.guarded(raising(SystemExit(1)))
    assert stopped.value.code == 1 and "interrupted" not in capsys.readouterr().err

    def lightning_on_sigterm():  # Lightning turns the KeyboardInterrupt into exit(1)
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)
        except KeyboardInterrupt:
            raise SystemExit(1) from None
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    assert cli.guarded(lightning_on_sigterm) == 130
    assert "interrupted; the same command again continues" in capsys.readouterr().err
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before  # the caller's again


def test_a_worker_gets_the_coordinators_grid_whole_and_anything_else_on_its_stdin_is_exit_2(tmp_path):
    import pickle

    from harness import grid as G
    from harness.worker import WorkerSpec

    preset = tmp_path / "p.yaml"
    preset.write_text((ROOT / "harness" / "presets" / "cifar_convnet4.yaml").read_text())
    path = tmp_path / "g.yaml"
    path.write_text(f"name: g\npreset: {preset}\ndesign: factorial\naxes: {{model.activation: [relu, tanh]}}\n"
                    "seeds: [0]\n")
    grid = G.load(path)
    spec = WorkerSpec(grid, "sqlite:///mlruns/optuna.db", "sqlite:///mlruns/mlflow.db", -1, 0)
    preset.unlink()  # the worker reads neither the grid file nor its preset: the spec holds every cell's config
    path.unlink()
    again = WorkerSpec.from_bytes(spec.to_bytes())
    assert [c.config for c in again.grid.cells] == [c.config for c in grid.cells] and again == spec
    for data, message in ((b"{not a pickle", "worker spec on standard input: not a spec from `harness sweep`"),
                          (pickle.dumps({"grid": "g"}), "not a spec from `harness sweep` (a dict)")):
        done = subprocess.run([sys.executable, "-m", "harness.worker"], input=data, cwd=tmp_path, capture_output=True,
                              timeout=120)
        err = done.stderr.decode()
        assert done.returncode == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "mlruns").exists()


def test_out_of_room_anywhere_in_a_failures_chain_is_one_line_and_exit_1(capsys):
    """However a library wrapped it: the failure of recording a failure (ENOSPC, then MLflow's
    'database or disk is full', then Optuna's StorageInternalError), SQLite's errno-less message
    inside our own one-line store error, numpy's errno-less OSError."""
    import errno
    import sqlite3

    from harness import cli
    from harness.errors import StoreError

    def training_on_a_full_disk():
        try:
            try:
                raise OSError(errno.ENOSPC, "No space left on device", "/full/ckpt/last.ckpt")
            except OSError:
                raise RuntimeError("(sqlite3.OperationalError) database or disk is full") from None
        except RuntimeError as err:
            raise LookupError("StorageInternalError: an exception was raised within optuna's storage") from err

    def storage_on_a_full_disk():
        try:
            raise sqlite3.OperationalError("database or disk is full")
        except sqlite3.OperationalError as err:
            raise StoreError(f"--storage sqlite:///full/optuna.db: OperationalError: {err}") from None

    def numpy_on_a_full_disk():
        raise OSError("Not enough free space to write 4096 bytes")

    for command, line in ((training_on_a_full_disk, "/full/ckpt/last.ckpt: No space left on device"),
                          (storage_on_a_full_disk, "--storage sqlite:///full/optuna.db: OperationalError: database or"),
                          (numpy_on_a_full_disk, "Not enough free space to write 4096 bytes")):
        assert cli.guarded(command) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"harness: out of room: {line}") and err.count("\n") == 1, err


def test_arguments_past_any_sane_value_exit_2_with_one_line(tmp_path, capsys, monkeypatch):
    """--workers past 4 per usable CPU (or past int's digits), a port outside TCP's, an empty
    --resume (which once started a new default run), a grid value past int's digits."""
    from harness import cli

    monkeypatch.chdir(tmp_path)
    grid = ROOT / "ablations" / "relu_speed_cpu.yaml"
    cpus = len(os.sched_getaffinity(0))
    (tmp_path / "big.yaml").write_text("name: big\npreset: cifar_convnet4\ndesign: factorial\n"
                                       f"axes: {{model.activation: [relu]}}\nseeds: [{'9' * 5000}]\n")
    for command, line in (
            (["sweep", str(grid), "--dry-run", "--workers", str(4 * cpus + 1)], f"--workers {4 * cpus + 1}: at most 4 per CPU"),
            (["sweep", str(grid), "--dry-run", "--workers", "9" * 5000], "--workers 99999999999999999999: at most 4"),
            (["ui", "--port", "70000"], "--port: a TCP port, 1 to 65535; got 70000"),
            (["ui", "--port", "-1"], "--port: a TCP port, 1 to 65535; got -1"),
            (["train", "--resume", ""], "--resume: the MLflow run id of the run to continue; got an empty one"),
            (["sweep", str(tmp_path / "big.yaml"), "--dry-run"], "big.yaml: a value YAML cannot read (ValueError")):
        assert cli.main(command) == 2, command
        err = capsys.readouterr().err
        assert err.startswith(f"harness: config error: {line}") or line in err, err
        assert err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.yaml"]  # no store, no run
