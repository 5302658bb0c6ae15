"""What each extra of age-toolkit adds on disk, measured in an environment that has them all installed.

    .venv/bin/python scripts/extra_sizes.py            # a Markdown table for the README

For the core and each extra: the distributions it pulls in (its requirements and theirs, as
installed here) that the core install does not already have, and the size of their files (from
each distribution's RECORD). Shared dependencies count in every extra that needs them, so the rows
do not add up to the whole environment; ``du -sh`` of a real venv is the number to quote for a
complete install. Needs ``packaging`` (onnxruntime brings it).
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = "age-toolkit"


def _requirements(dist: metadata.Distribution, extras: set[str]) -> list[Requirement]:
    """The requirements of ``dist`` that apply here, with ``extras`` requested."""
    out = []
    for line in dist.requires or []:
        req = Requirement(line)
        if req.marker is None:
            out.append(req)
            continue
        for extra in extras or {""}:
            env = dict(default_environment(), extra=extra)
            if req.marker.evaluate(env):
                out.append(req)
                break
    return out


def closure(names: list[tuple[str, set[str]]]) -> set[str]:
    """Canonical names of the installed distributions that ``names`` (name, extras) pull in."""
    seen: set[tuple[str, frozenset[str]]] = set()
    dists: set[str] = set()
    todo = list(names)
    while todo:
        name, extras = todo.pop()
        key = (canonicalize_name(name), frozenset(extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            print(f"warning: {name} is not installed here; its size is not counted", file=sys.stderr)
            continue
        dists.add(canonicalize_name(name))
        todo.extend((req.name, set(req.extras)) for req in _requirements(dist, extras))
    return dists


def size_of(dist_name: str) -> int:
    dist = metadata.distribution(dist_name)
    total = 0
    for f in dist.files or []:
        path = Path(dist.locate_file(f))
        try:
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        except OSError:
            pass
    return total


def human(n: int) -> str:
    for unit, step in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= step:
            return f"{n / step:.1f} {unit}" if n < 10 * step else f"{n / step:.0f} {unit}"
    return f"{n} B"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=4, help="largest distributions named per row")
    parser.add_argument("--beyond", action="append", default=None, metavar="EXTRA=BASE",
                        help="measure EXTRA on top of extra BASE instead of the core (default: test=all)")
    opts = parser.parse_args(argv)
    beyond = dict(item.split("=", 1) for item in (opts.beyond or ["test=all"]))
    project = metadata.distribution(PROJECT)
    core = closure([(PROJECT, set())]) - {canonicalize_name(PROJECT)}
    rows = [("(core)", core, core)]
    extras = project.metadata.get_all("Provides-Extra") or []
    pulled = {extra: closure([(PROJECT, {extra})]) - {canonicalize_name(PROJECT)} for extra in extras}
    for extra in extras:
        base = beyond.get(extra)
        if base is None:
            rows.append((extra, pulled[extra], pulled[extra] - core))
        else:
            rows.append((f"{extra}` beyond `{base}", pulled[extra], pulled[extra] - core - pulled.get(base, set())))
    print("| extra | adds (largest first) | size on disk |")
    print("|---|---|---|")
    for name, _, added in rows:
        sizes = sorted(((size_of(d), d) for d in added), reverse=True)
        named = ", ".join(d for _, d in sizes[: opts.top])
        if len(sizes) > opts.top:
            named += f" + {len(sizes) - opts.top} more"
        print(f"| `{name}` | {named or '-'} | {human(sum(s for s, _ in sizes))} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
