"""The exactly-once protocol of a sweep: its stores (an Optuna study and an MLflow parent run),
claims, heartbeats, reaping dead workers, and each cell's state. No torch, no training.

The rule, keyed on the cell's config hash (`grid.cell_key`) and applied by every worker (this is
the one place it is written; the README and the other modules point here):
1. A cell is **done** when the sweep's parent run (`tracking.sweep_parent`) has a child tagged
   with its hash that is a result (FINISHED; in a race, also diverged: `race.settled`), or a
   RUNNING one whose trial its worker completed (FINISHED comes next; see `claim_next`).
   MLflow is the record; an Optuna trial only ever claims a cell. `cell_state` is the one
   definition of done, running, failed and todo that the claims, the sweep's summary and its
   dry run all read.
2. A cell is **taken** while one of its trials is RUNNING.
3. A worker **claims** a free cell by creating a RUNNING trial that carries the hash. Trial
   creation is serialised per study (a row lock on PostgreSQL; BEGIN IMMEDIATE on SQLite, set
   below), so each claim sees every claim made before it: the claim with the lowest trial
   number wins and any later one backs off (its trial PRUNED). The winner checks rule 1 once
   more, then trains.
4. Workers heartbeat their trial every 10 s. A RUNNING trial without a heartbeat for 2 minutes,
   or whose process is gone from this host, is failed by whichever worker sees it first (a
   compare-and-set, so once), its MLflow run marked KILLED, and its cell is free again; a killed
   cell continues from its last completed epoch when its checkpoint is on this machine. A worker
   checks its claim before recording each epoch and completes its trial before marking its run
   FINISHED, so one that lost its claim while stalled records nothing more: never a second
   FINISHED run (`TrialClaim`, `harness.train.Claim`). A run still RUNNING when its cell is
   claimed, under no RUNNING trial of the study and trained by no process of this machine, has
   no live worker (as when a runs file was exported while the cell ran): the claimer ends it
   KILLED first (`end_unclaimed_runs`).
5. A cell that failed in this invocation (diverged, raised) is not retried by it; running the
   same command again retries it. Optuna's GridSampler is not used: it treats a failed cell as
   visited and can hand one cell to two workers.
"""

from __future__ import annotations

import functools
import math
import os
import socket
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Callable

import optuna
import yaml
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from harness import config as C
from harness import private_api, race, stores, tracking
from harness.stores import redact
from harness.places import sqlite_path
from harness.errors import ConfigError, StoreError
from harness.grid import Cell, Grid

HEARTBEAT_S, GRACE_S = 10, 120  # a worker silent for GRACE_S is taken for dead
WORKER_LOST = "worker_lost"  # the failure_reason of a run whose worker died or went silent
EXITED, SILENT = "whose process has exited", f"which has been silent for {GRACE_S} s (no heartbeat)"

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
optuna.logging.set_verbosity(optuna.logging.WARNING)


# ------------------------------------------------------------------------------------ storage

def open_storage(storage_url: str, on_lost: Callable[[optuna.Study, FrozenTrial], None] | None = None
                 ) -> optuna.storages.RDBStorage:
    """Optuna's storage, its tables made once under the creation lock (harness.stores)."""
    stores.check_storage(storage_url)
    sqlite = sqlite_path(storage_url) is not None
    try:
        with stores.creation_lock(storage_url, "create"):
            storage = optuna.storages.RDBStorage(
                storage_url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                heartbeat_stale_trial_callback=on_lost,
                engine_kwargs={"connect_args": {"timeout": 60}} if sqlite else None)
    except Exception as err:  # noqa: BLE001 - whatever Optuna or the driver raised: one line, naming it
        raise StoreError(f"--storage {redact(storage_url)}: {stores.failure(err)}") from None
    if sqlite:
        _serialise_sqlite(private_api.rdb_engine(storage))
    return storage


def _serialise_sqlite(engine) -> None:
    """Make every SQLite transaction take the write lock when it begins (SQLAlchemy's recipe):
    SQLite ignores SELECT ... FOR UPDATE, so without this two workers can both read a trial as
    RUNNING and both 'win' the update that fails it."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _driver_autocommit(dbapi_connection, record):
        dbapi_connection.isolation_level = None  # the begin hook below issues BEGIN itself

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened while Optuna set up its tables predate the hooks


# ------------------------------------------------------------------------------------- sweep

@dataclass
class Sweep:
    grid: Grid
    storage: optuna.storages.RDBStorage
    study: optuna.Study
    storage_url: str  # the Optuna storage of its claims
    tracking_uri: str  # the MLflow store of its runs
    parent_id: str  # the sweep's MLflow parent run
    since_trial: int  # trials numbered above this were made by this invocation
    worker: str = field(default_factory=lambda: f"{this_host()}:{os.getpid()}")
    label: str = ""  # printed before every line ("[worker 2] ")
    started: float = 0.0

    def say(self, text: str) -> None:
        print(f"{self.label}{text}", flush=True)


def _parent_run(grid: Grid, storage: optuna.storages.RDBStorage, study: optuna.Study, tracking_uri: str,
                storage_url: str) -> str:
    """The sweep's MLflow parent run in this tracking store, created once. Its id is kept in the
    study; two workers starting together each create one, and the one whose claim trial has the
    lower number wins (trial creation is serialised), the other deleting its run. A study that is
    new to a store already holding the sweep under a parent made for the same storage URL (the study
    was deleted, its file lost) adopts that parent, so the FINISHED cells under it stay done: MLflow
    is the record. Under parents made for other storages only, it makes its own, and says so first
    (`tracking.other_storages_note`): those may be another sweep's live claims."""
    attr = f"mlflow_parent_run:{redact(tracking_uri)}"
    if attr in study.user_attrs and tracking.run_active(tracking_uri, study.user_attrs[attr]):
        return study.user_attrs[attr]
    existing = tracking.sweep_parent(tracking_uri, grid.name, storage_url)
    if existing:
        mine = existing.run_id
    else:
        starts_over = tracking.other_storages_note(tracking_uri, grid.name, storage_url)
        if starts_over:
            print(f"harness: {starts_over}", file=sys.stderr, flush=True)
        tags = {"sweep": grid.name, "sweep_role": "parent", "optuna_study": grid.name,
                "optuna_storage": redact(storage_url), "grid_file": str(grid.path), "git_commit": tracking.git_commit()}
        params = {"design": grid.design, "preset": grid.preset, "cells": len(grid.cells), "seeds": len(grid.seeds)}
        mine = tracking.start_run(tracking_uri, grid.name, grid.cells[0].config.tracking.artifact_root, grid.name,
                                  params, tags, yaml.safe_dump(grid.as_dict(), sort_keys=False), config_name="grid.yaml")
    study_id = storage.get_study_id_from_name(grid.name)
    storage.create_new_trial(study_id, _template(TrialState.PRUNED, {"mlflow_parent": mine}))
    # Claims made for an earlier, since deleted, tracking store have no run here and do not count.
    claims = [t for t in study.get_trials(deepcopy=False) if "mlflow_parent" in t.user_attrs
              and tracking.run_active(tracking_uri, t.user_attrs["mlflow_parent"])]
    winner = min(claims, key=lambda t: t.number).user_attrs["mlflow_parent"]
    if winner != mine and not existing:
        tracking.delete_run(tracking_uri, mine)
    study.set_user_attr(attr, winner)
    return winner


def _template(state: TrialState, user_attrs: dict) -> FrozenTrial:
    return FrozenTrial(number=0, state=state, value=None, datetime_start=datetime.now(),
                       datetime_complete=None if state == TrialState.RUNNING else datetime.now(),
                       params={}, distributions={}, user_attrs=user_attrs, system_attrs={},
                       intermediate_values={}, trial_id=0)


def open_sweep(grid: Grid, storage_url: str, tracking_uri: str, since_trial: int | None = None,
               label: str = "") -> Sweep:
    """Both stores checked (the tracking store first: a bad one must not leave a new Optuna
    database behind), created where new, then the study and the parent run."""
    stores.check_storage(storage_url)
    stores.open_tracking_store(tracking_uri)
    holder: list[Sweep] = []
    storage = open_storage(storage_url, on_lost=lambda study, trial: _on_lost(holder[0], trial, SILENT))
    study = optuna.create_study(study_name=grid.name, storage=storage, load_if_exists=True, direction="minimize")
    parent = _parent_run(grid, storage, study, tracking_uri, storage_url)
    if since_trial is None:
        since_trial = max((t.number for t in study.get_trials(deepcopy=False)), default=-1)
    holder.append(Sweep(grid, storage, study, storage_url, tracking_uri, parent, since_trial, label=label,
                        started=time.time()))
    return holder[0]


def recorded_grid(tracking_uri: str, parent_id: str) -> dict:
    """The grid the sweep last recorded in its parent run (grid.yaml), as a mapping: what earlier
    invocations decided (seeds added, a race's choices) is read from here."""
    where = f"grid.yaml of the sweep's parent run {parent_id}"
    recorded = C.parse_yaml(tracking.run_config_yaml(tracking_uri, parent_id, "grid.yaml"), where) or {}
    if not isinstance(recorded, dict):
        raise ConfigError(f"{where}: expected a mapping; got {type(recorded).__name__}")
    return recorded


# ------------------------------------------------------------------------------ cell states

def children(sw: Sweep) -> dict[str, list[tracking.RunRecord]]:
    """The parent's child runs by cell hash, oldest first."""
    return tracking.cell_runs(sw.tracking_uri, sw.grid.name, sw.parent_id)


def trials_by_cell(sw: Sweep) -> dict[str, list[FrozenTrial]]:
    return _by_cell(sw.study.get_trials(deepcopy=False))


def _by_cell(trials: list[FrozenTrial]) -> dict[str, list[FrozenTrial]]:
    out: dict[str, list[FrozenTrial]] = {}
    for trial in trials:
        if "cell" in trial.user_attrs:
            out.setdefault(trial.user_attrs["cell"], []).append(trial)
    return out


def stored_trials(storage_url: str, study: str) -> tuple[dict[str, list[FrozenTrial]], int]:
    """A sweep's claims by cell, and its highest trial number (-1: none), read without creating
    anything: none where the storage or the study does not exist yet (the dry run's view)."""
    trials = stores.study_trials(storage_url, study)
    return _by_cell(trials), max((t.number for t in trials), default=-1)


def _confirmed(run: tracking.RunRecord, trials: list[FrozenTrial]) -> bool:
    """A RUNNING run whose worker completed its trial: everything recorded, FINISHED comes next."""
    complete = {str(t.number) for t in trials if t.state == TrialState.COMPLETE}
    return run.status == "RUNNING" and run.tags.get("optuna_trial") in complete


def done_runs(grid: Grid, runs: list[tracking.RunRecord], trials: list[FrozenTrial]) -> list[tracking.RunRecord]:
    """The runs that make a cell done (rule 1): a result (`race.settled`), or a RUNNING run whose
    trial its worker completed."""
    return [r for r in runs if race.settled(grid, r) or _confirmed(r, trials)]


def cell_state(grid: Grid, runs: list[tracking.RunRecord], trials: list[FrozenTrial], since_trial: int) -> str:
    """A cell's state from its runs and its claims, the one definition (the claims, the sweep's
    summary and its dry run): done | running | failed (in this invocation, which will not retry
    it; the next one will) | todo."""
    if done_runs(grid, runs, trials):
        return "done"
    if any(t.state == TrialState.RUNNING for t in trials):
        return "running"
    # A FAIL with a failure_reason was ended by its own worker; one without was reaped (worker lost).
    # An interrupted cell (Ctrl-C, SIGTERM: a pre-empted job) is free for any worker to continue.
    if any(t.state == TrialState.FAIL and t.number > since_trial
           and t.user_attrs.get("failure_reason", tracking.INTERRUPTED) != tracking.INTERRUPTED for t in trials):
        return "failed"
    return "todo"


def snapshot(sw: Sweep) -> tuple[dict[str, str], dict, int]:
    """Each cell's state, the child runs, and how many workers hold cells now."""
    trials, runs = trials_by_cell(sw), children(sw)
    states = {cell.key: cell_state(sw.grid, runs.get(cell.key, []), trials.get(cell.key, []), sw.since_trial)
              for cell in sw.grid.cells}
    holders = {t.user_attrs.get("worker") for ts in trials.values() for t in ts if t.state == TrialState.RUNNING}
    return states, runs, max(1, len(holders))


# ------------------------------------------------------------------------------ dead workers

@functools.cache
def this_host() -> str:
    """Where a worker's process id means something: the host name, and on Linux the boot and the
    PID namespace (`hostname@boot-pidns`). Containers that share a host name (and pods, and
    `--hostname`-less Docker runs on two machines) differ in their PID namespace, so the reaper's
    "its process is gone from this host" never looks up another namespace's pid; their workers are
    reaped by silence (GRACE_S) instead."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
        namespace = os.readlink("/proc/self/ns/pid").partition("[")[2].rstrip("]")
    except OSError:  # not Linux: the host name alone, as before
        return socket.gethostname()
    return f"{socket.gethostname()}@{boot}-{namespace}"


def _alive(pid: int) -> bool:
    """Whether a process of this host is running: a zombie (exited, not yet reaped by its parent,
    e.g. a worker of a coordinator that is waiting on another) is not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # /proc/<pid>/stat: "pid (name) state ..."; the name may hold spaces and parentheses
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (not Linux): the signal said it exists


def reap(sw: Sweep) -> None:
    """Fail the trials of dead workers: silent past the grace period (Optuna's heartbeat check,
    which calls `_on_lost` for the trials it failed), or a process gone from this host. And mark
    FINISHED a confirmed run whose worker died before it could (see `claim_next`)."""
    trials = trials_by_cell(sw)
    for key, runs in children(sw).items():
        for run in runs:
            if _confirmed(run, trials.get(key, [])):
                tracking.end_run(sw.tracking_uri, run.run_id, "FINISHED")
    optuna.storages.fail_stale_trials(sw.study)
    host = this_host()
    study_id = sw.storage.get_study_id_from_name(sw.grid.name)
    for trial in sw.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker", "")
        owner, _, pid = worker.rpartition(":")
        if owner != host or worker == sw.worker or not pid.isdigit() or _alive(int(pid)):
            continue
        trial_id = sw.storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            if sw.storage.set_trial_state_values(trial_id, TrialState.FAIL):
                _on_lost(sw, trial, EXITED)
        except UpdateFinishedTrialError:
            pass  # another worker failed it first


def _on_lost(sw: Sweep, trial: FrozenTrial, how: str) -> None:
    """End the lost worker's run KILLED (its cell is continued from its checkpoint) and say so."""
    where = (f"tags.sweep_parent = '{sw.parent_id}' and tags.optuna_trial = '{trial.number}' "
             f"and tags.cell = '{trial.user_attrs.get('cell')}'")
    why = f"worker {trial.user_attrs.get('worker')} {how}"
    for run in tracking.find_runs(sw.tracking_uri, sw.grid.name, where):
        if run.status == "RUNNING":
            tracking.end_run(sw.tracking_uri, run.run_id, "KILLED", {"failure_reason": WORKER_LOST, "failure_message": why})
    sw.say(f"sweep {sw.grid.name}: {trial.user_attrs.get('name')} was held by {why}; the cell is free again")


def end_unclaimed_runs(sw: Sweep, runs: list[tracking.RunRecord],
                       busy: Callable[[str], bool]) -> list[tracking.RunRecord]:
    """The runs of a cell this worker has just claimed, with those still RUNNING under no live
    claim ended KILLED, as `_on_lost` ends a reaped worker's run: such a run came from a runs file
    exported while it ran (its claim stayed in the other store's study), or its worker died before
    its run was ended. A run whose trial is RUNNING in this study is left alone (a worker that
    reaped this one's claim while it stalled, and trains the cell now), as is one that `busy(run_id)`
    says a process of this machine trains (a run resumed by hand)."""
    live = {str(t.number) for t in sw.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    why = f"no claim held it when worker {sw.worker} claimed its cell"
    out = []
    for run in runs:
        if run.status == "RUNNING" and run.tags.get("optuna_trial") not in live and not busy(run.run_id):
            tracking.end_run(sw.tracking_uri, run.run_id, "KILLED", {"failure_reason": WORKER_LOST, "failure_message": why})
            run = replace(run, status="KILLED")
        out.append(run)
    return out


# ------------------------------------------------------------------------------------ claims

def claim(sw: Sweep, cell: Cell) -> int | None:
    """A RUNNING trial for the cell, or None when an earlier claim holds it (rule 3).

    The axis values and seed go in user attributes, not Optuna parameters: a parameter's
    distribution is fixed by the study's first trial, so adding a seed or an axis value to the grid
    file would make every later claim raise ("does not support dynamic value space")."""
    attrs = {f"axis.{k}": v for k, v in cell.values.items()} | {"seed": cell.seed}
    template = _template(TrialState.RUNNING, {"cell": cell.key, "name": cell.name, "worker": sw.worker} | attrs)
    study_id = sw.storage.get_study_id_from_name(sw.grid.name)
    trial_id = sw.storage.create_new_trial(study_id, template)
    number = sw.storage.get_trial_number_from_id(trial_id)
    sw.storage.record_heartbeat(trial_id)
    earlier = [t for t in trials_by_cell(sw).get(cell.key, [])
               if t.state == TrialState.RUNNING and t.number < number]
    if earlier:
        sw.storage.set_trial_user_attr(trial_id, "lost_claim_to", earlier[0].number)
        sw.storage.set_trial_state_values(trial_id, TrialState.PRUNED)
        return None
    return trial_id


def claim_next(sw: Sweep, index: int = 0) -> tuple[Cell, int] | bool:
    """Claim a free cell: (cell, trial id); else True while cells still run elsewhere (look again
    later), False once every cell is done or failed. Worker `index` starts at a different cell
    from the others, to collide less.

    The claimed cell's worker ends it by completing the trial, then marking its run FINISHED (in
    that order: a worker that lost its claim while silent finds the trial failed, and its run
    stands down as KILLED, so a cell never gets two FINISHED runs); a run left RUNNING after its
    trial completed counts as done and the next `reap` marks it FINISHED."""
    while True:
        states, _, _ = snapshot(sw)
        todo = [cell for cell in sw.grid.cells if states[cell.key] == "todo"]
        if not todo:
            return "running" in states.values()
        cell = todo[index % len(todo)]
        trial_id = claim(sw, cell)
        if trial_id is None:
            continue
        trials = trials_by_cell(sw).get(cell.key, [])
        done = done_runs(sw.grid, children(sw).get(cell.key, []), trials)
        if not done:
            return cell, trial_id
        # done between our look and our claim
        end_trial(sw, trial_id, TrialState.COMPLETE, value=done[0].metrics.get("test_err", math.inf))


def end_trial(sw: Sweep, trial_id: int, state: TrialState, value: float | None = None,
               reason: str = "") -> bool:
    """False when the trial was already ended by someone else (we were taken for dead)."""
    try:
        if reason:
            sw.storage.set_trial_user_attr(trial_id, "failure_reason", reason[-2000:])
        return sw.storage.set_trial_state_values(trial_id, state, None if value is None else [value])
    except UpdateFinishedTrialError:
        return False


class TrialClaim:
    """A worker's claim on a cell as `train` checks it (harness.train.Claim)."""

    def __init__(self, sw: Sweep, trial_id: int):
        self.sw, self.trial_id = sw, trial_id

    def held(self) -> bool:
        return self.sw.storage.get_trial(self.trial_id).state == TrialState.RUNNING

    def complete(self, metrics: dict[str, float]) -> bool:
        return end_trial(self.sw, self.trial_id, TrialState.COMPLETE, value=metrics["test_err"])


class Heartbeat:
    def __init__(self, storage: optuna.storages.RDBStorage, trial_id: int):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(storage, trial_id), daemon=True)

    def _beat(self, storage, trial_id: int) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                storage.record_heartbeat(trial_id)
            except Exception:  # a storage hiccup; the next beat retries, the grace period is 12 beats
                pass

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


