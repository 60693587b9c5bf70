"""The ``infercache`` store tools (``ls``, ``stats``, ``clear``) on a real directory and a real redis-server.

Stores are filled through the tiers with authenticated records under
keyspace names, as caches write them: three functions (one whose name is a
prefix of another's), two code versions, three sessions (one whose id is a
prefix of another's) and shared entries. Each command's output is compared
with what was written; each ``clear`` must remove exactly its selection.
"""

from __future__ import annotations

import gc
import io
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from redis_fixtures import free_port, redis_server, redis_url  # noqa: F401 - pytest fixtures

from infercache.cli import main
from infercache.codec import Codec
from infercache.keyspace import Keyspace
from infercache.tiers import DiskTier, Tier

CODEC = Codec(b"a test secret of 32 bytes long..")

# (function, code version, session namespace, key, value); "" is no version / shared by all sessions.
WRITTEN: list[tuple[str, str, str, bytes, Any]] = [
    ("app.build_demo.<locals>.classify", "v1", "", b"\x01" * 32, "red"),
    ("app.build_demo.<locals>.classify", "v1", "", b"\x02" * 32, b"x" * 100_000),  # a file on disk
    ("app.build_demo.<locals>.classify", "v1", "sess-a", b"\x03" * 32, [1, 2, 3]),
    ("app.build_demo.<locals>.classify", "v2", "sess-ab", b"\x04" * 32, {"a": 1}),
    ("app.translate", "", "sess-a", b"\x05" * 8, "bonjour"),
    ("app.translate", "", "sess-b", b"\x06" * 8, "hallo"),
    ("app.translate", "", "", b"\x07" * 32, "hola"),
    ("app.translatex", "v1", "sess-a", b"\x08" * 32, "not app.translate"),
]


@dataclass(frozen=True)
class Filled:
    """A store the commands run against: its STORE argument, an open tier on it, and what was written."""

    spec: str
    tier: Tier
    sizes: dict[bytes, int]  # entry name -> record size

    def names(self) -> set[bytes]:
        return {name for name, _ in self.tier.entries(b"")}


def fill(tier: Tier) -> dict[bytes, int]:
    sizes = {}
    for function, version, namespace, key, value in WRITTEN:
        name = Keyspace(function, version).name(namespace, key)
        record = CODEC.dumps(name, value)
        tier.set(name, record)
        sizes[name] = len(record)
    return sizes


def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    """``infercache ARGV`` in this process: exit status, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(stdin), out, err
    try:
        status = main(list(argv))
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
    return status, out.getvalue(), err.getvalue()


def ls_row(name: bytes, size: int) -> tuple[str, ...]:
    e = Keyspace.parse(name)
    return (e.function, e.version or "-", e.namespace or "-", e.key.hex()[:16], str(size))


def selected(filled: Filled, function: str | None = None, session: str | None = None) -> dict[bytes, int]:
    return {
        name: size
        for name, size in filled.sizes.items()
        if (function is None or Keyspace.parse(name).function == function)
        and (session is None or Keyspace.parse(name).namespace == session)
    }


@pytest.fixture
def disk_store(tmp_path: Path) -> Iterator[Filled]:
    path = tmp_path / "store"
    tier = DiskTier(path)
    sizes = fill(tier)
    tier.set(b"other/name", b"not infercache's")
    tier.set(b"infercachex/1/name", b"not infercache's either")
    yield Filled(str(path), tier, sizes)
    tier.close()


@pytest.fixture
def redis_store(redis_url: str) -> Iterator[Filled]:  # noqa: F811 - the fixture imported above
    from infercache.tiers.redis import RedisTier

    tier = RedisTier(redis_url)
    sizes = fill(tier)
    with redis.Redis.from_url(redis_url) as raw:
        raw.set(b"other:name", b"another application's key")
        raw.set(b"infercachex/1/name", b"not infercache's")
    yield Filled(redis_url, tier, sizes)
    tier.close()


@pytest.fixture(params=["disk", "redis"])
def store(request: pytest.FixtureRequest) -> Filled:
    filled: Filled = request.getfixturevalue(f"{request.param}_store")
    return filled


def entry_names(filled: Filled) -> set[bytes]:
    """The names of infercache entries in the store (what the commands may see)."""
    return {name for name, _ in filled.tier.entries(b"infercache/")}


def other_keys(filled: Filled) -> set[bytes]:
    """Names outside ``infercache/``, which no command may touch."""
    if filled.spec.startswith("redis://"):
        with redis.Redis.from_url(filled.spec) as raw:
            return {k for k in raw.scan_iter() if not k.startswith(b"infercache/")}
    return {name for name, _ in filled.tier.entries(b"") if not name.startswith(b"infercache/")}


# -- ls ---------------------------------------------------------------------------------


def test_ls_prints_one_line_per_stored_entry(store: Filled) -> None:
    status, out, err = run("ls", store.spec)
    assert (status, err) == (0, "")
    rows = sorted(tuple(line.split()) for line in out.splitlines())
    assert rows == sorted(ls_row(name, size) for name, size in store.sizes.items())


@pytest.mark.parametrize(
    ("function", "session"),
    [("app.translate", None), (None, "sess-a"), ("app.build_demo.<locals>.classify", "sess-a"), ("nope", None)],
)
def test_ls_lists_exactly_the_function_and_session_asked_for(
    disk_store: Filled, function: str | None, session: str | None
) -> None:
    args = ["ls", disk_store.spec]
    args += ["--function", function] if function else []
    args += ["--session", session] if session else []
    status, out, _ = run(*args)
    assert status == 0
    rows = sorted(tuple(line.split()) for line in out.splitlines())
    assert rows == sorted(ls_row(n, s) for n, s in selected(disk_store, function, session).items())


# -- stats ------------------------------------------------------------------------------


def test_stats_counts_entries_bytes_versions_and_sessions_per_function(store: Filled) -> None:
    status, out, err = run("stats", store.spec)
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["function", "entries", "bytes", "versions", "sessions"]
    table = {line.split()[0]: [int(x) for x in line.split()[1:]] for line in lines[1:]}
    sizes = store.sizes
    classify = selected(store, "app.build_demo.<locals>.classify")
    translate = selected(store, "app.translate")
    assert table == {
        "app.build_demo.<locals>.classify": [4, sum(classify.values()), 2, 2],
        "app.translate": [3, sum(translate.values()), 1, 2],
        "app.translatex": [1, sum(selected(store, "app.translatex").values()), 1, 1],
        "total": [len(sizes), sum(sizes.values()), 4, 3],
    }


# -- clear ------------------------------------------------------------------------------


def test_clear_function_removes_every_version_and_session_of_exactly_that_function(store: Filled) -> None:
    others = other_keys(store)
    status, out, _ = run("clear", store.spec, "--function", "app.translate")
    assert (status, out) == (0, "removed 3 entries\n")
    assert entry_names(store) == set(store.sizes) - set(selected(store, "app.translate"))
    assert other_keys(store) == others
    status, out, _ = run("clear", store.spec, "--function", "app.build_demo.<locals>.classify")
    assert (status, out) == (0, "removed 4 entries\n")
    assert entry_names(store) == set(selected(store, "app.translatex"))


def test_clear_session_removes_that_session_in_every_function_and_nothing_else(store: Filled) -> None:
    others = other_keys(store)
    status, out, _ = run("clear", store.spec, "--session", "sess-a")
    assert (status, out) == (0, "removed 3 entries\n")
    assert entry_names(store) == set(store.sizes) - set(selected(store, session="sess-a"))
    assert other_keys(store) == others


def test_clear_function_and_session_removes_only_that_session_of_that_function(disk_store: Filled) -> None:
    status, out, _ = run("clear", disk_store.spec, "--function", "app.translate", "--session", "sess-a")
    assert (status, out) == (0, "removed 1 entry\n")
    assert entry_names(disk_store) == set(disk_store.sizes) - set(selected(disk_store, "app.translate", "sess-a"))


def test_clear_everything_asks_first_and_keeps_names_outside_infercache(store: Filled) -> None:
    others = other_keys(store)
    status, _, err = run("clear", store.spec, stdin="n\n")
    assert status == 1
    assert "nothing removed" in err
    assert entry_names(store) == set(store.sizes)

    status, out, _ = run("clear", store.spec, stdin="y\n")
    assert status == 0
    assert out.endswith(f"removed {len(store.sizes)} entries\n")
    assert entry_names(store) == set()
    assert other_keys(store) == others


def test_clear_everything_with_yes_does_not_read_the_terminal(disk_store: Filled) -> None:
    status, out, _ = run("clear", disk_store.spec, "--yes", stdin="n\n")
    assert (status, out) == (0, f"removed {len(disk_store.sizes)} entries\n")
    assert entry_names(disk_store) == set()


# -- errors and usage -------------------------------------------------------------------


def test_a_directory_without_a_store_is_a_one_line_error_and_is_left_alone(tmp_path: Path) -> None:
    missing = tmp_path / "no-store-here"
    status, out, err = run("ls", str(missing))
    assert (status, out) == (1, "")
    assert len(err.splitlines()) == 1 and str(missing) in err
    assert not missing.exists()
    (tmp_path / "empty").mkdir()
    status, _, err = run("clear", str(tmp_path / "empty"), "--yes")
    assert status == 1 and len(err.splitlines()) == 1
    assert list((tmp_path / "empty").iterdir()) == []


def test_a_redis_server_that_does_not_answer_is_a_one_line_error() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    for command in ("ls", "stats", "clear"):
        status, out, err = run(command, url, "--yes" if command == "clear" else "--function=f")
        assert (status, out) == (1, "")
        assert len(err.splitlines()) == 1 and url in err


@pytest.mark.parametrize(
    "argv",
    [["ls"], ["stats"], ["clear"], ["ls", "dir", "--session", ""], ["clear", "dir", "--function="], ["nope", "x"],
     ["ls", "dir", "--bogus"]],
)
def test_bad_usage_exits_with_status_2(argv: list[str], tmp_path: Path) -> None:
    status, out, err = run(*[str(tmp_path / a) if a == "dir" else a for a in argv])
    assert status == 2
    assert out == "" and err


def test_an_unknown_url_scheme_is_refused() -> None:
    status, _, err = run("ls", "memcached://127.0.0.1:11211")
    assert status == 1 and "scheme" in err


# -- a real process, without the secret -------------------------------------------------


def test_the_command_in_a_fresh_process_needs_no_secret(disk_store: Filled) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("INFERCACHE_SECRET", "INFERCACHE_STORE")}
    done = subprocess.run(
        [sys.executable, "-m", "infercache.cli", "ls", disk_store.spec, "--session", "sess-b"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert sorted(tuple(line.split()) for line in done.stdout.splitlines()) == sorted(
        ls_row(n, s) for n, s in selected(disk_store, session="sess-b").items()
    )


def test_names_under_infercache_that_are_not_entry_names_are_counted_apart(disk_store: Filled) -> None:
    disk_store.tier.set(b"infercache/not-an-entry", b"?")
    status, out, _ = run("ls", disk_store.spec)
    assert status == 0 and len(out.splitlines()) == len(disk_store.sizes)
    status, out, _ = run("stats", disk_store.spec)
    assert status == 0
    assert out.splitlines()[-1] == "(names under infercache/ that are not entries: 1)"


# -- the demo and INFERCACHE_STORE ------------------------------------------------------

DEMO_SECRET = secrets.token_hex(32)  # what every replica of a deployment shares

DEMO_RUN = """
import asyncio, json, sys
from infercache.demo import build_demo

fns = build_demo().infercache_functions
melody = list(fns["melody"]("ab"))
translation = asyncio.run(fns["translate"]("hello my friend", "French"))
wav = open(melody[-1][1], "rb").read()
print(json.dumps({
    "translation": translation,
    "wav": len(wav), "wav_head": wav[:64].hex(),
    "hits": {name: fns[name].cache.stats().hits for name in ("melody", "translate")},
}))
"""


def demo_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("INFERCACHE_SECRET", "INFERCACHE_STORE")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def test_the_demo_in_a_second_process_is_answered_from_the_store_the_first_filled(tmp_path: Path) -> None:
    env = demo_env(INFERCACHE_STORE=str(tmp_path / "store"), INFERCACHE_SECRET=DEMO_SECRET)

    def demo_process() -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-c", DEMO_RUN], capture_output=True, text=True, timeout=120, env=env, check=True
        )
        result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
        return result

    first, second = demo_process(), demo_process()
    assert first["hits"] == {"melody": 0, "translate": 0}
    assert second["hits"] == {"melody": 1, "translate": 1}  # a closure per process would miss here
    assert {k: second[k] for k in ("translation", "wav", "wav_head")} == {
        k: first[k] for k in ("translation", "wav", "wav_head")
    }


def test_the_demo_says_which_store_it_uses_and_hides_its_password() -> None:
    url = f"redis://:hunter2-password@127.0.0.1:{free_port()}/0"
    env = demo_env(INFERCACHE_STORE=url, INFERCACHE_SECRET=DEMO_SECRET)
    proc = subprocess.Popen(
        [sys.executable, "-m", "infercache.cli", "demo", "--port", str(free_port()), "--no-warmup"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline(), proc.stdout.readline()]
    finally:
        proc.kill()
        proc.wait()
    assert lines[0].startswith("infercache demo on http://127.0.0.1:")
    assert lines[1].strip() == f"results: in memory, then in {url.replace('hunter2-password', '***')} " \
        "(from INFERCACHE_STORE), shared with every process using it"


def test_the_demo_without_a_store_says_it_keeps_results_in_memory_only() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "infercache.cli", "demo", "--port", str(free_port()), "--no-warmup"],
        env=demo_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline(), proc.stdout.readline()]
    finally:
        proc.kill()
        proc.wait()
    assert lines[1].startswith("results: in memory only (set INFERCACHE_STORE")


def test_the_demo_on_a_redis_store_without_a_secret_stops_with_one_line_naming_it() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "infercache.cli", "demo", "--port", str(free_port()), "--no-warmup"],
        env=demo_env(INFERCACHE_STORE=f"redis://127.0.0.1:{free_port()}/0"),
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert len(done.stderr.splitlines()) == 1 and "INFERCACHE_SECRET" in done.stderr


# -- stats of a running app, from its /metrics page ------------------------------------------


def live_row(name: str, data: dict[str, Any]) -> list[str]:
    """The row ``stats URL`` must print for one cache, written from ``ic.stats()`` by hand."""
    lookups = data["hits"] + data["misses"]
    return [
        name,
        str(data["size"]),
        str(data["memory"]),
        str(data["hits"]),
        str(data["misses"]),
        str(data["joins"] + data["remote_joins"]),
        str(sum(data["evicted"].values())),
        str(data["tier_errors"] + data["verification_failures"]),
        f"{100 * data['hits'] / lookups if lookups else 0.0:.1f}%",
        f"{data['saved_seconds']:.3f}",
        f"{data['compute_seconds']:.3f}",
    ]


@pytest.fixture(scope="module")
def live_app() -> Iterator[tuple[str, list[str], Any]]:
    """A launched Gradio app with two caches and /metrics mounted: (metrics URL, cache names, an uppercase call)."""
    import uuid

    import gradio as gr
    from gradio_fixtures import client, serve

    import infercache as ic

    names = [f"cli-upper-{uuid.uuid4().hex[:6]}", f"cli-count-{uuid.uuid4().hex[:6]}"]

    @ic.cache(name=names[0], max_size=2)
    def upper(text: str) -> str:
        return text.upper()

    @ic.cache(name=names[1])
    def count(text: str) -> int:
        return len(text)

    with gr.Blocks() as demo:
        box, out = gr.Textbox(), gr.Textbox()
        gr.Button().click(upper, box, out, api_name="upper")
    ic.metrics.mount(demo)
    with serve(demo) as url:
        app = client(url)
        for text in ("a", "a", "b", "c", "a"):  # 4 misses, 1 hit, 2 entries evicted for size
            app.predict(text, api_name="/upper")
        for text in ("xy", "xy", "xy"):
            count(text)
        yield f"{url}metrics", names, upper


def table(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()]


def test_stats_of_a_running_apps_metrics_prints_what_ic_stats_says(live_app: tuple[str, list[str], Any]) -> None:
    import infercache as ic

    url, names, _ = live_app
    gc.collect()  # caches other tests left behind go now, not between the two reads
    before = ic.stats()
    status, out, err = run("stats", url)
    assert ic.stats() == before  # nothing moved while the page was read
    assert (status, err) == (0, "")
    rows = table(out)
    assert rows[0] == ["cache", "entries", "bytes", "hits", "misses", "joins", "evicted", "errors", "hit%",
                       "saved_s", "compute_s"]
    by_cache = {row[0]: row for row in rows[1:-1]}
    for name in names:
        assert by_cache[name] == live_row(name, before[name])
    assert before[names[0]]["hits"] == 1 and before[names[0]]["evicted"]["size"] == 2
    assert before[names[1]]["hits"] == 2 and before[names[1]]["misses"] == 1
    # The totals cover every live cache of the app's process (this one's: other tests' too).
    total = {key: sum(data[key] for data in before.values()) for key in ("size", "memory", "hits", "misses")}
    assert rows[-1][:5] == ["total", str(total["size"]), str(total["memory"]), str(total["hits"]),
                            str(total["misses"])]


def test_stats_of_a_running_app_for_one_cache(live_app: tuple[str, list[str], Any]) -> None:
    import infercache as ic

    url, names, upper = live_app
    upper("a")  # one more hit, seen by the next read
    status, out, _ = run("stats", url, "--function", names[0])
    rows = table(out)
    assert status == 0 and [row[0] for row in rows] == ["cache", names[0], "total"]
    assert rows[1] == live_row(names[0], ic.stats()[names[0]])
    assert rows[2][1:] == rows[1][1:]


@pytest.mark.parametrize(
    ("argv", "status", "message"),
    [
        (["stats", "{url}", "--session", "s1"], 2, "session"),
        (["ls", "{url}"], 2, "only 'stats'"),
        (["clear", "{url}", "--yes"], 2, "only 'stats'"),
        (["stats", "{base}nothing-here"], 1, "404"),
        (["stats", "{base}config"], 1, "{base}config"),  # a page, but not Prometheus' text
    ],
)
def test_stats_of_a_url_that_cannot_be_read_is_a_one_line_error(
    live_app: tuple[str, list[str], Any], argv: list[str], status: int, message: str
) -> None:
    url = live_app[0]
    base = url.removesuffix("metrics")
    got, out, err = run(*(a.format(url=url, base=base) for a in argv))
    assert (got, out) == (status, "")
    assert len(err.splitlines()) == 1 and message.format(base=base) in err


def test_stats_of_a_url_nothing_answers_is_a_one_line_error() -> None:
    status, out, err = run("stats", f"http://127.0.0.1:{free_port()}/metrics")
    assert (status, out) == (1, "") and len(err.splitlines()) == 1 and "URLError" in err
