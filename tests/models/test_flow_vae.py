"""What is special about ``flow_vae`` (seed 004) beyond the registry-driven suites: the planar flow's
invertibility constraint, its log-determinant against autograd's Jacobian, torch vs Keras flows
(outputs and log-dets), the 5-tuple training forward and the flow ELBO on it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import keras_impl
import torch_impl
from core.layouts import nchw_to_nhwc
from core.registry import make_config
from keras_impl.checkpoint import load_tensors as keras_load
from keras_impl.layers.flows import PlanarFlow as KerasPlanarFlow
from torch_impl.checkpoint import model_tensors as torch_tensors
from torch_impl.layers.flows import PlanarFlow as TorchPlanarFlow

TOL = 1e-5
DIM = 6


def _flow(seed: int, scale: float = 1.0) -> TorchPlanarFlow:
    """A flow with random u, w, b; ``scale`` > 1 makes w^T u strongly negative/positive (where the
    constraint matters)."""
    gen = torch.Generator().manual_seed(seed)
    flow = TorchPlanarFlow(DIM)
    with torch.no_grad():
        flow.u.copy_(torch.randn(DIM, generator=gen) * scale)
        flow.w.copy_(torch.randn(DIM, generator=gen) * scale)
        flow.b.copy_(torch.randn(1, generator=gen))
    return flow.double()


@pytest.mark.parametrize("seed", range(8))
def test_u_hat_satisfies_the_invertibility_constraint(seed):
    flow = _flow(seed, scale=3.0)
    with torch.no_grad():
        u, w, u_hat = flow.u, flow.w, flow.u_hat()
        wu_hat = torch.dot(w, u_hat).item()
        assert wu_hat >= -1.0
        # appendix A: w^T u_hat = m(w^T u) = -1 + softplus(w^T u)
        assert wu_hat == pytest.approx(-1.0 + F.softplus(torch.dot(w, u)).item(), abs=1e-10)
        # u_hat only moves u along w
        residual = (u_hat - u) - torch.dot(u_hat - u, w) / torch.dot(w, w) * w
        assert residual.abs().max().item() < 1e-10


def test_constraint_keeps_a_flow_invertible_that_raw_u_would_not():
    flow = TorchPlanarFlow(DIM).double()
    with torch.no_grad():
        flow.w.copy_(torch.ones(DIM, dtype=torch.float64))
        flow.u.copy_(-torch.ones(DIM, dtype=torch.float64))  # w^T u = -6 < -1: f(z) with raw u folds
        flow.b.zero_()
    z = torch.zeros(1, DIM, dtype=torch.float64)
    _, log_det = flow(z)
    assert torch.isfinite(log_det).all()
    assert torch.dot(flow.w, flow.u_hat()).item() >= -1.0


@pytest.mark.parametrize("seed", range(4))
def test_log_det_is_log_abs_det_of_the_jacobian(seed):
    flow = _flow(seed, scale=1.5)
    z = torch.randn(5, DIM, generator=torch.Generator().manual_seed(100 + seed), dtype=torch.float64)
    out, log_det = flow(z)
    assert out.shape == z.shape and log_det.shape == (5,)
    for i in range(z.shape[0]):
        jac = torch.autograd.functional.jacobian(lambda v: flow(v.unsqueeze(0))[0][0], z[i])
        sign, logabs = torch.linalg.slogdet(jac)
        assert sign.item() > 0  # the constraint: det J = 1 + psi^T u_hat > 0
        assert log_det[i].item() == pytest.approx(logabs.item(), abs=1e-9)


def test_torch_and_keras_flows_agree():
    rng = np.random.default_rng(0)
    for seed in range(3):
        tf_ = _flow(seed, scale=2.0).float()
        kf = KerasPlanarFlow(DIM)
        for name in ("u", "w", "b"):
            getattr(kf, name).assign(getattr(tf_, name).detach().numpy())
        z = rng.standard_normal((7, DIM)).astype(np.float32) * 2.0
        with torch.no_grad():
            t_out, t_ld = tf_(torch.from_numpy(z))
        k_out, k_ld = kf(z)
        assert np.max(np.abs(np.asarray(k_out) - t_out.numpy())) <= TOL
        assert np.max(np.abs(np.asarray(k_ld) - t_ld.numpy())) <= TOL
        assert np.max(np.abs(np.asarray(kf.u_hat()) - tf_.u_hat().detach().numpy())) <= TOL


def test_flow_parameters_have_torch_names_in_both_twins():
    tm = torch_impl.build("flow_vae", preset="tiny")
    km = keras_impl.build("flow_vae", config=tm.config)
    k = tm.config.num_flows
    assert k == 4
    names = set(torch_tensors(tm))
    for i in range(k):
        assert {f"flows.{i}.u", f"flows.{i}.w", f"flows.{i}.b"} <= names
    from keras_impl.checkpoint import model_tensors as keras_tensors

    assert set(keras_tensors(km)) == names
    assert tm.config.parameter_count() == make_config("vae", "tiny").parameter_count() + k * (2 * 8 + 1)


def test_training_forward_is_the_flow_elbo_5_tuple_in_both_twins():
    from keras_impl.losses import elbo as keras_elbo
    from torch_impl.losses import elbo as torch_elbo

    tm = torch_impl.build("flow_vae", preset="tiny")
    km = keras_impl.build("flow_vae", config=tm.config)
    keras_load(km, torch_tensors(tm))
    rng = np.random.default_rng(3)
    x = rng.random((4, 3, 16, 16), dtype=np.float32)
    eps = rng.standard_normal((4, tm.config.latent_dim)).astype(np.float32)
    tm.train()
    with torch.no_grad():
        t_out = tm(torch.from_numpy(x), torch.from_numpy(eps))
        mu, logvar = tm.encode(torch.from_numpy(x))  # q0's parameters (BatchNorm: batch statistics)
        z_k, log_det = tm.flow(mu + torch.from_numpy(eps) * torch.exp(0.5 * logvar))
    assert len(t_out) == 5
    assert torch.allclose(t_out[3], z_k, atol=1e-6) and torch.allclose(t_out[4], log_det, atol=1e-6)
    k_out = km(nchw_to_nhwc(x), eps=eps, training=True)
    assert len(k_out) == 5
    assert np.max(np.abs(np.transpose(np.asarray(k_out[0]), (0, 3, 1, 2)) - t_out[0].numpy())) <= TOL
    for a, b in zip(k_out[1:], t_out[1:]):
        assert np.max(np.abs(np.asarray(a) - b.numpy())) <= TOL
    t_loss = torch_elbo(t_out, torch.from_numpy(x), torch.from_numpy(eps), 0.5, free_bits=0.0)
    k_loss = keras_elbo(k_out, nchw_to_nhwc(x), eps, 0.5, free_bits=0.0)
    for key in ("loss", "recon", "kl"):
        assert float(k_loss[key]) == pytest.approx(t_loss[key].item(), rel=1e-5, abs=1e-5)


def test_encoder_part_decodes_the_flowed_mean():
    tm = torch_impl.build("flow_vae", preset="tiny").eval()
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        mu, logvar = tm.encode(x)
        mu_k = tm.encode_flowed(x)
        assert torch.allclose(mu_k, tm.flow(mu)[0])
        assert not torch.allclose(mu_k, mu)  # the flows are not the identity at initialisation
    from core.registry import make_config, runtime_facts

    # the flowed posterior is not Gaussian: the runtime must not sample variations around it
    assert runtime_facts(make_config("flow_vae", "tiny"))["encoder_kind"] == "deterministic"


def test_flow_kl_estimate_is_the_gaussian_kl_when_the_flows_do_nothing():
    """With log_det = 0 and z_K = z_0 the one-sample flow KL, averaged over many samples, is the
    analytic Gaussian KL (the estimator is unbiased): the flow ELBO's signs and terms are right."""
    from torch_impl.losses import elbo

    g = torch.Generator().manual_seed(0)
    n, d = 200_000, 3
    mu = torch.tensor([[0.5, -1.0, 0.0]]).expand(n, d)
    logvar = torch.tensor([[0.0, -1.0, 0.7]]).expand(n, d)
    eps = torch.randn(n, d, generator=g, dtype=torch.float64).float()
    z0 = mu + eps * torch.exp(0.5 * logvar)
    x = torch.zeros(n, 1)
    flow = elbo((x, mu, logvar, z0, torch.zeros(n)), x, eps, 1.0)["kl"]
    gaussian = elbo((x, mu, logvar), x, eps, 1.0)["kl"]
    assert float(flow) == pytest.approx(float(gaussian), abs=0.02)
    per_dim = [0.5 * (m**2 + np.exp(lv) - 1 - lv) for m, lv in ((0.5, 0.0), (-1.0, -1.0), (0.0, 0.7))]
    assert float(gaussian) == pytest.approx(sum(per_dim), rel=1e-5)
