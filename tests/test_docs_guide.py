"""The user guide (``docs/guide.md``) is executable, and complete.

Every ```` ```python ```` block of the guide runs on every run of the suite, in
the order of the page, each in a fresh namespace (each example is a whole
program a reader can copy). A failure names the guide's section and line;
tracebacks point at lines of ``docs/guide.md`` itself. A second test checks
that the guide keeps one example per caching pattern, and that every example
shows the cache at work through its statistics.
"""

from __future__ import annotations

import ast
import re
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guide.md"


@dataclass(frozen=True)
class Example:
    """One python block of the guide: the section it is in, its first line, its code."""

    section: str
    line: int
    code: str

    @property
    def where(self) -> str:
        return f"section {self.section!r} (docs/guide.md, line {self.line})"


def examples() -> list[Example]:
    """The guide's python blocks, in page order."""
    text = GUIDE.read_text(encoding="utf-8")
    found = []
    for match in re.finditer(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE):
        before = text[: match.start()]
        headings = re.findall(r"^#{1,3} (.+)$", before, flags=re.MULTILINE)
        line = before.count("\n") + 2  # the block's first code line
        found.append(Example(headings[-1] if headings else "(top)", line, match.group(1)))
    return found


EXAMPLES = examples()


def _slug(section: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", section.lower()).strip("-")


@pytest.mark.parametrize("example", EXAMPLES, ids=[_slug(e.section) for e in EXAMPLES])
def test_guide_example_runs(example: Example) -> None:
    # Padding keeps line numbers in tracebacks equal to the guide's own.
    code = compile("\n" * (example.line - 1) + example.code, str(GUIDE), "exec")
    namespace: dict[str, object] = {"__name__": "guide_example"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            exec(code, namespace)  # noqa: S102 - running the guide's examples is the test
        except Exception as exc:  # noqa: BLE001 - any error of an example is reported with its section
            pytest.fail(
                f"the example of {example.where} failed: {type(exc).__name__}: {exc}\n"
                + "".join(traceback.format_exception(exc)[-4:]),
                pytrace=False,
            )
    ours = [w for w in caught if str(w.message).startswith("infercache")]
    assert not ours, f"the example of {example.where} warned: {ours[0].message}"


# ------------------------------------------------------------- coverage of patterns


def _is_ic(node: ast.AST, name: str) -> bool:
    """``node`` is ``ic.<name>``, called or not."""
    if isinstance(node, ast.Call):
        node = node.func
    return isinstance(node, ast.Attribute) and node.attr == name and (
        isinstance(node.value, ast.Name) and node.value.id == "ic"
    )


def _yields(fn: ast.AST) -> bool:
    return any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in ast.walk(fn))


def _cached_defs(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
        and any(_is_ic(d, "cache") for d in n.decorator_list)
    ]


def _calls(tree: ast.AST, method: str) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == method
        for n in ast.walk(tree)
    )


def _pattern_checks() -> dict[str, Callable[[ast.AST], bool]]:
    def sync(t: ast.AST) -> bool:
        return any(isinstance(d, ast.FunctionDef) and not _yields(d) for d in _cached_defs(t))

    def async_fn(t: ast.AST) -> bool:
        return any(isinstance(d, ast.AsyncFunctionDef) and not _yields(d) for d in _cached_defs(t))

    def generator(t: ast.AST) -> bool:
        return any(isinstance(d, ast.FunctionDef) and _yields(d) for d in _cached_defs(t))

    def async_generator(t: ast.AST) -> bool:
        return any(isinstance(d, ast.AsyncFunctionDef) and _yields(d) for d in _cached_defs(t))

    def manual(t: ast.AST) -> bool:
        made = any(_is_ic(n, "Cache") for n in ast.walk(t) if isinstance(n, ast.Call))
        return made and _calls(t, "get") and _calls(t, "set")

    def prefix(t: ast.AST) -> bool:
        return _calls(t, "longest_prefix") and _calls(t, "set")

    def runtime(t: ast.AST) -> bool:  # ic.cache(fn)(...)
        return any(
            isinstance(n, ast.Call) and isinstance(n.func, ast.Call) and _is_ic(n.func, "cache")
            for n in ast.walk(t)
        )

    def per_session(t: ast.AST) -> bool:
        flagged = any(
            isinstance(n, ast.keyword) and n.arg == "per_session"
            and isinstance(n.value, ast.Constant) and n.value.value is True
            for n in ast.walk(t)
        )
        used = {name for name in ("session", "clear_session") if any(_is_ic(n, name) for n in ast.walk(t))}
        return flagged and used == {"session", "clear_session"}

    return {
        "sync function": sync,
        "async function": async_fn,
        "generator": generator,
        "async generator": async_generator,
        "manual ic.Cache get/set": manual,
        "KV prefix reuse (longest_prefix)": prefix,
        "runtime helper ic.cache(fn)(...)": runtime,
        "per-session (per_session=True, ic.session, ic.clear_session)": per_session,
    }


def test_guide_has_one_example_per_caching_pattern() -> None:
    trees = [(e, ast.parse(e.code)) for e in EXAMPLES]
    for pattern, check in _pattern_checks().items():
        showing = [e.section for e, t in trees if check(t)]
        assert showing, f"docs/guide.md has no example of the {pattern} pattern"


def test_every_example_shows_the_cache_working() -> None:
    """Outside the Gradio app example, each example asserts on the cache's statistics."""
    for example, tree in ((e, ast.parse(e.code)) for e in EXAMPLES):
        if "import gradio" in example.code:
            continue
        assert _calls(tree, "stats"), f"the example of {example.where} never reads .stats()"
        assert any(isinstance(n, ast.Assert) for n in ast.walk(tree)), (
            f"the example of {example.where} asserts nothing"
        )
