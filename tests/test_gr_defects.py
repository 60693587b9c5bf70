"""The five gr.cache defects, each run against infercache and against gr.cache itself.

The gr.cache runs are strict xfails that name the failure the defect causes
(``raises=``): if Gradio ever fixes a defect, the run passes and strict turns
that into a failure that says the comparison in the README is out of date; a
gr.cache run failing for another reason is a failure too.
"""

from __future__ import annotations

import gc
import threading
import time

import numpy as np
import pytest

import infercache as ic

gr = pytest.importorskip("gradio")


def impls(raises: type[BaseException]) -> list:
    """infercache, and gr.cache as a strict xfail that must fail with ``raises``."""
    defect = pytest.mark.xfail(strict=True, raises=raises, reason="gr.cache defect")
    return [pytest.param(ic, id="infercache"), pytest.param(gr, id="gr.cache", marks=defect)]


def hold_until(condition, limit: float = 10.0) -> None:
    """Return once ``condition()`` holds (or after ``limit`` seconds, so a fixed defect shows as a pass)."""
    deadline = time.monotonic() + limit
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.001)


@pytest.mark.parametrize("lib", impls(AssertionError))
def test_1_concurrent_identical_calls_compute_once(lib) -> None:
    runs = []
    results = []
    arrived = threading.Barrier(8, timeout=10)
    lock = threading.Lock()

    def all_eight_in_flight() -> bool:
        # gr.cache computes every call, so all 8 are inside the function; infercache computes
        # the first and the 7 others wait for that computation.
        return len(runs) == 8 or (lib is ic and slow.cache.stats().joins == 7)

    @lib.cache
    def slow(x):
        with lock:
            runs.append(x)
        hold_until(all_eight_in_flight)  # the work ends only once every caller is in flight
        return x * 2

    def call():
        arrived.wait()
        results.append(slow(21))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [42] * 8
    assert len(runs) == 1


class Req:
    """A request object as an app would define it (at module level, importable by name)."""

    def __init__(self, text):
        self.text = text


@pytest.mark.parametrize("lib", impls(AssertionError))
def test_2_objects_are_keyed_by_content_not_identity(lib) -> None:
    @lib.cache(max_size=0)
    def echo(r):
        return r.text

    wrong = 0
    for i in range(2000):
        r = Req(f"text-{i}")
        if echo(r) != r.text:
            wrong += 1
        del r
        gc.collect(0)
    assert wrong == 0


@pytest.mark.parametrize("lib", impls(AssertionError))
def test_3_max_memory_holds_for_objects_holding_arrays(lib) -> None:
    class KV:
        def __init__(self, n):
            self.k = np.ones(n, dtype=np.float32)

    c = lib.Cache(max_memory="10mb", max_size=0)
    kept = []
    for i in range(50):
        kv = KV(1_000_000)  # 4 MB
        c.set(f"p{i}", kv=kv)
        kept.append(kv)
    held = sum(c.get(k)["kv"].k.nbytes for k in c.keys())  # noqa: SIM118 - the guide's Cache.keys(), not a dict
    assert held <= 10_000_000


@pytest.mark.parametrize("lib", impls(AssertionError))
def test_4_caller_mutation_does_not_corrupt_the_cache(lib) -> None:
    @lib.cache
    def tags(x):
        return ["a", "b"]

    tags(1).append("MUTATED")
    assert tags(1) == ["a", "b"]


@pytest.mark.parametrize("lib", impls(TypeError))
def test_5_star_args_functions_can_be_wrapped(lib) -> None:
    @lib.cache
    def total(*values, **weights):
        return sum(values) + sum(weights.values())

    assert total(1, 2, w=3) == 6  # gr.cache: TypeError on the first call
    assert total(1, 2, w=3) == 6
