"""PIL adapter: images by format, every frame's mode, size, palette, info and pixels.

``info`` (transparency, dpi, ICC profile, EXIF, text chunks...) is part of
an image's state and is keyed whole. An animated image is keyed by all of
its frames, not only the current one (its position is restored after).
Subclasses of ``PIL.Image.Image`` made outside PIL are refused: their own
attributes share the ``__dict__`` with PIL's internals.
"""

from __future__ import annotations

from typing import Any

from ..libraries import module_for
from ..reflect import package_of
from .encoder import (
    Encoder,
    enc_bytes,
    enc_dict,
    enc_str,
    enc_tuple,
    encode,
    register_adapter,
    unhashable,
)
from .wire import T_BYTES, T_NONE, T_PIL, Sink, varint, write_buffer


@register_adapter
def _pil_builder(t: type) -> Encoder | None:
    image = module_for(t, "PIL.Image")
    if image is None or not issubclass(t, image.Image):
        return None
    outside = next((c for c in t.__mro__ if c is not object and package_of(c) != "PIL"), None)
    if outside is not None:
        return unhashable(t, f"its class {outside.__qualname__} extends a PIL image outside PIL, "
                              f"and its attributes cannot be told apart from PIL's")
    return _enc_pil


def _enc_pil(im: Any, out: Sink) -> None:
    out += T_PIL
    encode(im.format, out)
    n = getattr(im, "n_frames", 1) if getattr(im, "is_animated", False) else 1
    out += varint(n)
    if n == 1:
        _write_frame(im, out)
        return
    current = im.tell()
    try:
        for i in range(n):
            im.seek(i)
            _write_frame(im, out)
    finally:
        im.seek(current)


def _write_frame(im: Any, out: Sink) -> None:
    im.load()
    enc_str(im.mode, out)
    enc_tuple(tuple(im.size), out)
    if im.palette is not None:
        enc_str(im.palette.mode, out)
        pal = im.getpalette(None)
        enc_bytes(bytes(pal or ()), out)
    else:
        out += T_NONE
    enc_dict(dict(im.info), out)
    write_buffer(T_BYTES, memoryview(im.tobytes()), out)
