"""Settings: one validation for @cache and Cache()."""

from __future__ import annotations

import pytest

import infercache as ic
from infercache.config import Settings, parse_memory
from infercache.errors import ConfigError, InfercacheError


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, None),
        (1024, 1024),
        (2e9, 2_000_000_000),
        ("512mb", 512_000_000),
        ("1.5GiB", 1_610_612_736),
        ("10 KB", 10_000),
    ],
)
def test_memory_bounds_parse(given: object, expected: int | None) -> None:
    assert Settings.of(max_memory=given).max_memory == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "settings",
    [
        {"max_memory": "10 parsecs"}, {"max_memory": 0}, {"max_memory": "-1mb"}, {"max_memory": True},
        {"max_memory": float("nan")}, {"max_size": -1}, {"max_size": 1.5}, {"ttl": 0}, {"ttl": float("inf")},
        {"digest": "md5"}, {"name": ""}, {"key": 3},
    ],
)
def test_bad_settings_are_one_error_type_for_both_entry_points(settings: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        Settings.of(**settings)  # type: ignore[arg-type]
    assert issubclass(ConfigError, InfercacheError)
    assert issubclass(ConfigError, ValueError) and issubclass(ConfigError, TypeError)


def test_settings_are_frozen() -> None:
    s = Settings.of()
    with pytest.raises(AttributeError):
        s.max_size = 3  # type: ignore[misc]
    assert s == Settings()


def test_public_errors_share_one_base() -> None:
    assert issubclass(ic.UnhashableError, TypeError)
    assert issubclass(ic.CacheKeyError, ValueError)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512mb", 512_000_000),
        ("2gb", 2_000_000_000),
        ("1.5GiB", int(1.5 * 1024**3)),
        ("10 MB", 10_000_000),
        ("100", 100),
        ("64kib", 65536),
        (4096, 4096),
        (2e9, 2_000_000_000),
        (None, None),
    ],
)
def test_parse_memory(text: object, expected: int | None) -> None:
    assert parse_memory(text) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad", ["lots", "12 parsecs", "mb", "-5mb", 0, -1, "0gb", True, 0.5, float("nan"), float("inf"), "nan gb", "infgb"]
)
def test_parse_memory_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_memory(bad)  # type: ignore[arg-type]
