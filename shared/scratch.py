"""Files the app writes for people to download (exports, PNGs, GIFs): one folder, swept.

``folder(prefix)`` makes a fresh subfolder of the scratch folder. Before it does, subfolders
older than ``max_age_s`` are deleted, then the oldest ones until the rest fit in ``max_bytes``,
so the disk used stays bounded however many requests come (Gradio copies each returned file into
its own cache, which ``app.py`` has Gradio sweep too).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path

MAX_AGE_S = 15 * 60  # a download link older than this is gone
MAX_BYTES = 256 * 2**20  # all scratch files together

_root: Path | None = None
_lock = threading.Lock()
_sweeping = threading.Lock()  # one sweep at a time: two would stat what the other deletes


def root() -> Path:
    """This process's scratch folder (made on first use, under the system's temp folder)."""
    global _root
    with _lock:
        if _root is None:
            _root = Path(tempfile.mkdtemp(prefix="genai-playground-"))
        return _root


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def sweep(max_age_s: float | None = None, max_bytes: int | None = None) -> None:
    """Delete subfolders past their age, then the oldest until the rest fit the byte budget
    (by default MAX_AGE_S and MAX_BYTES, read when it runs, so a test can lower them)."""
    max_age_s = MAX_AGE_S if max_age_s is None else max_age_s
    max_bytes = MAX_BYTES if max_bytes is None else max_bytes
    with _sweeping:
        now = time.time()
        folders = sorted((p for p in root().iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
        kept = []
        for folder in folders:
            if now - folder.stat().st_mtime > max_age_s:
                shutil.rmtree(folder, ignore_errors=True)
            else:
                kept.append((folder, _size(folder)))
        total = sum(size for _, size in kept)
        for folder, size in kept:  # oldest first
            if total <= max_bytes:
                break
            shutil.rmtree(folder, ignore_errors=True)
            total -= size


def folder(prefix: str) -> Path:
    """A fresh folder for one request's files (after a sweep)."""
    sweep()
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=root()))


def used_bytes() -> int:
    return _size(root())
