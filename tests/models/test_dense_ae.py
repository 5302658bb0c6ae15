"""What is special about ``dense_ae`` (seed 003) beyond the registry-driven suites: the shapes of its
flat code and of the reshaped reconstruction, its channel-first flatten in both twins, and the
autoencoder facts (no prior, a deterministic encoder, Sigmoid range)."""

from __future__ import annotations

import numpy as np
import torch

import keras_impl
import torch_impl
from core.models.dense_ae import DenseAEConfig
from core.registry import get_model_spec, make_config, runtime_facts
from keras_impl.checkpoint import load_tensors as keras_load
from keras_impl.parts import run_part as keras_run
from torch_impl.checkpoint import model_tensors as torch_tensors


def test_seed_defaults_and_shapes():
    cfg = make_config("dense_ae", "seed")
    assert cfg == DenseAEConfig() and (cfg.image_size, cfg.in_channels, cfg.latent_dim) == (32, 3, 64)
    model = torch_impl.build("dense_ae", cfg).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        z, recon = model.encode(x), model(x)
    assert z.shape == (2, 64) and (z >= 0).all()  # ReLU code
    assert recon.shape == x.shape and (recon > 0).all() and (recon < 1).all()  # Sigmoid
    assert {n: tuple(t.shape) for n, t in torch_tensors(model).items()} == {
        "encoder.0.weight": (64, 3072), "encoder.0.bias": (64,),
        "decoder.0.weight": (3072, 64), "decoder.0.bias": (3072,)}


def test_autoencoder_facts():
    spec, cfg = get_model_spec("dense_ae"), make_config("dense_ae", "tiny")
    parts = spec.parts(cfg)
    assert spec.prior == "none" and spec.objective.name == "reconstruction"
    assert [t.name for t in parts["encoder"].outputs] == ["z"] and parts["decoder"].value_range == (0.0, 1.0)
    assert runtime_facts(cfg) == {"prior": "none", "encoder_kind": "deterministic", "reconstructs": True}


def test_flatten_is_channel_first_in_keras():
    """One input pixel of one channel reaches the code through the same weight column in both twins."""
    tm = torch_impl.build("dense_ae", preset="tiny").eval()
    km = keras_impl.build("dense_ae", config=tm.config)
    keras_load(km, torch_tensors(tm))
    x = np.zeros((1, 3, 16, 16), np.float32)
    x[0, 2, 5, 7] = 1.0  # channel 2, row 5, column 7: flat index 2*256 + 5*16 + 7
    with torch.no_grad():
        want = torch.relu(tm.encoder[0].weight[:, 2 * 256 + 5 * 16 + 7] + tm.encoder[0].bias).numpy()
    np.testing.assert_allclose(keras_run(km, "encoder", x)[0][0], want, atol=1e-6)
