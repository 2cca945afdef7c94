"""The crash-safe project file: one SQLite database per project.

The store knows nothing about sessions or models; it keeps named arrays ("layers": the base
logits, the mask, the probabilities, ...) as compressed tiles, an append-only event journal,
keyed blobs (the serialised undo history), and JSON metadata, and it writes any mix of them in
one small transaction (:meth:`ProjectStore.commit`), rewriting only the tiles that touch the
changed regions.

Durability and safety
---------------------
- WAL journal with ``synchronous=FULL``: a commit is on disk when :meth:`ProjectStore.commit`
  returns; a crash at any moment loses at most the commit in flight, and SQLite replays the
  write-ahead log on the next open. The log keeps each stroke's commit small and fast (a
  rollback journal would rewrite the pages twice); :meth:`ProjectStore.checkpoint` (Save) and
  :meth:`ProjectStore.close` move it into the main file, so that the ``.etmira`` file alone,
  copied or backed up, holds all the work.
- ``PRAGMA application_id`` marks the file as a project and ``PRAGMA user_version`` is the schema
  version, both read from the raw header *before* SQLite opens the file, so a foreign file is
  refused without being touched.
- Every blob carries a CRC-32, checked on read, because SQLite's own checks cover only its page
  structure. ``PRAGMA quick_check`` (or ``integrity_check``) runs on open.
- An exclusive ``fcntl.flock`` on ``<project>.lock`` (holding the owner's PID) keeps a second
  instance out; the kernel drops it when the owner dies, so a stale lock is simply taken over.
  A lock file left behind, or a non-empty WAL with no live owner, means the project was not
  closed cleanly: :func:`needs_recovery` tells the app so it can offer recovery.
- New projects and copies (:meth:`ProjectStore.backup`) are written to a temporary file in the
  target folder and renamed into place; the live file is never copied byte-wise.
- A full disk raises :class:`~refinement_model.errors.ProjectError` and rolls the transaction back,
  leaving the previous state intact.

Every problem with a file raises ``ProjectError(path, problem)``; nothing is overwritten.

File identity, the lock and crash detection live in ``project_file``; the tile codec in
``tile_codec``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import tempfile
import zlib
from collections.abc import Callable, Iterable, Mapping

import numpy as np

from annotator.core.project_file import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    SQLITE_MAGIC,
    ProjectLock,
    fsync,
    needs_recovery,
    read_header,
)
from annotator.core.tile_codec import CODEC, DTYPES, decode_tile, encode_tile, tile_boxes
from refinement_model.errors import Cancelled, ProjectError
from refinement_model.imageio import MAX_PIXELS

# needs_recovery, read_header and SQLITE_MAGIC are re-exported for callers of the store.
__all__ = ["DEFAULT_TILE", "SQLITE_MAGIC", "ProjectStore", "needs_recovery", "read_header"]

DEFAULT_TILE = 512
# Every page a commit touches is written whole to the log: small pages keep a stroke's commit
# small (measured: 56 kB per stroke with 4 kB pages, 148 kB with 16 kB pages).
_PAGE_SIZE = 4096
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, crc INTEGER NOT NULL, value TEXT NOT NULL);
CREATE TABLE layers (name TEXT PRIMARY KEY, dtype TEXT NOT NULL, height INTEGER NOT NULL,
                     width INTEGER NOT NULL, tile INTEGER NOT NULL, codec TEXT NOT NULL);
CREATE TABLE tiles (layer TEXT NOT NULL, ty INTEGER NOT NULL, tx INTEGER NOT NULL,
                    crc INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (layer, ty, tx));
CREATE TABLE events (seq INTEGER PRIMARY KEY, crc INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE blobs (key TEXT PRIMARY KEY, crc INTEGER NOT NULL, data BLOB NOT NULL);
"""
_TABLES = {"meta", "layers", "tiles", "events", "blobs"}


def _is_disk_full(error: BaseException) -> bool:
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return True
    return isinstance(error, sqlite3.OperationalError) and "full" in str(error)


def _connect(path: str, *, readonly: bool) -> sqlite3.Connection:
    uri = "file:" + os.path.abspath(path).replace("?", "%3f").replace("#", "%23")
    connection = sqlite3.connect(
        f"{uri}?mode={'ro' if readonly else 'rw'}",
        uri=True,
        isolation_level=None,
        check_same_thread=False,
    )
    connection.execute("PRAGMA busy_timeout = 2000")
    return connection


class ProjectStore:
    """An open project file. Create with :meth:`create`, open with :meth:`open`.

    Attributes
    ----------
    path : str
    readonly : bool
        Opened without the lock for reading (``etmira project info``/``export``).
    recovered : bool
        The project had been left open by a crash (see :func:`needs_recovery`).
    """

    def __init__(
        self,
        path: str,
        connection: sqlite3.Connection,
        lock: ProjectLock | None,
        *,
        recovered: bool,
    ):
        self.path = path
        self.readonly = lock is None
        self.recovered = recovered
        self._db = connection
        self._lock = lock
        self._layers = self._read_layer_table()

    # ---- opening and creating ----------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        *,
        layers: Mapping[str, np.ndarray],
        meta: Mapping[str, object] | None = None,
        tile: int = DEFAULT_TILE,
        overwrite: bool = False,
        progress: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> ProjectStore:
        """Write a new project atomically and open it for writing.

        Parameters
        ----------
        path : path-like
            The project file to create (``.etmira`` by convention).
        layers : mapping of str to ndarray
            Named (H, W) arrays, all of one shape, dtype among ``bool, uint8, int8, uint16,
            int16, int32, float16, float32``.
        meta : mapping of str to JSON-serialisable, optional
        tile : int, keyword-only
            Tile edge in pixels (>= 16).
        overwrite : bool, keyword-only
            Replace an existing file (atomically); otherwise an existing file is an error.
        progress, cancel : callables, optional
            ``progress(done, total)`` per tile written; ``cancel()`` returning True raises
            :class:`~refinement_model.errors.Cancelled` and leaves nothing behind.

        Raises
        ------
        ValueError
            For bad `layers` or `tile`.
        ProjectError
            If the file exists (without `overwrite`), its folder is not writable, or the disk is
            full.
        """
        path = os.fspath(path)
        if int(tile) != tile or tile < 16:
            raise ValueError(f"tile must be an integer >= 16, got {tile!r}")
        _check_layers(layers, None)
        if os.path.exists(path) and not overwrite:
            raise ProjectError(path, "already exists (choose another name or overwrite it)")
        folder = os.path.dirname(os.path.abspath(path))
        try:
            fd, temp = tempfile.mkstemp(prefix=".etmira-new-", suffix=".tmp", dir=folder)
        except OSError as error:
            raise ProjectError(path, f"cannot write in its folder ({error.strerror})") from None
        os.close(fd)
        try:
            connection = _connect(temp, readonly=False)
            try:
                connection.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
                connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                connection.executescript(_SCHEMA)
                store = cls(temp, connection, None, recovered=False)
                store.readonly = False
                store.commit(
                    meta=meta or {}, arrays=layers, tile=int(tile), progress=progress, cancel=cancel
                )
                connection.execute("PRAGMA journal_mode = WAL")
            finally:
                connection.close()
            fsync(temp)
            os.replace(temp, path)
            fsync(folder)
        except BaseException as error:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            if _is_disk_full(error):
                raise ProjectError(path, "the disk is full; the project was not created") from None
            if isinstance(error, OSError):
                raise ProjectError(path, f"cannot create the project ({error.strerror})") from None
            raise
        return cls.open(path)

    @classmethod
    def open(
        cls, path: str | os.PathLike, *, readonly: bool = False, check: str = "quick"
    ) -> ProjectStore:
        """Open an existing project.

        Parameters
        ----------
        path : path-like
        readonly : bool, keyword-only
            Read without taking the lock (works while the app has the project open).
        check : {"quick", "full", "none"}, keyword-only
            SQLite's ``quick_check``, ``integrity_check``, or no structural check.

        Raises
        ------
        ProjectError
            If the file is missing, not a project, of another schema version, damaged, or open
            in another instance (when not `readonly`). The file is not modified.
        """
        if check not in ("quick", "full", "none"):
            raise ValueError(f"check must be 'quick', 'full' or 'none', got {check!r}")
        path = os.fspath(path)
        read_header(path)
        recovered = needs_recovery(path)
        lock = None if readonly else ProjectLock(path)
        connection = None
        try:
            connection = _connect(path, readonly=readonly)
            if check != "none":
                pragma = "quick_check" if check == "quick" else "integrity_check"
                rows = connection.execute(f"PRAGMA {pragma}").fetchall()
                if rows != [("ok",)]:
                    raise ProjectError(path, f"the project file is damaged ({rows[0][0]})")
            tables = {
                row[0]
                for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            if not tables >= _TABLES:
                raise ProjectError(path, "the project file is damaged (tables are missing)")
            if not readonly:
                connection.execute("PRAGMA journal_mode = WAL")
                connection.execute("PRAGMA synchronous = FULL")
            return cls(path, connection, lock, recovered=recovered)
        except BaseException as error:
            if connection is not None:
                connection.close()
            if lock is not None:
                lock.release()
            if isinstance(error, sqlite3.Error):
                raise ProjectError(path, f"the project file is damaged ({error})") from None
            raise

    def checkpoint(self) -> None:
        """Move every committed change from the write-ahead log into the project file and empty
        the log, so that a copy of the file alone holds all the work (Save).

        Raises
        ------
        ProjectError
            If the log could not be moved completely (a reader held it, or the disk is full);
            the work is still safe in the log.
        """
        if self.readonly:
            raise ValueError("this project was opened read-only")
        try:
            busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as error:
            if _is_disk_full(error):
                raise ProjectError(
                    self.path,
                    "the disk is full; the work is kept in the "
                    "project's log file (-wal) until there is space",
                ) from None
            raise ProjectError(self.path, f"cannot save the project ({error})") from None
        if busy:
            raise ProjectError(
                self.path,
                "another program is reading the project; the work is "
                "kept in its log file (-wal): save again in a moment",
            )

    def close(self) -> None:
        """Checkpoint the log into the file and release the lock. Idempotent."""
        if self._db is None:
            return
        try:
            if not self.readonly:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
        finally:
            self._db = None
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    closed = property(lambda self: self._db is None, doc="Whether :meth:`close` was called.")

    def __enter__(self) -> ProjectStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- reading ----------------------------------------------------------------------------

    @property
    def layer_names(self) -> tuple[str, ...]:
        """Names of the stored layers, sorted."""
        return tuple(sorted(self._layers))

    def layer_shape(self, name: str) -> tuple[int, int]:
        """(H, W) of layer `name`."""
        return self._layer(name)[1]

    def meta(self) -> dict:
        """All metadata as a new dict of JSON values."""
        rows = self._query("SELECT key, crc, value FROM meta")
        if any(zlib.crc32(value.encode()) != crc for _, crc, value in rows):
            raise ProjectError(self.path, "the project file is damaged (metadata)")
        return {key: json.loads(value) for key, _, value in rows}

    def read_layer(
        self,
        name: str,
        *,
        progress: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> np.ndarray:
        """Layer `name` as a new (H, W) array of its stored dtype.

        Raises
        ------
        KeyError
            If there is no such layer.
        ProjectError
            If a tile is missing or fails its checksum.
        """
        dtype, shape, tile = self._layer(name)
        out = np.empty(shape, dtype)
        expected = set(tile_boxes(shape, tile))
        total = len(expected)
        for done, (ty, tx, crc, data) in enumerate(
            self._rows("SELECT ty, tx, crc, data FROM tiles WHERE layer = ?", (name,)), 1
        ):
            if cancel is not None and cancel():
                raise Cancelled(f"reading {name} was cancelled")
            if (ty, tx) not in expected or zlib.crc32(data) != crc:
                raise ProjectError(self.path, f"the project file is damaged (layer {name})")
            expected.discard((ty, tx))
            window = (slice(ty * tile, (ty + 1) * tile), slice(tx * tile, (tx + 1) * tile))
            target = out[window]
            try:
                target[...] = decode_tile(data, dtype, target.shape)
            except ValueError:
                raise ProjectError(
                    self.path, f"the project file is damaged (layer {name})"
                ) from None
            if progress is not None:
                progress(done, total)
        if expected:
            raise ProjectError(self.path, f"the project file is damaged (layer {name} incomplete)")
        return out

    def events(self, start: int = 0) -> list[dict]:
        """The journal's events from index `start` on, in order, as new dicts."""
        rows = self._query(
            "SELECT crc, data FROM events ORDER BY seq LIMIT -1 OFFSET ?", (int(start),)
        )
        events = []
        for crc, data in rows:
            if zlib.crc32(data.encode()) != crc:
                raise ProjectError(self.path, "the project file is damaged (journal)")
            events.append(json.loads(data))
        return events

    def event_count(self) -> int:
        """Number of events in the journal."""
        return self._query("SELECT count(*) FROM events")[0][0]

    def blob(self, key: str) -> bytes | None:
        """The blob stored under `key`, or None."""
        return self.blobs(key, exact=True).get(key)

    def blobs(self, prefix: str = "", *, exact: bool = False) -> dict[str, bytes]:
        """The blobs whose keys start with `prefix` (or equal it, with `exact`), by key, sorted.

        Raises
        ------
        ProjectError
            If a blob fails its checksum.
        """
        condition = "key = ?" if exact else "substr(key, 1, ?) = ?"
        parameters = (prefix,) if exact else (len(prefix), prefix)
        out = {}
        for key, crc, data in self._rows(
            f"SELECT key, crc, data FROM blobs WHERE {condition} ORDER BY key", parameters
        ):
            if zlib.crc32(data) != crc:
                raise ProjectError(self.path, f"the project file is damaged (blob {key})")
            out[key] = bytes(data)
        return out

    # ---- writing ----------------------------------------------------------------------------

    def commit(
        self,
        *,
        events: Iterable[Mapping] = (),
        arrays: Mapping[str, np.ndarray] | None = None,
        regions: Iterable[tuple[int, int, int, int]] | None = None,
        meta: Mapping[str, object] | None = None,
        blobs: Mapping[str, bytes | None] | None = None,
        tile: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> None:
        """Write events, changed tiles, metadata and blobs in one durable transaction.

        Parameters
        ----------
        events : iterable of dict, keyword-only
            JSON-serialisable events appended to the journal.
        arrays : mapping of str to (H, W) ndarray, keyword-only
            Current full arrays of layers; only tiles touching `regions` are rewritten. A new
            name creates the layer (all its tiles). A float array may update a float layer of
            another precision: its tiles are rounded to the layer's dtype.
        regions : iterable of (y0, x0, y1, x1), optional
            The changed boxes in pixels; None rewrites every tile of `arrays`.
        meta : mapping, keyword-only
            Metadata keys to set (JSON values).
        blobs : mapping of str to bytes or None, keyword-only
            Blobs to set; None deletes the key.
        tile : int, optional
            Tile edge for new layers (default: the store's, else 512).

        Raises
        ------
        ProjectError
            When the disk is full or the file cannot be written; nothing of this commit is kept.
        """
        if self.readonly:
            raise ValueError("this project was opened read-only")
        arrays = dict(arrays or {})
        _check_layers(arrays, self._layers)
        regions = None if regions is None else [tuple(box) for box in regions]
        events = [json.dumps(event, separators=(",", ":"), allow_nan=False) for event in events]
        tile = tile or next(iter(self._layers.values()), (None, None, DEFAULT_TILE))[2]
        work = []
        for name, array in arrays.items():
            size = self._layers[name][2] if name in self._layers else tile
            boxes = tile_boxes(array.shape, size, None if name not in self._layers else regions)
            work.append((name, array, size, boxes))
        total, done = sum(len(item[3]) for item in work), 0
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            for name, array, size, boxes in work:
                if name not in self._layers:
                    db.execute(
                        "INSERT INTO layers VALUES (?, ?, ?, ?, ?, ?)",
                        (name, array.dtype.name, *array.shape, size, CODEC),
                    )
                for ty, tx in boxes:
                    if cancel is not None and cancel():
                        raise Cancelled("writing the project was cancelled")
                    data = encode_tile(
                        array[ty * size : (ty + 1) * size, tx * size : (tx + 1) * size].astype(
                            self._layers[name][0] if name in self._layers else array.dtype,
                            copy=False,
                        )
                    )
                    db.execute(
                        "INSERT OR REPLACE INTO tiles VALUES (?, ?, ?, ?, ?)",
                        (name, ty, tx, zlib.crc32(data), data),
                    )
                    done += 1
                    if progress is not None:
                        progress(done, total)
            db.executemany(
                "INSERT INTO events (crc, data) VALUES (?, ?)",
                [(zlib.crc32(text.encode()), text) for text in events],
            )
            texts = [
                (key, json.dumps(value, allow_nan=False)) for key, value in (meta or {}).items()
            ]
            db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?, ?)",
                [(key, zlib.crc32(text.encode()), text) for key, text in texts],
            )
            for key, data in (blobs or {}).items():
                if data is None:
                    db.execute("DELETE FROM blobs WHERE key = ?", (key,))
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO blobs VALUES (?, ?, ?)",
                        (key, zlib.crc32(data), bytes(data)),
                    )
            db.execute("COMMIT")
        except BaseException as error:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            if _is_disk_full(error):
                raise ProjectError(
                    self.path,
                    "the disk is full; the last change was not saved "
                    "(free some space or save the project elsewhere)",
                ) from None
            if isinstance(error, (sqlite3.Error, OSError)):
                raise ProjectError(self.path, f"cannot save the project ({error})") from None
            raise
        for name, array, size, _ in work:
            if name not in self._layers:
                self._layers[name] = (array.dtype, array.shape, size)

    def backup(
        self, destination: str | os.PathLike, *, progress: Callable[[int, int], None] | None = None
    ) -> None:
        """Copy the project consistently to `destination` (Save As, backups).

        Uses SQLite's backup API into a temporary file in the target folder, renamed into place
        only when complete; an existing `destination` is replaced atomically. The copy is a
        closed, checkpointed project that opens on its own.

        Raises
        ------
        ProjectError
            If `destination` is this project, open in another instance, not writable, or the
            disk is full; `destination` is then unchanged.
        """
        destination = os.fspath(destination)
        if os.path.exists(destination) and os.path.samefile(destination, self.path):
            raise ProjectError(destination, "is the project itself; choose another file")
        target_lock = ProjectLock(destination)
        folder = os.path.dirname(os.path.abspath(destination))
        temp = None
        try:
            fd, temp = tempfile.mkstemp(prefix=".etmira-copy-", suffix=".tmp", dir=folder)
            os.close(fd)
            copy = sqlite3.connect(temp, isolation_level=None)
            try:

                def step(status, remaining, total):
                    if progress is not None:
                        progress(total - remaining, total)

                self._db.backup(copy, pages=256, progress=step)
                copy.execute("PRAGMA journal_mode = WAL")
            finally:
                copy.close()
            fsync(temp)
            os.replace(temp, destination)
            temp = None
            fsync(folder)
        except (sqlite3.Error, OSError) as error:
            if _is_disk_full(error):
                raise ProjectError(
                    destination, "the disk is full; the copy was not written"
                ) from None
            raise ProjectError(destination, f"cannot write the copy ({error})") from None
        finally:
            if temp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
            target_lock.release()

    # ---- internals --------------------------------------------------------------------------

    def _query(self, sql: str, parameters: tuple = ()) -> list[tuple]:
        try:
            return self._db.execute(sql, parameters).fetchall()
        except sqlite3.Error as error:
            raise ProjectError(self.path, f"the project file is damaged ({error})") from None

    def _rows(self, sql: str, parameters: tuple = ()):
        """Iterate over rows (a layer's tiles need not all be in memory at once)."""
        try:
            yield from self._db.execute(sql, parameters)
        except sqlite3.Error as error:
            raise ProjectError(self.path, f"the project file is damaged ({error})") from None

    def _layer(self, name: str) -> tuple[np.dtype, tuple[int, int], int]:
        if name not in self._layers:
            raise KeyError(f"no layer {name!r}; the project has {list(self.layer_names)}")
        return self._layers[name]

    def _read_layer_table(self) -> dict:
        layers = {}
        for name, dtype, height, width, tile, codec in self._query("SELECT * FROM layers"):
            if codec != CODEC:
                raise ProjectError(
                    self.path,
                    f"layer {name} uses the codec {codec!r}, which this etmira cannot read",
                )
            if (
                dtype not in DTYPES
                or min(height, width) < 1
                or height * width > MAX_PIXELS
                or tile < 16
            ):
                raise ProjectError(self.path, f"the project file is damaged (layer {name})")
            layers[name] = (np.dtype(dtype), (height, width), tile)
        return layers


def _storable(given: np.dtype, stored: np.dtype) -> bool:
    """Whether an array of dtype ``given`` may update a layer of dtype ``stored``: the same
    dtype, or a float array for a float layer (rounded tile by tile)."""
    return given == stored or (given.kind == "f" and stored.kind == "f")


def _check_layers(arrays: Mapping[str, np.ndarray], known: Mapping | None) -> None:
    shapes = {info[1] for info in (known or {}).values()}
    for name, array in arrays.items():
        if not isinstance(array, np.ndarray) or array.ndim != 2 or array.dtype.name not in DTYPES:
            raise ValueError(
                f"layers[{name!r}] must be a 2-D array of dtype {DTYPES}, got "
                f"{getattr(array, 'dtype', type(array))} "
                f"{getattr(array, 'shape', '')}"
            )
        if known and name in known and not _storable(array.dtype, known[name][0]):
            raise ValueError(
                f"layers[{name!r}] must keep dtype {known[name][0]}, got {array.dtype}"
            )
        shapes.add(array.shape)
    if len(shapes) > 1:
        raise ValueError(f"layers must all have one shape, got {sorted(shapes)}")
