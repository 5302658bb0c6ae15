"""What every metric feature network's export shares: reading a published weights file safely,
a ``.safetensors`` copy of it, the ONNX export checked against torch, and the command line.

A feature network (FID's Inception-v3 in :mod:`export.inception`, FVD's I3D in
:mod:`export.i3d`) is written here in torch with the module names of its published PyTorch port,
so the port's state dict loads with ``strict=True``; a :class:`FeatureNetworkSpec` says what the
network is (builder, weights file, input, outputs, the record's notes), and the functions below do
the rest the same way for each.

**Weights files.** :func:`load_weights` reads the published ``.pth``/``.pt`` with
``torch.load(weights_only=True)`` (torch's restricted unpickler: tensors and plain containers,
no arbitrary code) or a ``.safetensors`` copy (no pickle at all; the toolkit's rule is never to
unpickle, so ``convert`` writes such a copy once), and checks every expected key, shape and dtype
before anything is built from it.

**Export.** :func:`export_network` traces batch 1, checks onnxruntime against torch on batch 2 of
uniform [0, 1] noise (so the dynamic batch axis is exercised; every output within ``tolerance``,
max |diff|) and only then moves ``<name>.onnx`` and ``<name>.json`` (source file and SHA-256,
input and output conventions, the check) into the output folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import tempfile
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from core.errors import AgeError, CheckpointError, ExportError, os_error_message

log = logging.getLogger("export.feature_network")

DEFAULT_OPSET = 17
TOLERANCE = 1e-4
#: state dict entries eval mode never reads; filled in when a (older) file lacks them
COUNTER_SUFFIX = "num_batches_tracked"


@dataclass(frozen=True)
class FeatureNetworkSpec:
    """One feature network's export: how to build it and what its files say."""

    #: file stem of the ONNX graph and its JSON record (``inception_fid``, ``i3d``)
    name: str
    build_module: Callable[[], nn.Module]
    #: the published weights file's name, its SHA-256 prefix (torch hub convention) and origin
    weights_file: str
    sha256_prefix: str | None
    weights_source: str
    #: the metric the network serves, for messages ("FID Inception", "FVD I3D")
    title: str
    #: what to say when the file is missing: where the metrics that need it come from instead
    alternative: str
    #: per-sample input shape (no batch axis) and names
    input_shape: tuple[int, ...]
    input_name: str
    output_names: tuple[str, ...]
    #: the record's fields: architecture, input, outputs {name: dim}, output notes
    record: dict = field(default_factory=dict)
    #: appended to the message naming an unexpected key
    unexpected_hint: str = ""

    @property
    def onnx_name(self) -> str:
        return f"{self.name}.onnx"

    @property
    def json_name(self) -> str:
        return f"{self.name}.json"

    @property
    def need_weights(self) -> str:
        return (f"need the {self.title} weights {self.weights_file} ({self.weights_source}): pass --weights PATH; "
                f"{self.alternative}")


def expected_shapes(spec: FeatureNetworkSpec) -> dict[str, tuple[int, ...]]:
    """{state dict key: shape} of the network (BatchNorm counters excluded)."""
    return {k: tuple(v.shape) for k, v in spec.build_module().state_dict().items() if not k.endswith(COUNTER_SUFFIX)}


def _read(path: Path) -> Mapping[str, object]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    # the restricted unpickler: tensors, plain containers and primitives only, no arbitrary code
    return torch.load(path, map_location="cpu", weights_only=True)


def load_weights(spec: FeatureNetworkSpec, path: str | os.PathLike) -> OrderedDict[str, Tensor]:
    """Read and check a weights file (as published, or its ``.safetensors`` copy).

    Returns a state dict the network loads with ``strict=True`` (BatchNorm counters, which eval
    mode never reads, are filled in when absent). Raises :class:`CheckpointError` naming the file,
    and the first missing, unexpected or misshapen key.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise CheckpointError(f"{path}: {what}; {spec.need_weights}")
    try:
        raw = _read(path)
    except OSError as exc:
        raise CheckpointError(os_error_message(exc, "cannot read")) from exc
    except Exception as exc:  # noqa: BLE001 - pickle/safetensors errors have many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable weights file ({type(exc).__name__}: {first})") from exc
    if isinstance(raw, Mapping) and "state_dict" in raw and isinstance(raw["state_dict"], Mapping):
        raw = raw["state_dict"]
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"{path}: holds a {type(raw).__name__}, not a state dict of tensors")

    for key, shape in expected_shapes(spec).items():
        if key not in raw:
            raise CheckpointError(f"{path}: missing key {key!r} (shape {shape}); not the {spec.title} weights "
                                  f"{spec.weights_file}?")
        value = raw[key]
        if not isinstance(value, Tensor):
            raise CheckpointError(f"{path}: key {key!r} is a {type(value).__name__}, not a tensor")
        if tuple(value.shape) != shape:
            raise CheckpointError(f"{path}: key {key!r} has shape {tuple(value.shape)}, expected {shape}")
        if not value.is_floating_point():
            raise CheckpointError(f"{path}: key {key!r} has dtype {value.dtype}, expected a float tensor")
    out: OrderedDict[str, Tensor] = OrderedDict()
    for key in spec.build_module().state_dict():
        if key.endswith(COUNTER_SUFFIX):
            value = raw.get(key)
            if value is None:
                value = torch.tensor(0, dtype=torch.long)
            elif not isinstance(value, Tensor) or value.numel() != 1:
                raise CheckpointError(f"{path}: key {key!r} should be a scalar counter")
            out[key] = value
        else:
            out[key] = raw[key].to(torch.float32)
    extra = [k for k in raw if k not in out]
    if extra:
        raise CheckpointError(f"{path}: unexpected key {extra[0]!r} ({len(extra)} in all)"
                              + (f"; {spec.unexpected_hint}" if spec.unexpected_hint else ""))
    return out


def build(spec: FeatureNetworkSpec, weights_path: str | os.PathLike) -> nn.Module:
    """The network in eval mode with the checked weights of ``weights_path`` loaded (strict)."""
    model = spec.build_module()
    model.load_state_dict(load_weights(spec, weights_path), strict=True)
    return model.eval().requires_grad_(False)


def sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def convert(spec: FeatureNetworkSpec, src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Write a checked ``.safetensors`` copy of the weights (read once with the restricted unpickler)."""
    from safetensors.torch import save_file

    dst = Path(dst)
    if dst.suffix != ".safetensors":
        raise CheckpointError(f"{dst}: the copy's name must end in .safetensors")
    state = {k: v.contiguous() for k, v in load_weights(spec, src).items()}
    try:
        save_file(state, str(dst), metadata={"source": Path(src).name, "source_sha256": sha256(src)})
    except OSError as exc:
        raise AgeError(os_error_message(exc, "cannot write")) from exc
    return dst


def export_network(spec: FeatureNetworkSpec, weights_path: str | os.PathLike, out_dir: str | os.PathLike, *,
                   opset: int = DEFAULT_OPSET, tolerance: float = TOLERANCE, seed: int = 0) -> Path:
    """Build, load, export ``out_dir/<name>.onnx`` (dynamic batch) and check it against torch.

    The ONNX file and its JSON record land only when every output agrees within ``tolerance``.
    Returns the ONNX path.
    """
    import numpy as np
    import onnx
    import onnxruntime as ort

    weights_path = Path(weights_path)
    model = build(spec, weights_path)
    digest = sha256(weights_path)
    # None: the publisher gives no digest to compare with
    published = None if spec.sha256_prefix is None else digest.startswith(spec.sha256_prefix)
    if published is False and weights_path.suffix != ".safetensors":
        log.warning("%s: SHA-256 %s... does not start with %s, the published file's; the features will not "
                    "be the standard ones", weights_path, digest[:12], spec.sha256_prefix)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AgeError(os_error_message(exc, "cannot create")) from exc

    names = list(spec.output_names)
    gen = torch.Generator().manual_seed(seed)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        tmp_onnx = Path(tmp) / spec.onnx_name
        traced = torch.rand(1, *spec.input_shape, generator=gen)
        with torch.no_grad():
            torch.onnx.export(model, (traced,), str(tmp_onnx), input_names=[spec.input_name], output_names=names,
                              opset_version=opset, dynamo=False,
                              dynamic_axes={n: {0: "batch"} for n in (spec.input_name, *names)})
        proto = onnx.load(str(tmp_onnx))
        onnx.checker.check_model(proto, full_check=True)
        for key, value in {"network": spec.name, "source": weights_path.name, "source_sha256": digest}.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(tmp_onnx))

        x = torch.rand(2, *spec.input_shape, generator=gen)
        with torch.no_grad():
            expected = model(x)
        expected = [t.numpy() for t in (expected if isinstance(expected, (tuple, list)) else (expected,))]
        session = ort.InferenceSession(str(tmp_onnx), providers=["CPUExecutionProvider"])
        got = session.run(names, {spec.input_name: x.numpy()})
        diffs = {n: float(np.max(np.abs(g - e))) for n, g, e in zip(names, got, expected)}
        worst = max(diffs, key=diffs.get)
        if not diffs[worst] <= tolerance:  # also catches NaN
            raise ExportError(f"{spec.onnx_name}: onnxruntime differs from torch on {worst!r} by {diffs[worst]:.3g} "
                              f"(> {tolerance:g}); nothing written")
        info = {"network": spec.name, **spec.record, "source": weights_path.name, "source_sha256": digest,
                "source_is_published_file": published, "opset": opset,
                "check": {"batch": 2, "max_abs_diff": diffs, "tolerance": tolerance}}
        (Path(tmp) / spec.json_name).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        os.replace(tmp_onnx, out_dir / spec.onnx_name)
        os.replace(Path(tmp) / spec.json_name, out_dir / spec.json_name)
    log.info("wrote %s (max |onnx - torch| %.2g)", out_dir / spec.onnx_name, diffs[worst])
    return out_dir / spec.onnx_name


def main(spec: FeatureNetworkSpec, prog: str, description: str, argv: list[str] | None = None) -> int:
    """``prog --weights FILE --out DIR [--opset N]`` or ``prog convert IN OUT.safetensors``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if argv[:1] == ["convert"]:
        p = argparse.ArgumentParser(prog=f"{prog} convert",
                                    description=f"write a checked .safetensors copy of the {spec.title} weights")
        p.add_argument("src", help=f"the published {spec.weights_file}")
        p.add_argument("dst", help="OUT.safetensors")
        args = p.parse_args(argv[1:])
        if not Path(args.src).is_file():
            print(f"error: {args.src} not found; {spec.need_weights}", file=sys.stderr)
            return 2
        try:
            print(convert(spec, args.src, args.dst))
        except AgeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0

    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--weights", help=f"{spec.weights_file} (or its .safetensors copy)")
    p.add_argument("--out", required=True, help=f"output folder for {spec.onnx_name} and {spec.json_name}")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    args = p.parse_args(argv)
    if not args.weights or not Path(args.weights).is_file():
        where = f"{args.weights} not found; " if args.weights else ""
        print(f"error: {where}{spec.need_weights}", file=sys.stderr)
        return 2
    try:
        path = export_network(spec, args.weights, args.out, opset=args.opset)
    except AgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0
