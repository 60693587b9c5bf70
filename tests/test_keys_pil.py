"""Tests for infercache.keys.pil: an image's whole state (mode, size, pixels, palette, info, every frame)."""

from __future__ import annotations

import io

import pytest
from keys_fixtures import all_distinct, k

from infercache.keys import UnhashableError, make_key

Image = pytest.importorskip("PIL.Image")


def _gif(second_frame_value: int) -> Image.Image:
    frames = [Image.new("L", (4, 4), 10), Image.new("L", (4, 4), second_frame_value)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    buf.seek(0)
    return Image.open(buf)


def test_image_info_is_part_of_the_key() -> None:
    a, b = Image.new("RGB", (4, 4)), Image.new("RGB", (4, 4))
    a.info["dpi"], b.info["dpi"] = (72, 72), (300, 300)
    assert make_key(a) != make_key(b)
    b.info["dpi"] = (72, 72)
    assert make_key(a) == make_key(b)


def test_animated_images_are_keyed_by_every_frame() -> None:
    a, b = _gif(200), _gif(90)
    assert a.n_frames == b.n_frames == 2
    assert make_key(a) != make_key(b)
    assert make_key(a) == make_key(_gif(200))
    assert a.tell() == 0  # the current frame is restored


class Framed(Image.Image):
    """An Image subclass made outside PIL."""


def test_image_subclass_made_outside_pil_is_refused() -> None:
    im = Framed()
    with pytest.raises(UnhashableError, match="outside PIL"):
        make_key(im)


def test_images_key_mode_size_pixels_and_palette() -> None:
    a = Image.new("RGB", (10, 20), (1, 2, 3))
    assert k(a) == k(Image.new("RGB", (10, 20), (1, 2, 3)))
    b = a.copy()
    b.putpixel((5, 5), (9, 9, 9))
    assert all_distinct([a, b, Image.new("RGB", (20, 10), (1, 2, 3)), a.convert("RGBA"), a.convert("L")])
    p1 = a.convert("P")
    p2 = p1.copy()
    palette = p2.getpalette()
    palette[0] = (palette[0] + 1) % 256
    p2.putpalette(palette)
    assert k(p1) == k(p1.copy())
    assert k(p1) != k(p2)
