"""Sweeps that really train (convnet4 on a few hundred real CIFAR-10 images): parent and child runs,
resume after kill -9, two workers on SQLite and on PostgreSQL, a diverging cell, bad data."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from harness import cli
from harness import grid as G
from harness import claims, tracking
from conftest import fresh_store, tiny_grid

pytestmark = pytest.mark.slow


def grid_file(tmp_path: Path, source: Path, *, axes: str = "{model.activation: [relu, tanh]}",
              epochs: int = 1, images: int = 256, seeds: str = "[0, 1]", models: str = "none",
              system_metrics_s: float = 0) -> Path:
    """A small real grid: PyTorch init and z-scored input learn in a few steps (see test_train).
    No trained models and no system metrics by default: exporting a model costs a second or two of
    CPU per run, and tests that need them (test_ui_browser, test_train) ask."""
    return tiny_grid(tmp_path / "tiny.yaml", source, tmp_path / "checkpoints", axes=axes, seeds=seeds,
                     images=images, epochs=epochs,
                     settings={"tracking.artifact_root": tmp_path / "artifacts", "tracking.log_model": models,
                               "tracking.system_metrics_s": system_metrics_s})


def stores(tmp_path: Path) -> tuple[str, str]:
    return f"sqlite:///{tmp_path}/optuna.db", fresh_store(tmp_path / "mlflow.db")


def run_sweep(path: Path, url: str, uri: str, *extra: str) -> int:
    return cli.main(["sweep", str(path), "--storage", url, "--tracking-uri", uri, *extra])


def child_runs(uri: str) -> list[tracking.RunRecord]:
    return [r for r in tracking.find_runs(uri, "tiny") if r.tags.get("sweep_role") != "parent"]


def assert_each_cell_finished_once(path: Path, uri: str) -> list[tracking.RunRecord]:
    grid = G.load(path)
    finished = [r for r in child_runs(uri) if r.status == "FINISHED"]
    assert sorted(r.tags["cell"] for r in finished) == sorted(c.key for c in grid.cells)
    assert {r.run_id: r.name for r in finished} and sorted(r.name for r in finished) == sorted(c.name for c in grid.cells)
    return finished


def test_four_cell_sweep_one_parent_four_children_then_nothing_to_do(tmp_path, real_cifar, capsys):
    path = grid_file(tmp_path, real_cifar)
    url, uri = stores(tmp_path)
    assert run_sweep(path, url, uri) == 0
    out = capsys.readouterr().out
    assert "sweep tiny: 4/4 done, 0 running, 0 left, 0 failed" in out and "ETA" in out

    parents = tracking.find_runs(uri, "tiny", "tags.sweep_role = 'parent'")
    assert [(p.name, p.status) for p in parents] == [("tiny", "FINISHED")]
    children = assert_each_cell_finished_once(path, uri)
    assert len(children) == 4
    for run in children:
        assert run.tags["mlflow.parentRunId"] == parents[0].run_id == run.tags["sweep_parent"]
        assert run.tags["sweep"] == "tiny" and run.tags["seed"] in {"0", "1"}
        assert run.tags["activation"] == run.tags["axis.model.activation"] and run.tags["model"] == "convnet4"
        assert run.name == f"convnet4-{run.tags['activation']}-nolrn-ovl-nopca-noaug-torchinit-s{run.tags['seed']}"
        assert run.tags["variant"] == f"convnet4-{run.tags['activation']}-nolrn-ovl-nopca-noaug-torchinit"
        assert 0 < run.metrics["test_err"] < 100
    grid_yaml = MlflowClient(uri).download_artifacts(parents[0].run_id, "grid.yaml")
    assert "model.activation" in Path(grid_yaml).read_text()

    sw = claims.open_sweep(G.load(path), url, uri)
    trials = [t for ts in claims.trials_by_cell(sw).values() for t in ts]
    assert sorted(t.state.name for t in trials) == ["COMPLETE"] * 4
    assert {t.user_attrs["axis.model.activation"] for t in trials} == {"relu", "tanh"}

    assert run_sweep(path, url, uri) == 0  # again: everything is done, nothing runs
    assert len(child_runs(uri)) == 4
    assert "  -> " not in capsys.readouterr().out


def test_sigterm_then_kill_9_mid_cell_and_the_same_command_finishes_only_the_rest(tmp_path, real_cifar):
    """Interrupted twice, as a scheduler and then the OOM killer would. SIGTERM: Lightning turns it
    (and Ctrl-C) into exit 1; the sweep records its parent and the cell KILLED, says so in one line
    and exits 130. kill -9: nothing is recorded, the cell stays RUNNING. Each time the same command
    continues the interrupted cell in its own run (no duplicate, no orphan) and finishes the rest."""
    path = grid_file(tmp_path, real_cifar, epochs=2, images=1024)
    url, uri = stores(tmp_path)
    command = [sys.executable, "-m", "harness.cli", "sweep", str(path), "--storage", url, "--tracking-uri", uri]
    checkpoints = tmp_path / "checkpoints"

    def wait_for(ready, proc: subprocess.Popen) -> None:
        deadline = time.time() + 300
        while not ready() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.1)

    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: list(checkpoints.glob("*/last.ckpt")), proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == "harness: interrupted; the same command again continues where it stopped"
    parent = tracking.find_runs(uri, "tiny", "tags.sweep_role = 'parent'")[0]
    (terminated,) = [r for r in child_runs(uri) if r.status == "KILLED"]
    assert parent.status == "KILLED" and terminated.tags["failure_reason"] == "interrupted"

    # Again, killed once another cell has checkpointed its first epoch: mid-cell, with work to continue.
    log = open(tmp_path / "sweep.log", "w")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    wait_for(lambda: len(list(checkpoints.glob("*/last.ckpt"))) >= 2, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = [r for r in child_runs(uri) if r.status == "RUNNING"]
    assert len(killed) == 1, (tmp_path / "sweep.log").read_text()[-3000:]
    assert [r.run_id for r in child_runs(uri) if r.status == "FINISHED"] == [terminated.run_id]  # continued, finished

    assert run_sweep(path, url, uri) == 0
    finished = assert_each_cell_finished_once(path, uri)
    assert len(child_runs(uri)) == 4  # each interrupted cell continued its own run: no duplicate, no orphan
    continued = MlflowClient(uri).get_metric_history(killed[0].run_id, "train_err")
    assert {killed[0].run_id, terminated.run_id} <= {r.run_id for r in finished}
    assert sorted(m.step for m in continued) == [1, 2]


def test_a_worker_killed_under_workers_2_frees_its_cell_at_once(tmp_path, real_cifar):
    """The second worker is the one whose death the coordinator did not see while it waited on the
    first: unreaped, it stayed a zombie that looked alive, so its cell waited out the 2-minute
    heartbeat limit ("silent ... (no heartbeat)"), not the dead-process check."""
    path = grid_file(tmp_path, real_cifar, epochs=2, images=1024)
    url, uri = stores(tmp_path)
    log = tmp_path / "sweep.log"
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "sweep", str(path), "--workers", "2",
                             "--storage", url, "--tracking-uri", uri], stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline, victim = time.time() + 300, None
    while victim is None and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
        workers = sorted(int(pid) for pid in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split())
        for run in child_runs(uri) if len(workers) == 2 else []:
            mid_cell = run.status == "RUNNING" and (tmp_path / "checkpoints" / run.run_id / "last.ckpt").is_file()
            if mid_cell and run.tags.get("worker", "").endswith(f":{workers[-1]}"):
                victim = workers[-1], run.run_id
    assert victim, log.read_text()[-3000:]
    os.kill(victim[0], signal.SIGKILL)
    assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    assert "whose process has exited; the cell is free again" in log.read_text()
    finished = assert_each_cell_finished_once(path, uri)
    assert victim[1] in {r.run_id for r in finished} and len(child_runs(uri)) == 4  # continued, not redone


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_two_workers_share_the_study_and_run_no_cell_twice(tmp_path, real_cifar, database, request):
    path = grid_file(tmp_path, real_cifar)
    if database == "postgres":
        new_database = request.getfixturevalue("postgres")
        url, uri = new_database("optuna"), new_database("mlflow")
    else:
        url, uri = stores(tmp_path)
    assert run_sweep(path, url, uri, "--workers", "2") == 0
    finished = assert_each_cell_finished_once(path, uri)
    assert len(child_runs(uri)) == 4
    assert len({r.tags["worker"] for r in finished}) == 2  # both worked, on different cells
    sw = claims.open_sweep(G.load(path), url, uri)
    for cell_trials in claims.trials_by_cell(sw).values():
        assert [t.state.name for t in cell_trials].count("COMPLETE") == 1


def test_diverging_cell_fails_with_its_reason_and_is_retried_next_time(tmp_path, real_cifar, capsys):
    path = grid_file(tmp_path, real_cifar, axes="{optim.lr: [0.05, 1.0e+8]}", seeds="[0]",
                     epochs=2)
    url, uri = stores(tmp_path)
    assert run_sweep(path, url, uri) == 1  # not every cell finished
    out = capsys.readouterr().out
    assert "1/2 done, 0 running, 0 left, 1 failed" in out and "not finished: " in out
    runs = {r.tags["axis.optim.lr"]: r for r in child_runs(uri)}
    assert runs["0.05"].status == "FINISHED"
    assert runs["100000000.0"].status == "FAILED" and runs["100000000.0"].tags["failure_reason"] == "diverged"
    assert "training loss became" in runs["100000000.0"].tags["failure_message"]
    parent = tracking.find_runs(uri, "tiny", "tags.sweep_role = 'parent'")[0]
    assert parent.status == "FAILED" and parent.tags["cells_finished"] == "1"

    assert run_sweep(path, url, uri) == 1  # the failed cell runs again; the finished one does not
    statuses = sorted((r.tags["axis.optim.lr"], r.status) for r in child_runs(uri))
    assert statuses == [("0.05", "FINISHED"), ("100000000.0", "FAILED"), ("100000000.0", "FAILED")]


def test_missing_data_exits_2_before_any_store_exists(tmp_path, capsys):
    path = grid_file(tmp_path, tmp_path / "nowhere.zip")
    url, uri = f"sqlite:///{tmp_path}/optuna.db", f"sqlite:///{tmp_path}/mlflow.db"
    assert run_sweep(path, url, uri) == 2
    assert "nowhere.zip" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.db"))


def test_until_resolved_adds_rounds_of_seeds_then_a_second_run_adds_nothing(tmp_path, real_cifar, capsys):
    """A trick with no claim from the paper and two seeds is almost never resolved by its first look
    (a t-interval on one degree of freedom at the spent level is very wide): the rule adds seed 2,
    with the full model's, and stops at the cap of 3."""
    path = grid_file(tmp_path, real_cifar, axes="{data.split_seed: [0, 1]}")
    path.write_text(path.read_text().replace("design: factorial", "design: leave_one_out"))
    url, uri = stores(tmp_path)
    assert run_sweep(path, url, uri, "--until-resolved", "--max-seeds", "3") == 0
    out = capsys.readouterr().out
    assert "until resolved: one more seed for 1 unresolved trick(s), with the full model's: data.split_seed=1 seed 2" in out
    assert "data.split_seed=1: 3 seeds, max seeds" in out or "data.split_seed=1: 3 seeds, effect" in out
    finished = sorted((r.tags["trick"], r.tags["seed"]) for r in child_runs(uri) if r.status == "FINISHED")
    assert finished == [("baseline", "0"), ("baseline", "1"), ("baseline", "2"),
                        ("data.split_seed", "0"), ("data.split_seed", "1"), ("data.split_seed", "2")]
    parent = tracking.find_runs(uri, "tiny", "tags.sweep_role = 'parent'")[0]
    recorded = yaml.safe_load(Path(MlflowClient(uri).download_artifacts(parent.run_id, "grid.yaml")).read_text())
    assert recorded["added_seeds"] == {"data.split_seed=1": [2]} and recorded["until_resolved"] == {"max_seeds": 3}
    assert run_sweep(path, url, uri, "--until-resolved", "--max-seeds", "3") == 0
    assert "until resolved: one more seed" not in capsys.readouterr().out
    assert len(child_runs(uri)) == 6
    # a plain run of the same sweep keeps what the rounds added (and adds nothing); another N is refused
    assert run_sweep(path, url, uri) == 0 and len(child_runs(uri)) == 6
    assert run_sweep(path, url, uri, "--until-resolved", "--max-seeds", "4") == 2
    assert "--max-seeds 4: sweep tiny has added seeds under --max-seeds 3" in capsys.readouterr().err
    # the report reads the rule from the recorded grid: each trick's seeds and why it stopped
    assert cli.main(["report", "tiny", "--tracking-uri", uri, "--storage", url, "--out", str(tmp_path / "reports")]) == 0
    table = (tmp_path / "reports" / "tiny" / "tricks.md").read_text()
    assert "| 3, stopped: max seeds |" in table or "| 3, stopped: effect |" in table
    assert "--until-resolved --max-seeds 3" in (tmp_path / "reports" / "tiny" / "section.md").read_text()


def test_workers_share_the_cpus_this_process_may_use_and_get_a_gpu_each(monkeypatch):
    """`--workers N`: threads from the CPU affinity (a SLURM or container limit), not the machine's
    count; GPUs dealt one per worker, round-robin (the device count faked: no GPU here)."""
    import torch

    from harness import sweep

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5})
    assert sweep.worker_layout(3) == (2, ["0", "1", "0"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-a, GPU-b,GPU-c")  # the ones this process was given
    assert sweep.worker_layout(4) == (1, ["GPU-a", "GPU-b", "GPU-c", "GPU-a"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # none
    assert sweep.worker_layout(2)[1] == [None, None]
    monkeypatch.undo()
    # a real affinity limit: one CPU of this machine's
    one = subprocess.run(["taskset", "-c", "0", sys.executable, "-c",
                          "from harness.sweep import worker_layout; print(worker_layout(1)[0])"],
                         capture_output=True, text=True, check=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert one.stdout.strip() == "1"


def test_a_dry_run_says_that_workers_sharing_the_measured_cores_take_as_long(monkeypatch):
    from harness import plan

    monkeypatch.setattr(plan.os, "cpu_count", lambda: 2)
    assert plan._with_workers(3600, 1, 2) == ""
    # calibrated on both cores: two workers here split them; on two machines they halve the time
    assert plan._with_workers(3600, 2, 2) == ("; 2 workers on these 2 cores share the cores it was measured on, so "
                                              "take about as long (`harness bench` times the split), 30m00s on 2 "
                                              "such machines")
    assert plan._with_workers(3600, 2, 1) == ", 30m00s with 2 workers on cores of their own"
