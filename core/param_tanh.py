"""ParamTanh: the numbers both frameworks' layers are built from (seeds 000 and 001, DESIGN.md).

    y = tanh(alpha * x)

``x`` is the decoder's output after its Sigmoid, (C, H, W) per sample; ``alpha`` broadcasts
over it. The four modes, their parameters (torch shapes; Keras stores (C, H, W) tensors as
(H, W, C), layout rule ``chw``) and initial values:

``single``       ``alpha`` (1,), init 1.
``matrix``       ``alpha`` (C, H, W), init 1.
``time``         ``a``, ``b``, ``omega``, ``phi`` each (C, H, W), init 1, 0.5, 1, 0:
                 alpha_k = a + b * sin(2*pi * omega * t_k + phi),  t_k = k / T, k = 0 .. T-1,
                 so one decoder output becomes the T-frame video y_k = tanh(alpha_k * x),
                 (B, T, C, H, W). Every cell has its own amplitude, frequency and phase.
``transformer``  alpha = softplus(head(Transformer(tokens(video(x))))) > 0, per sample (B, C, H, W):
                 video(x) is the synthetic video below (F = ``num_frames`` frames); its frames are
                 stacked on the channel axis (F*C channels, frame-major: channel f*C + c) and cut
                 into ``patch_size`` patches by a Conv2d(F*C -> E, kernel = stride = patch); a
                 learned position embedding (1, N, E) is added; ``transformer_layers`` post-norm
                 encoder layers (``transformer_heads`` heads, ReLU feed-forward, no dropout); a
                 Linear(E -> C*p*p) head per token, whose outputs are read as (C, p, p) and put
                 back at their patch. The head's bias starts at log(e - 1), so softplus gives
                 alpha = 1 where the head's weights contribute nothing.

Synthetic video (deterministic and differentiable, so parity and export hold): frame k of F is
the image rolled right by k pixels along the width (wrapping around) and scaled by
1 + 0.1 * sin(2*pi*k / F): a slow pan with a flicker, "slightly modified versions of the
generated image" (seed 001).
"""

from __future__ import annotations

import math

from .models.vaegan import VAEGANConfig
from .errors import ConfigError

#: initial values of the ``time`` mode's (a, b, omega, phi)
TIME_INIT = {"a": 1.0, "b": 0.5, "omega": 1.0, "phi": 0.0}
#: softplus(ALPHA_BIAS_INIT) == 1
ALPHA_BIAS_INIT = math.log(math.e - 1.0)
FLICKER = 0.1


def require_output(config: VAEGANConfig, video: bool) -> None:
    """``generate`` (images) and ``generate_video`` refuse the other kind of model, with the same
    words in both frameworks: only ``time`` mode makes videos."""
    if video and not config.is_video:
        raise ConfigError(f"{config.model} in {config.tanh_mode!r} mode generates images, not videos")
    if not video and config.is_video:
        raise ConfigError(f"{config.model} in 'time' mode generates videos: use generate_video")


def time_points(frames: int) -> list[float]:
    """t_k = k / T for the ``time`` mode's frames."""
    return [k / frames for k in range(frames)]


def synthetic_frames(frames: int) -> list[tuple[int, float]]:
    """(roll right by this many pixels, gain) for each frame of the synthetic video."""
    return [(k, 1.0 + FLICKER * math.sin(2.0 * math.pi * k / frames)) for k in range(frames)]


def probability_real(score):
    """The seeds' "probability of being real" from a critic score: sigmoid(score).

    A WGAN critic is not a classifier (its score is an unbounded estimate of how real a sample
    looks, meaningful only relative to other scores), so this is a monotone display mapping, not
    a calibrated probability. Works on NumPy arrays and floats.
    """
    import numpy as np

    return 1.0 / (1.0 + np.exp(-np.asarray(score, dtype=np.float64)))
