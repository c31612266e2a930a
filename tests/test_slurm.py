"""`harness submit` against a real SLURM: munged, slurmctld and slurmd started on this machine (one
node, its real CPU count, a configuration written into a temporary folder, torn down afterwards).
A small grid runs as an array of 2 tasks on a PostgreSQL Optuna storage; one task is pre-empted
mid-cell (`scontrol requeue`, as a pre-emption with PreemptMode=REQUEUE does: SIGTERM, then the
task goes back in the queue); every cell must end with exactly one FINISHED run, and the requeued
task must continue the cell it gave back from its checkpoint, in the same run.

Skips with the reason where SLURM cannot start here; fails instead under HARNESS_REQUIRE_SLURM=1
(.ci/run installs Debian's slurm-wlm and munge and sets it)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from harness import cli
from harness import grid as G
from test_cluster import cluster_grid
from conftest import free_port

pytestmark = pytest.mark.slow

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "sinfo", "squeue")
START_S, SWEEP_S = 60, 600  # deadlines against hanging, never assertions about speed


def _unavailable(why: str):
    if os.environ.get("HARNESS_REQUIRE_SLURM") == "1":
        pytest.fail(why)
    pytest.skip(why)


def _slurm_conf(root: Path) -> str:
    host = socket.gethostname().split(".")[0]
    return f"""ClusterName=harnesstest
SlurmctldHost={host}
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root}/munge.sock
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
KillWait=30
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
NodeName={host} CPUs={os.cpu_count()} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A one-node SLURM of its own (its ports, its munge socket); yields the environment that
    points at it (SLURM_CONF)."""
    missing = [d for d in DAEMONS if shutil.which(d) is None]
    if missing:
        _unavailable(f"SLURM is not installed here ({', '.join(missing)} missing; apt-get install slurm-wlm munge)")
    if os.geteuid() != 0:
        _unavailable("this one-node SLURM runs its daemons as root")
    root = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool"):
        (root / sub).mkdir()
    (root / "munge.key").write_bytes(os.urandom(1024))
    (root / "munge.key").chmod(0o400)
    (root / "slurm.conf").write_text(_slurm_conf(root))
    env = {**os.environ, "SLURM_CONF": str(root / "slurm.conf")}
    started = []
    try:
        for command in (["munged", "-f", "-S", f"{root}/munge.sock", f"--key-file={root}/munge.key",
                         f"--pid-file={root}/munged.pid", f"--seed-file={root}/munged.seed",
                         f"--log-file={root}/munged.log"],
                        ["slurmctld", "-i"], ["slurmd"]):
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=START_S)
            if done.returncode:
                _unavailable(f"{command[0]} did not start: {(done.stderr or done.stdout).strip()[-500:]}")
            started.append(command[0])
        deadline = time.time() + START_S
        while "idle" not in subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True).stdout:
            if time.time() > deadline:
                _unavailable(f"the node never became idle:\n{(root / 'slurmd.log').read_text()[-1500:]}")
            time.sleep(0.5)
        yield env
    finally:
        subprocess.run(["scancel", "--full", "--user=root"], env=env, capture_output=True)
        for name in ("slurmd", "slurmctld"):
            pid = root / f"{name}.pid"
            if pid.is_file():
                subprocess.run(["kill", pid.read_text().strip()], capture_output=True)
        if "munged" in started:
            subprocess.run(["munged", "-s", "-S", f"{root}/munge.sock"], capture_output=True)


def _grid(tmp_path: Path, source: Path) -> Path:
    """test_cluster's four cells, three epochs on 4,096 images: long enough to pre-empt one between
    epochs. Run from tmp_path (tasks start where `harness submit` ran): artifacts under its mlruns/."""
    return cluster_grid(tmp_path, source, tmp_path / "checkpoints", images=4096, epochs=3)


def test_no_slurm_or_a_refused_job_is_one_line_and_creates_nothing(tmp_path, capsys, monkeypatch, cifar_sources):
    monkeypatch.chdir(tmp_path)
    path = _grid(tmp_path, cifar_sources["zip"])
    stores = ["--storage", f"sqlite:///{tmp_path}/optuna.db", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]
    monkeypatch.setenv("PATH", str(tmp_path / "no-slurm-here"))
    assert cli.main(["submit", str(path), *stores]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no SLURM here: sbatch, sinfo, scontrol not on PATH" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cluster.yaml"]
    # SLURM's commands, and no cluster they can reach: sinfo's own words, named once
    monkeypatch.undo()
    if shutil.which("sinfo") is None:
        return
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.conf").write_text("")  # a missing one: sinfo retries for a minute first
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "empty.conf"))
    assert cli.main(["submit", str(path), *stores]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "harness: slurm error: sinfo: " in err and "sinfo: sinfo:" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cluster.yaml", "empty.conf"]


def test_an_array_on_real_slurm_with_one_task_preempted_mid_cell(tmp_path, slurm, postgres, real_cifar,
                                                                   monkeypatch, capsys):
    for key, value in slurm.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    path = _grid(tmp_path, real_cifar)
    storage, uri = postgres("slurm"), f"sqlite:///{tmp_path}/mlflow.db"
    logs = tmp_path / "logs"
    stores = ["--storage", storage, "--tracking-uri", uri, "--logs", str(logs)]

    # refused before anything exists: an unknown partition, a job SLURM will not take (its reason)
    assert cli.main(["submit", str(path), "--partition", "nope", *stores]) == 2
    assert "--partition nope: not a partition of this cluster (partitions: debug)" in capsys.readouterr().err
    assert cli.main(["submit", str(path), "--sbatch", "constraint=no-such-feature", *stores]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sbatch refused the job: sbatch: error: Batch job submission failed: Invalid feature" in err, err
    assert not (tmp_path / "mlflow.db").exists()
    # the dry run shows the job
    assert cli.main(["submit", str(path), "--dry-run", "--tasks", "2", "--cpus-per-task", "1", *stores]) == 0
    job_text = capsys.readouterr().out
    assert "#SBATCH --array=0-1" in job_text and "#SBATCH --cpus-per-task=1" in job_text

    assert cli.main(["submit", str(path), "--tasks", "2", "--cpus-per-task", "1", *stores]) == 0
    job = re.search(r"submitted job (\d+)", capsys.readouterr().out).group(1)

    def text() -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}" for p in sorted(logs.glob("*/*_log.*")))

    # pre-empt the task whose worker is mid-cell: a RUNNING run with its first epoch checkpointed
    deadline, client = time.time() + SWEEP_S, MlflowClient(uri)
    victim = run_id = None
    while victim is None:
        assert time.time() < deadline, "no cell checkpointed an epoch in time\n" + text()
        for ckpt in (tmp_path / "checkpoints").glob("*/last.ckpt"):
            run = client.get_run(ckpt.parent.name)
            if run.info.status != "RUNNING" or len(client.get_metric_history(run.info.run_id, "train_err")) != 1:
                continue
            pid = run.data.tags["worker"].rpartition(":")[2]
            for out in logs.glob(f"{job}_*/*_log.out"):
                if f"(pid {pid})" in out.read_text(errors="replace"):
                    victim, run_id = out.parent.name, run.info.run_id
        time.sleep(0.2)
    subprocess.run(["scontrol", "requeue", victim], check=True, capture_output=True)
    # SLURM holds a requeued job back for a while (Reason=BeginTime, about two minutes here): make it
    # eligible at once, so that the task restarts (and finds its cell taken over) without that wait
    while "PENDING" not in subprocess.run(["squeue", "-h", "-o", "%T", "-j", victim], capture_output=True, text=True).stdout:
        assert time.time() < deadline, "the requeued task never went back to PENDING\n" + text()
        time.sleep(0.2)
    subprocess.run(["scontrol", "update", f"JobId={victim}", "StartTime=now"], check=True, capture_output=True)

    while subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout.strip():
        assert time.time() < deadline, "the array did not finish in time\n" + text()
        time.sleep(1)
    grid = G.load(path)
    runs = [r for r in client.search_runs([client.get_experiment_by_name("tiny").experiment_id], max_results=100)
            if r.data.tags.get("sweep_role") != "parent"]
    assert sorted(r.data.tags["cell"] for r in runs) == sorted(c.key for c in grid.cells), text()
    assert {r.info.status for r in runs} == {"FINISHED"}, text()
    steps = [m.step for m in client.get_metric_history(run_id, "train_err")]
    assert sorted(set(steps)) == [1, 2, 3] and steps.count(1) == 1, text()  # continued, its first epoch not redone
    assert f"continued from run {run_id}" in text()
