"""Mutation safety of numpy hits: each caller gets an array object of its own.

A read-only array still has metadata a caller may set (``shape``, ``dtype``,
``strides``, ``flags``); when every hit was the same object, one caller's
``hit.shape = (3, 2)`` changed what every later caller saw.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from typing import Any

import pytest

import infercache as ic
from infercache.safety import protect, release

np = pytest.importorskip("numpy")


def _reshape(a):
    a.shape = (a.size,) if a.ndim != 1 else (1, a.size)


def _retype(a):
    a.dtype = np.uint8  # same buffer, other element type: allowed on read-only arrays


def _restride(a):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        a.strides = (0,) * a.ndim


def _flag(a):
    a.flags.writeable = False
    a.flags.aligned = False


METADATA_MUTATIONS = {
    "shape": _reshape,
    "dtype": _retype,
    "strides": _restride,
    "flags": _flag,
}


@pytest.mark.parametrize("mutation", list(METADATA_MUTATIONS))
def test_setting_an_array_hits_metadata_does_not_change_later_hits(mutation):
    value = np.arange(6, dtype=np.int64).reshape(2, 3)
    kept = protect(value)
    hit = release(kept)
    try:
        METADATA_MUTATIONS[mutation](hit)
    except (AttributeError, ValueError):
        pass  # a numpy that refuses this mutation on read-only arrays: nothing leaked
    again = release(kept)
    assert again.shape == (2, 3) and again.dtype == np.int64
    assert again.strides == (24, 8) and again.flags.aligned
    assert (again == value).all()


def test_array_hits_inside_containers_and_object_arrays_are_per_caller():
    inner = np.empty(1, dtype=object)
    inner[0] = np.arange(4)
    value = {"a": np.arange(4), "l": [np.arange(4)], "t": (np.arange(4), "x"), "o": inner}
    kept = protect(value)
    hit = release(kept)
    for a in (hit["a"], hit["l"][0], hit["t"][0], hit["o"][0]):
        a.shape = (2, 2)
        a.dtype = np.int32
    again = release(kept)
    for a in (again["a"], again["l"][0], again["t"][0], again["o"][0]):
        assert a.shape == (4,) and a.dtype == np.int64


def test_cached_function_hit_metadata_does_not_leak_to_the_next_caller():
    calls = []

    @ic.cache
    def embed(text):
        calls.append(text)
        return np.arange(6, dtype=np.float64)

    first = embed("a")
    first.shape = (3, 2)
    first.dtype = np.int64
    hit = embed("a")
    hit.shape = (2, 3)
    nested_hit = embed("a")
    assert calls == ["a"]
    assert nested_hit.shape == (6,) and nested_hit.dtype == np.float64
    assert list(nested_hit) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def test_cached_function_arrays_inside_a_dict_are_per_caller():
    @ic.cache
    def features(x):
        return {"emb": np.ones(4), "layers": [np.zeros((2, 2))]}

    features(1)  # the miss: the caller gets the function's own result
    hit = features(1)
    hit["emb"].shape = (2, 2)
    hit["layers"][0].dtype = np.int64
    again = features(1)
    assert again["emb"].shape == (4,) and again["layers"][0].dtype == np.float64


def test_manual_cache_get_arrays_are_per_caller():
    c = ic.Cache()
    c.set("k", arr=np.arange(4), more=[np.arange(2)])
    got = c.get("k")
    got["arr"].shape = (2, 2)
    got["more"][0].dtype = np.int32
    again = c.get("k")
    assert again["arr"].shape == (4,) and again["more"][0].dtype == np.int64


def test_array_hit_base_is_immutable_bytes():
    # Nothing shared sits behind a hit: no shared array whose metadata could be
    # set through hit.base, no buffer that could be made writeable.
    kept = protect(np.arange(10.0).reshape(2, 5)[:, 1:])
    hit = release(kept)
    assert type(hit.base) is bytes
    with pytest.raises(ValueError):
        hit.flags.writeable = True
    with pytest.raises(ValueError, match="read-only"):
        hit[0, 0] = 1.0


def test_a_cached_array_cannot_be_made_writeable_through_its_base():
    @ic.cache
    def zeros(k):
        return np.zeros(3)

    zeros(1)
    hit = zeros(1)
    try:
        hit.base.flags.writeable = True
        hit.base[0] = 42.0
    except (ValueError, AttributeError):
        pass
    assert zeros(1).tolist() == [0.0, 0.0, 0.0]


def test_structured_dtype_field_names_are_per_caller():
    # A structured dtype's ``names`` can be reassigned in place: a shared dtype
    # object would rename the fields for every later caller.
    value = np.zeros(2, dtype=[("a", "i4"), ("b", "f8")])
    kept = protect(value)
    hit = release(kept)
    hit.dtype.names = ("x", "y")
    assert release(kept).dtype.names == ("a", "b")
    dt_kept = protect(np.dtype([("a", "i4")]))
    release(dt_kept).names = ("z",)
    assert release(dt_kept).names == ("a",)


def test_dtype_metadata_is_per_caller():
    dt = np.dtype(np.float64, metadata={"unit": ["m"]})
    kept = protect(np.zeros(3, dtype=dt))
    release(kept).dtype.metadata["unit"].append("s")
    assert release(kept).dtype.metadata == {"unit": ["m"]}


def test_plain_dtypes_and_numpy_scalars_are_shared():
    dt = np.dtype("float32")
    assert release(protect(dt)) is dt
    for scalar in (np.float64(1.5), np.int8(3), np.datetime64("2024-01-01"), np.str_("a")):
        assert release(protect(scalar)) is scalar
    with pytest.raises(AttributeError):
        np.float64(1.0).shape = (1,)  # numpy scalars have no settable metadata


def test_structured_scalar_is_copied():
    row = np.zeros(2, dtype=[("a", "i4")])[0]  # np.void: a view into its array
    kept = protect(row)
    hit = release(kept)
    hit["a"] = 7
    assert release(kept)["a"] == 0


def test_empty_and_zero_dim_arrays():
    for value in (np.empty((0, 3)), np.array(2.0), np.zeros(4, dtype="V0")):
        kept = protect(value)
        hit = release(kept)
        assert hit.shape == value.shape and hit.dtype == value.dtype
        hit.shape = hit.shape  # settable, on the caller's own object
        assert release(kept) is not hit


def test_torch_from_numpy_on_a_hit_warns_that_writing_is_undefined():
    # torch has no read-only tensors: torch.from_numpy shares the hit's memory
    # and only warns. The copying constructors are the safe way.
    torch = pytest.importorskip("torch")
    kept = protect(np.zeros(3, dtype=np.float32))
    hit = release(kept)
    with pytest.warns(UserWarning, match="not writable"):
        shared = torch.from_numpy(hit)
    assert shared.data_ptr() == hit.ctypes.data  # the kept memory itself: do not write
    own = torch.tensor(release(kept))
    own.add_(1)
    assert (release(kept) == 0).all()


def test_the_first_array_a_process_keeps_comes_back_as_a_read_only_array():
    code = (
        "import numpy as np; from infercache.safety import protect, release\n"
        "a = release(protect(np.arange(3))); print(type(a).__name__, a.sum(), a.flags.writeable)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ndarray", "3", "False"]

    # Here too, with a type this process has not classified yet: a mutation run
    # only knows the calls a test makes in its own process.
    class Fresh(np.ndarray):
        pass

    again = release(protect(np.arange(3).view(Fresh)))
    assert type(again) is Fresh and again.tolist() == [0, 1, 2]


# A value that cannot be replayed, reached only through an object array (of a subclass,
# or in a record's field) inside a user object: each built in a process where numpy is
# imported but no array has been kept yet.
_HIDDEN_ITERATORS = {
    "object array": "np.array([iter([1, 2]), 3], dtype=object)",
    "object array in a dict": "{'scores': np.array([(x for x in 'ab'), 3], dtype=object)}",
    "masked object array, the iterator masked": (
        "np.ma.masked_array(np.array([iter([1]), 3], dtype=object), mask=[True, False])"
    ),
    "record with an object field": "np.array([(iter([1]), 1)], dtype=[('item', object), ('n', 'i4')])",
}


@pytest.mark.parametrize("made", _HIDDEN_ITERATORS.values(), ids=list(_HIDDEN_ITERATORS))
def test_an_iterator_inside_an_object_array_inside_an_object_is_refused_in_a_fresh_process(made: str) -> None:
    code = (
        "import numpy as np\nfrom infercache.safety import protect\n"
        "class Holder:\n    def __init__(self, item): self.item = item\n"
        f"try:\n    protect(Holder({made}))\nexcept TypeError as exc:\n    print('refused:', exc)\n"
        "else:\n    print('kept')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("refused:") and "cannot be cached" in out.stdout, out.stdout
    # And here, where arrays have been classified long since: the same answer.
    with pytest.raises(TypeError, match="cannot be cached"):
        protect(Holder(eval(made, {"np": np})))  # noqa: S307 - the literals above


class TaggedFloat(np.float64):
    """A numpy scalar subclass whose instances carry attributes of their own."""


class TaggedText(np.str_):
    pass


class Measured(np.float64):
    """A numpy scalar subclass whose own constructor takes more than the value."""

    def __new__(cls, value: float, unit: str) -> Any:
        made = super().__new__(cls, value)
        made.unit = unit
        return made


class Holder:
    def __init__(self, item: object) -> None:
        self.item = item


@pytest.mark.parametrize("where", ["alone", "in a list", "in an object", "through a record"])
@pytest.mark.parametrize(
    "make",
    [lambda: TaggedFloat(1.5), lambda: TaggedText("abc"), lambda: Measured(2.5, "m")],
    ids=["float64", "str_", "own constructor"],
)
def test_numpy_scalars_with_attributes_are_copied_for_each_caller(where: str, make: Any) -> None:
    """``copy.deepcopy`` returns a numpy scalar itself: a subclass's attributes would be shared
    by the producer, the cache and every caller unless copied by a rule of their own."""
    import pickle

    produced = make()
    produced.tags = ["kept"]
    value = {"alone": produced, "in a list": [produced], "in an object": Holder(produced)}.get(where, produced)
    kept = protect(value)
    if where == "through a record":
        kept = pickle.loads(pickle.dumps(kept, protocol=5))

    def scalar_of(released: object) -> Any:
        return released[0] if where == "in a list" else released.item if where == "in an object" else released

    produced.tags.append("changed by the producer")
    first = scalar_of(release(kept))
    assert type(first) is type(produced) and first == produced and first.tags == ["kept"]
    first.tags.append("changed by a caller")
    second = scalar_of(release(kept))
    assert second.tags == ["kept"] and second is not first


def test_a_cached_numpy_scalar_with_attributes_is_not_changed_by_a_caller() -> None:
    @ic.cache
    def score(x: float) -> TaggedFloat:
        out = TaggedFloat(x * 2)
        out.tags = ["computed"]
        return out

    score(1.0).tags.append("caller")
    assert score(1.0).tags == ["computed"]
