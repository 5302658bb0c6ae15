"""``python -m runtime.evaluate`` on a video generator: the image metrics per frame with the image
network, and FVD through I3D (random weights here: the real file is in no wheel)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from core.metrics import features
from core.metrics.frechet import frechet_distance
from core.registry import MODELS
from runtime import evaluate
from tests.export.feature_weights import random_state

#: the registry's video generator (the test follows the registry, not a name)
VIDEO = next(name for name, spec in MODELS.items() if spec.data == "video" and spec.prior != "none")
IMAGE = next(name for name, spec in MODELS.items() if spec.data == "image" and spec.prior == "normal")


def export_model(root, name, **overrides):
    import export.pipeline as exporter
    import torch_impl

    model = torch_impl.build(name, preset="tiny", **overrides)
    ckpt = torch_impl.save_model(model, root / "model.safetensors", step=1)
    logging.getLogger("export.pipeline").setLevel(logging.WARNING)
    assert all(r.passed for r in exporter.export_checkpoint(ckpt, root / "onnx", via="torch"))
    return root / "onnx"


@pytest.fixture(scope="module")
def short_clips(tmp_path_factory):
    """The tiny preset: 4-frame clips, fewer than FVD's 16."""
    return export_model(tmp_path_factory.mktemp("short"), VIDEO)


@pytest.fixture(scope="module")
def sixteen_frames(tmp_path_factory):
    return export_model(tmp_path_factory.mktemp("long"), VIDEO, num_frames=16, base_frames=4)


@pytest.fixture(scope="module")
def i3d_onnx(tmp_path_factory):
    import export.i3d as i3d

    root = tmp_path_factory.mktemp("i3d")
    torch.save(random_state(i3d.I3D().state_dict(), seed=5), root / i3d.WEIGHTS_FILE)
    return i3d.export_i3d(root / i3d.WEIGHTS_FILE, root / "onnx")


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    """Six 16-frame clips of 16 x 16 (frame sub-folders), random pixels."""
    root = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    for c in range(6):
        (root / f"clip{c}").mkdir()
        for t in range(16):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / f"clip{c}" / f"{t:02d}.png")
    return root


def run(export_dir, tmp_path, *extra, n=24):
    out = tmp_path / "eval.json"
    assert evaluate.main([str(export_dir), "--n", str(n), "--json", str(out), *extra]) == 0
    return json.loads(out.read_text())


def test_per_frame_metrics_and_fvd_unavailable_without_weights(short_clips, tmp_path, capsys):
    report = run(short_clips, tmp_path)
    metrics = report["metrics"]
    assert {"frame_is", "frame_fid", "frame_kid", "frame_precision", "frame_recall", "frame_density",
            "frame_coverage", "fvd"} == set(metrics)
    assert "--i3d-weights" in metrics["fvd"]["unavailable"] and "value" not in metrics["fvd"]
    assert metrics["frame_fid"]["value"] > 0 and 0 <= metrics["frame_precision"]["value"] <= 1
    assert report["features"]["network"] == "digits" and "frame i mod T" in report["features"]["per_frame"]
    assert "fvd" in capsys.readouterr().out and "unavailable" in report["metrics"]["fvd"]


def test_fvd_needs_16_frames(short_clips, i3d_onnx, tmp_path):
    report = run(short_clips, tmp_path, "--metrics", "fid,fvd", "--i3d-weights", str(i3d_onnx))
    assert set(report["metrics"]) == {"frame_fid", "fvd"}
    assert "4 frames" in report["metrics"]["fvd"]["unavailable"]


@pytest.mark.filterwarnings("ignore:.*rank-deficient:RuntimeWarning")  # 6 clips for 400 features
def test_fvd_on_16_frame_clips(sixteen_frames, i3d_onnx, clip_folder, tmp_path):
    report = run(sixteen_frames, tmp_path, "--metrics", "fvd,fid", "--i3d-weights", str(i3d_onnx),
                 "--data", str(clip_folder), n=6)
    fvd = report["metrics"]["fvd"]
    assert np.isfinite(fvd["value"]) and fvd["value"] > 0 and fvd["frames"] == 16
    assert report["video_features"] == {"network": "i3d", "dim": 400, "source": "i3d_pretrained_400.pt"}
    # it is the Fréchet distance of the I3D features of the same real and generated clips
    from runtime.session import load

    session = load(sixteen_frames)
    real = evaluate.real_images(str(clip_folder), session, 6, seed=0)
    fake = session.generate(latents=session.sample_latents(6, 0))
    network = features.i3d(i3d_onnx)
    direct = frechet_distance(features.extract_clips(real, network), features.extract_clips(fake, network))
    assert fvd["value"] == pytest.approx(direct, rel=1e-9)


def test_frame_sample_takes_frame_i_mod_t_of_clip_i():
    clips = np.arange(5 * 3).reshape(5, 3, 1, 1, 1).astype(np.uint8)  # clip c, frame t -> value 3c + t
    assert features.frame_sample(clips).ravel().tolist() == [0, 4, 8, 9, 13]
    # chunk by chunk, with each chunk's first index, gives the same frames
    chunked = np.concatenate([features.frame_sample(clips[:2]), features.frame_sample(clips[2:], start=2)])
    np.testing.assert_array_equal(chunked, features.frame_sample(clips))


def test_wrong_or_broken_feature_networks_are_refused_by_flag_before_any_work(short_clips, tmp_path, capsys):
    """An ONNX that is not I3D (here the generator itself), a corrupt one, and a broken record: exit 2
    with one line naming the flag and the file."""
    decoder = next(short_clips.glob("*.onnx"))
    assert evaluate.main([str(short_clips), "--i3d-weights", str(decoder)]) == 2
    err = capsys.readouterr().err
    assert "--i3d-weights" in err and decoder.name in err and "not the i3d network" in err
    junk = tmp_path / "i3d.onnx"
    junk.write_bytes(b"\x08\x07garbage")
    assert evaluate.main([str(short_clips), "--i3d-weights", str(junk)]) == 2
    assert "i3d.onnx" in capsys.readouterr().err
    (tmp_path / "i3d.json").write_text("[1, 2")
    assert evaluate.main([str(short_clips), "--i3d-weights", str(junk)]) == 2
    err = capsys.readouterr().err
    assert "--i3d-weights" in err and "i3d.json" in err and "Traceback" not in err


def test_fvd_is_refused_for_image_models(tmp_path, capsys):
    exported = export_model(tmp_path, IMAGE)
    assert evaluate.main([str(exported), "--metrics", "fid,fvd"]) == 2
    assert "on a video model only" in capsys.readouterr().err
