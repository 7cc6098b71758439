import gc
import threading
import time
import weakref

import pytest
import torch

from shared.cache import CacheKey, ModelCache, module_bytes

pytestmark = pytest.mark.fast


def linear(n: int) -> torch.nn.Module:
    return torch.nn.Linear(n, n, bias=False)  # n*n*4 bytes


def test_module_bytes_counts_tied_weights_once():
    a = linear(10)
    assert module_bytes(a) == 400
    assert module_bytes((a, a, {"x": a})) == 400


def test_concurrent_requests_load_once():
    cache = ModelCache(budget_bytes=10**9)
    calls = []

    def load():
        calls.append(1)
        time.sleep(0.3)
        return linear(4)

    results = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get(CacheKey("m", "cpu", "float32"), load)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and cache.loads == 1
    assert len(results) == 8 and all(r is results[0] for r in results)


def test_lru_eviction_frees_the_least_recently_used():
    cache = ModelCache(budget_bytes=900)  # room for two 400-byte models
    a_key, b_key, c_key = (CacheKey(k, "cpu", "float32") for k in "abc")
    a = cache.get(a_key, lambda: linear(10))
    b_ref = weakref.ref(cache.get(b_key, lambda: linear(10)))
    cache.get(a_key, lambda: pytest.fail("a is cached"))  # a is now the most recently used
    a_ref = weakref.ref(a)
    del a
    cache.get(c_key, lambda: linear(10))  # evicts b, the least recently used
    gc.collect()
    assert b_ref() is None, "evicted model must be freed"
    assert a_ref() is not None
    assert [k.model for k, _ in cache.snapshot()] == ["a", "c"]
    assert cache.used_bytes() == 800


def test_unload_really_frees():
    cache = ModelCache(budget_bytes=10**9)
    key = CacheKey("m", "cpu", "float32")
    ref = weakref.ref(cache.get(key, lambda: linear(8)))
    cache.unload(key)
    gc.collect()
    assert ref() is None and cache.snapshot() == []


def test_failed_load_reaches_every_waiter_and_is_retried():
    cache = ModelCache(budget_bytes=10**9)
    key = CacheKey("m", "cpu", "float32")
    gate = threading.Event()

    def bad():
        gate.wait(1)
        raise OSError("disk on fire")

    errors = []

    def call():
        try:
            cache.get(key, bad)
        except OSError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    gate.set()
    for t in threads:
        t.join()
    assert len(errors) == 3
    assert cache.get(key, lambda: linear(2)) is not None  # not cached as a failure
