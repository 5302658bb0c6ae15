"""The FastAPI application: routes, lifespan (batchers, warm-up, drain) and error rendering.

``create_app(repository_dir, settings)`` loads and validates every model synchronously (so a
bad repository fails before the server binds), and returns an app whose lifespan starts one
:class:`~runtime.server.batcher.Batcher` per model, warms each model up with one call in the
background (``/readyz`` says 503 until that is done) and, on shutdown, drains the batchers.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import numpy as np
from fastapi import FastAPI, Request
from PIL import Image as PILImage
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, PlainTextResponse, Response

from core import images as core_images
from core.images import ImageTooLarge
from core.errors import DataError, ModelFileError

from .. import interpolation_media
from ..session import GeneratorSession, UnsupportedOperation

from . import schemas
from .batcher import Batcher, BatcherClosed, QueueFull
from .disconnect import DisconnectMiddleware
from .errors import ApiError, error_body, error_response
from .limits import BodyLimitMiddleware
from .metrics import CONTENT_TYPE, MetricsMiddleware, ServerMetrics
from .repository import ModelEntry, Repository
from .settings import Settings

log = logging.getLogger("runtime.serve")

#: Seconds a client is told to wait after a 503 for a full queue.
RETRY_AFTER_S = 1
_MODEL_PATH = re.compile(r"^/v1/models/([^/]+)(?:/(generate|variations|reconstruct|interpolate))?/?$")


class ServerState:
    """Everything the routes share; lives on ``app.state.server``."""

    def __init__(self, repository: Repository, settings: Settings):
        self.repository = repository
        self.settings = settings
        self.metrics = ServerMetrics()
        self.batchers: dict[str, Batcher] = {}
        self.executor: ThreadPoolExecutor | None = None
        self.warmed = False
        self.draining = False
        for name in repository.models:
            self.metrics.ready.set(0, model=name)

    @property
    def models(self) -> dict[str, ModelEntry]:
        return self.repository.models

    def classify(self, path: str) -> tuple[str, str]:
        """(model, endpoint) metric labels for a request path (bounded: unknown names collapse)."""
        m = _MODEL_PATH.match(path)
        if m:
            name = m.group(1) if m.group(1) in self.models else "_unknown"
            return name, m.group(2) or "model"
        if path.rstrip("/") == "/v1/models":
            return "", "models"
        if path in ("/healthz", "/readyz", "/metrics"):
            return "", path[1:]
        return "", "other"

    def lookup(self, name: str) -> ModelEntry:
        entry = self.models.get(name)
        if entry is None:
            known = ", ".join(self.models) or "(none)"
            raise ApiError(404, f"unknown model {name!r}; this server has: {known}", "name")
        if entry.failed:
            raise ApiError(503, f"model {name!r} failed its warm-up call: {entry.failed}", "name")
        if self.draining:
            raise ApiError(503, "the server is shutting down")
        return entry

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=max(2, len(self.models)), thread_name_prefix="age-infer")
        s = self.settings
        for name, entry in self.models.items():
            session = entry.session

            def run(z: np.ndarray, batch_size: int, session=session) -> np.ndarray:
                return session.generate(latents=z, batch_size=batch_size)

            # never coalesce more latents than one session call may produce (GeneratorSession.max_images)
            max_batch = min(s.max_batch, session.max_images)
            batcher = Batcher(name, run, self.executor, self.metrics, max_batch, s.max_delay_s, s.max_queue)
            batcher.start()
            self.batchers[name] = batcher

    async def warm_up(self) -> None:
        loop = asyncio.get_running_loop()
        for name, entry in self.models.items():
            start = time.perf_counter()
            try:
                await loop.run_in_executor(self.executor, entry.warm_up)
            except Exception as exc:  # noqa: BLE001 - one broken model must not stop the others
                entry.failed = " ".join(str(exc).split()) or type(exc).__name__
                log.error("model %s: warm-up failed: %s", name, entry.failed)
                continue
            entry.ready = True
            self.metrics.ready.set(1, model=name)
            log.info("model %s ready (warm-up %.3f s)", name, time.perf_counter() - start)
        self.warmed = True
        ready = sum(e.ready for e in self.models.values())
        log.info("%d of %d models ready", ready, len(self.models))

    async def stop(self) -> None:
        self.draining = True
        for batcher in self.batchers.values():
            await batcher.close()
        if self.executor is not None:
            self.executor.shutdown(wait=True)
        log.info("batchers drained; shut down")

    # -- serving ---------------------------------------------------------------------------

    async def serve(self, name: str, work: Callable[[ModelEntry], Awaitable[Response]]) -> Response:
        entry = self.lookup(name)
        timeout = self.settings.request_timeout_s
        try:
            async with asyncio.timeout(timeout):
                return await work(entry)
        except TimeoutError:
            raise ApiError(504, f"request took longer than {timeout:g} s (--request-timeout-s)") from None
        except QueueFull:
            depth = self.batchers[name].depth
            raise ApiError(
                503, f"model {name!r} is busy: {depth} requests already queued (--max-queue); retry shortly",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            ) from None
        except BatcherClosed:
            raise ApiError(503, "the server is shutting down") from None
        except ImageTooLarge as exc:  # from the header alone: nothing was decoded
            raise ApiError(413, f"{exc} (--max-image-pixels)", "image") from None
        except DataError as exc:
            raise ApiError(422, str(exc), "image") from None
        except UnsupportedOperation as exc:  # the model cannot do this at all: not a bad value, a conflict
            raise ApiError(409, str(exc), "name") from None
        except ModelFileError as exc:
            log.error("model %s: %s", name, exc)
            raise ApiError(500, f"model {name!r} failed: {exc}") from None

    async def images_response(self, entry: ModelEntry, latents: np.ndarray, fmt: str, nrow: int | None,
                              fps: float, seed: int | None, single: bool = False,
                              encode: Callable[[np.ndarray], bytes] | None = None,
                              headers: dict[str, str] | None = None) -> Response:
        """Decode ``latents`` through the model's batcher and encode the images as ``fmt``: a grid,
        or with ``single`` one image as it is (a PNG the size of the model's output, no padding), or
        with ``encode`` however that function writes them (an interpolation)."""
        # one shape per batcher, whichever way the latents came (flat JSON rows or an encoder's output)
        latents = np.asarray(latents, dtype=np.float32).reshape(len(latents), *entry.session.latent_shape)
        images = await self.batchers[entry.name].submit(latents)
        if encode is not None:
            body = await asyncio.to_thread(encode, images)
        elif single and fmt == "png" and images.ndim == 4:
            body = await asyncio.to_thread(_png, images[0])
        else:
            body = await asyncio.to_thread(core_images.encode, images, fmt, nrow, fps)
        headers = {
            "X-AGE-Model": entry.name,
            "X-AGE-Shape": ",".join(map(str, images.shape)),
            "Content-Disposition": f'inline; filename="{entry.name}.{fmt}"',
            **(headers or {}),
        }
        if seed is not None:
            headers["X-AGE-Seed"] = str(seed)
        return Response(body, media_type=core_images.MEDIA_TYPES[fmt], headers=headers)


def _interpolation_latents(session: GeneratorSession, images: tuple[tuple[str, bytes], ...], steps: int,
                           max_pixels: int) -> np.ndarray:
    """Invert each uploaded picture (errors name its form field), then the path between the two latents."""
    codes = []
    for field, data in images:
        try:
            codes.append(session.invert(data, max_pixels, name=field))
        except ImageTooLarge as exc:  # from the header alone: nothing was decoded
            raise ApiError(413, f"{exc} (--max-image-pixels)", field) from None
        except DataError as exc:
            raise ApiError(422, str(exc), field) from None
        except ValueError as exc:
            raise ApiError(422, f"{field}: {exc}", field) from None
    return session.interpolation_path(codes[0], codes[1], steps)


def _png(image: np.ndarray) -> bytes:
    """One uint8 (H, W, C) image as a PNG of exactly that size."""
    buf = io.BytesIO()
    PILImage.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buf, format="PNG")
    return buf.getvalue()


# The routes read their bodies themselves (size limits, field-named errors); describe them here.
_GENERATE_DOC = {"requestBody": {"required": True, "content": {"application/json": {"schema": schemas.GenerateBody.model_json_schema()}}}}
_VARIATIONS_DOC = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object",
    "required": ["image"],
    "properties": {
        "image": {"type": "string", "format": "binary", "description": "the picture to vary"},
        "n": {"type": "integer", "default": schemas.DEFAULT_VARIATIONS_N, "minimum": 1, "description": schemas.FIELD_DOCS["n"]},
        "scale": {"type": "number", "default": schemas.DEFAULT_SCALE, "minimum": schemas.SCALE_RANGE[0],
                  "maximum": schemas.SCALE_RANGE[1], "description": schemas.FIELD_DOCS["scale"]},
        "seed": {"type": "integer", "minimum": 0, "maximum": schemas.MAX_SEED, "description": schemas.FIELD_DOCS["seed"]},
        "format": {"type": "string", "enum": list(schemas.FORMATS), "description": schemas.FIELD_DOCS["format"]},
        "nrow": {"type": "integer", "minimum": 1, "description": schemas.FIELD_DOCS["nrow"]},
        "fps": {"type": "number", "default": schemas.DEFAULT_FPS, "minimum": schemas.FPS_LOW, "maximum": schemas.FPS_HIGH,
                "description": schemas.FIELD_DOCS["fps"]},
    },
}}}}}
_RECONSTRUCT_DOC = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object",
    "required": ["image"],
    "properties": {
        "image": {"type": "string", "format": "binary", "description": "the picture to reconstruct"},
        "format": {"type": "string", "enum": list(schemas.FORMATS), "description": schemas.FIELD_DOCS["format"]},
        "fps": {"type": "number", "default": schemas.DEFAULT_FPS, "minimum": schemas.FPS_LOW, "maximum": schemas.FPS_HIGH,
                "description": schemas.FIELD_DOCS["fps"]},
    },
}}}}}
_INTERPOLATE_DOC = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object",
    "required": list(schemas.INTERPOLATE_IMAGES),
    "properties": {
        "image_a": {"type": "string", "format": "binary", "description": "the picture the interpolation starts from"},
        "image_b": {"type": "string", "format": "binary", "description": "the picture it ends at"},
        "steps": {"type": "integer", "default": schemas.DEFAULT_STEPS, "minimum": schemas.MIN_STEPS,
                  "description": schemas.FIELD_DOCS["steps"]},
        "format": {"type": "string", "enum": list(schemas.FORMATS), "description": schemas.FIELD_DOCS["interpolation_format"]},
        "nrow": {"type": "integer", "minimum": 1, "description": "steps per row of a png strip or video grid, 1..steps "
                 "(default: all in one row)"},
        "fps": {"type": "number", "default": schemas.DEFAULT_FPS, "minimum": schemas.FPS_LOW, "maximum": schemas.FPS_HIGH,
                "description": schemas.FIELD_DOCS["fps"]},
    },
}}}}}
_IMAGE_RESPONSES: dict[int | str, dict[str, Any]] = {200: {
    "description": "PNG grid, GIF grid animation (video models) or .npy uint8 array",
    "content": {media: {} for media in core_images.MEDIA_TYPES.values()},
}}


_INTERPOLATE_RESPONSES: dict[int | str, dict[str, Any]] = {200: {
    "description": "image models: a PNG strip of the steps, a GIF/MP4 with one step per frame, or a .npy uint8 array "
                   "(steps, H, W, C); video models: the step videos side by side as GIF/MP4, or .npy (steps, T, H, W, C)",
    "content": {media: {} for media in core_images.MEDIA_TYPES.values()},
}}


def create_app(repository_dir: str | Path | None = None, settings: Settings | None = None,
               *, repository: Repository | None = None) -> FastAPI:
    """The app serving every model in ``repository_dir`` (or an already scanned ``repository``)."""
    settings = settings or Settings()
    if repository is None:
        if repository_dir is None:
            raise TypeError("create_app: give repository_dir or repository")
        repository = Repository.scan(repository_dir, settings.provider, settings.precision, settings.threads,
                                     settings.spin, settings.backend)
    state = ServerState(repository, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.start()
        warm = asyncio.create_task(state.warm_up(), name="warm-up")
        try:
            yield
        finally:
            if not warm.done():
                warm.cancel()
            await asyncio.gather(warm, return_exceptions=True)
            await state.stop()

    app = FastAPI(
        title="A.G.E. generator server",
        summary="Images from exported A.G.E. generators (onnxruntime)",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.server = state
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(DisconnectMiddleware)  # raises ClientGone for the metrics middleware
    app.add_middleware(MetricsMiddleware, metrics=state.metrics, classify=state.classify)  # outermost
    _install_error_handlers(app)

    # -- probes and metadata ------------------------------------------------------------

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        models = {
            name: "ready" if e.ready else (f"failed: {e.failed}" if e.failed else "warming up")
            for name, e in state.models.items()
        }
        ok = state.warmed and not state.draining and all(e.ready for e in state.models.values())
        return JSONResponse({"ready": ok, "models": models}, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(state.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return state.repository.describe()

    @app.get("/v1/models/{name}")
    async def describe_model(name: str) -> dict[str, Any]:
        entry = state.models.get(name)
        if entry is None:
            state.lookup(name)  # raises the 404
        return entry.describe()

    # -- inference ----------------------------------------------------------------------

    @app.post("/v1/models/{name}/generate", openapi_extra=_GENERATE_DOC, responses=_IMAGE_RESPONSES)
    async def generate(name: str, request: Request) -> Response:
        async def work(entry: ModelEntry) -> Response:
            raw = await request.body()
            job = schemas.parse_generate(raw, entry.session, name, settings.max_n)
            return await state.images_response(entry, job.latents, job.format, job.nrow, job.fps, job.seed)

        return await state.serve(name, work)

    async def image_form(request: Request, entry: ModelEntry, purpose: str, fields: tuple[str, ...],
                         parse: Callable[[Any], Awaitable[Any]], max_files: int = 1) -> Any:
        """The multipart form of an image endpoint, parsed by ``parse`` (``max_files`` uploads, bounded parts)."""
        session = entry.session
        if not session.has_encoder:
            raise ApiError(
                404, f"model {entry.name!r} has no encoder.onnx next to {session.path.name}; "
                f"{purpose} the encoder part (export a model with an encoder)", "name",
            )
        content_type = request.headers.get("content-type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            raise ApiError(415, "send multipart/form-data with the picture in field 'image' "
                           "(curl -F image=@face.png)", "image")
        form = await request.form(max_files=max_files, max_fields=len(fields), max_part_size=settings.max_body_bytes)
        try:
            return await parse(form)
        finally:
            await form.close()

    @app.post("/v1/models/{name}/variations", openapi_extra=_VARIATIONS_DOC, responses=_IMAGE_RESPONSES)
    async def variations(name: str, request: Request) -> Response:
        async def work(entry: ModelEntry) -> Response:
            session = entry.session
            if session.has_encoder and not session.can_vary:
                raise ApiError(409, f"model {name!r} has a {session.encoder_kind} encoder: it gives one latent z, not a "
                               f"posterior (mu, logvar), so it has no variations; use POST /v1/models/{name}/reconstruct",
                               "name")
            req = await image_form(request, entry, "variations need", schemas.VARIATION_FIELDS,
                                   lambda form: schemas.parse_variations(form, session, name, settings.max_n))
            try:
                latents = await asyncio.to_thread(session.variation_latents, req.image, req.n, req.scale, req.seed,
                                                  settings.max_image_pixels)
            except ValueError as exc:
                raise ApiError(422, str(exc), "image") from None
            return await state.images_response(entry, latents, req.format, req.nrow, req.fps, req.seed)

        return await state.serve(name, work)

    @app.post("/v1/models/{name}/reconstruct", openapi_extra=_RECONSTRUCT_DOC, responses=_IMAGE_RESPONSES)
    async def reconstruct(name: str, request: Request) -> Response:
        """Encode the uploaded picture (the posterior mean, or z) and decode it: one image back."""
        async def work(entry: ModelEntry) -> Response:
            session = entry.session
            req = await image_form(request, entry, "reconstruction needs", schemas.RECONSTRUCT_FIELDS,
                                   lambda form: schemas.parse_reconstruct(form, session, name))
            try:
                latents = await asyncio.to_thread(session.reconstruction_latents, req.image, settings.max_image_pixels)
            except ValueError as exc:
                raise ApiError(422, str(exc), "image") from None
            return await state.images_response(entry, latents, req.format, None, req.fps, None, single=True)

        return await state.serve(name, work)

    @app.post("/v1/models/{name}/interpolate", openapi_extra=_INTERPOLATE_DOC, responses=_INTERPOLATE_RESPONSES)
    async def interpolate(name: str, request: Request) -> Response:
        """Invert the two uploaded pictures and decode ``steps`` latents from one to the other
        (linear, or along the great circle for a ``sphere`` prior): a png strip, a gif/mp4, or npy."""
        async def work(entry: ModelEntry) -> Response:
            session = entry.session
            if not session.can_interpolate:  # before reading the body: nothing in it can change this
                raise UnsupportedOperation(
                    f"model {name!r} has no encoder (no encoder.onnx next to {session.path.name}): pictures cannot be "
                    "inverted to latents, so it cannot interpolate between them; export a model with an encoder")
            req = await image_form(request, entry, "interpolation needs", schemas.INTERPOLATE_FIELDS,
                                   lambda form: schemas.parse_interpolate(form, session, name, settings.max_n),
                                   max_files=len(schemas.INTERPOLATE_IMAGES))
            latents = await asyncio.to_thread(_interpolation_latents, session, (("image_a", req.image_a),
                                              ("image_b", req.image_b)), req.steps, settings.max_image_pixels)
            log.debug("model %s: interpolating %d steps (%s)", name, req.steps, session.interpolation_geometry)

            def encode(images: np.ndarray) -> bytes:
                return interpolation_media.encode(images, req.format, session.is_video, req.nrow, req.fps)

            return await state.images_response(entry, latents, req.format, req.nrow, req.fps, None, encode=encode,
                                               headers={"X-AGE-Interpolation": session.interpolation_geometry})

        return await state.serve(name, work)

    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}"
        return JSONResponse(error_body(message), status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "path", "query", "header")]
        field = loc[0] if loc else None
        return JSONResponse(error_body(f"{'.'.join(loc) or 'request'}: {err['msg']}", field), status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body(f"internal error ({type(exc).__name__})"), status_code=500)
