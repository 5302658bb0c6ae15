"""What is special about ``video_gan`` beyond the registry-driven suites: the VGAN-family shapes
of the seed config, the two-stream composition m * f + (1 - m) * b (Vondrick et al. 2016) and its
mask penalty in both twins, the objective choice (BCE with one-sided label smoothing, or WGAN-GP)
through the trainers' ``--objective``, and the evaluation videos a run writes per epoch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import keras_impl
import torch_impl
from core.errors import ConfigError
from core.registry import MODELS, make_config
from keras_impl.checkpoint import load_tensors as keras_load
from keras_impl.parts import to_canonical_array
from tests.conftest import randomize_batchnorm
from torch_impl.checkpoint import model_tensors as torch_tensors

TOL = 1e-5


def test_seed_config_is_the_vgan_shape_family():
    cfg = make_config("video_gan")
    assert (cfg.num_frames, cfg.image_size, cfg.latent_dim, cfg.base_frames, cfg.base_size) == (16, 64, 100, 2, 4)
    # 512 x 2 x 4 x 4 -> 256 x 4 x 8 x 8 -> 128 x 8 x 16 x 16 -> 64 x 16 x 32 x 32 -> C x 16 x 64 x 64
    assert cfg.generator_shapes() == [(2, 4, 4), (4, 8, 8), (8, 16, 16), (16, 32, 32), (16, 64, 64)]
    assert [cfg.temporal(i) for i in range(4)] == [(4, 2), (4, 2), (4, 2), (3, 1)]
    assert cfg.discriminator_shapes() == [(8, 32, 32), (4, 16, 16), (2, 8, 8), (2, 4, 4)]
    assert cfg.leaky_slope == 0.2 and cfg.mask_l1 == 0.1
    spec = MODELS["video_gan"]
    assert spec.data == "video" and list(spec.objectives) == ["bce_gan", "wgan_gp"]
    assert spec.hyperparameters["real_label"] == 0.9  # one-sided label smoothing
    model = torch_impl.build("video_gan", cfg)
    assert sum(t.numel() for t in model.state_dict().values() if t.dtype.is_floating_point) == cfg.parameter_count()


@pytest.mark.parametrize("overrides, needle", [
    ({"num_frames": 12}, "power of two"),
    ({"num_frames": 64}, "doublings"),
    ({"image_size": 40}, "multiple of 16"),
    ({"architecture": "three_stream"}, "architecture"),
])
def test_bad_configs_are_refused_by_name(overrides, needle):
    with pytest.raises(ConfigError, match=needle):
        make_config("video_gan", **overrides)


@pytest.fixture(scope="module")
def two_stream():
    torch.manual_seed(0)
    tm = torch_impl.build("video_gan", preset="tiny", architecture="two_stream")
    randomize_batchnorm(tm)
    km = keras_impl.build("video_gan", config=tm.config)
    keras_load(km, torch_tensors(tm))
    return tm.eval(), km


def _with_mask_bias(tm, km, bias: float):
    """Twins whose mask head's bias is ``bias`` (saturating the Sigmoid to ~1 or ~0)."""
    tensors = torch_tensors(tm)
    tensors["generator.mask_head.bias"] = np.full_like(tensors["generator.mask_head.bias"], bias)
    t2 = torch_impl.build("video_gan", config=tm.config)
    t2.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=False)
    k2 = keras_impl.build("video_gan", config=tm.config)
    keras_load(k2, tensors)
    return t2.eval(), k2


def test_two_stream_composes_foreground_over_a_static_background(two_stream):
    """m -> 0: the video is the 2D background, the same in every frame; m -> 1: the 3D foreground,
    which moves. Both twins agree in each regime."""
    tm, km = two_stream
    z = np.random.default_rng(0).standard_normal((2, tm.config.latent_dim)).astype(np.float32)
    for bias, static in ((-60.0, True), (60.0, False)):
        t2, k2 = _with_mask_bias(tm, km, bias)
        with torch.no_grad():
            video = t2.generate(torch.from_numpy(z)).numpy()
        video_k = to_canonical_array(np.asarray(k2.generate(z)), "video")
        assert np.max(np.abs(video - video_k)) <= TOL
        change = np.abs(np.diff(video, axis=1)).max()
        assert (change < 1e-6) if static else (change > 1e-3), (bias, change)


def test_mask_penalty_is_mask_l1_times_the_mean_mask_in_both_twins(two_stream):
    tm, km = two_stream
    z = np.random.default_rng(1).standard_normal((3, tm.config.latent_dim)).astype(np.float32)
    with torch.no_grad():
        video, penalty = tm.generate_with_penalty(torch.from_numpy(z))
        _, mask = tm.generator.forward_with_mask(torch.from_numpy(z))
    assert float(penalty) == pytest.approx(0.1 * float(mask.mean()), rel=1e-6)
    assert 0.0 < float(mask.min()) and float(mask.max()) < 1.0
    k_video, k_penalty = km.generate_with_penalty(z)
    assert abs(float(k_penalty) - float(penalty)) <= TOL
    assert np.max(np.abs(to_canonical_array(np.asarray(k_video), "video") - video.numpy())) <= TOL
    single = torch_impl.build("video_gan", preset="tiny")
    assert single.generate_with_penalty(torch.from_numpy(z))[1] is None


@pytest.mark.parametrize("objective", ["bce_gan", "wgan_gp"])
def test_generator_update_adds_and_logs_the_mask_penalty(two_stream, objective):
    """The same weights with mask_l1 0.1 and 0: the generator losses differ by exactly the logged penalty."""
    import dataclasses

    from core.objectives.base import StepContext
    from tests.models.registry_cases import Case, objective_of
    from torch_impl.objectives import update_function

    tm, _ = two_stream
    case = Case("video_gan", "two_stream", {"architecture": "two_stream"})
    obj = objective_of(case, tm.config, objective)
    inputs = {k: torch.from_numpy(v) for k, v in obj.step_inputs(StepContext(0, 0, 2, 10)).items()}
    cfg = tm.config
    batch = torch.zeros(2, cfg.num_frames, cfg.in_channels, cfg.image_size, cfg.image_size)
    losses = {}
    for weight in (0.1, 0.0):
        model = torch_impl.build("video_gan", config=dataclasses.replace(cfg, mask_l1=weight))
        model.load_state_dict(tm.state_dict())
        losses[weight] = {k: float(v) for k, v in update_function(objective, "generator")(
            model.train(), batch, inputs, obj).items()}
    assert losses[0.1]["generator_penalty"] > 0 and losses[0.0]["generator_penalty"] == 0
    assert losses[0.1]["generator"] - losses[0.0]["generator"] == pytest.approx(losses[0.1]["generator_penalty"],
                                                                                 rel=1e-4)


def _train(framework: str, argv: list[str]) -> int:
    import importlib

    return importlib.import_module(f"{framework}_impl.train").main(argv)


@pytest.fixture(scope="module")
def wgan_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("video-wgan") / "run"
    common = ["--data", "digits", "--samples", "3", "--no-progress", "--log-level", "WARNING", "--out", str(out)]
    rc = _train("torch", ["--model", "video_gan", "--preset", "tiny", "--objective", "wgan_gp", "--n-critic", "2",
                          "--batch-size", "4", "--steps", "2", *common])
    assert rc == 0
    return out, common


def test_objective_choice_is_recorded_and_kept_on_resume(wgan_run):
    out, common = wgan_run
    settings = json.loads((out / "hyperparameters.json").read_text())
    assert settings["objective"] == "wgan_gp" and settings["hyperparameters"]["n_critic"] == 2
    assert "real_label" not in settings["hyperparameters"]
    history = json.loads((out / "train_state.json").read_text())["history"]
    assert {"critic", "wasserstein", "gp", "generator"} <= set(history[-1])
    # --resume parses the run's objective's flags and refuses another objective
    assert _train("torch", ["--resume", "--steps", "3", *common]) == 0
    assert _train("torch", ["--resume", "--steps", "4", "--objective", "bce_gan", *common]) == 2


def test_a_run_writes_evaluation_videos_per_epoch(wgan_run):
    from PIL import Image

    from core.images import mp4_available

    out, _ = wgan_run
    gifs = sorted((out / "samples").glob("epoch_*.gif"))
    assert gifs, sorted(p.name for p in (out / "samples").iterdir())
    with Image.open(gifs[-1]) as gif:
        assert gif.n_frames == make_config("video_gan", "tiny").num_frames
    strip = gifs[-1].with_name(gifs[-1].stem + "_frames.png")
    with Image.open(strip) as im:
        # one row per clip (3 samples), one column per frame (4), 16 px frames, 2 px padding
        assert im.size == (4 * 18 + 2, 3 * 18 + 2)
    assert gifs[-1].with_suffix(".mp4").exists() == mp4_available()


def test_unknown_objective_is_refused_by_name(tmp_path, caplog):
    rc = _train("keras", ["--model", "video_gan", "--preset", "tiny", "--objective", "elbo", "--steps", "1",
                          "--no-progress", "--out", str(tmp_path / "run")])
    assert rc == 2 and "bce_gan or wgan_gp" in caplog.text


def test_exported_generator_is_served_unchanged(tmp_path):
    """The runtime and server serve this generator as they serve every video generator: a GIF of
    ``num_frames`` frames, raw clips as .npy, the same pixels as the runtime library."""
    import io
    import logging

    from PIL import Image

    import export.pipeline as exporter
    import runtime
    from runtime.server import create_app
    from tests.runtime.test_serve import MAIN_SETTINGS, LiveServer

    model = torch_impl.build("video_gan", preset="tiny", architecture="two_stream")
    ckpt = torch_impl.save_model(model, tmp_path / "model.safetensors", step=1)
    logging.getLogger("export.pipeline").setLevel(logging.WARNING)
    assert all(r.passed for r in exporter.export_checkpoint(ckpt, tmp_path / "models" / "clips", via="torch"))
    cfg = model.config
    session = runtime.load(tmp_path / "models" / "clips", providers="cpu")
    assert session.is_video and session.frames == cfg.num_frames
    with LiveServer(create_app(tmp_path / "models", MAIN_SETTINGS)) as live:
        live.wait_ready()
        listing = {m["name"]: m for m in live.client.get("/v1/models").json()["models"]}
        assert listing["clips"]["kind"] == "video" and listing["clips"]["frames"] == cfg.num_frames
        r = live.client.post("/v1/models/clips/generate", json={"n": 2, "seed": 3})
        assert r.status_code == 200 and r.headers["content-type"] == "image/gif"
        with Image.open(io.BytesIO(r.content)) as gif:
            assert gif.n_frames == cfg.num_frames
        r = live.client.post("/v1/models/clips/generate", json={"n": 2, "seed": 3, "format": "npy"})
        clips = np.load(io.BytesIO(r.content))
    assert clips.shape[:4] == (2, cfg.num_frames, cfg.image_size, cfg.image_size)
    np.testing.assert_array_equal(clips, session.generate(2, seed=3))
