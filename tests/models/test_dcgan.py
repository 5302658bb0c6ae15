"""What is special about ``dcgan`` (the TensorFlow DCGAN tutorial, seed 003) beyond the
registry-driven suites: the three parity traps its config documents (LeakyReLU slope 0.3,
Keras-default BatchNorm in torch's convention over a training step's running statistics, the
5x5 "same" convolutions' sizes and TF's one-pixel offset), the canonical dropout masks in Keras,
and greyscale 28x28 data in the trainer."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch
from torch import nn

import keras_impl
import torch_impl
from core.layouts import nchw_to_nhwc
from core.noise import dropout_masks
from core.registry import make_config
from keras_impl.checkpoint import load_tensors as keras_load
from keras_impl.layers.batchnorm import BatchNorm1d as KerasBatchNorm1d
from keras_impl.layers.core import BatchNorm2d as KerasBatchNorm2d
from keras_impl.layers.core import Conv2d as KerasConv2d
from keras_impl.layers.core import ConvTranspose2d as KerasConvTranspose2d
from keras_impl.layers.core import LeakyReLU as KerasLeakyReLU
from keras_impl.layers.core import torch_named_layers
from tests.conftest import randomize_batchnorm
from torch_impl.checkpoint import model_tensors as torch_tensors

TOL = 1e-5


@pytest.fixture(scope="module")
def twins():
    torch.manual_seed(0)
    tm = torch_impl.build("dcgan", preset="tiny")
    randomize_batchnorm(tm)
    km = keras_impl.build("dcgan", config=tm.config)
    keras_load(km, torch_tensors(tm))
    return tm, km


def test_seed_config_is_the_tutorial():
    cfg = make_config("dcgan")
    assert (cfg.latent_dim, cfg.image_size, cfg.in_channels) == (100, 28, 1)
    assert (cfg.base_size, cfg.projection_features, cfg.generator_sizes) == (7, 7 * 7 * 256, [7, 14, 28])
    assert cfg.dropout_shapes() == ((64, 14, 14), (128, 7, 7)) and cfg.dropout_rate() == 0.3
    assert cfg.flat_features == 128 * 7 * 7
    color = make_config("dcgan", "color")
    assert (color.image_size, color.in_channels, color.base_size) == (64, 3, 16)
    from core.registry import MODELS

    spec = MODELS["dcgan"]
    assert spec.batch_size == 256
    assert spec.hyperparameters == {"lr_generator": 1e-4, "lr_discriminator": 1e-4, "beta1": 0.9, "real_label": 1.0}


def test_leaky_slope_is_keras_default_0_3_in_both(twins):
    """Trap 1: Keras' LeakyReLU() (the tutorial's) has slope 0.3, torch's 0.01."""
    tm, km = twins
    assert keras.layers.LeakyReLU().negative_slope == pytest.approx(0.3)
    slopes_t = [m.negative_slope for m in tm.modules() if isinstance(m, nn.LeakyReLU)]
    slopes_k = [m.negative_slope for _, m in torch_named_layers(km) if isinstance(m, KerasLeakyReLU)]
    assert len(slopes_t) == len(slopes_k) == 3 + 2 and set(slopes_t) == set(slopes_k) == {0.3}
    x = np.linspace(-2, 2, 9, dtype=np.float32)
    np.testing.assert_allclose(np.asarray(KerasLeakyReLU(0.3)(x)), np.asarray(keras.layers.LeakyReLU()(x)))


def test_batchnorm_running_stats_after_a_training_step(twins):
    """Trap 2: Keras' default BatchNormalization (momentum 0.99, eps 1e-3) is torch momentum 0.01,
    eps 1e-3; the first one normalises the Dense's features (BatchNorm1d). One training-mode
    generator pass moves every running statistic the same way in both twins, by torch's rule."""
    tm, km = twins
    cfg = tm.config
    bns_t = [(n, m) for n, m in tm.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    bns_k = {n.rstrip("."): m for n, m in torch_named_layers(km) if isinstance(m, KerasBatchNorm2d)}
    assert [n for n, _ in bns_t] == ["generator.project.1", "generator.upsample.1", "generator.upsample.4"]
    assert isinstance(tm.generator.project[1], nn.BatchNorm1d)
    assert isinstance(bns_k["generator.project.1"], KerasBatchNorm1d)
    assert all((m.eps, m.momentum) == (1e-3, 0.01) for _, m in bns_t)
    assert all((m.eps, m.momentum) == (1e-3, 0.01) for m in bns_k.values())
    before = {n: (m.running_mean.clone().numpy(), m.running_var.clone().numpy()) for n, m in bns_t}
    captured = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, n=n: captured.__setitem__(n, inp[0].detach().numpy()))
             for n, m in bns_t]
    z = np.random.default_rng(3).standard_normal((6, cfg.latent_dim)).astype(np.float32)
    tm.train()
    with torch.no_grad():
        tm.generate(torch.from_numpy(z))
    tm.eval()
    for h in hooks:
        h.remove()
    km.generate(z, training=True)
    for name, m in bns_t:
        x = captured[name]
        axes = (0,) if x.ndim == 2 else (0, 2, 3)
        n = x.size // x.shape[1]
        mean0, var0 = before[name]
        want_mean = 0.99 * mean0 + 0.01 * x.mean(axis=axes)
        want_var = 0.99 * var0 + 0.01 * x.var(axis=axes) * n / (n - 1)
        np.testing.assert_allclose(m.running_mean.numpy(), want_mean, rtol=1e-5, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(m.running_var.numpy(), want_var, rtol=1e-5, atol=1e-6, err_msg=name)
        k = bns_k[name]
        assert np.max(np.abs(np.asarray(k.moving_mean) - m.running_mean.numpy())) <= TOL, name
        assert np.max(np.abs(np.asarray(k.moving_variance) - m.running_var.numpy())) <= TOL, name
    keras_load(km, torch_tensors(tm))  # leave the shared twins as they were built: equal


def test_batchnorm1d_matches_keras_default_batchnormalization():
    """Our BatchNorm1d(eps=1e-3, momentum=0.01) is the tutorial's BatchNormalization(): the same
    training output and moving mean (the moving variance differs only by torch's n/(n-1))."""
    x = np.random.default_rng(0).standard_normal((5, 12)).astype(np.float32) * 2 + 1
    ours, native = KerasBatchNorm1d(12, eps=1e-3, momentum=0.01), keras.layers.BatchNormalization()
    np.testing.assert_allclose(np.asarray(ours(x, training=True)), np.asarray(native(x, training=True)), atol=1e-5)
    np.testing.assert_allclose(np.asarray(ours.moving_mean), np.asarray(native.moving_mean), atol=1e-6)
    var_ours, var_native = np.asarray(ours.moving_variance) - 0.99, np.asarray(native.moving_variance) - 0.99
    np.testing.assert_allclose(var_ours, var_native * 5 / 4, rtol=1e-4)
    tb = torch_impl.layers.batchnorm.BatchNorm1d(12, eps=1e-3, momentum=0.01)
    from core.errors import BatchTooSmall

    with pytest.raises(BatchTooSmall):
        tb.train()(torch.zeros(1, 12))
    with pytest.raises(BatchTooSmall):
        ours(np.zeros((1, 12), np.float32), training=True)


def test_conv_sizes_and_tf_same_padding_offset():
    """Trap 3: 5x5 "same": ConvT stride 1 keeps 7, stride 2 (padding 2, output_padding 1) doubles
    7 -> 14 -> 28 like TF's; the stride-2 Conv2d (padding 2) halves 28 -> 14 -> 7 like TF's. TF
    pads stride 2 asymmetrically, so its values are this layer's shifted by one pixel."""
    cfg = make_config("dcgan")
    tm = torch_impl.build("dcgan", cfg).eval()
    shapes = []
    hooks = [m.register_forward_hook(lambda mod, i, o: shapes.append(tuple(o.shape[1:])))
             for m in tm.modules() if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d))]
    with torch.no_grad():
        tm.discriminate(tm.generate(torch.zeros(2, 100)))
    for h in hooks:
        h.remove()
    assert shapes == [(128, 7, 7), (64, 14, 14), (1, 28, 28), (64, 14, 14), (128, 7, 7)]

    rng = np.random.default_rng(0)
    # stride-2 conv: TF "same" (pads 1 before, 2 after) on x == ours (2 and 2) on x shifted one
    # pixel up-left, except the first output row and column (TF's reads x's first row/column there)
    x = rng.standard_normal((2, 28, 28, 3)).astype(np.float32)
    ours, tf_same = KerasConv2d(3, 4, 5, 2, 2, bias=False), keras.layers.Conv2D(4, 5, strides=2, padding="same",
                                                                               use_bias=False)
    ours(x), tf_same(x)
    tf_same.kernel.assign(ours.conv.kernel)
    shifted = np.zeros_like(x)
    shifted[:, :-1, :-1] = x[:, 1:, 1:]
    got, want = np.asarray(ours(shifted)), np.asarray(tf_same(x))
    assert got.shape == want.shape == (2, 14, 14, 4)
    np.testing.assert_allclose(got[:, 1:, 1:], want[:, 1:, 1:], atol=1e-4)
    assert np.max(np.abs(np.asarray(ours(x)) - want)) > 1e-2, "symmetric and TF padding should differ"
    # stride-2 transposed conv: TF "same" crops the full output at [1, 2n+1), ours at [2, 2n+2)
    h = rng.standard_normal((2, 7, 7, 4)).astype(np.float32)
    ours_t = KerasConvTranspose2d(4, 3, 5, 2, 2, output_padding=1, bias=False)
    tf_t = keras.layers.Conv2DTranspose(3, 5, strides=2, padding="same", use_bias=False)
    ours_t(h), tf_t(h)
    tf_t.kernel.assign(ours_t.conv.kernel)
    got, want = np.asarray(ours_t(h)), np.asarray(tf_t(h))
    assert got.shape == want.shape == (2, 14, 14, 3)
    np.testing.assert_allclose(got[:, :-1, :-1], want[:, 1:, 1:], atol=1e-4)
    # stride 1: symmetric 2 + 2 is TF's "same" exactly
    tf_1 = keras.layers.Conv2DTranspose(3, 5, strides=1, padding="same", use_bias=False)
    ours_1 = KerasConvTranspose2d(4, 3, 5, 1, 2, bias=False)
    ours_1(h), tf_1(h)
    tf_1.kernel.assign(ours_1.conv.kernel)
    np.testing.assert_allclose(np.asarray(ours_1(h)), np.asarray(tf_1(h)), atol=1e-4)


def test_discriminator_training_parity_with_canonical_masks(twins):
    """The (B, C, H, W) keep-masks drawn in core reach the Keras NHWC activations transposed."""
    tm, km = twins
    cfg = tm.config
    x = np.random.default_rng(1).uniform(-1, 1, (5, cfg.in_channels, cfg.image_size, cfg.image_size))
    x = x.astype(np.float32)
    masks = dropout_masks(0, 3, 5, cfg.dropout_shapes(), cfg.dropout_rate(), "dropout_real")
    assert [m.shape for m in masks] == [(5, *s) for s in cfg.dropout_shapes()]
    with torch.no_grad():
        got_t = tm.train().discriminate(torch.from_numpy(x), [torch.from_numpy(m) for m in masks]).numpy()
        eval_t = tm.eval().discriminate(torch.from_numpy(x)).numpy()
    got_k = np.asarray(km.discriminate(nchw_to_nhwc(x), list(masks), training=True))
    assert np.max(np.abs(got_t - got_k)) <= TOL
    assert np.max(np.abs(got_t - eval_t)) > 1e-4, "the injected masks changed nothing"
    with pytest.raises(ValueError, match="keep-masks"):
        km.discriminate(nchw_to_nhwc(x), [masks[0]], training=True)


def test_trainer_reads_greyscale_digits_at_28(tmp_path, monkeypatch):
    """The trainers load data with the config's in_channels: the seed config trains on (B, 1, 28, 28)."""
    from core.trainer_base import FrameworkTrainer
    from torch_impl.train import main

    seen = []
    original = FrameworkTrainer.train_step

    def spy(self, batch, step):
        seen.append(batch.shape)
        return original(self, batch, step)

    monkeypatch.setattr(FrameworkTrainer, "train_step", spy)
    rc = main(["--model", "dcgan", "--steps", "1", "--batch-size", "4", "--samples", "4",
               "--out", str(tmp_path / "run"), "--no-progress"])
    assert rc == 0 and seen == [(4, 1, 28, 28)]
    from core.data import open_dataset

    grey, rgb = open_dataset("digits", 28, 1), open_dataset("digits", 28)
    a, b = grey.load(np.arange(3)), rgb.load(np.arange(3))
    assert a.shape == (3, 1, 28, 28) and b.shape == (3, 3, 28, 28)
    np.testing.assert_allclose(a[:, 0], b[:, 0], atol=1e-5)  # one cache: grey stored as R = G = B
