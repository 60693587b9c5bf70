"""The codec: kept values to authenticated records and back."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infercache.codec import Codec, CorruptEntry

SECRET = b"s" * 32
NAME = b"infercache/1/{mod.f/}//01ab"

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


@given(values)
def test_any_picklable_value_round_trips(value: object) -> None:
    codec = Codec(SECRET)
    assert codec.loads(NAME, codec.dumps(NAME, value)) == value


def test_arrays_come_back_as_read_only_views_over_the_record() -> None:
    codec = Codec(SECRET)
    image = np.arange(1080 * 64 * 3, dtype=np.uint8).reshape(1080, 64, 3)
    record = codec.dumps(NAME, {"image": image})
    back = codec.loads(NAME, record)["image"]
    np.testing.assert_array_equal(back, image)
    assert not back.flags.writeable
    # The pixels are not copied: the array's memory lies inside the record.
    assert np.shares_memory(back, np.frombuffer(record, dtype=np.uint8))


@settings(max_examples=200)
@given(st.data())
def test_any_flipped_byte_is_refused_before_decoding(data: st.DataObject) -> None:
    codec = Codec(SECRET)
    record = bytearray(codec.dumps(NAME, {"a": [1, 2, 3], "b": np.ones(8)}))
    i = data.draw(st.integers(0, len(record) - 1))
    record[i] ^= data.draw(st.integers(1, 255))
    with pytest.raises(CorruptEntry):
        codec.loads(NAME, bytes(record))


@given(st.integers(0, 200))
def test_a_truncated_record_is_refused(cut: int) -> None:
    codec = Codec(SECRET)
    record = codec.dumps(NAME, list(range(50)))
    with pytest.raises(CorruptEntry):
        codec.loads(NAME, record[: max(0, len(record) - 1 - cut)])


def test_a_record_is_bound_to_its_name_and_secret() -> None:
    record = Codec(SECRET).dumps(NAME, "answer")
    with pytest.raises(CorruptEntry):
        Codec(SECRET).loads(NAME + b"0", record)  # replayed under another key
    with pytest.raises(CorruptEntry):
        Codec(b"t" * 32).loads(NAME, record)  # another deployment's secret


class _Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, ("raise SystemExit('executed')",))


def test_a_forged_pickle_is_never_executed() -> None:
    """A well-formed record signed with another secret (an attacker's) is refused before unpickling."""
    forged = Codec(b"attacker-secret-0123").dumps(NAME, _Boom())
    with pytest.raises(CorruptEntry):
        Codec(SECRET).loads(NAME, forged)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        Codec(b"short")
