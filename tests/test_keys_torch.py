"""Tests for infercache.keys.torch: a tensor's key covers what a function sees."""

from __future__ import annotations

import pytest
from keys_fixtures import all_distinct, k

from infercache.keys import UnhashableError, make_key

torch = pytest.importorskip("torch")


def test_layout_autograd_class_and_attributes_are_keyed() -> None:
    dense = torch.eye(3)
    tagged = torch.eye(3)
    tagged.source = "camera"
    assert len({make_key(v) for v in (
        dense, dense.to_sparse(), dense.clone().requires_grad_(True),
        torch.nn.Parameter(torch.eye(3)), tagged)}) == 5
    assert make_key(dense) == make_key(torch.eye(3))
    assert make_key(dense.to_sparse()) == make_key(torch.eye(3).to_sparse())


def test_tensors_whose_bytes_cannot_be_read_are_refused() -> None:
    with pytest.raises(UnhashableError):
        make_key(torch.empty(3, device="meta"))


def test_tensors_key_dtype_shape_values_and_autograd() -> None:
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    assert k(t) == k(t.clone())
    assert k(t.t()) == k(t.t().contiguous())
    assert all_distinct([t, t.to(torch.float64), t.reshape(4, 3), t + 1, t.numpy(),
                         t.to(torch.bfloat16), t.to(torch.float16)])
    b = t.to(torch.bfloat16)
    assert k(b) == k(b.clone())
    g = t.clone().requires_grad_(True)
    # A result computed from g carries autograd history, one from t does not.
    assert k(g) != k(t) and k(g) == k(t.clone().requires_grad_(True))
    assert k(torch.float32) != k(torch.float16)
    assert k(torch.device("cpu")) == k(torch.device("cpu"))


def test_a_tensor_whose_bytes_cannot_be_read_is_refused_naming_its_type_and_place() -> None:
    with pytest.raises(UnhashableError) as info:
        make_key({"w": torch.empty(3, device="meta")}, where="weights")
    err = info.value
    assert (err.where, err.path, err.type) == ("weights", "['w']", torch.Tensor)
    assert err.reason.startswith("its data cannot be read as bytes (")
