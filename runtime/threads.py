"""How many threads a session computes with, and whether they spin-wait between calls.

Why a policy instead of onnxruntime's defaults: the best setting depends on who else uses the
cores. ORT's defaults (one intra-op thread per physical core, threads spinning for work after
each run) suit a process that owns the machine; they hurt when the process shares its cores, as
the server does with its own event loop (HTTP, PNG encoding) and as any host running other jobs
does: a spinning thread takes a core that the rest of the process, or another process, needs.
So a session picks from the situation, by name, and any value can be overridden:

=============  ===========  ===========  =========  ==================================================
preset         intra-op     inter-op     spinning   for
=============  ===========  ===========  =========  ==================================================
``dedicated``  all cores    1            on         ``runtime.load``, ``runtime.generate``,
               (ORT's 0)                            ``runtime.evaluate``: one caller on a host of its own
``server``     all cores    1            off        ``runtime.serve``: the batcher's calls under load,
                                                    sharing the cores with the event loop and clients
``efficient``  1            1            off        the most images per CPU-second: many processes or
                                                    models on one host, CPU time that is paid for
=============  ===========  ===========  =========  ==================================================

``threads`` may also be a number (intra-op threads, the rest from the context's preset) and
``spin`` a bool; ``$AGE_RUNTIME_SPIN`` (``0``/``1``) sets spinning where no ``spin`` is given.
Inter-op threads only matter in ORT's parallel execution mode, which the runtime does not use;
the field is there so a policy says everything a session is built with.

Measured with ``python bench/threads.py`` (``runtime.load(dir).decode``; settings
interleaved, median of 7 rounds): the 150x150 seed decoder (latent 128 -> 3x150x150), ORT 1.31
CPU, a 2-core AMD EPYC with AVX-512 that other jobs share at times (``others``: the cores' worth
of CPU other processes took meanwhile, counting the busy-looping process "shared" adds; the script
now leaves that process out). A quiet moment::

    situation batch intra spin   ms/call img/CPU-s    img/s others
    alone         1     1   on       4.6     216.7    216.6   0.02
    alone         1     1  off       4.5     206.7    220.5   0.02
    alone         1   all   on       2.8     175.8    353.2   0.02
    alone         1   all  off       3.2     178.3    316.3   0.02
    alone        64     1   on     279.0     229.4    229.4   0.01
    alone        64     1  off     276.3     231.6    231.6   0.01
    alone        64   all   on     177.4     180.7    360.7   0.01
    alone        64   all  off     183.5     214.8    348.7   0.01
    shared        1     1   on       4.5     220.3    220.0   0.78
    shared        1     1  off       4.7     200.6    213.9   0.78
    shared        1   all   on       4.6     146.5    218.7   0.78
    shared        1   all  off       3.7     181.2    272.1   0.78
    shared       64     1   on     274.6     233.1    233.0   0.84
    shared       64     1  off     276.3     231.8    231.7   0.84
    shared       64   all   on     280.7     153.1    228.0   0.84
    shared       64   all  off     254.4     208.9    251.6   0.84

and a busy one, other jobs taking 1.1-1.4 of the 2 cores all along::

    situation batch intra spin   ms/call img/CPU-s    img/s others
    alone         1     1  off       4.8     224.3    207.4   1.12
    alone         1   all   on       8.2     120.6    121.6   1.12
    alone         1   all  off       5.0     199.5    198.6   1.12
    alone        64     1  off     360.2     230.3    177.7   1.14
    alone        64   all   on     457.8     149.8    139.8   1.14
    alone        64   all  off     287.9     222.9    222.3   1.14
    shared        1   all   on      12.5     109.6     80.0   1.44
    shared        1   all  off       7.8     197.9    128.9   1.44
    shared       64   all   on     634.5     129.1    100.9   1.34
    shared       64   all  off     396.1     226.6    161.6   1.34

All cores beat one thread on wall time whenever a core is free (1.5x at batch 64 when quiet).
Spinning, ORT's default, buys 14 % at batch 1 and 3 % at batch 64 on the quiet machine, and costs
10-24 % as soon as one other process runs, 1.3-2x on the busy machine, with fewer images per
CPU-second everywhere: a spinning thread holds a core someone else needs. Hence ``dedicated`` = all
cores spinning, for a host that is the caller's own (on a shared one, ``--spin off`` or
``--threads server``), and ``efficient`` = one thread, the most images per CPU-second.

The server, measured under load (``bench/serve_load.py``: 16 clients x 4 images a request, 12 s per
setting, the settings in turn, four rounds on different occasions, other jobs taking 0-80 % of a
core meanwhile), images per second::

    round   1 thread, no spin   all cores, no spin   all cores, spinning
    1       146                 152                  76
    2       108                 115                  53
    3       139                 175                  171
    4       187                 257                  230

All cores without spinning served the most in every round (4-37 % more than one thread: the
batcher's calls are large enough, 32 latents on average, to use both cores), and spinning cost
2-54 %, as the event loop and the clients need the cores between calls: hence ``server``. With many
models served at once each batcher's call runs its own thread pool; ``--threads efficient`` (or
1) keeps them from crowding each other.

OpenVINO (``backend="openvino"``) takes ``intra_op`` as its ``INFERENCE_NUM_THREADS``; it has no
spin-wait switch, so ``spin`` does not apply to it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Union

from core.errors import ConfigError

#: Spinning from the environment ("0" or "1") when the caller gives no ``spin``.
SPIN_ENV_VAR = "AGE_RUNTIME_SPIN"
#: More threads than this is a typo, not a machine.
MAX_THREADS = 1024


@dataclass(frozen=True)
class ThreadPolicy:
    """Threads a session is built with. ``intra_op`` 0 means the backend's default (ORT: one per
    physical core); ``spin`` None means the backend's default (ORT: on)."""

    name: str
    intra_op: int = 0
    inter_op: int = 1
    spin: bool | None = None

    def __post_init__(self) -> None:
        for field_name in ("intra_op", "inter_op"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_THREADS:
                raise ConfigError(f"threads: {field_name} must be an integer in 0..{MAX_THREADS} "
                                  f"(0: the backend's default), got {value!r}")
        if self.spin is not None and not isinstance(self.spin, bool):
            raise ConfigError(f"spin must be true, false or unset, got {self.spin!r}")

    def settings(self) -> str:
        intra = "all cores" if self.intra_op == 0 else str(self.intra_op)
        spin = "default" if self.spin is None else ("on" if self.spin else "off")
        return f"intra-op {intra}, inter-op {self.inter_op}, spinning {spin}"

    def describe(self) -> str:
        return f"threads {self.name} ({self.settings()})"


#: The named presets (see the module docstring for why each is what it is).
PRESETS: dict[str, ThreadPolicy] = {
    "dedicated": ThreadPolicy("dedicated", intra_op=0, inter_op=1, spin=True),
    "server": ThreadPolicy("server", intra_op=0, inter_op=1, spin=False),
    "efficient": ThreadPolicy("efficient", intra_op=1, inter_op=1, spin=False),
}
#: What the library and the two CLIs use; the server uses ``"server"``.
DEFAULT_PRESET = "dedicated"
SERVER_PRESET = "server"

#: What ``threads=`` accepts: a preset name, a number of intra-op threads, a policy, or None (the default).
Threads = Union[str, int, ThreadPolicy, None]
#: What ``spin=`` accepts: on/off, or None for the policy's (or ``$AGE_RUNTIME_SPIN``'s) choice.
Spin = Union[bool, str, None]

_ON = ("1", "on", "true", "yes")
_OFF = ("0", "off", "false", "no")

def parse_spin(spin: Spin, what: str = "spin") -> bool | None:
    """``spin`` as a bool (or None): True/False, or the strings on/off, 1/0, true/false, yes/no."""
    if spin is None or isinstance(spin, bool):
        return spin
    if isinstance(spin, str):
        value = spin.strip().lower()
        if value in _ON:
            return True
        if value in _OFF:
            return False
    raise ConfigError(f"{what} must be on or off (1/0, true/false), got {spin!r}")


def env_spin() -> bool | None:
    """``$AGE_RUNTIME_SPIN`` as a bool, or None when it is unset or empty."""
    value = os.environ.get(SPIN_ENV_VAR, "").strip()
    if not value:
        return None
    if value not in ("0", "1"):
        raise ConfigError(f"${SPIN_ENV_VAR}={value!r}: expected 0 or 1")
    return value == "1"


def resolve(threads: Threads = None, spin: Spin = None, preset: str = DEFAULT_PRESET) -> ThreadPolicy:
    """The policy for ``threads`` / ``spin`` in a context whose default preset is ``preset``.

    ``threads``: None (that preset), a preset name, an int or a digit string (that many intra-op
    threads, the rest from the preset), or a :class:`ThreadPolicy`. ``spin`` overrides the
    policy's spinning; without it ``$AGE_RUNTIME_SPIN`` does, when set. Bad values raise
    :class:`~core.errors.ConfigError` saying what is accepted.
    """
    base = PRESETS[preset]
    if threads is None:
        policy = base
    elif isinstance(threads, ThreadPolicy):
        policy = threads
    elif isinstance(threads, str) and threads.strip().lower() in PRESETS:
        policy = PRESETS[threads.strip().lower()]
    elif isinstance(threads, str) and threads.strip().isdigit():
        policy = _counted(base, int(threads.strip()))
    elif isinstance(threads, int) and not isinstance(threads, bool):
        policy = _counted(base, threads)
    else:
        raise ConfigError(f"threads must be {', '.join(PRESETS)} or a number of threads "
                          f"(0..{MAX_THREADS}, 0: one per core), got {threads!r}")
    chosen = parse_spin(spin)
    if chosen is None and not isinstance(threads, ThreadPolicy):  # an explicit policy says its own spinning
        chosen = env_spin()
    if chosen is not None and chosen != policy.spin:
        policy = dataclasses.replace(policy, spin=chosen)
    return policy


def _counted(base: ThreadPolicy, n: int) -> ThreadPolicy:
    if not 0 <= n <= MAX_THREADS:
        raise ConfigError(f"threads must be a number in 0..{MAX_THREADS} (0: one per core) or a preset "
                          f"({', '.join(PRESETS)}), got {n}")
    return dataclasses.replace(base, name=f"{base.name}, {n} intra-op", intra_op=n)


def ort_options(options: Any, policy: ThreadPolicy) -> Any:
    """Apply ``policy`` to an ``onnxruntime.SessionOptions`` (and return it)."""
    options.intra_op_num_threads = policy.intra_op
    options.inter_op_num_threads = policy.inter_op
    if policy.spin is not None:
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if policy.spin else "0")
    return options


def add_arguments(parser: Any, preset: str = DEFAULT_PRESET) -> None:
    """``--threads`` and ``--spin`` on a command line whose default preset is ``preset``."""
    parser.add_argument("--threads", default=None, metavar="PRESET|N",
                        help=f"thread policy: {', '.join(PRESETS)}, or a number of intra-op threads (0: one per "
                             f"core) (default {preset}: {PRESETS[preset].settings()})")
    parser.add_argument("--spin", default=None, choices=("on", "off"),
                        help=f"let idle onnxruntime threads spin-wait for work (default: the preset's, or "
                             f"${SPIN_ENV_VAR})")


def check_arguments(threads: Any, spin: Any, preset: str = DEFAULT_PRESET) -> ThreadPolicy:
    """The policy of ``--threads`` / ``--spin``; a bad value raises ConfigError naming the flag."""
    try:
        return resolve(threads, spin, preset)
    except ConfigError as exc:
        text = str(exc)
        raise ConfigError(text if text.startswith("$") else f"--{text}") from None
