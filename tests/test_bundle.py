"""`harness export` / `harness import` and reports from committed runs files, on real SQLite MLflow
stores filled with the synthetic sweeps of test_report (chosen metrics, a failed cell)."""

import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from harness import bundle, cli, tracking
from conftest import fresh_store, wait_for_ui
from test_report import SPEED, TRICKS, fill, speed_metrics, trick_metrics


@pytest.fixture(scope="module")
def made_once(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """A store holding two sweeps, and their runs files exported from it: made once per module."""
    root = tmp_path_factory.mktemp("source")
    uri = fresh_store(root / "src" / "mlflow.db")
    for sub, text, metrics in (("t", TRICKS, trick_metrics), ("s", SPEED, speed_metrics)):
        (root / sub).mkdir()
        fill(root / sub, uri, text, metrics)
    failed = next(r for r in tracking.find_runs(uri, "syn_tricks") if r.status == "FAILED")
    tracking.log_batch(uri, failed.run_id, points=[("train_loss", 3, 7, float("nan"))])  # as a diverged run logs
    files = {}
    for sweep in ("syn_tricks", "syn_speed"):
        files[sweep] = root / f"{sweep}.runs.zip"
        assert cli.main(["export", sweep, "--tracking-uri", uri, "--out", str(files[sweep])]) == 0
    return root / "src" / "mlflow.db", files


@pytest.fixture
def source(made_once, tmp_path) -> tuple[str, dict[str, Path]]:
    """The store and its runs files, copied for this test: it may change its copies. (The runs'
    artifacts stay in the module's folder, which no test writes.)"""
    db, files = made_once
    (tmp_path / "src").mkdir()
    shutil.copyfile(db, tmp_path / "src" / "mlflow.db")
    copies = {sweep: tmp_path / file.name for sweep, file in files.items()}
    for sweep, file in files.items():
        shutil.copyfile(file, copies[sweep])
    return f"sqlite:///{tmp_path}/src/mlflow.db", copies


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def history_text(uri: str, run_id: str, keys: list[str]) -> dict[str, list[tuple[int, int, str]]]:
    """Metric points with values as text, so that NaN equals NaN."""
    return {k: [(step, ms, repr(value)) for step, ms, value in v]
            for k, v in tracking.metric_points(uri, run_id, keys).items()}


def run_ids(uri: str, sweep: str) -> list[str]:
    return sorted(r.run_id for r in tracking.find_runs(uri, sweep))


def test_export_is_deterministic_and_plain(source, tmp_path):
    uri, files = source
    again = tmp_path / "again.zip"
    cli.main(["export", "syn_tricks", "--tracking-uri", uri, "--out", str(again)])
    assert again.read_bytes() == files["syn_tricks"].read_bytes()
    with zipfile.ZipFile(files["syn_tricks"]) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        runs = [json.loads(line) for line in archive.read("runs.jsonl").splitlines()]
        points = [json.loads(line) for line in archive.read("metrics.jsonl").splitlines()]
        names = archive.namelist()
    assert (manifest["format"], manifest["version"], manifest["runs"]) == ("harness-runs", 1, 1 + 9)
    assert runs[0]["parent_run_id"] is None and runs[0]["tags"]["sweep_role"] == "parent"
    assert {r["parent_run_id"] for r in runs[1:]} == {runs[0]["run_id"]}
    assert sorted(r["status"] for r in runs[1:]).count("FAILED") == 1
    # per cell: 3 epochs of train_err, val_err, train_time_s, and the final test_err
    assert len(points) == manifest["metric_points"] == 9 * (4 * 3 + 1) + 1  # 4 curves, the test error, the diverged run's NaN
    assert {"key": "train_loss", "step": 3, "timestamp": 7, "value": "NaN"} in [
        {k: p[k] for k in ("key", "step", "timestamp", "value")} for p in points]
    assert f"artifacts/{runs[0]['run_id']}/grid.yaml" in names
    assert sum(n.endswith("/config.yaml") for n in names) == 9


def test_import_round_trips_runs_histories_and_report_bytes(source, tmp_path):
    uri, files = source
    target = f"sqlite:///{tmp_path}/dst/mlflow.db"
    assert cli.main(["import", *map(str, files.values()), "--tracking-uri", target]) == 0
    for sweep in files:
        old = {r.run_id: r for r in tracking.find_runs(uri, sweep)}
        new = tracking.find_runs(target, sweep)
        assert len(new) == len(old)
        parent = next(r for r in new if r.tags.get("sweep_role") == "parent")
        for run in new:
            was = old[run.tags[tracking.SOURCE_TAG]]
            assert (run.name, run.status, run.params, run.start_ms, run.end_ms) == \
                   (was.name, was.status, was.params, was.start_ms, was.end_ms)
            assert history_text(target, run.run_id, sorted(was.metrics)) == \
                   history_text(uri, was.run_id, sorted(was.metrics))  # every step, time and value, NaN too
            if run is not parent:  # nested under the imported parent, as MLflow's UI reads it
                assert run.tags["mlflow.parentRunId"] == run.tags["sweep_parent"] == parent.run_id
        assert tracking.experiments(target)[sweep][1][tracking.KIND_TAG] == tracking.TRAINING_KIND
    assert (tmp_path / "dst" / "syn_speed").is_dir()  # artifacts beside the store, not in ./mlruns
    mine, theirs = tmp_path / "from_source", tmp_path / "from_import"
    cli.main(["report", "--tracking-uri", uri, "--out", str(mine)])
    cli.main(["report", "--tracking-uri", target, "--out", str(theirs)])
    assert tree(theirs) == tree(mine)  # tables, figures, README and the runs files themselves
    assert (mine / "syn_tricks" / "runs.zip").read_bytes() == files["syn_tricks"].read_bytes()


def test_every_committed_runs_file_describes_its_format_as_export_writes_it_today():
    """A runs file re-exported after import gives back its own bytes only if its member README is
    today's format text: a change to that text means re-exporting the committed files with it."""
    committed = sorted((Path(__file__).parents[1] / "reports").glob("*/runs.zip"))
    assert committed
    for path in committed:
        with zipfile.ZipFile(path) as archive:
            assert archive.read("README.md").decode() == bundle.FORMAT, path


def test_importing_twice_changes_nothing(source, tmp_path):
    uri, files = source
    target = fresh_store(tmp_path / "dst" / "mlflow.db")
    cli.main(["import", str(files["syn_speed"]), "--tracking-uri", target])
    first = run_ids(target, "syn_speed")
    db = Path(target.removeprefix("sqlite:///")).read_bytes()
    assert cli.main(["import", str(files["syn_speed"]), "--tracking-uri", target]) == 0
    assert run_ids(target, "syn_speed") == first and len(first) == 13
    assert Path(target.removeprefix("sqlite:///")).read_bytes() == db  # not one row written
    assert cli.main(["import", str(files["syn_speed"]), "--tracking-uri", uri]) == 0  # into its own origin
    assert len(run_ids(uri, "syn_speed")) == 13


def test_a_later_export_updates_the_imported_runs(source, tmp_path):
    """A sweep exported while a cell still ran, then again after: the second import finishes it."""
    uri, files = source
    target = fresh_store(tmp_path / "dst" / "mlflow.db")
    failed = next(r for r in tracking.find_runs(uri, "syn_tricks") if r.status == "FAILED")
    tracking.set_status(uri, failed.run_id, "RUNNING", None)
    early = tmp_path / "early.zip"
    cli.main(["export", "syn_tricks", "--tracking-uri", uri, "--out", str(early)])
    cli.main(["import", str(early), "--tracking-uri", target])
    tracking.log_batch(uri, failed.run_id, points=[("test_err", 4, 1, 42.0)])
    tracking.set_status(uri, failed.run_id, "FINISHED", failed.end_ms)
    late = tmp_path / "late.zip"
    cli.main(["export", "syn_tricks", "--tracking-uri", uri, "--out", str(late)])
    cli.main(["import", str(late), "--tracking-uri", target])
    copy = [r for r in tracking.find_runs(target, "syn_tricks") if r.tags[tracking.SOURCE_TAG] == failed.run_id]
    assert len(copy) == 1 and copy[0].status == "FINISHED" and copy[0].metrics["test_err"] == 42.0
    again = tmp_path / "again.zip"
    cli.main(["export", "syn_tricks", "--tracking-uri", target, "--out", str(again)])
    assert again.read_bytes() == late.read_bytes()  # an imported store exports the original ids
    # the older file again, into the store that has seen the cell finish, and into the origin: no step back
    for store in (target, uri):
        cli.main(["import", str(early), "--tracking-uri", store])
        run = [r for r in tracking.find_runs(store, "syn_tricks") if r.origin_id == failed.run_id]
        assert len(run) == 1 and run[0].status == "FINISHED" and run[0].metrics["test_err"] == 42.0


MISPLACED = {"escape": "../../../escaped.yaml", "absolute": "/etc/escaped.yaml", "backslash": "..\\escaped.yaml",
             "stray": "elsewhere.txt"}  # where a hostile file puts a member (grid.yaml's data)


BOMB = b"a: &a [x, x, x, x, x, x, x, x, x, x]\n" + b"".join(  # 10^7 values once its aliases are followed
    f"{b}: &{b} [{', '.join([f'*{a}'] * 10)}]\n".encode() for a, b in zip("abcdef", "bcdefg"))


# a test error the report would average: NaN (JSON's), below 0, a number as text, a bool (float(True) is 1.0)
BAD_ERROR_RATES = {"nan_err": b"NaN", "negative_err": b"-5", "text_err": b'"50"', "bool_err": b"true"}


@pytest.mark.parametrize("damage", ["truncated", "version", "not_zip", "missing_run", "status", "param", "lr", "seed", "no_lr", "bomb",
                                    "huge_step", "inf_value", *BAD_ERROR_RATES, "deep_json", "grid_bomb", "config_bomb", *MISPLACED])
def test_a_damaged_file_exits_2_and_writes_nothing(source, tmp_path, capsys, damage):
    """Each damage is one line naming the file, before anything is written. A member outside the
    format's places, or one that would expand past its cap (a zip bomb: 65 MiB of zeros in 65 KiB),
    is refused on the zip's directory alone."""
    _, files = source
    good, bad = files["syn_tricks"], tmp_path / "bad.zip"
    if damage == "truncated":
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif damage == "not_zip":
        bad.write_bytes(b"not a zip at all")
    else:
        with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
            for name in src.namelist():
                data = src.read(name)
                if name == "manifest.json" and damage == "version":
                    data = data.replace(b'"version": 1', b'"version": 99')
                if name == "runs.jsonl" and damage in ("status", "param"):  # well-formed, but MLflow would refuse it
                    data = data.replace(b'"FINISHED"', b'"BOGUS"', 1) if damage == "status" else \
                        data.replace(b'"model.lrn":', b'"model lrn!?":', 1)
                if name == "runs.jsonl" and damage == "lr":  # a setting the report computes with, not a number
                    data = re.sub(rb'"optim.lr": "[^"]*"', b'"optim.lr": "abc"', data, count=1)
                if name == "runs.jsonl" and damage == "no_lr":  # no rate at all
                    data = re.sub(rb'"optim.lr": "[^"]*", ', b'', data, count=1)
                if name == "runs.jsonl" and damage == "seed":  # the first child's seed, its param and its tag
                    data = re.sub(rb'"seed": "[^"]*"', b'"seed": "' + b"x" * 5000 + b'"', data, count=2)
                if name == "runs.jsonl" and damage == "missing_run":
                    data = b"\n".join(data.splitlines()[:-1]) + b"\n"
                if name == "metrics.jsonl" and damage == "huge_step":  # past a float: no integer step
                    data = data.replace(b'"step": ', b'"step": 1e400, "x": ', 1)
                if name == "metrics.jsonl" and damage == "inf_value":  # an error rate past a float's range
                    data = data.replace(b'"value": ', b'"value": 1e999, "x": ', 1)
                if name == "metrics.jsonl" and damage in BAD_ERROR_RATES:  # a test error the deltas would use
                    data = re.sub(rb'("key": "test_err", [^\n]*"value": )[^}]*', rb"\g<1>" + BAD_ERROR_RATES[damage], data,
                                  count=1)
                if name == "trials.jsonl" and damage == "deep_json":
                    data = b"[" * 100_000 + b"]" * 100_000 + b"\n"
                if name.endswith({"grid_bomb": "grid.yaml", "config_bomb": "config.yaml"}.get(damage, "?")):
                    data = BOMB
                if name.endswith("grid.yaml") and damage in MISPLACED:
                    name = MISPLACED[damage] if damage in ("absolute", "stray") else name.replace("grid.yaml", MISPLACED[damage])
                dst.writestr(name, data, zipfile.ZIP_DEFLATED)
            if damage == "bomb":
                run_id = json.loads(src.read("runs.jsonl").splitlines()[1])["run_id"]
                dst.writestr(f"artifacts/{run_id}/zeros.txt", bytes((bundle.MAX_MEMBER + (1 << 20))), zipfile.ZIP_DEFLATED)
    target = tmp_path / "dst" / "mlflow.db"
    # the good file first: nothing of it is written either
    assert cli.main(["import", str(files["syn_speed"]), str(bad), "--tracking-uri", f"sqlite:///{target}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err
    expected = {"version": "version 99", "bomb": f"expands to {bundle.MAX_MEMBER + (1 << 20):,} bytes; at most",
                "huge_step": "OverflowError", "inf_value": "is inf, past a float's range", "deep_json": "RecursionError", "grid_bomb": "grid.yaml: expands to more than",
                "config_bomb": "config.yaml: expands to more than", "lr": ": optim.lr: expected a finite number; got 'abc'",
                "no_lr": ": param optim.lr: missing (every cell's run records",
                "nan_err": "is nan: an error rate is a percent from 0 to 100", "negative_err": "is -5.0: an error rate is a percent from 0 to 100",
                "text_err": 'is "50", not a number', "bool_err": "is true, not a number",
                "seed": ": tag seed: expected an integer; got 'xxxxxxxxxxxxxxxxxxxx'... (5,000 characters)"}
    assert expected.get(damage, "is not where the format puts anything" if damage in MISPLACED
                        else "truncated or corrupt") in err
    assert not target.exists() and not (tmp_path / "dst").exists()


def test_a_store_whose_run_holds_a_setting_that_is_not_its_type_is_one_line_exit_2(source, tmp_path, capsys):
    """A store written by other hands (here SQL: MLflow never changes a param) may hold anything;
    the report reads every setting it computes with back as its type first, naming the run."""
    import sqlite3

    uri, _ = source
    run = next(r for r in tracking.find_runs(uri, "syn_speed") if r.tags.get("sweep_role") != "parent")
    with sqlite3.connect(uri.removeprefix("sqlite:///")) as con:
        assert con.execute("UPDATE params SET value = 'abc' WHERE key = 'optim.lr' AND run_uuid = ?",
                           (run.run_id,)).rowcount == 1
    assert cli.main(["report", "syn_speed", "--tracking-uri", uri, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"run {run.name}: optim.lr: expected a finite number" in err
    assert not (tmp_path / "out").exists()


def test_an_unwritable_store_or_a_name_clash_exits_2_and_writes_nothing(source, tmp_path, capsys):
    uri, files = source
    blocker = tmp_path / "a_file"
    blocker.write_text("not a database")
    assert cli.main(["import", str(files["syn_speed"]), "--tracking-uri", f"sqlite:///{blocker}/x/mlflow.db"]) == 2
    assert "a_file is a file, not a folder" in capsys.readouterr().err
    # a folder no file can be made in (/proc: root may write anywhere else): one line naming the lock
    assert cli.main(["import", str(files["syn_speed"]), "--tracking-uri", "sqlite:////proc/harness-test/mlflow.db"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "/proc/harness-test/mlflow.db.import-lock: cannot make this lock file" in err
    assert cli.main(["import", str(files["syn_speed"]), "--tracking-uri", f"sqlite:///{blocker}"]) == 2
    assert "not an SQLite database" in capsys.readouterr().err and blocker.read_text() == "not a database"
    # a store holding another sweep of the same name: refused, that store untouched
    other = fresh_store(tmp_path / "other" / "mlflow.db")
    (tmp_path / "o").mkdir()
    fill(tmp_path / "o", other, SPEED, speed_metrics)
    before = run_ids(other, "syn_speed")
    assert cli.main(["import", str(files["syn_speed"]), "--tracking-uri", other]) == 2
    assert "already holds another sweep named 'syn_speed'" in capsys.readouterr().err
    assert run_ids(other, "syn_speed") == before


def test_report_from_committed_runs_alone_equals_the_store(source, tmp_path):
    uri, _ = source
    from_store = tmp_path / "reports"
    cli.main(["report", "--tracking-uri", uri, "--out", str(from_store)])
    committed = tree(from_store)
    for path in from_store.rglob("*"):  # keep only the runs files, as a fresh clone has them
        if path.is_file() and path.name != "runs.zip":
            path.unlink()
    missing = f"sqlite:///{tmp_path}/none/mlflow.db"
    # the same report, and the same exit: 1, for the synthetic sweep's failed cell
    assert cli.main(["report", "--tracking-uri", missing, "--out", str(from_store)]) == 1
    assert tree(from_store) == committed
    assert not (tmp_path / "none").exists()  # no store created


def test_a_sweep_in_the_store_replaces_its_committed_file(source, tmp_path):
    uri, files = source
    reports = tmp_path / "reports"
    (reports / "syn_speed").mkdir(parents=True)
    (reports / "syn_speed" / "runs.zip").write_bytes(files["syn_speed"].read_bytes())
    (reports / "stale").mkdir()
    (reports / "stale" / "section.md").write_text("## stale\nfrozen text with no runs\n")
    local = fresh_store(tmp_path / "e" / "mlflow.db")
    (tmp_path / "t2").mkdir()
    fill(tmp_path / "t2", local, TRICKS, trick_metrics)  # the same grid re-run here: other runs
    cli.main(["report", "--tracking-uri", local, "--out", str(reports)])
    readme = (reports / "README.md").read_text()
    assert "## syn_speed" in readme and "## syn_tricks" in readme and "frozen text" not in readme
    local_parent = tracking.find_runs(local, "syn_tricks", "tags.sweep_role = 'parent'")[0].run_id
    assert f"parent run `{local_parent}`" in readme  # from the store, not from the exported file
    assert (reports / "syn_speed" / "runs.zip").read_bytes() == files["syn_speed"].read_bytes()


def test_a_later_export_of_a_running_sweep_brings_its_trials(source, tmp_path):
    """While a sweep runs its parent stays RUNNING; its Optuna trials tell which export is later."""
    _, files = source
    sweep = bundle.read(files["syn_speed"])
    sweep.parent.status, sweep.parent.end_time = "RUNNING", None
    trial = {"number": 0, "state": "RUNNING", "value": None, "user_attrs": {"cell": "abc"}}
    early = bundle.write(bundle.Bundle(sweep.sweep, {}, sweep.runs, [trial]), tmp_path / "early.zip")
    late = bundle.write(bundle.Bundle(sweep.sweep, {}, sweep.runs, [{**trial, "state": "COMPLETE", "value": 21.0},
                                                                    {**trial, "number": 1}]), tmp_path / "late.zip")
    target, again = fresh_store(tmp_path / "dst" / "mlflow.db"), tmp_path / "again.zip"
    for path in (early, late, early):  # the older file last: it must not take the trials back
        assert cli.main(["import", str(path), "--tracking-uri", target]) == 0
    cli.main(["export", "syn_speed", "--tracking-uri", target, "--out", str(again)])
    assert again.read_bytes() == late.read_bytes()


def test_an_imported_sweep_continued_here_exports_the_trials_it_came_with_and_those_run_here(source, tmp_path):
    """An imported parent keeps the trials it came with as an artifact; a sweep continued on this
    store runs a new study in this machine's storage. The export holds both, one history by start
    time; the same trial in both (a file back on the store it came from) once, as the live study has it."""
    import optuna

    _, files = source
    carried = bundle.read(files["syn_speed"]).trials
    target, storage = f"sqlite:///{tmp_path}/dst/mlflow.db", f"sqlite:///{tmp_path}/dst/optuna.db"
    assert cli.main(["import", str(files["syn_speed"]), "--tracking-uri", target]) == 0
    study = optuna.create_study(study_name="syn_speed", storage=storage)
    trial = study.ask()
    trial.set_user_attr("cell", "continued-here")
    study.tell(trial, 12.5)
    out = tmp_path / "out.zip"
    assert cli.main(["export", "syn_speed", "--tracking-uri", target, "--storage", storage, "--out", str(out)]) == 0
    trials = bundle.read(out).trials
    assert [t["number"] for t in trials] == list(range(len(carried) + 1))
    assert trials[-1]["user_attrs"] == {"cell": "continued-here"} and trials[-1]["value"] == 12.5
    assert [t["user_attrs"] for t in trials[:-1]] == [t["user_attrs"] for t in sorted(
        carried, key=lambda t: (t.get("datetime_start") is None, str(t.get("datetime_start"))))]

    running = {"number": 3, "state": "RUNNING", "value": None, "datetime_start": "2026-01-02T00:00:00",
               "user_attrs": {"cell": "a"}}
    done = {**running, "number": 0, "state": "COMPLETE", "value": 30.0}
    older = {**running, "datetime_start": "2026-01-01T00:00:00", "user_attrs": {"cell": "b"}}
    assert bundle.merge_trials([running, older], [done]) == [{**older, "number": 0}, {**done, "number": 1}]


def test_refusals_name_what_is_wrong(source, tmp_path, capsys):
    uri, files = source
    folder = tmp_path / "a_folder"
    folder.mkdir()
    assert cli.main(["export", "syn_speed", "--tracking-uri", uri, "--out", str(folder)]) == 2
    assert cli.main(["import", str(folder), "--tracking-uri", f"sqlite:///{tmp_path}/x/mlflow.db"]) == 2
    err = capsys.readouterr().err
    assert "a folder; name the file to write" in err and "a folder, not a runs file" in err
    # a deleted experiment keeps its name until purged: say so, write nothing
    target = fresh_store(tmp_path / "dst" / "mlflow.db")
    cli.main(["import", str(files["syn_speed"]), "--tracking-uri", target])
    experiment = tracking.experiments(target)["syn_speed"][0]
    tracking.client(target).delete_experiment(experiment)
    assert cli.main(["import", str(files["syn_speed"]), "--tracking-uri", target]) == 2
    assert "holds a deleted experiment named 'syn_speed'" in capsys.readouterr().err
    assert tracking.experiments(target).get("syn_speed") is None


def test_trials_with_infinite_values_travel(tmp_path):
    """A trial whose run logged no test error has the value inf: JSON has no inf, the file does."""
    parent = bundle.Run("p", None, "s", "FINISHED", 1, 2, {}, {"sweep_role": "parent"}, artifacts={"grid.yaml": b"{}"})
    trials = [{"number": 0, "state": "COMPLETE", "value": float("inf"), "user_attrs": {"score": float("nan")}}]
    path = bundle.write(bundle.Bundle("s", {}, [parent], [bundle.json_safe(t) for t in trials]), tmp_path / "s.zip")
    assert bundle.read(path).trials == [{"number": 0, "state": "COMPLETE", "value": "Infinity",
                                         "user_attrs": {"score": "NaN"}}]


def test_two_imports_at_once_create_each_run_once(source, tmp_path):
    _, files = source
    target = f"sqlite:///{tmp_path}/dst/mlflow.db"
    command = [sys.executable, "-m", "harness.cli", "import", *map(str, files.values()), "--tracking-uri", target]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert len(run_ids(target, "syn_tricks")) == 10 and len(run_ids(target, "syn_speed")) == 13
    assert any("10 created" in o for o in outputs) and any("10 unchanged" in o for o in outputs)


def test_ui_refuses_a_busy_port_and_stops_its_server(tmp_path):
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.listen()
        busy = subprocess.run([sys.executable, "-m", "harness.cli", "ui", "--port", str(port)],
                              capture_output=True, text=True, timeout=60)
    assert busy.returncode == 2 and f"127.0.0.1:{port} is in use" in busy.stderr
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    ui = subprocess.Popen([sys.executable, "-m", "harness.cli", "ui", "--port", str(port), "--uri", uri],
                          cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_ui(port, ui)
    server_group = [int(p) for p in os.listdir("/proc") if p.isdigit() and _pgid(int(p)) not in (None, os.getpgrp())
                    and _parent_chain_has(int(p), ui.pid)]
    assert server_group, "the MLflow server should run as a child of harness ui"
    ui.terminate()  # SIGTERM, as a scheduler or `kill` sends
    assert ui.wait(timeout=30) == 0
    time.sleep(1)
    assert not [p for p in server_group if _alive(p)], "server processes outlived harness ui"
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the closed connections linger in TIME_WAIT
        s.bind(("127.0.0.1", port))  # nobody listens there any more
        s.listen()


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _parent_chain_has(pid: int, ancestor: int) -> bool:
    while pid > 1:
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            return False
        if pid == ancestor:
            return True
    return False


class RunsCode:
    """A pickle that runs a command when loaded without weights_only: what a hostile checkpoint holds."""

    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_an_unfinished_runs_checkpoint_travels_to_where_the_sweep_looks_and_nothing_else_does(source, tmp_path,
                                                                                               monkeypatch, capsys):
    """`export --checkpoints` carries the last checkpoint of each KILLED or RUNNING run (by its
    exported id); `import` puts it under the copied run's id in the run's checkpoint folder (here
    the default, mlruns/checkpoints, relative to the working folder as the sweep reads it), and never
    over a checkpoint of that run that has moved on here. The round trip gives the same bytes; a
    checkpoint that would run code is refused before anything is written."""
    import torch

    uri, _ = source
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir(), there.mkdir()
    monkeypatch.chdir(here)
    runs = sorted((r for r in tracking.find_runs(uri, "syn_tricks") if r.tags.get("sweep_role") != "parent"),
                  key=lambda r: r.run_id)
    killed, finished = runs[0], next(r for r in runs[1:] if r.status == "FINISHED")
    tracking.set_status(uri, killed.run_id, "KILLED", killed.end_ms)
    for run in (killed, finished):  # a finished run's leftover checkpoint does not travel
        (here / "mlruns" / "checkpoints" / run.run_id).mkdir(parents=True)
        torch.save({"state_dict": {"w": torch.arange(3.0)}, "epoch": 2, "harness": {"stopped": ""}},
                   here / "mlruns" / "checkpoints" / run.run_id / "last.ckpt")
    carried = (here / "mlruns" / "checkpoints" / killed.run_id / "last.ckpt").read_bytes()

    plain, with_checkpoints = tmp_path / "plain.zip", tmp_path / "ckpt.zip"
    assert cli.main(["export", "syn_tricks", "--tracking-uri", uri, "--out", str(plain)]) == 0
    assert cli.main(["export", "syn_tricks", "--tracking-uri", uri, "--out", str(with_checkpoints), "--checkpoints"]) == 0
    assert "1 of 1 unfinished runs' checkpoints" in capsys.readouterr().out
    assert not [n for n in zipfile.ZipFile(plain).namelist() if n.startswith("checkpoints/")]
    with zipfile.ZipFile(with_checkpoints) as archive:
        members = [n for n in archive.namelist() if n.startswith("checkpoints/")]
        assert members == [f"checkpoints/{killed.run_id}/last.ckpt"]
        assert archive.read(members[0]) == carried

    monkeypatch.chdir(there)
    target = fresh_store(there / "mlflow.db")
    assert cli.main(["import", str(with_checkpoints), "--tracking-uri", target]) == 0
    assert "1 unfinished run(s) will continue from their carried checkpoint" in capsys.readouterr().out
    (copy,) = [r for r in tracking.find_runs(target, "syn_tricks") if r.origin_id == killed.run_id]
    restored = there / "mlruns" / "checkpoints" / copy.run_id / "last.ckpt"
    assert copy.status == "KILLED" and restored.read_bytes() == carried
    assert sorted(p.parent.name for p in (there / "mlruns" / "checkpoints").glob("*/last.ckpt")) == [copy.run_id]
    again = tmp_path / "again.zip"
    assert cli.main(["export", "syn_tricks", "--tracking-uri", target, "--out", str(again), "--checkpoints"]) == 0
    assert again.read_bytes() == with_checkpoints.read_bytes()  # the original ids, the same checkpoint

    restored.write_bytes(plain.read_bytes())  # the run trained on here (any newer file): the import leaves it
    assert cli.main(["import", str(with_checkpoints), "--tracking-uri", target]) == 0
    assert restored.read_bytes() == plain.read_bytes()

    hostile = tmp_path / "hostile.zip"
    with zipfile.ZipFile(with_checkpoints) as src, zipfile.ZipFile(hostile, "w") as dst:
        for name in src.namelist():
            if name.startswith("checkpoints/"):
                buffer = io.BytesIO()
                torch.save({"state_dict": {}, "payload": RunsCode()}, buffer)
                dst.writestr(name, buffer.getvalue())
            else:
                dst.writestr(name, src.read(name))
    elsewhere = tmp_path / "elsewhere"
    assert cli.main(["import", str(hostile), "--tracking-uri", f"sqlite:///{elsewhere}/mlflow.db"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checkpoint does not load as tensors and plain values" in err and killed.name in err
    assert not elsewhere.exists() and not (there / "pwned").exists() and not (tmp_path / "pwned").exists()


@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> dict[str, bytes]:
    """A real model folder as harness.trained logs it (MLflow's PyTorch flavour, pt2), of a tiny net."""
    import torch
    from harness import trained

    folder = tmp_path_factory.mktemp("model") / "model"
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)).eval()
    trained.save(net, folder, torch.zeros(2, 3, 2, 2))
    return {f.relative_to(folder).as_posix(): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


def _with_record(pt2: bytes, name: str, data: bytes) -> bytes:
    """The pt2 archive with one record's bytes replaced."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(pt2)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, data if info.filename.endswith(name) else src.read(info))
    return out.getvalue()


DATASET = {"name": "cifar10 10/2/3", "digest": "a" * 36, "source_type": "local", "source": '{"uri": "/data/c.zip"}',
           "schema": None, "profile": '{"sha256": "' + "a" * 64 + '", "train": 10, "val": 2, "test": 3}',
           "tags": {"mlflow.data.context": "training"}}


@pytest.mark.parametrize("hostile", [None, "pickle", "stray", "parent", "epochs", "superscript", "digits", "flavour",
                                     "code", "model_data", "pickled_record", "not_yaml"])
def test_dataset_inputs_and_models_travel_and_a_pickled_model_does_not(tmp_path, model_files, hostile):
    """A run's dataset inputs and (export --models) its pt2 model folder round-trip. Refused, before
    anything is used: a folder holding a pickle (data/model.pth, which loads by running code) or any
    other file; a model on the parent; counts in its tags that are not numbers; an MLmodel naming
    another flavour, code of its own or data elsewhere; a pt2 archive with a pickled record."""
    import torch

    files = dict(model_files)
    tags = {"epochs": "3", "after_epochs": "3", "bytes": "99", "parameters": "39"}
    mlmodel = files["MLmodel"].decode()
    if hostile == "pickle":
        files["data/model.pth"] = b"\x80\x04cos\nsystem\n."
    if hostile == "stray":
        files["../../x.sh"] = b"echo"
    tags["epochs"] = {"epochs": "x", "superscript": "\u00b2"}.get(hostile, tags["epochs"])
    tags["bytes"] = "9" * 40 if hostile == "digits" else tags["bytes"]
    files["MLmodel"] = {"flavour": mlmodel.replace("  pytorch:", "  sklearn:"),
                        "code": mlmodel.replace("code: null", "code: code"),
                        "model_data": mlmodel.replace("model_data: data", "model_data: /etc"),
                        "not_yaml": "flavors: [\n"}.get(hostile, mlmodel).encode()
    if hostile == "pickled_record":  # its example inputs as a pickle that runs a command
        buffer = io.BytesIO()
        torch.save(RunsCode(), buffer)
        files[tracking.PT2_FILE] = _with_record(files[tracking.PT2_FILE], "sample_inputs/model.pt", buffer.getvalue())
    parent = bundle.Run("p", None, "s", "FINISHED", 1, 2, {}, {"sweep_role": "parent"}, artifacts={"grid.yaml": b"{}"},
                        model_files=files if hostile == "parent" else {})
    recorded = {"model.activation": "relu", "model.init": "paper", "optim.lr": "0.01"}  # what every cell's run has
    child = bundle.Run("c", "p", "c-s0", "FINISHED", 1, 2, recorded, {"sweep_parent": "p", "seed": "0"}, datasets=[DATASET],
                       model_files=files, model_tags=tags)
    path = tmp_path / "s.zip"
    if hostile == "stray":
        with pytest.raises(bundle.RunsFileError, match="is not where the format puts anything|not a pt2"):
            bundle.write(bundle.Bundle("s", {}, [parent, child], []), path)
            bundle.read(path)
        return
    bundle.write(bundle.Bundle("s", {}, [parent, child], []), path)
    if hostile:
        with pytest.raises(bundle.RunsFileError, match="not a pt2 MLflow model|not one harness logs") as err:
            bundle.read(path)
        assert "\n" not in str(err.value)
        assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
        return
    back = bundle.read(path).runs[1]
    assert back.datasets == [DATASET] and back.model_files == files and back.model_tags == tags
    assert bundle.read(path).parent.datasets == [] and "datasets" not in zipfile.ZipFile(path).read("runs.jsonl").splitlines()[0].decode()


def test_an_import_or_export_that_finds_no_room_is_one_line_and_exit_1(source, tmp_path, capsys, monkeypatch):
    """Out of room, not bad input: the store's errno-less 'database or disk is full' inside the
    import's own error, and a runs file that cannot be written whole."""
    import errno
    import sqlite3

    uri, files = source
    target = f"sqlite:///{tmp_path}/dst/mlflow.db"

    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(tracking, "create_run", full)
    assert cli.main(["import", str(files["syn_speed"]), "--tracking-uri", target]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"harness: out of room: --tracking-uri {target}: the tracking store failed") and \
        "disk is full" in err and err.count("\n") == 1, err

    def no_space(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", no_space)
    out = tmp_path / "out.runs.zip"
    assert cli.main(["export", "syn_speed", "--tracking-uri", uri, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"harness: out of room: {out}: No space left on device while writing the runs file") and \
        err.count("\n") == 1, err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_a_file_of_more_members_than_the_format_allows_is_refused_unread(source, tmp_path, capsys, monkeypatch):
    _, files = source
    with zipfile.ZipFile(files["syn_speed"]) as archive:
        monkeypatch.setattr(bundle, "MAX_MEMBERS", len(archive.infolist()) - 1)
    target = tmp_path / "dst" / "mlflow.db"
    assert cli.main(["import", str(files["syn_speed"]), "--tracking-uri", f"sqlite:///{target}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"members; at most {bundle.MAX_MEMBERS:,}" in err and not target.parent.exists()


def test_a_runs_file_cannot_put_a_checkpoint_outside_the_working_folder(source, tmp_path, monkeypatch, capsys):
    """A carried checkpoint goes under its run's trainer.checkpoint_dir only where that is a folder
    inside the working folder (as a grid names one); an absolute one or one with '..' is refused,
    naming the run, unless --checkpoint-dir says where it goes."""
    import torch

    uri, _ = source
    monkeypatch.chdir(tmp_path)
    killed = min((r for r in tracking.find_runs(uri, "syn_tricks") if r.tags.get("sweep_role") != "parent"),
                 key=lambda r: r.run_id)
    tracking.set_status(uri, killed.run_id, "KILLED", killed.end_ms)
    (tmp_path / "mlruns" / "checkpoints" / killed.run_id).mkdir(parents=True)
    torch.save({"state_dict": {"w": torch.arange(3.0)}, "epoch": 2, "harness": {"stopped": ""}},
               tmp_path / "mlruns" / "checkpoints" / killed.run_id / "last.ckpt")
    with_checkpoints = tmp_path / "ckpt.zip"
    assert cli.main(["export", "syn_tricks", "--tracking-uri", uri, "--out", str(with_checkpoints), "--checkpoints"]) == 0
    # a folder outside the working folder, named by the file (its run's config): only --checkpoint-dir may
    config_member = f"artifacts/{killed.run_id}/config.yaml"
    for outside in (tmp_path / "outside", Path("../../outside")):
        placed = tmp_path / "placed.zip"
        with zipfile.ZipFile(with_checkpoints) as src, zipfile.ZipFile(placed, "w") as dst:
            for name in [n for n in src.namelist() if n != config_member]:
                dst.writestr(name, src.read(name))
            dst.writestr(config_member, f"trainer:\n  checkpoint_dir: {outside}\n")
        elsewhere = f"sqlite:///{tmp_path}/placed/mlflow.db"
        assert cli.main(["import", str(placed), "--tracking-uri", elsewhere]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"run {killed.name} keeps its checkpoint in {outside}" in err and \
            "--checkpoint-dir" in err, err
        assert not (tmp_path / "placed").exists() and not (tmp_path / "outside").exists()
    assert cli.main(["import", str(placed), "--tracking-uri", elsewhere, "--checkpoint-dir", str(tmp_path / "chosen")]) == 0
    assert len(list((tmp_path / "chosen").glob("*/last.ckpt"))) == 1 and not (tmp_path / "outside").exists()
