"""``python -m runtime.evaluate``: metrics of an exported generator through the runtime alone, with
the built-in digits feature network; one resize path for every picture."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from PIL import Image

from core.metrics.frechet import frechet_distance
from core.metrics import features
from runtime import evaluate


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    import export.pipeline as exporter
    import torch_impl

    root = tmp_path_factory.mktemp("evaluate")
    model = torch_impl.build("conv_vae", preset="tiny")
    ckpt = torch_impl.save_model(model, root / "model.safetensors", step=1)
    logging.getLogger("export.pipeline").setLevel(logging.WARNING)
    assert all(r.passed for r in exporter.export_checkpoint(ckpt, root / "onnx", via="torch"))
    return root / "onnx"


def test_prepare_is_one_resize_for_every_path(tmp_path):
    """The same pictures give the same features whether they arrive as arrays (generation) or as
    files read by the data loader at the model's size (real data)."""
    import runtime

    rng = np.random.default_rng(0)
    pictures = rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    folder = tmp_path / "data" / "x"
    folder.mkdir(parents=True)
    for i, p in enumerate(pictures):
        Image.fromarray(p).save(folder / f"{i}.png")

    class Session:  # what real_images reads of a session
        image_shape, is_video = (16, 16, 3), False

    loaded = evaluate.real_images(str(tmp_path / "data"), Session(), 6, seed=0)
    assert sorted(map(bytes, loaded)) == sorted(map(bytes, pictures))  # the same pixels, shuffled
    network = features.digits()
    a, _ = features.extract(pictures, network)
    b, _ = features.extract(loaded, network)
    order = [next(i for i, p in enumerate(pictures) if np.array_equal(p, q)) for q in loaded]
    np.testing.assert_array_equal(a[order], b)
    # greyscale (C = 1) pictures are the luma of the same RGB: one channel in, the same features out
    grey = np.repeat(pictures[..., :1], 3, axis=-1)
    np.testing.assert_allclose(features.extract(pictures[..., :1], network)[0],
                               features.extract(grey, network)[0], rtol=1e-6, atol=1e-6)
    assert runtime  # the package imports without a framework


def test_evaluate_writes_metrics_and_features(exported, tmp_path, capsys):
    out = tmp_path / "eval.json"
    rc = evaluate.main([str(exported), "--n", "256", "--json", str(out), "--save-features", str(tmp_path / "f")])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["features"]["network"] == "digits" and report["features"]["dim"] == 128
    assert set(report["metrics"]) == {"is", "fid", "kid", "precision", "recall", "density", "coverage"}
    assert "bicubic" in report["resize"] and report["n"] == 256
    real, fake = np.load(tmp_path / "f" / "real.npy"), np.load(tmp_path / "f" / "fake.npy")
    assert real.shape == fake.shape == (256, 128) and real.dtype == np.float64
    # anyone can recompute a metric from the saved features
    assert frechet_distance(real, fake) == pytest.approx(report["metrics"]["fid"]["value"], rel=1e-12)
    assert 1.0 <= report["metrics"]["is"]["value"] <= 10.0
    assert 0.0 <= report["metrics"]["precision"]["value"] <= 1.0
    assert "not comparable with Inception" in capsys.readouterr().out


def test_real_against_real_is_far_closer_than_an_untrained_model(exported, tmp_path):
    """The floor: two disjoint halves of the digits against each other, next to the untrained model."""
    from core.data import open_dataset
    from core.images import to_uint8

    data = open_dataset("digits", 16, 3)
    images = to_uint8(data.load(np.random.default_rng(0).permutation(len(data))[:512]))
    network = features.digits()
    a, _ = features.extract(images[:256], network)
    b, _ = features.extract(images[256:], network)
    report = evaluate.evaluate(evaluate.build_parser().parse_args([str(exported), "--n", "256", "--metrics", "fid"]))
    assert frechet_distance(a, b) < 0.5 * report["metrics"]["fid"]["value"]


@pytest.mark.parametrize("argv, needle", [
    (["--metrics", "fid,nope"], "--metrics"),
    (["--n", "1"], "--n must be between 2"),
    (["--seed", "-1"], "seed"),
])
def test_bad_arguments_are_refused_by_name(exported, argv, needle, capsys):
    assert evaluate.main([str(exported), *argv]) == 2
    assert needle in capsys.readouterr().err


def test_inception_features_need_the_exported_network(exported, capsys):
    assert evaluate.main([str(exported), "--features", "inception"]) == 2
    assert "pt_inception-2015-12-05-6726825d.pth" in capsys.readouterr().err
    assert evaluate.main([str(exported), "--features", "inception", "--inception-weights", "weights.pth"]) == 2
    assert "export.inception" in capsys.readouterr().err


def test_the_real_set_has_exactly_n_pictures_for_any_n(tmp_path):
    class Session:
        image_shape, is_video = (16, 16, 3), False

    for n in (5, 300):
        assert len(evaluate.real_images("digits", Session(), n, seed=0)) == n
