"""The training CLIs of both frameworks: run directory, learning, resume, refusals, bad data.

One tiny run per framework (``--preset tiny --steps 40`` on the embedded digits) is shared by the
module; the trainers are wrapped only to record which batches and which noise each step used, so
the two frameworks can be compared draw for draw.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.checkpoint import OPTIMIZER_DTYPES, load_checkpoint, read_safetensors
from core.configs import config_from_json
from core.data import ImageFolder, prepare_digits
from core.images import to_uint8
from core.noise import latents
from core.registry import make_config
from core.tblog import read_scalars

REPO = Path(__file__).resolve().parents[2]
FRAMEWORKS = ("torch", "keras")
STEPS, BATCH, SIZE = 40, 32, 32
TINY = make_config("conv_vae", "tiny")


def _digest(array: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()


@dataclass
class TrainRun:
    framework: str
    rc: int
    root: Path
    argv: list[str]
    batches: list[tuple[int, str]] = field(default_factory=list)
    noise: list[tuple[int, str]] = field(default_factory=list)


def _module(framework: str):
    return importlib.import_module(f"{framework}_impl.train")


def _train(framework: str, argv: list[str], record: TrainRun | None = None) -> int:
    """``<framework>_impl.train.main(argv)``, optionally recording each step's batch and noise."""
    module = _module(framework)
    if record is None:
        return module.main(argv)
    base = module.Trainer

    class Recording(base):
        def train_step(self, batch, step):
            record.batches.append((step, _digest(batch)))
            return super().train_step(batch, step)

        def run_update(self, update, batch, inputs):
            record.noise.append((self.current_step, _digest(inputs["eps"])))
            return super().run_update(update, batch, inputs)

    def train_step_with_index(self, batch, step):
        self.current_step = step
        return Recording.train_step_base(self, batch, step)

    Recording.train_step_base = Recording.train_step
    Recording.train_step = train_step_with_index

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(module, "Trainer", Recording)
        return module.main(argv)


def _argv(out: Path, steps: int = STEPS, data: str = "digits", batch: int = BATCH, *extra: str) -> list[str]:
    return ["--model", "conv_vae", "--preset", "tiny", "--steps", str(steps), "--batch-size", str(batch), "--out", str(out),
            "--data", data, "--no-progress", *extra]


def _shared_run(framework: str, tmp_path_factory) -> TrainRun:
    root = tmp_path_factory.mktemp(f"{framework}-run") / "run"
    argv = _argv(root)
    run = TrainRun(framework, -1, root, argv)
    run.rc = _train(framework, argv, record=run)
    return run


@pytest.fixture(scope="module")
def torch_run(tmp_path_factory) -> TrainRun:
    return _shared_run("torch", tmp_path_factory)


@pytest.fixture(scope="module")
def keras_run(tmp_path_factory) -> TrainRun:
    return _shared_run("keras", tmp_path_factory)


@pytest.fixture(params=FRAMEWORKS)
def trained(request) -> TrainRun:
    return request.getfixturevalue(f"{request.param}_run")


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    """40 digits in two class folders (5 batches of 8): for the short runs."""
    digits = prepare_digits(SIZE)
    root = tmp_path_factory.mktemp("small") / "data"
    for cls in ("3", "8"):
        (root / cls).mkdir(parents=True)
        for path in sorted((digits / cls).glob("*.png"))[:20]:
            shutil.copy(path, root / cls / path.name)
    return root


def _load_model(framework: str, path: Path):
    return importlib.import_module(f"{framework}_impl").load_model(path)


def _run_part(framework: str):
    return importlib.import_module(f"{framework}_impl.parts").run_part


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        im.load()
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB"))


def _tiles(grid: np.ndarray, n: int, size: int, ncol: int, pad: int = 2) -> np.ndarray:
    out = []
    for i in range(n):
        r, c = divmod(i, ncol)
        y, x = pad + r * (size + pad), pad + c * (size + pad)
        out.append(grid[y : y + size, x : x + size])
    return np.stack(out)


# --------------------------------------------------------------------------- one run


def test_run_directory_holds_every_artefact(trained):
    run, fw = trained.root, trained.framework
    assert trained.rc == 0
    ckpt = load_checkpoint(run / "checkpoint.safetensors")
    assert (ckpt.model, ckpt.framework, ckpt.step, ckpt.config) == ("conv_vae", fw, STEPS, TINY)
    periodic = sorted((run / "checkpoints").glob("step_*.safetensors"))
    assert [p.name for p in periodic] == [f"step_{STEPS:07d}.safetensors"]
    assert load_checkpoint(periodic[0]).step == STEPS
    meta, tensors = read_safetensors(run / f"optimizer_{fw}.safetensors", "optimizer state", OPTIMIZER_DTYPES)
    assert meta["framework"] == fw and meta["step"] == str(STEPS) and tensors
    assert not (run / f"optimizer_{'keras' if fw == 'torch' else 'torch'}.safetensors").exists()
    assert config_from_json((run / "config.json").read_text()) == TINY
    state = json.loads((run / "train_state.json").read_text())
    assert state["step"] == STEPS
    assert [h["step"] for h in state["history"]] == list(range(1, STEPS + 1))
    assert set(state["history"][0]) == {"step", "loss", "recon", "kl", "kl_weight"}
    assert (run / "hyperparameters.json").is_file()
    assert _png(run / "samples" / "epoch_001.png").shape == (4 * (SIZE + 2) + 2, 4 * (SIZE + 2) + 2, 3)
    assert _png(run / "reconstructions" / "epoch_001.png").shape == (2 * (SIZE + 2) + 2, 8 * (SIZE + 2) + 2, 3)
    loss_png = _png(run / "loss.png")
    assert loss_png.shape[0] > 100 and loss_png.std() > 0  # a real plot, not a blank image
    # nothing half-written is left behind
    assert not [p for p in run.rglob("*.tmp")]


def test_loss_goes_down(trained):
    history = json.loads((trained.root / "train_state.json").read_text())["history"]
    losses = np.array([h["loss"] for h in history])
    assert np.all(np.isfinite(losses))
    first, last = losses[:10].mean(), losses[-10:].mean()
    assert last < 0.8 * first, f"{trained.framework}: loss {first:.1f} -> {last:.1f}"
    for h in history:
        assert h["loss"] == pytest.approx(h["recon"] + h["kl"], rel=1e-4)  # kl weight 1, no warm-up


def test_tensorboard_has_the_loss_scalars(trained):
    scalars = read_scalars(trained.root / "tb")
    history = json.loads((trained.root / "train_state.json").read_text())["history"]
    for key in ("loss", "recon", "kl"):
        series = scalars[f"loss/{key}"]
        assert [s for s, _ in series] == list(range(1, STEPS + 1))
        np.testing.assert_allclose([v for _, v in series], [h[key] for h in history], rtol=1e-6)


def test_grids_show_the_saved_model(trained):
    """samples: the checkpoint's decoder on latents(16, latent_dim, seed); reconstructions: data over output."""
    fw, run = trained.framework, trained.root
    model = _load_model(fw, run / "checkpoint.safetensors")
    run_part = _run_part(fw)
    want = to_uint8(run_part(model, "decoder", latents(16, TINY.latent_dim, 0))[0])
    got = _tiles(_png(run / "samples" / "epoch_001.png"), 16, SIZE, 4)
    assert np.abs(got.astype(int) - want).max() <= 1
    assert want.std() > 0

    data = ImageFolder.open(prepare_digits(SIZE), SIZE)
    batch = data.load(np.linspace(0, len(data) - 1, 8).astype(int))
    recon = _tiles(_png(run / "reconstructions" / "epoch_001.png"), 16, SIZE, 8)
    np.testing.assert_array_equal(recon[:8], to_uint8(batch))
    mu, _ = run_part(model, "encoder", batch)
    assert np.abs(recon[8:].astype(int) - to_uint8(run_part(model, "decoder", mu)[0])).max() <= 1

    # interpolations: 4 rows (image i to image i + 4 of that batch), 8 steps from mu_i to mu_{i+4}
    walks = _tiles(_png(run / "interpolations" / "epoch_001.png"), 32, SIZE, 8).reshape(4, 8, SIZE, SIZE, 3)
    for i in range(4):
        t = np.linspace(0.0, 1.0, 8, dtype=np.float32)[:, None]
        want = to_uint8(run_part(model, "decoder", ((1 - t) * mu[i] + t * mu[i + 4]).astype(np.float32))[0])
        assert np.abs(walks[i].astype(int) - want).max() <= 1
    assert np.abs(walks[:, 0].astype(int) - recon[8:12]).max() <= 1  # a walk starts at the reconstruction


def test_resume_continues_to_more_steps(trained, tmp_path):
    fw = trained.framework
    run = tmp_path / "resumed"
    shutil.copytree(trained.root, run)
    before = json.loads((run / "train_state.json").read_text())["history"]
    assert _train(fw, _argv(run, STEPS + 10) + ["--resume"]) == 0
    state = json.loads((run / "train_state.json").read_text())
    assert state["step"] == STEPS + 10
    assert [h["step"] for h in state["history"]] == list(range(1, STEPS + 11))
    assert state["history"][:STEPS] == before
    ckpt = load_checkpoint(run / "checkpoint.safetensors")
    assert ckpt.step == STEPS + 10 and ckpt.framework == fw
    assert sorted(p.name for p in (run / "checkpoints").glob("*.safetensors")) == [
        f"step_{STEPS:07d}.safetensors", f"step_{STEPS + 10:07d}.safetensors"]
    changed = load_checkpoint(trained.root / "checkpoint.safetensors").tensors
    assert any(not np.array_equal(changed[k], ckpt.tensors[k]) for k in changed)
    steps = [s for s, _ in read_scalars(run / "tb")["loss/loss"]]
    assert steps == list(range(1, STEPS + 11))
    # asking for no more steps than the run has is a no-op
    assert _train(fw, _argv(run, STEPS) + ["--resume"]) == 0
    assert load_checkpoint(run / "checkpoint.safetensors").step == STEPS + 10


def test_rerun_without_resume_refuses(trained, caplog):
    before = (trained.root / "checkpoint.safetensors").read_bytes()
    caplog.set_level(logging.ERROR, logger="age.train")
    assert _train(trained.framework, trained.argv) == 2
    assert "already holds a run" in caplog.text and str(trained.root) in caplog.text
    assert (trained.root / "checkpoint.safetensors").read_bytes() == before


# --------------------------------------------------------------------------- both frameworks


def test_same_seed_same_data_order_and_noise(torch_run, keras_run):
    assert torch_run.rc == keras_run.rc == 0
    assert [s for s, _ in torch_run.batches] == list(range(STEPS))
    assert torch_run.batches == keras_run.batches
    assert torch_run.noise == keras_run.noise
    assert len({d for _, d in torch_run.batches}) == STEPS and len({d for _, d in torch_run.noise}) == STEPS
    # and the recorded draws are the shared NumPy ones, not a framework's RNG
    data = ImageFolder.open(prepare_digits(SIZE), SIZE)
    first = next(data.batches(BATCH, seed=0, epoch=0))
    assert torch_run.batches[0][1] == _digest(first)
    from core.noise import step_noise

    assert torch_run.noise[5][1] == _digest(step_noise(0, 5, (BATCH, TINY.latent_dim)))


def test_checkpoints_load_in_the_other_framework(torch_run, keras_run):
    z = latents(4, TINY.latent_dim, seed=3)
    x = np.random.default_rng(0).random((2, 3, SIZE, SIZE), dtype=np.float32)
    for run in (torch_run, keras_run):
        path = run.root / "checkpoint.safetensors"
        outs = {}
        for fw in FRAMEWORKS:
            model = _load_model(fw, path)
            run_part = _run_part(fw)
            outs[fw] = run_part(model, "decoder", z) + run_part(model, "encoder", x)
        for t, k in zip(outs["torch"], outs["keras"]):
            assert t.shape == k.shape
            assert float(np.max(np.abs(t - k))) <= 1e-4, run.framework


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_resume_is_exact(framework, small_data, tmp_path):
    """7 steps in one go == 3 steps, then --resume to 7 (mid-epoch resume, across an epoch end):
    weights, BatchNorm statistics and optimizer state all survive the round trip bit for bit."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert _train(framework, _argv(straight, 7, str(small_data), 8)) == 0
    assert _train(framework, _argv(split, 3, str(small_data), 8)) == 0
    assert _train(framework, _argv(split, 7, str(small_data), 8, "--resume")) == 0
    a = load_checkpoint(straight / "checkpoint.safetensors")
    b = load_checkpoint(split / "checkpoint.safetensors")
    assert a.step == b.step == 7
    for name in a.tensors:
        np.testing.assert_array_equal(a.tensors[name], b.tensors[name], err_msg=name)
    ha = json.loads((straight / "train_state.json").read_text())["history"]
    hb = json.loads((split / "train_state.json").read_text())["history"]
    assert ha == hb


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kind", ["missing", "empty"])
def test_bad_data_directory_exits_2(kind, tmp_path, caplog):
    data = tmp_path / "data"
    if kind == "empty":
        data.mkdir()
    out = tmp_path / "run"
    caplog.set_level(logging.ERROR, logger="age.train")
    assert _train("torch", _argv(out, 2, str(data))) == 2
    assert f"data directory {data}" in caplog.text
    assert ("does not exist" if kind == "missing" else "no readable images") in caplog.text
    assert not out.exists()


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--samples", "0"], "--samples"),
        (["--batch-size", "0"], "--batch-size"),
        (["--steps", "0"], "--steps"),
        (["--keep-checkpoints", "-1"], "--keep-checkpoints"),
        (["--resume"], "--resume"),
    ],
)
def test_bad_flags_exit_2_before_training(extra, fragment, small_data, tmp_path, caplog):
    out = tmp_path / "run"
    caplog.set_level(logging.ERROR, logger="age.train")
    assert _train("torch", _argv(out, 2, str(small_data), 8) + extra) == 2
    assert fragment in caplog.text
    assert not (out / "checkpoint.safetensors").exists()


def test_a_corrupt_image_is_skipped_with_a_warning(small_data, tmp_path, caplog):
    data = tmp_path / "data"
    shutil.copytree(small_data, data)
    (data / "3" / "zz_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    jpeg = data / "8" / "zz_cut.jpg"  # its header reads fine; its pixel data stops half-way
    noise = (np.random.default_rng(0).random((SIZE, SIZE, 3)) * 255).astype(np.uint8)
    Image.fromarray(noise).save(jpeg, format="JPEG", quality=95)
    jpeg.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    caplog.set_level(logging.WARNING)
    out = tmp_path / "run"
    assert _train("torch", _argv(out, 6, str(data), 8)) == 0  # more than one epoch: every image is drawn
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("skipped 2 unreadable" in w for w in warnings) == 1
    assert load_checkpoint(out / "checkpoint.safetensors").step == 6


def test_cli_process_reports_bad_data_on_stderr(tmp_path):
    missing = tmp_path / "no-such-data"
    proc = subprocess.run(
        [sys.executable, "-m", "torch_impl.train", "--model", "conv_vae", "--preset", "tiny", "--steps", "1", "--data", str(missing),
         "--out", str(tmp_path / "run"), "--no-progress"],
        cwd=REPO, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"data directory {missing}: does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()
