"""Bad input, as one family: every error a user can fix by changing what they gave (a config key, a
grid file, a data archive, a store, a runs file, a place to write) is an `InputError`, raised
before anything is written, with a message that names the key, file or path. `harness` prints it
as one line and exits 2 (harness.cli.main); anything else is a bug or a crash and keeps its
traceback (exit 1).

One failure of the machine, not the input, is also one line: a write that finds no room (a full
disk, a quota, a file-size limit) is `OutOfRoom`, naming the place and what was being written,
exit 1 (`writing` turns the OSError into it where the harness knows what it writes)."""

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


class OutOfRoom(Exception):
    """A write that found no room: the place and what was being written."""

    def __init__(self, where, what: str, err: OSError):
        super().__init__(f"{err.filename or where}: {err.strerror or err} while writing {what}")


@contextmanager
def writing(what: str, where) -> Iterator[None]:
    """Turn a write that finds no room into OutOfRoom naming `where` and `what`; other errors pass."""
    try:
        yield
    except OSError as err:
        if err.errno in NO_ROOM:
            raise OutOfRoom(where, what, err) from None
        raise
