"""Progress bars for long work outside the training loop (dataset preparation, feature extraction).

tqdm is an optional dependency (the ``train`` extra; a serving host may not have it): without it
:func:`bar` returns a bar that does nothing, so callers never test for it. The bar shows itself
only when the work takes more than ``delay`` seconds and only on a terminal (``disable=None``).
"""

from __future__ import annotations

from typing import Any


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def bar(total: int, unit: str, desc: str, delay: float = 3.0) -> Any:
    """A tqdm bar over ``total`` ``unit``s (``update(n)``, ``close()``), or one that does nothing."""
    try:
        from tqdm import tqdm
    except ImportError:
        return _Silent()
    return tqdm(total=total, unit=unit, desc=desc, delay=delay, dynamic_ncols=True, leave=False, disable=None)
