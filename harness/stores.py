"""The databases that several processes share, MLflow's tracking store and Optuna's storage:
checked before use, created once under a lock, so that a bad store is a one-line error (exit 2)
and never a traceback or a half-written store. (MLflow and Optuna are imported inside the
functions that need them: the command line checks a store file without them.)

Why a lock: neither MLflow 3.17 nor Optuna 5 serialises its own table creation, and two processes
that start together on a fresh store (a SLURM array, two terminals) race through the schema
migrations: one fails (`table ... already exists`), and a migration cut off half-way can leave an
SQLite store that every later command refuses. Creation therefore happens under an exclusive lock:
an flock on a file beside an SQLite database, a PostgreSQL advisory lock on a server. A store
whose creation was cut off (kill -9) and that holds nothing yet is made again from scratch; one
that holds anything is never touched, only named in an error. MLflow's own tools (`mlflow ui`, a
bare MlflowClient) make a store without that lock, so harness makes a new SQLite store in a file
beside the path and links it into place in one step (its migrations never run where theirs may),
and takes a half-made or empty file as cut off only once it has stood still for CREATION_QUIET_S
seconds. (A bare MlflowClient making a new PostgreSQL store beside harness can still collide.)
"""

from __future__ import annotations

import glob
import os
import sqlite3
import stat
import sys
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from harness import private_api
from harness.places import check_writable, file_lock, is_tracking_server, sqlite_path
from harness.errors import StoreError

SQLITE_MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file
# MLflow writes a store it is making many times a second (its migrations take a second or two here);
# a creation killed part-way leaves the file still.
CREATION_QUIET_S = 10.0


def failure(err: Exception) -> str:
    """An error from MLflow, Optuna or a database driver as one short line (their messages run long)."""
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:300]}" if text else type(err).__name__


def sqlite_kind(db: Path) -> str:
    """'missing', 'empty' (0 bytes) or 'sqlite'; raises StoreError for a file that is not a database."""
    if not db.exists():
        return "missing"
    if db.is_dir():
        raise StoreError(f"{db}: a folder, not a database file")
    with open(db, "rb") as f:
        head = f.read(len(SQLITE_MAGIC))
    if not head:
        return "empty"
    if head != SQLITE_MAGIC:
        raise StoreError(f"{db}: not an SQLite database (corrupt, or another kind of file); "
                         "move it away or point the command at another store")
    return "sqlite"


def sqlite_tables(db: Path, count: tuple[str, ...] = ()) -> dict[str, list[tuple]]:
    """Table name -> its rows for the small bookkeeping tables (alembic_version, version_info), the
    row count for the tables named in `count`, else nothing (a metrics table may hold millions of
    rows); read in one read transaction over a read-only connection. Only where SQLite itself says
    SQLITE_READONLY_ROLLBACK (a writer killed mid-transaction left a hot journal, which every reader
    must roll back before it can read, and a read-only one cannot) is it read again over a
    writable one, which rolls the cut-off transaction back under SQLite's own locks. A journal that
    a live writer holds is not hot, so concurrent sweeps never take that path."""
    try:
        try:
            return _read_tables(db, "ro", count)
        except sqlite3.OperationalError as err:
            if err.sqlite_errorname != "SQLITE_READONLY_ROLLBACK":
                raise
            return _read_tables(db, "rw", count)
    except sqlite3.DatabaseError as err:
        raise StoreError(f"{db}: unreadable SQLite database ({err})") from None


def _read_tables(db: Path, mode: str, count: tuple[str, ...]) -> dict[str, list[tuple]]:
    con = sqlite3.connect(f"{db.absolute().as_uri()}?mode={mode}", uri=True, timeout=60, isolation_level=None)
    try:
        con.execute("BEGIN")  # a consistent view while another process may be creating tables
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {name: con.execute(f'SELECT * FROM "{name}"').fetchall() if name in ("alembic_version", "version_info")
                else con.execute(f'SELECT COUNT(*) FROM "{name}"').fetchall() if name in count else []
                for name in names}
    finally:
        con.close()


@contextmanager
def creation_lock(url: str, name: str) -> Iterator[None]:
    """Exclusive across processes and, on PostgreSQL, across machines: an flock on
    `<db>.<name>-lock` beside an SQLite file; an advisory lock keyed by `name` on a server;
    nothing for other stores (an MLflow tracking server serialises its own)."""
    db = sqlite_path(url)
    if db is not None:
        with file_lock(Path(f"{db}.{name}-lock")):
            yield
    elif url.startswith(("postgresql", "postgres")):
        import sqlalchemy

        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        key = zlib.crc32(f"harness:{name}".encode())  # advisory lock keys are 64-bit integers
        try:
            with engine.connect() as con:
                con.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
                try:
                    yield
                finally:
                    con.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        finally:
            engine.dispose()
    else:
        yield


# ------------------------------------------------------------------------ MLflow's store

_READY: set[str] = set()  # tracking stores this process has checked (and created where new)


def check_tracking_store(uri: str) -> None:
    """Raise StoreError (or ConfigError) for a store a command cannot write to, without writing
    anything: a server that does not answer, a file that is not an MLflow database, an unwritable
    place, a store whose schema is incomplete and that already holds something."""
    db = sqlite_path(uri)
    if db is None:
        _answers(uri, "tracking store")
        return
    check_writable(db.parent, f"tracking store {uri}")
    if db.exists() and not os.access(db, os.R_OK | os.W_OK):
        raise StoreError(f"tracking store {uri}: {db} is not writable")
    _creation_state(db, uri)  # StoreError for a store no command may touch


def _answers(url: str, what: str) -> None:
    """A database server or an MLflow tracking server that answers within seconds (MLflow's own
    retries would wait minutes in silence), else StoreError."""
    if is_tracking_server(url):
        import urllib.request

        try:
            urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=15).close()
        except OSError as err:
            raise StoreError(f"{what} {url}: no answer from the tracking server ({err})") from None
    elif "://" in url and not url.startswith("file:"):  # a database URL, of any scheme SQLAlchemy may know
        import sqlalchemy

        try:  # an unknown scheme or a missing driver fails here, before anything is created
            engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool, connect_args=(
                {"connect_timeout": 15} if url.startswith(("postgresql", "postgres")) else {}))
            engine.connect().close()
        except Exception as err:  # noqa: BLE001 - any driver error: one line naming the server
            raise StoreError(f"{what} {redact(url)}: cannot connect ({failure(err)})") from None
        engine.dispose()


def redact(url: str) -> str:
    """A database URL without its password, for tags and messages."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    return f"{scheme}{sep}{credentials.split(':')[0]}:***@{host}" if at else url


def open_tracking_store(uri: str) -> None:
    """Check the store, and create it where it is new, once per process. A complete SQLite store is
    only read; creating or repairing one happens under the creation lock, so processes that start
    together on a new store make its tables once."""
    if uri in _READY:
        return
    db = sqlite_path(uri)
    if db is None:
        check_tracking_store(uri)
        with creation_lock(uri, "create") if uri.startswith("postgres") else nullcontext():
            _first_call(uri)
    elif _creation_state(db, uri) != "complete":
        check_tracking_store(uri)
        with creation_lock(uri, "create"):  # every harness maker holds it; MLflow's own tools do not
            _make_new(Path(os.path.realpath(db)), uri)  # a symlinked store is made where it points
            private_api.forget_mlflow_engine(uri)  # pooled connections to a file that was replaced
            _first_call(uri)
    _READY.add(uri)


def _make_new(db: Path, uri: str) -> None:
    """Make the store in a file of its own beside `db`, then put it in place in one step, so that
    MLflow's migrations never run on the shared path: MLflow's own tools (`mlflow ui`, a bare
    MlflowClient) make a store there outside harness's lock. A file in the way (0 bytes, or cut
    off) is replaced only if it has stood still and is unchanged as the new one goes in; one that a
    maker of theirs took meanwhile is left to it, and settled again."""
    for stale in db.parent.glob(f"{glob.escape(db.name)}.making-*"):  # a maker killed mid-way (each holds the lock)
        _remove(stale)
    making = db.with_name(f"{db.name}.making-{os.getpid()}")
    try:
        for _ in range(3):
            if _settled_creation_state(db, uri) == "complete":
                return
            seen = _stat(db)  # None: no file
            if not making.exists():
                _first_call(f"sqlite:///{making}", shown=uri)
                private_api.forget_mlflow_engine(f"sqlite:///{making}")
            if seen is not None:
                if not _same_file(_stat(db), seen):
                    continue  # another maker took it since it settled
                _keep_mode_and_owner(seen, making)
                _remove(db)
            try:
                os.link(making, db)  # fails where another maker put a file meanwhile
            except FileExistsError:
                continue
            except OSError:  # a file system without hard links (vfat, some network mounts)
                if db.exists():
                    continue
                os.rename(making, db)
            return
        raise StoreError(f"tracking store {uri}: another process keeps making {db} (not harness: no lock of "
                         "its own); stop it, or name another store")
    finally:
        _remove(making)


def _stat(db: Path) -> os.stat_result | None:
    try:
        return db.stat()
    except FileNotFoundError:
        return None


def _same_file(now: os.stat_result | None, seen: os.stat_result) -> bool:
    """Whether the file at a path is still the one seen: not replaced, grown or written since."""
    return now is not None and (now.st_ino, now.st_size, now.st_mtime_ns) == (seen.st_ino, seen.st_size, seen.st_mtime_ns)


def _keep_mode_and_owner(old: os.stat_result, new: Path) -> None:
    """The replaced file's permissions and group on the new one (a lab's group-writable store stays
    so); the owner and group only where this user may set them."""
    os.chmod(new, stat.S_IMODE(old.st_mode))
    try:
        os.chown(new, old.st_uid, old.st_gid)
    except PermissionError:
        pass


def _remove(db: Path) -> None:
    """An SQLite store file and its journals (a journal left beside a new file would be rolled back into it)."""
    for path in (db, *(db.with_name(db.name + suffix) for suffix in ("-journal", "-wal", "-shm"))):
        path.unlink(missing_ok=True)


def _first_call(uri: str, shown: str | None = None) -> None:
    """MLflow creates or checks a database store's schema on the first call (errors name `shown`)."""
    import logging

    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)  # its INFO lines for every new store

    try:
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as err:  # noqa: BLE001 - whatever MLflow or the driver raised: one line, naming the store
        raise StoreError(f"tracking store {shown or uri}: {failure(err)}") from None


def _schema(db: Path) -> tuple[dict[str, list[tuple]], str | None]:
    return sqlite_tables(db, count=("runs", "experiments")), private_api.mlflow_schema_head()


def _made_by_mlflow(tables: dict[str, list[tuple]]) -> bool:
    """Whether an SQLite database's tables are MLflow's: its schema version is one of MLflow's
    migrations, or, before the first one was recorded, every table is one MLflow makes."""
    if tables.get("alembic_version"):
        return tables["alembic_version"][0][0] in private_api.mlflow_schema_revisions()
    known = private_api.mlflow_table_names() | {"alembic_version"}
    return all(t in known or t.startswith("_alembic_tmp_") for t in tables)


def _creation_state(db: Path, uri: str) -> str:
    """Where an SQLite store's creation stands, decided from one consistent read of the file (a
    store another process is creating may be complete a moment after an earlier read saw it half
    made): "complete" (MLflow's current schema, no table left by a cut-off migration); "new"
    (missing or 0 bytes: MLflow makes its tables); "cut off" (MLflow's tables, incomplete, holding
    nothing, not even the Default experiment MLflow adds once its schema is complete: a creation
    cut off, or under way elsewhere, safe to make again under the creation lock). One that holds
    anything else raises StoreError: never touched."""
    if sqlite_kind(db) != "sqlite":
        return "new"
    tables, head = _schema(db)
    leftovers = sorted(t for t in tables if t.startswith("_alembic_tmp_"))
    version = (tables.get("alembic_version") or [("none",)])[0][0]
    if version == head and "runs" in tables and not leftovers:
        return "complete"
    if not _made_by_mlflow(tables):
        raise StoreError(f"tracking store {uri}: {db} is an SQLite database but not an MLflow tracking store "
                         f"(tables: {', '.join(sorted(tables)[:6])}); name another tracking store")
    runs, experiments = (tables.get(t, [(0,)])[0][0] for t in ("runs", "experiments"))
    if runs or experiments:
        schema = (f"schema version {version}, not MLflow {head}'s" if version != head else
                  f"an incomplete schema at MLflow's version {version} ("
                  + (f"leftover {', '.join(leftovers)}" if leftovers else "no runs table") + ")")
        raise StoreError(f"tracking store {uri}: {schema}, and it holds {experiments} experiments and {runs} runs: "
                         f"back it up, then run `mlflow db upgrade {uri}`")
    return "cut off"


def _settled_creation_state(db: Path, uri: str) -> str:
    """_creation_state, once the file has stood still: a half-made or empty file written within the
    last CREATION_QUIET_S seconds is another maker's at work (MLflow's own tools make a store
    outside harness's lock), waited for, never removed from under it."""
    said = False
    while (state := _creation_state(db, uri)) != "complete":
        try:
            if time.time() - db.stat().st_mtime >= CREATION_QUIET_S:
                break
        except FileNotFoundError:  # nothing there
            break
        if not said:
            print(f"harness: {db} is being made by another process; waiting for it (at most "
                  f"{CREATION_QUIET_S:g} s after its last write)", file=sys.stderr, flush=True)
            said = True
        time.sleep(0.25)
    return state


def has_tracking_store(uri: str) -> bool:
    """Whether the URI names a store that exists (a server or database URL is taken to, where it
    answers), read without writing; a file that is not a database, or a server that does not
    answer, raises StoreError."""
    db = sqlite_path(uri)
    if db is None:
        _answers(uri, "tracking store")  # StoreError for one that does not answer
        return True
    return sqlite_kind(db) == "sqlite" and "runs" in sqlite_tables(db)


# ---------------------------------------------------------------------- Optuna's storage

def check_apart(storage_url: str, tracking_uri: str) -> None:
    """The Optuna storage and the tracking store are two databases: one file given as both would
    become an MLflow store that no later sweep could use as its storage."""
    storage, store = sqlite_path(storage_url), sqlite_path(tracking_uri)
    if storage is not None and store is not None and storage.absolute().resolve() == store.absolute().resolve():
        raise StoreError(f"--storage {storage_url} and the tracking store {tracking_uri} are one file: "
                         "give each its own (the defaults are mlruns/optuna.db and mlruns/mlflow.db)")


def check_storage(storage_url: str) -> None:
    """Raise StoreError for an SQLite storage that is not a database or cannot be written, before
    anything is created (a server URL is checked when it is opened)."""
    db = sqlite_path(storage_url)
    if db is None:
        _answers(storage_url, "--storage")
        return
    if sqlite_kind(db) == "sqlite":
        foreign = sorted(set(sqlite_tables(db)) - private_api.optuna_table_names() - {"alembic_version"})
        if foreign:
            raise StoreError(f"--storage {storage_url}: {db} is an SQLite database but not an Optuna storage "
                             f"(tables: {', '.join(foreign[:6])}); point --storage elsewhere")
    check_writable(db.parent, f"--storage {storage_url}")
    if db.exists() and not os.access(db, os.R_OK | os.W_OK):
        raise StoreError(f"--storage {storage_url}: {db} is not writable")


def study_trials(storage_url: str, study: str) -> list:
    """A study's trials (optuna FrozenTrials), read without creating anything: none where the
    storage or the study does not exist (the dry run's and export's view of a sweep's claims)."""
    db = sqlite_path(storage_url)
    if db is not None and sqlite_kind(db) != "sqlite":  # raises for a file that is not one
        return []
    check_storage(storage_url)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name=study, storage=storage_url).get_trials(deepcopy=False)
    except KeyError:  # no such study
        return []
    except Exception as err:  # noqa: BLE001 - a storage that cannot be read: one line naming it
        raise StoreError(f"--storage {redact(storage_url)}: cannot read study {study!r} ({failure(err)})") from None
