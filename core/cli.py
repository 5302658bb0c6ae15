"""The one argument parser both trainers use (``python -m torch_impl.train`` / ``keras_impl.train``)."""

from __future__ import annotations

import argparse

from .configs import TANH_MODES
from .registry import MODELS


def train_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Train an A.G.E. model; the run directory is resumable.")
    p.add_argument("--model", default="conv_vae", choices=sorted(MODELS), help="registry key (default conv_vae)")
    p.add_argument("--data", default="digits",
                   help="ImageFolder directory, or 'digits' for the embedded default dataset (default)")
    p.add_argument("--preset", default="seed", help="config preset: 'seed' (the seed's numbers) or 'tiny'")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, default=None, help="passes over the data (default 10)")
    length.add_argument("--steps", type=int, default=None, help="optimizer steps (instead of --epochs)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="batch size, 1..4096 (default: the model's; conv_vae 64 (seed 004), vaegan 16 (seeds 000/001))")
    p.add_argument("--lr", type=float, default=None,
                   help="Adam learning rate (default: the model's; conv_vae 1e-3 (seed 004), vaegan 1e-4 (WGAN-GP))")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--seed", type=int, default=0, help="seed for data order, noise and initialisation")
    p.add_argument("--kl-weight", type=float, default=1.0, help="VAE: final KL weight (beta)")
    p.add_argument("--kl-warmup", type=int, default=0, help="VAE: steps of linear KL warm-up from 0 (0: none)")
    p.add_argument("--tanh-mode", choices=TANH_MODES, default=None,
                   help="vaegan: ParamTanh mode (default single)")
    p.add_argument("--n-critic", type=int, default=5, help="GAN: critic steps per generator step (default 5)")
    p.add_argument("--gp-weight", type=float, default=10.0, help="WGAN-GP: gradient penalty weight (default 10)")
    p.add_argument("--adv-weight", type=float, default=1.0,
                   help="vaegan: weight of the adversarial term next to the ELBO (default 1)")
    p.add_argument("--checkpoint-every", type=int, default=0,
                   help="also write RUN/checkpoints/step_N.safetensors every N steps (0: once per epoch)")
    p.add_argument("--keep-checkpoints", type=int, default=5, help="periodic checkpoints to keep (default 5)")
    p.add_argument("--samples", type=int, default=16, help="images in the fixed-noise grid, 1..1024 (default 16)")
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    p.add_argument("--no-progress", action="store_true", help="disable the progress bar")
    return p


def variations_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Encode an image, sample N latents around its mean (variance scaled by --scale), decode, save a grid.",
    )
    p.add_argument("checkpoint", help="canonical checkpoint (.safetensors) of any model with an encoder part")
    p.add_argument("image", help="input image (any Pillow-readable format)")
    p.add_argument("--n", type=int, default=10, help="number of variations, 1..4096 (default 10, seed 002)")
    p.add_argument("--scale", type=float, default=0.01, help="variance scale w (default 0.01, seed 002)")
    p.add_argument("--seed", type=int, default=0, help="noise seed")
    p.add_argument("--out", default="variations.png",
                   help="output: .png grid (a video model's first frames), .gif/.mp4 grid animation, or .npy")
    p.add_argument("--nrow", type=int, default=None, help="images per grid row, 1..n (default: a square grid)")
    p.add_argument("--log-level", default="INFO")
    return p
