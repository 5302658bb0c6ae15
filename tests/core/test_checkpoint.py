"""core.checkpoint: the canonical safetensors format, its validation, and atomic writes.

Every broken file must raise :class:`CheckpointError` naming the file (and the tensor where one is
at fault) from ``core.checkpoint.load_checkpoint`` and from both frameworks' ``load_model``.
"""

from __future__ import annotations

import json
import os
import stat
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file

import core.files
from core import FORMAT_VERSION
from core.errors import OutputError
from core.checkpoint import FORMAT_NAME, check_tensors, load_checkpoint, read_safetensors, save_checkpoint, save_tensors
from core.models.conv_vae import ConvVAEConfig
from core.errors import AgeError, CheckpointError

TINY = ConvVAEConfig.preset("tiny")


@pytest.fixture(scope="module")
def tiny_tensors() -> dict[str, np.ndarray]:
    """The canonical tensors of a seeded tiny conv_vae (torch names and layouts)."""
    import torch

    import torch_impl
    from torch_impl.checkpoint import model_tensors

    torch.manual_seed(0)
    return model_tensors(torch_impl.build("conv_vae", config=TINY))


@pytest.fixture(scope="module")
def good(tmp_path_factory, tiny_tensors) -> Path:
    return save_checkpoint(tmp_path_factory.mktemp("good") / "ckpt.safetensors", tiny_tensors, TINY, "torch", step=123)


def _meta(path: Path) -> dict[str, str]:
    with safe_open(str(path), "np") as fh:
        return dict(fh.metadata())


def _rewrite(src: Path, dst: Path, tensors=None, **meta_changes) -> Path:
    """Copy of ``src`` with changed tensors and/or metadata (a value of None drops the key)."""
    meta = _meta(src)
    for key, value in meta_changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    save_tensors(dst, load_file(str(src)) if tensors is None else tensors, meta)
    return dst


def _loaders():
    import keras_impl
    import torch_impl

    return {"torch": torch_impl.load_model, "keras": keras_impl.load_model}


# --------------------------------------------------------------------------- round trip


def test_round_trip_keeps_tensors_and_metadata(good, tiny_tensors):
    ckpt = load_checkpoint(good)
    assert ckpt.path == good
    assert (ckpt.model, ckpt.framework, ckpt.step) == ("conv_vae", "torch", 123)
    assert ckpt.config == TINY
    assert set(ckpt.tensors) == set(tiny_tensors)
    for name, array in tiny_tensors.items():
        assert ckpt.tensors[name].dtype == array.dtype
        np.testing.assert_array_equal(ckpt.tensors[name], array, err_msg=name)
    meta = _meta(good)
    assert meta["format"] == FORMAT_NAME and meta["format_version"] == FORMAT_VERSION
    assert json.loads(meta["config"]) == json.loads(TINY.to_json())
    assert load_checkpoint(good, expected_model="conv_vae").step == 123


def test_keras_writer_and_non_contiguous_tensors(tmp_path, tiny_tensors):
    tensors = dict(tiny_tensors)
    weight = tensors["fc_mu.weight"]
    tensors["fc_mu.weight"] = np.asfortranarray(weight)  # a transposed view must be stored in C order
    path = save_checkpoint(tmp_path / "k.safetensors", tensors, TINY, "keras", step=7)
    ckpt = load_checkpoint(path)
    assert (ckpt.framework, ckpt.step) == ("keras", 7)
    np.testing.assert_array_equal(ckpt.tensors["fc_mu.weight"], weight)


def test_save_refuses_unknown_framework(tmp_path, tiny_tensors):
    with pytest.raises(ValueError, match="jax"):
        save_checkpoint(tmp_path / "x.safetensors", tiny_tensors, TINY, "jax")
    assert not (tmp_path / "x.safetensors").exists()


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_framework_loaders_restore_the_exact_weights(framework, good, tiny_tensors):
    model = _loaders()[framework](good)
    assert model.config == TINY
    if framework == "torch":
        from torch_impl.checkpoint import model_tensors

        assert not model.training
    else:
        from keras_impl.checkpoint import model_tensors
    got = model_tensors(model)
    assert set(got) == set(tiny_tensors)
    for name, array in tiny_tensors.items():
        np.testing.assert_array_equal(got[name], array, err_msg=name)


# --------------------------------------------------------------------------- broken files


def _truncate(keep):
    def make(good: Path, tmp: Path) -> Path:
        data = good.read_bytes()
        (header_len,) = struct.unpack("<Q", data[:8])
        n = keep(len(data), header_len)
        (tmp / "cut.safetensors").write_bytes(data[:n])
        return tmp / "cut.safetensors"

    return make


def _write(data: bytes):
    def make(good: Path, tmp: Path) -> Path:
        (tmp / "bad.safetensors").write_bytes(data)
        return tmp / "bad.safetensors"

    return make


def _missing(good: Path, tmp: Path) -> Path:
    return tmp / "nowhere" / "ckpt.safetensors"


def _directory(good: Path, tmp: Path) -> Path:
    (tmp / "ckpt.safetensors").mkdir()
    return tmp / "ckpt.safetensors"


def _meta_change(**changes):
    def make(good: Path, tmp: Path) -> Path:
        return _rewrite(good, tmp / "meta.safetensors", **changes)

    return make


def _bad_offsets(good: Path, tmp: Path) -> Path:
    data = good.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    header["fc_mu.bias"]["data_offsets"] = ["0", "x"]
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    (tmp / "offsets.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + header_len :])
    return tmp / "offsets.safetensors"


BROKEN = {
    # name: (make(good, tmp) -> path, fragments the message must hold besides the path)
    "cut_last_byte": (_truncate(lambda n, h: n - 1), ["truncated"]),
    "cut_half": (_truncate(lambda n, h: n // 2), ["truncated"]),
    "cut_in_header": (_truncate(lambda n, h: 8 + h // 2), ["truncated"]),
    "cut_in_length": (_truncate(lambda n, h: 5), ["not a safetensors file"]),
    "random_bytes": (_write(np.random.default_rng(0).bytes(4096)), ["not a safetensors file"]),
    "text_file": (_write(b"model: conv_vae\nweights: none\n" * 20), ["not a safetensors file"]),
    "empty_file": (_write(b""), ["not a safetensors file", "0 bytes"]),
    "json_header_not_object": (_write(struct.pack("<Q", 8) + b"[1,2,3] "), ["not a JSON object"]),
    "bad_data_offsets": (_bad_offsets, ["fc_mu.bias", "data_offsets"]),
    "missing_path": (_missing, ["no such file"]),
    "directory": (_directory, ["not a file"]),
    "plain_safetensors": (_meta_change(format=None), ["not an A.G.E. checkpoint"]),
    "format_version": (_meta_change(format_version="99"), ["format version", "'99'"]),
    "other_model": (_meta_change(model="vq_gan"), ["'vq_gan'"]),
    "config_of_unknown_model": (_meta_change(model="vq_gan", config='{"model": "vq_gan"}'), ["unknown model 'vq_gan'"]),
    "config_not_json": (_meta_change(config="{image_size: 32"), ["not valid JSON"]),
    "config_bad_field": (_meta_change(config='{"model": "conv_vae", "image_size": "big"}'), ["image_size"]),
    "config_unknown_field": (_meta_change(config='{"model": "conv_vae", "depth": 3}'), ["depth"]),
    "unknown_framework": (_meta_change(framework="jax"), ["'jax'"]),
    "step_not_int": (_meta_change(step="ten"), ["step", "'ten'"]),
}


@pytest.fixture(params=sorted(BROKEN))
def broken(request, good, tmp_path):
    make, fragments = BROKEN[request.param]
    return make(good, tmp_path), fragments


def test_broken_files_raise_checkpoint_error_naming_the_file(broken):
    path, fragments = broken
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message
    assert isinstance(err.value, AgeError)


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_framework_loaders_reject_broken_files(framework, broken):
    path, fragments = broken
    with pytest.raises(CheckpointError) as err:
        _loaders()[framework](path)
    assert str(path) in str(err.value)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_expected_model_mismatch(good):
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(good, expected_model="gan")
    assert str(good) in str(err.value) and "'conv_vae'" in str(err.value) and "'gan'" in str(err.value)
    for load in _loaders().values():
        with pytest.raises(CheckpointError, match="expected 'gan'"):
            load(good, expected_model="gan")


# --------------------------------------------------------------------------- tensors that don't fit


def _missing_tensor(t):
    t = dict(t)
    del t["fc_logvar.bias"]
    return t, ["missing", "fc_logvar.bias"]


def _extra_tensor(t):
    t = dict(t)
    t["fc_mu.extra"] = np.zeros(3, np.float32)
    return t, ["unexpected", "fc_mu.extra"]


def _wrong_shape(t):
    t = dict(t)
    t["fc_mu.weight"] = np.zeros((17, 1024), np.float32)
    return t, ["'fc_mu.weight'", "(17, 1024)", "(16, 1024)"]


def _bn_counter(t):
    # torch's num_batches_tracked is deliberately not part of the format
    t = dict(t)
    t["encoder.0.1.num_batches_tracked"] = np.zeros((), np.float32)  # (an int64 one is refused by the file check already)
    return t, ["unexpected", "encoder.0.1.num_batches_tracked"]


@pytest.mark.parametrize("change", [_missing_tensor, _extra_tensor, _wrong_shape, _bn_counter])
@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_tensors_that_do_not_fit_are_named(framework, change, tiny_tensors, tmp_path):
    tensors, fragments = change(tiny_tensors)
    path = save_checkpoint(tmp_path / "misfit.safetensors", tensors, TINY, "torch")
    load_checkpoint(path)  # the file itself is fine; the model check must catch it
    with pytest.raises(CheckpointError) as err:
        _loaders()[framework](path)
    message = str(err.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_check_tensors_lists_every_problem_at_once():
    expected = {"a": (2,), "b": (3, 4), "c": (1,)}
    got = {"a": np.zeros(2), "b": np.zeros((4, 3)), "d": np.zeros(1)}
    with pytest.raises(CheckpointError) as err:
        check_tensors("model.safetensors", got, expected)
    message = str(err.value)
    assert message.startswith("checkpoint model.safetensors: ")
    assert "missing tensor(s) ['c']" in message and "unexpected tensor(s) ['d']" in message
    assert "'b' has shape (4, 3), expected (3, 4)" in message
    check_tensors("ok", {"a": np.zeros(2)}, {"a": (2,)})


def test_read_safetensors_names_what_it_reads(tmp_path):
    path = tmp_path / "opt.safetensors"
    path.write_bytes(b"junk")
    with pytest.raises(CheckpointError, match=r"^optimizer state .*opt\.safetensors"):
        read_safetensors(path, "optimizer state")
    save_tensors(path, {"x": np.arange(3, dtype=np.float32)}, {"k": 5})
    meta, tensors = read_safetensors(path)
    assert meta == {"k": "5"}
    np.testing.assert_array_equal(tensors["x"], [0, 1, 2])


# --------------------------------------------------------------------------- atomic writes


def _leftovers(folder: Path, keep: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != keep)


@pytest.mark.parametrize("fail_at", ["replace", "fsync", "write"])
def test_failed_overwrite_keeps_the_old_checkpoint(fail_at, good, tiny_tensors, tmp_path, monkeypatch):
    target = tmp_path / "ckpt.safetensors"
    target.write_bytes(good.read_bytes())
    before = target.read_bytes()

    def boom(*args, **kwargs):
        raise OSError(f"simulated failure in {fail_at}")

    if fail_at == "write":
        # fail half-way through the serialised bytes: the temp file holds a partial checkpoint
        real_fdopen = os.fdopen

        class HalfWriter:
            def __init__(self, fh):
                self.fh = fh

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.fh.close()

            def write(self, data):
                self.fh.write(data[: len(data) // 2])
                self.fh.flush()
                boom()

        monkeypatch.setattr(core.files.os, "fdopen", lambda fd, mode: HalfWriter(real_fdopen(fd, mode)))
    else:
        monkeypatch.setattr(core.files.os, fail_at, boom)
    changed = {k: v + 1 for k, v in tiny_tensors.items()}
    with pytest.raises(OutputError, match="simulated") as err:
        save_checkpoint(target, changed, TINY, "keras", step=999)
    assert str(target) in str(err.value)
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert _leftovers(tmp_path, target.name) == []
    assert load_checkpoint(target).step == 123


def test_successful_overwrite_replaces_and_leaves_nothing_else(good, tiny_tensors, tmp_path):
    target = tmp_path / "ckpt.safetensors"
    target.write_bytes(good.read_bytes())
    save_checkpoint(target, tiny_tensors, TINY, "keras", step=5)
    assert load_checkpoint(target).step == 5 and load_checkpoint(target).framework == "keras"
    assert _leftovers(tmp_path, target.name) == []


def test_written_files_get_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        fresh = core.files.atomic_write_bytes(tmp_path / "sub" / "fresh.bin", b"x")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o644  # not mkstemp's 0o600
        os.umask(0o027)
        other = core.files.atomic_write_text(tmp_path / "other.txt", "y")
        assert stat.S_IMODE(other.stat().st_mode) == 0o640
        os.chmod(fresh, 0o664)
        core.files.atomic_write_bytes(fresh, b"again")  # an existing file keeps its mode
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o664 and fresh.read_bytes() == b"again"
    finally:
        os.umask(old)
