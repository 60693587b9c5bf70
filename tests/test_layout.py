"""The package's layout rule: no module touches another infercache module's private names.

A name with a leading underscore belongs to its module. Another module of
``src/infercache`` may neither import it (``from .store import _ALL``) nor
reach it through an infercache module or an object imported from one
(``hooks._pending``, ``Store._lock``). Other libraries' private names are not
covered (the Gradio integration documents the ones it must use). The check
reads the source with :mod:`ast`; attributes of objects held in variables
(``self._store._lock``) cannot be traced statically and are not covered.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "infercache"
SRC = Path(__file__).resolve().parent.parent / "src" / PACKAGE


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_name(path: Path, root: Path) -> tuple[str, str]:
    """(dotted module name, dotted package that relative imports start from)."""
    parts = [PACKAGE, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
        return ".".join(parts), ".".join(parts)
    return ".".join(parts), ".".join(parts[:-1])


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if node.level == 0:
        return node.module or ""
    base = package.split(".")
    if node.level > 1:
        base = base[: len(base) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def _ours(module: str) -> bool:
    return module == PACKAGE or module.startswith(PACKAGE + ".")


def private_accesses(source: str, module: str, package: str) -> list[str]:
    """Every place in ``source`` (the module ``module``) that imports or reaches
    a private name of another infercache module, as ``"line: what"``."""
    tree = ast.parse(source)
    found: list[str] = []
    # Local names bound to an infercache module or to an object imported from one.
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source_module = _absolute(node, package)
            if not _ours(source_module) or source_module == module:
                continue
            for alias in node.names:
                if _private(alias.name):
                    found.append(f"{node.lineno}: from {source_module} import {alias.name}")
                bound[alias.asname or alias.name] = f"{source_module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if not _ours(alias.name):
                    continue
                if alias.asname is not None:
                    bound[alias.asname] = alias.name
                else:
                    bound[PACKAGE] = PACKAGE
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not _private(node.attr):
            continue
        chain = [node.attr]
        value = node.value
        while isinstance(value, ast.Attribute):
            chain.append(value.attr)
            value = value.value
        if isinstance(value, ast.Name) and value.id in bound:
            target = ".".join([value.id, *reversed(chain)])
            found.append(f"{node.lineno}: {target} ({bound[value.id]})")
    return sorted(found, key=lambda f: int(f.partition(":")[0]))


def test_no_module_touches_another_modules_private_names() -> None:
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        module, package = _module_name(path, SRC)
        for problem in private_accesses(path.read_text(encoding="utf-8"), module, package):
            problems.append(f"{path.relative_to(SRC.parent)}:{problem}")
    assert not problems, "private names used across modules:\n" + "\n".join(problems)


def test_the_check_finds_imports_and_attributes_of_private_names() -> None:
    source = (
        "from . import hooks\n"
        "from .store import Store, _ALL\n"
        "from ..errors import UnhashableError\n"
        "import infercache.sizes as sizes\n"
        "import infercache\n"
        "hooks._pending\n"
        "Store._lock\n"
        "sizes._walk.stack\n"
        "infercache.keys._finish\n"
        "UnhashableError.__name__\n"
    )
    found = private_accesses(source, "infercache.keys.api", "infercache.keys")
    assert [f.partition(":")[0] for f in found] == ["2", "6", "7", "8", "9"]


def test_the_check_allows_own_names_and_other_libraries_privates() -> None:
    source = (
        "import gradio.caching as gr_caching\n"
        "from ._impl import helper\n"
        "_GR_PROBE = gr_caching._probe_mode_active\n"
        "class A:\n"
        "    def f(self):\n"
        "        return self._x, _GR_PROBE\n"
    )
    assert private_accesses(source, "infercache.x._impl", "infercache.x") == []
    assert private_accesses(source, "infercache.x.y", "infercache.x") == []
