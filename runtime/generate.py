"""``python -m runtime.generate MODEL --out grid.png [--n 16] [--seed 0] [--variations IMAGE | --reconstruct IMAGE... | --interpolate A B]``.

Writes a PNG grid of generated images (an animated GIF for video generators, or an H.264 MP4 when ``--out``
ends in ``.mp4`` and imageio-ffmpeg is installed; ``.npy`` keeps the raw uint8 array), then prints the output path. With
``--variations IMAGE`` the grid shows ``n`` (default 10) variations of that image instead (a model
with a Gaussian encoder); with ``--reconstruct IMAGE [IMAGE ...]`` it shows each image encoded and
decoded (any model with an encoder; the only thing an autoencoder without a prior can do). With
``--interpolate A B [--steps 8]`` it inverts both pictures and decodes ``steps`` latents from one
to the other (linear, or along the great circle for a ``sphere`` prior): a ``.gif`` (or ``.mp4``)
animation one step per frame, a ``.png`` strip of the steps in one row, or the ``.npy`` array
(``runtime.interpolation_media``; a video model gives its step videos side by side).

Every user error (bad model file, unreadable image, bad argument, an output that cannot be
written: missing or read-only folder, ``--out`` naming a directory, a full disk) ends as one line
on stderr naming the flag or the path, and exit status 2; arguments are checked before the model
is loaded. The output is written atomically: it appears complete or not at all.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from core import images as core_images
from core.errors import AgeError, os_error_message
from core.files import atomic_write_bytes

from . import backends, interpolation_media
from . import precision as precision_auto
from . import threads as threads_policy
from core.interpolation import DEFAULT_STEPS, MIN_STEPS
from .session import DEFAULT_BATCH_SIZE, SCALE_RANGE, GeneratorSession, check_scale, check_seed, load

log = logging.getLogger("runtime.generate")

OUTPUT_SUFFIXES = tuple(f".{fmt}" for fmt in core_images.MEDIA_TYPES)
DEFAULT_N = 16
DEFAULT_N_VARIATIONS = 10
#: Refuse absurd requests up front instead of exhausting memory halfway.
MAX_N = 4096


class UsageError(ValueError):
    """A command-line value that argparse's own checks cannot catch."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m runtime.generate", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="exported model directory or <part>.onnx file (decoder/generator)")
    parser.add_argument("--out", required=True, help="output file: .png grid, .gif animation, .mp4 video (needs imageio-ffmpeg) "
                        "or .npy array (.gif/.mp4 of still images only with --interpolate)")
    parser.add_argument("--n", type=int, default=None, help=f"number of images, 1..{MAX_N} and at most what the model's "
                        f"output size allows (default {DEFAULT_N}; {DEFAULT_N_VARIATIONS} with --variations)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed, 0..2**63-1 (default 0; same seed -> same images)")
    parser.add_argument("--batch-size", type=int, default=None, help=f"images per inference call, 1..n (default {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--nrow", type=int, default=None, help="images per grid row, 1..n (default: square grid)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--variations", metavar="IMAGE", default=None,
                        help="make variations of this image (needs a Gaussian encoder.onnx)")
    source.add_argument("--reconstruct", metavar="IMAGE", nargs="+", default=None,
                        help="encode and decode these images, one grid cell each (needs encoder.onnx)")
    source.add_argument("--interpolate", metavar=("IMAGE_A", "IMAGE_B"), nargs=2, default=None,
                        help="invert both images and decode --steps latents from one to the other: a .gif/.mp4 "
                             "animation, a .png strip or a .npy array (needs encoder.onnx)")
    parser.add_argument("--steps", type=int, default=None, help=f"interpolation steps, endpoints included, {MIN_STEPS}..{MAX_N} "
                        f"and at most what the model's output size allows (default {DEFAULT_STEPS}; only with --interpolate)")
    parser.add_argument("--scale", type=float, default=0.01, help=f"variation strength: fraction of the posterior variance, "
                        f"{SCALE_RANGE[0]:g}..{SCALE_RANGE[1]:g} (default 0.01)")
    parser.add_argument("--fps", type=float, default=8.0, help=f"GIF/MP4 frame rate, {core_images.FPS_RANGE[0]:g}..{core_images.FPS_RANGE[1]:g} (default 8)")
    parser.add_argument("--precision", choices=precision_auto.CHOICES, default="fp32",
                        help="which export to run from a directory: <part>.onnx, <part>.fp16.onnx or <part>.int8.onnx; auto: measure those present and run the fastest within 40 dB PSNR of fp32")
    parser.add_argument("--provider", choices=("auto", "cpu", "cuda"), default=None, help="execution provider (default: $AGE_RUNTIME_PROVIDER or auto)")
    backends.add_argument(parser)
    threads_policy.add_arguments(parser)
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
    if suffix == ".mp4" and (why := core_images.format_refusal("mp4", is_video=True)):
        raise UsageError(f"--out {args.out}: {why}")  # before loading anything
    if Path(args.out).is_dir():
        raise UsageError(f"--out {args.out}: is a directory")
    if args.reconstruct is not None:
        if args.n is not None:
            raise UsageError("--n: not used with --reconstruct (one image out per image in)")
        args.n = len(args.reconstruct)
    if args.steps is not None and args.interpolate is None:
        raise UsageError("--steps: only used with --interpolate")
    if args.interpolate is not None:
        if args.n is not None:
            raise UsageError("--n: not used with --interpolate (give the number of steps with --steps)")
        args.steps = DEFAULT_STEPS if args.steps is None else args.steps
        if not MIN_STEPS <= args.steps <= MAX_N:
            raise UsageError(f"--steps must be between {MIN_STEPS} and {MAX_N}, got {args.steps}")
        args.n = args.steps
    if args.n is None:
        args.n = DEFAULT_N_VARIATIONS if args.variations else DEFAULT_N
    if not 1 <= args.n <= MAX_N:
        raise UsageError(f"--n must be between 1 and {MAX_N}, got {args.n}")
    threads_policy.check_arguments(args.threads, args.spin)
    try:
        backends.check_backend(args.backend, args.provider)
    except AgeError as exc:
        raise UsageError(f"--{exc}") from None
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    # the shared validators' messages start with the field name: prefix it with "--"
    try:
        core_images.check_layout(args.n, nrow=args.nrow, fps=args.fps)
        check_scale(args.scale)
        check_seed(args.seed)
    except ValueError as exc:
        raise UsageError(f"--{exc}") from None


def make_images(session: GeneratorSession, args: argparse.Namespace) -> np.ndarray:
    if args.interpolate is not None:
        image_a, image_b = args.interpolate
        return session.interpolate(image_a, image_b, steps=args.steps, batch_size=args.batch_size)
    if args.reconstruct is not None:
        latents = np.concatenate([session.reconstruction_latents(path) for path in args.reconstruct])
        return session.to_uint8(session.decode(latents, args.batch_size))
    if args.variations is not None:
        return session.variations(args.variations, n=args.n, scale=args.scale, seed=args.seed, batch_size=args.batch_size)
    return session.generate(args.n, seed=args.seed, batch_size=args.batch_size)


def run(args: argparse.Namespace) -> Path:
    check_args(args)
    session = load(args.model, providers=args.provider, precision=args.precision, backend=args.backend,
                   threads=args.threads, spin=args.spin)
    out = Path(args.out)
    fmt = out.suffix.lower()[1:]
    interpolating = args.interpolate is not None
    if interpolating:
        why = interpolation_media.format_refusal(fmt, session.is_video)
        hint = ""
    else:
        why = core_images.format_refusal(fmt, session.is_video)
        hint = "" if session.is_video else "; or export a model whose generator makes videos"
    if why is not None:
        raise UsageError(f"--out {out}: {session.path.name} ({session.model}, part {session.part!r}) {why}{hint}")
    if interpolating and (why := interpolation_media.layout_refusal(fmt, session.is_video, args.steps, args.nrow)):
        raise UsageError(f"--{why}")
    try:
        session.check_n(args.n, "steps" if interpolating else "n")
    except ValueError as exc:
        raise UsageError(f"--{exc}") from None
    images = make_images(session, args)
    if interpolating:
        body = interpolation_media.encode(images, fmt, session.is_video, args.nrow, args.fps)
    else:
        body = core_images.encode(images, fmt, args.nrow, args.fps)
    # encoded fully in memory, then written atomically: no half-written file on failure
    return atomic_write_bytes(out, body)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(name)s: %(message)s", stream=sys.stderr)
    try:
        path = run(args)
    except (AgeError, ValueError) as exc:
        log.error("error: %s", " ".join(str(exc).split()))
        return 2
    except OSError as exc:  # any OS failure not already turned into an AgeError: still one line
        log.error("error: %s", os_error_message(exc))
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
