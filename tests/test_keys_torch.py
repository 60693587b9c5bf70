"""Tests for infercache.keys.torch: a tensor's key covers what a function sees."""

from __future__ import annotations

import pytest

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
