"""The golden-key table: every supported type's key, pinned.

A key that changes is a change of the key format (persistent tiers depend on
it), so it must be deliberate: bump ``KEY_FORMAT_VERSION`` and regenerate the
table with ``python -m tests.golden_keys_cases --write``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import golden_keys_cases as golden
import pytest

from infercache.keys import KEY_FORMAT_VERSION, encoder

REGENERATE = (
    "the key format changed: if deliberate, bump KEY_FORMAT_VERSION in "
    "src/infercache/keys/wire.py and regenerate the table with "
    "`python -m tests.golden_keys_cases --write`"
)


def _table() -> dict[str, Any]:
    return json.loads(golden.TABLE.read_text(encoding="utf-8"))


def test_table_was_written_for_the_current_key_format_version() -> None:
    assert _table()["key_format_version"] == KEY_FORMAT_VERSION, REGENERATE


def test_every_case_has_a_row_and_every_row_a_case() -> None:
    rows = set(_table()["cases"])
    assert rows == set(golden.CASES), (
        f"cases without a row: {sorted(set(golden.CASES) - rows)}; rows without a case: "
        f"{sorted(rows - set(golden.CASES))}; regenerate with `python -m tests.golden_keys_cases --write`")


@pytest.mark.parametrize("name", sorted(golden.CASES))
def test_golden_key(name: str) -> None:
    case = golden.CASES[name]
    missing = case.missing()
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    expected = _table()["cases"].get(name)
    if expected is None:
        pytest.fail(f"no row for case {name!r}: regenerate with `python -m tests.golden_keys_cases --write`")
    try:
        found = golden.keys_of(case)
    except golden.Unavailable as why:
        pytest.skip(str(why))
    assert found == expected, f"{name}: {REGENERATE}"


def test_every_registered_rule_keys_some_value_of_the_table() -> None:
    """A new adapter (or object rule) without golden rows fails here."""
    used: set[str] = set()
    core_types: set[type] = set()
    for case in golden.CASES.values():
        if case.missing():
            continue
        try:
            value = case.build()
        except golden.Unavailable:
            continue
        for t in _types_in(value):
            rule, _ = encoder._rule(t)
            used.add(rule)
            if rule == "core":
                core_types.add(t)
    missing_builders = [b for b in encoder._builders() if b not in used and not _library_missing(b)]
    assert not missing_builders, f"builders without a golden row: {missing_builders}"
    assert {"registered", "type", "tzinfo"} <= used
    missing_core = [t.__name__ for t in encoder.CORE if t not in core_types]
    assert not missing_core, f"built-in types without a golden row: {missing_core}"


# The optional library each adapter needs: its rows skip when it is not installed.
_BUILDER_LIBRARIES = {"keys.arrow.": "pyarrow", "keys.polars.": "polars", "keys.torch.": "torch",
                      "keys.pil.": "PIL", "keys.pandas.": "pandas", "keys.numpy.": "numpy",
                      "_pydantic_builder": "pydantic"}


def _library_missing(builder: str) -> bool:
    return any(part in builder and importlib.util.find_spec(lib) is None
               for part, lib in _BUILDER_LIBRARIES.items())


def _types_in(value: Any) -> set[type]:
    """The value's type and those of the plain containers' elements, shallowly."""
    found = {type(value)}
    if type(value) in (list, tuple, set, frozenset):
        for x in value:
            found |= _types_in(x)
    elif type(value) is dict:
        for k, v in value.items():
            found |= _types_in(k) | _types_in(v)
    return found


def test_keys_are_the_same_in_another_process_with_another_hash_seed() -> None:
    tests_dir = Path(__file__).resolve().parent
    env = dict(os.environ, PYTHONHASHSEED="12345")
    env["PYTHONPATH"] = os.pathsep.join([str(tests_dir), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", "import golden_keys_cases as g; g.main(['--json'])"],
        capture_output=True, text=True, env=env, check=True, timeout=300, cwd=tests_dir.parent)
    theirs = json.loads(out.stdout)
    ours = golden.compute_all()
    assert set(theirs) == set(ours)
    differ = sorted(name for name in ours if ours[name] != theirs[name])
    assert not differ, f"keys differ between processes: {differ}"
