"""torch adapter: tensors by dtype, shape and bytes; dtypes and devices."""

from __future__ import annotations

import sys
from typing import Any

from .encoder import Encoder, _enc_str, _enc_tuple, _Fail, register_adapter
from .wire import T_TENSOR, T_TORCH_DEVICE, T_TORCH_DTYPE, _Sink, _write_buffer


@register_adapter
def _torch_builder(t: type) -> Encoder | None:
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    if issubclass(t, torch.Tensor):
        return _enc_tensor
    if t is torch.dtype:
        return lambda obj, out: (out.__iadd__(T_TORCH_DTYPE), _enc_str(str(obj), out))
    if t is torch.device:
        return lambda obj, out: (out.__iadd__(T_TORCH_DEVICE), _enc_str(str(obj), out))
    return None


def _enc_tensor(x: Any, out: _Sink) -> None:
    torch = sys.modules["torch"]
    try:
        x = x.detach()
        if x.layout != torch.strided:
            x = x.to_dense()
        x = x.resolve_conj().resolve_neg().cpu().contiguous()
        flat = x.reshape(-1).view(torch.uint8).numpy()
    except (RuntimeError, TypeError, NotImplementedError) as err:
        raise _Fail(type(x), f"its data cannot be read as bytes ({err})") from None
    out += T_TENSOR
    _enc_str(str(x.dtype), out)
    _enc_tuple(tuple(x.shape), out)
    _write_buffer(b"", memoryview(flat), out)

