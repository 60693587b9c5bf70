"""torch adapter: tensors by class, dtype, shape, device, layout, autograd flag,
dimension names, attributes set on them, and bytes; dtypes and devices.

The device is part of a tensor's content: a function returns its result on
the device of its input, so equal values on ``cpu`` and ``cuda`` differ.
Quantized and meta tensors, whose bytes cannot be read, are refused.
"""

from __future__ import annotations

from typing import Any

from ..libraries import module, module_for
from .encoder import (
    Encoder,
    Unencodable,
    enc_bool,
    enc_dict,
    enc_str,
    enc_tuple,
    encode,
    register_adapter,
    type_name_bytes,
)
from .wire import (
    T_DICT,
    T_NONE,
    T_TENSOR,
    T_TORCH_DEVICE,
    T_TORCH_DTYPE,
    Sink,
    new_sink,
    varint,
    write_buffer,
)


@register_adapter
def _torch_builder(t: type) -> Encoder | None:
    torch = module_for(t, "torch")
    if torch is None:
        return None
    if issubclass(t, torch.Tensor):
        head = T_TENSOR + type_name_bytes(t)

        def enc_tensor(x: Any, out: Sink) -> None:
            _write_tensor(head, x, out)
        return enc_tensor
    if t is torch.dtype:
        return _enc_torch_dtype
    if t is torch.device:
        return _enc_torch_device
    return None


def _enc_torch_dtype(obj: Any, out: Sink) -> None:
    out += T_TORCH_DTYPE
    enc_str(str(obj), out)  # "torch.float32": the dtype's canonical name


def _enc_torch_device(obj: Any, out: Sink) -> None:
    out += T_TORCH_DEVICE
    enc_str(str(obj), out)  # "cuda:0": type and index


_NO_ATTRS = T_DICT + varint(0)  # what enc_dict writes for {}
# (dtype, device, layout, requires_grad) -> their encoding, built once per combination.
_META: dict[tuple[Any, ...], bytes] = {}


def _meta(x: Any) -> bytes:
    k = (x.dtype, x.device, x.layout, x.requires_grad)
    b = _META.get(k)
    if b is None:
        out = new_sink("blake3")
        enc_str(str(x.dtype), out)
        enc_str(str(x.device), out)
        enc_str(str(x.layout), out)
        enc_bool(bool(x.requires_grad), out)
        b = _META[k] = bytes(out)
    return b


def _write_tensor(head: bytes, x: Any, out: Sink) -> None:
    torch = module("torch")
    t = type(x)
    meta = _meta(x)
    names = getattr(x, "names", None)
    if names is not None and all(n is None for n in names):
        names = None
    attrs = getattr(x, "__dict__", None)
    try:
        x = x.detach()
        if x.layout != torch.strided:
            x = x.to_dense()
        x = x.resolve_conj().resolve_neg().cpu().contiguous()
        flat = x.reshape(-1).view(torch.uint8).numpy()
    except (RuntimeError, TypeError, NotImplementedError) as err:
        raise Unencodable(t, f"its data cannot be read as bytes ({err})") from None
    out += head
    out += meta
    enc_tuple(tuple(x.shape), out)
    if names is None:
        out += T_NONE
    else:
        encode(names, out)
    if attrs:
        enc_dict(dict(attrs), out)
    else:
        out += _NO_ATTRS
    write_buffer(b"", memoryview(flat), out)
