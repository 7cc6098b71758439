"""ZeroGPU, the Hugging Face Spaces hardware that lends a GPU per call, and the shim that makes
``GPU`` a no-op everywhere else.

What the ``spaces`` package does with a ``@spaces.GPU`` function (read from its source, 0.51):

- it runs in a **forked worker process** (made at the first call, kept while idle), in a fresh
  thread there; its arguments and every return value or yield are **pickled** through a queue;
- nothing the worker changes comes back: threads of the main process (our compute workers) don't
  exist in it, and an Event set in the main process is never seen by it;
- a Gradio cancellation (Stop with ``cancels=``, a closed tab) reaches a generator: the worker
  closes it at its next yield;
- an exception other than ``gr.Error`` reaches the caller as a bare "ZeroGPU worker error";
- CUDA is emulated in the main process: models moved to ``cuda`` there (at startup, on the main
  thread) are packed and moved to the real GPU inside each worker.

So ``shared.compute`` sends the tabs' GPU entry points through ``GPU`` with plain arguments and
boxes their errors as values. This module holds the switch and the decorator; ``import spaces``
must come before anything touches CUDA, hence ``app.py`` imports this module first.
"""

from __future__ import annotations

import os
from collections.abc import Callable

ENV = "SPACES_ZERO_GPU"  # what ZeroGPU Spaces set (the spaces package reads the same variable)


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("1", "t", "true", "yes", "on")


def requested(env: dict | None = None) -> bool:
    """Whether this process runs on ZeroGPU hardware (the environment says so)."""
    return _truthy((os.environ if env is None else env).get(ENV))


def no_op(task: Callable | None = None, *, duration=None, size=None, **_) -> Callable:
    """``spaces.GPU``'s signature, doing nothing: ``@GPU``, ``@GPU()`` and ``@GPU(duration=…)`` all
    return the function unchanged."""
    if callable(task):
        return task
    return lambda fn: fn


GPU: Callable = no_op
if requested():
    try:  # before torch initialises CUDA: spaces refuses to start after that
        import spaces

        GPU = spaces.GPU
    except ImportError:  # a local run with the variable set: the no-op, and the same code paths
        pass

# The switch itself, set by runtime.configure from the settings (default: the environment).
ON = False
# The bundled models are tiny: on ZeroGPU they run on the CPU of the main process, costing visitors no
# GPU quota. The contract test turns this off to send them through the forked worker too.
BUNDLED_ON_CPU = True
_PARENT = os.getpid()


def configure(on: bool) -> None:
    global ON, _PARENT
    ON, _PARENT = on, os.getpid()


def in_worker() -> bool:
    """Whether this process is a forked GPU worker (its parent configured ZeroGPU)."""
    return os.getpid() != _PARENT


def wants_gpu(spec) -> bool:
    """Whether work on this catalog model goes through a GPU call: on ZeroGPU, from the main process,
    for the models that need one (not a server's, not the tiny bundled ones)."""
    if not ON or in_worker() or getattr(spec, "engine", "transformers") != "transformers":
        return False
    return not (spec.bundled and BUNDLED_ON_CPU)
