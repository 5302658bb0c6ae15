"""Seed 002's ``genpic``: encode an image, sample N latents around mu, decode, save a grid.

Framework-neutral pipeline; the frameworks supply only "load a checkpoint" and "run a part"
(``torch_impl/variations.py``, ``keras_impl/variations.py``; the runtime has its own session).
Any model with a Gaussian ``encoder`` part (mu, logvar) works: its latents go through the model's generator part
(``decoder``, ``generator`` or ``video_generator``: a video model's variations are videos, written
as a GIF/MP4 grid, or a PNG of their first frames).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import AgeError, ConfigError, os_error_message
from .files import atomic_write_bytes
from .images import MEDIA_TYPES, check_layout, encode, format_refusal, load_image, to_uint8
from .noise import check_scale, check_seed, variation_latents
from .registry import ENCODER_PART, data_range, get_model_spec, runtime_facts, sample_part

log = logging.getLogger("age.variations")

RunPart = Callable[..., list[np.ndarray]]
#: the most variations one call makes (each is one decoded image or video)
MAX_N = 4096
#: latents decoded per call, so --n 4096 of a 150x150 model never needs one 12 GB activation
DECODE_BATCH = 64


def variations(model: Any, run_part: RunPart, image, n: int = 10, scale: float = 0.01, seed: int = 0) -> np.ndarray:
    """float32 (n, C, H, W) decoded variations of ``image`` (a path or encoded bytes) in [0, 1];
    (n, T, C, H, W) for a video model."""
    cfg = model.config
    if not 1 <= n <= MAX_N:
        raise ConfigError(f"--n must be between 1 and {MAX_N}, got {n}")
    try:
        scale, seed = check_scale(scale), check_seed(seed)
    except ConfigError as exc:
        raise ConfigError(f"--{exc}") from None
    if ENCODER_PART not in get_model_spec(cfg.model).parts(cfg):
        raise ConfigError(f"model {cfg.model!r} has no {ENCODER_PART} part; variations need a model that encodes "
                          f"images")
    if runtime_facts(cfg)["encoder_kind"] != "gaussian":
        raise ConfigError(f"model {cfg.model!r} encodes an image to one point, not a distribution; variations "
                          f"need a Gaussian encoder (mu, logvar)")
    low, high = data_range(cfg)  # training fed the encoder data in the generator's range
    x = load_image(image, cfg.image_size, channels=cfg.in_channels)[None]
    mu, logvar = run_part(model, ENCODER_PART, (low + (high - low) * x).astype(np.float32))[:2]
    z = variation_latents(mu, logvar, n, scale, seed)
    part = sample_part(cfg)
    out = np.concatenate([run_part(model, part, z[i : i + DECODE_BATCH])[0] for i in range(0, n, DECODE_BATCH)])
    return ((out - low) / (high - low)).astype(np.float32) if (low, high) != (0.0, 1.0) else out


def output_format(out: str | Path) -> str:
    """The format the ``--out`` suffix asks for (png, gif, mp4, npy)."""
    fmt = Path(out).suffix.lower().lstrip(".")
    if fmt not in MEDIA_TYPES:
        raise ConfigError(f"--out {out}: unsupported extension {Path(out).suffix or '(none)'}; use one of "
                          f"{', '.join('.' + f for f in MEDIA_TYPES)}")
    return fmt


def main(framework: str, load_model: Callable[[str], Any], run_part: RunPart, argv: list[str] | None = None) -> int:
    from .cli import variations_parser

    args = variations_parser(f"python -m {framework}_impl.variations").parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        if Path(args.out).is_dir():
            raise ConfigError(f"--out {args.out}: is a directory")
        fmt = output_format(args.out)
        check_layout(args.n, args.nrow, None)
        model = load_model(args.checkpoint)
        out = variations(model, run_part, args.image, args.n, args.scale, args.seed)
        is_video = out.ndim == 5
        if fmt == "png" and is_video:
            out, is_video = out[:, 0], False  # a grid of the first frames
        why = format_refusal(fmt, is_video)
        if why is not None:
            raise ConfigError(f"--out {args.out}: model {model.config.model!r} {why}")
        atomic_write_bytes(args.out, encode(to_uint8(out), fmt, args.nrow))
    except AgeError as exc:
        log.error("%s", exc)
        return 2
    except OSError as exc:
        log.error("%s", os_error_message(exc))
        return 2
    print(f"wrote {args.out}")
    return 0
