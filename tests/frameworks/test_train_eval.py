"""``--eval-every``: metrics of fixed-noise samples during training (of reconstructions for a model
without a prior), in the history, TensorBoard and the best checkpoint, with the same numbers
``core.metrics.suite`` gives on the same pictures."""

from __future__ import annotations

import importlib
import json
import logging

import numpy as np
import pytest

from core.checkpoint import load_checkpoint
from core.tblog import read_scalars

ARGS = ["--model", "conv_vae", "--preset", "tiny", "--batch-size", "32", "--no-progress", "--log-level", "WARNING",
        "--samples", "4", "--eval-n", "192", "--eval-metrics", "fid,pr"]


def _train(framework: str, argv: list[str]) -> int:
    return importlib.import_module(f"{framework}_impl.train").main(argv)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("train-eval") / "run"
    assert _train("torch", [*ARGS, "--steps", "30", "--eval-every", "10", "--out", str(out)]) == 0
    return out


def test_metrics_are_in_the_history_and_tensorboard(run):
    history = json.loads((run / "train_state.json").read_text())["history"]
    evaluated = [h for h in history if "eval_fid" in h]
    assert [h["step"] for h in evaluated] == [10, 20, 30]
    assert all({"eval_precision", "eval_recall"} <= set(h) for h in evaluated)
    assert all(h["eval_fid"] >= 0 and 0 <= h["eval_precision"] <= 1 for h in evaluated)
    scalars = read_scalars(run / "tb")
    assert [s for s, _ in scalars["eval/fid"]] == [10, 20, 30]
    np.testing.assert_allclose([v for _, v in scalars["eval/fid"]], [h["eval_fid"] for h in evaluated], rtol=1e-6)


def test_best_checkpoint_is_the_step_with_the_lowest_fid_and_reproduces_it(run):
    import torch_impl
    from core.data import open_dataset
    from core.train_eval import TrainingEvaluation
    from torch_impl.parts import run_part

    history = json.loads((run / "train_state.json").read_text())["history"]
    evaluated = [h for h in history if "eval_fid" in h]
    best = min(evaluated, key=lambda h: h["eval_fid"])
    ckpt = load_checkpoint(run / "checkpoint_best.safetensors")
    assert ckpt.step == best["step"]
    model = torch_impl.load_model(run / "checkpoint_best.safetensors")
    cfg = model.config
    evaluation = TrainingEvaluation(cfg, open_dataset("digits", cfg.image_size, cfg.in_channels), 192, "fid,pr", 0)
    values = evaluation(lambda z: run_part(model, "decoder", z)[0])
    assert values["fid"] == pytest.approx(best["eval_fid"], rel=1e-4)
    assert values["precision"] == pytest.approx(best["eval_precision"], abs=1 / 192 + 1e-9)


def test_resume_keeps_the_best_so_far(run, tmp_path):
    import shutil

    copy = tmp_path / "resumed"
    shutil.copytree(run, copy)
    before = load_checkpoint(copy / "checkpoint_best.safetensors").step
    assert _train("torch", ["--resume", "--steps", "40", "--eval-every", "10", "--eval-n", "192",
                            "--eval-metrics", "fid,pr", "--no-progress", "--out", str(copy)]) == 0
    history = json.loads((copy / "train_state.json").read_text())["history"]
    fids = {h["step"]: h["eval_fid"] for h in history if "eval_fid" in h}
    assert sorted(fids) == [10, 20, 30, 40]
    expected = min(fids, key=fids.get)
    assert load_checkpoint(copy / "checkpoint_best.safetensors").step == expected
    if expected != 40:
        assert expected == before


def test_an_autoencoder_is_measured_on_its_reconstructions(tmp_path, caplog):
    """No prior to sample: the evaluation reconstructs the data the reference set is not, and the best
    checkpoint's reconstructions reproduce the logged numbers."""
    import torch_impl
    from core.data import open_dataset
    from core.metrics import features
    from core.metrics.suite import compute
    from core.registry import data_range
    from core.train_eval import REAL_KEY, RECONSTRUCTIONS, TrainingEvaluation
    from torch_impl.parts import run_part

    out = tmp_path / "ae"
    with caplog.at_level(logging.INFO, logger="age.train"):
        assert _train("torch", ["--model", "conv_ae", "--preset", "tiny", "--batch-size", "32", "--no-progress",
                                "--samples", "4", "--eval-n", "192", "--eval-metrics", "fid,pr", "--steps", "6",
                                "--eval-every", "3", "--out", str(out)]) == 0
    assert "--eval-every: fid,pr of 192 reconstructions" in caplog.text
    history = json.loads((out / "train_state.json").read_text())["history"]
    evaluated = {h["step"]: h for h in history if "eval_fid" in h}
    assert sorted(evaluated) == [3, 6]
    assert all(h["eval_fid"] > 0 and 0 <= h["eval_recall"] <= 1 for h in evaluated.values())
    best = load_checkpoint(out / "checkpoint_best.safetensors").step
    assert evaluated[best]["eval_fid"] == min(h["eval_fid"] for h in evaluated.values())

    model = torch_impl.load_model(out / "checkpoint_best.safetensors")
    cfg = model.config
    low, high = data_range(cfg)
    data = open_dataset("digits", cfg.image_size, cfg.in_channels)
    evaluation = TrainingEvaluation(cfg, data, 192, "fid,pr", 0)
    assert evaluation.source == RECONSTRUCTIONS and evaluation.inputs.dtype == np.uint8

    def reconstruct(x):
        code = run_part(model, "encoder", low + (high - low) * x)[0]
        return (run_part(model, "decoder", code)[0] - low) / (high - low)

    assert evaluation(reconstruct)["fid"] == pytest.approx(evaluated[best]["eval_fid"], rel=1e-4)
    # a perfect reconstruction scores two disjoint halves of one draw against each other (the report's floor)
    pictures = features.draw_pictures(data, 2 * 192, [0, REAL_KEY])
    halves = [features.extract(p, features.digits()) for p in (pictures[:192], pictures[192:])]
    assert evaluation(lambda x: x)["fid"] == pytest.approx(compute(("fid",), *halves)["fid"]["value"], rel=1e-9)


def test_a_model_with_neither_prior_nor_encoder_is_refused(monkeypatch):
    import core.train_eval as train_eval
    from core.errors import ConfigError
    from core.registry import make_config

    cfg = make_config("conv_ae", "tiny")
    monkeypatch.setattr(train_eval, "runtime_facts", lambda config: {"reconstructs": False})
    with pytest.raises(ConfigError, match="--eval-every.*neither a prior.*nor an encoder"):
        train_eval.TrainingEvaluation(cfg, None, 16, "fid", 0)


@pytest.mark.parametrize("argv, needle", [
    (["--model", "conv_vae", "--eval-every", "5", "--eval-metrics", "fid,bogus"], "--eval-metrics"),
    (["--model", "conv_vae", "--eval-every", "5", "--eval-n", "1"], "--eval-n"),
    (["--model", "conv_vae", "--eval-every", "-1"], "--eval-every"),
])
def test_bad_evaluation_flags_are_refused_by_name(tmp_path, caplog, argv, needle):
    assert _train("keras", [*argv, "--preset", "tiny", "--steps", "2", "--no-progress", "--out",
                            str(tmp_path / "run")]) == 2
    assert needle in caplog.text


def test_a_video_model_is_measured_per_frame(tmp_path, caplog):
    """Clips: one frame a clip (frame i mod T of clip i), for the samples and the reference clips."""
    from core.metrics import features
    from core.registry import MODELS, make_config
    from core.train_eval import REAL_KEY, SAMPLES, TrainingEvaluation
    from core.video_data import open_video_dataset

    video = next(name for name, spec in MODELS.items() if spec.data == "video" and spec.prior != "none")
    out = tmp_path / "video"
    with caplog.at_level(logging.INFO, logger="age.train"):
        assert _train("torch", ["--model", video, "--preset", "tiny", "--batch-size", "8", "--no-progress",
                                "--samples", "4", "--eval-n", "64", "--eval-metrics", "fid,kid", "--steps", "4",
                                "--eval-every", "2", "--out", str(out)]) == 0
    assert "--eval-every: fid,kid of 64 samples against 64 training clips, per frame" in caplog.text
    history = json.loads((out / "train_state.json").read_text())["history"]
    evaluated = {h["step"]: h for h in history if "eval_fid" in h}
    assert sorted(evaluated) == [2, 4] and all(np.isfinite(h["eval_fid"]) and h["eval_fid"] > 0
                                                for h in evaluated.values())
    cfg = make_config(video, "tiny")
    data = open_video_dataset("digits", cfg.num_frames, cfg.image_size, cfg.in_channels)
    evaluation = TrainingEvaluation(cfg, data, 64, "fid", 0)
    assert evaluation.source == SAMPLES and evaluation.per_frame
    clips = features.draw_pictures(data, 64, [0, REAL_KEY])
    np.testing.assert_array_equal(evaluation.real[0],
                                  features.extract(features.frame_sample(clips), features.digits())[0])
