"""The model repository: one subfolder of MODEL_DIR per exported checkpoint, named by the folder.

Every subfolder is loaded with :func:`runtime.load` (generator/decoder/video_generator plus an
optional encoder). A folder that fails to load for any reason (a clear ModelFileError, or a crash
a crafted file provokes: RecursionError, MemoryError, an onnxruntime error we did not foresee) is
skipped, logged in one line and listed with the reason under ``unavailable``, so one bad export
never takes the others down or stops start-up; a repository with nothing servable is an error.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from core import images as core_images
from core.errors import AgeError, ModelFileError

from .. import interpolation_media
from .. import threads as threads_policy
from ..session import GENERATOR_PARTS, GeneratorSession, load

log = logging.getLogger("runtime.serve")

#: Model names appear in URLs and metric labels: keep them plain.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass
class ModelEntry:
    name: str
    session: GeneratorSession
    ready: bool = False
    failed: str | None = None  # why the warm-up call failed, if it did

    def warm_up(self) -> None:
        """One real call per part (runs in a worker thread at startup); zero latents, so models
        without a prior warm up too."""
        self.session.generate(latents=np.zeros((1, *self.session.latent_shape), np.float32))
        if self.session.has_encoder:
            self.session.encode_latents(np.zeros((1, *self.session.input_image_shape), np.float32))

    def describe(self) -> dict[str, Any]:
        s = self.session
        parts = [_part_info(p) for p in s.parts]
        return {
            "name": self.name,
            "model": s.model,
            "generator_part": s.part,
            "parts": parts,
            "latent_dim": s.latent_dim,
            "latent_shape": list(s.latent_shape),
            "prior": s.prior,
            "encoder_kind": s.encoder_kind,
            "generates": s.can_generate,
            "reconstructs": s.can_reconstruct,
            "kind": "video" if s.is_video else "image",
            "image_shape": list(s.image_shape),
            "frames": s.frames,
            "value_range": list(s.value_range) if s.value_range is not None else None,
            "variations": s.can_vary,
            "interpolates": s.can_interpolate,
            "interpolation": s.interpolation_geometry,
            "formats": list(core_images.output_formats(s.is_video)),
            "interpolation_formats": list(interpolation_media.formats(s.is_video)),
            "step": _int_or_none(s.metadata.get("age.step")),
            "source_framework": s.metadata.get("age.source_framework"),
            "provider": s.provider,
            "backend": s.backend,
            "precision": s.precision,
            "ready": self.ready,
        }


def _part_info(part: Any) -> dict[str, Any]:
    def tensors(items: Any) -> list[dict[str, Any]]:
        return [{"name": t.name, "shape": list(t.shape), "kind": t.kind} for t in items]

    return {
        "part": part.name,
        "file": part.path.name,
        "inputs": tensors(part.inputs),
        "outputs": tensors(part.outputs),
        "value_range": list(part.value_range) if part.value_range is not None else None,
        # a part opens on its first call (the warm-up's): until then where it will run is not known
        "provider": part.choice.provider if part.opened else None,
        "backend": part.backend if part.opened else None,
    }


@contextmanager
def _muted(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(max(logging.WARNING, logger.getEffectiveLevel()))
    try:
        yield
    finally:
        logger.setLevel(level)


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


@dataclass
class Repository:
    root: Path
    models: dict[str, ModelEntry] = field(default_factory=dict)
    #: name -> reason, for subfolders that could not be served
    skipped: dict[str, str] = field(default_factory=dict)

    @classmethod
    def scan(cls, root: str | Path, providers: Any = None, precision: str = "fp32", threads: Any = None,
             spin: Any = None, backend: str = "onnxruntime") -> "Repository":
        """Load every model folder under ``root`` (``threads`` / ``spin``: :func:`runtime.threads.resolve`
        with the ``server`` preset as default)."""
        policy = threads_policy.resolve(threads, spin, threads_policy.SERVER_PRESET)
        root = Path(root)
        if not root.is_dir():
            raise ModelFileError(f"{root}: model repository is not a directory")
        loose = [p.name for p in root.glob("*.onnx")]
        if loose:
            hint = ""
            if any(Path(n).stem in GENERATOR_PARTS for n in loose):
                hint = f"; it looks like one exported model: pass its parent directory, or move it into {root}/<name>/"
            log.warning("%s: ignoring loose files %s (models live in subfolders)%s", root, ", ".join(sorted(loose)), hint)
        repo = cls(root)
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            name = folder.name
            if not NAME_RE.match(name):
                repo.skip(name, f"{folder}: folder name is not a valid model name (letters, digits, '.', '_', '-')")
                continue
            try:
                with _muted("runtime"):  # runtime.load logs its own provider line; ours below says more
                    session = load(folder, providers, precision, backend=backend, threads=policy)
                    for part in session.parts:  # a server opens every part now: one the backend refuses
                        part.open()             # skips its folder here, instead of failing requests later
            except AgeError as exc:
                repo.skip(name, " ".join(str(exc).split()))
                continue
            except Exception as exc:  # noqa: BLE001 - a crafted folder must not stop the server
                log.debug("model %s: loading failed", name, exc_info=True)
                detail = " ".join(str(exc).split())[:300]
                repo.skip(name, f"{folder}: could not be loaded ({type(exc).__name__}{': ' + detail if detail else ''})")
                continue
            repo.models[name] = ModelEntry(name, session)
            log.info(
                "model %s: %s/%s latent %s prior %s %s %s%s, %s on %s (%s)",
                name, session.model, session.part, "x".join(map(str, session.latent_shape)), session.prior,
                "video" if session.is_video else "image", "x".join(map(str, session.image_shape)),
                f" +{session.encoder_kind} encoder" if session.has_encoder else "",
                session.precision, session.provider, session.provider_reason,
            )
        if not repo.models:
            reasons = "; ".join(f"{k}: {v}" for k, v in repo.skipped.items()) or "it has no subfolders"
            raise ModelFileError(f"{root}: no servable model ({reasons})")
        return repo

    def skip(self, name: str, reason: str) -> None:
        self.skipped[name] = reason
        log.warning("skipping model %s: %s", name, reason)

    def describe(self) -> dict[str, Any]:
        return {
            "models": [entry.describe() for entry in self.models.values()],
            "unavailable": [{"name": k, "error": v} for k, v in self.skipped.items()]
            + [{"name": e.name, "error": e.failed} for e in self.models.values() if e.failed],
        }
