"""How good is an exported generator? Metrics on features, through the runtime alone.

    python -m runtime.evaluate EXPORT_DIR [--data digits|DIR] [--n 2048] [--metrics is,fid,kid,pr,dc]
                               [--features digits] [--json out.json] [--save-features DIR] [--seed S]

Generates ``--n`` samples through the runtime (``session.generate(n, seed)``), draws ``--n`` real
images from ``--data`` (the data at the model's own size, as training read them, then uint8 like
the samples), passes both through the same resize into a feature network
(:mod:`core.metrics.features`) and computes the metrics with :mod:`core.metrics` (NumPy,
float64). Prints a table and, with ``--json``, writes every value with its ± (where the metric has
one), n, the feature network and the resize. ``--save-features DIR`` writes ``real.npy`` and
``fake.npy`` (float64 (n, d)) so anyone can recompute a metric from the same features.

Feature networks: ``digits`` (built in, offline; not comparable with Inception numbers) and
``inception`` (FID's Inception-v3, from ``--inception-weights inception_fid.onnx``, made once by
``python -m export.inception`` from the standard weights file a user already has). I3D (FVD) is not
wired in yet.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from core.errors import AgeError, ConfigError, os_error_message
from core.files import atomic_write_bytes, atomic_write_text
from core.metrics.suite import METRICS, compute, parse_metrics

from core.metrics import features
from .session import GeneratorSession, check_seed, load

log = logging.getLogger("runtime.evaluate")

NETWORKS = ("digits", "inception")
MAX_N = 50_000


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m runtime.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("export_dir", help="an exported model's folder (python -m export.onnx --out)")
    p.add_argument("--data", default="digits", help="real images: 'digits' (the embedded default) or an ImageFolder")
    p.add_argument("--n", type=int, default=2048, help=f"samples and real images each, 2..{MAX_N} (default 2048)")
    p.add_argument("--metrics", default=",".join(METRICS), help=f"comma-separated, of {', '.join(METRICS)}")
    p.add_argument("--features", default="digits", choices=NETWORKS,
                   help="feature network: digits (built in) or inception (needs --inception-weights)")
    p.add_argument("--inception-weights", default=None,
                   help="inception_fid.onnx, made once from the FID Inception weights "
                        "(pt_inception-2015-12-05-6726825d.pth) by python -m export.inception")
    p.add_argument("--seed", type=int, default=0, help="generation seed and the real images' draw (default 0)")
    p.add_argument("--json", default=None, help="write the results here as JSON")
    p.add_argument("--save-features", default=None, help="write real.npy and fake.npy (float64 (n, d)) here")
    p.add_argument("--log-level", default="INFO")
    return p


def real_images(data: str, session: GeneratorSession, n: int, seed: int) -> np.ndarray:
    """``n`` uint8 (n, S, S, C) real images at the model's size and channels, drawn from ``seed``
    without replacement (all of them, repeated in order, when the data hold fewer than ``n``)."""
    from core.data import open_dataset

    s, _, c = session.image_shape
    dataset = open_dataset(data, s, c)
    if len(dataset) < n:
        log.warning("data %s: %d images for --n %d; the real set repeats them", dataset.root, len(dataset), n)
    return features.draw_pictures(dataset, n, [seed, 1])


def evaluate(args: argparse.Namespace) -> dict:
    metrics = parse_metrics(args.metrics)
    if not 2 <= args.n <= MAX_N:
        raise ConfigError(f"--n must be between 2 and {MAX_N}, got {args.n}")
    seed = check_seed(args.seed)
    started = time.perf_counter()
    session = load(args.export_dir)
    if session.is_video:
        raise ConfigError(f"{args.export_dir}: a video generator; per-frame and FVD metrics are not built yet")
    if args.features == "inception":
        if not args.inception_weights:
            raise ConfigError("--features inception needs --inception-weights: the inception_fid.onnx that "
                              "`python -m export.inception --weights pt_inception-2015-12-05-6726825d.pth --out DIR` "
                              "writes from the FID Inception weights (pytorch-fid's GitHub releases, tag fid_weights); "
                              "the built-in digits network needs nothing")
        network = features.inception(args.inception_weights)
    else:
        network = features.digits()
    onnx = network.session()
    latents = session.sample_latents(args.n, seed)  # one draw: the same images whatever the batching
    fake_images = np.concatenate([session.generate(latents=latents[i : i + 256]) for i in range(0, args.n, 256)])
    real = features.extract(real_images(args.data, session, args.n, seed), network, session=onnx)
    fake = features.extract(fake_images, network, session=onnx)
    results = compute(metrics, real, fake, seed)
    if args.save_features:
        folder = Path(args.save_features)
        for name, (array, _) in (("real", real), ("fake", fake)):
            buf = io.BytesIO()
            np.save(buf, array)
            atomic_write_bytes(folder / f"{name}.npy", buf.getvalue())
    return {"model": session.model, "export": str(Path(args.export_dir)), "data": args.data, "n": args.n,
            "seed": seed, "features": {"network": network.name, "dim": int(real[0].shape[1]),
                                       "heldout_accuracy": network.info.get("heldout_accuracy")},
            "resize": f"{network.size}x{network.size}, {features.RESIZE_FILTER}",
            "metrics": results, "seconds": round(time.perf_counter() - started, 2)}


def table(report: dict) -> str:
    lines = [f"{report['model']} ({report['export']}): n = {report['n']} generated vs {report['n']} real "
             f"({report['data']}); features: {report['features']['network']} network "
             f"({report['features']['dim']}-d" + ("; not comparable with Inception numbers)" if
                                                   report["features"]["network"] != "inception" else ")")]
    for name, m in report["metrics"].items():
        pm = f" ± {m['std']:.4g}" if "std" in m else ""
        lines.append(f"  {name:<10} {m['value']:.6g}{pm}")
    lines.append(f"  ({report['seconds']:.1f}s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        report = evaluate(args)
    except (AgeError, ValueError) as exc:
        print(f"runtime.evaluate: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"runtime.evaluate: error: {os_error_message(exc)}", file=sys.stderr)
        return 2
    print(table(report))
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
