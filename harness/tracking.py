"""The only module that talks to MLflow: store URI, experiments, runs, params, tags, artifacts.

Runs live in a SQL store (`sqlite:///mlruns/mlflow.db` by default) with artifacts under `mlruns/`;
MLflow 3.17 refuses a plain `./mlruns` file store, so the URI is always set explicitly. Metrics
are logged per epoch with step = epochs completed (1 after the first epoch)."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import subprocess
import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# MLflow prints a banner and checks a few things at import; keep its logging quiet.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from mlflow.entities import (Dataset, DatasetInput, InputTag, LoggedModelOutput, Metric, Param, RunTag,  # noqa: E402
                             ViewType)
from mlflow.tracking import MlflowClient  # noqa: E402

from harness import private_api, stores  # noqa: E402
from harness.places import check_writable, is_tracking_server  # noqa: E402
from harness.errors import StoreError, room_lost, writing  # noqa: E402

# MLflow's SQL store logs every database error with its traceback, then raises it as an
# MlflowException: the harness says it once (one line for a full disk, the traceback for a bug).
logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)

CONFIG_ARTIFACT = "config.yaml"
# MLflow 3's UI opens an experiment on the view its kind names; harness experiments hold training
# runs, so they open on the runs table (without the tag the UI may guess the GenAI overview).
KIND_TAG, TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"
# On an imported run: its run id in the store it was exported from (what makes import idempotent).
SOURCE_TAG = "harness.source_run_id"
BATCH = 100  # MLflow takes at most 100 params or tags, 1000 metrics, per log_batch
# failure_reason of a run stopped from outside (Ctrl-C, SIGTERM: a pre-empted job), not by its own fault
INTERRUPTED = "interrupted"
OUT_OF_ROOM = "out of room"  # a KILLED run's failure_reason where a full disk stopped it
FAILURE_TAGS = ("failure_reason", "failure_message", "failure_traceback")


def client(uri: str) -> MlflowClient:
    stores.open_tracking_store(uri)  # checked, and created where new, once per process
    return MlflowClient(tracking_uri=uri)


def experiment_id(uri: str, name: str, artifact_root: str | None) -> str:
    """The experiment's id, created if new; artifact_root None: where the tracking server puts them."""
    mlflow = client(uri)
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return mlflow.create_experiment(name, artifact_location=_location(uri, artifact_root, name),
                                        tags={KIND_TAG: TRAINING_KIND})
    except Exception:  # another worker created it between our look-up and create
        found = mlflow.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _location(uri: str, artifact_root: str, name: str) -> str | None:
    """Where a new experiment's artifacts go: <root>/<name> for a local folder, None (the server's
    choice) for a tracking server, whose workers on other machines could not see a local folder."""
    if artifact_root and "://" not in artifact_root:
        return None if is_tracking_server(uri) else (Path(artifact_root).resolve() / name).as_uri()
    return artifact_root or None


def check_experiment(uri: str, name: str, artifact_root: str) -> None:
    """The experiment's artifact folder (its recorded one where it exists, else the one it would get)
    can be written, checked before any run exists; nothing is created."""
    found = client(uri).get_experiment_by_name(name) if stores.has_tracking_store(uri) else None
    location = found.artifact_location if found else _location(uri, artifact_root, name)
    if location and location.startswith(("file:", "/")):
        where = "tracking.artifact_root" if not found else f"experiment {name}'s artifact location"
        check_writable(location.removeprefix("file://"), where)


GIT_DIFF_ARTIFACT = "git.diff"
MAX_DIFF_CHARS = 1 << 20  # far past any code change; a diff this large is data in the checkout


def git_state(folder: Path) -> tuple[str, str]:
    """(HEAD of the checkout holding `folder`, '+dirty' appended when tracked files have changes;
    `git diff HEAD`, '' when clean). ('unknown', '') outside a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, check=True).stdout

    try:
        sha, diff = git("rev-parse", "HEAD").strip(), git("diff", "HEAD")
    except (OSError, subprocess.CalledProcessError):
        return "unknown", ""
    return sha + ("+dirty" if diff else ""), diff


@functools.cache
def _code_state() -> tuple[str, str]:
    """Read once per process: the code a long sweep runs is the code it started with, even when the
    checkout moves on while it trains."""
    return git_state(Path(__file__).resolve().parent)


def git_commit() -> str:
    return _code_state()[0]


def start_run(uri: str, experiment: str, artifact_root: str, name: str, params: dict[str, Any],
              tags: dict[str, str], config_yaml: str, parent_run_id: str | None = None,
              config_name: str = CONFIG_ARTIFACT) -> str:
    """Create a RUNNING run with its params, tags and resolved config (or grid); return its id."""
    mlflow = client(uri)
    tags = {**tags, "mlflow.runName": name}
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    diff = _code_state()[1]
    if len(diff) > MAX_DIFF_CHARS:  # a checkout carrying data, not code: keep the head, and say so
        tags["git_diff_truncated"] = f"{len(diff):,} characters, the first {MAX_DIFF_CHARS:,} kept"
        diff = f"# harness: `git diff HEAD` had {len(diff):,} characters; the first {MAX_DIFF_CHARS:,} follow\n" + \
            diff[:MAX_DIFF_CHARS]
    run = mlflow.create_run(experiment_id(uri, experiment, artifact_root), run_name=name,
                            tags={k: str(v) for k, v in tags.items()})
    run_id = run.info.run_id
    try:
        mlflow.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
        with writing(f"run {name}'s {config_name}", run.info.artifact_uri.removeprefix("file://")):
            mlflow.log_text(run_id, config_yaml, config_name)
            if diff:  # a '+dirty' commit alone does not say what ran
                mlflow.log_text(run_id, diff, GIT_DIFF_ARTIFACT)
    except BaseException:  # a run without its config is no record: ended and deleted, never left RUNNING
        with contextlib.suppress(Exception):
            mlflow.set_terminated(run_id, "FAILED")
        mlflow.delete_run(run_id)
        raise
    return run_id


def resume_run(uri: str, run_id: str) -> None:
    client(uri).update_run(run_id, status="RUNNING")


def end_run(uri: str, run_id: str, status: str, tags: dict[str, str] | None = None) -> None:
    """status: FINISHED, FAILED or KILLED; tags record why a run did not finish. A run that
    FINISHED after being continued loses the failure tags of its earlier stop."""
    mlflow = client(uri)
    if tags:
        set_tags(uri, run_id, tags)
    if status == "FINISHED":
        for key in set(FAILURE_TAGS) & set(mlflow.get_run(run_id).data.tags):
            mlflow.delete_tag(run_id, key)
    mlflow.set_terminated(run_id, status)


def failure_tags(err: BaseException) -> dict[str, str]:
    """Why a run failed: the exception's `failure_reason` attribute where it has one, else its type."""
    last_lines = "".join(traceback.format_exception(err)).strip().splitlines()[-12:]
    return {"failure_reason": getattr(err, "failure_reason", type(err).__name__),
            "failure_message": str(err)[:4000], "failure_traceback": "\n".join(last_lines)[-4000:]}


class RunTaken(Exception):
    """Raised inside `ending` when the run is no longer this process's to record (another process
    took it over): it is left exactly as it is."""


@contextmanager
def ending(uri: str, run_id: str) -> Iterator[None]:
    """A run's lifecycle: FINISHED when the block completes; KILLED when Ctrl-C or SIGTERM stops it,
    FAILED with the reason as tags on any other exception (all re-raised); untouched on RunTaken."""
    try:
        yield
    except (KeyboardInterrupt, SystemExit):
        end_run(uri, run_id, "KILLED", {"failure_reason": INTERRUPTED})
        raise
    except RunTaken:
        raise
    except Exception as err:
        if room_lost(err) is None:
            end_run(uri, run_id, "FAILED", failure_tags(err))
            raise
        try:  # a full disk is the machine's failure: resumable, as an interrupted run is
            end_run(uri, run_id, "KILLED", {"failure_reason": OUT_OF_ROOM})
        except Exception as again:
            if room_lost(again) is None:
                raise
            # the store itself is full: the run stays RUNNING, and the same command continues it
        raise
    end_run(uri, run_id, "FINISHED")


def log_metrics(uri: str, run_id: str, metrics: dict[str, float], step: int) -> None:
    now = int(time.time() * 1000)
    client(uri).log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])


def log_artifact(uri: str, run_id: str, path: Path, folder: str | None = None) -> None:
    with writing(f"{path.name} as an artifact of run {run_id}", f"run {run_id}'s artifacts"):
        client(uri).log_artifact(run_id, str(path), folder)


def run_status(uri: str, run_id: str) -> str:
    return client(uri).get_run(run_id).info.status


def run_active(uri: str, run_id: str) -> bool:
    """Whether the run exists in this store and is not deleted."""
    try:
        return client(uri).get_run(run_id).info.lifecycle_stage == "active"
    except Exception:  # MlflowException: no such run here
        return False


def run_config_yaml(uri: str, run_id: str, name: str = CONFIG_ARTIFACT) -> str:
    mlflow = client(uri)
    mlflow.get_run(run_id)  # raises a clear MlflowException for an unknown id
    return Path(mlflow.download_artifacts(run_id, name)).read_text()


def experiment_names(uri: str) -> list[str]:
    return sorted(e.name for e in client(uri).search_experiments())


PARENT_FILTER = "tags.sweep_role = 'parent'"


def sweep_names(uri: str) -> list[str]:
    """Every experiment in the store that holds a sweep parent run."""
    return [name for name in experiment_names(uri) if find_runs(uri, name, PARENT_FILTER)]


def sweep_parent(uri: str, sweep: str, storage_url: str, reader: bool = False) -> RunRecord | None:
    """The sweep's parent run, the one definition (the sweep, its dry run, the report, export): the
    oldest parent run of the experiment made for this Optuna storage (its `optuna_storage` tag).
    A sweep on another storage keeps its claims in another study and gets a parent of its own:
    sharing one could give a cell two FINISHED runs. A reader (`reader=True`) given a storage that
    no parent was made for takes the sweep's only parent, and will not guess between several."""
    parents = find_runs(uri, sweep, PARENT_FILTER)
    mine = [run for run in parents if run.tags.get("optuna_storage") == stores.redact(storage_url)]
    if mine or not reader or len(parents) < 2:
        return (mine or (parents if reader else []) or [None])[0]
    made_for = ", ".join(sorted({run.tags.get("optuna_storage", "?") for run in parents}))
    raise StoreError(f"sweep {sweep}: {len(parents)} parent runs in {uri}, one per Optuna storage ({made_for}), "
                     f"none for {stores.redact(storage_url)}: name the sweep's storage with --storage")


def other_storages_note(uri: str, sweep: str, storage_url: str) -> str:
    """What to say where a sweep on `storage_url` has no parent of its own in this store but the
    sweep's runs are there under parents made for other Optuna storages (an imported runs file's,
    for one): it is about to start over beside them, which may be hours of training already done.
    The storage it names to continue is the oldest parent's, the one a reader takes first."""
    mine = stores.redact(storage_url)
    others = sorted((run for run in find_runs(uri, sweep, PARENT_FILTER) if run.tags.get("optuna_storage") != mine),
                    key=lambda run: run.start_ms)
    if not others:
        return ""
    named = list(dict.fromkeys(run.tags["optuna_storage"] for run in others if run.tags.get("optuna_storage")))
    where = (f"a parent made for Optuna storage {named[0]}" if len(named) == 1 else
             f"parents made for Optuna storages {', '.join(named)}" if named else "a parent with no storage tag")
    advice = ""
    if named:  # a redacted URL is no flag to paste as it is
        advice = f" (to continue those runs instead: --storage {named[0]}" + (
            ", with its password)" if "***" in named[0] else ")")
    return (f"sweep {sweep}: {stores.redact(uri)} holds its runs under {where}; on {mine} it starts over under a "
            f"parent of its own, every cell to run again{advice}")


def experiments(uri: str) -> dict[str, tuple[str, dict[str, str]]]:
    """Every active experiment: name -> (id, tags)."""
    return {e.name: (e.experiment_id, dict(e.tags)) for e in client(uri).search_experiments()}


STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")


def check_run_fields(params: dict[str, str], tags: dict[str, str], metric_keys: list[str]) -> None:
    """Raise ValueError for a name or value this MLflow would refuse, before anything is written."""
    private_api.check_mlflow_fields(params, tags, metric_keys)


def deleted_experiment(uri: str, name: str) -> bool:
    """Whether the store holds a deleted experiment of this name (a name stays taken until purged)."""
    found = client(uri).get_experiment_by_name(name)
    return found is not None and found.lifecycle_stage == "deleted"


def experiment_location(uri: str, experiment: str) -> str:
    return client(uri).get_experiment(experiment).artifact_location


def set_experiment_tag(uri: str, experiment: str, key: str, value: str) -> None:
    client(uri).set_experiment_tag(experiment, key, value)


def per_step(points: list[tuple[int, int, float]]) -> list[tuple[int, float]]:
    """(step, value) with one value per step, the last logged: an epoch redone after a kill (its
    metrics logged, its checkpoint not yet written) replaces the first attempt's values."""
    return sorted({step: value for step, _, value in sorted(points)}.items())


def metric_history(uri: str, run_id: str, keys: list[str]) -> dict[str, list[tuple[int, float]]]:
    return {k: per_step(points) for k, points in metric_points(uri, run_id, keys).items()}


def metric_points(uri: str, run_id: str, keys: list[str]) -> dict[str, list[tuple[int, int, float]]]:
    """Every logged point of each metric: (step, timestamp in ms, value), in that order."""
    mlflow = client(uri)
    return {k: sorted((m.step, m.timestamp, m.value) for m in mlflow.get_metric_history(run_id, k)) for k in keys}


def artifact_files(uri: str, run_id: str, folder: str | None = None) -> dict[str, int]:
    """Every artifact file of a run, recursively: path -> size in bytes."""
    mlflow, out = client(uri), {}
    for item in mlflow.list_artifacts(run_id, folder):
        if item.is_dir:
            out.update(artifact_files(uri, run_id, item.path))
        else:
            out[item.path] = item.file_size or 0
    return out


def artifact_bytes(uri: str, run_id: str, path: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        return Path(client(uri).download_artifacts(run_id, path, tmp)).read_bytes()


def log_artifact_bytes(uri: str, run_id: str, path: str, data: bytes) -> None:
    folder, _, name = path.rpartition("/")
    with writing(f"{path} as an artifact of run {run_id}", f"run {run_id}'s artifacts"), \
            tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / name).write_bytes(data)
        client(uri).log_artifact(run_id, str(Path(tmp) / name), folder or None)


def create_run(uri: str, experiment: str, name: str, start_ms: int, tags: dict[str, str]) -> str:
    """A RUNNING run with a given start time (an imported run keeps the time it really started)."""
    return client(uri).create_run(experiment, start_time=start_ms, tags=tags, run_name=name).info.run_id


def log_batch(uri: str, run_id: str, params: dict[str, str] | None = None, tags: dict[str, str] | None = None,
              points: list[tuple[str, int, int, float]] | None = None) -> None:
    """Params, tags and metric points (key, step, timestamp, value), in batches MLflow accepts."""
    mlflow = client(uri)
    params_, tags_ = [Param(k, v) for k, v in (params or {}).items()], [RunTag(k, v) for k, v in (tags or {}).items()]
    for i in range(0, len(params_), BATCH):
        mlflow.log_batch(run_id, params=params_[i:i + BATCH])
    for i in range(0, len(tags_), BATCH):
        mlflow.log_batch(run_id, tags=tags_[i:i + BATCH])
    metrics = [Metric(key, value, timestamp, step) for key, step, timestamp, value in points or []]
    for i in range(0, len(metrics), 10 * BATCH):
        mlflow.log_batch(run_id, metrics=metrics[i:i + 10 * BATCH])


def delete_tag(uri: str, run_id: str, key: str) -> None:
    client(uri).delete_tag(run_id, key)


def set_status(uri: str, run_id: str, status: str, end_ms: int | None) -> None:
    """A run's status and end time as recorded elsewhere (RUNNING has no end time)."""
    if status == "RUNNING":
        client(uri).update_run(run_id, status)
    else:
        client(uri).set_terminated(run_id, status, end_ms)


@dataclass
class RunRecord:
    """What the sweep and the report read of a run."""

    run_id: str
    name: str
    status: str  # RUNNING, FINISHED, FAILED or KILLED
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]  # the latest value of each
    start_ms: int
    end_ms: int | None

    @property
    def origin_id(self) -> str:
        """The run's id where it ran: its own, or the source id an imported run carries."""
        return self.tags.get(SOURCE_TAG, self.run_id)


def find_runs(uri: str, experiment: str, where: str = "") -> list[RunRecord]:
    """Every active run of the experiment matching an MLflow filter string, oldest first (all pages)."""
    mlflow = client(uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        return []
    runs, token = [], None
    while True:
        page = mlflow.search_runs([found.experiment_id], filter_string=where, run_view_type=ViewType.ACTIVE_ONLY,
                                  max_results=1000, order_by=["attributes.start_time ASC"], page_token=token)
        runs += [RunRecord(r.info.run_id, r.info.run_name, r.info.status, dict(r.data.tags), dict(r.data.params),
                           dict(r.data.metrics), r.info.start_time, r.info.end_time) for r in page]
        token = page.token
        if not token:
            return runs


def by_cell(runs: list) -> dict[str, list]:
    """Runs (anything with .tags: RunRecord, bundle.Run) grouped by their sweep cell's hash, in order."""
    out: dict[str, list] = {}
    for run in runs:
        out.setdefault(run.tags.get("cell", ""), []).append(run)
    return out


def cell_runs(uri: str, sweep: str, parent_id: str) -> dict[str, list[RunRecord]]:
    """A sweep parent's child runs by cell hash, oldest first."""
    return by_cell(find_runs(uri, sweep, f"tags.sweep_parent = '{parent_id}'"))


def set_tags(uri: str, run_id: str, tags: dict[str, str]) -> None:
    client(uri).log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def delete_run(uri: str, run_id: str) -> None:
    client(uri).delete_run(run_id)


def log_text(uri: str, run_id: str, text: str, name: str) -> None:
    with writing(f"{name} as an artifact of run {run_id}", f"run {run_id}'s artifacts"):
        client(uri).log_text(run_id, text, name)


# ------------------------------------------------- MLflow 3's records beside the metrics: models, data

MODEL_NAME = "model"  # the name a run's trained network is logged under
PT2_FILE = "data/model.pt2"  # where MLflow's PyTorch flavour puts a pt2 model in its folder
# MLflow's dataset table holds a digest of at most 36 characters: the sha256's first 36 hex digits
# there, the whole sha256 in the dataset's profile.
DIGEST_CHARS = 36


def log_model_folder(uri: str, run_id: str, folder: Path, step: int, tags: dict[str, str]) -> str:
    """An MLflow model saved in `folder` (its MLmodel and files), logged as the run's output at
    `step` (epochs trained) in the run's experiment; returns the model's id. A model whose files
    did not all arrive is marked FAILED and is never the run's output."""
    mlflow = client(uri)
    experiment = mlflow.get_run(run_id).info.experiment_id
    # A process killed while it logged this run's model left it PENDING (never the run's output, but
    # listed in the UI): gone now. Only one process logs a run's model at a time (the run's training
    # lock, or the import lock), so none of these is being written.
    for stray in mlflow.search_logged_models([experiment], filter_string=f"source_run_id = '{run_id}'"):
        if "PENDING" in str(stray.status):
            mlflow.delete_logged_model(stray.model_id)
    model = mlflow.create_logged_model(experiment, name=MODEL_NAME, source_run_id=run_id, tags=tags)
    try:
        with writing(f"run {run_id}'s model", model.artifact_location.removeprefix("file://")):
            mlflow.log_model_artifacts(model.model_id, str(folder))
    except BaseException:
        with contextlib.suppress(Exception):
            mlflow.finalize_logged_model(model.model_id, "FAILED")
        raise
    mlflow.finalize_logged_model(model.model_id, "READY")
    mlflow.log_outputs(run_id, [LoggedModelOutput(model.model_id, step)])
    return model.model_id


def run_model(uri: str, run_id: str) -> Any | None:
    """The run's trained network as MLflow holds it (a LoggedModel, READY), the newest (a run trained
    further after it finished logs another); None where the run logged none."""
    mlflow = client(uri)
    outputs = mlflow.get_run(run_id).outputs
    found = [mlflow.get_logged_model(out.model_id) for out in (outputs.model_outputs if outputs else [])]
    ready = [model for model in found if str(model.status) in ("READY", "LoggedModelStatus.READY")]
    return max(ready, key=lambda model: model.creation_timestamp) if ready else None


def download_model(uri: str, model: Any, into: Path) -> Path:
    """A logged model's files in a local folder (copied from a tracking server where it is one)."""
    from mlflow.artifacts import download_artifacts
    return Path(download_artifacts(artifact_uri=model.artifact_location, dst_path=str(into), tracking_uri=uri))


def log_dataset(uri: str, run_id: str, name: str, sha256: str, source: str, sizes: dict[str, int]) -> None:
    """The data a run read, as an MLflow dataset input (the UI's dataset column): its name with the
    split sizes (`cifar10 45000/5000/10000`), source, digest, and the whole sha256 and the sizes in
    its profile. MLflow keeps one dataset per name and digest in an experiment, so the sizes must be
    in the name: two runs that read other images of one file are told apart in the column."""
    dataset = Dataset(name=f"{name} {sizes['train']}/{sizes['val']}/{sizes['test']}", digest=sha256[:DIGEST_CHARS], source_type="local",
                      source=json.dumps({"uri": source}), profile=json.dumps({"sha256": sha256, **sizes}))
    inputs = [DatasetInput(dataset, [InputTag("mlflow.data.context", "training")])]
    try:
        client(uri).log_inputs(run_id, datasets=inputs)
    except Exception as err:
        # Two runs of one experiment logging the same new dataset at once (a sweep's workers): MLflow
        # inserts it twice and the later insert fails. The dataset exists now: the same call links it.
        if "UNIQUE constraint failed" not in str(err) and "duplicate key value" not in str(err):
            raise
        client(uri).log_inputs(run_id, datasets=inputs)


def run_datasets(uri: str, run_id: str) -> list[dict[str, Any]]:
    """The run's dataset inputs as plain values (what a runs file carries)."""
    inputs = client(uri).get_run(run_id).inputs
    return [dataset_record(d) for d in (inputs.dataset_inputs if inputs else [])]


def dataset_record(dataset_input: Any) -> dict[str, Any]:
    d = dataset_input.dataset
    return {"name": d.name, "digest": d.digest, "source_type": d.source_type, "source": d.source,
            "schema": d.schema, "profile": d.profile, "tags": {t.key: t.value for t in dataset_input.tags}}


def log_dataset_records(uri: str, run_id: str, records: list[dict[str, Any]]) -> None:
    """Dataset inputs as `run_datasets` gives them (an imported run's)."""
    if not records:
        return
    client(uri).log_inputs(run_id, datasets=[
        DatasetInput(Dataset(r["name"], r["digest"], r["source_type"], r["source"], r.get("schema"), r.get("profile")),
                     [InputTag(k, v) for k, v in r.get("tags", {}).items()]) for r in records])


@contextmanager
def system_metrics(uri: str, run_id: str, every_s: float, resume: bool) -> Iterator[None]:
    """MLflow's system metrics (CPU, memory, disk, network; GPU where pynvml finds one) sampled
    every `every_s` seconds while the block runs, as `system/...` metrics of the run; 0: none."""
    if not every_s:
        yield
        return
    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # its start and stop lines, every run
    monitor = private_api.system_metrics_monitor(run_id, uri, every_s, resume)
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()
