"""Argument binding: every way of passing one call's arguments is one key.

Exercised through ``@cache``, whose keys are made from the argument of every
parameter in parameter order, defaults applied; ``Cache()`` defaults are left
out, and builtins without a signature are keyed by the arguments as given.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import infercache as ic


def test_positional_keyword_and_default_arguments_are_one_key() -> None:
    runs = []

    @ic.cache
    def f(a, b=2):
        runs.append((a, b))
        return a + b

    assert f(1, b=2) == f(a=1, b=2) == f(1) == f(1, 2) == 3
    assert runs == [(1, 2)]
    assert f(1, 3) == 4
    assert len(runs) == 2


def test_star_args_and_kwargs_functions_are_cached() -> None:
    runs = []

    @ic.cache
    def f(*args, **kwargs):
        runs.append((args, kwargs))
        return sum(args) + sum(kwargs.values())

    assert f(1, 2, z=3) == 6
    assert f(1, 2, z=3) == 6
    assert f(z=3, y=0) == 3
    assert f(y=0, z=3) == 3  # kwargs order does not matter
    assert f(1, 2) == 3
    assert len(runs) == 3


def test_positional_only_and_keyword_only_parameters() -> None:
    runs = []

    @ic.cache
    def f(a, /, b, *, c=1):
        runs.append((a, b, c))
        return a + b + c

    assert f(1, 2) == f(1, b=2) == f(1, 2, c=1) == 4
    assert len(runs) == 1


def test_binding_error_is_the_functions_own_type_error() -> None:
    @ic.cache
    def f(a, b):
        return a

    with pytest.raises(TypeError):
        f(1)
    with pytest.raises(TypeError):
        f(1, 2, 3)


# Binding once compared every argument with ``==`` to spot a missing one, which
# arrays and DataFrames answer element-wise (or refuse to answer).


def test_an_array_passed_by_keyword_binds_and_hits() -> None:
    @ic.cache
    def total(img, scale=1.0):
        return float(img.sum()) * scale

    img = np.ones((3, 3))
    assert total(img=img) == 9.0
    assert total(img, scale=2.0) == 18.0
    assert total(img=img.copy()) == 9.0
    assert total.cache.stats().hits == 1


def test_a_dataframe_passed_by_keyword_binds() -> None:
    @ic.cache
    def rows(df, limit=10):
        return len(df.head(limit))

    assert rows(df=pd.DataFrame({"a": [1, 2]})) == 2


def test_an_array_as_a_parameter_default_binds() -> None:
    @ic.cache
    def masked(x, mask=np.ones(3)):  # an array default: the point of the test
        return float((mask * x).sum())

    assert masked(2) == 6.0
    assert masked(x=2) == 6.0


def test_manual_cache_default_parameter_is_left_out_of_the_key() -> None:
    runs = []

    @ic.cache
    def f(x, c=ic.Cache()):  # a Cache() default: the guide's pattern
        runs.append(x)
        return x

    f(1)
    f(1)
    assert runs == [1]


def test_builtins_without_a_signature_can_be_cached() -> None:
    import operator

    add = ic.cache(operator.add)
    assert add(2, 3) == add(2, 3) == 5
    assert add.cache.stats().hits == 1
