"""Inversion and interpolation: the math (core.interpolation), the session, the CLI and the server.

Toy parts are built with ``onnx.helper`` (no framework needed), one folder per kind of model:

* ``vae``: prior ``normal``, a Gaussian encoder ``x -> Flatten -> MatMul -> mu, logvar``;
* ``sphere_code``: prior ``sphere``, a deterministic encoder that normalises its code (``LpNormalization``),
  as the A.G.E. encoder does;
* ``sphere_raw`` / ``sphere_gauss``: prior ``sphere`` with encoders that do not normalise
  (deterministic / Gaussian): inversion must;
* ``ae`` / ``ae_sphere``: a conv autoencoder with a ``(2, 4, 4)`` feature-map latent, priors
  ``none`` and ``sphere``;
* ``gan``: prior ``normal``, a generator and no encoder;
* ``clips``: a video generator ``z -> (3 frames, 3, 8, 8)`` with a deterministic encoder.

Every flat generator is ``z (batch, 6) -> MatMul -> Reshape -> Sigmoid``.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import runtime
from core import images as core_images
from runtime import generate as cli
from core import interpolation as interp
from runtime import priors

pytestmark = pytest.mark.serving

SIZE = 8
FLAT = 6
SPATIAL = (2, 4, 4)
FRAMES = 3
PIXELS = 3 * SIZE * SIZE


# --------------------------------------------------------------------------- building models


def facts(prior: str, encoder_kind: str) -> dict[str, str]:
    return {"prior": prior, "encoder_kind": encoder_kind, "reconstructs": "false" if encoder_kind == "none" else "true"}


def save_part(proto, folder: Path, part: str, inputs: list, outputs: list, meta_facts: dict, model: str) -> None:
    import onnx

    meta = {
        "model": model, "part": part, "config": json.dumps({"model": model, "image_size": SIZE}),
        "inputs": json.dumps(inputs), "outputs": json.dumps(outputs),
        "value_range": json.dumps([0.0, 1.0] if part != "encoder" else None),
        "source_framework": "torch", "exported_via": "torch", "step": "3", "format_version": "1", **meta_facts,
    }
    for key, value in meta.items():
        proto.metadata_props.add(key="age." + key, value=value)
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, folder / f"{part}.onnx")


def graph_model(nodes, name, inputs, outputs, initializers=()):
    from onnx import helper

    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)


def tensor_info(name: str, shape: tuple, kind: str) -> dict:
    return {"name": name, "shape": ["batch", *shape], "kind": kind}


def build_flat_model(folder: Path, prior: str, encoder: str | None, normalise: bool = False, video: bool = False,
                     seed: int = 0) -> Path:
    """A flat-latent generator (image or video) and, unless ``encoder`` is None, an encoder:
    ``"gaussian"`` (mu, logvar) or ``"deterministic"`` (z, L2-normalised when ``normalise``)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    out_shape = (FRAMES, 3, SIZE, SIZE) if video else (3, SIZE, SIZE)
    part = "video_generator" if video else "decoder"
    kind = "video" if video else "image"
    gen = graph_model(
        [helper.make_node("MatMul", ["z", "w"], ["h"]), helper.make_node("Reshape", ["h", "shape"], ["r"]),
         helper.make_node("Sigmoid", ["r"], [kind])],
        part,
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", FLAT])],
        [helper.make_tensor_value_info(kind, TensorProto.FLOAT, ["batch", *out_shape])],
        [numpy_helper.from_array(rng.normal(0, 2.0, (FLAT, int(np.prod(out_shape)))).astype(np.float32), "w"),
         numpy_helper.from_array(np.array([-1, *out_shape], np.int64), "shape")],
    )
    model = folder.name
    meta_facts = facts(prior, encoder or "none")
    z_info = [tensor_info("z", (FLAT,), "vector")]
    save_part(gen, folder, part, z_info, [tensor_info(kind, out_shape, kind)], meta_facts, model)
    if encoder is None:
        return folder
    x_info = [tensor_info("x", (3, SIZE, SIZE), "image")]
    wm = numpy_helper.from_array(rng.normal(0, 0.05, (PIXELS, FLAT)).astype(np.float32), "wm")
    x_in = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])]
    if encoder == "gaussian":
        enc = graph_model(
            [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "wm"], ["mu"]),
             helper.make_node("MatMul", ["f", "wl"], ["logvar"])],
            "encoder", x_in,
            [helper.make_tensor_value_info("mu", TensorProto.FLOAT, ["batch", FLAT]),
             helper.make_tensor_value_info("logvar", TensorProto.FLOAT, ["batch", FLAT])],
            [wm, numpy_helper.from_array(rng.normal(0, 0.01, (PIXELS, FLAT)).astype(np.float32), "wl")],
        )
        outs = [tensor_info("mu", (FLAT,), "vector"), tensor_info("logvar", (FLAT,), "vector")]
    else:
        nodes = [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "wm"], ["h" if normalise else "z"])]
        if normalise:
            nodes.append(helper.make_node("LpNormalization", ["h"], ["z"], axis=1, p=2))
        enc = graph_model(nodes, "encoder", x_in, [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", FLAT])],
                          [wm])
        outs = z_info
    save_part(enc, folder, "encoder", x_info, outs, meta_facts, model)
    return folder


def build_spatial_ae(folder: Path, prior: str) -> Path:
    """A conv autoencoder with a deterministic encoder and a (2, 4, 4) feature-map latent."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(4)
    c = SPATIAL[0]
    dec = graph_model(
        [helper.make_node("Resize", ["z", "", "scales"], ["up"], mode="nearest"),
         helper.make_node("Conv", ["up", "k", "kb"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Sigmoid", ["c"], ["image"])],
        "decoder",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", *SPATIAL])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
         numpy_helper.from_array(rng.normal(0, 1.5, (3, c, 3, 3)).astype(np.float32), "k"),
         numpy_helper.from_array(np.zeros(3, np.float32), "kb")],
    )
    enc = graph_model(
        [helper.make_node("Conv", ["x", "ek", "ekb"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
         helper.make_node("Tanh", ["c"], ["z"])],
        "encoder",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", *SPATIAL])],
        [numpy_helper.from_array(rng.normal(0, 0.8, (c, 3, 3, 3)).astype(np.float32), "ek"),
         numpy_helper.from_array(np.zeros(c, np.float32), "ekb")],
    )
    meta_facts = facts(prior, "deterministic")
    z_info = [tensor_info("z", SPATIAL, "vector")]
    save_part(dec, folder, "decoder", z_info, [tensor_info("image", (3, SIZE, SIZE), "image")], meta_facts, folder.name)
    save_part(enc, folder, "encoder", [tensor_info("x", (3, SIZE, SIZE), "image")], z_info, meta_facts, folder.name)
    return folder


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("interpolate") / "models"
    build_flat_model(root / "vae", "normal", "gaussian", seed=1)
    build_flat_model(root / "sphere_code", "sphere", "deterministic", normalise=True, seed=2)
    build_flat_model(root / "sphere_raw", "sphere", "deterministic", seed=3)
    build_flat_model(root / "sphere_gauss", "sphere", "gaussian", seed=5)
    build_spatial_ae(root / "ae", "none")
    build_spatial_ae(root / "ae_sphere", "sphere")
    build_flat_model(root / "gan", "normal", None, seed=6)
    build_flat_model(root / "clips", "normal", "deterministic", video=True, seed=7)
    return root


ENCODER_MODELS = ("vae", "sphere_code", "sphere_raw", "sphere_gauss", "ae", "ae_sphere", "clips")
SPHERE_MODELS = ("sphere_code", "sphere_raw", "sphere_gauss", "ae_sphere")


@pytest.fixture(scope="module")
def sessions(repo) -> dict[str, runtime.GeneratorSession]:
    return {p.name: runtime.load(p, providers="cpu") for p in sorted(repo.iterdir())}


@pytest.fixture(scope="module")
def pictures() -> tuple[bytes, bytes]:
    yy, xx = np.mgrid[0:20, 0:14]
    a = np.stack([xx * 17, yy * 11, (xx * yy) % 256], -1) % 256
    b = np.stack([255 - yy * 9, xx * 19, (xx + 3 * yy) * 5], -1) % 256
    return png(a), png(b)


# --------------------------------------------------------------------------- the math


def test_lerp_matches_numpy_on_any_latent_shape():
    rng = np.random.default_rng(0)
    for shape in ((5,), (2, 3, 4)):
        a, b = rng.standard_normal(shape), rng.standard_normal(shape)
        t = np.linspace(0, 1, 7)
        got = interp.lerp(a, b, t)
        assert got.shape == (7, *shape)
        for i, ti in enumerate(t):
            np.testing.assert_allclose(got[i], (1 - ti) * a + ti * b, rtol=0, atol=1e-15)
        np.testing.assert_allclose(interp.lerp(a, b, 0.25), 0.75 * a + 0.25 * b, atol=1e-15)


def test_slerp_matches_the_formula_and_keeps_unit_norm():
    rng = np.random.default_rng(1)
    a, b = 3.0 * rng.standard_normal((2, 3, 4)), 0.5 * rng.standard_normal((2, 3, 4))  # any norms (White 2016)
    t = np.linspace(0, 1, 9)
    omega = np.arccos(np.dot(a.ravel(), b.ravel()) / (np.linalg.norm(a) * np.linalg.norm(b)))
    want = np.stack([np.sin((1 - ti) * omega) / np.sin(omega) * a + np.sin(ti * omega) / np.sin(omega) * b for ti in t])
    np.testing.assert_allclose(interp.slerp(a, b, t), want, rtol=0, atol=1e-12)
    # unit vectors: every point on the sphere, at angle t * omega from a
    ua, ub = a / np.linalg.norm(a), b / np.linalg.norm(b)
    got = interp.slerp(ua, ub, t).reshape(len(t), -1)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.arccos(np.clip(got @ ua.ravel(), -1, 1)), t * omega, atol=1e-7)


def test_slerp_falls_back_to_lerp_for_parallel_and_antiparallel_latents():
    a = np.array([1.0, 2.0, -0.5, 0.25])
    t = np.linspace(0, 1, 5)
    for b in (2.0 * a, -a, a + 1e-4, np.zeros(4)):  # |cos| > SLERP_LINEAR_COS, or no direction
        cos = interp.cos_angle(a, b)
        assert cos is None or abs(cos) > interp.SLERP_LINEAR_COS
        np.testing.assert_array_equal(interp.slerp(a, b, t), interp.lerp(a, b, t))
    # just inside the threshold it is still a slerp (and finite)
    b = np.array([1.0, 2.0, -0.5, 0.35])
    assert abs(interp.cos_angle(a, b)) < interp.SLERP_LINEAR_COS
    assert not np.allclose(interp.slerp(a, b, t), interp.lerp(a, b, t), atol=1e-9)


def test_spherical_path_stays_on_the_sphere_in_every_case():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((2, 4, 4))
    t = np.linspace(0, 1, 11)
    cases = {
        "general": 2.0 * rng.standard_normal((2, 4, 4)),
        "near-identical": a + 1e-6,
        "antipodal": -a,
        "near-antipodal": -a + 1e-5,
    }
    for label, b in cases.items():
        got = interp.spherical_path(a, b, t)
        assert got.shape == (11, 2, 4, 4) and np.all(np.isfinite(got)), label
        np.testing.assert_allclose(np.linalg.norm(got.reshape(11, -1), axis=1), 1.0, atol=1e-12, err_msg=label)
        np.testing.assert_allclose(got[0], interp.unit(a), atol=1e-12, err_msg=label)
        np.testing.assert_allclose(got[-1], interp.unit(b), atol=1e-12, err_msg=label)
        # consecutive points are close: no jump through the middle of the sphere
        steps = np.linalg.norm(np.diff(got.reshape(11, -1), axis=0), axis=1)
        assert steps.max() < 0.35, (label, steps)
    # antipodal: halfway is the fixed perpendicular point, which is orthogonal to a and the same for -a
    m = interp.perpendicular(a)
    np.testing.assert_allclose(interp.spherical_path(a, -a, [0.5])[0], m, atol=1e-12)
    assert abs(np.dot(m.ravel(), a.ravel())) < 1e-12 and np.isclose(np.linalg.norm(m), 1.0)
    np.testing.assert_array_equal(interp.perpendicular(-a), m)
    # a 1-value "sphere" is {-1, +1}: the path jumps at t = 1/2
    np.testing.assert_array_equal(interp.spherical_path([2.0], [-3.0], [0, 0.4, 0.6, 1]).ravel(), [1, 1, -1, -1])


def test_path_endpoints_are_the_latents_themselves_and_geometry_follows_the_prior():
    rng = np.random.default_rng(3)
    a, b = (rng.standard_normal(6).astype(np.float32) for _ in range(2))
    for geometry in ("linear", "spherical"):
        p = interp.path(a, b, 4, geometry)
        assert p.dtype == np.float32 and p.shape == (4, 6)
        np.testing.assert_array_equal(p[0], a)
        np.testing.assert_array_equal(p[-1], b)
    assert [interp.geometry(p) for p in ("normal", "none", "sphere")] == ["linear", "linear", "spherical"]
    with pytest.raises(ValueError, match="prior must be one of"):
        interp.geometry("cube")
    with pytest.raises(ValueError, match="geometry must be one of"):
        interp.path(a, b, 3, "hyperbolic")
    with pytest.raises(ValueError, match="differ in shape"):
        interp.lerp(a, b[:3], 0.5)
    for bad in (0, 1, -3, 2.5, True, "4", None, 10**6):
        with pytest.raises(ValueError, match=r"steps must be an integer between 2 and 100"):
            interp.check_steps(bad, 100)


def test_on_support_projects_onto_the_sphere_and_keeps_unit_latents_bit_for_bit():
    rng = np.random.default_rng(4)
    z = rng.standard_normal((3, 2, 4, 4)).astype(np.float32)
    z[1] = priors.to_unit_sphere(z[1:2])[0]  # already unit
    z[2] = 0.0
    got = priors.on_support("sphere", z)
    np.testing.assert_allclose(np.linalg.norm(got[0].ravel()), 1.0, atol=1e-6)
    np.testing.assert_allclose(got[0], z[0] / np.linalg.norm(z[0].ravel()), rtol=1e-6)
    np.testing.assert_array_equal(got[1], z[1])
    np.testing.assert_array_equal(got[2], 0.0)  # no direction: left alone
    for prior in ("normal", "none"):
        np.testing.assert_array_equal(priors.on_support(prior, z), z)


# --------------------------------------------------------------------------- the session


def encoder_output(session: runtime.GeneratorSession, picture: bytes) -> np.ndarray:
    """The encoder's own mu (Gaussian) or z (deterministic), through onnxruntime directly."""
    import onnxruntime as ort

    x = session.load_image(picture)[None]
    enc = ort.InferenceSession(str(session.encoder_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in enc.get_outputs()]
    out = dict(zip(names, enc.run(None, {"x": x})))
    return out["mu" if "mu" in out else "z"][0]


@pytest.mark.parametrize("name", ENCODER_MODELS)
def test_invert_is_the_encoder_mean_or_code_on_the_prior_support(sessions, pictures, name):
    s = sessions[name]
    z = s.invert(pictures[0])
    assert z.shape == s.latent_shape and z.dtype == np.float32
    raw = encoder_output(s, pictures[0])
    if s.prior == "sphere":
        np.testing.assert_allclose(np.linalg.norm(z.ravel()), 1.0, atol=1e-6)
        np.testing.assert_allclose(z, raw / np.linalg.norm(raw.ravel()), rtol=1e-5, atol=1e-7)
    else:
        np.testing.assert_array_equal(z, raw)
    if s.encoder_kind == "gaussian":
        np.testing.assert_array_equal(z, priors.on_support(s.prior, s.encode(s.load_image(pictures[0])[None])[0])[0])
    # the batch form agrees with the one-picture form, and is what reconstruct decodes
    x = np.stack([s.load_image(p) for p in pictures])
    zs = s.invert_latents(x)
    assert zs.shape == (2, *s.latent_shape)
    np.testing.assert_array_equal(zs[0], z)
    np.testing.assert_array_equal(s.reconstruct(x), s.generate(latents=zs))


def test_a_normalising_encoder_code_is_kept_bit_for_bit(sessions, pictures):
    s = sessions["sphere_code"]
    for picture in pictures:
        raw = encoder_output(s, picture)
        assert abs(np.linalg.norm(raw) - 1.0) < 1e-6
        np.testing.assert_array_equal(s.invert(picture), raw)


@pytest.mark.parametrize("name", ENCODER_MODELS)
def test_interpolation_latents_follow_the_prior_geometry(sessions, pictures, name):
    s = sessions[name]
    za, zb = (s.invert(p) for p in pictures)
    steps = 6
    z = s.interpolation_latents(*pictures, steps=steps)
    assert z.shape == (steps, *s.latent_shape) and z.dtype == np.float32
    np.testing.assert_array_equal(z[0], za)
    np.testing.assert_array_equal(z[-1], zb)
    t = np.linspace(0, 1, steps)
    a64, b64 = za.astype(np.float64).ravel(), zb.astype(np.float64).ravel()
    if s.prior == "sphere":
        assert s.interpolation_geometry == "spherical"
        np.testing.assert_allclose(np.linalg.norm(z.reshape(steps, -1), axis=1), 1.0, atol=1e-6)
        omega = np.arccos(np.clip(a64 @ b64, -1, 1))
        assert abs(np.cos(omega)) < interp.SLERP_LINEAR_COS  # these pictures take the slerp branch
        want = np.stack([(np.sin((1 - ti) * omega) * a64 + np.sin(ti * omega) * b64) / np.sin(omega) for ti in t])
    else:
        assert s.interpolation_geometry == "linear"
        want = np.stack([(1 - ti) * a64 + ti * b64 for ti in t])
    np.testing.assert_allclose(z.reshape(steps, -1), want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ENCODER_MODELS)
def test_interpolate_endpoints_are_the_reconstructions(sessions, pictures, name):
    s = sessions[name]
    steps = 5
    walk = s.interpolate(*pictures, steps=steps, batch_size=2)
    assert walk.dtype == np.uint8 and walk.shape == (steps, *((FRAMES,) if s.is_video else ()), SIZE, SIZE, 3)
    np.testing.assert_array_equal(walk[0], s.reconstruct_image(pictures[0]))
    np.testing.assert_array_equal(walk[-1], s.reconstruct_image(pictures[1]))
    # in float, before rounding to uint8: the same numbers
    raw = s.decode(s.interpolation_latents(*pictures, steps=steps))
    for end, picture in ((raw[0], pictures[0]), (raw[-1], pictures[1])):
        assert np.abs(end - s.decode(s.reconstruction_latents(picture))[0]).max() <= 1e-6
    assert len({w.tobytes() for w in walk}) == steps  # the steps differ
    # paths, bytes, PIL images and arrays are all pictures
    x = s.load_image(pictures[0])
    with Image.open(io.BytesIO(pictures[1])) as im:
        np.testing.assert_array_equal(s.interpolate(x, im, steps=steps), walk)


def test_interpolation_path_between_sampled_latents_needs_no_encoder(sessions):
    gan = sessions["gan"]
    assert not gan.can_interpolate and gan.interpolation_geometry == "linear"
    a, b = gan.sample_latents(2, seed=3)
    z = gan.interpolation_path(a, b, steps=4)
    np.testing.assert_allclose(z, interp.lerp(a, b, np.linspace(0, 1, 4)), atol=1e-6)
    assert gan.generate(latents=z).shape == (4, SIZE, SIZE, 3)
    # sphere: unnormalised latents are put on the sphere first; flat or shaped latents both work
    ae_sphere = sessions["ae_sphere"]
    a, b = np.full(SPATIAL, 3.0, np.float32), np.arange(32, dtype=np.float32)
    z = ae_sphere.interpolation_path(a, b.reshape(1, 32), steps=3)
    assert z.shape == (3, *SPATIAL)
    np.testing.assert_allclose(np.linalg.norm(z.reshape(3, -1), axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(z[-1].ravel(), b / np.linalg.norm(b), rtol=1e-6)
    for bad, needle in (((np.zeros(5), b), "latent_a: expected"), ((a, np.full(32, np.nan)), "latent_b: .*NaN"),
                        ((a, np.zeros((2, 32))), "latent_b: expected one latent")):
        with pytest.raises(ValueError, match=needle):
            ae_sphere.interpolation_path(*bad, steps=3)


def test_models_without_an_encoder_refuse_inversion_and_interpolation(sessions, pictures):
    gan = sessions["gan"]
    calls = {
        "invert": lambda: gan.invert(pictures[0]),
        "invert_latents": lambda: gan.invert_latents(np.zeros((1, 3, SIZE, SIZE), np.float32)),
        "interpolation_latents": lambda: gan.interpolation_latents(*pictures),
        "interpolate": lambda: gan.interpolate(*pictures, steps=3),
    }
    for label, call in calls.items():
        with pytest.raises(runtime.UnsupportedOperation, match="has no encoder.*no encoder.onnx next to decoder.onnx"):
            call()


@pytest.mark.parametrize("steps", [0, 1, -2, 2.5, True, "8", None])
def test_bad_steps_are_refused_naming_the_field(sessions, pictures, steps):
    with pytest.raises(ValueError, match=r"^steps must be an integer between 2 and"):
        sessions["vae"].interpolate(*pictures, steps=steps)


def test_steps_are_bounded_by_the_model_output_size(sessions, pictures):
    s = sessions["clips"]
    with pytest.raises(ValueError, match=f"steps must be an integer between 2 and {s.max_images}, got {s.max_images + 1}"):
        s.interpolation_latents(*pictures, steps=s.max_images + 1)


# --------------------------------------------------------------------------- CLI


def run_main(args: list[str], caplog) -> tuple[int, str]:
    caplog.clear()
    caplog.set_level(logging.INFO, logger="runtime")
    status = cli.main([*args, "--provider", "cpu"])
    return status, "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


@pytest.fixture()
def picture_files(tmp_path, pictures) -> tuple[str, str]:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(pictures[0])
    b.write_bytes(pictures[1])
    return str(a), str(b)


def test_cli_writes_a_gif_a_png_strip_and_npy(repo, sessions, picture_files, tmp_path, caplog):
    s = sessions["sphere_code"]
    want = s.interpolate(*picture_files, steps=8)
    gif = tmp_path / "walk.gif"
    status, err = run_main([str(repo / "sphere_code"), "--interpolate", *picture_files, "--steps", "8", "--out", str(gif)], caplog)
    assert status == 0, err
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == 8 and im.size == (SIZE + 4, SIZE + 4)
    strip = tmp_path / "walk.png"
    status, err = run_main([str(repo / "sphere_code"), "--interpolate", *picture_files, "--out", str(strip)], caplog)  # default 8
    assert status == 0, err
    with Image.open(strip) as im:
        assert im.size == (8 * (SIZE + 2) + 2, SIZE + 4)
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), core_images.make_grid(want, nrow=8))
    npy = tmp_path / "walk.npy"
    status, err = run_main([str(repo / "ae"), "--interpolate", *picture_files, "--steps", "3", "--out", str(npy)], caplog)
    assert status == 0, err
    np.testing.assert_array_equal(np.load(npy), sessions["ae"].interpolate(*picture_files, steps=3))
    two_rows = tmp_path / "rows.png"
    status, err = run_main([str(repo / "vae"), "--interpolate", *picture_files, "--steps", "6", "--nrow", "3",
                            "--out", str(two_rows)], caplog)
    assert status == 0, err
    with Image.open(two_rows) as im:
        assert im.size == (3 * (SIZE + 2) + 2, 2 * (SIZE + 2) + 2)


def test_cli_video_model_walks_side_by_side(repo, sessions, picture_files, tmp_path, caplog):
    gif = tmp_path / "clips.gif"
    status, err = run_main([str(repo / "clips"), "--interpolate", *picture_files, "--steps", "4", "--out", str(gif)], caplog)
    assert status == 0, err
    with Image.open(gif) as im:
        assert im.n_frames == FRAMES and im.size == (4 * (SIZE + 2) + 2, SIZE + 4)
    status, err = run_main([str(repo / "clips"), "--interpolate", *picture_files, "--out", str(tmp_path / "c.png")], caplog)
    assert status == 2 and "video generator" in err and "--out" in err, err


@pytest.mark.skipif(not core_images.mp4_available(), reason="imageio-ffmpeg is not installed")
def test_cli_mp4_of_an_image_interpolation(repo, picture_files, tmp_path, caplog):
    mp4 = tmp_path / "walk.mp4"
    status, err = run_main([str(repo / "vae"), "--interpolate", *picture_files, "--steps", "4", "--out", str(mp4)], caplog)
    assert status == 0, err
    assert mp4.read_bytes()[4:8] == b"ftyp"


def test_cli_usage_errors_name_the_flag(repo, picture_files, tmp_path, caplog, capsys):
    out = str(tmp_path / "w.gif")
    model = str(repo / "vae")
    cases = [
        (["--interpolate", *picture_files, "--steps", "1"], "--steps must be between 2 and 4096, got 1"),
        (["--interpolate", *picture_files, "--steps", "0"], "--steps must be between 2 and 4096, got 0"),
        (["--interpolate", *picture_files, "--steps", "100000"], "--steps must be between 2 and 4096"),
        (["--interpolate", *picture_files, "--n", "4"], "--n: not used with --interpolate"),
        (["--steps", "4"], "--steps: only used with --interpolate"),
        (["--interpolate", *picture_files, "--nrow", "2"], "--nrow: an animation of still images"),
        (["--interpolate", *picture_files, "--steps", "3", "--nrow", "4"], "--nrow must be an integer between 1 and n (3)"),
    ]
    for extra, needle in cases:
        status, err = run_main([model, "--out", out, *extra], caplog)
        assert status == 2 and needle in err and "\n" not in err, (extra, err)
    status, err = run_main([str(repo / "gan"), "--out", out, "--interpolate", *picture_files], caplog)
    assert status == 2 and "has no encoder" in err and "no encoder.onnx" in err, err
    status, err = run_main([model, "--out", out, "--interpolate", picture_files[0], str(tmp_path / "missing.png")], caplog)
    assert status == 2 and "missing.png: no such file" in err, err
    assert not Path(out).exists()
    # argparse's own checks: not an integer, mutually exclusive modes, one image only
    for extra in (["--interpolate", *picture_files, "--steps", "2.5"],
                  ["--interpolate", *picture_files, "--reconstruct", picture_files[0]],
                  ["--interpolate", picture_files[0]]):
        with pytest.raises(SystemExit) as info:
            cli.main([model, "--out", out, *extra])
        assert info.value.code == 2
    usage = capsys.readouterr().err
    assert "--steps: invalid int value: '2.5'" in usage and "not allowed with argument" in usage


# --------------------------------------------------------------------------- server


@pytest.fixture(scope="module")
def client(repo):
    from runtime.server import Settings, create_app
    from tests.runtime.live import serve

    settings = Settings(max_batch=8, max_delay_ms=2, max_queue=16, max_n=16, max_body_bytes=64 * 1024,
                        max_image_pixels=250_000, request_timeout_s=20, provider="cpu")
    with serve(create_app(repo, settings)) as c:
        yield c


def upload(pictures: tuple[bytes, bytes]) -> dict:
    return {"image_a": ("a.png", pictures[0], "image/png"), "image_b": ("b.png", pictures[1], "image/png")}


def error_of(response, status: int, field: str | None, needle: str) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) <= {"error", "field"} and needle in body["error"], body
    assert body.get("field") == field, body


def test_server_lists_who_interpolates(client):
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert (models["vae"]["interpolates"], models["vae"]["interpolation"]) == (True, "linear")
    assert (models["sphere_code"]["interpolates"], models["sphere_code"]["interpolation"]) == (True, "spherical")
    assert (models["ae"]["interpolates"], models["ae"]["interpolation"]) == (True, "linear")
    assert models["gan"]["interpolates"] is False
    assert models["vae"]["interpolation_formats"][:3] == ["png", "gif", "mp4" if core_images.mp4_available() else "npy"]
    assert "png" not in models["clips"]["interpolation_formats"]
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/models/{name}/interpolate"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert body["schema"]["required"] == ["image_a", "image_b"]


def test_server_interpolates_as_gif_png_and_npy(client, sessions, pictures):
    s = sessions["sphere_code"]
    want = s.interpolate(*pictures, steps=6)
    r = client.post("/v1/models/sphere_code/interpolate", files=upload(pictures), data={"steps": "6", "format": "gif", "fps": "4"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/gif", r.text
    assert r.headers["x-age-interpolation"] == "spherical" and r.headers["x-age-shape"] == f"6,{SIZE},{SIZE},3"
    with Image.open(io.BytesIO(r.content)) as im:
        assert im.n_frames == 6 and im.info["duration"] == 250
    r = client.post("/v1/models/sphere_code/interpolate", files=upload(pictures), data={"steps": "6"})  # png strip by default
    assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text
    with Image.open(io.BytesIO(r.content)) as im:
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), core_images.make_grid(want, nrow=6))
    r = client.post("/v1/models/sphere_code/interpolate", files=upload(pictures), data={"steps": "6", "format": "npy"})
    assert r.headers["content-type"] == "application/octet-stream"
    got = np.load(io.BytesIO(r.content))
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got[0], s.reconstruct_image(pictures[0]))
    r = client.post("/v1/models/ae/interpolate", files=upload(pictures), data={"format": "npy"})  # default 8 steps
    assert r.status_code == 200 and r.headers["x-age-interpolation"] == "linear"
    np.testing.assert_array_equal(np.load(io.BytesIO(r.content)), sessions["ae"].interpolate(*pictures, steps=8))
    metrics = client.get("/metrics").text
    assert 'age_requests_total{model="sphere_code",endpoint="interpolate",status="200"} 3' in metrics


def test_server_video_model_interpolates_to_a_gif(client, sessions, pictures):
    r = client.post("/v1/models/clips/interpolate", files=upload(pictures), data={"steps": "3"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/gif", r.text
    with Image.open(io.BytesIO(r.content)) as im:
        assert im.n_frames == FRAMES and im.size == (3 * (SIZE + 2) + 2, SIZE + 4)
    r = client.post("/v1/models/clips/interpolate", files=upload(pictures), data={"steps": "3", "format": "npy"})
    np.testing.assert_array_equal(np.load(io.BytesIO(r.content)), sessions["clips"].interpolate(*pictures, steps=3))


def test_server_refuses_bad_requests_naming_the_field(client, pictures):
    files = upload(pictures)
    url = "/v1/models/vae/interpolate"
    for steps in ("0", "1", "17", "100000000000000000000"):
        error_of(client.post(url, files=files, data={"steps": steps}), 422, "steps", "steps must be between 2 and 16")
    for steps in ("2.5", "eight", "1e3"):
        error_of(client.post(url, files=files, data={"steps": steps}), 422, "steps", "steps: not an integer")
    error_of(client.post(url, files=files, data={"format": "mp3"}), 422, "format", "unknown format 'mp3'")
    error_of(client.post("/v1/models/clips/interpolate", files=files, data={"format": "png"}), 422, "format",
             "video generator")
    error_of(client.post(url, files=files, data={"format": "gif", "nrow": "2"}), 422, "nrow", "one step per frame")
    error_of(client.post(url, files=files, data={"steps": "4", "nrow": "5"}), 422, "nrow", "between 1 and n (4)")
    error_of(client.post(url, files=files, data={"fps": "1000"}), 422, "fps", "fps must be")
    error_of(client.post(url, files=files, data={"n": "3"}), 422, "n", "unknown form field")
    error_of(client.post(url, files={"image_a": files["image_a"]}), 422, "image_b", "image_b: missing")
    error_of(client.post(url, files={"image_b": files["image_b"]}, data={"image_a": "a.png"}), 422, "image_a",
             "expected a file upload")
    error_of(client.post(url, files={**files, "image_b": ("b.png", b"\x89PNGjunk" * 20)}), 422, "image_b",
             "image image_b: not a readable image")
    error_of(client.post(url, files={**files, "image_a": ("a.png", b"")}), 422, "image_a", "image_a")
    big = png(np.zeros((600, 600, 3), np.uint8))  # 360,000 pixels > max_image_pixels, a small file
    error_of(client.post(url, files={**files, "image_b": ("big.png", big)}), 413, "image_b", "--max-image-pixels")
    error_of(client.post(url, data={"steps": "4"}), 415, "image", "multipart")
    error_of(client.post("/v1/models/gan/interpolate", files=files), 409, "name", "has no encoder")
    error_of(client.post("/v1/models/nope/interpolate", files=files), 404, "name", "unknown model 'nope'")
    metrics = client.get("/metrics").text
    assert 'age_requests_total{model="gan",endpoint="interpolate",status="409"} 1' in metrics
    assert 'age_requests_total{model="_unknown",endpoint="interpolate",status="404"} 1' in metrics
