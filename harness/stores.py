"""The databases that several processes share (MLflow's runs, Optuna's trials): created once under
a lock, and checked before use, so that a bad store is a one-line error and never a traceback.

Why a lock: neither MLflow 3.17 nor Optuna 5 serialises its own table creation, and two processes
that start together on a fresh store (a SLURM array, two terminals) race through the schema
migrations: one fails (`table ... already exists`), and a migration cut off half-way can leave an
SQLite store that every later command refuses. Creation therefore happens under an exclusive lock:
an flock on a file beside an SQLite database, a PostgreSQL advisory lock on a server. A store
whose creation was cut off (kill -9) and that holds no run yet is made again from scratch; one
that holds runs is never touched, only named in an error.
"""

from __future__ import annotations

import fcntl
import sqlite3
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.config import ConfigError, sqlite_path

SQLITE_MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file


class StoreError(ConfigError):
    """A store that cannot be used as it is: bad input, named with its path or URL."""


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


def sqlite_tables(db: Path) -> dict[str, list[tuple]]:
    """Table name -> its rows for the small bookkeeping tables (alembic_version, version_info),
    else one row holding the row count; read over a read-only connection."""
    try:
        con = sqlite3.connect(f"{db.absolute().as_uri()}?mode=ro", uri=True, timeout=60, isolation_level=None)
        try:
            # One read transaction: a consistent view while another process may be creating tables.
            con.execute("BEGIN")
            names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            return {name: con.execute(f'SELECT * FROM "{name}"' if name in ("alembic_version", "version_info")
                                      else f'SELECT COUNT(*) FROM "{name}"').fetchall() for name in names}
        finally:
            con.close()
    except sqlite3.DatabaseError as err:
        raise StoreError(f"{db}: unreadable SQLite database ({err})") from None


@contextmanager
def creation_lock(url: str, name: str) -> Iterator[None]:
    """Exclusive across processes and, on PostgreSQL, across machines: an flock on
    `<db>.<name>-lock` beside an SQLite file; an advisory lock keyed by `name` on a server;
    nothing for other stores (an MLflow tracking server serialises its own)."""
    db = sqlite_path(url)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{db}.{name}-lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
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
