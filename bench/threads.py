"""``python bench/threads.py MODEL``: what each thread setting gives on this machine.

The numbers behind :mod:`runtime.threads`' presets: ``runtime.load(MODEL).decode`` at batch 1 and
64 for one and all intra-op threads, spinning on and off, alone and beside one busy-looping
process; settings interleaved round by round (the order reversed every other round) so that
whatever else the machine runs meanwhile touches them alike, and the CPU other processes took is
printed with each row.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import CpuMeter  # noqa: E402
from runtime.session import load  # noqa: E402
from runtime.threads import ThreadPolicy  # noqa: E402


def _busy(stop: Any) -> None:  # pragma: no cover - runs in a child process
    while not stop.is_set():
        sum(range(10_000))


def measure(model: str, rounds: int = 5, batches: tuple[int, ...] = (1, 64), shared: bool = False,
            settings: tuple[tuple[int, bool], ...] = ((1, True), (1, False), (0, True), (0, False))) -> list[dict]:
    """ms per call and images per CPU-second of ``runtime.load(model).decode`` for each (intra-op,
    spin) in ``settings``, interleaved round by round (the order reversed every other round), median
    over ``rounds``; ``shared``: with one busy-looping process beside it. Each row also says how
    much CPU other processes took meanwhile (``other_cpu``, cores' worth, the busy helper left out;
    Linux only: :class:`bench.common.CpuMeter`)."""
    import multiprocessing
    import statistics
    import time

    import numpy as np

    sessions = {s: load(model, providers="cpu", threads=ThreadPolicy(f"{s[0]}/{s[1]}", s[0], 1, s[1]))
                for s in settings}
    stop = multiprocessing.Event()
    helper = multiprocessing.Process(target=_busy, args=(stop,), daemon=True) if shared else None
    if helper:
        helper.start()
        time.sleep(0.3)
    rows = []
    try:
        for batch in batches:
            calls = max(2, 32 // batch)
            any_session = next(iter(sessions.values()))
            z = any_session.sample_latents(batch, 0) if any_session.can_generate else np.zeros(
                (batch, *any_session.latent_shape), np.float32)
            found: dict[tuple[int, bool], list[tuple[float, float]]] = {s: [] for s in settings}
            meter = CpuMeter(exclude=(helper.pid,) if helper else ())
            for r in range(rounds):
                for s in settings if r % 2 == 0 else settings[::-1]:
                    session = sessions[s]
                    session.decode(z, batch)
                    c0, t0 = time.process_time(), time.perf_counter()
                    for _ in range(calls):
                        session.decode(z, batch)
                    found[s].append(((time.perf_counter() - t0) / calls, (time.process_time() - c0) / calls))
            share = meter.others()  # of the machine, the busy helper left out
            other = None if share is None else share * (os.cpu_count() or 1)
            for s in settings:
                wall = statistics.median(w for w, _ in found[s])
                cpu = statistics.median(c for _, c in found[s])
                rows.append({"situation": "shared" if shared else "alone", "batch": batch, "intra_op": s[0],
                             "spin": s[1], "ms": 1e3 * wall, "images_per_cpu_s": batch / cpu,
                             "images_per_s": batch / wall, "other_cpu": other})
    finally:
        stop.set()
        if helper:
            helper.join()
    return rows


def main(argv: list[str] | None = None) -> int:
    """``python bench/threads.py MODEL [--rounds 5]``: the table behind the presets, for this machine."""
    import argparse

    parser = argparse.ArgumentParser(prog="python bench/threads.py", description=main.__doc__)
    parser.add_argument("model", help="an exported model directory or <part>.onnx")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per setting (default 5)")
    args = parser.parse_args(argv)
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} at start")
    print(f"{'situation':<9} {'batch':>5} {'intra':>5} {'spin':>4} {'ms/call':>9} {'img/CPU-s':>9} {'img/s':>8} "
          f"{'others':>6}")
    for shared in (False, True):
        for row in measure(args.model, args.rounds, shared=shared):
            other = "?" if row["other_cpu"] is None else f"{row['other_cpu']:.2f}"
            print(f"{row['situation']:<9} {row['batch']:>5} {row['intra_op'] or 'all':>5} "
                  f"{'on' if row['spin'] else 'off':>4} {row['ms']:>9.1f} {row['images_per_cpu_s']:>9.1f} "
                  f"{row['images_per_s']:>8.1f} {other:>6}")
    print(f"load average {os.getloadavg()[0]:.2f} at end; 'others': CPU (cores' worth) other processes took "
          "during the batch's rounds, the busy helper left out")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
