"""ParamTanh and its Transformer alpha predictor (twin: ``torch_impl/layers/param_tanh.py``).

Formulas, parameter shapes, initial values and the synthetic-video recipe: :mod:`core.param_tanh`.
Images are NHWC here, videos (B, T, H, W, C); (C, H, W) parameters are stored as (H, W, C).
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from core.init import Init, constant, normal, ones
from core.models.vaegan import VAEGANConfig
from core.param_tanh import ALPHA_BIAS_INIT, TIME_INIT, synthetic_frames, time_points

from .core import Conv2d, Linear, ModuleList, TorchLayer
from .transformer import TransformerEncoderLayer


def _roll_width(x, shift: int):
    """torch.roll(x, shift, dims=W) for NHWC ``x``: the last ``shift`` columns wrap to the front."""
    w = x.shape[2]
    return ops.concatenate([x[:, :, w - shift :, :], x[:, :, : w - shift, :]], axis=2)


def synthetic_video(x, frames: int):
    """(B, H, W, C) -> (B, F, H, W, C): frame k rolled right by k pixels (width) and scaled."""
    return ops.stack([(_roll_width(x, s) if s else x) * gain for s, gain in synthetic_frames(frames)], axis=1)


class AlphaTransformer(TorchLayer):
    """Predicts the positive alpha (B, H, W, C) of the ``transformer`` mode from the generated image."""

    def __init__(self, config: VAEGANConfig, **kwargs):
        super().__init__(**kwargs)
        cfg, e, p = config, config.transformer_dim, config.patch_size
        self.frames, self.patch, self.grid, self.channels = cfg.num_frames, p, cfg.image_size // p, cfg.in_channels
        self.patch_embed = Conv2d(cfg.transformer_in_channels, e, p, p)
        self.pos_embedding = self.add_weight(shape=(1, cfg.num_patches, e), name="pos_embedding",
                                             initializer=keras.initializers.RandomNormal(stddev=0.02))
        self.layers = ModuleList(*[
            TransformerEncoderLayer(e, cfg.transformer_heads, cfg.transformer_ff, dropout=0.0, activation="relu",
                                    layer_norm_eps=cfg.layer_norm_eps, batch_first=True, norm_first=False)
            for _ in range(cfg.transformer_layers)
        ])
        self.head = Linear(e, cfg.in_channels * p * p)
        self.head.dense.bias_initializer = keras.initializers.Constant(ALPHA_BIAS_INIT)  # used when built

    def build(self, input_shape):
        """Nothing to create up front: the children build on the first call."""

    def call(self, x, training=None):
        g, p, c, f = self.grid, self.patch, self.channels, self.frames
        h, w = x.shape[1], x.shape[2]
        video = ops.transpose(synthetic_video(x, f), (0, 2, 3, 1, 4))  # (B, H, W, F, C)
        video = ops.reshape(video, (-1, h, w, f * c))  # channel f*C + c, as torch's flatten(1, 2)
        tokens = ops.reshape(self.patch_embed(video), (-1, g * g, self.pos_embedding.shape[-1]))
        tokens = tokens + self.pos_embedding
        for layer in self.layers.children_list:
            tokens = layer(tokens, training=training)
        patches = ops.reshape(self.head(tokens), (-1, g, g, c, p, p))  # per token: (C, p, p)
        return ops.softplus(ops.reshape(ops.transpose(patches, (0, 1, 4, 2, 5, 3)), (-1, h, w, c)))

    def torch_params(self):
        return {"pos_embedding": (self.pos_embedding, "identity")}

    def init_rules(self) -> dict[str, Init]:
        """pos_embedding N(0, 0.02^2) (as ``torch.randn(...) * 0.02``); the head's bias
        ALPHA_BIAS_INIT (softplus -> alpha = 1); everything else its layer's torch default."""
        return {"pos_embedding": normal(std=0.02), "head.bias": constant(ALPHA_BIAS_INIT)}


class ParamTanh(TorchLayer):
    """y = tanh(alpha * x) in one of four modes (``single``, ``matrix``, ``time``, ``transformer``).

    ``call`` returns an image (B, H, W, C), or in ``time`` mode the video (B, T, H, W, C).
    """

    def __init__(self, config: VAEGANConfig, **kwargs):
        super().__init__(**kwargs)
        self.mode, self.frames = config.tanh_mode, config.num_frames
        shape = (config.image_size, config.image_size, config.in_channels)
        self._params: dict[str, keras.Variable] = {}
        if self.mode == "single":
            self._params["alpha"] = self.add_weight(shape=(1,), initializer="ones", name="alpha")
        elif self.mode == "matrix":
            self._params["alpha"] = self.add_weight(shape=shape, initializer="ones", name="alpha")
        elif self.mode == "time":
            for name, value in TIME_INIT.items():
                self._params[name] = self.add_weight(shape=shape, name=name,
                                                     initializer=keras.initializers.Constant(value))
        else:
            self.predictor = AlphaTransformer(config)

    def alpha_of(self, x, training=None):
        """alpha as it multiplies ``x``: (1,), (H, W, C), (T, H, W, C) or (B, H, W, C) by mode."""
        p = self._params
        if self.mode in ("single", "matrix"):
            return p["alpha"]
        if self.mode == "time":
            t = ops.reshape(ops.convert_to_tensor(np.asarray(time_points(self.frames), np.float32)), (-1, 1, 1, 1))
            return p["a"] + p["b"] * ops.sin(2.0 * math.pi * p["omega"] * t + p["phi"])
        return self.predictor(x, training=training)

    def call(self, x, training=None):
        alpha = self.alpha_of(x, training=training)
        if self.mode == "time":
            return ops.tanh(ops.expand_dims(alpha, 0) * ops.expand_dims(x, 1))
        return ops.tanh(alpha * x)

    def torch_params(self):
        rules = {"single": "identity"}
        return {name: (var, rules.get(self.mode, "chw")) for name, var in self._params.items()}

    def init_rules(self) -> dict[str, Init]:
        """alpha 1 (``single``, ``matrix``); a, b, omega, phi = TIME_INIT (``time``); the
        ``transformer`` mode's predictor declares its own."""
        if self.mode in ("single", "matrix"):
            return {"alpha": ones()}
        if self.mode == "time":
            return {name: constant(value) for name, value in TIME_INIT.items()}
        return {}
