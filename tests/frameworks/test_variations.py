"""The variations CLIs (seed 002's genpic) in both frameworks: same grid, and clean refusals."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.images import load_image, to_uint8
from core.noise import variation_latents
from core.registry import make_config
from tests.conftest import randomize_batchnorm

TINY = make_config("conv_vae", "tiny")
SIZE, N = TINY.image_size, 10
FRAMEWORKS = ("torch", "keras")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """A tiny conv_vae with non-trivial BatchNorm and a widened output layer (varied grey levels)."""
    import torch

    import torch_impl

    torch.manual_seed(2)
    model = randomize_batchnorm(torch_impl.build("conv_vae", config=TINY), seed=2)
    last_conv = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last_conv.weight.mul_(16.0)
        model.fc_logvar.bias.fill_(1.0)  # a wide posterior, so variations differ visibly
    return torch_impl.save_model(model, tmp_path_factory.mktemp("var") / "ckpt.safetensors", step=3)


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    """A non-square RGB picture (resized and centre-cropped on the way in)."""
    yy, xx = np.mgrid[0:45, 0:60]
    rgb = np.stack([xx * 4, yy * 5, (xx + yy) * 2], axis=-1).clip(0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("img") / "picture.png"
    Image.fromarray(rgb).save(path)
    return path


def _main(framework: str):
    return importlib.import_module(f"{framework}_impl.variations").main


def _grid(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB")).astype(int)


def _tiles(grid: np.ndarray, n: int, ncol: int) -> np.ndarray:
    return np.stack([grid[2 + r * (SIZE + 2) : 2 + r * (SIZE + 2) + SIZE, 2 + c * (SIZE + 2) : 2 + c * (SIZE + 2) + SIZE]
                     for r, c in (divmod(i, ncol) for i in range(n))])


@pytest.fixture(scope="module")
def grids(ckpt, image, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("grids")
    paths = {}
    for fw in FRAMEWORKS:
        paths[fw] = out / f"{fw}.png"
        assert _main(fw)([str(ckpt), str(image), "--n", str(N), "--scale", "0.5", "--seed", "4",
                          "--out", str(paths[fw])]) == 0
    return paths


def test_both_frameworks_write_the_same_grid_of_10(grids):
    t, k = _grid(grids["torch"]), _grid(grids["keras"])
    # 10 tiles: ceil(sqrt(10)) = 4 per row, 3 rows, 2 px padding
    assert t.shape == k.shape == (3 * (SIZE + 2) + 2, 4 * (SIZE + 2) + 2, 3)
    assert np.abs(t - k).max() <= 1
    tiles = _tiles(t, 12, 4)
    assert np.all(tiles[10:] == 255)  # the two unused slots stay blank
    assert all(not np.array_equal(tiles[0], tiles[i]) for i in range(1, N))


def test_grid_holds_the_decoded_variation_latents(grids, ckpt, image):
    """Tile i is decode(mu + sqrt(scale) * exp(logvar / 2) * eps_i) of the encoded picture."""
    import torch_impl
    from torch_impl.parts import run_part

    model = torch_impl.load_model(ckpt)
    mu, logvar = run_part(model, "encoder", load_image(image, SIZE)[None])
    want = to_uint8(run_part(model, "decoder", variation_latents(mu, logvar, N, 0.5, seed=4))[0])
    got = _tiles(_grid(grids["torch"]), N, 4)
    assert np.abs(got - want).max() <= 1


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_scale_zero_repeats_the_mean_and_seeds_differ(framework, ckpt, image, grids, tmp_path):
    main = _main(framework)
    assert main([str(ckpt), str(image), "--n", "4", "--scale", "0", "--out", str(tmp_path / "zero.png")]) == 0
    zero = _grid(tmp_path / "zero.png")
    assert zero.shape == (2 * (SIZE + 2) + 2, 2 * (SIZE + 2) + 2, 3)
    tiles = _tiles(zero, 4, 2)
    assert all(np.array_equal(tiles[0], t) for t in tiles[1:])
    assert main([str(ckpt), str(image), "--n", str(N), "--scale", "0.5", "--seed", "5",
                 "--out", str(tmp_path / "other.png")]) == 0
    assert np.abs(_grid(tmp_path / "other.png") - _grid(grids[framework])).max() > 8


def _bad_case(kind: str, ckpt: Path, image: Path, tmp: Path) -> tuple[list[str], str]:
    """argv (without --out) and the fragment the error must hold."""
    if kind == "missing_image":
        return [str(ckpt), str(tmp / "nope.png")], f"{tmp / 'nope.png'}: no such file"
    if kind == "corrupt_image":
        bad = tmp / "corrupt.png"
        bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
        return [str(ckpt), str(bad)], f"{bad}: not a readable image"
    if kind == "garbage_checkpoint":
        bad = tmp / "garbage.safetensors"
        bad.write_bytes(np.random.default_rng(0).bytes(1000))
        return [str(bad), str(image)], f"checkpoint {bad}"
    if kind == "truncated_checkpoint":
        bad = tmp / "cut.safetensors"
        bad.write_bytes(ckpt.read_bytes()[:-100])
        return [str(bad), str(image)], "truncated"
    if kind == "missing_checkpoint":
        return [str(tmp / "none.safetensors"), str(image)], "no such file"
    if kind == "zero_n":
        return [str(ckpt), str(image), "--n", "0"], "--n must be between 1 and"
    raise AssertionError(kind)


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize(
    "kind",
    ["missing_image", "corrupt_image", "garbage_checkpoint", "truncated_checkpoint", "missing_checkpoint", "zero_n"],
)
def test_bad_input_exits_2_and_writes_nothing(framework, kind, ckpt, image, tmp_path, caplog):
    argv, fragment = _bad_case(kind, ckpt, image, tmp_path)
    out = tmp_path / "out" / "grid.png"
    caplog.set_level(logging.ERROR, logger="age.variations")
    assert _main(framework)(argv + ["--out", str(out)]) == 2
    assert fragment in caplog.text
    assert not out.exists() and not out.parent.exists()


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_deterministic_encoder_is_refused_by_name(framework, image, tmp_path, caplog):
    """An autoencoder maps an image to one code: there is no posterior to sample variations from."""
    from core.registry import MODELS, runtime_facts

    name = next(m for m in sorted(MODELS) if runtime_facts(make_config(m, "tiny"))["encoder_kind"] == "deterministic")
    model = importlib.import_module(f"{framework}_impl.models").build(name, preset="tiny")
    ckpt = importlib.import_module(f"{framework}_impl.checkpoint").save_model(model, tmp_path / "ae.safetensors")
    out = tmp_path / "grid.png"
    caplog.set_level(logging.ERROR, logger="age.variations")
    assert _main(framework)([str(ckpt), str(image), "--out", str(out)]) == 2
    assert f"{name!r} encodes an image to one point" in caplog.text and "Gaussian encoder" in caplog.text
    assert not out.exists()
