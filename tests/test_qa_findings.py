"""QA findings against the engine's public promises (README, docs/design.md).

Tests marked ``xfail(strict=True)`` reproduce a defect found during QA: each
fails today and will start passing (turning the strict xfail into an error)
once the defect is fixed, at which point the mark should be removed. The
unmarked tests pin behaviours verified during QA that no other test covered.
"""

from __future__ import annotations

import logging

import asyncio
import copy
import datetime as dt
import functools
import pickle
import threading
import typing
import warnings
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pydantic
import pytest

import infercache as ic
from infercache.keys import make_key


class FakeClock:
    """A monotonic clock the test moves by hand (no sleeping, no timing)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# =========================================================================== defects


# --- keys: time zones ------------------------------------------------------------------


def test_datetime_zone_is_part_of_the_key() -> None:
    @ic.cache
    def half_year_later(when):
        return (when + dt.timedelta(days=180)).isoformat()

    utc = dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone.utc)
    london = dt.datetime(2024, 1, 1, 12, tzinfo=ZoneInfo("Europe/London"))
    assert half_year_later(utc) == "2024-06-29T12:00:00+00:00"
    assert half_year_later(london) == "2024-06-29T12:00:00+01:00"  # BST in June


def test_aware_time_differs_from_naive_time() -> None:
    assert make_key(dt.time(12, tzinfo=ZoneInfo("Europe/Paris"))) != make_key(dt.time(12))


# --- keys: pydantic --------------------------------------------------------------------


class _ModelA(pydantic.BaseModel):
    v: int


class _ModelB(pydantic.BaseModel):
    v: int


class _Outer(pydantic.BaseModel):
    inner: _ModelA | _ModelB


class _WithExcluded(pydantic.BaseModel):
    prompt: str
    temperature: float = pydantic.Field(default=1.0, exclude=True)


def test_pydantic_nested_model_type_is_part_of_the_key() -> None:
    @ic.cache
    def kind(cfg):
        return type(cfg.inner).__name__

    assert kind(_Outer(inner=_ModelA(v=1))) == "_ModelA"
    assert kind(_Outer(inner=_ModelB(v=1))) == "_ModelB"


def test_pydantic_excluded_field_is_part_of_the_key() -> None:
    a = _WithExcluded(prompt="p", temperature=0.1)
    b = _WithExcluded(prompt="p", temperature=0.9)
    assert make_key(a) != make_key(b)


# --- callables without __qualname__ ----------------------------------------------------


# --- single-flight: a generator calling itself with the same arguments ----------------


# --- mutation safety: pandas extension arrays -------------------------------------------


# --- mutation safety: numpy read-only guard bypassed through .base ----------------------


# --- Cache.longest_prefix: aliased keys -------------------------------------------------


# =========================================================================== verified


