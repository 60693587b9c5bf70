"""Benchmark PrefixIndex.longest_prefix against the linear scan from the
Gradio caching guide's KV-cache example.

Standalone script (not a test): ``python benchmarks/prefix_bench.py``.

Workload: prompts of roughly 200-1000 characters, each one of a handful of
shared system prompts followed by random words (fixed seed). Queries are
conversation continuations -- a stored prompt plus a few more words -- mixed
with fresh prompts that share only a system prompt, which is the pattern that
KV-prefix reuse sees. Both methods must return the same answer for every
query; the script checks that before reporting times.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from infercache.prefix import PrefixIndex

SYSTEM_PROMPTS = [
    "You are a helpful assistant. Answer concisely and cite sources when possible.\n\nUser: ",
    "You are a senior Python engineer reviewing code. Point out bugs, then style issues.\n\nUser: ",
    "System: You translate English to French. Keep formatting, names and numbers intact.\n\n",
    "You are a customer support agent for an online store. Be polite; never promise refunds.\n\nCustomer: ",
    "Summarise the following document in three bullet points for a busy executive.\n\nDocument: ",
]

WORDS = [
    "the", "model", "cache", "prompt", "token", "answer", "question", "data", "image", "audio",
    "user", "system", "reply", "python", "error", "result", "value", "vector", "search", "index",
    "memory", "batch", "layer", "attention", "prefix", "length", "score", "train", "infer", "serve",
    "request", "latency", "queue", "gradio", "tensor", "array", "string", "number", "function",
    "output", "input", "state", "session",
]


def make_prompt(rng: random.Random) -> str:
    """One system prompt plus random words, ~200-1000 characters in total."""
    target = rng.randint(200, 1000)
    parts = [rng.choice(SYSTEM_PROMPTS)]
    length = len(parts[0])
    while length < target:
        word = rng.choice(WORDS)
        parts.append(word)
        length += len(word) + 1
    return " ".join(parts)


def make_queries(rng: random.Random, stored: list[str], count: int) -> list[str]:
    """Mostly continuations of stored prompts, some fresh prompts."""
    queries = []
    for _ in range(count):
        if rng.random() < 0.8:
            base = rng.choice(stored)
            extra = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 30)))
            queries.append(base + "\nAssistant: " + extra)
        else:
            queries.append(make_prompt(rng))
    return queries


def scan(keys: list[str], prompt: str) -> str | None:
    """The guide's approach: check every cached key."""
    best_key = None
    best_len = -1
    for k in keys:
        if prompt.startswith(k) and len(k) > best_len:
            best_key = k
            best_len = len(k)
    return best_key


def per_call_us(fn: Callable[[str], object], queries: list[str], min_time: float) -> float:
    """Mean microseconds per call, repeating the query list for >= min_time."""
    calls = 0
    start = time.perf_counter()
    while True:
        for q in queries:
            fn(q)
        calls += len(queries)
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / calls * 1e6


def run(sizes: list[int], n_queries: int, min_time: float, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not a secret
    all_prompts = list(dict.fromkeys(make_prompt(rng) for _ in range(max(sizes))))
    print(
        f"{'entries':>8} {'build ms':>9} {'nodes':>8} {'radix us':>9} "
        f"{'scan us':>10} {'speedup':>8}"
    )
    for n in sizes:
        keys = all_prompts[:n]
        qrng = random.Random(seed + n)  # noqa: S311 - reproducible test data, not a secret
        queries = make_queries(qrng, keys, n_queries)

        t0 = time.perf_counter()
        index = PrefixIndex()
        for i, k in enumerate(keys):
            index.add(k, i)
        build_ms = (time.perf_counter() - t0) * 1e3

        for q in queries:
            hit = index.longest_prefix(q)
            expected = scan(keys, q)
            if (hit[0] if hit else None) != expected:
                raise RuntimeError(f"radix and scan disagree on {q!r}")

        radix = per_call_us(index.longest_prefix, queries, min_time)
        linear = per_call_us(lambda q, keys=keys: scan(keys, q), queries, min_time)
        print(
            f"{n:>8} {build_ms:>9.1f} {index._node_count():>8} {radix:>9.2f} "
            f"{linear:>10.1f} {linear / radix:>7.0f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 50_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--min-time", type=float, default=0.5, help="seconds per measurement")
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    run(args.sizes, args.queries, args.min_time, args.seed)


if __name__ == "__main__":
    main()
