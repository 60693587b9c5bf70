"""PIL adapter: images by mode, size, palette, transparency and pixels."""

from __future__ import annotations

import sys
from typing import Any

from .encoder import Encoder, _enc, _enc_bytes, _enc_str, _enc_tuple, register_adapter
from .wire import T_BYTES, T_NONE, T_PIL, _Sink, _write_buffer


@register_adapter
def _pil_builder(t: type) -> Encoder | None:
    image = sys.modules.get("PIL.Image")
    if image is None or not issubclass(t, image.Image):
        return None
    return _enc_pil


def _enc_pil(im: Any, out: _Sink) -> None:
    im.load()
    out += T_PIL
    _enc_str(im.mode, out)
    _enc_tuple(tuple(im.size), out)
    if im.palette is not None:
        _enc_str(im.palette.mode, out)
        pal = im.getpalette(None)
        _enc_bytes(bytes(pal or ()), out)
    else:
        out += T_NONE
    _enc(im.info.get("transparency"), out)
    _write_buffer(T_BYTES, memoryview(im.tobytes()), out)

