"""Learning-rate races (harness/race.py): the ladder, the crossing epochs, the winner, the ladder
extended past an end, the out-raced rule, grid errors that name the key; and real races on a few
hundred CIFAR-10 images: both stages exactly once after kill -9, the dry run, and a sweep exported
mid-way, imported into a fresh store and finished there with the recorded choice."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness import cli
from harness import grid as G
from harness import race, tracking
from harness.tracking import RunRecord

RACE = """
name: r
preset: cifar_convnet4
design: factorial
axes: {model.activation: [relu, tanh]}
race: {seeds: [100], lowest: 0.01, highest: 0.04}
seeds: [0, 1]
stop: {train_err_below: 25, max_epochs: 10, stalled_epochs: 3}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "race.yaml"
    path.write_text(text)
    return path


def test_ladder_is_the_factor_apart_rates_from_lowest_to_highest():
    assert G.Race([1], 0.000625, 0.04).ladder() == [0.000625, 0.00125, 0.0025, 0.005, 0.01, 0.02, 0.04]
    assert G.Race([1], 0.01, 0.05, 3).ladder() == [0.01, 0.03, 0.09]  # up to at least highest
    assert G.Race([1], 0.02, 0.02).ladder() == [0.02]


def test_crossing_epochs_by_hand():
    curve = [(1, 80.0), (2, 60.0), (3, 40.0)]
    # the epochs' values at their middles: 90 at 0, 80 at 0.5, 60 at 1.5, 40 at 2.5
    assert race.crossing(curve, 50.0, start=90.0) == pytest.approx(2.0)
    assert race.crossing(curve, 85.0, start=90.0) == pytest.approx(0.25)
    assert race.crossing(curve, 40.0, start=90.0) is None  # strictly below: never
    assert race.crossing(curve, 95.0, start=90.0) == 0.0  # below at the start


def test_race_cells_run_fastest_rates_first_and_the_estimate_only_once_chosen(tmp_path):
    grid = G.load(write(tmp_path, RACE))
    assert [(c.stage, c.values["model.activation"], c.config.optim.lr, c.seed) for c in grid.cells] == [
        ("race", a, lr, 100) for lr in (0.04, 0.02, 0.01) for a in ("relu", "tanh")]
    chosen = G.with_race_state(grid, {"activation=relu": {"rates": [0.01, 0.02, 0.04], "chosen": 0.02}})
    estimate = [(c.values["model.activation"], c.config.optim.lr, c.seed) for c in chosen.cells if c.stage == "estimate"]
    assert estimate == [("relu", 0.02, 0), ("relu", 0.02, 1)]
    # the state travels in the recorded grid and re-expands to the same cells
    again = G.load(write(tmp_path, yaml.safe_dump(chosen.as_dict())))
    assert [c.key for c in again.cells] == [c.key for c in chosen.cells]


@pytest.mark.parametrize("change, message", [
    (("stop: {train_err_below: 25, ", "stop: {"), "stop.train_err_below: a race needs a training-error target"),
    (("lowest: 0.01", "lowest: 0"), "race.lowest: expected a positive number; got 0"),
    (("highest: 0.04", "highest: -1"), "race.highest: expected a positive number; got -1"),
    (("highest: 0.04", "highest: .nan"), "race.highest: expected a positive number"),
    (("lowest: 0.01", "lowest: '0.01'"), "race.lowest: expected a positive number"),
    (("highest: 0.04", "highest: 0.005"), "race.highest: below race.lowest"),
    (("highest: 0.04", "highest: 0.04, factor: 1"), "race.factor: expected a number above 1"),
    (("seeds: [0, 1]", "seeds: [0, 100]"), "race.seeds: [100] also in seeds"),
    (("seeds: [100]", "seeds: []"), "race.seeds: expected a list of distinct integers"),
    (("seeds: [100], ", ""), "race.seeds: missing"),
    (("highest: 0.04", "highest: 0.04, rates: [1]"), "race.rates: unknown key"),
    (("seeds: [0, 1]", "seeds: [0, 1]\nlr: [0.01]"), "race: the race chooses the learning rate"),
    (("design: factorial", "design: leave_one_out"), "race: races each variant of a factorial grid"),
])
def test_a_race_declared_wrongly_exits_2_naming_the_key_before_any_store(tmp_path, monkeypatch, capsys, change, message):
    monkeypatch.chdir(tmp_path)
    assert change[0] in RACE
    path = write(tmp_path, RACE.replace(*change))
    assert cli.main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "mlruns").exists()


def record(run_id: str, outcome: str, trained: int, status: str = "FINISHED") -> RunRecord:
    tags = {"stopped_by": outcome, "epochs_trained": str(trained)} if status == "FINISHED" else {"failure_reason": outcome}
    return RunRecord(run_id, "", status, tags, {}, {}, 0, 0)


def fake_runs(grid: G.Grid, outcomes: dict[tuple[str, float], tuple]) -> tuple[dict, dict]:
    """Runs for the grid's race cells: (activation, rate) -> (outcome, training-error curve[, status])."""
    runs, curves = {}, {}
    for cell in grid.cells:
        got = outcomes.get((cell.values["model.activation"], cell.config.optim.lr))
        if got:
            how, curve, *status = got
            run = record(cell.name, how, len(curve), *status)
            runs[cell.key], curves[run.run_id] = [run], curve
    return runs, curves


def test_the_winner_is_chosen_extended_past_an_end_and_never_chosen_again(tmp_path):
    grid = G.load(write(tmp_path, RACE))
    fast, slow = [(1, 60.0), (2, 20.0)], [(1, 70.0), (2, 40.0), (3, 24.0)]  # 25% crossed at ~1.4 and ~2.4 epochs
    runs, curves = fake_runs(grid, {
        ("relu", 0.04): ("diverged", [], "FAILED"), ("relu", 0.02): ("target", fast), ("relu", 0.01): ("target", slow),
        ("tanh", 0.04): ("target", fast), ("tanh", 0.02): (race.OUTRACED, [(1, 80.0), (2, 50.0)]),
        ("tanh", 0.01): ("stalled", [(1, 85.0)] * 4)})
    lookup = lambda run: curves[run.run_id]  # noqa: E731
    grown = race.next_round(grid, runs, lookup)
    # relu: 0.02 wins with a slower rate on each side; tanh: 0.04 wins at the top, so 0.08 joins the race
    assert grown.race_state == {"activation=relu": {"rates": [0.01, 0.02, 0.04], "chosen": 0.02},
                                "activation=tanh": {"rates": [0.01, 0.02, 0.04, 0.08]}}
    assert [(c.values["model.activation"], c.config.optim.lr, c.seed) for c in grown.cells if c.stage == "estimate"] == \
        [("relu", 0.02, 0), ("relu", 0.02, 1)]
    assert race.next_round(grown, runs, lookup) is None  # tanh waits for its 0.08 cell
    eighty = next(c for c in grown.cells if c.config.optim.lr == 0.08)
    runs[eighty.key] = [record("r8", "diverged", 1, "FAILED")]
    done = race.next_round(grown, runs, lookup)
    assert done.race_state["activation=tanh"] == {"rates": [0.01, 0.02, 0.04, 0.08], "chosen": 0.04}
    # recorded choices are never made again, whatever later runs say
    runs[next(c for c in grid.cells if c.config.optim.lr == 0.01).key] = [record("late", "target", 1)]
    assert race.next_round(done, runs, lookup) is None


def test_a_race_that_waits_on_a_failed_cell_decides_nothing_and_one_no_rate_won_says_none(tmp_path):
    grid = G.load(write(tmp_path, RACE))
    crashed = {("relu", r): ("failed", [], "FAILED") for r in (0.04,)} | {
        ("relu", r): ("stalled", [(1, 80.0)]) for r in (0.02, 0.01)}
    stalled = {("tanh", r): ("max_epochs", [(1, 80.0)]) for r in (0.04, 0.02, 0.01)}
    runs, curves = fake_runs(grid, crashed | stalled)
    grown = race.next_round(grid, runs, lambda run: curves[run.run_id])
    assert grown.race_state == {"activation=tanh": {"rates": [0.01, 0.02, 0.04], "chosen": "none"}}
    assert not [c for c in grown.cells if c.stage == "estimate"]


def test_a_race_cell_is_out_raced_once_it_has_trained_the_winners_epochs(tmp_path):
    grid = G.load(write(tmp_path, RACE))
    relu = {c.config.optim.lr: c for c in grid.cells if c.values["model.activation"] == "relu"}
    tanh_fast = next(c for c in grid.cells if c.values["model.activation"] == "tanh")
    runs = {relu[0.04].key: [record("a", "target", 5)],
            tanh_fast.key: [record("b", "target", 2)]}  # another race: not relu's rival
    assert race.outraced(grid, relu[0.01], runs, 4) is None
    assert race.outraced(grid, relu[0.01], runs, 5) == race.OUTRACED
    runs[relu[0.04].key] = [record("a", "stalled", 5)]  # a rival that stopped short of the target
    assert race.outraced(grid, relu[0.01], runs, 9) is None


# ----------------------------------------------------------------------------- real races

def race_file(tmp_path: Path, source: Path) -> Path:
    """Two activations racing rates 0.01-0.04 on one selection seed, then two estimate seeds: the
    target (85% training error) is within a few epochs of 2,048 real images."""
    return write(tmp_path, f"""
name: r
preset: cifar_convnet4
design: factorial
axes: {{model.activation: [relu, tanh]}}
race: {{seeds: [100], lowest: 0.01, highest: 0.04}}
seeds: [0, 1]
stop: {{train_err_below: 85, max_epochs: 3, stalled_epochs: 2}}
set:
  data.source: {source}
  data.train_subset: 2048
  data.val_size: 256
  data.test_subset: 256
  model.init: pytorch
  data.normalize: standard
  trainer.progress_bar: false
  trainer.checkpoint_dir: {tmp_path / 'checkpoints'}
  tracking.artifact_root: {tmp_path / 'artifacts'}
""")


def sweep_command(path: Path, url: str, uri: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "sweep", str(path), "--storage", url, "--tracking-uri", uri]


def kill_when(proc: subprocess.Popen, ready, what: str) -> None:
    deadline = time.time() + 300
    while not ready() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, f"the sweep ended before {what}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def recorded_grid(uri: str) -> G.Grid:
    """The grid as the sweep last recorded it (its parent run's grid.yaml), race state included."""
    parent = tracking.find_runs(uri, "r", "tags.sweep_role = 'parent'")[0]
    path = Path(uri.removeprefix("sqlite:///")).with_suffix(".grid.yaml")
    path.write_text(tracking.run_config_yaml(uri, parent.run_id, "grid.yaml"))
    return G.load(path)


def children(uri: str) -> list[RunRecord]:
    return [r for r in tracking.find_runs(uri, "r") if r.tags.get("sweep_role") != "parent"]


def assert_every_cell_settled_once(grid: G.Grid, uri: str) -> list[RunRecord]:
    """Each cell of the grid (both stages) has exactly one result (FINISHED, or diverged), and no run
    is left RUNNING; returns the results."""
    runs = children(uri)
    assert not [r.name for r in runs if r.status == "RUNNING"]
    settled = [r for r in runs if race.settled(grid, r)]
    assert sorted(r.tags["cell"] for r in settled) == sorted(c.key for c in grid.cells)
    return settled


@pytest.mark.slow
def test_a_race_and_its_estimate_run_each_cell_once_after_kill_9_in_either_stage(tmp_path, real_cifar, capsys):
    path = race_file(tmp_path, real_cifar)
    url, uri = f"sqlite:///{tmp_path}/optuna.db", f"sqlite:///{tmp_path}/mlflow.db"
    # the dry run: the race's cells with their bound, and what the estimate stage will add
    assert cli.main(["sweep", str(path), "--dry-run", "--storage", url, "--tracking-uri", uri, "--calibrate-steps", "1"]) == 0
    plan = capsys.readouterr().out
    assert plan.count("-s100 ") == 6 and "then the estimate: 2 variants x 2 seeds at the chosen rates" in plan
    assert not Path(tmp_path / "mlflow.db").exists()

    checkpoints = tmp_path / "checkpoints"
    log = open(tmp_path / "sweep.log", "w")
    proc = subprocess.Popen(sweep_command(path, url, uri), stdout=log, stderr=subprocess.STDOUT)
    kill_when(proc, lambda: len(list(checkpoints.glob("*/last.ckpt"))) >= 2, "its second race cell checkpointed")
    assert any(r.status == "RUNNING" and r.tags["stage"] == "race" for r in children(uri))

    def estimate_mid_cell() -> bool:
        return any(r.status == "RUNNING" and r.tags.get("stage") == "estimate"
                   and (checkpoints / r.run_id / "last.ckpt").is_file() for r in children(uri))

    proc = subprocess.Popen(sweep_command(path, url, uri), stdout=log, stderr=subprocess.STDOUT)
    kill_when(proc, estimate_mid_cell, "an estimate cell checkpointed")
    chosen_then = recorded_grid(uri).race_state
    assert cli.main(["sweep", str(path), "--storage", url, "--tracking-uri", uri]) == 0, (tmp_path / "sweep.log").read_text()[-3000:]
    assert "continued from run" in capsys.readouterr().out  # the killed estimate cell, in its own run
    grid = recorded_grid(uri)
    made = {v: d for v, d in chosen_then.items() if "chosen" in d}
    assert made and all(grid.race_state[v] == d for v, d in made.items())  # chosen once, never again
    runs = assert_every_cell_settled_once(grid, uri)
    assert {r.tags["stage"] for r in runs} == {"race", "estimate"} and len(grid.cells) >= 6 + 4
    chosen = {v: d["chosen"] for v, d in grid.race_state.items()}
    for run in runs:  # the estimate runs at its variant's chosen rate, on fresh seeds
        if run.tags["stage"] == "estimate":
            assert float(run.params["optim.lr"]) == chosen[f"activation={run.tags['activation']}"]
            assert run.tags["seed"] in {"0", "1"} and run.tags["stopped_by"] in ("target", "stalled", "max_epochs")
    assert {r.tags["stopped_by"] for r in runs if r.status == "FINISHED"} <= {"target", "stalled", "max_epochs", race.OUTRACED}
    assert cli.main(["sweep", str(path), "--storage", url, "--tracking-uri", uri]) == 0  # again: nothing to do
    assert "  -> " not in capsys.readouterr().out


@pytest.mark.slow
def test_a_race_exported_mid_way_finishes_in_a_fresh_store_with_its_recorded_choice(tmp_path, real_cifar):
    """As a session that ends and the next one on a fresh checkout: the default stores (mlruns/) in
    one folder, killed mid-way, exported; imported into another folder's new default stores, where
    the same command runs only what was left and keeps the choices the race had recorded."""
    path = race_file(tmp_path, real_cifar)
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir(), there.mkdir()
    uri = f"sqlite:///{here}/mlruns/mlflow.db"
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "sweep", str(path)], cwd=here,
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    kill_when(proc, lambda: (here / "mlruns" / "mlflow.db").is_file() and any(
        r.tags.get("stage") == "estimate" for r in children(uri) if r.status == "FINISHED"), "an estimate cell finished")
    harness = [sys.executable, "-m", "harness.cli"]  # each command its own process, in its folder, as a user runs them
    subprocess.run(harness + ["export", "r", "--out", str(tmp_path / "r.runs.zip")], cwd=here, check=True)
    exported = recorded_grid(uri)
    made = {v: d for v, d in exported.race_state.items() if "chosen" in d}
    assert made  # a variant chose (its estimate began); the other may still be racing
    done_here = {r.tags["cell"] for r in children(uri) if race.settled(exported, r)}

    subprocess.run(harness + ["import", str(tmp_path / "r.runs.zip")], cwd=there, check=True)
    out = subprocess.run(harness + ["sweep", str(path)], cwd=there, check=True, capture_output=True, text=True).stdout
    ran = {line.split("-> ")[1] for line in out.splitlines() if "  -> " in line}
    there_uri = f"sqlite:///{there}/mlruns/mlflow.db"
    grid = recorded_grid(there_uri)
    assert all(grid.race_state[v] == d for v, d in made.items())  # the choice travelled with the runs file
    assert ran and not {c.name for c in grid.cells if c.key in done_here} & ran  # only what was left ran
    assert_every_cell_settled_once(grid, there_uri)
