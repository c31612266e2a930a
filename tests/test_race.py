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
from conftest import fresh_store

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
    again = G.from_record(yaml.safe_load(yaml.safe_dump(chosen.as_dict())), "grid.yaml", "recorded")
    assert [c.key for c in again.cells] == [c.key for c in chosen.cells]


@pytest.mark.parametrize("state, message", [
    ({"activation=relu": {"rates": [1.0], "chosen": True}}, "race_state.activation=relu.chosen: not one of the race's rates"),
    ({"activation=relu": {"rates": [0.01, 0.01]}}, "race_state.activation=relu.rates: expected a list of distinct positive rates"),
    ({"activation=sigmoid": {}}, "race_state.activation=sigmoid: not a variant of this grid"),
])
def test_a_recorded_race_state_is_checked_against_its_grid(tmp_path, state, message):
    recorded = G.load(write(tmp_path, RACE)).as_dict() | {"race_state": state}
    with pytest.raises(G.C.ConfigError, match=f"^recorded: {message}"):
        G.from_record(recorded, "grid.yaml", "recorded")


@pytest.mark.parametrize("change, message", [
    (("stop: {train_err_below: 25, ", "stop: {"), "stop.train_err_below: a race needs a training-error target"),
    (("lowest: 0.01", "lowest: 0"), "race.lowest: expected a positive number; got 0"),
    (("highest: 0.04", "highest: -1"), "race.highest: expected a positive number; got -1"),
    (("highest: 0.04", "highest: .nan"), "race.highest: expected a positive number"),
    (("lowest: 0.01", "lowest: '0.01'"), "race.lowest: expected a positive number"),
    (("highest: 0.04", "highest: 0.005"), "race.highest: below race.lowest"),
    (("highest: 0.04", "highest: 0.04, factor: 1"), "race.factor: expected a number from 1.1 to 10"),
    (("highest: 0.04", "highest: 0.04, factor: 1.0000000000001"), "race.factor: expected a number from 1.1 to 10"),
    (("lowest: 0.01", "lowest: 1.0e-30"), "race.highest: 1e-30 to 0.04 in steps of x2.0 is 97 rates; at most 20"),
    (("seeds: [100]", "seeds: [-5]"), "race.seeds: expected a list of distinct integers in [0, 2**32)"),
    (("seeds: [0, 1]", "seeds: [0, 1]\nset: {optim.lr: 0.5}"), "race: the race chooses the learning rate: drop optim.lr in set"),
    (("seeds: [0, 1]", "seeds: [0, 1]\nwith: {model.activation: {tanh: {optim.lr: 0.5}}}"),
     "race: the race chooses the learning rate: drop with.model.activation.tanh"),
    (("seeds: [0, 1]", "seeds: [0, 1]\nrace_state: {activation=relu: {rates: [0.01], chosen: 0.01}}"),
     "race_state: recorded by a sweep in its parent run's grid.yaml, not set in a grid file"),
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


def test_with_several_selection_seeds_the_choice_reads_only_each_seeds_winner(tmp_path):
    """0.04 wins seed 100 and diverges on 101; 0.02 reaches the target on both but, on seed 100, is
    out-raced or not depending on which cell finished first. Either way: one seed each, and the
    lower rate is chosen, whatever order the cells ran in."""
    grid = G.load(write(tmp_path, RACE.replace("seeds: [100]", "seeds: [100, 101]")))
    relu = {(c.config.optim.lr, c.seed): c for c in grid.cells if c.values["model.activation"] == "relu"}
    fast, slow, never = [(1, 60.0), (2, 20.0)], [(1, 70.0), (2, 40.0), (3, 24.0)], [(1, 88.0)] * 2
    curves = {}

    def runs_for(out_raced: bool) -> dict:
        outcomes = {(0.04, 100): ("target", fast), (0.04, 101): ("diverged", [], "FAILED"),
                    (0.02, 100): (race.OUTRACED, slow[:2]) if out_raced else ("target", slow),
                    (0.02, 101): ("target", slow), (0.01, 100): (race.OUTRACED, never), (0.01, 101): (race.OUTRACED, never)}
        runs = {}
        for (rate, seed), (how, curve, *status) in outcomes.items():
            cell = relu[(rate, seed)]
            runs[cell.key], curves[cell.name] = [record(cell.name, how, len(curve), *status)], curve
        return runs

    for out_raced in (True, False):
        grown = race.next_round(grid, runs_for(out_raced), lambda run: curves[run.run_id])
        assert grown.race_state["activation=relu"] == {"rates": [0.01, 0.02, 0.04], "chosen": 0.02}


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
    """Two activations racing rates 0.02-0.16 on one selection seed, then two estimate seeds: the
    target (85% training error) is within a few epochs of 1,024 real images, and each activation's
    fastest rate was inside that ladder here (so the race usually needs no extra round)."""
    return write(tmp_path, f"""
name: r
preset: cifar_convnet4
design: factorial
axes: {{model.activation: [relu, tanh]}}
race: {{seeds: [100], lowest: 0.02, highest: 0.16}}
seeds: [0, 1]
stop: {{train_err_below: 85, max_epochs: 3, stalled_epochs: 2}}
set:
  data.source: {source}
  data.train_subset: 1024
  data.val_size: 256
  data.test_subset: 256
  model.init: pytorch
  data.normalize: standard
  trainer.progress_bar: false
  trainer.checkpoint_dir: {tmp_path / 'checkpoints'}
  tracking.artifact_root: {tmp_path / 'artifacts'}
""")


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
    return G.from_record(yaml.safe_load(tracking.run_config_yaml(uri, parent.run_id, "grid.yaml")), "grid.yaml",
                         "recorded")


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
def test_a_race_killed_in_either_stage_settles_each_cell_once_in_place_and_from_its_runs_file(tmp_path, real_cifar,
                                                                                                capsys):
    """kill -9 in the race, then mid-cell in the estimate, then exported, as a session that ends:
    each killed sweep a command of its own in its folder, on its default stores. In place, the same
    command continues the killed cell in its own run and settles every cell once, choosing no rate
    twice; in another folder's new default stores (the next session, on a fresh checkout) the
    imported runs file makes the same command, again a process of its own on its folder's
    defaults, run only what was left, with the choices the race had recorded, and continue the run
    that was killed mid-cell from the checkpoint the file carried. (One race serves both endings:
    it is the slowest part. Export and import run in this process, on those same stores named:
    each process start imports torch, MLflow and Optuna again, seconds of CPU.)"""
    path = race_file(tmp_path, real_cifar)
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir(), there.mkdir()
    url, uri = f"sqlite:///{here}/mlruns/optuna.db", f"sqlite:///{here}/mlruns/mlflow.db"  # the defaults, from here
    # the dry run: the race's cells with their bound, and what the estimate stage will add
    assert cli.main(["sweep", str(path), "--dry-run", "--storage", url, "--tracking-uri", uri, "--calibrate-steps", "1"]) == 0
    plan = capsys.readouterr().out
    assert plan.count("-s100 ") == 8 and "then the estimate: 2 variants x 2 seeds at the chosen rates" in plan
    assert not (here / "mlruns").exists()
    fresh_store(here / "mlruns" / "mlflow.db")  # made new by a copy: MLflow's migrations take seconds

    checkpoints = tmp_path / "checkpoints"
    harness = [sys.executable, "-m", "harness.cli"]  # its own process, in its folder, on its default stores
    log = open(tmp_path / "sweep.log", "w")
    proc = subprocess.Popen(harness + ["sweep", str(path)], cwd=here, stdout=log, stderr=subprocess.STDOUT)
    kill_when(proc, lambda: len(list(checkpoints.glob("*/last.ckpt"))) >= 2, "its second race cell checkpointed")
    assert any(r.status == "RUNNING" and r.tags["stage"] == "race" for r in children(uri))

    def estimate_mid_cell() -> bool:
        return any(r.status == "RUNNING" and r.tags.get("stage") == "estimate"
                   and (checkpoints / r.run_id / "last.ckpt").is_file() for r in children(uri))

    proc = subprocess.Popen(harness + ["sweep", str(path)], cwd=here, stdout=log, stderr=subprocess.STDOUT)
    kill_when(proc, estimate_mid_cell, "an estimate cell checkpointed")
    exported = recorded_grid(uri)
    made = {v: d for v, d in exported.race_state.items() if "chosen" in d}
    assert made  # a variant chose (its estimate began); the other may still be racing
    done_here = {r.tags["cell"] for r in children(uri) if race.settled(exported, r)}
    assert cli.main(["export", "r", "--out", str(tmp_path / "r.runs.zip"), "--checkpoints", "--storage", url,
                     "--tracking-uri", uri]) == 0

    # in place
    assert cli.main(["sweep", str(path), "--storage", url, "--tracking-uri", uri]) == 0, (tmp_path / "sweep.log").read_text()[-3000:]
    assert "continued from run" in capsys.readouterr().out  # the killed estimate cell, in its own run
    grid = recorded_grid(uri)
    assert all(grid.race_state[v] == d for v, d in made.items())  # chosen once, never again
    runs = assert_every_cell_settled_once(grid, uri)
    assert {r.tags["stage"] for r in runs} == {"race", "estimate"} and len(grid.cells) >= 8 + 4
    chosen = {v: d["chosen"] for v, d in grid.race_state.items()}
    for run in runs:  # the estimate runs at its variant's chosen rate, on fresh seeds
        if run.tags["stage"] == "estimate":
            assert float(run.params["optim.lr"]) == chosen[f"activation={run.tags['activation']}"]
            assert run.tags["seed"] in {"0", "1"} and run.tags["stopped_by"] in ("target", "stalled", "max_epochs")
    assert {r.tags["stopped_by"] for r in runs if r.status == "FINISHED"} <= {"target", "stalled", "max_epochs", race.OUTRACED}
    assert cli.main(["sweep", str(path), "--storage", url, "--tracking-uri", uri]) == 0  # again: nothing to do
    assert "  -> " not in capsys.readouterr().out

    # from the runs file, in a fresh folder's new default stores
    there_uri = fresh_store(there / "mlruns" / "mlflow.db")
    # the grid keeps its checkpoints in an absolute folder, which an import follows only when told to
    checkpoints = G.load(path).cells[0].config.trainer.checkpoint_dir
    assert cli.main(["import", str(tmp_path / "r.runs.zip"), "--checkpoint-dir", checkpoints, "--tracking-uri", there_uri]) == 0
    out = subprocess.run(harness + ["sweep", str(path)], cwd=there, check=True, capture_output=True, text=True).stdout
    assert "continued from run" in out  # the killed estimate cell, from the checkpoint its runs file carried
    ran = {line.split("-> ")[1] for line in out.splitlines() if "  -> " in line}
    grid = recorded_grid(there_uri)
    assert all(grid.race_state[v] == d for v, d in made.items())  # the choice travelled with the runs file
    assert ran and not {c.name for c in grid.cells if c.key in done_here} & ran  # only what was left ran
    assert_every_cell_settled_once(grid, there_uri)


# ------------------------------------------------------- a recorded race, without training

def recorded_race(tmp_path: Path, state: dict) -> tuple[Path, str, str, str]:
    """A store holding a race sweep whose parent recorded `state`, one synthetic run per cell: ReLU
    reaches 25% in 3 epochs at every rate and seed, tanh never does. (grid file, storage, store, parent)"""
    from test_report import fill  # the report tests' synthetic sweep

    from harness.stores import redact
    url, uri = f"sqlite:///{tmp_path}/optuna.db", fresh_store(tmp_path / "mlflow.db")
    curves = {"relu": [60.0, 40.0, 20.0], "tanh": [85.0, 84.0, 84.0, 84.0]}
    fill(tmp_path, uri, RACE, lambda cell: ("FINISHED", {"test_err": 50.0, "train_err": curves[cell.values["model.activation"]][-1]},
                                            {"train_err": curves[cell.values["model.activation"]],
                                             "train_time_s": [10.0 * (i + 1) for i in range(len(curves[cell.values["model.activation"]]))]}),
         recorded={"race_state": state})
    parent = tracking.find_runs(uri, "r", "tags.sweep_role = 'parent'")[0].run_id
    tracking.set_tags(uri, parent, {"optuna_storage": redact(url)})  # the sweep's own store: it adopts this parent
    return tmp_path / "grid.yaml", url, uri, parent


DECIDED = {"activation=relu": {"rates": [0.01, 0.02, 0.04], "chosen": 0.01},
           "activation=tanh": {"rates": [0.01, 0.02, 0.04], "chosen": "none"}}


def test_a_race_where_one_activation_reached_the_target_at_no_rate_says_so(tmp_path):
    _, _, uri, _ = recorded_race(tmp_path, DECIDED)
    out = tmp_path / "reports"
    assert cli.main(["report", "r", "--tracking-uri", uri, "--out", str(out)]) == 0
    section = (out / "r" / "section.md").read_text()
    assert "Chosen: activation=relu: lr 0.01; activation=tanh: no rate reached the target." in section
    assert "| none reached it" not in section and "0.01 / none reached it" in section
    assert "ReLU faster: it reached the target (2/2 seeds), tanh in none" in section
    race_rows = __import__("pandas").read_csv(out / "r" / "race.csv")
    assert len(race_rows) == 6 and race_rows["chosen"].sum() == 1  # relu's 0.01 alone is marked chosen


def test_a_sweep_reported_half_way_counts_seeds_not_run_yet_apart_from_seeds_that_failed(tmp_path):
    """tanh has not run seed 3; it diverged on seed 2 (in a race grid an outcome: it did not reach the target). The
    ratio holds seeds 0 and 1, and the findings say which seeds are still to come, rather than
    counting them as seeds that missed the target."""
    from test_report import fill

    curves = {"relu": [60.0, 40.0, 20.0], "tanh": [85.0, 70.0, 50.0, 40.0, 30.0, 20.0]}  # 3 and 6 epochs to 25%

    def outcome(cell):
        act = cell.values["model.activation"]
        if cell.seed == 3 and act == "tanh":  # stopped between ReLU's and tanh's cell of the last seed
            return None
        status = "FAILED" if (act, cell.seed) == ("tanh", 2) else "FINISHED"
        seconds = [10.0 * epoch for epoch in range(1, len(curves[act]) + 1)]
        return status, {"test_err": 50.0, "train_err": curves[act][-1]}, {"train_err": curves[act], "train_time_s": seconds}
    chosen = {f"activation={act}": {"rates": [0.01, 0.02, 0.04], "chosen": 0.02} for act in ("relu", "tanh")}
    uri = fresh_store(tmp_path / "mlflow.db")
    fill(tmp_path, uri, RACE.replace("seeds: [0, 1]", "seeds: [0, 1, 2, 3]"), outcome, recorded={"race_state": chosen})
    out = tmp_path / "reports"
    assert cli.main(["report", "r", "--tracking-uri", uri, "--out", str(out)]) == 0
    section = (out / "r" / "section.md").read_text()
    assert ("tanh (lr 0.02) needed 2.00x the epochs ReLU (lr 0.02) needed to reach 25% training error, over 2 of 4 "
            "seeds (ReLU has 0 and tanh 1 of 4 seeds still to run; ReLU reached it in 4/4 seeds run and tanh in 2/3; "
            "the ratio leaves out seeds where either did not); paper: about 6x.") in section
    assert "Findings: **In progress.** 1 of 14 cells is still to run (the sweep's command, run again, runs only those)" in section


def test_a_race_declared_otherwise_than_it_ran_or_a_hostile_record_is_one_line_exit_2(tmp_path, capsys, real_cifar,
                                                                                      monkeypatch):
    monkeypatch.setenv("HARNESS_DATA_DIR", str(real_cifar.parent))
    grid_file, url, uri, parent = recorded_race(tmp_path, DECIDED)
    # the dry run reads the recorded choices: the estimate's cells, done
    assert cli.main(["sweep", str(grid_file), "--dry-run", "--storage", url, "--tracking-uri", uri,
                     "--calibrate-steps", "1"]) == 0
    plan = capsys.readouterr().out
    assert plan.count("-lr0.01-s0 ") == 1 and "then the estimate" not in plan
    (tmp_path / "other").mkdir()
    changed = write(tmp_path / "other", RACE.replace("seeds: [100]", "seeds: [200]"))
    assert cli.main(["sweep", str(changed), "--storage", url, "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "race: sweep r raced with seeds [100], lowest 0.01" in err and "another sweep name" in err
    bomb = "\n".join(['l0: &l0 ["x","x","x","x","x","x","x","x","x"]'] + [
        f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)])
    for hostile, message in (("[1, 2]", "expected a mapping; got list"), ("{a: [", "not valid YAML"),
                             (bomb, "expands to more than 100,000 values"),
                             (yaml.safe_dump({**G.load(grid_file).as_dict(), "race_state": {"activation=sigmoid": {}}}),
                              "race_state.activation=sigmoid: not a variant of this grid")):
        tracking.log_text(uri, parent, hostile, "grid.yaml")
        assert cli.main(["sweep", str(grid_file), "--storage", url, "--tracking-uri", uri]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"grid.yaml of the sweep's parent run {parent}" in err and message in err
    assert [r.status for r in tracking.find_runs(uri, "r") if r.tags.get("sweep_role") != "parent"] == ["FINISHED"] * 8
