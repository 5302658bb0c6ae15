"""What is special about ``vae`` (seed 004): it has no model code of its own — it is ``conv_vae``'s
network built from the report's config — and it trains with the report's KL strategies."""

from __future__ import annotations

import keras_impl
import torch_impl
from core.models.conv_vae import ConvVAEConfig
from core.objectives.kl import kl_weight
from core.registry import get_model_spec, make_config
from keras_impl.models.conv_vae import ConvVAE as KerasConvVAE
from torch_impl.models.conv_vae import ConvVAE as TorchConvVAE


def test_vae_is_conv_vae_code_with_the_report_defaults():
    spec = get_model_spec("vae")
    assert spec.twin_module == "conv_vae" and spec.class_name == "ConvVAE"
    cfg = make_config("vae", "seed")
    assert isinstance(cfg, ConvVAEConfig) and cfg.model == "vae"
    assert (cfg.image_size, cfg.latent_dim, cfg.hidden_dims) == (32, 128, (32, 64, 128))
    assert cfg.feature_sizes == [32, 16, 8, 4]
    tm = torch_impl.build("vae", preset="tiny")
    km = keras_impl.build("vae", config=tm.config)
    assert type(tm) is TorchConvVAE and type(km) is KerasConvVAE and tm.config.model == "vae"


def test_report_kl_strategies():
    spec = get_model_spec("vae")
    assert 64 <= spec.batch_size <= 128
    hp = spec.objective.hyperparameters.from_dict(spec.hyperparameters)
    assert (hp.lr, hp.kl_schedule, hp.kl_warmup, hp.free_bits) == (1e-3, "linear", 10000, 0.5)
    assert kl_weight(hp, 0, 20000) == 0.0 and kl_weight(hp, 5000, 20000) == 0.5 and kl_weight(hp, 10000, 20000) == 1.0
    assert get_model_spec("flow_vae").hyperparameters == spec.hyperparameters
