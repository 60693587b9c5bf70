"""A cached function's code version: what changes when its code changes, and only then.

Entries that outlive the process (a directory, a Redis server) are named with
the version of the code that computed them (see
:mod:`infercache.keyspace`), so editing a function stops its old results from
being served, on every replica at once. :func:`code_version` derives it from
what the function does:

- its bytecode, constants (recursively into nested functions, lambdas and
  comprehensions), the names and attributes it reads, its variable names and
  argument layout;
- not its line numbers, file name or docstring: moving a function in its
  file, or reformatting comments around it, keeps its entries.

Code is not all that decides what a function returns: a closure's captured
values, a ``functools.partial``'s bound arguments, a bound method's ``self``
and a callable object's own state do too, and two functions with the same
code and name but different captured values must not share entries.
:func:`captured_state` lists that state; the engine keys it by content into
the version (or refuses a shared store for it, asking for ``version=``).

Also folded in: the module globals the function reads that its source
assigns once to a literal (``THRESHOLD = 0.5``, ``MODEL = "resnet50"``), and
the functions defined in the same module that it calls, by their code (and
theirs, recursively). Globals computed when the module runs (a temporary
directory, a setting read from the environment) are configuration that may
differ per process: they are left out, so replicas share entries.

What it cannot see: code in other modules, classes and objects it uses (a
model's weights, a library upgrade). Pass ``version=`` to ``@cache`` to name
the version yourself when those matter.
"""

from __future__ import annotations

import ast
import functools
import inspect
import os
import tokenize
import types
from collections.abc import Callable
from typing import Any

import blake3

from .keys import KEY_FORMAT_VERSION

__all__ = ["captured_state", "code_version"]

_SEP = b"\x00"
_DOCSTRING_FLAG = getattr(inspect, "CO_HAS_DOCSTRING", 0)  # Python 3.14+ flags functions with one


def _code_of(func: Any) -> types.CodeType | None:
    """The code object that runs when ``func`` is called (unwrapping partials, methods, callables)."""
    if isinstance(func, types.CodeType):
        return func
    holder = _holder_of(func)
    return None if holder is None else holder.__code__


def _feed(h: Any, code: types.CodeType, docstring: str | None) -> None:
    h.update(code.co_code)
    h.update(_SEP)
    h.update(
        repr(
            (
                code.co_argcount,
                code.co_posonlyargcount,
                code.co_kwonlyargcount,
                code.co_flags & ~_DOCSTRING_FLAG,
                code.co_names,
                code.co_varnames,
                code.co_freevars,
                code.co_cellvars,
            )
        ).encode()
    )
    consts = code.co_consts
    if docstring is not None and consts and consts[0] == docstring:
        consts = (None, *consts[1:])  # what the same function without a docstring holds there
    for const in consts:
        h.update(_SEP)
        if isinstance(const, types.CodeType):
            h.update(b"code:")
            _feed(h, const, None)
        else:
            h.update(f"{type(const).__qualname__}:{const!r}".encode())


def code_version(func: Callable[..., Any]) -> str:
    """A short hex version of ``func``'s code (see the module docstring); ``""`` when it has none.

    A callable without Python code (a builtin, a C extension function) has
    no derivable version: ``""``, and its entries are kept across edits of
    anything; name a version with ``version=`` for those.
    """
    code = _code_of(func)
    if code is None:
        return ""
    h = blake3.blake3()
    h.update(f"infercache code version 2, key format {KEY_FORMAT_VERSION}".encode())
    doc = getattr(func, "__doc__", None)
    _feed(h, code, doc if isinstance(doc, str) else None)
    namespace = getattr(_holder_of(func), "__globals__", None)
    if isinstance(namespace, dict):
        _feed_globals(h, code, namespace, {code})
    return h.hexdigest()[:16]


def _holder_of(func: Any) -> Any:
    """The function object holding the code that runs when ``func`` is called, or None."""
    for _ in range(16):
        if isinstance(func, functools.partial):
            func = func.func
            continue
        if isinstance(func, (types.MethodType, classmethod, staticmethod)):
            func = func.__func__
            continue
        if isinstance(getattr(func, "__code__", None), types.CodeType):
            return func
        call = None
        for klass in type(func).__mro__:
            if "__call__" in klass.__dict__:
                call = klass.__dict__["__call__"]
                break
        if call is None or isinstance(call, (types.WrapperDescriptorType, types.MethodWrapperType)):
            return None
        func = call
    return None


def _names_in(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names_in(const)
    return names


def _feed_globals(h: Any, code: types.CodeType, namespace: dict[str, Any], seen: set[types.CodeType]) -> None:
    """Fold in the module globals ``code`` reads: literal constants by their text, same-module functions by code.

    So changing ``THRESHOLD = 0.5`` or editing a helper defined beside the
    cached function changes its version. Values computed when the module
    runs (paths, settings from the environment), modules, classes and models
    are not folded in (see :func:`_literals`).
    """
    module = namespace.get("__name__")
    literals = _literals(namespace)
    for name in sorted(_names_in(code)):
        if name not in namespace:
            continue
        value = namespace[name]
        if name in literals:
            h.update(_SEP + f"global {name}={literals[name]}".encode())
        elif isinstance(value, types.FunctionType) and value.__module__ == module and value.__code__ not in seen:
            seen.add(value.__code__)
            h.update(_SEP + f"helper {name}:".encode())
            doc = value.__doc__
            _feed(h, value.__code__, doc if isinstance(doc, str) else None)
            _feed_globals(h, value.__code__, namespace, seen)


def _literals(namespace: dict[str, Any]) -> dict[str, str]:
    """Names the module's source assigns exactly once at top level, to a literal: name -> its text.

    ``THRESHOLD = 0.5`` and ``MODEL = "resnet50"`` are code; ``OUT =
    tempfile.mkdtemp()`` or ``STORE = sys.argv[1]`` are configuration that
    may differ per process and must not split the replicas' entries, so only
    literals written in the source count. Read once per source file.
    """
    path = namespace.get("__file__")
    if not isinstance(path, str) or not path.endswith(".py"):
        return {}
    try:
        st = os.stat(path)
    except OSError:
        return {}
    return _literals_in(path, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=256)
def _literals_in(path: str, mtime_ns: int, size: int) -> dict[str, str]:
    try:
        with tokenize.open(path) as source:
            tree = ast.parse(source.read(), path)
    except (OSError, SyntaxError, ValueError):
        return {}
    assigned: dict[str, int] = {}
    literal: dict[str, str] = {}
    for node in tree.body:
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        for target in targets:
            for name in ast.walk(target):
                if isinstance(name, ast.Name):
                    assigned[name.id] = assigned.get(name.id, 0) + 1
        if len(targets) == 1 and isinstance(targets[0], ast.Name) and value is not None:
            try:
                ast.literal_eval(value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                continue
            literal[targets[0].id] = ast.dump(value)
    return {name: text for name, text in literal.items() if assigned.get(name) == 1}


def captured_state(func: Any) -> tuple[Any, ...]:
    """The state besides arguments and code that ``func``'s results depend on.

    Closure cell contents, partial arguments and keywords, a bound method's
    ``self`` and a callable object itself (its attributes), gathered through
    the same unwrapping as :func:`code_version`. Empty for a plain
    module-level function.
    """
    state: list[Any] = []
    seen = 0
    while seen < 16:
        seen += 1
        if isinstance(func, functools.partial):
            state.append(("partial", func.args, dict(func.keywords)))
            func = func.func
            continue
        if isinstance(func, types.MethodType):
            state.append(("self", func.__self__))
            func = func.__func__
            continue
        if isinstance(func, (classmethod, staticmethod)):
            func = func.__func__
            continue
        if isinstance(func, (types.FunctionType, types.BuiltinFunctionType)):
            cells = getattr(func, "__closure__", None) or ()
            # A cell may be empty (a name assigned after the closure was made).
            state.extend(("cell", c.cell_contents if _filled(c) else None) for c in cells)
            return tuple(state)
        if getattr(func, "__code__", None) is not None:
            return tuple(state)
        state.append(("object", func))
        return tuple(state)
    return tuple(state)


def _filled(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - reading it is the test
    except ValueError:
        return False
    return True
