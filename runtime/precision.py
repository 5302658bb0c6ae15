"""``precision="auto"``: measure the reduced-precision variants on this machine and run the fastest
one that stays faithful to fp32.

Why at load, on this machine: whether an int8 or fp16 export is faster depends on the CPU (VNNI,
AVX-512, AMX), the backend and the provider (fp16 pays off on a GPU, rarely on a CPU), so a table
measured elsewhere cannot choose. What can be fixed in advance is the quality bound: a variant
qualifies when its output on the same latents has a PSNR of at least :data:`MIN_PSNR_DB` (40 dB)
against the fp32 export's, peak = the output's value range: an RMS error of 1 % of the range,
about 2.5 levels of an 8-bit image, below what a viewer notices in a sample.

The candidates are what the folder and the backend offer: every ``<generator>[.fp16|.int8].onnx``
present, on the chosen backend; with OpenVINO also the fp32 file computed in bf16 when the CPU
supports it (``OPTIMIZATION_CAPABILITIES`` lists BF16). Each is opened, run on one fixed batch of
:data:`MEASURE_BATCH` latents from the prior (seed 0; standard-normal draws for a model without a
prior), its PSNR taken against fp32's output, then timed for :data:`MEASURE_ROUNDS` rounds, the
candidates interleaved in every round (the order reversed every other round) so that a noisy
neighbour touches them alike; a candidate's time is its median. The fastest qualifying one wins,
but a variant must beat fp32 by :data:`MIN_SPEEDUP` to be worth any error at all. A variant file
that cannot be opened is skipped with a warning: auto never refuses a model whose fp32 export loads.

What the candidates gave on the 150x150 seed decoder (README) (a 1-step checkpoint with its last conv
scaled x64 so the outputs spread, 0.41-0.60: a trained model's PSNRs would be lower), the 2-core
AVX-512 EPYC here (VNNI and BF16, no AMX), shared with other jobs; PSNR and max |diff| against
onnxruntime fp32 over 64 prior latents, ms medians of interleaved calls, two runs at different
moments::

    candidate             PSNR dB  max |diff|   batch 1 ms    batch 64 ms
    onnxruntime fp32          ref        0      1.99 / 3.30   125.0 / 210.6
    onnxruntime fp16         98.4  6.5e-05      2.72 / 4.17   223.1 / 315.3
    onnxruntime int8         59.7  5.3e-03      2.38 / 3.69   108.3 / 176.9
    openvino f32            149.5  1.2e-07      1.63 / 3.49   104.9 / 217.2
    openvino bf16            77.8  7.8e-04      1.03 / 2.71    65.6 / 154.6
    openvino fp16 file       98.3  6.5e-05      1.61 / 3.11   104.4 / 226.8
    openvino int8            59.7  5.3e-03      1.20 / 2.78    81.2 / 204.3

``auto`` chose int8 on onnxruntime and bf16 on OpenVINO there, every time; it adds 0.3 s to the
load on onnxruntime (3 files) and 0.65 s on OpenVINO (4 candidates, each compiled).

Only the generator is measured (it is what ``generate`` runs); the encoder, opened on first use,
follows the chosen variant (its file of that precision when there is one, else fp32; the same
inference precision on OpenVINO).
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from core.metrics.psnr import psnr

from core.registry import PRECISIONS, part_filename

log = logging.getLogger("runtime")

#: ``precision`` value that asks for the measurement.
AUTO = "auto"
#: What ``precision`` accepts: a file variant, or auto.
CHOICES = (*PRECISIONS, AUTO)
#: Quality bound of an auto-chosen variant: PSNR (dB) of its output against fp32's, peak = value range.
MIN_PSNR_DB = 40.0
#: A variant must take at most 1 / MIN_SPEEDUP of fp32's time to be chosen over it.
MIN_SPEEDUP = 1.05
#: Latents per measured call: small, so load stays fast; the same batch for every candidate.
MEASURE_BATCH = 4
#: Timed calls per candidate (after one untimed call that also gives the output compared).
MEASURE_ROUNDS = 3
#: Pause before each timed call when the sessions spin-wait: onnxruntime's spinning threads keep a
#: core busy for ~35 ms after a run (measured on the 2-core EPYC), which would slow the candidate
#: timed next and favour whichever runs first.
SPIN_SETTLE_S = 0.04


@dataclass(frozen=True)
class Candidate:
    """One way to run the generator: a file variant on the backend, and (OpenVINO) the precision it
    computes in."""

    #: the file's variant: ``fp32`` (``<part>.onnx``), ``fp16`` or ``int8``
    precision: str
    #: OpenVINO's inference precision (``f32`` or ``bf16``); None on onnxruntime
    inference_precision: str | None = None

    @property
    def label(self) -> str:
        if self.inference_precision == "bf16":
            return f"{self.precision}+bf16" if self.precision != "fp32" else "bf16"
        return self.precision

    @property
    def is_reference(self) -> bool:
        return self.precision == "fp32" and self.inference_precision in (None, "f32")


@dataclass
class Measurement:
    """What one candidate gave: PSNR against fp32 (dB; inf when identical), ms per call, whether it
    qualified, and why not when it could not be measured."""

    candidate: Candidate
    path: Path
    psnr_db: float = math.nan
    ms: float = math.nan
    usable: bool = True
    note: str = ""

    @property
    def label(self) -> str:
        return self.candidate.label

    @property
    def passes(self) -> bool:
        return self.usable and (self.candidate.is_reference or self.psnr_db >= MIN_PSNR_DB)


def candidates(folder: Path, part: str, backend: str, bf16: bool) -> list[tuple[Candidate, Path]]:
    """(candidate, generator file) for every variant of ``part`` in ``folder`` on ``backend``; the
    reference (fp32) first. ``bf16``: whether OpenVINO may compute in bf16 on this CPU."""
    found = []
    for precision in PRECISIONS:
        path = folder / part_filename(part, precision)
        if not path.is_file():
            continue
        if backend == "openvino":
            found.append((Candidate(precision, "f32"), path))
            if bf16 and precision == "fp32":
                found.append((Candidate(precision, "bf16"), path))
        else:
            found.append((Candidate(precision), path))
    return found


def _time_call(label: str, decode: Callable[[], Any]) -> float:
    """Seconds one call of candidate ``label`` takes (tests replace this to make a candidate look faster)."""
    start = time.perf_counter()
    decode()
    return time.perf_counter() - start


def measure(sessions: list[tuple[Measurement, Any]], latents: np.ndarray,
            value_range: tuple[float, float] | None) -> None:
    """Fill in each usable measurement's PSNR and ms (``sessions``: (measurement, GeneratorSession),
    the reference first); a candidate whose run fails is marked unusable with the reason."""
    batch = len(latents)
    reference = None
    live: list[tuple[Measurement, Any]] = []
    for m, session in sessions:
        try:
            out = session.decode(latents, batch)
        except Exception as exc:  # noqa: BLE001 - a broken variant is skipped, the reference re-raises
            if m.candidate.is_reference:
                raise
            m.usable, m.note = False, " ".join(str(exc).split())[:200]
            continue
        if reference is None:
            reference = out
        m.psnr_db = math.inf if m.candidate.is_reference else psnr(reference, out, value_range)
        live.append((m, session))
    times: dict[int, list[float]] = {id(m): [] for m, _ in live}
    spinning = any(getattr(getattr(session, "threads", None), "spin", None) is not False for _, session in live)
    for r in range(MEASURE_ROUNDS):
        for m, session in live if r % 2 == 0 else live[::-1]:
            if spinning and len(live) > 1:
                time.sleep(SPIN_SETTLE_S)
            times[id(m)].append(_time_call(m.label, lambda s=session: s.decode(latents, batch)))
    for m, _ in live:
        m.ms = 1e3 * statistics.median(times[id(m)])


def pick(measurements: list[Measurement]) -> Measurement:
    """The fastest qualifying measurement; a variant only when it beats the reference by MIN_SPEEDUP."""
    reference = next(m for m in measurements if m.candidate.is_reference)
    best = reference
    for m in measurements:
        if m is reference or not m.passes:
            continue
        if m.ms * MIN_SPEEDUP <= reference.ms and m.ms < best.ms:
            best = m
    return best


def table(measurements: list[Measurement], chosen: Measurement | None = None) -> str:
    """The measurements as text: one row per candidate."""
    rows = [f"{'variant':<10} {'PSNR dB':>8} {'ms/call':>8}  (batch {MEASURE_BATCH}, bound {MIN_PSNR_DB:g} dB)"]
    for m in measurements:
        mark = " <- chosen" if m is chosen else ""
        if not m.usable:
            rows.append(f"{m.label:<10} {'-':>8} {'-':>8}  unusable: {m.note}")
            continue
        psnr_text = "ref" if m.candidate.is_reference else f"{m.psnr_db:.1f}"
        verdict = "" if m.passes else "  below the bound"
        rows.append(f"{m.label:<10} {psnr_text:>8} {m.ms:>8.2f}{verdict}{mark}")
    return "\n".join(rows)
