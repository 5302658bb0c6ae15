"""What export validates and measures with: inputs drawn like real ones and a quiet CPU session.

Shared by :mod:`export.pipeline` (parity against the framework) and :mod:`export.variants`
(fp16/int8 calibration and PSNR), and by tests and benchmarks that feed a part.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.registry import PartSpec


def random_inputs(part: PartSpec, batch: int, seed: int | tuple[int, ...] = 0) -> list[np.ndarray]:
    """Inputs drawn like real ones: images and videos uniform in [0, 1], everything else standard normal."""
    rng = np.random.default_rng(seed)
    out = []
    for t in part.inputs:
        shape = t.concrete_shape(batch)
        x = (rng.random(shape, dtype=np.float32) if t.kind in ("image", "video")
             else rng.standard_normal(shape, dtype=np.float32))
        out.append(x)
    return out


def random_feed(part: PartSpec, batch: int, seed: int | tuple[int, ...] = 0) -> dict[str, np.ndarray]:
    """:func:`random_inputs` keyed by the part's input names (an onnxruntime feed)."""
    return {t.name: x for t, x in zip(part.inputs, random_inputs(part, batch, seed))}


def cpu_session(model_bytes: bytes) -> Any:
    """A quiet onnxruntime CPU session (``onnxruntime.InferenceSession``)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def ort_run(model_bytes: bytes, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """All outputs of the serialised model on ``inputs``, on the CPU."""
    return cpu_session(model_bytes).run(None, inputs)
