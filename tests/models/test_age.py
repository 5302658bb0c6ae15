"""What is special about ``age`` (Adversarial Generator-Encoder Networks, Ulyanov et al. 2018)
beyond the registry-driven suites: the game's terms against NumPy in both twins (the corrected
Gaussian-fit KL, the reference-scaled latent cosine), unit-norm codes, the schedule (one encoder
run, then ``generator_steps`` generator runs on their own noise), which network each update
moves, a short training run in both frameworks, the seed preset's size, and the defaults of the
issue (the reference's CIFAR-10 recipe)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import torch

import keras_impl
import torch_impl
from core.errors import ConfigError
from core.layouts import nchw_to_nhwc
from core.models.age import AGEConfig
from core.objectives.age_game import AGEGame, AGEHyperparameters
from core.priors import SPHERE_EPS, to_sphere
from core.objectives.base import StepContext
from core.registry import MODELS, make_config
from keras_impl import losses as keras_losses
from keras_impl.checkpoint import load_tensors as keras_load
from keras_impl.checkpoint import model_tensors as keras_tensors
from keras_impl.init import initialize as keras_initialize
from tests.models.registry_cases import perturbed_tensors
from torch_impl import losses as torch_losses
from torch_impl.checkpoint import load_tensors as torch_load
from torch_impl.checkpoint import model_tensors as torch_tensors
from torch_impl.init import initialize as torch_initialize

TOL = 1e-5


# --------------------------------------------------------------------------- NumPy references


def numpy_kl(codes: np.ndarray) -> float:
    """The corrected Gaussian-fit KL, written out: biased variance, mean over dimensions."""
    q = codes.astype(np.float64)
    m = q.mean(axis=0)
    v = ((q - m) ** 2).mean(axis=0)
    return float(np.mean((v + m**2 - 1.0 - np.log(v)) / 2.0))


def reference_kl(codes: np.ndarray) -> float:
    """DmitryUlyanov/AGE ``KLN01Loss`` (direction "qp", minimize): (v^2 + m^2)/2 - log v - 1/2,
    averaged over dimensions: the variance squared (the bug of issue #3)."""
    q = codes.astype(np.float64)
    m = q.mean(axis=0)
    v = ((q - m) ** 2).mean(axis=0)
    return float(np.mean((v**2 + m**2) / 2.0 - np.log(v) - 0.5))


def numpy_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """(1/M) * mean over the batch of (1 - cos(a_b, b_b))."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(np.mean(1.0 - cos) / a.shape[1])


def reference_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """DmitryUlyanov/AGE ``src/utils.match(a, b, 'cos')``: 2 - mean over B x M of â ⊙ b̂."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float(2.0 - np.mean(an * bn))


def _both(fn_name: str, *arrays: np.ndarray) -> tuple[float, float]:
    t = getattr(torch_losses, fn_name)(*[torch.from_numpy(a) for a in arrays])
    k = getattr(keras_losses, fn_name)(*[tf.convert_to_tensor(a) for a in arrays])
    return float(t), float(k)


@pytest.fixture(scope="module")
def codes() -> np.ndarray:
    """(B, M) = (16, 6) codes with means off 0 and variances far from 1 (0.25 .. 9)."""
    rng = np.random.default_rng(4)
    scale = np.array([0.5, 1.0, 1.5, 2.0, 3.0, 0.7])
    return (rng.standard_normal((16, 6)) * scale + np.linspace(-0.5, 0.8, 6)).astype(np.float32)


# --------------------------------------------------------------------------- the terms


def test_kl_matches_numpy_in_both_twins(codes):
    want = numpy_kl(codes)
    t, k = _both("gaussian_fit_kl", codes)
    assert t == pytest.approx(want, rel=1e-5) and k == pytest.approx(want, rel=1e-5)
    assert abs(t - k) <= TOL
    # a batch that is exactly N(0, 1)-shaped per dimension (mean 0, biased variance 1): KL 0
    unit = np.array([[1.0, -1.0], [-1.0, 1.0], [1.0, 1.0], [-1.0, -1.0]], np.float32)
    assert max(abs(v) for v in _both("gaussian_fit_kl", unit)) <= 1e-7


def test_kl_is_the_corrected_formula_not_the_variance_squared(codes):
    """The reference squares the variance; on a batch whose variance is not 1 the two differ, and
    ours is the reference's formula evaluated at the standard deviation (what it meant)."""
    ours, ref = numpy_kl(codes), reference_kl(codes)
    t, k = _both("gaussian_fit_kl", codes)
    assert abs(ours - ref) > 0.5  # variances 0.25 .. 9: far apart
    assert abs(t - ref) > 0.5 and abs(k - ref) > 0.5
    # per dimension: reference(v) = (v^2 + m^2)/2 - log v - 1/2 is the corrected KL of variance v^2
    one = codes[:, [4]]  # variance about 9
    m, v = float(one.astype(np.float64).mean()), float(one.astype(np.float64).var())
    assert reference_kl(one) == pytest.approx((v**2 + m**2 - 1 - np.log(v**2)) / 2, rel=1e-9)
    assert numpy_kl(one) == pytest.approx(0.5 * (v + m**2 - 1 - np.log(v)), rel=1e-9)
    # the variance is the biased one (1/B), as torch's var(unbiased=False) and tf.math.reduce_variance
    biased = torch.var(torch.from_numpy(codes), dim=0, unbiased=False).numpy()
    np.testing.assert_allclose(biased, tf.math.reduce_variance(codes, axis=0).numpy(), rtol=1e-5)
    m_all = codes.astype(np.float64).mean(0)
    want = float(np.mean((biased + m_all**2 - 1 - np.log(biased)) / 2))
    assert t == pytest.approx(want, rel=1e-5)


def test_cosine_term_matches_numpy_and_the_reference_up_to_a_constant(codes):
    rng = np.random.default_rng(5)
    other = rng.standard_normal(codes.shape).astype(np.float32)
    want = numpy_cosine(codes, other)
    t, k = _both("latent_cosine", codes, other)
    assert t == pytest.approx(want, rel=1e-5, abs=1e-7) and k == pytest.approx(want, rel=1e-5, abs=1e-7)
    # the reference's 2 - mean(â ⊙ b̂) is this plus the constant 2 - 1/M (the same gradient)
    m = codes.shape[1]
    assert reference_cosine(codes, other) == pytest.approx(want + 2.0 - 1.0 / m, rel=1e-9)
    # a perfect match (up to scale) costs nothing; opposite codes cost 2/M
    assert max(abs(v) for v in _both("latent_cosine", codes, 3.0 * codes)) <= 1e-6
    assert all(v == pytest.approx(2.0 / m, rel=1e-5) for v in _both("latent_cosine", codes, -codes))


def test_mean_absolute_error_matches_numpy():
    rng = np.random.default_rng(6)
    a, b = rng.uniform(-1, 1, (2, 3, 4, 4)).astype(np.float32), rng.uniform(-1, 1, (2, 3, 4, 4)).astype(np.float32)
    t, k = _both("mean_absolute_error", a, b)
    assert t == pytest.approx(float(np.mean(np.abs(a - b))), rel=1e-6) and k == pytest.approx(t, rel=1e-6)


def test_sphere_projection_is_the_same_everywhere():
    from keras_impl.layers.sphere import to_sphere as keras_sphere
    from torch_impl.layers.sphere import to_sphere as torch_sphere

    x = np.random.default_rng(7).standard_normal((5, 9)).astype(np.float32)
    want = x / np.sqrt(np.sum(x.astype(np.float64) ** 2, axis=1, keepdims=True) + SPHERE_EPS)
    for got in (to_sphere(x), torch_sphere(torch.from_numpy(x)).numpy(), keras_sphere(tf.constant(x)).numpy()):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    zero = np.zeros((1, 4), np.float32)  # no direction: stays 0, finite
    assert np.array_equal(to_sphere(zero), zero)
    assert np.array_equal(torch_sphere(torch.from_numpy(zero)).numpy(), zero)


# --------------------------------------------------------------------------- the networks


@pytest.fixture(scope="module")
def twins():
    """Tiny twins with the same perturbed weights (lively BatchNorm statistics)."""
    config = make_config("age", "tiny")
    tensors = perturbed_tensors("age", config, seed=11)
    tm = torch_load(torch_impl.build("age", config=config), tensors)
    km = keras_load(keras_impl.build("age", config=config), tensors)
    return tm, km, tensors


@pytest.mark.parametrize("preset", ["tiny", "seed"])
def test_encoder_outputs_are_unit_vectors_in_both_twins(preset):
    config = make_config("age", preset)
    tm = torch_initialize(torch_impl.build("age", config=config), 0)
    km = keras_initialize(keras_impl.build("age", config=config), 0)
    rng = np.random.default_rng(8)
    x = rng.uniform(-1, 1, (4, 3, config.image_size, config.image_size)).astype(np.float32)
    for training in (False, True):
        tm.train(training)
        with torch.no_grad():
            zt = tm.encode(torch.from_numpy(x)).numpy()
        zk = km.encode(nchw_to_nhwc(x), training=training).numpy()
        assert zt.shape == zk.shape == (4, config.latent_dim)
        for z in (zt, zk):
            np.testing.assert_allclose(np.linalg.norm(z.astype(np.float64), axis=1), 1.0, atol=1e-6)
        assert np.abs(zt - zk).max() <= TOL
    # the runtime's view: a deterministic encoder on the sphere prior
    from core.registry import runtime_facts

    assert runtime_facts(config) == {"prior": "sphere", "encoder_kind": "deterministic", "reconstructs": True}


def test_generator_is_tanh_ranged_and_sized():
    config = make_config("age", "seed")
    tm = torch_initialize(torch_impl.build("age", config=config), 0).eval()
    z = torch.from_numpy(to_sphere(np.random.default_rng(9).standard_normal((2, 128)).astype(np.float32)))
    with torch.no_grad():
        image = tm.generate(z)
    assert tuple(image.shape) == (2, 3, 32, 32) and float(image.abs().max()) <= 1.0
    assert MODELS["age"].parts(config)["generator"].value_range == (-1.0, 1.0)


def test_seed_parameter_count_matches_the_built_models():
    config = make_config("age", "seed")
    tm = torch_impl.build("age", config=config)
    km = keras_impl.build("age", config=config)
    torch_count = sum(t.size for t in torch_tensors(tm).values())
    keras_count = sum(t.size for t in keras_tensors(km).values())
    # by hand: convs (no bias but the encoder head's), 4 BatchNorm tensors per normalised channel
    encoder = 16 * (3 * 64 + 64 * 128 + 128 * 256 + 256 * 128) + 128 + 4 * (128 + 256)
    generator = 16 * (128 * 256 + 256 * 128 + 128 * 64 + 64 * 3) + 4 * (256 + 128 + 64)
    assert torch_count == keras_count == config.parameter_count() == encoder + generator == 2_368_896
    assert sum(p.numel() for p in tm.encoder.parameters()) + 2 * (128 + 256) == encoder


def test_initial_conv_weights_are_dcgans_normal():
    """N(0, 0.02^2) conv weights (the reference's weights_init), declared to core.init by both twins."""
    from keras_impl.init import init_entries as keras_entries
    from torch_impl.init import init_entries as torch_entries

    config = make_config("age", "seed")
    tm = torch_impl.build("age", config=config)
    entries = torch_entries(tm)
    assert entries == keras_entries(keras_impl.build("age", config=config))
    rules = {e.name: e.init for e in entries}
    conv = [n for n, m in tm.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert len(conv) == 8
    for name in conv:
        assert rules[f"{name}.weight"] == config.init_rule() and config.init_rule().kwargs == {"mean": 0.0, "std": 0.02}
    tensors = torch_tensors(torch_initialize(tm, 0))
    assert float(np.std(tensors["encoder.features.2.weight"])) == pytest.approx(0.02, rel=0.05)


def test_config_sizes_are_checked():
    with pytest.raises(ConfigError, match="image_size 24"):
        make_config("age", "seed", image_size=24)
    with pytest.raises(ConfigError, match="generator_dims"):
        make_config("age", "seed", generator_dims=(256, 128))
    assert make_config("age", "seed", image_size=64, encoder_dims=(32, 64, 128, 256),
                       generator_dims=(256, 128, 64, 32)).encoder_sizes == [32, 16, 8, 4]


# --------------------------------------------------------------------------- the game


def _objective(config, **overrides) -> AGEGame:
    return AGEGame(config, AGEHyperparameters.from_dict(overrides))


def test_defaults_are_the_reference_recipe():
    """The issue's numbers (the reference README's CIFAR-10 command and age.py's defaults)."""
    hp = AGEHyperparameters()
    assert (hp.encoder_kl_real, hp.encoder_kl_fake, hp.encoder_match_x, hp.encoder_match_z) == (1.0, 1.0, 10.0, 0.0)
    assert (hp.generator_kl_fake, hp.generator_match_z, hp.generator_match_x) == (1.0, 1000.0, 0.0)
    assert hp.generator_steps == 2
    assert (hp.lr_encoder, hp.lr_generator, hp.beta1) == (2e-4, 2e-4, 0.5)
    spec = MODELS["age"]
    assert spec.objective is AGEGame and spec.prior == "sphere" and spec.batch_size == 64
    assert spec.hyperparameters == {}  # the objective's defaults are the model's recipe
    config = make_config("age")
    assert config == AGEConfig()
    assert (config.image_size, config.in_channels, config.latent_dim) == (32, 3, 128)
    assert config.encoder_dims == (64, 128, 256) and config.generator_dims == (256, 128, 64)
    assert (config.leaky_slope, config.bn_eps, config.bn_momentum, config.kernel_size) == (0.2, 1e-5, 0.1, 4)
    tiny = make_config("age", "tiny")
    assert (tiny.image_size, tiny.latent_dim) == (16, 8)
    opts = {o.name: o for o in _objective(config).optimizers()}
    assert set(opts) == {"encoder", "generator"}
    for o in opts.values():
        assert (o.lr, o.betas, o.eps) == (2e-4, (0.5, 0.999), 1e-8)
    # every weight and the schedule are flags of the trainers
    from core.cli import train_parser

    flags = {a.dest for a in train_parser("t", "age")._actions}
    assert {f.name for f in dataclasses.fields(AGEHyperparameters)} <= flags


def test_hyperparameters_are_validated():
    with pytest.raises(ConfigError, match="encoder step"):
        AGEHyperparameters.from_dict({"encoder_kl_real": 0.0, "encoder_kl_fake": 0.0, "encoder_match_x": 0.0})
    with pytest.raises(ConfigError, match="generator step"):
        AGEHyperparameters.from_dict({"generator_kl_fake": 0.0, "generator_match_z": 0.0})
    with pytest.raises(ConfigError, match="generator_steps"):
        AGEHyperparameters.from_dict({"generator_steps": 0})
    with pytest.raises(ConfigError, match="at least 2"):
        _objective(make_config("age", "tiny")).step_inputs(StepContext(0, 0, 1, 1))


@pytest.mark.parametrize("generator_steps", [1, 2, 3])
def test_schedule_runs_the_encoder_then_each_generator_run_on_its_own_noise(generator_steps):
    config = make_config("age", "tiny")
    objective = _objective(config, generator_steps=generator_steps)
    encoder, generator = objective.updates
    assert objective.schedule(0) == objective.schedule(7) == (encoder,) + (generator,) * generator_steps
    inputs = objective.step_inputs(StepContext(seed=3, step=5, batch=4, total_steps=10))
    assert sorted(inputs) == [f"prior_{k}" for k in range(generator_steps + 1)]
    for z in inputs.values():
        assert z.shape == (4, 8) and z.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-6)
    # what the trainer hands each run (core.trainer_base.train_step), recorded
    import torch_impl.train as torch_train

    trainer = torch_train.make_trainer(config, objective, seed=3, total_steps=10)
    runs = []
    trainer.run_update = lambda update, batch, run_inputs: runs.append((update.name, run_inputs["prior"])) or {}
    trainer.train_step(np.random.default_rng(0).random((4, 3, 16, 16), dtype=np.float32), step=5)
    assert [name for name, _ in runs] == ["encoder"] + ["generator"] * generator_steps
    for k, (_, z) in enumerate(runs):
        np.testing.assert_array_equal(z, inputs[f"prior_{k}"])
    priors = [z for _, z in runs]
    assert all(not np.allclose(a, b) for i, a in enumerate(priors) for b in priors[i + 1:])
    # the next step draws other noise
    later = objective.step_inputs(StepContext(seed=3, step=6, batch=4, total_steps=10))
    assert not np.allclose(later["prior_1"], inputs["prior_1"])


def _train_inputs(objective, update, occurrence=0, step=1):
    inputs = objective.step_inputs(StepContext(seed=7, step=step, batch=4, total_steps=10))
    return objective.update_inputs(inputs, update, occurrence)


def _batch(seed=5) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (4, 3, 16, 16)).astype(np.float32)


def test_update_losses_are_their_formulas_in_both_twins(twins):
    """Each update's total against its logged terms and a NumPy recomputation of the terms from
    the networks' own outputs; torch and Keras agree."""
    from keras_impl.objectives.age_game import encoder as keras_encoder, generator as keras_generator
    from torch_impl.objectives.age_game import encoder as torch_encoder, generator as torch_generator

    tm, km, tensors = twins
    config = tm.config
    objective = _objective(config, encoder_match_z=3.0, generator_match_x=2.0)  # every term on
    encoder, generator = objective.updates
    x = _batch()
    results = {}
    for update, t_fn, k_fn in ((encoder, torch_encoder, keras_encoder), (generator, torch_generator, keras_generator)):
        inputs = _train_inputs(objective, update, occurrence=1)
        torch_load(tm, tensors).train()
        t = {k: float(v.detach()) for k, v in t_fn(tm, torch.from_numpy(x), {k: torch.from_numpy(v) for k, v in inputs.items()},
                                          objective).items()}
        keras_load(km, tensors)
        k = {k: float(v) for k, v in k_fn(km, tf.constant(nchw_to_nhwc(x)),
                                          {k: tf.constant(v) for k, v in inputs.items()}, objective).items()}
        assert set(t) == set(k) == set(update.logs)
        for name in t:
            assert abs(t[name] - k[name]) <= TOL * max(1.0, abs(t[name])), (update.name, name, t[name], k[name])
        results[update.name] = t, inputs["prior"]
    hp = objective.hp
    e, _ = results["encoder"]
    assert e["encoder"] == pytest.approx(hp.encoder_kl_real * e["e_kl_real"] - hp.encoder_kl_fake * e["e_kl_fake"]
                                         + hp.encoder_match_x * e["e_match_x"] + hp.encoder_match_z * e["e_match_z"],
                                         rel=1e-5, abs=1e-6)
    g, z = results["generator"]
    assert g["generator"] == pytest.approx(hp.generator_kl_fake * g["g_kl_fake"] + hp.generator_match_z * g["g_match_z"]
                                           + hp.generator_match_x * g["g_match_x"], rel=1e-5, abs=1e-6)
    # the generator's terms from the networks' outputs, recomputed in NumPy (same weights, training mode)
    torch_load(tm, tensors).train()
    with torch.no_grad():
        egz = tm.encode(tm.generate(torch.from_numpy(z))).numpy()
        gex = tm.generate(tm.encode(torch.from_numpy(x))).numpy()
    assert g["g_kl_fake"] == pytest.approx(numpy_kl(egz), rel=1e-5)
    assert g["g_match_z"] == pytest.approx(numpy_cosine(egz, z), rel=1e-4, abs=1e-7)
    assert g["g_match_x"] == pytest.approx(float(np.mean(np.abs(gex - x))), rel=1e-5)
    torch_load(tm, tensors).eval()


def test_zero_weight_terms_are_not_computed(twins):
    from torch_impl.objectives.age_game import generator as torch_generator

    tm, _, tensors = twins
    objective = _objective(tm.config)  # generator_match_x 0: no e(x), g(e(x)) passes
    calls = []
    hooks = [tm.encoder.register_forward_hook(lambda *a: calls.append("e")),
             tm.generator.register_forward_hook(lambda *a: calls.append("g"))]
    try:
        inputs = _train_inputs(objective, objective.updates[1])
        out = torch_generator(torch_load(tm, tensors).train(), torch.from_numpy(_batch()),
                              {k: torch.from_numpy(v) for k, v in inputs.items()}, objective)
    finally:
        for h in hooks:
            h.remove()
        torch_load(tm, tensors).eval()
    assert calls == ["g", "e"] and float(out["g_match_x"]) == 0.0


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_each_update_moves_only_its_network(framework):
    """encoder: only e's parameters change (g(z) has no gradient into g; with match_x 0 the
    generator gets no gradient at all); generator: only g's (e frozen)."""
    import importlib

    train = importlib.import_module(f"{framework}_impl.train")
    config = make_config("age", "tiny")
    objective = _objective(config, encoder_match_x=0.0, generator_match_x=1.0)
    trainer = train.make_trainer(config, objective, seed=2, total_steps=4)
    tensors = perturbed_tensors("age", config, seed=12)
    (torch_load if framework == "torch" else keras_load)(trainer.model, tensors)
    dump = torch_tensors if framework == "torch" else keras_tensors
    trainable = {n for n in tensors if not n.endswith(("running_mean", "running_var"))}
    for update in objective.updates:
        before = dump(trainer.model)
        losses = trainer.run_update(update, _batch(), _train_inputs(objective, update))
        assert all(np.isfinite(v) for v in losses.values())
        after = dump(trainer.model)
        moved = {n.split(".")[0] for n in trainable if not np.array_equal(before[n], after[n])}
        assert moved == {update.name}, (update.name, moved)
    if framework == "torch":  # the encoder step leaves no gradient in g (no match_x path, g(z) under no_grad)
        for p in trainer.model.generator.parameters():
            p.grad = None  # the generator update's own
        trainer.run_update(objective.updates[0], _batch(), _train_inputs(objective, objective.updates[0]))
        assert all(p.grad is None or not p.grad.any() for p in trainer.model.generator.parameters())


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_a_short_training_run_is_finite_and_trains_both_networks(framework):
    """Three full steps (encoder + 2 generator runs each) through the trainer on the embedded
    digits (RGB, 16 px): every logged loss finite, both networks' weights changed."""
    import importlib

    from core.data import open_dataset

    train = importlib.import_module(f"{framework}_impl.train")
    config = make_config("age", "tiny")
    objective = _objective(config)
    trainer = train.make_trainer(config, objective, seed=4, total_steps=3)
    dump = torch_tensors if framework == "torch" else keras_tensors
    start = dump(trainer.model)
    data = open_dataset("digits", config.image_size, config.in_channels)
    history = []
    for step, batch in zip(range(3), data.batches(8, seed=4, epoch=0)):
        assert batch.shape == (8, 3, 16, 16)
        history.append(trainer.train_step(batch, step))
    logs = set(objective.updates[0].logs) | set(objective.updates[1].logs)
    for out in history:
        assert logs <= set(out) and all(np.isfinite(out[k]) for k in logs), out
        assert out["e_kl_real"] > 0 and out["e_kl_fake"] > 0 and out["g_match_z"] >= 0
    end = dump(trainer.model)
    for net in ("encoder", "generator"):
        changed = [n for n in start if n.startswith(net + ".") and not np.array_equal(start[n], end[n])]
        assert changed, f"{framework}: the {net} did not change"
    codes = trainer.encode(data.load(np.arange(4)))
    np.testing.assert_allclose(np.linalg.norm(codes, axis=1), 1.0, atol=1e-5)
    assert trainer.reconstruct(data.load(np.arange(2))).shape == (2, 3, 16, 16)


def test_exported_model_inverts_and_interpolates_on_the_sphere(tmp_path):
    """Inversion is the point of A.G.E.: through the exported model, ``invert`` gives a unit code,
    ``interpolate`` walks the great circle between two pictures' codes (every latent of unit norm)
    and its ends decode to exactly the two reconstructions."""
    import logging

    from PIL import Image

    import export.pipeline as exporter
    import runtime

    model = torch_impl.build("age", preset="tiny")
    ckpt = torch_impl.save_model(model, tmp_path / "model.safetensors", step=1)
    logging.getLogger("export.pipeline").setLevel(logging.WARNING)
    assert all(r.passed for r in exporter.export_checkpoint(ckpt, tmp_path / "onnx", via="torch"))
    session = runtime.load(tmp_path / "onnx", providers="cpu")
    assert session.prior == "sphere" and session.interpolation_geometry == "spherical"
    rng = np.random.default_rng(0)
    pictures = []
    for i in range(2):
        path = tmp_path / f"p{i}.png"
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(path)
        pictures.append(path)
    codes = [session.invert(p) for p in pictures]
    assert all(abs(float(np.linalg.norm(c)) - 1.0) < 1e-5 for c in codes)
    latents = session.interpolation_latents(*pictures, 6)
    assert latents.shape == (6, model.config.latent_dim)
    np.testing.assert_allclose(np.linalg.norm(latents, axis=1), 1.0, atol=1e-5)
    cos = latents @ latents[0]  # the walk moves away from the first code monotonically
    assert np.all(np.diff(cos) < 0)
    walk = session.interpolate(*pictures, steps=6)
    assert walk.shape == (6, *session.to_uint8(session.decode(latents[:1])).shape[1:])
    for end, picture in ((walk[0], pictures[0]), (walk[-1], pictures[1])):
        np.testing.assert_array_equal(end, session.reconstruct_image(picture))
