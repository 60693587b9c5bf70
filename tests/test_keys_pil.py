"""Tests for infercache.keys.pil: an image's whole state (mode, size, pixels, palette, info, every frame)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from keys_fixtures import all_distinct, k, keys_in_process

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


# ---------------------------------------------------------------- pixels: canonical keys, storage vs encoder

np = pytest.importorskip("numpy")
ImageChops = pytest.importorskip("PIL.ImageChops")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from infercache.keys.pil import _STORAGE_BYTES, PART, _storage, write_pixels  # noqa: E402
from infercache.keys.wire import T_BYTES, T_PARTS, digest_sink, new_sink, varint, write_buffer  # noqa: E402
from infercache.safety import protect, release  # noqa: E402

# Small images take the inline and encoder paths; from 128x128 (16384 pixels,
# 64 KiB of 4-byte storage) the pixels are read from Pillow's storage.
SIZES = st.one_of(
    st.tuples(st.integers(1, 40), st.integers(1, 30)),
    st.tuples(st.integers(128, 260), st.integers(128, 200)),
)
MODES = sorted({*_STORAGE_BYTES, "RGB", "1", "LA", "PA", "La", "YCbCr", "LAB", "HSV"})
EXAMPLES = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _rgb(size: tuple[int, int], seed: int) -> Any:
    return np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)


def _padding(im: Image.Image) -> set[int]:
    """The values of the padding byte of an RGB image's 4-byte storage."""
    return set(im.tobytes("raw", "RGBX")[3::4])


def _png_decoded(im: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    buf.seek(0)
    return Image.open(buf).copy()  # copy(): the same pixels, no file format or PNG info


def _made_every_way(pixels: Any) -> dict[str, Image.Image]:
    """The same RGB pixels by different routes, leaving different padding bytes."""
    h, w = pixels.shape[:2]
    from_array = Image.fromarray(pixels)  # padding 255
    padding_zero = ImageChops.difference(from_array, Image.new("RGB", (w, h), (0, 0, 0)))  # |x - 0|, |255 - 255|
    mixed = Image.new("RGB", (w, h))  # black with padding 0
    mixed.paste(padding_zero)
    box = (0, 0, max(1, w // 2), h)
    mixed.paste(from_array.crop(box), box)
    put = Image.new("RGB", (w, h))
    put.putdata([tuple(p) for p in pixels.reshape(-1, 3).tolist()])
    return {
        "fromarray": from_array,
        "padding_zero": padding_zero,
        "new_paste_mixed": mixed,
        "new_putdata": put,
        "png_decoded": _png_decoded(from_array),
        "resized_same_size": padding_zero.resize((w, h)),
    }


@EXAMPLES
@given(size=SIZES, seed=st.integers(0, 2**32 - 1))
def test_equal_rgb_images_have_equal_keys_however_they_were_made(size: tuple[int, int], seed: int) -> None:
    made = _made_every_way(_rgb(size, seed))
    assert _padding(made["fromarray"]) == {255} and _padding(made["padding_zero"]) == {0}
    keys = {name: make_key(im) for name, im in made.items()}
    assert len(set(keys.values())) == 1, keys
    assert len({make_key(im, algorithm="xxh3") for im in made.values()}) == 1


def _image(mode: str, size: tuple[int, int], seed: int) -> Image.Image:
    n = len(Image.new(mode, size).tobytes())  # mode "1" packs 8 pixels a byte
    raw = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    return Image.frombytes(mode, size, raw)


def _pixels_digest(im: Image.Image, *, from_storage: bool) -> bytes:
    out = new_sink("blake3")
    write_pixels(im, out, from_storage=from_storage)
    return digest_sink(out)


@EXAMPLES
@given(mode=st.sampled_from(MODES), size=SIZES, seed=st.integers(0, 2**32 - 1))
def test_pixels_from_storage_and_from_the_encoder_are_the_same_bytes(
    mode: str, size: tuple[int, int], seed: int
) -> None:
    """Every mode, both paths: ``tobytes()`` (RGB: ``tobytes("raw", "XRGB")``) as a ``T_BYTES`` piece."""
    im = _image(mode, size, seed)
    expected = new_sink("blake3")
    write_buffer(T_BYTES, memoryview(im.tobytes("raw", "XRGB") if mode == "RGB" else im.tobytes()), expected)
    assert _pixels_digest(im, from_storage=True) == _pixels_digest(im, from_storage=False) == digest_sink(expected)


@pytest.mark.parametrize("mode", ["RGB", *sorted(_STORAGE_BYTES)])
def test_large_images_of_the_storage_modes_are_read_from_the_storage(mode: str) -> None:
    im = _image(mode, (256, 256), 1)
    n = 256 * 256 * (4 if mode == "RGB" else _STORAGE_BYTES[mode])
    found = _storage(im, n)
    assert found is not None and found[1].nbytes == n
    assert _storage(im, 2 * n) is None and _storage(im, n // 2) is None  # never past the buffer
    if mode != "RGB":
        assert found[1].tobytes() == im.tobytes()


def _one_difference(im: Image.Image, change: str, where: int) -> Image.Image:
    w, h = im.size
    out = im.copy()
    if change == "pixel":
        x, y = where % w, (where // w) % h
        value = out.getpixel((x, y))
        channel = where % 3
        bumped = list(value)
        bumped[channel] = (bumped[channel] + 1 + where % 254) % 256
        out.putpixel((x, y), tuple(bumped))
    elif change == "size":
        out = Image.frombytes("RGB", (h, w), im.tobytes()) if w != h else im.crop((0, 0, w, h - 1))
    elif change == "mode":
        out = Image.frombytes("RGBX", im.size, im.tobytes("raw", "RGBX"))
    elif change == "info":
        out.info["dpi"] = (where % 600 + 1, 72)
    return out


@EXAMPLES
@given(size=SIZES, seed=st.integers(0, 2**32 - 1), change=st.sampled_from(["pixel", "size", "mode", "info"]),
       where=st.integers(0, 2**20))
def test_any_difference_of_pixels_size_mode_or_info_changes_the_key(
    size: tuple[int, int], seed: int, change: str, where: int
) -> None:
    im = Image.fromarray(_rgb(size, seed))
    other = _one_difference(im, change, where)
    assert make_key(other) != make_key(im)
    assert make_key(other, algorithm="xxh3") != make_key(im, algorithm="xxh3")


@EXAMPLES
@given(size=SIZES, seed=st.integers(0, 2**32 - 1), entry=st.integers(0, 255), channel=st.integers(0, 2))
def test_any_palette_difference_changes_the_key(size: tuple[int, int], seed: int, entry: int, channel: int) -> None:
    im = Image.fromarray(_rgb(size, seed)).convert("P")
    palette = im.getpalette() or []
    palette += [0] * (768 - len(palette))
    palette[entry * 3 + channel] = (palette[entry * 3 + channel] + 1) % 256
    other = im.copy()
    other.putpalette(palette)
    assert make_key(other) != make_key(im)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_images_whose_storage_is_not_exported_are_keyed_like_the_others(mode: str) -> None:
    """Images over memory Pillow did not allocate (frombuffer), and images in
    several memory blocks, are hashed through the encoder: same keys, no crash."""
    im = _image(mode, (256, 200), 3)
    expected = make_key(im)
    if mode != "RGB":  # frombuffer maps L / RGBA memory as is (a read-only core)
        mapped = Image.frombuffer(mode, im.size, im.tobytes(), "raw", mode, 0, 1)
        assert mapped.im.readonly and _storage(mapped, len(im.tobytes())) is None
        assert make_key(mapped) == expected
    n = len(im.tobytes()) if mode != "RGB" else 256 * 200 * 4
    assert _storage(im, n) is not None
    core = Image.core
    block_size = core.get_block_size()
    core.set_block_size(1 << 14)
    try:
        blocks = im.copy()
    finally:
        core.set_block_size(block_size)
    assert _storage(blocks, n) is None  # in several blocks
    assert make_key(blocks) == expected


def test_rgb_images_are_keyed_the_same_without_numpy() -> None:
    """Without numpy the RGB storage cannot be shifted: the encoder streams XRGB instead."""
    code = (
        "import json, sys\n"
        "from PIL import Image\n"
        "from infercache.keys import make_key\n"
        "im = Image.frombytes('RGB', (256, 200), bytes((i * 7) % 256 for i in range(256 * 200 * 3)))\n"
        "keys = [make_key(im).hex(), make_key(Image.new('RGB', (300, 300))).hex()]\n"
        "assert 'numpy' not in sys.modules\n"
        "print(json.dumps(keys))\n"
    )
    im = Image.frombytes("RGB", (256, 200), bytes((i * 7) % 256 for i in range(256 * 200 * 3)))
    assert keys_in_process(code, "0") == [make_key(im).hex(), make_key(Image.new("RGB", (300, 300))).hex()]


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
def test_a_hit_keys_like_the_image_it_came_from(mode: str) -> None:
    im = _image("RGB", (256, 200), 5).convert(mode)
    hit = release(protect(im))
    assert make_key(hit) == make_key(im)


# ---------------------------------------------------------------- large RGB images: keyed by parts

# Widths and heights around the part size (PART bytes of XRGB = 1 Mi pixels): exactly one part
# (1024x1024, keyed as plain bytes), one pixel over (a last part of one pixel), two and three parts.
PART_SIZES = [(1024, 1024), (1024 * 1024 + 1, 1), (1920, 1080), (1100, 2000)]


def _expected_parts(im: Image.Image, alg: str) -> bytes:
    """``T_PARTS``, the byte count and each part's digest, from Pillow's own XRGB bytes."""
    import blake3
    import xxhash

    xrgb = im.tobytes("raw", "XRGB")
    out = new_sink(alg)
    if len(xrgb) <= PART:
        write_buffer(T_BYTES, memoryview(xrgb), out)
        return digest_sink(out)
    out += T_PARTS + varint(len(xrgb))
    for start in range(0, len(xrgb), PART):
        piece = xrgb[start : start + PART]
        out += blake3.blake3(piece).digest() if alg == "blake3" else xxhash.xxh3_128_digest(piece)
    return digest_sink(out)


def _pixels_digest_alg(im: Image.Image, alg: str, *, from_storage: bool) -> bytes:
    out = new_sink(alg)
    write_pixels(im, out, from_storage=from_storage)
    return digest_sink(out)


@pytest.mark.parametrize("size", PART_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("alg", ["blake3", "xxh3"])
def test_large_rgb_pixels_are_keyed_by_parts_the_same_on_threads_alone_and_from_the_encoder(
    size: tuple[int, int], alg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import infercache.keys.pil as pil

    im = Image.fromarray(_rgb((size[0], size[1]), sum(size)))
    expected = _expected_parts(im, alg)
    monkeypatch.setattr(pil, "_cost", {False: 1.0, True: 0.0})  # threads never measured: they go first
    assert _pixels_digest_alg(im, alg, from_storage=True) == expected
    monkeypatch.setattr(pil, "_cost", {False: 0.0, True: 1.0})  # one thread
    assert _pixels_digest_alg(im, alg, from_storage=True) == expected
    assert _pixels_digest_alg(im, alg, from_storage=False) == expected


def test_a_large_rgb_image_over_memory_pillow_did_not_allocate_keys_as_its_copy() -> None:
    """Pillow's storage of such an image is not read (it cannot be exported): its parts stream
    through the encoder, to the same key as a copy in Pillow's own memory."""
    import numpy as np
    import pyarrow as pa

    size = (1000, 1100)  # over one part
    words = np.random.default_rng(23).integers(0, 2**32, size[0] * size[1], dtype=np.uint32)  # padding too
    foreign = Image.fromarrow(pa.array(words), "RGB", size)
    assert foreign.im.readonly
    assert make_key(foreign) == make_key(foreign.copy())


def test_an_image_keys_the_file_format_it_was_read_from() -> None:
    """``im.format`` is part of the value (a function may answer by it): set as on a decoded file."""
    plain, as_read, as_read_again = (_image("RGB", (8, 8), 5) for _ in range(3))
    as_read.format = as_read_again.format = "PNG"
    assert k(as_read) != k(plain)
    assert k(as_read) == k(as_read_again)


def test_large_rgb_images_have_equal_keys_whatever_their_padding_and_differ_by_one_pixel() -> None:
    pixels = _rgb((1920, 1080), 11)
    from_array = Image.fromarray(pixels)  # padding 255
    padding_zero = ImageChops.difference(from_array, Image.new("RGB", from_array.size, (0, 0, 0)))
    assert _padding(from_array) == {255} and _padding(padding_zero) == {0}
    for alg in ("blake3", "xxh3"):
        keys = {make_key(im, algorithm=alg) for im in (from_array, padding_zero, _png_decoded(from_array))}
        assert len(keys) == 1
        for x, y in ((0, 0), (1919, 1079), (1024 * 1024 % 1920, 1024 * 1024 // 1920)):  # first, last, 2nd part
            other = from_array.copy()
            r, g, b = other.getpixel((x, y))
            other.putpixel((x, y), (r, g, b ^ 1))
            assert make_key(other, algorithm=alg) not in keys


def test_a_forked_child_hashes_large_rgb_images_on_threads_of_its_own() -> None:
    """The part threads are per process: a child forked after the parent made them makes its own
    (it would otherwise wait forever on threads it does not have). Run in a fresh interpreter,
    which forks with no other thread running."""
    code = (
        "import json, os, select, signal\n"
        "import numpy as np\n"
        "from PIL import Image\n"
        "import infercache.keys.pil as pil\n"
        "from infercache.keys import make_key\n"
        "pixels = np.random.default_rng(12).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)\n"
        "im = Image.fromarray(pixels)\n"
        "pil._cost.update({False: 1.0, True: 0.0})  # threads\n"
        "parent = make_key(im)  # the parent's pool exists now\n"
        "read, write = os.pipe()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    pil._cost.update({False: 1.0, True: 0.0})\n"
        "    os.write(write, make_key(im))\n"
        "    os._exit(0)\n"
        "os.close(write)\n"
        "ready, _, _ = select.select([read], [], [], 60)\n"
        "if not ready:\n"
        "    os.kill(pid, signal.SIGKILL)\n"
        "os.waitpid(pid, 0)\n"
        "child = os.read(read, 64) if ready else b''\n"
        "print(json.dumps([parent.hex(), child.hex()]))\n"
    )
    parent, child = keys_in_process(code, "0")
    assert child == parent, "the forked child did not hash the image (it waited on threads it does not have)"


def _part_threads() -> set[Any]:
    import threading

    return {t for t in threading.enumerate() if t.name.startswith("infercache-pil")}


def test_large_rgb_images_are_hashed_on_one_pool_per_process_of_a_thread_per_other_core(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One pool per process, made again in a child process (a fork keeps the pool but not its threads)."""
    import os

    import infercache.keys.pil as pil

    monkeypatch.setattr(pil, "_cost", {False: 1.0, True: 0.0})
    monkeypatch.setattr(pil, "_pool", pil._pool)  # the pool made here is this test's
    im = Image.fromarray(_rgb((2048, 2048), 21))  # four parts: three handed to the pool at once

    def hashed_on() -> set[Any]:
        pil._cost.update({False: 1.0, True: 0.0})  # threads, again
        assert make_key(im) == key
        return _part_threads()

    key = make_key(im)
    parents = _part_threads()
    assert 1 <= len(parents) <= max(1, (os.cpu_count() or 2) - 1)
    assert hashed_on() == hashed_on() == parents  # the same threads: no pool made per image
    parent_pool = pil._pool
    monkeypatch.setattr(os, "getpid", lambda: -1)  # as a forked child sees it
    try:
        childs = hashed_on()
        assert hashed_on() == childs and len(childs - parents) == len(parents)
    finally:
        pil._pool[1].shutdown()
    assert pil._pool is not parent_pool


def test_each_way_of_hashing_rgb_keeps_a_moving_average_of_its_cost_per_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three quarters of the way's last figure and a quarter of what it measured (seconds per byte)."""
    import time

    import infercache.keys.pil as pil

    im = Image.fromarray(_rgb((1920, 1080), 22))
    n = 1920 * 1080 * 4
    for before in ({False: 4.0, True: 2.0}, {False: 2.0, True: 4.0}):
        monkeypatch.setattr(pil, "_cost", dict(before))
        started = time.perf_counter()
        make_key(im)
        bound = (time.perf_counter() - started) / n  # at least the cost the key measured
        way = next(w for w in (False, True) if pil._cost[w] != before[w])
        assert pil._cost[not way] == before[not way]
        assert 0.75 * before[way] < pil._cost[way] <= 0.75 * before[way] + 0.25 * bound


def test_rgb_hashing_uses_the_way_faster_of_late_and_retries_the_other(monkeypatch: pytest.MonkeyPatch) -> None:
    import itertools

    import infercache.keys.pil as pil

    monkeypatch.setattr(pil, "_cost", {False: 0.0, True: 0.0})
    monkeypatch.setattr(pil, "_images", itertools.count(1))
    im = _image("RGB", (1100, 1000), 10)
    key = make_key(im)
    assert pil._cost[True] > 0 and pil._cost[False] == 0  # threads measured first
    assert make_key(im) == key
    assert pil._cost[False] > 0  # then one thread
    pil._cost.update({False: 1e-9, True: 2e-9})
    picks = [pil._use_threads() for _ in range(2 * pil._RETRY)]
    assert picks.count(True) == 2 and picks.count(False) == 2 * pil._RETRY - 2
    pil._cost.update({False: 2e-9, True: 1e-9})
    picks = [pil._use_threads() for _ in range(2 * pil._RETRY)]
    assert picks.count(False) == 2
    for measured in (False, True):  # until both ways are measured, the other one, every time
        pil._cost.update({measured: 1e-9, not measured: 0.0})
        assert {pil._use_threads() for _ in range(2 * pil._RETRY)} == {not measured}


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_an_image_after_a_streamed_buffer_keeps_that_buffer_in_the_key(mode: str) -> None:
    # Both over 4 KiB: the bytes stream into the hasher first, then the image's pixels (from
    # Pillow's storage, 64 KiB and more) must join them, not start a new digest.
    img = Image.new(mode, (256, 256), 7)
    assert all_distinct([[b"a" * 5000, img], [b"b" * 5000, img], [img, b"a" * 5000], [img]])
    assert k([b"a" * 5000, img]) == k([b"a" * 5000, Image.new(mode, (256, 256), 7)])
