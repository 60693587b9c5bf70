"""Measure how many bytes a value really holds, and what each estimator reports.

Run as a script in a fresh interpreter (so memory freed by earlier work cannot
be reused and hide an allocation)::

    python memory_probe.py [CASE ...]

and it prints a JSON list with, per case, the bytes really held, how they were
measured, and each estimator's answer (``infercache.sizes.sizeof``, gr.cache's
``_estimate_size``, ``sys.getsizeof``).

"Really held" is what the process would free if the value were dropped:

* values made of Python objects and numpy buffers: ``tracemalloc`` (numpy
  reports its data buffers to tracemalloc), measured around building the value
  so temporaries that were freed do not count;
* values holding torch tensors: torch's CPU allocator does not report to
  tracemalloc, so the resident-set growth (``/proc/self/statm``) while building
  the value is used instead; the tensors are tens of MB, so page rounding and
  the few KB of Python objects are far below 1%.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cases


class _TensorHolder:
    """An object like a small model: weights, a transposed view, a buffer dict."""

    def __init__(self, scale: int) -> None:
        import torch

        self.weight = torch.randn(scale, scale)
        self.bias = torch.randn(scale)
        self.weight_t = self.weight.t()  # view: shares weight's storage
        self.buffers = {"embedding": torch.randn(scale // 2, scale)}
        self.name = "tiny-model"


def _scale() -> int:
    return 512 if cases.QUICK else 2048


def _numpy_view() -> Any:
    big = cases.build_image(cases.SIZES.image_4k)
    view = big[: big.shape[0] // 8]
    del big
    return view


def _shared_dict() -> Any:
    a = cases.build_image(cases.SIZES.image_1080p)
    return {"image": a, "same_image": a, "flipped": a[::-1], "label": "cat"}


def _tensor_dict(s: int | None = None) -> Any:
    import torch

    s = s or _scale()
    t = torch.randn(s, s)
    return {"t": t, "t_T": t.t(), "row0": t[0], "other": torch.randn(s // 4, s)}


#: case name -> (label, builder, method)
CASES: dict[str, tuple[str, Callable[[], Any], str]] = {
    "numpy_image": (
        f"numpy image {'x'.join(map(str, cases.SIZES.image_1080p))}",
        lambda: cases.build_image(cases.SIZES.image_1080p),
        "tracemalloc",
    ),
    "numpy_view": ("numpy view of 1/8 of a larger image (base held)", _numpy_view, "tracemalloc"),
    "numpy_shared": ("dict: one array twice + a reversed view", _shared_dict, "tracemalloc"),
    "float_list": ("list of floats", cases.build_float_list, "tracemalloc"),
    "dataframe": ("DataFrame (numeric)", cases.build_dataframe, "tracemalloc"),
    "tensor_object": ("object holding tensors (+ a view)", lambda: _TensorHolder(_scale()), "rss"),
    "tensor_dict": ("dict of tensors sharing storage", _tensor_dict, "rss"),
}


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _estimators() -> tuple[dict[str, Callable[[Any], int]], dict[str, str]]:
    out: dict[str, Callable[[Any], int]] = {}
    missing: dict[str, str] = {}
    try:
        out["infercache sizeof"] = cases.ic_sizeof()
    except cases.Unavailable as exc:
        missing["infercache sizeof"] = f"n/a: {exc}"
    try:
        from gradio.caching import _estimate_size

        out["gr.cache _estimate_size"] = _estimate_size
    except ImportError:
        pass
    out["sys.getsizeof"] = sys.getsizeof
    return out, missing


def measure(names: list[str]) -> list[dict[str, Any]]:
    """Build the values of ``names`` and compare their footprint with the estimators.

    All values stay alive until the end, so no measurement can reuse memory
    freed by an earlier one; cases measured by resident-set growth run first,
    before tracemalloc (whose own bookkeeping is freed when it stops) starts.
    """
    estimators, missing = _estimators()  # imports happen before measuring
    ordered = sorted(names, key=lambda n: CASES[n][2] != "rss")
    keep: list[Any] = []
    results: list[dict[str, Any]] = []
    if any(CASES[n][2] == "rss" for n in names):
        if not sys.platform.startswith("linux"):
            raise SystemExit("resident-set measurement needs /proc (Linux)")
        import torch

        torch.set_num_threads(1)
        # Build tiny versions first: lazy initialisation inside torch (dispatch
        # tables, generator state) must not be counted as held by the value.
        keep.append((_TensorHolder(8), _tensor_dict(8)))
    import numpy  # noqa: F401

    for case in ordered:
        label, build, method = CASES[case]
        gc.collect()
        if method == "tracemalloc":
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            value = build()
            gc.collect()
            actual = tracemalloc.get_traced_memory()[0] - before
            tracemalloc.stop()
        else:
            before = _rss()
            value = build()
            gc.collect()
            actual = _rss() - before
        keep.append(value)
        results.append({"case": case, "label": label, "method": method, "actual": actual, "value": value})
    for result in results:
        value = result.pop("value")
        reported: dict[str, Any] = {}
        for name, fn in estimators.items():
            try:
                reported[name] = int(fn(value))
            except Exception as exc:  # noqa: BLE001 - an estimator failing is a result
                reported[name] = f"error: {exc.__class__.__name__}: {exc}"
        reported.update(missing)
        result["reported"] = reported
    order = {n: i for i, n in enumerate(names)}
    return sorted(results, key=lambda r: order[r["case"]])


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python memory_probe.py [CASE ...]`` prints a JSON list (all cases by default)."""
    args = sys.argv[1:] if argv is None else argv
    unknown = [a for a in args if a not in CASES]
    if unknown:
        print(f"unknown case(s) {unknown}; known: {', '.join(CASES)}", file=sys.stderr)
        return 2
    print(json.dumps(measure(args or list(CASES))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
