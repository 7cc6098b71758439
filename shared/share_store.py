"""Share links: snapshots of a tab (a chat, an image and its recipe, a latent walk, an attention
view) kept on disk under an unguessable id, so a link opens the same thing after a restart.

One folder holds everything: ``shares.sqlite3`` (one row per snapshot: kind, JSON payload, sizes,
times, the delete token's SHA-256) and ``files/<id>/`` (the snapshot's files, named by the store:
``0.png``, ``1.bin``…; the caller's names live only in the row). SQLite in WAL mode lets many
threads and several processes share the folder: readers never wait, and every write runs inside
``BEGIN IMMEDIATE``, which holds the database's one write lock, so the size check and the insert
are one step.

Crash order (no reader ever sees a row with half its files). A put takes the write lock, writes
the files into ``files/.tmp-<random>/`` and fsyncs them, renames that folder to ``files/<id>/``
(atomic) and fsyncs ``files/``, then inserts the row and commits. The row is the commit point:
a crash before the rename leaves a temp folder, a crash after it a folder with no row, and
neither is visible to ``get``, which starts from the row. A write crashing before its commit
releases the lock as its process dies, so whoever holds the lock next knows that every temp
folder and every folder without a live row is debris: ``sweep`` (run on open) removes them under
the lock. A delete or an expiry commits its tombstone first and removes the files after, so a
half-removed folder only ever belongs to a row that already says "deleted" or "expired".
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

KINDS = ("chat", "text-to-image", "latent", "attention")
MAX_FILES = 100  # files in one snapshot
MAX_FILE_KEY = 100  # characters in a caller's name for a file
_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")  # token_urlsafe(16): 128 bits; used with fullmatch ($ allows "\n")
_PNG = b"\x89PNG\r\n\x1a\n"
_LIVE = "payload IS NOT NULL AND (expires_at IS NULL OR expires_at > ?)"
_TOMBSTONE = "UPDATE shares SET payload = NULL, files = NULL, size = 0"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS shares (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    token_sha256 TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL,
    payload TEXT,  -- NULL once deleted or expired: the row stays as a tombstone
    files TEXT,  -- JSON {caller's name: file name under files/<id>/}
    size INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0
)"""

MALFORMED = "This share link is not valid: its id should be 22 letters, digits, '-' or '_'."
UNKNOWN = "No shared snapshot has this link: it may be mistyped, or the server's store was reset."
DELETED = "This shared snapshot was deleted by its owner."

# Tests set this to pause a put after its files are written and fsynced, before the rename and
# commit, to kill the process there: called with (share_id, temp_folder).
_after_files_written: Callable[[str, Path], None] | None = None


class ShareNotFound(ValueError):
    """The link leads nowhere: malformed, unknown, expired or deleted (the message says which)."""


class StoreFull(ValueError):
    """The store's byte budget is used up."""


class NotOwner(ValueError):
    """A delete with the wrong token."""


@dataclasses.dataclass(frozen=True)
class Share:
    id: str
    delete_token: str  # shown to the sharer once; only its SHA-256 is stored
    created_at: float  # seconds since the epoch
    expires_at: float | None


def default_folder(env: Mapping[str, str] | None = None, volume: Path = Path("/data")) -> Path:
    """Where shares live: on a Hugging Face Space's persistent volume (``/data``) when there is a
    writable one, since the rest of a Space's disk is wiped on restart; else the user's data folder."""
    env = os.environ if env is None else env
    if volume.is_dir() and os.access(volume, os.W_OK):
        return volume / "genai-playground-shares"
    data = Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share").expanduser()
    return data / "genai-playground" / "shares"


def _mb(nbytes: float) -> str:
    return f"{nbytes / 2**20:.3g} MB"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def _check_id(share_id: object) -> str:
    """The id, if it has the shape of one; nothing about it reaches the disk before this."""
    if not isinstance(share_id, str) or not _ID.fullmatch(share_id):
        raise ShareNotFound(MALFORMED)  # never echoed: it may be anything, of any length
    return share_id


def _checked(kind: object, payload: object, files: object) -> tuple[str, dict[str, bytes]]:
    """The payload as JSON text and the files as bytes, or ValueError saying what is wrong."""
    if kind not in KINDS:
        raise ValueError(f"A share's kind is one of {', '.join(KINDS)}.")
    if not isinstance(payload, dict):
        raise ValueError("A share's payload must be a dict.")
    try:
        text = json.dumps(payload, allow_nan=False, separators=(",", ":"))  # ASCII: lone surrogates too
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"This snapshot can't be shared: its data isn't plain JSON ({exc}).") from None
    files = {} if files is None else files
    if not isinstance(files, dict) or len(files) > MAX_FILES:
        raise ValueError(f"A share's files must be a dict of at most {MAX_FILES} entries.")
    blobs = {}
    for name, data in files.items():
        if not isinstance(name, str) or not 0 < len(name) <= MAX_FILE_KEY:
            raise ValueError(f"A share's file names must be 1 to {MAX_FILE_KEY} characters.")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValueError("A share's files must be bytes.")
        blobs[name] = bytes(data)
    return text, blobs


def _lifetime(ttl_s: object) -> float | None:
    if ttl_s is not None and (
        isinstance(ttl_s, bool) or not isinstance(ttl_s, (int, float)) or not 0 < ttl_s < math.inf
    ):
        raise ValueError("A share's lifetime must be a positive number of seconds.")
    return ttl_s


def _fsync_dir(path: Path) -> None:
    """Make a folder's entries (a new file, a rename) durable; a no-op where folders can't be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ShareStore:
    def __init__(
        self,
        folder: Path,
        *,
        max_snapshot_bytes: int = 20 * 2**20,
        max_total_bytes: int = 500 * 2**20,
        default_ttl_s: float | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.max_snapshot_bytes, self.max_total_bytes = max_snapshot_bytes, max_total_bytes
        self.default_ttl_s = default_ttl_s
        self._files = self.folder / "files"
        self._files.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()  # one connection per thread: sqlite3's are not shared
        with self._write() as conn:
            conn.execute(_SCHEMA)
            conn.execute("CREATE INDEX IF NOT EXISTS shares_expiry ON shares (expires_at) WHERE payload IS NOT NULL")
        self.sweep()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.folder / "shares.sqlite3", timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
        return conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction holding the database's write lock; rolled back on any error."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _dir(self, share_id: str) -> Path:
        return self._files / share_id

    def put(self, kind: str, payload: dict, files: dict[str, bytes] | None = None, ttl_s: float | None = None) -> Share:
        """Keep a snapshot; its link id and delete token. ValueError if it is refused (StoreFull when
        the store's budget is used up)."""
        text, blobs = _checked(kind, payload, files)
        size = len(text.encode()) + sum(len(data) for data in blobs.values())
        if size > self.max_snapshot_bytes:
            raise ValueError(
                f"This snapshot is {_mb(size)}; a shared snapshot may be at most {_mb(self.max_snapshot_bytes)}."
            )
        ttl_s = _lifetime(self.default_ttl_s if ttl_s is None else ttl_s)
        share_id, token, now = secrets.token_urlsafe(16), secrets.token_urlsafe(32), time.time()
        share = Share(share_id, token, now, None if ttl_s is None else now + ttl_s)
        names = {
            name: f"{i}.png" if data.startswith(_PNG) else f"{i}.bin" for i, (name, data) in enumerate(blobs.items())
        }
        self._expire(now)
        try:
            with self._write() as conn:
                (used,) = conn.execute(f"SELECT COALESCE(SUM(size), 0) FROM shares WHERE {_LIVE}", (now,)).fetchone()
                if used + size > self.max_total_bytes:
                    raise StoreFull(
                        f"The share store is full ({_mb(self.max_total_bytes)}); "
                        "try again when older links have expired, or share something smaller."
                    )
                self._write_files(share_id, blobs, names)
                conn.execute(
                    "INSERT INTO shares (id, kind, token_sha256, created_at, expires_at, payload, files, size)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (share_id, kind, _digest(token), now, share.expires_at, text, json.dumps(names), size),
                )
        except BaseException:
            shutil.rmtree(self._dir(share_id), ignore_errors=True)  # renamed but never committed
            raise
        return share

    def _write_files(self, share_id: str, blobs: dict[str, bytes], names: dict[str, str]) -> None:
        """Write the files into a temp folder, fsync them, rename it to the id (caller holds the lock)."""
        temp = self._files / f".tmp-{secrets.token_hex(8)}"
        temp.mkdir()
        try:
            for name, data in blobs.items():
                with open(temp / names[name], "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            _fsync_dir(temp)
            if _after_files_written is not None:
                _after_files_written(share_id, temp)
            os.rename(temp, self._dir(share_id))
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        _fsync_dir(self._files)

    def get(self, share_id: str) -> dict:
        """The snapshot: {"kind", "payload", "files": {name: bytes}, "created_at", "expires_at"}.
        ShareNotFound, with a message for the visitor, when the link leads nowhere."""
        share_id = _check_id(share_id)
        query = "SELECT kind, payload, files, created_at, expires_at, deleted FROM shares WHERE id = ?"
        row = self._conn().execute(query, (share_id,)).fetchone()
        _check_row(row)
        kind, text, names, created_at, expires_at, _ = row
        folder = self._dir(share_id)
        try:
            if not folder.is_dir():
                raise FileNotFoundError(folder)
            files = {name: (folder / disk).read_bytes() for name, disk in json.loads(names).items()}
        except FileNotFoundError:  # deleted or expired while we read, or the files were lost
            _check_row(self._conn().execute(query, (share_id,)).fetchone())
            raise ShareNotFound(UNKNOWN) from None
        return {
            "kind": kind,
            "payload": json.loads(text),
            "files": files,
            "created_at": created_at,
            "expires_at": expires_at,
        }

    def delete(self, share_id: str, delete_token: str) -> None:
        """Delete a snapshot, leaving a tombstone so its link says so. NotOwner if the token is wrong."""
        share_id = _check_id(share_id)
        with self._write() as conn:
            row = conn.execute("SELECT token_sha256 FROM shares WHERE id = ?", (share_id,)).fetchone()
            if row is None:
                raise ShareNotFound(UNKNOWN)
            if not isinstance(delete_token, str) or not hmac.compare_digest(_digest(delete_token), row[0]):
                raise NotOwner("Only the person who shared this can delete it.")
            conn.execute(f"{_TOMBSTONE}, deleted = 1 WHERE id = ?", (share_id,))
        shutil.rmtree(self._dir(share_id), ignore_errors=True)

    def _expire(self, now: float) -> None:
        """Turn the rows past their time into tombstones, then remove their files."""
        with self._write() as conn:
            due = conn.execute("SELECT id FROM shares WHERE payload IS NOT NULL AND expires_at <= ?", (now,)).fetchall()
            conn.executemany(f"{_TOMBSTONE} WHERE id = ?", due)
        for (share_id,) in due:
            shutil.rmtree(self._dir(share_id), ignore_errors=True)

    def sweep(self, now: float | None = None) -> None:
        """Expire what is past its time; remove temp folders, folders without a live row, and rows
        whose folder was lost. Under the write lock, so no put is halfway while it looks."""
        self._expire(time.time() if now is None else now)
        with self._write() as conn:
            kept = {i for (i,) in conn.execute("SELECT id FROM shares WHERE payload IS NOT NULL")}
            present = set()
            for path in self._files.iterdir():
                if path.name in kept and path.is_dir():
                    present.add(path.name)
                elif path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            conn.executemany("DELETE FROM shares WHERE id = ?", [(i,) for i in kept - present])

    def stats(self) -> dict:
        """Snapshots kept and their bytes (expired ones not counted)."""
        query = f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM shares WHERE {_LIVE}"
        count, total = self._conn().execute(query, (time.time(),)).fetchone()
        return {"count": count, "total_bytes": total}


def _check_row(row: tuple | None) -> None:
    """ShareNotFound with the reason, unless the row holds a live snapshot."""
    if row is None:
        raise ShareNotFound(UNKNOWN)
    _, payload, _, _, expires_at, deleted = row
    if deleted:
        raise ShareNotFound(DELETED)
    if expires_at is None and payload is None:
        raise ShareNotFound(UNKNOWN)
    if payload is None or (expires_at is not None and expires_at <= time.time()):  # swept, or due to be
        raise ShareNotFound(f"This link expired on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(expires_at))}.")
