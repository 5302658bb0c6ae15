"""Parts open on first use: ``load(dir).generate(n)`` never creates the encoder's session, yet a
broken encoder file is still refused, at load when its bytes or metadata are wrong and with the
file named on first use when only the backend can tell.

The models are built with ``onnx.helper`` (:mod:`tests.runtime.test_model_kinds`), so this runs in
the serving-only environment too.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

import runtime
from core.errors import ModelFileError
from runtime import providers

from tests.runtime.test_model_kinds import FLAT, SIZE, build_flat, ort_outputs

pytestmark = pytest.mark.serving


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory) -> Path:
    return build_flat(tmp_path_factory.mktemp("lazy") / "gauss", None, gaussian_encoder=True)


@pytest.fixture
def sessions_made(monkeypatch) -> list[int]:
    """Every onnxruntime session the runtime creates, counted (its model bytes' length)."""
    made: list[int] = []
    real = providers.create_session

    def counting(model, *args, **kwargs):
        made.append(len(model))
        return real(model, *args, **kwargs)

    monkeypatch.setattr(providers, "create_session", counting)
    return made


def test_generate_never_opens_the_encoder(vae_dir, sessions_made):
    session = runtime.load(vae_dir, providers="cpu")
    generator, encoder = session.parts
    assert generator.opened and not encoder.opened
    session.generate(3, seed=0)
    assert not encoder.opened and len(sessions_made) == 1
    # everything the encoder's metadata says is known without opening it
    assert session.has_encoder and session.encoder_kind == "gaussian" and session.input_image_shape == (3, SIZE, SIZE)
    assert session.can_vary and not encoder.opened


def test_encode_and_reconstruct_open_it_on_first_use(vae_dir, sessions_made):
    session = runtime.load(vae_dir, providers="cpu")
    x = np.random.default_rng(0).random((2, 3, SIZE, SIZE), dtype=np.float32)
    mu, logvar = session.encode(x)
    ref_mu, ref_logvar = ort_outputs(vae_dir / "encoder.onnx", {"x": x})
    np.testing.assert_allclose(mu, ref_mu, atol=1e-6)
    np.testing.assert_allclose(logvar, ref_logvar, atol=1e-6)
    assert session.parts[1].opened and len(sessions_made) == 2
    assert session.reconstruct(x).shape == (2, SIZE, SIZE, 3)
    assert len(sessions_made) == 2  # opened once, kept


def test_first_use_from_many_threads_opens_once(vae_dir, sessions_made):
    session = runtime.load(vae_dir, providers="cpu")
    x = np.random.default_rng(1).random((1, 3, SIZE, SIZE), dtype=np.float32)
    start = threading.Barrier(8)
    results, errors = [], []

    def call():
        start.wait()
        try:
            results.append(session.encode_latents(x))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 8
    assert all(np.array_equal(r, results[0]) for r in results)
    assert len(sessions_made) == 2  # the generator's at load, the encoder's once


def _with_encoder(tmp_path: Path, vae_dir: Path, edit) -> Path:
    """A copy of the export whose encoder.onnx went through ``edit(ModelProto)``."""
    import onnx

    folder = tmp_path / "gauss"
    shutil.copytree(vae_dir, folder)
    proto = onnx.load(folder / "encoder.onnx")
    edit(proto)
    onnx.save(proto, folder / "encoder.onnx")
    return folder


def test_unreadable_encoder_is_refused_at_load(vae_dir, tmp_path):
    folder = tmp_path / "gauss"
    shutil.copytree(vae_dir, folder)
    (folder / "encoder.onnx").write_bytes(b"\xff\xff\xff\xff")
    with pytest.raises(ModelFileError, match=r"encoder\.onnx: not a loadable ONNX model"):
        runtime.load(folder, providers="cpu")


def test_encoder_from_another_export_is_refused_at_load(vae_dir, tmp_path, sessions_made):
    def other_step(proto):
        for entry in proto.metadata_props:
            if entry.key == "age.step":
                entry.value = "6"

    folder = _with_encoder(tmp_path, vae_dir, other_step)
    with pytest.raises(ModelFileError, match=r"encoder\.onnx: step 6 differs"):
        runtime.load(folder, providers="cpu")
    assert len(sessions_made) == 1  # the generator's; the encoder was refused from its metadata alone


def test_encoder_only_the_backend_rejects_fails_on_first_use_naming_it(vae_dir, tmp_path):
    def unknown_op(proto):
        proto.graph.node[1].op_type = "NoSuchOp"

    folder = _with_encoder(tmp_path, vae_dir, unknown_op)
    session = runtime.load(folder, providers="cpu")  # the bytes and the metadata are fine
    assert session.generate(2, seed=0).shape == (2, SIZE, SIZE, 3)
    x = np.zeros((1, 3, SIZE, SIZE), np.float32)
    for _ in range(2):  # a failed open is not remembered as opened: the second call fails the same way
        with pytest.raises(ModelFileError) as info:
            session.encode(x)
        assert str(info.value).startswith(str(folder / "encoder.onnx")) and "not a loadable ONNX model" in str(info.value)
    assert not session.parts[1].opened


def test_encoder_graph_that_contradicts_its_metadata_fails_on_first_use(vae_dir, tmp_path):
    def rename_output(proto):
        proto.graph.node[1].output[0] = "mean"
        proto.graph.output[0].name = "mean"

    folder = _with_encoder(tmp_path, vae_dir, rename_output)
    session = runtime.load(folder, providers="cpu")
    with pytest.raises(ModelFileError, match=r"encoder\.onnx: graph outputs \['mean', 'logvar'\] do not match"):
        session.encode_latents(np.zeros((1, 3, SIZE, SIZE), np.float32))


def test_lazy_open_checks_external_data_again(vae_dir, tmp_path):
    """The folder may change between load and first use: the encoder's external data is checked
    once more when it opens."""
    import onnx
    from onnx.external_data_helper import convert_model_to_external_data

    folder = tmp_path / "gauss"
    shutil.copytree(vae_dir, folder)
    proto = onnx.load(folder / "encoder.onnx")
    convert_model_to_external_data(proto, all_tensors_to_one_file=True, location="encoder.data", size_threshold=0)
    onnx.save(proto, folder / "encoder.onnx")
    session = runtime.load(folder, providers="cpu")
    outside = tmp_path / "elsewhere.data"
    (folder / "encoder.data").rename(outside)
    (folder / "encoder.data").symlink_to(outside)
    with pytest.raises(ModelFileError, match="leaves the model's folder through a symlink"):
        session.encode_latents(np.zeros((1, 3, SIZE, SIZE), np.float32))
    assert FLAT == session.latent_dim


def test_server_skips_a_folder_whose_encoder_only_the_backend_rejects(vae_dir, tmp_path):
    """The server opens every part when it scans its repository: a folder whose encoder fails to open
    is skipped there (the other models serve, /readyz can turn ready), not failed request by request."""
    from runtime.server.repository import Repository

    def unknown_op(proto):
        proto.graph.node[1].op_type = "NoSuchOp"

    root = tmp_path / "repo"
    root.mkdir()
    _with_encoder(root, vae_dir, unknown_op).rename(root / "broken")
    shutil.copytree(vae_dir, root / "good")
    repo = Repository.scan(root, providers="cpu")
    assert list(repo.models) == ["good"]
    assert "broken" in repo.skipped and "encoder.onnx" in repo.skipped["broken"]
    assert all(part.opened for part in repo.models["good"].session.parts)
