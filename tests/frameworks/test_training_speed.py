"""How the trainers compute (``--memory-format``, ``--compile``, the allocator) changes no result.

* every registered model x variant: the torch trainer channels_last steps to the same losses and
  weights as contiguous (NCHW) to fp32 rounding, and its 4-D/5-D weights really are channels-last;
* a channels_last trainer's checkpoint is canonical: C-ordered, byte-identical once loaded into an
  NCHW model and written again; its optimizer file loads with moments strided like their
  parameters and resumes to the same step as never stopping;
* ``--compile`` (torch.compile; Keras' XLA) on one tiny model: the same losses as eager and it learns;
* the flag is one parser's, refused by name when bad.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.allocator import retain_freed_memory
from core.checkpoint import load_checkpoint, read_safetensors
from core.cli import hyperparameter_defaults, speed_options, train_parser
from core.errors import ConfigError
from core.registry import MODELS, sample_part
from core.trainer_base import SpeedOptions
from tests.models.registry_cases import CASE_IDS, CASES
from torch_impl.checkpoint import load_tensors, model_tensors
from torch_impl.train import CHANNELS_LAST, make_trainer

#: fp32 rounding between two convolution algorithms (relative to each loss's and tensor's scale)
TOL = 1e-4
STEPS = 2


def _trainer(config, model: str, fmt: str, compile: bool = False, seed: int = 1):
    spec = MODELS[model]
    objective = spec.objective(config, spec.objective.hyperparameters.from_dict(hyperparameter_defaults(model)))
    return make_trainer(config, objective, seed, 10, SpeedOptions(fmt, compile))


def _batch(config, n: int = 4, seed: int = 0) -> np.ndarray:
    out = MODELS[config.model].parts(config)[sample_part(config)].outputs[0]
    shape = out.concrete_shape(n)
    if out.kind == "video" and MODELS[config.model].data != "video":  # a video decoder trained on images
        shape = (shape[0], *shape[2:])
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def _close(a: dict[str, np.ndarray], b: dict[str, np.ndarray], what: str, steps: float = 0.0) -> None:
    """Every tensor within TOL of its scale, plus ``steps`` (learning rates summed over the Adam
    updates run): Adam's first steps are about lr * sign(g), and where g is below the rounding of
    computing it (a critic bias in mean D(real) - mean D(fake)) either layout may step either way."""
    assert a.keys() == b.keys()
    for name in a:
        scale = max(float(np.abs(b[name]).max()), 1.0)
        diff = float(np.abs(a[name].astype(np.float64) - b[name]).max())
        assert diff <= TOL * scale + 2 * steps, f"{what}: {name} differs by {diff:.3g} (scale {scale:.3g})"


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_channels_last_steps_like_nchw(case):
    config = case.config()
    batch = _batch(config)
    nchw, cl = _trainer(config, case.model, "contiguous"), _trainer(config, case.model, "channels_last")
    strided = [n for n, p in cl.model.named_parameters() if p.dim() in CHANNELS_LAST]
    for name in strided:
        p = dict(cl.model.named_parameters())[name]
        assert p.is_contiguous(memory_format=CHANNELS_LAST[p.dim()]), f"{name} is not channels-last"
    for step in range(STEPS):
        lt, lc = nchw.train_step(batch, step), cl.train_step(batch, step)
        assert lt.keys() == lc.keys()
        for k in lt:
            assert abs(lt[k] - lc[k]) <= TOL * max(abs(lt[k]), 1.0), f"step {step} {k}: {lt[k]} vs {lc[k]}"
    lr = {o.name: o.lr for o in cl.objective.optimizers()}
    stepped = sum(lr[u.optimizer] for step in range(STEPS) for u in cl.objective.schedule(step))
    _close(model_tensors(cl.model), model_tensors(nchw.model), f"{case.id} weights after {STEPS} steps", stepped)


def test_channels_last_checkpoint_and_optimizer_are_canonical(tmp_path):
    model = next(m for m, spec in sorted(MODELS.items())
                 if any(p.dim() == 4 for p in _trainer(spec.config_cls.preset("tiny"), m, "channels_last")
                        .model.parameters()))
    config = MODELS[model].config_cls.preset("tiny")
    batch = _batch(config)
    cl = _trainer(config, model, "channels_last")
    for step in range(STEPS):
        cl.train_step(batch, step)
    cl.save(tmp_path / "cl.safetensors", STEPS)
    cl.save_optimizer(tmp_path / "opt.safetensors", STEPS)
    ckpt = load_checkpoint(tmp_path / "cl.safetensors", model)
    live = model_tensors(cl.model)
    assert ckpt.tensors.keys() == live.keys()
    for name, array in ckpt.tensors.items():
        assert array.flags.c_contiguous and np.array_equal(array, live[name]), name
    _, opt = read_safetensors(tmp_path / "opt.safetensors", "optimizer state")
    assert all(a.flags.c_contiguous for a in opt.values())

    nchw = _trainer(config, model, "contiguous")
    load_tensors(nchw.model, ckpt.tensors)
    nchw.save(tmp_path / "nchw.safetensors", STEPS)
    assert (tmp_path / "nchw.safetensors").read_bytes() == (tmp_path / "cl.safetensors").read_bytes()

    resumed = _trainer(config, model, "channels_last")
    resumed.load(tmp_path / "cl.safetensors")
    resumed.load_optimizer(tmp_path / "opt.safetensors")
    for optimizer in resumed.optimizers.values():
        for p, state in optimizer.state.items():
            for key in ("exp_avg", "exp_avg_sq"):
                assert state[key].stride() == p.stride(), f"{key} strided {state[key].stride()}, param {p.stride()}"
    for trainer in (cl, resumed):
        trainer.last = {}
    assert resumed.train_step(batch, STEPS) == cl.train_step(batch, STEPS)
    for name, array in model_tensors(resumed.model).items():
        assert np.array_equal(array, model_tensors(cl.model)[name]), f"resumed {name} differs"


def test_torch_compile_matches_eager_and_learns():
    # one small model, compiling is slow: the first autoencoder (no prior, a plain reconstruction loss)
    model = next((name for name in sorted(MODELS) if MODELS[name].prior == "none"), sorted(MODELS)[0])
    config = MODELS[model].config_cls.preset("tiny")
    batch = _batch(config, 8)
    eager, compiled = _trainer(config, model, "channels_last"), _trainer(config, model, "channels_last", True)
    losses = []
    for step in range(4):
        le, lc = eager.train_step(batch, step), compiled.train_step(batch, step)
        for k in le:
            assert abs(le[k] - lc[k]) <= TOL * max(abs(le[k]), 1.0), f"step {step} {k}: eager {le[k]}, compiled {lc[k]}"
        losses.append(sum(lc.values()))
    assert losses[-1] < losses[0], f"compiled training did not learn: {losses}"
    _close(model_tensors(compiled.model), model_tensors(eager.model), "compiled vs eager weights")


def test_speed_flags_parse_and_refuse():
    model = sorted(MODELS)[0]
    args = train_parser("t", model).parse_args(["--model", model, "--out", "x"])
    assert speed_options(args) == SpeedOptions("channels_last", False)
    args = train_parser("t", model).parse_args(["--out", "x", "--memory-format", "contiguous", "--compile"])
    assert speed_options(args) == SpeedOptions("contiguous", True)
    with pytest.raises(SystemExit):
        train_parser("t").parse_args(["--out", "x", "--memory-format", "nhwc"])
    with pytest.raises(ConfigError, match="--memory-format"):
        SpeedOptions("nhwc")


def test_allocator_setting_is_taken_and_undone():
    import platform

    expected = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert retain_freed_memory(True) is expected
    assert retain_freed_memory(False) is expected
    retain_freed_memory(True)
    try:
        x = torch.ones(64 << 20 >> 2)  # a 64 MiB block and back: still usable
        assert float(x.sum()) == float(x.numel())
    finally:
        retain_freed_memory(False)  # process-wide: later tests get the default back
