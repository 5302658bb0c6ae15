"""vaegan (ParamTanh VAE-GAN): what is special to this model. The registry-driven suite
(tests/models/test_registry_*.py) covers its parts, mapping, bridge, gradients, optimizer steps,
golden outputs, export, runtime and training in every mode; here: the seed-size Transformer stage by
stage, ParamTanh's formulas and initial values, alpha's behaviour, and the modes' refusals.

Weights are perturbed away from their initial values before any comparison (alpha, a, b, omega,
phi and the Transformer's LayerNorms included), so no check can pass by a symmetric init. Run
with ``pytest -s`` to see the measured differences.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import keras_impl
import torch_impl
from keras_impl.checkpoint import load_tensors as keras_load
from keras_impl.checkpoint import model_tensors as keras_tensors
from keras_impl.parts import run_part as keras_run
from core.checkpoint import load_checkpoint, save_checkpoint
from core.models.vaegan import TANH_MODES, VAEGANConfig
from core.errors import CheckpointError, ConfigError
from core.layouts import nchw_to_nhwc, nhwc_to_nchw
from core.param_tanh import ALPHA_BIAS_INIT, TIME_INIT, time_points
from core.registry import get_model_spec, make_config
from tests.conftest import part_inputs
from torch_impl.checkpoint import load_tensors as torch_load
from torch_impl.checkpoint import model_tensors as torch_tensors
from torch_impl.parts import run_part as torch_run

TOL = 1e-5  # forward, absolute
MODES = TANH_MODES


# --------------------------------------------------------------------------- helpers


def perturb(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Add noise to every parameter: half its spread for random tensors, 0.3 for constant ones
    (alpha, a/b/omega/phi, LayerNorm gains and biases, the alpha head's bias)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            spread = float(p.std()) if p.numel() > 1 else 0.0
            scale = 0.5 * spread if spread > 1e-6 else 0.3
            p.add_(torch.randn(p.shape, generator=gen) * scale)
    return model


def perturbed_torch(preset: str, mode: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return perturb(torch_impl.build("vaegan", preset=preset, tanh_mode=mode), seed + 100).eval()


def twins(preset: str, mode: str, seed: int = 0):
    """(torch model, Keras model) with the same perturbed weights; torch in eval mode."""
    tm = perturbed_torch(preset, mode, seed)
    km = keras_impl.build("vaegan", config=tm.config)
    keras_load(km, torch_tensors(tm))
    return tm, km


_CACHE: dict[tuple[str, str], tuple] = {}


def cached_twins(preset: str, mode: str):
    """Twins shared by the tests that leave their weights alone (a Keras build takes seconds)."""
    if (preset, mode) not in _CACHE:
        _CACHE[(preset, mode)] = twins(preset, mode)
    return _CACHE[(preset, mode)]


def max_diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


# --------------------------------------------------------------------------- the seed transformer, stage by stage


def test_transformer_layer_by_layer_at_seed_size():
    """The seed's 12-layer, 12-head AlphaTransformer, one stage at a time: token embedding, every
    encoder layer (chained in each framework, and Keras fed torch's input), the head, alpha."""
    from keras_impl.layers.param_tanh import synthetic_video as keras_video
    from keras import ops
    from torch_impl.layers.param_tanh import synthetic_video as torch_video

    tm, km = cached_twins("seed", "transformer")
    cfg = tm.config
    assert cfg.transformer_layers == 12 and cfg.transformer_heads == 12
    tp, kp = tm.param_tanh.predictor, km.param_tanh.predictor
    assert len(tp.layers) == len(kp.layers.children_list) == cfg.transformer_layers
    z = np.random.default_rng(4).standard_normal((2, cfg.latent_dim), dtype=np.float32)
    with torch.no_grad():
        x = tm.decode_base(torch.from_numpy(z))  # (B, C, H, W) in (0, 1)
    x_np = x.numpy()
    b, c, h, w = x_np.shape
    f, g = cfg.num_frames, cfg.image_size // cfg.patch_size
    diffs = {}

    with torch.no_grad():
        t_tokens = tp.patch_embed(torch_video(x, f).flatten(1, 2)).flatten(2).transpose(1, 2) + tp.pos_embedding
    video = ops.reshape(ops.transpose(keras_video(nchw_to_nhwc(x_np), f), (0, 2, 3, 1, 4)), (-1, h, w, f * c))
    k_tokens = np.asarray(ops.reshape(kp.patch_embed(video), (-1, g * g, cfg.transformer_dim)) + kp.pos_embedding)
    assert k_tokens.shape == tuple(t_tokens.shape) == (b, cfg.num_patches, cfg.transformer_dim)
    diffs["embedding"] = max_diff(k_tokens, t_tokens.numpy())

    t_in, k_in = t_tokens, k_tokens
    for i, (t_layer, k_layer) in enumerate(zip(tp.layers, kp.layers.children_list)):
        with torch.no_grad():
            t_out = t_layer(t_in)
        k_out = np.asarray(k_layer(k_in, training=False))
        local = max_diff(np.asarray(k_layer(t_in.numpy(), training=False)), t_out.numpy())
        diffs[f"layer {i:2d}"] = max_diff(k_out, t_out.numpy())
        diffs[f"layer {i:2d} (own input)"] = local
        assert t_out.abs().max() > 0.1, f"layer {i}: output vanished"
        t_in, k_in = t_out, k_out

    with torch.no_grad():
        t_head = tp.head(t_in)
        t_alpha = tm.param_tanh.alpha_of(x)
    k_head = np.asarray(kp.head(k_in))
    diffs["head"] = max_diff(k_head, t_head.numpy())
    k_alpha = np.asarray(km.param_tanh.alpha_of(nchw_to_nhwc(x_np), training=False))
    diffs["alpha"] = max_diff(nhwc_to_nchw(k_alpha), t_alpha.numpy())
    assert float(t_alpha.std()) > 0.01, "alpha is (almost) constant: the check would be too easy"
    for stage, diff in diffs.items():
        print(f"\n[layers] seed transformer {stage:<20} max|diff| {diff:.3e}", end="")
    print(f"\n[layers] (max|tokens| {float(np.max(np.abs(k_tokens))):.3g} after the embedding, "
          f"{float(np.max(np.abs(k_in))):.3g} after the last layer)", end="")
    bad = {k: v for k, v in diffs.items() if not v <= TOL}
    assert not bad, f"first drift at {next(iter(bad))}: {bad}"


# --------------------------------------------------------------------------- ParamTanh semantics


def _fresh(mode: str, preset: str = "tiny", seed: int = 0):
    torch.manual_seed(seed)
    tm = torch_impl.build("vaegan", preset=preset, tanh_mode=mode).eval()
    return tm, keras_impl.build("vaegan", config=tm.config)


@pytest.mark.parametrize("mode", ["single", "matrix", "time"])
def test_initial_values(mode):
    tm, km = _fresh(mode)
    cfg = tm.config
    chw = (cfg.in_channels, cfg.image_size, cfg.image_size)
    for tensors in (torch_tensors(tm), keras_tensors(km)):
        if mode == "single":
            np.testing.assert_array_equal(tensors["param_tanh.alpha"], np.ones(1, np.float32))
        elif mode == "matrix":
            np.testing.assert_array_equal(tensors["param_tanh.alpha"], np.ones(chw, np.float32))
        else:
            for name, value in TIME_INIT.items():
                np.testing.assert_array_equal(tensors[f"param_tanh.{name}"], np.full(chw, value, np.float32))
    assert TIME_INIT == {"a": 1.0, "b": 0.5, "omega": 1.0, "phi": 0.0}


def test_time_mode_frames_follow_the_formula_at_init():
    """y_k = tanh((1 + 0.5 sin(2 pi k / T)) x) with the initial (a, b, omega, phi)."""
    tm, km = _fresh("time")
    cfg = tm.config
    t = cfg.num_frames
    assert time_points(t) == [k / t for k in range(t)]
    x = np.random.default_rng(0).random((2, cfg.in_channels, cfg.image_size, cfg.image_size), dtype=np.float32)
    want = np.stack([np.tanh((1.0 + 0.5 * np.sin(2.0 * math.pi * k / t)) * x.astype(np.float64))
                     for k in range(t)], axis=1)
    with torch.no_grad():
        t_out = tm.param_tanh(torch.from_numpy(x)).numpy()
    k_out = np.moveaxis(np.asarray(km.param_tanh(nchw_to_nhwc(x))), -1, 2)  # (B, T, H, W, C) -> (B, T, C, H, W)
    assert t_out.shape == k_out.shape == (2, t, *x.shape[1:])
    assert max_diff(t_out, want) <= 1e-6 and max_diff(k_out, want) <= 1e-6
    # frame 0 is plain tanh(x) (and so is frame T/2, where the sine is 0 again); neighbours differ
    np.testing.assert_allclose(t_out[:, 0], np.tanh(x), atol=1e-6)
    assert all(np.abs(t_out[:, k] - t_out[:, k - 1]).max() > 1e-2 for k in range(1, t))


@pytest.fixture(scope="module")
def fresh_transformer():
    """Freshly built transformer-mode twins (torch's init loaded into Keras), and the initial tensors
    of each; tests set the alpha head's weights as they need them."""
    tm, km = _fresh("transformer", seed=4)
    initial = (torch_tensors(tm), keras_tensors(km))
    keras_load(km, initial[0])
    return tm, km, initial


def _set_head(tm, km, weight: np.ndarray, bias: np.ndarray) -> None:
    with torch.no_grad():
        tm.param_tanh.predictor.head.weight.copy_(torch.from_numpy(weight))
        tm.param_tanh.predictor.head.bias.copy_(torch.from_numpy(bias))
    keras_load(km, torch_tensors(tm))


def test_transformer_alpha_is_exactly_one_when_the_head_contributes_nothing(fresh_transformer):
    tm, km, (t_init, k_init) = fresh_transformer
    cfg = tm.config
    bias = "param_tanh.predictor.head.bias"
    for init in (t_init, k_init):  # both frameworks' own initialisers
        np.testing.assert_array_equal(init[bias], np.full(init[bias].shape, ALPHA_BIAS_INIT, np.float32))
    weight = t_init["param_tanh.predictor.head.weight"]
    assert np.abs(weight).max() > 0
    _set_head(tm, km, np.zeros_like(weight), t_init[bias])
    x = np.random.default_rng(1).random((3, cfg.in_channels, cfg.image_size, cfg.image_size), dtype=np.float32)
    with torch.no_grad():
        t_alpha = tm.param_tanh.alpha_of(torch.from_numpy(x)).numpy()
        t_out = tm.param_tanh(torch.from_numpy(x)).numpy()
    k_alpha = np.asarray(km.param_tanh.alpha_of(nchw_to_nhwc(x)))
    assert t_alpha.shape == x.shape and k_alpha.shape == nchw_to_nhwc(x).shape
    assert np.all(t_alpha == 1.0) and np.all(k_alpha == 1.0)
    np.testing.assert_allclose(t_out, np.tanh(x), atol=1e-6)
    np.testing.assert_allclose(nhwc_to_nchw(np.asarray(km.param_tanh(nchw_to_nhwc(x)))), np.tanh(x), atol=1e-6)


def test_transformer_alpha_is_positive(fresh_transformer):
    """softplus keeps alpha > 0 even when the head pushes hard (initial weights x 20, bias -15)."""
    tm, km, (t_init, _) = fresh_transformer
    weight = t_init["param_tanh.predictor.head.weight"]
    _set_head(tm, km, weight * 20.0, np.full(weight.shape[0], -15.0, np.float32))
    cfg = tm.config
    x = np.random.default_rng(2).random((4, cfg.in_channels, cfg.image_size, cfg.image_size), dtype=np.float32)
    with torch.no_grad():
        t_alpha = tm.param_tanh.alpha_of(torch.from_numpy(x)).numpy()
    k_alpha = nhwc_to_nchw(np.asarray(km.param_tanh.alpha_of(nchw_to_nhwc(x))))
    for alpha in (t_alpha, k_alpha):
        assert alpha.shape == x.shape
        assert np.all(alpha > 0), float(alpha.min())
        assert alpha.min() < 1e-3 and alpha.max() > 1.0, "the head does not push alpha far enough to test this"
        assert alpha.std(axis=0).max() > 0, "alpha does not depend on the sample"


def test_time_mode_generates_videos_with_distinct_frames():
    tm, km = cached_twins("tiny", "time")
    cfg = tm.config
    z = part_inputs(get_model_spec("vaegan").parts(cfg)["video_generator"], 3, seed=2)[0]
    with torch.no_grad():
        t_flat = tm.generate_images(torch.from_numpy(z)).numpy()
    k_flat = nhwc_to_nchw(np.asarray(km.generate_images(z)))
    for video, flat in ((torch_run(tm, "video_generator", z)[0], t_flat),
                        (keras_run(km, "video_generator", z)[0], k_flat)):
        assert video.shape == (3, cfg.num_frames, cfg.in_channels, cfg.image_size, cfg.image_size)
        assert np.all(np.isfinite(video))
        for k in range(1, cfg.num_frames):
            assert np.abs(video[:, k] - video[:, k - 1]).max() > 1e-3, f"frames {k - 1} and {k} are the same"
        # generate_images lays the frames out as (B*T, ...) for the critic, video by video
        np.testing.assert_allclose(flat, video.reshape(-1, *video.shape[2:]), atol=1e-6)


# --------------------------------------------------------------------------- errors


def test_unknown_tanh_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="'foo'"):
        make_config("vaegan", "tiny", tanh_mode="foo")
    with pytest.raises(ConfigError, match="tanh_mode.*'bogus'"):
        VAEGANConfig.from_dict({"tanh_mode": "bogus"})
    with pytest.raises(ConfigError, match="'foo'"):
        torch_impl.build("vaegan", preset="tiny", tanh_mode="foo")
    with pytest.raises(ConfigError, match="'foo'"):
        keras_impl.build("vaegan", preset="tiny", tanh_mode="foo")


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_image_and_video_methods_refuse_the_wrong_mode(framework):
    for mode, wrong in (("single", "generate_video"), ("transformer", "generate_video"), ("time", "generate")):
        tm, km = cached_twins("tiny", mode)
        z = np.zeros((1, tm.config.latent_dim), np.float32)
        model, arg = (tm, torch.from_numpy(z)) if framework == "torch" else (km, z)
        with pytest.raises(ConfigError, match="video" if mode == "time" else mode):
            getattr(model, wrong)(arg)


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_tensors_of_another_mode_do_not_load(framework):
    load = torch_load if framework == "torch" else keras_load
    single, _ = cached_twins("tiny", "single")
    matrix_t, matrix_k = cached_twins("tiny", "matrix")
    transformer, _ = cached_twins("tiny", "transformer")
    target = matrix_t if framework == "torch" else matrix_k
    before = torch_tensors(matrix_t) if framework == "torch" else keras_tensors(matrix_k)
    # same names, other shape: the one tensor is named with both shapes
    with pytest.raises(CheckpointError, match=r"'param_tanh\.alpha' has shape \(1,\), expected \(3, 32, 32\)"):
        load(target, torch_tensors(single), "single.safetensors")
    # other names: the missing and the unexpected ones are listed
    with pytest.raises(CheckpointError) as info:
        load(target, torch_tensors(transformer), "transformer.safetensors")
    msg = str(info.value)
    assert "transformer.safetensors" in msg and "missing tensor(s) ['param_tanh.alpha']" in msg
    assert "unexpected tensor(s)" in msg and "param_tanh.predictor.head.weight" in msg
    after = torch_tensors(matrix_t) if framework == "torch" else keras_tensors(matrix_k)
    assert all(np.array_equal(before[k], after[k]) for k in before), "a refused load changed the model"


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_checkpoint_whose_config_names_another_mode_is_refused(framework, tmp_path):
    """single-mode tensors under a matrix-mode config: load_checkpoint reads it, building the model
    it describes and loading its tensors fails, naming the file and the tensor."""
    single, _ = cached_twins("tiny", "single")
    matrix_cfg = make_config("vaegan", "tiny", tanh_mode="matrix")
    path = save_checkpoint(tmp_path / "mixed.safetensors", torch_tensors(single), matrix_cfg, "torch", 3)
    ckpt = load_checkpoint(path, "vaegan")
    assert ckpt.config.tanh_mode == "matrix"
    impl = torch_impl if framework == "torch" else keras_impl
    with pytest.raises(CheckpointError, match=r"mixed\.safetensors.*'param_tanh\.alpha' has shape \(1,\)"):
        impl.load_model(path)
    with pytest.raises(CheckpointError, match=r"'param_tanh\.alpha'"):
        (torch_load if framework == "torch" else keras_load)(impl.build("vaegan", config=ckpt.config),
                                                            ckpt.tensors, str(path))
