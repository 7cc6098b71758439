"""Results kept between requests of one session (an attention tensor, a diffusion run's steps),
held here under a memory budget instead of in Gradio's per-session state.

Gradio keeps a session's ``gr.State`` for as long as it keeps the session, and a client that
never opens a heartbeat is never cleaned up, so a large result per session grows without bound.
Here the session's ``gr.State`` holds only a key; the values live in one store with a byte budget
and an age limit, least recently used out first. A key that has been dropped says so clearly.
"""

from __future__ import annotations

import collections
import secrets
import threading
import time
from typing import Any

MAX_BYTES = 1 * 2**30  # every session's kept results together
MAX_AGE_S = 60 * 60  # a result not looked at for an hour is dropped


class ResultStore:
    def __init__(self, max_bytes: int = MAX_BYTES, max_age_s: float = MAX_AGE_S) -> None:
        self.max_bytes, self.max_age_s = max_bytes, max_age_s
        self._items: collections.OrderedDict[str, tuple[Any, int, float]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def put(self, value: Any, nbytes: int) -> str:
        """Keep ``value`` (about ``nbytes`` large); its key, unguessable."""
        key = secrets.token_urlsafe(16)
        with self._lock:
            self._items[key] = (value, nbytes, time.monotonic())
            self._trim()
        return key

    def get(self, key: object, what: str = "That result") -> Any:
        """The value under ``key``; ValueError (a message for the user) if it was dropped or never was."""
        with self._lock:
            self._trim()
            item = self._items.get(key) if isinstance(key, str) else None
            if item is None:
                raise ValueError(f"{what} is no longer kept on the server (results expire); run it again.")
            self._items[key] = (item[0], item[1], time.monotonic())
            self._items.move_to_end(key)
            return item[0]

    def used_bytes(self) -> int:
        with self._lock:
            return sum(nbytes for _, nbytes, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def _trim(self) -> None:
        """Drop what is too old, then the least recently used until the rest fit (caller holds the lock)."""
        now = time.monotonic()
        for key in [k for k, (_, _, at) in self._items.items() if now - at > self.max_age_s]:
            del self._items[key]
        total = sum(nbytes for _, nbytes, _ in self._items.values())
        while total > self.max_bytes and len(self._items) > 1:
            _, (_, nbytes, _) = self._items.popitem(last=False)
            total -= nbytes
