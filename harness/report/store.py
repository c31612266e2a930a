"""A sweep as the report sees it, read from the tracking store or from a runs file (never the data,
never a checkpoint): the parent run, its resolved grid, and each cell's FINISHED child with its curves."""

from __future__ import annotations

from dataclasses import dataclass, field


from harness import bundle
from harness import config as C
from harness import grid as G
from harness import race, tracking

CURVES = ["train_err", "val_err", "train_time_s", "lr"]


@dataclass
class CellRun:
    name: str
    cell: str  # config hash
    trick: str  # leave-one-out axis, 'baseline', or '' (factorial)
    seed: int
    axes: dict[str, str]  # axis key -> value, as tagged
    params: dict[str, str]  # the flattened resolved config
    tags: dict[str, str]
    metrics: dict[str, float]  # final values
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)


@dataclass
class SweepRecord:
    name: str
    parent: tracking.RunRecord
    grid: dict  # grid.yaml of the parent run
    runs: list[CellRun]  # one FINISHED run per cell
    missing: list[tuple[str, str]]  # (cell name, why) for cells with no FINISHED run (a race's: in its table)
    cells: list[G.Cell] = field(default_factory=list)  # the recorded grid's, re-expanded
    failed: list[str] = field(default_factory=list)  # cells whose last run FAILED (a race's divergence is an outcome)
    attempts: dict[str, list[bundle.Run]] = field(default_factory=dict)  # cell hash -> its runs, oldest first
    settled: set[str] = field(default_factory=set)  # cell hashes with an outcome (`race.settled`); the rest are still to run
    _by_key: dict[str, G.Cell] = field(default_factory=dict, repr=False)

    def cell(self, key: str) -> G.Cell | None:
        """The recorded grid's cell of that hash (None: a cell of an earlier version of the grid)."""
        if len(self._by_key) != len(self.cells):
            self._by_key.update({c.key: c for c in self.cells})
        return self._by_key.get(key)

    def param(self, key: str) -> str:
        values = sorted({r.params.get(key, "?") for r in self.runs})
        return ", ".join(values) if values else "?"

    def tag(self, key: str) -> str:
        values = sorted({r.tags.get(key, "not recorded") for r in self.runs})
        return ", ".join(values) if values else "?"


def _expected_grid(recorded: dict) -> G.Grid | None:
    """The recorded grid, re-expanded (config only: no data is read)."""
    try:
        return G.from_record(recorded, "grid.yaml", "grid.yaml")
    except C.ConfigError:  # recorded by an older version whose keys have changed
        return None


def sweep_record(sweep: bundle.Bundle) -> SweepRecord:
    """One FINISHED run per cell of the recorded grid, and the cells that have none, from a sweep's
    runs (`bundle.from_store` or `bundle.read`: a store and a file give the same record)."""
    recorded = C.parse_yaml(sweep.parent.artifacts["grid.yaml"], f"sweep {sweep.sweep}: its parent run's grid.yaml")
    recorded = recorded if isinstance(recorded, dict) else {}
    for run in sweep.children:  # what the tables compute with, read back before any is computed
        try:
            C.check_recorded_run(run.params, run.tags)
        except C.ConfigError as err:
            raise C.ConfigError(f"sweep {sweep.sweep}: run {run.name}: {err}") from None
    by_cell = tracking.by_cell(sweep.children)
    grid = _expected_grid(recorded)
    expected = grid.cells if grid else []
    if expected:  # cells of an earlier version of the grid file are not part of this report
        by_cell = {k: v for k, v in by_cell.items() if k in {c.key for c in expected}}

    race_cells = {c.key for c in expected if c.stage == "race"}
    runs, missing, failed, settled = [], [], [], set()
    for key, attempts in sorted(by_cell.items(), key=lambda kv: kv[1][0].name):
        done = [r for r in attempts if r.status == "FINISHED"]
        if not done:
            last = attempts[-1]
            if key not in race_cells:  # a race cell's outcome, whatever it is, is in the race's table
                why = last.tags.get("failure_reason") or last.status.lower()
                missing.append((last.name, f"{last.status}: {why}"))
            if grid and race.settled(grid, last):
                settled.add(key)
            elif last.status == "FAILED":
                failed.append(last.name)
            continue
        settled.add(key)
        run = done[0]
        runs.append(CellRun(
            name=run.name, cell=key, trick=run.tags.get("trick", ""), seed=int(run.tags["seed"]),
            axes={k.removeprefix("axis."): v for k, v in run.tags.items() if k.startswith("axis.")},
            params=run.params, tags=run.tags, metrics=run.latest(), curves=run.history(CURVES)))
    seen = set(by_cell)
    missing += [(cell.name, "never ran") for cell in expected if cell.key not in seen and cell.key not in race_cells]
    return SweepRecord(sweep.sweep, sweep.parent.record(), recorded, runs, sorted(missing),
                       expected, sorted(failed), by_cell, settled)
