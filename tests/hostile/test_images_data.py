"""Hostile images and data folders (issue 8, classes 2, 3, 14 and 15 on the data side).

Everything here needs only NumPy, Pillow and pytest (plus onnxruntime for the one runtime case),
so it also runs in the serving-only environment. Every case asserts a clean ``DataError`` or
``ConfigError`` naming the file or field, or an exact result; nothing may raise anything else.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import core.images
from core.data import ImageFolder
from core.errors import ConfigError, DataError
from core.images import (
    FPS_RANGE,
    MAX_ASPECT_RATIO,
    ImageTooLarge,
    encode,
    encode_gif,
    encode_mp4,
    encode_png,
    load_image,
    make_grid,
    open_image,
)

pytestmark = pytest.mark.serving

REPO = Path(__file__).resolve().parents[2]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def strip_png(width: int, height: int, value: int = 128) -> bytes:
    """A real, complete 8-bit greyscale PNG of ``width`` x ``height`` pixels, all ``value``: a few KB."""
    raw = (b"\x00" + bytes([value]) * width) * height
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if any pixel data is decoded (the refusal must come from the header)."""
    from PIL import ImageFile

    def refuse(self, *args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


# --------------------------------------------------------------------------- class 2: aspect-ratio bombs


@pytest.mark.parametrize("width, height", [(1, 4_000_000), (4_000_000, 1), (1, 101), (2_000, 10)])
def test_absurd_aspect_ratios_are_refused_from_the_header(width, height, tmp_path, no_decoding):
    data = strip_png(width, height)
    assert len(data) < 10_000  # the 1 x 4,000,000 PNG of the report is 7.8 KB
    path = tmp_path / "strip.png"
    path.write_bytes(data)
    started = time.perf_counter()
    for source, name in ((path, str(path)), (data, "upload.png")):
        with pytest.raises(DataError) as err:
            load_image(source, 64, name=None if isinstance(source, Path) else name)
        message = str(err.value)
        assert message.startswith(f"image {name}: {width}x{height} pixels")
        assert f"exceeds the limit of {MAX_ASPECT_RATIO}:1" in message
        assert not isinstance(err.value, ImageTooLarge)  # the server answers 422, not "too many pixels"
    assert time.perf_counter() - started < 0.5


def test_the_aspect_limit_is_inclusive_and_read_at_call_time(monkeypatch):
    assert load_image(strip_png(1, 100, 200), 8).shape == (3, 8, 8)  # exactly 100:1 is fine
    monkeypatch.setattr(core.images, "MAX_ASPECT_RATIO", 4)
    assert load_image(strip_png(4, 16), 8).shape == (3, 8, 8)
    with pytest.raises(DataError, match=r"5x1 pixels, an aspect ratio of 5:1, exceeds the limit of 4:1"):
        load_image(strip_png(5, 1), 8)


_BOMB_SCRIPT = r"""
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # the unbounded resize would need ~16 GB
sys.path.insert(0, sys.argv[1])
import core.images as si
si.MAX_ASPECT_RATIO = float("inf")  # only the resize bound is under test here
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
x = si.load_image(sys.argv[2], int(sys.argv[3]))
elapsed = time.perf_counter() - start
grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
print(json.dumps({"shape": x.shape, "low": float(x.min()), "high": float(x.max()), "s": elapsed, "mb": grown_mb}))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB and RLIMIT_AS as on Linux")
@pytest.mark.parametrize("width, height", [(1, 1_000_000), (1_000_000, 1)])
def test_resize_work_does_not_grow_with_the_aspect_ratio(width, height, tmp_path):
    """With the aspect limit lifted, a 1 x 1,000,000 strip (resizing it whole to 64 wide would
    allocate 64 x 64,000,000 pixels, 16 GB) loads in well under a second and under 100 MB."""
    path = tmp_path / "strip.png"
    path.write_bytes(strip_png(width, height, 77))
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", _BOMB_SCRIPT, str(REPO), str(path), "64"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["shape"] == [3, 64, 64]
    assert result["low"] == result["high"] == pytest.approx(77 / 255)
    assert result["s"] < 1.0 and result["mb"] < 100, result


def test_every_caller_path_refuses_the_strip(tmp_path, caplog):
    """load_image, ImageFolder.open's check, ImageFolder.load and the runtime share one check."""
    bomb = strip_png(1, 4_000_000)
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "bomb.png").write_bytes(bomb)
    Image.fromarray(np.full((8, 8, 3), 9, np.uint8)).save(folder / "ok.png")
    caplog.set_level(logging.WARNING, logger="core.data")
    data = ImageFolder.open(folder, 8)  # skipped and counted
    assert [p.name for p in data.files] == ["ok.png"] and data.skipped == 1
    assert "bomb.png" in caplog.text and "aspect ratio" in caplog.text
    # a file swapped for a bomb after the folder was opened: the batch loader refuses it too
    (folder / "ok.png").write_bytes(bomb)
    with pytest.raises(DataError, match=r"ok\.png: 1x4000000 pixels, an aspect ratio"):
        data.load(np.array([0]))

    ort = pytest.importorskip("onnxruntime")  # noqa: F841 - the runtime's own dependency
    from runtime.session import GeneratorSession

    encoder = SimpleNamespace(inputs=[SimpleNamespace(dims=(3, 16, 16))], path=tmp_path / "encoder.onnx")
    session = SimpleNamespace(_require_encoder=lambda: encoder)
    with pytest.raises(DataError, match=r"image .*bomb\.png: 1x4000000 pixels"):
        GeneratorSession.load_image(session, tmp_path / "data" / "bomb.png")
    with pytest.raises(DataError, match=r"image image: 1x4000000 pixels"):
        GeneratorSession.load_image(session, bomb)
    assert GeneratorSession.load_image(session, _png(np.full((20, 30, 3), 51, np.uint8))).shape == (3, 16, 16)


def test_pixel_count_still_bounds_decoding(no_decoding):
    with pytest.raises(ImageTooLarge, match=r"image big\.png: 7000x7000 pixels exceeds the limit of 40000000"):
        open_image(strip_png(7000, 7000, 0), name="big.png")


# --------------------------------------------------------------------------- class 3: encoder layout


def _images(n: int = 4) -> np.ndarray:
    return np.zeros((n, 3, 3, 3), np.uint8)


@pytest.mark.parametrize("nrow", [0, -1, 5, 10**5, 10**6, 2**70, True, 2.0, "2"])
def test_make_grid_and_every_encoder_refuse_a_bad_nrow(nrow):
    images, videos = _images(), np.zeros((4, 2, 3, 3, 3), np.uint8)
    started = time.perf_counter()
    calls = [lambda: make_grid(images, nrow), lambda: encode_png(images, nrow), lambda: encode_gif(videos, nrow),
             lambda: encode_mp4(videos, nrow)]
    calls += [lambda fmt=fmt: encode(images if fmt in ("png", "npy") else videos, fmt, nrow)
              for fmt in ("png", "gif", "mp4", "npy")]
    for call in calls:
        with pytest.raises(ConfigError, match=r"^nrow must be an integer between 1 and n \(4\)"):
            call()
    assert time.perf_counter() - started < 0.5  # refused before any work (10**5 used to take 4 s)


@pytest.mark.parametrize("fps", [0.0, 0.001, -8.0, 100.5, 1e9, float("nan"), float("inf"), True, "8"])
def test_animation_encoders_refuse_a_bad_fps(fps):
    videos = np.zeros((2, 3, 4, 4, 3), np.uint8)
    low, high = FPS_RANGE
    for call in (lambda: encode_gif(videos, None, fps), lambda: encode_mp4(videos, None, fps),
                 lambda: encode(videos, "gif", None, fps), lambda: encode(videos, "mp4", None, fps)):
        with pytest.raises(ConfigError, match=rf"^fps must be a number between {low:g} and {high:g}"):
            call()


def test_layout_edges_still_work():
    images = np.stack([np.full((3, 3, 3), 10 * i, np.uint8) for i in range(5)])
    assert make_grid(images, None).shape == (2 * 5 + 2, 3 * 5 + 2, 3)  # default: a square grid
    assert make_grid(images, 1).shape == (5 * 5 + 2, 5 + 2, 3)
    assert make_grid(images, 5).shape == (5 + 2, 5 * 5 + 2, 3)
    assert make_grid(images, np.int64(2)).shape == (3 * 5 + 2, 2 * 5 + 2, 3)
    videos = np.zeros((2, 2, 4, 4, 3), np.uint8)
    videos[:, 1] = 200  # two different frames (Pillow merges identical ones)
    for fps in FPS_RANGE:
        with Image.open(io.BytesIO(encode_gif(videos, 2, fps))) as im:
            assert im.n_frames == 2 and im.info["duration"] == int(1000 / fps)
    assert np.load(io.BytesIO(encode(images, "npy", None))).shape == images.shape


# --------------------------------------------------------------------------- class 14: refusals by range


def _tiff(array: np.ndarray, tiffinfo: dict[int, int] | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="TIFF", **({"tiffinfo": tiffinfo} if tiffinfo else {}))
    return buf.getvalue()


def _fits(bitpix: int, values: np.ndarray) -> bytes:
    """A minimal FITS file (what astronomers' cameras write): 2880-byte blocks of 80-column cards."""
    cards = ["SIMPLE  =                    T", f"BITPIX  = {bitpix:>20}", "NAXIS   =                    2",
             f"NAXIS1  = {values.shape[1]:>20}", f"NAXIS2  = {values.shape[0]:>20}", "END"]
    header = "".join(card.ljust(80) for card in cards).encode().ljust(2880, b" ")
    dtype = {32: ">i4", 16: ">i2", -32: ">f4"}[bitpix]
    data = values.astype(dtype).tobytes()
    return header + data.ljust(-(-len(data) // 2880) * 2880, b"\0")


REFUSED_SAMPLES = {  # case: (file maker, what the message says)
    "nan float": (lambda: _tiff(np.array([[0.5, np.nan]], np.float32)), "float samples include NaN or infinity"),
    "inf float": (lambda: _tiff(np.array([[0.5, np.inf]], np.float32)), "float samples include NaN or infinity"),
    "float 0..255": (lambda: _tiff(np.array([[0.0, 200.0]], np.float32)),
                     "float samples outside [0, 1] (they range from 0 to 200 of white)"),
    "negative float": (lambda: _tiff(np.array([[-0.2, 1.0]], np.float32)), "float samples outside [0, 1]"),
    "negative int32": (lambda: _tiff(np.array([[-2**30, 2**30]], np.int32)), "signed 32-bit samples outside 0..2147483647"),
    "negative int16": (lambda: _tiff(np.array([[0, 65000]], np.uint16), {339: 2}),
                       "signed 16-bit samples outside 0..32767"),
    "FITS int32": (lambda: _fits(32, np.arange(16).reshape(4, 4)),
                   "FITS image of mode I: the value range of its samples is unknown"),
    "FITS float out of range": (lambda: _fits(-32, np.full((4, 4), 7.0)), "float samples outside [0, 1]"),
}


@pytest.mark.parametrize("case", sorted(REFUSED_SAMPLES))
def test_samples_without_a_black_and_white_are_refused(case):
    make, fragment = REFUSED_SAMPLES[case]
    with pytest.raises(DataError) as err:
        load_image(make(), 4, name=f"{case}.img")
    assert str(err.value).startswith(f"image {case}.img: ") and fragment in str(err.value), str(err.value)


def test_refused_modes_are_skipped_and_counted_in_a_folder(tmp_path, caplog):
    (tmp_path / "white.tif").write_bytes(_tiff(np.full((8, 8), 255.0, np.float32)))
    (tmp_path / "ok.tif").write_bytes(_tiff(np.full((8, 8), 0.25, np.float32)))
    caplog.set_level(logging.WARNING, logger="core.data")
    data = ImageFolder.open(tmp_path, 8)
    assert [p.name for p in data.files] == ["ok.tif"] and data.skipped == 1
    assert "skipped 1" in caplog.text and "white.tif" in caplog.text and "float samples outside" in caplog.text
    np.testing.assert_allclose(data.load(np.array([0])), round(0.25 * 255) / 255, atol=1e-7)


# --------------------------------------------------------------------------- class 15: OS errors


def _expect(path: Path | str, fragment: str) -> None:
    with pytest.raises(DataError) as err:
        load_image(path, 8)
    message = str(err.value)
    assert message.startswith(f"image {path}: ") and fragment in message, message


def test_paths_that_are_not_image_files(tmp_path):
    (tmp_path / "folder.png").mkdir()
    _expect(tmp_path / "folder.png", "is a directory, not an image file")
    _expect(tmp_path / "missing.png", "no such file")
    (tmp_path / "empty.png").write_bytes(b"")
    _expect(tmp_path / "empty.png", "empty file")
    (tmp_path / "a_file").write_bytes(b"x")
    _expect(tmp_path / "a_file" / "inside.png", "cannot read it (Not a directory)")
    _expect(tmp_path / ("x" * 300 + ".png"), "cannot read it (File name too long)")
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    _expect(loop, "cannot read it (Too many levels of symbolic links)")
    (tmp_path / "dangling.png").symlink_to(tmp_path / "gone.png")
    _expect(tmp_path / "dangling.png", "no such file")
    if Path("/dev/null").exists():
        _expect("/dev/null", "not a regular file")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_named_like_an_image_does_not_hang(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []
    worker = threading.Thread(target=lambda: outcome.append(pytest.raises(DataError, load_image, fifo, 8).value),
                              daemon=True)
    worker.start()
    worker.join(5)
    assert not worker.is_alive(), "reading a FIFO blocked"
    assert "not a regular file" in str(outcome[0])
    (tmp_path / "ok.png").write_bytes(_png(np.zeros((4, 4, 3), np.uint8)))
    data = ImageFolder.open(tmp_path, 4)  # ImageFolder skips it (counted), it does not hang either
    assert [p.name for p in data.files] == ["ok.png"] and data.skipped == 1


def test_permission_denied_on_a_file_names_it(tmp_path, monkeypatch):
    """Simulated (tests run as root, where chmod does not bite); the chmod version is below."""
    path = tmp_path / "secret.png"
    path.write_bytes(_png(np.zeros((4, 4, 3), np.uint8)))
    real_open = os.open

    def deny(target, *args, **kwargs):
        if Path(target) == path:
            raise PermissionError(13, "Permission denied", str(target))
        return real_open(target, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny)
    _expect(path, "cannot read it (Permission denied)")
    with pytest.raises(DataError, match="no readable images"):  # skipped, and it was the only one
        ImageFolder.open(tmp_path, 4)


@pytest.mark.skipif(IS_ROOT or not hasattr(os, "geteuid"), reason="root reads any file")
def test_unreadable_file_and_folder_with_chmod(tmp_path):
    path = tmp_path / "cls" / "secret.png"
    path.parent.mkdir()
    path.write_bytes(_png(np.zeros((4, 4, 3), np.uint8)))
    path.chmod(0)
    try:
        _expect(path, "cannot read it (Permission denied)")
    finally:
        path.chmod(0o644)
    path.parent.chmod(0)
    try:
        with pytest.raises(DataError, match=rf"data directory {tmp_path}: folder {path.parent}: cannot read it"):
            ImageFolder.open(tmp_path, 4)
    finally:
        path.parent.chmod(0o755)


@pytest.mark.parametrize("where", ["root", "class", "nested"])
def test_unreadable_folders_are_data_errors_naming_them(where, tmp_path, monkeypatch):
    root = tmp_path / "data"
    nested = root / "cats" / "more"
    nested.mkdir(parents=True)
    (root / "dogs").mkdir()
    for folder in (root / "cats", nested, root / "dogs"):
        (folder / "a.png").write_bytes(_png(np.zeros((4, 4, 3), np.uint8)))
    target = {"root": root, "class": root / "dogs", "nested": nested}[where]
    real_scandir = os.scandir

    def deny(folder=".", *args, **kwargs):
        if Path(folder) == target:
            raise PermissionError(13, "Permission denied", str(folder))
        return real_scandir(folder, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", deny)
    with pytest.raises(DataError) as err:
        ImageFolder.open(root, 4)
    where_text = "" if where == "root" else f" folder {target}:"
    assert str(err.value) == f"data directory {root}:{where_text} cannot read it (Permission denied)"


def test_data_directory_paths_that_are_not_folders(tmp_path):
    (tmp_path / "file").write_text("x")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    for path, fragment in ((tmp_path / "file" / "sub", "does not exist"), (tmp_path / "file", "not a directory"),
                           (loop, "cannot read it (Too many levels of symbolic links)")):
        with pytest.raises(DataError) as err:
            ImageFolder.open(path, 8)
        assert str(err.value) == f"data directory {path}: {fragment}"


def test_a_file_that_vanishes_after_the_folder_was_opened(tmp_path):
    for i in range(3):
        (tmp_path / f"{i}.png").write_bytes(_png(np.full((4, 4, 3), i, np.uint8)))
    data = ImageFolder.open(tmp_path, 4)
    (tmp_path / "1.png").unlink()
    (tmp_path / "2.png").write_bytes(b"")
    assert data.load(np.array([0])).shape == (1, 3, 4, 4)
    with pytest.raises(DataError, match=rf"^image {tmp_path / '1.png'}: no such file$"):
        data.load(np.array([0, 1]))
    with pytest.raises(DataError, match=rf"^image {tmp_path / '2.png'}: empty file$"):
        data.load(np.array([2]))


def test_broken_links_and_symlinked_folders_in_a_data_directory(tmp_path, caplog):
    root = tmp_path / "data"
    root.mkdir()
    (root / "a.png").write_bytes(_png(np.zeros((4, 4, 3), np.uint8)))
    (root / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (root / "self").symlink_to(root)  # a loop, when followed
    caplog.set_level(logging.WARNING, logger="core.data")
    data = ImageFolder.open(root, 4)  # "self" is a class folder: followed once, its own links not
    assert data.classes == ["self"] and [p.name for p in data.files] == ["a.png"]
    assert data.skipped == 1 and "the first, self/gone.png: no such file" in caplog.text


# --------------------------------------------------------------------------- fuzz: only DataError, ever


def _seeds() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    rgb = (rng.random((12, 10, 3)) * 255).astype(np.uint8)
    deep = Image.fromarray((rng.random((12, 10)) * 65535).astype(np.uint16))
    floats = Image.fromarray(rng.random((12, 10)).astype(np.float32))
    out = {}
    for kind, fmt, im in (("png", "PNG", Image.fromarray(rgb)), ("jpeg", "JPEG", Image.fromarray(rgb)),
                          ("gif", "GIF", Image.fromarray(rgb).convert("P")), ("bmp", "BMP", Image.fromarray(rgb)),
                          ("webp", "WEBP", Image.fromarray(rgb)), ("ppm", "PPM", Image.fromarray(rgb)),
                          ("tiff", "TIFF", Image.fromarray(rgb)), ("png16", "PNG", deep), ("tiff-float", "TIFF", floats)):
        buf = io.BytesIO()
        im.save(buf, format=fmt)
        out[kind] = buf.getvalue()
    return out


def test_a_tiff_tag_of_the_wrong_type_is_a_data_error():
    """Found by the fuzz below: StripOffsets typed RATIONAL makes Pillow raise TypeError while loading."""
    data = bytearray(_seeds()["tiff"])
    entry = data.index(struct.pack("<HH", 273, 4))  # the StripOffsets entry, type LONG
    data[entry + 2] = 5  # RATIONAL
    with pytest.raises(DataError, match=r"^image odd\.tif: not a readable image \(TypeError: "):
        load_image(bytes(data), 8, name="odd.tif")


FUZZ_CASES = 1_500


@pytest.mark.filterwarnings("ignore")  # Pillow warns about odd TIFF tags and huge headers; not our business
def test_mutated_files_give_an_image_or_a_data_error():
    """Bit flips, cuts and insertions in nine kinds of file: each loads as a (3, 8, 8) array in
    [0, 1] or raises DataError naming it; nothing else escapes."""
    seeds = _seeds()
    rnd = random.Random(8)
    outcomes = {"loaded": 0, "refused": 0}
    started = time.perf_counter()
    for case in range(FUZZ_CASES):
        kind = rnd.choice(sorted(seeds))
        data = bytearray(seeds[kind])
        for _ in range(rnd.randint(1, 6)):
            i = rnd.randrange(len(data))
            op = rnd.random()
            if op < 0.6:
                data[i] = rnd.randrange(256)
            elif op < 0.8:
                del data[i : i + rnd.randint(1, 24)]
            else:
                data[i:i] = rnd.randbytes(rnd.randint(1, 8))
        try:
            x = load_image(bytes(data), 8, name=f"fuzz{case}")
        except DataError as exc:
            assert str(exc).startswith(f"image fuzz{case}: "), str(exc)
            outcomes["refused"] += 1
        else:
            assert x.shape == (3, 8, 8) and x.dtype == np.float32 and 0.0 <= x.min() <= x.max() <= 1.0
            outcomes["loaded"] += 1
    assert outcomes["loaded"] > 100 and outcomes["refused"] > 100, outcomes
    assert time.perf_counter() - started < 30
