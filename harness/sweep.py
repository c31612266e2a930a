"""Sweeps: a grid file as one Optuna study and one MLflow parent run, every cell a child run,
each cell run exactly once however many workers share the study and however often it is killed.

The rule, keyed on the cell's config hash (`grid.cell_key`) and applied by every worker:
1. A cell is **done** when the sweep's parent run has a FINISHED child tagged with its hash.
   MLflow is the record; an Optuna trial only ever claims a cell.
2. A cell is **taken** while one of its trials is RUNNING.
3. A worker **claims** a free cell by creating a RUNNING trial that carries the hash. Trial
   creation is serialised per study (a row lock on PostgreSQL; BEGIN IMMEDIATE on SQLite, set
   below), so each claim sees every claim made before it: the claim with the lowest trial
   number wins and any later one backs off (its trial PRUNED). The winner checks rule 1 once
   more, then trains.
4. Workers heartbeat their trial every 10 s. A RUNNING trial without a heartbeat for 2 minutes,
   or whose process is gone from this host, is failed by whichever worker sees it first (a
   compare-and-set, so once), its MLflow run marked KILLED, and its cell is free again; a killed
   cell continues from its last completed epoch when its checkpoint is on this machine.
5. A cell that failed in this invocation (diverged, raised) is not retried by it; running the
   same command again retries it. Optuna's GridSampler is not used: it treats a failed cell as
   visited and can hand one cell to two workers.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import socket
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import optuna
import yaml
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from harness import config as C
from harness import tracking
from harness.grid import Cell, Grid, describe

DEFAULT_STORAGE = "sqlite:///mlruns/optuna.db"
HEARTBEAT_S, GRACE_S = 10, 120  # a worker silent for GRACE_S is taken for dead
INTERRUPTED = "interrupted"  # the failure_reason of a cell stopped by Ctrl-C or SIGTERM: not its own fault
CELL_SETUP_S = 3  # measured here: a cell's run, Trainer, test pass and learning-curve upload
POLL_S = 5  # how often an idle worker looks for freed cells while others finish theirs

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
optuna.logging.set_verbosity(optuna.logging.WARNING)


def storage_url(given: str | None) -> str:
    return given or os.environ.get("HARNESS_SWEEP_STORAGE") or DEFAULT_STORAGE


def redact(url: str) -> str:
    """A storage URL without its password, for tags and messages."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    return f"{scheme}{sep}{credentials.split(':')[0]}:***@{host}"


# ------------------------------------------------------------------------------------ storage

def open_storage(url: str, on_lost: Callable[[optuna.Study, FrozenTrial], None] | None = None
                 ) -> optuna.storages.RDBStorage:
    sqlite = url.startswith("sqlite:///")
    if sqlite:
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.RDBStorage(
        url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S, heartbeat_stale_trial_callback=on_lost,
        engine_kwargs={"connect_args": {"timeout": 60}} if sqlite else None)
    if sqlite:
        _serialise_sqlite(storage.engine)
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
    uri: str  # MLflow tracking URI
    parent_id: str  # the sweep's MLflow parent run
    since_trial: int  # trials numbered above this were made by this invocation
    worker: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    label: str = ""  # printed before every line ("[worker 2] ")
    started: float = 0.0

    def say(self, text: str) -> None:
        print(f"{self.label}{text}", flush=True)


def _parent_run(grid: Grid, study: optuna.Study, uri: str, url: str) -> str:
    """The sweep's MLflow parent run in this tracking store, created once. Its id is kept in the
    study; two workers starting together each create one, and the one whose claim trial has the
    lower number wins (trial creation is serialised), the other deleting its run. A study that is
    new to a store already holding the sweep (its Optuna storage was lost or moved) adopts the
    store's parent, so the FINISHED cells under it stay done: MLflow is the record."""
    attr = f"mlflow_parent_run:{redact(uri)}"
    if attr in study.user_attrs and tracking.run_active(uri, study.user_attrs[attr]):
        return study.user_attrs[attr]
    # Only a parent made for this same storage URL: workers on another storage keep their claims
    # in another study, and sharing a parent with them could give a cell two FINISHED runs.
    existing = [run for run in tracking.find_runs(uri, grid.name, "tags.sweep_role = 'parent'")
                if run.tags.get("optuna_storage") == redact(url)]
    if existing:
        mine = existing[0].run_id  # the oldest: the one the report reads
    else:
        tags = {"sweep": grid.name, "sweep_role": "parent", "optuna_study": grid.name,
                "optuna_storage": redact(url), "grid_file": str(grid.path), "git_commit": tracking.git_commit()}
        params = {"design": grid.design, "preset": grid.preset, "cells": len(grid.cells), "seeds": len(grid.seeds)}
        mine = tracking.start_run(uri, grid.name, grid.cells[0].config.tracking.artifact_root, grid.name, params,
                                  tags, yaml.safe_dump(grid.as_dict(), sort_keys=False), config_name="grid.yaml")
    study_id = study._storage.get_study_id_from_name(grid.name)
    study._storage.create_new_trial(study_id, _template(TrialState.PRUNED, {"mlflow_parent": mine}))
    # Claims made for an earlier, since deleted, tracking store have no run here and do not count.
    claims = [t for t in study.get_trials(deepcopy=False) if "mlflow_parent" in t.user_attrs
              and tracking.run_active(uri, t.user_attrs["mlflow_parent"])]
    winner = min(claims, key=lambda t: t.number).user_attrs["mlflow_parent"]
    if winner != mine and not existing:
        tracking.delete_run(uri, mine)
    study.set_user_attr(attr, winner)
    return winner


def _template(state: TrialState, user_attrs: dict) -> FrozenTrial:
    return FrozenTrial(number=0, state=state, value=None, datetime_start=datetime.now(),
                       datetime_complete=None if state == TrialState.RUNNING else datetime.now(),
                       params={}, distributions={}, user_attrs=user_attrs, system_attrs={},
                       intermediate_values={}, trial_id=0)


def open_sweep(grid: Grid, url: str, uri: str, since_trial: int | None = None, label: str = "") -> Sweep:
    holder: list[Sweep] = []
    storage = open_storage(url, on_lost=lambda study, trial: _on_lost(holder[0], trial))
    study = optuna.create_study(study_name=grid.name, storage=storage, load_if_exists=True, direction="minimize")
    parent = _parent_run(grid, study, uri, url)
    if since_trial is None:
        since_trial = max((t.number for t in study.get_trials(deepcopy=False)), default=-1)
    holder.append(Sweep(grid, storage, study, uri, parent, since_trial, label=label, started=time.time()))
    return holder[0]


# ------------------------------------------------------------------------------ cell states

def children(sw: Sweep) -> dict[str, list[tracking.RunRecord]]:
    """The parent's child runs by cell hash, oldest first."""
    out: dict[str, list[tracking.RunRecord]] = {}
    for run in tracking.find_runs(sw.uri, sw.grid.name, f"tags.sweep_parent = '{sw.parent_id}'"):
        out.setdefault(run.tags.get("cell", ""), []).append(run)
    return out


def trials_by_cell(sw: Sweep) -> dict[str, list[FrozenTrial]]:
    out: dict[str, list[FrozenTrial]] = {}
    for trial in sw.study.get_trials(deepcopy=False):
        if "cell" in trial.user_attrs:
            out.setdefault(trial.user_attrs["cell"], []).append(trial)
    return out


def cell_state(sw: Sweep, cell: Cell, trials: dict, runs: dict) -> str:
    """done | running | failed (in this invocation: not retried by it) | todo."""
    if any(r.status == "FINISHED" for r in runs.get(cell.key, [])):
        return "done"
    mine = trials.get(cell.key, [])
    if any(t.state == TrialState.RUNNING for t in mine):
        return "running"
    # A FAIL with a failure_reason was ended by its own worker; one without was reaped (worker lost).
    # An interrupted cell (Ctrl-C, SIGTERM: a pre-empted job) is free for any worker to continue.
    if any(t.state == TrialState.FAIL and t.number > sw.since_trial
           and t.user_attrs.get("failure_reason", INTERRUPTED) != INTERRUPTED for t in mine):
        return "failed"
    return "todo"


# ------------------------------------------------------------------------------ dead workers

def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap(sw: Sweep) -> None:
    """Fail the trials of dead workers: silent past the grace period (Optuna's heartbeat check,
    which calls `_on_lost` for the trials it failed), or a process gone from this host."""
    optuna.storages.fail_stale_trials(sw.study)
    host = socket.gethostname()
    study_id = sw.storage.get_study_id_from_name(sw.grid.name)
    for trial in sw.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker", "")
        owner, _, pid = worker.rpartition(":")
        if owner != host or worker == sw.worker or not pid.isdigit() or _alive(int(pid)):
            continue
        trial_id = sw.storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            if sw.storage.set_trial_state_values(trial_id, TrialState.FAIL):
                _on_lost(sw, trial)
        except UpdateFinishedTrialError:
            pass  # another worker failed it first


def _on_lost(sw: Sweep, trial: FrozenTrial) -> None:
    where = (f"tags.sweep_parent = '{sw.parent_id}' and tags.optuna_trial = '{trial.number}' "
             f"and tags.cell = '{trial.user_attrs.get('cell')}'")
    for run in tracking.find_runs(sw.uri, sw.grid.name, where):
        if run.status == "RUNNING":
            tracking.end_run(sw.uri, run.run_id, "KILLED", {"failure_reason": "worker_lost",
                                                            "failure_message": f"worker {trial.user_attrs.get('worker')} "
                                                                               "stopped answering"})
    sw.say(f"sweep {sw.grid.name}: {trial.user_attrs.get('name')} was held by {trial.user_attrs.get('worker')}, "
           "which is gone; the cell is free again")


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


def _end_trial(sw: Sweep, trial_id: int, state: TrialState, value: float | None = None,
               reason: str = "") -> bool:
    """False when the trial was already ended by someone else (we were taken for dead)."""
    try:
        if reason:
            sw.storage.set_trial_user_attr(trial_id, "failure_reason", reason[-2000:])
        return sw.storage.set_trial_state_values(trial_id, state, None if value is None else [value])
    except UpdateFinishedTrialError:
        return False


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


def _killed_run(sw: Sweep, cell: Cell, runs: list[tracking.RunRecord]) -> str | None:
    """The cell's newest run, to continue, when it was KILLED and its checkpoint is on this machine."""
    if not runs or runs[-1].status != "KILLED":
        return None
    checkpoint = Path(cell.config.trainer.checkpoint_dir) / runs[-1].run_id / "last.ckpt"
    return runs[-1].run_id if checkpoint.is_file() else None


def run_cell(sw: Sweep, cell: Cell, trial_id: int, runs: list[tracking.RunRecord]) -> tuple[str, str]:
    """Train the claimed cell; end its trial. Returns (status, what happened)."""
    from harness.train import train

    cfg = copy.deepcopy(cell.config)
    cfg.tracking.uri = sw.uri
    number = sw.storage.get_trial_number_from_id(trial_id)
    tags = {"sweep": sw.grid.name, "sweep_parent": sw.parent_id, "cell": cell.key, "trick": cell.trick,
            "optuna_study": sw.grid.name, "optuna_trial": str(number), "worker": sw.worker,
            **{f"axis.{k}": str(v) for k, v in cell.values.items()}}
    resume_id = _killed_run(sw, cell, runs)
    if resume_id:
        tracking.set_tags(sw.uri, resume_id, tags)
    with Heartbeat(sw.storage, trial_id):
        try:
            result = train(cfg, parent_run_id=sw.parent_id, extra_tags=tags, resume_run_id=resume_id)
        except (KeyboardInterrupt, SystemExit):
            _end_trial(sw, trial_id, TrialState.FAIL, reason=INTERRUPTED)
            raise
        except Exception as err:  # raised before its run existed (data, config)
            _end_trial(sw, trial_id, TrialState.FAIL, reason=f"{type(err).__name__}: {err}")
            return "FAILED", f"{type(err).__name__}: {err}"
    if result.status != "FINISHED":
        _end_trial(sw, trial_id, TrialState.FAIL, reason=result.error)
        return result.status, result.error
    if not _end_trial(sw, trial_id, TrialState.COMPLETE, value=result.metrics["test_err"]):
        # Our claim was reaped while we trained (no heartbeat for GRACE_S): the cell may already be
        # running elsewhere, so this run stands down rather than risk two FINISHED runs.
        tracking.end_run(sw.uri, result.run_id, "KILLED", {"failure_reason": "claim_lost"})
        return "KILLED", "claim lost (no heartbeat for two minutes); the cell was handed to another worker"
    resumed = f", continued from run {resume_id}" if resume_id else ""
    return "FINISHED", f"test error {result.metrics['test_err']:.2f} % after {result.epochs} epochs{resumed}"


# ----------------------------------------------------------------------------------- progress

def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def progress_line(sw: Sweep, states: dict[str, str], runs: dict, workers: int) -> str:
    counts = {s: sum(1 for v in states.values() if v == s) for s in ("done", "running", "todo", "failed")}
    durations = [(r.end_ms - r.start_ms) / 1000 for rs in runs.values() for r in rs
                 if r.status == "FINISHED" and r.end_ms]
    eta = "ETA unknown until a cell finishes"
    if durations:
        per_cell = sum(durations) / len(durations)
        eta = f"ETA {_duration(per_cell * (counts['todo'] + counts['running'] / 2) / max(1, workers))}"
    return (f"sweep {sw.grid.name}: {counts['done']}/{len(states)} done, {counts['running']} running, "
            f"{counts['todo']} left, {counts['failed']} failed | {_duration(time.time() - sw.started)} elapsed, {eta}")


def snapshot(sw: Sweep) -> tuple[dict[str, str], dict, int]:
    """Each cell's state, the child runs, and how many workers hold cells now."""
    trials, runs = trials_by_cell(sw), children(sw)
    states = {cell.key: cell_state(sw, cell, trials, runs) for cell in sw.grid.cells}
    holders = {t.user_attrs.get("worker") for ts in trials.values() for t in ts if t.state == TrialState.RUNNING}
    return states, runs, max(1, len(holders))


# -------------------------------------------------------------------------------------- work

def work(sw: Sweep, index: int = 0) -> None:
    """Claim and train free cells until none is free and none is running elsewhere."""
    last_wait_note = 0.0
    while True:
        reap(sw)
        states, runs, workers = snapshot(sw)
        todo = [cell for cell in sw.grid.cells if states[cell.key] == "todo"]
        if not todo:
            if "running" not in states.values():
                return
            if time.time() - last_wait_note > 60:
                sw.say(progress_line(sw, states, runs, workers) + " (waiting for other workers)")
                last_wait_note = time.time()
            time.sleep(POLL_S)
            continue
        cell = todo[index % len(todo)]  # workers start at different cells to avoid colliding
        trial_id = claim(sw, cell)
        if trial_id is None:
            continue
        runs = children(sw)
        finished = [r for r in runs.get(cell.key, []) if r.status == "FINISHED"]
        if finished:  # finished between our look and our claim
            _end_trial(sw, trial_id, TrialState.COMPLETE, value=finished[0].metrics.get("test_err", math.inf))
            continue
        sw.say(progress_line(sw, {**states, cell.key: "running"}, runs, workers) + f"\n{sw.label}  -> {cell.name}")
        status, what = run_cell(sw, cell, trial_id, runs.get(cell.key, []))
        sw.say(f"  {cell.name}: {status}: {what}")


def summarise(sw: Sweep, end_parent: bool) -> int:
    """Print every cell's outcome; 0 when every cell has a FINISHED run, else 1."""
    states, runs, _ = snapshot(sw)
    sw.say(progress_line(sw, states, runs, 1).split(" | ")[0])
    missing = 0
    for cell in sw.grid.cells:
        done = [r for r in runs.get(cell.key, []) if r.status == "FINISHED"]
        if done:
            continue
        missing += 1
        last = runs.get(cell.key, [])[-1:] or None
        why = (f"{last[0].status}: {last[0].tags.get('failure_message', last[0].tags.get('failure_reason', ''))}"
               if last else "never ran")
        sw.say(f"  not finished: {cell.name}: {why[:300]}")
    if end_parent:
        tracking.end_run(sw.uri, sw.parent_id, "FINISHED" if not missing else "FAILED",
                         {"cells_finished": str(len(sw.grid.cells) - missing), "cells": str(len(sw.grid.cells))})
    return 0 if not missing else 1


def check_data(grid: Grid) -> None:
    """Read and verify every data set the grid uses, before any store is touched."""
    from harness.data import load_data

    seen = []
    for cell in grid.cells:
        if cell.config.data not in seen:
            seen.append(cell.config.data)
            load_data(cell.config.data)


def run(grid: Grid, *, url: str, uri: str, workers: int = 1, overrides: list[str] = (),
        worker_index: int | None = None, since_trial: int | None = None) -> int:
    """`harness sweep`: the coordinator (worker_index None) or one spawned worker."""
    if worker_index is None:
        check_data(grid)
    label = f"[worker {worker_index + 1}] " if worker_index is not None else ""
    sw = open_sweep(grid, url, uri, since_trial, label)
    if worker_index is not None:
        work(sw, worker_index)
        return 0
    tracking.resume_run(uri, sw.parent_id)
    # The grid as this invocation reads it (the report takes the cells from here).
    tracking.log_text(uri, sw.parent_id, yaml.safe_dump(grid.as_dict(), sort_keys=False), "grid.yaml")
    sw.say(f"sweep {grid.name}: parent run {sw.parent_id} in {uri}; Optuna study {grid.name!r} in {redact(url)}")
    if workers == 1:
        try:
            work(sw)
        except KeyboardInterrupt:
            tracking.end_run(uri, sw.parent_id, "KILLED")
            raise
    else:
        threads = max(1, (os.cpu_count() or 1) // workers)
        command = [sys.executable, "-m", "harness.cli", "sweep", str(grid.path), *overrides,
                   f"trainer.threads={threads}", "trainer.progress_bar=false", "--storage", url,
                   "--tracking-uri", uri, "--since-trial", str(sw.since_trial)]
        procs = [subprocess.Popen(command + ["--worker-index", str(i)]) for i in range(workers)]
        try:
            for proc in procs:
                proc.wait()
        except KeyboardInterrupt:
            for proc in procs:  # a Ctrl-C reached them too; a SIGTERM reached only us: pass it on
                proc.terminate()
                proc.wait()
            tracking.end_run(uri, sw.parent_id, "KILLED")
            raise
    return summarise(sw, end_parent=True)


# ----------------------------------------------------------------------------------- dry run

def plan(grid: Grid, uri: str, workers: int, steps: int) -> str:
    """`harness sweep --dry-run`: every cell with its state in the store (read, never created) and
    its cost from a calibration: `steps` measured SGD steps per distinct network on this machine.
    Evaluation is counted as a third of a training step per image (a forward pass)."""
    import torch

    from harness.data import load_data
    from harness.describe import measure_step
    from harness.models import build_model

    runs: dict[str, list[tracking.RunRecord]] = {}
    store_exists = not uri.startswith("sqlite:///") or Path(uri.removeprefix("sqlite:///")).is_file()
    if store_exists:
        for run in tracking.find_runs(uri, grid.name, "tags.sweep_role = 'parent'")[:1]:
            for child in tracking.find_runs(uri, grid.name, f"tags.sweep_parent = '{run.run_id}'"):
                runs.setdefault(child.tags.get("cell", ""), []).append(child)

    sizes, step_s = {}, {}
    busy = os.getloadavg()[0]  # other work on the cores inflates every measured step
    lines = [describe(grid), f"{'cell':<58}{'state':>9}{'epochs':>8}{'est.':>9}"]
    total = todo_total = 0.0
    for cell in grid.cells:
        cfg = cell.config
        data_key = repr(cfg.data)
        if data_key not in sizes:
            data = load_data(cfg.data)
            sizes[data_key] = (data.sizes, len(data.classes))
        # The initialisation does not change a step's cost: one calibration serves both.
        (n, classes), shape = sizes[data_key], repr((dataclasses.replace(cfg.model, init="paper"),
                                                     cfg.data.batch_size, cfg.trainer.channels_last))
        if shape not in step_s:
            torch.manual_seed(0)
            step_s[shape] = measure_step(build_model(cfg.model, classes), cfg.data.batch_size, steps,
                                         cfg.trainer.channels_last)
        batch, epochs = cfg.data.batch_size, cfg.trainer.max_epochs
        seconds = CELL_SETUP_S + step_s[shape] * (epochs * math.ceil(n["train"] / batch)
                                   + (epochs * n["val"] + n["test"] * cfg.data.test_crops) / batch / 3)
        history = runs.get(cell.key, [])
        state = ("done" if any(r.status == "FINISHED" for r in history)
                 else history[-1].status.lower() if history else "todo")
        total += seconds
        todo_total += 0 if state == "done" else seconds
        bound = "<=" if cfg.trainer.stop_train_err else ""
        lines.append(f"{cell.name:<58}{state:>9}{bound + str(epochs):>8}{_duration(seconds):>9}")
    lines.append(f"calibrated {len(step_s)} network(s) x {steps} steps on this machine ({torch.get_num_threads()} "
                 f"threads), plus {CELL_SETUP_S} s of set-up per cell; '<=N' cells stop at their target, so theirs "
                 "is an upper bound")
    if busy >= max(1.0, 0.25 * (os.cpu_count() or 1)):
        lines.append(f"caution: the machine was busy as calibration began (load average {busy:.1f} on "
                     f"{os.cpu_count()} cores): the estimates include that contention and run high")
    lines.append(f"estimate: {_duration(total)} for all {len(grid.cells)} cells; {_duration(todo_total)} for those "
                 f"not done, {_duration(todo_total / workers)} with {workers} worker(s) if they do not share cores")
    return "\n".join(lines)

