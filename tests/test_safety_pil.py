"""Tests for the PIL part of infercache.safety: hits share the kept pixels read-only.

Each released image is a new ``PIL.Image.Image`` over the kept pixels. Every
way a caller can write to it must leave the cached image intact and work on
the caller's image as it would on an ordinary one (the reference here: the
same operation on a plain copy of the original).
"""

from __future__ import annotations

import copy
import ctypes
import gc
import pickle
import weakref
from collections.abc import Callable
from typing import Any

import pytest

from infercache import cache
from infercache.safety import protect, release

Image = pytest.importorskip("PIL.Image")
ImageDraw = pytest.importorskip("PIL.ImageDraw")
ImageOps = pytest.importorskip("PIL.ImageOps")


def _source(mode: str = "RGB", size: tuple[int, int] = (64, 48)) -> Any:
    """An image whose every pixel differs from its neighbours (writes are visible)."""
    n = len(Image.new(mode, (1, 1)).tobytes())
    data = bytes((i * 37 + i // 7) % 251 for i in range(size[0] * size[1] * n))
    return Image.frombytes(mode, size, data)


def _state(im: Any) -> tuple[Any, ...]:
    return im.mode, im.size, im.tobytes(), im.getpalette(None), dict(im.info)


def _shares(a: Any, b: Any) -> bool:
    return a._im is b._im


def _draw(im: Any) -> None:
    ImageDraw.Draw(im).rectangle((2, 2, 20, 20), fill=(1, 2, 3) if im.mode == "RGB" else 9)


def _pixel_access(im: Any) -> None:
    pixels = im.load()
    pixels[3, 4] = (250, 1, 2) if im.mode == "RGB" else 7
    assert pixels[3, 4] == ((250, 1, 2) if im.mode == "RGB" else 7)


def _floodfill(im: Any) -> None:
    ImageDraw.floodfill(im, (0, 0), (9, 9, 9) if im.mode == "RGB" else 9, thresh=40)


def _frombytes(im: Any) -> None:
    im.frombytes(bytes(len(im.tobytes())))


def _putpalette(im: Any) -> None:
    im.putpalette(bytes(range(256)) * 3)


def _putalpha(im: Any) -> None:
    im.putalpha(128)


def _alpha_composite(im: Any) -> None:
    im.putalpha(255)
    im.alpha_composite(Image.new("RGBA", (10, 10), (255, 0, 0, 128)), (5, 5))


def _thumbnail(im: Any) -> None:
    im.thumbnail((16, 16))


def _paste(im: Any) -> None:
    im.paste((1, 2, 3) if im.mode == "RGB" else 1, (0, 0, 10, 10))


def _putpixel(im: Any) -> None:
    im.putpixel((1, 1), (7, 8, 9) if im.mode == "RGB" else 7)


def _putdata(im: Any) -> None:
    im.putdata([(5, 5, 5) if im.mode == "RGB" else 5] * 20)


def _exif_transpose(im: Any) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate
    im.info["exif"] = exif.tobytes()
    ImageOps.exif_transpose(im, in_place=True)


WRITERS: dict[str, tuple[Callable[[Any], None], tuple[str, ...]]] = {
    "paste": (_paste, ("RGB", "L")),
    "putpixel": (_putpixel, ("RGB", "L")),
    "putdata": (_putdata, ("RGB", "L")),
    "putalpha": (_putalpha, ("RGB", "L")),
    "alpha_composite": (_alpha_composite, ("RGB",)),
    "ImageDraw": (_draw, ("RGB", "L")),
    "thumbnail": (_thumbnail, ("RGB", "L")),
    "exif_transpose": (_exif_transpose, ("RGB",)),
    "frombytes": (_frombytes, ("RGB", "L")),
    "putpalette": (_putpalette, ("L",)),
    "load_pixel_access": (_pixel_access, ("RGB", "L")),
    "floodfill": (_floodfill, ("RGB", "L")),
}
CASES = [(name, mode) for name, (_, modes) in WRITERS.items() for mode in modes]


@pytest.mark.parametrize(("writer", "mode"), CASES, ids=[f"{w}-{m}" for w, m in CASES])
def test_a_write_to_a_hit_leaves_the_cache_intact_and_works_as_on_an_ordinary_image(writer: str, mode: str) -> None:
    write = WRITERS[writer][0]
    original = _source(mode)
    expected_cached = _state(original)
    kept = protect(original)
    hit = release(kept)
    assert type(hit) is Image.Image and _shares(hit, kept.v)  # the pixels are shared, not copied

    ordinary = original.copy()
    write(ordinary)
    write(hit)

    assert _state(hit) == _state(ordinary)  # the caller's write worked
    assert _state(kept.v) == expected_cached  # the cache did not see it
    assert _state(release(kept)) == expected_cached
    assert _state(original) == expected_cached


def test_a_pixel_access_taken_before_another_write_sees_that_write() -> None:
    kept = protect(_source())
    hit = release(kept)
    pixels = hit.load()
    hit.paste((1, 2, 3), (0, 0, 4, 4))  # Pillow copies the shared pixels here
    assert pixels[0, 0] == (1, 2, 3)
    pixels[5, 5] = (4, 5, 6)
    assert hit.getpixel((5, 5)) == (4, 5, 6)
    assert release(kept).getpixel((0, 0)) == _source().getpixel((0, 0))


def test_a_dirty_palette_is_never_written_into_the_shared_pixels() -> None:
    ImagePalette = pytest.importorskip("PIL.ImagePalette")
    kept = protect(_source("L"))
    hit = release(kept)
    hit._mode = "P"  # what putpalette does before load() installs the palette
    hit.palette = ImagePalette.ImagePalette("RGB", bytes(range(256)) * 3)
    hit.palette.dirty = 1
    hit.load()
    assert hit.mode == "P" and hit.getpalette()[:6] == [0, 1, 2, 3, 4, 5]
    assert kept.v.im.mode == "L"  # load() would have turned the shared core into a P image
    assert _state(release(kept)) == _state(_source("L"))


def _capsule_pointer(capsule: Any) -> int:
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype = ctypes.c_void_p
    get.argtypes = [ctypes.py_object, ctypes.c_char_p]
    return int(get(capsule, b"Pillow Imaging"))


def test_getim_hands_c_code_pixels_of_the_callers_own() -> None:
    """``getim()`` gives C code (``ImageCms.applyTransform(..., inPlace=True)``)
    a writable pointer: it must not point into the cached pixels."""
    kept = protect(_source())
    hit = release(kept)
    assert _capsule_pointer(hit.getim()) != _capsule_pointer(kept.v.getim())
    assert _state(hit) == _state(kept.v)


@pytest.mark.parametrize("mode", ["P", "PA"])
def test_palette_images_are_copied_per_caller(mode: str) -> None:
    original = _source("L").convert(mode) if mode == "P" else _source("LA").convert("PA")
    kept = protect(original)
    hit = release(kept)
    assert not _shares(hit, kept.v)
    hit.putpalette(bytes(range(255, -1, -1)) * 3)
    hit.apply_transparency()
    assert _state(release(kept)) == _state(original)


def test_info_holding_mutable_values_is_the_callers_own() -> None:
    original = _source()
    original.info["tags"] = ["a"]
    kept = protect(original)
    hit = release(kept)
    assert _shares(hit, kept.v)
    hit.info["tags"].append("b")
    hit.info["dpi"] = (1, 1)
    assert release(kept).info == {"tags": ["a"]}


def test_a_palette_image_with_mutable_info_is_copied_with_info_of_its_own() -> None:
    original = _source("L").convert("P")
    original.info["tags"] = ["a"]
    kept = protect(original)
    hit = release(kept)
    assert not _shares(hit, kept.v)
    assert _state(hit) == _state(original)
    assert hit.info == original.info and hit.info["tags"] is not original.info["tags"]
    hit.info["tags"].append("b")
    assert release(kept).info == {"tags": ["a"]}


def test_a_hit_keeps_its_mode_size_and_flags_to_itself() -> None:
    kept = protect(_source())
    hit = release(kept)
    hit.readonly = 0  # only this image's flag: the next caller still gets a read-only image
    hit.info["x"] = 1
    other = release(kept)
    assert other.readonly and other.info == {}
    hit.close()
    assert release(kept).getpixel((0, 0)) == _source().getpixel((0, 0))


def test_copies_and_pickles_of_a_hit_are_ordinary_images() -> None:
    kept = protect(_source())
    for twin in (release(kept).copy(), copy.copy(release(kept)), copy.deepcopy(release(kept)),
                 pickle.loads(pickle.dumps(release(kept)))):
        assert type(twin) is Image.Image and not twin.readonly
        assert _state(twin) == _state(kept.v)
        twin.frombytes(bytes(len(twin.tobytes())))
    assert _state(release(kept)) == _state(_source())


def test_a_hit_is_freed_without_waiting_for_the_garbage_collector() -> None:
    kept = protect(_source())
    hit = release(kept)
    ref = weakref.ref(hit)
    gc.disable()
    try:
        del hit
        assert ref() is None
    finally:
        gc.enable()


def test_a_method_taken_from_a_dead_hit_refuses_to_run() -> None:
    kept = protect(_source())
    hit = release(kept)
    frombytes = hit.frombytes
    del hit
    with pytest.raises(ReferenceError, match=r"^the image this method belonged to no longer exists$"):
        frombytes(b"")


def test_frombytes_on_a_hit_decodes_with_the_decoder_named_by_keyword() -> None:
    original = Image.new("1", (8, 2))
    kept = protect(original)
    hit = release(kept)
    hit.frombytes(b"0xff,0x00", decoder_name="xbm")  # XBM text: a row of ones, a row of zeros
    assert hit.tobytes() == b"\xff\x00"
    assert _state(release(kept)) == _state(original)


def test_cached_function_hits_share_pixels_and_stay_intact(tmp_path: Any) -> None:
    calls = []

    @cache
    def enhance(scale: int) -> Any:
        calls.append(scale)
        return _source(size=(300, 200))

    first = enhance(2)
    hit = enhance(2)
    assert len(calls) == 1
    assert hit is not first and hit.readonly
    hit.frombytes(bytes(len(hit.tobytes())))
    ImageDraw.Draw(first).rectangle((0, 0, 50, 50), fill=(0, 0, 0))
    again = enhance(2)
    assert again.tobytes() == _source(size=(300, 200)).tobytes()
