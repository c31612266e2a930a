"""A sweep's runs in one file, and back into any MLflow store (`harness export`, `harness import`).

Sweeps run where the GPUs are and are read where people work; this file is how they travel, and
what `reports/<sweep>/runs.zip` commits beside a report so that the report can be rebuilt anywhere.

The file is a zip of plain text (format version 1, described by FORMAT below, which also travels
inside it as README.md). The same runs give the same bytes: members in a fixed order with fixed
dates, JSON with sorted keys, runs and points in a fixed order, and no export time. An imported run
carries its original id in the tag `harness.source_run_id`; exporting it again gives its original
ids back, so a file survives any number of import/export hops unchanged.
"""

from __future__ import annotations

import json
import math
import os
import re
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from harness import tracking
from harness.config import sqlite_path

FORMAT_NAME, FORMAT_VERSION = "harness-runs", 1
FILE_NAME = "runs.zip"  # the name a report folder gives its sweep's file
TEXT_SUFFIXES = (".yaml", ".yml", ".json", ".txt", ".md", ".diff", ".patch")
FIGURE_SUFFIXES = (".png", ".svg")
TRIALS_ARTIFACT = "optuna/trials.jsonl"  # an imported parent's Optuna trials (the store has no study)
SKIPPED_FOLDERS = ("report/", "optuna/")  # the report's figures are regenerated; trials travel apart
PARENT_LINKS = ("mlflow.parentRunId", "sweep_parent")  # a child's tags that hold its parent's run id
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip can hold: fixed, so the bytes do not move
SWEEP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # also a folder name under reports/ and mlruns/

FORMAT = f"""# {FORMAT_NAME}, version {FORMAT_VERSION}: one sweep's MLflow runs

Written by `harness export`, read by `harness import` and `harness report`. Plain text throughout:

- `manifest.json`: format, version, sweep name, the experiment's own tags, and counts of runs,
  metric points and trials (a file whose contents disagree with its counts is refused).
- `runs.jsonl`: one run a line, the sweep's parent run first, then its children by start time:
  `run_id`, `parent_run_id` (null for the parent), `name`, `status`, `start_time`, `end_time`
  (milliseconds since 1970, UTC; null while RUNNING), `params` and `tags` (string -> string).
- `metrics.jsonl`: one logged metric point a line: `run_id`, `key`, `step` (epochs completed),
  `timestamp` (ms), `value` (a number; "NaN", "Infinity" or "-Infinity" as strings).
- `trials.jsonl`: the sweep's Optuna trials: `number`, `state`, `value`, `datetime_start`,
  `datetime_complete`, `user_attrs` (the cell hash, seed, axis values, worker).
- `artifacts/<run_id>/<path>`: the runs' text artifacts: each child's resolved `config.yaml`,
  the parent's `grid.yaml` (learning-curve images only with `harness export --figures`).

In Python: `pandas.read_json(zipfile.ZipFile(path).open("metrics.jsonl"), lines=True)`.
"""


class BundleError(Exception):
    """A runs file or a store that cannot be used; the message names it."""


@dataclass
class Run:
    run_id: str
    parent_run_id: str | None
    name: str
    status: str
    start_time: int
    end_time: int | None
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, list[tuple[int, int, float]]] = field(default_factory=dict)  # key -> (step, ms, value)
    artifacts: dict[str, bytes] = field(default_factory=dict)

    def latest(self) -> dict[str, float]:
        """Each metric's latest value, by MLflow's rule: the largest (step, timestamp, value)."""
        return {key: max(points)[2] for key, points in self.metrics.items() if points}

    def history(self, keys: list[str]) -> dict[str, list[tuple[int, float]]]:
        return {k: sorted((step, value) for step, _, value in self.metrics.get(k, [])) for k in keys}

    def record(self) -> tracking.RunRecord:
        return tracking.RunRecord(self.run_id, self.name, self.status, dict(self.tags), dict(self.params),
                                  self.latest(), self.start_time, self.end_time)


@dataclass
class Bundle:
    sweep: str
    experiment_tags: dict[str, str]
    runs: list[Run]  # the parent first
    trials: list[dict]

    @property
    def parent(self) -> Run:
        return self.runs[0]

    @property
    def children(self) -> list[Run]:
        return self.runs[1:]


# ----------------------------------------------------------------------------- from a store

def from_store(uri: str, sweep: str, storage_url: str | None = None, figures: bool = False) -> Bundle:
    """The sweep's parent (the oldest, as the report reads it) and all its active children."""
    parents = tracking.find_runs(uri, sweep, "tags.sweep_role = 'parent'")
    if not parents:
        known = ", ".join(tracking.sweep_names(uri)) or "none"
        raise BundleError(f"sweep {sweep!r}: no sweep parent run in {uri} (sweeps there: {known})")
    parent = parents[0]
    children = tracking.find_runs(uri, sweep, f"tags.sweep_parent = '{parent.run_id}'")
    children.sort(key=lambda r: (r.start_ms, r.origin_id))
    original = {r.run_id: r.origin_id for r in [parent, *children]}
    suffixes = TEXT_SUFFIXES + (FIGURE_SUFFIXES if figures else ())
    runs = []
    for record in [parent, *children]:
        files = tracking.artifact_files(uri, record.run_id)
        wanted = sorted(p for p in files if p.endswith(suffixes) and not p.startswith(SKIPPED_FOLDERS))
        tags = {k: original.get(v, v) if k in PARENT_LINKS else v
                for k, v in record.tags.items() if k != tracking.SOURCE_TAG}
        runs.append(Run(
            run_id=record.origin_id, parent_run_id=None if record is parent else parent.origin_id,
            name=record.name, status=record.status, start_time=record.start_ms,
            # MLflow keeps the old end time of a run resumed to RUNNING; it means nothing then
            end_time=None if record.status == "RUNNING" else record.end_ms,
            params=record.params, tags=tags, metrics=tracking.metric_points(uri, record.run_id, sorted(record.metrics)),
            artifacts={p: tracking.artifact_bytes(uri, record.run_id, p) for p in wanted}))
    if TRIALS_ARTIFACT in tracking.artifact_files(uri, parent.run_id, "optuna"):
        trials = _jsonl(tracking.artifact_bytes(uri, parent.run_id, TRIALS_ARTIFACT))
    else:
        trials = _study_trials(storage_url, parent.tags.get("optuna_study", sweep))
    # MLflow's own experiment tags (the UI's view) are set by whoever shows the runs, not carried
    experiment_tags = {k: v for k, v in tracking.experiments(uri)[sweep][1].items() if not k.startswith("mlflow.")}
    return Bundle(sweep, experiment_tags, runs, trials)


def _study_trials(storage_url: str | None, study: str) -> list[dict]:
    """The study's trials, read without writing: none where the storage or the study is absent."""
    if not storage_url or (sqlite_path(storage_url) and not sqlite_path(storage_url).is_file()):
        return []
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        found = optuna.load_study(study_name=study, storage=storage_url)
    except KeyError:
        return []

    def when(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    return [_plain({"number": t.number, "state": t.state.name, "value": t.value, "datetime_start": when(t.datetime_start),
                    "datetime_complete": when(t.datetime_complete), "user_attrs": t.user_attrs})
            for t in found.get_trials(deepcopy=False)]


# ------------------------------------------------------------------------------ the file

def _number(value: float) -> float | str:
    return value if math.isfinite(value) else str(value).replace("inf", "Infinity").replace("nan", "NaN")


def _plain(value: Any) -> Any:
    """JSON without NaN or infinity (a trial whose run logged no test error has the value inf)."""
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _dumps(rows: list[dict]) -> bytes:
    return "".join(json.dumps(row, sort_keys=True, allow_nan=False) + "\n" for row in rows).encode()


def _trials_jsonl(trials: list[dict]) -> bytes:
    return _dumps(sorted(trials, key=lambda t: t["number"]))


def _jsonl(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def write(bundle: Bundle, path: Path) -> Path:
    """Write the file atomically (a reader never sees half of it); the same bundle, the same bytes
    (with the same zlib: deflate's output is not promised across its versions)."""
    path = Path(path)
    _check_writable_folder(path.parent, f"--out {path}")
    if path.is_dir():
        raise BundleError(f"--out {path}: a folder; name the file to write")
    runs = [{"run_id": r.run_id, "parent_run_id": r.parent_run_id, "name": r.name, "status": r.status,
             "start_time": r.start_time, "end_time": r.end_time, "params": r.params, "tags": r.tags}
            for r in bundle.runs]
    points = [{"run_id": r.run_id, "key": key, "step": step, "timestamp": ms, "value": _number(value)}
              for r in bundle.runs for key in sorted(r.metrics) for step, ms, value in sorted(r.metrics[key])]
    manifest = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "sweep": bundle.sweep,
                "experiment_tags": bundle.experiment_tags, "runs": len(runs), "metric_points": len(points),
                "trials": len(bundle.trials)}
    members = {"manifest.json": (json.dumps(manifest, sort_keys=True, indent=1) + "\n").encode(),
               "README.md": FORMAT.encode(), "runs.jsonl": _dumps(runs), "metrics.jsonl": _dumps(points),
               "trials.jsonl": _trials_jsonl(bundle.trials)}
    for r in bundle.runs:
        members.update({f"artifacts/{r.run_id}/{name}": data for name, data in sorted(r.artifacts.items())})
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(partial, "w") as archive:
            for name, data in members.items():
                info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
                info.compress_type, info.external_attr, info.create_system = zipfile.ZIP_DEFLATED, 0o644 << 16, 3
                archive.writestr(info, data, compresslevel=9)
        os.replace(partial, path)
    except OSError as err:
        raise BundleError(f"--out {path}: cannot write it ({err.strerror or err})") from None
    finally:
        partial.unlink(missing_ok=True)
    return path


def read(path: Path) -> Bundle:
    """Read and check a whole file; any damage raises BundleError naming it, before anything is used."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"{path}: {'a folder, not a runs file' if path.is_dir() else 'no such file'}")
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = json.loads(archive.read("manifest.json"))
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
                raise BundleError(f"{path}: not a {FORMAT_NAME} file (its manifest.json names no such format)")
            version = manifest.get("version")
            if version != FORMAT_VERSION:
                newer = " (written by a newer harness: upgrade)" if isinstance(version, int) and version > FORMAT_VERSION else ""
                raise BundleError(f"{path}: format version {version!r}; this harness reads version {FORMAT_VERSION}{newer}")
            runs = [Run(_text(r["run_id"]), None if r["parent_run_id"] is None else _text(r["parent_run_id"]),
                        _text(r["name"]), _text(r["status"]), int(r["start_time"]),
                        None if r["end_time"] is None else int(r["end_time"]), _texts(r["params"]), _texts(r["tags"]))
                    for r in _jsonl(archive.read("runs.jsonl"))]
            by_id = {r.run_id: r for r in runs}
            points = _jsonl(archive.read("metrics.jsonl"))
            for p in points:
                by_id[p["run_id"]].metrics.setdefault(_text(p["key"]), []).append(
                    (int(p["step"]), int(p["timestamp"]), float(p["value"])))
            for name in sorted(n for n in archive.namelist() if n.startswith("artifacts/") and not n.endswith("/")):
                run_id, _, inner = name.removeprefix("artifacts/").partition("/")
                parts = PurePosixPath(inner).parts
                if not parts or inner.startswith("/") or ".." in parts:
                    raise ValueError(f"artifact path {name!r} leaves its run's folder")
                by_id[run_id].artifacts[inner] = archive.read(name)
            bundle = Bundle(_text(manifest.get("sweep")), _texts(manifest.get("experiment_tags") or {}), runs,
                            _jsonl(archive.read("trials.jsonl")))
    except BundleError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError, ValueError, TypeError, AttributeError) as err:
        raise BundleError(f"{path}: truncated or corrupt ({type(err).__name__}: {err})") from None
    _check(path, bundle, manifest, len(points))
    return bundle


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} where text belongs")
    return value


def _texts(mapping: Any) -> dict[str, str]:
    if not isinstance(mapping, dict):
        raise TypeError(f"{mapping!r} where a mapping of text belongs")
    return {_text(k): _text(v) for k, v in mapping.items()}


def _check(path: Path, bundle: Bundle, manifest: dict, points: int) -> None:
    def corrupt(why: str) -> BundleError:
        return BundleError(f"{path}: truncated or corrupt ({why})")

    counts = {"runs": len(bundle.runs), "metric_points": points, "trials": len(bundle.trials)}
    for key, count in counts.items():
        if manifest.get(key) != count:
            raise corrupt(f"manifest says {manifest.get(key)} {key}, found {count}")
    if not SWEEP_NAME.fullmatch(bundle.sweep):
        raise corrupt(f"sweep name {bundle.sweep!r} is not a plain name")
    if not bundle.runs or bundle.parent.parent_run_id is not None or bundle.parent.tags.get("sweep_role") != "parent":
        raise corrupt("its first run is not a sweep parent")
    if "grid.yaml" not in bundle.parent.artifacts:
        raise corrupt("the parent run has no grid.yaml")
    if len({r.run_id for r in bundle.runs}) != len(bundle.runs):
        raise corrupt("a run id appears twice")
    strays = [r.name for r in bundle.children if r.parent_run_id != bundle.parent.run_id]
    if strays:
        raise corrupt(f"runs outside the sweep: {', '.join(strays[:3])}")
    for run in bundle.runs:
        if run.status not in tracking.STATUSES:
            raise corrupt(f"run {run.name} has the status {run.status!r}")
        try:
            tracking.check_run_fields(run.params, run.tags, list(run.metrics))
        except ValueError as err:
            raise corrupt(f"run {run.name}: {err}") from None


# ------------------------------------------------------------------------------ into a store

def _check_writable_folder(folder: Path, what: str) -> None:
    """The folder exists or can be created, and can be written (checked before anything is written)."""
    existing = Path(os.path.abspath(folder))
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise BundleError(f"{what}: cannot write under {existing}")


def artifact_root(uri: str) -> str | None:
    """Where imported runs keep their artifacts: beside a SQLite store (mlruns/ for the default
    sqlite:///mlruns/mlflow.db); None for a tracking server, which puts them where it serves them."""
    db = sqlite_path(uri)
    return str(db.parent) if db else None


def check_store(uri: str) -> None:
    """A local store that import can write, and its artifact folder: checked before anything is written."""
    db = sqlite_path(uri)
    if db is None:
        return
    if db.exists():
        if not db.is_file() or not os.access(db, os.R_OK | os.W_OK):
            raise BundleError(f"--tracking-uri {uri}: {db} is not a writable file")
        with db.open("rb") as handle:
            head = handle.read(16)
        if head and head != b"SQLite format 3\x00":
            raise BundleError(f"--tracking-uri {uri}: {db} is not an SQLite database")
    _check_writable_folder(db.parent, f"--tracking-uri {uri}")


def _store_failure(uri: str, err: Exception, partial: bool = False) -> BundleError:
    first = str(err).splitlines()[0][:200] if str(err) else ""
    tail = "; the import stopped partway: run it again to finish it" if partial else ""
    return BundleError(f"--tracking-uri {uri}: the tracking store failed ({type(err).__name__}: {first}){tail}")


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """One import at a time into a local SQLite store (two at once would each create the runs the
    other has not finished yet, or race to create a new store's tables); a tracking server is left
    to its own transactions."""
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    import fcntl

    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        handle = open(db.with_name(db.name + ".import-lock"), "a")
    except OSError as err:
        raise BundleError(f"--tracking-uri {uri}: cannot write beside {db} ({err.strerror or err})") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class Plan:
    """What importing one file does to one store: the runs already there, by their original id."""

    path: Path
    bundle: Bundle
    experiment_id: str | None
    existing: dict[str, tracking.RunRecord]


def plan(uri: str, path: Path, bundle: Bundle) -> Plan:
    """Read the store and refuse a conflict (another sweep of the same name, a changed param, an
    experiment whose artifact folder cannot be written)."""
    found = tracking.experiments(uri).get(bundle.sweep)
    if found is None and tracking.deleted_experiment(uri, bundle.sweep):
        raise BundleError(f"{path}: the store holds a deleted experiment named {bundle.sweep!r}; restore it "
                          f"(`mlflow experiments restore`) or purge it (`mlflow gc`) first")
    existing = {r.origin_id: r for r in tracking.find_runs(uri, bundle.sweep)} if found else {}
    for record in existing.values():
        if record.tags.get("sweep_role") == "parent" and record.origin_id != bundle.parent.run_id:
            raise BundleError(f"{path}: the store already holds another sweep named {bundle.sweep!r} (parent run "
                              f"{record.origin_id}); import into another store with --tracking-uri")
    for run in bundle.runs:
        have = existing.get(run.run_id)
        changed = [k for k, v in run.params.items() if have and k in have.params and have.params[k] != v]
        if changed:
            raise BundleError(f"{path}: run {run.name} is in the store with other values of {', '.join(changed[:3])}")
    location = tracking.experiment_location(uri, found[0]) if found else None
    if location and location.startswith("file:"):
        _check_writable_folder(Path(location.removeprefix("file://")), f"{path}: experiment {bundle.sweep}'s artifacts")
    return Plan(path, bundle, found[0] if found else None, existing)


def _is_newer(run: Run, have: tracking.RunRecord) -> bool:
    """Whether the file saw the run later than the store did: it ended, or ended later. An older
    file never undoes what the store has since recorded (a cell that finished after the export)."""
    return run.end_time is not None and (have.status == "RUNNING" or have.end_ms is None or run.end_time > have.end_ms)


def apply(uri: str, plan: Plan) -> dict[str, int]:
    """Make the store hold the file's runs: create what is missing, add what a later export has
    that the store lacks, and leave alone what matches, the runs of the store itself (their
    original, not a copy) and anything the store has recorded since. Each new run is ended last,
    so an import that is killed leaves RUNNING runs that the next import completes."""
    bundle, counts = plan.bundle, {"created": 0, "updated": 0, "unchanged": 0}
    experiment = plan.experiment_id or tracking.experiment_id(tracking.client(uri), bundle.sweep, artifact_root(uri))
    experiment_tags = tracking.experiments(uri)[bundle.sweep][1]
    for key, value in {**bundle.experiment_tags, tracking.KIND_TAG: tracking.TRAINING_KIND}.items():
        if experiment_tags.get(key) != value:
            tracking.set_experiment_tag(uri, experiment, key, value)
    new_ids: dict[str, str] = {}
    for run in bundle.runs:
        have = plan.existing.get(run.run_id)
        if have is not None and have.run_id == run.run_id:  # this store is where the run happened
            new_ids[run.run_id] = run.run_id
            counts["unchanged"] += 1
            continue
        tags = {**run.tags, tracking.SOURCE_TAG: run.run_id}
        if run.parent_run_id is not None:
            tags.update({key: new_ids[run.parent_run_id] for key in PARENT_LINKS})
        artifacts = dict(run.artifacts)
        if run is bundle.parent and bundle.trials:
            artifacts[TRIALS_ARTIFACT] = _trials_jsonl(bundle.trials)
        created = have is None
        if created:
            run_id = tracking.create_run(uri, experiment, run.name, run.start_time, tags)
            have = tracking.RunRecord(run_id, run.name, "RUNNING", tags, {}, {}, run.start_time, None)
            have_points, have_files = {}, {}
        else:
            run_id = have.run_id
            have_points = tracking.metric_points(uri, run_id, sorted(run.metrics))
            have_files = tracking.artifact_files(uri, run_id)
        new_ids[run.run_id] = run_id
        newer = _is_newer(run, have)
        params = {k: v for k, v in run.params.items() if k not in have.params}
        new_tags = {k: v for k, v in tags.items() if k not in have.tags or (newer and have.tags[k] != v)}
        points = [(key, step, ms, value) for key, values in sorted(run.metrics.items())
                  for step, ms, value in _missing(values, have_points.get(key, []))]
        files = {p: data for p, data in artifacts.items() if p not in have_files or (newer and have_files[p] != len(data))}
        if TRIALS_ARTIFACT in artifacts and TRIALS_ARTIFACT in have_files and TRIALS_ARTIFACT not in files:
            # a sweep's parent stays RUNNING while its cells run: its trials tell which export is later
            stored = _jsonl(tracking.artifact_bytes(uri, run_id, TRIALS_ARTIFACT))
            if _progress(bundle.trials) > _progress(stored):
                files[TRIALS_ARTIFACT] = artifacts[TRIALS_ARTIFACT]
        tracking.log_batch(uri, run_id, params=params, tags=new_tags, points=points)
        for name, data in files.items():
            tracking.log_artifact_bytes(uri, run_id, name, data)
        if newer:
            tracking.set_status(uri, run_id, run.status, run.end_time)
        touched = params or new_tags or points or files or newer
        counts["created" if created else "updated" if touched else "unchanged"] += 1
    return counts


def _progress(trials: list[dict]) -> int:
    """How far a study has got: its trials, counting each that has ended twice."""
    return len(trials) + sum(t.get("state") != "RUNNING" for t in trials)


def _missing(points: list[tuple[int, int, float]], have: list[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
    """The points not yet in the store (NaN equal to NaN, so a diverged run is not logged again)."""
    seen = {(step, ms, _number(value)) for step, ms, value in have}
    return sorted(p for p in set(points) if (p[0], p[1], _number(p[2])) not in seen)


def import_files(uri: str, paths: list[Path]) -> list[str]:
    """Import every file, or none: each file, the store and every conflict are checked before the
    first write. A store that fails during the writes is named, with how to finish."""
    bundles = [(Path(p), read(Path(p))) for p in paths]
    names = [b.sweep for _, b in bundles]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise BundleError(f"{', '.join(str(p) for p, b in bundles if b.sweep in twice)}: "
                          f"the same sweep ({', '.join(twice)}) in several files; import one")
    check_store(uri)
    lines = []
    with store_lock(uri):  # also serialises creating a new store's tables
        try:
            plans = [plan(uri, path, bundle) for path, bundle in bundles]
        except BundleError:
            raise
        except Exception as err:  # noqa: BLE001 - any failure to read the store is one line naming it
            raise _store_failure(uri, err) from None
        for p in plans:
            try:
                counts = apply(uri, p)
            except Exception as err:  # noqa: BLE001 - as above, and saying how to finish
                raise _store_failure(uri, err, partial=True) from None
            lines.append(f"{p.path}: sweep {p.bundle.sweep}: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    return lines
