"""The training benchmark's former name: ``python bench/training.py ...`` runs ``bench/train.py``."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.argv[0] = str(Path(__file__).with_name("train.py"))
    runpy.run_path(sys.argv[0], run_name="__main__")
