"""Tests for infercache.libraries: library detection per type, never importing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest

from infercache.libraries import loaded, module, module_for, packages_of


def test_nothing_is_imported_to_detect_a_library() -> None:
    code = textwrap.dedent(
        """
        import sys
        from infercache.libraries import loaded, module_for
        from infercache.keys import make_key
        from infercache.safety import protect
        from infercache.sizes import sizeof
        class Plain:
            def __init__(self):
                self.x = [1, 2.0, "three"]
        for value in (Plain(), {"a": Plain()}, 3, "s"):
            make_key(value)
            protect(value)
            sizeof(value)
        names = ("numpy", "pandas", "polars", "pyarrow", "torch", "PIL.Image", "pydantic")
        assert all(loaded(n) is None for n in names)
        assert all(module_for(Plain, n) is None for n in names)
        heavy = ("numpy", "pandas", "polars", "pyarrow", "torch", "PIL", "pydantic")
        print(",".join(m for m in heavy if m in sys.modules))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_loaded_gives_an_imported_module_and_none_for_others() -> None:
    assert loaded("sys") is sys
    assert loaded("infercache_no_such_module") is None


def test_module_gives_an_imported_module_and_refuses_others() -> None:
    assert module("sys") is sys
    with pytest.raises(KeyError):
        module("infercache_no_such_module")


def test_a_type_belongs_to_the_packages_of_its_classes() -> None:
    np = pytest.importorskip("numpy")

    class Quantity(np.ndarray):  # a subclass made outside numpy
        pass

    assert packages_of(np.ndarray) == {"numpy", "builtins"}
    assert packages_of(Quantity) == {"numpy", "builtins", __name__.partition(".")[0]}
    assert packages_of(Quantity) is packages_of(Quantity)  # cached per type
    assert module_for(Quantity, "numpy") is np
    assert module_for(int, "numpy") is None  # numpy is loaded, but int is not numpy's


def test_a_type_mixing_two_libraries_belongs_to_both() -> None:
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")

    class Mixed(np.lib.mixins.NDArrayOperatorsMixin, pd.api.extensions.ExtensionArray):
        pass

    assert module_for(Mixed, "numpy") is np
    assert module_for(Mixed, "pandas") is pd


def test_a_submodule_is_given_only_when_imported() -> None:
    np = pytest.importorskip("numpy")
    assert module_for(np.ndarray, "numpy.infercache_no_such_submodule") is None
    assert module_for(np.ndarray, "numpy.linalg") is sys.modules.get("numpy.linalg")


def _checked_classes() -> list[tuple[str, Any]]:
    """Every library class that keys, sizes, safety or prefix test a type against
    after :func:`module_for` gated it by that library."""
    found: list[tuple[str, Any]] = []

    def add(package: str, names: str) -> None:
        mod = loaded(package)
        if mod is None:
            return
        for dotted in names.split():
            obj: Any = mod
            for part in dotted.split("."):
                obj = getattr(obj, part)
            found.append((package.partition(".")[0], obj))

    for package in ("numpy", "pandas", "pyarrow", "polars", "torch", "PIL.Image", "pydantic"):
        pytest.importorskip(package)
    pytest.importorskip("pandas.core.internals.managers")
    pytest.importorskip("pandas._libs.sparse")
    add("numpy", "ndarray generic dtype busdaycalendar integer void object_ ma.MaskedArray")
    add("torch", "Tensor dtype device layout memory_format Size")
    add("pandas", "DataFrame Series Index Timestamp Timedelta Period Interval Categorical "
                  "RangeIndex MultiIndex DatetimeIndex TimedeltaIndex CategoricalDtype "
                  "api.extensions.ExtensionArray api.extensions.ExtensionDtype offsets.BaseOffset")
    add("pandas.core.internals.managers", "BaseBlockManager")
    add("pandas._libs.sparse", "SparseIndex")
    add("pyarrow", "Buffer Array ChunkedArray Table RecordBatch Scalar DataType Field Schema")
    add("polars", "DataFrame Series LazyFrame Expr DataType")
    add("PIL.Image", "Image")
    add("pydantic", "BaseModel")
    pd = module("pandas")
    found += [("pandas", type(pd.NA)), ("pandas", type(pd.NaT))]
    return found


def test_every_class_a_gate_admits_belongs_to_its_library() -> None:
    """The gate is exact: a type subclassing a library class always belongs to that library."""
    for package, cls in _checked_classes():
        assert package in packages_of(cls), (package, cls)


def test_time_zone_libraries_are_detected_by_their_classes() -> None:
    import zoneinfo

    assert module_for(zoneinfo.ZoneInfo, "zoneinfo") is zoneinfo
    pytz = pytest.importorskip("pytz")
    zone = type(pytz.timezone("Europe/London"))  # a class pytz made at run time
    assert module_for(zone, "pytz.tzinfo") is sys.modules["pytz.tzinfo"]
