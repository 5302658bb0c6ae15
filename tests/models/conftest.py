"""tests/models: prints the registry suite's table of measured differences at the end of a run
(``-v`` or ``AGE_PARITY_REPORT=1``); the cases and helpers are in ``registry_cases.py``."""

from __future__ import annotations

import os

from tests.models.registry_cases import MEASURED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not MEASURED or not (config.option.verbose > 0 or os.environ.get("AGE_PARITY_REPORT")):
        return
    checks = list(dict.fromkeys(c for _, c in MEASURED))
    ids = list(dict.fromkeys(i for i, _ in MEASURED))
    width = max(len(i) for i in ids) + 2
    w = terminalreporter.write_line
    w("")
    w("registry suite: largest measured difference per model/variant (max |diff|; grads: relative)")
    w("case".ljust(width) + "".join(c[:14].rjust(15) for c in checks))
    for i in ids:
        w(i.ljust(width) + "".join((f"{MEASURED[(i, c)]:.2e}" if (i, c) in MEASURED else "-").rjust(15)
                                   for c in checks))


