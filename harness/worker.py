"""One worker process of `harness sweep --workers N`, started by the sweep, never by hand.

It receives one resolved spec on its standard input: the Grid object exactly as its coordinator
resolved it (every cell's config, command-line overrides, seeds added by --until-resolved, the
race's choices), the two stores and the trial number to count from, pickled by the coordinator
(its parent process, the only writer of that pipe). It never reads the grid file or a preset (an
edit made mid-sweep changes nothing until the next command) and takes no command-line flags.

    python -m harness.worker < spec.pickle
"""

from __future__ import annotations

import pickle
import sys
from dataclasses import dataclass

from harness.grid import Grid


@dataclass(frozen=True)
class WorkerSpec:
    grid: Grid  # as the coordinator runs it, cells and all
    storage_url: str  # the Optuna storage of the claims
    tracking_uri: str  # the MLflow store of the runs
    since_trial: int  # trials numbered above this were made by this invocation of the sweep
    index: int  # 0-based: which of the free cells this worker starts at, and its label

    def to_bytes(self) -> bytes:
        return pickle.dumps(self)

    @staticmethod
    def from_bytes(data: bytes) -> WorkerSpec:
        from harness.errors import ConfigError

        try:
            spec = pickle.loads(data)
        except Exception as err:  # noqa: BLE001 - whatever unpickling raised: not a spec
            raise ConfigError(f"worker spec on standard input: not a spec from `harness sweep` "
                              f"({type(err).__name__})") from None
        if not isinstance(spec, WorkerSpec):
            raise ConfigError(f"worker spec on standard input: not a spec from `harness sweep` "
                              f"(a {type(spec).__name__})")
        return spec


def main() -> int:
    from harness import sweep
    from harness.cli import guarded

    def run() -> int:
        spec = WorkerSpec.from_bytes(sys.stdin.buffer.read())
        return sweep.work_on(spec.grid, spec.storage_url, spec.tracking_uri, spec.since_trial, spec.index)
    return guarded(run)


if __name__ == "__main__":
    # Run as `python -m harness.worker`, this file is the module __main__; the spec's pickle names the
    # classes of harness.worker, so the work is done by that module, whose WorkerSpec it is.
    from harness.worker import main as worker_main

    sys.exit(worker_main())
