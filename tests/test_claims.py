"""The exactly-once rule without training: racing claims, dead workers, and which failures a sweep
retries, on SQLite and on a real PostgreSQL server. No Lightning is imported here."""

import os
import time

import optuna
import pytest
from optuna.trial import TrialState

from harness import grid as G
from harness import claims, tracking
from conftest import fresh_store, worker_processes

GRID = """
name: claims
preset: cifar_convnet4
design: factorial
axes: {model.activation: [relu, tanh], model.init: [paper, pytorch]}
seeds: [0, 1, 2]
"""


@pytest.fixture(params=["sqlite", "postgres"])
def stores(request, tmp_path):
    """(grid file, Optuna storage URL, MLflow tracking URI) on one kind of database."""
    path = tmp_path / "claims.yaml"
    path.write_text(GRID + f"set: {{tracking.artifact_root: {tmp_path / 'artifacts'}}}\n")
    if request.param == "sqlite":
        return path, f"sqlite:///{tmp_path}/optuna.db", fresh_store(tmp_path / "mlflow.db")
    database = request.getfixturevalue("postgres")
    return path, database("optuna"), database("mlflow")


def _claim_everything(path, url, uri, barrier, results) -> None:
    sw = claims.open_sweep(G.load(path), url, uri)
    barrier.wait()  # every worker goes for the same cells in the same order at the same moment
    won = [cell.key for cell in sw.grid.cells if claims.claim(sw, cell) is not None]
    results.put((os.getpid(), won))


def test_racing_workers_claim_each_cell_exactly_once(stores):
    path, url, uri = stores
    grid = G.load(path)
    claims.open_sweep(grid, url, uri)  # the study and parent run exist before the race, as with --workers
    ctx = worker_processes()
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_claim_everything, args=(path, url, uri, barrier, results)) for _ in range(4)]
    for p in procs:
        p.start()
    won = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    claimed = [key for _, keys in won for key in keys]
    assert sorted(claimed) == sorted(c.key for c in grid.cells)  # every cell once, none twice
    assert len([keys for _, keys in won if keys]) >= 1
    sw = claims.open_sweep(grid, url, uri)
    trials = claims.trials_by_cell(sw)
    for cell in grid.cells:  # all four went for every cell: one RUNNING claim, three stood down
        states = sorted(t.state.name for t in trials[cell.key])
        assert states == ["PRUNED", "PRUNED", "PRUNED", "RUNNING"]


def _dead_pid() -> int:
    proc = worker_processes().Process(target=time.sleep, args=(0,))
    proc.start()
    proc.join()
    return proc.pid


def test_dead_worker_on_this_host_is_reaped_once_and_its_run_killed(stores):
    path, url, uri = stores
    grid = G.load(path)
    dead = claims.open_sweep(grid, url, uri)
    dead.worker = f"{claims.this_host()}:{_dead_pid()}"
    cell = grid.cells[0]
    trial_id = claims.claim(dead, cell)
    number = dead.storage.get_trial_number_from_id(trial_id)
    run_id = tracking.start_run(uri, grid.name, str(path.parent / "artifacts"), cell.name, {},
                                {"sweep_parent": dead.parent_id, "cell": cell.key, "optuna_trial": str(number)},
                                "", parent_run_id=dead.parent_id)

    live = claims.open_sweep(grid, url, uri)
    assert live.parent_id == dead.parent_id  # one parent run per sweep and tracking store
    states, _, _ = claims.snapshot(live)
    assert states[cell.key] == "running"
    claims.reap(live)
    claims.reap(live)  # the second look finds nothing left to do
    assert live.storage.get_trial(trial_id).state == TrialState.FAIL
    run = tracking.find_runs(uri, grid.name, f"tags.optuna_trial = '{number}'")[0]
    assert (run.run_id, run.status, run.tags["failure_reason"]) == (run_id, "KILLED", "worker_lost")
    states, _, _ = claims.snapshot(live)
    assert states[cell.key] == "todo"  # a lost worker's cell is free again at once


def test_a_worker_in_another_pid_namespace_of_the_same_host_name_is_never_reaped_by_its_pid(stores, tmp_path):
    """Two containers (or pods) with one host name: a pid of the other's namespace means nothing
    here, so its claim is left to the heartbeat, even where that pid is dead here."""
    import subprocess
    import sys

    path, url, uri = stores
    grid = G.load(path)
    other = claims.open_sweep(grid, url, uri)
    host, _, _ = claims.this_host().rpartition("-")
    other.worker = f"{host}-1:{_dead_pid()}"  # its namespace is not ours; its pid is dead here
    trial_id = claims.claim(other, grid.cells[0])
    claims.reap(claims.open_sweep(grid, url, uri))
    assert other.storage.get_trial(trial_id).state == TrialState.RUNNING
    # and a real process in a PID namespace of its own names another host than this one
    inner = subprocess.run(["unshare", "-fp", "--mount-proc", sys.executable, "-c",
                            "from harness import claims; print(claims.this_host())"], capture_output=True, text=True)
    if inner.returncode == 0:  # unshare -p needs root or user namespaces
        assert inner.stdout.strip() != claims.this_host()
        assert inner.stdout.strip().split("@")[0] == claims.this_host().split("@")[0]  # the same host name


def test_silent_worker_elsewhere_is_reaped_after_the_grace_period(stores, monkeypatch):
    path, url, uri = stores
    monkeypatch.setattr(claims, "HEARTBEAT_S", 1)
    monkeypatch.setattr(claims, "GRACE_S", 3)  # long enough for a PostgreSQL sweep to open before the first look
    grid = G.load(path)
    other = claims.open_sweep(grid, url, uri)
    other.worker = "another-machine:4242"
    trial_id = claims.claim(other, grid.cells[1])
    live = claims.open_sweep(grid, url, uri)
    claims.reap(live)
    assert live.storage.get_trial(trial_id).state == TrialState.RUNNING  # within the grace period
    time.sleep(4)
    claims.reap(live)
    assert live.storage.get_trial(trial_id).state == TrialState.FAIL


def test_a_cell_whose_worker_confirmed_it_is_done_and_its_run_finished_by_the_next_reap(stores):
    """A worker completes its trial, then marks its run FINISHED; killed between the two, its cell
    must not run again (a second FINISHED run) and its run must not stay RUNNING."""
    path, url, uri = stores
    grid = G.load(path)
    sw = claims.open_sweep(grid, url, uri)
    cell, trial_id = claims.claim_next(sw)
    tags = {"sweep_parent": sw.parent_id, "cell": cell.key,
            "optuna_trial": str(sw.storage.get_trial_number_from_id(trial_id))}
    run_id = tracking.start_run(uri, grid.name, str(path.parent / "artifacts"), cell.name, {}, tags, "", sw.parent_id)
    assert claims.end_trial(sw, trial_id, TrialState.COMPLETE, 12.5)  # ... and the worker dies here
    other = claims.open_sweep(grid, url, uri)
    states, _, _ = claims.snapshot(other)
    assert states[cell.key] == "done"
    assert claims.claim_next(other)[0].key != cell.key
    claims.reap(other)
    assert tracking.run_status(uri, run_id) == "FINISHED"


def test_a_run_left_running_under_no_claim_is_ended_killed_by_the_worker_that_claims_its_cell(stores):
    """As a runs file exported while a cell ran leaves it in the store it is imported into (the
    claim stayed in the other store's study): the cell is free, and the worker that claims it ends
    the run KILLED before training the cell, rather than leave it RUNNING beside its successor."""
    path, url, uri = stores
    grid = G.load(path)
    sw = claims.open_sweep(grid, url, uri)
    cell = grid.cells[0]
    orphan = tracking.start_run(uri, grid.name, str(path.parent / "artifacts"), cell.name, {},
                                {"sweep_parent": sw.parent_id, "cell": cell.key, "optuna_trial": "7"}, "", sw.parent_id)
    states, _, _ = claims.snapshot(sw)
    assert states[cell.key] == "todo"
    claimed, trial_id = claims.claim_next(sw)
    assert claimed.key == cell.key
    # Left alone: a run under a RUNNING trial (a worker that reaped a stalled claimer and trains the
    # cell now: here the claim just made stands for it), and one a process here trains by hand.
    held = tracking.start_run(uri, grid.name, str(path.parent / "artifacts"), cell.name, {},
                              {"sweep_parent": sw.parent_id, "cell": cell.key,
                               "optuna_trial": str(sw.storage.get_trial_number_from_id(trial_id))}, "", sw.parent_id)
    by_hand = tracking.start_run(uri, grid.name, str(path.parent / "artifacts"), cell.name, {},
                                 {"sweep_parent": sw.parent_id, "cell": cell.key}, "", sw.parent_id)
    runs = claims.end_unclaimed_runs(sw, claims.children(sw)[cell.key], busy=lambda run_id: run_id == by_hand)
    assert {r.run_id: r.status for r in runs} == {orphan: "KILLED", held: "RUNNING", by_hand: "RUNNING"}
    run = tracking.find_runs(uri, grid.name, "tags.optuna_trial = '7'")[0]
    assert (run.status, run.tags["failure_reason"]) == ("KILLED", claims.WORKER_LOST)
    assert "no claim held it" in run.tags["failure_message"]
    assert tracking.run_status(uri, held) == tracking.run_status(uri, by_hand) == "RUNNING"


def test_a_worker_whose_claim_was_reaped_cannot_complete_it(stores):
    """The silent worker's confirm (completing its trial) fails once another worker has failed the
    trial, so its run ends KILLED, not FINISHED (see sweep.run_cell)."""
    path, url, uri = stores
    grid = G.load(path)
    silent = claims.open_sweep(grid, url, uri)
    silent.worker = "another-machine:4242"
    cell, trial_id = claims.claim_next(silent)
    reaper = claims.open_sweep(grid, url, uri)
    assert reaper.storage.set_trial_state_values(trial_id, TrialState.FAIL)  # as reap() does
    assert claims.end_trial(silent, trial_id, TrialState.COMPLETE, 12.5) is False


def test_a_failure_is_retried_by_the_next_invocation_not_this_one(stores):
    path, url, uri = stores
    grid = G.load(path)
    before = claims.open_sweep(grid, url, uri)
    old = claims.claim(before, grid.cells[0])
    claims.end_trial(before, old, TrialState.FAIL, reason="Diverged: loss became nan")
    now = claims.open_sweep(grid, url, uri)  # a new invocation: the failure above predates it
    new = claims.claim(now, grid.cells[1])
    claims.end_trial(now, new, TrialState.FAIL, reason="Diverged: loss became inf")
    interrupted = claims.claim(now, grid.cells[2])  # e.g. a pre-empted job elsewhere: free to continue
    claims.end_trial(now, interrupted, TrialState.FAIL, reason=tracking.INTERRUPTED)
    states, _, _ = claims.snapshot(now)
    assert states[grid.cells[0].key] == "todo"
    assert states[grid.cells[1].key] == "failed"
    assert states[grid.cells[2].key] == "todo"


def test_a_grid_that_gains_seeds_keeps_claiming(stores, tmp_path):
    path, url, uri = stores
    first = claims.open_sweep(G.load(path), url, uri)
    assert claims.claim(first, first.grid.cells[0]) is not None
    grown = tmp_path / "claims.yaml"
    grown.write_text(path.read_text().replace("seeds: [0, 1, 2]", "seeds: [0, 1, 2, 3]"))
    bigger = G.load(grown)
    later = claims.open_sweep(bigger, url, uri)
    new_cells = [c for c in bigger.cells if c.seed == 3]
    assert len(new_cells) == 4  # seed 3 for every (activation, init)
    assert claims.claim(later, new_cells[0]) is not None
    trial = later.study.get_trials()[-1]
    assert trial.user_attrs["seed"] == new_cells[0].seed and trial.user_attrs["axis.model.init"] == "paper"


def test_one_parent_per_tracking_store_and_a_new_one_when_the_store_is_replaced(stores, tmp_path):
    path, url, uri = stores
    grid = G.load(path)
    first = claims.open_sweep(grid, url, uri).parent_id
    assert claims.open_sweep(grid, url, uri).parent_id == first
    other_uri = fresh_store(tmp_path / "other-mlflow.db")
    second = claims.open_sweep(grid, url, other_uri).parent_id
    assert second != first and tracking.run_active(other_uri, second)
    # The study is lost, the MLflow store kept: the new study on the same storage adopts the parent
    # (its FINISHED cells stay done); a study on another storage keeps a parent of its own.
    optuna.delete_study(study_name=grid.name, storage=url)
    assert claims.open_sweep(grid, url, uri).parent_id == first
    elsewhere = claims.open_sweep(grid, f"sqlite:///{tmp_path}/other-optuna.db", uri).parent_id
    assert elsewhere != first
    tracking.delete_run(uri, elsewhere)
    tracking.delete_run(uri, first)  # the first store's parent is gone: the sweep starts a new one there
    third = claims.open_sweep(grid, url, uri).parent_id
    assert third not in (first, second) and tracking.run_active(uri, third)
    assert len(tracking.find_runs(uri, grid.name, "tags.sweep_role = 'parent'")) == 1


def test_the_report_and_export_read_the_parent_of_the_storage_they_are_given(tmp_path, capsys):
    from harness import bundle
    from harness.errors import StoreError

    path = tmp_path / "claims.yaml"
    path.write_text(GRID + f"set: {{tracking.artifact_root: {tmp_path / 'artifacts'}}}\n")
    grid, uri = G.load(path), fresh_store(tmp_path / "mlflow.db")
    first_url, second_url = f"sqlite:///{tmp_path}/first.db", f"sqlite:///{tmp_path}/second.db"
    first = claims.open_sweep(grid, first_url, uri).parent_id
    alone = bundle.from_store(uri, grid.name, f"sqlite:///{tmp_path}/elsewhere.db")
    assert alone.runs[0].run_id == first  # the only parent; and its trials from the storage it was made for
    assert [t["user_attrs"] for t in alone.trials] == [{"mlflow_parent": first}]  # first.db's one trial
    assert not (tmp_path / "elsewhere.db").exists()
    assert tracking.other_storages_note(uri, grid.name, first_url) == ""
    capsys.readouterr()
    second = claims.open_sweep(grid, second_url, uri).parent_id  # another storage: a parent of its own
    # ... and it says so before it starts over, naming the storage that would continue the runs there
    assert (f"harness: sweep claims: sqlite:///{tmp_path}/mlflow.db holds its runs under a parent made for Optuna "
            f"storage {first_url}; on {second_url} it starts over under a parent of its own, every cell to run "
            f"again (to continue those runs instead: --storage {first_url})") in capsys.readouterr().err
    elsewhere = f"sqlite:///{tmp_path}/elsewhere.db"  # two other parents: both named, the oldest's to continue
    assert (f"under parents made for Optuna storages {first_url}, {second_url}; on {elsewhere} it starts over under a "
            f"parent of its own, every cell to run again (to continue those runs instead: --storage {first_url})"
            ) in tracking.other_storages_note(uri, grid.name, elsewhere)
    assert second != first
    for url, parent in ((first_url, first), (second_url, second)):
        assert tracking.sweep_parent(uri, grid.name, url).run_id == parent
        assert bundle.from_store(uri, grid.name, url).runs[0].run_id == parent
    with pytest.raises(StoreError, match="2 parent runs .* none for sqlite:///.*elsewhere.db: name the sweep's storage"):
        bundle.from_store(uri, grid.name, f"sqlite:///{tmp_path}/elsewhere.db")
    assert tracking.sweep_parent(uri, grid.name, f"sqlite:///{tmp_path}/elsewhere.db") is None  # a sweep makes its own


def test_a_run_whose_trial_completed_is_done_for_the_claims_the_summary_and_the_dry_run(tmp_path):
    path = tmp_path / "claims.yaml"
    path.write_text(GRID + f"set: {{tracking.artifact_root: {tmp_path / 'artifacts'}}}\n")
    grid, url, uri = G.load(path), f"sqlite:///{tmp_path}/optuna.db", f"sqlite:///{tmp_path}/mlflow.db"
    sw = claims.open_sweep(grid, url, uri)
    cell = grid.cells[0]
    trial_id = claims.claim(sw, cell)
    number = sw.storage.get_trial_number_from_id(trial_id)
    run = tracking.start_run(uri, grid.name, str(tmp_path / "artifacts"), cell.name, {}, {
        "sweep_parent": sw.parent_id, "cell": cell.key, "optuna_trial": str(number)}, "", sw.parent_id)
    claims.end_trial(sw, trial_id, TrialState.COMPLETE, value=10.0)  # its worker died before FINISHED
    runs = claims.children(sw)[cell.key]
    assert [r.run_id for r in runs] == [run] and runs[0].status == "RUNNING"
    stored, last = claims.stored_trials(url, grid.name)  # the dry run's read: nothing created
    assert claims.cell_state(grid, runs, stored[cell.key], last) == "done"
    assert claims.snapshot(sw)[0][cell.key] == "done"
    assert claims.stored_trials(f"sqlite:///{tmp_path}/none.db", grid.name) == ({}, -1)
    assert not (tmp_path / "none.db").exists()
