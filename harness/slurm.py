"""`harness submit`: a sweep as a SLURM job array of identical workers, through submitit.

Each array task runs the sweep's own work loop (`harness.sweep.run`, one worker) on the grid as
resolved when it was submitted, claiming free cells from the shared Optuna storage and recording
to the shared tracking store: the pull model of `--workers N`, on the scheduler. What a task does
when SLURM stops it:

- SIGTERM (pre-emption with PreemptMode=REQUEUE, `scontrol requeue`, `scancel --signal=TERM`): the
  harness's own handler records the cell's run KILLED, gives its claim back and exits 130; SLURM
  requeues a pre-empted task itself. (submitit would ignore SIGTERM and be killed mid-epoch.)
- SIGUSR2, which submitit asks SLURM to send `signal_delay_s` before the time limit: submitit
  calls `SweepTask.checkpoint`, requeues the task (`scontrol requeue`) and exits; the cell's run
  ends KILLED and its claim is given back on the way out.

A requeued task is the same worker again: it claims the freed cell and continues its run from the
last epoch's checkpoint, which must be in a `trainer.checkpoint_dir` that every node sees (without
one, another node starts the cell over in a new run, and the killed run stays KILLED). submitit is
imported only here, and only by `harness submit`.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ConfigError, InputError
from harness.grid import Grid


class SlurmError(InputError):
    """No SLURM here, an unknown partition, or a submission SLURM refused (its own reason)."""

    kind = "slurm error"


@dataclass
class JobSettings:
    """The job array, as `harness submit`'s flags give it."""

    tasks: int
    partition: str | None = None
    time_min: int = 60
    cpus_per_task: int | None = None
    gpus_per_task: int = 0
    options: dict[str, str] = field(default_factory=dict)  # further sbatch options (--KEY=VALUE)
    logs: Path = Path("mlruns/slurm")
    signal_delay_s: int = 120  # SIGUSR2 this long before the time limit: the epoch in hand ends KILLED
    job_name: str = "harness"


@dataclass
class SweepTask:
    """What each array task runs: the sweep's work loop as one worker, under harness's exit codes."""

    grid: Grid
    storage_url: str
    tracking_uri: str

    def __call__(self, index: int) -> int:
        from harness import cli, sweep

        print(f"harness: array task {index} (pid {os.getpid()}): sweep {self.grid.name}", flush=True)
        code = cli.guarded(lambda: sweep.run(self.grid, storage_url=self.storage_url, tracking_uri=self.tracking_uri))
        if code not in (0, 1):  # submitit records a result either way; SLURM's state shows the failure
            raise SystemExit(code)
        return code

    def checkpoint(self, index: int):
        """submitit, at SIGUSR2 (the time limit near, or a pre-emption it was told of): requeue the
        same worker. The cell's own checkpoint is already on disk, written every epoch."""
        import submitit

        return submitit.helpers.DelayedSubmission(self, index)


def check_slurm(settings: JobSettings) -> None:
    """SLURM's commands on PATH and the partition known to it, before anything is created."""
    if settings.tasks < 1:
        raise ConfigError(f"--tasks: at least 1; got {settings.tasks}")
    if settings.time_min < 1:
        raise ConfigError(f"--time: minutes, at least 1; got {settings.time_min}")
    missing = [c for c in ("sbatch", "sinfo", "scontrol") if shutil.which(c) is None]
    if missing:
        raise SlurmError(f"no SLURM here: {', '.join(missing)} not on PATH")
    done = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=60)
    if done.returncode:
        said = (done.stderr or done.stdout).strip()
        # its last line, which names sinfo itself ("sinfo: fatal: ..."): said once
        raise SlurmError(f"sinfo: {said.splitlines()[-1].removeprefix('sinfo: ') if said else f'exit {done.returncode}'}")
    partitions = [p.rstrip("*") for p in done.stdout.split()]
    if settings.partition is not None and settings.partition not in partitions:
        raise SlurmError(f"--partition {settings.partition}: not a partition of this cluster "
                         f"(partitions: {', '.join(partitions) or 'none'})")


def executor(settings: JobSettings):
    import submitit

    ex = submitit.SlurmExecutor(folder=str(settings.logs / "%j"), python=sys.executable, max_num_timeout=100)
    params = {"job_name": settings.job_name, "time": settings.time_min, "signal_delay_s": settings.signal_delay_s,
              "ntasks_per_node": 1,
              "additional_parameters": dict(settings.options)}
    if settings.partition:
        params["partition"] = settings.partition
    if settings.cpus_per_task:
        params["cpus_per_task"] = settings.cpus_per_task
    if settings.gpus_per_task:
        params["gpus_per_task"] = settings.gpus_per_task
    ex.update_parameters(**params)
    return ex


def sbatch_text(settings: JobSettings) -> str:
    """The sbatch script `submit` would hand SLURM (the array's first task's command)."""
    from harness import private_api

    return private_api.submitit_sbatch_text(executor(settings), settings.tasks)


def submit(task: SweepTask, settings: JobSettings) -> str:
    """Submit the array; its job id. SLURM's refusal is one line naming its reason."""
    import submitit

    settings.logs.mkdir(parents=True, exist_ok=True)
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # submitit echoes sbatch's error; it is said once below
            jobs = executor(settings).map_array(task, list(range(settings.tasks)))
    except (subprocess.CalledProcessError, submitit.core.utils.FailedJobError) as err:
        reason = str(getattr(err, "stderr", None) or getattr(err, "output", None) or err).strip().splitlines()
        raise SlurmError(f"sbatch refused the job: {next((line for line in reason if 'error' in line.lower()), reason[-1] if reason else err)}") from None
    return jobs[0].job_id.split("_")[0]
