"""A sweep's runs in one file (`harness export`); `harness.importing` puts them into any MLflow store.

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
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from harness import places, stores, tracking
from harness import config as C
from harness.places import check_writable, is_whole_zip
from harness.errors import ConfigError, RunsFileError, StoreError, writing

FORMAT_NAME, FORMAT_VERSION = "harness-runs", 1
FILE_NAME = "runs.zip"  # the name a report folder gives its sweep's file
TEXT_SUFFIXES = (".yaml", ".yml", ".json", ".txt", ".md", ".diff", ".patch")
FIGURE_SUFFIXES = (".png", ".svg")
TRIALS_ARTIFACT = "optuna/trials.jsonl"  # an imported parent's Optuna trials (the store has no study)
SKIPPED_FOLDERS = ("report/", "optuna/")  # the report's figures are regenerated; trials travel apart
CHECKPOINT_MEMBER = "checkpoints/{}/last.ckpt"  # an unfinished run's checkpoint, by its exported id
MODEL_FOLDER = "models/{}/"  # a run's MLflow model, by its exported id (harness.trained: pt2 only)
# Every file of a model folder `harness.trained` logs, and nothing else may travel (no data/model.pth pickle).
MODEL_FILES = {"MLmodel", tracking.PT2_FILE, "conda.yaml", "python_env.yaml", "requirements.txt", "input_example.json",
               "serving_input_example.json"}
UNFINISHED = ("KILLED", "RUNNING")  # the runs whose checkpoint a sweep continues
PARENT_LINKS = ("mlflow.parentRunId", "sweep_parent")  # a child's tags that hold its parent's run id
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip can hold: fixed, so the bytes do not move
RECORDS = ("manifest.json", "README.md", "runs.jsonl", "metrics.jsonl", "trials.jsonl")
# What one file may expand to (checked on the sizes its zip declares, which reading enforces),
# generous for any real sweep: a learning-curve image is ~0.1 MB, the metrics of a 100-cell sweep a
# few MB, a checkpoint of the paper's ImageNet net 0.5 GB.
MAX_MEMBER, MAX_CHECKPOINT, MAX_EXPANDED = 64 << 20, 2 << 30, 4 << 30
MAX_MEMBERS = 100_000  # a 100-cell sweep's file holds a few hundred members (more with --figures or --models)

FORMAT = f"""# {FORMAT_NAME}, version {FORMAT_VERSION}: one sweep's MLflow runs

Written by `harness export`, read by `harness import` and `harness report`. Plain text throughout, but
for the optional checkpoints:

- `manifest.json`: format, version, sweep name, the experiment's own tags, and counts of runs,
  metric points and trials (a file whose contents disagree with its counts is refused).
- `runs.jsonl`: one run a line, the sweep's parent run first, then its children by start time:
  `run_id`, `parent_run_id` (null for the parent), `name`, `status`, `start_time`, `end_time`
  (milliseconds since 1970, UTC; null while RUNNING), `params` and `tags` (string -> string), and
  where the run recorded any, `datasets`: its MLflow dataset inputs (`name`, `digest`, `source_type`,
  `source`, `schema`, `profile`, `tags`), the data it read with its sha256 and split sizes.
- `metrics.jsonl`: one logged metric point a line: `run_id`, `key`, `step` (epochs completed),
  `timestamp` (ms), `value` (a number; "NaN", "Infinity" or "-Infinity" as strings).
- `trials.jsonl`: the sweep's Optuna trials: `number`, `state`, `value`, `datetime_start`,
  `datetime_complete`, `user_attrs` (the cell hash, seed, axis values, worker). A sweep imported and
  continued elsewhere holds the trials it came with and those of the study that continued it, one
  history by start time (`number` is then the place in it, not one study's own).
- `artifacts/<run_id>/<path>`: the runs' text artifacts: each child's resolved `config.yaml`,
  the parent's `grid.yaml` (learning-curve images only with `harness export --figures`).
- `models/<run_id>/...` (only with `harness export --models`): each finished run's trained network,
  the MLflow model folder that `harness.trained` logs (MLmodel, {tracking.PT2_FILE}: a torch.export archive,
  which loads without running pickled code, and its small text files); its tags in `runs.jsonl` as
  `model_tags`. No other file may be in a model's folder.
- `checkpoints/<run_id>/last.ckpt` (only with `harness export --checkpoints`): the last epoch's
  checkpoint of each run left unfinished (KILLED or RUNNING), the one binary member, so that the
  sweep continues that run mid-cell wherever the file is imported (a Lightning checkpoint that
  must load with `torch.load(weights_only=True)`: tensors and plain values, no code).

Nothing else, and nowhere else: a member outside these places (an absolute path, a backslash,
`..`) is refused, as is one that expands past {MAX_MEMBER >> 20} MiB ({MAX_CHECKPOINT >> 30} GiB for a
checkpoint or a model's file), a file past {MAX_EXPANDED >> 30} GiB in all, or one of more than {MAX_MEMBERS:,}
members.

In Python: `pandas.read_json(zipfile.ZipFile(path).open("metrics.jsonl"), lines=True)`.
"""


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
    checkpoint: bytes | None = None  # an unfinished run's last checkpoint (`harness export --checkpoints`)
    datasets: list[dict] = field(default_factory=list)  # its MLflow dataset inputs (tracking.dataset_record)
    # its trained network's MLflow model (`harness export --models`): files by path, and the model's tags
    model_files: dict[str, bytes] = field(default_factory=dict)
    model_tags: dict[str, str] = field(default_factory=dict)

    def latest(self) -> dict[str, float]:
        """Each metric's latest value, by MLflow's rule: the largest (step, timestamp, value)."""
        return {key: max(points)[2] for key, points in self.metrics.items() if points}

    def history(self, keys: list[str]) -> dict[str, list[tuple[int, float]]]:
        return {k: tracking.per_step(self.metrics.get(k, [])) for k in keys}

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

def from_store(uri: str, sweep: str, storage_url: str, figures: bool = False, checkpoints: bool = False,
               models: bool = False) -> Bundle:
    """The sweep's parent (`tracking.sweep_parent`, as a reader) and all its active children; with
    `checkpoints`, the last checkpoint of each unfinished child found on this machine; with
    `models`, each child's trained network (its MLflow model)."""
    stores.check_storage(storage_url)  # a --storage that cannot be one is refused, even where another is read
    parent = tracking.sweep_parent(uri, sweep, storage_url, reader=True)
    if parent is None:
        known = ", ".join(tracking.sweep_names(uri)) or "none"
        raise ConfigError(f"sweep {sweep!r}: no sweep parent run in {uri} (sweeps there: {known})")
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
            artifacts={p: tracking.artifact_bytes(uri, record.run_id, p) for p in wanted},
            datasets=tracking.run_datasets(uri, record.run_id)))
        if checkpoints and record is not parent and record.status in UNFINISHED:
            runs[-1].checkpoint = _local_checkpoint(runs[-1], record.run_id)
        model = tracking.run_model(uri, record.run_id) if models and record is not parent else None
        if model is not None:
            with tempfile.TemporaryDirectory() as tmp:
                folder = tracking.download_model(uri, model, Path(tmp))
                runs[-1].model_files = {f.relative_to(folder).as_posix(): f.read_bytes()
                                        for f in sorted(folder.rglob("*")) if f.is_file()}
            runs[-1].model_tags = dict(model.tags)
    if TRIALS_ARTIFACT in tracking.artifact_files(uri, parent.run_id, "optuna"):
        # an imported sweep: the trials it came with, and those of any study that continued it here
        carried = parse_jsonl(tracking.artifact_bytes(uri, parent.run_id, TRIALS_ARTIFACT))
        trials = merge_trials(carried, _study_trials(storage_url, parent.tags.get("optuna_study", sweep)))
    else:  # the storage the parent was made for, where the one given is another (`sweep_parent`'s fallback)
        made_for = parent.tags.get("optuna_storage", stores.redact(storage_url))
        if made_for != stores.redact(storage_url) and "***" in made_for:
            raise StoreError(f"sweep {sweep}: its Optuna trials are in {made_for}, not {stores.redact(storage_url)}: "
                             "name that storage with --storage")
        trials = _study_trials(storage_url if made_for == stores.redact(storage_url) else made_for,
                               parent.tags.get("optuna_study", sweep))
    # MLflow's own experiment tags (the UI's view) are set by whoever shows the runs, not carried
    experiment_tags = {k: v for k, v in tracking.experiments(uri)[sweep][1].items() if not k.startswith("mlflow.")}
    return Bundle(sweep, experiment_tags, runs, trials)


def checkpoint_dir(run: Run, given: str | Path | None = None) -> Path:
    """Where a run's checkpoints live on this machine: `given`, else the folder its recorded config
    names (`trainer.checkpoint_dir`, relative to the working folder, as the sweep reads it: the
    same grid names the same folder on every machine), else the default."""
    if given:
        return Path(given)
    try:
        recorded = (C.parse_yaml(run.artifacts.get(tracking.CONFIG_ARTIFACT, b""), run.name) or {}).get("trainer", {})
        return Path(str(recorded["checkpoint_dir"]))
    except (ConfigError, AttributeError, KeyError, TypeError):
        return Path(C.TrainerConfig().checkpoint_dir)


def _local_checkpoint(run: Run, local_id: str) -> bytes | None:
    """The run's checkpoint as written here, or None where there is none, or where it is being
    rewritten as it is read (the file is a zip: a torn copy fails its CRCs) twice running."""
    path = places.checkpoint_path(C.TrainerConfig(checkpoint_dir=str(checkpoint_dir(run))), local_id)
    for _ in range(2):
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if is_whole_zip(data):
            return data
        time.sleep(1)
    return None


def _study_trials(storage_url: str, study: str) -> list[dict]:
    """The study's trials as the runs file holds them (`stores.study_trials`: read, never created)."""
    def when(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    return [json_safe({"number": t.number, "state": t.state.name, "value": t.value, "datetime_start": when(t.datetime_start),
                       "datetime_complete": when(t.datetime_complete), "user_attrs": t.user_attrs})
            for t in stores.study_trials(storage_url, study)]


def merge_trials(carried: list[dict], live: list[dict]) -> list[dict]:
    """An imported sweep's trials (`carried`) and those of the study that continued it on this
    store (`live`; the same trial in both, as where a file comes back to the store it came from, is
    the live one, which is newer): one history, by start time, numbered in that order (a number is
    Optuna's own only while one study ran the whole sweep)."""
    def key(trial: dict) -> tuple:
        attrs = trial.get("user_attrs") or {}
        started = trial.get("datetime_start") or f"not started: {trial.get('number')}"
        return str(started), str(attrs.get("cell", attrs.get("mlflow_parent", "")))

    if not live:
        return carried
    merged = {key(t): t for t in carried} | {key(t): t for t in live}
    ordered = sorted(merged.values(), key=lambda t: (t.get("datetime_start") is None, str(t.get("datetime_start"))))
    return [{**t, "number": number} for number, t in enumerate(ordered)]


# ------------------------------------------------------------------------------ the file

def json_number(value: float) -> float | str:
    return value if math.isfinite(value) else str(value).replace("inf", "Infinity").replace("nan", "NaN")


def _metric_value(value: Any, key: str, run_id: str) -> float:
    """A metric point's value, NaN allowed for a loss (a diverged run's last one may be NaN). An
    infinity is no error rate, loss or time a run logs, so one in a runs file was put there by hand,
    or is a number past a float's range (1e999); an error rate (`*_err`, `*_err5`) is a percent, and
    the report computes its deltas from it."""
    what = f"metric {key!r} of run {run_id}"
    # a JSON number, or the three texts json_number writes: not true (float(True) is 1.0) nor "50"
    if isinstance(value, bool) or not (isinstance(value, (int, float)) or value in ("NaN", "Infinity", "-Infinity")):
        raise ValueError(f"{what} is {json.dumps(value)[:40]}, not a number")
    number = float(value)
    if math.isinf(number):
        raise ValueError(f"{what} is {value!r}, past a float's range")
    if key.endswith(("_err", "_err5")) and not 0 <= number <= 100:  # NaN fails this too
        raise ValueError(f"{what} is {number!r}: an error rate is a percent from 0 to 100")
    return number


def json_safe(value: Any) -> Any:
    """JSON without NaN or infinity (a trial whose run logged no test error has the value inf)."""
    if isinstance(value, float):
        return json_number(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _dumps(rows: list[dict]) -> bytes:
    return "".join(json.dumps(row, sort_keys=True, allow_nan=False) + "\n" for row in rows).encode()


def trials_jsonl(trials: list[dict]) -> bytes:
    return _dumps(sorted(trials, key=lambda t: t["number"]))


def parse_jsonl(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def check_target(path: Path) -> None:
    """A runs file may be written at `path`: a writable folder, and nothing there but an earlier
    runs file (never a tracking store or any other file named by mistake)."""
    check_writable(path.parent, f"--out {path}")
    if path.is_dir():
        raise RunsFileError(f"--out {path}: a folder; name the file to write")
    if path.exists():
        try:
            read(path)
        except RunsFileError:
            raise RunsFileError(f"--out {path}: exists and is not a runs file; not overwriting it (remove it "
                              "or name another file)") from None


def write(bundle: Bundle, path: Path) -> Path:
    """Write the file atomically (a reader never sees half of it); the same bundle, the same bytes
    (with the same zlib: deflate's output is not promised across its versions)."""
    path = Path(path)
    check_target(path)
    # `datasets` only where a run has some: a file of runs recorded before them keeps its bytes
    runs = [{"run_id": r.run_id, "parent_run_id": r.parent_run_id, "name": r.name, "status": r.status,
             "start_time": r.start_time, "end_time": r.end_time, "params": r.params, "tags": r.tags,
             **({"datasets": r.datasets} if r.datasets else {}), **({"model_tags": r.model_tags} if r.model_files else {})}
            for r in bundle.runs]
    points = [{"run_id": r.run_id, "key": key, "step": step, "timestamp": ms, "value": json_number(value)}
              for r in bundle.runs for key in sorted(r.metrics) for step, ms, value in sorted(r.metrics[key])]
    manifest = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "sweep": bundle.sweep,
                "experiment_tags": bundle.experiment_tags, "runs": len(runs), "metric_points": len(points),
                "trials": len(bundle.trials)}
    members = {"manifest.json": (json.dumps(manifest, sort_keys=True, indent=1) + "\n").encode(),
               "README.md": FORMAT.encode(), "runs.jsonl": _dumps(runs), "metrics.jsonl": _dumps(points),
               "trials.jsonl": trials_jsonl(bundle.trials)}
    for r in bundle.runs:
        members.update({f"artifacts/{r.run_id}/{name}": data for name, data in sorted(r.artifacts.items())})
    members.update({CHECKPOINT_MEMBER.format(r.run_id): r.checkpoint for r in bundle.runs if r.checkpoint is not None})
    for r in bundle.runs:
        members.update({MODEL_FOLDER.format(r.run_id) + name: data for name, data in sorted(r.model_files.items())})
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with writing(f"the runs file of sweep {bundle.sweep}", path):  # a full disk: one line, exit 1
            with zipfile.ZipFile(partial, "w") as archive:
                for name, data in members.items():
                    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
                    info.compress_type, info.external_attr, info.create_system = zipfile.ZIP_DEFLATED, 0o644 << 16, 3
                    archive.writestr(info, data, compresslevel=9)
            os.replace(partial, path)
    except OSError as err:
        raise RunsFileError(f"--out {path}: cannot write it ({err.strerror or err})") from None
    finally:
        partial.unlink(missing_ok=True)
    return path


def read(path: Path) -> Bundle:
    """Read and check a whole file; any damage raises RunsFileError naming it, before anything is used."""
    path = Path(path)
    if not path.is_file():
        raise RunsFileError(f"{path}: {'a folder, not a runs file' if path.is_dir() else 'no such file'}")
    try:
        with zipfile.ZipFile(path) as archive:
            problem = _member_problem(archive)
            if problem:
                raise RunsFileError(f"{path}: {problem}")
            manifest = json.loads(archive.read("manifest.json"))
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
                raise RunsFileError(f"{path}: not a {FORMAT_NAME} file (its manifest.json names no such format)")
            version = manifest.get("version")
            if version != FORMAT_VERSION:
                newer = " (written by a newer harness: upgrade)" if isinstance(version, int) and version > FORMAT_VERSION else ""
                raise RunsFileError(f"{path}: format version {version!r}; this harness reads version {FORMAT_VERSION}{newer}")
            runs = [Run(_text(r["run_id"]), None if r["parent_run_id"] is None else _text(r["parent_run_id"]),
                        _text(r["name"]), _text(r["status"]), int(r["start_time"]),
                        None if r["end_time"] is None else int(r["end_time"]), _texts(r["params"]), _texts(r["tags"]),
                        datasets=[_dataset(d) for d in r.get("datasets", [])], model_tags=_texts(r.get("model_tags", {})))
                    for r in parse_jsonl(archive.read("runs.jsonl"))]
            by_id = {r.run_id: r for r in runs}
            points = parse_jsonl(archive.read("metrics.jsonl"))
            for p in points:
                by_id[p["run_id"]].metrics.setdefault(_text(p["key"]), []).append(
                    (int(p["step"]), int(p["timestamp"]), _metric_value(p["value"], _text(p["key"]), _text(p["run_id"]))))
            for name in sorted(n for n in archive.namelist() if n.startswith("artifacts/") and not n.endswith("/")):
                run_id, _, inner = name.removeprefix("artifacts/").partition("/")
                if run_id not in by_id:
                    raise ValueError(f"{name!r}: the artifact of no run in the file")
                by_id[run_id].artifacts[inner] = archive.read(name)
            for name in sorted(n for n in archive.namelist() if n.startswith("checkpoints/") and not n.endswith("/")):
                run_id = name.removeprefix("checkpoints/").partition("/")[0]
                if run_id not in by_id:
                    raise ValueError(f"{name!r}: the checkpoint of no run in the file")
                by_id[run_id].checkpoint = archive.read(name)
            for name in sorted(n for n in archive.namelist() if n.startswith("models/") and not n.endswith("/")):
                run_id, _, inner = name.removeprefix("models/").partition("/")
                if run_id not in by_id:
                    raise ValueError(f"{name!r}: the model of no run in the file")
                by_id[run_id].model_files[inner] = archive.read(name)
            bundle = Bundle(_text(manifest.get("sweep")), _texts(manifest.get("experiment_tags") or {}), runs,
                            parse_jsonl(archive.read("trials.jsonl")))
    except RunsFileError:
        raise
    # OverflowError: a number past a float's range where an integer belongs ("step": 1e400);
    # RecursionError: JSON nested deeper than the parser's stack ([[[[...)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError, ValueError, TypeError, AttributeError,
            OverflowError, RecursionError) as err:
        raise RunsFileError(f"{path}: truncated or corrupt ({type(err).__name__}: {str(err)[:300]})") from None
    _check(path, bundle, manifest, len(points))
    return bundle


def _member_problem(archive: zipfile.ZipFile) -> str | None:
    """Whether any member is not where FORMAT puts one, or past the sizes it allows: checked on
    the names and the sizes the zip declares (which reading enforces), before any member is read."""
    if len(archive.infolist()) > MAX_MEMBERS:
        return f"{len(archive.infolist()):,} members; at most {MAX_MEMBERS:,}"
    total = 0
    for info in archive.infolist():
        name, parts = info.filename, PurePosixPath(info.filename).parts
        folder = name.endswith("/")  # a folder entry, as `zip -r` adds them
        clean = (parts and "\\" not in name and "\0" not in name and not name.startswith("/") and "//" not in name
                 and not {"..", "."} & set(parts))
        placed = (name in RECORDS
                  or (parts[:1] in (("artifacts",), ("models",)) and len(parts) >= (2 if folder else 3))
                  or (parts[:1] == ("checkpoints",) and (len(parts) <= 2 if folder else
                                                          len(parts) == 3 and name == CHECKPOINT_MEMBER.format(parts[1]))))
        if not (clean and placed):
            return f"member {name!r} is not where the format puts anything"
        big = parts[0] == "checkpoints" or (parts[0] == "models" and "/".join(parts[2:]) == tracking.PT2_FILE)
        cap = MAX_CHECKPOINT if big else MAX_MEMBER
        if info.file_size > cap:
            return f"member {name!r} expands to {info.file_size:,} bytes; at most {cap:,}"
        total += info.file_size
    return f"its members expand to {total:,} bytes; at most {MAX_EXPANDED:,}" if total > MAX_EXPANDED else None


def _dataset(value: Any) -> dict:
    """One dataset input as `tracking.dataset_record` writes it: text fields, schema and profile optional."""
    if not isinstance(value, dict):
        raise TypeError(f"{value!r} where a dataset input belongs")
    record = {k: _text(value[k]) for k in ("name", "digest", "source_type", "source")}
    record |= {k: None if value.get(k) is None else _text(value[k]) for k in ("schema", "profile")}
    return record | {"tags": _texts(value.get("tags", {}))}


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} where text belongs")
    return value


def _texts(mapping: Any) -> dict[str, str]:
    if not isinstance(mapping, dict):
        raise TypeError(f"{mapping!r} where a mapping of text belongs")
    return {_text(k): _text(v) for k, v in mapping.items()}


def _check(path: Path, bundle: Bundle, manifest: dict, points: int) -> None:
    def corrupt(why: str) -> RunsFileError:
        return RunsFileError(f"{path}: truncated or corrupt ({why})")

    counts = {"runs": len(bundle.runs), "metric_points": points, "trials": len(bundle.trials)}
    for key, count in counts.items():
        if manifest.get(key) != count:
            raise corrupt(f"manifest says {manifest.get(key)} {key}, found {count}")
    if C.plain_name_problem(bundle.sweep):
        raise corrupt(f"sweep name: {C.plain_name_problem(bundle.sweep)}")
    if not bundle.runs or bundle.parent.parent_run_id is not None or bundle.parent.tags.get("sweep_role") != "parent":
        raise corrupt("its first run is not a sweep parent")
    if "grid.yaml" not in bundle.parent.artifacts:
        raise corrupt("the parent run has no grid.yaml")
    # read back by every later report and sweep: YAML that cannot be read (an alias bomb) is refused here
    for run, name in [(bundle.parent, "grid.yaml"), *((r, tracking.CONFIG_ARTIFACT) for r in bundle.children)]:
        if name in run.artifacts:
            try:
                C.parse_yaml(run.artifacts[name], f"run {run.name}'s {name}")
            except ConfigError as err:
                raise corrupt(str(err)) from None
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
        if run.checkpoint is not None and (run is bundle.parent or run.status not in UNFINISHED):
            raise corrupt(f"run {run.name} is {run.status} and carries a checkpoint: only an unfinished child may")
        if run.checkpoint is not None and not is_whole_zip(run.checkpoint):
            raise corrupt(f"run {run.name}'s checkpoint is not a whole torch checkpoint")
        if run.model_files and (run is bundle.parent or set(run.model_files) - MODEL_FILES or tracking.PT2_FILE not in run.model_files
                                or not is_whole_zip(run.model_files[tracking.PT2_FILE])):
            raise corrupt(f"run {run.name}'s model is not a pt2 MLflow model (only {', '.join(sorted(MODEL_FILES))} may "
                          "travel: a pickled model could run code as it loads)")
    for run in bundle.children:
        try:
            C.check_recorded_run(run.params, run.tags)
        except ConfigError as err:
            raise RunsFileError(f"{path}: run {run.name}: {err}") from None
        if run.model_files:
            from harness import trained  # torch and MLflow's PyTorch flavour: only for a file with models

            problem = trained.folder_problem(run.model_files, run.model_tags)
            if problem:
                raise corrupt(f"run {run.name}'s model is not one harness logs: {problem}")
