"""What is special about ``conv_ae`` (seed 004) beyond the registry-driven suites: the spatial code's
shape (32x32x3 -> 8x8x32 with k=4, s=2, p=1), the Tanh range the trainer maps data onto, and that the
code crosses the part boundary channel-first in both twins."""

from __future__ import annotations

import numpy as np
import torch

import keras_impl
import torch_impl
from core.registry import get_model_spec, make_config, runtime_facts
from core.registry import data_range, latent_shape
from keras_impl.checkpoint import load_tensors as keras_load
from keras_impl.parts import run_part as keras_run
from torch_impl.checkpoint import model_tensors as torch_tensors


def test_seed_architecture_and_code_shape():
    cfg = make_config("conv_ae", "seed")
    assert (cfg.image_size, cfg.in_channels, cfg.hidden_dims, cfg.code_shape) == (32, 3, (16, 32), (32, 8, 8))
    model = torch_impl.build("conv_ae", cfg).eval()
    shapes = {n: tuple(t.shape) for n, t in torch_tensors(model).items()}
    assert shapes == {"encoder.0.weight": (16, 3, 4, 4), "encoder.0.bias": (16,),
                      "encoder.2.weight": (32, 16, 4, 4), "encoder.2.bias": (32,),
                      "decoder.0.weight": (32, 16, 4, 4), "decoder.0.bias": (16,),
                      "decoder.2.weight": (16, 3, 4, 4), "decoder.2.bias": (3,)}
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        z, recon = model.encode(x), model(x)
    assert z.shape == (2, 32, 8, 8) and (z >= 0).all()  # ReLU feature map
    assert recon.shape == x.shape and (recon.abs() < 1).all()  # Tanh


def test_autoencoder_facts_and_tanh_range():
    spec, cfg = get_model_spec("conv_ae"), make_config("conv_ae", "seed")
    parts = spec.parts(cfg)
    assert spec.prior == "none" and spec.objective.name == "reconstruction"
    assert parts["encoder"].outputs[0].shape == ("batch", 32, 8, 8) == parts["decoder"].inputs[0].shape
    assert data_range(cfg) == (-1.0, 1.0) and latent_shape(cfg) == (32, 8, 8)
    assert runtime_facts(cfg) == {"prior": "none", "encoder_kind": "deterministic", "reconstructs": True}


def test_keras_code_is_channel_first_at_the_part_boundary():
    tm = torch_impl.build("conv_ae", preset="tiny").eval()
    km = keras_impl.build("conv_ae", config=tm.config)
    keras_load(km, torch_tensors(tm))
    z = np.zeros((1, *tm.config.code_shape), np.float32)
    z[0, 3, 1, 2] = 1.0  # one code channel at one position
    with torch.no_grad():
        want = tm.decode(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(keras_run(km, "decoder", z)[0], want, atol=1e-6)
