"""The one way tabs run model work: on a few long-lived worker threads, as many as heavy jobs at once.

Why not in Gradio's request threads: with GNU OpenMP (torch's CPU backend) every thread that runs
torch ops keeps a team of OpenMP threads. Gradio answers requests from a pool of up to 40
threads, so over time dozens of teams exist; once they hold more threads than there are cores,
every wait between parallel regions sleeps instead of spinning, and the same 4-image generation
took 1.2 s instead of 0.55 s on 2 cores. Keeping all torch work on the same few threads keeps
the teams few. ``bench/compute.py`` measures each tab's handler both ways.

Two lanes: ``long`` (images, latents, the training lab) and ``interactive`` (chat and
attention), so a chat message never waits for a 60-step image.

- With ``preempt`` (on CPUs) there is still one torch thread: interactive jobs wait in a queue of
  their own, and the worker runs them as soon as it is free, before the next long job starts, or
  in the middle of one, wherever it calls ``yield_to_interactive()`` (between denoising steps).
  A second thread would be a second OpenMP team on the same cores: measured, that made the image
  job behind a chat 1.7× slower for all its steps, not just while the chat ran.
- Without it (GPUs) each lane has its own workers and they run side by side.

``bench/interactive_latency.py`` measures both against the old single queue.

Model work handed to ``run`` / ``submit`` is a plain function of plain values (a model key, a
recipe, messages) that returns CPU data. On ZeroGPU (shared/zerogpu.py) the tabs' GPU entry points,
marked with ``gpu_entry``, go through ``spaces.GPU`` instead: a forked worker, arguments and
results pickled; their errors come back as values and are raised here, as they were raised there.
"""

from __future__ import annotations

import pickle
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from shared import zerogpu

T = TypeVar("T")

LONG, INTERACTIVE = "long", "interactive"
MAX_YIELD_S = 30.0  # a long job waits at most this long per step for interactive work, so it never starves

_pools: dict[str, ThreadPoolExecutor] = {}
_workers = 1
_inline = False  # the old way, kept for the bench's comparison: run() in the caller's thread, submit() on a new one
_lanes = True  # False: one pool for both lanes (the old way, for the bench)
_preempt = True
_allow_any_model = False  # models outside the catalog may run (the operator opted in): see on_gpu
_lock = threading.Lock()
_on_worker = threading.local()
_interactive = threading.Condition()  # guards _running_interactive
_running_interactive = 0
_waiting: queue.Queue = queue.Queue()  # interactive jobs for the one worker (preempt): (fn, args, kwargs, future)


def configure(
    workers: int, *, inline: bool = False, lanes: bool = True, preempt: bool = True, allow_any_model: bool = False
) -> None:
    """Size each lane's pool (the runtime calls this with its heavy-job concurrency, and says whether
    models outside the catalog may run: ZeroGPU's routing resolves them too). Running jobs finish."""
    global _pools, _workers, _inline, _lanes, _preempt, _allow_any_model
    with _lock:
        old, _pools = _pools, {}
        _workers, _inline, _lanes, _preempt = max(1, int(workers)), inline, lanes, preempt
        _allow_any_model = allow_any_model
    for pool in old.values():
        pool.shutdown(wait=False)


def on_worker() -> bool:
    """Whether this thread is one of the workers (work submitted from here runs inline)."""
    return getattr(_on_worker, "lane", None) is not None


def _marker(lane: str) -> Callable[[], None]:
    def mark() -> None:
        _on_worker.lane = lane

    return mark


def _pool(lane: str) -> ThreadPoolExecutor:
    lane = lane if _lanes else LONG
    if lane not in _pools:
        prefix = "model-work" if lane == LONG else f"model-work-{lane}"
        _pools[lane] = ThreadPoolExecutor(max_workers=_workers, thread_name_prefix=prefix, initializer=_marker(lane))
    return _pools[lane]


def interactive_running() -> int:
    """How many interactive jobs are running now."""
    with _interactive:
        return _running_interactive


def yield_to_interactive(limit_s: float = MAX_YIELD_S) -> float:
    """Between two steps of long work: let interactive work go first. With preemption the worker runs
    the waiting interactive jobs right here (the same torch thread); without it this is a no-op, the
    interactive lane has workers of its own. Seconds spent; a no-op anywhere but on a long worker.
    (``limit_s``: an interactive job, once started, runs to its end; a chat reply ends by 120 s.)"""
    if not _preempt or not _lanes or getattr(_on_worker, "lane", None) != LONG:
        return 0.0
    start = time.perf_counter()
    while time.perf_counter() - start < limit_s:
        try:
            fn, args, kwargs, future = _waiting.get_nowait()
        except queue.Empty:
            break
        if not future.set_running_or_notify_cancel():
            continue  # its caller gave up on it
        try:
            future.set_result(_interactive_job(fn, args, kwargs))
        except BaseException as exc:  # delivered through the Future, like the pool does
            future.set_exception(exc)
    return time.perf_counter() - start


def _interactive_job(fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
    global _running_interactive
    with _interactive:
        _running_interactive += 1
    try:
        return fn(*args, **kwargs)
    finally:
        with _interactive:
            _running_interactive -= 1
            _interactive.notify_all()


def _long_job(fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
    yield_to_interactive()  # a long job that was waiting for a worker lets interactive work go first
    return fn(*args, **kwargs)


def submit(fn: Callable[..., T], /, *args: Any, lane: str = LONG, **kwargs: Any) -> Future:
    """Start ``fn(*args, **kwargs)`` on a worker of ``lane``; its Future. From a worker it runs right
    here, so nested work can never wait for a worker it occupies itself."""
    if lane not in (LONG, INTERACTIVE):
        raise ValueError(f"Unknown lane {lane!r}.")
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
    if lane == INTERACTIVE and _preempt and _lanes:  # the one worker runs it as soon as it can
        future = Future()
        _waiting.put((fn, args, kwargs, future))
        with _lock:
            _pool(LONG).submit(yield_to_interactive)  # at once if the worker is idle; sooner from a long job
        return future
    job = _interactive_job if lane == INTERACTIVE else _long_job
    with _lock:
        return _pool(lane).submit(job, fn, args, kwargs)


def run(fn: Callable[..., T], /, *args: Any, lane: str = LONG, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` on a worker of ``lane``, waited for; its exception is raised here."""
    if on_gpu(fn, args, kwargs):
        return _unbox(_gpu["run"](fn, args, kwargs))
    if _inline or on_worker():
        return fn(*args, **kwargs)
    return submit(fn, *args, lane=lane, **kwargs).result()


_DONE = object()


def stream(fn: Callable[..., Iterator[T]], /, *args: Any, lane: str = LONG, **kwargs: Any) -> Iterator[T]:
    """Iterate the generator ``fn(*args, **kwargs)`` on a worker, relaying its items to the caller.

    The worker runs ahead by at most a few items. When the caller stops early (a closed tab, a
    cancelled job, GeneratorExit), the worker closes the generator at its next item."""
    if on_gpu(fn, args, kwargs):
        for tag, item in _gpu["stream"](fn, args, kwargs):
            yield _unbox((tag, item))
        return
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

    future = submit(work, lane=lane)
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


# -- ZeroGPU: GPU entry points in a forked worker, plain values in and out -----------------------

MIN_GPU_S, MAX_GPU_S = 5, 180  # the duration asked of ZeroGPU for one call (seconds)


def gpu_entry(*, model: Callable[..., Any], seconds: Callable[..., float]) -> Callable[[T], T]:
    """Mark a module-level function of plain values as a GPU entry point: ``model(*args, **kwargs)``
    names the catalog model it runs (whether it needs the GPU), ``seconds(*args, **kwargs)`` how long
    it may take there (ZeroGPU schedules, and queues visitors, by that)."""

    def mark(fn: T) -> T:
        fn.gpu_model, fn.gpu_seconds = model, seconds  # type: ignore[attr-defined]
        return fn

    return mark


def on_gpu(fn: Callable, args: tuple, kwargs: dict) -> bool:
    """Whether this call goes through ZeroGPU's worker (an entry point, on a model that needs a GPU)."""
    if not zerogpu.ON or getattr(fn, "gpu_model", None) is None or zerogpu.in_worker():
        return False
    from shared import catalog

    choice = fn.gpu_model(*args, **kwargs)
    try:
        spec = catalog.resolve(choice, catalog.TASKS, allow_any_model=_allow_any_model)
    except ValueError:
        return False  # the entry point itself reports the unknown model
    return zerogpu.wants_gpu(spec)


def gpu_seconds(fn: Callable, args: tuple, kwargs: dict) -> int:
    """The duration asked for one call: the entry point's estimate, within [MIN_GPU_S, MAX_GPU_S]."""
    try:
        estimate = float(fn.gpu_seconds(*args, **kwargs))
    except Exception:  # a bad request is refused inside the call; ask for the least
        estimate = MIN_GPU_S
    return int(min(MAX_GPU_S, max(MIN_GPU_S, estimate)))


def _in_gpu_call() -> None:
    """Inside the forked worker the main process's pools have no threads: submit() starts its own."""
    global _inline
    if zerogpu.in_worker():
        _inline = True


def _portable(exc: BaseException) -> BaseException:
    """The exception itself if it survives pickling (its type and message reach the handler), else a
    RuntimeError with its text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def gpu_call(fn: Callable[..., T], args: tuple, kwargs: dict) -> tuple[str, Any]:
    """What runs on the GPU for ``run``: ("ok", result) or ("error", exception)."""
    _in_gpu_call()
    try:
        return "ok", fn(*args, **kwargs)
    except Exception as exc:
        return "error", _portable(exc)


def gpu_stream(fn: Callable[..., Iterator[T]], args: tuple, kwargs: dict) -> Iterator[tuple[str, Any]]:
    """What runs on the GPU for ``stream``: ("ok", item)… then ("error", exception) if it failed."""
    _in_gpu_call()
    try:
        for item in fn(*args, **kwargs):
            yield "ok", item
    except Exception as exc:
        yield "error", _portable(exc)


def _unbox(result: tuple[str, Any]) -> Any:
    tag, value = result
    if tag == "error":
        raise value
    return value


_gpu: dict[str, Callable] = {}


def use_gpu(decorator: Callable) -> None:
    """Wrap the two GPU calls with ``decorator`` (``spaces.GPU``; a test's fork harness)."""
    _gpu["run"] = decorator(duration=gpu_seconds)(gpu_call)
    _gpu["stream"] = decorator(duration=gpu_seconds)(gpu_stream)


use_gpu(zerogpu.GPU)  # at import: ZeroGPU wants its functions decorated before the app launches
