"""The guards around a project file: identity, single instance, crash detection, flushing.

- :func:`read_header` identifies a project from the 100-byte SQLite header alone
  (``application_id`` "ETMR", ``user_version`` = schema version), before SQLite opens the file.
- :class:`ProjectLock` keeps a second instance out; :func:`needs_recovery` tells whether a
  project was left open by a crash.
"""

from __future__ import annotations

import contextlib
import fcntl
import os

from refinement_model.errors import ProjectError

APPLICATION_ID = 0x45544D52  # "ETMR"
SCHEMA_VERSION = 1
SQLITE_MAGIC = b"SQLite format 3\x00"


def lock_path(path: str | os.PathLike) -> str:
    """The lock file that guards the project at `path`."""
    return os.fspath(path) + ".lock"


def needs_recovery(path: str | os.PathLike) -> bool:
    """Whether the project at `path` was left open by a crash.

    True when no live process holds the project's lock but a lock file was left behind or the
    write-ahead log still holds un-checkpointed commits. Opening the project recovers it (SQLite
    replays the log); this only lets the app say so first. False for a project open elsewhere.
    """
    path = os.fspath(path)
    lock = lock_path(path)
    if os.path.exists(lock):
        try:
            fd = os.open(lock, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live instance has it open
        finally:
            os.close(fd)
        return True
    with contextlib.suppress(OSError):
        return os.path.getsize(path + "-wal") > 0
    return False


def read_header(path: str | os.PathLike) -> tuple[int, int]:
    """Check that `path` is a project file; return ``(application_id, schema_version)``.

    Reads only the 100-byte SQLite header, so a foreign file is refused untouched.

    Raises
    ------
    ProjectError
        If the file is missing, not SQLite, not a project, or of an unknown schema version.
    """
    try:
        with open(path, "rb") as handle:
            header = handle.read(100)
    except FileNotFoundError:
        raise ProjectError(path, "no such project file") from None
    except OSError as error:
        raise ProjectError(path, f"cannot read the project file ({error.strerror})") from None
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        raise ProjectError(path, "not an etmira project (not an SQLite database)")
    version = int.from_bytes(header[60:64], "big")
    app_id = int.from_bytes(header[68:72], "big")
    if app_id != APPLICATION_ID:
        raise ProjectError(path, "not an etmira project (an SQLite database of another program)")
    if version != SCHEMA_VERSION:
        raise ProjectError(
            path,
            f"project schema version {version} is not supported (this etmira reads "
            f"version {SCHEMA_VERSION})",
        )
    return app_id, version


class ProjectLock:
    """An exclusive ``flock`` on ``<project>.lock`` holding the owner's PID.

    Raises ``ProjectError`` when a live process holds it; a lock left by a dead process is
    taken over (the kernel released its flock) and its PID kept in ``stale_owner``.
    """

    def __init__(self, path: str):
        self.path = lock_path(path)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise ProjectError(
                    path, f"is open in another etmira instance (process {owner})"
                ) from None
            # The previous owner may have unlinked the file between our open and our flock.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self.fd = fd
        self.stale_owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self.fd)


def fsync(path: str) -> None:
    """Flush a file, or a folder's entries after a rename, to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
