"""core.configs, core.registry and core.noise: presets, validation, JSON, sizes, seeded latents."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.configs import config_from_json, conv_out_size
from core.models.conv_vae import ConvVAEConfig
from core.registry import MODELS as CONFIG_CLASSES
from core.errors import ConfigError
from core.noise import latents, variation_latents
from core.registry import get_model_spec, make_config, resolve_config
from core.noise import step_noise
from core.objectives.kl import KLHyperparameters, kl_weight

# --------------------------------------------------------------------------- presets and fields


def test_seed_preset_is_the_seed_architecture():
    cfg = make_config("conv_vae", "seed")
    assert cfg == ConvVAEConfig()
    assert (cfg.image_size, cfg.in_channels, cfg.latent_dim) == (150, 3, 128)
    assert cfg.hidden_dims == (32, 64, 128, 256, 512)
    assert (cfg.leaky_slope, cfg.bn_eps, cfg.bn_momentum) == (0.01, 1e-5, 0.1)


def test_tiny_preset_and_overrides():
    tiny = make_config("conv_vae", "tiny")
    assert (tiny.image_size, tiny.latent_dim, tiny.hidden_dims) == (32, 16, (16, 32, 64))
    wide = ConvVAEConfig.preset("tiny", latent_dim=8, hidden_dims=[4, 8])
    assert (wide.image_size, wide.latent_dim, wide.hidden_dims) == (32, 8, (4, 8))
    assert isinstance(wide.hidden_dims, tuple)
    # resolve_config: overrides on top of an explicit config
    assert resolve_config("conv_vae", tiny, latent_dim=4).latent_dim == 4
    assert resolve_config("conv_vae", tiny) is tiny


def test_unknown_preset_names_it_and_lists_the_choices():
    with pytest.raises(ConfigError) as err:
        make_config("conv_vae", "huge")
    assert "'huge'" in str(err.value) and "seed" in str(err.value) and "tiny" in str(err.value)


def test_unknown_field_is_named():
    with pytest.raises(ConfigError, match="latent_size"):
        ConvVAEConfig.preset("tiny", latent_size=3)
    with pytest.raises(ConfigError, match="colour"):
        ConvVAEConfig.from_dict({"colour": "red"})


def test_unknown_model_is_named():
    with pytest.raises(ConfigError, match="'vqgan'"):
        get_model_spec("vqgan")
    with pytest.raises(ConfigError, match="'vqgan'"):
        make_config("vqgan")


@pytest.mark.parametrize(
    "field, value",
    [
        ("image_size", "32"),
        ("image_size", 32.5),
        ("image_size", None),
        ("latent_dim", True),
        ("hidden_dims", 16),
        ("hidden_dims", ["a", "b"]),
        ("hidden_dims", [[16], [32]]),
        ("bn_eps", "small"),
    ],
)
def test_wrong_field_types_are_refused_naming_the_field(field, value):
    with pytest.raises(ConfigError) as err:
        ConvVAEConfig.preset("tiny", **{field: value})
    assert repr(field) in str(err.value)


def test_numeric_fields_are_coerced():
    cfg = ConvVAEConfig.preset("tiny", latent_dim=np.int64(8), bn_eps=1, hidden_dims=[np.int32(4), 8])
    assert type(cfg.latent_dim) is int and type(cfg.bn_eps) is float
    assert cfg.hidden_dims == (4, 8) and all(type(h) is int for h in cfg.hidden_dims)
    json.loads(cfg.to_json())  # NumPy scalars would not serialise


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"image_size": 7}, "image_size"),
        ({"hidden_dims": ()}, "hidden_dims"),
        ({"hidden_dims": (16, 0)}, "hidden_dims"),
        ({"latent_dim": 0}, "latent_dim"),
        ({"in_channels": -1}, "in_channels"),
    ],
)
def test_invalid_values_are_refused(overrides, fragment):
    with pytest.raises(ConfigError, match=fragment):
        ConvVAEConfig.preset("tiny", **overrides)


# --------------------------------------------------------------------------- JSON


@pytest.mark.parametrize(
    "cfg",
    [
        ConvVAEConfig.preset("seed"),
        ConvVAEConfig.preset("tiny"),
        ConvVAEConfig.preset("tiny", image_size=47, hidden_dims=(3, 5, 7, 9), leaky_slope=0.2, bn_momentum=0.05),
    ],
    ids=["seed", "tiny", "custom"],
)
def test_json_round_trip(cfg):
    text = cfg.to_json()
    values = json.loads(text)
    assert values["model"] == "conv_vae"
    assert values["hidden_dims"] == list(cfg.hidden_dims)
    back = config_from_json(text)
    assert back == cfg and type(back) is ConvVAEConfig
    assert back.to_json() == text


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "no 'model' field"),
        ('{"image_size": 32}', "no 'model' field"),
        ('{"model": "gan"}', "unknown model 'gan'"),
        ('{"model": ["conv_vae"]}', "unknown model"),
        ('{"model": "conv_vae", "image_size": 4}', "image_size"),
        ('{"model": "conv_vae", "depth": 4}', "depth"),
        ('{"model": "conv_vae", "hidden_dims": ["x"]}', "hidden_dims"),
    ],
)
def test_bad_config_json_names_the_source(text, fragment):
    with pytest.raises(ConfigError) as err:
        config_from_json(text, source="file /some/where.json")
    assert str(err.value).startswith("file /some/where.json: ")
    assert fragment in str(err.value)


# --------------------------------------------------------------------------- sizes


def test_conv_out_size_is_torch_arithmetic():
    assert conv_out_size(150, 3, 2, 1) == 75
    assert conv_out_size(75, 3, 2, 1) == 38
    assert conv_out_size(5, 3, 1, 1) == 5
    assert conv_out_size(10, 4, 2, 0) == 4


def test_seed_feature_sizes_and_paddings():
    cfg = ConvVAEConfig()
    assert cfg.feature_sizes == [150, 75, 38, 19, 10, 5]
    assert cfg.flat_features == 512 * 5 * 5
    assert cfg.decoder_output_paddings == [1, 0, 1, 0, 1]
    tiny = ConvVAEConfig.preset("tiny")
    assert tiny.feature_sizes == [32, 16, 8, 4]
    assert tiny.decoder_output_paddings == [1, 1, 1]  # 4 -> 8 -> 16 -> 32: 2n - 1 + 1
    assert tiny.flat_features == 64 * 4 * 4


def _decoded_sizes(cfg: ConvVAEConfig) -> list[int]:
    """Walk the decoder: ConvTranspose2d(k=3, s=2, p=1) maps n -> 2n - 1 + output_padding."""
    sizes = [cfg.feature_sizes[-1]]
    for pad in cfg.decoder_output_paddings:
        assert pad in (0, 1)
        sizes.append((sizes[-1] - 1) * 2 - 2 * 1 + 3 + pad)
    return sizes


@pytest.mark.parametrize("depth", [1, 3, 5])
def test_decoder_paddings_restore_every_size(depth):
    for size in range(8, 260):
        cfg = ConvVAEConfig.preset("seed", image_size=size, hidden_dims=(4,) * depth)
        assert _decoded_sizes(cfg) == cfg.feature_sizes[::-1], size


@pytest.mark.parametrize("size", [33, 47, 150])
def test_torch_decoder_lands_on_the_image_size(size):
    torch = pytest.importorskip("torch")
    import torch_impl

    model = torch_impl.build("conv_vae", preset="seed", image_size=size, hidden_dims=(2, 2, 2, 2, 2), latent_dim=3).eval()
    with torch.no_grad():
        mu, logvar = model.encode(torch.zeros(2, 3, size, size))
        out = model.decode(torch.zeros(2, 3))
    assert mu.shape == logvar.shape == (2, 3)
    assert tuple(out.shape) == (2, 3, size, size)


def test_registry_parts_shapes():
    cfg = make_config("conv_vae", "tiny")
    parts = get_model_spec("conv_vae").parts(cfg)
    assert set(parts) == {"encoder", "decoder"}
    enc, dec = parts["encoder"], parts["decoder"]
    assert [t.name for t in enc.inputs] == ["image"] and [t.name for t in enc.outputs] == ["mu", "logvar"]
    assert enc.inputs[0].concrete_shape(5) == (5, 3, 32, 32)
    assert enc.outputs[0].concrete_shape(5) == (5, 16)
    assert dec.inputs[0].concrete_shape(2) == (2, 16) and dec.outputs[0].concrete_shape(2) == (2, 3, 32, 32)
    assert dec.value_range == (0.0, 1.0) and enc.value_range is None
    assert {"conv_vae", "vaegan"} <= set(CONFIG_CLASSES)
    for name in CONFIG_CLASSES:  # every registered model resolves to a spec with parts
        assert get_model_spec(name).parts(make_config(name, "tiny"))


# --------------------------------------------------------------------------- noise


def test_latents_are_deterministic_per_seed():
    a, b, c = latents(6, 16, seed=3), latents(6, 16, seed=3), latents(6, 16, seed=4)
    assert a.dtype == np.float32 and a.shape == (6, 16)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # a prefix of a longer draw: n images from one seed are the first n of more images
    np.testing.assert_array_equal(latents(3, 16, seed=3), a[:3])
    assert latents(0, 16).shape == (0, 16)
    fresh1, fresh2 = latents(4, 8, seed=None), latents(4, 8, seed=None)
    assert not np.array_equal(fresh1, fresh2)


def test_latents_are_standard_normal():
    z = latents(4000, 64, seed=11).astype(np.float64)
    assert abs(z.mean()) < 0.01
    assert abs(z.std() - 1.0) < 0.01


@pytest.mark.parametrize("n, dim", [(-1, 4), (2, 0)])
def test_latents_refuse_bad_sizes(n, dim):
    with pytest.raises(ValueError, match="latents"):
        latents(n, dim)


@pytest.mark.parametrize("scale", [0.01, 0.5, 2.0])
def test_variation_latents_formula(scale):
    rng = np.random.default_rng(7)
    mu = rng.standard_normal(12).astype(np.float32)
    logvar = (rng.standard_normal(12) * 2).astype(np.float32)
    z = variation_latents(mu[None], logvar[None], n=10, scale=scale, seed=5)
    assert z.shape == (10, 12) and z.dtype == np.float32
    eps = np.random.default_rng(5).standard_normal((10, 12), dtype=np.float32).astype(np.float64)
    want = mu.astype(np.float64) + np.sqrt(scale) * np.exp(0.5 * logvar.astype(np.float64)) * eps
    np.testing.assert_allclose(z, want, rtol=1e-5, atol=1e-6)


def test_variation_latents_scale_is_a_variance_scale():
    mu = np.array([0.5, -1.0, 2.0], np.float32)
    logvar = np.log(np.array([0.25, 1.0, 4.0], np.float32))
    z = variation_latents(mu, logvar, n=40000, scale=0.09, seed=1).astype(np.float64)
    np.testing.assert_allclose(z.mean(0), mu, atol=0.01)
    np.testing.assert_allclose(z.var(0), 0.09 * np.exp(logvar), rtol=0.03)
    zero = variation_latents(mu, logvar, n=4, scale=0.0)
    np.testing.assert_array_equal(zero, np.tile(mu, (4, 1)))


def test_variation_latents_refuse_bad_input():
    with pytest.raises(ValueError, match="differ"):
        variation_latents(np.zeros(3), np.zeros(4), n=2, scale=0.1)
    with pytest.raises(ValueError, match="scale"):
        variation_latents(np.zeros(3), np.zeros(3), n=2, scale=-0.1)


def test_step_noise_and_kl_schedules():
    a = step_noise(0, 5, (4, 8))
    np.testing.assert_array_equal(a, step_noise(0, 5, (4, 8)))
    assert not np.allclose(a, step_noise(0, 6, (4, 8)))
    assert not np.allclose(a, step_noise(1, 5, (4, 8)))
    assert not np.allclose(a, step_noise(0, 5, (4, 8), "prior"))
    assert not np.allclose(step_noise(0, 5, (4, 8), "dropout_real", 1), step_noise(0, 5, (4, 8), "dropout_real", 2))

    def weights(total, **hp):
        h = KLHyperparameters.from_dict(hp)
        return [kl_weight(h, s, total) for s in range(total)]

    assert weights(5, kl_weight=2.0) == [2.0] * 5
    linear = weights(20, kl_weight=2.0, kl_schedule="linear", kl_warmup=10)
    assert linear[0] == 0.0 and linear[5] == pytest.approx(1.0) and linear[10:] == [2.0] * 10
    assert weights(5, kl_weight=2.0, kl_schedule="linear", kl_warmup=0) == [2.0] * 5
    # Fu et al. 2019: M = 4 cycles over 40 steps, rising over the first half of each, then flat
    cyc = weights(40, kl_schedule="cyclical", kl_cycles=4, kl_ratio=0.5)
    for start in (0, 10, 20, 30):
        assert cyc[start] == 0.0 and cyc[start + 2] == pytest.approx(0.4)
        assert cyc[start + 5 : start + 10] == [1.0] * 5
    with pytest.raises(ConfigError, match="kl_schedule"):
        KLHyperparameters.from_dict({"kl_schedule": "sawtooth"})
    with pytest.raises(ConfigError, match="kl_ratio"):
        KLHyperparameters.from_dict({"kl_ratio": 0.0})
