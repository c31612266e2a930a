"""`harness sweep`: the work loop that claims free cells and trains them, its worker processes,
progress lines and the final summary. Which cell is free, and the rule that runs each once, are
in `harness.claims`; the --dry-run estimate is in `harness.plan`."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time

import yaml
from optuna.trial import TrialState

from harness import config as C
from harness import places
from harness import race, resolve, stores, tracking
from harness.claims import (Heartbeat, Sweep, TrialClaim, children, claim_next, end_trial, end_unclaimed_runs, open_sweep,
                            reap, recorded_grid, redact, snapshot)
from harness.grid import Cell, Grid, duration, with_max_seeds
from harness.errors import EXIT_BAD_INPUT, room_lost
from harness.worker import WorkerSpec

POLL_S = 5  # how often an idle worker looks for freed cells while others finish theirs


def _killed_run(sw: Sweep, cell: Cell, runs: list[tracking.RunRecord]) -> str | None:
    """The cell's newest run, to continue, when it was KILLED, its checkpoint is on this machine and
    no process is training it still (a worker taken for dead that is only stalled: left alone, it
    finds its claim lost at its next epoch and stops without recording)."""
    if not runs or runs[-1].status != "KILLED":
        return None
    run_id, trainer = runs[-1].run_id, cell.config.trainer
    return run_id if places.checkpoint_path(trainer, run_id).is_file() and not places.being_trained(trainer, run_id) else None


def run_cell(sw: Sweep, cell: Cell, trial_id: int, runs: list[tracking.RunRecord]) -> tuple[str, str]:
    """Train the claimed cell under its claim (rule 4 of `harness.claims`); end its trial.
    Returns (status, what happened). Stopped by a signal at any point after its claim, it gives
    the claim back at once (the trial FAILED 'interrupted': free for any worker to continue)."""
    try:
        return _train_cell(sw, cell, trial_id, runs)
    except (KeyboardInterrupt, SystemExit):
        end_trial(sw, trial_id, TrialState.FAIL, reason=tracking.INTERRUPTED)
        raise


def _train_cell(sw: Sweep, cell: Cell, trial_id: int, runs: list[tracking.RunRecord]) -> tuple[str, str]:
    from harness.train import train

    cfg = copy.deepcopy(cell.config)
    cfg.tracking.uri = sw.tracking_uri
    number = sw.storage.get_trial_number_from_id(trial_id)
    tags = {"sweep": sw.grid.name, "sweep_parent": sw.parent_id, "cell": cell.key, "variant": cell.variant, "trick": cell.trick,
            "optuna_study": sw.grid.name, "optuna_trial": str(number), "worker": sw.worker,
            **{f"axis.{k}": str(v) for k, v in cell.values.items()}, **({"stage": cell.stage} if cell.stage else {})}
    # A race cell stops once a rival of its race has reached the target in fewer epochs.
    stop_check = ((lambda epochs: race.outraced(sw.grid, cell, children(sw), epochs)) if cell.stage == "race"
                  else (lambda epochs: None))
    resume_id = _killed_run(sw, cell, end_unclaimed_runs(sw, runs, lambda run_id: places.being_trained(cfg.trainer, run_id)))
    if resume_id:
        tracking.set_tags(sw.tracking_uri, resume_id, tags)
    with Heartbeat(sw.storage, trial_id):
        try:
            result = train(cfg, parent_run_id=sw.parent_id, extra_tags=tags, resume_run_id=resume_id,
                           claim=TrialClaim(sw, trial_id), stop_check=stop_check)
        except Exception as err:  # raised before its run existed (data, config), or a full disk
            if room_lost(err) is not None:  # the machine's: the worker stops, the cell is continued later
                raise
            end_trial(sw, trial_id, TrialState.FAIL, reason=f"{type(err).__name__}: {err}")
            return "FAILED", f"{type(err).__name__}: {err}"
    if result.status == "KILLED":
        return "KILLED", "claim lost (no heartbeat for two minutes); the cell was handed to another worker"
    if result.status != "FINISHED":
        end_trial(sw, trial_id, TrialState.FAIL, reason=result.error)
        return result.status, result.error
    resumed = f", continued from run {resume_id}" if resume_id else ""
    return "FINISHED", (f"test error {result.metrics['test_err']:.2f} % after {result.epochs} epochs "
                        f"({result.stopped_by}){resumed}")


# ----------------------------------------------------------------------------------- progress

def progress_line(sw: Sweep, states: dict[str, str], runs: dict, workers: int) -> str:
    counts = {s: sum(1 for v in states.values() if v == s) for s in ("done", "running", "todo", "failed")}
    durations = [(r.end_ms - r.start_ms) / 1000 for rs in runs.values() for r in rs
                 if r.status == "FINISHED" and r.end_ms]
    eta = "ETA unknown until a cell finishes"
    if durations:
        per_cell = sum(durations) / len(durations)
        eta = f"ETA {duration(per_cell * (counts['todo'] + counts['running'] / 2) / max(1, workers))}"
    return (f"sweep {sw.grid.name}: {counts['done']}/{len(states)} done, {counts['running']} running, "
            f"{counts['todo']} left, {counts['failed']} failed | {duration(time.time() - sw.started)} elapsed, {eta}")


# -------------------------------------------------------------------------------------- work

def work(sw: Sweep, index: int = 0) -> None:
    """Claim and train free cells until none is free and none is running elsewhere."""
    last_wait_note = 0.0
    while True:
        reap(sw)
        claimed = claim_next(sw, index)
        if claimed is False:
            return
        states, runs, workers = snapshot(sw)
        if claimed is True:  # the rest are running elsewhere: wait for them to finish or be freed
            if time.time() - last_wait_note > 60:
                sw.say(progress_line(sw, states, runs, workers) + " (waiting for other workers)")
                last_wait_note = time.time()
            time.sleep(POLL_S)
            continue
        cell, trial_id = claimed
        sw.say(progress_line(sw, {**states, cell.key: "running"}, runs, workers) + f"\n{sw.label}  -> {cell.name}")
        status, what = run_cell(sw, cell, trial_id, runs.get(cell.key, []))
        sw.say(f"  {cell.name}: {status}: {what}")


def summarise(sw: Sweep, end_parent: bool) -> int:
    """Print every cell's outcome; 0 when every cell has a FINISHED run, else 1."""
    states, runs, _ = snapshot(sw)
    sw.say(progress_line(sw, states, runs, 1).split(" | ")[0])
    missing = 0
    for cell in sw.grid.cells:
        if states[cell.key] == "done":
            continue
        missing += 1
        last = runs.get(cell.key, [])[-1:] or None
        why = (f"{last[0].status}: {last[0].tags.get('failure_message', last[0].tags.get('failure_reason', ''))}"
               if last else "never ran")
        sw.say(f"  not finished: {cell.name}: {why[:300]}")
    if end_parent:
        tracking.end_run(sw.tracking_uri, sw.parent_id, "FINISHED" if not missing else "FAILED",
                         {"cells_finished": str(len(sw.grid.cells) - missing), "cells": str(len(sw.grid.cells))})
    return 0 if not missing else 1


def check_inputs(grid: Grid, storage_url: str, tracking_uri: str) -> None:
    """Every data set the grid reads, and every place it writes, checked before any store exists."""
    from harness.data import load_data

    seen = []
    for cell in grid.cells:
        if cell.config.data not in seen:
            seen.append(cell.config.data)
            load_data(cell.config.data)
    for cfg in {repr(c.config.trainer.checkpoint_dir): c.config for c in grid.cells}.values():
        places.check_outputs(cfg)
    stores.check_apart(storage_url, tracking_uri)
    stores.check_tracking_store(tracking_uri)
    stores.check_storage(storage_url)
    tracking.check_experiment(tracking_uri, grid.name, grid.cells[0].config.tracking.artifact_root)


def work_on(grid: Grid, storage_url: str, tracking_uri: str, since_trial: int, index: int) -> int:
    """One worker of `--workers N` (harness.worker): the grid as its coordinator resolved it."""
    work(open_sweep(grid, storage_url, tracking_uri, since_trial, f"[worker {index + 1}] "), index)
    return 0


def run(grid: Grid, *, storage_url: str, tracking_uri: str, workers: int = 1) -> int:
    """`harness sweep`: check every input, open the stores, then run rounds of cells (in this
    process, or in `workers` processes) until nothing more can be decided; 0 when every cell has
    a result, else 1."""
    check_inputs(grid, storage_url, tracking_uri)
    sw = open_sweep(grid, storage_url, tracking_uri)
    recorded = recorded_grid(tracking_uri, sw.parent_id)
    if grid.race:  # what the race has decided, as recorded (never decided again)
        sw.grid = race.recorded(grid, recorded, sw.parent_id)
    before = (recorded.get("until_resolved") or {}).get("max_seeds", 0)
    if grid.max_seeds and before and grid.max_seeds != before:
        raise C.ConfigError(f"--max-seeds {grid.max_seeds}: sweep {grid.name} has added seeds under --max-seeds "
                            f"{before}, and every look's boundary depends on it: keep {before} (another N needs "
                            "another sweep name)")
    tracking.resume_run(tracking_uri, sw.parent_id)
    if grid.max_seeds or before:  # seeds that earlier rounds added, from their runs (a plain run adds none)
        sw.grid = resolve.with_added_seeds_from_runs(with_max_seeds(grid, grid.max_seeds or before), children(sw))
    sw.say(f"sweep {grid.name}: parent run {sw.parent_id} in {tracking_uri}; "
           f"Optuna study {grid.name!r} in {redact(storage_url)}")
    try:
        while True:
            # The grid as this invocation runs it (the report takes the cells from here).
            tracking.log_text(tracking_uri, sw.parent_id, yaml.safe_dump(sw.grid.as_dict(), sort_keys=False),
                              "grid.yaml")
            if workers == 1:
                work(sw)
            else:
                _spawn_workers(sw, workers)
            if grid.race:
                reap(sw)  # a run whose trial its worker completed is FINISHED before the race reads it
                grown = race.next_round(sw.grid, children(sw), lambda run: tracking.metric_history(
                    tracking_uri, run.run_id, ["train_err"])["train_err"])
                if grown is None:
                    break
                for line in race.describe_choice(grown):
                    if line not in race.describe_choice(sw.grid):
                        sw.say(line)
                sw.grid = grown
                continue
            grown = resolve.next_round(sw.grid, children(sw)) if grid.max_seeds else None
            if grown is None:
                break
            added = [f"{pair} seed {seeds[-1]}" for pair, seeds in grown.added_seeds.items()
                     if seeds != sw.grid.added_seeds.get(pair)]
            sw.say(f"until resolved: one more seed for {len(added)} unresolved trick(s), with the full model's: "
                   + ", ".join(added))
            sw.grid = grown
    except (KeyboardInterrupt, SystemExit):  # Lightning turns SIGTERM into SystemExit
        tracking.end_run(tracking_uri, sw.parent_id, "KILLED")
        raise
    if grid.max_seeds:
        for o in resolve.outcomes(sw.grid, children(sw)):
            sw.say(f"  {o.pair}: {len(o.seeds)} seeds, {o.why}")
    return summarise(sw, end_parent=True)


def worker_layout(workers: int) -> tuple[int, list[str | None]]:
    """Threads per worker, and each worker's GPU (its CUDA_VISIBLE_DEVICES; None: no GPU here): the
    CPUs this process may use (its affinity, which a SLURM allocation or a container's CPU limit
    sets; not the machine's count) shared out, and the GPUs it sees dealt out one per worker,
    round-robin where workers outnumber them."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        devices = [d.strip() for d in given.split(",") if d.strip()]
    else:
        import torch

        devices = [str(i) for i in range(torch.cuda.device_count())]
    return max(1, cpus // workers), [devices[i % len(devices)] if devices else None for i in range(workers)]


def _spawn_workers(sw: Sweep, workers: int) -> None:
    """N worker processes (harness.worker), each given this round's grid
    as resolved, its share of the CPUs and a GPU of its own (`worker_layout`). Each is reaped as soon as it exits, and the claim of one that died is freed at
    once: a child that has exited but is not yet reaped would look alive to every liveness check
    until the 2-minute heartbeat limit."""
    grid = copy.deepcopy(sw.grid)
    threads, devices = worker_layout(workers)
    for cell in grid.cells:  # how the workers run, not what (grid.NOT_IDENTITY: the cells keep their keys)
        cell.config.trainer.threads = threads
        cell.config.trainer.progress_bar = False
    running, refused = [], []
    for index in range(workers):
        spec = WorkerSpec(grid, sw.storage_url, sw.tracking_uri, sw.since_trial, index)
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": devices[index]} if devices[index] is not None else None
        proc = subprocess.Popen([sys.executable, "-m", "harness.worker"], stdin=subprocess.PIPE, env=env)
        running.append(proc)
        try:
            proc.stdin.write(spec.to_bytes())
            proc.stdin.close()
        except BrokenPipeError:  # it died before reading: its exit status says why
            pass
    try:
        while running:
            time.sleep(1)
            exited = [proc for proc in running if proc.poll() is not None]  # poll() reaps
            running = [proc for proc in running if proc not in exited]
            refused += [proc for proc in exited if proc.returncode == EXIT_BAD_INPUT]
            if any(proc.returncode != 0 for proc in exited):
                reap(sw)
    except KeyboardInterrupt:
        for proc in running:  # a Ctrl-C reached them too; a SIGTERM reached only us: pass it on
            proc.terminate()
            proc.wait()
        raise
    if refused:  # each said why, in one line, above
        raise C.ConfigError(f"{len(refused)} of {workers} worker(s) stopped on bad input (their line is above); "
                            "the cells they did not run are left for the next run")
