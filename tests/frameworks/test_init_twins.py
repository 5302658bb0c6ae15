"""Framework-neutral initial weights in both twins (torch_impl.init, keras_impl.init).

For every registered model (and every ``tanh_mode`` of a model that has one), tiny preset: both
twins list the same (name, shape, rule) entries, one per checkpoint tensor; ``initialize(model,
seed)`` gives bit-identical tensors and eval outputs that agree; seeds behave; and every declared
rule matches what torch itself does to that tensor when it builds the layer.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import keras_impl
import torch_impl
from core.init import Init, InitEntry, constant, initial_tensors, normal
from core.registry import MODELS
from keras_impl import init as keras_init
from keras_impl.checkpoint import model_tensors as keras_tensors
from keras_impl.parts import run_part as keras_run
from torch_impl import init as torch_init
from torch_impl.checkpoint import model_tensors as torch_tensors
from torch_impl.parts import part_specs
from torch_impl.parts import run_part as torch_run

TOL = 1e-5
SEED = 0


def cases() -> list[tuple[str, str, dict]]:
    """(model, variant, config overrides): every registered model, every test variant it declares
    (vaegan: one per ``tanh_mode``)."""
    return [(name, variant, dict(overrides)) for name, spec in MODELS.items()
            for variant, overrides in spec.variants.items()]


CASES = cases()
IDS = [f"{name}-{variant}" for name, variant, _ in CASES]
_TWINS: dict[int, tuple] = {}


def twins(case: tuple[str, dict]):
    """(torch model, Keras model), both initialised from SEED, built once per case."""
    key = CASES.index(case)
    if key not in _TWINS:
        name, _, overrides = case
        tm = torch_impl.models.build(name, preset="tiny", **overrides)
        km = keras_impl.models.build(name, config=tm.config)
        _TWINS[key] = (torch_init.initialize(tm, SEED).eval(), keras_init.initialize(km, SEED))
    return _TWINS[key]


def bound_of(rule: Init) -> float | None:
    """The half-width of a uniform rule, written out independently of core.init."""
    p = rule.kwargs
    if rule.rule == "kaiming_uniform":
        return math.sqrt(3.0) * math.sqrt(2.0 / (1.0 + p["a"] ** 2)) / math.sqrt(p["fan_in"])
    if rule.rule == "xavier_uniform":
        return p["gain"] * math.sqrt(6.0 / (p["fan_in"] + p["fan_out"]))
    if rule.rule == "uniform":
        return p["bound"]
    return None


CONSTANTS = {"zeros": 0.0, "ones": 1.0}


def constant_of(rule: Init) -> float | None:
    return rule.kwargs["value"] if rule.rule == "constant" else CONSTANTS.get(rule.rule)


# --------------------------------------------------------------------------- entries


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_twins_list_identical_entries(case):
    tm, km = twins(case)
    t_entries, k_entries = torch_init.init_entries(tm), keras_init.init_entries(km)
    assert [e.name for e in t_entries] == [e.name for e in k_entries]
    assert t_entries == k_entries  # names, shapes and rules with their parameters


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_every_checkpoint_tensor_has_exactly_one_entry(case):
    tm, km = twins(case)
    names = [e.name for e in torch_init.init_entries(tm)]
    assert len(names) == len(set(names))
    assert names == list(torch_tensors(tm))
    assert set(names) == set(keras_tensors(km))
    stateful = [n for n, _ in tm.named_parameters()] + [n for n, _ in tm.named_buffers()
                                                         if not n.endswith("num_batches_tracked")]
    assert sorted(stateful) == sorted(names)


# --------------------------------------------------------------------------- initialize


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_initialized_twins_are_bit_identical(case):
    tm, km = twins(case)
    want = initial_tensors(torch_init.init_entries(tm), SEED)
    got_t, got_k = torch_tensors(tm), keras_tensors(km)
    for name, value in want.items():
        assert got_t[name].dtype == got_k[name].dtype == np.float32
        assert got_t[name].tobytes() == value.tobytes(), name
        assert got_k[name].tobytes() == value.tobytes(), name


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_initialized_twins_agree_on_every_part(case):
    tm, km = twins(case)
    rng = np.random.default_rng(3)
    for part, spec in part_specs(tm).items():
        inputs = [rng.random(t.concrete_shape(2), dtype=np.float32) if t.kind == "image"
                  else rng.standard_normal(t.concrete_shape(2), dtype=np.float32) for t in spec.inputs]
        outs_t, outs_k = torch_run(tm, part, *inputs), keras_run(km, part, *inputs)
        assert len(outs_t) == len(outs_k) == len(spec.outputs)
        for out_spec, a, b in zip(spec.outputs, outs_t, outs_k):
            assert a.shape == b.shape, (part, out_spec.name)
            assert np.all(np.isfinite(a)), (part, out_spec.name)
            diff = float(np.max(np.abs(a.astype(np.float64) - b)))
            assert diff <= TOL, f"{part}.{out_spec.name}: max |torch - keras| = {diff:.2e}"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_seeds(case):
    """The same seed gives the same weights, another seed other random tensors (constants stay)."""
    name, _, overrides = case
    model = torch_impl.models.build(name, preset="tiny", **overrides)
    entries = torch_init.init_entries(model)
    first = torch_tensors(torch_init.initialize(model, 5))
    other = torch_tensors(torch_init.initialize(model, 6))
    again = torch_tensors(torch_init.initialize(model, 5))
    for e in entries:
        assert again[e.name].tobytes() == first[e.name].tobytes(), e.name
        if constant_of(e.init) is None and math.prod(e.shape) > 0:
            assert not np.array_equal(first[e.name], other[e.name]), e.name
        else:
            assert np.array_equal(first[e.name], other[e.name]), e.name


# --------------------------------------------------------------------------- the rules are torch's


def _fan_in(p: torch.Tensor) -> int:
    return torch.nn.init._calculate_fan_in_and_fan_out(p)[0]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_rules_reproduce_torchs_own_init(case):
    """Against a model torch initialised itself: constants equal torch's values exactly; uniform
    rules bound torch's values, with fan_in as torch computes it (ConvTranspose: dim 1), and our
    draws have torch's spread; normal rules have torch's standard deviation."""
    tm, _ = twins(case)
    torch.manual_seed(0)
    fresh = torch_impl.models.build(tm.config.model, config=tm.config)
    torch_own = {k: v.detach().numpy() for k, v in fresh.state_dict().items()}
    ours = torch_tensors(tm)
    modules = dict(fresh.named_modules())
    for e in torch_init.init_entries(tm):
        theirs, mine = torch_own[e.name].astype(np.float64), ours[e.name].astype(np.float64)
        value, bound = constant_of(e.init), bound_of(e.init)
        if value is not None:
            assert np.all(theirs == np.float32(value)), e.name
            assert np.all(mine == np.float32(value)), e.name
            continue
        if e.init.rule == "kaiming_uniform":
            owner, _, leaf = e.name.rpartition(".")
            param = getattr(modules[owner], leaf)
            assert e.init.kwargs["fan_in"] == _fan_in(param), e.name
            assert e.init.kwargs["a"] == math.sqrt(5) and bound == pytest.approx(1 / math.sqrt(_fan_in(param)))
        if bound is not None:
            assert np.all(np.abs(theirs) <= bound * (1 + 1e-6)), e.name
            assert np.all(np.abs(mine) <= bound * (1 + 1e-6)), e.name
            spread = bound / math.sqrt(3)
        else:
            assert e.init.rule == "normal", e.name
            spread = e.init.kwargs["std"]
        if theirs.size >= 500:  # sample std within ~10% of the rule's (and of torch's)
            assert mine.std() == pytest.approx(spread, rel=0.1), e.name
            assert theirs.std() == pytest.approx(spread, rel=0.1), e.name
            assert abs(mine.mean()) < 0.15 * spread, e.name


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_norm_layers_start_at_identity(case):
    tm, _ = twins(case)
    tensors = torch_tensors(tm)
    for name, module in tm.named_modules():
        if isinstance(module, (torch.nn.modules.batchnorm._NormBase, torch.nn.LayerNorm)):
            assert np.all(tensors[f"{name}.weight"] == 1) and np.all(tensors[f"{name}.bias"] == 0)
            if isinstance(module, torch.nn.modules.batchnorm._NormBase):
                assert np.all(tensors[f"{name}.running_mean"] == 0) and np.all(tensors[f"{name}.running_var"] == 1)


# --------------------------------------------------------------------------- a new layer


class TorchScaled(torch.nn.Module):
    """A made-up layer with a parameter of its own and an override of its child's bias."""

    def __init__(self):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.zeros(3))
        self.proj = torch.nn.Linear(4, 3)

    def init_rules(self) -> dict[str, Init]:
        return {"gain": constant(2.0), "proj.bias": normal(std=0.5)}


def test_a_new_layer_declares_its_own_rules():
    import keras

    from keras_impl.layers.core import Linear, TorchLayer

    class KerasScaled(TorchLayer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.gain = self.add_weight(shape=(3,), initializer="zeros", name="gain")
            self.proj = Linear(4, 3)

        def call(self, x, training=None):
            return self.proj(x) * self.gain

        def torch_params(self):
            return {"gain": (self.gain, "identity")}

        def init_rules(self):
            return {"gain": constant(2.0), "proj.bias": normal(std=0.5)}

    class KerasWrapper(keras.Model):
        def __init__(self):
            super().__init__()
            self.block = KerasScaled()

        def call(self, x):
            return self.block(x)

    tm = torch.nn.Sequential(TorchScaled())
    km = KerasWrapper()
    km(np.zeros((1, 4), np.float32))
    want = [InitEntry("0.gain", (3,), constant(2.0)), InitEntry("0.proj.weight", (3, 4), torch_init.weight_and_bias(
        (3, 4))["weight"]), InitEntry("0.proj.bias", (3,), normal(std=0.5))]
    assert torch_init.init_entries(tm) == want
    assert [(e.name.removeprefix("block."), e.shape, e.init) for e in keras_init.init_entries(km)] == \
        [(e.name.removeprefix("0."), e.shape, e.init) for e in want]
    torch_init.initialize(tm, 1)
    assert torch.equal(tm[0].gain, torch.full((3,), 2.0))

    class Undeclared(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gain = torch.nn.Parameter(torch.zeros(3))

    with pytest.raises(ValueError, match=r"no init rule for \['gain'\]"):
        torch_init.init_entries(Undeclared())
