"""Where things are: the data and cache folders, the tracking store and the Optuna storage (from a
setting, else an environment variable, else a default under mlruns/), checkpoints, and whether a
folder can be written. Light (no MLflow, Optuna or torch): `harness report` and every check made
before a run reads from here."""

from __future__ import annotations

import os
from pathlib import Path

from harness.config import DataConfig, RunConfig, TrackingConfig, TrainerConfig
from harness.errors import ConfigError

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
DEFAULT_STORAGE = "sqlite:///mlruns/optuna.db"


def data_dir(cfg: DataConfig) -> Path:
    return Path(cfg.data_dir or os.environ.get("HARNESS_DATA_DIR") or "data")


def cache_dir(cfg: DataConfig) -> Path:
    default = Path.home() / ".cache" / "harness"
    return Path(cfg.cache_dir or os.environ.get("HARNESS_CACHE_DIR") or default)


def source_path(cfg: DataConfig) -> Path:
    source = Path(cfg.source).expanduser()
    return source if source.is_absolute() else data_dir(cfg) / source


def tracking_uri(cfg: TrackingConfig) -> str:
    return cfg.uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def sqlite_path(url: str) -> Path | None:
    """The database file of a `sqlite:///` URL (MLflow's or Optuna's), None for any other store."""
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def check_writable(path: str | Path, what: str) -> None:
    """Raise ConfigError unless the folder `path` (which need not exist yet) can be created and
    written: its nearest existing ancestor must be a writable folder. Nothing is created."""
    path = Path(path).expanduser().absolute()
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{what}: {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{what}: {path}: {existing} is not writable")


def is_tracking_server(uri: str) -> bool:
    """Whether the tracking URI is an MLflow tracking server (which keeps the artifacts it is sent)."""
    return uri.startswith(("http://", "https://"))


def check_outputs(cfg: RunConfig) -> None:
    """The run's local output folders can be written: checked before any run exists."""
    check_writable(cfg.trainer.checkpoint_dir, "trainer.checkpoint_dir")
    if "://" not in cfg.tracking.artifact_root and not is_tracking_server(tracking_uri(cfg.tracking)):  # a server keeps its own
        check_writable(cfg.tracking.artifact_root, "tracking.artifact_root")


def storage_url(given: str | None) -> str:
    """The Optuna storage URL: --storage, else $HARNESS_SWEEP_STORAGE, else the local default."""
    return given or os.environ.get("HARNESS_SWEEP_STORAGE") or DEFAULT_STORAGE


def checkpoint_path(trainer: TrainerConfig, run_id: str) -> Path:
    """A run's checkpoint, rewritten at the end of every epoch: what a killed run continues from."""
    return Path(trainer.checkpoint_dir) / run_id / "last.ckpt"
