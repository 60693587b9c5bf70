"""Tests for infercache.reflect: the package of a class and its slot names."""

from __future__ import annotations

import collections
import pathlib

from infercache.reflect import own_slot_names, package_of, slot_names


class Base:
    __slots__ = ("__hidden", "__weakref__", "a")


class Child(Base):
    __slots__ = "b"


class Both(Child):
    __slots__ = ("__dict__", "c")


class ___:  # a name of underscores only: Python does not mangle in it
    __slots__ = ("__x",)


def test_slot_names_are_mangled_as_python_does() -> None:
    assert own_slot_names(Base) == ("_Base__hidden", "a")
    assert own_slot_names(___) == ("__x",)
    assert "__x" in vars(___)  # the descriptor Python made for the slot


def test_slot_names_cover_the_whole_mro_without_dict_and_weakref() -> None:
    assert slot_names(Both) == ("c", "b", "_Base__hidden", "a")
    assert slot_names(Both) is slot_names(Both)  # cached per type


def test_static_types_declare_no_slots() -> None:
    assert slot_names(int) == ()
    assert slot_names(collections.OrderedDict) == ()


def test_package_of_names_the_top_level_package() -> None:
    assert package_of(pathlib.PurePosixPath) == "pathlib"
    assert package_of(collections.OrderedDict) == "collections"
    assert package_of(int) == "builtins"
    assert package_of(Base) == __name__.partition(".")[0]
