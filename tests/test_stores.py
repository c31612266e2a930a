"""Stores under concurrency and abuse: processes that create a new store together, a store whose
creation was cut off, a file that is not a store, places that cannot be written. Every bad input
exits 2 with one line, before anything is written. No Lightning is imported here."""

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from harness import claims, cli, stores, tracking
from harness import grid as G
from conftest import fresh_store, worker_processes

GRID = """
name: race
preset: cifar_convnet4
design: factorial
axes: {model.activation: [relu, tanh]}
seeds: [0, 1]
"""
REPEATS, PROCESSES = 5, 4
ROOT = Path(__file__).parents[1]


def _grid(tmp_path, settings: str = ""):
    path = tmp_path / "race.yaml"
    path.write_text(GRID + f"set:\n  tracking.artifact_root: {tmp_path / 'artifacts'}\n" + settings)
    return path


def _race(stores: list[tuple[str, str, str]], barrier, results, bare: bool) -> None:
    """In each fresh store in turn, at the same moment as the others: open the sweep (which creates
    both stores), then work as a worker does, with each claimed cell's training left out: its run
    started, its trial completed, its run FINISHED. `bare`: first make an SQLite tracking store as
    MLflow's own tools do (`mlflow ui`, a bare MlflowClient), outside harness's lock."""
    errors = []
    for path, storage_url, tracking_uri in stores:
        barrier.wait()
        try:
            if bare and tracking_uri.startswith("sqlite"):
                MlflowClient(tracking_uri).search_experiments()
            sw = claims.open_sweep(G.load(path), storage_url, tracking_uri)
            while (claimed := claims.claim_next(sw)) is not False:
                if claimed is True:
                    time.sleep(0.1)
                    continue
                cell, trial_id = claimed
                tags = {"sweep_parent": sw.parent_id, "cell": cell.key,
                        "optuna_trial": str(sw.storage.get_trial_number_from_id(trial_id))}
                run_id = tracking.start_run(tracking_uri, sw.grid.name, "", cell.name, {}, tags, "", sw.parent_id)
                assert claims.end_trial(sw, trial_id, TrialState.COMPLETE, 0.0)
                tracking.end_run(tracking_uri, run_id, "FINISHED")
        except Exception as err:  # noqa: BLE001 - every failure is the finding
            errors.append(f"{tracking_uri}: {type(err).__name__}: {err}")
    results.put(errors)


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_processes_that_create_a_new_store_together_all_succeed(tmp_path, database, request):
    """4 processes, 5 fresh stores each (10 before issue 21 cut the suite to minutes): before the
    creation lock, 4 of 4 tries of 10 stores on SQLite had one or
    more exit 1 (`alembic_version` UNIQUE, `table study_directions already exists`). On SQLite one
    of them makes each tracking store as MLflow's own tools do, outside the lock: before harness
    made a store beside the path and linked it in, a harness command beside a bare MlflowClient
    failed 3 of 3 tries (`table registered_models already exists`)."""
    stores = []
    for i in range(REPEATS):
        folder = tmp_path / str(i)
        folder.mkdir()
        if database == "sqlite":
            urls = f"sqlite:///{folder}/optuna.db", f"sqlite:///{folder}/mlflow.db"
        else:
            new_database = request.getfixturevalue("postgres")
            # the README's plain postgresql:// (psycopg 3) for Optuna, +psycopg2 for MLflow: both drivers
            optuna_url = new_database(f"race_optuna_{i}_").replace("postgresql+psycopg2://", "postgresql://")
            urls = optuna_url, new_database(f"race_mlflow_{i}_")
        stores.append((_grid(folder), *urls))
    ctx = worker_processes()
    barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(stores, barrier, results, i == 0)) for i in range(PROCESSES)]
    for p in procs:
        p.start()
    errors = [e for _ in procs for e in results.get(timeout=600)]
    for p in procs:
        p.join(timeout=60)
    assert errors == [] and [p.exitcode for p in procs] == [0] * PROCESSES
    for path, _, tracking_uri in stores:
        runs = tracking.find_runs(tracking_uri, "race")
        assert len([r for r in runs if r.tags.get("sweep_role") == "parent"]) == 1
        finished = [r.tags["cell"] for r in runs if r.status == "FINISHED"]
        assert sorted(finished) == sorted(c.key for c in G.load(path).cells)  # each cell once


def _half_made(db, killed_s_ago: float = 60.0) -> None:
    """A store as MLflow leaves it when killed during its first migration (seen here with kill -9
    1.6 s into a new store): the initial tables, the first migration's column added, its version
    not yet written. MLflow itself then fails on every call: 'duplicate column name: step'. Its
    file last written `killed_s_ago` seconds ago (0: a creation still under way)."""
    import sqlalchemy
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

    engine = sqlalchemy.create_engine(f"sqlite:///{db}")
    InitialBase.metadata.create_all(engine)
    engine.dispose()
    with sqlite3.connect(db) as con:
        con.execute("ALTER TABLE metrics ADD COLUMN step BIGINT DEFAULT '0' NOT NULL")
    os.utime(db, (time.time() - killed_s_ago,) * 2)


def test_a_store_whose_creation_was_cut_off_is_made_again(tmp_path):
    db = tmp_path / "mlflow.db"
    _half_made(db)
    with pytest.raises(Exception, match="duplicate column name: step"):
        MlflowClient(f"sqlite:///{db}").search_experiments()  # what every command met before
    os.utime(db, (time.time() - 60,) * 2)  # that try wrote to it; then nothing did for a minute
    uri = f"sqlite:///{db}"
    run_id = tracking.start_run(uri, "again", str(tmp_path / "artifacts"), "r", {"a": 1}, {}, "x: 1\n")
    assert tracking.run_status(uri, run_id) == "RUNNING"


@pytest.mark.parametrize("reads_before", [1, 2, 3])
def test_a_store_another_process_finishes_making_between_two_reads_is_used(tmp_path, monkeypatch, reads_before):
    """The CI of stop 39: two Slurm tasks opened one new store; one read it half made, and its
    next read, after the other task had finished making it, found the Default experiment and took
    it for an old store ('schema version dc11669786a5, not MLflow dc11669786a5's, and it holds 1
    experiments'). Here the other process finishes (the file replaced by a complete store, as its
    commit does at once) after this process's first, second or third read of the file."""
    db, made_elsewhere = tmp_path / "mlflow.db", tmp_path / "complete.db"
    _half_made(db)
    MlflowClient(f"sqlite:///{made_elsewhere}").search_experiments()  # a complete store, Default experiment in
    reads, read = [], stores.sqlite_tables

    def read_then_maybe_the_other_finishes(path, count=()):
        tables = read(path, count)
        reads.append(path)
        if len(reads) == reads_before:
            os.replace(made_elsewhere, db)
        return tables

    monkeypatch.setattr(stores, "sqlite_tables", read_then_maybe_the_other_finishes)
    uri = f"sqlite:///{db}"
    run_id = tracking.start_run(uri, "shared", str(tmp_path / "artifacts"), "r", {"a": 1}, {}, "x: 1\n")
    assert len(reads) >= reads_before and not made_elsewhere.exists()
    assert tracking.run_status(uri, run_id) == "RUNNING"
    assert sorted(e.name for e in MlflowClient(uri).search_experiments()) == ["Default", "shared"]


def test_a_store_that_mlflow_itself_is_still_making_is_waited_for_not_made_again(tmp_path):
    """`mlflow ui` or a bare MlflowClient makes a store without harness's lock (the Slurm test's own
    client did, beside its array tasks). A half-made file still being written is its maker's:
    harness waits for it, where removing it would pull the store from under that maker."""
    import threading

    db, made_elsewhere = tmp_path / "mlflow.db", tmp_path / "complete.db"
    MlflowClient(f"sqlite:///{made_elsewhere}").create_experiment("the maker's")
    _half_made(db, killed_s_ago=0)
    finish = threading.Timer(2.0, os.replace, (made_elsewhere, db))  # its maker finishes 2 s later
    finish.start()
    uri = f"sqlite:///{db}"
    try:
        tracking.start_run(uri, "shared", str(tmp_path / "artifacts"), "r", {"a": 1}, {}, "x: 1\n")
    finally:
        finish.join()
    assert sorted(e.name for e in MlflowClient(uri).search_experiments()) == ["Default", "shared", "the maker's"]


def test_a_store_made_through_a_symlink_over_an_empty_file_keeps_the_link_and_the_files_mode(tmp_path):
    """A lab's store set up in advance: a group-writable empty file, named through a symlink. It is
    made where the link points, keeping the file's mode (the new store is made beside it and put in
    its place: without care the link became a plain file, and the mode 0644)."""
    target = tmp_path / "shared" / "mlflow.db"
    target.parent.mkdir()
    target.touch()
    target.chmod(0o664)
    os.utime(target, (time.time() - 3600,) * 2)  # set up an hour ago: nobody is making it
    link = tmp_path / "mlflow.db"
    link.symlink_to(target)
    run_id = tracking.start_run(f"sqlite:///{link}", "shared", str(tmp_path / "artifacts"), "r", {}, {}, "x: 1\n")
    assert link.is_symlink() and target.stat().st_size > 0 and oct(target.stat().st_mode & 0o777) == "0o664"
    assert tracking.run_status(f"sqlite:///{target}", run_id) == "RUNNING"
    assert [p.name for p in target.parent.iterdir()] == ["mlflow.db"]  # nothing left of its making


def test_a_half_made_store_that_holds_runs_is_named_and_never_touched(tmp_path, capsys, real_cifar):  # real_cifar: decoded before its lines are counted
    db = tmp_path / "mlflow.db"
    _half_made(db)
    with sqlite3.connect(db) as con:
        con.execute("INSERT INTO experiments (experiment_id, name, lifecycle_stage) VALUES (1, 'kept', 'active')")
    before = db.read_bytes()
    grid = _grid(tmp_path)
    args = ["--storage", f"sqlite:///{tmp_path}/optuna.db", "--tracking-uri", f"sqlite:///{db}"]
    assert cli.main(["sweep", str(grid), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds 1 experiments and 0 runs" in err and "mlflow db upgrade" in err
    assert db.read_bytes() == before and not (tmp_path / "optuna.db").exists()


@pytest.mark.parametrize("content", [b"", os.urandom(4096)], ids=["empty", "random_bytes"])
def test_a_store_file_that_is_not_a_store_exits_2_and_nothing_is_written(tmp_path, capsys, monkeypatch, content,
                                                                        cifar_sources):
    monkeypatch.chdir(tmp_path)  # the default stores: mlruns/mlflow.db, mlruns/optuna.db
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("HARNESS_SWEEP_STORAGE", raising=False)
    db = tmp_path / "mlruns" / "mlflow.db"
    db.parent.mkdir()
    db.write_bytes(content)
    grid = _grid(tmp_path, f"  data.source: {cifar_sources['zip']}\n  data.val_size: 10\n")
    commands = [["report"], ["export", "race"], ["train", "--resume", "0123abcd"]]
    if content:  # an empty file is where a writer may make a new store; a file of other bytes is not
        commands += [["sweep", "--dry-run", str(grid)], ["sweep", str(grid)]]
    else:  # a store yet to be made: every cell to do
        assert cli.main(["sweep", "--dry-run", str(grid), "--calibrate-steps", "1"]) == 0
        assert "estimate:" in capsys.readouterr().out
    for command in commands:
        assert cli.main(command) == 2, command
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and ("not an SQLite database" in err if content else "no tracking store" in err)
    assert db.read_bytes() == content
    assert sorted(p.name for p in db.parent.iterdir()) == ["mlflow.db"] and not (tmp_path / "reports").exists()


def test_places_that_cannot_be_written_exit_2_before_anything_exists(tmp_path, capsys, cifar_sources):
    """A folder under a regular file cannot be made, even by root (os.access says yes to root for
    any permission bits): the way to make an unwritable place that holds for every user."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    bad = blocker / "sub"
    good = {"storage": f"sqlite:///{tmp_path}/optuna.db", "tracking": f"sqlite:///{tmp_path}/mlflow.db"}
    data = [f"data.source={cifar_sources['zip']}", "data.val_size=10"]
    run = [*data, f"tracking.uri={good['tracking']}", f"tracking.artifact_root={tmp_path}/artifacts",
           f"trainer.checkpoint_dir={tmp_path}/checkpoints"]
    grid = str(_grid(tmp_path, f"  data.source: {cifar_sources['zip']}\n  data.val_size: 10\n"))
    stores = ["--storage", good["storage"], "--tracking-uri", good["tracking"]]
    cases = {
        "tracking.artifact_root": ["train", *run, f"tracking.artifact_root={bad}"],
        "trainer.checkpoint_dir": ["train", *run, f"trainer.checkpoint_dir={bad}"],
        "tracking.artifact_root ": ["sweep", grid, f"tracking.artifact_root={bad}", *stores],
        "trainer.checkpoint_dir ": ["sweep", grid, f"trainer.checkpoint_dir={bad}", *stores],
        "--storage": ["sweep", grid, "--storage", f"sqlite:///{bad}/optuna.db", "--tracking-uri", good["tracking"]],
        "tracking store": ["sweep", grid, "--storage", good["storage"], "--tracking-uri", f"sqlite:///{bad}/m.db"],
        "--out": ["export", "race", "--out", str(bad / "race.runs.zip"), "--tracking-uri", good["tracking"]],
    }
    for key, command in cases.items():
        assert cli.main(command) == 2, command
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and key.strip() in err and "a_file is a file, not a folder" in err, err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "race.yaml"], key  # nothing written

    # a store that holds a sweep: the report's --out is checked before anything is read or written
    claims.open_sweep(G.load(grid), good["storage"], good["tracking"])
    assert cli.main(["report", "--out", str(bad), "--tracking-uri", good["tracking"]]) == 2
    assert "--out" in capsys.readouterr().err


def test_report_of_a_store_without_a_sweep_and_resume_of_an_unknown_run_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert cli.main(["train", "--resume", "0123abcd"]) == 2  # no store at all: none is made
    assert "no tracking store" in capsys.readouterr().err and not (tmp_path / "mlruns").exists()
    uri = "sqlite:///mlruns/mlflow.db"
    tracking.start_run(uri, "harness", "mlruns", "a-single-run", {"a": 1}, {}, "a: 1\n")  # `harness train`'s kind
    assert cli.main(["report"]) == 2
    assert "no sweep in" in capsys.readouterr().err and not (tmp_path / "reports").exists()
    assert cli.main(["train", "--resume", "0123abcd"]) == 2
    assert "--resume 0123abcd: no such run" in capsys.readouterr().err


def test_a_run_from_a_dirty_checkout_records_its_diff(tmp_path, monkeypatch):
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "train.py").write_text("lr = 0.01\n")
    subprocess.run([*git, "add", "train.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    sha, diff = tracking.git_state(repo)
    assert len(sha) == 40 and diff == ""
    (repo / "train.py").write_text("lr = 0.02\n")
    dirty, diff = tracking.git_state(repo)
    assert dirty == sha + "+dirty" and "-lr = 0.01\n+lr = 0.02" in diff
    assert tracking.git_state(tmp_path) == ("unknown", "")  # not a checkout

    monkeypatch.setattr(tracking, "_code_state", lambda: (dirty, diff))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run_id = tracking.start_run(uri, "harness", str(tmp_path / "artifacts"), "r", {}, {}, "a: 1\n")
    assert tracking.artifact_bytes(uri, run_id, tracking.GIT_DIFF_ARTIFACT).decode() == diff

    # a checkout carrying data (a 3 MiB diff): its head is kept, and the run says how long it was
    huge = diff * (3 * tracking.MAX_DIFF_CHARS // len(diff))
    monkeypatch.setattr(tracking, "_code_state", lambda: (dirty, huge))
    run_id = tracking.start_run(uri, "harness", str(tmp_path / "artifacts"), "r2", {}, {}, "a: 1\n")
    kept = tracking.artifact_bytes(uri, run_id, tracking.GIT_DIFF_ARTIFACT).decode()
    assert kept.splitlines()[1:3] == huge.splitlines()[:2] and len(kept) < tracking.MAX_DIFF_CHARS + 200
    (run,) = [r for r in tracking.find_runs(uri, "harness") if r.run_id == run_id]
    assert run.tags["git_diff_truncated"] == f"{len(huge):,} characters, the first {tracking.MAX_DIFF_CHARS:,} kept"


def test_a_store_named_by_mistake_is_refused_and_never_changed(tmp_path, capsys, cifar_sources):
    """Found by a red-team run: a database that is not MLflow's was taken for a store whose creation
    was cut off and deleted; flags given the other way round replaced every Optuna trial; an
    export's --out overwrote the tracking store; a server that does not answer gave a traceback
    (or, over HTTP, minutes of silence) after the other store had been created."""
    grid = str(_grid(tmp_path, f"  data.source: {cifar_sources['zip']}\n  data.val_size: 10\n"))
    storage_url, tracking_uri = f"sqlite:///{tmp_path}/optuna.db", f"sqlite:///{tmp_path}/mlflow.db"
    claims.open_sweep(G.load(grid), storage_url, tracking_uri)  # a real pair of stores holding a sweep
    precious = tmp_path / "precious.db"
    with sqlite3.connect(precious) as con:
        con.execute("CREATE TABLE notes (body TEXT)")
        con.executemany("INSERT INTO notes VALUES (?)", [("x",)] * 1000)
    files = {p: p.read_bytes() for p in (precious, tmp_path / "optuna.db", tmp_path / "mlflow.db")}
    runs_zip = str(ROOT / "reports" / "relu_speed_cpu" / "runs.zip")
    cases = {
        "not an MLflow tracking store": ["import", runs_zip, "--tracking-uri", f"sqlite:///{precious}"],
        "is an SQLite database but not an": ["sweep", grid, "--storage", tracking_uri, "--tracking-uri", storage_url],
        "exists and is not a runs file": ["export", "race", "--out", str(tmp_path / "mlflow.db"),
                                          "--tracking-uri", tracking_uri],
        "cannot connect": ["sweep", grid, "--storage", "postgresql+psycopg2://nobody@127.0.0.1:1/none",
                           "--tracking-uri", f"sqlite:///{tmp_path}/new/mlflow.db"],
        "Can't load plugin: sqlalchemy.dialects:foo": ["sweep", grid, "--storage", "foo://bar/baz",
                                                        "--tracking-uri", f"sqlite:///{tmp_path}/new/mlflow.db"],
        "are one file: give each its own": ["sweep", grid, "--storage", f"sqlite:///{tmp_path}/new/same.db",
                                            "--tracking-uri", f"sqlite:///{tmp_path}/new/same.db"],
        "no answer from the tracking server": ["sweep", grid, "--storage", f"sqlite:///{tmp_path}/new/optuna.db",
                                               "--tracking-uri", "http://127.0.0.1:1"],
        "is in the way": ["report", "--out", str(tmp_path / "out"), "--tracking-uri", tracking_uri],
        "not an Optuna storage": ["sweep", grid, "--storage", f"sqlite:///{precious}", "--tracking-uri", tracking_uri],
        "not an SQLite database": ["export", "race", "--out", str(tmp_path / "race.runs.zip"), "--tracking-uri",
                                   tracking_uri, "--storage", f"sqlite:///{tmp_path / 'noise.db'}"],
    }
    (tmp_path / "noise.db").write_bytes(os.urandom(4096))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "race").write_text("a file where the sweep's folder goes")
    capsys.readouterr()
    for message, command in cases.items():
        assert cli.main(command) == 2, command
        err = capsys.readouterr().err  # the data's one-time decoding lines, then the one error line
        assert "Traceback" not in err and message in err.strip().splitlines()[-1], err
    assert {p: p.read_bytes() for p in files} == files and not (tmp_path / "new").exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["race"]
    assert not (tmp_path / "race.runs.zip").exists()


def _in_full_folder(folder: Path, command: list[str]) -> subprocess.CompletedProcess:
    """`command` in a mount namespace of its own, where `folder` is a 64 KiB tmpfs already full: a
    real full disk, gone with the process."""
    fill = f'mount -t tmpfs -o size=64k tmpfs "{folder}" && {{ head -c 100000 /dev/zero > "{folder}/fill"; exec "$@"; }}'
    return subprocess.run(["unshare", "-m", "sh", "-c", fill, "sh", *command], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _assert_out_of_room(done: subprocess.CompletedProcess, where: str, what: str) -> None:
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert last.startswith(f"harness: out of room: {where}") and what in last, last


def test_a_full_disk_is_one_line_naming_the_place_and_what_and_leaves_no_run_running(tmp_path, cifar_sources):
    """Out of room under the artifact root (the sweep's parent writes its grid.yaml first), under
    the data cache (the first decoding), where a runs file is exported and where the Optuna storage
    is: exit 1, one line naming where and what, no run RUNNING, no half-written cache."""
    full = tmp_path / "full"
    full.mkdir()
    if subprocess.run(["unshare", "-m", "sh", "-c", f'mount -t tmpfs tmpfs "{full}"'], capture_output=True).returncode:
        pytest.skip("no mount namespace here: unshare -m needs root or CAP_SYS_ADMIN")
    grid = str(_grid(tmp_path, f"  data.source: {cifar_sources['zip']}\n  data.val_size: 10\n").rename(tmp_path / "g.yaml"))
    uri = fresh_store(tmp_path / "mlflow.db")
    harness = [sys.executable, "-m", "harness.cli"]
    cases = {
        "run race's grid.yaml": harness + ["sweep", grid, "--storage", f"sqlite:///{tmp_path}/optuna.db",
                                           "--tracking-uri", uri, f"tracking.artifact_root={full}/artifacts"],
        "the decoded images of cifar.zip (data.cache_dir)": harness + [
            "train", f"data.source={cifar_sources['zip']}", "data.val_size=10", f"data.cache_dir={full}/cache",
            f"tracking.uri={uri}", f"trainer.checkpoint_dir={tmp_path}/checkpoints"],
    }
    for what, command in cases.items():
        _assert_out_of_room(_in_full_folder(full, command), f"{full}/", f"No space left on device while writing {what}")
    # a sweep exported onto the full disk
    exported = fresh_store(tmp_path / "mlflow2.db")
    claims.open_sweep(G.load(grid), f"sqlite:///{tmp_path}/optuna2.db", exported)
    export = ["export", "race", "--out", f"{full}/race.runs.zip", "--tracking-uri", exported,
              "--storage", f"sqlite:///{tmp_path}/optuna2.db"]
    _assert_out_of_room(_in_full_folder(full, harness + export), f"{full}/race.runs.zip",
                        "No space left on device while writing the runs file of sweep race")
    # the Optuna storage on the full disk: SQLite says so without an errno, inside Optuna's error
    done = _in_full_folder(full, harness + ["sweep", grid, "--storage", f"sqlite:///{full}/optuna.db", "--tracking-uri", uri])
    _assert_out_of_room(done, f"--storage sqlite:///{full}/optuna.db", "database or disk is full")
    runs = tracking.find_runs(uri, "race") if "race" in tracking.experiment_names(uri) else []
    assert not [r for r in runs if r.status == "RUNNING"]
    assert not list(full.iterdir())  # the tmpfs went with its namespace; nothing was written under it here


def test_a_full_disk_mid_run_stops_it_resumable_naming_the_place_and_the_run(tmp_path, cifar_sources):
    """The checkpoint folder on a full disk, the store elsewhere: the run is the machine's failure,
    not its own, so it ends KILLED ('out of room', continued like an interrupted run), not FAILED,
    and the one line names where the room ran out and how to continue."""
    full = tmp_path / "full"
    full.mkdir()
    if subprocess.run(["unshare", "-m", "sh", "-c", f'mount -t tmpfs tmpfs "{full}"'], capture_output=True).returncode:
        pytest.skip("no mount namespace here: unshare -m needs root or CAP_SYS_ADMIN")
    uri = fresh_store(tmp_path / "mlflow.db")
    train = [sys.executable, "-m", "harness.cli", "train", "--preset", "cifar_convnet4", f"data.source={cifar_sources['zip']}",
             "data.train_subset=64", "data.val_size=10", "data.test_subset=64", "trainer.max_epochs=1",
             "trainer.progress_bar=false", f"tracking.uri={uri}", f"trainer.checkpoint_dir={full}/checkpoints"]
    done = _in_full_folder(full, train)
    [run] = tracking.find_runs(uri, "harness")
    _assert_out_of_room(done, f"{full}/checkpoints/{run.run_id}/", f"while training run {run.run_id} "
                                                                   f"(`harness train --resume {run.run_id}`")
    assert run.status == "KILLED" and run.tags["failure_reason"] == tracking.OUT_OF_ROOM


def test_sqlites_words_for_a_full_store_are_told_with_the_store():
    from harness.errors import RunOutOfRoom

    assert str(RunOutOfRoom("database or disk is full", "abc", "sqlite:///x/mlflow.db")).startswith(
        "sqlite:///x/mlflow.db: database or disk is full, while training run abc")
    assert str(RunOutOfRoom("/f/c.ckpt: No space left on device", "abc", "sqlite:///x.db")).startswith("/f/c.ckpt: No space")


def test_an_in_memory_sqlite_store_is_refused_before_anything_is_made(tmp_path, capsys, monkeypatch, cifar_sources):
    """Each process (and each pooled connection) would get an empty database of its own: workers
    would claim the same cells, and every run would be gone at exit."""
    monkeypatch.chdir(tmp_path)
    grid = str(_grid(tmp_path, f"  data.source: {cifar_sources['zip']}\n  data.val_size: 10\n"))
    for memory in ("sqlite://", "sqlite:///:memory:"):
        for command in (["sweep", grid, "--storage", memory], ["sweep", grid, "--dry-run", "--tracking-uri", memory],
                        ["submit", grid, "--storage", memory], ["export", "race", "--storage", memory],
                        ["import", "x.zip", "--tracking-uri", memory], ["train", f"tracking.uri={memory}", f"data.source={cifar_sources['zip']}"]):
            assert cli.main(command) == 2, command
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and f"{memory}: an in-memory SQLite database" in err, err
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite://")
    assert cli.main(["report"]) == 2 and "in-memory" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["race.yaml"]  # no store, lock or artifact folder


def test_a_store_left_with_a_hot_journal_is_rolled_back_and_used(tmp_path, capsys, monkeypatch):
    """A writer killed mid-transaction (kill -9 while MLflow made its tables) leaves `<db>-journal`;
    the next reader must roll it back, which a read-only connection cannot do."""
    from conftest import fresh_store
    from harness import stores

    uri = fresh_store(tmp_path / "mlflow.db")
    db = tmp_path / "mlflow.db"
    killed = ("import os, sqlite3, sys\n"
              "con = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
              "con.execute('PRAGMA cache_size=1')\n"  # the changed pages reach the file: only the journal undoes them
              "con.execute('BEGIN')\n"
              "con.executemany('INSERT INTO experiments (name, lifecycle_stage) VALUES (?, ?)',"
              " [(f'x{i}', 'active') for i in range(3000)])\n"
              "os.kill(os.getpid(), 9)\n")
    assert subprocess.run([sys.executable, "-c", killed, str(db)]).returncode == -9
    assert Path(f"{db}-journal").stat().st_size > 0
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert cli.main(["train", "--resume", "0123abcd"]) == 2  # past the store, to the run it names
    assert "--resume 0123abcd: no such run" in capsys.readouterr().err
    assert not Path(f"{db}-journal").exists()
    assert stores.sqlite_tables(db, count=("experiments",))["experiments"] == [(1,)]  # the Default one, as before
