"""The one way tabs run model work: on a few long-lived worker threads, as many as heavy jobs at once.

Why not in Gradio's request threads: with GNU OpenMP (torch's CPU backend) every thread that runs
torch ops keeps a team of OpenMP threads. Gradio answers requests from a pool of up to 40
threads, so over time dozens of teams exist; once they hold more threads than there are cores,
every wait between parallel regions sleeps instead of spinning, and the same 4-image generation
took 1.2 s instead of 0.55 s on 2 cores. Keeping all torch work on the same few threads keeps
the teams few. ``bench/compute.py`` measures each tab's handler both ways.

Model work handed to ``run`` / ``submit`` is a plain function of plain values (a model key, a
recipe, messages) that returns CPU data, so a later backend can run it in another process
(ZeroGPU forks a worker per call and pickles arguments and results) without the tabs changing.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_pool: ThreadPoolExecutor | None = None
_workers = 1
_inline = False  # the old way, kept for the bench's comparison: run() in the caller's thread, submit() on a new one
_lock = threading.Lock()
_on_worker = threading.local()


def configure(workers: int, *, inline: bool = False) -> None:
    """Size the pool (the runtime calls this with its heavy-job concurrency). Running jobs finish."""
    global _pool, _workers, _inline
    with _lock:
        old, _pool, _workers, _inline = _pool, None, max(1, int(workers)), inline
    if old is not None:
        old.shutdown(wait=False)


def on_worker() -> bool:
    """Whether this thread is one of the workers (work submitted from here runs inline)."""
    return getattr(_on_worker, "active", False)


def _mark() -> None:
    _on_worker.active = True


def submit(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future:
    """Start ``fn(*args, **kwargs)`` on a worker; its Future. From a worker it runs right here, so
    nested work can never wait for a worker it occupies itself."""
    global _pool
    if on_worker() or _inline:
        future: Future = Future()

        def fill() -> None:
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # delivered through the Future, like the pool does
                future.set_exception(exc)

        if on_worker():
            fill()
        else:
            threading.Thread(target=fill, name="model-work-inline", daemon=True).start()
        return future
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_workers, thread_name_prefix="model-work", initializer=_mark)
        return _pool.submit(fn, *args, **kwargs)


def run(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` on a worker, waited for; its exception is raised here."""
    if _inline or on_worker():
        return fn(*args, **kwargs)
    return submit(fn, *args, **kwargs).result()


_DONE = object()


def stream(fn: Callable[..., Iterator[T]], /, *args: Any, **kwargs: Any) -> Iterator[T]:
    """Iterate the generator ``fn(*args, **kwargs)`` on a worker, relaying its items to the caller.

    The worker runs ahead by at most a few items. When the caller stops early (a closed tab, a
    cancelled job, GeneratorExit), the worker closes the generator at its next item."""
    if _inline or on_worker():
        yield from fn(*args, **kwargs)
        return
    items: queue.Queue = queue.Queue(maxsize=4)
    left = threading.Event()

    def work() -> None:
        generator = fn(*args, **kwargs)
        try:
            for item in generator:
                while not left.is_set():
                    try:
                        items.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if left.is_set():
                    return
        finally:
            generator.close()
            items.put(_DONE)

    future = submit(work)
    try:
        while (item := items.get()) is not _DONE:
            yield item
    finally:
        left.set()
        while not future.done():  # let the worker see it and finish
            try:
                items.get(timeout=0.1)
            except queue.Empty:
                pass
    future.result()  # re-raise the generator's error, if any
