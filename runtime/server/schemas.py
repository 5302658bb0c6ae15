"""Request parsing and validation: every problem becomes a 422 naming the field at fault."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from core import images as core_images

from .. import interpolation_media
from core.interpolation import DEFAULT_STEPS, MIN_STEPS
from ..session import MAX_LATENT_ABS, MAX_SEED, SCALE_RANGE, GeneratorSession, check_scale
from .errors import ApiError, bad_request

#: the keys of :data:`core.images.MEDIA_TYPES` (a Literal must be spelled out for the JSON schema)
Format = Literal["png", "gif", "mp4", "npy"]
FORMATS = get_args(Format)
#: Seeds drawn for requests that give none (reported back in the X-AGE-Seed header); MAX_SEED is 2**63 - 1.
SEED_BITS = 63
DEFAULT_VARIATIONS_N = 10
DEFAULT_SCALE = 0.01
DEFAULT_FPS = 8.0


FPS_LOW, FPS_HIGH = core_images.FPS_RANGE

#: What the request schema (``/openapi.json``, ``/docs``) says about each field's range; the
#: checks themselves are the functions below (``core.images.check_layout`` for nrow and fps).
FIELD_DOCS = {
    "n": "number of images, 1..--max-n (and at most what the model's output size allows)",
    "seed": f"noise seed, 0..{MAX_SEED}; absent: a fresh seed, reported in X-AGE-Seed",
    "latents": f"explicit latents instead of n/seed: 1..--max-n rows of latent_dim numbers within +-{MAX_LATENT_ABS:g} "
               "(a spatial latent flattened in C order); the only way to decode with a model whose prior is 'none'",
    "format": "png | npy (image models), gif | mp4 | npy (video models); default png / gif",
    "nrow": "images per grid row, 1..n (default: a square grid)",
    "fps": f"frames per second of a gif/mp4, {FPS_LOW:g}..{FPS_HIGH:g}",
    "scale": f"variation strength, a fraction of the posterior variance, {SCALE_RANGE[0]:g}..{SCALE_RANGE[1]:g}",
    "steps": f"interpolation steps, both pictures included, {MIN_STEPS}..--max-n (and at most what the model's "
             "output size allows)",
    "interpolation_format": "png (a one-row strip) | gif | mp4 (one step per frame) | npy for image models, png by "
                            "default; gif | mp4 | npy for video models (the step videos side by side), gif by default",
}


class GenerateBody(BaseModel):
    """``POST /v1/models/{name}/generate`` JSON body."""

    model_config = ConfigDict(extra="forbid")

    n: StrictInt | None = Field(None, description=FIELD_DOCS["n"])
    seed: StrictInt | None = Field(None, description=FIELD_DOCS["seed"])
    latents: list[list[float]] | None = Field(None, description=FIELD_DOCS["latents"])
    format: Format | None = Field(None, description=FIELD_DOCS["format"])
    nrow: StrictInt | None = Field(None, description=FIELD_DOCS["nrow"])
    fps: float = Field(DEFAULT_FPS, description=FIELD_DOCS["fps"])


@dataclass
class Job:
    """A validated request: latents to decode and how to encode the images."""

    latents: np.ndarray
    seed: int | None
    format: str
    nrow: int | None
    fps: float


def _first_error(exc: ValidationError) -> ApiError:
    err = exc.errors(include_url=False)[0]
    loc = [str(p) for p in err.get("loc", ())]
    if err.get("type") == "json_invalid":
        return bad_request(f"body is not valid JSON ({err.get('ctx', {}).get('error', err['msg'])})", "body")
    if err.get("type") == "extra_forbidden":
        return bad_request(f"{loc[0]}: unknown field", loc[0])
    field = ".".join(loc) if loc else "body"
    if not loc and err.get("type") == "model_type":
        return bad_request("body must be a JSON object", "body")
    return bad_request(f"{field}: {err['msg']}", loc[0] if loc else "body")


def parse_generate(raw: bytes, session: GeneratorSession, name: str, max_n: int) -> Job:
    try:
        body = GenerateBody.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise _first_error(exc) from None
    fmt = check_format(body.format, session, name)
    if body.latents is not None:
        if body.seed is not None:
            raise bad_request("give either latents or seed, not both", "seed")
        z = check_latents(body.latents, session, name, max_n)
        if body.n is not None and body.n != len(z):
            raise bad_request(f"n={body.n} but {len(z)} latents were given", "n")
        check_layout(len(z), body.nrow, body.fps)
        return Job(z, None, fmt, body.nrow, body.fps)
    if not session.can_generate:
        raise cannot_generate(session, name)
    if body.n is None:
        raise bad_request("give n (the number of images) or latents", "n")
    n = check_n(body.n, max_n, session)
    check_layout(n, body.nrow, body.fps)
    seed = check_seed(body.seed)
    return Job(session.sample_latents(n, seed), seed, fmt, body.nrow, body.fps)


def cannot_generate(session: GeneratorSession, name: str) -> ApiError:
    """409: the model has no prior (an autoencoder), so seeds mean nothing to it."""
    what = f"POST /v1/models/{name}/reconstruct" if session.can_reconstruct else "explicit latents"
    return ApiError(409, f"model {name!r} is an autoencoder and only reconstructs: it has no prior to generate "
                    f"from seeds with (age.prior is 'none'); use {what}", "name")


def check_n(n: int, max_n: int, session: GeneratorSession, field: str = "n") -> int:
    """1..max_n, and no more than the model's output size allows (``session.max_images``)."""
    if not 1 <= n <= max_n:
        raise bad_request(f"{field} must be between 1 and {max_n} (--max-n), got {n}", field)
    try:
        return session.check_n(n, field)
    except ValueError as exc:
        raise bad_request(str(exc), field) from None


def check_layout(n: int, nrow: int | None, fps: float) -> None:
    """``core.images.check_layout``, one field at a time so that the 422 names the right one."""
    for field, kwargs in (("nrow", {"nrow": nrow}), ("fps", {"fps": fps})):
        try:
            core_images.check_layout(n, **kwargs)
        except ValueError as exc:
            raise bad_request(str(exc), field) from None


def check_seed(seed: int | None) -> int:
    """None draws a fresh seed (reported back); otherwise 0 <= seed < 2**63."""
    if seed is None:
        return secrets.randbits(SEED_BITS)
    if not 0 <= seed <= MAX_SEED:
        raise bad_request(f"seed must be between 0 and {MAX_SEED}, got {seed}", "seed")
    return seed


def check_format(fmt: str | None, session: GeneratorSession, name: str) -> str:
    if fmt is None:
        return core_images.output_formats(session.is_video)[0]
    why = core_images.format_refusal(fmt, session.is_video)
    if why is not None:
        raise bad_request(f"format: model {name!r} {why}", "format")
    return fmt


def check_latents(rows: list[list[float]], session: GeneratorSession, name: str, max_n: int) -> np.ndarray:
    check_n(len(rows), max_n, session, "latents")
    dim = session.latent_dim
    for i, row in enumerate(rows):
        if len(row) != dim:
            raise bad_request(f"latents: row {i} has {len(row)} values; model {name!r} takes {dim}", "latents")
    z = np.asarray(rows, dtype=np.float64)
    if not np.all(np.isfinite(z)) or np.abs(z).max() > MAX_LATENT_ABS:
        raise bad_request(f"latents: values must be finite numbers within +-{MAX_LATENT_ABS:g}", "latents")
    return z.astype(np.float32)


# --------------------------------------------------------------------------- image forms

VARIATION_FIELDS = ("image", "n", "scale", "seed", "format", "nrow", "fps")
RECONSTRUCT_FIELDS = ("image", "format", "fps")
INTERPOLATE_FIELDS = ("image_a", "image_b", "steps", "format", "nrow", "fps")
INTERPOLATE_IMAGES = ("image_a", "image_b")


@dataclass
class VariationsForm:
    image: bytes
    n: int
    scale: float
    seed: int
    format: str
    nrow: int | None
    fps: float


def _form_number(form: Any, field: str, default: Any, parse: type, what: str) -> Any:
    """A multipart form field parsed with ``parse`` (int or float); ``default`` when absent or blank."""
    text = form.get(field)
    if text is None or (isinstance(text, str) and not text.strip()):
        return default
    if not isinstance(text, str):
        raise bad_request(f"{field}: expected a form value, got a file", field)
    try:
        return parse(text.strip())
    except ValueError:
        raise bad_request(f"{field}: not {what}: {text[:40]!r}", field) from None


def _form_int(form: Any, field: str, default: int | None) -> int | None:
    return _form_number(form, field, default, int, "an integer")


def _form_float(form: Any, field: str, default: float) -> float:
    return _form_number(form, field, default, float, "a number")


@dataclass
class ReconstructForm:
    image: bytes
    format: str
    fps: float


def _check_fields(form: Any, allowed: tuple[str, ...]) -> Any:
    """Refuse unknown fields; returns the ``image`` upload."""
    _refuse_unknown(form, allowed)
    return _upload(form, "image")


def _refuse_unknown(form: Any, allowed: tuple[str, ...]) -> None:
    for key in form.keys():
        if key not in allowed:
            raise bad_request(f"{key}: unknown form field (expected {', '.join(allowed)})", key)


def _upload(form: Any, field: str) -> Any:
    """The file uploaded as ``field``: 422 naming it when it is missing or a plain value."""
    upload = form.get(field)
    if upload is None:
        raise bad_request(f"{field}: missing; upload the picture as multipart form field '{field}'", field)
    if isinstance(upload, str) or not hasattr(upload, "read"):
        raise bad_request(f"{field}: expected a file upload (curl -F {field}=@face.png), got a plain value", field)
    return upload


def _form_format(form: Any, session: GeneratorSession, name: str) -> str:
    fmt_text = form.get("format")
    return check_format(fmt_text.strip() if isinstance(fmt_text, str) and fmt_text.strip() else None, session, name)


async def parse_reconstruct(form: Any, session: GeneratorSession, name: str) -> ReconstructForm:
    upload = _check_fields(form, RECONSTRUCT_FIELDS)
    fmt = _form_format(form, session, name)
    fps = _form_float(form, "fps", DEFAULT_FPS)
    check_layout(1, None, fps)
    return ReconstructForm(await upload.read(), fmt, fps)


async def parse_variations(form: Any, session: GeneratorSession, name: str, max_n: int) -> VariationsForm:
    upload = _check_fields(form, VARIATION_FIELDS)
    n = check_n(_form_int(form, "n", DEFAULT_VARIATIONS_N), max_n, session)  # type: ignore[arg-type]
    try:
        scale = check_scale(_form_float(form, "scale", DEFAULT_SCALE))
    except ValueError as exc:
        raise bad_request(str(exc), "scale") from None
    seed = check_seed(_form_int(form, "seed", None))
    fmt = _form_format(form, session, name)
    nrow = _form_int(form, "nrow", None)
    fps = _form_float(form, "fps", DEFAULT_FPS)
    check_layout(n, nrow, fps)
    data = await upload.read()
    return VariationsForm(data, n, scale, seed, fmt, nrow, fps)


@dataclass
class InterpolateForm:
    image_a: bytes
    image_b: bytes
    steps: int
    format: str
    nrow: int | None
    fps: float


def check_steps(steps: int, max_n: int, session: GeneratorSession) -> int:
    """2..max_n, and no more than the model's output size allows (``session.max_images``)."""
    if not MIN_STEPS <= steps <= max(MIN_STEPS, max_n):
        raise bad_request(f"steps must be between {MIN_STEPS} and {max_n} (--max-n), got {steps}", "steps")
    try:
        return session.check_steps(steps)
    except ValueError as exc:
        raise bad_request(str(exc), "steps") from None


async def parse_interpolate(form: Any, session: GeneratorSession, name: str, max_n: int) -> InterpolateForm:
    """The interpolate form: every value checked (422 naming the field) before an image is read."""
    _refuse_unknown(form, INTERPOLATE_FIELDS)
    uploads = [_upload(form, field) for field in INTERPOLATE_IMAGES]
    steps = check_steps(_form_int(form, "steps", DEFAULT_STEPS), max_n, session)  # type: ignore[arg-type]
    fmt_text = form.get("format")
    fmt = fmt_text.strip() if isinstance(fmt_text, str) and fmt_text.strip() else None
    if fmt is None:
        fmt = interpolation_media.formats(session.is_video)[0]
    elif why := interpolation_media.format_refusal(fmt, session.is_video):
        raise bad_request(f"format: model {name!r} {why}", "format")
    nrow = _form_int(form, "nrow", None)
    fps = _form_float(form, "fps", DEFAULT_FPS)
    check_layout(steps, nrow, fps)
    if why := interpolation_media.layout_refusal(fmt, session.is_video, steps, nrow):
        raise bad_request(why, "nrow")
    image_a, image_b = [await upload.read() for upload in uploads]
    return InterpolateForm(image_a, image_b, steps, fmt, nrow, fps)
