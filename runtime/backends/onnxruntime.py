"""The onnxruntime backend: the default, and the only one that runs on a GPU.

Provider choice (CUDA only when it really loads) is :mod:`runtime.providers`' job; this module
only wraps the session it makes in the :class:`runtime.backends.Runner` shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import providers
from ..providers import ProviderChoice


class OrtRunner:
    """An ``onnxruntime.InferenceSession`` (thread-safe for ``run``, as ORT documents)."""

    backend = "onnxruntime"

    def __init__(self, session: Any, choice: ProviderChoice):
        self.session = session
        self.choice = choice

    def inputs(self) -> Sequence[Any]:
        return self.session.get_inputs()

    def outputs(self) -> Sequence[Any]:
        return self.session.get_outputs()

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, feeds)


def open_runner(path: Path, blob: bytes, options: Any, has_external_data: bool = False,
                names: Sequence[str] = ()) -> OrtRunner:
    """A session for ``blob``; external data resolves against the model's own folder (already checked).
    ``names`` is unused: onnxruntime reports the graph's own input and output names."""
    # looked up on the module, so tests can watch every session the runtime creates
    session, choice = providers.create_session(blob, options.providers, external_data_dir=path.parent.resolve(),
                                               threads=options.threads)
    return OrtRunner(session, choice)
