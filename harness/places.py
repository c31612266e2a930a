"""Where things are: the data and cache folders, the tracking store and the Optuna storage (from a
setting, else an environment variable, else a default under mlruns/), checkpoints and whether one
is whole, and whether a folder can be written, and the file locks that guard them. Light (no MLflow, Optuna or torch): `harness report` and every check made
before a run reads from here."""

from __future__ import annotations

import fcntl
import io
import os
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from harness.config import DataConfig, RunConfig, TrackingConfig, TrainerConfig
from harness.errors import ConfigError, StoreError

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
    return lasting(cfg.uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI, "tracking store")


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
    return lasting(given or os.environ.get("HARNESS_SWEEP_STORAGE") or DEFAULT_STORAGE, "--storage")


def lasting(url: str, what: str) -> str:
    """The store URL, unless it names an in-memory SQLite database (`sqlite://`, `sqlite:///:memory:`):
    each process, and each of MLflow's or Optuna's pooled connections, would get an empty database
    of its own, so workers could not see each other's claims and every run would be lost at exit."""
    scheme, _, rest = url.partition("://")
    database, _, query = rest.removeprefix("/").partition("?")
    if scheme.split("+")[0] == "sqlite" and (database in ("", ":memory:") or database.startswith("file::memory:")
                                              or "mode=memory" in query):
        raise StoreError(f"{what} {url}: an in-memory SQLite database lasts only as long as one connection; "
                         "name a file (sqlite:///mlruns/....db) or a server")
    return url


def checkpoint_path(trainer: TrainerConfig, run_id: str) -> Path:
    """A run's checkpoint, rewritten at the end of every epoch: what a killed run continues from."""
    return Path(trainer.checkpoint_dir) / run_id / "last.ckpt"


def is_whole_zip(data: bytes | Path) -> bool:
    """Whether `data` (bytes or a file) is a zip whose members all pass their CRCs: torch.save writes
    zips, so a checkpoint cut short (a full disk; Lightning copies it across file systems) is not."""
    try:
        with zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError):
        return False


@contextmanager
def file_lock(path: Path, wait: bool = True) -> Iterator[None]:
    """An exclusive flock on `path` (made with its folder where missing), held for the block;
    `wait=False` raises BlockingIOError at once when another process holds it. A lock that cannot be
    made (a read-only or virtual file system: /proc) is a ConfigError naming it, before any work."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a")
    except OSError as err:
        # chained: a full disk (ENOSPC) is still said as out of room (errors.room_lost)
        raise ConfigError(f"{path}: cannot make this lock file ({err.strerror or err}); is its folder writable?") from err
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        yield  # closing the file releases the lock


@contextmanager
def training_lock(trainer: TrainerConfig, run_id: str) -> Iterator[None]:
    """One process trains a run at a time: an flock beside its checkpoint, held while it trains (a
    second `--resume` of a run still training elsewhere on this file system is refused; an import
    never replaces the checkpoint of a run being trained)."""
    lock = checkpoint_path(trainer, run_id).parent / "training.lock"
    with ExitStack() as held:
        try:
            held.enter_context(file_lock(lock, wait=False))
        except BlockingIOError:
            raise ConfigError(f"run {run_id} is being trained by another process (it holds {lock})") from None
        yield


def being_trained(trainer: TrainerConfig, run_id: str) -> bool:
    """Whether some process holds the run's training lock."""
    try:
        with training_lock(trainer, run_id):
            return False
    except ConfigError:
        return True
