"""Seed 002's ``genpic``: encode an image, sample N latents around mu, decode, save a grid.

Framework-neutral pipeline; the frameworks supply only "load a checkpoint" and "run a part"
(``torch_impl/variations.py``, ``keras_impl/variations.py``; the runtime has its own session).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np

from .errors import AgeError, ConfigError
from .images import load_image, save_grid, to_uint8
from .noise import variation_latents

log = logging.getLogger("age.variations")

RunPart = Callable[..., list[np.ndarray]]


def variations(model: Any, run_part: RunPart, image, n: int = 10, scale: float = 0.01, seed: int = 0) -> np.ndarray:
    """float32 (n, C, H, W) decoded variations of ``image`` (a path or encoded bytes)."""
    cfg = model.config
    if n <= 0:
        raise ConfigError(f"--n must be positive, got {n}")
    if scale < 0:
        raise ConfigError(f"--scale must be >= 0, got {scale}")
    x = load_image(image, cfg.image_size)[None]
    mu, logvar = run_part(model, "encoder", x)
    return run_part(model, "decoder", variation_latents(mu, logvar, n, scale, seed))[0]


def main(framework: str, load_model: Callable[[str], Any], run_part: RunPart, argv: list[str] | None = None) -> int:
    from .cli import variations_parser

    args = variations_parser(f"python -m {framework}_impl.variations").parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        model = load_model(args.checkpoint)
        images = variations(model, run_part, args.image, args.n, args.scale, args.seed)
        save_grid(to_uint8(images), args.out)
    except AgeError as exc:
        log.error("%s", exc)
        return 2
    print(f"wrote {args.out}")
    return 0
