"""How good is an exported generator? Metrics on features, through the runtime alone.

    python -m runtime.evaluate EXPORT_DIR [--data digits|DIR] [--n 2048] [--metrics is,fid,kid,pr,dc[,fvd]]
                               [--features digits|inception] [--inception-weights inception_fid.onnx]
                               [--i3d-weights i3d.onnx] [--json out.json] [--save-features DIR] [--seed S]

Generates ``--n`` samples through the runtime (``session.generate(n, seed)``), draws ``--n`` real
images from ``--data`` (the data at the model's own size, as training read them, then uint8 like
the samples), passes both through the same resize into a feature network
(:mod:`core.metrics.features`) and computes the metrics with :mod:`core.metrics` (NumPy,
float64). Prints a table and, with ``--json``, writes every value with its ± (where the metric has
one), n, the feature network and the resize. ``--save-features DIR`` writes ``real.npy`` and
``fake.npy`` (float64 (n, d)) so anyone can recompute a metric from the same features.

Feature networks: ``digits`` (built in, offline; not comparable with Inception numbers) and
``inception`` (FID's Inception-v3, from ``--inception-weights inception_fid.onnx``, made once by
``python -m export.inception`` from the standard weights file a user already has).

**Video generators** (``--data digits`` is then the embedded moving digits, or a clip folder):
the image metrics are computed **per frame** (``frame_fid``, ``frame_kid``, ...; one frame a clip,
frame ``i mod T`` of clip ``i``, :func:`core.metrics.features.frame_sample`) with the image network,
and ``fvd`` on the first 16 frames of every clip through FVD's I3D (``--i3d-weights i3d.onnx``, made
once by ``python -m export.i3d`` from ``i3d_pretrained_400.pt``). Without that file, or for clips
shorter than 16 frames, FVD is reported unavailable with the reason; the other metrics still run.
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
from core.metrics.suite import METRICS, VIDEO_METRICS, compute, parse_metrics

from core.metrics import features
from core.metrics.frechet import frechet_distance

from . import backends
from . import precision as precision_auto
from . import threads as threads_policy
from .session import GeneratorSession, check_seed, load, open_model
from .threads import ThreadPolicy

log = logging.getLogger("runtime.evaluate")

NETWORKS = ("digits", "inception")
MAX_N = 50_000


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m runtime.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("export_dir", help="an exported model's folder (python -m export.onnx --out)")
    p.add_argument("--data", default="digits",
                   help="real data: 'digits' (the embedded digits, or moving digits for a video model), an image "
                        "folder, or for a video model a folder of clips")
    p.add_argument("--n", type=int, default=2048, help=f"samples and real images each, 2..{MAX_N} (default 2048)")
    p.add_argument("--metrics", default=None,
                   help=f"comma-separated, of {', '.join(METRICS)} (video models also {', '.join(VIDEO_METRICS)}); "
                        f"default: all of them")
    p.add_argument("--features", default="digits", choices=NETWORKS,
                   help="feature network: digits (built in) or inception (needs --inception-weights)")
    p.add_argument("--inception-weights", default=None,
                   help="inception_fid.onnx, made once from the FID Inception weights "
                        "(pt_inception-2015-12-05-6726825d.pth) by python -m export.inception")
    p.add_argument("--i3d-weights", default=None,
                   help="i3d.onnx for FVD (video models), made once from i3d_pretrained_400.pt by python -m export.i3d")
    p.add_argument("--seed", type=int, default=0, help="generation seed and the real images' draw (default 0)")
    p.add_argument("--json", default=None, help="write the results here as JSON")
    p.add_argument("--save-features", default=None, help="write real.npy and fake.npy (float64 (n, d)) here")
    p.add_argument("--precision", choices=precision_auto.CHOICES, default="fp32",
                   help="which export to evaluate: <part>.onnx (fp32), <part>.fp16.onnx or <part>.int8.onnx; auto: the fastest within 40 dB PSNR of fp32 on this machine")
    p.add_argument("--provider", choices=("auto", "cpu", "cuda"), default=None,
                   help="execution provider of the generator (default: $AGE_RUNTIME_PROVIDER or auto)")
    backends.add_argument(p)
    threads_policy.add_arguments(p)
    p.add_argument("--log-level", default="INFO")
    return p


def real_images(data: str, session: GeneratorSession, n: int, seed: int) -> np.ndarray:
    """``n`` uint8 real samples at the model's size and channels, drawn from ``seed`` without
    replacement (all of them, repeated in order, when the data hold fewer than ``n``): images
    (n, S, S, C), or clips (n, T, S, S, C) of the model's length for a video model."""
    from core.data import open_dataset
    from core.video_data import open_video_dataset

    s, _, c = session.image_shape
    dataset = open_video_dataset(data, session.frames, s, c) if session.is_video else open_dataset(data, s, c)
    if len(dataset) < n:
        log.warning("data %s: %d samples for --n %d; the real set repeats them", dataset.root, len(dataset), n)
    return features.draw_pictures(dataset, n, [seed, 1])


def exported_network(network: features.FeatureNetwork, flag: str, threads: ThreadPolicy | None = None):
    """(network, session) of a user-given ONNX feature network: the file checked like any untrusted
    model (:func:`runtime.session.open_model`), then its input and outputs against the network's."""
    session, _ = open_model(network.path, threads=threads)
    network.check(session, flag)
    return network, session


def image_network(args: argparse.Namespace, threads: ThreadPolicy | None = None):
    """(network, session) of ``--features`` (a user-given network runs with the ``--threads`` policy)."""
    if args.features == "inception":
        if not args.inception_weights:
            raise ConfigError("--features inception needs --inception-weights: the inception_fid.onnx that "
                              "`python -m export.inception --weights pt_inception-2015-12-05-6726825d.pth --out DIR` "
                              "writes from the FID Inception weights (pytorch-fid's GitHub releases, tag fid_weights); "
                              "the built-in digits network needs nothing")
        return exported_network(features.inception(args.inception_weights), "--inception-weights", threads)
    network = features.digits()
    return network, network.session()


def video_network(args: argparse.Namespace, frames: int, threads: ThreadPolicy | None = None):
    """(network, session) of FVD's I3D, or the reason FVD is unavailable (a string)."""
    if not args.i3d_weights:
        return ("no --i3d-weights: FVD needs the i3d.onnx that `python -m export.i3d --weights "
                "i3d_pretrained_400.pt --out DIR` writes (the TATS / cd-fvd PyTorch port of the Kinetics-400 I3D)")
    network, session = exported_network(features.i3d(args.i3d_weights), "--i3d-weights", threads)
    if frames < network.frames:
        return f"the clips have {frames} frames; FVD's I3D takes {network.frames}"
    return network, session


def fvd(i3d, real: np.ndarray, fake: np.ndarray) -> tuple[dict, dict | None]:
    """(FVD result, I3D description) of uint8 clips through ``i3d`` ((network, session) from
    :func:`video_network`), or ``{"unavailable": reason}`` when ``i3d`` is that reason."""
    if isinstance(i3d, str):
        return {"unavailable": i3d}, None
    network, session = i3d
    log.info("FVD: %d + %d clips through I3D (%d frames at %d x %d)", len(real), len(fake), network.frames,
             network.size, network.size)
    a, b = (features.extract_clips(x, network, session=session) for x in (real, fake))
    return ({"value": frechet_distance(a, b), "frames": network.frames},
            {"network": network.name, "dim": int(a.shape[1]), "source": network.info.get("source")})


def evaluate(args: argparse.Namespace) -> dict:
    if not 2 <= args.n <= MAX_N:
        raise ConfigError(f"--n must be between 2 and {MAX_N}, got {args.n}")
    seed = check_seed(args.seed)
    policy = threads_policy.check_arguments(args.threads, args.spin)
    started = time.perf_counter()
    try:
        backends.check_backend(args.backend, args.provider)
    except AgeError as exc:
        raise ConfigError(f"--{exc}") from None
    session = load(args.export_dir, providers=args.provider, precision=args.precision, backend=args.backend,
                   threads=policy)
    if args.n > session.max_images:
        raise ConfigError(f"--n {args.n}: {session.model}'s samples are large; at most {session.max_images} "
                          f"of them fit one evaluation")
    allowed = METRICS + VIDEO_METRICS if session.is_video else METRICS
    metrics = parse_metrics(args.metrics or ",".join(allowed), allowed=allowed)
    network, onnx = image_network(args, policy)  # every network is checked before any sample is made
    i3d = video_network(args, session.frames, policy) if session.is_video and "fvd" in metrics else None
    latents = session.sample_latents(args.n, seed)  # one draw: the same samples whatever the batching
    fake_samples = np.concatenate([session.generate(latents=latents[i : i + 256]) for i in range(0, args.n, 256)])
    real_samples = real_images(args.data, session, args.n, seed)
    video, prefix = None, ""
    if session.is_video:
        prefix = "frame_"
        if i3d is not None:
            video_result, video = fvd(i3d, real_samples, fake_samples)
        real_samples, fake_samples = features.frame_sample(real_samples), features.frame_sample(fake_samples)
    real = features.extract(real_samples, network, session=onnx)
    fake = features.extract(fake_samples, network, session=onnx)
    image_metrics = tuple(m for m in metrics if m in METRICS)
    results = {prefix + k: v for k, v in compute(image_metrics, real, fake, seed).items()}
    if i3d is not None:
        results["fvd"] = video_result
    if args.save_features:
        folder = Path(args.save_features)
        for name, (array, _) in (("real", real), ("fake", fake)):
            buf = io.BytesIO()
            np.save(buf, array)
            atomic_write_bytes(folder / f"{name}.npy", buf.getvalue())
    return {"model": session.model, "export": str(Path(args.export_dir)), "data": args.data, "n": args.n,
            "seed": seed, "features": {"network": network.name, "dim": int(real[0].shape[1]),
                                       "heldout_accuracy": network.info.get("heldout_accuracy"),
                                       **({"per_frame": "one frame a clip: frame i mod T of clip i"}
                                          if session.is_video else {})},
            **({"video_features": video} if video else {}),
            "resize": f"{network.size}x{network.size}, {features.RESIZE_FILTER}",
            "metrics": results, "seconds": round(time.perf_counter() - started, 2)}


def table(report: dict) -> str:
    lines = [f"{report['model']} ({report['export']}): n = {report['n']} generated vs {report['n']} real "
             f"({report['data']}); features: {report['features']['network']} network "
             f"({report['features']['dim']}-d" + ("; not comparable with Inception numbers)" if
                                                   report["features"]["network"] != "inception" else ")")]
    for name, m in report["metrics"].items():
        if "unavailable" in m:
            lines.append(f"  {name:<16} unavailable: {m['unavailable']}")
            continue
        pm = f" ± {m['std']:.4g}" if "std" in m else ""
        lines.append(f"  {name:<16} {m['value']:.6g}{pm}")
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
