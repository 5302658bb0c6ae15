"""Framework-neutral initial weights: drawn once, here, from the seed, in torch's distributions.

torch and Keras each have their own initialisers (Keras' Dense is Glorot-uniform, torch's
Linear is kaiming-uniform with ``a = sqrt(5)``), and their own random streams, so ``--seed 0``
used to give two different models. Instead, every canonical tensor (torch name and layout, as in
the checkpoint) is described by an :class:`InitEntry` — name, torch shape and an :class:`Init`
(a named rule with its parameters) — and :func:`initial_tensors` draws all of them with NumPy.
Either twin loads the result through its checkpoint bridge (``torch_impl.init.initialize``,
``keras_impl.init.initialize``), so the same seed gives the bit-identical model in both.

Independence of the draws: tensor ``name`` is drawn from its own generator,
``np.random.default_rng([seed, zlib.crc32(name)])`` (PCG64 seeded through a SeedSequence), so a
draw depends only on (seed, name, shape, rule) — never on the order of the entries or on which
other layers exist. Adding a layer leaves every other tensor's initial values unchanged. Values
are drawn in float64 and rounded to float32 (the checkpoint dtype).

Rules (torch's documented initialisation, https://pytorch.org/docs/stable/nn.init.html;
fan_in / fan_out as ``torch.nn.init._calculate_fan_in_and_fan_out``, see :func:`torch_fans`):

=====================  ===========================================  ==============================
rule                   distribution                                 torch source
=====================  ===========================================  ==============================
``zeros``              0                                            ``nn.init.zeros_``
``ones``               1                                            ``nn.init.ones_``
``constant(value)``    value                                        ``nn.init.constant_``
``normal(mean, std)``  N(mean, std^2)                               ``nn.init.normal_``,
                                                                    ``torch.randn(...) * std``
``uniform(bound)``     U(-bound, bound)                             ``nn.init.uniform_``
``kaiming_uniform``    U(-b, b), b = gain * sqrt(3 / fan_in),       ``nn.init.kaiming_uniform_``
(a, fan_in)            gain = sqrt(2 / (1 + a^2)) (leaky_relu)      (mode="fan_in")
``xavier_uniform``     U(-b, b), b = gain * sqrt(6 / (fan_in +      ``nn.init.xavier_uniform_``
(fan_in, fan_out,      fan_out))
gain)
=====================  ===========================================  ==============================

What torch's layers do with them (the helpers below build these, so both twins agree):

* ``nn.Linear``, ``nn.Conv*d``, ``nn.ConvTranspose*d`` (``reset_parameters``): weight
  ``kaiming_uniform(a=sqrt(5))``, which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)); bias
  U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with the *weight's* fan_in (0 when fan_in is 0). For a
  transposed convolution the weight is (in, out/groups, k, k) and torch's fan_in reads dim 1,
  so fan_in = out/groups * k * k — not the number of input channels (:func:`weight_and_bias`).
* ``nn.BatchNorm*d`` (``reset_parameters``/``reset_running_stats``): weight 1, bias 0,
  running_mean 0, running_var 1 (:func:`batch_norm`); ``nn.LayerNorm``: weight 1, bias 0
  (:func:`layer_norm`).
* ``nn.MultiheadAttention`` (``_reset_parameters``): the packed ``in_proj_weight`` (3E, E) is
  ``xavier_uniform`` as one matrix (fan_in E, fan_out 3E); ``in_proj_bias`` and
  ``out_proj.bias`` are 0; ``out_proj.weight`` keeps its Linear default (:func:`multihead_attention`).

A layer with parameters of its own (not one of torch's) declares their rules itself, by name,
with the constructors below (``ones()``, ``constant(v)``, ``normal(std=0.02)``, ...); see the twins'
``init.py`` for how.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, NamedTuple

import numpy as np

from .noise import check_seed

Shape = tuple[int, ...]
#: rng, shape, parameters -> float64 values of that shape
Sampler = Callable[..., np.ndarray]


@dataclass(frozen=True)
class InitRule:
    """A named distribution: the parameter names it takes and how to draw from it."""

    name: str
    params: tuple[str, ...]
    sample: Sampler  # sample(rng, shape, **params) -> np.ndarray
    doc: str = ""


RULES: dict[str, InitRule] = {}


def register_rule(name: str, params: tuple[str, ...], sample: Sampler, doc: str = "") -> InitRule:
    """Add a rule (a new distribution) to :data:`RULES`; names are unique."""
    if name in RULES:
        raise ValueError(f"init rule {name!r} is already registered")
    RULES[name] = InitRule(name, tuple(params), sample, doc)
    return RULES[name]


@dataclass(frozen=True)
class Init:
    """One rule with its parameters, e.g. ``Init("uniform", (("bound", 0.125),))``.

    Comparable and hashable, so the two twins' entry lists can be compared with ``==``. Build it
    with the constructors (:func:`zeros`, :func:`kaiming_uniform`, ...) or :meth:`of`.
    """

    rule: str
    params: tuple[tuple[str, float], ...] = ()

    @classmethod
    def of(cls, rule: str, **params: float) -> "Init":
        """``Init`` of a registered rule, its parameters checked against the rule's."""
        if rule not in RULES:
            raise KeyError(f"unknown init rule {rule!r}; known: {sorted(RULES)}")
        want = RULES[rule].params
        if set(params) != set(want):
            raise TypeError(f"init rule {rule!r} takes parameters {list(want)}, got {sorted(params)}")
        for key, value in params.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise TypeError(f"init rule {rule!r}: parameter {key} must be a finite number, got {value!r}")
        return cls(rule, tuple((k, params[k]) for k in want))

    @property
    def kwargs(self) -> dict[str, float]:
        return dict(self.params)

    def sample(self, rng: np.random.Generator, shape: Shape) -> np.ndarray:
        """Values of ``shape`` drawn from this rule, float32."""
        values = RULES[self.rule].sample(rng, tuple(shape), **self.kwargs)
        return np.ascontiguousarray(np.broadcast_to(values, shape), dtype=np.float32)

    def __str__(self) -> str:
        return f"{self.rule}({', '.join(f'{k}={v!r}' for k, v in self.params)})"


class InitEntry(NamedTuple):
    """One canonical tensor to initialise: torch name, torch shape, rule."""

    name: str
    shape: Shape
    init: Init


# --------------------------------------------------------------------------- the rules


def _uniform(rng: np.random.Generator, shape: Shape, bound: float) -> np.ndarray:
    return rng.uniform(-bound, bound, size=shape)


def kaiming_uniform_bound(fan_in: int, a: float) -> float:
    """torch's ``kaiming_uniform_`` bound for ``nonlinearity="leaky_relu"``, mode ``fan_in``:
    gain = sqrt(2 / (1 + a^2)), std = gain / sqrt(fan_in), bound = sqrt(3) * std.
    With a = sqrt(5) this is 1 / sqrt(fan_in) (https://github.com/pytorch/pytorch/issues/57109).
    """
    if fan_in <= 0:
        return 0.0  # torch warns and leaves zero-element tensors alone; nothing to draw
    gain = math.sqrt(2.0 / (1.0 + a * a))
    return math.sqrt(3.0) * gain / math.sqrt(fan_in)


def xavier_uniform_bound(fan_in: int, fan_out: int, gain: float = 1.0) -> float:
    """torch's ``xavier_uniform_`` bound: gain * sqrt(6 / (fan_in + fan_out))."""
    return gain * math.sqrt(3.0) * math.sqrt(2.0 / float(fan_in + fan_out))


def bias_bound(fan_in: int) -> float:
    """torch's bias bound in Linear/Conv ``reset_parameters``: 1 / sqrt(fan_in), 0 if fan_in is 0."""
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0


register_rule("zeros", (), lambda rng, shape: np.zeros(shape), "0 (torch.nn.init.zeros_)")
register_rule("ones", (), lambda rng, shape: np.ones(shape), "1 (torch.nn.init.ones_)")
register_rule("constant", ("value",), lambda rng, shape, value: np.full(shape, float(value)),
              "value (torch.nn.init.constant_)")
register_rule("normal", ("mean", "std"), lambda rng, shape, mean, std: rng.normal(mean, std, size=shape),
              "N(mean, std^2) (torch.nn.init.normal_; torch.randn(...) * std)")
register_rule("uniform", ("bound",), _uniform, "U(-bound, bound) (torch.nn.init.uniform_)")
register_rule("kaiming_uniform", ("a", "fan_in"),
              lambda rng, shape, a, fan_in: _uniform(rng, shape, kaiming_uniform_bound(int(fan_in), a)),
              "U(-b, b), b = sqrt(2 / (1 + a^2)) * sqrt(3 / fan_in) (torch.nn.init.kaiming_uniform_)")
register_rule("xavier_uniform", ("fan_in", "fan_out", "gain"),
              lambda rng, shape, fan_in, fan_out, gain: _uniform(
                  rng, shape, xavier_uniform_bound(int(fan_in), int(fan_out), gain)),
              "U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out)) (torch.nn.init.xavier_uniform_)")


# --------------------------------------------------------------------------- constructors


def zeros() -> Init:
    return Init.of("zeros")


def ones() -> Init:
    return Init.of("ones")


def constant(value: float) -> Init:
    return Init.of("constant", value=float(value))


def normal(std: float, mean: float = 0.0) -> Init:
    return Init.of("normal", mean=float(mean), std=float(std))


def uniform(bound: float) -> Init:
    return Init.of("uniform", bound=float(bound))


def kaiming_uniform(fan_in: int, a: float = math.sqrt(5.0)) -> Init:
    """torch's default weight init (``a = sqrt(5)``): U(+-1/sqrt(fan_in))."""
    return Init.of("kaiming_uniform", a=float(a), fan_in=int(fan_in))


def xavier_uniform(fan_in: int, fan_out: int, gain: float = 1.0) -> Init:
    return Init.of("xavier_uniform", fan_in=int(fan_in), fan_out=int(fan_out), gain=float(gain))


def torch_fans(shape: Shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of torch shape ``shape``, as
    ``torch.nn.init._calculate_fan_in_and_fan_out``: fan_in = shape[1] * prod(shape[2:]),
    fan_out = shape[0] * prod(shape[2:]). For ConvTranspose (in, out/groups, k...) that makes
    fan_in the *output* channels times the kernel size, as torch does."""
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need a tensor of at least 2 dimensions, got shape {tuple(shape)}")
    receptive = math.prod(shape[2:])
    return int(shape[1]) * receptive, int(shape[0]) * receptive


# --------------------------------------------------------------------------- torch's layers


def weight_and_bias(weight_shape: Shape, bias: bool = True) -> dict[str, Init]:
    """``nn.Linear`` / ``nn.Conv*d`` / ``nn.ConvTranspose*d`` ``reset_parameters``:
    {"weight": kaiming_uniform(a=sqrt(5)), "bias": U(+-1/sqrt(fan_in))}, fan_in from the weight's
    torch shape (:func:`torch_fans`)."""
    fan_in, _ = torch_fans(tuple(weight_shape))
    rules = {"weight": kaiming_uniform(fan_in)}
    if bias:
        rules["bias"] = uniform(bias_bound(fan_in))
    return rules


def batch_norm(affine: bool = True, track_running_stats: bool = True) -> dict[str, Init]:
    """``nn.BatchNorm*d``: weight 1, bias 0 (``reset_parameters``); running_mean 0, running_var 1
    (``reset_running_stats``). ``num_batches_tracked`` is not a checkpoint tensor."""
    rules = {"weight": ones(), "bias": zeros()} if affine else {}
    if track_running_stats:
        rules.update(running_mean=zeros(), running_var=ones())
    return rules


def layer_norm(elementwise_affine: bool = True, bias: bool = True) -> dict[str, Init]:
    """``nn.LayerNorm.reset_parameters``: weight 1, bias 0."""
    if not elementwise_affine:
        return {}
    return {"weight": ones(), "bias": zeros()} if bias else {"weight": ones()}


def multihead_attention(embed_dim: int, bias: bool = True) -> dict[str, Init]:
    """``nn.MultiheadAttention`` with packed projections (kdim = vdim = embed_dim):
    ``_reset_parameters`` draws ``in_proj_weight`` (3E, E) with ``xavier_uniform_`` as one matrix
    and zeroes ``in_proj_bias`` and ``out_proj.bias``; ``out_proj`` is a Linear(E, E) whose weight
    keeps Linear's default."""
    rules = {"in_proj_weight": xavier_uniform(embed_dim, 3 * embed_dim),
             "out_proj.weight": weight_and_bias((embed_dim, embed_dim), bias=False)["weight"]}
    if bias:
        rules.update({"in_proj_bias": zeros(), "out_proj.bias": zeros()})
    return rules


# --------------------------------------------------------------------------- drawing


def name_key(name: str) -> int:
    """The stable 32-bit key of a tensor name (CRC-32 of its UTF-8 bytes)."""
    return zlib.crc32(name.encode("utf-8"))


def tensor_rng(seed: int, name: str) -> np.random.Generator:
    """The generator tensor ``name`` is drawn from: PCG64 seeded with [seed, crc32(name)]."""
    return np.random.default_rng([seed, name_key(name)])


def draw(entry: InitEntry, seed: int) -> np.ndarray:
    """One tensor's initial values (float32, its torch shape); depends only on seed and entry."""
    shape = tuple(int(d) for d in entry.shape)
    if any(d < 0 for d in shape):
        raise ValueError(f"{entry.name}: negative dimension in shape {shape}")
    return entry.init.sample(tensor_rng(seed, entry.name), shape)


def initial_tensors(entries: Iterable[InitEntry | tuple[str, Shape, Init]], seed: int) -> dict[str, np.ndarray]:
    """{canonical name: float32 array in torch layout} for every entry, drawn from ``seed``.

    ``entries``: (name, torch shape, :class:`Init`) triples, e.g. a twin's ``init_entries(model)``.
    ``seed``: an integer 0 .. :data:`core.noise.MAX_SEED`. Names must be unique. The result is
    what the twins' ``load_tensors`` take.
    """
    if seed is None:
        raise ValueError("initial weights need an explicit integer seed")
    seed = check_seed(seed)
    out: dict[str, np.ndarray] = {}
    for entry in entries:
        entry = InitEntry(*entry)
        if entry.name in out:
            raise ValueError(f"tensor {entry.name!r} has two init entries")
        if not isinstance(entry.init, Init):
            raise TypeError(f"{entry.name}: init must be an Init, got {entry.init!r}")
        out[entry.name] = draw(entry, seed)
    return out


def resolve_entries(shapes: Mapping[str, Shape], declared: Iterable[tuple[str, Init]]) -> list[InitEntry]:
    """Match declared rules to a model's canonical tensors: one :class:`InitEntry` per name of
    ``shapes`` (in its order).

    ``declared`` yields (full tensor name, rule) pairs from the outermost layer inwards; the
    first declaration of a name wins, so a layer overrides the rule of a child's tensor (e.g. a
    head's bias) by declaring it under the child's name. Raises ``ValueError`` naming every tensor
    without a rule and every rule whose tensor does not exist.
    """
    rules: dict[str, Init] = {}
    for name, init in declared:
        rules.setdefault(name, init)
    missing = [n for n in shapes if n not in rules]
    unknown = sorted(set(rules) - set(shapes))
    if missing or unknown:
        raise ValueError("initial weights: "
                         + "; ".join(filter(None, [
                             f"no init rule for {missing} (declare init_rules() on its layer)" if missing else "",
                             f"init rules for tensors the model does not have: {unknown}" if unknown else ""])))
    return [InitEntry(name, tuple(int(d) for d in shape), rules[name]) for name, shape in shapes.items()]
