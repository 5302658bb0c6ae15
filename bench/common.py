"""What the benchmark scripts (``bench/runtime.py``, ``bench/train.py``, ``bench/serve_load.py``) share.

* machine: :func:`cpu_count`, :func:`cpu_model`, :func:`cpu_isa`, :func:`process_cpu_s`, :class:`CpuMeter`,
  :func:`environment` (the base every script extends with its own keys; :func:`framework_environment`
  adds torch / TensorFlow / Keras), :func:`busy_note`;
* statistics: :func:`median`, :func:`rel_iqr`, :func:`percentile`;
* timing: :func:`rotated` and :func:`interleave` (round-robin over several callables, warm-up
  rounds calibrating how many calls one sample holds, an optional time budget);
* frameworks: :func:`prepare_frameworks` (environment before TensorFlow is imported),
  :func:`export_via_torch`, :func:`part_latents`, :func:`generator_fns` (one callable per framework label in
  :data:`FRAMEWORKS`), :func:`check_outputs`, :func:`fastest_keras`;
* scripts: :func:`setup_logging`, :func:`write_json`, :func:`report_footer`.

Only the standard library and NumPy are imported here; torch, TensorFlow/Keras and the project's
packages are imported inside the functions that need them (``serve_load`` never loads them).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import math
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

log = logging.getLogger("bench")

#: warn when other processes used more than this share of the machine's CPU time
BUSY_WARNING = 0.10
#: outputs of every framework must agree with torch's to this, or the timings compare different work
PARITY_TOLERANCE = 1e-3
#: :func:`interleave` keeps at least this many timed rounds, whatever its time budget says
MIN_ROUNDS = 3

#: generator framework labels: ``runtime.load(...).decode``, torch eager, Keras eager
#: (``keras_impl.parts.run_part``), Keras ``tf.function``
FRAMEWORKS = ("ort", "torch", "k eager", "k tf.fn")
#: ``--keras`` path name -> framework label
KERAS_PATHS = {"eager": "k eager", "function": "k tf.fn"}


# --------------------------------------------------------------------------- machine


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask; ``os.cpu_count()`` off Linux)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: the /proc/cpuinfo flags :func:`cpu_isa` reports (the vector extensions kernels dispatch on)
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni",
             "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve", "sve2")


def cpu_isa() -> str:
    """The vector ISA torch's CPU kernels dispatch to (``AVX2``, ``AVX512``, ...) and the wider
    :data:`CPU_FLAGS` /proc/cpuinfo lists: what matmul and convolution speed depend on."""
    parts = []
    try:
        import torch

        parts.append(f"torch {torch.backends.cpu.get_cpu_capability()}")
    except (ImportError, AttributeError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = line.split(":", 1)[1].split()
                shown = [f for f in CPU_FLAGS if f in flags]
                parts.append("cpu " + (",".join(shown) if shown else "none of " + ",".join(CPU_FLAGS)))
                break
    except OSError:
        pass
    return "; ".join(parts) or platform.machine()


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (all its threads) so far, from /proc (Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class CpuMeter:
    """Share of the machine's CPU time used by processes other than this one and the ``exclude``
    pids since construction (Linux).

    System-wide busy time from ``/proc/stat`` minus this process's own CPU time (all threads) and
    the excluded processes', over wall time x CPUs. A benchmark on a shared machine is only as good
    as this is small.
    """

    def __init__(self, exclude: tuple[int, ...] = ()) -> None:
        self.exclude = tuple(exclude)
        self.start = self._read()

    def _read(self) -> tuple[float, float, float] | None:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return None
        mine = time.process_time()
        for pid in self.exclude:
            cpu = process_cpu_s(pid)
            if cpu is None:
                return None
            mine += cpu
        # user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
        busy = sum(fields[:3]) + sum(fields[5:8])
        return busy / os.sysconf("SC_CLK_TCK"), mine, time.perf_counter()

    def others(self) -> float | None:
        now = self._read()
        if self.start is None or now is None:
            return None
        busy, mine, wall = (b - a for a, b in zip(self.start, now))
        return max(0.0, (busy - mine) / (wall * (os.cpu_count() or 1))) if wall > 0 else None


def environment(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """python, numpy, onnxruntime, CPU model and count, then ``extra``, then ``platform`` (last)."""
    import onnxruntime as ort

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": ort.__version__,
        "cpu": cpu_model(),
        "cpus (affinity)": cpu_count(),
        "ort thread spinning ($AGE_RUNTIME_SPIN)": os.environ.get("AGE_RUNTIME_SPIN") or "the runtime's preset",
        **(extra or {}),
        "platform": platform.platform(),
    }


def framework_environment(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """:func:`environment` plus torch, TensorFlow and Keras versions and thread settings, then ``extra``."""
    import keras
    import tensorflow as tf
    import torch

    return environment({
        "torch": torch.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "torch threads (intra, inter)": [torch.get_num_threads(), torch.get_num_interop_threads()],
        "tf threads (intra, inter; 0 = default = all)": [tf.config.threading.get_intra_op_parallelism_threads(),
                                                          tf.config.threading.get_inter_op_parallelism_threads()],
        **(extra or {}),
    })


def busy_note(share: float | None, what: str = "timings") -> str:
    """``"7%"``, ``"n/a"`` or ``"23% (WARNING: shared machine, timings distorted)"``."""
    if share is None:
        return "n/a"
    note = f"{share:.0%}"
    if share > BUSY_WARNING:
        note += f" (WARNING: shared machine, {what} distorted)"
    return note


# --------------------------------------------------------------------------- statistics


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def rel_iqr(xs: Sequence[float]) -> float:
    """Inter-quartile range / median of one cell's samples: how noisy it was (range / median below 4)."""
    if len(xs) < 4:
        return (max(xs) - min(xs)) / median(xs)
    q = statistics.quantiles(xs, n=4)
    return (q[2] - q[0]) / median(xs)


def percentile(xs: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (NumPy's linear interpolation); NaN for no samples."""
    return float(np.percentile(np.asarray(xs), q)) if len(xs) else float("nan")


# --------------------------------------------------------------------------- timing


def rotated(names: Sequence[str], r: int) -> list[str]:
    """``names`` rotated left by ``r``: round ``r``'s order, so no name always goes first."""
    k = r % len(names)
    return [*names[k:], *names[:k]]


def interleave(fns: dict[str, Callable[[Any], Any]], arg: Any, repeats: int, warmup: int,
               min_sample_s: float, budget_s: float | None = None, min_rounds: int = MIN_ROUNDS,
               settle_s: float = 0.0) -> dict:
    """Seconds per call of each fn on ``arg``, interleaved round-robin; medians over the timed rounds.

    ``warmup`` untimed rounds come first and calibrate how many calls one sample holds (enough that
    it lasts ``min_sample_s``; the count only grows). Then up to ``repeats`` timed rounds, the order
    rotating every round (:func:`rotated`) so machine noise hits every fn alike. With ``budget_s``
    the timing stops early, after at least ``min_rounds`` timed rounds, once that many seconds have
    passed since the start (warm-up included).

    ``settle_s``: a pause after every sample, before the next fn starts. onnxruntime's spinning
    worker threads keep a core busy for ~35 ms after a run (measured here); without the pause they
    would slow whichever fn comes next. The sample's CPU time is read after the pause, so the
    spinning is charged to the fn that caused it.

    Returns ``rounds`` (timed), ``calls_per_sample``, ``s_per_call`` (median), ``cpu_s_per_call``
    (median CPU seconds of this process per call, every thread counted, spinning included: what a
    call costs the machine, whatever the wall clock says), ``rel_iqr``, ``samples_s`` (every timed
    sample) and ``wall_s``, the per-fn ones as {name: value} dicts.
    """
    names = list(fns)
    inner = dict.fromkeys(names, 1)
    samples: dict[str, list[float]] = {n: [] for n in names}
    cpu_samples: dict[str, list[float]] = {n: [] for n in names}
    start = time.perf_counter()
    rounds = 0
    for r in range(warmup + repeats):
        if budget_s is not None and r >= warmup + min_rounds and time.perf_counter() - start > budget_s:
            break
        for name in rotated(names, r):
            fn, k = fns[name], inner[name]
            c0, t0 = time.process_time(), time.perf_counter()
            for _ in range(k):
                fn(arg)
            per_call = (time.perf_counter() - t0) / k
            if settle_s > 0:
                time.sleep(settle_s)
            cpu_per_call = (time.process_time() - c0) / k
            if r < warmup:  # calibrate: enough calls that one sample lasts min_sample_s
                inner[name] = max(inner[name], math.ceil(min_sample_s / per_call))
            else:
                samples[name].append(per_call)
                cpu_samples[name].append(cpu_per_call)
        rounds += r >= warmup
    return {
        "rounds": rounds,
        "calls_per_sample": inner,
        "s_per_call": {n: median(s) for n, s in samples.items()},
        "cpu_s_per_call": {n: median(s) for n, s in cpu_samples.items()},
        "rel_iqr": {n: rel_iqr(s) for n, s in samples.items()},
        "samples_s": samples,
        "wall_s": time.perf_counter() - start,
    }


# --------------------------------------------------------------------------- frameworks


def prepare_frameworks(spin_off: bool = True) -> None:
    """Call before TensorFlow/Keras are imported: quiet TensorFlow, Keras on TensorFlow, and triton
    loaded first (see README "Known issue": triton must load before TensorFlow).

    ``spin_off``: frameworks timed in alternation must not tax each other: onnxruntime's intra-op
    threads spin-wait after every run (a core busy for ~35 ms), and measured here that doubled
    torch's next call (the 150x150 seed decoder, batch 1: 17 ms alone, 32-42 ms right after an ORT run;
    17 ms with spinning off, which costs ORT itself 12 -> 14.5 ms). So spinning is turned off
    (``$AGE_RUNTIME_SPIN=0`` unless set) — except where a script measures the runtime at its own
    defaults and pauses between contenders instead (``bench/runtime.py``, :func:`interleave`'s
    ``settle_s``)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if spin_off:
        os.environ.setdefault("AGE_RUNTIME_SPIN", "0")
    with contextlib.suppress(ImportError):
        importlib.import_module("triton")


def export_via_torch(tmodel, ckpt_path: Path, onnx_dir: Path) -> tuple[Path, list, float]:
    """``torch_impl.save_model`` then ``export.pipeline.export_checkpoint(ckpt, onnx_dir, "torch")``
    (its parity table swallowed); returns (checkpoint, export reports, seconds both took)."""
    import torch_impl
    from export.pipeline import export_checkpoint

    t0 = time.perf_counter()
    ckpt = torch_impl.save_model(tmodel, ckpt_path)
    with contextlib.redirect_stdout(io.StringIO()):  # export prints its own parity table
        reports = export_checkpoint(ckpt, onnx_dir, "torch")
    return ckpt, reports, time.perf_counter() - t0


def part_latents(config, part: str, n: int, seed: int = 0) -> np.ndarray:
    """(n, *latent shape) float32 standard-normal inputs of generator ``part`` from ``seed``: the
    registry part's input shape, so spatial codes work too; for a vector latent the same values
    as ``core.noise.latents(n, dim, seed)``."""
    from core.registry import get_model_spec

    shape = get_model_spec(config.model).parts(config)[part].inputs[0].concrete_shape(n)
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def generator_fns(tmodel, kmodel, session, part: str,
                  keras_paths: Iterable[str] = tuple(KERAS_PATHS)) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Each framework's z (N, *latent shape) -> materialised NumPy output of ``part``, by label.

    The method is the registry's (``core.registry``: the part's ``.method``) on both twins:

    * ``ort``      ``session.decode(z, batch_size=len(z))``: raw float output, one session call;
    * ``torch``    the torch model's method in ``eval()`` under ``torch.no_grad()``, ``.numpy()``'d;
    * ``k eager``  ``keras_impl.parts.run_part`` (eager, with its NHWC -> NCHW transpose);
    * ``k tf.fn``  the Keras method inside one ``tf.function`` with a ``[None, *latent shape]`` input
                   signature (no output transpose: NHWC output, see :func:`check_outputs`; the
                   input is in Keras' layout, which for a vector latent is the canonical one).

    ``keras_paths`` (``eager``, ``function``) picks the Keras ones; ``ort`` and ``torch`` always come.
    """
    import tensorflow as tf
    import torch

    from keras_impl.parts import run_part, to_keras_array
    from core.registry import get_model_spec

    config = tmodel.config
    spec = get_model_spec(config.model).parts(config)[part]
    method, z_spec = spec.method, spec.inputs[0]
    tmodel.eval()
    tgen, kgen = getattr(tmodel, method), getattr(kmodel, method)

    def ort_fn(z):
        return session.decode(z, batch_size=len(z))

    def torch_fn(z):
        with torch.no_grad():
            return tgen(torch.from_numpy(z)).numpy()

    def keras_eager(z):
        return run_part(kmodel, part, z)[0]

    keras_shape = to_keras_array(np.zeros(z_spec.concrete_shape(1), np.float32), z_spec.kind).shape[1:]
    graph = tf.function(lambda z: kgen(z, training=False),
                        input_signature=[tf.TensorSpec([None, *keras_shape], tf.float32)])

    def keras_graph(z):
        return graph(to_keras_array(z, z_spec.kind)).numpy()

    fns = dict(zip(FRAMEWORKS, (ort_fn, torch_fn, keras_eager, keras_graph)))
    wanted = {"ort", "torch", *(KERAS_PATHS[k] for k in keras_paths)}
    return {k: v for k, v in fns.items() if k in wanted}


def check_outputs(fns: dict[str, Callable[[np.ndarray], np.ndarray]], config, part: str,
                  tolerance: float = PARITY_TOLERANCE) -> dict[str, float]:
    """max |diff| of every framework's output vs torch's on the same latents (canonical layout);
    a warning for any above ``tolerance``."""
    from keras_impl.parts import to_canonical_array
    from core.registry import get_model_spec

    kind = get_model_spec(config.model).parts(config)[part].outputs[0].kind
    z = part_latents(config, part, 4, 0)
    ref = fns["torch"](z)
    diffs = {}
    for name, fn in fns.items():
        if name == "torch":
            continue
        got = fn(z)
        if name == "k tf.fn":
            got = to_canonical_array(got, kind)
        diffs[name] = float(np.abs(got - ref).max()) if got.shape == ref.shape else float("inf")
        if not diffs[name] <= tolerance:
            log.warning("%s %s: %s output differs from torch by %.3g (shape %s vs %s): the timings compare "
                        "different work", config.model, part, name, diffs[name], got.shape, ref.shape)
    return diffs


def fastest_keras(per_s: dict[str, float]) -> str | None:
    """The Keras label (``k ...``) with the most per second, or None when none was timed."""
    keras_names = [n for n in per_s if n.startswith("k ")]
    return max(keras_names, key=lambda n: per_s[n]) if keras_names else None


# --------------------------------------------------------------------------- scripts


def setup_logging(level: str, quiet: Iterable[str] = ()) -> None:
    """``logging.basicConfig`` at ``level``; the ``quiet`` loggers at WARNING or above."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for name in quiet:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))


def write_json(path: str | os.PathLike, payload: dict) -> None:
    """``payload`` as indented JSON (anything else as ``str``), logged."""
    Path(path).write_text(json.dumps(payload, indent=1, default=str))
    log.info("wrote %s", path)


def report_footer(env: dict, wall_s: float, wall_note: str = "") -> list[str]:
    """The environment line (``platform`` and the ``others_*`` shares left out) and a platform line with
    the share of CPU other processes used during the run (``env["others_cpu_share_during"]``)."""
    shown = {k: v for k, v in env.items() if k != "platform" and not k.startswith("others_")}
    return ["\nenvironment: " + ", ".join(f"{k} {v}" for k, v in shown.items()),
            f"platform: {env['platform']}; CPU used by other processes during the run: "
            f"{busy_note(env.get('others_cpu_share_during'))}; wall time {wall_s:.0f}s{wall_note}"]
