"""torch <-> Keras parity of every registered model x variant.

* eval mode: every part at the tiny preset and (where affordable) the seed preset, max |diff| <= 1e-5,
  compared recursively so a failure names its output (``decoder/image``);
* training mode, per update of the model's objective: from the same weights and the same
  core-drawn step inputs (dropout masks, reparameterisation noise, prior samples), the same losses,
  the same running statistics after the pass, and the same gradients of the update's loss with
  respect to its optimizer's parameter group (Keras gradients mapped to torch names and layouts
  through ``core.layouts``);
* the two trainers' ``run_update`` on the same batch, one optimizer step per update, give the same
  canonical weights.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.objectives.base import StepContext
from core.registry import sample_part
from core.trainer_base import data_range
from tests.models.registry_cases import (CASES, SEED_PARAMETER_LIMIT, Case, cases, compare, drop_twins,
                                         objective_of, part_inputs, record, rel_close, run_parts, twins)

TOL = 1e-5  # forward outputs and losses
GRAD_TOL = 1e-4  # gradients, relative to the largest gradient of the tensor (or of its group)
STEP_TOL = 1e-5  # weights after one optimizer step
BATCH = 4


@pytest.mark.parametrize("preset", ["tiny", "seed"])
@cases()
def test_every_part_matches_in_eval_mode(case: Case, preset: str):
    from keras_impl.parts import run_part as keras_run
    from torch_impl.parts import run_part as torch_run

    config = case.config(preset)
    if preset == "seed" and config.parameter_count() > SEED_PARAMETER_LIMIT:
        pytest.skip(f"{case.id}: seed config has {config.parameter_count():,} parameters "
                    f"(> {SEED_PARAMETER_LIMIT:,}); too slow for this suite, the tiny preset covers the code")
    tw = twins(case, preset)
    try:
        batch = 3 if preset == "tiny" else 2
        parts = case.spec.parts(config)
        inputs = {name: part_inputs(part, batch, seed=1) for name, part in parts.items()}
        want = run_parts(torch_run, tw.torch, parts, inputs)
        got = run_parts(keras_run, tw.keras, parts, inputs)
        for name, part in parts.items():
            for t in part.outputs:
                w = want[name][t.name]
                assert w.shape == t.concrete_shape(batch), f"{name}/{t.name}: shape {w.shape}"
                assert np.all(np.isfinite(w)) and np.std(w) > 0, f"{case.id} {name}/{t.name}: degenerate output"
        record(case, f"eval {preset}", compare(got, want, TOL))
    finally:
        if preset != "tiny":
            drop_twins(case, preset)


def _batch(case: Case, config, seed: int) -> np.ndarray:
    """A data batch in the model's value range (what the trainers hand the updates)."""
    part = case.spec.parts(config)[sample_part(config)]
    shape = part.outputs[0].concrete_shape(BATCH)
    if len(shape) == 5 and case.spec.data != "video":  # a video generator trained on images
        shape = (shape[0], *shape[2:])
    low, high = data_range(config)
    return (low + (high - low) * np.random.default_rng(seed).random(shape)).astype(np.float32)


def _step_inputs(objective, step: int = 1) -> dict[str, np.ndarray]:
    return objective.step_inputs(StepContext(seed=7, step=step, batch=BATCH, total_steps=10))


#: (case, objective, update): every update of every objective a model trains with
UPDATE_CASES = [(c, name, u.name) for c in CASES for name, choice in c.spec.objectives.items()
                for u in choice.objective.updates]


def _keras_grads_by_torch_name(km, variables, grads) -> dict[str, np.ndarray]:
    from core.layouts import rule
    from keras_impl.layers.core import torch_named_params
    from keras_impl.layers.transformer import PackedVariable

    by_id = {id(v): g for v, g in zip(variables, grads)}
    out = {}
    for name, var, r in torch_named_params(km):
        members = var.variables if isinstance(var, PackedVariable) else [var]
        if not all(id(m) in by_id for m in members):
            continue
        arrays = [np.zeros(tuple(m.shape), np.float32) if by_id[id(m)] is None else np.asarray(by_id[id(m)])
                  for m in members]  # None: the loss does not depend on the variable
        out[name] = rule(r).to_torch(np.stack(arrays) if isinstance(var, PackedVariable) else arrays[0])
    return out


@pytest.mark.parametrize("case,objective_name,update", UPDATE_CASES,
                         ids=[f"{c.id}-{u}" if o == c.spec.objective.name else f"{c.id}-{o}-{u}"
                              for c, o, u in UPDATE_CASES])
def test_training_update_losses_statistics_and_gradients_match(case: Case, objective_name: str, update: str):
    import tensorflow as tf
    import torch

    from keras_impl.checkpoint import model_tensors as keras_tensors
    from keras_impl.objectives import update_function as keras_update
    from keras_impl.train import parameter_groups as keras_groups
    from torch_impl.checkpoint import model_tensors as torch_tensors
    from torch_impl.objectives import update_function as torch_update
    from torch_impl.train import parameter_groups as torch_groups

    from keras_impl.parts import to_keras_array

    tw = twins(case)
    tm, km, config = tw.torch, tw.keras, tw.config
    objective = objective_of(case, config, objective_name)
    upd = next(u for u in objective.updates if u.name == update)
    batch = _batch(case, config, seed=5)
    inputs = objective.update_inputs(_step_inputs(objective), upd, 0)  # the update's first run of a step
    try:
        tm.train()
        t_group = torch_groups(tm)[upd.optimizer]
        names = {id(p): n for n, p in tm.named_parameters()}
        t_losses = torch_update(objective.name, update)(tm, torch.from_numpy(batch),
                                                        {k: torch.from_numpy(v) for k, v in inputs.items()}, objective)
        t_grads = torch.autograd.grad(t_losses[upd.loss], t_group, allow_unused=True)
        t_grads = {names[id(p)]: np.zeros(tuple(p.shape), np.float32) if g is None else g.numpy()
                   for p, g in zip(t_group, t_grads)}
        t_values = {k: float(v.detach()) for k, v in t_losses.items()}
        t_after = torch_tensors(tm)

        k_group = keras_groups(km)[upd.optimizer]
        with tf.GradientTape() as tape:
            k_losses = keras_update(objective.name, update)(
                km, tf.convert_to_tensor(to_keras_array(batch, "video" if batch.ndim == 5 else "image")), {k: tf.convert_to_tensor(v) for k, v in inputs.items()},
                objective)
        k_grads = _keras_grads_by_torch_name(km, k_group, tape.gradient(k_losses[upd.loss], k_group))
        k_values = {k: float(v) for k, v in k_losses.items()}
        k_after = keras_tensors(km)
    finally:
        tw.reset()

    assert set(k_values) == set(t_values) >= set(upd.logs), (sorted(t_values), sorted(k_values))
    bad = {k: (t_values[k], k_values[k]) for k in t_values if not rel_close(t_values[k], k_values[k], TOL)}
    assert not bad, f"{case.id} {update}: losses (torch, keras) differ: {bad}"
    record(case, "train losses", max(abs(t_values[k] - k_values[k]) / max(1.0, abs(t_values[k])) for k in t_values))

    # running statistics (BatchNorm) after the training-mode pass; parameters are untouched here
    params = {n for n, _ in tm.named_parameters()}
    buffers = {n: t_after[n] for n in t_after if n not in params}
    if buffers:
        record(case, "train buffers", compare({n: k_after[n] for n in buffers}, buffers, TOL))

    assert set(k_grads) == set(t_grads), f"{case.id} {update}: parameter groups differ: " \
                                         f"{sorted(set(k_grads) ^ set(t_grads))}"
    assert any(np.abs(g).max() > 0 for g in t_grads.values()), f"{case.id} {update}: every gradient is zero"
    group_scale = max(float(np.abs(g).max()) for g in t_grads.values())
    worst = 0.0
    for name, tg in t_grads.items():
        kg = k_grads[name]
        assert kg.shape == tg.shape, f"{case.id} {update}: gradient of {name}: shape {kg.shape} != {tg.shape}"
        scale = max(float(np.abs(tg).max()), 1e-3 * group_scale, 1e-12)
        rel = float(np.max(np.abs(kg.astype(np.float64) - tg))) / scale
        worst = max(worst, rel)
        assert rel <= GRAD_TOL, f"{case.id} {update}: gradient of {name}: relative diff {rel:.2e}"
    record(case, "grads (rel)", worst)


@cases()
def test_one_optimizer_step_per_update_matches(case: Case):
    """The two trainers' ``run_update`` of every update in order, from the same weights, on the
    same batch and inputs: the same losses and, after each step, the same canonical weights (each
    update starts from torch's weights after the previous one, loaded into both).

    Adam's first step is lr * g / (|g| + eps), about lr * sign(g): where a gradient is below the
    float noise of computing it (|g| <= 1e-3 of its tensor's largest, or <= 1e-6: exact cancellations
    such as a critic's last bias in mean D(real) - mean D(fake)), either framework may step either
    way. Those elements (counted, and only in the stepped group) may differ by up to 2 lr; every
    other element agrees to 1e-5."""
    import keras_impl.train as keras_train
    import torch_impl.train as torch_train
    from keras_impl.checkpoint import load_tensors as keras_load, model_tensors as keras_tensors
    from torch_impl.checkpoint import load_tensors as torch_load, model_tensors as torch_tensors

    tensors = twins(case).tensors
    config = case.config()
    objective = objective_of(case, config)
    tt = torch_train.make_trainer(config, objective, seed=3, total_steps=10)
    kt = keras_train.make_trainer(config, objective, seed=3, total_steps=10)
    torch_load(tt.model, tensors)
    keras_load(kt.model, tensors)
    batch, inputs = _batch(case, config, seed=6), _step_inputs(objective, step=2)
    lrs = {o.name: o.lr for o in objective.optimizers()}
    worst, loose = 0.0, 0
    before = tensors
    for upd in objective.updates:
        run_inputs = objective.update_inputs(inputs, upd, 0)  # the update's first run of a step
        lt, lk = tt.run_update(upd, batch, run_inputs), kt.run_update(upd, batch, run_inputs)
        bad = {k: (lt[k], lk[k]) for k in lt if not rel_close(lt[k], lk[k], TOL)}
        assert not bad, f"{case.id} {upd.name}: losses (torch, keras) differ: {bad}"
        after_t, after_k = torch_tensors(tt.model), keras_tensors(kt.model)
        moved = [n for n in after_t if not np.array_equal(after_t[n], before[n])]
        assert moved, f"{case.id} {upd.name}: the step changed no weight"
        stepped = {id(p) for p in torch_train.parameter_groups(tt.model)[upd.optimizer]}
        grads = {n: p.grad.numpy() for n, p in tt.model.named_parameters() if id(p) in stepped and p.grad is not None}
        for name, want in after_t.items():
            got = after_k[name]
            assert got.shape == want.shape, f"{case.id} after {upd.name}: {name}: shape {got.shape} != {want.shape}"
            diff = np.abs(got.astype(np.float64) - want)
            if name in grads:
                g = np.abs(grads[name])
                noise = g <= max(1e-3 * float(g.max()), 1e-6)
                assert float(diff[noise].max(initial=0.0)) <= 2 * lrs[upd.optimizer] * (1 + 1e-3) + STEP_TOL, \
                    f"{case.id} after {upd.name}: {name} moved further than one Adam step"
                loose += int(np.count_nonzero(noise & (diff > STEP_TOL)))
                diff = diff[~noise]
            d = float(diff.max(initial=0.0))
            worst = max(worst, d)
            assert d <= STEP_TOL, f"{case.id}: weights after one {upd.name} step: {name}: max |diff| {d:.3e}"
        # the next update starts from the same weights again (sign-noise elements would otherwise
        # carry a difference of up to 2 lr into its losses)
        keras_load(kt.model, after_t)
        before = after_t
    record(case, "opt step", worst)
    record(case, "noise-grad elts", loose)
