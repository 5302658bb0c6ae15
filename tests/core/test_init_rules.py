"""core.init: the rules' distributions, per-(seed, name) independence, the entry checks.

NumPy only (runs in a serving-only install too); the twins are tested in tests/frameworks/test_init_twins.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from core import init
from core.errors import ConfigError
from core.init import Init, InitEntry, initial_tensors, resolve_entries

pytestmark = pytest.mark.serving

N = 200_000  # draws per statistics check: std of a uniform's sample std is ~0.2% here


def draws(rule: Init, shape=(N,), name: str = "t", seed: int = 0) -> np.ndarray:
    return initial_tensors([InitEntry(name, shape, rule)], seed)[name]


def check_uniform(x: np.ndarray, bound: float) -> None:
    """All values in [-bound, bound] (float32 rounding allowed), mean ~0, std ~bound/sqrt(3),
    half of them inside +-bound/2, and the edges reached."""
    x = x.astype(np.float64).ravel()
    assert np.all(np.abs(x) <= bound * (1 + 1e-6))
    assert np.abs(x).max() > 0.999 * bound
    assert abs(x.mean()) < 0.01 * bound
    assert x.std() == pytest.approx(bound / math.sqrt(3), rel=0.01)
    assert np.mean(np.abs(x) <= bound / 2) == pytest.approx(0.5, abs=0.01)


# --------------------------------------------------------------------------- rules


@pytest.mark.parametrize("fan_in", [1, 27, 144, 1024])
def test_kaiming_uniform_sqrt5_is_one_over_sqrt_fan_in(fan_in):
    """torch's default weight init: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in))."""
    x = draws(init.kaiming_uniform(fan_in))
    assert x.dtype == np.float32
    check_uniform(x, 1 / math.sqrt(fan_in))


def test_kaiming_uniform_other_slope():
    """a = 0 (ReLU gain sqrt(2)): bound sqrt(6 / fan_in), as torch.nn.init.kaiming_uniform_."""
    check_uniform(draws(init.kaiming_uniform(50, a=0.0)), math.sqrt(6 / 50))


def test_uniform_bias():
    check_uniform(draws(init.uniform(init.bias_bound(144))), 1 / 12)
    assert init.bias_bound(0) == 0.0  # torch: bound 0 for an empty fan-in


def test_xavier_uniform():
    """xavier_uniform(fan_in=E, fan_out=3E): U(+-sqrt(6 / 4E)), MultiheadAttention's in_proj."""
    check_uniform(draws(init.xavier_uniform(48, 144)), math.sqrt(6 / (48 + 144)))
    check_uniform(draws(init.xavier_uniform(10, 30, gain=2.0)), 2 * math.sqrt(6 / 40))


def test_normal():
    x = draws(init.normal(std=0.02)).astype(np.float64)
    assert abs(x.mean()) < 0.02 * 0.01
    assert x.std() == pytest.approx(0.02, rel=0.01)
    assert np.mean(np.abs(x) <= 0.02) == pytest.approx(0.6827, abs=0.01)  # one sigma
    y = draws(init.normal(std=1.0, mean=3.0)).astype(np.float64)
    assert y.mean() == pytest.approx(3.0, abs=0.01)


def test_constants_are_exact():
    assert np.array_equal(draws(init.zeros(), (3, 4)), np.zeros((3, 4), np.float32))
    assert np.array_equal(draws(init.ones(), (5,)), np.ones(5, np.float32))
    v = draws(init.constant(math.log(math.e - 1)), (2, 3))
    assert v.dtype == np.float32 and np.all(v == np.float32(math.log(math.e - 1)))


def test_torch_fans_follow_torch():
    """torch.nn.init._calculate_fan_in_and_fan_out: fan_in = dim 1 * receptive field, fan_out =
    dim 0 * receptive field. A ConvTranspose2d(in=8, out=4, k=3) weight is (8, 4, 3, 3): fan_in 36."""
    assert init.torch_fans((32, 16)) == (16, 32)  # Linear(16 -> 32)
    assert init.torch_fans((16, 3, 3, 3)) == (27, 144)  # Conv2d(3 -> 16, k=3)
    assert init.torch_fans((8, 4, 3, 3)) == (36, 72)  # ConvTranspose2d(8 -> 4, k=3)
    with pytest.raises(ValueError):
        init.torch_fans((5,))


def test_layer_helpers():
    conv_t = init.weight_and_bias((8, 4, 4, 4))
    assert conv_t == {"weight": init.kaiming_uniform(64), "bias": init.uniform(1 / 8)}
    assert set(init.weight_and_bias((3, 5), bias=False)) == {"weight"}
    assert init.batch_norm() == {"weight": init.ones(), "bias": init.zeros(), "running_mean": init.zeros(),
                                 "running_var": init.ones()}
    assert init.layer_norm() == {"weight": init.ones(), "bias": init.zeros()}
    mha = init.multihead_attention(48)
    assert mha == {"in_proj_weight": init.xavier_uniform(48, 144), "in_proj_bias": init.zeros(),
                   "out_proj.weight": init.kaiming_uniform(48), "out_proj.bias": init.zeros()}


# --------------------------------------------------------------------------- seeds and names


ENTRIES = [
    InitEntry("a.weight", (16, 8), init.kaiming_uniform(8)),
    InitEntry("a.bias", (16,), init.uniform(1 / math.sqrt(8))),
    InitEntry("b.weight", (16, 8), init.kaiming_uniform(8)),
    InitEntry("pos", (1, 4, 6), init.normal(std=0.02)),
    InitEntry("norm.weight", (6,), init.ones()),
]


def test_same_seed_same_tensors_different_seed_different():
    a, b, c = initial_tensors(ENTRIES, 0), initial_tensors(ENTRIES, 0), initial_tensors(ENTRIES, 1)
    assert list(a) == [e.name for e in ENTRIES]
    for name in a:
        assert a[name].tobytes() == b[name].tobytes()
        assert a[name].shape == dict((e.name, e.shape) for e in ENTRIES)[name]
    for name in ("a.weight", "a.bias", "b.weight", "pos"):
        assert not np.array_equal(a[name], c[name])
    assert np.array_equal(a["norm.weight"], c["norm.weight"])


def test_draw_depends_on_name_not_order_or_neighbours():
    base = initial_tensors(ENTRIES, 7)
    assert not np.array_equal(base["a.weight"], base["b.weight"])  # same rule and shape, other name
    shuffled = initial_tensors(list(reversed(ENTRIES)), 7)
    more = initial_tensors([InitEntry("new.weight", (16, 8), init.kaiming_uniform(8)), *ENTRIES[:2],
                            InitEntry("zz", (100,), init.uniform(1.0)), *ENTRIES[2:]], 7)
    fewer = initial_tensors(ENTRIES[2:], 7)
    for name, value in base.items():
        assert shuffled[name].tobytes() == value.tobytes()
        assert more[name].tobytes() == value.tobytes()
        if name in fewer:
            assert fewer[name].tobytes() == value.tobytes()


def test_draw_is_the_documented_generator():
    """Provenance: tensor ``name`` is drawn from default_rng([seed, crc32(name)])."""
    import zlib

    got = initial_tensors([("x", (3, 5), init.uniform(0.5))], 11)["x"]
    want = np.random.default_rng([11, zlib.crc32(b"x")]).uniform(-0.5, 0.5, (3, 5)).astype(np.float32)
    assert got.tobytes() == want.tobytes()


def test_large_seeds_and_bad_seeds():
    big = initial_tensors(ENTRIES[:1], 2**63 - 1)["a.weight"]
    assert np.all(np.abs(big) <= 1 / math.sqrt(8) * (1 + 1e-6))
    for bad in (-1, 2**63, 1.5, "0", True):
        with pytest.raises(ConfigError):
            initial_tensors(ENTRIES, bad)
    with pytest.raises(ValueError):
        initial_tensors(ENTRIES, None)


def test_bad_entries_are_refused():
    with pytest.raises(ValueError, match="two init entries"):
        initial_tensors([ENTRIES[0], ENTRIES[0]], 0)
    with pytest.raises(KeyError):
        Init.of("glorot_normal")
    with pytest.raises(TypeError):
        Init.of("uniform", limit=1.0)
    with pytest.raises(TypeError):
        Init.of("constant", value=float("nan"))
    with pytest.raises(TypeError):
        initial_tensors([("x", (2,), "ones")], 0)
    with pytest.raises(ValueError):
        initial_tensors([("x", (-1, 2), init.ones())], 0)


def test_resolve_entries_outer_declaration_wins_and_coverage_is_exact():
    shapes = {"head.weight": (4, 3), "head.bias": (4,)}
    declared = [("head.bias", init.constant(0.5)), *[(f"head.{k}", v) for k, v in init.weight_and_bias((4, 3)).items()]]
    entries = resolve_entries(shapes, declared)
    assert entries == [InitEntry("head.weight", (4, 3), init.kaiming_uniform(3)),
                       InitEntry("head.bias", (4,), init.constant(0.5))]
    with pytest.raises(ValueError, match=r"no init rule for \['head.bias'\]"):
        resolve_entries(shapes, [("head.weight", init.ones())])
    with pytest.raises(ValueError, match="does not have: \\['tail'\\]"):
        resolve_entries(shapes, [*declared, ("tail", init.ones())])


def test_register_rule():
    name = "test_triangular"
    init.register_rule(name, ("bound",), lambda rng, shape, bound: rng.triangular(-bound, 0, bound, shape))
    try:
        x = draws(Init.of(name, bound=2.0))
        assert np.all(np.abs(x) <= 2.0) and x.std() == pytest.approx(2 / math.sqrt(6), rel=0.01)
    finally:
        del init.RULES[name]
    with pytest.raises(ValueError):
        init.register_rule("ones", (), lambda rng, shape: np.ones(shape))
    assert str(init.kaiming_uniform(27)) == f"kaiming_uniform(a={math.sqrt(5)!r}, fan_in=27)"
