"""core.data and core.images: the embedded digits, ImageFolder, preprocessing, grids and GIFs."""

from __future__ import annotations

import io
import logging
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import core.images
from core.data import ImageFolder, cache_root, open_dataset, prepare_digits
from core.errors import DataError
from core.images import (
    encode_gif,
    encode_png,
    load_image,
    make_grid,
    open_image,
    resize_center_crop,
    save_gif,
    save_grid,
    to_uint8,
)


def _png_bytes(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


def _solid(value: int, size=(10, 14)) -> np.ndarray:
    return np.full((*size, 3), value, np.uint8)


# --------------------------------------------------------------------------- the embedded digits


@pytest.fixture(scope="module")
def digits16(tmp_path_factory) -> Path:
    return prepare_digits(16, tmp_path_factory.mktemp("cache"))


def test_prepare_digits_writes_1797_images_in_10_classes(digits16):
    from sklearn.datasets import load_digits

    assert digits16.name == "digits-16" and (digits16 / ".complete").is_file()
    folders = sorted(p.name for p in digits16.iterdir() if p.is_dir())
    assert folders == [str(d) for d in range(10)]
    counts = np.bincount(load_digits().target, minlength=10)
    for d in range(10):
        files = sorted((digits16 / str(d)).glob("*.png"))
        assert len(files) == counts[d]
    total = sorted(digits16.rglob("*.png"))
    assert len(total) == 1797
    with Image.open(total[0]) as im:
        assert im.size == (16, 16) and im.mode == "RGB"
    # nothing but the tree is left next to it (the temp build folder was renamed into place)
    assert [p.name for p in digits16.parent.iterdir()] == ["digits-16"]


def test_prepare_digits_is_reused(digits16, monkeypatch):
    stamp = (digits16 / "3" / sorted(p.name for p in (digits16 / "3").iterdir())[0]).stat().st_mtime_ns

    def fail():
        raise AssertionError("the dataset was rebuilt")

    monkeypatch.setattr("sklearn.datasets.load_digits", fail)
    assert prepare_digits(16, digits16.parent) == digits16
    first = digits16 / "3" / sorted(p.name for p in (digits16 / "3").iterdir())[0]
    assert first.stat().st_mtime_ns == stamp


def test_prepare_digits_pixels_are_the_scans(tmp_path):
    """At size 8 nothing is resampled: every PNG holds the scan's 16 grey levels scaled to 0..255."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = prepare_digits(8, tmp_path)
    for index in (0, 1, 500, 1796):
        label = int(digits.target[index])
        with Image.open(root / str(label) / f"{index:04d}.png") as im:
            got = np.asarray(im.convert("RGB"))
        want = np.clip(digits.images[index] * (255.0 / 16.0), 0, 255).astype(np.uint8)
        for c in range(3):
            np.testing.assert_array_equal(got[..., c], want)


def test_prepare_digits_replaces_an_incomplete_tree(tmp_path):
    stale = tmp_path / "digits-8"
    (stale / "0").mkdir(parents=True)
    (stale / "0" / "junk.png").write_bytes(b"half a file")
    root = prepare_digits(8, tmp_path)
    assert root == stale and (root / ".complete").exists()
    assert not (root / "0" / "junk.png").exists()
    assert len(list(root.rglob("*.png"))) == 1797


def test_open_dataset_digits_uses_the_cache_root(monkeypatch, tmp_path):
    monkeypatch.setenv("AGE_CACHE_DIR", str(tmp_path))
    assert cache_root() == tmp_path
    data = open_dataset("digits", 8)
    assert data.root == tmp_path / "digits-8"
    assert len(data) == 1797 and data.classes == [str(d) for d in range(10)] and data.skipped == 0


# --------------------------------------------------------------------------- ImageFolder


@pytest.fixture
def mixed_folder(tmp_path) -> Path:
    """Two classes of good images plus a corrupt PNG, a truncated JPEG, a text file and hidden files."""
    root = tmp_path / "mixed"
    rng = np.random.default_rng(0)
    for cls, n in (("cats", 3), ("dogs", 2)):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            Image.fromarray((rng.random((20, 24, 3)) * 255).astype(np.uint8)).save(root / cls / f"{i}.png")
    (root / "cats" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(200))
    jpeg = _png_bytes((rng.random((40, 40, 3)) * 255).astype(np.uint8), "JPEG")
    (root / "dogs" / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])  # header fine, data truncated
    (root / "dogs" / "notes.txt").write_text("not an image")
    (root / "dogs" / ".hidden.png").write_bytes(b"ignored, not counted")
    (root / ".cache").mkdir()
    (root / ".cache" / "x.png").write_bytes(b"ignored too")
    return root


def test_image_folder_skips_bad_files_with_one_warning(mixed_folder, caplog):
    caplog.set_level(logging.WARNING, logger="core.data")
    data = ImageFolder.open(mixed_folder, 16)
    assert data.classes == ["cats", "dogs"]
    assert [p.name for p in data.files] == ["0.png", "1.png", "2.png", "0.png", "1.png"]
    assert data.labels == [0, 0, 0, 1, 1]
    assert data.skipped == 3 and len(data) == 5
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "skipped 3" in warnings[0].getMessage() and str(mixed_folder) in warnings[0].getMessage()
    # it names the first one and why (sorted: cats/broken.png is met first)
    assert "the first, cats/broken.png: not a readable image" in warnings[0].getMessage()
    # every listed file really loads: training never meets a bad one later
    batch = data.load(np.arange(len(data)))
    assert batch.shape == (5, 3, 16, 16)


def test_image_folder_without_class_folders(tmp_path, caplog):
    for i in range(3):
        Image.fromarray(_solid(i * 40)).save(tmp_path / f"{i}.png")
    caplog.set_level(logging.WARNING, logger="core.data")
    data = ImageFolder.open(tmp_path, 8)
    assert len(data) == 3 and data.labels == [0, 0, 0] and data.classes == [tmp_path.name]
    assert not caplog.records


@pytest.mark.parametrize("kind", ["missing", "empty", "only_bad", "a_file"])
def test_image_folder_errors_name_the_path(kind, tmp_path):
    root = tmp_path / "data"
    if kind == "empty":
        root.mkdir()
    elif kind == "only_bad":
        (root / "cls").mkdir(parents=True)
        (root / "cls" / "x.png").write_bytes(b"garbage")
        (root / "cls" / "y.txt").write_text("text")
    elif kind == "a_file":
        root.write_text("not a folder")
    with pytest.raises(DataError) as err:
        ImageFolder.open(root, 16)
    assert str(root) in str(err.value)
    fragment = {"missing": "does not exist", "empty": "no readable images", "only_bad": "no readable images",
                "a_file": "not a directory"}[kind]
    assert fragment in str(err.value)
    with pytest.raises(DataError, match="data directory"):
        open_dataset(str(root), 16)


@pytest.fixture
def numbered_folder(tmp_path) -> ImageFolder:
    """20 solid images; image i has grey value 10 * i, so a batch tells which images it holds."""
    for i in range(20):
        Image.fromarray(_solid(10 * i, (12, 9))).save(tmp_path / f"{i:02d}.png")
    return ImageFolder.open(tmp_path, 8)


def _ids(batch: np.ndarray) -> list[int]:
    values = np.rint(batch * 255.0)
    assert all(np.all(v == v.flat[0]) for v in values)  # solid images stay solid
    return [int(v.flat[0]) // 10 for v in values]


def test_batches_shapes_and_values(numbered_folder):
    batches = list(numbered_folder.batches(6, seed=0, epoch=0))
    assert numbered_folder.batches_per_epoch(6) == 3 and len(batches) == 3  # last partial batch dropped
    for b in batches:
        assert b.shape == (6, 3, 8, 8) and b.dtype == np.float32
        assert b.min() >= 0.0 and b.max() <= 1.0
    ids = [i for b in batches for i in _ids(b)]
    assert len(ids) == len(set(ids)) == 18 and set(ids) <= set(range(20))


def test_batches_are_deterministic_per_seed_and_epoch(numbered_folder, tmp_path):
    reopened = ImageFolder.open(numbered_folder.root, 8)

    def order(data, seed, epoch, skip=0):
        return [_ids(b) for b in data.batches(5, seed=seed, epoch=epoch, skip=skip)]

    e0 = order(numbered_folder, 1, 0)
    assert e0 == order(reopened, 1, 0)
    assert e0 != order(numbered_folder, 1, 1)
    assert e0 != order(numbered_folder, 2, 0)
    assert order(numbered_folder, 1, 0, skip=2) == e0[2:]  # resuming mid-epoch continues the same order
    assert sorted(i for b in e0 for i in b) == list(range(20))


def test_a_dataset_smaller_than_the_batch_gives_one_batch(tmp_path):
    for i in range(3):
        Image.fromarray(_solid(i * 50)).save(tmp_path / f"{i}.png")
    data = ImageFolder.open(tmp_path, 8)
    batches = list(data.batches(8, seed=0, epoch=0))
    assert data.batches_per_epoch(8) == 1 and len(batches) == 1 and batches[0].shape == (3, 3, 8, 8)


# --------------------------------------------------------------------------- preprocessing


@pytest.mark.parametrize("size_hw", [(37, 53), (53, 37), (31, 31), (9, 14)])
def test_load_image_matches_torchvision(size_hw, tmp_path):
    from torchvision import transforms

    h, w = size_hw
    rng = np.random.default_rng(h * w)
    array = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    path = tmp_path / "im.png"
    Image.fromarray(array).save(path)
    size = 24
    ours = load_image(path, size)
    reference = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size), transforms.ToTensor()])
    with Image.open(path) as im:
        theirs = reference(im.convert("RGB")).numpy()
    assert ours.shape == theirs.shape == (3, size, size) and ours.dtype == np.float32
    assert float(np.max(np.abs(ours - theirs))) <= 1 / 255 + 1e-7


def test_resize_center_crop_takes_the_middle():
    array = np.zeros((10, 30, 3), np.uint8)
    array[:, 10:20] = 255  # a white middle third
    out = np.asarray(resize_center_crop(Image.fromarray(array), 10))
    assert out.shape == (10, 10, 3) and out.min() == 255


def test_load_image_converts_modes_and_accepts_bytes():
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    x = load_image(_png_bytes(grey), 8)
    assert x.shape == (3, 8, 8)
    np.testing.assert_allclose(x[0], grey / 255.0, atol=1e-7)
    np.testing.assert_array_equal(x[0], x[2])
    rgba = np.dstack([_solid(200, (6, 6)), np.full((6, 6), 255, np.uint8)])
    assert load_image(_png_bytes(rgba), 6).shape == (3, 6, 6)


def test_open_image_errors_name_the_image(tmp_path):
    with pytest.raises(DataError, match=r"image .*nope\.png: no such file"):
        open_image(tmp_path / "nope.png")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(DataError, match=r"bad\.jpg: not a readable image"):
        open_image(bad)
    with pytest.raises(DataError, match=r"^image upload\.png: not a readable image"):
        load_image(b"not an image", 8, name="upload.png")


def _header_only_png(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but whose pixel data is a few garbage bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"\x00" * 16) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_from_its_header(tmp_path, monkeypatch):
    from PIL import ImageFile

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("decoded pixels of an oversized image")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    bomb = _header_only_png(8000, 6000)  # 48 megapixels > MAX_IMAGE_PIXELS
    assert 8000 * 6000 > core.images.MAX_IMAGE_PIXELS
    with pytest.raises(DataError, match=r"bomb\.png: 8000x6000 pixels exceeds the limit of 40000000"):
        open_image(bomb, name="bomb.png")
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    with pytest.raises(DataError, match="exceeds the limit"):
        load_image(path, 32)


def test_pixel_limit_is_read_at_call_time(tmp_path, monkeypatch, caplog):
    small = _png_bytes(_solid(7, (30, 40)))
    assert open_image(small).size == (40, 30)
    with pytest.raises(DataError, match="40x30 pixels exceeds the limit of 1000"):
        open_image(small, max_pixels=1000)
    monkeypatch.setattr(core.images, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(DataError, match="exceeds the limit of 1000"):
        open_image(small)
    (tmp_path / "big.png").write_bytes(small)
    Image.fromarray(_solid(9, (10, 10))).save(tmp_path / "ok.png")
    caplog.set_level(logging.WARNING, logger="core.data")
    data = ImageFolder.open(tmp_path, 8)  # the oversized image is skipped, the small one kept
    assert [p.name for p in data.files] == ["ok.png"] and data.skipped == 1


# --------------------------------------------------------------------------- grids and GIFs


def test_to_uint8_rounds_clips_and_moves_channels():
    x = np.array([[[[-0.5, 0.0], [0.5, 1.2]]]], np.float32).repeat(3, axis=1)  # (1, 3, 2, 2)
    out = to_uint8(x)
    assert out.shape == (1, 2, 2, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, ..., 0], [[0, 0], [128, 255]])
    assert to_uint8(np.full((2, 2, 1), 0.5), channels_first=False).shape == (2, 2, 1)


def test_make_grid_layout():
    images = np.stack([_solid(10 * (i + 1), (5, 7)) for i in range(10)])
    grid = make_grid(images)  # ceil(sqrt(10)) = 4 columns, 3 rows
    assert grid.shape == (3 * (5 + 2) + 2, 4 * (7 + 2) + 2, 3)
    for i in range(10):
        r, c = divmod(i, 4)
        y, x = 2 + r * 7, 2 + c * 9
        assert np.all(grid[y : y + 5, x : x + 7] == 10 * (i + 1)), i
    assert np.all(grid[2 + 2 * 7 : 2 + 2 * 7 + 5, 2 + 2 * 9 :] == 255)  # empty tiles 11 and 12 are fill
    assert np.all(grid[:2] == 255) and np.all(grid[:, :2] == 255)
    two_rows = make_grid(images, nrow=5, padding=0, fill=0)
    assert two_rows.shape == (10, 35, 3)
    np.testing.assert_array_equal(two_rows[5:, 7:14], images[6])


def test_make_grid_refuses_wrong_input():
    with pytest.raises(ValueError, match="uint8"):
        make_grid(np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        make_grid(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="no images"):
        make_grid(np.zeros((0, 4, 4, 3), np.uint8))


def test_save_grid_writes_a_lossless_png(tmp_path):
    rng = np.random.default_rng(3)
    images = (rng.random((6, 9, 11, 3)) * 255).astype(np.uint8)
    path = save_grid(images, tmp_path / "out" / "grid.png", nrow=3)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (3 * 13 + 2, 2 * 11 + 2)
        np.testing.assert_array_equal(np.asarray(im), make_grid(images, nrow=3))
    grey = save_grid(images[..., :1], tmp_path / "grey.png")
    with Image.open(grey) as im:
        assert im.mode == "L"
    assert encode_png(images, 3) == path.read_bytes()


def test_encode_gif_frames(tmp_path):
    n, t, h, w = 3, 4, 6, 5
    videos = np.zeros((n, t, h, w, 3), np.uint8)
    for i in range(n):
        for f in range(t):
            videos[i, f] = 40 * f + 10 * i
    data = encode_gif(videos, nrow=3, fps=10)
    path = save_gif(videos, tmp_path / "v.gif", nrow=3, fps=10)
    assert path.read_bytes() == data
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "GIF" and im.n_frames == t
        assert im.size == (3 * (w + 2) + 2, h + 4)
        assert im.info.get("duration") == 100
        for f in range(t):
            im.seek(f)
            frame = np.asarray(im.convert("RGB")).astype(int)
            for i in range(n):
                tile = frame[2 : 2 + h, 2 + i * (w + 2) : 2 + i * (w + 2) + w]
                assert np.abs(tile - (40 * f + 10 * i)).max() <= 2, (f, i)
    with pytest.raises(ValueError, match="N, T, H, W, C"):
        encode_gif(videos[0])


# --------------------------------------------------------------------------- every mode by its real range


def _encoded(im: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **options)
    return buf.getvalue()


def _raw_tiff(data: bytes, width: int, height: int, bits: int, sample_format: int) -> bytes:
    """A one-strip greyscale little-endian TIFF, for sample kinds Pillow cannot write (unsigned 32-bit, 12-bit)."""
    tags = [(256, 4, width), (257, 4, height), (258, 3, bits), (259, 3, 1), (262, 3, 1), (273, 4, 0), (277, 3, 1),
            (278, 4, height), (279, 4, len(data)), (339, 3, sample_format)]
    start = 8 + 2 + 12 * len(tags) + 4
    entries = b"".join(struct.pack("<HHI", tag, kind, 1) + struct.pack("<I" if kind == 4 else "<H2x",
                                                                       start if tag == 273 else value)
                       for tag, kind, value in tags)
    return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(tags)) + entries + struct.pack("<I", 0) + data


def _png16_rgb(values: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow reads it as 8-bit RGB, keeping the high byte)."""
    h, w, _ = values.shape
    rows = b"".join(b"\x00" + values[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _ramp(lo: float, hi: float, shape=(32, 32)) -> np.ndarray:
    """Float values from lo to hi over the image (a smooth gradient with a known mean)."""
    return np.linspace(lo, hi, shape[0] * shape[1]).reshape(shape)


def _on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None] / 255.0
    return (rgb * a + 255.0 * (1 - a)) / 255.0


def _mode_cases() -> dict[str, tuple[bytes, np.ndarray, str]]:
    """name: (file bytes, the true image as float (H, W, 3) or (H, W) in [0, 1], the mode Pillow opens it in)."""
    rng = np.random.default_rng(14)
    cases: dict[str, tuple[bytes, np.ndarray, str]] = {}
    g16 = np.rint(_ramp(0, 0.54 * 65535)).astype(np.uint16)  # mean 0.27: the report's saturating case
    cases["png 16-bit grey"] = (_encoded(Image.fromarray(g16), "PNG"), g16 / 65535, "I;16")
    cases["tiff 16-bit grey"] = (_encoded(Image.fromarray(g16), "TIFF"), g16 / 65535, "I;16")
    cases["tiff 16-bit big-endian"] = (_encoded(Image.fromarray(g16.astype(">u2")), "TIFF"), g16 / 65535, "I;16B")
    cases["pgm 16-bit"] = (_encoded(Image.fromarray(g16), "PPM"), g16 / 65535, "I")
    g12 = np.rint(_ramp(100, 4000, (32, 32))).astype(np.uint16)
    pgm = f"P5 32 32 4095\n".encode() + g12.astype(">u2").tobytes()
    cases["pgm maxval 4095"] = (pgm, g12 / 4095, "I")
    packed = b"".join(((int(a) << 12) | int(b)).to_bytes(3, "big") for a, b in g12.reshape(-1, 2))
    cases["tiff 12-bit"] = (_raw_tiff(packed, 32, 32, 12, 1), g12 / 4095, "I;16")
    i32 = np.rint(_ramp(0.1, 0.9) * (2**31 - 1)).astype(np.int32)
    cases["tiff int32"] = (_encoded(Image.fromarray(i32), "TIFF"), i32 / (2**31 - 1), "I")
    u32 = np.rint(_ramp(0.05, 1.0) * (2**32 - 1)).astype(np.uint64)  # above 2**31: wraps if read as int32
    cases["tiff uint32"] = (_raw_tiff(u32.astype("<u4").tobytes(), 32, 32, 32, 1), u32 / (2**32 - 1), "I")
    s16 = np.rint(_ramp(0, 32767)).astype(np.uint16)
    cases["tiff int16"] = (_encoded(Image.fromarray(s16), "TIFF", tiffinfo={339: 2}), s16 / 32767, "I")
    f32 = _ramp(0.0, 1.0).astype(np.float32)
    cases["tiff float32"] = (_encoded(Image.fromarray(f32), "TIFF"), f32.astype(np.float64), "F")
    rgb = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
    palette = Image.fromarray(rgb).quantize(16)
    cases["palette"] = (_encoded(palette, "PNG"), np.asarray(palette.convert("RGB")) / 255.0, "P")
    keyed = palette.copy()
    keyed.info["transparency"] = 3
    index = np.asarray(keyed)
    want = np.asarray(keyed.convert("RGB")) / 255.0
    want[index == 3] = 1.0  # the transparent colour shows white
    cases["palette, one colour transparent"] = (_encoded(keyed, "PNG", transparency=3), want, "P")
    alpha = (rng.random((32, 32)) * 255).astype(np.uint8)
    cases["rgba"] = (_encoded(Image.fromarray(np.dstack([rgb, alpha])), "PNG"), _on_white(rgb, alpha), "RGBA")
    grey = rgb[..., 0]
    cases["la"] = (_encoded(Image.fromarray(np.dstack([grey, alpha]), "LA"), "PNG"),
                   _on_white(np.dstack([grey] * 3), alpha), "LA")
    rgb16 = (rng.random((32, 32, 3)) * 65535).astype(np.uint16)
    cases["png 16-bit rgb"] = (_png16_rgb(rgb16), rgb16 / 65535, "RGB")
    cmyk = Image.new("CMYK", (32, 32), (0, 0, 0, 128))  # 50% black
    cases["cmyk jpeg"] = (_encoded(cmyk, "JPEG", quality=95), np.full((32, 32), 127 / 255), "CMYK")
    cyan = Image.new("CMYK", (32, 32), (255, 0, 0, 0))
    cases["cmyk tiff cyan"] = (_encoded(cyan, "TIFF"), np.broadcast_to([0.0, 1.0, 1.0], (32, 32, 3)), "CMYK")
    checker = (np.indices((32, 32)).sum(0) % 2).astype(bool)
    cases["1-bit"] = (_encoded(Image.fromarray(checker), "PNG"), checker.astype(np.float64), "1")
    lab = Image.new("LAB", (32, 32), (255, 128, 128))  # L* = 100, a* = b* = 0: white
    cases["lab tiff"] = (_encoded(lab, "TIFF"), np.full((32, 32), 1.0), "LAB")
    cases["grey jpeg"] = (_encoded(Image.fromarray(grey), "JPEG", quality=100), grey / 255.0, "L")
    return cases


MODE_CASES = _mode_cases()


@pytest.mark.parametrize("case", sorted(MODE_CASES))
def test_every_mode_loads_by_its_real_range(case):
    """The loaded mean matches the true normalised mean within 1/255 (a 16-bit PNG of mean 0.27 once
    loaded as 0.64), and pixels match within 1/255 (JPEGs: within their compression error)."""
    data, truth, mode = MODE_CASES[case]
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == mode  # the case really exercises that mode
    x = load_image(data, 32)  # the image's own size: no resampling, only the conversion
    want = np.broadcast_to(truth[..., None] if truth.ndim == 2 else truth, (32, 32, 3)).transpose(2, 0, 1)
    assert abs(float(x.mean()) - float(want.mean())) <= 1 / 255, (float(x.mean()), float(want.mean()))
    tolerance = 3 / 255 if "jpeg" in case else 1 / 255 + 1e-6
    assert float(np.max(np.abs(x - want))) <= tolerance


def test_deep_images_are_resized_after_conversion():
    g16 = np.rint(_ramp(0, 0.54 * 65535, (48, 64))).astype(np.uint16)
    x = load_image(_encoded(Image.fromarray(g16), "PNG"), 24)
    assert x.shape == (3, 24, 24)
    centre = g16[:, 8:56] / 65535  # the centre crop of the 64 x 48 image, before resampling
    assert abs(float(x.mean()) - float(centre.mean())) <= 1 / 255


# --------------------------------------------------------------------------- the bounded resize


def _resize_then_crop(im: Image.Image, size: int) -> Image.Image:
    """The loader before the crop box: torchvision's Resize(size) + CenterCrop(size), in full."""
    w, h = im.size
    new_w, new_h = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
    if (new_w, new_h) != (w, h):
        im = im.resize((new_w, new_h), Image.BILINEAR)
    left, top = int(round((new_w - size) / 2.0)), int(round((new_h - size) / 2.0))
    return im.crop((left, top, left + size, top + size))


def test_resampling_the_crop_box_matches_resize_then_crop():
    """Same arithmetic as resizing in full and cropping: within 1/255 (an exact rounding tie may fall
    the other way), identical where nothing is resampled."""
    rng = np.random.default_rng(2)
    shapes = [(int(rng.integers(1, 200)), int(rng.integers(1, 200))) for _ in range(60)]
    shapes += [(24, 24), (24, 90), (90, 24), (1, 1), (3, 250), (250, 3)]
    differing = total = 0
    for w, h in shapes:
        for size in (8, 24, 32):
            im = Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8))
            ours = np.asarray(resize_center_crop(im, size)).astype(int)
            full = np.asarray(_resize_then_crop(im, size)).astype(int)
            assert ours.shape == full.shape == (size, size, 3)
            assert np.abs(ours - full).max() <= 1, (w, h, size)
            if size in (w, h) and min(w, h) == size:
                np.testing.assert_array_equal(ours, full)
            differing += int(np.count_nonzero(ours != full))
            total += ours.size
    # ties come from upscaling's exact half-way weights: ~7% of random-noise values move by 1/255
    assert differing < total * 0.15


def test_resize_center_crop_refuses_a_size_below_one():
    with pytest.raises(ValueError, match="size must be >= 1"):
        resize_center_crop(Image.new("RGB", (4, 4)), 0)


# --------------------------------------------------------------------------- OS errors preparing the digits


def test_an_unwritable_digits_cache_names_the_folder(tmp_path, monkeypatch):
    from core.errors import OutputError

    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    monkeypatch.setenv("AGE_CACHE_DIR", str(blocker / "cache"))
    with pytest.raises(OutputError, match=rf"cannot prepare the digits in {blocker / 'cache'}: .*AGE_CACHE_DIR"):
        open_dataset("digits", 8)
    assert blocker.read_text() == "x"


def test_digits_without_scikit_learn_is_a_clear_error(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # an import of it raises ImportError
    with pytest.raises(DataError, match="--data digits needs scikit-learn"):
        prepare_digits(8, tmp_path)
    assert list(tmp_path.iterdir()) == []
