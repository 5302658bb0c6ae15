"""torch <-> Keras parity for every registry part, at the seed configuration and the tiny preset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import keras_impl
import torch_impl
from keras_impl.checkpoint import load_tensors as keras_load, model_tensors as keras_tensors
from keras_impl.layers.core import torch_named_params
from keras_impl.parts import run_part as keras_run
from core.layouts import nchw_to_nhwc, nhwc_to_nchw, rule
from core.registry import get_model_spec
from tests.conftest import part_inputs, randomize_batchnorm
from torch_impl.checkpoint import model_tensors as torch_tensors
from torch_impl.parts import run_part as torch_run

TOL = 1e-5


def twins(preset: str, seed: int = 0):
    torch.manual_seed(seed)
    tm = randomize_batchnorm(torch_impl.build("conv_vae", preset=preset), seed).eval()
    km = keras_impl.build("conv_vae", config=tm.config)
    keras_load(km, torch_tensors(tm))
    return tm, km


@pytest.mark.parametrize("preset", ["tiny", "seed"])
def test_every_part_matches_in_eval_mode(preset):
    tm, km = twins(preset)
    for name, part in get_model_spec("conv_vae").parts(tm.config).items():
        inputs = part_inputs(part, batch=3, seed=1)
        got, want = keras_run(km, name, *inputs), torch_run(tm, name, *inputs)
        for spec_out, g, w in zip(part.outputs, got, want):
            assert g.shape == w.shape == spec_out.concrete_shape(3)
            diff = float(np.max(np.abs(g - w)))
            assert diff <= TOL, f"{preset}/{name}/{spec_out.name}: max |diff| {diff:.3e}"


def test_every_parameter_is_mapped_exactly_once():
    tm, km = twins("tiny")
    names = [n for n, _, _ in torch_named_params(km)]
    assert len(names) == len(set(names))
    assert set(names) == set(torch_tensors(tm))
    mapped = {id(v) for _, v, _ in torch_named_params(km)}
    assert mapped == {id(v) for v in km.variables}, "a Keras variable is not mirrored in the checkpoint"


def test_batchnorm_training_mode_matches_including_running_stats():
    tm, km = twins("tiny")
    tm.train()
    x = np.random.default_rng(0).random((4, 3, 32, 32), dtype=np.float32)
    eps = np.random.default_rng(1).standard_normal((4, tm.config.latent_dim), dtype=np.float32)
    with torch.no_grad():
        t_out = tm(torch.from_numpy(x), torch.from_numpy(eps))
    k_out = km(nchw_to_nhwc(x), eps=eps, training=True)
    assert np.max(np.abs(nhwc_to_nchw(np.asarray(k_out[0])) - t_out[0].numpy())) <= TOL
    for a, b in zip(k_out[1:], t_out[1:]):
        assert np.max(np.abs(np.asarray(a) - b.numpy())) <= TOL
    after_t, after_k = torch_tensors(tm), keras_tensors(km)
    stats = [n for n in after_t if n.endswith(("running_mean", "running_var"))]
    assert stats
    for n in stats:
        assert np.max(np.abs(after_t[n] - after_k[n])) <= TOL, n


def test_gradients_and_one_adam_step_match():
    import tensorflow as tf

    from keras_impl.losses import vae_loss as keras_loss
    from keras_impl.optimizers import Adam as KerasAdam
    from torch_impl.optimizers import Adam as TorchAdam
    from torch_impl.losses import vae_loss as torch_loss

    tm, km = twins("tiny", seed=3)
    rng = np.random.default_rng(7)
    x = rng.random((8, 3, 32, 32), dtype=np.float32)
    eps = rng.standard_normal((8, tm.config.latent_dim), dtype=np.float32)

    tm.train()
    recon, mu, logvar = tm(torch.from_numpy(x), torch.from_numpy(eps))
    t_loss = torch_loss(recon, torch.from_numpy(x), mu, logvar, 0.5)
    t_opt = TorchAdam(tm.parameters(), lr=1e-3, eps=1e-8)
    t_opt.zero_grad()
    t_loss["loss"].backward()
    t_grads = {n: p.grad.numpy().copy() for n, p in tm.named_parameters()}

    params = [(n, v, r) for n, v, r in torch_named_params(km) if v.trainable]
    with tf.GradientTape() as tape:
        k_recon, k_mu, k_logvar = km(nchw_to_nhwc(x), eps=eps, training=True)
        k_loss = keras_loss(k_recon, nchw_to_nhwc(x), k_mu, k_logvar, 0.5)
    grads = tape.gradient(k_loss["loss"], [v for _, v, _ in params])

    for key in ("loss", "recon", "kl"):
        a, b = t_loss[key].item(), float(k_loss[key])
        assert abs(a - b) <= 1e-5 * max(1.0, abs(a)), (key, a, b)
    assert set(t_grads) == {n for n, _, _ in params}
    for (name, _, r), g in zip(params, grads):
        kg = rule(r).to_torch(np.asarray(g))
        rel = np.linalg.norm(kg - t_grads[name]) / max(np.linalg.norm(t_grads[name]), 1e-12)
        assert rel <= 1e-4, f"gradient of {name}: relative diff {rel:.2e}"


    k_opt = KerasAdam(learning_rate=1e-3, epsilon=1e-8)
    k_opt.apply_gradients(zip(grads, [v for _, v, _ in params]))
    t_opt.step()
    after_t, after_k = torch_tensors(tm), keras_tensors(km)
    for name in t_grads:
        rel = np.linalg.norm(after_k[name] - after_t[name]) / max(np.linalg.norm(after_t[name]), 1e-12)
        assert rel <= 1e-4, f"weights of {name} after one Adam step: relative diff {rel:.2e}"


def test_bridge_round_trip_is_bit_identical(tmp_path):
    tm, _ = twins("tiny", seed=5)
    torch_impl.save_model(tm, tmp_path / "t.safetensors", step=7)
    km = keras_impl.load_model(tmp_path / "t.safetensors")
    keras_impl.save_model(km, tmp_path / "k.safetensors", step=7)
    back = torch_impl.load_model(tmp_path / "k.safetensors")
    original, final = torch_tensors(tm), torch_tensors(back)
    assert set(original) == set(final)
    for name in original:
        assert original[name].dtype == final[name].dtype
        assert np.array_equal(original[name], final[name]), name
