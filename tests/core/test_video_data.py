"""core.video_data: moving digits, clip folders (GIF, frame folders, MP4), windows and batches."""

from __future__ import annotations

import functools
import io
import logging
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import core.images
import core.video_data as video_data
from core.errors import ConfigError, DataError, OutputError
from core.images import _to_rgb, load_image
from core.video_data import (
    MOVING_DIGITS,
    VideoFolder,
    digit_size,
    moving_digit_clips,
    open_video_dataset,
    prepare_moving_digits,
)

T, S = 4, 16


def _gif(path: Path, frames: list[np.ndarray]) -> Path:
    """An animated GIF of uint8 frames (consecutive frames must differ: Pillow merges equal ones)."""
    ims = [Image.fromarray(f) for f in frames]
    ims[0].save(path, save_all=True, append_images=ims[1:], duration=100, loop=0)
    return path


def _grey_frames(values, size=(S, S)) -> list[np.ndarray]:
    return [np.full(size, v, np.uint8) for v in values]


def _frame_folder(folder: Path, values, names=None, size=(S, S)) -> Path:
    folder.mkdir(parents=True)
    names = names or [f"{k:03d}.png" for k in range(len(values))]
    for name, value in zip(names, values):
        Image.fromarray(np.full(size, value, np.uint8)).save(folder / name)
    return folder


def _levels(clip: np.ndarray) -> list[int]:
    """The grey level (0..255) of each frame of a (T, C, H, W) clip of solid frames."""
    return [int(round(float(frame.mean()) * 255)) for frame in clip]


# --------------------------------------------------------------------------- moving digits


@pytest.fixture(scope="module")
def digits_root(tmp_path_factory) -> Path:
    return prepare_moving_digits(T, S, tmp_path_factory.mktemp("cache"), clips=10)


def test_moving_digits_layout(digits_root):
    assert digits_root.name == "moving-digits-16-4-10-s0" and (digits_root / ".complete").is_file()
    clips = sorted(p for p in digits_root.iterdir() if p.is_dir())
    assert len(clips) == 10
    for clip in clips:
        frames = sorted(clip.glob("*.png"))
        assert len(frames) == T
        assert Image.open(frames[0]).size == (S, S)


def test_moving_digits_deterministic_per_seed(tmp_path, digits_root):
    again = prepare_moving_digits(T, S, tmp_path / "a", clips=10)
    assert again != digits_root
    for a, b in zip(sorted(digits_root.rglob("*.png")), sorted(again.rglob("*.png")), strict=True):
        assert a.relative_to(digits_root) == b.relative_to(again) and a.read_bytes() == b.read_bytes()
    first, same = (VideoFolder.open(root, T, S) for root in (digits_root, again))
    np.testing.assert_array_equal(first.load(np.arange(10)), same.load(np.arange(10)))
    other = VideoFolder.open(prepare_moving_digits(T, S, tmp_path / "b", clips=10, seed=1), T, S)
    assert other.root.name == "moving-digits-16-4-10-s1"
    assert not np.array_equal(first.load(np.arange(10)), other.load(np.arange(10)))


def test_moving_digits_stay_inside_and_move():
    sprites = video_data._digit_sprites(S)
    assert sprites.shape[1:] == (digit_size(S), digit_size(S)) == (7, 7) and digit_size(64) == 28
    # one digit per clip: a frame's ink is the whole sprite's (nothing cut off at an edge); 40 frames bounce
    for video in moving_digit_clips(40, S, clips=8, digits_per_clip=1, seed=3):
        assert video.shape == (40, S, S) and video.dtype == np.uint8
        ink = video.reshape(40, -1).astype(np.int64).sum(1)
        assert np.isin(ink, sprites.reshape(len(sprites), -1).astype(np.int64).sum(1)).all()
        assert len(set(ink.tolist())) == 1
        assert all(not np.array_equal(video[t], video[t + 1]) for t in range(39))
    for video in moving_digit_clips(12, 64, clips=3, seed=0):
        assert video.shape == (12, 64, 64) and video.max() > 200
        assert all(not np.array_equal(video[t], video[t + 1]) for t in range(11))


def test_moving_digits_marker_of_another_recipe_is_rebuilt(tmp_path, caplog):
    root = prepare_moving_digits(2, 8, tmp_path, clips=2)
    (root / ".complete").write_text("moving digits recipe 0\n")
    (root / "stale").mkdir()
    with caplog.at_level(logging.INFO, logger="core.video_data"):
        assert prepare_moving_digits(2, 8, tmp_path, clips=2) == root
    assert "preparing 2 moving-digit clips" in caplog.text
    assert not (root / "stale").exists() and len(VideoFolder.open(root, 2, 8)) == 2
    assert prepare_moving_digits(2, 8, tmp_path, clips=2, digits_per_clip=3).name == "moving-digits-8-2-2-s0-d3"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left behind


def test_moving_digits_unwritable_cache_is_an_output_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match=str(blocker)):
        prepare_moving_digits(T, S, blocker / "cache", clips=2)


def test_moving_digits_refuses_bad_arguments(tmp_path):
    for kwargs in ({"clips": 0}, {"digits_per_clip": 0}, {"seed": -1}):
        with pytest.raises(ConfigError):
            prepare_moving_digits(T, S, tmp_path, **kwargs)
    with pytest.raises(ConfigError, match="num_frames"):
        prepare_moving_digits(0, S, tmp_path)


def test_open_video_dataset_digits_names_and_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("AGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(video_data, "prepare_moving_digits",
                        functools.partial(video_data.prepare_moving_digits, clips=3))
    for name in ("digits", MOVING_DIGITS):
        data = open_video_dataset(name, T, S, channels=1)
        assert data.root == tmp_path / "cache" / "moving-digits-16-4-3-s0"
        assert len(data) == 3 and data.load(np.arange(3)).shape == (3, T, 1, S, S)
    clips = tmp_path / "clips"
    clips.mkdir()
    _gif(clips / "a.gif", _grey_frames([10, 20, 30, 40]))
    assert len(open_video_dataset(str(clips), T, S)) == 1


# --------------------------------------------------------------------------- loading and batches


def test_load_and_batches_shapes_dtype_range(digits_root):
    data = VideoFolder.open(digits_root, T, S)
    assert len(data) == 10 and data.skipped == 0 and data.channels == 3
    x = data.load(np.array([0, 3, 7]))
    assert x.shape == (3, T, 3, S, S) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.5
    np.testing.assert_array_equal(x[:, :, 0], x[:, :, 1])  # grey frames: R = G = B
    grey = VideoFolder.open(digits_root, T, S, channels=1).load(np.array([0, 3, 7]))
    assert grey.shape == (3, T, 1, S, S) and grey.dtype == np.float32
    np.testing.assert_allclose(grey[:, :, 0], x[:, :, 0], atol=1e-6)
    batches = list(data.batches(4, seed=0, epoch=0))
    assert data.batches_per_epoch(4) == 2 and len(batches) == 2
    assert all(b.shape == (4, T, 3, S, S) and b.dtype == np.float32 for b in batches)
    assert len(list(data.batches(4, seed=0, epoch=0, skip=1))) == 1


def test_same_seed_and_epoch_same_batches(digits_root):
    data = VideoFolder.open(digits_root, T, S)
    first = list(data.batches(3, seed=5, epoch=2))
    again = list(VideoFolder.open(digits_root, T, S).batches(3, seed=5, epoch=2))
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(list(data.batches(3, seed=5, epoch=2, skip=1))[0], first[1])
    other = list(data.batches(3, seed=5, epoch=3))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_window_of_a_long_clip_depends_on_seed_epoch_and_index(tmp_path):
    values = [25 * k for k in range(10)]
    _frame_folder(tmp_path / "clips" / "long", values)
    data = VideoFolder.open(tmp_path / "clips", T, S)
    assert data.clips[0].length == 10
    starts = []
    for epoch in range(12):
        start = data.window_start(0, seed=1, epoch=epoch)
        assert start == int(np.random.default_rng([1, epoch, 0]).integers(0, 7))
        assert _levels(data.load(np.array([0]), seed=1, epoch=epoch)[0]) == values[start : start + T]
        starts.append(start)
    assert len(set(starts)) > 1
    np.testing.assert_array_equal(data.load(np.array([0]), 1, 4), data.load(np.array([0]), 1, 4))


# --------------------------------------------------------------------------- clip folders


def test_gif_clip(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    _gif(clips / "clip.gif", _grey_frames([0, 60, 120, 180]))
    data = VideoFolder.open(clips, T, S)
    assert data.clips[0].kind == "pillow" and data.clips[0].length == 4
    x = data.load(np.array([0]))
    assert x.shape == (1, T, 3, S, S)
    assert _levels(x[0]) == [0, 60, 120, 180]


def test_gif_frames_are_preprocessed_like_load_image(tmp_path):
    """Frames decoded from a video go through the same resize, crop and luma as a still image."""
    yy, xx = np.mgrid[0:12, 0:20]
    frames = [((xx * 12 + yy * 5 + 40 * k) % 256).astype(np.uint8) for k in range(5)]
    (tmp_path / "clips").mkdir()
    path = _gif(tmp_path / "clips" / "wide.gif", frames)
    for channels in (3, 1):
        data = VideoFolder.open(tmp_path / "clips", T, 8, channels=channels)
        start = data.window_start(0, seed=2, epoch=0)
        clip = data.load(np.array([0]), seed=2, epoch=0)[0]
        with Image.open(path) as im:
            for t in range(T):
                im.seek(start + t)
                buf = io.BytesIO()
                _to_rgb(im, "frame").save(buf, format="PNG")
                expected = load_image(buf.getvalue(), 8, channels=channels)
                np.testing.assert_array_equal(clip[t], expected)


def test_frame_folder_clip_in_natural_order(tmp_path):
    names = [f"frame{k}.png" for k in range(1, 12)]  # frame2 < frame10, not "frame10" < "frame2"
    values = [20 * k for k in range(1, 12)]
    _frame_folder(tmp_path / "clips" / "c", values, names)
    (tmp_path / "clips" / "c" / "notes.txt").write_text("ignored")
    (tmp_path / "clips" / "c" / "sub").mkdir()
    data = VideoFolder.open(tmp_path / "clips", 11, S)
    assert [p.name for p in data.clips[0].frames] == names
    assert _levels(data.load(np.array([0]))[0]) == values


def test_clips_are_taken_in_natural_order(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for k in (10, 2, 1):
        _gif(clips / f"clip{k}.gif", _grey_frames([k, k + 50, k + 100, k + 150]))
    assert [c.path.name for c in VideoFolder.open(clips, T, S).clips] == ["clip1.gif", "clip2.gif", "clip10.gif"]


def test_bad_clips_are_skipped_with_one_counted_warning(tmp_path, caplog):
    clips = tmp_path / "clips"
    clips.mkdir()
    _gif(clips / "a_good.gif", _grey_frames([10, 20, 30, 40]))
    (clips / "b_corrupt.gif").write_bytes(b"GIF89a" + os.urandom(64))
    _gif(clips / "c_short.gif", _grey_frames([10, 20]))
    mixed = _frame_folder(clips / "d_mixed", [10, 20, 30])
    Image.fromarray(np.zeros((S + 4, S), np.uint8)).save(mixed / "003.png")
    (clips / "e_notes.txt").write_text("not a clip")
    _frame_folder(clips / "f_good_frames", [1, 2, 3, 4])
    _frame_folder(clips / "g_broken_frame", [1, 2, 3, 4])
    (clips / "g_broken_frame" / "002.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with caplog.at_level(logging.DEBUG, logger="core.video_data"):
        data = VideoFolder.open(clips, T, S)
    assert [c.path.name for c in data.clips] == ["a_good.gif", "f_good_frames"] and data.skipped == 5
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "skipped 5 clip(s)" in message and "b_corrupt.gif" in message and str(clips) in message
    debug = caplog.text
    assert "c_short.gif: 2 frame(s), fewer than the 4 a clip needs" in debug
    assert "frames of different sizes: 000.png is 16x16, 003.png is 16x20" in debug
    assert "e_notes.txt: not a video file name" in debug
    assert "frame 002.png: not a readable image" in debug


def test_oversized_gif_is_skipped_before_decoding(tmp_path, monkeypatch, caplog):
    clips = tmp_path / "clips"
    clips.mkdir()
    _gif(clips / "big.gif", _grey_frames([10, 20, 30, 40], size=(40, 40)))
    _gif(clips / "small.gif", _grey_frames([10, 20, 30, 40]))
    monkeypatch.setattr(core.images, "MAX_IMAGE_PIXELS", 1000)
    data = VideoFolder.open(clips, T, S)
    assert [c.path.name for c in data.clips] == ["small.gif"]
    assert "big.gif: 40x40 pixels exceeds the limit of 1000" in caplog.text


def test_empty_or_missing_folder_is_a_data_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=f"{empty}: no usable clips"):
        VideoFolder.open(empty, T, S)
    (empty / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="notes.txt: not a video file name"):
        VideoFolder.open(empty, T, S)
    with pytest.raises(DataError, match="does not exist"):
        VideoFolder.open(tmp_path / "missing", T, S)
    with pytest.raises(DataError, match="not a directory"):
        VideoFolder.open(empty / "notes.txt", T, S)
    with pytest.raises(DataError, match="channels"):
        VideoFolder.open(empty, T, S, channels=2)
    with pytest.raises(ConfigError, match="num_frames"):
        VideoFolder.open(empty, 0, S)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_symlinks_out_of_the_folder_are_not_followed(tmp_path, caplog):
    outside = _frame_folder(tmp_path / "outside" / "clip", [1, 2, 3, 4])
    outside_gif = _gif(tmp_path / "outside" / "x.gif", _grey_frames([1, 2, 3, 4]))
    clips = tmp_path / "clips"
    _frame_folder(clips / "inside", [5, 6, 7, 8])
    (clips / "link").symlink_to(outside, target_is_directory=True)
    (clips / "link.gif").symlink_to(outside_gif)
    (clips / "inside_again").symlink_to(clips / "inside", target_is_directory=True)
    data = VideoFolder.open(clips, T, S)
    assert sorted(c.path.name for c in data.clips) == ["inside", "inside_again"] and data.skipped == 2
    assert "symlink out of the data directory" in caplog.text
    only_links = tmp_path / "only_links"
    only_links.mkdir()
    (only_links / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(DataError, match=str(only_links)):
        VideoFolder.open(only_links, T, S)
    frame_link = _frame_folder(tmp_path / "frame_link" / "c", [1, 2, 3])
    (frame_link / "003.png").symlink_to(tmp_path / "outside" / "clip" / "000.png")
    with pytest.raises(DataError, match="symlink out of the data directory"):
        VideoFolder.open(frame_link.parent, T, S)


def test_mp4_clip(tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    clips = tmp_path / "clips"
    clips.mkdir()
    values = [0, 40, 80, 120, 160, 200]
    writer = imageio_ffmpeg.write_frames(str(clips / "clip.mp4"), (S, S), fps=8, codec="libx264", macro_block_size=1,
                                         ffmpeg_log_level="error", output_params=["-qp", "0"])
    writer.send(None)
    for v in values:
        writer.send(np.full((S, S, 3), v, np.uint8))
    writer.close()
    (clips / "fake.mp4").write_bytes(b"not a video at all")
    data = VideoFolder.open(clips, T, S)
    assert [(c.path.name, c.kind, c.length) for c in data.clips] == [("clip.mp4", "ffmpeg", 6)] and data.skipped == 1
    for epoch in range(3):
        start = data.window_start(0, seed=0, epoch=epoch)
        clip = data.load(np.array([0]), seed=0, epoch=epoch)[0]
        assert clip.shape == (T, 3, S, S) and clip.dtype == np.float32
        np.testing.assert_allclose(_levels(clip), values[start : start + T], atol=3)


def test_video_file_is_opened_as_its_container_only(tmp_path, caplog):
    """A video file that is really a concat list or an HLS playlist must not make ffmpeg read other
    files: its container format comes from its name, never from probing its content."""
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    clips = tmp_path / "clips"
    clips.mkdir()
    secret = clips / "secret.bin"  # a real video under a name that is no clip
    writer = imageio_ffmpeg.write_frames(str(secret), (S, S), fps=8, macro_block_size=1, ffmpeg_log_level="error",
                                         output_params=["-f", "mp4"])
    writer.send(None)
    for v in (0, 50, 100, 150, 200):
        writer.send(np.full((S, S, 3), v, np.uint8))
    writer.close()
    (clips / "concat.avi").write_text("ffconcat version 1.0\nfile 'secret.bin'\n")  # read as 5 frames if probed
    (clips / "playlist.mp4").write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n{secret}\n#EXT-X-ENDLIST\n")
    _gif(clips / "ok.gif", _grey_frames([10, 20, 30, 40]))
    with caplog.at_level(logging.DEBUG, logger="core.video_data"):
        data = VideoFolder.open(clips, T, S)
    assert [c.path.name for c in data.clips] == ["ok.gif"] and data.skipped == 3
    assert "concat.avi: ffmpeg cannot read it" in caplog.text and "playlist.mp4: ffmpeg cannot read it" in caplog.text


def test_mp4_without_imageio_ffmpeg_is_skipped(tmp_path, monkeypatch, caplog):
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    _gif(clips / "clip.gif", _grey_frames([10, 20, 30, 40]))
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import imageio_ffmpeg now raises ImportError
    data = VideoFolder.open(clips, T, S)
    assert [c.path.name for c in data.clips] == ["clip.gif"] and data.skipped == 1
    assert "clip.mp4: needs imageio-ffmpeg" in caplog.text
