"""vaegan through the training CLIs of both frameworks, in every ParamTanh mode, then export and runtime.

One short run per (framework, mode) (``--preset tiny --steps 12 --batch-size 8 --n-critic 3`` on the
embedded digits) is shared by the module. The trainer class is wrapped only to snapshot the model's
initial tensors, so "alpha was learned" compares against the very weights training started from.
"""

from __future__ import annotations

import importlib
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.checkpoint import load_checkpoint, read_safetensors
from core.models.vaegan import TANH_MODES
from core.param_tanh import TIME_INIT
from core.registry import get_model_spec, make_config
from core.tblog import read_scalars
from tests.conftest import part_inputs

FRAMEWORKS = ("torch", "keras")
MODES = TANH_MODES
STEPS, BATCH, N_CRITIC = 12, 8, 3
GENERATOR_STEPS = [s for s in range(STEPS) if (s + 1) % N_CRITIC == 0]  # 0-based steps 2, 5, 8, 11
LOSS_KEYS = {"critic", "wasserstein", "gp", "generator", "adversarial", "recon", "kl", "kl_weight"}


@dataclass
class Run:
    framework: str
    mode: str
    root: Path
    rc: int = -1
    initial: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint.safetensors"

    @property
    def config(self):
        return make_config("vaegan", "tiny", tanh_mode=self.mode)


def _module(framework: str):
    return importlib.import_module(f"{framework}_impl.train")


def _argv(out: Path, mode: str, steps: int = STEPS, *extra: str) -> list[str]:
    return ["--model", "vaegan", "--tanh-mode", mode, "--preset", "tiny", "--steps", str(steps),
            "--batch-size", str(BATCH), "--n-critic", str(N_CRITIC), "--no-progress", "--out", str(out),
            "--log-level", "WARNING", *extra]


def _model_tensors(framework: str, model) -> dict[str, np.ndarray]:
    return importlib.import_module(f"{framework}_impl.checkpoint").model_tensors(model)


def _train(framework: str, argv: list[str], record: Run | None = None) -> int:
    """``<framework>_impl.train.main(argv)``; with ``record``, the initial weights are kept in it."""
    module = _module(framework)
    if record is None:
        return module.main(argv)
    base = module.Trainer

    class Recording(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            record.initial = _model_tensors(framework, self.model)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(module, "Trainer", Recording)
        return module.main(argv)


_RUNS: dict[tuple[str, str], Run] = {}


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("vaegan-runs")


@pytest.fixture
def trained(request, runs_root):
    """The (framework, mode) run of the test's parameters, trained on first use."""
    def get(framework: str, mode: str) -> Run:
        key = (framework, mode)
        if key not in _RUNS:
            run = Run(framework, mode, runs_root / f"{framework}-{mode}")
            run.rc = _train(framework, _argv(run.root, mode), record=run)
            _RUNS[key] = run
        return _RUNS[key]

    return get


def _other(framework: str) -> str:
    return "keras" if framework == "torch" else "torch"


def _histogram_tags(logdir: Path) -> dict[str, list[tuple[int, int]]]:
    """{tag: [(step, sample count), ...]} of every histogram in the event files under ``logdir``."""
    import io
    import struct

    from tensorboard.compat.proto import event_pb2

    out: dict[str, list[tuple[int, int]]] = {}
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        data = io.BytesIO(path.read_bytes())
        while len(header := data.read(12)) == 12:
            (length,) = struct.unpack("<Q", header[:8])
            event = event_pb2.Event.FromString(data.read(length))
            data.read(4)
            for value in event.summary.value:
                if value.HasField("histo"):
                    out.setdefault(value.tag, []).append((event.step, int(value.histo.num)))
    return out


def _gif_frames(path: Path) -> tuple[int, list[np.ndarray]]:
    with Image.open(path) as im:
        assert im.format == "GIF"
        frames = []
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB")))
        return im.n_frames, frames


# --------------------------------------------------------------------------- one run per framework and mode


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_short_run(framework, mode, trained):
    run = trained(framework, mode)
    cfg = run.config
    assert run.rc == 0
    ckpt = load_checkpoint(run.checkpoint, "vaegan")
    assert (ckpt.framework, ckpt.step, ckpt.config) == (framework, STEPS, cfg)

    # losses: finite, every term logged at every step; generator terms appear from the first generator step
    state = json.loads((run.root / "train_state.json").read_text())
    history = state["history"]
    assert state["step"] == STEPS and [h["step"] for h in history] == list(range(1, STEPS + 1))
    keys = LOSS_KEYS | ({"alpha"} if mode == "single" else set())
    for h in history:
        assert set(h) == keys | {"step"}
        assert all(np.isfinite(h[k]) for k in keys), h
    assert all(h["generator"] == 0.0 for h in history[: GENERATOR_STEPS[0]])
    assert all(h["recon"] > 0 and h["gp"] >= 0 for h in history[GENERATOR_STEPS[0]:])
    for h in history:
        assert h["critic"] == pytest.approx(-h["wasserstein"] + 10.0 * h["gp"], rel=1e-4, abs=1e-5)
    # generator terms change only on generator steps
    for prev, cur in zip(history, history[1:]):
        if cur["step"] - 1 not in GENERATOR_STEPS:
            assert cur["generator"] == prev["generator"], cur["step"]
    scalars = read_scalars(run.root / "tb")
    np.testing.assert_allclose([v for _, v in scalars["loss/critic"]], [h["critic"] for h in history], rtol=1e-6)

    # alpha was learned: the ParamTanh tensors left their initial values
    init, final = run.initial, ckpt.tensors
    assert set(init) == set(final)
    tanh = sorted(n for n in final if n.startswith("param_tanh."))
    chw = (cfg.in_channels, cfg.image_size, cfg.image_size)
    if mode == "single":
        assert tanh == ["param_tanh.alpha"]
        np.testing.assert_array_equal(init["param_tanh.alpha"], np.ones(1, np.float32))
        assert final["param_tanh.alpha"][0] != 1.0
        assert history[-1]["alpha"] == pytest.approx(float(final["param_tanh.alpha"][0]), abs=1e-7)
        assert len({h["alpha"] for h in history}) > 1
    elif mode == "matrix":
        np.testing.assert_array_equal(init["param_tanh.alpha"], np.ones(chw, np.float32))
        assert np.any(final["param_tanh.alpha"] != 1.0)
    elif mode == "time":
        assert tanh == sorted(f"param_tanh.{k}" for k in TIME_INIT)
        for name, value in TIME_INIT.items():
            np.testing.assert_array_equal(init[f"param_tanh.{name}"], np.full(chw, value, np.float32))
            assert np.any(final[f"param_tanh.{name}"] != value), name
    else:
        head = "param_tanh.predictor.head.weight"
        assert head in tanh
        assert not np.array_equal(init[head], final[head])
        changed = [n for n in tanh if not np.array_equal(init[n], final[n])]
        assert len(changed) == len(tanh), sorted(set(tanh) - set(changed))
    assert not any(np.array_equal(init[n], final[n]) for n in ("critic.score.weight", "fc_mu.weight"))

    # the checkpoint loads in the other framework, and every part runs there as it does here
    parts = get_model_spec("vaegan").parts(cfg)
    outs = {}
    for fw in (framework, _other(framework)):
        model = importlib.import_module(f"{fw}_impl").load_model(run.checkpoint)
        run_part = importlib.import_module(f"{fw}_impl.parts").run_part
        outs[fw] = {name: run_part(model, name, *part_inputs(part, 2, seed=3)) for name, part in parts.items()}
    for name, part in parts.items():
        for spec_out, a, b in zip(part.outputs, outs[framework][name], outs[_other(framework)][name]):
            assert a.shape == b.shape == spec_out.concrete_shape(2)
            assert np.all(np.isfinite(a)) and float(np.max(np.abs(a - b))) <= 1e-4, (name, spec_out.name)

    # per-epoch outputs: a GIF of the video generator, TensorBoard alpha summaries
    samples = sorted(p.name for p in (run.root / "samples").iterdir())
    if mode == "time":
        from core.images import mp4_available

        assert samples == ["epoch_001.gif", *(["epoch_001.mp4"] if mp4_available() else []), "epoch_001.png",
                           "epoch_001_frames.png"]
        n_frames, frames = _gif_frames(run.root / "samples" / "epoch_001.gif")
        assert n_frames == cfg.num_frames
        assert frames[0].shape == (4 * (cfg.image_size + 2) + 2,) * 2 + (3,)  # 16 samples in a 4x4 grid
        assert any(not np.array_equal(frames[0], f) for f in frames[1:])
    else:
        assert samples == ["epoch_001.png"]
    assert [s for s, _ in scalars["alpha/mean"]] == [STEPS]
    histograms = _histogram_tags(run.root / "tb")
    if mode == "single":
        assert "alpha" not in histograms
        assert scalars["alpha/mean"][0][1] == pytest.approx(float(final["param_tanh.alpha"][0]), rel=1e-6)
    else:
        n_alpha = {"matrix": int(np.prod(chw)), "time": cfg.num_frames * int(np.prod(chw)),
                   "transformer": 16 * int(np.prod(chw))}[mode]  # transformer: one alpha per sample of the grid
        assert histograms["alpha"] == [(STEPS, n_alpha)]


# --------------------------------------------------------------------------- export and runtime


@pytest.fixture(scope="module")
def exports(tmp_path_factory, runs_root) -> dict[tuple[str, str], Path]:
    """The torch time-mode run and the Keras transformer run, each exported via both frameworks."""
    import export.onnx as exporter

    sources = {"time": ("torch", "time"), "transformer": ("keras", "transformer")}
    out = {}
    for mode, key in sources.items():
        if key not in _RUNS:
            run = Run(*key, runs_root / f"{key[0]}-{key[1]}")
            run.rc = _train(key[0], _argv(run.root, mode), record=run)
            _RUNS[key] = run
        assert _RUNS[key].rc == 0
        for via in FRAMEWORKS:
            target = tmp_path_factory.mktemp(f"onnx-{mode}-{via}")
            rc = exporter.main([str(_RUNS[key].checkpoint), "--out", str(target), "--via", via,
                                "--log-level", "WARNING"])
            assert rc == 0, (mode, via)
            out[(mode, via)] = target
    return out


@pytest.mark.parametrize("via", FRAMEWORKS)
def test_export_writes_every_part(via, exports):
    assert sorted(p.name for p in exports[("time", via)].iterdir()) == [
        "critic.onnx", "encoder.onnx", "video_generator.onnx"]
    assert sorted(p.name for p in exports[("transformer", via)].iterdir()) == [
        "critic.onnx", "encoder.onnx", "generator.onnx"]


@pytest.mark.parametrize("via", FRAMEWORKS)
def test_runtime_writes_an_animated_gif_of_the_video_generator(via, exports, tmp_path):
    import runtime.generate as generate

    cfg = make_config("vaegan", "tiny", tanh_mode="time")
    gif = tmp_path / "x.gif"
    assert generate.main([str(exports[("time", via)] / "video_generator.onnx"), "--n", "2", "--seed", "0",
                          "--out", str(gif), "--log-level", "WARNING"]) == 0
    n_frames, frames = _gif_frames(gif)
    assert n_frames == cfg.num_frames
    assert frames[0].shape == (cfg.image_size + 4, 2 * (cfg.image_size + 2) + 2, 3)  # 2 videos side by side
    assert any(not np.array_equal(frames[0], f) for f in frames[1:])
    # the two exports are of the same checkpoint: same frames
    other = tmp_path / "other.gif"
    assert generate.main([str(exports[("time", _other(via))] / "video_generator.onnx"), "--n", "2",
                          "--seed", "0", "--out", str(other), "--log-level", "WARNING"]) == 0
    assert all(np.abs(a.astype(int) - b).max() <= 1 for a, b in zip(frames, _gif_frames(other)[1]))


def test_runtime_writes_an_mp4_that_decodes_to_the_npy_frames(exports, tmp_path):
    """.mp4 (H.264 via imageio-ffmpeg): T frames of the grid, padded to even sides, close to the
    exact frames the .npy output holds (lossy codec: small mean error)."""
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    import runtime.generate as generate
    from core.images import make_grid

    model = str(exports[("time", "torch")] / "video_generator.onnx")
    cfg = make_config("vaegan", "tiny", tanh_mode="time")
    mp4, npy = tmp_path / "clip.mp4", tmp_path / "clip.npy"
    for out in (mp4, npy):
        assert generate.main([model, "--n", "2", "--seed", "0", "--fps", "4", "--out", str(out),
                              "--log-level", "WARNING"]) == 0
    videos = np.load(npy)
    reader = imageio_ffmpeg.read_frames(str(mp4))
    meta = reader.__next__()
    w, h = meta["size"]
    decoded = [np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in reader]
    assert len(decoded) == cfg.num_frames and meta["fps"] == 4
    for t, frame in enumerate(decoded):
        grid = make_grid(videos[:, t])
        assert (h, w) == (grid.shape[0] + grid.shape[0] % 2, grid.shape[1] + grid.shape[1] % 2)
        err = np.abs(frame[:grid.shape[0], :grid.shape[1]].astype(int) - grid).mean()
        assert err < 8, (t, err)


def test_mp4_without_imageio_ffmpeg_is_a_clear_error(exports, tmp_path, monkeypatch, capsys, caplog):
    import runtime.generate as generate
    from core import images

    monkeypatch.setattr(images, "mp4_available", lambda: False)
    out = tmp_path / "clip.mp4"
    rc = generate.main([str(exports[("time", "torch")] / "video_generator.onnx"), "--n", "2", "--out", str(out)])
    assert rc == 2 and not out.exists()
    assert "imageio-ffmpeg" in caplog.text + capsys.readouterr().err


def test_runtime_refuses_a_gif_from_an_image_generator(exports, tmp_path, caplog, capsys):
    import runtime.generate as generate

    gif = tmp_path / "y.gif"
    caplog.set_level(logging.ERROR, logger="runtime.generate")
    rc = generate.main([str(exports[("transformer", "keras")] / "generator.onnx"), "--n", "2", "--seed", "0",
                        "--out", str(gif)])
    assert rc == 2
    assert "not videos" in caplog.text + capsys.readouterr().err
    assert not gif.exists()


def test_server_serves_models_trained_and_exported_by_either_framework(exports, tmp_path):
    """runtime.serve over a repository of real exports: the torch-trained time model exported via
    torch and via Keras (same checkpoint: same frames), and the Keras-trained transformer model."""
    import io

    from runtime.server import Settings, create_app
    from tests.runtime.test_serve import LiveServer

    repo = tmp_path / "repo"
    for name, key in {"clips_torch": ("time", "torch"), "clips_keras": ("time", "keras"),
                      "tx_keras": ("transformer", "keras")}.items():
        shutil.copytree(exports[key], repo / name)
    cfg = make_config("vaegan", "tiny", tanh_mode="time")
    with LiveServer(create_app(repo, Settings(provider="cpu"))) as live:
        live.wait_ready()
        client = live.client
        models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
        assert sorted(models) == ["clips_keras", "clips_torch", "tx_keras"]
        assert models["clips_torch"]["kind"] == models["clips_keras"]["kind"] == "video"
        assert models["tx_keras"]["kind"] == "image" and models["tx_keras"]["variations"]

        clips = {}
        for name in ("clips_torch", "clips_keras"):
            r = client.post(f"/v1/models/{name}/generate", json={"n": 3, "seed": 7, "format": "npy"})
            assert r.status_code == 200, r.text
            clips[name] = np.load(io.BytesIO(r.content))
        assert clips["clips_torch"].shape == (3, cfg.num_frames, cfg.image_size, cfg.image_size, 3)
        assert np.abs(clips["clips_torch"].astype(int) - clips["clips_keras"]).max() <= 1
        gif = client.post("/v1/models/clips_keras/generate", json={"n": 2, "seed": 7})
        assert gif.headers["content-type"] == "image/gif"
        png = client.post("/v1/models/tx_keras/generate", json={"n": 4, "seed": 0, "format": "png"})
        assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
        refused = client.post("/v1/models/tx_keras/generate", json={"n": 1, "format": "gif"})
        assert refused.status_code == 422 and refused.json()["field"] == "format"


# --------------------------------------------------------------------------- CLI errors and resume


def test_unknown_tanh_mode_is_an_argparse_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        _train("torch", _argv(tmp_path / "run", "foo"))
    assert info.value.code == 2
    assert "--tanh-mode" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_tanh_mode_is_not_a_flag_of_other_models(tmp_path, capsys):
    """Flags are generated from the model: conv_vae has no --tanh-mode (nor --n-critic)."""
    argv = _argv(tmp_path / "run", "time")
    argv[argv.index("vaegan")] = "conv_vae"
    with pytest.raises(SystemExit) as info:
        _train("torch", argv)
    assert info.value.code == 2
    assert "unrecognized arguments: --tanh-mode time --n-critic 3" in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoint.safetensors").exists()


def test_resume_with_another_tanh_mode_is_refused(trained, tmp_path, caplog):
    source = trained("torch", "single")
    run = tmp_path / "run"
    shutil.copytree(source.root, run)
    before = (run / "checkpoint.safetensors").read_bytes()
    caplog.set_level(logging.ERROR, logger="age.train")
    assert _train("torch", _argv(run, "matrix", STEPS + 3, "--resume")) == 2
    assert "--tanh-mode single, not matrix" in caplog.text
    assert (run / "checkpoint.safetensors").read_bytes() == before
    assert json.loads((run / "train_state.json").read_text())["step"] == STEPS


@pytest.fixture(scope="module")
def split_run(tmp_path_factory) -> Path:
    """torch, single mode: 6 steps, then --resume to 12 (the optimizer file checked in between)."""
    split = tmp_path_factory.mktemp("split") / "run"
    assert _train("torch", _argv(split, "single", 6)) == 0
    meta, tensors = read_safetensors(split / "optimizer_torch.safetensors", "optimizer state")
    assert set(json.loads(meta["layout"])) == {"generator", "critic"}
    assert {n.split(".")[0] for n in tensors} == {"generator", "critic"}
    assert _train("torch", _argv(split, "single", STEPS, "--resume")) == 0
    return split


def test_resume_restores_both_optimizers(trained, split_run):
    """6 steps + --resume to 12 == the straight 12-step run: weights and both optimizers' state bit
    for bit, and every critic-side loss of the history."""
    straight = trained("torch", "single")
    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(split_run / "checkpoint.safetensors")
    assert a.step == b.step == STEPS
    for name in a.tensors:
        np.testing.assert_array_equal(a.tensors[name], b.tensors[name], err_msg=name)
    meta_a, opt_a = read_safetensors(straight.root / "optimizer_torch.safetensors", "optimizer state")
    meta_b, opt_b = read_safetensors(split_run / "optimizer_torch.safetensors", "optimizer state")
    assert meta_a["layout"] == meta_b["layout"] and meta_b["step"] == str(STEPS)
    assert set(opt_a) == set(opt_b) and any(n.startswith("generator.") for n in opt_b)
    for name in opt_a:
        np.testing.assert_array_equal(opt_a[name], opt_b[name], err_msg=name)
    ha = json.loads((straight.root / "train_state.json").read_text())["history"]
    hb = json.loads((split_run / "train_state.json").read_text())["history"]
    assert [h["step"] for h in hb] == list(range(1, STEPS + 1))
    for x, y in zip(ha, hb):
        assert {k: x[k] for k in ("critic", "wasserstein", "gp", "alpha")} == \
               {k: y[k] for k in ("critic", "wasserstein", "gp", "alpha")}, x["step"]
    for step in GENERATOR_STEPS:  # the generator's own steps log the same losses too
        assert ha[step] == hb[step], step + 1


def test_resume_logs_the_last_generator_losses_like_a_straight_run(trained, split_run):
    """Critic-only steps after --resume carry the generator losses of the last generator step
    (restored from the history), exactly as the uninterrupted run logs them."""
    ha = json.loads((trained("torch", "single").root / "train_state.json").read_text())["history"]
    hb = json.loads((split_run / "train_state.json").read_text())["history"]
    assert ha == hb
