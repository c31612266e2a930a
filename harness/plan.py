"""`harness sweep --dry-run`: every cell of a grid with its state in the tracking store (read, never
created) and its cost, estimated from SGD steps measured on this machine before anything runs."""

from __future__ import annotations

import dataclasses
import math
import os

from harness import config as C
from harness import stores, tracking
from harness import race
from harness.claims import cell_state, recorded_grid, stored_trials
from harness.grid import Grid, describe, duration, variant_name

CELL_SETUP_S = 3  # measured here: a cell's run, Trainer, test pass and learning-curve upload


def cell_seconds(cfg: C.RunConfig, sizes: dict[str, int], step_s: float) -> float:
    """A cell's cost from its step time: every epoch's steps, evaluation as a third of a step per
    image (a forward pass), and the set-up; an upper bound for cells with a stop rule."""
    batch, epochs = cfg.data.batch_size, cfg.trainer.max_epochs
    return CELL_SETUP_S + step_s * (epochs * math.ceil(sizes["train"] / batch)
                                    + (epochs * sizes["val"] + sizes["test"] * cfg.data.test_crops) / batch / 3)


def _with_workers(seconds: float, workers: int, calibration_threads: int) -> str:
    """What more workers buy. Where the calibration already used every core, workers on this machine
    only split those cores (small nets use threads imperfectly, so the split may gain a little:
    `harness bench` times it); workers on other machines divide the time."""
    cores = os.cpu_count() or 1
    if workers == 1:
        return ""
    if calibration_threads >= cores:
        return (f"; {workers} workers on these {cores} cores share the cores it was measured on, so take about as "
                f"long (`harness bench` times the split), {duration(seconds / workers)} on {workers} such machines")
    return f", {duration(seconds / workers)} with {workers} workers on cores of their own"


def _shape(cell) -> str:
    """What a step's cost depends on (the network, batch, memory format and precision); the
    initialisation does not change it (one calibration serves both)."""
    cfg = cell.config
    return repr((dataclasses.replace(cfg.model, init="paper"), cfg.data.batch_size, C.channels_last(cfg.trainer, "cpu"),
                 cfg.trainer.precision))


def plan(grid: Grid, storage_url: str, tracking_uri: str, workers: int, steps: int) -> str:
    """`harness sweep --dry-run`: every cell with its state in the store (read, never created) and
    its cost from a calibration: `steps` measured SGD steps per distinct network on this machine."""
    import torch

    from harness.data import load_data
    from harness.describe import measure_step
    from harness.models import build_model

    runs: dict[str, list[tracking.RunRecord]] = {}
    starts_over = ""
    if stores.has_tracking_store(tracking_uri):
        parent = tracking.sweep_parent(tracking_uri, grid.name, storage_url)
        runs = tracking.cell_runs(tracking_uri, grid.name, parent.run_id) if parent else {}
        starts_over = "" if parent else tracking.other_storages_note(tracking_uri, grid.name, storage_url)
        if parent and grid.race:  # the race's cells and choices so far
            grid = race.recorded(grid, recorded_grid(tracking_uri, parent.run_id), parent.run_id)
    trials, last_trial = stored_trials(storage_url, grid.name)

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
        (n, classes), shape, nhwc = sizes[data_key], _shape(cell), C.channels_last(cfg.trainer, "cpu")
        if shape not in step_s:
            torch.manual_seed(0)
            step_s[shape] = measure_step(build_model(cfg.model, classes), cfg.data.batch_size, steps, nhwc,
                                         bf16=cfg.trainer.precision == "bf16-mixed")
        epochs, seconds = cfg.trainer.max_epochs, cell_seconds(cfg, n, step_s[shape])
        # as the next invocation sees it: a cell that failed before is retried (todo)
        state = cell_state(grid, runs.get(cell.key, []), trials.get(cell.key, []), last_trial)
        total += seconds
        todo_total += 0 if state == "done" else seconds
        bound = "<=" if cfg.trainer.stop_train_err else ""
        lines.append(f"{cell.name:<58}{state:>9}{bound + str(epochs):>8}{duration(seconds):>9}")
    step_words = f"{steps} step{'s' if steps != 1 else ''}"
    lines.append(f"calibrated {len(step_s)} network(s) x {step_words} on this machine ({torch.get_num_threads()} "
                 f"threads), plus {CELL_SETUP_S} s of set-up per cell; '<=N' cells stop at their target, so theirs "
                 "is an upper bound")
    if busy >= max(1.0, 0.25 * (os.cpu_count() or 1)):
        lines.append(f"caution: the machine was busy as calibration began (load average {busy:.1f} on "
                     f"{os.cpu_count()} cores): the estimates include that contention and run high (and, from {step_words}, "
                     "vary: a quiet machine or a larger --calibrate-steps steadies them)")
    lines.append(f"estimate: {duration(total)} for all {len(grid.cells)} cells; {duration(todo_total)} for those "
                 f"not done{_with_workers(todo_total, workers, torch.get_num_threads())}")
    if grid.race:  # the estimate's cells exist once a variant's race has chosen its rate
        waiting = sorted({variant_name(c.values) for c in grid.cells if c.stage == "race"} - {
            v for v, d in grid.race_state.items() if "chosen" in d})
        if waiting:
            mean = sum(cell_seconds(c.config, sizes[repr(c.config.data)][0], step_s[_shape(c)]) for c in grid.cells
                       if c.stage == "race") / sum(c.stage == "race" for c in grid.cells)
            lines.append(f"then the estimate: {len(waiting)} variants x {len(grid.seeds)} seeds at the chosen rates, "
                         f"about {duration(mean * len(waiting) * len(grid.seeds))} more at most; a race costs about "
                         "(rates x the winner's epochs), far below its bound, and may add rates past an end "
                         "(harness/race.py)")
    if grid.max_seeds:  # rounds add a seed to each unresolved trick, with the full model's cell
        extra = (grid.max_seeds - len(grid.seeds)) * (len(grid.pairs()) + 1) - sum(map(len, grid.added_seeds.values()))
        lines.append(f"--until-resolved: up to {extra} more cells if no trick resolves before {grid.max_seeds} seeds, "
                     f"about {duration(extra * total / len(grid.cells))} more")
    if starts_over:
        lines.append(f"caution: {starts_over}")
    return "\n".join(lines)

