"""The codec: kept values to authenticated records and back (and how kept forms pickle for it)."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infercache.codec import Codec, CorruptEntry
from infercache.safety import protect, release

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


# --------------------------------------------------------------------------- kept values (infercache.safety)
#
# Tiers store what the cache keeps (protect's forms), not the caller's objects:
# their data travels out of band and comes back without copies where it can.


def _kept_round_trip(value: object, record_type: type = bytes) -> tuple[Any, Any]:
    """``(record, released value)`` after storing ``protect(value)`` and decoding it from ``record_type``."""
    codec = Codec(SECRET)
    record = record_type(codec.dumps(NAME, protect(value)))
    return record, release(codec.loads(NAME, record))


def _buffers_of(kept: object) -> list[pickle.PickleBuffer]:
    buffers: list[pickle.PickleBuffer] = []
    pickle.dumps(kept, protocol=5, buffer_callback=buffers.append)
    return buffers


def test_a_kept_array_comes_back_as_a_read_only_view_over_the_record() -> None:
    image = np.arange(256 * 256 * 3, dtype=np.uint8).reshape(256, 256, 3)
    record, back = _kept_round_trip(image)
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, image)
    # Not copied at decoding: the pixels are the record's own bytes, which nobody can write.
    assert np.shares_memory(back, np.frombuffer(record, dtype=np.uint8))
    assert not back.flags.writeable
    with pytest.raises(ValueError):
        back.flags.writeable = True


def test_a_kept_array_decoded_from_a_mutable_record_owns_its_data() -> None:
    image = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    record, back = _kept_round_trip(image, bytearray)
    assert isinstance(record, bytearray) and isinstance(back, np.ndarray)
    record[:] = bytes(len(record))  # whoever holds the buffer changes it afterwards
    np.testing.assert_array_equal(back, image)
    assert not back.flags.writeable


def test_kept_arrays_with_their_own_dtype_and_aliases_round_trip() -> None:
    structured = np.array([(1, 2.5), (3, 4.5)], dtype=[("a", "<i4"), ("b", "<f8")])
    shared = np.ones(8)
    _, back = _kept_round_trip({"s": structured, "pair": [shared, shared]})
    assert isinstance(back, dict)
    np.testing.assert_array_equal(back["s"], structured)
    assert back["s"].dtype == structured.dtype
    assert back["pair"][0] is back["pair"][1]  # one array twice stays one array


def test_kept_memoryviews_and_bytearrays_travel_out_of_band() -> None:
    view = memoryview(np.arange(12, dtype=np.int16).reshape(3, 4))  # type: ignore[arg-type]  # numpy arrays export buffers
    for value in (view, bytearray(b"x" * 1000)):
        assert len(_buffers_of(protect(value))) == 1
    record, back = _kept_round_trip({"v": view, "b": bytearray(b"abc")})
    assert isinstance(back, dict)
    assert back["v"].format == "h" and back["v"].shape == (3, 4) and back["v"].tolist() == view.tolist()
    assert np.shares_memory(np.frombuffer(back["v"], dtype=np.uint8), np.frombuffer(record, dtype=np.uint8))
    assert back["b"] == bytearray(b"abc") and isinstance(back["b"], bytearray)


def _kept_values_of_24_bytes() -> dict[str, Any]:
    return {
        "memoryview": memoryview(np.arange(12, dtype=np.int16).reshape(3, 4)),  # type: ignore[arg-type]
        "flat memoryview": memoryview(np.arange(12, dtype=">i2")),  # type: ignore[arg-type]  # kept as flat bytes
        "array": np.arange(12, dtype=np.int16).reshape(3, 4),
        "bytearray": bytearray(range(24)),
    }


def _described(value: Any) -> Any:
    if isinstance(value, memoryview):
        return "memoryview", value.format, value.shape, value.tobytes()
    if isinstance(value, np.ndarray):
        return "array", value.dtype.str, value.shape, value.tobytes()
    return type(value).__name__, bytes(value)


@pytest.mark.parametrize("kind", list(_kept_values_of_24_bytes()))
@pytest.mark.parametrize(
    "as_buffer",
    [lambda raw: memoryview(raw).cast("h"), lambda raw: memoryview(raw).cast("h", (3, 4)),
     lambda raw: memoryview(raw).cast("B", (6, 4)), lambda raw: memoryview(raw)],
    ids=["int16 view", "int16 grid", "byte grid", "byte view"],
)
def test_out_of_band_data_of_any_format_or_shape_comes_back_as_the_kept_bytes_without_a_copy(
    kind: str, as_buffer: Any
) -> None:
    """An unpickler may be handed the out-of-band bytes as any read-only view of them."""
    value = _kept_values_of_24_bytes()[kind]
    buffers = _buffers_of(protect(value))
    stream = pickle.dumps(protect(value), protocol=5, buffer_callback=[].append)
    raw = bytes(buffers[0].raw())
    back = release(pickle.loads(stream, buffers=[as_buffer(raw)]))
    assert _described(back) == _described(release(protect(value)))
    if kind != "bytearray":  # a bytearray is the caller's own copy by nature
        assert np.shares_memory(np.frombuffer(back, dtype=np.uint8), np.frombuffer(raw, dtype=np.uint8))


def test_an_array_read_from_a_record_is_released_in_a_process_that_never_kept_one(tmp_path: Path) -> None:
    """A hit from a tier may be the first array a process ever sees (a restart, another replica)."""
    path = tmp_path / "record"
    path.write_bytes(Codec(SECRET).dumps(NAME, protect(np.arange(10, dtype=np.int64))))
    code = (
        "import sys; from infercache.codec import Codec; from infercache.safety import release\n"
        f"kept = Codec({SECRET!r}).loads({NAME!r}, open(sys.argv[1], 'rb').read())\n"
        "a = release(kept); print(int(a.sum()), a.dtype, a.shape, a.flags.writeable)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["45", "int64", "(10,)", "False"]
    # The same record decoded here too: what a mutation run needs to see that
    # this test covers the decoding (it records the calls of this process only).
    here = release(Codec(SECRET).loads(NAME, path.read_bytes()))
    assert [str(int(here.sum())), str(here.dtype), str(here.shape), str(here.flags.writeable)] == out.stdout.split()


def _tensors() -> dict[str, Any]:
    torch = pytest.importorskip("torch")
    complex_ = torch.tensor([1 + 2j, 3 - 4j])
    return {
        "transposed": torch.arange(12, dtype=torch.float32).reshape(3, 4).t(),
        "bfloat16": torch.linspace(0, 1, 7, dtype=torch.bfloat16),
        "conjugate": complex_.conj(),
        "negative view": complex_.conj().imag,
        "one strided element": complex_[:1].conj().imag,
        "scalar": torch.tensor(3.5, dtype=torch.float64),
        "empty": torch.empty(0, 3),
        "bool": torch.tensor([True, False, True]),
        "parameter": torch.nn.Parameter(torch.ones(2, 2)),
    }


@pytest.mark.parametrize("case", ["transposed", "bfloat16", "conjugate", "negative view", "one strided element",
                                  "scalar", "empty", "bool", "parameter"])
def test_kept_tensors_travel_as_raw_bytes_and_come_back_equal(case: str) -> None:
    torch = pytest.importorskip("torch")
    tensor = _tensors()[case]
    assert isinstance(tensor, torch.Tensor)
    buffers = _buffers_of(protect(tensor))
    assert len(buffers) == 1 and buffers[0].raw().nbytes == tensor.numel() * tensor.element_size()
    _, back = _kept_round_trip(tensor)
    assert type(back) is torch.Tensor
    expected = tensor.detach().resolve_conj().resolve_neg()
    assert back.dtype == expected.dtype and back.shape == expected.shape
    assert torch.equal(back, expected)


def test_a_sparse_tensor_is_pickled_by_torch() -> None:
    torch = pytest.importorskip("torch")
    sparse = torch.eye(4).to_sparse()
    _, back = _kept_round_trip(sparse)
    assert isinstance(back, torch.Tensor) and back.is_sparse
    assert torch.equal(back.to_dense(), torch.eye(4))


def _images() -> dict[str, Any]:
    image = pytest.importorskip("PIL.Image")
    rgb = image.fromarray(np.arange(48 * 32 * 3, dtype=np.uint8).reshape(32, 48, 3))
    with_info = rgb.copy()
    with_info.info["comments"] = ["a", "list"]  # a mutable info value: kept as its own form
    return {
        "RGB": rgb,
        "palette": image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).convert("P"),
        "16-bit": image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8)),
        "mutable info": with_info,
    }


@pytest.mark.parametrize("case", ["RGB", "palette", "16-bit", "mutable info"])
def test_kept_images_travel_as_raw_bytes_and_come_back_equal(case: str) -> None:
    im = _images()[case]
    assert len(_buffers_of(protect(im))) == 1
    _, back = _kept_round_trip(im)
    assert back.mode == im.mode and back.size == im.size
    assert back.tobytes() == im.tobytes()
    assert back.getpalette() == im.getpalette()
    assert back.info == im.info


def test_kept_forms_pickle_in_band_and_deep_copy_too() -> None:
    """Pickle before protocol 5, or without a buffer callback, and deepcopy, keep working,
    also for a kept form read from a record (its data a view of the record's bytes)."""
    values: list[Any] = [np.arange(6).reshape(2, 3), memoryview(b"abc"), bytearray(b"xyz")]
    torch = pytest.importorskip("torch")
    image = pytest.importorskip("PIL.Image")
    values += [torch.arange(4.0), image.new("RGB", (3, 2), (1, 2, 3))]
    codec = Codec(SECRET)
    for value, kept in [(v, k) for v in values for k in (protect(v), codec.loads(NAME, codec.dumps(NAME, protect(v))))]:
        for copied in (pickle.loads(pickle.dumps(kept, protocol=4)), pickle.loads(pickle.dumps(kept, protocol=5)),
                       copy.deepcopy(kept)):
            back = release(copied)
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(back, value)
            elif isinstance(value, torch.Tensor):
                assert torch.equal(back, value)
            elif isinstance(value, image.Image):
                assert back.tobytes() == value.tobytes()
            else:
                assert bytes(back) == bytes(value)
