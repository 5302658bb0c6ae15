"""ParamTanh and its Transformer alpha predictor (twin: ``keras_impl/layers/param_tanh.py``).

Formulas, parameter shapes, initial values and the synthetic-video recipe: :mod:`core.param_tanh`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from core.init import Init, constant, normal, ones
from core.models.vaegan import VAEGANConfig
from core.param_tanh import ALPHA_BIAS_INIT, TIME_INIT, synthetic_frames, time_points

from .core import Conv2d, Linear, ModuleList
from .transformer import TransformerEncoderLayer


def synthetic_video(x: torch.Tensor, frames: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, F, C, H, W): frame k rolled right by k pixels (width) and scaled."""
    out = []
    for shift, gain in synthetic_frames(frames):
        rolled = torch.roll(x, shifts=shift, dims=3) if shift else x
        out.append(rolled * gain)
    return torch.stack(out, dim=1)


class AlphaTransformer(nn.Module):
    """Predicts the positive (C, H, W) alpha of the ``transformer`` mode from the generated image."""

    def __init__(self, config: VAEGANConfig):
        super().__init__()
        cfg, e, p = config, config.transformer_dim, config.patch_size
        self.frames, self.patch, self.grid = cfg.num_frames, p, cfg.image_size // p
        self.patch_embed = Conv2d(cfg.transformer_in_channels, e, p, p)
        self.pos_embedding = nn.Parameter(torch.randn(1, cfg.num_patches, e) * 0.02)
        self.layers = ModuleList([
            TransformerEncoderLayer(e, cfg.transformer_heads, cfg.transformer_ff, dropout=0.0, activation="relu",
                                    layer_norm_eps=cfg.layer_norm_eps, batch_first=True, norm_first=False)
            for _ in range(cfg.transformer_layers)
        ])
        self.head = Linear(e, cfg.in_channels * p * p)
        with torch.no_grad():
            self.head.bias.fill_(ALPHA_BIAS_INIT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g, p = self.grid, self.patch
        video = synthetic_video(x, self.frames).flatten(1, 2)  # (B, F*C, H, W), channel f*C + c
        tokens = self.patch_embed(video).flatten(2).transpose(1, 2) + self.pos_embedding  # (B, N, E)
        for layer in self.layers:
            tokens = layer(tokens)
        patches = self.head(tokens).reshape(b, g, g, c, p, p)  # per token: (C, p, p)
        return F.softplus(patches.permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w))

    def init_rules(self) -> dict[str, Init]:
        """pos_embedding N(0, 0.02^2) (as ``torch.randn(...) * 0.02``); the head's bias
        ALPHA_BIAS_INIT (softplus -> alpha = 1); everything else its layer's torch default."""
        return {"pos_embedding": normal(std=0.02), "head.bias": constant(ALPHA_BIAS_INIT)}


class ParamTanh(nn.Module):
    """y = tanh(alpha * x) in one of four modes (``single``, ``matrix``, ``time``, ``transformer``).

    ``forward`` returns an image (B, C, H, W), or in ``time`` mode the video (B, T, C, H, W).
    """

    def __init__(self, config: VAEGANConfig):
        super().__init__()
        self.mode, self.frames = config.tanh_mode, config.num_frames
        shape = (config.in_channels, config.image_size, config.image_size)
        if self.mode == "single":
            self.alpha = nn.Parameter(torch.ones(1))
        elif self.mode == "matrix":
            self.alpha = nn.Parameter(torch.ones(shape))
        elif self.mode == "time":
            for name, value in TIME_INIT.items():
                setattr(self, name, nn.Parameter(torch.full(shape, value)))
        else:
            self.predictor = AlphaTransformer(config)

    def alpha_of(self, x: torch.Tensor) -> torch.Tensor:
        """alpha as it multiplies ``x``: (1,), (C, H, W), (T, C, H, W) or (B, C, H, W) by mode."""
        if self.mode in ("single", "matrix"):
            return self.alpha
        if self.mode == "time":
            t = torch.tensor(time_points(self.frames), dtype=x.dtype, device=x.device).view(-1, 1, 1, 1)
            return self.a + self.b * torch.sin(2.0 * math.pi * self.omega * t + self.phi)
        return self.predictor(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha_of(x)
        if self.mode == "time":
            return torch.tanh(alpha.unsqueeze(0) * x.unsqueeze(1))
        return torch.tanh(alpha * x)

    def init_rules(self) -> dict[str, Init]:
        """alpha 1 (``single``, ``matrix``); a, b, omega, phi = TIME_INIT (``time``); the
        ``transformer`` mode's predictor declares its own."""
        if self.mode in ("single", "matrix"):
            return {"alpha": ones()}
        if self.mode == "time":
            return {name: constant(value) for name, value in TIME_INIT.items()}
        return {}
