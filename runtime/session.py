"""Load exported A.G.E. parts and turn latents (or an image) into pictures.

Everything the runtime knows about a model comes from the ``age.*`` metadata that
:mod:`export.graph` embeds in each ``<part>.onnx`` (tensor names, shapes, kinds, value range,
config), so new models work here without code changes as long as they export:

* a *generator* part (``generator``, ``decoder`` or ``video_generator``): one latent input
  ``(batch, *latent_shape)`` (a vector ``(batch, latent_dim)``, or e.g. a conv autoencoder's
  feature map ``(batch, C, h, w)``) -> one output of kind ``image`` ``(batch, C, H, W)`` or
  ``video`` ``(batch, T, C, H, W)``;
* optionally an ``encoder`` part next to it: ``image`` ``(batch, C, H, W)`` -> ``mu``, ``logvar``
  (a *gaussian* encoder) or ``z`` (a *deterministic* one), each ``(batch, *latent_shape)``.

``age.prior`` says how seeds become latents (:mod:`runtime.priors`: ``normal``, ``sphere``, or
``none`` for an autoencoder, which only reconstructs), ``age.encoder_kind`` which encoder it has,
``age.reconstructs`` whether it can reconstruct. Files exported before those keys existed read as
prior ``normal`` with the encoder kind its output names give.

With an encoder, a picture can be *inverted* to its latent (:meth:`GeneratorSession.invert`: the
posterior mean or the code, on the prior's support) and two pictures *interpolated*
(:meth:`GeneratorSession.interpolate`): linearly for priors ``normal`` and ``none``, along the great
circle for ``sphere`` (:mod:`runtime.interpolation`).

Only onnxruntime, NumPy and Pillow (through :mod:`core.images`) are used: no torch, no
TensorFlow, not even indirectly, so the runtime installs with ``pip install .[runtime]``. OpenVINO
is an optional second backend (:mod:`runtime.backends`), imported only when asked for.

Parts open lazily (:class:`Part`): a session checks every file at load but creates a part's
backend session on its first call, so ``generate`` never pays for the encoder.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import logging
import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnxruntime as ort
from PIL import Image as PILImage

from core import FORMAT_VERSION, jsonio
from core import images as core_images
from core import noise as spec_noise
from core.noise import MAX_SEED, SCALE_RANGE, check_scale, check_seed  # noqa: F401 - part of this API
from core.errors import ModelFileError, os_error_message
from core.errors import AgeError
from core.registry import ENCODER_KINDS, ENCODER_PART, GENERATOR_PARTS, PRECISIONS, PRIORS, part_filename

from core import interpolation

from . import modelfile, priors
from . import precision as precision_auto
from .backends import DEFAULT_BACKEND, BackendError, OpenOptions, Runner, check_backend, open_runner
from .threads import Spin, ThreadPolicy, Threads
from .threads import resolve as resolve_threads
from .providers import CUDA, ProviderChoice, ProviderError, Providers, create_session
from .providers import ort_message as _one_line

log = logging.getLogger("runtime")

META_PREFIX = "age."
#: Generator parts, in the order a directory is searched for one.
REQUIRED_META = ("model", "part", "config", "inputs", "outputs")
#: Default chunk size for ``decode``/``generate``: bounds peak memory for large ``n``.
DEFAULT_BATCH_SIZE = 64

#: A picture: a path, encoded bytes, a float (C, H, W) array in [0, 1], or a PIL image.
ImageSource = Any
#: ``age.encoder_kind`` values: what the encoder gives (or that there is none).
ENCODER_KIND_VALUES = ("gaussian", "deterministic", "none")
#: The metadata keys that describe the model as a whole: every part of one export carries the same.
FACT_KEYS = ("prior", "encoder_kind", "reconstructs")


class UnsupportedOperation(AgeError):
    """The model cannot do what was asked: generate from seeds without a prior, variations without
    a Gaussian encoder, invert or interpolate pictures without an encoder. The message says why and
    what the model can do instead."""


@dataclass(frozen=True)
class TensorInfo:
    """One input/output as the metadata describes it (canonical layout, batch axis ``"batch"``)."""

    name: str
    shape: tuple[int | str, ...]
    kind: str

    @functools.cached_property
    def dims(self) -> tuple[int, ...]:
        """The non-batch dimensions (computed once: every decode call reads them)."""
        return tuple(int(d) for d in self.shape[1:])


def graph_target_advice(optimized_for: str | None, backend: str, provider: str) -> str | None:
    """Why a file may run slower where it was opened, from its ``age.optimized_for`` (what the
    export's graph rewrites tuned it for; absent when it has only folded weights), or None."""
    if optimized_for is None:
        return None
    if backend != "onnxruntime":
        return (f"its graph was rewritten for onnxruntime at export ({optimized_for[:40]!r}); {backend} ran such "
                "graphs down to 0.62x the exporter's speed: for this backend, export with --no-optimize")
    if provider == CUDA and optimized_for == "onnxruntime-cpu":
        return ("its graph was rewritten for onnxruntime's CPU kernels at export: its Col2Im nodes run on the CPU "
                "under CUDA; the --fp16 variant and --triton files are made for GPUs")
    return None


@dataclass(eq=False)
class Part:
    """One model file: its parsed metadata, and the runner that executes it, opened on first use.

    Why lazily: most calls never touch some parts (``generate`` never runs the encoder), and
    opening a graph is the bulk of a cold start. Everything that can be checked without a backend
    (the protobuf scan, external data, metadata bounds, the encoder's fit with its generator) is
    checked at load, so a broken file still fails there; what only the backend can tell (the
    graph's real inputs and outputs) is checked the moment the runner opens, before any run. Opening
    is guarded by a lock: the server calls parts from worker threads.
    """

    path: Path
    model: str
    name: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    value_range: tuple[float, float] | None
    config: dict[str, Any]
    metadata: dict[str, str] = field(repr=False)
    #: ``age.prior`` (default ``normal``)
    prior: str = priors.DEFAULT_PRIOR
    #: ``age.encoder_kind``, or None when the file does not say (derived from the encoder then)
    encoder_kind: str | None = None
    #: ``age.reconstructs``, or None when the file does not say
    reconstructs: bool | None = None
    #: makes the runner (backend + checked bytes); dropped once it has, so the bytes are freed
    opener: Callable[[], Runner] | None = field(default=None, repr=False)
    _runner: Runner | None = field(default=None, repr=False)
    _output_names: tuple[str, ...] = field(default=(), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- the runner, opened on first use ----------------------------------------------------

    @property
    def opened(self) -> bool:
        """Whether the backend has opened this part yet (reading :attr:`runner` opens it)."""
        return self._runner is not None

    @property
    def runner(self) -> Runner:
        """The opened graph; opens it (once, thread-safely) and checks it against the metadata."""
        runner = self._runner
        if runner is None:
            with self._lock:
                runner = self._runner
                if runner is None:
                    runner = self._open()
                    self._runner, self.opener = runner, None
        return runner

    def open(self) -> "Part":
        """Open the runner now (what a lazy part does on its first call); returns the part."""
        self.runner  # noqa: B018 - the property opens it
        return self

    def _open(self) -> Runner:
        if self.opener is None:  # pragma: no cover - a Part is always built with one
            raise ModelFileError(f"{self.path}: no way to open this part")
        runner = self.opener()
        _check_graph_matches(self.path, "inputs", self.inputs, list(runner.inputs()))
        _check_graph_matches(self.path, "outputs", self.outputs, list(runner.outputs()))
        self._output_names = tuple(o.name for o in runner.outputs())
        advice = graph_target_advice(self.metadata.get(META_PREFIX + "optimized_for"), runner.backend,
                                     runner.choice.provider)
        if advice:
            log.warning("%s: %s", self.path.name, advice)
        log.debug("%s: opened on %s, %s", self.path.name, runner.backend, runner.choice.describe())
        return runner

    @property
    def session(self) -> Any:
        """The backend's own session object (an ``onnxruntime.InferenceSession`` by default)."""
        return self.runner.session

    @property
    def choice(self) -> ProviderChoice:
        """The provider this part really runs on (opens the part)."""
        return self.runner.choice

    @property
    def backend(self) -> str:
        return self.runner.backend

    @property
    def output_names(self) -> tuple[str, ...]:
        """The graph's output names in graph order (what ``run`` returns), read once when it opens."""
        self.runner  # noqa: B018 - opens the part, which records them
        return self._output_names

    @property
    def device(self) -> str:
        """Where this part's tensors live: ``"cuda"`` on the CUDA provider, else ``"cpu"``."""
        return "cuda" if self.choice.provider == CUDA else "cpu"

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Host arrays in, host arrays out. On CUDA this goes through IO binding (one upload per
        input, outputs allocated on the device by ORT and copied back once)."""
        runner = self.runner
        if self.device == "cuda":
            return [v.numpy() for v in self.run_bound(feeds)]
        try:
            return runner.run(feeds)
        except AgeError:
            raise
        except Exception as exc:  # noqa: BLE001 - backends raise their own exception types
            raise ModelFileError(f"{self.path}: inference failed ({_one_line(exc)})") from None

    def run_bound(self, feeds: dict[str, Any], device: str | None = None) -> list[Any]:
        """Run with IO binding and return ``onnxruntime.OrtValue`` outputs left on ``device``
        (the onnxruntime backend only).

        Inputs may be NumPy arrays (uploaded once) or OrtValues already on the device, e.g. the
        outputs of another part's ``run_bound``: chained parts then never touch host memory.
        """
        if self.backend != "onnxruntime":
            raise UnsupportedOperation(f"{self.path}: IO binding is onnxruntime's; this part runs on {self.backend}")
        device = device or self.device
        try:
            binding = self.session.io_binding()
            for name, value in feeds.items():
                if not isinstance(value, ort.OrtValue):
                    value = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(value, dtype=np.float32), device, 0)
                binding.bind_ortvalue_input(name, value)
            for name in self.output_names:
                binding.bind_output(name, device, 0)
            self.session.run_with_iobinding(binding)
            return list(binding.get_outputs())
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
            raise ModelFileError(f"{self.path}: inference failed ({_one_line(exc)})") from None


# --------------------------------------------------------------------------- loading


#: Bounds on what a model file's metadata and graph can make the runtime allocate, checked when
#: it is loaded, before anything runs. One sample (an image, or a whole video) may have at most
#: MAX_SAMPLE_ELEMENTS values (64 MiB as float32; a 32-frame 3x256x256 video is 6.3 M) ...
MAX_SAMPLE_ELEMENTS = 2**24
#: ... a latent vector at most MAX_LATENT_DIM values ...
MAX_LATENT_DIM = 65_536
#: ... and one generate/variations call at most MAX_OUTPUT_ELEMENTS output values in total (its
#: uint8 result then takes at most 256 MiB: n is capped per model, see GeneratorSession.max_images).
MAX_OUTPUT_ELEMENTS = 2**28
#: One inference call decodes at most this many output values (chunks are cut to fit).
MAX_CHUNK_ELEMENTS = 2**26
#: Largest JSON text accepted in one age.* metadata entry (a config is a few KB).
MAX_META_JSON_BYTES = 1024 * 1024
#: Latent values are refused beyond this magnitude (standard-normal latents stay within +-7).
MAX_LATENT_ABS = 1e4


def _meta_json(path: Path, key: str, text: str) -> Any:
    return jsonio.loads(text, f"{path}: metadata {META_PREFIX}{key}", ModelFileError, max_bytes=MAX_META_JSON_BYTES)


def _parse_tensors(path: Path, key: str, text: str) -> tuple[TensorInfo, ...]:
    items = _meta_json(path, key, text)
    try:
        if not isinstance(items, list):
            raise ValueError("not a list")
        tensors = []
        for t in items:
            if not isinstance(t, dict) or not isinstance(t.get("shape"), list):
                raise ValueError(f"entry {str(t)[:80]} is not an object with a shape list")
            info = TensorInfo(str(t["name"]), tuple(t["shape"]), str(t.get("kind", "vector")))
            dims = info.shape[1:]
            if (not info.shape or info.shape[0] != "batch" or len(info.shape) > 8
                    or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims)):
                raise ValueError(f"bad shape {list(info.shape)[:9]} for {info.name[:80]!r}")
            if math.prod(dims) > MAX_SAMPLE_ELEMENTS:
                raise ValueError(f"{info.name[:80]!r} has {math.prod(dims)} values per sample "
                                 f"(shape {list(info.shape)}); the limit is {MAX_SAMPLE_ELEMENTS}")
            tensors.append(info)
    except (TypeError, KeyError, ValueError) as exc:
        raise ModelFileError(f"{path}: metadata {META_PREFIX}{key} is malformed ({exc})") from None
    if not tensors:
        raise ModelFileError(f"{path}: metadata {META_PREFIX}{key} lists no tensors")
    return tuple(tensors)


def _parse_metadata(path: Path, entries: list[tuple[str, str]]) -> dict[str, Any]:
    """The ``age.*`` entries of a model file, every JSON value parsed with bounds (core.jsonio)."""
    raw: dict[str, str] = {}
    for key, value in entries:
        if key in raw and key.startswith(META_PREFIX) and raw[key] != value:
            raise ModelFileError(f"{path}: metadata {key} appears twice with different values")
        raw[key] = value
    meta = {k[len(META_PREFIX) :]: v for k, v in raw.items() if k.startswith(META_PREFIX)}
    if not meta:
        raise ModelFileError(f"{path}: not an A.G.E. model (no {META_PREFIX}* metadata); export it with python -m export.onnx")
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ModelFileError(f"{path}: metadata is missing {', '.join(META_PREFIX + k for k in missing)}")
    version = meta.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise ModelFileError(f"{path}: format version {version[:40]!r}; this runtime reads version {FORMAT_VERSION!r}")
    config = _meta_json(path, "config", meta["config"])
    if not isinstance(config, dict):
        raise ModelFileError(f"{path}: metadata {META_PREFIX}config is not a JSON object")
    vr = _meta_json(path, "value_range", meta.get("value_range", "null"))
    try:
        value_range = None if vr is None else (float(vr[0]), float(vr[1]))
        if value_range is not None and not (len(vr) == 2 and all(map(math.isfinite, value_range))
                                            and value_range[0] < value_range[1]):
            raise ValueError(f"not a finite [low, high] range: {str(vr)[:80]}")
    except (TypeError, ValueError, IndexError, KeyError, OverflowError) as exc:
        raise ModelFileError(f"{path}: metadata {META_PREFIX}value_range is malformed ({exc})") from None
    facts = _parse_facts(path, meta)
    inputs = _parse_tensors(path, "inputs", meta["inputs"])
    for t in inputs:
        if t.kind == "vector" and math.prod(t.dims) > MAX_LATENT_DIM:
            raise ModelFileError(f"{path}: metadata {META_PREFIX}inputs: {t.name[:80]!r} is a {math.prod(t.dims)}-value "
                                 f"vector; latent_dim is limited to {MAX_LATENT_DIM}")
    return {
        "model": meta["model"],
        "part": meta["part"],
        "config": config,
        "inputs": inputs,
        "outputs": _parse_tensors(path, "outputs", meta["outputs"]),
        "value_range": value_range,
        "metadata": raw,
        **facts,
    }


def _parse_facts(path: Path, meta: dict[str, str]) -> dict[str, Any]:
    """``age.prior`` / ``age.encoder_kind`` / ``age.reconstructs``, each optional (older exports)."""
    prior = meta.get("prior", priors.DEFAULT_PRIOR)
    if prior not in PRIORS:
        raise ModelFileError(f"{path}: metadata {META_PREFIX}prior is {prior[:40]!r}; expected one of {', '.join(PRIORS)}")
    kind = meta.get("encoder_kind")
    if kind is not None and kind not in ENCODER_KIND_VALUES:
        raise ModelFileError(f"{path}: metadata {META_PREFIX}encoder_kind is {kind[:40]!r}; "
                             f"expected one of {', '.join(ENCODER_KIND_VALUES)}")
    reconstructs = None
    if "reconstructs" in meta:
        reconstructs = _meta_json(path, "reconstructs", meta["reconstructs"])
        if not isinstance(reconstructs, bool):
            raise ModelFileError(f"{path}: metadata {META_PREFIX}reconstructs is {meta['reconstructs'][:40]!r}; "
                                 "expected true or false")
    return {"prior": prior, "encoder_kind": kind, "reconstructs": reconstructs}


def _check_graph_matches(path: Path, kind: str, declared: tuple[TensorInfo, ...], actual: list[Any]) -> None:
    """The graph's real inputs/outputs must be the ones the metadata promises (names, dtype, dims).

    Only the batch axis may be symbolic: a graph whose other dims are symbolic could return
    tensors of any size, whatever the metadata (and its bounds) say.
    """
    names = [a.name for a in actual]
    if sorted(names) != sorted(t.name for t in declared):
        raise ModelFileError(
            f"{path}: graph {kind} {names} do not match metadata {META_PREFIX}{kind} {[t.name for t in declared]}"
        )
    by_name = {a.name: a for a in actual}
    for t in declared:
        arg = by_name[t.name]
        if arg.type != "tensor(float)":
            raise ModelFileError(f"{path}: {kind[:-1]} {t.name!r} is {arg.type}, expected tensor(float)")
        shape = list(arg.shape)
        if len(shape) != len(t.shape) or any(got != want for got, want in zip(shape[1:], t.shape[1:])):
            symbolic = len(shape) == len(t.shape) and any(not isinstance(d, int) for d in shape[1:])
            why = "; only the batch axis may be symbolic" if symbolic else ""
            raise ModelFileError(f"{path}: {kind[:-1]} {t.name!r} has shape {shape}, metadata says {list(t.shape)}{why}")


def _read_model(path: Path) -> bytes:
    """The bytes of one model file; every OS failure becomes a ModelFileError naming it."""
    try:
        if not path.exists():
            raise ModelFileError(f"{path}: no such file")
        if not path.is_file():
            raise ModelFileError(f"{path}: not a file")
        size = path.stat().st_size
        if size > modelfile.MAX_MODEL_BYTES:
            raise ModelFileError(f"{path}: {size} bytes is larger than any ONNX file can be")
        blob = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(os_error_message(exc, "cannot read model")) from None
    if not blob:
        raise ModelFileError(f"{path}: empty file, not an ONNX model")
    return blob


def read_model(path: Path):
    """(bytes, scan) of one untrusted ONNX file: read once, its protobuf scanned and its external data
    refused outside the model's own folder; nothing is handed to onnxruntime yet."""
    blob = _read_model(path)
    scan = modelfile.scan(blob, str(path))
    modelfile.check_external_data(path, scan.external)
    return blob, scan


def model_session(path: Path, blob: bytes, providers: Providers = None, threads: ThreadPolicy | None = None):
    """(session, provider choice) of checked bytes (:func:`read_model`), external data resolving
    against the model's own folder; a failure is a :class:`ModelFileError` naming the file."""
    try:
        return create_session(blob, providers, external_data_dir=path.parent.resolve(), threads=threads)
    except (ModelFileError, ProviderError):
        raise
    except Exception as exc:  # noqa: BLE001 - InvalidProtobuf, Fail, InvalidGraph, ...
        raise ModelFileError(f"{path}: not a loadable ONNX model ({_one_line(exc)})") from None


def open_model(path: str | os.PathLike, providers: Providers = None, threads: ThreadPolicy | None = None):
    """(session, provider choice) of one untrusted ONNX file that carries no toolkit metadata (a
    metric's feature network): :func:`read_model`, then :func:`model_session`."""
    path = Path(path)
    blob, _ = read_model(path)
    return model_session(path, blob, providers, threads)


def load_part(path: str | os.PathLike, providers: Providers = None, *, lazy: bool = False,
              options: OpenOptions | None = None) -> Part:
    """Read one ``<part>.onnx`` and validate it against its own metadata; open it unless ``lazy``.

    The file is read once; the same bytes are checked (external data stays inside the model's
    folder, metadata parses within bounds) and later handed to the backend (``options``: default
    onnxruntime on ``providers``), with external data resolving against the model's own folder
    rather than the working directory. A ``lazy`` part keeps the checked bytes and opens its
    runner on first use (:attr:`Part.runner`), checking the external data once more then, since
    the folder may have changed in between.
    """
    path = Path(path)
    blob, scan = read_model(path)
    meta = _parse_metadata(path, scan.metadata)  # before any backend ever sees the bytes
    options = options if options is not None else OpenOptions(providers=providers)
    names = tuple(t.name for t in (*meta["inputs"], *meta["outputs"]))

    def opener() -> Runner:
        if lazy:
            modelfile.check_external_data(path, scan.external)
        try:
            return open_runner(path, blob, options, has_external_data=bool(scan.external), names=names)
        except (ModelFileError, ProviderError, BackendError):
            raise
        except Exception as exc:  # noqa: BLE001 - InvalidProtobuf, Fail, InvalidGraph, OpenVINO's errors, ...
            raise ModelFileError(f"{path}: not a loadable ONNX model ({_one_line(exc)})") from None

    part = Part(path=path, name=meta.pop("part"), opener=opener, **meta)
    return part if lazy else part.open()


def _check_generator(part: Part) -> tuple[int, ...]:
    """Validate the generator contract; returns the per-sample latent shape."""
    if part.name not in GENERATOR_PARTS:
        hint = " (pass the generator/decoder file or the model directory)" if part.name == ENCODER_PART else ""
        raise ModelFileError(f"{part.path}: part {part.name!r} is not a generator; expected one of {GENERATOR_PARTS}{hint}")
    if len(part.inputs) != 1 or len(part.inputs[0].shape) < 2:
        raise ModelFileError(f"{part.path}: a generator takes one (batch, *latent_shape) input, metadata has {part.inputs}")
    out = part.outputs[0]
    want_rank = {"image": 4, "video": 5}.get(out.kind)
    if want_rank is None or len(out.shape) != want_rank:
        raise ModelFileError(
            f"{part.path}: first output {out.name!r} must be an image (batch, C, H, W) or video "
            f"(batch, T, C, H, W), metadata has kind {out.kind!r} shape {list(out.shape)}"
        )
    shape = part.inputs[0].dims
    if math.prod(shape) > MAX_LATENT_DIM:
        raise ModelFileError(f"{part.path}: input {part.inputs[0].name[:80]!r} has {math.prod(shape)} values per sample "
                             f"(shape {list(shape)}); latent_dim is limited to {MAX_LATENT_DIM}")
    declared = part.config.get("latent_dim")
    # a config's latent_dim is the vector size; a spatial latent's config may mean something else by it
    if len(shape) == 1 and declared is not None and declared != shape[0]:
        raise ModelFileError(f"{part.path}: input is {shape[0]}-d but config latent_dim is {declared}")
    return shape


def _check_encoder(encoder: Part, generator: Part, latent_shape: tuple[int, ...]) -> str:
    """The encoder must belong to the same export as the generator, or its latents are garbage.

    Returns its kind (``gaussian`` or ``deterministic``), read from its output names and checked
    against ``age.encoder_kind`` where either file declares it.
    """
    for key in ("model", "config"):
        if getattr(encoder, key) != getattr(generator, key):
            raise ModelFileError(f"{encoder.path}: {key} differs from {generator.path}; they are not from one export")
    if encoder.metadata.get("age.step") != generator.metadata.get("age.step"):
        raise ModelFileError(
            f"{encoder.path}: step {encoder.metadata.get('age.step')} differs from {generator.path} "
            f"step {generator.metadata.get('age.step')}; they are not from one checkpoint"
        )
    for key in FACT_KEYS:
        mine, theirs = encoder.metadata.get(META_PREFIX + key), generator.metadata.get(META_PREFIX + key)
        if mine is not None and theirs is not None and mine != theirs:
            raise ModelFileError(f"{encoder.path}: metadata {META_PREFIX}{key} is {mine[:40]!r} but {generator.path} "
                                 f"says {theirs[:40]!r}; they are not from one export")
    if len(encoder.inputs) != 1 or encoder.inputs[0].kind != "image" or len(encoder.inputs[0].shape) != 4:
        raise ModelFileError(f"{encoder.path}: an encoder takes one image (batch, C, H, W) input")
    names = [t.name for t in encoder.outputs]
    derived = next((kind for outs, kind in ENCODER_KINDS.items() if sorted(outs) == sorted(names)), None)
    if derived is None:
        raise ModelFileError(f"{encoder.path}: encoder outputs {[n[:40] for n in names[:8]]} are neither "
                             "(mu, logvar) nor (z)")
    for part in (encoder, generator):
        declared = part.encoder_kind
        if declared is not None and declared != derived:
            raise ModelFileError(f"{part.path}: metadata {META_PREFIX}encoder_kind is {declared!r} but "
                                 f"{encoder.path.name} outputs {names}, a {derived} encoder")
    shape = "(batch, " + ", ".join(map(str, latent_shape)) + ")"
    for t in encoder.outputs:
        if t.dims != latent_shape:
            raise ModelFileError(f"{encoder.path}: encoder output {t.name!r} has shape {list(t.shape)}; the "
                                 f"generator {generator.path.name} takes {shape}")
    return derived


def _resolve(path: Path, precision: str = "fp32") -> tuple[Path, Path | None]:
    """(generator file, encoder file or None) for a directory or a file path."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(precision_auto.CHOICES)}, got {precision!r}")
    try:
        return _find_parts(path, precision)
    except OSError as exc:  # a folder we may not list, a name too long, ...
        raise ModelFileError(os_error_message(exc, "cannot open model")) from None


def _find_parts(path: Path, precision: str) -> tuple[Path, Path | None]:
    if not path.exists():
        raise ModelFileError(f"{path}: no such file or directory")
    folder = path if path.is_dir() else path.parent
    if path.is_dir():
        found = [folder / part_filename(p, precision) for p in GENERATOR_PARTS
                 if (folder / part_filename(p, precision)).is_file()]
        if not found:
            names = ", ".join(part_filename(p, precision) for p in GENERATOR_PARTS)
            hint = " (export with --fp16/--int8 to make one)" if precision != "fp32" else ""
            what = "generator part" if precision == "fp32" else f"{precision} generator part"
            raise ModelFileError(f"{path}: no {what} in this directory (looked for {names}){hint}")
        generator = found[0]
    else:
        generator = path
    encoder = next((folder / part_filename(ENCODER_PART, p) for p in dict.fromkeys((precision, "fp32"))
                    if (folder / part_filename(ENCODER_PART, p)).is_file()), None)
    return generator, (encoder if encoder is not None and encoder != generator else None)


# --------------------------------------------------------------------------- the session


class GeneratorSession:
    """A loaded generator (plus its encoder, when exported): latents -> images.

    Build it with :func:`load`. Arrays in are float32 latents ``(N, *latent_shape)`` (or flat,
    ``(N, latent_dim)``); images out are uint8 ``(N, H, W, C)`` (``(N, T, H, W, C)`` for video),
    Pillow's layout.
    """

    #: the thread policy its parts were opened with (:mod:`runtime.threads`)
    threads: ThreadPolicy | None = None
    #: which variant runs: ``fp32``, ``fp16``, ``int8``, or (OpenVINO computing the fp32 file in bf16)
    #: ``bf16``; with ``precision="auto"``, what the measurement chose (:mod:`runtime.precision`)
    precision: str = "fp32"
    #: OpenVINO's inference precision (``f32``/``bf16``); None on onnxruntime
    inference_precision: str | None = None
    #: ``precision="auto"``'s measurements (:class:`runtime.precision.Measurement`), else empty
    measurements: tuple = ()

    def __init__(self, generator: Part, encoder: Part | None = None):
        self._gen = generator
        self._latent_shape = _check_generator(generator)
        self._encoder_kind = "none"
        if encoder is not None:
            self._encoder_kind = _check_encoder(encoder, generator, self._latent_shape)
        self._enc = encoder

    # -- description -------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._gen.path

    @property
    def encoder_path(self) -> Path | None:
        return self._enc.path if self._enc else None

    @property
    def model(self) -> str:
        """Registry name of the model (its ``core/models/<name>.py``)."""
        return self._gen.model

    @property
    def part(self) -> str:
        return self._gen.name

    @property
    def config(self) -> dict[str, Any]:
        return dict(self._gen.config)

    @property
    def metadata(self) -> dict[str, str]:
        """The generator file's raw metadata_props (``age.*`` and any others)."""
        return dict(self._gen.metadata)

    @property
    def latent_dim(self) -> int:
        """Values per latent: the product of :attr:`latent_shape`."""
        return math.prod(self._latent_shape)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """Per-sample shape of the generator's input: ``(latent_dim,)`` or e.g. ``(C, h, w)``."""
        return self._latent_shape

    @property
    def prior(self) -> str:
        """``normal``, ``sphere`` or ``none`` (an autoencoder: it cannot generate from seeds)."""
        return self._gen.prior

    @property
    def encoder_kind(self) -> str:
        """``gaussian`` (mu, logvar), ``deterministic`` (z) or ``none`` (no encoder loaded)."""
        return self._encoder_kind

    @property
    def can_generate(self) -> bool:
        """Whether seeds can become images (the model has a prior)."""
        return self.prior != "none"

    @property
    def can_reconstruct(self) -> bool:
        """Whether :meth:`reconstruct` works: an encoder is loaded next to the generator."""
        return self._enc is not None

    @property
    def can_vary(self) -> bool:
        """Whether :meth:`variations` works: it needs a Gaussian encoder's posterior."""
        return self._encoder_kind == "gaussian"

    @property
    def can_interpolate(self) -> bool:
        """Whether :meth:`invert` and :meth:`interpolate` work on pictures: they need an encoder
        (:meth:`interpolation_path` between two latents works on every model)."""
        return self._enc is not None

    @property
    def interpolation_geometry(self) -> str:
        """``"linear"`` (priors ``normal``, ``none``) or ``"spherical"`` (``sphere``): the geometry of
        :meth:`interpolation_path` (:data:`runtime.interpolation.GEOMETRIES`)."""
        return interpolation.geometry(self.prior)

    @property
    def is_video(self) -> bool:
        return self._gen.outputs[0].kind == "video"

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Canonical per-sample output shape: (C, H, W), or (T, C, H, W) for video."""
        return self._gen.outputs[0].dims

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one image (one frame, for video), as :meth:`generate` returns it."""
        c, h, w = self.output_shape[-3:]
        return (h, w, c)

    @property
    def frames(self) -> int | None:
        """Frames per video, or None for an image model."""
        return self.output_shape[0] if self.is_video else None

    @property
    def value_range(self) -> tuple[float, float] | None:
        return self._gen.value_range

    @property
    def provider(self) -> str:
        """The execution provider the generator really runs on."""
        return self._gen.choice.provider

    @property
    def backend(self) -> str:
        """``onnxruntime`` or ``openvino`` (:mod:`runtime.backends`)."""
        return self._gen.backend

    @property
    def provider_reason(self) -> str:
        return self._gen.choice.reason

    @property
    def sample_elements(self) -> int:
        """Output values per sample (C*H*W, or T*C*H*W for video)."""
        return math.prod(self.output_shape)

    @property
    def max_images(self) -> int:
        """Most images (or videos) one call may produce: MAX_OUTPUT_ELEMENTS / sample_elements."""
        return max(1, MAX_OUTPUT_ELEMENTS // self.sample_elements)

    @property
    def has_encoder(self) -> bool:
        return self._enc is not None

    @property
    def parts(self) -> tuple[Part, ...]:
        """The loaded parts: the generator, then the encoder when there is one."""
        return (self._gen,) if self._enc is None else (self._gen, self._enc)

    def __repr__(self) -> str:
        return (
            f"GeneratorSession({self.model}/{self.part}, latent_shape={self.latent_shape}, prior={self.prior}, "
            f"image={self.image_shape}, video={self.is_video}, encoder={self.encoder_kind}, provider={self.provider})"
        )

    # -- inference ---------------------------------------------------------------------

    def decode(self, latents: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Raw generator output, float32 ``(N, C, H, W)`` or ``(N, T, C, H, W)``, in chunks."""
        z = self._check_latents(latents)
        # at most MAX_CHUNK_ELEMENTS output values per inference call, whatever batch_size says
        step = min(_batch_size(batch_size), max(1, MAX_CHUNK_ELEMENTS // self.sample_elements))
        name = self._gen.inputs[0].name
        out_name = self._gen.outputs[0].name
        index = self._gen.output_names.index(out_name)
        chunks = [self._gen.run({name: z[i : i + step]})[index] for i in range(0, len(z), step)]
        if not chunks:
            return np.zeros((0, *self.output_shape), dtype=np.float32)
        # one chunk (the usual case) is returned as the backend gave it: concatenating would copy it
        out = (chunks[0] if len(chunks) == 1 else np.concatenate(chunks)).astype(np.float32, copy=False)
        if out.shape[1:] != self.output_shape:
            raise ModelFileError(f"{self.path}: output shape {out.shape[1:]} differs from metadata {self.output_shape}")
        return out

    def to_uint8(self, outputs: np.ndarray) -> np.ndarray:
        """Raw outputs -> uint8 channels-last, rescaling ``value_range`` (None: [0, 1]) to [0, 255]."""
        x = np.asarray(outputs, dtype=np.float32)
        if self.value_range is not None and self.value_range != (0.0, 1.0):
            lo, hi = self.value_range
            x = (x - np.float32(lo)) / np.float32(hi - lo)
        return core_images.to_uint8(x)

    def generate(
        self,
        n: int | None = None,
        seed: int | None = None,
        latents: np.ndarray | None = None,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """``n`` images from :meth:`sample_latents` ``(n, seed)`` or from explicit ``latents``.

        The same seed gives the same images here, in the torch and the Keras trainers.
        ``seed=None`` draws fresh entropy; otherwise 0 <= seed <= MAX_SEED. ``n`` is at most
        :attr:`max_images`. A model without a prior raises :class:`UnsupportedOperation` for
        seeds; explicit latents decode on every model.
        """
        if latents is None:
            if n is None:
                raise ValueError("generate: give n (and optionally seed) or latents")
            latents = self.sample_latents(n, seed)
        elif n is not None and _count(n, "n") != len(np.asarray(latents)):
            raise ValueError(f"generate: n={n} but {len(np.asarray(latents))} latents were given")
        return self.to_uint8(self.decode(latents, batch_size))

    def sample_latents(self, n: int, seed: int | None = 0) -> np.ndarray:
        """``(n, *latent_shape)`` float32 latents drawn from the model's prior (:mod:`runtime.priors`)."""
        if not self.can_generate:
            raise UnsupportedOperation(
                f"model {self.model!r} ({self.path.name}) is an autoencoder and only reconstructs: it has no prior "
                f"to generate from seeds with ({META_PREFIX}prior is 'none'); reconstruct an image instead"
            )
        n = self.check_n(n)
        return priors.sample(self.prior, n, self.latent_shape, check_seed(seed))

    # -- encoder -----------------------------------------------------------------------

    def _require_encoder(self, purpose: str = "variations need") -> Part:
        if self._enc is None:
            raise ModelFileError(
                f"{self.path.parent}: no {ENCODER_PART}.onnx next to {self.path.name}; "
                f"{purpose} the encoder part (model {self.model!r})"
            )
        return self._enc

    def _require_gaussian(self) -> Part:
        enc = self._require_encoder()
        if self._encoder_kind != "gaussian":
            raise UnsupportedOperation(
                f"model {self.model!r} ({enc.path.name}) has a {self._encoder_kind} encoder: it gives one latent z, "
                "not a posterior (mu, logvar), so there is nothing to draw variations from; reconstruct the image instead"
            )
        return enc

    @property
    def input_image_shape(self) -> tuple[int, int, int] | None:
        """Canonical (C, H, W) the encoder takes, or None without an encoder."""
        return self._enc.inputs[0].dims if self._enc else None  # type: ignore[return-value]

    def load_image(self, image: ImageSource, max_pixels: int | None = None, name: str | None = None) -> np.ndarray:
        """An encoder input ``(C, H, W)`` float32 in [0, 1] from a path, encoded bytes, an array or a
        PIL image; a file or bytes over ``max_pixels`` (default ``core.images.MAX_IMAGE_PIXELS``) is
        refused with :class:`core.images.ImageTooLarge` before it is decoded. ``name`` is what
        error messages call the picture (default: its path, or "image")."""
        c, h, w = self._require_encoder().inputs[0].dims
        if isinstance(image, PILImage.Image):
            # through PNG bytes, so a PIL image gets exactly the checks and resizing a file gets
            buf = io.BytesIO()
            image.convert("RGB").save(buf, format="PNG")
            image = buf.getvalue()
        if isinstance(image, np.ndarray):
            x = np.asarray(image, dtype=np.float32)
            if x.ndim == 4 and x.shape[0] == 1:
                x = x[0]
            label = f"{name} array" if name else "image array"
            if x.shape != (c, h, w):
                raise ValueError(f"{label}: expected float (C, H, W) = {(c, h, w)}, got {image.shape}")
            if not np.all(np.isfinite(x)):
                raise ValueError(f"{label}: contains NaN or infinity")
            return x
        if h != w:
            raise ModelFileError(f"{self._require_encoder().path}: encoder input {h}x{w} is not square")
        if c not in (1, 3):
            raise ModelFileError(f"{self._require_encoder().path}: encoder wants {c} channels; images give 1 or 3")
        # (c, h, h); raises DataError on bad files
        return core_images.load_image(image, h, name=name, max_pixels=max_pixels, channels=c).astype(np.float32, copy=False)

    def _run_encoder(self, images: np.ndarray, what: str, batch_size: int | None = None) -> dict[str, np.ndarray]:
        """The encoder's outputs by name, each ``(N, *latent_shape)``, run in chunks."""
        enc = self._require_encoder("reconstruction needs" if what == "reconstruct" else "encode needs")
        x = np.asarray(images, dtype=np.float32)
        want = enc.inputs[0].dims
        if x.ndim != 4 or x.shape[1:] != want:
            raise ValueError(f"{what}: expected images (N, {', '.join(map(str, want))}), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{what}: images contain NaN or infinity")
        x = self._to_model_range(x)
        step = min(_batch_size(batch_size), max(1, MAX_CHUNK_ELEMENTS // max(1, math.prod(want))))
        chunks = [enc.run({enc.inputs[0].name: x[i : i + step]}) for i in range(0, len(x), step)] or [
            [np.zeros((0, *self.latent_shape), np.float32) for _ in enc.output_names]]
        out = {name: np.concatenate([c[k] for c in chunks]) for k, name in enumerate(enc.output_names)}
        for name, value in out.items():
            if value.shape[1:] != self.latent_shape:
                raise ModelFileError(f"{enc.path}: output {name!r} has shape {value.shape[1:]}, metadata says {self.latent_shape}")
        return out

    def _to_model_range(self, x: np.ndarray) -> np.ndarray:
        """Images in [0, 1] -> the range the model generates in (its generator's ``value_range``):
        training maps its data onto that range (``core.trainer_base.data_range``), so that is what
        the encoder learned to read ((-1, 1) for a Tanh generator)."""
        low, high = self.value_range or (0.0, 1.0)
        if (low, high) == (0.0, 1.0):
            return x
        return (np.float32(low) + np.float32(high - low) * x).astype(np.float32)

    def encode(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Float ``(N, C, H, W)`` images in [0, 1] -> ``(mu, logvar)``, each ``(N, *latent_shape)``.

        Only a Gaussian encoder has a posterior; :meth:`encode_latents` works for every encoder.
        """
        self._require_gaussian()
        out = self._run_encoder(images, "encode")
        return out["mu"], out["logvar"]

    def encode_latents(self, images: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Float ``(N, C, H, W)`` images in [0, 1] -> the latents that reconstruct them,
        ``(N, *latent_shape)``: ``mu`` of a Gaussian encoder, ``z`` of a deterministic one."""
        out = self._run_encoder(images, "reconstruct", batch_size)
        return out["mu"] if self._encoder_kind == "gaussian" else out["z"]

    def _inverted(self, images: np.ndarray, batch_size: int | None, what: str) -> np.ndarray:
        """:meth:`encode_latents` on the prior's support (:func:`runtime.priors.on_support`: unit norm
        for ``sphere``), checked to be decodable: what reconstruction and inversion decode."""
        x = np.asarray(images, dtype=np.float32)
        self.check_n(len(x) if x.ndim else 0, "images")
        return self._unusable_latents(priors.on_support(self.prior, self.encode_latents(x, batch_size)), what)

    def reconstruct(self, images: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Float ``(N, C, H, W)`` images in [0, 1] -> their uint8 reconstructions ``(N, H, W, C)``:
        encode (the posterior mean, or z; on the unit sphere for prior ``sphere``), then decode."""
        return self.to_uint8(self.decode(self._inverted(images, batch_size, "reconstruct"), batch_size))

    def reconstruction_latents(self, image: ImageSource, max_pixels: int | None = None) -> np.ndarray:
        """The ``(1, *latent_shape)`` latent that reconstructs one picture (a path, encoded bytes,
        a float ``(C, H, W)`` array or a PIL image); what the server decodes."""
        self._require_encoder("reconstruction needs")
        return self._inverted(self.load_image(image, max_pixels)[None], None, "reconstruct")

    def reconstruct_image(self, image: ImageSource, max_pixels: int | None = None) -> np.ndarray:
        """One picture -> its uint8 reconstruction ``(H, W, C)`` (``(T, H, W, C)`` for video)."""
        return self.to_uint8(self.decode(self.reconstruction_latents(image, max_pixels)))[0]

    def _unusable_latents(self, z: np.ndarray, what: str = "reconstruct") -> np.ndarray:
        try:
            return self._check_latents(z)
        except ValueError as exc:
            raise ValueError(f"{what}: the encoder gives unusable latents for this image ({exc})") from None

    # -- inversion and interpolation -------------------------------------------------------

    def _require_inversion(self, purpose: str) -> Part:
        if self._enc is None:
            raise UnsupportedOperation(
                f"model {self.model!r} ({self.path.name}) has no encoder: there is no {ENCODER_PART}.onnx next to "
                f"{self.path.name}, so pictures cannot be inverted to latents; {purpose} needs the encoder part "
                "(export a model with an encoder, or interpolate between latents with interpolation_path)"
            )
        return self._enc

    def invert_latents(self, images: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Float ``(N, C, H, W)`` images in [0, 1] -> their latents ``(N, *latent_shape)``.

        The encoder's posterior mean ``mu`` (Gaussian) or its code ``z`` (deterministic), on the
        prior's support: for ``sphere`` each latent is normalised to unit L2 norm (one already
        within ``runtime.priors.UNIT_NORM_TOLERANCE`` of it is kept bit for bit). These are the
        latents :meth:`reconstruct` decodes. Without an encoder: :class:`UnsupportedOperation`.
        """
        self._require_inversion("inversion")
        return self._inverted(images, batch_size, "invert")

    def invert(self, image: ImageSource, max_pixels: int | None = None, name: str | None = None) -> np.ndarray:
        """One picture (a path, encoded bytes, a float ``(C, H, W)`` array in [0, 1] or a PIL image)
        -> its latent, float32 of shape :attr:`latent_shape` (:meth:`invert_latents`)."""
        self._require_inversion("inversion")
        return self._inverted(self.load_image(image, max_pixels, name)[None], None, "invert")[0]

    def check_steps(self, steps: Any, what: str = "steps") -> int:
        """``steps`` as an int in 2..:attr:`max_images`, else ValueError naming ``what``."""
        return interpolation.check_steps(steps, max(interpolation.MIN_STEPS, self.max_images), what)

    def _one_latent(self, latent: Any, what: str) -> np.ndarray:
        """One latent, shaped :attr:`latent_shape` (or flat, or with a batch axis of 1)."""
        try:
            z = np.asarray(latent, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{what}: not a numeric array ({exc})") from None
        if z.shape in (self.latent_shape, (self.latent_dim,)):
            z = z.reshape(1, *self.latent_shape)
        if z.ndim < 1 or len(z) != 1:
            raise ValueError(f"{what}: expected one latent of shape {self.latent_shape}, got {tuple(z.shape)}")
        try:
            return self._check_latents(z)[0]
        except ValueError as exc:
            raise ValueError(f"{what}: {exc}") from None

    def interpolation_path(self, latent_a: np.ndarray, latent_b: np.ndarray, steps: int = interpolation.DEFAULT_STEPS
                           ) -> np.ndarray:
        """``steps`` float32 latents ``(steps, *latent_shape)`` from ``latent_a`` to ``latent_b`` inclusive.

        Both are first put on the prior's support (unit norm for ``sphere``); the path is linear
        for priors ``normal`` and ``none`` and the great-circle arc (slerp; Shoemake 1985, White
        2016) for ``sphere``, where every point has unit norm (:mod:`runtime.interpolation`, which
        also says what happens for (anti)parallel latents). The first and last rows are the two
        latents themselves. Needs no encoder: two latents from :meth:`sample_latents` work too.
        """
        steps = self.check_steps(steps)
        a, b = priors.on_support(self.prior, np.stack([self._one_latent(latent_a, "latent_a"),
                                                       self._one_latent(latent_b, "latent_b")]))
        return self._check_latents(interpolation.path(a, b, steps, self.interpolation_geometry))

    def interpolation_latents(self, image_a: ImageSource, image_b: ImageSource,
                              steps: int = interpolation.DEFAULT_STEPS, max_pixels: int | None = None) -> np.ndarray:
        """The ``(steps, *latent_shape)`` latents from one picture's latent to the other's:
        :meth:`invert` both (one encoder call), then :meth:`interpolation_path`."""
        self._require_inversion("interpolation")
        steps = self.check_steps(steps)  # before any work
        # errors name a file by its path, and pictures without one by the argument
        x = np.stack([self.load_image(image, max_pixels, None if isinstance(image, (str, os.PathLike)) else field)
                      for field, image in (("image_a", image_a), ("image_b", image_b))])
        a, b = self._inverted(x, None, "interpolate")
        return self.interpolation_path(a, b, steps)

    def interpolate(self, image_a: ImageSource, image_b: ImageSource, steps: int = interpolation.DEFAULT_STEPS,
                    batch_size: int | None = None, max_pixels: int | None = None) -> np.ndarray:
        """``steps`` uint8 images ``(steps, H, W, C)`` (videos ``(steps, T, H, W, C)``) morphing
        ``image_a`` into ``image_b``: :meth:`interpolation_latents`, decoded. The first and last are
        exactly the two pictures' reconstructions (:meth:`reconstruct_image`)."""
        z = self.interpolation_latents(image_a, image_b, steps, max_pixels)
        log.debug("interpolate %s: %d steps, %s", self.model, len(z), self.interpolation_geometry)
        return self.to_uint8(self.decode(z, batch_size))

    def variation_latents(self, image: ImageSource, n: int = 10, scale: float = 0.01, seed: int | None = 0,
                          max_pixels: int | None = None) -> np.ndarray:
        """Latents around one encoded image: ``core.noise.variation_latents`` on the encoder's output."""
        self._require_gaussian()
        n = self.check_n(n)
        scale = check_scale(scale)
        seed = check_seed(seed)
        mu, logvar = self.encode(self.load_image(image, max_pixels)[None])
        with np.errstate(over="ignore", invalid="ignore"):  # a wild logvar is refused just below
            z = spec_noise.variation_latents(mu[0], logvar[0], n, scale, seed).reshape(n, *self.latent_shape)
        try:
            return self._check_latents(z)
        except ValueError as exc:
            raise ValueError(f"variations: the encoder's posterior for this image gives unusable latents ({exc})") from None

    def variations(
        self, image: ImageSource, n: int = 10, scale: float = 0.01, seed: int | None = 0, batch_size: int | None = None
    ) -> np.ndarray:
        """``n`` uint8 images near ``image`` (seed 002's ``genpic``): encode, jitter, decode."""
        return self.to_uint8(self.decode(self.variation_latents(image, n, scale, seed), batch_size))

    # -- validation helpers ----------------------------------------------------------------

    def _check_latents(self, latents: np.ndarray) -> np.ndarray:
        try:
            z = np.asarray(latents, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"latents: not a numeric array ({exc})") from None
        if z.ndim == 2 and z.shape[1] == self.latent_dim:
            z = z.reshape(len(z), *self.latent_shape)  # flat rows of a spatial latent, in C order
        if z.ndim < 2 or z.shape[1:] != self.latent_shape:
            shaped = "" if len(self.latent_shape) == 1 else f" or (N, {self.latent_dim})"
            raise ValueError(
                f"latents: expected shape (N, {', '.join(map(str, self.latent_shape))}){shaped} "
                f"for {self.model}/{self.part}, got {tuple(z.shape)}"
            )
        # one pass over the values: the largest magnitude is NaN when any value is NaN, inf when any is infinite
        largest = float(np.abs(z).max()) if z.size else 0.0
        if not math.isfinite(largest):
            raise ValueError("latents: contain NaN or infinity")
        if largest > MAX_LATENT_ABS:
            raise ValueError(f"latents: values must lie within +-{MAX_LATENT_ABS:g}")
        if len(z) > self.max_images:
            raise ValueError(f"latents: {len(z)} rows; {self.model} allows at most {self.max_images} per call "
                             f"({self.sample_elements} values per sample)")
        return np.ascontiguousarray(z)

    def check_n(self, n: Any, what: str = "n") -> int:
        """``n`` as an int in 0..:attr:`max_images`, else ValueError naming ``what``."""
        n = _count(n, what)
        if n > self.max_images:
            raise ValueError(f"{what} must be at most {self.max_images} for {self.model} "
                             f"({self.sample_elements} values per sample), got {n}")
        return n


def _count(n: Any, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"{what} must be an integer >= 0, got {n!r}")
    return int(n)


def _batch_size(batch_size: int | None) -> int:
    if batch_size is None:
        return DEFAULT_BATCH_SIZE
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    return int(batch_size)


def load(path: str | os.PathLike, providers: Providers = None, precision: str = "fp32", *,
         backend: str = DEFAULT_BACKEND, threads: Threads = None, spin: Spin = None) -> GeneratorSession:
    """Open an exported model: a ``<part>.onnx`` file or the directory ``export.onnx`` wrote.

    A directory yields its generator part (``generator``, else ``decoder``, else
    ``video_generator``); ``encoder.onnx`` beside the generator is read and checked too (its metadata,
    and its fit with the generator), but opened only by the first call that needs it. ``providers``:
    ``None`` (``$AGE_RUNTIME_PROVIDER``, default ``auto``), ``"auto"``, ``"cpu"``, ``"cuda"``
    or an explicit list of ORT provider names. ``precision`` picks ``<part>.fp16.onnx`` or
    ``<part>.int8.onnx`` from a directory (float32 inputs and outputs either way; the encoder
    falls back to fp32 when it has no such variant); ``"auto"`` measures the variants present on
    this machine and runs the fastest within 40 dB PSNR of fp32 (:mod:`runtime.precision`; the
    choice is :attr:`GeneratorSession.precision`). ``backend``: ``"onnxruntime"`` (the default,
    and the only one on a GPU) or ``"openvino"`` (CPU; ``pip install .[openvino]``,
    :mod:`runtime.backends.openvino`): the same API, metadata and outputs within 1e-4.
    ``threads`` / ``spin``: the thread policy (:mod:`runtime.threads`; default the ``dedicated``
    preset). Logs one line saying which provider runs it.
    """
    policy = resolve_threads(threads, spin)
    backend = check_backend(backend, providers)
    options = OpenOptions(backend=backend, providers=providers, threads=policy)
    if precision == precision_auto.AUTO:
        return _load_auto(Path(path), options)
    generator_path, encoder_path = _resolve(Path(path), precision)
    generator = load_part(generator_path, options=options)
    # the encoder opens on its first call: generation never needs it (checked now all the same)
    encoder = load_part(encoder_path, options=options, lazy=True) if encoder_path is not None else None
    return _session(generator, encoder, options, precision)


def _session(generator: Part, encoder: Part | None, options: OpenOptions, precision: str) -> GeneratorSession:
    session = GeneratorSession(generator, encoder)
    session.threads = options.threads
    session.precision = precision
    session.inference_precision = options.inference_precision
    log.info("%s", generator.choice.describe())
    if options.threads is not None:
        log.debug("%s: %s", generator.path.name, options.threads.describe())
    return session


def _load_auto(path: Path, options: OpenOptions) -> GeneratorSession:
    """``precision="auto"``: open every variant of the generator, measure, keep the chosen one open."""
    variant = next((p for p, suffix in PRECISIONS.items() if p != "fp32" and path.name.endswith(suffix)), None)
    if variant is not None and path.is_file():
        raise ValueError(f"precision 'auto' measures a model's variants against its fp32 file: give the folder "
                         f"or the <part>.onnx file, not {path.name} (the {variant} variant)")
    generator_path, _ = _resolve(path, "fp32")  # the reference: auto needs what fp32 needs
    part = generator_path.name[: -len(".onnx")] if generator_path.name.endswith(".onnx") else generator_path.stem
    bf16 = False
    if options.backend == "openvino":
        from .backends import openvino as openvino_backend  # noqa: PLC0415 - installed: check_backend said so

        bf16 = openvino_backend.supports_bf16()
    found = precision_auto.candidates(generator_path.parent, part, options.backend, bf16)
    if not found or not found[0][0].is_reference:  # a file named otherwise: it is the reference itself
        found = [(precision_auto.Candidate("fp32", "f32" if options.backend == "openvino" else None), generator_path)]
    measurements: list[precision_auto.Measurement] = []
    sessions: list[tuple[precision_auto.Measurement, GeneratorSession]] = []
    for candidate, file in found:
        m = precision_auto.Measurement(candidate, file)
        measurements.append(m)
        try:
            variant = GeneratorSession(load_part(file, options=dataclasses.replace(
                options, inference_precision=candidate.inference_precision)))
            if sessions:
                ref = sessions[0][1]
                if (variant.latent_shape, variant.output_shape, variant.model) != (ref.latent_shape, ref.output_shape,
                                                                                   ref.model):
                    raise ModelFileError(f"{file}: model {variant.model}, latent {variant.latent_shape}, output "
                                         f"{variant.output_shape} differ from {ref.path.name}'s")
        except AgeError as exc:
            if candidate.is_reference:
                raise
            m.usable, m.note = False, " ".join(str(exc).split())[:200]
            log.warning("precision auto: skipping %s (%s): %s", candidate.label, file.name, m.note)
            continue
        sessions.append((m, variant))
    reference = sessions[0][1]
    latents = (reference.sample_latents(precision_auto.MEASURE_BATCH, 0) if reference.can_generate
               else priors.sample("normal", precision_auto.MEASURE_BATCH, reference.latent_shape, 0))
    precision_auto.measure(sessions, latents, reference.value_range)
    chosen = precision_auto.pick(measurements)
    generator = next(s for m, s in sessions if m is chosen)._gen
    ref_m = measurements[0]
    log.info("precision auto: %s (%s; PSNR %s dB, %.2f ms a call of %d against fp32's %.2f ms; %d candidate(s))",
             chosen.label, generator.path.name, "ref" if chosen is ref_m else f"{chosen.psnr_db:.1f}", chosen.ms,
             precision_auto.MEASURE_BATCH, ref_m.ms, len(measurements))
    log.debug("precision auto, %s on %s:\n%s", generator.path.parent, options.backend,
              precision_auto.table(measurements, chosen))
    chosen_options = dataclasses.replace(options, inference_precision=chosen.candidate.inference_precision)
    _, encoder_path = _resolve(path, chosen.candidate.precision)  # its variant of the encoder, else fp32's
    encoder = load_part(encoder_path, options=chosen_options, lazy=True) if encoder_path is not None else None
    session = _session(generator, encoder, chosen_options, chosen.label)
    session.measurements = tuple(measurements)
    return session
