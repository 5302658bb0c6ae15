"""A TensorBoard event-file writer that imports neither TensorFlow nor torch.

``tensorboard``'s own ``EventFileWriter`` imports TensorFlow when it is installed (for
``tf.io.gfile``), which would drag TF into every torch run. Event files are TFRecord files of
``Event`` protos: each record is ``len (u64) | masked_crc32c(len) (u32) | data | masked_crc32c(data) (u32)``.
The protos and the CRC come from the ``tensorboard`` package's pure-Python parts.
"""

from __future__ import annotations

import io
import os
import socket
import struct
import time
from pathlib import Path

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c


class EventWriter:
    def __init__(self, logdir: str | os.PathLike):
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}"
        self._fh = open(self.logdir / name, "ab")
        self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

    def _write(self, event: event_pb2.Event) -> None:
        data = event.SerializeToString()
        header = struct.pack("<Q", len(data))
        self._fh.write(header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data)))

    def scalar(self, tag: str, value: float, step: int) -> None:
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=float(value))])
        self._write(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

    def histogram(self, tag: str, values: np.ndarray, step: int, bins: int = 30) -> None:
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        counts, edges = np.histogram(values, bins=bins)
        histo = summary_pb2.HistogramProto(
            min=float(values.min()), max=float(values.max()), num=float(values.size),
            sum=float(values.sum()), sum_squares=float((values**2).sum()),
            bucket_limit=[float(e) for e in edges[1:]], bucket=[float(c) for c in counts],
        )
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, histo=histo)])
        self._write(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

    def image(self, tag: str, png: bytes, height: int, width: int, step: int) -> None:
        img = summary_pb2.Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=png)
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, image=img)])
        self._write(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            self._fh.close()


def read_scalars(logdir: str | os.PathLike) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} from every event file under ``logdir`` (for tests and tools)."""
    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(Path(logdir).glob("events.out.tfevents.*")):
        data = io.BytesIO(path.read_bytes())
        while True:
            header = data.read(12)
            if len(header) < 12:
                break
            (length,) = struct.unpack("<Q", header[:8])
            payload = data.read(length)
            data.read(4)
            event = event_pb2.Event.FromString(payload)
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out
