"""export.inception: the FID Inception-v3, checked against pytorch-fid with random weights.

The real weights (pt_inception-2015-12-05-6726825d.pth) are in no wheel and nothing is downloaded:
pytorch-fid's network is built from its own code (torchvision's Inception3 with its FIDInception*
blocks, as ``fid_inception_v3`` does) and its download function is patched to hand back a random
state dict with sane scales. The same dict, saved with torch.save, goes through our
``load_weights`` -> ``export_inception`` -> onnxruntime, and must give pytorch-fid's pool features.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import export.inception as inc
from core.errors import CheckpointError

from tests.export.feature_weights import FAULTS, faulty_weights, random_state

pytorch_fid_inception = pytest.importorskip("pytorch_fid.inception")
TOL = 1e-4


def reference_skeleton() -> torch.nn.Module:
    """pytorch-fid's FID Inception structure (what fid_inception_v3 builds), without its weights download."""
    import torchvision

    net = torchvision.models.inception_v3(num_classes=1008, aux_logits=False, weights=None, init_weights=False)
    m = pytorch_fid_inception
    net.Mixed_5b = m.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = m.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = m.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = m.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = m.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = m.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = m.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = m.FIDInceptionE_1(1280)
    net.Mixed_7c = m.FIDInceptionE_2(2048)
    return net


@pytest.fixture(scope="module")
def state() -> OrderedDict[str, torch.Tensor]:
    return random_state(reference_skeleton().state_dict())


@pytest.fixture(scope="module")
def weights(state, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("w") / inc.WEIGHTS_FILE
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def exported(weights, tmp_path_factory) -> Path:
    return inc.export_inception(weights, tmp_path_factory.mktemp("onnx"))


@pytest.fixture(scope="module")
def reference_model(state):
    """pytorch-fid's InceptionV3([3], resize_input=False, normalize_input=True), its download patched."""
    calls = []

    def fake_download(url, *args, **kwargs):
        calls.append(url)
        return OrderedDict((k, v.clone()) for k, v in state.items())

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pytorch_fid_inception, "load_state_dict_from_url", fake_download)
        model = pytorch_fid_inception.InceptionV3([3], resize_input=False, normalize_input=True)
    assert len(calls) == 1 and calls[0].endswith(inc.WEIGHTS_FILE)
    return model.eval()


def test_names_and_shapes_match_pytorch_fid(state):
    ours = {k: tuple(v.shape) for k, v in inc.FIDInceptionV3().state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in state.items()}
    assert ours == theirs
    assert list(ours) == list(theirs)
    model = inc.FIDInceptionV3()
    model.load_state_dict(state, strict=True)


def test_onnx_matches_pytorch_fid(exported, reference_model, state):
    x = torch.rand(2, 3, inc.SIZE, inc.SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        (ref_pool,) = reference_model(x)
    ref_pool = ref_pool.squeeze(-1).squeeze(-1).double().numpy()
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    pool, logits, unbiased = session.run(list(inc.OUTPUT_NAMES), {"image": x.numpy()})
    assert pool.shape == (2, 2048) and logits.shape == (2, 1008) and unbiased.shape == (2, 1008)
    # the random weights keep the features O(1): the comparison means something
    assert 0.05 < float(np.abs(ref_pool).mean()) < 20.0 and np.isfinite(ref_pool).all()
    diff = float(np.max(np.abs(pool - ref_pool)))
    print(f"max |onnx pool - pytorch-fid pool| = {diff:.3g}")
    assert diff <= TOL
    w, b = state["fc.weight"].double().numpy(), state["fc.bias"].double().numpy()
    assert np.max(np.abs(unbiased - ref_pool @ w.T)) <= TOL  # torch-fidelity's logits_unbiased (IS)
    assert np.max(np.abs(logits - (ref_pool @ w.T + b))) <= TOL  # Inception3.fc


def test_export_record(exported, weights):
    info = json.loads((exported.parent / inc.JSON_NAME).read_text())
    assert info["source"] == inc.WEIGHTS_FILE
    assert info["source_sha256"] == inc.sha256(weights)
    assert info["source_is_published_file"] is False  # random weights
    assert "[0, 1]" in info["input"] and "299" in info["input"]
    assert info["outputs"] == {"pool": 2048, "logits": 1008, "logits_unbiased": 1008}
    assert max(info["check"]["max_abs_diff"].values()) <= TOL
    proto = onnx.load(str(exported))
    assert proto.opset_import[0].version == inc.DEFAULT_OPSET
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert {p.key: p.value for p in proto.metadata_props}["source_sha256"] == info["source_sha256"]
    assert sorted(p.name for p in exported.parent.iterdir()) == [inc.JSON_NAME, inc.ONNX_NAME]


def test_load_weights_pth_and_safetensors(weights, state, tmp_path):
    loaded = inc.load_weights(weights)
    assert list(loaded) == list(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    copy = inc.convert(weights, tmp_path / "inception.safetensors")
    again = inc.load_weights(copy)
    assert all(torch.equal(again[k], state[k]) for k in state)
    # a file without BatchNorm counters (older torch) still loads strictly
    no_counters = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(no_counters, tmp_path / "old.pth")
    inc.FIDInceptionV3().load_state_dict(inc.load_weights(tmp_path / "old.pth"), strict=True)


@pytest.mark.parametrize("fault", FAULTS)
def test_load_weights_names_file_and_key(state, tmp_path, fault):
    path, key = faulty_weights(state, fault, "Mixed_6c.branch7x7dbl_3.conv.weight", ("AuxLogits.fc.weight", torch.zeros(1000, 768)), tmp_path, ".pth")
    with pytest.raises(CheckpointError) as err:
        inc.load_weights(path)
    assert str(path) in str(err.value) and key in str(err.value)


def test_load_weights_nonexistent_and_garbage(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist") as err:
        inc.load_weights(tmp_path / "nope.pth")
    assert inc.WEIGHTS_FILE in str(err.value)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="junk.pth"):
        inc.load_weights(junk)


@pytest.mark.parametrize("extra", [[], ["--weights", "absent.pth"]])
def test_cli_without_weights_exits_2(tmp_path, capsys, extra):
    rc = inc.main(["--out", str(tmp_path / "out"), *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1
    assert inc.WEIGHTS_FILE in err and "pytorch-fid" in err and "digits" in err
    assert not (tmp_path / "out").exists()
