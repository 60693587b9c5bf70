"""Suite-wide isolation (no test reads the developer's store settings or writes their
config directory), and the settings a mutation run (scripts/mutation.sh) asks for."""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import Phase, settings

import infercache

# The folder holding the infercache package the tests import.
_SOURCE_ROOT = str(Path(infercache.__file__).resolve().parent.parent)

# A mutation run checks hundreds of mutants, each by every test that calls the
# changed function: it sets INFERCACHE_HYPOTHESIS_PROFILE=mutation so property
# tests draw a few examples each (a mutant most tests see is seen in the first
# draws), with no deadline (mutmut's trampolines slow every call) and no example
# database (a verdict must not depend on what an earlier mutant saved).
# Nor does it shrink: a verdict needs the first failure only, and shrinking a test
# that failed on a bounded wait (a mutant that hangs) repeats that wait each try.
settings.register_profile(
    "mutation",
    max_examples=10,
    stateful_step_count=15,
    deadline=None,
    database=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
)
_PROFILE = os.environ.get("INFERCACHE_HYPOTHESIS_PROFILE", "")
if _PROFILE:
    settings.load_profile(_PROFILE)

# The test files a mutation run is limited to (INFERCACHE_MUTATION_TESTS, names
# separated by spaces): those that mirror the modules it mutates.
_ONLY_FILES = frozenset(os.environ.get("INFERCACHE_MUTATION_TESTS", "").split())


def _capped(current: settings) -> settings:
    """``current`` with no more examples or steps than the loaded profile allows."""
    profile = settings.default
    return settings(
        parent=current,
        max_examples=min(current.max_examples, profile.max_examples),
        stateful_step_count=min(current.stateful_step_count, profile.stateful_step_count),
        deadline=profile.deadline,
        database=profile.database,
        phases=tuple(p for p in current.phases if p in profile.phases),
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under a mutation run: keep only the selected files' tests, and cap the property
    tests' own ``@settings`` (a test's explicit ``max_examples`` outranks a profile)."""
    if _ONLY_FILES:
        kept = [i for i in items if Path(str(i.path)).name in _ONLY_FILES]
        dropped = [i for i in items if Path(str(i.path)).name not in _ONLY_FILES]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept
    if _PROFILE != "mutation":
        return
    _fastest_first(items)
    for item in items:
        fn = getattr(getattr(item, "obj", None), "__func__", getattr(item, "obj", None))
        own = getattr(fn, "_hypothesis_internal_use_settings", None)
        if isinstance(own, settings):
            fn._hypothesis_internal_use_settings = _capped(own)  # type: ignore[union-attr]
        machine = getattr(item, "cls", None)
        if machine is not None and isinstance(getattr(machine, "settings", None), settings):
            machine.settings = _capped(machine.settings)


def _fastest_first(items: list[pytest.Item]) -> None:
    """Under a mutation run: the tests in the order of their unmutated durations.

    mutmut runs a mutant's tests in the order they are collected and stops at the first
    failure (``-x``), so a mutant killed by a quick test waited, before, for every slow
    one collected ahead of it (up to half a minute each in test_sizes). Its record of
    durations (``mutmut-stats.json``, in the folder it runs the tests from) is read
    once; a test it has not timed goes last, the order of the others kept.
    """
    try:
        with open("mutmut-stats.json", encoding="utf-8") as f:
            durations = json.load(f)["duration_by_test"]
    except (OSError, ValueError, KeyError):
        return
    items.sort(key=lambda i: durations.get(i.nodeid, float("inf")))


# What the library decides once per type and keeps (how to protect, measure and
# encode values of that type; the classes of a type's MRO and its slots), by
# module: the tables, then the globals set on first use. Under a mutation run each
# test starts from the state a fresh process has, so the code making a decision runs
# in every test that needs it. Otherwise only the first test to meet a type runs
# it, mutmut ties that code to that test alone, and the forked check of a mutant
# never runs the mutated decision at all (mutmut's parent process, whose memory the
# checks inherit, decided every type in its clean run).
_PER_TYPE_TABLES = {
    "infercache.safety": ("_KIND", "_IMMUTABLE", "_PASS", "_REFUSED"),
    "infercache.sizes": ("_HANDLERS",),
    "infercache.keys.encoder": ("_ENC", "_NAMES", "_TZ_ENC", "_TZ_STATE"),
    "infercache.keys.pandas": ("_ARRAY_WRITERS",),
    "infercache.keys.torch": ("_META",),
    "infercache.reflect": ("_SLOTS",),
    "infercache.libraries": ("_PACKAGES",),
}
_PER_TYPE_GLOBALS = {"infercache.safety": ("_NDARRAY",), "infercache.sizes": ("_NDARRAY",)}


def _per_type_state() -> list[tuple[object, object]]:
    """Each table named above with a copy of what it holds now (a missing name fails loudly)."""
    tables = []
    for name, attributes in _PER_TYPE_TABLES.items():
        module = importlib.import_module(name)
        tables += [(getattr(module, a), getattr(module, a).copy()) for a in attributes]
    return tables


_FRESH_TABLES = _per_type_state() if _PROFILE == "mutation" else []


@pytest.fixture(autouse=True)
def _types_decided_anew() -> None:
    """Under a mutation run: per-type decisions back to a fresh process's (see above)."""
    for table, fresh in _FRESH_TABLES:
        table.clear()  # type: ignore[attr-defined]
        table.update(fresh)  # type: ignore[attr-defined]
    if _FRESH_TABLES:
        for name, attributes in _PER_TYPE_GLOBALS.items():
            module = importlib.import_module(name)
            for a in attributes:
                getattr(module, a)  # a missing name fails loudly
                setattr(module, a, None)


@pytest.fixture(autouse=True, scope="session")
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        # Child Python processes the tests start import the same infercache as the
        # tests: an editable install may point elsewhere (mutmut's tests run on its
        # mutated copy under mutants/, and a child importing the original code
        # instead computes other keys: test_keys_golden failed mutmut's first run).
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [_SOURCE_ROOT, os.environ.get("PYTHONPATH")])))
        mp.delenv("INFERCACHE_STORE", raising=False)
        mp.delenv("INFERCACHE_SECRET", raising=False)
        mp.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))
        yield
