"""A sweep as the report sees it, read from the tracking store alone (never the data, never a
checkpoint): the parent run, its resolved grid, and each cell's FINISHED child with its curves."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from harness import config as C
from harness import grid as G
from harness import tracking

CURVES = ["train_err", "val_err", "train_time_s"]


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
    missing: list[tuple[str, str]]  # (cell name, why) for cells with no FINISHED run

    def param(self, key: str) -> str:
        values = sorted({r.params.get(key, "?") for r in self.runs})
        return ", ".join(values) if values else "?"

    def tag(self, key: str) -> str:
        values = sorted({r.tags.get(key, "not recorded") for r in self.runs})
        return ", ".join(values) if values else "?"


def sweep_names(uri: str) -> list[str]:
    """Every experiment in the store that holds a sweep parent run."""
    return [name for name in tracking.experiment_names(uri)
            if tracking.find_runs(uri, name, "tags.sweep_role = 'parent'")]


def _expected_cells(grid_yaml: str) -> list[G.Cell]:
    """The grid's cells, re-expanded from the recorded grid (config only: no data is read)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "grid.yaml"
        path.write_text(grid_yaml)
        try:
            return G.load(path).cells
        except C.ConfigError:  # recorded by an older version whose keys have changed
            return []


def load_sweep(uri: str, name: str) -> SweepRecord:
    parents = tracking.find_runs(uri, name, "tags.sweep_role = 'parent'")
    if not parents:
        raise C.ConfigError(f"sweep {name!r}: no sweep parent run in {uri} (known: {', '.join(sweep_names(uri))})")
    parent = parents[0]
    grid_yaml = tracking.run_config_yaml(uri, parent.run_id, "grid.yaml")
    children = tracking.find_runs(uri, name, f"tags.sweep_parent = '{parent.run_id}'")
    by_cell: dict[str, list[tracking.RunRecord]] = {}
    for run in children:
        by_cell.setdefault(run.tags.get("cell", ""), []).append(run)
    expected = _expected_cells(grid_yaml)
    if expected:  # cells of an earlier version of the grid file are not part of this report
        by_cell = {k: v for k, v in by_cell.items() if k in {c.key for c in expected}}

    runs, missing = [], []
    for key, attempts in sorted(by_cell.items(), key=lambda kv: kv[1][0].name):
        done = [r for r in attempts if r.status == "FINISHED"]
        if not done:
            last = attempts[-1]
            why = last.tags.get("failure_reason") or last.status.lower()
            missing.append((last.name, f"{last.status}: {why}"))
            continue
        run = done[0]
        runs.append(CellRun(
            name=run.name, cell=key, trick=run.tags.get("trick", ""), seed=int(run.tags["seed"]),
            axes={k.removeprefix("axis."): v for k, v in run.tags.items() if k.startswith("axis.")},
            params=run.params, tags=run.tags, metrics=run.metrics,
            curves=tracking.metric_history(uri, run.run_id, CURVES)))
    seen = set(by_cell)
    missing += [(cell.name, "never ran") for cell in expected if cell.key not in seen]
    return SweepRecord(name, parent, yaml.safe_load(grid_yaml), runs, sorted(missing))
