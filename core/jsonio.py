"""JSON from files we did not write: bounded in size and nesting, parsed in linear time.

Configs, checkpoint headers, ONNX metadata, optimizer metadata and ``train_state.json`` all come
from files a stranger may have crafted. ``json.loads`` recurses once per nesting level: a
100,000-deep ``[[[...]]]`` raises ``RecursionError`` (CPython's C scanner counts its recursion, so
this is an exception, not a crash). :func:`loads` bounds the size first, turns that and every other
parse failure into the caller's error class naming the source, and then measures the depth of
what was parsed with an iterative walk, refusing anything deeper than :data:`MAX_DEPTH`. Nothing
here is worse than linear in the input.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .errors import AgeError

#: Deepest nesting any of our JSON documents has is 4; 64 leaves room for growth.
MAX_DEPTH = 64
#: Largest JSON text accepted by default (a config is < 2 KB; a checkpoint header < 10 MB).
MAX_BYTES = 16 * 1024 * 1024


def nesting_depth(value: Any) -> int:
    """Deepest list/object nesting of a parsed JSON value (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def loads(text: str | bytes, source: str, error: type[AgeError] = AgeError, *,
          max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads(text)`` with its size and nesting bounded; NaN/Infinity literals refused.

    Every failure (too big, too deep, not UTF-8, not JSON) raises ``error`` with a message that
    starts with ``source`` (the file and field, e.g. ``"checkpoint run/c.safetensors: config"``).
    """
    size = len(text.encode("utf-8", "surrogatepass")) if isinstance(text, str) else len(text)
    if size > max_bytes:
        raise error(f"{source}: JSON of {size} bytes exceeds the limit of {max_bytes}")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise error(f"{source}: JSON nested more than {max_depth} levels deep") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise error(f"{source}: not valid JSON ({exc})") from None
    depth = nesting_depth(value)
    if depth > max_depth:
        raise error(f"{source}: JSON nested {depth} levels deep exceeds the limit of {max_depth}")
    return value


def finite_number(value: Any) -> bool:
    """A real JSON number (not a bool) that is finite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_like(where: str, value: Any, template: Any, error: type[AgeError] = AgeError, path: str = "") -> None:
    """Raise ``error`` unless ``value`` has the structure of ``template`` (same dict keys, same list
    lengths, a finite number where the template has a number, a bool where it has a bool, an equal
    string where it has a string). Used for state files whose shape the live program knows, e.g. an
    optimizer's ``param_groups``: values may differ, structure may not."""
    here = path or "(top)"
    if isinstance(template, dict):
        if not isinstance(value, dict) or set(value) != set(template):
            got = sorted(value) if isinstance(value, dict) else type(value).__name__
            raise error(f"{where}: {here} must have the keys {sorted(template)}, got {got}")
        for key in template:
            check_like(where, value[key], template[key], error, f"{path}.{key}" if path else str(key))
    elif isinstance(template, (list, tuple)):
        if not isinstance(value, list) or len(value) != len(template):
            raise error(f"{where}: {here} must be a list of {len(template)}, got {str(value)[:60]}")
        for i, (v, t) in enumerate(zip(value, template)):
            check_like(where, v, t, error, f"{path}[{i}]")
    elif isinstance(template, bool):
        if not isinstance(value, bool):
            raise error(f"{where}: {here} must be true or false, got {str(value)[:60]}")
    elif isinstance(template, (int, float)):
        if not finite_number(value):
            raise error(f"{where}: {here} must be a finite number, got {str(value)[:60]}")
    elif template is None:
        if value is not None:
            raise error(f"{where}: {here} must be null, got {str(value)[:60]}")
    elif value != template:
        raise error(f"{where}: {here} must be {template!r}, got {str(value)[:60]}")
