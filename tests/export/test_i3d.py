"""export.i3d: FVD's I3D, checked against the cd-fvd wheel's port (the TATS network) with random
weights, and FVD's formula checked against cd-fvd's on the same features.

The real weights (i3d_pretrained_400.pt) are in no wheel and nothing is downloaded: cd-fvd's
``InceptionI3d(400, in_channels=3)`` is built from its own code and given a random state dict with
sane scales; the same dict, saved with torch.save, goes through our ``load_weights`` ->
``export_i3d`` -> onnxruntime (via the toolkit's clip path, :func:`core.metrics.features.extract_clips`).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

import export.i3d as i3d
from core.errors import CheckpointError
from core.metrics import features
from core.metrics.frechet import frechet_distance, frechet_from_stats
from tests.export.feature_weights import FAULTS, faulty_weights, random_state

pytorch_i3d = pytest.importorskip("cdfvd.third_party.i3d.pytorch_i3d")
TOL = 1e-4


@pytest.fixture(scope="module")
def state() -> OrderedDict[str, torch.Tensor]:
    return random_state(pytorch_i3d.InceptionI3d(400, in_channels=3).state_dict(), seed=3)


@pytest.fixture(scope="module")
def weights(state, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("w") / i3d.WEIGHTS_FILE
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def exported(weights, tmp_path_factory) -> Path:
    return i3d.export_i3d(weights, tmp_path_factory.mktemp("onnx"))


def test_names_and_shapes_match_the_port(state):
    ours = {k: tuple(v.shape) for k, v in i3d.I3D().state_dict().items()}
    assert ours == {k: tuple(v.shape) for k, v in state.items()}
    i3d.I3D().load_state_dict(state, strict=True)


def test_clip_features_match_the_port(exported, state):
    """uint8 clips at 224 x 224 (no resize on either side) -> our ONNX through the toolkit's clip path
    against cd-fvd's preprocessing ([-1, 1]) and network."""
    from cdfvd.third_party.i3d.utils import preprocess_i3d

    rng = np.random.default_rng(0)
    clips = rng.integers(0, 256, (3, i3d.FRAMES, i3d.SIZE, i3d.SIZE, 3), dtype=np.uint8)
    reference = pytorch_i3d.InceptionI3d(400, in_channels=3)
    reference.load_state_dict(state)
    with torch.no_grad():
        expected = reference.eval()(preprocess_i3d(clips)).double().numpy()
    network = features.i3d(exported)
    got = features.extract_clips(clips, network, batch_size=2)  # two ONNX calls: the batch axis is dynamic
    assert got.shape == (3, 400) and got.dtype == np.float64
    assert 0.05 < float(np.abs(expected).mean()) < 50.0  # the random weights keep the logits O(1)
    diff = float(np.max(np.abs(got - expected)))
    print(f"max |onnx i3d - cd-fvd i3d| = {diff:.3g}")
    assert diff <= TOL


def test_clips_longer_than_16_frames_use_the_first_16(exported):
    rng = np.random.default_rng(1)
    clips = rng.integers(0, 256, (1, i3d.FRAMES + 4, 32, 32, 3), dtype=np.uint8)
    network = features.i3d(exported)
    np.testing.assert_array_equal(features.extract_clips(clips, network),
                                  features.extract_clips(clips[:, : i3d.FRAMES], network))
    with pytest.raises(ValueError, match="T >= 16"):
        features.extract_clips(clips[:, :8], network)


def test_fvd_formula_matches_cd_fvd():
    """cd-fvd fits biased covariances (divides by n); with the same covariances our Fréchet distance
    gives its number. Ours, like TF-GAN's (which the FVD reference calls), divides by n - 1."""
    from cdfvd.fvd import cdfvd
    from cdfvd.utils.metric_utils import FeatureStats

    rng = np.random.default_rng(2)
    real = rng.normal(size=(600, 400)) @ rng.normal(size=(400, 400)) * 0.05
    fake = rng.normal(0.1, 1.0, size=(500, 400)) @ rng.normal(size=(400, 400)) * 0.05
    stats = []
    for x in (real, fake):
        s = FeatureStats(capture_mean_cov=True)
        s.append(x.astype(np.float32))
        stats.append(s)
    theirs = float(cdfvd.compute_fvd_from_stats(None, fake_stats=stats[1], real_stats=stats[0]))
    (mr, cr), (mf, cf) = stats[0].get_mean_cov(), stats[1].get_mean_cov()
    ours = frechet_from_stats(mr, cr, mf, cf)
    assert ours == pytest.approx(theirs, rel=1e-6)
    unbiased = frechet_distance(real.astype(np.float32).astype(np.float64), fake.astype(np.float32).astype(np.float64))
    assert unbiased != pytest.approx(theirs, rel=1e-6)  # the two conventions do differ, by O(1/n)
    assert unbiased == pytest.approx(theirs, rel=0.05)


def test_export_record(exported, weights):
    info = json.loads((exported.parent / i3d.JSON_NAME).read_text())
    assert info["source"] == i3d.WEIGHTS_FILE and info["source_is_published_file"] is None
    assert info["frames"] == 16 and info["outputs"] == {"logits": 400}
    assert max(info["check"]["max_abs_diff"].values()) <= TOL
    assert sorted(p.name for p in exported.parent.iterdir()) == [i3d.JSON_NAME, i3d.ONNX_NAME]


@pytest.mark.parametrize("fault", FAULTS)
def test_load_weights_names_file_and_key(state, tmp_path, fault):
    path, key = faulty_weights(state, fault, "Mixed_4d.b1b.conv3d.weight", ("extra_head.weight", torch.zeros(10, 4)), tmp_path, ".pt")
    with pytest.raises(CheckpointError) as err:
        i3d.load_weights(path)
    assert str(path) in str(err.value) and key in str(err.value)


def test_cli_without_weights_exits_2_and_says_what_is_needed(tmp_path, capsys):
    assert i3d.main(["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert i3d.WEIGHTS_FILE in err and "TATS" in err and "FVD" in err
    assert not (tmp_path / "out").exists()
