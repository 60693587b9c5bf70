"""How far the small-argument miss is from its pure-Python floor, in one run.

Usage (from the repository root)::

    python benchmarks/miss_floor.py

Times ``f(<new prompt>, 0.7)`` (a new prompt each call, so every call
misses, computes and stores, evicting the oldest entry once 128 are held)
with gr.cache, with infercache as shipped, and with two prototypes of
infercache's leader swapped into the same wrapper:

- "settle written into the leader": the store's short path (count, forget
  the call, store, evict one) written inline instead of called, the framework
  hooks reduced to the checks a plain string needs;
- "and no context variable": the same without marking the computation in a
  context variable, which is what recognises a cached function that calls
  itself with the same arguments through a thread or task that inherited its
  context (without it that call waits for itself forever).

Each figure is the time over a plain call of the same function, the ratio is
gr.cache's over it. The prototypes reach into the store's internals and
skip its general cases (sessions, ttl, max_memory, listeners): they measure
a floor, they are not a design. Gradio is imported first, as in the
benchmark suite.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "src")]

import gradio as gr  # noqa: E402 - first, as in an app: its integration is active

import infercache as ic  # noqa: E402
from infercache.flight import current_work  # noqa: E402
from infercache.integrations import gradio as integration  # noqa: E402
from infercache.store import Entry  # noqa: E402


def infer(prompt: str, temperature: float = 0.7) -> str:
    return prompt


def per_call(f: Callable[..., Any], n: int = 20000, rounds: int = 9) -> float:
    """Median µs per call of ``f(<new prompt>, 0.7)`` over ``rounds`` rounds of ``n`` calls."""
    counter = itertools.count()
    medians = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            f(f"prompt number {next(counter)}", 0.7)
        medians.append((time.perf_counter() - start) / n * 1e6)
    medians.sort()
    return medians[len(medians) // 2]


def prototype(wrapper: Any, *, mark_work: bool) -> Callable[..., Any]:
    """A leader for ``wrapper`` with the store's short path written in (see the module docstring)."""
    names = wrapper.__globals__
    store = names["_ic_engine"].store
    calls, data = names["_ic_calls"], store._data
    acquire, release, popitem = store._acquire, store._release, data.popitem
    probe = integration._GR_PROBE_MODE
    get, set_, reset = current_work.get, current_work.set, current_work.reset
    perf, str_size, bytes_size = time.perf_counter, sys.getsizeof(""), sys.getsizeof(b"")

    def led(slot: bytes, call: Any, func: Any, args: Any, kwargs: Any, integrations: Any) -> Any:
        if probe.get():
            raise RuntimeError("a prototype does not probe")
        start = perf()
        token = set_((call, get())) if mark_work else None
        try:
            result = func(*args)
        finally:
            if token is not None:
                reset(token)
        seconds = perf() - start
        for each in integrations:
            each.store_output(result)
        size = str_size + len(result) + bytes_size + len(slot)
        acquire()
        try:
            store.computations += 1
            store.compute_seconds += seconds
            if calls.pop(slot, None) is call:
                data[slot] = Entry(result, size, None, None, seconds)
                if len(data) > store.max_size:
                    _, out = popitem(False)
                    store._memory += size - out.size
                    store.size_evictions += 1
                else:
                    store._memory += size
        finally:
            release()
        return result

    return led


def main() -> None:
    wrapper = ic.cache(infer)
    names = wrapper.__globals__
    shipped = names["_ic_led"]
    rows = {
        "infercache as shipped": shipped,
        "settle written into the leader": prototype(wrapper, mark_work=True),
        "and no context variable": prototype(wrapper, mark_work=False),
    }
    plain = min(per_call(infer) for _ in range(3))
    reference = min(per_call(gr.cache(infer)) for _ in range(3)) - plain
    over: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(2):  # interleaved
        for name, led in rows.items():
            names["_ic_led"] = led
            over[name].append(min(per_call(wrapper) for _ in range(3)) - plain)
    names["_ic_led"] = shipped
    print(f"plain call {plain:.3f} µs; gr.cache {reference:.2f} µs over it")
    for name, figures in over.items():
        best = min(figures)
        print(f"{name}: {best:.2f} µs over the plain call, {reference / best:.2f}x less than gr.cache")


if __name__ == "__main__":
    main()
