"""The ParamTanh VAE-GAN (seeds 000, 001). Architecture and its choices: :class:`core.models.vaegan.VAEGANConfig`."""

from __future__ import annotations

import torch
from torch import nn

from core.models.vaegan import VAEGANConfig
from core.param_tanh import require_output

from ..layers.core import Conv2d, ConvTranspose2d, LeakyReLU, Linear, MaxPool2d, ReLU, Sequential, Sigmoid
from ..layers.param_tanh import ParamTanh
from .base import VariationalModel


def conv_blocks(cfg: VAEGANConfig, activation) -> Sequential:
    """Conv2d(k=3, s=1, p=1) -> activation -> MaxPool2d(2) per hidden width (encoder and critic)."""
    blocks, in_ch = [], cfg.in_channels
    for h in cfg.hidden_dims:
        blocks.append(Sequential(Conv2d(in_ch, h, 3, 1, 1), activation(), MaxPool2d(2)))
        in_ch = h
    return Sequential(*blocks)


class Critic(nn.Module):
    """WGAN critic: image (B, C, H, W) -> unbounded score (B, 1); higher means "looks real".

    :func:`core.param_tanh.probability_real` maps a score to the seeds' "probability of being real".
    """

    def __init__(self, config: VAEGANConfig):
        super().__init__()
        self.features = conv_blocks(config, lambda: LeakyReLU(config.critic_slope))
        self.score = Linear(config.flat_features, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.score(torch.flatten(self.features(image), 1))


class VAEGAN(VariationalModel):
    """VAE generator with a ParamTanh output layer, plus its critic (trained together, WGAN-GP)."""

    def __init__(self, config: VAEGANConfig):
        super().__init__()
        self.config = cfg = config
        self.encoder = conv_blocks(cfg, ReLU)
        self.fc_mu = Linear(cfg.flat_features, cfg.latent_dim)
        self.fc_logvar = Linear(cfg.flat_features, cfg.latent_dim)
        self.decoder_input = Linear(cfg.latent_dim, cfg.flat_features)
        rev = list(reversed(cfg.hidden_dims))
        ups = [Sequential(ConvTranspose2d(rev[i], rev[i + 1], 4, 2, 1), ReLU()) for i in range(len(rev) - 1)]
        self.decoder = Sequential(*ups, ConvTranspose2d(rev[-1], cfg.in_channels, 4, 2, 1), Sigmoid())
        self.param_tanh = ParamTanh(cfg)
        self.critic = Critic(cfg)

    def generator_parameters(self) -> list[nn.Parameter]:
        """Everything but the critic: what the generator's optimizer trains (alpha included)."""
        return [p for name, p in self.named_parameters() if not name.startswith("critic.")]

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """The objective's optimizers' parameters: ``generator`` (all but the critic), ``critic``."""
        return {"generator": self.generator_parameters(), "critic": list(self.critic.parameters())}

    def training_scalars(self) -> dict[str, float]:
        """``single`` mode's learned alpha, logged every step."""
        if self.config.tanh_mode != "single":
            return {}
        return {"alpha": float(self.param_tanh.alpha.detach()[0])}

    def summaries(self, z) -> dict:
        """ParamTanh's alpha on the decoder outputs of ``z`` (canonical layout), for TensorBoard."""
        was_training = self.training
        self.eval()
        with torch.no_grad():
            alpha = self.param_tanh.alpha_of(self.decode_base(torch.from_numpy(z))).cpu().numpy()
        self.train(was_training)
        return {"alpha": alpha}

    def encode(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.flatten(self.encoder(image), 1)
        return self.fc_mu(h), self.fc_logvar(h)

    def decode_base(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's Sigmoid output x, before ParamTanh: (B, C, H, W) in (0, 1)."""
        cfg = self.config
        h = torch.relu(self.decoder_input(z)).view(-1, cfg.hidden_dims[-1], cfg.feature_size, cfg.feature_size)
        return self.decoder(h)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """z -> image (B, C, H, W) (``single``, ``matrix``, ``transformer`` modes)."""
        require_output(self.config, video=False)
        return self.param_tanh(self.decode_base(z))

    def generate_video(self, z: torch.Tensor) -> torch.Tensor:
        """z -> video (B, T, C, H, W) (``time`` mode)."""
        require_output(self.config, video=True)
        return self.param_tanh(self.decode_base(z))

    def generate_images(self, z: torch.Tensor) -> torch.Tensor:
        """What training judges: the images, or every frame of the videos as (B*T, C, H, W)."""
        out = self.param_tanh(self.decode_base(z))
        return out.flatten(0, 1) if self.config.is_video else out

    def critique(self, image: torch.Tensor) -> torch.Tensor:
        return self.critic(image)

    def reconstruct(self, z: torch.Tensor) -> torch.Tensor:
        return self.generate_images(z)
