"""What the runtime must know about an ONNX file before onnxruntime opens it, read without ``onnx``.

A model file is untrusted input. Two things in it are checked here, from the serialised bytes:

* **external data**: any tensor may say "my bytes are in file ``location``" (``TensorProto``
  ``data_location = EXTERNAL`` with ``external_data`` entries). onnxruntime resolves that
  location against a folder of its choosing, so a location like ``/etc/passwd``, ``../secret`` or
  a symlink out of the model's folder would make the model read, and the server return, files of
  the host. :func:`check_external_data` refuses every location that is not a plain file inside
  the model's own folder, naming the model file and the tensor.
* **metadata**: the ``metadata_props`` (``age.*`` keys) are read here so that they can be
  validated, and what they make the runtime allocate bounded, before a session exists.

Serving hosts install onnxruntime, NumPy and Pillow only, so this is a small reader of the
protobuf wire format that walks exactly the messages that can hold a tensor. Field numbers are
onnx.proto's (checked against onnx 1.23's ``onnx.proto``):

========================  ==================================================================
ModelProto                graph=7, metadata_props=14, training_info=20, functions=25
TrainingInfoProto         initialization=1, algorithm=2 (graphs)
GraphProto                node=1, initializer=5, sparse_initializer=15
FunctionProto             node=7, attribute_proto=11
NodeProto                 attribute=5
AttributeProto            t=5, g=6, tensors=10, graphs=11, sparse_tensor=22, sparse_tensors=23
SparseTensorProto         values=1, indices=2
TensorProto               name=8, external_data=13, data_location=14 (EXTERNAL=1)
StringStringEntryProto    key=1, value=2
========================  ==================================================================

Its work is bounded: graphs nested deeper than :data:`MAX_GRAPH_DEPTH` and files with more than
:data:`MAX_FIELDS` fields in the walked messages are refused (a tensor's payload is skipped by its
length, never read byte by byte).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Iterator

from core.errors import ModelFileError

#: protobuf refuses messages of 2 GiB or more, so no valid ONNX file (without external data) is larger.
MAX_MODEL_BYTES = 2**31 - 1
#: Subgraphs (If/Loop/Scan bodies, graph attributes) nested deeper than this are refused. Real
#: models nest a handful of levels; protobuf's own parser stops at 100 message levels.
MAX_GRAPH_DEPTH = 32
#: Fields visited in the messages walked (not counting tensor payloads, which are skipped whole).
MAX_FIELDS = 5_000_000

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_EXTERNAL = 1

#: message kind -> {field number: child message kind} for the length-delimited fields we descend into
_CHILDREN: dict[str, dict[int, str]] = {
    "model": {7: "graph", 20: "training", 25: "function"},
    "training": {1: "graph", 2: "graph"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "function": {7: "node", 11: "attribute"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
}


@dataclass(frozen=True)
class ExternalRef:
    """One tensor whose data lives in another file."""

    tensor: str
    location: str | None  # None: marked EXTERNAL without a location


@dataclass
class ModelScan:
    """What :func:`scan` found: the metadata entries (in file order) and every external-data reference."""

    metadata: list[tuple[str, str]] = field(default_factory=list)
    external: list[ExternalRef] = field(default_factory=list)


class _Malformed(Exception):
    pass


class _Reader:
    def __init__(self, blob: bytes):
        self.buf = blob
        self.fields = 0

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        result = shift = 0
        buf = self.buf
        while True:
            if pos >= end:
                raise _Malformed("truncated varint")
            byte = buf[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result, pos
            shift += 7
            if shift >= 70:
                raise _Malformed("varint longer than 10 bytes")

    def fields_of(self, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
        """``(field number, wire type, a, b)``: for length-delimited fields ``buf[a:b]`` is the
        payload, for varints ``a`` is the value; fixed-width fields are skipped."""
        pos = start
        while pos < end:
            self.fields += 1
            if self.fields > MAX_FIELDS:
                raise _Malformed(f"more than {MAX_FIELDS} protobuf fields in the graph structure")
            key, pos = self.varint(pos, end)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise _Malformed("field number 0")
            if wire == _VARINT:
                value, pos = self.varint(pos, end)
                yield number, wire, value, pos
            elif wire == _LEN:
                length, pos = self.varint(pos, end)
                if length > end - pos:
                    raise _Malformed(f"field {number} runs past the end of its message")
                yield number, wire, pos, pos + length
                pos += length
            elif wire in (_I64, _I32):
                pos += 8 if wire == _I64 else 4
                if pos > end:
                    raise _Malformed(f"field {number} runs past the end of its message")
            else:  # groups (3, 4) are deprecated and never written by ONNX tools; 6, 7 do not exist
                raise _Malformed(f"unsupported wire type {wire} in field {number}")

    def text(self, start: int, end: int, what: str) -> str:
        try:
            return self.buf[start:end].decode("utf-8")
        except UnicodeDecodeError:
            raise _Malformed(f"{what} is not UTF-8") from None

    def entry(self, start: int, end: int, what: str) -> tuple[str, str]:
        """A StringStringEntryProto: (key, value); a repeated key keeps its last value, as protobuf does."""
        key = value = ""
        for number, wire, a, b in self.fields_of(start, end):
            if wire == _LEN and number == 1:
                key = self.text(a, b, f"{what} key")
            elif wire == _LEN and number == 2:
                value = self.text(a, b, f"{what} value")
        return key, value

    def walk(self, kind: str, start: int, end: int, depth: int, found: ModelScan) -> None:
        if kind == "graph":
            depth += 1
            if depth > MAX_GRAPH_DEPTH:
                raise _Malformed(f"subgraphs nested more than {MAX_GRAPH_DEPTH} deep")
        if kind == "tensor":
            self.tensor(start, end, found)
            return
        children = _CHILDREN[kind]
        for number, wire, a, b in self.fields_of(start, end):
            if kind == "model" and number == 14:
                self.expect_len(number, wire)
                found.metadata.append(self.entry(a, b, "metadata_props"))
            elif number in children:
                self.expect_len(number, wire)
                self.walk(children[number], a, b, depth, found)

    def tensor(self, start: int, end: int, found: ModelScan) -> None:
        name, locations, external = "", [], False
        for number, wire, a, b in self.fields_of(start, end):
            if number == 8:
                self.expect_len(number, wire)
                name = self.buf[a:b].decode("utf-8", "replace")
            elif number == 13:
                self.expect_len(number, wire)
                key, value = self.entry(a, b, "external_data")
                if key == "location":
                    locations.append(value)
            elif number == 14:
                if wire != _VARINT:
                    raise _Malformed(f"TensorProto.data_location has wire type {wire}")
                external = a == _EXTERNAL
        # every location is checked, also one left on a tensor not marked EXTERNAL
        if external and not locations:
            found.external.append(ExternalRef(name, None))
        found.external.extend(ExternalRef(name, loc) for loc in locations)

    @staticmethod
    def expect_len(number: int, wire: int) -> None:
        if wire != _LEN:
            raise _Malformed(f"field {number} should be a message but has wire type {wire}")


def scan(blob: bytes, source: str) -> ModelScan:
    """Metadata and external-data references of a serialised ``ModelProto``.

    Raises :class:`ModelFileError` starting with ``source`` when the bytes are not a well-formed
    protobuf message or exceed the bounds above.
    """
    if len(blob) > MAX_MODEL_BYTES:
        raise ModelFileError(f"{source}: {len(blob)} bytes is larger than any ONNX file can be")
    found = ModelScan()
    try:
        _Reader(blob).walk("model", 0, len(blob), 0, found)
    except _Malformed as exc:
        raise ModelFileError(f"{source}: not a loadable ONNX model ({exc})") from None
    return found


_SEPARATORS = re.compile(r"[\\/]")


def _short(text: str, limit: int = 120) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def external_data_problem(folder: Path, location: str | None) -> str | None:
    """Why ``location`` may not be read for a model in ``folder`` (already resolved), or None.

    Allowed: a relative path, without ``..``, naming a regular file that is inside ``folder``
    after every symlink is followed.
    """
    if location is None:
        return "is marked as external data but names no location"
    if not location or "\0" in location:
        return "has an empty or invalid external-data location"
    if (PurePosixPath(location).is_absolute() or PureWindowsPath(location).is_absolute()
            or PureWindowsPath(location).drive or location[0] in "/\\"):
        return f"stores its data at the absolute path {_short(location)}; only files in the model's folder may be used"
    if ".." in _SEPARATORS.split(location):
        return f"stores its data at {_short(location)}, which climbs out of the model's folder with '..'"
    target = (folder / location).resolve()
    if not target.is_relative_to(folder):
        return f"stores its data at {_short(location)}, which leaves the model's folder through a symlink"
    if not target.is_file():
        return f"stores its data at {_short(location)}, which is not a file in the model's folder"
    return None


def check_external_data(path: Path, refs: list[ExternalRef]) -> None:
    """Refuse the model at ``path`` when any tensor's external data is not a file in its own folder."""
    if not refs:
        return
    try:
        folder = path.parent.resolve(strict=True)
        problems = ((ref, external_data_problem(folder, ref.location)) for ref in refs)
        bad = next(((ref, why) for ref, why in problems if why is not None), None)
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        raise ModelFileError(f"{path}: cannot check its external data ({exc})") from None
    if bad is not None:
        ref, why = bad
        raise ModelFileError(f"{path}: tensor {_short(ref.tensor, 80)} {why}")
