"""Every use of a private (underscored or undocumented) part of MLflow, Optuna or submitit, in one place.

Each function names what the harness needs and why no public API gives it. An upgrade that moves
one of them raises `PrivateAPIChanged` naming the library, its installed version and the name, and
tests/test_private_api.py calls every function here, so a lock refresh that breaks one fails in
that one test rather than somewhere deep in a sweep. Nothing else under harness/ names a private
attribute of these libraries. (Heavy imports stay inside the functions: the command line reads
store files without MLflow.)
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Iterator
from pathlib import Path
from contextlib import contextmanager
from typing import Any


class PrivateAPIChanged(RuntimeError):
    """A private name this module uses is gone or changed: a bug to fix here, not bad input."""


@contextmanager
def _private(library: str, name: str) -> Iterator[None]:
    try:
        yield
    except (ImportError, AttributeError, TypeError) as err:  # TypeError: a changed signature
        version = importlib.metadata.version(library)
        raise PrivateAPIChanged(f"{library} {version}: {name} is gone or changed ({type(err).__name__}: {err}); "
                                "harness/private_api.py must be updated for this version") from err


# ---------------------------------------------------------------------------------- MLflow

def mlflow_schema_head() -> str:
    """The alembic revision of MLflow's newest tracking schema: what a complete store records. (No
    public API says which schema this MLflow writes; `mlflow db upgrade` knows it internally.)"""
    with _private("mlflow", "mlflow.store.db.utils._get_latest_schema_revision"):
        from mlflow.store.db.utils import _get_latest_schema_revision
        return _get_latest_schema_revision()


def mlflow_schema_revisions() -> set[str]:
    """Every alembic revision MLflow's migrations know: a database recording one was made by MLflow."""
    with _private("mlflow", "mlflow.store.db.utils._get_alembic_config"):
        from alembic.script import ScriptDirectory
        from mlflow.store.db.utils import _get_alembic_config
        return {r.revision for r in ScriptDirectory.from_config(_get_alembic_config("")).walk_revisions()}


def mlflow_table_names() -> set[str]:
    """The tables of MLflow's tracking schema, now and as first created (before any migration ran)."""
    with _private("mlflow", "mlflow.store.db.base_sql_model.Base, mlflow.store.tracking.dbmodels.initial_models"):
        from mlflow.store.db.base_sql_model import Base
        from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase
        return set(Base.metadata.tables) | set(InitialBase.metadata.tables)


def forget_mlflow_engine(uri: str) -> None:
    """Drop MLflow's per-process SQLAlchemy engine for a store URI. MLflow caches one engine per URI
    for the life of the process and has no public way to close it; after a half-made SQLite file is
    removed and made again, the cached engine's pooled connections would still hold the old file."""
    with _private("mlflow", "SqlAlchemyStore._engine_map"):
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
        engine = SqlAlchemyStore._engine_map.pop(uri, None)
    if engine is not None:
        engine.dispose()


def check_mlflow_fields(params: dict[str, str], tags: dict[str, str], metric_keys: list[str]) -> None:
    """Raise ValueError (MLflow's own message) for a param, tag or metric name or value this MLflow
    would refuse, before anything is written: MLflow checks them only as it logs, one at a time,
    and its checks are not public."""
    from mlflow.exceptions import MlflowException

    with _private("mlflow", "mlflow.utils.validation._validate_param, _validate_tag, _validate_metric_name"):
        from mlflow.utils.validation import _validate_metric_name, _validate_param, _validate_tag
        try:
            for key, value in params.items():
                _validate_param(key, value)
            for key, value in tags.items():
                _validate_tag(key, value)
            for key in metric_keys:
                _validate_metric_name(key)
        except MlflowException as err:
            raise ValueError(err.message) from None


def system_metrics_monitor(run_id: str, uri: str, every_s: float, resume: bool) -> Any:
    """MLflow's system-metrics sampler for one run, not started. The public switch,
    `mlflow.start_run(log_system_metrics=True)`, works only through the fluent API's global active
    run; the harness records runs through MlflowClient, so it starts the same monitor itself.
    `resume`: continue the run's `system/...` steps after its last."""
    with _private("mlflow", "mlflow.system_metrics.system_metrics_monitor.SystemMetricsMonitor"):
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
        return SystemMetricsMonitor(run_id, sampling_interval=every_s, samples_before_logging=1,
                                    resume_logging=resume, tracking_uri=uri)


def mlflow_pytorch() -> Any:
    """mlflow.pytorch without its Lightning autologging. Where pytorch_lightning is installed (the
    `lightning` package installs it), importing mlflow.pytorch imports its `_lightning_autolog`
    module, which imports pytorch_lightning, a second copy of the Lightning that the harness trains
    with (about 4 s of CPU per process here), and calls logging.basicConfig, whose root handler
    would print Lightning's INFO lines in every later run of the process. The harness never
    autologs, and MLflow imports that module inside `try: ... except ImportError`: a None in
    sys.modules makes the import fail, so MLflow goes on without it (mlflow.pytorch.autolog would
    then fail in this process)."""
    if "mlflow.pytorch" not in sys.modules:
        sys.modules.setdefault("mlflow.pytorch._lightning_autolog", None)
    import mlflow.pytorch

    return mlflow.pytorch


def pt2_pickle_problem(archive: Path) -> str | None:
    """Why a pt2 archive is not free of pickled records (which torch.export.load unpickles with
    weights_only=False), else None: MLflow's own check, which `mlflow.pytorch.load_model` runs only
    as it loads (with MLFLOW_ALLOW_PICKLE_DESERIALIZATION false, as harness.trained sets it). An
    import runs it before it stores a model, so a hostile one is refused, never stored."""
    from mlflow.exceptions import MlflowException

    with _private("mlflow", "mlflow.pytorch._validate_pt2_archive_is_pickle_free"):
        validate = mlflow_pytorch()._validate_pt2_archive_is_pickle_free
    try:
        validate(str(archive))
    except MlflowException as err:
        return err.message.split(". ")[0].removeprefix("Deserializing model using pickle is disallowed, but ")
    return None


# ---------------------------------------------------------------------------------- Optuna

def optuna_table_names() -> set[str]:
    """The tables of Optuna's RDB storage (to tell an Optuna database from another SQLite file)."""
    with _private("optuna", "optuna.storages._rdb.models.BaseModel"):
        from optuna.storages._rdb.models import BaseModel
        return set(BaseModel.metadata.tables)


def rdb_engine(storage: Any):
    """The SQLAlchemy engine of an Optuna RDBStorage (an undocumented attribute): the harness hooks
    SQLite transactions on it so that each takes the write lock as it begins (harness.claims)."""
    with _private("optuna", "RDBStorage.engine"):
        return storage.engine


# -------------------------------------------------------------------------------- submitit

def submitit_sbatch_text(executor: Any, tasks: int) -> str:
    """The sbatch script a SlurmExecutor would submit for an array of `tasks` (`harness submit
    --dry-run` shows the job before it exists; submitit writes it only while submitting)."""
    import copy

    with _private("submitit", "SlurmExecutor._make_submission_file_text"):
        array = copy.deepcopy(executor)
        array.parameters["map_count"] = tasks
        return array._make_submission_file_text(array._submitit_command_str, "dry-run")
