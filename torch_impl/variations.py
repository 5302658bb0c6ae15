"""``python -m torch_impl.variations CKPT IMAGE --n 10 --scale 0.01 --out grid.png`` (pipeline: :mod:`core.variations`)."""

import sys

from core.variations import main as variations_main

from .checkpoint import load_model
from .parts import run_part


def main(argv: list[str] | None = None) -> int:
    return variations_main("torch", load_model, run_part, argv)


if __name__ == "__main__":
    sys.exit(main())
