"""Bad input, as one family: every error a user can fix by changing what they gave (a config key, a
grid file, a data archive, a store, a runs file, a place to write) is an `InputError`, raised
before anything is written, with a message that names the key, file or path. `harness` prints it
as one line and exits 2 (harness.cli.main); anything else is a bug or a crash and keeps its
traceback (exit 1).

One failure of the machine, not the input, is also one line: a write that finds no room (a full
disk, a quota, a file-size limit) is `OutOfRoom`, naming the place and what was being written,
exit 1 (`writing` turns the OSError into it where the harness knows what it writes; `room_lost`
finds it anywhere in an exception's chain, however a library wrapped it)."""

import errno
from collections.abc import Iterator
from contextlib import contextmanager


EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 1, 2, 130  # the command line's (README: exit codes)


class InputError(Exception):
    """Bad input, named in the message; `kind` is the label the command line prints before it."""

    kind = "bad input"


class ConfigError(InputError, ValueError):
    """A config or grid key and what is wrong with it, or a command-line argument."""

    kind = "config error"


class StoreError(InputError):
    """A tracking store or Optuna storage that cannot be used as it is, named by its path or URL."""

    kind = "store error"


class DataError(InputError):
    """A data source that is missing, unreadable or not what it should be."""

    kind = "data error"

    def __init__(self, path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = path


class RunsFileError(InputError):
    """A runs file (harness export) that cannot be read or imported, or a store it cannot go into."""

    kind = "runs file error"


NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
# No room, said without an errno: SQLite's (through sqlite3, SQLAlchemy, MLflow, Optuna) and numpy's
# (an OSError of its own when a file it writes cannot grow).
SQLITE_FULL = "database or disk is full"
NO_ROOM_TEXT = (SQLITE_FULL, "Not enough free space to write")


class OutOfRoom(Exception):
    """A write that found no room: the place and what was being written."""

    def __init__(self, where, what: str, err: OSError):
        super().__init__(f"{_target(err) or where}: {err.strerror or err} while writing {what}")


def _target(err: OSError) -> str | None:
    """The file a failed write was going to: a move's or copy's destination (`filename2`), not its source."""
    return err.filename2 or err.filename


def no_room(err: BaseException) -> bool:
    """Whether this one exception is a write that found no room."""
    return (isinstance(err, OSError) and err.errno in NO_ROOM) or any(text in str(err) for text in NO_ROOM_TEXT)


@contextmanager
def writing(what: str, where) -> Iterator[None]:
    """Turn a write that finds no room into OutOfRoom naming `where` and `what`; other errors pass."""
    try:
        yield
    except OSError as err:
        if no_room(err):
            raise OutOfRoom(where, what, err) from None
        raise


def room_lost(err: BaseException) -> str | None:
    """Where the room ran out, where `err` or any exception it was raised from or while handling
    (its __cause__ and __context__, however deep: a library that wraps the failure, the failure of
    recording the failure) is a write that found no room; None otherwise. Named by the most precise
    account in the chain: an OutOfRoom, a file, the store or file an InputError names, the message."""
    chain, stack = [], [err]
    while stack:
        e = stack.pop()
        if e is not None and all(e is not seen for seen in chain):
            chain.append(e)
            stack += [e.__cause__, e.__context__]
    lost = [e for e in chain if isinstance(e, OutOfRoom) or no_room(e)]
    if not lost:
        return None
    for e in lost:
        if isinstance(e, OutOfRoom):
            return str(e)
    for e in lost:
        if isinstance(e, OSError) and _target(e):
            return f"{_target(e)}: {e.strerror or e}"
    if isinstance(err, InputError):  # the harness's own line, naming the store or file
        return str(err)
    if any(SQLITE_FULL in str(e) for e in lost):  # SQLAlchemy's words around it (SQL, advice) say nothing of where
        return SQLITE_FULL
    return str(lost[0]).strip().splitlines()[0][:300] or type(lost[0]).__name__


@contextmanager
def writing_to_store(store: str, what: str) -> Iterator[None]:
    """Name the store where SQLite, wrapped by SQLAlchemy and MLflow, finds it full (its own words
    name no file)."""
    try:
        yield
    except Exception as err:
        if room_lost(err) == SQLITE_FULL:
            raise StoreFull(f"{with_store(SQLITE_FULL, store)} while {what}") from err
        raise


def with_store(where: str, store: str) -> str:
    """Where the room ran out, as `room_lost` said it, with the store in front where those are
    SQLite's words, which name no file."""
    return f"{store}: {where}" if where == SQLITE_FULL else where


class StoreFull(OutOfRoom):
    def __init__(self, message: str):
        Exception.__init__(self, message)


class RunOutOfRoom(OutOfRoom):
    """A run stopped by a full disk, which is the machine's failure, not the run's: where the store
    could still take it, the run is KILLED (continued as an interrupted one), else it stays RUNNING."""

    def __init__(self, where: str, run_id: str, store: str):
        Exception.__init__(self, f"{with_store(where, store)}, while training run {run_id} (`harness train --resume {run_id}` "
                                 "or its sweep's command continues it)")
