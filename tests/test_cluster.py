"""The README's multi-machine recipe ("On a cluster"), end to end: an `mlflow server` backed by
PostgreSQL and serving artifacts, an Optuna study on another PostgreSQL database, and three
`harness sweep` workers started as separate processes, each in its own working folder as if on
three machines, sharing only the two stores and one checkpoint folder. One worker is killed with
SIGKILL in the middle of a cell; another worker must continue that cell from the shared checkpoint
(same MLflow run, its first epoch not redone), and every cell must end with exactly one FINISHED
run, read back through the tracking server.

All three workers run on this host, so the dead worker's claim is freed by the same-host check
(its process is gone from this host: `claims.reap`), within a few seconds, not by the 2-minute
heartbeat grace period that frees the claim of a worker on another machine. The workers share
this machine's cores, so each trains with one thread (`trainer.threads=1`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from harness import grid as G
from conftest import free_port, tiny_grid

pytestmark = pytest.mark.slow

SERVER_START_S = 180  # deadlines against hanging, never assertions about speed
SWEEP_S = 600


def tail(path: Path, chars: int = 3000) -> str:
    text = path.read_text(errors="replace") if path.exists() else "(no log)"
    return f"--- {path} ---\n{text[-chars:]}"


def stop_group(proc: subprocess.Popen, grace_s: float = 10) -> None:
    """Stop a process started in its own session, and everything it started."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # what is left of the group (the server's workers)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


@contextmanager
def mlflow_server(backend_uri: str, artifacts: Path, log_path: Path):
    """`mlflow server` as the README starts it, on 127.0.0.1 and a free port; yields its URL once
    GET /health answers, and always stops it (its whole process group)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri,
               "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1"]
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")  # starts in ~9 s instead of ~24 s
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=log_path.parent, env=env,
                                start_new_session=True)
    try:
        deadline = time.time() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited with {proc.returncode}\n{tail(log_path)}")
            if time.time() > deadline:
                pytest.fail(f"mlflow server did not answer /health within {SERVER_START_S} s\n{tail(log_path)}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        yield url
    finally:
        stop_group(proc)


def cluster_grid(tmp_path: Path, source: Path, checkpoints: Path, images: int = 1024, epochs: int = 2) -> Path:
    """Four cells (ReLU/tanh x two seeds) of two epochs on 1,024 real CIFAR-10 images: a second or
    two per epoch, so that a worker can be killed between its cell's two epochs. No
    tracking.artifact_root, as in the README: the runs' artifacts go where the server keeps them."""
    return tiny_grid(tmp_path / "cluster.yaml", source, checkpoints, images=images, epochs=epochs,
                     settings={"trainer.threads": 1})


def test_three_workers_on_shared_stores_one_killed_mid_cell(tmp_path, real_cifar, postgres):
    shared = tmp_path / "shared"
    checkpoints, artifacts = shared / "ckpt", shared / "mlartifacts"
    checkpoints.mkdir(parents=True)
    artifacts.mkdir()
    path = cluster_grid(shared, real_cifar, checkpoints)
    storage = postgres("optuna")
    server_dir = tmp_path / "server"
    server_dir.mkdir()

    with mlflow_server(postgres("mlflow"), artifacts, server_dir / "server.log") as uri:
        env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "HARNESS_SWEEP_STORAGE")}
        workers: dict[int, tuple[subprocess.Popen, Path, Path]] = {}  # pid -> (process, folder, log)
        try:
            for i in range(3):
                folder = tmp_path / f"machine{i}"
                folder.mkdir()
                with open(folder / "worker.log", "w") as log:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "harness.cli", "sweep", str(path), "--storage", storage,
                         "--tracking-uri", uri], cwd=folder, stdout=log, stderr=subprocess.STDOUT, env=env,
                        start_new_session=True)
                workers[proc.pid] = (proc, folder, folder / "worker.log")

            def logs() -> str:
                return "\n".join(tail(log) for _, _, log in workers.values()) + "\n" + tail(server_dir / "server.log")

            # Kill the worker of the first cell to checkpoint its first epoch, before it finishes the cell.
            client = MlflowClient(tracking_uri=uri)
            deadline = time.time() + SWEEP_S
            victim = killed_run = None
            while victim is None:
                assert time.time() < deadline, "no cell checkpointed its first epoch in time\n" + logs()
                exited = {pid: p.returncode for pid, (p, _, _) in workers.items() if p.poll() is not None}
                assert not exited, f"a worker exited before any cell checkpointed: {exited}\n" + logs()
                for ckpt in checkpoints.glob("*/last.ckpt"):
                    run = client.get_run(ckpt.parent.name)
                    pid = int(run.data.tags["worker"].rpartition(":")[2])
                    if pid in workers and run.info.status == "RUNNING":
                        victim, killed_run = pid, run
                        os.kill(pid, signal.SIGKILL)
                        break
                else:
                    time.sleep(0.1)
            workers[victim][0].wait()
            assert workers[victim][0].returncode == -signal.SIGKILL
            before = client.get_metric_history(killed_run.info.run_id, "train_err")
            assert client.get_run(killed_run.info.run_id).info.status == "RUNNING"
            assert [m.step for m in before] == [1], "killed too late: not between the cell's epochs\n" + logs()

            for pid, (proc, _, _) in workers.items():
                if pid != victim:
                    try:
                        proc.wait(max(1.0, deadline - time.time()))
                    except subprocess.TimeoutExpired:
                        pytest.fail(f"worker {pid} still running after {SWEEP_S} s\n" + logs())
            codes = {pid: p.returncode for pid, (p, _, _) in workers.items() if pid != victim}
            assert codes == {pid: 0 for pid in codes}, logs()
        finally:
            for proc, _, _ in workers.values():
                stop_group(proc, grace_s=5)

        # Everything below is read through the tracking server, as a user at home would.
        grid = G.load(path)
        experiment = client.get_experiment_by_name("tiny")
        runs = client.search_runs([experiment.experiment_id], max_results=1000)
        parents = [r for r in runs if r.data.tags.get("sweep_role") == "parent"]
        children = [r for r in runs if r.data.tags.get("sweep_role") != "parent"]
        assert [(p.info.run_name, p.info.status) for p in parents] == [("tiny", "FINISHED")], logs()
        assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"], logs()
        # Each cell exactly once, FINISHED; the killed cell continued its own run: no second run.
        assert sorted(r.data.tags["cell"] for r in children) == sorted(c.key for c in grid.cells), logs()
        assert {r.info.status for r in children} == {"FINISHED"}, logs()
        assert {r.data.tags["sweep_parent"] for r in children} == {parents[0].info.run_id}

        continued = client.get_run(killed_run.info.run_id)
        assert continued.info.status == "FINISHED"
        successor = int(continued.data.tags["worker"].rpartition(":")[2])
        assert successor in workers and successor != victim  # another "machine" took the cell over
        history = client.get_metric_history(killed_run.info.run_id, "train_err")
        assert sorted(m.step for m in history) == [1, 2]  # epoch 1 recorded once: not redone
        assert [m.timestamp for m in history if m.step == 1] == [before[0].timestamp]
        assert "test_err" in continued.data.metrics
        assert f"continued from run {killed_run.info.run_id}" in workers[successor][2].read_text(), logs()
        workers_that_finished = {int(r.data.tags["worker"].rpartition(":")[2]) for r in children}
        assert victim not in workers_that_finished

        # The Optuna study: the dead worker's claim failed (reaped), one COMPLETE trial per cell.
        study = optuna.load_study(study_name="tiny", storage=storage)
        by_cell: dict[str, list[optuna.trial.FrozenTrial]] = {}
        for trial in study.get_trials(deepcopy=False):
            if "cell" in trial.user_attrs:
                by_cell.setdefault(trial.user_attrs["cell"], []).append(trial)
        assert sorted(by_cell) == sorted(c.key for c in grid.cells)
        for key, trials in by_cell.items():
            assert [t.state.name for t in trials].count("COMPLETE") == 1, (key, [t.state.name for t in trials])
            assert "RUNNING" not in [t.state.name for t in trials]
        lost = [t for t in by_cell[killed_run.data.tags["cell"]] if t.user_attrs["worker"].endswith(f":{victim}")]
        assert [t.state.name for t in lost] == ["FAIL"]

        # Artifacts: kept by the server (--artifacts-destination), served from there, and never
        # written into one worker's working folder (which the other machines would not have).
        for run in children:
            config = Path(client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path / "download"
                                                                                         / run.info.run_id)))
            assert f"checkpoint_dir: {checkpoints}" in config.read_text()
        assert experiment.artifact_location.startswith("mlflow-artifacts:"), experiment.artifact_location
        kept = {p.name for p in artifacts.rglob("config.yaml")}
        assert kept == {"config.yaml"} and len(list(artifacts.rglob("config.yaml"))) == len(children)
        for i in range(3):
            assert not (tmp_path / f"machine{i}" / "mlruns").exists()
