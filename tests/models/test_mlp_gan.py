"""What is special about ``mlp_gan`` (seed 004) beyond the registry-driven suites: the Dropout with
injected keep-masks in both frameworks, the discriminator's training-mode parity under the same
masks, and that a few torch BCE-GAN steps on a fixed batch teach the discriminator something."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import keras_impl
import torch_impl
from core.layouts import nchw_to_nhwc
from core.models.mlp_gan import MLPGANConfig
from core.noise import dropout_masks
from core.objectives.bce_gan import BCEGAN, BCEGANHyperparameters
from core.registry import make_config
from keras_impl.checkpoint import load_tensors as keras_load
from keras_impl.layers.dropout import Dropout as KerasDropout
from torch_impl.checkpoint import model_tensors as torch_tensors
from torch_impl.layers.dropout import Dropout as TorchDropout

TOL = 1e-5
P = 0.3


def _x_and_mask(shape=(4, 256), seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32) + 3.0  # no zeros: a zero output means "dropped"
    mask = (rng.random(shape) >= P).astype(np.float32)
    return x, mask


def _check_random_dropout(x: np.ndarray, y: np.ndarray) -> None:
    kept = y != 0
    assert 0 < kept.mean() < 1, "training without a mask must drop some units and keep others"
    np.testing.assert_allclose(y[kept], x[kept] / (1 - P), rtol=1e-6)


def test_torch_dropout_mask_semantics():
    x, mask = _x_and_mask()
    layer = TorchDropout(P)
    tx, tm = torch.from_numpy(x), torch.from_numpy(mask)
    layer.train()
    np.testing.assert_allclose(layer(tx, tm).numpy(), x * mask / (1 - P), rtol=1e-6)
    torch.manual_seed(0)
    _check_random_dropout(x, layer(tx).numpy())
    layer.eval()
    assert torch.equal(layer(tx, tm), tx) and torch.equal(layer(tx), tx)
    with pytest.raises(ValueError):
        TorchDropout(1.0)


def test_keras_dropout_mask_semantics():
    x, mask = _x_and_mask()
    layer = KerasDropout(P)
    np.testing.assert_allclose(np.asarray(layer(x, mask, training=True)), x * mask / (1 - P), rtol=1e-6)
    _check_random_dropout(x, np.asarray(layer(x, training=True)))
    for training in (False, None):
        np.testing.assert_array_equal(np.asarray(layer(x, mask, training=training)), x)
    assert not layer.variables, "random dropout must not add a (seed) variable to the model"
    with pytest.raises(ValueError):
        KerasDropout(1.0)


def test_seed_config_facts():
    cfg = make_config("mlp_gan")
    assert cfg.dropout_shapes() == ((1024,), (512,), (256,)) and cfg.dropout_rate() == 0.3
    assert (cfg.latent_dim, cfg.image_size, cfg.in_channels, cfg.leaky_slope) == (100, 32, 3, 0.2)
    model = torch_impl.build("mlp_gan", config=cfg)
    assert cfg.parameter_count() == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("preset", ["tiny", "seed"])
def test_discriminator_training_mode_parity_with_injected_masks(preset):
    torch.manual_seed(0)
    tm = torch_impl.build("mlp_gan", preset=preset)
    km = keras_impl.build("mlp_gan", config=tm.config)
    keras_load(km, torch_tensors(tm))
    cfg: MLPGANConfig = tm.config
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (5, cfg.in_channels, cfg.image_size, cfg.image_size)).astype(np.float32)
    masks = dropout_masks(0, 7, 5, cfg.dropout_shapes(), cfg.dropout_rate(), "dropout_real")
    assert [m.shape for m in masks] == [(5, *s) for s in cfg.dropout_shapes()]
    tm.train()
    with torch.no_grad():
        got_t = tm.discriminate(torch.from_numpy(x), [torch.from_numpy(m) for m in masks]).numpy()
        eval_t = tm.eval().discriminate(torch.from_numpy(x)).numpy()
    got_k = np.asarray(km.discriminate(nchw_to_nhwc(x), list(masks), training=True))
    assert got_t.shape == got_k.shape == (5, 1)
    diff = float(np.max(np.abs(got_t - got_k)))
    assert diff <= TOL, f"{preset}: training-mode discriminator max |diff| {diff:.3e}"
    assert np.max(np.abs(got_t - eval_t)) > 1e-4, "the injected masks changed nothing"
    with pytest.raises(ValueError, match="keep-masks"):
        tm.train().discriminate(torch.from_numpy(x), [torch.from_numpy(masks[0])])
    with pytest.raises(ValueError, match="keep-masks"):
        km.discriminate(nchw_to_nhwc(x), [masks[0]], training=True)


def test_torch_training_steps_lower_the_discriminator_loss():
    from torch_impl.train import make_trainer

    cfg = make_config("mlp_gan", "tiny")
    objective = BCEGAN(cfg, BCEGANHyperparameters())
    trainer = make_trainer(cfg, objective, seed=0, total_steps=12)
    batch = np.random.default_rng(0).random((8, cfg.in_channels, cfg.image_size, cfg.image_size), dtype=np.float32)
    losses = [trainer.train_step(batch, step) for step in range(12)]
    assert all(math.isfinite(v) for entry in losses for v in entry.values())
    first = np.mean([e["discriminator"] for e in losses[:2]])
    last = np.mean([e["discriminator"] for e in losses[-2:]])
    assert last < first, (first, last)
