"""A stand-in for ``spaces.GPU`` with its process contract, for tests/app/test_zerogpu_contract.py.

What it keeps of the real one (spaces 0.51, ``spaces/zero/wrappers.py``): a worker process made by
**fork** from the calling thread at the first call and reused while alive; arguments and every
result or yield **pickled** through a queue (``put`` pickles at once, so an unpicklable value fails
the call); the task run on a fresh thread in the worker; a generator closed at its next yield once
the caller stops reading (GeneratorExit → a stop event the worker checks); an exception other than
``gr.Error`` reaching the caller as a bare "ZeroGPU worker error". What it leaves out: scheduling,
quotas and CUDA emulation (there is no GPU here).
"""

from __future__ import annotations

import functools
import inspect
import multiprocessing
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor

import gradio as gr

_fork = multiprocessing.get_context("fork")
calls: list[dict] = []  # every call: the task, the duration it asked for, how it ended (filled by the parent)
_workers: list = []  # every worker started, for shutdown()


def shutdown() -> None:
    """End every worker: a forked child holds copies of the parent's file descriptors (Playwright's
    pipe among them), so one left running keeps those open."""
    for worker in _workers:
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(5)
    _workers.clear()


def GPU(task=None, *, duration=None, size=None):
    if not callable(task):
        return functools.partial(GPU, duration=duration, size=size)
    wrapper = _generator if inspect.isgeneratorfunction(task) else _regular
    return wrapper(task, duration)


class _Worker:
    def __init__(self, task, generator: bool):
        self.args, self.results, self.stop = _fork.SimpleQueue(), _fork.SimpleQueue(), _fork.Event()
        self.process = _fork.Process(
            target=_serve, args=(task, generator, self.args, self.results, self.stop), daemon=True
        )
        self.process.start()
        _workers.append(self)


def _serve(task, generator, args_queue, results, stop) -> None:
    """The forked worker: one call at a time, on a fresh thread each, as spaces runs them."""
    while True:
        args, kwargs = args_queue.get()
        stop.clear()

        def run(args=args, kwargs=kwargs):
            try:
                if not generator:
                    results.put(("ok", task(*args, **kwargs)))
                    return
                items = task(*args, **kwargs)
                for n, item in enumerate(items, 1):
                    if stop.is_set():
                        items.close()
                        results.put(("closed", n - 1))
                        return
                    results.put(("ok", item))
                results.put(("end", None))
            except gr.Error as exc:
                results.put(("gr-error", exc))
            except Exception as exc:
                results.put(("error", "".join(traceback.format_exception_only(exc)).strip()))

        with ThreadPoolExecutor(1) as pool:
            pool.submit(run).result()


def _start(task, duration, args, kwargs, workers, generator):
    seconds = duration(*args, **kwargs) if callable(duration) else duration
    record = {"task": task.__name__, "fn": getattr(args[0], "__name__", None), "seconds": seconds, "end": None}
    calls.append(record)
    worker = workers.get("w")
    if worker is None or not worker.process.is_alive():
        worker = workers["w"] = _Worker(task, generator)
    worker.args.put((args, kwargs))  # pickled here: an unpicklable argument fails the call
    record["pid"] = worker.process.pid
    return worker, record


def _raise(tag, value):
    if tag == "gr-error":
        raise value
    raise gr.Error(f"ZeroGPU worker error: {value}")


def _regular(task, duration):
    workers, lock = {}, threading.Lock()

    @functools.wraps(task)
    def handler(*args, **kwargs):
        with lock:  # one call per worker at a time, as each spaces worker holds one GPU
            worker, record = _start(task, duration, args, kwargs, workers, generator=False)
            tag, value = worker.results.get()
        record["end"] = tag
        if tag != "ok":
            _raise(tag, value)
        return value

    return handler


def _generator(task, duration):
    workers, lock = {}, threading.Lock()

    @functools.wraps(task)
    def handler(*args, **kwargs):
        with lock:
            worker, record = _start(task, duration, args, kwargs, workers, generator=True)
            try:
                while True:
                    tag, value = worker.results.get()
                    if tag == "ok":
                        yield value
                        continue
                    record["end"] = tag if tag != "closed" else f"closed after {value}"
                    if tag in ("end", "closed"):
                        return
                    _raise(tag, value)
            except GeneratorExit:  # the caller left (a cancelled job): the worker closes it at its next yield
                worker.stop.set()
                while (tag := worker.results.get()[0]) == "ok":
                    pass
                record["end"] = "closed by the caller" if tag == "closed" else tag
                raise

    return handler
