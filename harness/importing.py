"""`harness import`: a runs file (harness.bundle) into any MLflow store, idempotently.

Each copied run carries its original id in the tag `harness.source_run_id`, so a second import of
the same file changes nothing, a later export of a sweep that was still running brings its runs
forward, and an older file never steps a run back. Every file, the store and every conflict are
checked before the first write.

A file written with `harness export --checkpoints` also carries each unfinished run's last
checkpoint: it is put where the sweep looks for the copied run's checkpoint (`places.checkpoint_path`
under the run's own `trainer.checkpoint_dir`, where that is a folder inside the working folder, or
--checkpoint-dir: a file never chooses a place elsewhere on this machine), so the same sweep command
continues that run from its last epoch. Only a checkpoint that `torch.load(weights_only=True)`
reads is accepted (a pickle can run code; tensors and plain values cannot); one already here is
replaced only by a later export's, and never while a process trains that run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import io
import os
import tempfile

from harness import places, stores, tracking
from harness.bundle import (PARENT_LINKS, TRIALS_ARTIFACT, Bundle, Run, checkpoint_dir, json_number, parse_jsonl,
                            read, trials_jsonl)
from harness.config import TrainerConfig
from harness.errors import ConfigError, RunsFileError
from harness.places import check_writable, sqlite_path


def artifact_root(uri: str) -> str | None:
    """Where imported runs keep their artifacts: beside a SQLite store (mlruns/ for the default
    sqlite:///mlruns/mlflow.db); None for a tracking server, which puts them where it serves them."""
    db = sqlite_path(uri)
    return str(db.parent) if db else None


def _store_failure(uri: str, err: Exception, partial: bool = False) -> RunsFileError:
    tail = "; the import stopped partway: run it again to finish it" if partial else ""
    return RunsFileError(f"--tracking-uri {uri}: the tracking store failed ({stores.failure(err)}){tail}")


@dataclass
class Plan:
    """What importing one file does to one store: the runs already there, by their original id."""

    path: Path
    bundle: Bundle
    experiment_id: str | None
    existing: dict[str, tracking.RunRecord]
    checkpoint_dir: str | None = None  # --checkpoint-dir: where carried checkpoints go, else each run's own


def plan(uri: str, path: Path, bundle: Bundle, checkpoint_folder: str | None = None) -> Plan:
    """Read the store and refuse a conflict (another sweep of the same name, a changed param, an
    experiment whose artifact folder cannot be written)."""
    found = tracking.experiments(uri).get(bundle.sweep)
    if found is None and tracking.deleted_experiment(uri, bundle.sweep):
        raise RunsFileError(f"{path}: the store holds a deleted experiment named {bundle.sweep!r}; restore it "
                          f"(`mlflow experiments restore`) or purge it (`mlflow gc`) first")
    existing = {r.origin_id: r for r in tracking.find_runs(uri, bundle.sweep)} if found else {}
    for record in existing.values():
        if record.tags.get("sweep_role") == "parent" and record.origin_id != bundle.parent.run_id:
            raise RunsFileError(f"{path}: the store already holds another sweep named {bundle.sweep!r} (parent run "
                              f"{record.origin_id}); import into another store with --tracking-uri")
    for run in bundle.runs:
        have = existing.get(run.run_id)
        changed = [k for k, v in run.params.items() if have and k in have.params and have.params[k] != v]
        if changed:
            raise RunsFileError(f"{path}: run {run.name} is in the store with other values of {', '.join(changed[:3])}")
    location = tracking.experiment_location(uri, found[0]) if found else None
    if location and location.startswith("file:"):
        check_writable(location.removeprefix("file://"), f"{path}: experiment {bundle.sweep}'s artifacts")
    return Plan(path, bundle, found[0] if found else None, existing, checkpoint_folder)


def check_checkpoints(path: Path, bundle: Bundle, given: str | None) -> None:
    """Refuse a carried checkpoint that is not plain tensors and values, or whose folder cannot be
    written: before the store is opened."""
    carried = [run for run in bundle.children if run.checkpoint is not None]
    if not carried:
        return
    import pickle

    import torch  # only for a file that carries checkpoints

    for run in carried:
        try:
            checkpoint = torch.load(io.BytesIO(run.checkpoint), map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError, OSError) as err:
            raise RunsFileError(f"{path}: run {run.name}'s checkpoint does not load as tensors and plain values "
                                f"(torch.load weights_only: {str(err).splitlines()[0][:200]}); not importing it") from None
        if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
            raise RunsFileError(f"{path}: run {run.name}'s checkpoint is not a Lightning checkpoint (no state_dict)")
    for run in carried:  # a file names folders inside the working folder, as a grid does; others only by --checkpoint-dir
        folder = checkpoint_dir(run, given)
        if not given and (folder.is_absolute() or ".." in folder.parts or str(folder).startswith("~")):
            raise RunsFileError(f"{path}: run {run.name} keeps its checkpoint in {folder} (its trainer.checkpoint_dir), "
                                "outside the working folder: a runs file may only name a folder inside it; "
                                "pass --checkpoint-dir DIR to say where it goes")
    for folder in sorted({str(checkpoint_dir(run, given)) for run in carried}):
        try:
            check_writable(folder, f"{path}: checkpoints")
        except ConfigError as err:
            raise RunsFileError(str(err)) from None


def _restore_checkpoint(plan: Plan, run: Run, run_id: str, newer: bool) -> bool:
    """Put the run's carried checkpoint where the sweep looks for run `run_id`'s, unless a
    checkpoint is there already that this file did not see the end of, or a process trains the
    run. Atomic: a reader sees the old file or the new one. Returns whether it wrote."""
    trainer = TrainerConfig(checkpoint_dir=str(checkpoint_dir(run, plan.checkpoint_dir)))
    target = places.checkpoint_path(trainer, run_id)
    if target.is_file() and not newer:
        return False
    try:
        with places.training_lock(trainer, run_id):
            partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
            try:
                partial.write_bytes(run.checkpoint)
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
    except ConfigError:  # being trained here: its own checkpoint is the newer
        return False
    return True


def _is_newer(run: Run, have: tracking.RunRecord) -> bool:
    """Whether the file saw the run later than the store did: it ended, or ended later. An older
    file never undoes what the store has since recorded (a cell that finished after the export)."""
    return run.end_time is not None and (have.status == "RUNNING" or have.end_ms is None or run.end_time > have.end_ms)


def apply(uri: str, plan: Plan) -> dict[str, int]:
    """Make the store hold the file's runs: create what is missing, add what a later export has
    that the store lacks, and leave alone what matches, the runs of the store itself (their
    original, not a copy) and anything the store has recorded since. Each new run is ended last,
    so an import that is killed leaves RUNNING runs that the next import completes."""
    bundle, counts = plan.bundle, {"created": 0, "updated": 0, "unchanged": 0, "checkpoints": 0}
    experiment = plan.experiment_id or tracking.experiment_id(uri, bundle.sweep, artifact_root(uri))
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
            artifacts[TRIALS_ARTIFACT] = trials_jsonl(bundle.trials)
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
        restored = run.checkpoint is not None and _restore_checkpoint(plan, run, run_id, newer)
        params = {k: v for k, v in run.params.items() if k not in have.params}
        new_tags = {k: v for k, v in tags.items() if k not in have.tags or (newer and have.tags[k] != v)}
        points = [(key, step, ms, value) for key, values in sorted(run.metrics.items())
                  for step, ms, value in _missing(values, have_points.get(key, []))]
        files = {p: data for p, data in artifacts.items() if p not in have_files or (newer and have_files[p] != len(data))}
        if TRIALS_ARTIFACT in artifacts and TRIALS_ARTIFACT in have_files and TRIALS_ARTIFACT not in files:
            # a sweep's parent stays RUNNING while its cells run: its trials tell which export is later
            stored = parse_jsonl(tracking.artifact_bytes(uri, run_id, TRIALS_ARTIFACT))
            if _progress(bundle.trials) > _progress(stored):
                files[TRIALS_ARTIFACT] = artifacts[TRIALS_ARTIFACT]
        tracking.log_batch(uri, run_id, params=params, tags=new_tags, points=points)
        datasets = run.datasets if run.datasets and (created or not tracking.run_datasets(uri, run_id)) else []
        tracking.log_dataset_records(uri, run_id, datasets)
        model = bool(run.model_files) and (created or tracking.run_model(uri, run_id) is None)
        if model:
            _log_model(uri, run, run_id)
        for name, data in files.items():
            tracking.log_artifact_bytes(uri, run_id, name, data)
        if newer:
            tracking.set_status(uri, run_id, run.status, run.end_time)
        touched = params or new_tags or points or files or newer or restored or datasets or model
        counts["created" if created else "updated" if touched else "unchanged"] += 1
        counts["checkpoints"] += restored
    return counts


def _log_model(uri: str, run: Run, run_id: str) -> None:
    """The carried model (checked by bundle.read: a pt2 folder) as the copied run's MLflow model."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in run.model_files.items():
            (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / name).write_bytes(data)
        tracking.log_model_folder(uri, run_id, Path(tmp), int(run.model_tags.get("epochs", 0)), run.model_tags)


def _progress(trials: list[dict]) -> int:
    """How far a study has got: its trials, counting each that has ended twice."""
    return len(trials) + sum(t.get("state") != "RUNNING" for t in trials)


def _missing(points: list[tuple[int, int, float]], have: list[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
    """The points not yet in the store (NaN equal to NaN, so a diverged run is not logged again)."""
    seen = {(step, ms, json_number(value)) for step, ms, value in have}
    return sorted(p for p in set(points) if (p[0], p[1], json_number(p[2])) not in seen)


def import_files(uri: str, paths: list[Path], checkpoint_folder: str | None = None) -> list[str]:
    """Import every file, or none: each file, the store and every conflict are checked before the
    first write. A store that fails during the writes is named, with how to finish. Carried
    checkpoints go under `checkpoint_folder` where given, else each run's own checkpoint folder."""
    bundles = [(Path(p), read(Path(p))) for p in paths]
    names = [b.sweep for _, b in bundles]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise RunsFileError(f"{', '.join(str(p) for p, b in bundles if b.sweep in twice)}: "
                          f"the same sweep ({', '.join(twice)}) in several files; import one")
    for path, bundle in bundles:
        check_checkpoints(path, bundle, checkpoint_folder)
    stores.check_tracking_store(uri)
    lines = []
    # One import at a time into a store: two at once would each create the runs the other has not
    # finished yet. (Creating a new store's tables has its own lock: harness.stores.)
    with stores.creation_lock(uri, "import"):
        try:
            plans = [plan(uri, path, bundle, checkpoint_folder) for path, bundle in bundles]
        except RunsFileError:
            raise
        except Exception as err:  # noqa: BLE001 - any failure to read the store is one line naming it
            raise _store_failure(uri, err) from None
        for p in plans:
            try:
                counts = apply(uri, p)
            except Exception as err:  # noqa: BLE001 - as above, and saying how to finish
                raise _store_failure(uri, err, partial=True) from None
            restored = counts.pop("checkpoints")
            lines.append(f"{p.path}: sweep {p.bundle.sweep}: " + ", ".join(f"{n} {k}" for k, n in counts.items())
                         + (f"; {restored} unfinished run(s) will continue from their carried checkpoint" if restored else ""))
    return lines
