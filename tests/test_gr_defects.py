"""The five gr.cache defects, each run against infercache and against gr.cache itself.

The gr.cache runs are strict xfails: if Gradio ever fixes a defect, the xfail
turns into an error and tells us the comparison in the README is out of date.
"""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest

import infercache as ic

gr = pytest.importorskip("gradio")

IMPLS = [
    pytest.param(ic, id="infercache"),
    pytest.param(gr, id="gr.cache", marks=pytest.mark.xfail(strict=True, reason="gr.cache defect")),
]


@pytest.mark.parametrize("lib", IMPLS)
def test_1_concurrent_identical_calls_compute_once(lib) -> None:
    runs = []
    arrived = threading.Barrier(8, timeout=10)
    lock = threading.Lock()

    @lib.cache
    def slow(x):
        with lock:
            runs.append(x)
        threading.Event().wait(0.3)  # the work; long enough for all 8 callers to be in flight
        return x * 2

    def call():
        arrived.wait()
        slow(21)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(runs) == 1


class Req:
    """A request object as an app would define it (at module level, importable by name)."""

    def __init__(self, text):
        self.text = text


@pytest.mark.parametrize("lib", IMPLS)
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


@pytest.mark.parametrize("lib", IMPLS)
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


@pytest.mark.parametrize("lib", IMPLS)
def test_4_caller_mutation_does_not_corrupt_the_cache(lib) -> None:
    @lib.cache
    def tags(x):
        return ["a", "b"]

    tags(1).append("MUTATED")
    assert tags(1) == ["a", "b"]


@pytest.mark.parametrize("lib", IMPLS)
def test_5_star_args_functions_can_be_wrapped(lib) -> None:
    @lib.cache
    def total(*values, **weights):
        return sum(values) + sum(weights.values())

    assert total(1, 2, w=3) == 6
    assert total(1, 2, w=3) == 6
