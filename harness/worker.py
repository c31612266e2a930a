"""One worker process of `harness sweep --workers N`, started by the sweep, never by hand.

It receives one resolved spec as JSON on its standard input: the grid exactly as the coordinator
resolved it (`Grid.as_dict`: command-line overrides, seeds added by --until-resolved, the race's
choices), the cells' keys, the two stores and the trial number to count from. It never reads the
grid file (an edit made mid-sweep must not give a worker another grid) and takes no command-line
flags. A worker whose grid expands to other cells than the coordinator's (a preset edited since the
sweep began) stops with exit 2 before it claims anything.

    python -m harness.worker < spec.json
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class WorkerSpec:
    grid: dict  # Grid.as_dict() as the coordinator runs it
    grid_path: str  # the grid file it came from (named in tags and messages; not read)
    cell_keys: list[str]  # the coordinator's cells, in order
    storage_url: str  # the Optuna storage of the claims
    tracking_uri: str  # the MLflow store of the runs
    since_trial: int  # trials numbered above this were made by this invocation of the sweep
    index: int  # 0-based: which cell of the free ones this worker starts at, and its label

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerSpec:
        from harness.errors import ConfigError

        try:
            values = json.loads(text)
            return cls(**values)
        except (json.JSONDecodeError, TypeError) as err:
            raise ConfigError(f"worker spec on standard input: not a spec from `harness sweep` ({err})") from None


def run(spec: WorkerSpec) -> int:
    from harness import grid as G
    from harness import sweep
    from harness.errors import ConfigError

    grid = G.from_record(spec.grid, spec.grid_path, "worker spec")
    if [cell.key for cell in grid.cells] != spec.cell_keys:
        raise ConfigError(f"{spec.grid_path}: its preset now gives other cells than when the sweep started "
                          "(edited mid-sweep?); this worker stops, the others go on")
    return sweep.work_on(grid, spec.storage_url, spec.tracking_uri, spec.since_trial, spec.index)


def main() -> int:
    from harness.cli import guarded

    return guarded(lambda: run(WorkerSpec.from_json(sys.stdin.read())))


if __name__ == "__main__":
    sys.exit(main())
