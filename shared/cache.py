"""One process-wide model cache: single-flight, thread-safe, LRU under a memory budget.

Keys are ``(model, device, dtype, variant)``. Two requests for a model that is loading wait for the
same load; a failed load is not cached, so the next request tries again. When a new model would
push the total past the budget, the least recently used models are dropped and their memory freed
(``gc`` + ``torch.cuda.empty_cache``) — a request still using one keeps it alive until it ends.
"""

from __future__ import annotations

import collections
import dataclasses
import gc
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, NamedTuple

import torch


class CacheKey(NamedTuple):
    model: str
    device: str
    dtype: str
    variant: str = ""  # e.g. "eager-attention" when a tab needs a different build of a model

    def __str__(self) -> str:
        extra = f", {self.variant}" if self.variant else ""
        return f"{self.model} ({self.device}, {self.dtype}{extra})"


@dataclasses.dataclass
class Entry:
    value: Any
    nbytes: int
    load_seconds: float
    loaded_at: float


def module_bytes(obj: Any) -> int:
    """Bytes held by the parameters and buffers of every torch module in ``obj`` (tied weights once)."""
    seen: set[int] = set()
    total = 0
    stack = [obj]
    visited: set[int] = set()
    while stack:
        item = stack.pop()
        if id(item) in visited:
            continue
        visited.add(id(item))
        if isinstance(item, torch.nn.Module):
            for tensor in [*item.parameters(), *item.buffers()]:
                if tensor.data_ptr() not in seen:
                    seen.add(tensor.data_ptr())
                    total += tensor.numel() * tensor.element_size()
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(getattr(item, "components", None), dict):  # a diffusers pipeline
            stack.extend(item.components.values())
        elif dataclasses.is_dataclass(item):
            stack.extend(getattr(item, f.name) for f in dataclasses.fields(item))
    return total


class ModelCache:
    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._entries: collections.OrderedDict[CacheKey, Entry] = collections.OrderedDict()
        self._loading: dict[CacheKey, Future] = {}
        self._lock = threading.Lock()
        self.loads = 0  # how many loads actually ran (tests check single-flight with it)

    def get(self, key: CacheKey, load: Callable[[], Any]) -> Any:
        """The cached value for ``key``, calling ``load()`` once if it is missing."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry.value
            future = self._loading.get(key)
            owner = future is None
            if owner:
                future = self._loading[key] = Future()
        if not owner:
            return future.result()  # re-raises the loader's error for every waiter

        try:
            start = time.perf_counter()
            value = load()
            seconds = time.perf_counter() - start
            nbytes = module_bytes(value)
        except BaseException as exc:
            with self._lock:
                del self._loading[key]
            future.set_exception(exc)
            raise
        with self._lock:
            self._evict_for(nbytes)
            self._entries[key] = Entry(value, nbytes, seconds, time.time())
            del self._loading[key]
            self.loads += 1
        future.set_result(value)
        return value

    def _evict_for(self, incoming: int) -> None:
        """Drop least recently used entries until ``incoming`` fits (caller holds the lock)."""
        dropped = False
        while self._entries and self.used_bytes() + incoming > self.budget_bytes:
            self._entries.popitem(last=False)
            dropped = True
        if dropped:
            free_memory()

    def unload(self, key: CacheKey) -> bool:
        with self._lock:
            entry = self._entries.pop(key, None)
        del entry
        free_memory()
        return True

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
        free_memory()

    def used_bytes(self) -> int:
        return sum(entry.nbytes for entry in self._entries.values())

    def snapshot(self) -> list[tuple[CacheKey, Entry]]:
        """(key, entry) pairs, least recently used first."""
        with self._lock:
            return list(self._entries.items())

    def loading(self) -> list[CacheKey]:
        with self._lock:
            return list(self._loading)


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
