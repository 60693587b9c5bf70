"""Code versions: editing what a function does starts fresh entries; moving or documenting it does not."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infercache.version import captured_state, code_version


def _define(source: str, name: str = "f", *, offset: int = 0) -> Any:
    """Compile ``source`` as if it started ``offset`` lines into a file; return its function ``name``."""
    namespace: dict[str, Any] = {}
    exec(compile("\n" * offset + textwrap.dedent(source), "<module>", "exec"), namespace)  # noqa: S102 - test input
    return namespace[name]


BASE = """
def f(x, y=2):
    z = x * y
    return [z + k for k in range(3)]
"""


@given(offset=st.integers(0, 5000))
@settings(max_examples=25, deadline=None)
def test_moving_a_function_keeps_its_version(offset: int) -> None:
    assert code_version(_define(BASE, offset=offset)) == code_version(_define(BASE))


@pytest.mark.parametrize(
    "same",
    [
        # a docstring added
        '''
def f(x, y=2):
    """Multiply and spread."""
    z = x * y
    return [z + k for k in range(3)]
''',
        # comments and blank lines
        """
# a comment
def f(x, y=2):
    # what z is

    z = x * y  # the product
    return [z + k for k in range(3)]
""",
        # another file name and formatting
        """
def f(x,
      y=2):
    z = (x *
         y)
    return [z + k
            for k in range(3)]
""",
    ],
)
def test_docstrings_comments_and_layout_keep_the_version(same: str) -> None:
    assert code_version(_define(same)) == code_version(_define(BASE))


@pytest.mark.parametrize(
    "edited",
    [
        BASE.replace("x * y", "x + y"),  # an operator
        BASE.replace("range(3)", "range(4)"),  # a constant
        BASE.replace("z + k", "z - k"),  # inside a comprehension (nested code)
        BASE.replace("range(3)", "list(range(3))"),  # a global it reads
        BASE.replace("z = x * y", "z = x * y\n    z = abs(z)"),  # a statement
        BASE.replace("def f(x, y=2)", "def f(x, *, y=2)"),  # the argument layout
        BASE.replace("z", "w"),  # a local's name (what a traceback or locals() shows)
    ],
)
def test_editing_what_a_function_does_changes_its_version(edited: str) -> None:
    assert code_version(_define(edited)) != code_version(_define(BASE))


def test_a_nested_function_body_is_part_of_the_version() -> None:
    outer = """
def f(x):
    def g(v):
        return v + 1
    return g(x)
"""
    assert code_version(_define(outer)) != code_version(_define(outer.replace("v + 1", "v + 2")))


def test_callables_are_unwrapped_to_their_code() -> None:
    f = _define(BASE)

    class Model:
        def __call__(self, x: int) -> int:
            return x + 1

        def predict(self, x: int) -> int:
            return x + 1

    assert code_version(functools.partial(f, 1)) == code_version(f)
    assert code_version(Model()) == code_version(Model.__call__)
    assert code_version(Model().predict) == code_version(Model.predict)
    assert code_version(len) == ""  # no Python code: no derivable version


def test_captured_state_lists_closures_partials_and_owners() -> None:
    def make(n: int) -> Any:
        def add(x: int) -> int:
            return x + n

        return add

    assert captured_state(_define(BASE)) == ()
    assert captured_state(make(3)) != captured_state(make(4))
    assert code_version(make(3)) == code_version(make(4))  # same code: the state tells them apart
    f = _define(BASE)
    assert captured_state(functools.partial(f, 1)) != captured_state(functools.partial(f, 2))

    class Model:
        def __init__(self, w: int) -> None:
            self.w = w

        def predict(self, x: int) -> int:
            return x * self.w

    one = Model(1)
    assert captured_state(one.predict) == (("self", one),)


MODULE = """
import os
import infercache as ic

@ic.cache(store=os.environ["STORE"])
def work(x):
    with open(os.environ["CALLS"], "a") as out:
        out.write("call\\n")
    return x * 2
"""


def _run(tmp_path: Path, module: str) -> int:
    """Write ``module`` as ``work_mod.py``, call ``work(21)`` in a new process; how many times it computed."""
    (tmp_path / "work_mod.py").write_text(module)
    calls = tmp_path / "calls.txt"
    calls.write_text("")
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "STORE": str(tmp_path / "store"),
        "CALLS": str(calls),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    env.pop("INFERCACHE_STORE", None)
    out = subprocess.run(
        [sys.executable, "-c", "import work_mod; print(work_mod.work(21))"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == "42"
    return len(calls.read_text().splitlines())


def test_across_restarts_an_edited_function_misses_and_a_moved_one_hits(tmp_path: Path) -> None:
    assert _run(tmp_path, MODULE) == 1
    assert _run(tmp_path, MODULE) == 0  # a restart: served from the directory
    moved = "# moved down by a comment and blank lines\n\n\n" + MODULE.replace("import os\n", 'import os\n"""doc"""\n')
    assert _run(tmp_path, moved) == 0
    edited = MODULE.replace('out.write("call\\n")', 'out.write("call\\n"); out.flush()')
    assert _run(tmp_path, edited) == 1
    pinned = MODULE.replace("store=os.environ", 'version="v1", store=os.environ')
    assert _run(tmp_path, pinned) == 1
    assert _run(tmp_path, pinned.replace("x * 2", "2 * x")) == 0  # an explicit version is the user's word


HELPERS = """
import os
import tempfile

THRESHOLD = 0.5
LABELS = ("cat", "dog")
UNRELATED = 1
OUT = tempfile.mkdtemp()  # configuration computed at import: differs per process
STORE = os.environ.get("SOME_STORE", "a")

def helper(v):
    os.path.join(OUT, STORE)
    return v * 2

def f(x):
    return LABELS[helper(x) > THRESHOLD]
"""


def _load(tmp_path: Path, source: str, name: str = "f") -> Any:
    """Write ``source`` as a module file and import it afresh; return its function ``name``."""
    import importlib.util

    folder = tmp_path / f"m{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    path = folder / "helpers_mod.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location("helpers_mod", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


@pytest.mark.parametrize(
    "edited",
    [
        HELPERS.replace("THRESHOLD = 0.5", "THRESHOLD = 0.6"),
        HELPERS.replace('("cat", "dog")', '("dog", "cat")'),
        HELPERS.replace("v * 2", "v * 3"),  # a helper defined beside it
    ],
)
def test_module_literals_and_helpers_it_reads_are_part_of_the_version(tmp_path: Path, edited: str) -> None:
    assert code_version(_load(tmp_path, edited)) != code_version(_load(tmp_path, HELPERS))


def test_globals_it_does_not_read_or_that_are_computed_at_import_are_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = code_version(_load(tmp_path, HELPERS))
    assert code_version(_load(tmp_path, HELPERS.replace("UNRELATED = 1", "UNRELATED = 2"))) == base
    monkeypatch.setenv("SOME_STORE", "b")
    assert code_version(_load(tmp_path, HELPERS)) == base  # another OUT and STORE: same version


def test_a_name_assigned_twice_at_top_level_is_not_taken_for_a_literal(tmp_path: Path) -> None:
    twice = HELPERS.replace("THRESHOLD = 0.5", "THRESHOLD = 0.5\nTHRESHOLD = float(os.environ.get('T', '0.5'))")
    changed = twice.replace("THRESHOLD = 0.5\n", "THRESHOLD = 0.7\n")
    assert code_version(_load(tmp_path, twice)) == code_version(_load(tmp_path, changed))


def test_recursive_helpers_terminate(tmp_path: Path) -> None:
    source = """
def even(n):
    return True if n == 0 else odd(n - 1)

def odd(n):
    return False if n == 0 else even(n - 1)

def f(x):
    return even(x)
"""
    assert code_version(_load(tmp_path, source)) != code_version(_load(tmp_path, source.replace("n - 1", "n - 2")))
