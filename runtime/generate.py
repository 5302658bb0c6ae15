"""``python -m runtime.generate MODEL --out grid.png [--n 16] [--seed 0] [--variations IMAGE]``.

Writes a PNG grid of generated images (an animated GIF for video generators, or an H.264 MP4 when ``--out``
ends in ``.mp4`` and imageio-ffmpeg is installed; ``.npy`` keeps the raw uint8 array), then prints the output path. With
``--variations IMAGE`` the grid shows ``n`` (default 10) variations of that image instead.

Every user error (bad model file, unreadable image, bad argument) ends as one line on stderr and
exit status 2, before anything is written: the output appears complete or not at all.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from spec import images as spec_images
from spec.errors import AgeError
from spec.files import atomic_write_bytes
from spec.registry import PRECISIONS

from .session import GeneratorSession, load

log = logging.getLogger("runtime.generate")

OUTPUT_SUFFIXES = tuple(f".{fmt}" for fmt in spec_images.MEDIA_TYPES)
DEFAULT_N = 16
DEFAULT_N_VARIATIONS = 10
#: Refuse absurd requests up front instead of exhausting memory halfway.
MAX_N = 4096


class UsageError(ValueError):
    """A command-line value that argparse's own checks cannot catch."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m runtime.generate", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="exported model directory or <part>.onnx file (decoder/generator)")
    parser.add_argument("--out", required=True, help="output file: .png grid, .gif animation, .mp4 video (needs imageio-ffmpeg) or .npy array")
    parser.add_argument("--n", type=int, default=None, help=f"number of images (default {DEFAULT_N}; {DEFAULT_N_VARIATIONS} with --variations)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default 0; same seed -> same images)")
    parser.add_argument("--batch-size", type=int, default=None, help="images per inference call (default 64)")
    parser.add_argument("--nrow", type=int, default=None, help="images per grid row (default: square grid)")
    parser.add_argument("--variations", metavar="IMAGE", default=None, help="make variations of this image (needs encoder.onnx)")
    parser.add_argument("--scale", type=float, default=0.01, help="variation strength: fraction of the posterior variance (default 0.01)")
    parser.add_argument("--fps", type=float, default=8.0, help="GIF frame rate (default 8)")
    parser.add_argument("--precision", choices=tuple(PRECISIONS), default="fp32",
                        help="which export to run from a directory: <part>.onnx, <part>.fp16.onnx or <part>.int8.onnx")
    parser.add_argument("--provider", choices=("auto", "cpu", "cuda"), default=None, help="execution provider (default: $AGE_RUNTIME_PROVIDER or auto)")
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        default="INFO",
        help="logging level (default INFO: one line naming the provider)",
    )
    return parser


def check_args(args: argparse.Namespace) -> None:
    """Validate everything that does not need the model, before loading it."""
    suffix = Path(args.out).suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise UsageError(f"--out {args.out}: unsupported extension {suffix or '(none)'}; use one of {', '.join(OUTPUT_SUFFIXES)}")
    if suffix == ".mp4" and (why := spec_images.format_refusal("mp4", is_video=True)):
        raise UsageError(f"--out {args.out}: {why}")  # before loading anything
    if Path(args.out).is_dir():
        raise UsageError(f"--out {args.out}: is a directory")
    if args.n is None:
        args.n = DEFAULT_N_VARIATIONS if args.variations else DEFAULT_N
    if not 1 <= args.n <= MAX_N:
        raise UsageError(f"--n must be between 1 and {MAX_N}, got {args.n}")
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.nrow is not None and args.nrow < 1:
        raise UsageError(f"--nrow must be >= 1, got {args.nrow}")
    if not (np.isfinite(args.scale) and args.scale >= 0):
        raise UsageError(f"--scale must be a finite number >= 0, got {args.scale}")
    if not (np.isfinite(args.fps) and args.fps > 0):
        raise UsageError(f"--fps must be > 0, got {args.fps}")


def make_images(session: GeneratorSession, args: argparse.Namespace) -> np.ndarray:
    if args.variations is not None:
        return session.variations(args.variations, n=args.n, scale=args.scale, seed=args.seed, batch_size=args.batch_size)
    return session.generate(args.n, seed=args.seed, batch_size=args.batch_size)


def run(args: argparse.Namespace) -> Path:
    check_args(args)
    session = load(args.model, providers=args.provider, precision=args.precision)
    out = Path(args.out)
    fmt = out.suffix.lower()[1:]
    why = spec_images.format_refusal(fmt, session.is_video)
    if why is not None:
        hint = "" if session.is_video else "; or export a video generator (vaegan trained with --tanh-mode time)"
        raise UsageError(f"--out {out}: {session.path.name} ({session.model}, part {session.part!r}) {why}{hint}")
    # encoded fully in memory, then written atomically: no half-written file on failure
    return atomic_write_bytes(out, spec_images.encode(make_images(session, args), fmt, args.nrow, args.fps))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(name)s: %(message)s", stream=sys.stderr)
    try:
        path = run(args)
    except (AgeError, ValueError) as exc:
        log.error("error: %s", " ".join(str(exc).split()))
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
