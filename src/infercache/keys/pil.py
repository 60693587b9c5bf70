"""PIL adapter: images by format, every frame's mode, size, palette, info and pixels.

``info`` (transparency, dpi, ICC profile, EXIF, text chunks...) is part of
an image's state and is keyed whole. An animated image is keyed by all of
its frames, not only the current one (its position is restored after).
Subclasses of ``PIL.Image.Image`` made outside PIL are refused: their own
attributes share the ``__dict__`` with PIL's internals.

Pixels are keyed as the bytes ``tobytes()`` gives for the mode, except RGB,
keyed as ``tobytes("raw", "XRGB")`` (a zero byte, then red, green, blue).
Pillow stores an RGB pixel in 4 bytes whose fourth byte is padding, and its
value depends on how the image was made (0 after ``Image.new`` or
``resize``, 255 after ``fromarray`` or decoding), so the padding must never
reach the key; XRGB can be made from that storage with one shift per pixel
instead of Pillow's repacking to 3 bytes, and hashes faster in total.

An RGB image of more than :data:`PART` XRGB bytes (a 1024x1024 image and
larger) is keyed by parts: its XRGB bytes cut into parts of ``PART`` bytes,
each hashed on its own with the cache's digest, and the key holds the
parts' digests (``T_PARTS``, the byte count, the digests in order). The
parts are shifted and hashed on several threads, each on its own core, or
one after the other, whichever was faster of late (:data:`_cost`): a shift
made on one core and hashed by BLAKE3's threads on another costs more than
one thread does (the shifted bytes cross between the cores' caches), while
a part shifted and hashed by the same thread does not.

Large images are read from Pillow's own storage when Pillow exports it
(Arrow C data interface, Pillow 11.2+; images in one memory block): modes
whose storage *is* their ``tobytes()`` (:data:`_STORAGE_BYTES`) without any
copy, RGB through a small scratch buffer per thread (numpy, when the program
has imported it). Other images, and every image when the export is
unavailable, stream Pillow's encoder into the hasher chunk by chunk. Both
ways give the same key.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import blake3 as _blake3

from ..libraries import loaded, module_for
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
from .wire import (
    BIG,
    NATIVE_BIG_ENDIAN,
    T_BYTES,
    T_NONE,
    T_PARTS,
    T_PIL,
    Hasher,
    Sink,
    feed,
    new_hasher,
    varint,
    write_buffer,
)

#: Modes whose storage holds exactly ``tobytes()`` (bytes per pixel): no padding, no bit packing.
_STORAGE_BYTES: dict[str, int] = {
    "L": 1,
    "P": 1,
    "I;16": 2,
    "I;16L": 2,
    "I;16B": 2,
    "I": 4,
    "F": 4,
    "RGBA": 4,
    "RGBa": 4,
    "RGBX": 4,
    "CMYK": 4,
}
PART = 1 << 22
"""XRGB bytes per part of a large RGB image's key (1 Mi pixels): part of the key format."""
_PART_PIXELS = PART // 4
#: Pixels shifted per step: 1 MiB of scratch, small enough to stay in the CPU cache
#: between the shift and the hash.
_STEP_PIXELS = 1 << 18
#: Seconds per byte of the RGB pixels hashed by parts one after the other (False)
#: and on several threads (True), as moving averages. Threads pay only while
#: another core is idle, so the way faster of late is used and the other one
#: retried every :data:`_RETRY`-th image. The key does not depend on it.
_cost: dict[bool, float] = {False: 0.0, True: 0.0}
_RETRY = 16
_images = itertools.count()
#: Below this many pixel bytes, ``tobytes()`` costs less than reaching the storage.
_STORAGE_MIN = 1 << 16

#: Each thread's scratch buffer (1 MiB), made on its first RGB image.
_local = threading.local()
#: The threads hashing parts: (the process that made them, the pool). A forked
#: child has none of its parent's threads, so it makes its own pool.
_pool: tuple[int, ThreadPoolExecutor] | None = None
_pool_lock = threading.Lock()


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
    write_pixels(im, out, from_storage=True)


def write_pixels(im: Any, out: Sink, *, from_storage: bool) -> None:
    """The pixels of ``im`` (loaded) as a ``T_BYTES`` piece: from Pillow's storage
    when ``from_storage`` and it is reachable, else through Pillow's encoder.

    Both ways write the same bytes (the tests compare them for every mode).
    """
    mode = im.mode
    width, height = im.size
    if mode == "RGB":
        n = width * height * 4
        if n > PART:
            out += T_PARTS + varint(n)
            digests = _rgb_parts_from_storage(im, n, out.alg) if from_storage else None
            out += digests if digests is not None else _stream_parts(im, out.alg)
            return
        out += T_BYTES + varint(n)
        if n <= BIG:
            out += im.tobytes("raw", "XRGB")
        elif not (from_storage and n >= _STORAGE_MIN and _rgb_from_storage(im, n, out)):
            _stream(im, "XRGB", out)
        return
    size = _STORAGE_BYTES.get(mode)
    if size is None:
        write_buffer(T_BYTES, memoryview(im.tobytes()), out)
        return
    n = width * height * size
    out += T_BYTES + varint(n)
    if n <= BIG:
        out += im.tobytes()
    elif not (from_storage and n >= _STORAGE_MIN and _plain_from_storage(im, n, out)):
        _stream(im, mode, out)


def _raw_chunks(im: Any, rawmode: str) -> Iterator[bytes]:
    """Pillow's raw encoder's output for ``im`` in ``rawmode``, chunk by chunk (no joined copy)."""
    pil = module_for(type(im), "PIL.Image") or loaded("PIL.Image")
    if pil is None:  # pragma: no cover - an image without its module
        yield im.tobytes("raw", rawmode)
        return
    encoder = pil._getencoder(im.mode, "raw", rawmode)
    encoder.setimage(im.im, (0, 0, *im.size))
    bufsize = max(1 << 16, im.size[0] * 4)
    while True:
        _, status, data = encoder.encode(bufsize)
        yield data
        if status:
            break
    if status < 0:
        raise RuntimeError(f"Pillow's raw encoder failed ({status}) on a {im.mode} image")


def _stream(im: Any, rawmode: str, out: Sink) -> None:
    """Pillow's raw encoder into the hasher."""
    for data in _raw_chunks(im, rawmode):
        feed(out, data)


def _part_hasher(alg: str) -> Hasher:
    # One thread per part: the parts themselves are what runs on several cores.
    return _blake3.blake3(max_threads=1) if alg == "blake3" else new_hasher(alg)


def _stream_parts(im: Any, alg: str) -> bytes:
    """The parts' digests (see the module's docstring) from Pillow's encoder."""
    digests = bytearray()
    hasher, filled = _part_hasher(alg), 0
    for data in _raw_chunks(im, "XRGB"):
        view = memoryview(data)
        while view:
            take = min(len(view), PART - filled)
            hasher.update(view[:take])
            view, filled = view[take:], filled + take
            if filled == PART:
                digests += hasher.digest()
                hasher, filled = _part_hasher(alg), 0
    if filled:
        digests += hasher.digest()
    return bytes(digests)


def _plain_from_storage(im: Any, n: int, out: Sink) -> bool:
    found = _storage(im, n)
    if found is None:
        return False
    keep_alive, view = found
    feed(out, view)
    del keep_alive
    return True


def _rgb_storage(im: Any, n: int) -> tuple[Any, Any, Any] | None:
    """``(numpy, capsule, pixels)``: an RGB image's storage as one native uint32 per pixel,
    valid while ``capsule`` is alive; None without numpy loaded or a reachable storage."""
    np = loaded("numpy")
    if np is None:
        return None
    found = _storage(im, n)
    if found is None:
        return None
    capsule, view = found
    return np, capsule, np.frombuffer(view, dtype=np.uint32)


def _rgb_from_storage(im: Any, n: int, out: Sink) -> bool:
    """An RGB image of at most one part: its XRGB bytes from the storage into ``out``'s hasher."""
    found = _rgb_storage(im, n)
    if found is None:
        return False
    np, keep_alive, pixels = found
    if out.hasher is None:
        out.hasher = _part_hasher(out.alg)  # feed() adds what `out` holds
    _shift_into(np, pixels, _Feeding(out))
    del keep_alive
    return True


def _rgb_parts_from_storage(im: Any, n: int, alg: str) -> bytes | None:
    """The parts' digests (see the module's docstring) from Pillow's storage; None when unreachable."""
    found = _rgb_storage(im, n)
    if found is None:
        return None
    np, keep_alive, pixels = found

    def part(start: int) -> bytes:
        hasher = _part_hasher(alg)
        _shift_into(np, pixels[start : start + _PART_PIXELS], hasher)
        return hasher.digest()

    starts = range(0, n // 4, _PART_PIXELS)
    threads = _use_threads()
    pool = _threads() if threads else None  # made before the clock starts: once per process
    started = time.perf_counter()
    if pool is not None:
        later = [pool.submit(part, start) for start in starts[1:]]
        first = part(0)  # this thread takes a part too
        digests = b"".join([first, *(f.result() for f in later)])
    else:
        digests = b"".join([part(start) for start in starts])
    del keep_alive
    cost = (time.perf_counter() - started) / n
    _cost[threads] = 0.75 * _cost[threads] + 0.25 * cost if _cost[threads] else cost
    return digests


class _Feeding:
    """``update`` that goes through :func:`feed` (what ``out`` gathered goes first)."""

    __slots__ = ("out",)

    def __init__(self, out: Sink) -> None:
        self.out = out

    def update(self, data: Any) -> None:
        feed(self.out, data)


def _shift_into(np: Any, pixels: Any, hasher: Any) -> None:
    """``pixels`` (RGB storage, one native uint32 each) as XRGB into ``hasher``, in steps through
    this thread's scratch buffer."""
    scratch = getattr(_local, "scratch", None)
    if scratch is None:
        scratch = _local.scratch = np.empty(_STEP_PIXELS, dtype=np.uint32)
    # Storage bytes R, G, B, pad as one native integer: shifting the pad out
    # (towards the high end on little-endian, the low end on big-endian) leaves 0, R, G, B.
    shift = np.right_shift if NATIVE_BIG_ENDIAN else np.left_shift
    as_bytes = scratch.view(np.uint8)
    total = len(pixels)
    for start in range(0, total, _STEP_PIXELS):
        stop = min(total, start + _STEP_PIXELS)
        shift(pixels[start:stop], 8, out=scratch[: stop - start])
        hasher.update(as_bytes[: 4 * (stop - start)])


def _threads() -> ThreadPoolExecutor:
    """The pool of threads hashing parts (one per core), made on first use in each process."""
    global _pool
    pid = os.getpid()
    pool = _pool
    if pool is None or pool[0] != pid:
        with _pool_lock:
            if _pool is None or _pool[0] != pid:
                workers = max(1, (os.cpu_count() or 2) - 1)  # the caller's thread takes a part too
                _pool = (pid, ThreadPoolExecutor(workers, thread_name_prefix="infercache-pil"))
            pool = _pool
    return pool[1]


def _use_threads() -> bool:
    """Whether to hash the next large RGB image's parts on several threads (see :data:`_cost`)."""
    single, threaded = _cost[False], _cost[True]
    if not threaded or not single:
        return not threaded  # each way measured once first
    faster = threaded < single
    return not faster if next(_images) % _RETRY == 0 else faster


# ---------------------------------------------------------------- Pillow's storage


def _storage(im: Any, n: int) -> tuple[Any, memoryview] | None:
    """``(capsule, view)``: the ``n`` bytes of ``im``'s pixel storage, without a
    copy, while ``capsule`` is alive; ``None`` when Pillow does not export them
    in one block (older Pillow, images in several blocks, unusual layouts)."""
    core = im.im
    # Images over memory Pillow did not allocate (frombuffer, fromarrow, memory-mapped
    # files) are read-only cores without blocks, and Pillow 12 crashes exporting them.
    if core.readonly:
        return None
    export = getattr(core, "__arrow_c_array__", None)
    if export is None:
        return None
    try:
        schema = core.__arrow_c_schema__()
        capsule = export()
    except (AttributeError, ValueError, OSError, MemoryError):  # several blocks, no Arrow form
        return None
    address = _data_address(schema, capsule, im.size[0] * im.size[1], n)
    if address is None:
        return None
    import ctypes  # imported on first use: a program without large images never needs it

    view = memoryview((ctypes.c_ubyte * n).from_address(address)).cast("B")
    return capsule, view


_arrow: Any = None


def _arrow_struct() -> Any:
    """The ArrowArray struct of the Arrow C data interface, and the capsule reader."""
    global _arrow
    if _arrow is None:
        import ctypes

        class ArrowArray(ctypes.Structure):
            pass

        class ArrowSchema(ctypes.Structure):
            _fields_ = [("format", ctypes.c_char_p)]  # the first field is all that is read

        ArrowArray._fields_ = [
            ("length", ctypes.c_int64),
            ("null_count", ctypes.c_int64),
            ("offset", ctypes.c_int64),
            ("n_buffers", ctypes.c_int64),
            ("n_children", ctypes.c_int64),
            ("buffers", ctypes.POINTER(ctypes.c_void_p)),
            ("children", ctypes.POINTER(ctypes.POINTER(ArrowArray))),
            ("dictionary", ctypes.c_void_p),
            ("release", ctypes.c_void_p),
            ("private_data", ctypes.c_void_p),
        ]
        get = ctypes.pythonapi.PyCapsule_GetPointer
        get.restype = ctypes.c_void_p
        get.argtypes = [ctypes.py_object, ctypes.c_char_p]
        _arrow = (ArrowSchema, ArrowArray, get)
    return _arrow


def _data_address(schema: Any, capsule: Any, pixels: int, n: int) -> int | None:
    """Address of the one data buffer of Pillow's export when it holds exactly
    ``pixels`` pixels in ``n`` bytes from its start, else ``None``."""
    try:
        schema_type, array_type, get = _arrow_struct()
        schema_pointer = get(schema, b"arrow_schema")
        pointer = get(capsule, b"arrow_array")
    except (AttributeError, ValueError, TypeError, OSError):  # no ctypes.pythonapi, another capsule
        return None
    if not pointer or not schema_pointer:
        return None
    width = _ELEMENT_BYTES.get(schema_type.from_address(schema_pointer).format or b"")
    if width is None or pixels * width != n:
        return None
    array = array_type.from_address(pointer)
    if array.length != pixels or array.offset != 0:
        return None
    if array.n_children == 1:  # 4 bytes per pixel: a fixed-size list of 4 uint8
        if array.n_buffers != 1:
            return None
        array = array.children[0].contents
        if array.length != n or array.offset != 0:
            return None
    elif array.n_children != 0:
        return None
    if array.n_buffers != 2:
        return None
    address: int | None = array.buffers[1]
    return address or None


#: Bytes per pixel of the Arrow formats Pillow exports (a multi-band pixel is 4 uint8).
_ELEMENT_BYTES = {b"C": 1, b"c": 1, b"s": 2, b"S": 2, b"i": 4, b"I": 4, b"f": 4, b"+w:4": 4}
